"""Tokens: what a tokenizer made of a text, which of them are special, and the marks tokenizers
put on word pieces.

Tokenizers mark where a word starts or goes on in the vocabulary strings themselves:
WordPiece writes a word's continuation as "##ing"; byte-level BPE writes a leading space
as "Ġ" and a newline as "Ċ"; SentencePiece-style tokenizers write a word's start as "▁"
and a character outside their vocabulary as its UTF-8 bytes, one token each ("<0xE2>").
JSON keeps the exact strings; matching a typed word and showing a token on a terminal
read past the marks, here.
"""

import re
from dataclasses import dataclass

__all__ = [
    "CHARACTERS_PER_TOKEN",
    "MASK_TOKENS",
    "Token",
    "added_around",
    "bare",
    "mask_token",
    "matches",
    "normalized_length",
    "ordinary_ids",
    "readable",
    "readable_all",
    "special_ids",
    "word_spans",
]

CONTINUATION = "##"  # WordPiece: the piece continues the word before it
SPACE = "Ġ"  # byte-level BPE: the piece starts after a space
NEWLINE = "Ċ"  # byte-level BPE: a newline
WORD_START = "▁"  # SentencePiece: the piece starts a word (after a space)
_BYTE = re.compile(r"<0x([0-9A-F]{2})>")  # SentencePiece's byte fallback: one byte of a character
# A byte-fallback token whose character was shown on the token before it.
CONTINUED = "·"


# No tokenizer here makes one token of more than 100 characters (WordPiece turns longer words
# into [UNK]), so a text longer than this many characters per allowed token cannot fit and is
# refused before tokenizing: a 1 MB paste fails at once instead of after a second of work.
CHARACTERS_PER_TOKEN = 100


@dataclass(eq=False)
class Token:
    """One token of a text: its position, vocabulary id and string, and the characters it came from."""

    index: int
    id: int
    text: str
    start: int  # character offsets into the original text, end exclusive
    end: int
    special: bool = False  # added by the model's tokenizer, like [CLS] or </s>; not from the text

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "id": self.id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "special": self.special,
        }


def bare(piece: str) -> str:
    """A vocabulary string without its word-piece marks: "##ing" -> "ing", "Ġcat" or "▁cat" -> "cat"."""
    return piece.removeprefix(CONTINUATION).removeprefix(SPACE).removeprefix(WORD_START)


def matches(piece: str, word: str) -> bool:
    """Whether the vocabulary string `piece` is `word` (ignoring case), with or without one mark."""
    piece, word = piece.lower(), word.lower()
    return piece in (word, CONTINUATION + word, SPACE.lower() + word, WORD_START + word)


def word_spans(tokens: list[Token], text: str, word: str) -> list[list[int]]:
    """For each place `word` occurs in `text` as a whole word (ignoring case) and was split into
    more than one token, the indices of those tokens. A phrase (with spaces) is no word: []."""
    if not word or any(c.isspace() for c in word):
        return []
    spans = []
    for found in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE):
        start, end = found.span()
        span = [t.index for t in tokens if not t.special and t.start < end and t.end > start]
        if len(span) > 1:
            spans.append(span)
    return spans


def readable(piece: str) -> str:
    """A vocabulary string as a terminal shows it: a word start (byte-level or SentencePiece) as ␣
    and a byte-level newline as ↵."""
    return piece.replace(SPACE, "␣").replace(WORD_START, "␣").replace(NEWLINE, "↵")


def readable_all(pieces: list[str]) -> list[str]:
    """`readable` for each of a text's tokens, with byte-fallback tokens decoded where they form
    characters: the first token of a character shows it, the others CONTINUED; bytes that form no
    character stay as they are (<0xE2>)."""
    shown = [readable(piece) for piece in pieces]
    i = 0
    while i < len(pieces):
        run = i
        while run < len(pieces) and _BYTE.fullmatch(pieces[run]):
            run += 1
        if run == i:
            i += 1
            continue
        data = bytes(int(_BYTE.fullmatch(piece)[1], 16) for piece in pieces[i:run])
        start = 0
        while start < len(data):
            for end in range(start + 1, min(start + 4, len(data)) + 1):
                try:
                    character = data[start:end].decode("utf-8")
                except UnicodeDecodeError:
                    continue
                shown[i + start : i + end] = [character] + [CONTINUED] * (end - start - 1)
                start = end
                break
            else:
                start += 1
        i = run
    return shown


def special_ids(tokenizer) -> frozenset[int]:
    """Ids of a `tokenizers.Tokenizer`'s special tokens ([CLS], [SEP], <s>, <|endoftext|> ...), whether
    the tokenizer adds them or the text types them; not the unknown token, which stands for real text."""
    unknown = _unknown_id(tokenizer)
    return frozenset(
        token_id
        for token_id, added in tokenizer.get_added_tokens_decoder().items()
        if added.special and token_id != unknown
    )


def ordinary_ids(tokenizer) -> list[int]:
    """The ids of a `tokenizers.Tokenizer`'s vocabulary, in order, but its special tokens and its unknown
    token: the tokens a text is made of."""
    unknown = _unknown_id(tokenizer)
    specials = {token_id for token_id, added in tokenizer.get_added_tokens_decoder().items() if added.special}
    return sorted(set(tokenizer.get_vocab(with_added_tokens=True).values()) - specials - {unknown})


def added_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids of the special tokens a `tokenizers.Tokenizer` adds before a text's own tokens and after
    them: ([CLS], [SEP]), ([<s>], []), or none."""
    encoding = tokenizer.encode("a")
    own = [i for i, added in enumerate(encoding.special_tokens_mask) if not added]
    return encoding.ids[: own[0]], encoding.ids[own[-1] + 1 :]


# How masked LMs' tokenizers spell their mask token: in brackets (WordPiece's), or angle brackets (BPE's).
MASK_TOKENS = ("[MASK]", "<mask>")


def mask_token(tokenizer) -> tuple[str, int] | None:
    """A `tokenizers.Tokenizer`'s mask token, (its text, its id): the special token spelt as a masked LM's
    is; None where it has none (tokenizer.json names no mask token, only its special tokens)."""
    return next(
        (
            (added.content, token_id)
            for token_id, added in sorted(tokenizer.get_added_tokens_decoder().items())
            if added.special and added.content in MASK_TOKENS
        ),
        None,
    )


# U+10FFFF, a noncharacter: no tokenizer's vocabulary holds it, so a model can only call it unknown
_NEVER_SEEN = "\U0010ffff"


def _unknown_id(tokenizer) -> int | None:
    """The id of the token a `tokenizers.Tokenizer` gives text its vocabulary lacks, or None. WordPiece and
    BPE name it (unk_token); a Unigram model (SentencePiece's) keeps only its id, so it is asked what it makes
    of a character no vocabulary holds: its unknown token, or, where it falls back to bytes or has no unknown
    token, not one token of its own."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):
        return None if model.unk_token is None else tokenizer.token_to_id(model.unk_token)
    try:
        pieces = model.tokenize(_NEVER_SEEN)
    except Exception:  # a Unigram model without unk_id fails on the character
        return None
    return pieces[0].id if len(pieces) == 1 else None


def normalized_length(tokenizer, text: str, limit: int) -> int:
    """How long the tokenizer's normalizer makes `text`, counted 64 characters at a time and no
    further than just past `limit`: a hostile normalizer can turn each character into thousands,
    and a small piece keeps what one call can make small."""
    if tokenizer.normalizer is None:
        return len(text)
    length = 0
    for start in range(0, len(text), 64):
        length += len(tokenizer.normalizer.normalize_str(text[start : start + 64]))
        if length > limit:
            break
    return length
