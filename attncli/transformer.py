"""One transformer forward pass in numpy, driven by a config of choices, keeping every layer's trace.

The choices are those a family of models makes (see attncli.architectures, which
reads them from config.json): LayerNorm or RMSNorm, before each sublayer or after it
(and, for some, after it too, or only after its output); a plain or a gated feed-forward
network and its activation, or a mixture of gated experts a router picks among per token
(attncli.experts has its math); LayerNorms with or without a bias; a learned position table
(and where it starts counting), rotary embeddings (RoPE, with its frequencies' scaling),
ALiBi's linear biases, and a text's relative positions, made once for every layer: a bias
bucketed by distance, or disentangled attention's; token type embeddings; embeddings narrower
than the model, projected in (the word embeddings alone, and the last hidden state back out;
or all of them summed, before or after their norm); layers that share their weights; a causal
mask, sliding windows per layer (a query's last keys, or without the causal mask those on
either side), grouped-query attention, q and k norms (per head, or over the whole
projections), q, k and v clamped, attention scale, logit soft-capping, sublayer outputs scaled
before their residual sums; a convolution beside the first layer. Asked, a pre-norm model's pass also keeps its
last residual stream at some positions split into what each head, attention bias and feed-forward network wrote
into it (ResidualParts), for direct logit attribution (attncli.attribution). Weights arrive as plain
arrays laid out for x @ W, one layer at a time if need be; nothing here knows file formats or
family names.
Shapes: T tokens, d width, f feed-forward width, L layers, h heads, g key and value heads.
"""

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from attncli.attention import (
    EVERYTHING,
    Alibi,
    AttentionOptions,
    AttentionTrace,
    Disentangled,
    LayerAttention,
    Projections,
    Relative,
    RelativeBias,
    RelativePositions,
    Rope,
    Rotary,
    Selection,
    Trace,
    alibi_slopes,
    attention_mask,
    linear,
    multi_head_attention,
    packed_attention,
    relative_position_bias,
    relative_position_buckets,
    relative_positions,
    relative_rows,
    rms_norm,
    rotary,
    weighted_value_norms,
)
from attncli.attention import layer_norm as _layer_norm
from attncli.attention import value_norms as value_norms_of
from attncli.errors import DataError
from attncli.experts import MixtureConfig, Routing, clamped_swiglu, combine, route, sigmoid, top_k_softmax
from attncli.parts import in_parts

__all__ = [
    "ACTIVATIONS",
    "Block",
    "Convolution",
    "ConvolutionWeights",
    "FeedForward",
    "HeadTransform",
    "LayerParts",
    "MixtureOfExperts",
    "Norm",
    "ResidualParts",
    "TransformerConfig",
    "TransformerWeights",
    "Unembedding",
    "attention_input",
    "block_output",
    "clamped_feed_forward",
    "convolution",
    "convolution_layer",
    "forward",
    "forward_packed",
    "frozen_norm",
    "gelu",
    "gelu_tanh",
    "head_input",
    "layer_norm",
    "layer_parts",
    "layer_positions",
    "logit_blocks",
    "logits",
    "mixture_of_experts",
    "norm_scale",
    "position_bias",
    "position_ids",
    "relative_embeddings",
    "relu",
    "silu",
    "sublayer_outputs",
    "text_positions",
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
    """f(x) for an elementwise `f`, computed _BLOCK elements at a time (as float32 at least), the blocks
    shared among the cores (parts.in_parts)."""
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    flat = x.reshape(-1)
    y = np.empty_like(flat)

    def blocks(part: slice) -> None:  # of block numbers
        for start in range(part.start * _BLOCK, min(part.stop * _BLOCK, flat.size), _BLOCK):
            y[start : start + _BLOCK] = f(flat[start : start + _BLOCK])

    in_parts(blocks, -(-flat.size // _BLOCK), 2)
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
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class Convolution:
    """A convolution beside the first layer: along the tokens, over the layer's input, `kernel` tokens
    wide (zero-padded to keep their number), its channels in `groups` groups that convolve apart; through
    `activation`, it is added to the layer's output before a LayerNorm of its own."""

    kernel: int  # odd: (kernel - 1) / 2 tokens either side
    groups: int
    activation: str  # a key of ACTIVATIONS


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
    clip_qkv: float | None = None  # q, k and v clamped to [-clip_qkv, clip_qkv] once projected
    norm_gains: bool = True  # the norms learn a gain (a LayerNorm a bias too); False: neither
    whole_qk_norm: bool = False  # q and k pass an RMSNorm over all their heads at once, before splitting into heads
    # A pre-norm model's sublayers read a norm of the residual stream; False: the stream itself, each sublayer's
    # output normed instead, before the residual sum (a sandwich without its first norms)
    input_norms: bool = True
    residual_scale: float | None = None  # each sublayer's output multiplied by this before its residual sum
    moe: MixtureConfig | None = None  # how the mixture-of-experts layers route; None: every layer is dense
    alibi: Alibi | None = None  # ALiBi: linear biases on every layer's scores, in place of position embeddings
    position_offset: int = 0  # the position table's row of the first token, without a padding index
    # The word embeddings' width where it is not d_model (and the position and token type embeddings', where they
    # are summed before the projection): projected to d_model as embedding_projection says
    d_embed: int | None = None
    embedding_norm: bool = False  # a norm on the embeddings before the first layer
    final_norm: bool = True  # pre-norm: a norm after the last block (some models drop it)
    shared_norm: bool = False  # parallel: the feed-forward reads the attention's norm of x, having none of its own
    sinks: bool = False  # each head has a learned sink logit that joins every row's softmax (GPT-OSS)
    qk_norm_per_head: bool = False  # each head's q and k norm has weights of its own
    first_attention_norm: bool = True  # pre-norm: False where layer 0's attention reads the embeddings as they are,
    # normed once already by the embedding norm
    norm_bias: bool = True  # the LayerNorms add a learned bias (a shift); False: a gain alone
    disentangled: Disentangled | None = None  # disentangled attention: c2p and p2c terms over relative positions
    convolution: Convolution | None = None  # a convolution beside the first layer, where the model has one
    # Where the weights' project_in takes the embeddings into d_model: "words", the word embeddings alone, before
    # the positions are added (and project_out, where the weights have it, takes the last hidden state back);
    # "sum", the word, position and token type embeddings summed, before their norm; "normed", summed and normed,
    # then projected with a bias
    embedding_projection: str = "words"
    # Per layer, the (group, layer within the group) of the stored weights it runs, where layers share them;
    # None: every layer has its own
    shared_layers: tuple[tuple[int, int], ...] | None = None
    relative_bias: RelativeBias | None = None  # a relative position bias on every layer's scaled scores

    def __post_init__(self):
        sizes = {
            "layers": self.layers,
            "heads": self.heads,
            "hidden size": self.d_model,
            "feed-forward size": self.d_ff,
            "vocabulary size": self.vocab_size,
            "positions": self.max_positions,
            "word embedding size": self.d_embed or self.d_model,
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
        if self.shared_layers is not None and len(self.shared_layers) != self.layers:
            raise DataError(f"config.json: {len(self.shared_layers)} shared layers for {self.layers} layers")
        if self.moe is not None and len(self.moe.sparse) != self.layers:
            raise DataError(f"config.json: {len(self.moe.sparse)} layers of experts for {self.layers} layers")
        if self.padding_idx is not None and not 0 <= self.padding_idx < self.max_positions - 1:
            raise DataError(
                f"config.json: pad_token_id {self.padding_idx} leaves no positions in a table of {self.max_positions}"
            )
        # block_output puts norms after the sublayers (sandwich, input_norms false) and scales their outputs
        # (residual_scale) in a sequential pre-norm block alone; no family asks for them in another.
        if (self.parallel or not self.pre_norm) and (
            self.sandwich or not self.input_norms or self.residual_scale is not None
        ):
            raise ValueError(
                "sandwich norms, input_norms false and residual_scale are computed only in a sequential pre-norm block"
            )

    @property
    def d_head(self) -> int:
        return self.head_dim or self.d_model // self.heads

    @property
    def max_length(self) -> int:
        """The longest input the position table covers, or the rotary model was made for."""
        offset = self.position_offset if self.padding_idx is None else self.padding_idx + 1
        return self.max_positions - offset

    @property
    def slopes(self) -> np.ndarray | None:
        """Each head's ALiBi slope m_h, [h] float32, where the model has ALiBi."""
        return None if self.alibi is None else alibi_slopes(self.heads)

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
        return AttentionOptions(
            self.heads,
            self.kv_heads,
            self.attention_scale,
            self.soft_cap,
            self.eps,
            clip_qkv=self.clip_qkv,
            alibi=self.alibi,
            norm=self.norm,
            disentangled=self.disentangled,
        )


@dataclass(eq=False, repr=False)
class Norm:
    """A norm's learned scale and shift (an RMSNorm, or a norm without a shift, has none; OLMo's
    LayerNorm learns neither)."""

    gain: np.ndarray | None  # [d]
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
class MixtureOfExperts:
    """A mixture-of-experts feed-forward layer (see attncli.experts): the router W_g, E gated
    feed-forward networks, and where the model has one, a shared expert and its gate."""

    w_router: np.ndarray  # [d, E] W_g
    experts: Sequence[FeedForward]  # E gated experts; a sequence may read each from disk when it is asked for one
    shared: FeedForward | None = None  # E_s, which every token goes through
    w_shared_gate: np.ndarray | None = None  # [d, 1] w_s: E_s(x) is weighted by σ(x·w_s)
    b_router: np.ndarray | None = None  # [E] the router's bias, where it has one (GPT-OSS): x·W_g + b


@dataclass(eq=False, repr=False)
class Block:
    """One transformer layer: attention, then a feed-forward network (or a mixture of experts), each with
    a norm (two, in a sandwich: one before and one after; OLMo 2's only after)."""

    attention: Projections
    attention_norm: Norm | None  # None: the attention reads the residual stream as it is (OLMo 2)
    feed_forward: FeedForward | MixtureOfExperts
    # None: the feed-forward reads the attention's norm of x (a parallel block), or x as it is (OLMo 2)
    ffn_norm: Norm | None
    attention_out_norm: Norm | None = None  # sandwich: on the attention's output, before the residual sum
    ffn_out_norm: Norm | None = None  # sandwich: on the feed-forward's output


@dataclass(eq=False, repr=False)
class ConvolutionWeights:
    """The weights of the convolution beside the first layer, laid out for x @ W a group and a kernel
    offset at a time, and its LayerNorm."""

    w: np.ndarray  # [G, k, d/G, d/G] group g's weights for the token at offset m - (k - 1)/2: [in, out]
    b: np.ndarray  # [d]
    norm: Norm


@dataclass(eq=False, repr=False)
class TransformerWeights:
    """Every weight of a model, laid out for x @ W."""

    word: np.ndarray  # [vocab, d], or anything that gives rows when indexed by ids (checkpoint.Rows)
    position: np.ndarray | None  # [positions, d] learned positions; None for a model that adds none
    token_type: np.ndarray | None  # [types, d]; every token gets type 0
    embedding_norm: Norm | None  # a norm over the summed embeddings, where the model has one
    blocks: Sequence[Block]  # a list, or a sequence that reads each layer's weights when it is asked for one
    final_norm: Norm | None  # a norm after the last block, in pre-norm models
    project_in: np.ndarray | None = None  # [e, d] the word embeddings into the model's width, where they are narrower
    project_out: np.ndarray | None = None  # [d, e] the last hidden state back to the word embeddings' width
    relative: np.ndarray | None = None  # [2k, d] relative position embeddings, rows −k ... k − 1 (disentangled)
    relative_norm: Norm | None = None  # the LayerNorm they pass first, where the model has one
    convolution: ConvolutionWeights | None = None  # the convolution beside the first layer
    project_in_bias: np.ndarray | None = None  # [d] project_in's bias, where the summed embeddings are projected
    relative_bias: np.ndarray | None = None  # [buckets, h] each head's learned bias for each relative position bucket


@dataclass(eq=False, repr=False)
class HeadTransform:
    """What a masked-LM head does to a hidden state before its decoder: LayerNorm(activation(h @ W + b))."""

    w: np.ndarray  # [d, e]
    b: np.ndarray | None  # [e]
    activation: str  # a key of ACTIVATIONS
    norm: Norm  # a LayerNorm's gain and bias, [e] each
    eps: float


@dataclass(eq=False, repr=False)
class Unembedding:
    """A model's language-model head: from the hidden state it reads, logits over the vocabulary (see `logits`)."""

    # [vocab, e] the rows logits are products with: the word embedding table where the head is tied to it, else the
    # head's own; or anything that gives rows when indexed by ids or by a slice (checkpoint.Rows reads them then)
    w: np.ndarray
    bias: np.ndarray | None = None  # [vocab]
    transform: HeadTransform | None = None  # a masked-LM head's dense layer, activation and LayerNorm, before w
    soft_cap: float | None = None  # logits soft-capped at this, as cap · tanh(logit / cap) (Gemma 2's)
    scale: float | None = None  # logits multiplied by this (Cohere's logit_scale; 1 / Granite's logits_scaling)

    @property
    def vocab_size(self) -> int:
        return self.w.shape[0]


# Logits are computed this many numbers of w at a time (1 MB as float32): a table read from disk is never whole in
# memory, which for a large vocabulary in bf16 (Qwen's 151,936 × 896) would take twice its file's size, and each
# block is multiplied while it is still in the CPU's cache.
_LOGIT_BLOCK = 1 << 18


def _row_blocks(w, count: int):
    """The rows of `w` [vocab, e] in order, `count` at a time: an array's as views, checkpoint.Rows' as it reads
    them (into buffers it reuses, see Rows.blocks)."""
    if isinstance(w, np.ndarray):
        return (w[start : start + count] for start in range(0, len(w), count))
    return w.blocks(count)


def logits(h: np.ndarray, unembedding: Unembedding) -> np.ndarray:
    """What the head makes of hidden states: z = (t(h) @ W_U^T + b) · scale, soft-capped as cap · tanh(z / cap),
    in transformers' order, t the masked-LM head's transform where it has one: [T, d_h] -> [T, vocab] float32.
    W_U's rows read from disk are not checked for NaN or infinity: one makes its logit NaN or infinite (0 · ∞ is
    NaN), which the caller checks."""
    z = np.empty((len(h), unembedding.vocab_size), dtype=np.float32)  # [T, vocab]
    for start, block in logit_blocks(h, unembedding):
        z[:, start : start + block.shape[1]] = block
    return z


def logit_blocks(h: np.ndarray, unembedding: Unembedding) -> Iterator[tuple[int, np.ndarray]]:
    """`logits` a block of the vocabulary at a time: (its first id, z [T, B]) for consecutive blocks, B ids as
    many as keep a block of w and of z within _LOGIT_BLOCK numbers each, so that many hidden states at once (the
    logit lens's every layer and position) read w once and hold one block of logits; W_U's rows read from disk a
    block at a time into buffers reused (see _row_blocks). [T, d_h] -> [T, B] float32."""
    u = unembedding
    if u.transform is not None:
        t = u.transform
        h = layer_norm(ACTIVATIONS[t.activation](linear(h, t.w, t.b)), t.norm, t.eps)  # [T, e]
    h = np.asarray(h, dtype=np.float32)
    start = 0
    for rows in _row_blocks(u.w, max(1, _LOGIT_BLOCK // max(h.shape[-1], len(h)))):  # [B, e]
        stop = start + len(rows)
        z = h @ rows.T  # [T, B]
        if u.bias is not None:
            z += u.bias[start:stop]
        if u.scale is not None:
            z *= np.float32(u.scale)
        if u.soft_cap is not None:
            cap = np.float32(u.soft_cap)
            z /= cap
            np.tanh(z, out=z)
            z *= cap
        yield start, z
        start = stop


def head_input(x: np.ndarray, config: TransformerConfig, weights: TransformerWeights) -> np.ndarray:
    """What the language-model head reads of the residual stream `x` [T, d]: x through the final norm (a
    pre-norm model's) and back out to the word embeddings' width where the model projects it so: [T, d_h].
    The last layer's output through it is the trace's output."""
    h = x if weights.final_norm is None else normalized(x, weights.final_norm, config)
    if weights.project_out is not None:
        h = h @ weights.project_out  # [T, d] -> [T, e]
    return h


@dataclass(eq=False, repr=False)
class LayerParts:
    """What one pre-norm layer wrote into the residual stream at some positions, part by part: each [.., p, d]
    as it reached the stream (through a norm after the sublayer, its scale at each position frozen, and the
    residual scale, where the model has them)."""

    heads: np.ndarray  # [h, p, d] each head's output z_h W_O^h
    attention_bias: np.ndarray | None  # [p, d] the attention's output bias b_O (and a LayerNorm's shift after it)
    feed_forward: np.ndarray  # [p, d] the feed-forward network's, or the mixture of experts'


@dataclass(eq=False, repr=False)
class ResidualParts:
    """A pre-norm model's last residual stream x_L at some positions as the sum of what each part of the model wrote
    into it (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"): x_L = x_0 + Σ_l (Σ_h z_h W_O^h
    + b_O + mlp_l), x_0 the embeddings. Where a norm follows a sublayer's output (Gemma 2's and 3's sandwich, OLMo
    2's), the parts pass it with its scale at each position frozen at the one the whole output gave (frozen_norm):
    linear then, they still add up."""

    positions: np.ndarray  # [p] the positions, as asked
    embed: np.ndarray  # [p, d] x_0: the word embeddings with the positions and token types, scaled (and normed)
    layers: list[LayerParts]  # per layer
    stream: np.ndarray  # [p, d] x_L as the forward pass computed it, which the parts add up to (to rounding)


def layer_norm(x: np.ndarray, norm: Norm, eps: float) -> np.ndarray:
    """(x - mean) / √(variance + eps) · gain + bias over the last axis, with `norm`'s gain and bias
    (see attention.layer_norm): [..., d] -> [..., d]."""
    return _layer_norm(x, norm.gain, norm.bias, eps)


def normalized(x: np.ndarray, norm: Norm, config: TransformerConfig) -> np.ndarray:
    """`x` [..., d] through the norm the model uses: LayerNorm, or RMSNorm (no centring, no shift)."""
    return layer_norm(x, norm, config.eps) if config.norm == "layer" else rms_norm(x, norm.gain, config.eps)


def norm_scale(x: np.ndarray, config: TransformerConfig) -> np.ndarray:
    """What the model's norm multiplies each row of `x` [..., d] by, once centred (LayerNorm) or as it is (RMSNorm):
    1 / √(mean(x²) + ε), or 1 / √(variance + ε) with the mean and variance summed in float64 as layer_norm sums
    them: [..., 1]."""
    if config.norm == "layer":
        mean = x.mean(axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
        centred = np.subtract(x, mean.astype(x.dtype), dtype=x.dtype)
        variance = np.mean(np.square(centred), axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
        return 1.0 / np.sqrt(variance + config.eps).astype(x.dtype)
    return 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + config.eps)


def frozen_norm(parts: np.ndarray, scale: np.ndarray, norm: Norm, config: TransformerConfig) -> np.ndarray:
    """Each of `parts` [..., p, d] of a sum through the model's norm with the scale `scale` [p, 1] (norm_scale of the
    whole sum at each of p positions) frozen: RMSNorm c ⊙ γ · s, LayerNorm (c − mean(c)) ⊙ γ · s, without the
    shift β (a LayerNorm's `norm.bias`). With the scale fixed the norm is linear: the parts' sum plus β is the norm of
    their sum, [..., p, d]."""
    if config.norm == "layer":
        parts = parts - parts.mean(axis=-1, keepdims=True)
    y = parts * scale
    if norm.gain is not None:
        y *= norm.gain
    return y


def _gated(x: np.ndarray, ffn: FeedForward, glu: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """glu(gate, up) @ W_out + b_out with [gate | up] = x @ W_in + b_in: [T, d] -> [T, d]."""
    both = linear(x, ffn.w_in, ffn.b_in)  # [T, 2f]
    width = both.shape[-1] // 2
    return linear(glu(both[:, :width], both[:, width:]), ffn.w_out, ffn.b_out)


def feed_forward(x: np.ndarray, ffn: FeedForward, activation: str) -> np.ndarray:
    """activation(x @ W_in + b_in) @ W_out + b_out, or gated: (activation(gate) · up) @ W_out + b_out
    with [gate | up] = x @ W_in + b_in: [T, d] -> [T, d]."""
    if not ffn.gated:
        return linear(ACTIVATIONS[activation](linear(x, ffn.w_in, ffn.b_in)), ffn.w_out, ffn.b_out)

    def glu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        hidden = ACTIVATIONS[activation](gate)  # [T, f]
        hidden *= up
        return hidden

    return _gated(x, ffn, glu)


def clamped_feed_forward(x: np.ndarray, ffn: FeedForward, alpha: float, limit: float) -> np.ndarray:
    """A GPT-OSS expert: clamped_swiglu(gate, up) @ W_out + b_out, with [gate | up] = x @ W_in + b_in:
    [T, d] -> [T, d]."""
    return _gated(x, ffn, lambda gate, up: clamped_swiglu(gate, up, alpha, limit))


def mixture_of_experts(x: np.ndarray, moe: MixtureOfExperts, config: TransformerConfig) -> tuple[np.ndarray, Routing]:
    """y = Σ_{i∈𝒯} g_i · E_i(x), each token through the k experts the router picks for it (plus σ(x·w_s) ·
    E_s(x) where there is a shared expert), and where each token went: [T, d] -> [T, d], Routing."""
    m = config.moe
    if m.softmax_after_top_k:
        routing = top_k_softmax(linear(x, moe.w_router, moe.b_router), m.per_token)  # [T, k] experts and gates
    else:
        routing = route(x, moe.w_router, m.per_token, m.renormalize)  # [T, k] experts and gates
    if m.swiglu_limit is None:
        y = combine(x, routing, lambda i, rows: feed_forward(rows, moe.experts[i], config.activation))  # [T, d]
    else:
        y = combine(
            x, routing, lambda i, rows: clamped_feed_forward(rows, moe.experts[i], m.swiglu_alpha, m.swiglu_limit)
        )
    if moe.shared is not None:
        routing.shared = sigmoid(x @ moe.w_shared_gate)[:, 0]  # [T]
        y += routing.shared[:, None] * feed_forward(x, moe.shared, config.activation)
    return y, routing


def _feed_forward_sublayer(x: np.ndarray, block: Block, config: TransformerConfig) -> tuple[np.ndarray, Routing | None]:
    """The block's feed-forward network or mixture of experts over `x` [T, d] -> [T, d], and where a mixture
    sent each token (None for a dense network)."""
    if isinstance(block.feed_forward, MixtureOfExperts):
        return mixture_of_experts(x, block.feed_forward, config)
    return feed_forward(x, block.feed_forward, config.activation), None


def position_ids(ids: np.ndarray, config: TransformerConfig) -> np.ndarray:
    """Row of the position table for each token: 0, 1, 2, ... (from the position offset, where there
    is one) or, with a padding index, counting from padding_idx + 1 over the non-padding tokens, with
    padding tokens at padding_idx."""
    if config.padding_idx is None:
        return np.arange(config.position_offset, config.position_offset + len(ids))
    real = ids != config.padding_idx
    return np.cumsum(real) * real + config.padding_idx


def relative_embeddings(config: TransformerConfig, weights: TransformerWeights, tokens: int) -> Relative | None:
    """What disentangled attention reads of a text of `tokens` tokens' relative positions (see attention.Relative):
    their δ, the rows of the relative embedding table they read, those rows through its LayerNorm where the
    model has one (each row normed alone, so only the rows read); None for a model without them."""
    disentangled = config.disentangled
    if disentangled is None:
        return None
    delta = relative_positions(tokens, disentangled)  # [T, T]
    rows, c2p_rows, p2c_rows = relative_rows(delta, disentangled.span)
    table = weights.relative[rows]  # [R, d]
    if weights.relative_norm is not None:
        table = layer_norm(table, weights.relative_norm, config.eps)
    read = np.clip(delta, -disentangled.span, disentangled.span - 1)  # [T, T] the position c2p and p2c read
    return Relative(read, rows, c2p_rows, p2c_rows, table)


def convolution(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A convolution along the tokens, zero-padded to keep their number: y_t = b + Σ_m x_{t+m-(k-1)/2} W_m, each
    of G groups of channels apart. x [T, d], w [G, k, d/G, d/G], b [d] -> [T, d]."""
    groups, kernel, width, _ = w.shape
    tokens = len(x)
    padded = np.zeros((groups, tokens + kernel - 1, width), dtype=x.dtype)  # [G, T + k - 1, d/G]
    padded[:, (kernel - 1) // 2 : (kernel - 1) // 2 + tokens] = x.reshape(tokens, groups, width).transpose(1, 0, 2)
    y = padded[:, :tokens] @ w[:, 0]  # [G, T, d/G]
    for m in range(1, kernel):
        y += padded[:, m : m + tokens] @ w[:, m]
    y = y.transpose(1, 0, 2).reshape(tokens, groups * width)  # [T, d]
    y += b
    return y


def convolution_layer(
    x: np.ndarray, output: np.ndarray, conv: ConvolutionWeights, config: TransformerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The first layer's output with the convolution beside it: LayerNorm(output + act(conv(x))) over the layer's
    input `x` [T, d] and its `output` [T, d]; and act(conv(x)) [T, d]."""
    convolved = ACTIVATIONS[config.convolution.activation](convolution(x, conv.w, conv.b))  # [T, d]
    return layer_norm(output + convolved, conv.norm, config.eps), convolved


def attention_input(x: np.ndarray, block: Block, config: TransformerConfig) -> np.ndarray:
    """What a layer's attention reads of the residual stream `x` [T, d]: its norm (pre-norm), or x itself."""
    return normalized(x, block.attention_norm, config) if config.pre_norm and block.attention_norm is not None else x


def sublayer_outputs(
    x: np.ndarray, attended: np.ndarray, block: Block, config: TransformerConfig
) -> tuple[np.ndarray, np.ndarray, Routing | None]:
    """What a pre-norm layer's two sublayers add to the residual stream `x` [T, d], once its attention gave
    `attended` [T, d]: the attention's output and the feed-forward network's (or mixture of experts'), each through
    the norm after it and scaled, where the model has them ([T, d] twice); and where a mixture sent each token.
    In a parallel block both read x (the norm is computed again rather than carried from attention); in a
    sequential one the feed-forward reads x plus what the attention added."""
    if config.parallel:
        ffn_input = normalized(x, block.attention_norm if block.ffn_norm is None else block.ffn_norm, config)
        ffn, routing = _feed_forward_sublayer(ffn_input, block, config)
        return attended, ffn, routing
    if block.attention_out_norm is not None:
        attended = normalized(attended, block.attention_out_norm, config)
    if config.residual_scale is not None:
        attended = attended * np.float32(config.residual_scale)  # a copy: the trace keeps the attention output
    h = x + attended  # [T, d]
    ffn_input = h if block.ffn_norm is None else normalized(h, block.ffn_norm, config)
    ffn, routing = _feed_forward_sublayer(ffn_input, block, config)
    if block.ffn_out_norm is not None:
        ffn = normalized(ffn, block.ffn_out_norm, config)
    if config.residual_scale is not None:
        ffn *= np.float32(config.residual_scale)
    return attended, ffn, routing


def block_output(
    x: np.ndarray, attended: np.ndarray, block: Block, config: TransformerConfig
) -> tuple[np.ndarray, Routing | None]:
    """The rest of a layer once its attention gave `attended` [T, d] for the residual stream `x` [T, d]:
    the residual sums, the norms and the feed-forward network (or mixture of experts), in the order the
    model puts them: [T, d]; and where its mixture of experts sent each token (None for a dense layer).
    A parallel block (x + attention + feed-forward) or a post-norm one has neither the norms after its
    sublayers nor their scaling; TransformerConfig refuses them there."""
    if config.parallel or config.pre_norm:
        attended, ffn, routing = sublayer_outputs(x, attended, block, config)
        out = x + attended  # [T, d]
        out += ffn
        return out, routing
    h = normalized(x + attended, block.attention_norm, config)  # [T, d]
    ffn, routing = _feed_forward_sublayer(h, block, config)
    return normalized(h + ffn, block.ffn_norm, config), routing


def layer_parts(
    attention: AttentionTrace,
    feed_forward: np.ndarray,
    block: Block,
    config: TransformerConfig,
    positions: np.ndarray,
) -> LayerParts:
    """What a pre-norm layer wrote into the residual stream at `positions` [p], part by part (see LayerParts), from
    its attention's trace over the whole text and what its feed-forward network added there, `feed_forward` [p, d]
    (sublayer_outputs'). Each head's output is its z_h [p, d_k] through its rows of W_O."""
    p = block.attention
    heads, _, d_k = attention.head_outputs.shape
    z = attention.head_outputs[:, positions]  # [h, p, d_k]
    per_head = z @ p.w_o.reshape(heads, d_k, -1)  # [h, p, d] z_h W_O^h
    bias = p.b_o  # [d] or None
    norm = block.attention_out_norm
    if norm is not None:  # its scale at each position frozen at what the whole output gave
        scale = norm_scale(attention.output[positions], config)  # [p, 1] of Σ_h z_h W_O^h + b_O
        per_head = frozen_norm(per_head, scale, norm, config)
        bias = None if bias is None else frozen_norm(bias, scale, norm, config)  # [p, d]
        if norm.bias is not None:
            bias = norm.bias if bias is None else bias + norm.bias
    if config.residual_scale is not None:
        per_head = per_head * np.float32(config.residual_scale)
        bias = None if bias is None else bias * np.float32(config.residual_scale)
    shape = (len(positions), per_head.shape[-1])
    bias = None if bias is None else np.array(np.broadcast_to(bias, shape))  # a copy: no view of the weights
    return LayerParts(per_head, bias, feed_forward)


def _inputs(ids: np.ndarray, embeddings: np.ndarray, config: TransformerConfig, weights: TransformerWeights):
    """(the first layer's input [T, d], the position embeddings added to it or None, and the normed embeddings
    [T, e] before their projection where the model projects them so, else None). Embeddings narrower than the
    model are projected in where config.embedding_projection says."""
    projection = None if weights.project_in is None else config.embedding_projection
    positions = None if weights.position is None else weights.position[position_ids(ids, config)]  # [T, d] or [T, e]
    if projection == "words":
        embeddings = embeddings @ weights.project_in  # [T, e] -> [T, d]
    x = embeddings if positions is None else embeddings + positions  # [T, d]
    if config.embedding_scale is not None:
        x = x * np.float32(config.embedding_scale)
    if weights.token_type is not None:
        x = x + weights.token_type[0]
    if projection == "sum":
        x = x @ weights.project_in  # [T, e] -> [T, d]
    if weights.embedding_norm is not None:
        x = normalized(x, weights.embedding_norm, config)
    if projection != "normed":
        return x, positions, None
    return linear(x, weights.project_in, weights.project_in_bias), positions, x  # [T, e] -> [T, d]


def position_bias(config: TransformerConfig, weights: TransformerWeights, tokens: int) -> np.ndarray | None:
    """The relative position bias every layer adds to its scores for a text of `tokens` tokens, computed once:
    [h, T, T]; None for a model without one."""
    if config.relative_bias is None:
        return None
    return relative_position_bias(weights.relative_bias, relative_position_buckets(tokens, config.relative_bias))


def text_positions(config: TransformerConfig, weights: TransformerWeights, tokens: int) -> RelativePositions | None:
    """What a text of `tokens` tokens' relative positions give every layer's scores, made once for the text
    (see attention.RelativePositions); None for a model whose scores read none."""
    bias, disentangled = position_bias(config, weights, tokens), relative_embeddings(config, weights, tokens)
    return None if bias is None and disentangled is None else RelativePositions(bias, disentangled)


def layer_positions(config: TransformerConfig, tokens: int) -> list[tuple[np.ndarray | None, Rotary | None]]:
    """Per layer, what its attention needs of a text of `tokens` tokens besides the weights: the mask
    [T, T] (None: every key) and the rotary embeddings (None: no RoPE), each different one made once."""
    masks: dict[int | None, np.ndarray | None] = {}
    rotations: dict[Rope, Rotary] = {}
    for layer in config.layer_attention:
        if layer.window not in masks:
            masks[layer.window] = attention_mask(tokens, layer.window, config.causal)
        if layer.rope is not None and layer.rope not in rotations:
            rotations[layer.rope] = rotary(tokens, layer.rope)
    return [(masks.get(layer.window), rotations.get(layer.rope)) for layer in config.layer_attention]


def forward(
    ids: np.ndarray,
    embeddings: np.ndarray,
    config: TransformerConfig,
    weights: TransformerWeights,
    keep_steps: bool = True,
    value_norms: bool = False,
    decompose_at: np.ndarray | None = None,
    head_inputs: bool = False,
    on_layer: Callable[[int, int], None] | None = None,
    selection: Selection = EVERYTHING,
    on_attention: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
) -> Trace:
    """Run tokens through the model, keeping every layer's attention weights, and with
    `keep_steps` every intermediate too (a long text's scores take memory the weights alone do not);
    with `value_norms`, each layer's ‖v_j W_O^h‖ too (attention.value_norms: the trace's `norms`), taken
    while the layer's weights are in memory; with `head_inputs`, each layer's residual stream as the
    language-model head would read it (head_input: [L + 1, T, d_h], the embeddings' first), for the logit lens.
    With `decompose_at` [p] (positions; a pre-norm model's), the trace's residual_parts split the last residual
    stream there into what each head, attention bias and feed-forward network wrote into it (see ResidualParts),
    kept as each layer runs, at those positions alone. With `on_layer`, on_layer(layers done, layers) after each
    layer, in order: how a caller shows a long text's progress (the pass itself never writes anything).
    With a `selection`, only its layers' and heads' attention (and value norms) are kept, and the pass stops after
    its last layer. With `on_attention`, none is kept: on_attention(layer, weights [h', T, T], value norms [h', T]
    or None) gets each selected layer's as soon as it is made, and may keep it (the next layer's are new arrays):
    a text's attention then takes one layer's memory, not every layer's.

    `ids` [T] are the token ids and `embeddings` [T, d] (or [T, e], projected in) their rows
    of the word embedding table, looked up by the caller (a checkpoint's table is read from disk).
    """
    if decompose_at is not None and not (config.pre_norm and weights.convolution is None):
        raise ValueError("only a pre-norm model's residual stream is a sum of what its parts wrote into it")
    layers, heads = selection.kept_layers(config.layers), selection.kept_heads(config.heads)
    runs = selection.runs(config.layers)
    if runs < config.layers and (decompose_at is not None or head_inputs):
        raise ValueError("the residual stream's parts and the head's inputs need every layer")
    x, positions, normed = _inputs(ids, embeddings, config, weights)
    relative = text_positions(config, weights, len(ids))  # the same in every layer
    stacked = (0, 0) if on_attention is not None else (len(layers), len(heads))  # nothing, where handed on
    attention = np.empty((*stacked, len(ids), len(ids)), dtype=x.dtype)  # [L', h', T, T]
    norms = np.empty((*stacked, len(ids)), dtype=x.dtype) if value_norms else None  # [L', h', T]
    slots = {layer: slot for slot, layer in enumerate(layers)}  # each kept layer's place among them
    traces, outputs, routings, parts = [], [], [], []
    first = x  # the residual stream the first layer reads (each layer makes a new one; none is changed in place)
    convolved = None  # the convolution of the first layer's input, where the model has one
    streams = [head_input(x, config, weights)] if head_inputs else None  # [T, d_h] per layer, as the head reads it
    for layer, (mask, turn) in enumerate(layer_positions(config, len(ids))[:runs]):
        block = weights.blocks[layer]  # asked for here, once the last is freed (see below)
        attended = attention_input(x, block, config)
        slot = slots.get(layer)
        # kept whole: written straight into its place in the stack; else into a new array (or, without the steps,
        # the scores' own, see attend), of which the kept heads are taken
        weights_out = attention[slot] if slot is not None and on_attention is None and selection.heads is None else None
        trace = multi_head_attention(
            attended, block.attention, config.attention_options, mask, turn, weights_out, keep_steps, relative
        )
        if slot is not None:
            kept_weights = trace.weights if selection.heads is None else trace.weights[list(heads)]  # [h', T, T]
            kept_norms = None  # [h', T], while the layer's W_O is in memory
            if value_norms:
                kept_norms = value_norms_of(trace.v, block.attention.w_o, config.heads)[list(heads)]
            if on_attention is not None:
                on_attention(layer, kept_weights, kept_norms)
            else:
                if weights_out is None:
                    attention[slot] = kept_weights
                if norms is not None:
                    norms[slot] = kept_norms
            del kept_weights
        if decompose_at is None:
            x, routing = block_output(x, trace.output, block, config)
        else:  # block_output's sums, with what each sublayer added kept at the positions asked
            added, ffn, routing = sublayer_outputs(x, trace.output, block, config)
            parts.append(layer_parts(trace, ffn[decompose_at], block, config, decompose_at))
            x = x + added
            x += ffn
        if layer == 0 and weights.convolution is not None:
            x, convolved = convolution_layer(first, x, weights.convolution, config)
        if keep_steps:
            traces.append(trace)
            outputs.append(x)
            routings.append(routing)
        if head_inputs:
            streams.append(head_input(x, config, weights))
        del block, trace  # a layer read from disk is freed before the next is read, which then reuses its memory
        # (a zip over the layers would hold the last until the next was read: two in memory, and fresh pages); and
        # so is its trace, unless kept, with its [h, T, T] scores
        if on_layer is not None:
            on_layer(layer + 1, runs)
    output = head_input(x, config, weights) if streams is None else streams[-1]  # the last stream, as the head reads it
    inputs = [first, *outputs[:-1]] if keep_steps else None
    # disentangled attention's: what each query's position terms read, and the first layer's convolution
    disentangled = None if relative is None else relative.disentangled
    kept = {"relative_positions": disentangled.delta, "convolution": convolved} if keep_steps and disentangled else {}
    normed = normed if keep_steps else None
    if decompose_at is not None:
        kept["residual_parts"] = ResidualParts(decompose_at, first[decompose_at], parts, x[decompose_at])
    return Trace(
        embeddings,
        positions,
        attention,
        traces,
        outputs,
        output,
        routings,
        inputs,
        normed_embeddings=normed,
        value_norms=norms,
        head_inputs=None if streams is None else np.stack(streams),
        **kept,
    )


def forward_packed(
    ids: list[np.ndarray],
    embeddings: list[np.ndarray],
    config: TransformerConfig,
    weights: TransformerWeights,
    norms: bool = False,
    on_layer: Callable[[int, int], None] | None = None,
    selection: Selection = EVERYTHING,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Several texts at once, packed end to end: each text attends only to itself (and its own
    positions, masks, RoPE and relative positions; a convolution beside the first layer runs along
    each text alone), while the projections and feed-forward layers run on every token of every
    text at once, where BLAS is fast. Each text's attention weights [L, h, T, T] are what
    `forward` gives it, to float32 rounding (with `norms`, its ‖α_ij v_j W_O^h‖ in their place: the
    trace's `norms`); and the last layer's output [N, d], for the caller's check. With `on_layer`, on_layer(layers
    done, layers) after each layer, as `forward` calls it; with a `selection`, only its layers and heads are kept
    ([L', h', T, T] a text) and the pass stops after its last layer, as in `forward`.
    """
    layers, heads = selection.kept_layers(config.layers), list(selection.kept_heads(config.heads))
    slots = {layer: slot for slot, layer in enumerate(layers)}  # each kept layer's place among them
    lengths = [len(i) for i in ids]
    ends = np.cumsum(lengths)
    segments = [slice(int(end - length), int(end)) for end, length in zip(ends, lengths, strict=True)]
    x = np.concatenate([_inputs(i, e, config, weights)[0] for i, e in zip(ids, embeddings, strict=True)])
    positions = {n: layer_positions(config, n) for n in set(lengths)}
    relatives = {n: text_positions(config, weights, n) for n in set(lengths)}
    attention = [np.empty((len(layers), len(heads), n, n), dtype=x.dtype) for n in lengths]
    value_norms = [np.empty((len(layers), len(heads), n), dtype=x.dtype) for n in lengths] if norms else None
    # where a layer is not kept whole, its texts' weights (and norms) go first: [h, T, T] (and [h, T]) each
    scratch = scratch_norms = None
    first = x  # the first layer's input, which a convolution beside it reads
    runs = selection.runs(config.layers)
    for layer in range(runs):
        block = weights.blocks[layer]  # once the last is freed, as in forward
        slot = slots.get(layer)
        whole = slot is not None and selection.heads is None  # kept whole: written straight into its place
        if scratch is None and not whole:
            scratch = [np.empty((config.heads, n, n), dtype=x.dtype) for n in lengths]
            scratch_norms = [np.empty((config.heads, n), dtype=x.dtype) for n in lengths] if norms else None
        weights_out = [text[slot] for text in attention] if whole else scratch
        norms_out = None
        if value_norms is not None:
            norms_out = [text[slot] for text in value_norms] if whole else scratch_norms
        output = packed_attention(
            attention_input(x, block, config),
            block.attention,
            config.attention_options,
            segments,
            [positions[n][layer] for n in lengths],
            weights_out,
            [relatives[n] for n in lengths],
            norms_out,
        )
        if slot is not None and not whole:  # the kept heads of the layer
            for text, made in zip(attention, scratch, strict=True):
                text[slot] = made[heads]
            for text, made in zip(value_norms or [], scratch_norms or [], strict=True):
                text[slot] = made[heads]
        x, _ = block_output(x, output, block, config)
        if layer == 0 and weights.convolution is not None:  # along each text's tokens alone
            x = np.concatenate([convolution_layer(first[s], x[s], weights.convolution, config)[0] for s in segments])
        del block
        if on_layer is not None:
            on_layer(layer + 1, runs)
    if value_norms is not None:  # each text's weights become its norms in place: no second [L, h, T, T]
        for weights_of_text, norms_of_text in zip(attention, value_norms, strict=True):
            weighted_value_norms(weights_of_text, norms_of_text, out=weights_of_text)
    return attention, x
