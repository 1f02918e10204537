"""Mixture-of-experts feed-forward layers, as plain numpy functions (Shazeer et al. 2017; Mixtral, Qwen MoE).

A router scores each token against the E experts of a layer, h = x·W_g; softmax turns the scores
into probabilities p, and the token goes to the k experts of highest p, its top-k set 𝒯. Each of
those experts is a gated feed-forward network E_i of its own, and the token's output is their sum
weighted by the gates g_i: p_i as they are, or renormalised over 𝒯 (g_i = p_i / Σ_{j∈𝒯} p_j):

    y = Σ_{i∈𝒯} g_i · E_i(x)    (+ σ(x·w_s) · E_s(x), with a shared expert E_s every token goes through)

GPT-OSS routes the other way round: the top k of the logits x·W_g + b first, then softmax over those
k alone (the same gates as renormalised probabilities, to rounding); its experts are gated by a
clamped SwiGLU, (clamp(up, ±limit) + 1) · gate · σ(α · gate), the gate clamped at limit from above.

The experts a layer does not route a token to cost it nothing: `combine` runs expert by expert, each
over the tokens routed to it, asking for an expert's weights only when some token needs it.
Shapes: T tokens, d width, E experts, k experts per token.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from attncli.attention import softmax
from attncli.errors import DataError

__all__ = [
    "MixtureConfig",
    "Routing",
    "clamped_swiglu",
    "combine",
    "route",
    "router_probabilities",
    "sigmoid",
    "top_k",
    "top_k_softmax",
]


@dataclass(frozen=True)
class MixtureConfig:
    """How a model's mixture-of-experts layers route tokens; checked when built."""

    experts: int  # E routed experts in each mixture layer
    per_token: int  # k experts each token is routed to
    d_expert: int  # each routed expert's feed-forward width
    renormalize: bool  # the k chosen probabilities divided by their sum (else weighted as they are)
    sparse: tuple[bool, ...]  # per layer: a mixture of experts (True), or the dense feed-forward network
    d_shared: int | None = None  # the shared expert's width, where every token also goes through one
    softmax_after_top_k: bool = False  # the top k of the router's logits, then softmax over them (GPT-OSS)
    # GPT-OSS's clamped SwiGLU: the sigmoid's gain α and the clamp's limit; None: the model's activation
    swiglu_alpha: float | None = None
    swiglu_limit: float | None = None

    def __post_init__(self):
        if self.experts < 1:
            raise DataError(f"config.json: {self.experts} experts; a mixture needs at least one")
        if not 0 < self.per_token <= self.experts:
            raise DataError(
                f"config.json: num_experts_per_tok = {self.per_token}; a token goes to 1 to {self.experts} experts"
            )
        if self.d_expert < 1:
            raise DataError(f"config.json: expert width = {self.d_expert}; it must be positive")
        if self.d_shared is not None and self.d_shared < 1:
            raise DataError(f"config.json: shared_expert_intermediate_size = {self.d_shared}; it must be positive")

    def to_json(self) -> dict:
        return {
            "experts": self.experts,
            "per_token": self.per_token,
            "renormalized": self.renormalize,
            "shared_expert": self.d_shared is not None,
            "layers": [layer for layer, sparse in enumerate(self.sparse) if sparse],
            **({"softmax_after_top_k": True} if self.softmax_after_top_k else {}),
            **(
                {}
                if self.swiglu_limit is None
                else {"swiglu_alpha": self.swiglu_alpha, "swiglu_limit": self.swiglu_limit}
            ),
        }


@dataclass(eq=False, repr=False)
class Routing:
    """Where one mixture layer sent each token, and with what weight."""

    experts: np.ndarray  # [T, k] int: each token's experts, the most probable first
    weights: np.ndarray  # [T, k] the gates g_i its experts' outputs are weighted by
    shared: np.ndarray | None = None  # [T] σ(x·w_s), the shared expert's gate; None without one


def router_probabilities(x: np.ndarray, w_router: np.ndarray) -> np.ndarray:
    """p = softmax(x·W_g): each token's probability of each expert, [T, d] x [d, E] -> [T, E]."""
    return softmax(x @ w_router)


def top_k(probabilities: np.ndarray, k: int, renormalize: bool) -> Routing:
    """Each token's k most probable experts, most probable first, and their gates: the probabilities
    as they are, or divided by their sum over the k: [T, E] -> [T, k] twice.

    Of equally probable experts the lower id comes first (torch leaves their order unspecified)."""
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]  # [T, k]
    gates = np.take_along_axis(probabilities, order, axis=-1)  # [T, k]
    if renormalize:
        gates = gates / gates.sum(axis=-1, keepdims=True)
    return Routing(order, gates)


def route(x: np.ndarray, w_router: np.ndarray, k: int, renormalize: bool) -> Routing:
    """The router of one layer: top_k(softmax(x·W_g)), [T, d] -> [T, k] experts and gates."""
    return top_k(router_probabilities(x, w_router), k, renormalize)


def top_k_softmax(logits: np.ndarray, k: int) -> Routing:
    """Each token's k experts of highest logit, highest first, their gates softmax over those k logits alone
    (GPT-OSS's router): [T, E] -> [T, k] twice. The gates are top_k(softmax(logits), k, renormalize=True)'s,
    to rounding; an expert's order is its logit's, which rounding to a probability cannot tie.

    Of equal logits the lower id comes first (torch leaves their order unspecified)."""
    order = np.argsort(-logits, axis=-1, kind="stable")[:, :k]  # [T, k]
    return Routing(order, softmax(np.take_along_axis(logits, order, axis=-1)))


def clamped_swiglu(gate: np.ndarray, up: np.ndarray, alpha: float, limit: float) -> np.ndarray:
    """GPT-OSS's experts' activation: (u + 1) · g · σ(α · g), with g the gate clamped to at most `limit`
    and u the up projection clamped to ±`limit`: [n, f] twice -> [n, f]."""
    gate = np.minimum(gate, np.float32(limit))  # [n, f]
    with np.errstate(over="ignore"):  # σ of a gate far below 0: e^-x is ∞ and σ 0, as float32 rounds it
        glu = gate * sigmoid(gate * np.float32(alpha))  # [n, f]
    glu *= np.clip(up, np.float32(-limit), np.float32(limit)) + np.float32(1)
    return glu


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^-x), elementwise (the shared expert's gate)."""
    return 1.0 / (1.0 + np.exp(-x))


def combine(x: np.ndarray, routing: Routing, expert: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """y = Σ_{i∈𝒯} g_i · E_i(x) for each token: [T, d] -> [T, d]. `expert(i, rows)` is E_i over the
    rows [n, d] of the tokens routed to expert i; it is called once for each expert some token needs,
    in the order of the experts' ids, and never for the others."""
    y = np.zeros_like(x)  # [T, d]
    for i in np.unique(routing.experts):
        tokens, slots = np.nonzero(routing.experts == i)  # [n] each token at most once: its k experts differ
        out = expert(int(i), x[tokens])  # [n, d]
        out *= routing.weights[tokens, slots][:, None].astype(out.dtype, copy=False)
        y[tokens] += out
    return y
