"""Scaled dot-product and multi-head self-attention, as plain numpy functions.

Shapes: T tokens, d model width, h heads of d_k numbers each (d / h unless a model
says otherwise), g key and value heads (h unless grouped-query attention shares each
among h / g query heads). Rotary position embeddings (RoPE, its pairs of dimensions halves
or adjacent), ALiBi's linear biases, per-head RMS or LayerNorms of q and k, logit
soft-capping, learned attention sinks and sliding-window masks are here too, as the
decoders use them, with RMS norms over the whole projected q and k and q, k and v clamped
to a bound (OLMo's clip_qkv). So are the encoders' ways: a window on either side of each
query (a bidirectional model's local layers), a relative position bias bucketed by distance
added to the scores, and disentangled attention, whose scores add content-to-position and
position-to-content terms over log-bucketed relative positions; a text's relative positions
are made once for all its layers (RelativePositions). Nothing here reads files, prints, or
knows about terminals.
Every function returns new arrays and changes none of its inputs; the one exception is an
`out` array the caller hands over to be filled, as with numpy's own functions.
"""

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from attncli.parts import in_parts

if TYPE_CHECKING:
    from attncli.experts import Routing
    from attncli.transformer import ResidualParts

__all__ = [
    "EVERYTHING",
    "Alibi",
    "AttentionOptions",
    "AttentionTrace",
    "Disentangled",
    "HeadsTrace",
    "LayerAttention",
    "Projections",
    "Relative",
    "RelativeBias",
    "RelativePositions",
    "Rope",
    "Rotary",
    "Selection",
    "Trace",
    "alibi_biases",
    "alibi_slopes",
    "attend",
    "attention",
    "attention_mask",
    "bfloat16",
    "c2p",
    "causal_mask",
    "clipped",
    "disentangled_heads",
    "dynamic_theta",
    "head_norm",
    "heads_attention",
    "inverse_frequencies",
    "layer_norm",
    "linear",
    "log_buckets",
    "masked",
    "masked_softmax",
    "merge_heads",
    "multi_head_attention",
    "p2c",
    "packed_attention",
    "per_head",
    "projections",
    "relative_position_bias",
    "relative_position_buckets",
    "relative_positions",
    "relative_rows",
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
    "symmetric_window_mask",
    "value_norms",
    "weighted_value_norms",
]


# Elements of softmax's input below which it runs on one thread: a part's hand-over to another thread
# costs tens of microseconds, the time softmax takes over about this many.
_PARTED_SOFTMAX = 1 << 16


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """exp(x) / sum(exp(x)) along `axis`, same shape as `x`; written into `out` when given,
    as numpy's ufuncs do, and cast to its dtype (the forward pass puts each layer's weights
    straight into its slice of the [L, h, T, T] stack instead of copying them there).

    Subtracting the row maximum first cancels in the ratio but keeps exp from
    overflowing, so scores of any size give finite probabilities. A large input, softmax taken
    along its last axis, is cut into parts of whole rows computed at once (parts.in_parts): the
    same numbers, row by row, on every core.
    """
    x = np.asarray(x)
    if x.size < _PARTED_SOFTMAX or x.ndim < 2 or axis not in (-1, x.ndim - 1) or not _rows_apart(x, out):
        return _softmax(x, axis, out)
    e = np.empty(x.shape, np.result_type(x, np.float32)) if out is None else out
    rows, into = x.reshape(-1, x.shape[-1]), e.reshape(-1, x.shape[-1])  # [n, T] views
    in_parts(lambda part: _softmax(rows[part], -1, into[part]), len(rows), _PARTED_SOFTMAX // x.shape[-1])
    return e


def _rows_apart(x: np.ndarray, out: np.ndarray | None) -> bool:
    """Whether `x` and `out` (where given) are C-contiguous arrays of one shape that do not overlap (or are one
    array), so that their rows can be taken apart as views and each part's rows computed alone."""
    if not x.flags.c_contiguous:
        return False
    if out is None or out is x:  # in place, each part's rows are its own
        return True
    return out.shape == x.shape and out.flags.c_contiguous and not np.may_share_memory(x, out)


def _softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """softmax's numbers, on this thread."""
    e = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out, dtype=np.result_type(x, np.float32))
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def masked_softmax(
    x: np.ndarray, mask: np.ndarray | None, out: np.ndarray | None = None, sinks: np.ndarray | None = None
) -> np.ndarray:
    """softmax(masked(x, mask)) over the last axis of `x` [..., T, T] (`mask` [T, T], True = may
    attend), without the masked copy of `x`: the same numbers, exactly 0 where masked, a uniform row
    where nothing is allowed. Written into `out` when given.

    With `sinks` (one logit per head, [h, 1, 1] against x [h, T, T]), each row's softmax runs over
    its keys and one more logit, the head's sink, which then is dropped (GPT-OSS's learned attention
    sinks): a row's weights sum to 1 less the sink's share, and a row with no key allowed is all 0.

    Heads [h, T, T] of many elements are computed in parts of whole heads at once, as softmax's rows are.
    """
    if mask is None and sinks is None:
        return softmax(x, out=out)
    head_sinks = sinks is None or (sinks.ndim == 3 and len(sinks) == len(x))
    if x.ndim != 3 or x.size < _PARTED_SOFTMAX or not head_sinks or not _rows_apart(x, out):
        return _masked_softmax(x, mask, out, sinks)
    e = np.empty(x.shape, np.result_type(x, np.float32)) if out is None else out

    def heads(part: slice) -> None:
        _masked_softmax(x[part], mask, e[part], None if sinks is None else sinks[part])

    in_parts(heads, len(x), _PARTED_SOFTMAX // x[0].size)
    return e


def _masked_softmax(
    x: np.ndarray, mask: np.ndarray | None, out: np.ndarray | None = None, sinks: np.ndarray | None = None
) -> np.ndarray:
    """masked_softmax's numbers, on this thread."""
    allowed = np.ones(x.shape[-2:], dtype=bool) if mask is None else mask
    empty = ~allowed.any(axis=-1)  # [T] rows that may attend to nothing
    top = np.max(x, axis=-1, keepdims=True, where=allowed, initial=-np.inf)  # [..., T, 1] over allowed keys
    if sinks is None:
        top[..., empty, :] = 0.0
    else:
        top = np.maximum(top, sinks)  # finite even where a row allows no key
    e = np.subtract(x, top, out=out, dtype=np.result_type(x, np.float32))
    np.exp(e, out=e, where=allowed)
    np.copyto(e, 0.0, where=~allowed)  # exactly 0, not the -0.0 that multiplying by the mask would leave
    if sinks is None:
        e[..., empty, :] = 1.0
        e /= np.sum(e, axis=-1, keepdims=True)
        return e
    e /= np.sum(e, axis=-1, keepdims=True) + np.exp(sinks - top)
    return e


def causal_mask(n: int, window: int | None = None) -> np.ndarray:
    """[n, n] bool, True where query i may attend to key j: j <= i, and with a sliding `window`
    only the last `window` keys, j > i - window (the query itself included)."""
    mask = np.tri(n, dtype=bool)
    if window is not None and window < n:  # a window as long as the text hides nothing
        mask &= ~np.tri(n, k=-window, dtype=bool)
    return mask


def symmetric_window_mask(n: int, window: int) -> np.ndarray:
    """[n, n] bool, True where query i may attend to key j in a bidirectional sliding `window`: |i - j| <=
    window // 2, the query itself and window // 2 keys on either side (a bidirectional encoder's local
    layer, `window` keys wide)."""
    reach = window // 2
    return np.tri(n, k=reach, dtype=bool) & ~np.tri(n, k=-reach - 1, dtype=bool)  # j <= i + reach, j >= i - reach


def attention_mask(n: int, window: int | None, causal: bool) -> np.ndarray | None:
    """[n, n] bool, the keys each of `n` queries may see in a layer with this sliding `window` (None: no
    window): a causal model's earlier keys (see causal_mask), a bidirectional model's keys within its window
    on either side (see symmetric_window_mask); None where every query sees every key."""
    if causal:
        return causal_mask(n, window)
    return None if window is None else symmetric_window_mask(n, window)


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
    Many rows are scaled in parts at once, as softmax's are.
    """
    operation, by = (np.divide, math.sqrt(d_k)) if scale is None else (np.multiply, scale)
    y = np.empty(s.shape, np.result_type(s, by)) if out is None else out
    _by_rows(lambda rows, into: operation(rows, by, out=into), s, y)
    return y


def soft_cap(s: np.ndarray, cap: float) -> np.ndarray:
    """cap · tanh(s / cap): scores squashed smoothly into (-cap, cap), as Gemma 2 does."""
    return np.tanh(s / cap) * cap


def rms_norm(x: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """x / √(mean(x²) + eps) · gain over the last axis: [..., n] -> [..., n] (no centring, no shift). Many
    rows are normed in parts at once, as softmax's are."""
    y = np.empty(x.shape, x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)  # as x · 1/√(mean(x²) + eps)
    _by_rows(lambda rows, out: _rms_norm(rows, gain, eps, out), x, y)
    return y


def _rms_norm(x: np.ndarray, gain: np.ndarray, eps: float, out: np.ndarray) -> None:
    """rms_norm's numbers, written into `out`, on this thread."""
    np.multiply(x, 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps), out=out)
    out *= gain


def layer_norm(x: np.ndarray, gain: np.ndarray | None, bias: np.ndarray | None, eps: float) -> np.ndarray:
    """(x - mean) / √(variance + eps) · gain + bias over the last axis: [..., n] -> [..., n]; no scale
    when `gain` is None (OLMo's LayerNorm learns none), no shift when `bias` is None.

    The mean and the variance are summed in float64 (the rest is in x's precision): a post-norm
    encoder normalises after every sublayer, and float32 sums put its attention half as far again
    from the truth (transformers' float64 run) as transformers' own float32 run. Many rows are
    normed in parts at once, as softmax's are.
    """
    y = np.empty(x.shape, np.result_type(x, *(part for part in (gain, bias) if part is not None)))
    _by_rows(lambda rows, out: _layer_norm(rows, gain, bias, eps, out), x, y)
    return y


def _layer_norm(x: np.ndarray, gain: np.ndarray | None, bias: np.ndarray | None, eps: float, out: np.ndarray) -> None:
    """layer_norm's numbers, written into `out` (of their dtype), on this thread."""
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
    y = np.subtract(x, mean.astype(out.dtype), out=out, dtype=out.dtype)
    variance = np.mean(np.square(y), axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
    deviation = np.sqrt(variance + eps).astype(out.dtype)
    # In place from here: a new [..., n] array a step would be as many more allocations and passes.
    y /= deviation
    if gain is not None:
        y *= gain
    if bias is not None:
        y += bias


def _by_rows(compute, x: np.ndarray, out: np.ndarray) -> None:
    """compute(x, out), a function of each row of `x` [..., n] alone that writes its rows into `out` [..., n]: for
    many rows, in parts of whole rows at once (parts.in_parts); else, or where the arrays' rows are not plain
    views, on this thread."""
    x = np.asarray(x)
    if x.size < _PARTED_SOFTMAX or x.ndim < 2 or not _rows_apart(x, out):
        compute(x, out)
        return
    rows, into = x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1])  # [m, n] views
    in_parts(lambda part: compute(rows[part], into[part]), len(rows), _PARTED_SOFTMAX // x.shape[-1])


# The settings of each RoPE scaling a Rope's JSON carries, in their order.
_SCALING_FIELDS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_positions"),
    "yarn": ("factor", "original_max_positions", "beta_fast", "beta_slow", "truncate", "attention_factor"),
    "dynamic": ("factor", "original_max_positions"),
    "longrope": ("original_max_positions", "attention_factor", "short_factor", "long_factor"),
}


@dataclass(frozen=True)
class Rope:
    """Rotary position embeddings: how each head's dimension pairs turn with position."""

    theta: float  # the base wavelength
    dims: int  # how many of a head's dimensions turn (partial rotary: fewer than d_k)
    scaling: str = "default"  # default, linear, llama3, yarn, dynamic or longrope (see inverse_frequencies)
    factor: float = 1.0
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_positions: int = 8192  # llama3, yarn, longrope, dynamic: the context it was trained on
    attention_factor: float = 1.0  # yarn, longrope: cos and sin multiplied by this
    beta_fast: float = 32.0  # yarn: pairs turning more often than this over the context keep their frequency
    beta_slow: float = 1.0  # yarn: pairs turning less often than this have it divided by the factor
    truncate: bool = True  # yarn: the ramp between them starts and ends on whole pairs
    short_factor: tuple[float, ...] = ()  # longrope: each pair's divisor for a text within the context
    long_factor: tuple[float, ...] = ()  # longrope: each pair's divisor for a longer text
    pairing: str = "halves"  # which dimensions turn together: i and i + n/2 ("halves"), or 2i and 2i + 1 ("adjacent")

    def to_json(self) -> dict:
        fields = {"type": "rotary", "theta": self.theta, "dims": self.dims, "scaling": self.scaling}
        if self.pairing != "halves":
            fields["pairing"] = self.pairing
        for name in _SCALING_FIELDS.get(self.scaling, ()):
            value = getattr(self, name)
            fields[name] = list(value) if isinstance(value, tuple) else value
        return fields

    def beyond_context(self, tokens: int) -> bool:
        """Whether a text of `tokens` tokens gets the table for texts longer than the context (dynamic and
        longrope choose their frequencies by the text's length; the others have one table)."""
        return self.scaling in ("dynamic", "longrope") and tokens > self.original_max_positions


@dataclass(frozen=True)
class LayerAttention:
    """What one layer's attention does that another layer's may not: which keys its queries see and
    how positions enter it."""

    # a sliding window: each query sees its last `window` keys (itself included); in a bidirectional model, the
    # keys within window // 2 of it on either side
    window: int | None = None
    rope: Rope | None = None  # the rotary embeddings that turn this layer's q and k; None: no RoPE here
    kind: str | None = None  # the family's name for this layer's attention, where it names it (global, local)


def _powers(theta: float, dims: int) -> np.ndarray:
    """θ^(2i/n) for i < n/2: [n/2] float32, as transformers computes it: the exponent 2i/n in float32,
    θ rounded to float32, and the power rounded to float32 as torch's pow gives it element by
    element (correctly rounded, from float64 here)."""
    exponents = np.arange(0, dims, 2, dtype=np.float32) / np.float32(dims)  # [n/2]
    return np.power(np.float64(np.float32(theta)), exponents.astype(np.float64)).astype(np.float32)


def dynamic_theta(rope: Rope, tokens: int) -> float:
    """The base dynamic NTK scaling turns a text of `tokens` tokens with: θ · (factor · T / L - (factor -
    1))^(n / (n - 2)) for T past L = original_max_positions, else as for T = L (θ itself, to a rounding).
    As transformers computes it: at T ≤ L in float64 (when the model is made), past L in float32 (the
    length is then a tensor), the power of the float32 stretch to the float64 exponent rounded once."""
    exponent = rope.dims / (rope.dims - 2)
    length = rope.original_max_positions
    if tokens <= length:
        return rope.theta * ((rope.factor * length / length) - (rope.factor - 1)) ** exponent
    f32 = np.float32
    stretch = f32(tokens) * f32(rope.factor) / f32(length) - f32(rope.factor - 1)
    return float(f32(rope.theta) * f32(np.float64(stretch) ** exponent))


def _yarn_ramp(rope: Rope) -> np.ndarray:
    """YaRN's share of each pair's frequency that stays as it is: [n/2] float32, 1 for pairs that turn
    more than beta_fast times over the original context, 0 for those under beta_slow, a linear ramp
    between (its ends on whole pairs with `truncate`); its float32 steps in transformers' order."""

    def pair(turns: float) -> float:  # the pair that turns `turns` times over the original context
        return (rope.dims * math.log(rope.original_max_positions / (turns * 2 * math.pi))) / (2 * math.log(rope.theta))

    low, high = pair(rope.beta_fast), pair(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rope.dims - 1)
    if low == high:
        high += 0.001  # as transformers does, against a division by 0
    ramp = (np.arange(rope.dims // 2, dtype=np.float32) - np.float32(low)) / np.float32(high - low)  # [n/2]
    return np.float32(1) - np.clip(ramp, np.float32(0), np.float32(1))


def inverse_frequencies(rope: Rope, tokens: int = 0) -> np.ndarray:
    """Each dimension pair's turn per position, θ^(-2i/n) for i < n/2, scaled as `rope.scaling` says,
    for a text of `tokens` tokens (dynamic and longrope choose their table by the text's length): [n/2]
    float32, computed as transformers computes it, its float32 steps in its order (see _powers; the
    reciprocal in float32).

    numpy's float32 power differs in the last bit for about one pair in six, and the angle
    position · frequency carries the difference further with every position. (torch's vectorised
    pow, which its long tables go through, is itself one bit off the correctly rounded power for a
    pair or two of some tables, depending on the CPU: θ = 10⁶ with 128 dimensions, for one. Its
    element-by-element pow is glibc's powf, which for the θ dynamic scaling computes past its
    context, a float32 of any digits, is a bit off the correctly rounded power in one pair of a
    few hundred.)

    linear divides every frequency by the factor. llama3 (Llama 3.1/3.2) leaves pairs whose
    wavelength is under original_max_positions / high_freq_factor as they are, divides those over
    original_max_positions / low_freq_factor by the factor, and blends the two in between. yarn
    blends each pair's frequency with it divided by the factor (see _yarn_ramp). dynamic (NTK)
    raises θ for a text longer than original_max_positions (see dynamic_theta). longrope divides
    each pair's frequency by its short factor, or by its long factor for a text longer than
    original_max_positions.
    """
    if rope.scaling == "dynamic":
        return np.reciprocal(_powers(dynamic_theta(rope, tokens), rope.dims))
    powers = _powers(rope.theta, rope.dims)  # [n/2]
    if rope.scaling == "longrope":
        factors = np.array(rope.long_factor if rope.beyond_context(tokens) else rope.short_factor, np.float32)
        return np.reciprocal(factors * powers)
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
    if rope.scaling == "yarn":
        kept = _yarn_ramp(rope)  # [n/2]
        divided = np.reciprocal(np.float32(rope.factor) * powers)  # [n/2]
        return divided * (np.float32(1) - kept) + frequencies * kept
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
    computes them, whatever the model's precision), laid out as the pairs are, times the attention factor
    (yarn, longrope): [T, n]. Its frequencies are those for a text of `tokens` tokens."""
    angles = np.arange(tokens, dtype=np.float32)[:, None] * inverse_frequencies(rope, tokens)  # [T, n/2]
    adjacent = rope.pairing == "adjacent"  # [T, n]: a₀ a₀ a₁ a₁ ..., or the halves a₀ a₁ ... a₀ a₁ ...
    angles = np.repeat(angles, 2, axis=-1) if adjacent else np.concatenate([angles, angles], axis=-1)
    cos, sin = np.cos(angles), np.sin(angles)  # [T, n]
    if rope.attention_factor != 1.0:
        cos *= np.float32(rope.attention_factor)
        sin *= np.float32(rope.attention_factor)
    return Rotary(cos, sin, rope.pairing)


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


@dataclass(frozen=True)
class Alibi:
    """ALiBi (Press, Smith and Lewis, 2021), attention with linear biases: no position embeddings;
    instead head h adds m_h · j to its scores for key j, a slope m_h of its own times the key's
    position. The bias is the same for every query, and softmax ignores what a row adds to all its
    scores, so query i sees it as -m_h · (i - j): a penalty growing with the distance back. The
    fields say how a family computes the biases, for its float32 steps to be transformers' own."""

    bfloat16: bool = False  # the slope, the position and their product each rounded to bfloat16
    scaled: bool = False  # the biases divided by √d_k, as the scores are: (QKᵀ + m·j) / √d_k; else
    # QKᵀ / √d_k + m·j

    def to_json(self, heads: int) -> dict:
        return {"type": "alibi", "slopes": alibi_slopes(heads).tolist(), "scaled": self.scaled}


def alibi_slopes(heads: int) -> np.ndarray:
    """Each head's ALiBi slope, [h] float32, as transformers computes them. For h a power of two, the
    geometric sequence 2^(-8/h), 2^(-16/h) ... 2^(-8); for another h, that of the largest power of two
    n below it, then the odd terms of 2n's sequence (2^(-4/n), 2^(-12/n) ...) for the h - n heads left.
    Each is the float32 base's power correctly rounded to float32 (torch's vectorised pow, which
    transformers calls, is itself one bit off that for a slope or two of most head counts from 32 on)."""
    n = 2 ** (heads.bit_length() - 1)  # the largest power of two up to h
    slopes = _float32_powers(2 ** (-8 / n), np.arange(1, n + 1))  # [n]
    odd = _float32_powers(2 ** (-4 / n), np.arange(1, 2 * (heads - n), 2))  # [h - n]
    return np.concatenate([slopes, odd])


def _float32_powers(base: float, exponents: np.ndarray) -> np.ndarray:
    """float32(base) ** k for each integer k, computed in float64 and rounded once to float32: [k]."""
    return np.power(np.float64(np.float32(base)), exponents.astype(np.float64)).astype(np.float32)


def bfloat16(x: np.ndarray) -> np.ndarray:
    """`x` rounded to bfloat16 (float32's top 16 bits: 8 of significand), to nearest, ties to even,
    as float32 values: [...] -> [...]."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    halfway = np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))  # below half rounds down; half rounds to even
    return ((bits + halfway) & np.uint32(0xFFFF0000)).view(np.float32)


def alibi_biases(alibi: Alibi, heads: int, tokens: int, d_k: int) -> np.ndarray:
    """ALiBi's bias on each head's scores for each key j, m_h · j (/ √d_k where `alibi.scaled`),
    [h, T] float32, with the family's roundings: a float32 product, or one in bfloat16."""
    slopes = alibi_slopes(heads)[:, None]  # [h, 1]
    positions = np.arange(tokens, dtype=np.float32)  # [T]
    biases = bfloat16(bfloat16(slopes) * bfloat16(positions)) if alibi.bfloat16 else slopes * positions  # [h, T]
    return biases / np.float32(math.sqrt(d_k)) if alibi.scaled else biases


@dataclass(frozen=True)
class Disentangled:
    """Disentangled attention (He, Liu, Gao and Chen, 2021): a token's content and its position relative to
    another attend apart. Query i's score for key j sums content to content, Q_c K_cᵀ, content to position
    (c2p), Q_c K_{r,δ(i,j)}ᵀ: i's content against the key of j's position relative to it, and position to
    content (p2c), K_c Q_{r,δ(j,i)}ᵀ: j's content against the query of i's position relative to j, where
    K_r and Q_r project a table of 2k relative position embeddings (rows −k ... k − 1); the sum is divided
    by √(d_k · (1 + the number of position terms)). δ(i, j) = i − j, in log buckets past ±buckets/2
    where the model has them, and clipped to the table."""

    c2p: bool  # content to position
    p2c: bool  # position to content
    span: int  # k: the table's 2k rows are relative positions −k ... k − 1 (position_buckets, else
    # max_relative_positions); farther ones read its first or last row
    buckets: int = 0  # position_buckets: distances past buckets/2 share log-spaced buckets (log_buckets); 0: none
    max_relative: int = 512  # max_relative_positions: the distance whose bucket is buckets - 1
    shared: bool = False  # share_att_key: the relative positions pass the layer's own W_Q and W_K, not W_{Q,r}, W_{K,r}
    normed: bool = False  # norm_rel_ebd layer_norm: the relative embeddings pass a LayerNorm first
    absolute: bool = False  # position_biased_input: a learned table of absolute positions is added to the embeddings

    @property
    def terms(self) -> int:
        """How many terms each score sums: content to content, and c2p and p2c where the model has them."""
        return 1 + self.c2p + self.p2c

    def scale(self, d_k: int) -> np.float32:
        """What the summed scores are divided by, √(d_k · terms), in float32 as transformers computes it."""
        return np.sqrt(np.float32(d_k * self.terms))

    def to_json(self) -> dict:
        return {
            "type": "disentangled",
            "position_terms": [term for term, kept in (("c2p", self.c2p), ("p2c", self.p2c)) if kept],
            "span": self.span,
            "buckets": self.buckets,
            "max_relative": self.max_relative,
            "shared_key": self.shared,
            "normed": self.normed,
            "absolute": self.absolute,
        }


def log_buckets(delta: np.ndarray, buckets: int, max_relative: int) -> np.ndarray:
    """Relative positions δ in disentangled attention's log buckets: δ itself where |δ| ≤ m = buckets/2,
    else sign(δ) · (m + ⌈log(|δ|/m) / log((max_relative - 1)/m) · (m - 1)⌉), so that |δ| = max_relative - 1
    is bucket ±(2m - 1) and farther ones go on growing, by a bucket each time the distance grows by the same
    factor: [...] int -> [...] int64. The logarithms are float32's correctly rounded ones (torch's, to the bit,
    on every bucket of every table up to 512 buckets and distances of 9,000), the steps in float32 as
    transformers takes them."""
    m = buckets // 2
    distance = np.abs(delta)
    near = distance <= m  # [...] δ itself there: its logs are not read (transformers takes those of m - 1)
    ratio = np.maximum(distance, m).astype(np.float32) / np.float32(m)  # [...] |δ| / m, 1 where near
    steps = _float32_log(ratio) / _float32_log(np.float32((max_relative - 1) / m)) * np.float32(m - 1)
    far = np.ceil(steps) + np.float32(m)  # [...] float32
    return np.where(near, delta, np.sign(delta) * far.astype(np.int64))


def _float32_log(x: np.ndarray) -> np.ndarray:
    """The natural log of float32 `x`, correctly rounded to float32: [...] -> [...]. numpy's own float32
    log misses torch's by a bit in one value of 25; this, in 3 of 200,000."""
    return np.log(np.asarray(x, np.float32).astype(np.float64)).astype(np.float32)


def relative_positions(tokens: int, disentangled: Disentangled) -> np.ndarray:
    """δ(i, j) = i − j for query i and key j, in log buckets where the model has them (not yet clipped to
    the table): [T, T] int64."""
    distances = np.arange(tokens - 1, -tokens, -1)  # [2T - 1] from T - 1 down to -(T - 1)
    if disentangled.buckets > 0:
        distances = log_buckets(distances, disentangled.buckets, disentangled.max_relative)
    # δ(i, j) is distances[T - 1 - (i - j)]: a sliding window over the reversed row
    return np.lib.stride_tricks.sliding_window_view(distances, tokens)[::-1].copy()


@dataclass(eq=False, repr=False)
class Relative:
    """A text's relative positions as disentangled attention reads them: which row of the relative
    embedding table each query's c2p term and each key's p2c term reads, and those rows."""

    delta: np.ndarray  # [T, T] δ(i, j), bucketed, clipped to the table's −k ... k − 1: the position c2p and p2c read
    rows: np.ndarray  # [R] the table's rows some query or key reads, ascending (at most 2T - 1 of its 2k)
    c2p_rows: np.ndarray  # [T, T] query i's row for key j, δ(i, j) + k, as an index into `rows`
    # [T, T] at row a, column b: -δ(a, b) + k, as an index into `rows`; p2c gathers K_c Q_rᵀ by it and transposes,
    # so that query i and key j read -δ(j, i) + k (δ(i, j) + k again, the buckets being odd)
    p2c_rows: np.ndarray
    embeddings: np.ndarray  # [R, d] those rows of the table (through its LayerNorm, where the model has one)


def relative_rows(delta: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of a table of 2k relative positions that δ [T, T] reads, as transformers reads them, c2p at
    δ + k and p2c at -δ + k, each clipped to the table: (the rows read [R], ascending; c2p's and p2c's
    [T, T] indices into them)."""
    c2p = np.clip(delta + span, 0, 2 * span - 1)  # [T, T] rows of the table
    p2c = np.clip(-delta + span, 0, 2 * span - 1)
    rows = np.union1d(c2p, p2c)  # [R]
    return rows, np.searchsorted(rows, c2p), np.searchsorted(rows, p2c)


def c2p(q: np.ndarray, k_r: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Content to position, Q_c K_{r,δ(i,j)}ᵀ: query i's content against the key of key j's position relative
    to it. q [h, T, d_k], the positional keys k_r [h, R, d_k] of the R table rows read, `rows` [T, T] the row
    query i reads for key j -> [h, T, T] (unscaled)."""
    return np.take_along_axis(scores(q, k_r), rows[None], axis=-1)


def p2c(k: np.ndarray, q_r: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Position to content, K_c Q_{r,δ(j,i)}ᵀ: key j's content against the query of query i's position
    relative to j. k [h, T, d_k], the positional queries q_r [h, R, d_k] of the R table rows read, `rows`
    [T, T] by which K_c Q_rᵀ is gathered (see Relative.p2c_rows) -> [h, T, T] (unscaled), [query, key] as the
    scores are: the gathered K_c Q_rᵀ transposed, as transformers computes it."""
    return np.take_along_axis(scores(k, q_r), rows[None], axis=-1).swapaxes(-1, -2)


@dataclass(frozen=True)
class RelativeBias:
    """A relative position bias (Shaw, Uszkoreit and Vaswani, 2018, bucketed as Raffel et al., 2020 do for
    T5): head h adds a learned number to its score of query i for key j, the one of the bucket the signed
    distance j - i falls in. Half the buckets are for keys before the query, half for keys after it; in
    each half, the first quarter of the buckets are the distances 0, 1, 2 ... one each, and the rest
    cover distances logarithmically wider up to `max_distance`, beyond which all share the last bucket.
    One table of [buckets, h] numbers serves every layer."""

    buckets: int = 32
    max_distance: int = 128

    def to_json(self) -> dict:
        return {"buckets": self.buckets, "max_distance": self.max_distance}


def relative_position_buckets(tokens: int, bias: RelativeBias) -> np.ndarray:
    """Each query i's bucket for each key j of a text of `tokens` tokens (see RelativeBias): [T, T] int.
    Computed as transformers computes them: a distance n of half/2 or more goes to half/2 + ⌊ln(n /
    (half/2)) / ln(max_distance / (half/2)) · half/2⌋ (the last bucket at most), in float32, its log
    correctly rounded; keys after the query take the buckets from half on."""
    half = bias.buckets // 2
    exact = half // 2  # the distances below this have a bucket each
    distance = np.arange(tokens)  # [T] |i - j|
    ratio = np.maximum(distance, exact).astype(np.float32) / np.float32(exact)  # [T], at least 1: no log of 0
    logs = np.log(ratio.astype(np.float64)).astype(np.float32)
    steps = logs / np.float32(math.log(bias.max_distance / exact)) * np.float32(half - exact)  # [T]
    per_distance = np.where(distance < exact, distance, np.minimum(exact + steps.astype(np.int64), half - 1))  # [T]
    offsets = np.subtract.outer(distance, distance)  # [T, T] i - j: above 0 for keys before the query
    return per_distance[np.abs(offsets)] + half * (offsets < 0)


def relative_position_bias(table: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """Each head's bias for each query and key, looked up by their bucket in the learned `table` [buckets, h]:
    [T, T] buckets -> [h, T, T]."""
    return np.ascontiguousarray(np.moveaxis(table[buckets], -1, 0))


@dataclass(eq=False, repr=False)
class RelativePositions:
    """What a text's relative positions give every layer's scores, made once for the text (they are the same
    in each layer): a relative position bias added to them, or the relative positions disentangled attention's
    position terms read. A model has one kind or the other."""

    bias: np.ndarray | None = None  # [h, T, T] each head's bias for each query and key (RelativeBias)
    disentangled: Relative | None = None  # the text's relative positions, for disentangled attention's terms


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
    whole_q_norm: np.ndarray | None = None  # [h·d_k] an RMSNorm over all of q's heads at once, before they split
    whole_k_norm: np.ndarray | None = None  # [g·d_k]
    sinks: np.ndarray | None = None  # [h] each head's learned sink logit, joining every row's softmax (GPT-OSS)
    # Disentangled attention's projections of the relative position embeddings, x @ W + b: into queries for p2c
    # and keys for c2p (W_Q, b_Q and W_K, b_K themselves where the model shares them); None without such a term
    w_pos_q: np.ndarray | None = None  # [d, h·d_k]
    b_pos_q: np.ndarray | None = None  # [h·d_k]
    w_pos_k: np.ndarray | None = None  # [d, h·d_k]
    b_pos_k: np.ndarray | None = None  # [h·d_k]


@dataclass(eq=False, repr=False)
class AttentionOptions:
    """How a layer's heads attend, beyond its weights, its mask and its rotary embeddings: the
    choices a model family makes."""

    heads: int  # h query heads
    kv_heads: int | None = None  # g key and value heads, each read by h / g query heads; None: h
    scale: float | None = None  # scores multiplied by this instead of divided by √d_k
    soft_cap: float | None = None  # scores soft-capped at this: cap · tanh(s / cap)
    norm_eps: float = 1e-6  # epsilon of the q and k RMSNorms (per head or whole), where the projections have gains
    clip_qkv: float | None = None  # q, k and v clamped to [-clip_qkv, clip_qkv] once projected (and normed)
    alibi: Alibi | None = None  # ALiBi's linear biases on the scaled scores, as the family computes them
    norm: str = "rms"  # the per-head q and k norms: RMSNorm, or "layer": LayerNorm
    disentangled: Disentangled | None = None  # c2p and p2c terms and their scale, over relative positions


@dataclass(eq=False, repr=False, kw_only=True)
class HeadsTrace:
    """What the heads of one attention layer did with one text's q, k and v."""

    q: np.ndarray  # [h, T, d_k] (after the q norms and clamping, before RoPE, where the model has them)
    k: np.ndarray  # [g, T, d_k]
    v: np.ndarray  # [g, T, d_k]
    scores: np.ndarray  # [h, T, T] QKᵀ (with RoPE's q and k, each query head against its key head)
    scaled: np.ndarray  # [h, T, T] QKᵀ / √d_k (or · the model's scale, plus ALiBi's biases, then soft-capped),
    # before any mask
    weights: np.ndarray  # [h, T, T] softmax of the masked, scaled scores; rows sum to 1 (less a sink's share)
    head_outputs: np.ndarray  # [h, T, d_k] weights @ V
    q_rotated: np.ndarray | None = None  # [h, T, d_k] q after RoPE; None without RoPE
    k_rotated: np.ndarray | None = None  # [g, T, d_k]
    # x·W + b of q [T, h·d_k], k and v [T, g·d_k] as projected, before the whole-projection norms and
    # clip_qkv change them; None where the model does neither
    projected: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    alibi: np.ndarray | None = None  # [h, T] ALiBi: each head's bias B_j for key j (query i's scores got B_j - B_i)
    sinks: np.ndarray | None = None  # [h] each head's learned sink logit, where the model has them (GPT-OSS)
    q_projected: np.ndarray | None = None  # [h, T, d_k] q before its norm, kept with the steps; None without a q norm
    k_projected: np.ndarray | None = None  # [g, T, d_k]
    # Disentangled attention's position terms, [h, T, T] unscaled: c2p, query i's content against the key of key
    # j's relative position, and p2c, key j's content against the query of query i's; `scores` is then its
    # content to content term, and `scaled` the three summed and divided by √(d_k · terms). None without them
    c2p: np.ndarray | None = None
    p2c: np.ndarray | None = None
    # [h, T, T] the relative position bias each head added to its scaled scores, where the model has one (one
    # array, computed once for the text, in every layer's trace)
    position_bias: np.ndarray | None = None

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


@dataclass(frozen=True)
class Selection:
    """The layers and heads whose attention a forward pass keeps (in increasing order; None: all of them). The
    pass still runs every head of a layer, as the next layer reads them all; it stops after the last layer kept."""

    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None

    def __post_init__(self):
        for kept in (self.layers, self.heads):
            if kept is not None and (not kept or list(kept) != sorted(set(kept)) or kept[0] < 0):
                raise ValueError(f"a selection keeps indices in increasing order, at least one: not {kept}")

    def kept_layers(self, count: int) -> tuple[int, ...]:
        """The layers kept of a model's `count`."""
        return tuple(range(count)) if self.layers is None else _within(self.layers, count)

    def kept_heads(self, count: int) -> tuple[int, ...]:
        """The heads kept of each layer's `count`."""
        return tuple(range(count)) if self.heads is None else _within(self.heads, count)

    def runs(self, count: int) -> int:
        """How many of a model's `count` layers a pass runs: up to the last kept, none after."""
        return self.kept_layers(count)[-1] + 1

    def fits(self, layers: int, heads: int) -> bool:
        """Whether a model of `layers` layers of `heads` heads has every layer and head kept."""
        return all(kept is None or kept[-1] < count for kept, count in ((self.layers, layers), (self.heads, heads)))

    @property
    def everything(self) -> bool:
        """Whether the selection keeps every layer and head."""
        return self.layers is None and self.heads is None


EVERYTHING = Selection()


def _within(kept: tuple[int, ...], count: int) -> tuple[int, ...]:
    if kept[-1] >= count:
        raise ValueError(f"a selection of {kept} of {count}")
    return kept


@dataclass(eq=False, repr=False)
class Trace:
    """What a model did to a text, layer by layer: every model's forward pass returns one."""

    embeddings: np.ndarray  # [T, d] the tokens' rows of the word embedding table ([T, e] where they are narrower)
    positions: np.ndarray | None  # [T, d] what was added for each position ([T, e] where it is added before the
    # projection); None when nothing was
    # [L, h, T, T] every layer's attention weights: of the layers and heads the pass was asked to keep (see Selection),
    # [0, 0, T, T] where it handed each layer's weights to a caller instead of keeping them
    weights: np.ndarray
    layers: list[AttentionTrace]  # per layer, every intermediate (.x: the attention input); empty unless kept
    layer_outputs: list[np.ndarray]  # [T, d] per layer: what it passes on (after the feed-forward and norms)
    output: np.ndarray  # [T, d] the last hidden state, after a final LayerNorm where there is one (and [T, e],
    # projected back, where the word embeddings are narrower than the model); where the pass stopped after the
    # last layer a Selection kept, that layer's output, the same way
    # per layer, where its mixture of experts sent each token (None for a dense layer); empty unless kept
    routing: list["Routing | None"] = field(default_factory=list)
    layer_inputs: list[np.ndarray] | None = None  # [T, d] per layer: the residual stream it reads; kept with the steps
    # Disentangled attention's, kept with the steps: [T, T] the relative position δ(i, j) query i's c2p and p2c
    # terms read for key j (i − j, log-bucketed, clipped to the table); and [T, d] act(conv(x)) of the first
    # layer's input x, which its output adds before the convolution's LayerNorm (None without a convolution)
    relative_positions: np.ndarray | None = None
    convolution: np.ndarray | None = None
    # [T, e] the embeddings summed and normed, before their projection into the model's width, where the model
    # projects them so (embedding_size); kept with the steps
    normed_embeddings: np.ndarray | None = None
    # [L, h, T] ‖v_j W_O^h‖ of each layer's heads and keys (see value_norms), where the forward pass was asked for
    # them: of the layers and heads it kept
    value_norms: np.ndarray | None = None
    # the last residual stream at the positions forward was asked to decompose, split into what each part of the
    # model wrote into it; None unless asked
    residual_parts: "ResidualParts | None" = None
    # [L + 1, T, d_h] each layer's residual stream (the embeddings' first, the last layer's last) as the
    # language-model head reads it: through the final norm, projected out where the model projects its output (the
    # last is `output`); kept where asked for, for the logit lens
    head_inputs: np.ndarray | None = None

    @cached_property
    def norms(self) -> np.ndarray:
        """[L, h, T, T] every layer's ‖α_ij v_j W_O^h‖ (see weighted_value_norms), made on first use from the
        weights and the value norms, which the forward pass must have been asked for."""
        return weighted_value_norms(self.weights, self.value_norms)


def projections(x: np.ndarray, p: Projections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x @ W_Q + b_Q, x @ W_K + b_K, x @ W_V + b_V: [T, d] -> [T, h·d_k], [T, g·d_k], [T, g·d_k]."""
    return linear(x, p.w_q, p.b_q), linear(x, p.w_k, p.b_k), linear(x, p.w_v, p.b_v)


def clipped(x: np.ndarray, bound: float) -> np.ndarray:
    """`x` with every value clamped to [-bound, bound], as OLMo clamps q, k and v: same shape."""
    return np.clip(x, -bound, bound)


def per_head(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, p: Projections, options: AttentionOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected q [T, h·d_k], k and v [T, g·d_k] split into heads, [h, T, d_k] and [g, T, d_k]: q and k
    RMS-normed over the whole projection first where the projections carry those gains (OLMo 2), then
    q, k and v clamped where the options bound them (OLMo), and each head's q and k normed (RMSNorm or
    LayerNorm, as the options say) where the projections carry the per-head weights (Qwen 3, Gemma 3,
    Phi, StableLM, Cohere)."""
    if p.whole_q_norm is not None:
        q, k = rms_norm(q, p.whole_q_norm, options.norm_eps), rms_norm(k, p.whole_k_norm, options.norm_eps)
    if options.clip_qkv is not None:
        q, k, v = (clipped(part, options.clip_qkv) for part in (q, k, v))
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
    sinks: np.ndarray | None = None,
    biases: np.ndarray | None = None,
    position_bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scaled dot-product attention of every head: q [h, T, d_k] against k and v [g, T, d_k], each key
    and value head read by its group of query heads. Returns (scores QKᵀ, scaled scores, weights, head
    outputs): [h, T, T] three times and [h, T, d_k].

    The scores are scaled (or multiplied by `options.scale`), given `biases` [h, T] (each head's for
    each key, ALiBi's) or `position_bias` [h, T, T] (each head's for each query and key, a relative
    position bias) where there are any, soft-capped where the options say so, masked by `mask`
    [T, T] (True = may attend) and turned into weights by softmax (with each head's sink logit,
    `sinks` [h], where the model has them), written into `weights_out` when it is given. Without
    `steps` the scores are scaled in place, so that the scores returned are the scaled ones: for a
    caller that keeps only the weights; and without `weights_out` too, the softmax is taken in place as
    well (what is returned as scores is then the weights): one [h, T, T] a layer, where a long text's
    attention is handed on a layer at a time.
    """
    raw = scores(q, repeat_kv(k, options.heads))  # [h, T, T]
    scaled_scores = scaled(raw, q.shape[-1], options.scale, out=None if steps else raw)  # [h, T, T]
    if biases is not None:  # query i's scores get B_j - B_i, m·(j - i): the weights of B_j, each row shifted
        # by a constant softmax ignores, with no score rounded to the precision of a long text's largest B_j
        scaled_scores += biases[:, None, :] - biases[:, :, None]  # [h, T, T]
    if position_bias is not None:
        scaled_scores += position_bias  # [h, T, T]
    if options.soft_cap is not None:
        scaled_scores = soft_cap(scaled_scores, options.soft_cap)
    head_sinks = None if sinks is None else sinks.reshape(-1, 1, 1)  # [h, 1, 1]
    out = (
        weights_out if weights_out is not None or steps else scaled_scores
    )  # without steps: in place, no 2nd [h, T, T]
    weights = masked_softmax(scaled_scores, mask, out=out, sinks=head_sinks)  # [h, T, T]
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
    relative: RelativePositions | None = None,
) -> HeadsTrace:
    """The heads' part of self-attention for one text, from its projected q [T, h·d_k], k and v
    [T, g·d_k]: split into heads (and q, k normed, q, k, v clamped), turned by `rotary`, then `attend`
    (with ALiBi's biases where the options have them, and the text's `relative` position bias); or,
    where the text's `relative` positions are disentangled attention's, `disentangled_heads`. With
    `steps`, the projections are kept as they were where norms or clamping change them whole, and
    what per-head q and k norms read."""
    if relative is not None and relative.disentangled is not None:
        return disentangled_heads(q, k, v, p, options, relative.disentangled, mask, weights_out, steps)
    position_bias = None if relative is None else relative.bias  # [h, T, T] or None
    changed = p.whole_q_norm is not None or options.clip_qkv is not None
    projected = (q, k, v) if steps and changed else None
    head_inputs = (None, None)
    if steps and p.q_norm is not None:  # what the q and k norms read, for a walkthrough to show
        head_inputs = split_heads(q, options.heads), split_heads(k, options.kv_heads or options.heads)
    q, k, v = per_head(q, k, v, p, options)
    q_rotated = k_rotated = None
    if rotary is not None:
        q_rotated, k_rotated = rotate(q, rotary), rotate(k, rotary)  # [h, T, d_k], [g, T, d_k]
    _, tokens, d_k = q.shape
    biases = None if options.alibi is None else alibi_biases(options.alibi, options.heads, tokens, d_k)  # [h, T]
    raw, scaled_scores, weights, head_outputs = attend(
        q if q_rotated is None else q_rotated,
        k if k_rotated is None else k_rotated,
        v,
        options,
        mask,
        weights_out,
        steps,
        p.sinks,
        biases,
        position_bias,
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
        projected=projected,
        alibi=biases,
        sinks=p.sinks,
        q_projected=head_inputs[0],
        k_projected=head_inputs[1],
        position_bias=position_bias,
    )


def disentangled_heads(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    relative: Relative,
    mask: np.ndarray | None = None,
    weights_out: np.ndarray | None = None,
    steps: bool = True,
) -> HeadsTrace:
    """Disentangled attention's heads for one text, from its projected q, k and v [T, h·d_k] and its
    `relative` positions: Ã = Q_c K_cᵀ + Q_c K_{r,δ(i,j)}ᵀ + K_c Q_{r,δ(j,i)}ᵀ (content to content, c2p and
    p2c, as the options' `disentangled` has them), each divided by √(d_k · terms), the position terms' sum
    added to the content's as transformers adds them; then softmax (written into `weights_out`) and the
    weighted values. K_r and Q_r are the table rows the text reads through the projections' W_{K,r} and W_{Q,r}
    (W_K and W_Q themselves, where the model shares them). Without `steps`, the content scores are
    scaled in place and the position terms are not kept."""
    heads, d = options.heads, options.disentangled
    q, k, v = split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)  # [h, T, d_k]
    scale = d.scale(q.shape[-1])
    raw = scores(q, k)  # [h, T, T] content to content
    scaled_scores = np.divide(raw, scale, out=None if steps else raw)  # [h, T, T]
    content_position = position_content = positions = None
    if d.c2p:
        k_r = split_heads(linear(relative.embeddings, p.w_pos_k, p.b_pos_k), heads)  # [h, R, d_k]
        content_position = c2p(q, k_r, relative.c2p_rows)  # [h, T, T]
        positions = content_position / scale
    if d.p2c:
        q_r = split_heads(linear(relative.embeddings, p.w_pos_q, p.b_pos_q), heads)  # [h, R, d_k]
        position_content = p2c(k, q_r, relative.p2c_rows)  # [h, T, T]
        positions = position_content / scale if positions is None else positions + position_content / scale
    if positions is not None:
        scaled_scores += positions
    out = weights_out if weights_out is not None or steps else scaled_scores  # as attend's
    weights = masked_softmax(scaled_scores, mask, out=out)  # [h, T, T]
    terms = {"c2p": content_position, "p2c": position_content} if steps else {}
    return HeadsTrace(
        q=q, k=k, v=v, scores=raw, scaled=scaled_scores, weights=weights, head_outputs=weights @ v, **terms
    )


def value_norms(v: np.ndarray, w_o: np.ndarray, heads: int) -> np.ndarray:
    """‖f_h(x_j)‖ = ‖v_j W_O^h‖ (Kobayashi, Kuribayashi, Yokoi and Inui, 2020, "Attention is not only a
    weight: analyzing transformers with vector norms"): the length of what key j's value adds to the
    layer's output through head h for each unit of attention on it. v [g, T, d_k] (query head h reads its
    key-value head, as repeat_kv pairs them), W_O [h·d_k, d], whose rows h·d_k ... (h+1)·d_k − 1 are the
    ones head h's outputs multiply (W_O^h) -> [h, T], in v's precision. The output bias b_O is added once
    to the layer's output, no key's share: it is left out.

    Computed as √(v_j G_h v_jᵀ) with G_h = W_O^h W_O^hᵀ [d_k, d_k] in float64: d_k / d the work of
    v_j W_O^h itself, and no [h, T, d] array."""
    d_k = v.shape[-1]
    w = w_o.reshape(heads, d_k, -1).astype(np.float64)  # [h, d_k, d] W_O^h
    gram = w @ w.swapaxes(-1, -2)  # [h, d_k, d_k] G_h
    values = repeat_kv(v, heads).astype(np.float64)  # [h, T, d_k]
    squares = np.sum((values @ gram) * values, axis=-1)  # [h, T] ‖v_j W_O^h‖²
    return np.sqrt(np.maximum(squares, 0.0)).astype(v.dtype)  # rounding can take a square just below 0


def weighted_value_norms(weights: np.ndarray, norms: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """‖α_ij f_h(x_j)‖ = α_ij · ‖v_j W_O^h‖ (Kobayashi et al., 2020): key j's share of head h's output at
    query i, as a length. `weights` [..., T, T] α and `norms` [..., T] their heads' value norms (see
    value_norms) -> [..., T, T]: 0 where the weight is 0 (a masked key), and rows that need not sum to 1.
    Written into `out` when given (which may be `weights` itself)."""
    return np.multiply(weights, norms[..., None, :], out=out)


def multi_head_attention(
    x: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    mask: np.ndarray | None = None,
    rotary: Rotary | None = None,
    weights_out: np.ndarray | None = None,
    steps: bool = True,
    relative: RelativePositions | None = None,
) -> AttentionTrace:
    """Multi-head self-attention of `x` [T, d] through projections `p`, tracing each step.

    `mask` is [T, T] bool (True = may attend) and applies to every head; `rotary` turns each head's
    q and k (RoPE); `relative` is what the text's relative positions give the scores (a bias, or
    disentangled attention's positions). The weights are written into `weights_out` [h, T, T] when it
    is given. Without `steps`, the scores are scaled in place (the trace's scores are then its scaled
    scores): for a caller that keeps only the weights.
    """
    heads = heads_attention(*projections(x, p), p, options, mask, rotary, weights_out, steps, relative)
    concat = merge_heads(heads.head_outputs)  # [T, h·d_k]
    return AttentionTrace(**vars(heads), x=x, concat=concat, output=linear(concat, p.w_o, p.b_o))


def packed_attention(
    x: np.ndarray,
    p: Projections,
    options: AttentionOptions,
    segments: list[slice],
    positions: list[tuple[np.ndarray | None, Rotary | None]],
    weights_out: list[np.ndarray],
    relatives: list[RelativePositions | None] | None = None,
    value_norms_out: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Multi-head self-attention of several texts packed end to end in `x` [N, d], each text attending
    only to itself: the projections run over every token at once, the heads text by text. Text i is
    `segments[i]`, a slice of x, with its mask and rotary embeddings `positions[i]` and what its relative
    positions give its scores `relatives[i]` (where the model's read them); its weights go into
    `weights_out[i]` [h, T, T], and its heads' ‖v_j W_O^h‖ into `value_norms_out[i]` [h, T] where that
    is given. Returns the output [N, d]."""
    projected = projections(x, p)
    concat = np.empty((len(x), p.w_o.shape[0]), dtype=projected[0].dtype)  # [N, h·d_k]
    relatives = relatives or [None] * len(segments)
    norms_out = value_norms_out or [None] * len(segments)
    texts = zip(segments, positions, weights_out, relatives, norms_out, strict=True)
    for segment, (mask, rotary), out, relative, norms in texts:
        text = (part[segment] for part in projected)
        heads = heads_attention(*text, p, options, mask, rotary, out, steps=False, relative=relative)
        concat[segment] = merge_heads(heads.head_outputs)
        if norms is not None:
            norms[...] = value_norms(heads.v, p.w_o, options.heads)
    return linear(concat, p.w_o, p.b_o)
