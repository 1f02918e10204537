"""A large Unigram tokenizer (SentencePiece's) cut down to the pieces one text can be made of.

The tokenizers library builds a Unigram model at a few microseconds a piece (a hash map and a trie of every piece),
holding Python's lock throughout: 0.37 to 0.50 s for a vocabulary of 128,000 pieces, on every run of a command that
reads one sentence, more than an encoder's forward pass over it. Unigram cuts a word into pieces of the vocabulary
that occur in it, choosing among them by their scores alone (Kudo 2018); no other piece can change its choice. A
tokenizer holding only those pieces, and the ones the model reads besides (the unknown token; the lowest-scoring
piece, as the unknown token scores ten below it; the byte fallback's <0xNN>; every added token), gives the text the
same pieces and offsets. Its ids count its own pieces, in the whole vocabulary's order; `Cut.ids` maps them back.

A piece is kept when, without whitespace and the pre-tokenizer's word-start mark (Metaspace's ▁), it occurs in the
normalized text without them: a word is a stretch of the normalized text cut at whitespace or where a pre-tokenizer
splits, with the mark written in, so whatever occurs in a word passes. The text is normalized in the stretches
between the added tokens it types, as the library normalizes it. A piece kept for nothing changes nothing, so the
rule needs only to keep enough. Pre-tokenizers that change characters otherwise (byte-level), post-processors whose
ids this module does not know and added tokens matched only as whole words are not cut: `cutter` answers None and
the whole tokenizer is read.
"""

import re
from dataclasses import dataclass

import numpy as np
import orjson

__all__ = ["CUT_FROM", "Cut", "Cutter", "cutter"]

# Pieces from which cutting pays: below this, the whole tokenizer builds in under a tenth of a second, about what
# reading its file as JSON to cut it costs.
CUT_FROM = 32_768

# Pre-tokenizers that only split the normalized text (dropping whitespace or the characters they split at), so
# that every word they make is a stretch of it; Metaspace also writes its mark, which the rule takes out.
_SPLITTERS = {
    "Metaspace",
    "WhitespaceSplit",
    "Whitespace",
    "Punctuation",
    "Digits",
    "Split",
    "BertPreTokenizer",
    "UnicodeScripts",
    "CharDelimiterSplit",
}
_SEPARATOR = "\n"  # between the normalized stretches: a piece found across one is kept for nothing, never missed
_JOIN = "\x00"  # between the pieces, to make them bare at once: no whitespace, no mark
_BYTE = re.compile(r"<0x[0-9A-F]{2}>")  # a byte fallback's piece


@dataclass(frozen=True)
class Cut:
    """A tokenizer of the pieces one text can use, and how its ids map to the whole tokenizer's."""

    tokenizer: object  # a tokenizers.Tokenizer
    ids: np.ndarray  # [its size] the whole tokenizer's id of each of its ids
    size: int  # the whole tokenizer's size, with its added tokens


class Cutter:
    """A Unigram tokenizer.json read as data, which cuts tokenizers for texts. `shell` has its normalizer and no
    vocabulary worth the name, for what a text is before its pieces."""

    def __init__(self, document: dict, mark: str):
        from tokenizers import Tokenizer

        self.document = document
        self.pieces: list = document["model"]["vocab"]  # [[piece, score], ...]
        self.mark = mark  # what the pre-tokenizer writes into words (Metaspace's ▁), or ""
        added = document.get("added_tokens") or []
        # the added tokens that are no piece, numbered on from the vocabulary's end (see _added_fit)
        self.beyond = sorted(token["id"] for token in added if token["id"] >= len(self.pieces))
        shell = {**document, "added_tokens": [], "post_processor": None, "decoder": None}
        shell["model"] = {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}
        self.shell = Tokenizer.from_str(orjson.dumps(shell).decode())
        # what the library splits a text at before normalizing it, longest first as it matches them
        raw = sorted((token["content"] for token in added if not _normalized(token)), key=len, reverse=True)
        self._typed = re.compile("|".join(map(re.escape, raw))) if raw else None
        model = document["model"]
        wrapped = _processor_ids(document.get("post_processor")) or []
        always = [token["id"] for token in added] + wrapped
        if model.get("unk_id") is not None:
            always.append(model["unk_id"])
        if model.get("byte_fallback"):
            always.extend(i for i, (piece, _) in enumerate(self.pieces) if _BYTE.fullmatch(piece))
        # each piece's string and score
        self._strings, scores = [piece for piece, _ in self.pieces], [score for _, score in self.pieces]
        if scores:  # the lowest score sets the unknown token's
            always.append(scores.index(min(scores)))
        self._always = {i for i in always if i < len(self.pieces)}

    def cut(self, text: str, also: tuple[str, ...] = ()) -> Cut:
        """The tokenizer of `text`'s pieces, keeping the pieces `also` names too (a wrapper's special tokens)."""
        from tokenizers import Tokenizer

        found = self._found(text)
        matched = (i for i, bare in enumerate(self._bare_pieces()) if bare in found)
        named = (i for i, piece in enumerate(self._strings) if piece in also) if also else ()
        kept = sorted(self._always.union(matched, named))
        cut_id = {whole: i for i, whole in enumerate(kept)}
        cut_id.update((whole, len(kept) + n) for n, whole in enumerate(self.beyond))
        model = {**self.document["model"], "vocab": [self.pieces[i] for i in kept]}
        if model.get("unk_id") is not None:
            model["unk_id"] = cut_id[model["unk_id"]]
        added = [{**token, "id": cut_id[token["id"]]} for token in self.document.get("added_tokens") or []]
        processor = _renumbered(self.document.get("post_processor"), cut_id)
        document = {**self.document, "model": model, "added_tokens": added, "post_processor": processor}
        tokenizer = Tokenizer.from_str(orjson.dumps(document).decode())
        return Cut(tokenizer, np.array([*kept, *self.beyond], dtype=np.int64), len(self.pieces) + len(self.beyond))

    def _bare_pieces(self) -> list[str]:
        """Every piece bare (_bare), in order: made bare joined in one string, as a call a piece takes twice as long,
        unless a piece holds the character they are joined with."""
        joined = _JOIN.join(self._strings)
        bare = _bare(joined, self.mark).split(_JOIN)
        return bare if len(bare) == len(self._strings) else [_bare(piece, self.mark) for piece in self._strings]

    def _found(self, text: str) -> str:
        """The stretches of `text` between the added tokens it types that the library matches before normalizing,
        each normalized and bare (_bare): what a kept piece occurs in. (Added tokens matched after normalizing only
        cut the normalized stretches shorter.)"""
        normalizer = self.shell.normalizer
        stretches = [text] if self._typed is None else self._typed.split(text)
        normalized = [stretch if normalizer is None else normalizer.normalize_str(stretch) for stretch in stretches]
        return _SEPARATOR.join(_bare(stretch, self.mark) for stretch in normalized)


def _bare(text: str, mark: str) -> str:
    """`text` without whitespace and without `mark`, of a piece and of the text alike: a piece of a word (which a
    pre-tokenizer cut at whitespace and wrote its mark into) is then found in the text."""
    return "".join(text.split()).replace(mark, "")


def cutter(data: bytes) -> Cutter | None:
    """A Cutter of tokenizer.json's `data` where it is a Unigram tokenizer of at least CUT_FROM pieces that this
    module can cut; None for any other (read the whole tokenizer)."""
    if b'"Unigram"' not in data:  # no Unigram model: not worth reading the file as JSON to find out
        return None
    try:
        document = orjson.loads(data)
        model = document["model"]
        if model.get("type") != "Unigram" or len(model["vocab"]) < CUT_FROM:
            return None
        mark = _mark(document.get("pre_tokenizer"))
        processor_ids = _processor_ids(document.get("post_processor"))
        added = {token["id"] for token in document.get("added_tokens") or []}
        if mark is None or processor_ids is None or not _added_fit(document):
            return None
        if any(token.get("single_word") for token in document.get("added_tokens") or []):
            return None  # matched or not as the characters around it are: the stretches would depend on them
        if not all(i < len(model["vocab"]) or i in added for i in processor_ids):
            return None  # a template naming a token nobody defines: the whole tokenizer says so
        return Cutter(document, mark)
    except Exception:  # not a file this module understands: the library reads it whole and says what is wrong
        return None


def _normalized(token: dict) -> bool:
    """Whether the library matches added token `token` in the normalized text (by default, where it is not special)
    rather than in the text as typed."""
    return token.get("normalized", not token.get("special", False))


def _mark(pre_tokenizer: dict | None) -> str | None:
    """What `pre_tokenizer` writes into words (Metaspace's replacement), "" where it writes nothing; None where it
    changes characters in a way the rule cannot see through, or is of a type this module does not know."""
    if pre_tokenizer is None:
        return ""
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        marks = {_mark(part) for part in pre_tokenizer["pretokenizers"]} - {""}
        return None if None in marks or len(marks) > 1 else next(iter(marks), "")
    if kind not in _SPLITTERS:
        return None
    return pre_tokenizer.get("replacement", pre_tokenizer.get("str_rep", "▁")) if kind == "Metaspace" else ""


def _added_fit(document: dict) -> bool:
    """Whether every added token is the vocabulary's piece at its id, or one of the ids counted on from its end."""
    pieces = document["model"]["vocab"]
    added = document.get("added_tokens") or []
    within = all(token["content"] == pieces[token["id"]][0] for token in added if token["id"] < len(pieces))
    beyond = sorted(token["id"] for token in added if token["id"] >= len(pieces))
    return within and beyond == list(range(len(pieces), len(pieces) + len(beyond)))


def _processor_ids(processor: dict | None) -> list[int] | None:
    """The ids of the special tokens `processor` adds; None for a post-processor of a type this module does not
    know, whose ids it could not renumber."""
    if processor is None:
        return []
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        return [i for token in processor["special_tokens"].values() for i in token["ids"]]
    if kind in ("RobertaProcessing", "BertProcessing"):
        return [processor["sep"][1], processor["cls"][1]]
    if kind == "ByteLevel":
        return []
    if kind == "Sequence":
        parts = [_processor_ids(part) for part in processor["processors"]]
        return None if None in parts else [i for part in parts for i in part]
    return None


def _renumbered(processor: dict | None, cut_id: dict[int, int]) -> dict | None:
    """`processor` with the ids of the special tokens it adds as the cut tokenizer numbers them."""
    if processor is None:
        return None
    kind = processor["type"]
    if kind == "TemplateProcessing":
        tokens = processor["special_tokens"].items()
        special = {name: {**token, "ids": [cut_id[i] for i in token["ids"]]} for name, token in tokens}
        return {**processor, "special_tokens": special}
    if kind in ("RobertaProcessing", "BertProcessing"):
        (sep, sep_id), (cls, cls_id) = processor["sep"], processor["cls"]
        return {**processor, "sep": [sep, cut_id[sep_id]], "cls": [cls, cut_id[cls_id]]}
    if kind == "Sequence":
        return {**processor, "processors": [_renumbered(part, cut_id) for part in processor["processors"]]}
    return processor
