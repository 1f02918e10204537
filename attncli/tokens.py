"""Tokens: what a tokenizer made of a text, which of them are special, and the marks tokenizers
put on word pieces.

Tokenizers mark where a word starts or goes on in the vocabulary strings themselves:
WordPiece writes a word's continuation as "##ing"; byte-level BPE writes a leading space
as "Ġ" and a newline as "Ċ". JSON keeps the exact strings; matching a typed word and
showing a token on a terminal read past the marks, here.
"""

from dataclasses import dataclass

__all__ = ["Token", "bare", "matches", "readable", "special_ids"]

CONTINUATION = "##"  # WordPiece: the piece continues the word before it
SPACE = "Ġ"  # byte-level BPE: the piece starts after a space
NEWLINE = "Ċ"  # byte-level BPE: a newline


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
    """A vocabulary string without its word-piece marks: "##ing" -> "ing", "Ġcat" -> "cat"."""
    return piece.removeprefix(CONTINUATION).removeprefix(SPACE)


def matches(piece: str, word: str) -> bool:
    """Whether the vocabulary string `piece` is `word` (ignoring case), with or without one mark."""
    piece, word = piece.lower(), word.lower()
    return piece in (word, CONTINUATION + word, SPACE.lower() + word)


def readable(piece: str) -> str:
    """A vocabulary string as a terminal shows it: a byte-level space as ␣ and newline as ↵."""
    return piece.replace(SPACE, "␣").replace(NEWLINE, "↵")


def special_ids(tokenizer) -> frozenset[int]:
    """Ids of a `tokenizers.Tokenizer`'s special tokens ([CLS], [SEP], <s>, <|endoftext|> ...), whether
    the tokenizer adds them or the text types them; not the unknown token, which stands for real text."""
    unknown = getattr(tokenizer.model, "unk_token", None)
    return frozenset(
        token_id
        for token_id, added in tokenizer.get_added_tokens_decoder().items()
        if added.special and added.content != unknown
    )
