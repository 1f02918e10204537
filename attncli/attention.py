"""Scaled dot-product and multi-head self-attention, as plain numpy functions.

Shapes: T tokens, d model width, h heads of d_k numbers each (d / h unless a model
says otherwise), g key and value heads (h unless grouped-query attention shares each
among h / g query heads). Rotary position embeddings (RoPE), per-head RMS norms of q
and k, logit soft-capping and sliding-window masks are here too, as the modern
decoders use them. Nothing here reads files, prints, or knows about terminals. Every
function returns new arrays and changes none of its inputs; the one exception is an
`out` array the caller hands over to be filled, as with numpy's own functions.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AttentionTrace",
    "Projections",
    "Rotary",
    "Trace",
    "attention",
    "causal_mask",
    "linear",
    "masked",
    "masked_softmax",
    "merge_heads",
    "multi_head_attention",
    "repeat_kv",
    "rms_norm",
    "rotate",
    "rotate_half",
    "scaled",
    "scores",
    "soft_cap",
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


def masked_softmax(x: np.ndarray, mask: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
    """softmax(masked(x, mask)) over the last axis of `x` [..., T, T] (`mask` [T, T], True = may
    attend), without the masked copy of `x`: the same numbers, exactly 0 where masked, a uniform row
    where nothing is allowed. Written into `out` when given."""
    if mask is None:
        return softmax(x, out=out)
    empty = ~mask.any(axis=-1)  # [T] rows that may attend to nothing
    top = np.max(x, axis=-1, keepdims=True, where=mask, initial=-np.inf)  # [..., T, 1] over allowed keys
    top[..., empty, :] = 0.0
    e = np.subtract(x, top, out=out, dtype=np.result_type(x, np.float32))
    np.exp(e, out=e, where=mask)
    np.copyto(e, 0.0, where=~mask)  # exactly 0, not the -0.0 that multiplying by the mask would leave
    e[..., empty, :] = 1.0
    e /= np.sum(e, axis=-1, keepdims=True)
    return e


def causal_mask(n: int, window: int | None = None) -> np.ndarray:
    """[n, n] bool, True where query i may attend to key j: j <= i, and with a sliding `window`
    only the last `window` keys, j > i - window (the query itself included)."""
    mask = np.tri(n, dtype=bool)
    if window is not None:
        mask &= ~np.tri(n, k=-window, dtype=bool)
    return mask


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


def scaled(s: np.ndarray, d_k: int, scale: float | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Scores divided by √d_k, which keeps their spread independent of the head width; or, with
    `scale`, multiplied by it (as the decoders do, some with a scale of their own). Written into
    `out` when given (which may be `s` itself).

    √d_k is a Python float, so float32 scores stay float32 (a numpy float64 would promote them).
    """
    if scale is None:
        return np.divide(s, math.sqrt(d_k), out=out)
    return np.multiply(s, scale, out=out)


def soft_cap(s: np.ndarray, cap: float) -> np.ndarray:
    """cap · tanh(s / cap): scores squashed smoothly into (-cap, cap), as Gemma 2 does."""
    return np.tanh(s / cap) * cap


def rms_norm(x: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """x / √(mean(x²) + eps) · gain over the last axis: [..., n] -> [..., n] (no centring, no shift)."""
    y = x * (1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps))
    y *= gain
    return y


@dataclass(eq=False, repr=False)
class Rotary:
    """Rotary position embeddings for T positions: each pair of dimensions (i, i + n/2) of the first
    n of a head's dimensions is rotated by the angle position · frequency_i."""

    cos: np.ndarray  # [T, n] cos of each angle, the n/2 angles twice over
    sin: np.ndarray  # [T, n]


def rotate_half(x: np.ndarray) -> np.ndarray:
    """[..., n] -> [..., n]: (x1, x2) -> (-x2, x1), the halves of the last axis."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotate(x: np.ndarray, rotary: Rotary) -> np.ndarray:
    """RoPE: x · cos + rotate_half(x) · sin over the first n dimensions of each head, the rest as
    they are: [..., T, d_k] -> [..., T, d_k]."""
    n = rotary.cos.shape[-1]
    turned = x[..., :n] * rotary.cos + rotate_half(x[..., :n]) * rotary.sin
    return turned if n == x.shape[-1] else np.concatenate([turned, x[..., n:]], axis=-1)


def repeat_kv(x: np.ndarray, heads: int) -> np.ndarray:
    """[g, T, d_k] -> [h, T, d_k]: each of g key (or value) heads serves h / g query heads in turn."""
    return x if len(x) == heads else np.repeat(x, heads // len(x), axis=0)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(QKᵀ / √d_k) V: [..., T, d_k] for q, k, v -> [..., T, d_v]."""
    return softmax(masked(scaled(scores(q, k), q.shape[-1]), mask)) @ v


@dataclass(eq=False, repr=False)
class Projections:
    """The four projections of a multi-head attention layer, applied as x @ w + b, and the gains of
    the RMS norms some decoders apply to each head's q and k."""

    w_q: np.ndarray  # [d, h·d_k]
    w_k: np.ndarray  # [d, g·d_k]
    w_v: np.ndarray  # [d, g·d_k]
    w_o: np.ndarray  # [h·d_k, d]
    b_q: np.ndarray | None = None  # [h·d_k]
    b_k: np.ndarray | None = None  # [g·d_k]
    b_v: np.ndarray | None = None  # [g·d_k]
    b_o: np.ndarray | None = None  # [d]
    q_norm: np.ndarray | None = None  # [d_k]
    k_norm: np.ndarray | None = None  # [d_k]


@dataclass(eq=False, repr=False)
class AttentionTrace:
    """Every intermediate of one multi-head self-attention layer."""

    x: np.ndarray  # [T, d] input
    q: np.ndarray  # [h, T, d_k] (after the q norm, before RoPE, where the model has them)
    k: np.ndarray  # [g, T, d_k]
    v: np.ndarray  # [g, T, d_k]
    scores: np.ndarray  # [h, T, T] QKᵀ (with RoPE's q and k, each query head against its key head)
    scaled: np.ndarray  # [h, T, T] QKᵀ / √d_k (or · the model's scale, then soft-capped), before any mask
    weights: np.ndarray  # [h, T, T] softmax of the masked, scaled scores; rows sum to 1
    head_outputs: np.ndarray  # [h, T, d_k] weights @ V
    concat: np.ndarray  # [T, h·d_k] the heads side by side
    output: np.ndarray  # [T, d] concat @ W_O + b_O
    q_rotated: np.ndarray | None = None  # [h, T, d_k] q after RoPE; None without RoPE
    k_rotated: np.ndarray | None = None  # [g, T, d_k]

    def key_head(self, head: int) -> int:
        """The key and value head that query head `head` reads."""
        return head * len(self.k) // len(self.q)


@dataclass(eq=False, repr=False)
class Trace:
    """What a model did to a text, layer by layer: every model's forward pass returns one."""

    embeddings: np.ndarray  # [T, d] the tokens' rows of the word embedding table
    positions: np.ndarray | None  # [T, d] what was added for each position; None when nothing was
    weights: np.ndarray  # [L, h, T, T] every layer's attention weights
    layers: list[AttentionTrace]  # per layer, every intermediate (.x: the attention input); empty unless kept
    layer_outputs: list[np.ndarray]  # [T, d] per layer: what it passes on (after the feed-forward and norms)
    output: np.ndarray  # [T, d] the last hidden state, after a final LayerNorm where there is one


def _heads(
    q_projected: np.ndarray,
    k_projected: np.ndarray,
    v_projected: np.ndarray,
    p: Projections,
    heads: int,
    mask: np.ndarray | None,
    weights_out: np.ndarray | None,
    rotary: Rotary | None,
    *,
    kv_heads: int | None,
    scale: float | None,
    cap: float | None,
    norm_eps: float,
    steps: bool,
) -> tuple:
    """The heads' part of attention for one text, from its projections [T, h·d_k], [T, g·d_k] and
    [T, g·d_k]: (q, k, v, q and k rotated, scores, scaled scores, weights, head outputs)."""
    q = split_heads(q_projected, heads)  # [h, T, d_k]
    k = split_heads(k_projected, kv_heads or heads)  # [g, T, d_k]
    v = split_heads(v_projected, kv_heads or heads)  # [g, T, d_k]
    if p.q_norm is not None:
        q, k = rms_norm(q, p.q_norm, norm_eps), rms_norm(k, p.k_norm, norm_eps)
    q_rotated = k_rotated = None
    if rotary is not None:
        q_rotated, k_rotated = rotate(q, rotary), rotate(k, rotary)  # [h, T, d_k], [g, T, d_k]
    q_used = q if q_rotated is None else q_rotated
    k_used = repeat_kv(k if k_rotated is None else k_rotated, heads)  # [h, T, d_k]
    raw = scores(q_used, k_used)  # [h, T, T]
    scaled_scores = scaled(raw, q.shape[-1], scale, out=None if steps else raw)  # [h, T, T]
    if cap is not None:
        scaled_scores = soft_cap(scaled_scores, cap)
    weights = masked_softmax(scaled_scores, mask, out=weights_out)  # [h, T, T]
    head_outputs = weights @ repeat_kv(v, heads)  # [h, T, d_k]
    return q, k, v, q_rotated, k_rotated, raw, scaled_scores, weights, head_outputs


def packed_attention(
    x: np.ndarray,
    p: Projections,
    heads: int,
    segments: list[slice],
    weights_out: list[np.ndarray],
    *,
    masks: Callable[[int], np.ndarray | None],
    rotaries: Callable[[int], Rotary | None],
    kv_heads: int | None = None,
    scale: float | None = None,
    cap: float | None = None,
    norm_eps: float = 1e-6,
) -> np.ndarray:
    """Multi-head self-attention of several texts packed end to end in `x` [N, d], each text
    (`segments`, slices of x) attending only to itself: the projections run over every token at
    once, the heads text by text (with masks(T) and rotaries(T) for a text of T tokens). Each text's
    weights go into its `weights_out` [h, T, T]; returns the output [N, d]."""
    projected = linear(x, p.w_q, p.b_q), linear(x, p.w_k, p.b_k), linear(x, p.w_v, p.b_v)
    options = {"kv_heads": kv_heads, "scale": scale, "cap": cap, "norm_eps": norm_eps, "steps": False}
    concat = np.empty((len(x), p.w_o.shape[0]), dtype=projected[0].dtype)  # [N, h·d_k]
    for segment, out in zip(segments, weights_out, strict=True):
        tokens = segment.stop - segment.start
        head_outputs = _heads(
            *(part[segment] for part in projected), p, heads, masks(tokens), out, rotaries(tokens), **options
        )[-1]
        concat[segment] = merge_heads(head_outputs)
    return linear(concat, p.w_o, p.b_o)


def multi_head_attention(
    x: np.ndarray,
    p: Projections,
    heads: int,
    mask: np.ndarray | None = None,
    weights_out: np.ndarray | None = None,
    *,
    kv_heads: int | None = None,
    rotary: Rotary | None = None,
    scale: float | None = None,
    cap: float | None = None,
    norm_eps: float = 1e-6,
    steps: bool = True,
) -> AttentionTrace:
    """Multi-head self-attention of `x` [T, d] through projections `p`, tracing each step.

    `mask` is [T, T] bool (True = may attend) and applies to every head. The weights are
    written into `weights_out` [h, T, T] when it is given. The decoders' choices: `kv_heads` key
    and value heads shared by the query heads (grouped-query attention), q and k normed per head
    (when `p` has their gains, with `norm_eps`) and turned by `rotary`, scores multiplied by
    `scale` instead of divided by √d_k, and soft-capped at `cap`. Without `steps`, the scores are
    scaled in place (the trace's scores are then its scaled scores): for a caller that keeps only
    the weights.
    """
    projected = linear(x, p.w_q, p.b_q), linear(x, p.w_k, p.b_k), linear(x, p.w_v, p.b_v)
    options = {"kv_heads": kv_heads, "scale": scale, "cap": cap, "norm_eps": norm_eps, "steps": steps}
    q, k, v, q_rotated, k_rotated, raw, scaled_scores, weights, head_outputs = _heads(
        *projected, p, heads, mask, weights_out, rotary, **options
    )
    concat = merge_heads(head_outputs)  # [T, h·d_k]
    output = linear(concat, p.w_o, p.b_o)  # [T, d]
    return AttentionTrace(x, q, k, v, raw, scaled_scores, weights, head_outputs, concat, output, q_rotated, k_rotated)
