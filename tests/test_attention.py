"""attention.py: the attention math and RoPE: known values, random properties, naive and reference tables."""

import math

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
    UNROTATED,
    references,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli.attention import (
    Alibi,
    AttentionOptions,
    Disentangled,
    Projections,
    Relative,
    RelativeBias,
    Rope,
    alibi_biases,
    alibi_slopes,
    attend,
    attention,
    attention_mask,
    bfloat16,
    c2p,
    causal_mask,
    clipped,
    disentangled_heads,
    dynamic_theta,
    head_norm,
    heads_attention,
    inverse_frequencies,
    layer_norm,
    log_buckets,
    masked,
    masked_softmax,
    merge_heads,
    multi_head_attention,
    p2c,
    per_head,
    relative_position_bias,
    relative_position_buckets,
    relative_positions,
    relative_rows,
    rotary,
    rotate,
    rotate_every_two,
    softmax,
    split_heads,
    symmetric_window_mask,
    value_norms,
    weighted_value_norms,
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


@given(st.integers(1, 40), st.one_of(st.integers(1, 90), st.integers(2**61, 2**63 - 1)))
def test_a_symmetric_window_shows_each_query_the_keys_within_half_of_it_on_either_side(n, window):
    mask = symmetric_window_mask(n, window)
    reach = window // 2
    assert_array_equal(mask, mask.T)  # j sees i wherever i sees j
    assert mask.diagonal().all()  # every query sees itself, whatever the window
    for i in range(n):
        assert np.flatnonzero(mask[i]).tolist() == list(range(max(0, i - reach), min(n, i + reach + 1)))
    assert mask.sum(axis=1).max() == min(n, 2 * reach + 1)  # no row sees more than the window's keys
    if reach >= n - 1:
        assert mask.all()  # a window as long as the text hides nothing


@given(st.integers(1, 12), st.one_of(st.none(), st.integers(1, 12)))
def test_the_attention_mask_is_causal_symmetric_or_none(n, window):
    assert_array_equal(attention_mask(n, window, causal=True), causal_mask(n, window))
    if window is None:
        assert attention_mask(n, None, causal=False) is None  # every key, no mask to apply
    else:
        assert_array_equal(attention_mask(n, window, causal=False), symmetric_window_mask(n, window))


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


@pytest.mark.parametrize(
    "name", [name for name in DECODERS if name not in UNROTATED] + ["modernbert", "modernbert-biases"]
)
def test_the_fixtures_rope_tables_are_transformers_own_bit_for_bit(name):
    """Every layer's table is transformers' one for each text (dynamic and longrope choose it by the text's
    length), or, where its layer types turn by RoPEs of their own (Gemma 3), its layer type's; and the
    attention factor yarn and longrope multiply cos and sin by."""
    reference = np.load(FIXTURES / name / "reference.npz")
    texts = references(name)
    for layer in load_model(str(FIXTURES / name)).info.layer_attention:
        if layer.rope is None:  # a layer without RoPE (SmolLM3's)
            continue
        kind = "_sliding_attention" if layer.window else "_full_attention"
        table = reference[f"inverse_frequencies{kind if f'inverse_frequencies{kind}' in reference else ''}"]
        for i, case in enumerate(texts):
            assert_array_equal(
                inverse_frequencies(layer.rope, len(case.ids)), reference.get(f"inverse_frequencies_{i}", table)
            )
        assert layer.rope.attention_factor == reference.get("attention_factor", 1.0)


def test_llama3_scaling_keeps_short_wavelengths_divides_long_ones_and_blends_between():
    plain = inverse_frequencies(Rope(theta=500000.0, dims=128))
    scaled = inverse_frequencies(Rope(500000.0, 128, "llama3", 8.0, 1.0, 4.0, 8192))
    wavelength = 2 * np.pi / plain
    short, long = wavelength < 8192 / 4, wavelength > 8192 / 1
    assert_allclose(scaled[short], plain[short])
    assert_allclose(scaled[long], plain[long] / 8, rtol=1e-6)
    middle = ~short & ~long
    assert middle.any() and np.all((scaled[middle] < plain[middle]) & (scaled[middle] > plain[middle] / 8))


scaled_ropes = st.builds(
    lambda theta, half, factor, context: (theta, 2 * half, factor, context),
    st.floats(100.0, 1e7),
    st.integers(2, 128),
    st.floats(1.5, 64.0),
    st.integers(16, 2**20),
)


@given(scaled_ropes, st.floats(4.0, 64.0), st.floats(0.25, 2.0), st.booleans())
def test_yarn_keeps_fast_pairs_divides_slow_ones_and_ramps_between(shape, fast, slow, truncate):
    theta, dims, factor, context = shape
    plain = inverse_frequencies(Rope(theta, dims))
    turns = context * plain.astype(np.float64) / (2 * math.pi)  # [n/2] each pair's turns over the context
    # Else transformers' ramp runs backwards: every pair divided (all turn fast) or kept (all turn slowly).
    assume(turns[-1] < fast and turns[0] > slow * 1.001)
    rope = Rope(
        theta, dims, "yarn", factor, original_max_positions=context, beta_fast=fast, beta_slow=slow, truncate=truncate
    )
    scaled = inverse_frequencies(rope)
    quick, slow_pairs = turns >= fast * 1.001, turns <= slow / 1.001
    assert_array_equal(scaled[quick], plain[quick])
    assert_allclose(scaled[slow_pairs], plain[slow_pairs] / factor, rtol=1e-6)
    ratio = plain / scaled  # 1 (kept) rising to the factor (divided) along the ramp
    assert np.all(ratio >= 1 - 1e-6) and np.all(ratio <= factor * (1 + 1e-6))
    assert np.all(np.diff(ratio) >= -1e-5 * factor)


@given(scaled_ropes, st.integers(1, 4096), st.integers(1, 4096))
def test_dynamic_ntk_raises_theta_the_more_the_longer_a_text_outruns_the_context(shape, longer, further):
    theta, dims, factor, context = shape
    rope = Rope(theta, dims, "dynamic", factor, original_max_positions=context)
    within = inverse_frequencies(rope, context)
    assert_allclose(within, inverse_frequencies(Rope(theta, dims)), rtol=1e-6)  # within the context: θ as it is
    assert_array_equal(inverse_frequencies(rope, 1), within)
    beyond, further_beyond = (inverse_frequencies(rope, context + n) for n in (longer, longer + further))
    assert beyond[0] == further_beyond[0] == 1  # θ⁰: the first pair turns once a position whatever θ
    assert np.all(further_beyond <= beyond) and np.all(beyond <= within * (1 + 1e-6))
    assert dynamic_theta(rope, context + longer + further) >= dynamic_theta(rope, context + longer)


@given(scaled_ropes, st.integers(0, 2**32 - 1))
def test_longrope_divides_by_the_short_factors_within_the_context_and_the_long_ones_beyond(shape, seed):
    theta, dims, _, context = shape
    short, long = np.random.default_rng(seed).uniform(1.0, 64.0, size=(2, dims // 2))
    rope = Rope(
        theta, dims, "longrope", original_max_positions=context, short_factor=tuple(short), long_factor=tuple(long)
    )
    plain = inverse_frequencies(Rope(theta, dims))
    assert_allclose(inverse_frequencies(rope, context), plain / short, rtol=1e-6)
    assert_allclose(inverse_frequencies(rope, context + 1), plain / long, rtol=1e-6)
    assert not rope.beyond_context(context) and rope.beyond_context(context + 1)


@given(
    st.integers(1, 12),
    st.integers(1, 16).map(lambda half: 2 * half),
    st.floats(0.5, 2.0),
    st.integers(0, 2**32 - 1),
)
def test_rope_turns_each_pair_and_scales_its_length_by_the_attention_factor(tokens, dims, factor, seed):
    rope = Rope(100.0, dims, "yarn", 2.0, original_max_positions=8, attention_factor=factor)
    x = np.random.default_rng(seed).normal(size=(2, tokens, dims)).astype(np.float32)  # [h, T, n]
    turned = rotate(x, rotary(tokens, rope))
    half = dims // 2
    lengths = np.hypot(x[..., :half], x[..., half:]), np.hypot(turned[..., :half], turned[..., half:])
    assert_allclose(lengths[1], np.float32(factor) * lengths[0], rtol=1e-5, atol=1e-6)


@given(st.integers(1, 12), st.integers(1, 16).map(lambda half: 2 * half), st.integers(0, 2**32 - 1))
def test_rope_by_rotate_half_is_gpt_oss_rotation_of_the_halves_to_the_bit(tokens, dims, seed):
    """GPT-OSS turns the halves (x1, x2) as (x1·cos - x2·sin, x2·cos + x1·sin) with cos and sin of the n/2
    angles once (its _apply_rotary_emb); x·cos + rotate_half(x)·sin, cos and sin twice over, is the same
    arithmetic: the same numbers, bit for bit."""
    turn = rotary(tokens, Rope(150000.0, dims, "yarn", 32.0, original_max_positions=4096, truncate=False))
    x = np.random.default_rng(seed).normal(size=(2, tokens, dims)).astype(np.float32)  # [h, T, n]
    half = dims // 2
    cos, sin, first, second = turn.cos[:, :half], turn.sin[:, :half], x[..., :half], x[..., half:]
    halves = np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    assert_array_equal(rotate(x, turn), halves)


@pytest.mark.parametrize("window", [7, 8, 2**62, 2**63 - 1])
def test_a_window_as_long_as_the_text_hides_nothing(window):
    assert_array_equal(causal_mask(7, window), causal_mask(7))


@given(
    st.integers(1, 9).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, (2, n, n), elements=st.floats(-30, 30)),
            arrays(np.float64, (2, 1, 1), elements=st.floats(-30, 30)),
            st.one_of(st.none(), st.integers(1, n)),
        )
    )
)
def test_a_sink_is_one_more_logit_in_each_row_whose_share_is_dropped(case):
    x, sinks, window = case
    n = x.shape[-1]
    mask = causal_mask(n, window)
    with_sink = np.concatenate([masked(x, mask), np.broadcast_to(sinks, (2, n, 1))], axis=-1)
    expected = softmax(with_sink)[..., :n] * mask  # the masked keys' shares are exactly 0
    weights = masked_softmax(x, mask, sinks=sinks)
    assert_allclose(weights, expected, rtol=1e-12, atol=1e-300)
    assert np.all(weights.sum(axis=-1) <= 1 + 1e-12)
    assert_allclose(masked_softmax(x, None, sinks=sinks), softmax(np.concatenate([x, with_sink[..., n:]], -1))[..., :n])


def test_a_row_with_no_key_gives_everything_to_the_sink():
    weights = masked_softmax(np.array([[[3.0, -2.0]] * 2]), np.zeros((2, 2), dtype=bool), sinks=np.array([[[0.5]]]))
    assert_array_equal(weights, np.zeros((1, 2, 2)))


@given(score_rows(moderate), st.floats(0.01, 20))
def test_clamping_bounds_every_value_and_leaves_those_inside_alone(x, bound):
    y = clipped(x, bound)
    assert np.all(np.abs(y) <= bound)
    inside = np.abs(x) <= bound
    assert_array_equal(y[inside], x[inside])
    assert_array_equal(np.sign(y[~inside]) * bound, y[~inside])
    assert_array_equal(clipped(y, bound), y)


@st.composite
def projected(draw):
    """Projected q [T, h·d_k], k and v [T, g·d_k] of a grouped-query layer, and its h, g and d_k."""
    kv_heads = draw(st.integers(1, 3))
    heads, d_k, tokens = kv_heads * draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(1, 5))
    q = draw(arrays(np.float64, (tokens, heads * d_k), elements=moderate))
    k, v = (draw(arrays(np.float64, (tokens, kv_heads * d_k), elements=moderate)) for _ in range(2))
    return q, k, v, heads, kv_heads, d_k


def whole_normed(q, k, v, heads, kv_heads, d_k, clip=None):
    """per_head with unit gains over the whole projections (OLMo 2's norms), and clamping where `clip` says."""
    gains = Projections(None, None, None, None, whole_q_norm=np.ones(heads * d_k), whole_k_norm=np.ones(kv_heads * d_k))
    return per_head(q, k, v, gains, AttentionOptions(heads, kv_heads, norm_eps=1e-6, clip_qkv=clip))


@given(projected())
def test_a_norm_over_the_whole_projection_gives_each_token_one_root_mean_square_over_all_its_heads(case):
    q, k, v, heads, kv_heads, d_k = case
    normed_q, normed_k, normed_v = whole_normed(q, k, v, heads, kv_heads, d_k)
    for before, after in ((q, normed_q), (k, normed_k)):
        together = merge_heads(after)  # [T, h·d_k] the heads side by side again
        square = np.mean(np.square(before), axis=-1, keepdims=True)  # [T, 1] over the whole projection
        assert_allclose(together * np.sqrt(square + 1e-6), before, atol=1e-9)  # every head ÷ its token's one RMS
        large = square[:, 0] > 1e-2
        assert_allclose(np.mean(np.square(together[large]), axis=-1), 1.0, rtol=1e-3)
    assert_array_equal(merge_heads(normed_v), v)  # v is never normed


@given(projected(), st.floats(0.1, 3))
def test_clamping_comes_after_the_whole_projection_norms(case, bound):
    """As OLMoE orders them: q and k are normed over their whole projections, then q, k and v clamped."""
    q, k, v, heads, kv_heads, d_k = case
    normed = whole_normed(q, k, v, heads, kv_heads, d_k)
    both = whole_normed(q, k, v, heads, kv_heads, d_k, clip=bound)
    for unclamped, clamped in zip(normed, both, strict=True):
        assert_array_equal(clamped, clipped(unclamped, bound))


def test_the_heads_keep_their_projections_as_they_were_only_where_clamping_or_whole_norms_change_them():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(5, 8)), rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    bare = Projections(None, None, None, None)
    plain = heads_attention(q, k, v, bare, AttentionOptions(2, 1))
    assert plain.projected is None
    options = AttentionOptions(2, 1, clip_qkv=0.5)
    kept = heads_attention(q, k, v, bare, options)
    assert all(part is given for part, given in zip(kept.projected, (q, k, v), strict=True))
    assert np.abs(kept.q).max() <= 0.5 and np.abs(q).max() > 0.5
    assert heads_attention(q, k, v, bare, options, steps=False).projected is None


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


# Log buckets: buckets, and a max_relative far enough past buckets / 2 that the buckets are at most the distance.
bucketing = st.integers(1, 64).flatmap(lambda m: st.tuples(st.just(2 * m), st.integers(3 * m + 1, 4096)))


@given(bucketing, st.integers(0, 10_000))
def test_log_buckets_are_odd_the_identity_near_zero_monotone_and_bounded(setting, distance):
    buckets, max_relative = setting
    m = buckets // 2
    delta = np.arange(-distance, distance + 1)  # [2n + 1]
    bucket = log_buckets(delta, buckets, max_relative)
    assert_array_equal(bucket, -bucket[::-1])  # odd: -δ's bucket is minus δ's
    near = np.abs(delta) <= m
    assert_array_equal(bucket[near], delta[near])  # the identity up to ±buckets/2
    assert np.all(np.diff(bucket) >= 0)  # monotone
    assert np.all(np.abs(bucket) <= np.abs(delta))  # never farther than the distance itself
    within = np.abs(delta) < max_relative  # bucket 2m - 1 at max_relative - 1, never past it before
    assert np.all(np.abs(bucket[within]) <= buckets - 1)
    if distance >= max_relative - 1:
        assert log_buckets(np.array([max_relative - 1]), buckets, max_relative)[0] == buckets - 1


def test_log_buckets_are_transformers_own_for_deberta_v3s_table():
    """make_log_bucket_position(δ, 256, 512) in transformers 5.25, as published DeBERTa-v3 checkpoints set it."""
    delta = np.array([0, 1, 127, 128, 129, 130, 200, 255, 256, 300, 511, 512, 600, 1000, 4000, -129, -511, -512, -4000])
    buckets = [0, 1, 127, 128, 129, 130, 169, 192, 192, 207, 255, 256, 270, 317, 444, -129, -255, -256, -444]
    assert log_buckets(delta, 256, 512).tolist() == buckets


@given(st.integers(1, 40), st.sampled_from([(0, 64), (4, 16), (8, 512)]))
def test_relative_positions_are_each_querys_distance_to_each_key_bucketed(tokens, setting):
    buckets, max_relative = setting
    disentangled = Disentangled(True, True, buckets or max_relative, buckets, max_relative)
    delta = relative_positions(tokens, disentangled)  # [T, T]
    i, j = np.indices((tokens, tokens))
    expected = i - j if buckets == 0 else log_buckets(i - j, buckets, max_relative)
    assert_array_equal(delta, expected)
    assert_array_equal(delta, -delta.T)


def test_relative_positions_are_transformers_own_in_small_buckets():
    """build_relative_position(7 tokens, bucket_size 4, max_position 16) in transformers 5.25."""
    first, last = relative_positions(7, Disentangled(True, True, 4, 4, 16))[[0, -1]]
    assert first.tolist() == [0, -1, -2, -3, -3, -3, -3] and last.tolist() == [3, 3, 3, 3, 2, 1, 0]


@given(st.integers(1, 30), st.integers(1, 12))
def test_the_rows_read_are_each_distance_clipped_to_the_table_and_no_others(tokens, span):
    delta = relative_positions(tokens, Disentangled(True, True, span, 0, span))
    rows, c2p_rows, p2c_rows = relative_rows(delta, span)
    assert_array_equal(rows[c2p_rows], np.clip(delta + span, 0, 2 * span - 1))
    assert_array_equal(rows[p2c_rows], np.clip(-delta + span, 0, 2 * span - 1))
    assert np.all(np.diff(rows) > 0) and len(rows) <= min(2 * tokens - 1, 2 * span)
    assert set(rows.tolist()) == set(np.clip(delta + span, 0, 2 * span - 1).ravel().tolist())


@st.composite
def disentangled_cases(draw):
    """A small random head set, its table of relative positions and the text's δ: (q, k, the table's
    positional keys and queries [h, 2k, d_k], δ [T, T], k)."""
    heads, tokens, d_k, span = (draw(st.integers(1, n)) for n in (3, 9, 5, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, k = rng.normal(size=(2, heads, tokens, d_k))
    k_r, q_r = rng.normal(size=(2, heads, 2 * span, d_k))
    delta = relative_positions(tokens, Disentangled(True, True, span, 0, span))
    return q, k, k_r, q_r, delta, span


@given(disentangled_cases())
def test_c2p_and_p2c_are_the_papers_terms_written_out(case):
    """c2p[i, j] = q_i · k_r[δ(i, j)] and p2c[i, j] = k_j · q_r[δ(j, i)] negated, δ clipped to the table:
    -δ(j, i) + k is the row transformers reads for query i and key j."""
    q, k, k_r, q_r, delta, span = case
    rows, c2p_rows, p2c_rows = relative_rows(delta, span)
    content_position = c2p(q, k_r[:, rows], c2p_rows)
    position_content = p2c(k, q_r[:, rows], p2c_rows)
    heads, tokens, _ = q.shape
    for h in range(heads):
        for i in range(tokens):
            for j in range(tokens):
                read = min(max(delta[i, j] + span, 0), 2 * span - 1)
                assert math.isclose(content_position[h, i, j], q[h, i] @ k_r[h, read], abs_tol=1e-12)
                read = min(max(-delta[j, i] + span, 0), 2 * span - 1)
                assert math.isclose(position_content[h, i, j], k[h, j] @ q_r[h, read], abs_tol=1e-12)


@given(disentangled_cases(), st.sampled_from([(True, True), (True, False), (False, True), (False, False)]))
def test_disentangled_scores_sum_their_terms_over_the_root_of_d_k_times_their_count(case, terms):
    q, k, _, _, delta, span = case
    heads, tokens, d_k = q.shape
    rng = np.random.default_rng(0)
    d = heads * d_k
    table = rng.normal(size=(2 * span, d)).astype(np.float32)
    w_pos_q, w_pos_k = rng.normal(size=(2, d, d)).astype(np.float32)
    disentangled = Disentangled(*terms, span, 0, span)
    options = AttentionOptions(heads, disentangled=disentangled)
    zeros = np.zeros((d, d), np.float32)
    projections = Projections(zeros, zeros, zeros, zeros, w_pos_q=w_pos_q, w_pos_k=w_pos_k)
    rows, c2p_rows, p2c_rows = relative_rows(delta, span)
    relative = Relative(np.clip(delta, -span, span - 1), rows, c2p_rows, p2c_rows, table[rows])
    flat = [part.astype(np.float32).transpose(1, 0, 2).reshape(tokens, d) for part in (q, k, k)]
    trace = disentangled_heads(*flat, projections, options, relative)
    positional_keys, positional_queries = (split_heads(table @ w, heads) for w in (w_pos_k, w_pos_q))
    expected = trace.scores.astype(np.float64)
    if terms[0]:
        expected += c2p(trace.q, positional_keys[:, rows], c2p_rows)
    if terms[1]:
        expected += p2c(trace.k, positional_queries[:, rows], p2c_rows)
    scale = math.sqrt(d_k * (1 + sum(terms)))
    assert_allclose(trace.scaled, expected / scale, rtol=1e-4, atol=1e-4)
    assert (trace.c2p is not None, trace.p2c is not None) == terms
    assert_allclose(trace.weights.sum(axis=-1), 1, rtol=1e-6)
    assert disentangled.scale(d_k) == np.sqrt(np.float32(d_k * disentangled.terms))  # float32, as transformers


# The first distance of each of buckets 8 to 15 of MPNet's relative position bias (32 buckets up to a distance of
# 128), as transformers' MPNetEncoder.relative_position_bucket computes them: the distances 0 to 7 have a bucket each.
MPNET_BUCKET_STARTS = [8, 12, 16, 23, 32, 46, 64, 91]


def test_relative_position_buckets_are_the_ones_transformers_computes():
    buckets = relative_position_buckets(600, RelativeBias())  # [T, T]
    distance = np.arange(600)
    expected = np.where(distance < 8, distance, 7 + np.searchsorted(MPNET_BUCKET_STARTS, distance, side="right"))
    assert_array_equal(buckets[:, 0], expected)  # keys before the query (and itself): buckets 0 to 15
    assert_array_equal(buckets[0, 1:], expected[1:] + 16)  # keys after it: buckets 16 to 31


@given(
    st.integers(1, 300),
    st.sampled_from([4, 8, 16, 32, 64]),
    st.integers(2, 400),
)
def test_relative_position_buckets_are_symmetric_monotone_and_within_range(tokens, count, far):
    """A key j's bucket for query i depends on j - i alone: the same for i - j but in the other half of the
    buckets, never fewer as the distance grows, the exact distance below a quarter of the buckets, the last
    bucket of a half from max_distance on."""
    half = count // 2
    exact = half // 2
    bias = RelativeBias(count, max(far, 2 * exact))
    buckets = relative_position_buckets(tokens, bias)  # [T, T]
    assert buckets.min() >= 0 and buckets.max() < count
    offsets = np.subtract.outer(np.arange(tokens), np.arange(tokens))  # i - j
    per_distance = buckets[:, 0]  # [T] the bucket of each distance back
    assert_array_equal(
        buckets, np.where(offsets >= 0, per_distance[np.abs(offsets)], per_distance[np.abs(offsets)] + half)
    )
    assert np.all(np.diff(per_distance) >= 0) and per_distance.max() < half
    near = np.arange(min(exact, tokens))
    assert_array_equal(per_distance[near], near)
    assert np.all(per_distance[bias.max_distance :] == half - 1)


@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_the_relative_position_bias_is_each_heads_number_for_its_bucket(tokens, heads, seed):
    table = np.random.default_rng(seed).normal(size=(32, heads)).astype(np.float32)  # [buckets, h]
    buckets = relative_position_buckets(tokens, RelativeBias())
    bias = relative_position_bias(table, buckets)  # [h, T, T]
    assert bias.shape == (heads, tokens, tokens) and bias.dtype == np.float32 and bias.flags.c_contiguous
    i, j, h = (np.random.default_rng(seed).integers(0, n, 20) for n in (tokens, tokens, heads))
    assert_array_equal(bias[h, i, j], table[buckets[i, j], h])


def test_a_position_bias_is_added_to_every_heads_scaled_scores():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 2, 5, 4)).astype(np.float32)  # [h, T, d_k] each
    bias = rng.normal(size=(2, 5, 5)).astype(np.float32)  # [h, T, T]
    options = AttentionOptions(heads=2)
    raw, scaled_scores, weights, _ = attend(q, k, v, options, position_bias=bias)
    assert_allclose(scaled_scores, raw / 2 + bias, rtol=1e-6)
    assert_allclose(weights, softmax(raw / 2 + bias), rtol=1e-5)


@st.composite
def value_layers(draw):
    """Random grouped-query values v [g, T, d_k], an output projection W_O [h·d_k, d] and causal weights α
    [h, T, T] (rows of a softmax, exactly 0 above the diagonal)."""
    kv_heads, group, tokens, d_k, d = (draw(st.integers(1, n)) for n in (3, 3, 6, 4, 9))
    heads = kv_heads * group
    v = draw(arrays(np.float64, (kv_heads, tokens, d_k), elements=moderate))
    w_o = draw(arrays(np.float64, (heads * d_k, d), elements=st.floats(-2, 2)))
    scores = draw(arrays(np.float64, (heads, tokens, tokens), elements=moderate))
    return v, w_o, heads, masked_softmax(scores, causal_mask(tokens))


@given(value_layers())
def test_value_norms_are_the_lengths_of_each_value_through_its_heads_rows_of_w_o(layer):
    """‖v_j W_O^h‖ written out, head by head: the value of the head's key-value head, times the d_k rows of
    W_O that the head's outputs multiply."""
    v, w_o, heads, _ = layer
    kv_heads, tokens, d_k = v.shape
    naive = np.array(
        [
            [np.linalg.norm(v[h * kv_heads // heads, j] @ w_o[h * d_k : (h + 1) * d_k]) for j in range(tokens)]
            for h in range(heads)
        ]
    )
    assert_allclose(value_norms(v, w_o, heads), naive, rtol=1e-9, atol=1e-9)


@given(value_layers())
def test_norms_are_never_negative_and_zero_where_the_weight_is(layer):
    v, w_o, heads, weights = layer
    norms = weighted_value_norms(weights, value_norms(v, w_o, heads))  # [h, T, T]
    assert np.all(norms >= 0)
    later = ~causal_mask(weights.shape[-1])  # [T, T] the keys the causal mask hides
    assert np.all(weights[:, later] == 0) and np.all(np.signbit(norms[:, later]) == 0)  # 0, not -0.0
    assert_array_equal(norms[weights == 0], 0.0)


@given(value_layers(), st.floats(-5, 5).filter(lambda c: abs(c) > 1e-3))
def test_scaling_w_o_by_c_scales_the_norms_by_the_size_of_c(layer, c):
    v, w_o, heads, weights = layer
    norms = weighted_value_norms(weights, value_norms(v, w_o, heads))
    assert_allclose(weighted_value_norms(weights, value_norms(v, c * w_o, heads)), abs(c) * norms, rtol=1e-9, atol=1e-9)


@given(layers(heads_choices=(1,)))
def test_one_head_s_norms_are_its_weights_times_the_length_of_each_value_through_w_o(layer):
    """A one-head layer: ‖α_ij v_j W_O‖ = α_ij ‖v_j W_O‖, and the head's output at query i is Σ_j of the
    vectors whose lengths these are (by the triangle inequality, its length at most their sum)."""
    x, (w_q, w_k, w_v, w_o), heads = layer
    trace = multi_head_attention(x, Projections(w_q, w_k, w_v, w_o), AttentionOptions(heads))
    contributions = trace.weights[0][:, :, None] * (x @ w_v @ w_o)[None]  # [T, T, d] α_ij v_j W_O
    norms = weighted_value_norms(trace.weights, value_norms(trace.v, w_o, heads))[0]  # [T, T]
    assert_allclose(norms, np.linalg.norm(contributions, axis=-1), rtol=1e-9, atol=1e-9)
    assert np.all(np.linalg.norm(trace.output, axis=-1) <= norms.sum(axis=-1) + 1e-9)


def test_a_norm_is_written_into_the_array_given():
    weights, norms = np.full((2, 3, 3), 0.5), np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = weighted_value_norms(weights, norms, out=weights)
    assert out is weights
    assert_array_equal(weights[1, 2], [2.0, 2.5, 3.0])
