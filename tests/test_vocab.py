"""The bundled vocabulary: real tokens, trained vectors, shipped inside the package."""

import json

import numpy as np
import pytest
from helpers import FIXTURES, SENTENCE, needs_minilm

from attncli.analysis import cosine
from attncli.bundled import SAMPLE_DIR, sample_vocabulary
from attncli.errors import BadInput


@pytest.fixture(scope="module")
def vocab():
    return sample_vocabulary()


def vector(vocab, word):
    return vocab.embed([vocab.word_id(word)])[0]


def test_the_sample_sentence_tokenizes_to_its_words(vocab):
    tokens = vocab.tokenize(SENTENCE)
    assert [t.text for t in tokens] == ["the", "cat", "sat", "on", "the", "mat"]
    assert [t.id for t in tokens] == [1996, 4937, 2938, 2006, 1996, 13523]
    assert [(t.start, t.end) for t in tokens] == [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22)]


def test_offsets_are_character_offsets_into_the_original_text(vocab):
    text = "Café 🐈 tokenization"
    for token in vocab.tokenize(text):
        assert text[token.start : token.end].lower().replace("é", "e") in (token.text.removeprefix("##"), "🐈")


def test_the_vocabulary_is_bert_uncased_with_64_dimensions(vocab):
    assert vocab.embeddings.shape == (30522, 64)
    assert vocab.tokenizer.get_vocab_size() == 30522
    assert vocab.embeddings.dtype == np.float16


@needs_minilm
def test_the_tokenizer_built_in_code_is_minilms_tokenizer_json(vocab):
    """Every field of the tokenizer spec (vocabulary, normaliser, pre-tokenizer, special tokens,
    decoder) equals the checkpoint's tokenizer.json, but for its truncation and padding settings."""
    from attncli.checkpoint import resolve

    checkpoint = json.loads((resolve("minilm") / "tokenizer.json").read_text(encoding="utf-8"))
    checkpoint["truncation"] = checkpoint["padding"] = None
    assert json.loads(vocab.tokenizer.to_str()) == checkpoint


def test_similar_words_are_close(vocab):
    assert cosine(vector(vocab, "cat"), vector(vocab, "dog")) > cosine(vector(vocab, "cat"), vector(vocab, "pizza"))
    assert cosine(vector(vocab, "king"), vector(vocab, "queen")) > cosine(vector(vocab, "king"), vector(vocab, "pizza"))


def test_queen_is_among_the_ten_nearest_neighbours_of_king(vocab):
    neighbours = [vocab.token_text(i) for i, _ in vocab.nearest(vocab.word_id("king"), 10)]
    assert "queen" in neighbours
    assert "king" not in neighbours
    assert not any(word.startswith("[") and word.endswith("]") for word in neighbours)


def test_neighbours_come_best_first(vocab):
    cosines = [c for _, c in vocab.nearest(vocab.word_id("paris"), 25)]
    assert cosines == sorted(cosines, reverse=True)


def test_a_word_of_several_tokens_is_refused_with_its_pieces(vocab):
    with pytest.raises(BadInput, match="token ##ization"):
        vocab.word_id("tokenization")


def test_the_data_ships_inside_the_installed_package_and_stays_small():
    assert SAMPLE_DIR.parent.name == "attncli"
    assert "site-packages" in SAMPLE_DIR.parts
    total = sum(path.stat().st_size for path in SAMPLE_DIR.iterdir())
    assert total < 5 * 1024 * 1024


def test_neighbours_are_never_specials_placeholders_or_rows_past_the_tokenizer(vocab):
    from attncli.models import Vocabulary

    king = vocab.word_id("king")
    padded = np.vstack([vocab.embeddings, np.repeat(vocab.embeddings[king : king + 1], 3, axis=0)])  # exact copies
    byte = vocab.tokenizer.token_to_id("[unused0]")
    padded[byte] = vocab.embeddings[king]
    neighbours = [i for i, _ in Vocabulary(vocab.tokenizer, padded).nearest(king, 5)]
    assert neighbours == [i for i, _ in vocab.nearest(king, 5)]
    assert all(i < len(vocab.embeddings) and i != byte for i in neighbours)


@pytest.mark.parametrize(("word", "message"), [("[CLS]", "is a special token"), ("😀", "becomes \\[UNK\\]")])
def test_a_special_token_or_an_unknown_word_has_no_neighbours(vocab, word, message):
    with pytest.raises(BadInput, match=message):
        vocab.word_id(word)


def test_a_checkpoints_placeholders_are_nobodys_neighbours():
    from attncli.models import load_model

    vocabulary = load_model(str(FIXTURES / "gemma")).vocabulary
    texts = [vocabulary.token_text(i) for i, _ in vocabulary.nearest(0, 10_000)]  # every candidate
    assert texts and not any(text.startswith("<") and text.endswith(">") for text in texts)  # <0x0A>, <unk>
