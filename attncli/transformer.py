"""One transformer forward pass in numpy, driven by a config of choices, keeping every layer's trace.

The choices are those a family of models makes (see attncli.architectures, which
reads them from config.json): LayerNorm or RMSNorm, before each sublayer or after it
(and, for some, after it too); a plain or a gated feed-forward network and its
activation; a learned position table (and where it starts counting) or rotary
embeddings (RoPE, with its frequencies' scaling); token type embeddings; a causal
mask, sliding windows per layer, grouped-query attention, per-head q and k norms,
attention scale and logit soft-capping. Weights arrive as plain arrays laid out for
x @ W, one layer at a time if need be; nothing here knows file formats or family names.
Shapes: T tokens, d width, f feed-forward width, L layers, h heads, g key and value heads.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from attncli.attention import (
    AttentionTrace,
    Projections,
    Rotary,
    Trace,
    causal_mask,
    linear,
    multi_head_attention,
    packed_attention,
    rms_norm,
)
from attncli.errors import DataError

__all__ = [
    "ACTIVATIONS",
    "Block",
    "FeedForward",
    "Norm",
    "Rope",
    "TransformerConfig",
    "TransformerWeights",
    "erf",
    "forward",
    "gelu",
    "gelu_tanh",
    "inverse_frequencies",
    "layer_norm",
    "position_ids",
    "relu",
    "rotary",
    "silu",
]


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, to within 1.5e-7 in float64 (float32 rounding adds a few
    1e-7): about float32's resolution near 1.

    numpy has no erf; this is Abramowitz & Stegun's 7.1.26, 1 - t·P(t)·exp(-x²) with
    t = 1 / (1 + 0.3275911·|x|), mirrored for x < 0. It spares a SciPy import, which would
    cost a quarter of a second a run.
    """
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    shape = x.shape  # a 0-d input is worked on as one element: ufuncs return scalars for 0-d arrays
    x = x.reshape(-1)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * z)
    p = 1.061405429 * t  # Horner's rule for P(t)·t, in place
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += coefficient
        p *= t
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    p *= z
    np.subtract(1.0, p, out=p)
    return np.copysign(p, x, out=p).reshape(shape)


# Elementwise functions that make many passes (erf makes a dozen) work through their input
# this many elements at a time, so that each pass reads the CPU cache rather than memory and
# no temporary is large enough to cost fresh pages: 3.5x faster on a [512, 1536] input.
_BLOCK = 1 << 15


def _blockwise(f, x: np.ndarray) -> np.ndarray:
    """f(x) for an elementwise `f`, computed _BLOCK elements at a time (as float32 at least)."""
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for start in range(0, flat.size, _BLOCK):
        y[start : start + _BLOCK] = f(flat[start : start + _BLOCK])
    return y.reshape(x.shape)


def _gelu(x: np.ndarray) -> np.ndarray:
    y = erf(x * (1 / math.sqrt(2.0)))
    y += 1.0
    y *= x
    y *= 0.5
    return y


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact Gaussian CDF: x · Φ(x) = x/2 · (1 + erf(x/√2))."""
    return _blockwise(_gelu, x)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation of Φ: x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))."""
    return _blockwise(_gelu_tanh, x)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), elementwise."""
    return np.maximum(x, 0)


def _silu(x: np.ndarray) -> np.ndarray:
    y = np.negative(x)
    np.exp(y, out=y)
    y += 1.0
    return np.divide(x, y, out=y)


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU (swish): x · σ(x) = x / (1 + e^-x), the gate of SwiGLU."""
    return _blockwise(_silu, x)


# config.json activation names -> functions; "gelu_new" and friends are the tanh form.
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": relu,
    "silu": silu,
    "swish": silu,
}


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

    def to_json(self) -> dict:
        fields = {"type": "rotary", "theta": self.theta, "dims": self.dims, "scaling": self.scaling}
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
class TransformerConfig:
    """The shape of a model and the choices its family makes; checked when built."""

    family: str  # config.json's model_type, a key of attncli.architectures.FAMILIES
    layers: int
    heads: int
    d_model: int
    d_ff: int  # feed-forward width
    vocab_size: int  # rows of the word embedding table
    max_positions: int  # rows of the position embedding table, or the longest input a rotary model was made for
    activation: str  # a key of ACTIVATIONS
    eps: float  # the norms' epsilon
    pre_norm: bool  # a norm before each sublayer (and once after the last block), or after each
    causal: bool  # decoders see only earlier tokens
    type_vocab_size: int = 0  # rows of the token type table, 0 for none; every token gets type 0
    padding_idx: int | None = None  # positions count from padding_idx + 1 instead of 0
    norm: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm)
    kv_heads: int | None = None  # key and value heads, each shared by heads / kv_heads query heads; None: heads
    head_dim: int | None = None  # d_k when the model sets it apart from d_model / heads
    rope: Rope | None = None  # rotary position embeddings instead of a position table
    gated: bool = False  # feed-forward down(activation(gate(x)) · up(x)) instead of out(activation(in(x)))
    windows: tuple[int | None, ...] | None = None  # per layer: a sliding window of the last W keys, or None
    attention_scale: float | None = None  # scores · this instead of / √d_k
    soft_cap: float | None = None  # scores soft-capped at this, as cap · tanh(score / cap)
    embedding_scale: float | None = None  # the word embeddings multiplied by this
    sandwich: bool = False  # a norm after each sublayer's output too, before the residual sum
    qk_norm: bool = False  # each head's q and k pass an RMSNorm of their own before RoPE
    attention_bias: bool = True  # the attention's q, k and v projections add biases
    output_bias: bool = True  # the attention's output projection adds a bias
    mlp_bias: bool = True  # the feed-forward's projections add biases

    def __post_init__(self):
        sizes = {
            "layers": self.layers,
            "heads": self.heads,
            "hidden size": self.d_model,
            "feed-forward size": self.d_ff,
            "vocabulary size": self.vocab_size,
            "positions": self.max_positions,
        }
        for what, value in sizes.items():
            if value < 1:
                raise DataError(f"config.json: {what} = {value}; it must be positive")
        if self.head_dim is None and self.d_model % self.heads:
            raise DataError(f"config.json: hidden size {self.d_model} is not divisible by {self.heads} heads")
        if self.head_dim is not None and self.head_dim < 1:
            raise DataError(f"config.json: head_dim = {self.head_dim}; it must be positive")
        if self.kv_heads is not None and not (0 < self.kv_heads <= self.heads and self.heads % self.kv_heads == 0):
            raise DataError(
                f"config.json: {self.heads} attention heads cannot share {self.kv_heads} key-value heads evenly"
            )
        if (self.rope is not None and not 0 < self.rope.dims <= self.d_head) or (self.rope and self.rope.dims % 2):
            raise DataError(f"config.json: RoPE turns {self.rope.dims} of a head's {self.d_head} dimensions")
        if self.windows is not None and len(self.windows) != self.layers:
            raise DataError(f"config.json: {len(self.windows)} layer types for {self.layers} layers")
        if self.activation not in ACTIVATIONS:
            raise DataError(
                f"config.json: activation {self.activation!r} is not supported; known: {sorted(ACTIVATIONS)}"
            )
        if self.padding_idx is not None and not 0 <= self.padding_idx < self.max_positions - 1:
            raise DataError(
                f"config.json: pad_token_id {self.padding_idx} leaves no positions in a table of {self.max_positions}"
            )

    @property
    def d_head(self) -> int:
        return self.head_dim or self.d_model // self.heads

    @property
    def max_length(self) -> int:
        """The longest input the position table covers, or the rotary model was made for."""
        offset = 0 if self.padding_idx is None else self.padding_idx + 1
        return self.max_positions - offset


@dataclass(eq=False, repr=False)
class Norm:
    """A norm's learned scale and shift (an RMSNorm, or a norm without a shift, has none)."""

    gain: np.ndarray  # [d]
    bias: np.ndarray | None = None  # [d]


@dataclass(eq=False, repr=False)
class FeedForward:
    """A feed-forward network: activation(x @ W_in + b_in) @ W_out + b_out, or, gated, with W_in
    the gate and up projections side by side: (activation(gate) · up) @ W_out + b_out, where
    [gate | up] = x @ W_in + b_in (one product instead of two: a fifth faster at 512 tokens)."""

    w_in: np.ndarray  # [d, f], or gated [d, 2f]: the gate's columns, then the up projection's
    w_out: np.ndarray  # [f, d] (gated: the down projection)
    b_in: np.ndarray | None = None  # [f], or gated [2f]
    b_out: np.ndarray | None = None  # [d]
    gated: bool = False


@dataclass(eq=False, repr=False)
class Block:
    """One transformer layer: attention, then a feed-forward network, each with a norm (two, in a
    sandwich: one before and one after)."""

    attention: Projections
    attention_norm: Norm
    feed_forward: FeedForward
    ffn_norm: Norm
    attention_out_norm: Norm | None = None  # sandwich: on the attention's output, before the residual sum
    ffn_out_norm: Norm | None = None  # sandwich: on the feed-forward's output


@dataclass(eq=False, repr=False)
class TransformerWeights:
    """Every weight of a model, laid out for x @ W."""

    word: np.ndarray  # [vocab, d], or anything that gives rows when indexed by ids (checkpoint.Rows)
    position: np.ndarray | None  # [positions, d] learned positions; None for a model that adds none
    token_type: np.ndarray | None  # [types, d]; every token gets type 0
    embedding_norm: Norm | None  # a norm over the summed embeddings, in post-norm models
    blocks: Sequence[Block]  # a list, or a sequence that reads each layer's weights when it is asked for one
    final_norm: Norm | None  # a norm after the last block, in pre-norm models


def layer_norm(x: np.ndarray, norm: Norm, eps: float) -> np.ndarray:
    """(x - mean) / √(variance + eps) · gain + bias over the last axis: [..., d] -> [..., d]."""
    y = np.subtract(x, x.mean(axis=-1, keepdims=True), dtype=np.result_type(x, norm.gain, norm.bias))
    deviation = np.mean(np.square(y), axis=-1, keepdims=True)
    deviation += eps
    np.sqrt(deviation, out=deviation)
    # In place from here: a new [T, d] array a step would be as many more allocations and passes.
    y /= deviation
    y *= norm.gain
    if norm.bias is not None:
        y += norm.bias
    return y


def normalized(x: np.ndarray, norm: Norm, config: TransformerConfig) -> np.ndarray:
    """`x` [..., d] through the norm the model uses: LayerNorm, or RMSNorm (no centring, no shift)."""
    return layer_norm(x, norm, config.eps) if config.norm == "layer" else rms_norm(x, norm.gain, config.eps)


def feed_forward(x: np.ndarray, ffn: FeedForward, activation: str) -> np.ndarray:
    """activation(x @ W_in + b_in) @ W_out + b_out, or gated: (activation(gate) · up) @ W_out + b_out
    with [gate | up] = x @ W_in + b_in: [T, d] -> [T, d]."""
    if not ffn.gated:
        return linear(ACTIVATIONS[activation](linear(x, ffn.w_in, ffn.b_in)), ffn.w_out, ffn.b_out)
    both = linear(x, ffn.w_in, ffn.b_in)  # [T, 2f]
    width = both.shape[-1] // 2
    hidden = ACTIVATIONS[activation](both[:, :width])  # [T, f]
    hidden *= both[:, width:]
    return linear(hidden, ffn.w_out, ffn.b_out)


def inverse_frequencies(rope: Rope) -> np.ndarray:
    """Each dimension pair's turn per position, θ^(-2i/n) for i < n/2 (float32, as the checkpoints'
    reference computes them), scaled as `rope.scaling` says: [n/2].

    llama3 (Llama 3.1/3.2) leaves pairs whose wavelength is under original_max_positions /
    high_freq_factor as they are, divides those over original_max_positions / low_freq_factor by
    the factor, and blends the two in between.
    """
    n = rope.dims
    frequencies = (1.0 / (rope.theta ** (np.arange(0, n, 2, dtype=np.float32) / np.float32(n)))).astype(np.float32)
    if rope.scaling == "linear":
        return frequencies / np.float32(rope.factor)
    if rope.scaling == "llama3":
        low = rope.original_max_positions / rope.low_freq_factor  # longest wavelength left alone
        high = rope.original_max_positions / rope.high_freq_factor
        wavelength = 2 * math.pi / frequencies
        scaled = np.where(wavelength > low, frequencies / rope.factor, frequencies)
        smooth = (rope.original_max_positions / wavelength - rope.low_freq_factor) / (
            rope.high_freq_factor - rope.low_freq_factor
        )
        blended = (1 - smooth) * scaled / rope.factor + smooth * scaled
        middle = (wavelength >= high) & (wavelength <= low)
        return np.where(middle, blended, scaled).astype(np.float32)
    return frequencies


def rotary(tokens: int, rope: Rope) -> Rotary:
    """The cos and sin of every position's angles, position · frequency, each half twice: [T, n]."""
    angles = np.arange(tokens, dtype=np.float32)[:, None] * inverse_frequencies(rope)  # [T, n/2]
    angles = np.concatenate([angles, angles], axis=-1)  # [T, n]
    return Rotary(np.cos(angles), np.sin(angles))


def position_ids(ids: np.ndarray, config: TransformerConfig) -> np.ndarray:
    """Row of the position table for each token: 0, 1, 2, ... or, with a padding index, counting
    from padding_idx + 1 over the non-padding tokens, with padding tokens at padding_idx."""
    if config.padding_idx is None:
        return np.arange(len(ids))
    real = ids != config.padding_idx
    return np.cumsum(real) * real + config.padding_idx


def _block(
    x: np.ndarray, block: Block, config: TransformerConfig, attend: Callable[[np.ndarray], tuple]
) -> tuple[AttentionTrace | None, np.ndarray]:
    """One layer: [T, d] -> (its attention trace, [T, d]), attention by `attend`, which takes the
    layer's attention input and gives (its trace or None, its output)."""
    if config.pre_norm:
        trace, output = attend(normalized(x, block.attention_norm, config))
        out = output if block.attention_out_norm is None else normalized(output, block.attention_out_norm, config)
        h = x + out  # [T, d]
        ffn = feed_forward(normalized(h, block.ffn_norm, config), block.feed_forward, config.activation)
        if block.ffn_out_norm is not None:
            ffn = normalized(ffn, block.ffn_out_norm, config)
        return trace, h + ffn
    trace, output = attend(x)
    h = normalized(x + output, block.attention_norm, config)  # [T, d]
    return trace, normalized(h + feed_forward(h, block.feed_forward, config.activation), block.ffn_norm, config)


def _inputs(ids: np.ndarray, embeddings: np.ndarray, config: TransformerConfig, weights: TransformerWeights):
    """(the first layer's input [T, d], the position embeddings added to it or None)."""
    positions = None if weights.position is None else weights.position[position_ids(ids, config)]  # [T, d]
    x = embeddings if positions is None else embeddings + positions  # [T, d]
    if config.embedding_scale is not None:
        x = x * np.float32(config.embedding_scale)
    if weights.token_type is not None:
        x = x + weights.token_type[0]
    if weights.embedding_norm is not None:
        x = normalized(x, weights.embedding_norm, config)
    return x, positions


def _attention_options(config: TransformerConfig) -> dict:
    return {
        "kv_heads": config.kv_heads,
        "scale": config.attention_scale,
        "cap": config.soft_cap,
        "norm_eps": config.eps,
    }


def forward(
    ids: np.ndarray,
    embeddings: np.ndarray,
    config: TransformerConfig,
    weights: TransformerWeights,
    keep_steps: bool = True,
) -> Trace:
    """Run tokens through the model, keeping every layer's attention weights, and with
    `keep_steps` every intermediate too (a long text's scores take memory the weights alone do not).

    `ids` [T] are the token ids and `embeddings` [T, d] their rows of the word
    embedding table, looked up by the caller (a checkpoint's table is read from disk).
    """
    tokens = len(ids)
    x, positions = _inputs(ids, embeddings, config, weights)
    turn = None if config.rope is None else rotary(tokens, config.rope)
    windows = config.windows or (None,) * config.layers
    masks = {window: causal_mask(tokens, window) for window in set(windows)} if config.causal else {}
    attention = np.empty((config.layers, config.heads, tokens, tokens), dtype=x.dtype)  # [L, h, T, T]
    traces, outputs = [], []
    for layer, block in enumerate(weights.blocks):

        def attend(x, layer=layer, block=block):
            mask = masks.get(windows[layer])
            options = _attention_options(config)
            trace = multi_head_attention(
                x, block.attention, config.heads, mask, attention[layer], rotary=turn, steps=keep_steps, **options
            )
            return trace, trace.output

        trace, x = _block(x, block, config, attend)
        if keep_steps:
            traces.append(trace)
            outputs.append(x)
    output = x if weights.final_norm is None else normalized(x, weights.final_norm, config)
    return Trace(embeddings, positions, attention, traces, outputs, output)


def forward_packed(
    ids: list[np.ndarray], embeddings: list[np.ndarray], config: TransformerConfig, weights: TransformerWeights
) -> tuple[list[np.ndarray], np.ndarray]:
    """Several texts at once, packed end to end: each text attends only to itself (and its own
    positions, masks and RoPE), while the projections and feed-forward layers run on every token
    of every text at once, where BLAS is fast. Each text's attention weights [L, h, T, T] are what
    `forward` gives it, to float32 rounding; and the last layer's output [N, d], for the caller's check.
    """
    lengths = [len(i) for i in ids]
    ends = np.cumsum(lengths)
    segments = [slice(int(end - length), int(end)) for end, length in zip(ends, lengths, strict=True)]
    x = np.concatenate([_inputs(i, e, config, weights)[0] for i, e in zip(ids, embeddings, strict=True)])
    windows = config.windows or (None,) * config.layers
    turns = {n: rotary(n, config.rope) for n in set(lengths)} if config.rope is not None else {}
    masks = {(n, w): causal_mask(n, w) for n in set(lengths) for w in set(windows)} if config.causal else {}
    attention = [np.empty((config.layers, config.heads, n, n), dtype=x.dtype) for n in lengths]
    for layer, block in enumerate(weights.blocks):

        def attend(x, layer=layer, block=block):
            output = packed_attention(
                x,
                block.attention,
                config.heads,
                segments,
                [weights_of_text[layer] for weights_of_text in attention],
                masks=lambda n, layer=layer: masks.get((n, windows[layer])),
                rotaries=turns.get,
                **_attention_options(config),
            )
            return None, output

        _, x = _block(x, block, config, attend)
    return attention, x
