"""The sample model: its definition, its determinism, and a torch reference."""

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from attncli import core
from attncli.errors import BadInput
from attncli.sample_model import SampleConfig, positional_encoding, sample_weights

SENTENCE = "The cat sat on the mat"
REFERENCE = Path(__file__).parent / "fixtures" / "sample_reference.json"


@pytest.mark.parametrize("heads", [0, -2, 3, 7, 48, 128])
def test_heads_must_divide_the_width(heads):
    with pytest.raises(BadInput, match=f"--heads {heads} does not divide"):
        SampleConfig(heads=heads)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16, 32, 64])
def test_every_divisor_of_the_width_is_a_valid_head_count(heads):
    run = core.run_sample(SENTENCE, SampleConfig(heads=heads))
    assert run.weights.shape == (heads, 6, 6)
    assert run.forward.attention.q.shape == (heads, 6, 64 // heads)


def test_the_same_seed_gives_the_same_numbers():
    first = core.run_sample(SENTENCE, SampleConfig(seed=3)).forward.attention
    second = core.run_sample(SENTENCE, SampleConfig(seed=3)).forward.attention
    other = core.run_sample(SENTENCE, SampleConfig(seed=4)).forward.attention
    assert_array_equal(first.weights, second.weights)
    assert not np.allclose(first.weights, other.weights)


def test_changing_heads_regroups_the_same_projections():
    eight = core.run_sample(SENTENCE, SampleConfig(heads=8)).forward.attention
    two = core.run_sample(SENTENCE, SampleConfig(heads=2)).forward.attention
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
    forward = core.run_sample(SENTENCE, SampleConfig()).forward
    assert_allclose(forward.x, forward.embeddings * 8 + positional_encoding(6, 64))
    off = core.run_sample(SENTENCE, SampleConfig(positions=False)).forward
    assert off.positions is None
    assert_allclose(off.x, off.embeddings * 8)


def test_without_positions_repeated_words_get_identical_rows():
    weights = core.run_sample(SENTENCE, SampleConfig(positions=False)).weights
    assert_allclose(weights[:, 0], weights[:, 4])  # "the" at 0 and at 4


def test_causal_weights_are_zero_above_the_diagonal():
    weights = core.run_sample(SENTENCE, SampleConfig(causal=True)).weights
    assert np.all(weights[:, np.triu_indices(6, k=1)[0], np.triu_indices(6, k=1)[1]] == 0)
    assert_allclose(weights[:, 0, 0], 1.0)


@pytest.mark.parametrize(
    "case", json.loads(REFERENCE.read_text())["cases"], ids=lambda c: f"h{c['heads']}-causal{c['causal']}"
)
def test_matches_the_torch_reference(case):
    config = SampleConfig(heads=case["heads"], seed=case["seed"], causal=case["causal"])
    run = core.run_sample(case["text"], config)
    assert [t.id for t in run.tokens] == case["ids"]
    assert_allclose(run.weights, case["weights"], atol=1e-12)
    assert_allclose(run.forward.attention.output, case["output"], atol=1e-10)
