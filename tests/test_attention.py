"""attention.py: the attention math and RoPE: known values, random properties, naive and reference tables."""

import math

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
    UNROTATED,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli.attention import (
    Alibi,
    AttentionOptions,
    Projections,
    Rope,
    alibi_biases,
    alibi_slopes,
    attend,
    attention,
    bfloat16,
    causal_mask,
    inverse_frequencies,
    masked,
    masked_softmax,
    merge_heads,
    multi_head_attention,
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


@pytest.mark.parametrize("name", [name for name in DECODERS if name not in UNROTATED])
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


@given(st.integers(1, 300))
def test_alibi_slopes_are_geometric_then_the_odd_terms_of_the_next_power_of_two(heads):
    slopes = alibi_slopes(heads)
    n = 2 ** math.floor(math.log2(heads))  # the largest power of two up to the head count
    assert slopes.dtype == np.float32 and slopes.shape == (heads,)
    assert np.all((slopes > 0) & (slopes < 1)) and len(set(slopes.tolist())) == heads
    assert_allclose(slopes[1:n] / slopes[: n - 1], slopes[0], rtol=1e-6)  # 2^(-8/n), 2^(-16/n) ...
    assert_allclose(slopes[n - 1], 2.0**-8, rtol=n * 2**-24)  # ... 2^(-8), to the base's float32 rounding
    assert_array_equal(slopes[:n], alibi_slopes(n))
    assert_array_equal(slopes[n:], alibi_slopes(2 * n)[0::2][: heads - n])


def test_alibi_slopes_are_transformers_own():
    # transformers' BLOOM slopes for 20 heads: 16 from the base 2^(-1/2), then 4 odd powers of 2^(-1/4)
    bloom = [0.7071067690849304, 0.4999999701976776, 0.3535533845424652, 0.2499999850988388, 0.1767766773700714]
    assert_array_equal(alibi_slopes(20)[:5], np.float32(bloom))
    assert_array_equal(
        alibi_slopes(20)[16:],
        np.float32([0.8408964276313782, 0.5946035981178284, 0.4204482436180115, 0.2973017990589142]),
    )
    assert_array_equal(alibi_slopes(3), np.float32([2**-4, 2**-8, 2**-2]))


def test_falcons_alibi_biases_are_rounded_to_bfloat16_as_transformers_rounds_them():
    # transformers' Falcon biases of 5 heads with 64-dimensional heads, for keys 255 to 262 (bfloat16 has 8 bits:
    # 257 is 256 and 259 is 260), divided by √64
    falcon = [
        [7.96875, 8.0, 8.0, 8.0625, 8.125, 8.125, 8.125, 8.1875],
        [15.9375, 16.0, 16.0, 16.125, 16.25, 16.25, 16.25, 16.375],
    ]
    biases = alibi_biases(Alibi(bfloat16=True, scaled=True), heads=5, tokens=263, d_k=64)
    assert_array_equal(biases[[0, 4], 255:], np.float32(falcon))
    assert_array_equal(
        alibi_biases(Alibi(), heads=5, tokens=263, d_k=64)[0, 255:], np.float32(0.25) * np.arange(255, 263)
    )


BIG = float(np.float32(1e38))  # far enough below float32's largest that bfloat16 rounds it to a finite value


@given(arrays(np.float32, st.integers(0, 40), elements=st.floats(-BIG, BIG, width=32)))
def test_bfloat16_rounds_to_the_nearest_of_its_values_ties_to_even(x):
    rounded = bfloat16(x)
    assert not np.any(rounded.view(np.uint32) & 0xFFFF)  # 8 bits of significand: the low 16 of float32's are 0
    assert_array_equal(bfloat16(rounded), rounded)
    spacing = np.spacing(np.abs(rounded)) * 2**16  # bfloat16's step at each value
    assert np.all(np.abs(rounded.astype(np.float64) - x) <= spacing.astype(np.float64) / 2)
    assert_array_equal(bfloat16(np.float32([257, 259, 1 + 2**-8, -(1 + 3 * 2**-8)])), [256, 260, 1, -(1 + 2**-6)])


@settings(deadline=None)
@given(st.integers(1, 8), st.integers(1, 12), st.booleans())
def test_with_alibi_alone_each_key_back_weighs_e_to_the_slope_less(heads, tokens, scaled):
    """Scores of 0 everywhere (q = 0): the weights are ALiBi's alone, falling by e^m (e^(m/√d_k)) a key back."""
    x = np.random.default_rng(tokens).normal(size=(tokens, 2 * heads))
    zero, w = np.zeros((2 * heads, 2 * heads)), np.eye(2 * heads)
    alibi = Alibi(scaled=scaled)
    trace = multi_head_attention(
        x, Projections(zero, w, w, w), AttentionOptions(heads, alibi=alibi), causal_mask(tokens)
    )
    step = alibi_slopes(heads).astype(np.float64) / (math.sqrt(2) if scaled else 1)  # [h]
    for i in range(1, tokens):
        ratio = trace.weights[:, i, 1 : i + 1] / trace.weights[:, i, :i]  # [h, i] each key against the one before
        assert_allclose(ratio, np.exp(step)[:, None] * np.ones(i), rtol=1e-6)  # float32 biases
    assert_array_equal(trace.alibi, alibi_biases(alibi, heads, tokens, 2))


@given(st.integers(1, 4), st.integers(1, 9), st.randoms(use_true_random=False))
def test_alibi_as_each_rows_distance_gives_the_weights_of_the_biases_added_as_they_are(heads, tokens, random):
    """attend adds B_j - B_i to query i's scores; transformers adds B_j: the same weights, a row's constant apart."""
    rng = np.random.default_rng(random.randrange(2**32))
    q, k, v = (rng.normal(size=(heads, tokens, 4)) for _ in range(3))
    biases = alibi_biases(Alibi(), heads, tokens, 4).astype(np.float64)  # [h, T]
    mask = causal_mask(tokens)
    _, scaled, weights, _ = attend(q, k, v, AttentionOptions(heads), mask, biases=biases)
    expected = softmax(masked(q @ k.transpose(0, 2, 1) / 2 + biases[:, None, :], mask))
    assert_allclose(weights, expected, atol=1e-12)
    assert_allclose(np.diagonal(scaled, axis1=1, axis2=2), np.einsum("htd,htd->ht", q, k) / 2)  # B_i - B_i
