"""A large Unigram tokenizer (SentencePiece's) cut down to the pieces one text can be made of.

The tokenizers library builds a Unigram model at a few microseconds a piece (a hash map and a trie of every piece),
holding Python's lock throughout: 0.37 to 0.50 s for a vocabulary of 128,000 pieces, on every run of a command that
reads one sentence, more than an encoder's forward pass over it. Unigram cuts a word into pieces of the vocabulary
that occur in it, choosing among them by their scores alone (Kudo 2018); no other piece can change its choice. A
tokenizer holding only those pieces, and the ones the model reads besides (the unknown token; the lowest-scoring
piece, as the unknown token scores ten below it; the byte fallback's <0xNN>; every piece an added token is, whose id
the token takes), gives the text the same pieces and offsets. Its ids count its own pieces, in the whole
vocabulary's order; `Cut.ids` maps them back.

A piece is kept when, without whitespace and the pre-tokenizer's word-start mark (Metaspace's ▁), it occurs in the
normalized text without them: a word is a stretch of the normalized text cut at whitespace or where a pre-tokenizer
splits, with the mark written in, so whatever occurs in a word passes. The text is normalized in the stretches
between the added tokens it types, without the whitespace they strip, as the library normalizes it. A piece kept
for nothing changes nothing, so the rule needs only to keep enough. Pre-tokenizers that change characters otherwise
(byte-level), post-processors whose ids this module does not know, added tokens matched only as whole words and
ones past the vocabulary that are pieces are not cut: `cutter` answers None and the whole tokenizer is read; so is
a text so long that finding its pieces would take longer than building the whole.
"""

import re
from dataclasses import dataclass
from functools import cached_property

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
# Substrings of a text's stretches (their length times the longest piece's) past which a text is not cut: finding
# its pieces would take about as long as building the whole tokenizer (0.17 s for 297,000, a text of 16,500
# characters against 128,000 pieces of up to 18 characters).
_MOST_SUBSTRINGS = 1 << 19
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

    def __init__(self, document: dict, mark: str, wrapped: list[int]):
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
        self._typed = _typed(added)
        model = document["model"]
        self._strings, scores = [piece for piece, _ in self.pieces], [score for _, score in self.pieces]
        # An added token's id is the id of the piece its content is (the last, where pieces repeat), as the
        # library looks it up: every piece its content is stays, and the ids the post-processor adds.
        contents = {token["content"] for token in added}
        always = [i for i, piece in enumerate(self._strings) if piece in contents] + wrapped
        if model.get("unk_id") is not None:
            always.append(model["unk_id"])
        if model.get("byte_fallback"):
            always.extend(i for i, piece in enumerate(self._strings) if _BYTE.fullmatch(piece))
        if scores:  # the lowest score sets the unknown token's
            always.append(scores.index(min(scores)))
        self._always = {i for i in always if i < len(self.pieces)}

    def cut(self, texts: tuple[str, ...], also: tuple[str, ...] = ()) -> Cut | None:
        """The tokenizer of the pieces `texts` are made of, keeping the pieces `also` names too (a wrapper's special
        tokens); None where the texts are too long to be worth cutting for (see _MOST_SUBSTRINGS)."""
        from tokenizers import Tokenizer

        stretches = [stretch for text in texts for stretch in self._found(text)]
        if sum(map(len, stretches)) * self._longest > _MOST_SUBSTRINGS:
            return None
        occurring = {
            stretch[start : start + length]
            for stretch in stretches
            for length in range(min(self._longest, len(stretch)) + 1)
            for start in range(len(stretch) - length + 1)
        }
        matched = (i for i, bare in enumerate(self._bare_pieces) if bare in occurring)
        named = (i for i, piece in enumerate(self._strings) if piece in also) if also else ()
        kept = sorted(self._always.union(matched, named))
        cut_id = {whole: i for i, whole in enumerate(kept)}
        cut_id.update((whole, len(kept) + n) for n, whole in enumerate(self.beyond))
        model = {**self.document["model"], "vocab": [self.pieces[i] for i in kept]}
        if model.get("unk_id") is not None:
            model["unk_id"] = cut_id[model["unk_id"]]
        added = [{**token, "id": cut_id[token["id"]]} for token in self.document.get("added_tokens") or []]
        processor = _renumbered(self.document.get("post_processor"), cut_id)
        document = {
            **self.document,
            "model": model,
            "added_tokens": added,
            "post_processor": processor,
            "padding": None,  # the whole's would pad with its own id
            "truncation": None,
        }
        tokenizer = Tokenizer.from_str(orjson.dumps(document).decode())
        return Cut(tokenizer, np.array([*kept, *self.beyond], dtype=np.int64), len(self.pieces) + len(self.beyond))

    @cached_property
    def _bare_pieces(self) -> list[str]:
        """Every piece bare (_bare), in order: made bare joined in one string, as a call a piece takes twice as long,
        unless a piece holds the character they are joined with."""
        joined = _JOIN.join(self._strings)
        bare = _bare(joined, self.mark).split(_JOIN)
        return bare if len(bare) == len(self._strings) else [_bare(piece, self.mark) for piece in self._strings]

    @cached_property
    def _longest(self) -> int:
        """The length of the longest bare piece: no longer stretch of a text can be one."""
        return max(map(len, self._bare_pieces), default=0)

    def _found(self, text: str) -> list[str]:
        """The stretches of `text` between the added tokens it types that the library matches before normalizing
        (with the whitespace they strip), each normalized and bare (_bare): what a kept piece occurs in. (Added
        tokens matched after normalizing only cut the normalized stretches shorter.)"""
        normalizer = self.shell.normalizer
        stretches = [text] if self._typed is None else self._typed.split(text)
        return [
            _bare(stretch if normalizer is None else normalizer.normalize_str(stretch), self.mark)
            for stretch in stretches
        ]


def _typed(added: list[dict]) -> "re.Pattern | None":
    """What the library splits a text at before normalizing it: the added tokens it matches in the text as typed,
    longest first as it matches them, with the whitespace they strip on either side."""
    raw = sorted(
        (token for token in added if not token["normalized"]), key=lambda token: len(token["content"]), reverse=True
    )
    alternatives = [
        (r"\s*" if token.get("lstrip") else "") + re.escape(token["content"]) + (r"\s*" if token.get("rstrip") else "")
        for token in raw
    ]
    return re.compile("|".join(alternatives)) if alternatives else None


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
        unknown = model.get("unk_id")
        if mark is None or processor_ids is None or not _added_fit(document):
            return None
        if unknown is not None and not 0 <= unknown < len(model["vocab"]):
            return None  # the library refuses it, and says why
        if any(token.get("single_word") for token in document.get("added_tokens") or []):
            return None  # matched or not as the characters around it are: the stretches would depend on them
        if not all(i < len(model["vocab"]) or i in added for i in processor_ids):
            return None  # a template naming a token nobody defines: the whole tokenizer says so
        return Cutter(document, mark, processor_ids)
    except Exception:  # not a file this module understands: the library reads it whole and says what is wrong
        return None


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
    """Whether every added token is the vocabulary's piece at its id, or, no piece, one of the ids counted on from its
    end."""
    pieces = document["model"]["vocab"]
    added = document.get("added_tokens") or []
    within = all(token["content"] == pieces[token["id"]][0] for token in added if token["id"] < len(pieces))
    beyond = [token for token in added if token["id"] >= len(pieces)]
    if sorted(token["id"] for token in beyond) != list(range(len(pieces), len(pieces) + len(beyond))):
        return False
    contents = {token["content"] for token in beyond}  # one that is a piece takes the piece's id: not numbered on
    return within and not (contents and any(piece in contents for piece, _ in pieces))


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
