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

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from attncli.attention import (
    AttentionOptions,
    LayerAttention,
    Projections,
    Rope,
    Rotary,
    Trace,
    causal_mask,
    linear,
    multi_head_attention,
    packed_attention,
    rms_norm,
    rotary,
)
from attncli.attention import layer_norm as _layer_norm
from attncli.errors import DataError

__all__ = [
    "ACTIVATIONS",
    "Block",
    "FeedForward",
    "Norm",
    "TransformerConfig",
    "TransformerWeights",
    "attention_input",
    "block_output",
    "forward",
    "forward_packed",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "layer_positions",
    "position_ids",
    "relu",
    "silu",
]


# GELU's table of the standard normal distribution's upper tail Q(u) = P(X > u) = erfc(u/√2) / 2, at
# every 1/_TAIL_STEPS of u from 0 to _TAIL_END, past which u · Q(u) is under 1e-31.
_TAIL_STEPS = 512
_TAIL_END = 12


@functools.cache
def _normal_tail() -> np.ndarray:
    """[2, n] float32: Q(u₀) and the normal density φ(u₀) at each u₀ of the table, from the standard
    library's erfc, exact to float64."""
    points = np.arange(_TAIL_END * _TAIL_STEPS + 1) / _TAIL_STEPS
    tail = np.array([math.erfc(point / math.sqrt(2)) / 2 for point in points])
    density = np.exp(-np.square(points) / 2) / math.sqrt(2 * math.pi)
    return np.stack([tail, density]).astype(np.float32)


# Elementwise functions that make many passes (GELU makes a dozen) work through their input
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
    """x · Φ(x) as max(x, 0) - |x| · Q(|x|), Q read from a table to float32's precision (Taylor's
    series to δ² about the nearest point, |δ| ≤ 1/1024): within three units in the last place of
    the exact value, and float32 rounding alone in the mean square, as transformers' float32 run
    (its float64 run is the truth attncli is held to). numpy has no erf, SciPy's import would cost
    a quarter of a second a run, and the usual approximation (Abramowitz & Stegun 7.1.26, to
    1.5e-7) is coarser than float32's resolution near 1: it put an encoder's attention 1.8 times
    as far from the truth as transformers' own. 6% slower than that approximation."""
    u = np.abs(x)
    np.fmin(u, _TAIL_END, out=u)  # NaN stays NaN through max(x, 0) below; its index is any
    nearest = u * _TAIL_STEPS
    index = np.rint(nearest, out=nearest).astype(np.intp)
    nearest *= 1 / _TAIL_STEPS  # [n] u₀
    tail, density = (np.take(row, index, mode="clip") for row in _normal_tail())
    delta = np.subtract(u, nearest)  # [n] δ = |x| - u₀
    # Q(u₀) - Q(u₀ + δ) = φ(u₀)·δ·(1 - u₀δ/2) to δ², as Q' = -φ and φ' = -uφ
    step = np.multiply(nearest, -0.5, out=nearest)
    step *= delta
    step += 1.0
    step *= density
    step *= delta
    tail -= step  # Q(|x|)
    tail *= u
    y = np.maximum(x, 0, out=u)
    y -= tail
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
    layer_attention: tuple[LayerAttention, ...]  # per layer: its sliding window and rotary embeddings
    type_vocab_size: int = 0  # rows of the token type table, 0 for none; every token gets type 0
    padding_idx: int | None = None  # positions count from padding_idx + 1 instead of 0
    norm: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm)
    kv_heads: int | None = None  # key and value heads, each shared by heads / kv_heads query heads; None: heads
    head_dim: int | None = None  # d_k when the model sets it apart from d_model / heads
    gated: bool = False  # feed-forward down(activation(gate(x)) · up(x)) instead of out(activation(in(x)))
    parallel: bool = False  # x + attention(norm(x)) + feed-forward(norm'(x)): both sublayers read the same x
    attention_scale: float | None = None  # scores · this instead of / √d_k
    soft_cap: float | None = None  # scores soft-capped at this, as cap · tanh(score / cap)
    embedding_scale: float | None = None  # the word embeddings multiplied by this
    sandwich: bool = False  # a norm after each sublayer's output too, before the residual sum
    qk_norm: bool = False  # each head's q and k pass a norm of their own before RoPE (the model's kind of norm)
    attention_bias: bool = True  # the attention's q, k and v projections add biases
    output_bias: bool = True  # the attention's output projection adds a bias
    mlp_bias: bool = True  # the feed-forward's projections add biases
    shared_norm: bool = False  # parallel: the feed-forward reads the attention's norm of x (norm' is norm)
    qk_norm_per_head: bool = False  # each head's q and k norm has weights of its own

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
        if len(self.layer_attention) != self.layers:
            raise DataError(f"config.json: {len(self.layer_attention)} layer types for {self.layers} layers")
        for rope in {layer.rope for layer in self.layer_attention} - {None}:
            if not 0 < rope.dims <= self.d_head or rope.dims % 2:
                raise DataError(f"config.json: RoPE turns {rope.dims} of a head's {self.d_head} dimensions")
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

    @property
    def token_types(self) -> bool:
        """Whether a token type embedding is added to each token's."""
        return self.type_vocab_size > 0

    @property
    def itemsize(self) -> int:
        """Bytes of each number the forward pass computes: float32 throughout."""
        return 4

    @cached_property
    def attention_options(self) -> AttentionOptions:
        """How every layer's heads attend, beyond their weights, masks and rotary embeddings."""
        return AttentionOptions(self.heads, self.kv_heads, self.attention_scale, self.soft_cap, self.eps, self.norm)


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
    ffn_norm: Norm | None  # None: a parallel block's feed-forward reads the attention's norm of x
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
    """(x - mean) / √(variance + eps) · gain + bias over the last axis, with `norm`'s gain and bias
    (see attention.layer_norm): [..., d] -> [..., d]."""
    return _layer_norm(x, norm.gain, norm.bias, eps)


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


def position_ids(ids: np.ndarray, config: TransformerConfig) -> np.ndarray:
    """Row of the position table for each token: 0, 1, 2, ... or, with a padding index, counting
    from padding_idx + 1 over the non-padding tokens, with padding tokens at padding_idx."""
    if config.padding_idx is None:
        return np.arange(len(ids))
    real = ids != config.padding_idx
    return np.cumsum(real) * real + config.padding_idx


def attention_input(x: np.ndarray, block: Block, config: TransformerConfig) -> np.ndarray:
    """What a layer's attention reads of the residual stream `x` [T, d]: its norm (pre-norm), or x itself."""
    return normalized(x, block.attention_norm, config) if config.pre_norm else x


def block_output(x: np.ndarray, attended: np.ndarray, block: Block, config: TransformerConfig) -> np.ndarray:
    """The rest of a layer once its attention gave `attended` [T, d] for the residual stream `x` [T, d]:
    the residual sums, the norms and the feed-forward network, in the order the model puts them: [T, d]."""
    if config.parallel:  # both sublayers read x; the norm is computed again rather than carried from attention
        ffn_input = normalized(x, block.attention_norm if block.ffn_norm is None else block.ffn_norm, config)
        return x + attended + feed_forward(ffn_input, block.feed_forward, config.activation)
    if config.pre_norm:
        if block.attention_out_norm is not None:
            attended = normalized(attended, block.attention_out_norm, config)
        h = x + attended  # [T, d]
        ffn = feed_forward(normalized(h, block.ffn_norm, config), block.feed_forward, config.activation)
        if block.ffn_out_norm is not None:
            ffn = normalized(ffn, block.ffn_out_norm, config)
        return h + ffn
    h = normalized(x + attended, block.attention_norm, config)  # [T, d]
    return normalized(h + feed_forward(h, block.feed_forward, config.activation), block.ffn_norm, config)


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


def layer_positions(config: TransformerConfig, tokens: int) -> list[tuple[np.ndarray | None, Rotary | None]]:
    """Per layer, what its attention needs of a text of `tokens` tokens besides the weights: the mask
    [T, T] (None: every key) and the rotary embeddings (None: no RoPE), each different one made once."""
    masks: dict[int | None, np.ndarray] = {}
    rotations: dict[Rope, Rotary] = {}
    for layer in config.layer_attention:
        if config.causal and layer.window not in masks:
            masks[layer.window] = causal_mask(tokens, layer.window)
        if layer.rope is not None and layer.rope not in rotations:
            rotations[layer.rope] = rotary(tokens, layer.rope)
    return [(masks.get(layer.window), rotations.get(layer.rope)) for layer in config.layer_attention]


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
    x, positions = _inputs(ids, embeddings, config, weights)
    attention = np.empty((config.layers, config.heads, len(ids), len(ids)), dtype=x.dtype)  # [L, h, T, T]
    traces, outputs = [], []
    first = x  # the residual stream the first layer reads (each layer makes a new one; none is changed in place)
    for block, (mask, turn), weights_out in zip(
        weights.blocks, layer_positions(config, len(ids)), attention, strict=True
    ):
        attended = attention_input(x, block, config)
        trace = multi_head_attention(
            attended, block.attention, config.attention_options, mask, turn, weights_out, keep_steps
        )
        x = block_output(x, trace.output, block, config)
        if keep_steps:
            traces.append(trace)
            outputs.append(x)
    output = x if weights.final_norm is None else normalized(x, weights.final_norm, config)
    inputs = [first, *outputs[:-1]] if keep_steps else None
    return Trace(embeddings, positions, attention, traces, outputs, output, inputs)


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
    positions = {n: layer_positions(config, n) for n in set(lengths)}
    attention = [np.empty((config.layers, config.heads, n, n), dtype=x.dtype) for n in lengths]
    for layer, block in enumerate(weights.blocks):
        output = packed_attention(
            attention_input(x, block, config),
            block.attention,
            config.attention_options,
            segments,
            [positions[n][layer] for n in lengths],
            [weights_of_text[layer] for weights_of_text in attention],
        )
        x = block_output(x, output, block, config)
    return attention, x
