"""attention.py: the attention math and RoPE: known values, random properties, naive and reference tables."""

import math

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli.attention import (
    AttentionOptions,
    Projections,
    Rope,
    attention,
    causal_mask,
    head_norm,
    inverse_frequencies,
    layer_norm,
    masked,
    masked_softmax,
    merge_heads,
    multi_head_attention,
    rotary,
    rotate,
    rotate_every_two,
    softmax,
    split_heads,
)
from attncli.models import load_model

finite = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)


moderate = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)


def score_rows(elements=finite):
    return st.integers(1, 6).flatmap(
        lambda rows: st.integers(1, 12).flatmap(lambda cols: arrays(np.float64, (rows, cols), elements=elements))
    )


@st.composite
def layers(draw, heads_choices=(1, 2, 4)):
    """A random self-attention layer: x [T, d] and four [d, d] projections."""
    heads = draw(st.sampled_from(heads_choices))
    d = heads * draw(st.integers(1, 4))
    tokens = draw(st.integers(1, 7))
    x = draw(arrays(np.float64, (tokens, d), elements=moderate))
    weights = [draw(arrays(np.float64, (d, d), elements=st.floats(-1, 1))) for _ in range(4)]
    return x, weights, heads


def naive_multi_head_attention(x, w_q, w_k, w_v, w_o, heads, causal=False):
    """Multi-head attention written with Python loops and math.exp, one number at a time."""
    tokens, d = x.shape
    d_k = d // heads
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    weights = np.zeros((heads, tokens, tokens))
    concat = np.zeros((tokens, d))
    for h in range(heads):
        cols = slice(h * d_k, (h + 1) * d_k)
        for i in range(tokens):
            keys = range(i + 1) if causal else range(tokens)
            logits = {j: sum(q[i, cols][n] * k[j, cols][n] for n in range(d_k)) / math.sqrt(d_k) for j in keys}
            top = max(logits.values())
            total = sum(math.exp(s - top) for s in logits.values())
            for j, s in logits.items():
                weights[h, i, j] = math.exp(s - top) / total
            for j in keys:
                concat[i, cols] += weights[h, i, j] * v[j, cols]
    return weights, concat @ w_o


def test_softmax_of_the_explainer_example():
    p = softmax(np.array([2.0, 1.0, 0.5]))
    e = [math.exp(2.0), math.exp(1.0), math.exp(0.5)]
    assert_allclose(p, [value / sum(e) for value in e], rtol=1e-15)
    assert_array_equal(np.round(p, 2), [0.63, 0.23, 0.14])


@given(score_rows())
def test_softmax_rows_are_probabilities(x):
    p = softmax(x)
    assert np.all(np.isfinite(p))
    assert np.all(p >= 0)
    assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)


@given(score_rows(moderate), moderate)
def test_softmax_ignores_a_constant_shift(x, shift):
    assert_allclose(softmax(x + shift), softmax(x), atol=1e-12)


def test_softmax_does_not_overflow():
    assert_allclose(softmax(np.array([1000.0, 999.0])), softmax(np.array([1.0, 0.0])))


@given(st.integers(1, 9))
def test_causal_mask_puts_exactly_zero_on_future_keys(n):
    x = np.random.default_rng(n).normal(size=(2, n, n)) * 50
    p = softmax(masked(x, causal_mask(n)))
    assert np.all(p[:, ~causal_mask(n)] == 0.0)
    assert_allclose(p.sum(axis=-1), 1.0)


def test_a_fully_masked_row_is_uniform_not_nan():
    p = softmax(masked(np.array([[3.0, -2.0, 1.0]]), np.zeros((1, 3), dtype=bool)))
    assert_allclose(p, [[1 / 3, 1 / 3, 1 / 3]])


def test_masking_keeps_very_negative_allowed_scores_ahead_of_masked_ones():
    p = softmax(masked(np.array([-1e30, 5.0]), np.array([True, False])))
    assert_array_equal(p, [1.0, 0.0])


@given(layers())
def test_split_then_merge_heads_gives_back_the_input(layer):
    x, _, heads = layer
    assert_array_equal(merge_heads(split_heads(x, heads)), x)
    assert split_heads(x, heads).shape == (heads, x.shape[0], x.shape[1] // heads)


@settings(max_examples=60)
@given(layers(), st.booleans())
def test_vectorised_equals_the_naive_loop(layer, causal):
    x, (w_q, w_k, w_v, w_o), heads = layer
    mask = causal_mask(len(x)) if causal else None
    trace = multi_head_attention(x, Projections(w_q, w_k, w_v, w_o), AttentionOptions(heads), mask)
    weights, output = naive_multi_head_attention(x, w_q, w_k, w_v, w_o, heads, causal)
    assert_allclose(trace.weights, weights, atol=1e-9)
    assert_allclose(trace.output, output, atol=1e-7 * max(1.0, np.abs(output).max()))


@given(layers(), st.booleans())
def test_attention_weight_rows_sum_to_one(layer, causal):
    x, (w_q, w_k, w_v, w_o), heads = layer
    trace = multi_head_attention(
        x, Projections(w_q, w_k, w_v, w_o), AttentionOptions(heads), causal_mask(len(x)) if causal else None
    )
    assert np.all(trace.weights >= 0)
    assert_allclose(trace.weights.sum(axis=-1), 1.0, rtol=1e-12)


@given(layers(heads_choices=(1,)))
def test_one_head_with_identity_output_is_plain_attention(layer):
    x, (w_q, w_k, w_v, _), _ = layer
    trace = multi_head_attention(x, Projections(w_q, w_k, w_v, np.eye(x.shape[1])), AttentionOptions(1))
    assert_allclose(trace.output, attention(x @ w_q, x @ w_k, x @ w_v), atol=1e-12)


@given(layers(), st.randoms(use_true_random=False))
def test_permuting_the_tokens_permutes_the_output(layer, random):
    x, (w_q, w_k, w_v, w_o), heads = layer
    order = list(range(len(x)))
    random.shuffle(order)
    projections = Projections(w_q, w_k, w_v, w_o)
    original = multi_head_attention(x, projections, AttentionOptions(heads))
    permuted = multi_head_attention(x[order], projections, AttentionOptions(heads))
    assert_allclose(permuted.output, original.output[order], atol=1e-9)
    assert_allclose(permuted.weights, original.weights[:, order][:, :, order], atol=1e-12)


def test_trace_steps_follow_from_each_other(rng):
    x = rng.normal(size=(5, 16))
    w_q, w_k, w_v, w_o = rng.normal(size=(4, 16, 16))
    b_q, b_k, b_v, b_o = rng.normal(size=(4, 16))
    trace = multi_head_attention(x, Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o), AttentionOptions(4))
    assert_allclose(trace.q[1], (x @ w_q + b_q)[:, 4:8])
    assert_allclose(trace.scores[2], trace.q[2] @ trace.k[2].T)
    assert_allclose(trace.scaled, trace.scores / 2.0)
    assert_allclose(trace.weights, softmax(trace.scaled))
    assert_allclose(trace.head_outputs[3], trace.weights[3] @ trace.v[3])
    assert_allclose(trace.concat[:, 12:16], trace.head_outputs[3])
    assert_allclose(trace.output, trace.concat @ w_o + b_o)


@given(
    st.integers(1, 9).flatmap(
        lambda n: st.tuples(
            arrays(np.float32, (2, n, n), elements=st.floats(-30, 30, width=32)),
            st.one_of(st.none(), st.integers(1, n)),
            arrays(bool, (n, n)),
        )
    )
)
def test_masked_softmax_is_softmax_of_the_masked_scores_exactly(case):
    x, window, other = case
    for mask in (causal_mask(len(x[0]), window), other):
        assert_array_equal(masked_softmax(x, mask), softmax(masked(x, mask)))


@given(st.integers(1, 12), st.integers(1, 12))
def test_a_sliding_window_shows_each_query_its_last_keys(n, window):
    mask = causal_mask(n, window)
    for i in range(n):
        assert np.flatnonzero(mask[i]).tolist() == list(range(max(0, i - window + 1), i + 1))


@given(st.integers(1, 4).flatmap(lambda g: st.tuples(st.just(g), st.integers(1, 3), st.integers(1, 5))))
def test_grouped_query_attention_is_attention_with_each_key_head_repeated(shape):
    kv_heads, group, tokens = shape
    heads, d_k, rng = kv_heads * group, 4, np.random.default_rng(kv_heads * 100 + group * 10 + tokens)
    d = 8
    x = rng.normal(size=(tokens, d))
    w_q, w_o = rng.normal(size=(d, heads * d_k)), rng.normal(size=(heads * d_k, d))
    w_k, w_v = rng.normal(size=(d, kv_heads * d_k)), rng.normal(size=(d, kv_heads * d_k))
    grouped = multi_head_attention(x, Projections(w_q, w_k, w_v, w_o), AttentionOptions(heads, kv_heads))
    # The same layer with K and V widened: query head h gets key-value head h // group.
    copies = [h // group for h in range(heads)]
    widen = lambda w: np.concatenate([w[:, g * d_k : (g + 1) * d_k] for g in copies], axis=1)  # noqa: E731
    full = multi_head_attention(x, Projections(w_q, widen(w_k), widen(w_v), w_o), AttentionOptions(heads))
    assert_allclose(grouped.weights, full.weights, atol=1e-12)
    assert_allclose(grouped.output, full.output, atol=1e-10)
    assert grouped.key_head(heads - 1) == kv_heads - 1


@pytest.mark.parametrize("theta", [100.0, 500.0, 1e4, 5e5, 1e6, 1.5e5])
@pytest.mark.parametrize("dims", [4, 64, 96, 128, 256])
def test_rope_tables_take_the_correctly_rounded_power_as_torch_does_element_by_element(theta, dims):
    exponents = np.arange(0, dims, 2, dtype=np.float32) / np.float32(dims)
    powers = np.array([math.pow(float(np.float32(theta)), float(e)) for e in exponents]).astype(np.float32)
    assert_array_equal(inverse_frequencies(Rope(theta, dims)), np.float32(1.0) / powers)


@pytest.mark.parametrize("name", DECODERS)
def test_the_fixtures_rope_tables_are_transformers_own_bit_for_bit(name):
    reference = np.load(FIXTURES / name / "reference.npz")["inverse_frequencies"]
    (rope,) = {layer.rope for layer in load_model(str(FIXTURES / name)).info.layer_attention}
    assert_array_equal(inverse_frequencies(rope), reference)


def test_llama3_scaling_keeps_short_wavelengths_divides_long_ones_and_blends_between():
    plain = inverse_frequencies(Rope(theta=500000.0, dims=128))
    scaled = inverse_frequencies(Rope(500000.0, 128, "llama3", 8.0, 1.0, 4.0, 8192))
    wavelength = 2 * np.pi / plain
    short, long = wavelength < 8192 / 4, wavelength > 8192 / 1
    assert_allclose(scaled[short], plain[short])
    assert_allclose(scaled[long], plain[long] / 8, rtol=1e-6)
    middle = ~short & ~long
    assert middle.any() and np.all((scaled[middle] < plain[middle]) & (scaled[middle] > plain[middle] / 8))


@pytest.mark.parametrize("window", [7, 8, 2**62, 2**63 - 1])
def test_a_window_as_long_as_the_text_hides_nothing(window):
    assert_array_equal(causal_mask(7, window), causal_mask(7))


def test_rotate_every_two_turns_each_adjacent_pair_a_quarter():
    assert_array_equal(rotate_every_two(np.array([1.0, 2.0, 3.0, 4.0])), [-2.0, 1.0, -4.0, 3.0])


@st.composite
def rotations(draw):
    """A [heads, T, d_k] array and a Rope turning an even number n <= d_k of its dimensions."""
    d_k = draw(st.integers(1, 5)) * 2
    dims = draw(st.integers(1, d_k // 2)) * 2
    x = draw(arrays(np.float32, (draw(st.integers(1, 3)), draw(st.integers(1, 9)), d_k), elements=moderate))
    return x, Rope(draw(st.sampled_from([10.0, 1e4, 5e5])), dims)


@given(rotations())
def test_adjacent_pairs_turn_as_the_halves_do_once_the_dimensions_are_interleaved(case):
    """RoPE on pairs (2i, 2i + 1), as GPT-J and Cohere turn them, is RoPE on pairs (i, i + n/2), as
    Llama's are, with dimension 2i moved to i and 2i + 1 to i + n/2: the same angles, the same numbers."""
    x, halves = case
    adjacent = Rope(halves.theta, halves.dims, pairing="adjacent")
    tokens, n = x.shape[1], halves.dims
    interleaved = np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2), np.arange(n, x.shape[-1])])
    turned = rotate(x, rotary(tokens, adjacent))
    assert_array_equal(turned[..., interleaved], rotate(x[..., interleaved], rotary(tokens, halves)))


@given(rotations())
def test_adjacent_rope_keeps_each_pairs_length_and_leaves_the_rest(case):
    x, rope = case
    x = x.astype(np.float64)
    turned = rotate(x, rotary(x.shape[1], Rope(rope.theta, rope.dims, pairing="adjacent")))
    pairs = lambda y: y[..., : rope.dims].reshape(*y.shape[:-1], -1, 2)  # noqa: E731
    assert_allclose(np.linalg.norm(pairs(turned), axis=-1), np.linalg.norm(pairs(x), axis=-1), atol=1e-5)
    assert_array_equal(turned[..., rope.dims :], x[..., rope.dims :])
    assert_array_equal(turned[:, 0], x[:, 0])  # position 0 turns by nothing


def test_a_rope_says_its_pairing_only_where_it_is_not_llamas():
    assert "pairing" not in Rope(1e4, 8).to_json()
    assert Rope(1e4, 8, pairing="adjacent").to_json()["pairing"] == "adjacent"


@given(arrays(np.float64, (3, 4, 6), elements=moderate))
def test_a_head_layer_norm_with_gains_per_head_normalises_each_head_with_its_own(x):
    gains = np.random.default_rng(0).normal(1.0, 0.3, size=(3, 1, 6))
    options = AttentionOptions(3, norm_eps=1e-6, norm="layer")
    normed = head_norm(x, gains, None, options)
    for head in range(3):
        assert_allclose(normed[head], layer_norm(x[head], gains[head, 0], None, 1e-6), atol=1e-12)
    unit = head_norm(x, np.ones(6), np.zeros(6), options)  # [3, 4, 6]: each row centred, its variance 1 or 0
    assert_allclose(unit.mean(axis=-1), 0.0, atol=1e-9)
    spread = x.std(axis=-1) > 0.1  # where eps is under a ten-thousandth of the variance
    assert_allclose(unit.var(axis=-1)[spread], 1.0, rtol=1e-3)
