"""experts.py: the router's probabilities, top-k with and without renormalisation, GPT-OSS's top-k then
softmax and its clamped SwiGLU, and the combine, against naive formulas on random inputs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli.errors import DataError
from attncli.experts import (
    MixtureConfig,
    clamped_swiglu,
    combine,
    route,
    router_probabilities,
    sigmoid,
    top_k,
    top_k_softmax,
)

moderate = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def routers(draw):
    """x [T, d], a router W_g [d, E] and k (1 to E)."""
    tokens, d, experts = draw(st.integers(1, 9)), draw(st.integers(1, 6)), draw(st.integers(1, 8))
    x = draw(arrays(np.float32, (tokens, d), elements=moderate))
    w = draw(arrays(np.float32, (d, experts), elements=moderate))
    return x, w, draw(st.integers(1, experts))


@given(routers(), st.booleans())
def test_each_token_goes_to_its_k_most_probable_experts_most_probable_first(router, renormalize):
    x, w, k = router
    p = router_probabilities(x, w)  # [T, E]
    assert_allclose(p.sum(axis=-1), 1, rtol=1e-5)
    routing = top_k(p, k, renormalize)
    assert routing.experts.shape == routing.weights.shape == (len(x), k)
    for row, chosen in zip(p, routing.experts, strict=True):
        assert len(set(chosen.tolist())) == k
        others = np.delete(row, chosen)
        assert others.size == 0 or row[chosen].min() >= others.max()  # none left out beats one chosen
        assert np.all(np.diff(row[chosen]) <= 0)
    chosen = np.take_along_axis(p, routing.experts, axis=-1)
    if renormalize:
        assert_allclose(routing.weights.sum(axis=-1), 1, rtol=1e-5)
        assert_allclose(routing.weights, chosen / chosen.sum(axis=-1, keepdims=True), rtol=1e-6)
    else:
        assert_array_equal(routing.weights, chosen)


@given(routers())
def test_softmax_over_the_top_k_logits_is_softmax_then_top_k_renormalised(router):
    """GPT-OSS picks a token's experts by their logits and takes softmax over those k alone: the gates
    of the k most probable experts, renormalised, to rounding."""
    x, w, k = router
    logits = x @ w  # [T, E]
    routing = top_k_softmax(logits, k)
    assert routing.experts.shape == routing.weights.shape == (len(x), k)
    chosen = np.take_along_axis(logits, routing.experts, axis=-1)  # [T, k]
    for row, picked, top in zip(logits, routing.experts, chosen, strict=True):
        assert len(set(picked.tolist())) == k
        others = np.delete(row, picked)
        assert others.size == 0 or top.min() >= others.max()
        assert np.all(np.diff(top) <= 0)
    assert_allclose(routing.weights.sum(axis=-1), 1, rtol=1e-5)
    assert np.all(np.diff(routing.weights, axis=-1) <= 1e-7)  # the highest logit's gate first
    # The same gates (of the same experts, but where rounding ties two probabilities whose logits differ)
    assert_allclose(routing.weights, top_k(router_probabilities(x, w), k, renormalize=True).weights, atol=1e-6)


def test_of_equal_logits_the_lower_id_comes_first():
    routing = top_k_softmax(np.float32([[1.0, 3.0, 1.0, 3.0, 0.0]]), 3)
    assert routing.experts.tolist() == [[1, 3, 0]]


swiglus = st.tuples(
    arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=st.floats(-30, 30, width=32)),
    st.floats(0.1, 4.0),
    st.floats(1.0, 10.0),
)


@given(swiglus)
def test_the_clamped_swiglu_is_its_formula_with_gate_and_up_clamped(case):
    gate, alpha, limit = case
    up = gate[::-1].copy()
    y = clamped_swiglu(gate, up, alpha, limit)
    assert y.dtype == np.float32 and y.shape == gate.shape
    g = np.minimum(gate.astype(np.float64), np.float32(limit))
    u = np.clip(up.astype(np.float64), -np.float32(limit), np.float32(limit))
    expected = (u + 1) * g / (1 + np.exp(-g * np.float32(alpha)))
    assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # A gate past the limit is the limit; an up past ±limit is ±limit; an up of -1 zeroes the output
    at_limit, beyond = np.full_like(gate, limit), np.abs(gate) + np.float32(limit)
    assert_array_equal(clamped_swiglu(beyond, up, alpha, limit), clamped_swiglu(at_limit, up, alpha, limit))
    for sign in (1, -1):
        assert_array_equal(
            clamped_swiglu(gate, sign * (np.abs(up) + np.float32(limit)), alpha, limit),
            clamped_swiglu(gate, sign * at_limit, alpha, limit),
        )
    assert np.all(clamped_swiglu(gate, np.full_like(up, -1.0), alpha, limit) == 0)
    assert np.all(np.abs(y) <= (limit + 1) * np.abs(g) * (1 + 1e-6))  # σ ≤ 1, |u + 1| ≤ limit + 1


def test_the_clamped_swiglu_of_a_hand_worked_example():
    # gate 10 is clamped to 2, up -5 to -2: (-2 + 1) · 2 · σ(2 · 1.5); gate -1, up 0.5: 1.5 · -1 · σ(-1.5)
    y = clamped_swiglu(np.float32([[10.0, -1.0]]), np.float32([[-5.0, 0.5]]), 1.5, 2.0)
    assert_allclose(y, [[-2 / (1 + np.exp(-3.0)), -1.5 / (1 + np.exp(1.5))]], rtol=1e-6)


def test_of_equally_probable_experts_the_lower_id_comes_first():
    routing = top_k(np.full((2, 5), 0.2, np.float32), 3, renormalize=True)
    assert routing.experts.tolist() == [[0, 1, 2]] * 2
    assert_allclose(routing.weights, 1 / 3)


@given(routers(), st.booleans())
def test_the_combine_is_the_weighted_sum_of_every_expert_masked_to_the_chosen(router, renormalize):
    x, w, k = router
    experts = len(w[0])
    rng = np.random.default_rng(experts)
    matrices = rng.normal(size=(experts, x.shape[1], x.shape[1])).astype(np.float32)  # expert i: x @ M_i
    routing = route(x, w, k, renormalize)
    asked = []

    def expert(i, rows):
        asked.append(i)
        return rows @ matrices[i]

    y = combine(x, routing, expert)
    gates = np.zeros((len(x), experts), np.float32)  # [T, E] g_i where i is chosen, else 0
    np.put_along_axis(gates, routing.experts, routing.weights, axis=-1)
    naive = np.einsum("te,ted->td", gates, np.einsum("td,edf->tef", x, matrices))
    assert_allclose(y, naive, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(naive).max()))
    assert asked == sorted(set(routing.experts.ravel().tolist()))  # each expert used once, in order; no other


def test_an_expert_no_token_is_routed_to_is_never_asked_for():
    x = np.eye(3, dtype=np.float32)
    w = np.float32([[9, 0, 0, 0], [9, 0, 0, 0], [0, 9, 0, 0]])  # tokens 0 and 1 to expert 0, token 2 to 1
    asked = []
    combine(x, route(x, w, 1, renormalize=True), lambda i, rows: asked.append((i, len(rows))) or rows)
    assert asked == [(0, 2), (1, 1)]


@given(arrays(np.float32, st.integers(1, 20), elements=moderate))
def test_the_shared_experts_gate_is_a_sigmoid(x):
    gate = sigmoid(x)
    assert np.all((gate >= 0) & (gate <= 1))
    assert_allclose(gate + sigmoid(-x), 1, rtol=1e-6)
    assert_allclose(sigmoid(np.float32([0.0])), [0.5])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"experts": 0}, "0 experts; a mixture needs at least one"),
        ({"per_token": 9}, "num_experts_per_tok = 9; a token goes to 1 to 8 experts"),
        ({"per_token": 0}, "num_experts_per_tok = 0"),
        ({"d_expert": 0}, "expert width = 0"),
        ({"d_shared": 0}, "shared_expert_intermediate_size = 0"),
    ],
)
def test_a_mixture_that_cannot_route_is_refused_by_name(fields, message):
    with pytest.raises(DataError, match=message):
        MixtureConfig(**{"experts": 8, "per_token": 2, "d_expert": 4, "renormalize": True, "sparse": (True,)} | fields)
