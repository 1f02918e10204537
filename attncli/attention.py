"""Scaled dot-product and multi-head self-attention, as plain numpy functions.

Shapes: T tokens, d model width, h heads of d_k numbers each (d / h unless a model
says otherwise), g key and value heads (h unless grouped-query attention shares each
among h / g query heads). Rotary position embeddings (RoPE), per-head norms of q
and k, logit soft-capping and sliding-window masks are here too, as the modern
decoders use them. Nothing here reads files, prints, or knows about terminals. Every
function returns new arrays and changes none of its inputs; the one exception is an
`out` array the caller hands over to be filled, as with numpy's own functions.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AttentionOptions",
    "AttentionTrace",
    "HeadsTrace",
    "LayerAttention",
    "Projections",
    "Rope",
    "Rotary",
    "Trace",
    "attend",
    "attention",
    "causal_mask",
    "head_norm",
    "heads_attention",
    "inverse_frequencies",
    "layer_norm",
    "linear",
    "masked",
    "masked_softmax",
    "merge_heads",
    "multi_head_attention",
    "packed_attention",
    "per_head",
    "projections",
    "repeat_kv",
    "rms_norm",
    "rotary",
    "rotate",
    "rotate_every_two",
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
    if window is not None and window < n:  # a window as long as the text hides nothing
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


def layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray | None, eps: float) -> np.ndarray:
    """(x - mean) / √(variance + eps) · gain + bias over the last axis: [..., n] -> [..., n]; no shift
    when `bias` is None.

    The mean and the variance are summed in float64 (the rest is in x's precision): a post-norm
    encoder normalises after every sublayer, and float32 sums put its attention half as far again
    from the truth (transformers' float64 run) as transformers' own float32 run.
    """
    dtype = np.result_type(x, gain, bias)
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
    y = np.subtract(x, mean.astype(dtype), dtype=dtype)
    variance = np.mean(np.square(y), axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
    deviation = np.sqrt(variance + eps).astype(dtype)
    # In place from here: a new [..., n] array a step would be as many more allocations and passes.
    y /= deviation
    y *= gain
    if bias is not None:
        y += bias
    return y


@dataclass(frozen=True)
class Rope:
    """Rotary position embeddings: how each head's dimension pairs turn with position."""

    theta: float  # the base wavelength
    dims: int  # how many of a head's dimensions turn (partial rotary: fewer than d_k)
    scaling: str = "default"  # default, linear (every frequency / factor) or llama3 (by wavelength)
    factor: float = 1.0
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_positions: int = 8192  # llama3: the context it was trained on
    pairing: str = "halves"  # which dimensions turn together: i and i + n/2 ("halves"), or 2i and 2i + 1 ("adjacent")

    def to_json(self) -> dict:
        fields = {"type": "rotary", "theta": self.theta, "dims": self.dims, "scaling": self.scaling}
        if self.pairing != "halves":
            fields["pairing"] = self.pairing
        if self.scaling == "linear":
            return {**fields, "factor": self.factor}
        if self.scaling == "llama3":
            return {
                **fields,
                "factor": self.factor,
                "low_freq_factor": self.low_freq_factor,
                "high_freq_factor": self.high_freq_factor,
                "original_max_positions": self.original_max_positions,
            }
        return fields


@dataclass(frozen=True)
class LayerAttention:
    """What one layer's attention does that another layer's may not: which keys its queries see and
    how positions enter it."""

    window: int | None = None  # a sliding window: each query sees its last `window` keys (itself included)
    rope: Rope | None = None  # the rotary embeddings that turn this layer's q and k; None: no RoPE here


def inverse_frequencies(rope: Rope) -> np.ndarray:
    """Each dimension pair's turn per position, θ^(-2i/n) for i < n/2, scaled as `rope.scaling` says:
    [n/2] float32, computed as transformers computes it, its float32 steps in its order: the
    exponent 2i/n in float32, the power θ^(2i/n) rounded to float32 as torch's pow gives it
    element by element (correctly rounded, from float64 here), the reciprocal in float32.

    numpy's float32 power differs in the last bit for about one pair in six, and the angle
    position · frequency carries the difference further with every position. (torch's vectorised
    pow, which its long tables go through, is itself one bit off the correctly rounded power for a
    pair or two of some tables, depending on the CPU: θ = 10⁶ with 128 dimensions, for one.)

    llama3 (Llama 3.1/3.2) leaves pairs whose wavelength is under original_max_positions /
    high_freq_factor as they are, divides those over original_max_positions / low_freq_factor by
    the factor, and blends the two in between.
    """
    exponents = np.arange(0, rope.dims, 2, dtype=np.float32) / np.float32(rope.dims)  # [n/2]
    powers = np.power(np.float64(np.float32(rope.theta)), exponents.astype(np.float64)).astype(np.float32)
    frequencies = np.reciprocal(powers)  # [n/2]
    if rope.scaling == "linear":
        return frequencies / np.float32(rope.factor)
    if rope.scaling == "llama3":
        low = rope.original_max_positions / rope.low_freq_factor  # longest wavelength left alone
        high = rope.original_max_positions / rope.high_freq_factor
        # a / tensor is the reciprocal times a in torch: the same here, for the same roundings.
        wavelength = np.reciprocal(frequencies) * np.float32(2 * math.pi)
        scaled = np.where(wavelength > low, frequencies / np.float32(rope.factor), frequencies)
        smooth = (np.reciprocal(wavelength) * np.float32(rope.original_max_positions) - rope.low_freq_factor) / (
            rope.high_freq_factor - rope.low_freq_factor
        )
        blended = (1 - smooth) * scaled / np.float32(rope.factor) + smooth * scaled
        middle = ~(wavelength < high) & ~(wavelength > low)
        return np.where(middle, blended, scaled).astype(np.float32)
    return frequencies


@dataclass(eq=False, repr=False)
class Rotary:
    """Rotary position embeddings for T positions: pair i of the first n of a head's dimensions,
    (i, i + n/2) or, adjacent, (2i, 2i + 1), is rotated by the angle position · frequency_i."""

    cos: np.ndarray  # [T, n] cos of each angle, the n/2 angles twice over (adjacent: each twice in a row)
    sin: np.ndarray  # [T, n]
    pairing: str = "halves"  # as the Rope's


def rotary(tokens: int, rope: Rope) -> Rotary:
    """The cos and sin of every position's angles, position · frequency in float32 (as transformers
    computes them, whatever the model's precision), laid out as the pairs are: [T, n]."""
    angles = np.arange(tokens, dtype=np.float32)[:, None] * inverse_frequencies(rope)  # [T, n/2]
    adjacent = rope.pairing == "adjacent"  # [T, n]: a₀ a₀ a₁ a₁ ..., or the halves a₀ a₁ ... a₀ a₁ ...
    angles = np.repeat(angles, 2, axis=-1) if adjacent else np.concatenate([angles, angles], axis=-1)
    return Rotary(np.cos(angles), np.sin(angles), rope.pairing)


def rotate_half(x: np.ndarray) -> np.ndarray:
    """[..., n] -> [..., n]: (x1, x2) -> (-x2, x1), the halves of the last axis."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotate_every_two(x: np.ndarray) -> np.ndarray:
    """[..., n] -> [..., n]: each adjacent pair (x₂ᵢ, x₂ᵢ₊₁) -> (-x₂ᵢ₊₁, x₂ᵢ), as GPT-J and Cohere pair
    a head's dimensions (rotate_half's counterpart for RoPE's adjacent pairing)."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)  # [..., n/2, 2]
    return np.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)


def rotate(x: np.ndarray, rotary: Rotary) -> np.ndarray:
    """RoPE: x · cos + rotate_half(x) · sin (rotate_every_two(x), for adjacent pairs) over the first n
    dimensions of each head, the rest as they are: [..., T, d_k] -> [..., T, d_k]."""
    n = rotary.cos.shape[-1]
    partner = rotate_half if rotary.pairing == "halves" else rotate_every_two
    turned = x[..., :n] * rotary.cos + partner(x[..., :n]) * rotary.sin
    return turned if n == x.shape[-1] else np.concatenate([turned, x[..., n:]], axis=-1)


def repeat_kv(x: np.ndarray, heads: int) -> np.ndarray:
    """[g, T, d_k] -> [h, T, d_k]: each of g key (or value) heads serves h / g query heads in turn."""
    return x if len(x) == heads else np.repeat(x, heads // len(x), axis=0)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(QKᵀ / √d_k) V: [..., T, d_k] for q, k, v -> [..., T, d_v]."""
    return softmax(masked(scaled(scores(q, k), q.shape[-1]), mask)) @ v


@dataclass(eq=False, repr=False)
class Projections:
    """The four projections of a multi-head attention layer, applied as x @ w + b, and the weights of
    the norms some decoders apply to each head's q and k."""

    w_q: np.ndarray  # [d, h·d_k]
    w_k: np.ndarray  # [d, g·d_k]
    w_v: np.ndarray  # [d, g·d_k]
    w_o: np.ndarray  # [h·d_k, d]
    b_q: np.ndarray | None = None  # [h·d_k]
    b_k: np.ndarray | None = None  # [g·d_k]
    b_v: np.ndarray | None = None  # [g·d_k]
    b_o: np.ndarray | None = None  # [d]
    q_norm: np.ndarray | None = None  # [d_k] the q norm's gain, or [h, 1, d_k]: each head's own (StableLM, Cohere)
    k_norm: np.ndarray | None = None  # [d_k], or [g, 1, d_k]
    q_norm_bias: np.ndarray | None = None  # a LayerNorm q norm's bias, as q_norm's gain (Phi)
    k_norm_bias: np.ndarray | None = None


@dataclass(eq=False, repr=False)
class AttentionOptions:
    """How a layer's heads attend, beyond its weights, its mask and its rotary embeddings: the
    choices a model family makes."""

    heads: int  # h query heads
    kv_heads: int | None = None  # g key and value heads, each read by h / g query heads; None: h
    scale: float | None = None  # scores multiplied by this instead of divided by √d_k
    soft_cap: float | None = None  # scores soft-capped at this: cap · tanh(s / cap)
    norm_eps: float = 1e-6  # epsilon of the per-head q and k norms, where the projections have their gains
    norm: str = "rms"  # the per-head q and k norms: RMSNorm, or "layer": LayerNorm


@dataclass(eq=False, repr=False, kw_only=True)
class HeadsTrace:
    """What the heads of one attention layer did with one text's q, k and v."""

    q: np.ndarray  # [h, T, d_k] (after the q norm, before RoPE, where the model has them)
    k: np.ndarray  # [g, T, d_k]
    v: np.ndarray  # [g, T, d_k]
    scores: np.ndarray  # [h, T, T] QKᵀ (with RoPE's q and k, each query head against its key head)
    scaled: np.ndarray  # [h, T, T] QKᵀ / √d_k (or · the model's scale, then soft-capped), before any mask
    weights: np.ndarray  # [h, T, T] softmax of the masked, scaled scores; rows sum to 1
    head_outputs: np.ndarray  # [h, T, d_k] weights @ V
    q_rotated: np.ndarray | None = None  # [h, T, d_k] q after RoPE; None without RoPE
    k_rotated: np.ndarray | None = None  # [g, T, d_k]
    q_projected: np.ndarray | None = None  # [h, T, d_k] q before its norm, kept with the steps; None without a q norm
    k_projected: np.ndarray | None = None  # [g, T, d_k]

    def key_head(self, head: int) -> int:
        """The key and value head that query head `head` reads."""
        return head * len(self.k) // len(self.q)


@dataclass(eq=False, repr=False, kw_only=True)
class AttentionTrace(HeadsTrace):
    """Every intermediate of one multi-head self-attention layer: its input, what its heads did, and
    their outputs put together."""

    x: np.ndarray  # [T, d] input
    concat: np.ndarray  # [T, h·d_k] the heads side by side
    output: np.ndarray  # [T, d] concat @ W_O + b_O


@dataclass(eq=False, repr=False)
class Trace:
    """What a model did to a text, layer by layer: every model's forward pass returns one."""

    embeddings: np.ndarray  # [T, d] the tokens' rows of the word embedding table
    positions: np.ndarray | None  # [T, d] what was added for each position; None when nothing was
    weights: np.ndarray  # [L, h, T, T] every layer's attention weights
    layers: list[AttentionTrace]  # per layer, every intermediate (.x: the attention input); empty unless kept
    layer_outputs: list[np.ndarray]  # [T, d] per layer: what it passes on (after the feed-forward and norms)
    output: np.ndarray  # [T, d] the last hidden state, after a final LayerNorm where there is one
    layer_inputs: list[np.ndarray] | None = None  # [T, d] per layer: the residual stream it reads; kept with the steps


def projections(x: np.ndarray, p: Projections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x @ W_Q + b_Q, x @ W_K + b_K, x @ W_V + b_V: [T, d] -> [T, h·d_k], [T, g·d_k], [T, g·d_k]."""
    return linear(x, p.w_q, p.b_q), linear(x, p.w_k, p.b_k), linear(x, p.w_v, p.b_v)


def per_head(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, p: Projections, options: AttentionOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected q [T, h·d_k], k and v [T, g·d_k] split into heads, [h, T, d_k] and [g, T, d_k], each
    head's q and k normed (RMSNorm or LayerNorm, as the options say) where the projections carry the
    norms' weights."""
    kv_heads = options.kv_heads or options.heads
    q, k, v = split_heads(q, options.heads), split_heads(k, kv_heads), split_heads(v, kv_heads)
    if p.q_norm is not None:
        q, k = head_norm(q, p.q_norm, p.q_norm_bias, options), head_norm(k, p.k_norm, p.k_norm_bias, options)
    return q, k, v


def head_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray | None, options: AttentionOptions) -> np.ndarray:
    """Each head's q (or k) [h, T, d_k] through its norm, over its d_k numbers: an RMSNorm or a LayerNorm
    (with its `bias`), the gain [d_k] one for every head, or [h, 1, d_k] each head's own."""
    if options.norm == "layer":
        return layer_norm(x, gain, bias, options.norm_eps)
    return rms_norm(x, gain, options.norm_eps)


def attend(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    options: AttentionOptions,
    mask: np.ndarray | None = None,
    weights_out: np.ndarray | None = None,
    steps: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scaled dot-product attention of every head: q [h, T, d_k] against k and v [g, T, d_k], each key
    and value head read by its group of query heads. Returns (scores QKᵀ, scaled scores, weights, head
    outputs): [h, T, T] three times and [h, T, d_k].

    The scores are scaled (or multiplied by `options.scale`), soft-capped where the options say so,
    masked by `mask` [T, T] (True = may attend) and turned into weights by softmax, written into
    `weights_out` when it is given. Without `steps` the scores are scaled in place, so that the
    scores returned are the scaled ones: for a caller that keeps only the weights.
    """
    raw = scores(q, repeat_kv(k, options.heads))  # [h, T, T]
    scaled_scores = scaled(raw, q.shape[-1], options.scale, out=None if steps else raw)  # [h, T, T]
    if options.soft_cap is not None:
        scaled_scores = soft_cap(scaled_scores, options.soft_cap)
    weights = masked_softmax(scaled_scores, mask, out=weights_out)  # [h, T, T]
    return raw, scaled_scores, weights, weights @ repeat_kv(v, options.heads)


def heads_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    mask: np.ndarray | None = None,
    rotary: Rotary | None = None,
    weights_out: np.ndarray | None = None,
    steps: bool = True,
) -> HeadsTrace:
    """The heads' part of self-attention for one text, from its projected q [T, h·d_k], k and v
    [T, g·d_k]: split into heads (and q, k normed), turned by `rotary`, then `attend`."""
    projected = (None, None)
    if steps and p.q_norm is not None:  # what the q and k norms read, for a walkthrough to show
        projected = split_heads(q, options.heads), split_heads(k, options.kv_heads or options.heads)
    q, k, v = per_head(q, k, v, p, options)
    q_rotated = k_rotated = None
    if rotary is not None:
        q_rotated, k_rotated = rotate(q, rotary), rotate(k, rotary)  # [h, T, d_k], [g, T, d_k]
    raw, scaled_scores, weights, head_outputs = attend(
        q if q_rotated is None else q_rotated,
        k if k_rotated is None else k_rotated,
        v,
        options,
        mask,
        weights_out,
        steps,
    )
    return HeadsTrace(
        q=q,
        k=k,
        v=v,
        scores=raw,
        scaled=scaled_scores,
        weights=weights,
        head_outputs=head_outputs,
        q_rotated=q_rotated,
        k_rotated=k_rotated,
        q_projected=projected[0],
        k_projected=projected[1],
    )


def multi_head_attention(
    x: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    mask: np.ndarray | None = None,
    rotary: Rotary | None = None,
    weights_out: np.ndarray | None = None,
    steps: bool = True,
) -> AttentionTrace:
    """Multi-head self-attention of `x` [T, d] through projections `p`, tracing each step.

    `mask` is [T, T] bool (True = may attend) and applies to every head; `rotary` turns each head's
    q and k (RoPE). The weights are written into `weights_out` [h, T, T] when it is given. Without
    `steps`, the scores are scaled in place (the trace's scores are then its scaled scores): for a
    caller that keeps only the weights.
    """
    heads = heads_attention(*projections(x, p), p, options, mask, rotary, weights_out, steps)
    concat = merge_heads(heads.head_outputs)  # [T, h·d_k]
    return AttentionTrace(**vars(heads), x=x, concat=concat, output=linear(concat, p.w_o, p.b_o))


def packed_attention(
    x: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    segments: list[slice],
    positions: list[tuple[np.ndarray | None, Rotary | None]],
    weights_out: list[np.ndarray],
) -> np.ndarray:
    """Multi-head self-attention of several texts packed end to end in `x` [N, d], each text attending
    only to itself: the projections run over every token at once, the heads text by text. Text i is
    `segments[i]`, a slice of x, with its mask and rotary embeddings `positions[i]`; its weights go
    into `weights_out[i]` [h, T, T]. Returns the output [N, d]."""
    projected = projections(x, p)
    concat = np.empty((len(x), p.w_o.shape[0]), dtype=projected[0].dtype)  # [N, h·d_k]
    for segment, (mask, rotary), out in zip(segments, positions, weights_out, strict=True):
        text = (part[segment] for part in projected)
        heads = heads_attention(*text, p, options, mask, rotary, out, steps=False)
        concat[segment] = merge_heads(heads.head_outputs)
    return linear(concat, p.w_o, p.b_o)
