"""Scaled dot-product and multi-head self-attention, as plain numpy functions.

Shapes: T tokens, d model width, h heads, d_k = d / h per head. Nothing here
reads files, prints, or knows about terminals. Every function returns new arrays
and changes none of its inputs; the one exception is an `out` array the caller
hands over to be filled, as with numpy's own functions.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AttentionTrace",
    "Projections",
    "attention",
    "causal_mask",
    "linear",
    "masked",
    "merge_heads",
    "multi_head_attention",
    "scaled",
    "scores",
    "softmax",
    "split_heads",
]


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """exp(x) / sum(exp(x)) along `axis`, same shape as `x`; written into `out` when given,
    as numpy's ufuncs do, and cast to its dtype (the forward pass puts each layer's weights
    straight into its slice of the [L, h, T, T] stack instead of copying them there).

    Subtracting the row maximum first cancels in the ratio but keeps exp from
    overflowing, so scores of any size give finite probabilities.
    """
    e = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out, dtype=np.result_type(x, np.float32))
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def causal_mask(n: int) -> np.ndarray:
    """[n, n] bool, True where query i may attend to key j (j <= i)."""
    return np.tri(n, dtype=bool)


def masked(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """`x` with the positions where `mask` is False set to the most negative finite value.

    A finite value rather than -inf keeps a fully masked row at a uniform
    softmax instead of NaN; any allowed score, however negative, still wins.
    """
    if mask is None:
        return x
    return np.where(mask, x, np.finfo(x.dtype).min)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """x @ w + b: [..., d_in] x [d_in, d_out] -> [..., d_out]; no bias when `b` is None."""
    y = x @ w
    if b is None:
        return y
    if y.dtype != np.result_type(y, b):  # integer inputs, say: a new array of the wider type
        return y + b
    y += b  # in place, saving a [..., d_out] copy a projection
    return y


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[T, d] -> [h, T, d_k]: head i takes columns i*d_k ... (i+1)*d_k - 1.

    A contiguous copy rather than a strided view: numpy's matmul over strided heads takes
    1.5x as long as over contiguous ones, far more than the copy costs.
    """
    tokens, width = x.shape
    return np.ascontiguousarray(x.reshape(tokens, heads, width // heads).transpose(1, 0, 2))


def merge_heads(x: np.ndarray) -> np.ndarray:
    """[h, T, d_k] -> [T, h*d_k], the inverse of `split_heads` (concatenates the heads)."""
    heads, tokens, d_k = x.shape
    return x.transpose(1, 0, 2).reshape(tokens, heads * d_k)


def scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Raw dot products QKᵀ: [..., T, d_k] x [..., T, d_k] -> [..., T, T]."""
    return q @ np.swapaxes(k, -1, -2)


def scaled(s: np.ndarray, d_k: int) -> np.ndarray:
    """Scores divided by √d_k, which keeps their spread independent of the head width.

    √d_k is a Python float, so float32 scores stay float32 (a numpy float64 would promote them).
    """
    return s / math.sqrt(d_k)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(QKᵀ / √d_k) V: [..., T, d_k] for q, k, v -> [..., T, d_v]."""
    return softmax(masked(scaled(scores(q, k), q.shape[-1]), mask)) @ v


@dataclass(eq=False, repr=False)
class Projections:
    """The four projections of a multi-head attention layer, applied as x @ w + b."""

    w_q: np.ndarray  # [d, d]
    w_k: np.ndarray  # [d, d]
    w_v: np.ndarray  # [d, d]
    w_o: np.ndarray  # [d, d]
    b_q: np.ndarray | None = None  # [d]
    b_k: np.ndarray | None = None  # [d]
    b_v: np.ndarray | None = None  # [d]
    b_o: np.ndarray | None = None  # [d]


@dataclass(eq=False, repr=False)
class AttentionTrace:
    """Every intermediate of one multi-head self-attention layer."""

    x: np.ndarray  # [T, d] input
    q: np.ndarray  # [h, T, d_k]
    k: np.ndarray  # [h, T, d_k]
    v: np.ndarray  # [h, T, d_k]
    scores: np.ndarray  # [h, T, T] QKᵀ
    scaled: np.ndarray  # [h, T, T] QKᵀ / √d_k, before any mask
    weights: np.ndarray  # [h, T, T] softmax of the masked, scaled scores; rows sum to 1
    head_outputs: np.ndarray  # [h, T, d_k] weights @ V
    concat: np.ndarray  # [T, d] the heads side by side
    output: np.ndarray  # [T, d] concat @ W_O + b_O


def multi_head_attention(
    x: np.ndarray,
    p: Projections,
    heads: int,
    mask: np.ndarray | None = None,
    weights_out: np.ndarray | None = None,
) -> AttentionTrace:
    """Multi-head self-attention of `x` [T, d] through projections `p`, tracing each step.

    `mask` is [T, T] bool (True = may attend) and applies to every head. The weights are
    written into `weights_out` [h, T, T] when it is given.
    """
    q = split_heads(linear(x, p.w_q, p.b_q), heads)  # [h, T, d_k]
    k = split_heads(linear(x, p.w_k, p.b_k), heads)  # [h, T, d_k]
    v = split_heads(linear(x, p.w_v, p.b_v), heads)  # [h, T, d_k]
    raw = scores(q, k)  # [h, T, T]
    scaled_scores = scaled(raw, q.shape[-1])  # [h, T, T]
    weights = softmax(masked(scaled_scores, mask), out=weights_out)  # [h, T, T]
    head_outputs = weights @ v  # [h, T, d_k]
    concat = merge_heads(head_outputs)  # [T, d]
    output = linear(concat, p.w_o, p.b_o)  # [T, d]
    return AttentionTrace(x, q, k, v, raw, scaled_scores, weights, head_outputs, concat, output)
