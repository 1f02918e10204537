"""bundled.py: the sample model against a torch reference, and the bundled vocabulary's tokens and vectors."""

import json

import numpy as np
import pytest
from helpers import FIXTURES, SENTENCE, needs_minilm
from numpy.testing import assert_allclose, assert_array_equal

from attncli import commands
from attncli.analysis import cosine
from attncli.bundled import SAMPLE_DIR, SampleConfig, positional_encoding, sample_weights
from attncli.errors import BadInput
from attncli.models import load_model

REFERENCE = FIXTURES / "sample_reference.json"


def run(text=SENTENCE, **options):
    return commands.run(text, load_model("sample", **options))


def layer(**options):
    return run(**options).trace.layers[0]


@pytest.mark.parametrize("heads", [3, 7, 48, 128])
def test_heads_must_divide_the_width(heads):
    with pytest.raises(BadInput, match=f"^heads {heads} does not divide"):
        SampleConfig(heads=heads)


@pytest.mark.parametrize("heads", [0, -2, -8])
def test_heads_must_be_positive(heads):
    with pytest.raises(BadInput, match=f"^heads {heads} is not positive"):
        SampleConfig(heads=heads)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16, 32, 64])
def test_every_divisor_of_the_width_is_a_valid_head_count(heads):
    result = run(heads=heads)
    assert result.weights.shape == (1, heads, 6, 6)
    assert result.trace.layers[0].q.shape == (heads, 6, 64 // heads)


def test_the_same_seed_gives_the_same_numbers():
    first, second, other = layer(seed=3), layer(seed=3), layer(seed=4)
    assert_array_equal(first.weights, second.weights)
    assert not np.allclose(first.weights, other.weights)


def test_changing_heads_regroups_the_same_projections():
    eight, two = layer(heads=8), layer(heads=2)
    assert_allclose(np.concatenate(list(eight.q), axis=-1), np.concatenate(list(two.q), axis=-1))


def test_weights_are_drawn_with_variance_one_over_d():
    weights = sample_weights(SampleConfig())
    assert weights.w_q.shape == (64, 64)
    assert abs(weights.w_q.std() - 1 / 8) < 0.01


def test_positional_encoding_follows_the_paper():
    pe = positional_encoding(50, 64)
    assert_array_equal(pe[0, 0::2], 0.0)
    assert_array_equal(pe[0, 1::2], 1.0)
    assert_allclose(pe[7, 0], np.sin(7))
    assert_allclose(pe[7, 1], np.cos(7))
    assert_allclose(pe[7, 10], np.sin(7 / 10000 ** (10 / 64)))


def test_input_is_scaled_embeddings_plus_positions():
    trace = run().trace
    assert_allclose(trace.layers[0].x, trace.embeddings * 8 + positional_encoding(6, 64))
    assert_allclose(trace.positions, positional_encoding(6, 64))
    off = run(positions=False).trace
    assert off.positions is None
    assert_allclose(off.layers[0].x, off.embeddings * 8)


def test_without_positions_repeated_words_get_identical_rows():
    weights = layer(positions=False).weights
    assert_allclose(weights[:, 0], weights[:, 4])  # "the" at 0 and at 4


def test_causal_weights_are_zero_above_the_diagonal():
    weights = layer(causal=True).weights
    above = np.triu_indices(6, k=1)
    assert np.all(weights[:, above[0], above[1]] == 0)
    assert_allclose(weights[:, 0, 0], 1.0)


@pytest.mark.parametrize(
    "case", json.loads(REFERENCE.read_text())["cases"], ids=lambda c: f"h{c['heads']}-causal{c['causal']}"
)
def test_matches_the_torch_reference(case):
    result = run(case["text"], heads=case["heads"], seed=case["seed"], causal=case["causal"])
    assert [t.id for t in result.tokens] == case["ids"]
    assert_allclose(result.weights[0], case["weights"], atol=1e-12)
    assert_allclose(result.trace.output, case["output"], atol=1e-10)


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


def test_the_data_ships_inside_the_installed_package_and_stays_small():
    assert SAMPLE_DIR.parent.name == "attncli"
    assert "site-packages" in SAMPLE_DIR.parts
    total = sum(path.stat().st_size for path in SAMPLE_DIR.iterdir())
    assert total < 5 * 1024 * 1024
