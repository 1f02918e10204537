"""One transformer forward pass in numpy, driven by a config of choices, keeping every layer's trace.

The choices are those a family of models makes (see attncli.architectures, which
reads them from config.json): LayerNorm before each sublayer or after it, the
feed-forward network's activation, a learned position table (and where it starts
counting), token type embeddings, a causal mask. Weights arrive as plain arrays laid
out for x @ W; nothing here knows file formats or family names.
Shapes: T tokens, d width, f feed-forward width, L layers, h heads.
"""

import math
from dataclasses import dataclass

import numpy as np

from attncli.attention import AttentionTrace, Projections, causal_mask, linear, multi_head_attention
from attncli.errors import DataError
from attncli.models import Trace

__all__ = [
    "ACTIVATIONS",
    "Block",
    "FeedForward",
    "Norm",
    "TransformerConfig",
    "TransformerWeights",
    "erf",
    "forward",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "position_ids",
    "relu",
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


# config.json activation names -> functions; "gelu_new" and friends are the tanh form.
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": relu,
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
    max_positions: int  # rows of the position embedding table
    activation: str  # a key of ACTIVATIONS
    eps: float  # LayerNorm epsilon
    pre_norm: bool  # LayerNorm before each sublayer (and once after the last block), or after each
    causal: bool  # decoders see only earlier tokens
    type_vocab_size: int = 0  # rows of the token type table, 0 for none; every token gets type 0
    padding_idx: int | None = None  # positions count from padding_idx + 1 instead of 0

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
        if self.d_model % self.heads:
            raise DataError(f"config.json: hidden size {self.d_model} is not divisible by {self.heads} heads")
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
        return self.d_model // self.heads

    @property
    def max_tokens(self) -> int:
        """The longest input the position table covers."""
        offset = 0 if self.padding_idx is None else self.padding_idx + 1
        return self.max_positions - offset


@dataclass(eq=False, repr=False)
class Norm:
    """A LayerNorm's learned scale and shift (a norm without a shift has none)."""

    gain: np.ndarray  # [d]
    bias: np.ndarray | None = None  # [d]


@dataclass(eq=False, repr=False)
class FeedForward:
    """A two-layer feed-forward network: activation(x @ W_in + b_in) @ W_out + b_out."""

    w_in: np.ndarray  # [d, f]
    w_out: np.ndarray  # [f, d]
    b_in: np.ndarray | None = None  # [f]
    b_out: np.ndarray | None = None  # [d]


@dataclass(eq=False, repr=False)
class Block:
    """One transformer layer: attention, then a feed-forward network, each with a norm."""

    attention: Projections
    attention_norm: Norm
    feed_forward: FeedForward
    ffn_norm: Norm


@dataclass(eq=False, repr=False)
class TransformerWeights:
    """Every weight of a model, laid out for x @ W."""

    word: np.ndarray  # [vocab, d], or anything that gives rows when indexed by ids (checkpoint.Rows)
    position: np.ndarray | None  # [positions, d] learned positions; None for a model that adds none
    token_type: np.ndarray | None  # [types, d]; every token gets type 0
    embedding_norm: Norm | None  # LayerNorm over the summed embeddings, in post-norm models
    blocks: list[Block]
    final_norm: Norm | None  # LayerNorm after the last block, in pre-norm models


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


def feed_forward(x: np.ndarray, ffn: FeedForward, activation: str) -> np.ndarray:
    """activation(x @ W_in + b_in) @ W_out + b_out: [T, d] -> [T, d]."""
    return linear(ACTIVATIONS[activation](linear(x, ffn.w_in, ffn.b_in)), ffn.w_out, ffn.b_out)


def position_ids(ids: np.ndarray, config: TransformerConfig) -> np.ndarray:
    """Row of the position table for each token: 0, 1, 2, ... or, with a padding index, counting
    from padding_idx + 1 over the non-padding tokens, with padding tokens at padding_idx."""
    if config.padding_idx is None:
        return np.arange(len(ids))
    real = ids != config.padding_idx
    return np.cumsum(real) * real + config.padding_idx


def _block(
    x: np.ndarray, block: Block, config: TransformerConfig, mask, weights_out: np.ndarray
) -> tuple[AttentionTrace, np.ndarray]:
    """One layer: [T, d] -> (its attention trace, [T, d]); the attention weights go into `weights_out`."""
    if config.pre_norm:
        trace = multi_head_attention(
            layer_norm(x, block.attention_norm, config.eps), block.attention, config.heads, mask, weights_out
        )
        h = x + trace.output  # [T, d]
        ffn = feed_forward(layer_norm(h, block.ffn_norm, config.eps), block.feed_forward, config.activation)
        return trace, h + ffn
    trace = multi_head_attention(x, block.attention, config.heads, mask, weights_out)
    h = layer_norm(x + trace.output, block.attention_norm, config.eps)  # [T, d]
    return trace, layer_norm(h + feed_forward(h, block.feed_forward, config.activation), block.ffn_norm, config.eps)


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
    positions = None if weights.position is None else weights.position[position_ids(ids, config)]  # [T, d]
    x = embeddings if positions is None else embeddings + positions  # [T, d]
    if weights.token_type is not None:
        x = x + weights.token_type[0]
    if weights.embedding_norm is not None:
        x = layer_norm(x, weights.embedding_norm, config.eps)
    mask = causal_mask(tokens) if config.causal else None
    attention = np.empty((config.layers, config.heads, tokens, tokens), dtype=x.dtype)  # [L, h, T, T]
    traces, outputs = [], []
    for layer, block in enumerate(weights.blocks):
        trace, x = _block(x, block, config, mask, attention[layer])
        if keep_steps:
            traces.append(trace)
            outputs.append(x)
    output = x if weights.final_norm is None else layer_norm(x, weights.final_norm, config.eps)
    return Trace(embeddings, positions, attention, traces, outputs, output)
