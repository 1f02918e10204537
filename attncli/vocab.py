"""The bundled vocabulary: BERT's uncased WordPiece tokenizer and trained 64-dimensional embeddings.

See sample_vocab/README.md for where the vectors come from.
"""

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from attncli.errors import BadInput, DataError

__all__ = ["Token", "Vocabulary", "bert_uncased_tokenizer", "cosine", "sample_vocabulary", "special_ids"]

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_vocab"
# [PAD], [CLS], [unused17] ...: placeholders, not words, so never anyone's neighbour.
_PLACEHOLDER = re.compile(r"^\[.+\]$")


@dataclass(frozen=True)
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


def special_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids of the tokenizer's special tokens ([CLS], [SEP], <s>, <|endoftext|> ...), whether the
    tokenizer adds them or the text types them; not the unknown token, which stands for real text."""
    unknown = getattr(tokenizer.model, "unk_token", None)
    return frozenset(
        token_id
        for token_id, added in tokenizer.get_added_tokens_decoder().items()
        if added.special and added.content != unknown
    )


class Vocabulary:
    """A tokenizer and the embedding matrix its ids index."""

    def __init__(self, tokenizer: Tokenizer, embeddings: np.ndarray):
        self.tokenizer = tokenizer
        self.embeddings = embeddings  # [vocab, d]
        self.special = special_ids(tokenizer)

    def tokenize(self, text: str) -> list[Token]:
        """The tokens of `text`, without adding special tokens such as [CLS] and [SEP] (typed ones stay)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return [
            Token(index, token_id, piece, start, end, token_id in self.special)
            for index, (token_id, piece, (start, end)) in enumerate(
                zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True)
            )
        ]

    def embed(self, ids: list[int]) -> np.ndarray:
        """The embedding rows of `ids`: [T, d] float64."""
        return self.embeddings[ids].astype(np.float64)

    def word_id(self, word: str) -> int:
        """The id of a word that is a single token of the vocabulary."""
        pieces = self.tokenize(word)
        if len(pieces) != 1:
            shown = " ".join(piece.text for piece in pieces) or "nothing"
            raise BadInput(
                f"{word!r} is not one token of the vocabulary (it tokenizes to: {shown}); give a single word"
            )
        if _PLACEHOLDER.match(pieces[0].text):
            raise BadInput(f"{word!r} is not in the vocabulary (it becomes {pieces[0].text}); give a word")
        return pieces[0].id

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(token_id)

    def nearest(self, token_id: int, k: int) -> list[tuple[int, float]]:
        """The `k` ids whose embeddings have the highest cosine with `token_id`'s, best first.

        The word itself and placeholder tokens ([PAD], [unused0], ...) are left out.
        """
        cosines = _unit_rows(self.embeddings.astype(np.float64)) @ _unit(self.embed([token_id])[0])  # [vocab]
        cosines[token_id] = -np.inf
        for placeholder in self._placeholder_ids():
            cosines[placeholder] = -np.inf
        k = min(k, int(np.isfinite(cosines).sum()))
        best = np.argpartition(-cosines, k - 1)[:k]
        best = best[np.argsort(-cosines[best], kind="stable")]
        return [(int(i), float(cosines[i])) for i in best]

    def _placeholder_ids(self) -> list[int]:
        return [i for token, i in self.tokenizer.get_vocab().items() if _PLACEHOLDER.match(token)]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two vectors; 0 when either is all zeros."""
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms else 0.0


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm else v


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)  # [n, 1]
    return m / np.where(norms == 0, 1.0, norms)


def bert_uncased_tokenizer(vocab_file: Path) -> Tokenizer:
    """BERT's uncased WordPiece tokenizer over `vocab_file` (one token a line, ids counting from 0),
    built in code: the same tokenizer as all-MiniLM-L6-v2's tokenizer.json (a test holds them equal),
    in about 9 ms where parsing that file takes 15."""
    tokenizer = Tokenizer(models.WordPiece.from_file(str(vocab_file), unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer


@cache
def sample_vocabulary() -> Vocabulary:
    """The vocabulary bundled with attncli, loaded once (the embeddings memory-mapped)."""
    try:
        tokenizer = bert_uncased_tokenizer(SAMPLE_DIR / "vocab.txt")
        embeddings = np.load(SAMPLE_DIR / "embeddings.npy", mmap_mode="r")
    except Exception as error:  # tokenizers raises plain Exception for a bad file
        raise DataError(f"cannot read the bundled vocabulary in {SAMPLE_DIR} ({error}); reinstall attncli") from error
    return Vocabulary(tokenizer, embeddings)
