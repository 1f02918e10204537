"""analysis.py: head statistics, patterns, rollout, block means, alignment on attention whose answers are known."""

import math
import tracemalloc
from unittest import mock

import numpy as np
import pytest
from helpers import (
    DECODERS,
    ENCODERS,
    FIXTURES,
    PRONOUN,
    references,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from attncli import analysis, commands
from attncli.analysis import (
    align,
    at_bound,
    block_means,
    detector_score,
    duplicate_keys,
    entropy,
    head_detectors,
    head_statistics,
    induction_keys,
    is_punctuation,
    pattern_labels,
    rms_divisor,
    rollout,
    row_shares,
    sink_shares,
    sorted_heads,
    top_tokens,
    total_variation,
    weight_changes,
)
from attncli.attention import causal_mask, softmax
from attncli.models import load_model
from attncli.tokens import Token

T = 6


NO_KEYS = np.zeros(T, dtype=bool)


def as_model(*heads: np.ndarray) -> np.ndarray:
    """One layer holding the given [T, T] heads: [1, h, T, T]."""
    return np.stack(heads)[None]


def previous_token_head() -> np.ndarray:
    head = np.eye(T, k=-1)
    head[0, 0] = 1.0  # the first token has no previous one
    return head


def uniform_head() -> np.ndarray:
    return np.full((T, T), 1 / T)


def sep_sink_head() -> np.ndarray:
    head = np.zeros((T, T))
    head[:, T - 1] = 1.0
    return head


def statistics(weights, first_special=None, separators=NO_KEYS, punctuation=NO_KEYS, causal=False):
    return head_statistics(
        weights, first_special, separators, punctuation, causal_mask(weights.shape[-1]) if causal else None
    )


def test_a_previous_token_head():
    stats = statistics(as_model(previous_token_head()))
    assert stats["previous"][0, 0] == 1.0
    assert stats["next"][0, 0] == 0.0
    assert_allclose(stats["distance"][0, 0], (T - 1) / T)  # every row but the first looks one back
    assert stats["entropy"][0, 0] == 0.0
    assert pattern_labels(stats)[0, 0] == "previous-token"


def test_a_uniform_head():
    stats = statistics(as_model(uniform_head()))
    assert_allclose(stats["entropy"][0, 0], np.log(T))
    assert_allclose(stats["entropy_normalized"][0, 0], 1.0)
    assert_allclose(stats["max"][0, 0], 1 / T)
    assert pattern_labels(stats)[0, 0] == "broad"


def test_a_separator_sink_head():
    separators = NO_KEYS.copy()
    separators[T - 1] = True
    stats = statistics(as_model(sep_sink_head()), first_special=0, separators=separators)
    assert stats["separator"][0, 0] == 1.0
    assert stats["first_special"][0, 0] == 0.0
    assert pattern_labels(stats)[0, 0] == "delimiter-sink"


def test_self_and_next_heads_and_their_labels():
    stats = statistics(as_model(np.eye(T), np.roll(np.eye(T), 1, axis=1)))
    assert stats["self"][0].tolist() == [1.0, 0.0]
    assert_allclose(stats["next"][0, 1], 1.0)
    assert pattern_labels(stats)[0].tolist() == ["self", "next-token"]


def test_statistics_that_do_not_apply_are_nan():
    stats = statistics(as_model(uniform_head()))
    assert np.isnan(stats["first_special"][0, 0])
    assert np.isnan(stats["separator"][0, 0])
    assert np.isnan(stats["punctuation"][0, 0])


def test_punctuation_share_counts_every_punctuation_key():
    punctuation = NO_KEYS.copy()
    punctuation[[2, 4]] = True
    assert_allclose(statistics(as_model(uniform_head()), punctuation=punctuation)["punctuation"][0, 0], 2 / T)


def test_causal_rows_are_normalised_by_the_keys_they_see():
    causal_uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    assert_allclose(statistics(as_model(causal_uniform), causal=True)["entropy_normalized"][0, 0], 1.0)


def test_entropy_of_one_hot_rows_is_zero_and_of_uniform_is_log_n():
    assert_allclose(entropy(np.array([[1.0, 0, 0], [1 / 3, 1 / 3, 1 / 3]])), [0.0, np.log(3)])


def test_a_learned_sinks_share_is_one_more_outcome_of_a_rows_entropy():
    """Rows that give half their weight to a learned sink: the sink's half counts in the entropy and in
    ln n; a head whose rows all go to their sink has none."""
    half_uniform = uniform_head() / 2  # every row: 1/(2T) on each key, 1/2 to the sink
    stats = head_statistics(as_model(half_uniform), None, NO_KEYS, NO_KEYS, learned_sinks=True)
    expected = -(T * (1 / (2 * T)) * np.log(1 / (2 * T)) + 0.5 * np.log(0.5))
    assert_allclose(stats["entropy"][0, 0], expected)
    assert_allclose(stats["entropy_normalized"][0, 0], expected / np.log(T + 1))
    assert_allclose(stats["max"][0, 0], 1 / (2 * T))  # shares of the whole row
    to_the_sink = head_statistics(as_model(np.zeros((T, T))), None, NO_KEYS, NO_KEYS, learned_sinks=True)
    assert to_the_sink["entropy"][0, 0] == 0.0
    assert_allclose(sink_shares(np.float32([[0.25, 0.25], [0.5, 0.5000001]])), [0.5, 0.0], atol=1e-7)


def test_rollout_of_identity_layers_is_the_identity():
    weights = np.broadcast_to(np.eye(T), (3, 2, T, T))
    assert_allclose(rollout(weights), np.broadcast_to(np.eye(T), (3, T, T)))


def test_rollout_of_one_layer_is_half_attention_half_residual():
    head = softmax(np.random.default_rng(0).normal(size=(T, T)))
    assert_allclose(rollout(head[None, None])[0], 0.5 * head + 0.5 * np.eye(T))


def test_rollout_multiplies_later_layers_on_the_left():
    rng = np.random.default_rng(1)
    a, b = softmax(rng.normal(size=(2, T, T)))
    fused_a, fused_b = 0.5 * a + 0.5 * np.eye(T), 0.5 * b + 0.5 * np.eye(T)
    assert_allclose(rollout(np.stack([a, b])[:, None])[1], fused_b @ fused_a)


@given(
    arrays(np.float64, (3, 2, 5, 5), elements=st.floats(-5, 5)),
    st.sampled_from(["mean", "max", "min"]),
)
def test_rollout_rows_sum_to_one(scores, fusion):
    result = rollout(softmax(scores), fusion)
    assert np.all(result >= 0)
    assert_allclose(result.sum(axis=-1), 1.0)


def test_total_variation():
    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert total_variation(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_alignment_pairs_equal_tokens_and_leaves_the_rest_unpaired():
    a = ["the", "animal", "was", "too", "tired"]
    b = ["the", "animal", "was", "too", "wide"]
    assert align(a, b) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, None), (None, 4)]
    assert align(["a", "b", "c"], ["a", "c"]) == [(0, 0), (1, None), (2, 1)]


def test_punctuation_tokens():
    assert is_punctuation(".") and is_punctuation("##,") and is_punctuation("Ġ!")
    assert not is_punctuation("cat") and not is_punctuation("Ġ") and not is_punctuation("[SEP]")


@given(
    arrays(np.float32, (2, 2, 4, 4), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.integers(min_value=1, max_value=40),
)
def test_the_cells_that_moved_most_rank_as_a_sort_of_every_cell_would(moved, count):
    """weight_changes looks only in the rows with the largest maxima; with ties everywhere (four
    values), its cells must still be a full sort's: largest first, the earliest cell on a tie."""
    saved = np.zeros_like(moved)
    _, _, cells = weight_changes(moved, saved, count)
    everything = sorted(np.ndindex(moved.shape), key=lambda cell: (-moved[cell], cell))
    assert cells == [cell for cell in everything[:count] if moved[cell] > 0]


def test_head_statistics_count_the_keys_a_sliding_window_lets_a_row_see():
    model = load_model(str(FIXTURES / "mistral"))  # window 5 in every layer
    result = commands.heads(PRONOUN, model)
    run = commands.run(PRONOUN, model)
    rows = run.weights[0, 0, 1:]  # every row but the first sees more than one key
    seen = np.minimum(np.arange(2, run.weights.shape[-1] + 1), 5)
    plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1)), 0).sum(-1)
    assert_allclose(result.statistics["entropy_normalized"][0, 0], (-plogp / np.log(seen)).mean(), rtol=1e-6)


@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.floats(0, 1)), st.data())
def test_block_means_average_exactly_the_cells_the_mask_allows(weights, data):
    seen = data.draw(arrays(bool, weights.shape))
    block = data.draw(st.integers(1, 4))
    means, has_cells = block_means(weights, seen, block)
    for row, column in np.ndindex(means.shape):
        cells = (slice(row * block, (row + 1) * block), slice(column * block, (column + 1) * block))
        allowed = weights[cells][seen[cells]]
        assert has_cells[row, column] == (allowed.size > 0)
        if allowed.size:
            assert means[row, column] == pytest.approx(allowed.mean(), abs=1e-12)


def _block_means_at_once(weights: np.ndarray, seen: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """block_means as it was before it summed a strip at a time: the whole padded [R, C] in float64 at once."""
    rows, columns = -(-weights.shape[0] // block), -(-weights.shape[1] // block)
    sums, counts = np.zeros((rows * block, columns * block)), np.zeros((rows * block, columns * block))
    sums[: weights.shape[0], : weights.shape[1]] = np.where(seen, weights, 0.0)
    counts[: weights.shape[0], : weights.shape[1]] = seen
    sums = sums.reshape(rows, block, columns, block).sum(axis=(1, 3))
    counts = counts.reshape(rows, block, columns, block).sum(axis=(1, 3))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0), counts > 0


@given(
    arrays(
        st.sampled_from([np.float16, np.float32]),
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        elements=st.floats(0, 1, width=16),
    ),
    st.data(),
)
def test_block_means_a_strip_at_a_time_are_those_of_the_whole_matrix_to_the_bit(weights, data):
    seen = data.draw(arrays(bool, weights.shape))
    block = data.draw(st.integers(1, 12))
    strip = data.draw(st.integers(1, 2000))  # cells a strip: from a row of blocks a strip to the whole at once
    with mock.patch.object(analysis, "BLOCK_STRIP_CELLS", strip):
        means, has_cells = block_means(weights, seen, block)
    whole_means, whole_has_cells = _block_means_at_once(weights, seen, block)
    np.testing.assert_array_equal(has_cells, whole_has_cells)
    assert means.tobytes() == whole_means.tobytes()


def test_block_means_of_a_long_text_never_hold_its_whole_matrix_in_float64():
    """4,096 tokens in blocks of 30, as the explorer draws them: a float64 [T, T] would be 134 MB."""
    tokens = 4096
    weights = np.random.default_rng(0).random((tokens, tokens), np.float32).astype(np.float16)  # [T, T]
    seen = np.tri(tokens, dtype=bool)  # [T, T]
    tracemalloc.start()  # numpy reports its arrays' memory to it
    try:
        means, _ = block_means(weights, seen, 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert means.shape == (137, 137)
    assert peak < 3 * analysis.BLOCK_STRIP_CELLS * 8  # a strip's sums and counts, and its weights in float16
    assert peak < tokens * tokens * 8 / 4


def test_the_numbers_at_a_clamps_bound_are_those_it_moved():
    x = np.float32([-3.0, -2.0, 0.5, 1.99, 2.5, 7.0])
    assert at_bound(np.clip(x, -2.0, 2.0), 2.0) == 4  # three moved there, and -2 was there already
    assert at_bound(np.clip(x, -0.1, 0.1), 0.1) == 6  # a bound float32 cannot hold exactly


def test_the_divisor_of_an_rms_norm():
    assert rms_divisor(np.float32([3.0, -4.0]), 0.0) == pytest.approx(math.sqrt(12.5))
    assert rms_divisor(np.zeros(4, np.float32), 1e-6) == pytest.approx(1e-3)


# Head detectors: TransformerLens's duplicate-token and induction scores.


def transformer_lens_score(pattern: np.ndarray, ids: np.ndarray, kind: str) -> float:
    """TransformerLens's detect_head score of one head's [T, T] `pattern` for the head `kind`, written again as
    head_detector.py computes it (its defaults: exclude_bos and exclude_current_token off, the "mul" measure):
    the detection pattern built its way, then Σ pattern · detection / Σ pattern."""
    size = len(ids)
    if kind == "previous_token_head":
        detection = np.zeros((size, size))
        detection[1:, :-1] = np.eye(size - 1)
    else:
        token_pattern = np.tile(ids, (size, 1))
        equal = (token_pattern == token_pattern.T).astype(int)
        np.fill_diagonal(equal, 0)
        detection = np.tril(equal).astype(float)
        if kind == "induction_head":
            shifted = np.roll(detection, 1, axis=1)
            detection = np.tril(np.concatenate([np.zeros((size, 1)), shifted[:, 1:]], axis=1))
    return float((pattern * detection).sum() / pattern.sum())


def causal_softmax(scores: np.ndarray) -> np.ndarray:
    return softmax(np.where(causal_mask(scores.shape[-1]), scores, -1e30))


@given(
    arrays(np.float64, (2, 3, 7, 7), elements=st.floats(-6, 6)),
    arrays(np.int64, 7, elements=st.integers(0, 3)),
)
def test_the_detectors_are_transformer_lens_scores_over_the_rows_that_have_a_key(scores, ids):
    """Over a causal pattern (rows summing to 1), each score is TransformerLens's times T / (the rows that have
    a key): its "mul" score divides by every row's weight, ours by the rows that have a duplicate (or induction,
    or previous) key; the previous-token score is head_statistics' previous."""
    weights = causal_softmax(scores)  # [L, h, T, T]
    tokens = len(ids)
    found = {**head_detectors(weights, ids), "previous": statistics(weights, causal=True)["previous"]}
    keys = {"duplicate": duplicate_keys(ids), "induction": induction_keys(ids), "previous": np.eye(tokens, k=-1) > 0}
    kinds = {"duplicate": "duplicate_token_head", "induction": "induction_head", "previous": "previous_token_head"}
    for name, kind in kinds.items():
        rows = np.count_nonzero(keys[name].any(axis=-1))
        for layer, head in np.ndindex(weights.shape[:2]):
            expected = transformer_lens_score(weights[layer, head], ids, kind)
            if rows == 0:
                assert np.isnan(found[name][layer, head]) and expected == 0.0
            else:
                assert found[name][layer, head] * rows / tokens == pytest.approx(expected, abs=1e-12)


@given(
    arrays(np.float64, (1, 2, 8, 8), elements=st.floats(-8, 8)),
    arrays(np.int64, 8, elements=st.integers(0, 5)),
    st.booleans(),
)
def test_detector_scores_are_shares_between_0_and_1_or_do_not_apply(scores, ids, causal):
    weights = causal_softmax(scores) if causal else softmax(scores)
    for name, values in head_detectors(weights, ids, causal_mask(8) if causal else None).items():
        repeated = len(set(ids.tolist())) < len(ids)
        assert np.isnan(values).all() != repeated, name
        if repeated:
            assert np.all((values >= 0) & (values <= 1 + 1e-12)), name


@given(st.lists(st.integers(0, 10_000), min_size=2, max_size=30, unique=True))
def test_a_text_without_a_repeated_token_has_no_duplicate_or_induction_rows(distinct):
    ids = np.array(distinct)
    assert not duplicate_keys(ids).any() and not induction_keys(ids).any()
    scores = head_detectors(softmax(np.zeros((1, 1, len(ids), len(ids)))), ids)
    assert np.isnan(scores["duplicate"]).all() and np.isnan(scores["induction"]).all()


@given(st.integers(2, 20))
def test_a_pattern_all_on_the_previous_token_scores_1(tokens):
    head = np.eye(tokens, k=-1)
    head[0, 0] = 1.0  # the first token has nothing before it
    stats = head_statistics(head[None, None], None, np.zeros(tokens, bool), np.zeros(tokens, bool), causal_mask(tokens))
    assert stats["previous"][0, 0] == 1.0


@given(st.lists(st.integers(0, 40), min_size=1, max_size=20, unique=True), st.integers(0, 3))
def test_heads_that_look_only_at_their_keys_score_1_on_a_repeated_sequence(half, start):
    """Random tokens twice over, after `start` others: a head that spreads each row over its duplicate keys
    (over its induction keys) scores 1; the rows with such keys are the second copy's, all of them."""
    ids = np.array([*range(100, 100 + start), *half, *half])
    second = np.arange(len(ids)) >= start + len(half)
    for keys, name in ((duplicate_keys(ids), "duplicate"), (induction_keys(ids), "induction")):
        assert np.array_equal(keys.any(axis=-1), second)
        head = np.where(keys, 1.0, 0.0)
        head[~second, 0] = 1.0  # the rows without such a key look at the first token
        head /= head.sum(axis=-1, keepdims=True)
        assert head_detectors(head[None, None], ids)[name][0, 0] == pytest.approx(1.0)


def test_the_induction_key_follows_the_earlier_copy():
    ids = np.array([7, 1, 2, 3, 1, 2, 3])  # [BOS] then "1 2 3" twice
    assert [list(np.flatnonzero(row)) for row in duplicate_keys(ids)] == [[], [], [], [], [1], [2], [3]]
    assert [list(np.flatnonzero(row)) for row in induction_keys(ids)] == [[], [], [], [], [2], [3], [4]]


def test_a_duplicate_out_of_a_rows_window_leaves_the_row_out():
    """Only the rows that may see a duplicate key count: one the window hides is no row of the score."""
    ids = np.array([1, 2, 3, 1, 1])
    window = np.tril(np.ones((5, 5), bool)) & ~np.tril(np.ones((5, 5), bool), k=-2)  # itself and the one before
    head = np.eye(5, k=-1)[None, None]  # a previous-token head
    head[0, 0, 0, 0] = 1.0
    # Row 3's duplicate (key 0) is out of its window; row 4's (keys 0 and 3) has key 3, the one before it.
    assert detector_score(head, duplicate_keys(ids), window)[0, 0] == 1.0
    assert detector_score(head, duplicate_keys(ids))[0, 0] == pytest.approx(0.5)


def test_heads_sort_by_a_value_the_largest_first_nan_last_and_ties_in_layer_order():
    values = np.array([[0.2, np.nan], [0.5, 0.2]])
    assert sorted_heads(values, descending=True) == [(1, 0), (0, 0), (1, 1), (0, 1)]
    assert sorted_heads(values, descending=False) == [(0, 0), (1, 1), (1, 0), (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ENCODERS + DECODERS)
def test_detector_scores_are_as_exact_as_transformers(name):
    """The duplicate and induction scores of attncli's attention against those of transformers' float64 run,
    on the fixture's texts at the query rows its reference keeps: within max(1e-5, 3 × the largest distance of
    transformers' own float32 attention), the rule every number of attncli is held to."""
    model = load_model(str(FIXTURES / name))
    for reference in references(name):
        tokens = [Token(index, int(token_id), "", 0, 0) for index, token_id in enumerate(reference.ids)]
        weights = model.run(tokens, False).weights[:, :, reference.rows, :]  # [L, h, R, T]
        for keys in (duplicate_keys(reference.ids), induction_keys(reference.ids)):
            ours, truth = (
                detector_score(weights, keys[reference.rows]),
                detector_score(reference.attention, keys[reference.rows]),
            )
            assert np.array_equal(np.isnan(ours), np.isnan(truth))
            bound = max(1e-5, 3 * reference.attention_error[1])
            assert np.nanmax(np.abs(ours - truth), initial=0.0) <= bound, reference.text[:30]


# Subnormal numbers are left out: a row of them keeps a few bits of precision, which scaling rounds differently.
@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=st.floats(0, 1e6, allow_subnormal=False)
    )
)
def test_row_shares_are_rows_of_shares_that_sum_to_1_whatever_each_row_is_scaled_by(values):
    shares = row_shares(values)
    sums = values.sum(axis=-1)
    assert_allclose(shares.sum(axis=-1)[sums > 0], 1.0)
    assert np.all(shares[sums == 0] == 0) and np.all(shares >= 0)
    scale = np.arange(1, len(values) + 1)[:, None] * 3.5  # each row by its own factor
    assert_allclose(row_shares(values * scale), shares, rtol=1e-12, atol=1e-300)


def blocks_of(logits: np.ndarray, width: int):
    """`logits` [R, V] as top_tokens reads a vocabulary: (first id, [R, width] logits) a block at a time, each
    a copy (top_tokens overwrites what it has read)."""
    return ((start, logits[:, start : start + width].copy()) for start in range(0, logits.shape[1], width))


@given(
    arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 40)), elements=st.floats(-30, 30, width=32)),
    st.integers(1, 6),
    st.integers(1, 45),
)
def test_top_tokens_over_blocks_are_a_sort_of_the_whole_vocabulary(logits, k, width):
    ids, top, probabilities = top_tokens(blocks_of(logits, width), k)
    k = min(k, logits.shape[1])
    order = np.lexsort((np.broadcast_to(np.arange(logits.shape[1]), logits.shape), -logits), axis=1)[:, :k]
    assert ids.shape == (len(logits), k)
    # the largest logits, in order, whatever the blocks; equal logits may come in either order only at the kth
    assert_allclose(top, np.take_along_axis(logits, order, axis=1))
    assert_allclose(np.take_along_axis(logits, ids, axis=1), top)
    whole = softmax(logits.astype(np.float64))  # [R, V] softmax over every id at once
    assert_allclose(probabilities, np.take_along_axis(whole, ids, axis=1), rtol=2e-6, atol=1e-12)
    assert np.all(probabilities.sum(axis=1) <= 1 + 1e-6)


def test_top_tokens_break_ties_towards_the_lower_id_and_keep_float32():
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]], dtype=np.float32)
    ids, top, probabilities = top_tokens(blocks_of(logits, 2), 2)
    assert ids.tolist() == [[1, 2]] and top.dtype == probabilities.dtype == np.float32
    for width in (1, 2, 3, 5):  # the first of the largest, as argmax takes it, within a block and across them
        assert top_tokens(blocks_of(logits, width), 1)[0].tolist() == [[1]]
    assert_allclose(probabilities, [[np.exp(3) / (np.exp(1) + 3 * np.exp(3) + 1)] * 2], rtol=1e-6)


def test_top_tokens_of_huge_logits_stay_finite():
    logits = np.array([[3e38, -3e38, 1e38]], dtype=np.float32)
    ids, _, probabilities = top_tokens(blocks_of(logits, 1), 3)
    assert ids.tolist() == [[0, 2, 1]] and np.all(np.isfinite(probabilities))
    assert_allclose(probabilities, [[1, 0, 0]])
