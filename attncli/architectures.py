"""The one place that knows each model family: the BERT-like encoders BERT, RoBERTa, DistilBERT,
XLM-RoBERTa, CamemBERT, ELECTRA, ALBERT, Megatron-BERT and MPNet, DeBERTa-v2 and -v3, ModernBERT,
GPT-2, and the modern decoders Llama, Mistral, Ministral, Qwen 2 and 3, Gemma 1, 2 and 3, Phi-3,
OLMo 1 and 2, SmolLM3, Granite, BLOOM, Falcon, OPT, GPT-Neo, GPT-NeoX, GPT-J, Phi, StableLM, Cohere
and StarCoder2, and the mixtures of experts Mixtral, Qwen 2 MoE, Qwen 3 MoE, OLMoE and GPT-OSS.

`FAMILIES` maps config.json's model_type to a `Family`: how to read its config.json
(keys, defaults, and the forward pass's choices: norm placement, activation,
positions, token types, causal mask), how to find its tensors (names, a head model's
prefix such as "bert."), the special tokens transformers wraps a text in, and the name
prose gives it. Every shape is checked against the config and each matrix laid out for
x @ W: torch Linear weights are stored [out, in] and are transposed here, once; GPT-2's
Conv1D weights are already [in, out]. The bundled vocabulary's WordPiece tokenizer is
BERT's, so it is built here too. Adding a decoder family whose forward pass is Llama's with
switches is adding a row to `_DECODERS`, and a BERT-like encoder a row to `_ENCODERS` (see
docs/development.md, "Adding a family"). GPT-2 and DeBERTa read their config.json and tensors
with readers of their own; ModernBERT, an encoder laid out as a decoder, reads its config.json
with its own and its tensors as the decoders'.
"""

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attncli.attention import Alibi, Disentangled, LayerAttention, Projections, RelativeBias, Rope
from attncli.errors import DataError, shortened

# The forward pass and the checkpoint reader (with safetensors) are imported where a checkpoint
# is read: the sample model needs only this module's tokenizer, and starts faster without them.
if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from attncli.checkpoint import Rows, TensorFile, TensorHeaders
    from attncli.experts import MixtureConfig
    from attncli.transformer import (
        Block,
        FeedForward,
        HeadTransform,
        MixtureOfExperts,
        Norm,
        TransformerConfig,
        TransformerWeights,
        Unembedding,
    )

__all__ = [
    "FAMILIES",
    "SUPPORTED",
    "Family",
    "read_config",
    "read_unembedding",
    "read_weights",
    "read_word_table",
    "uncased_wordpiece_tokenizer",
]

_PREFIXES = (
    "",
    "bert.",
    "roberta.",
    "distilbert.",
    "transformer.",
    "model.",
    "language_model.",
    "model.language_model.",
    "language_model.model.",
    "gpt_neox.",
    "deberta.",
    "electra.",
    "albert.",
    "mpnet.",
)
# Each family's input embedding table, the tensor its prefix is found by.
_ENCODER_WORDS = "embeddings.word_embeddings.weight"
_GPT2_WORDS = "wte.weight"
_DECODER_WORDS = "embed_tokens.weight"
# Where each family keeps the tensors of layer i.
_ENCODER_LAYER = "encoder.layer.{i}"
_DISTILBERT_LAYER = "transformer.layer.{i}"
_GPT2_LAYER = "h.{i}"
_DECODER_LAYER = "layers.{i}"


def _field(config: dict, *names: str, default=None):
    """The first of `names` present in config.json (architectures spell the same thing differently)."""
    for name in names:
        if config.get(name) is not None:
            return config[name]
    if default is not None:
        return default
    raise DataError(f"config.json: missing {names[0]}")


# The largest integer config.json may give: JSON readers and numpy's integer types stop at 64 bits.
_LARGEST = 2**63 - 1


def _integer(config: dict, *names: str, default=None) -> int:
    value = _field(config, *names, default=default)
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _LARGEST:
        raise DataError(f"config.json: {names[0]} should be a 64-bit integer, not {_shown(value)}")
    return value


def _number(config: dict, *names: str, default=None, at_most: float = math.inf) -> float:
    """A finite number above 0 (and at most `at_most`) that config.json gives, the first of `names`
    present, else `default`."""
    value = _field(config, *names, default=default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0 < value <= at_most)
    ):
        bound = "positive number" if at_most == math.inf else f"number above 0 and at most {at_most:g}"
        raise DataError(f"config.json: {names[0]} should be a finite {bound}, not {_shown(value)}")
    return float(value)


def _shown(value) -> str:
    """A config.json value as a message quotes it: its JSON, shortened (a key may hold a megabyte)."""
    return shortened(json.dumps(value) if isinstance(value, int | float | list | dict | None) else repr(value), 40)


def _epsilon(config: dict, *names: str, default: float) -> float:
    value = _field(config, *names, default=default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise DataError(f"config.json: {names[0]} should be a small positive number, not {value!r}")
    return float(value)


def _flag(config: dict, name: str, default: bool = False) -> bool:
    value = config.get(name, default)
    if not isinstance(value, bool):
        raise DataError(f"config.json: {name} should be true or false, not {value!r}")
    return value


def _name(config: dict, *names: str, default=None) -> str:
    value = _field(config, *names, default=default)
    if not isinstance(value, str):
        raise DataError(f"config.json: {names[0]} should be a name, not {value!r}")
    return value


class _Tensors:
    """Looks tensors up under the checkpoint's prefix and checks their shapes."""

    def __init__(self, source: "TensorFile | TensorHeaders", anchor: str):
        names = set(source.names())
        prefix = next((p for p in _PREFIXES if p + anchor in names), None)
        if prefix is None:
            raise DataError(f"model.safetensors: no tensor {anchor} (under any of the prefixes {_PREFIXES[1:]})")
        self.source, self.prefix, self.names = source, prefix, names

    def has(self, name: str) -> bool:
        return self.prefix + name in self.names

    def _full(self, name: str) -> str:
        full = self.prefix + name
        if full not in self.names:
            raise DataError(f"model.safetensors: missing tensor {full}")
        return full

    def _check_shape(self, full: str, actual: tuple[int, ...], shape: tuple[int, ...]) -> None:
        if actual != shape:
            raise DataError(f"model.safetensors: {full} has shape {actual}, but config.json implies {shape}")

    def __call__(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        full = self._full(name)
        tensor = self.source.get(full)
        self._check_shape(full, tensor.shape, shape)
        return tensor

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        """That tensor `name` is there with this shape, from its header alone."""
        full = self._full(name)
        self._check_shape(full, self.source.shape(full), shape)

    def part(self, name: str, index: int, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor `name` [n, ...] of `shape`, its slice [index] alone (see TensorFile.part)."""
        self.check(name, shape)
        return self.source.part(self._full(name), index)

    def check_mxfp4(self, name: str, shape: tuple[int, ...]) -> None:
        """That tensor `name` is there in MXFP4 (NAME_blocks and NAME_scales) with this shape, from the headers."""
        self._full(f"{name}_scales")
        full = self._full(f"{name}_blocks").removesuffix("_blocks")
        self._check_shape(full, self.source.mxfp4_shape(full), shape)

    def mxfp4_part(self, name: str, index: int, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor `name` [n, ...] of `shape` stored in MXFP4, its slice [index] alone (see TensorFile.mxfp4_part)."""
        self.check_mxfp4(name, shape)
        return self.source.mxfp4_part(self.prefix + name, index)

    def stacked(self, names: list[str], shape: tuple[int, int]) -> np.ndarray:
        """Tensors of one `shape` [rows, columns], read straight into one [len(names) · rows, columns]."""
        fulls = [self._full(name) for name in names]
        for full in fulls:  # every shape checked before `shape` sizes anything
            self._check_shape(full, self.source.shape(full), shape)
        together = self.source.empty(len(names) * shape[0] * shape[1]).reshape(len(names) * shape[0], shape[1])
        for i, full in enumerate(fulls):
            self.source.get(full, out=together[i * shape[0] : (i + 1) * shape[0]])
        return together

    def table(self, name: str, shape: tuple[int, int]):
        """An embedding table whose rows are read when looked up (see TensorFile.rows)."""
        full = self._full(name)
        self._check_shape(full, self.source.shape(full), shape)
        return self.source.rows(full)

    def linear(self, name: str, d_in: int, d_out: int, bias: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """A torch Linear layer as (W [d_in, d_out], b [d_out], or None for a layer without a bias)."""
        w = self(f"{name}.weight", (d_out, d_in)).T
        return w, self(f"{name}.bias", (d_out,)) if bias else None

    def norm(self, name: str, d: int) -> "Norm":
        """A LayerNorm's gain and bias, named weight/bias or, in older BERT checkpoints, gamma/beta."""
        from attncli.transformer import Norm

        gain, bias = ("gamma", "beta") if self.prefix + f"{name}.gamma" in self.names else ("weight", "bias")
        return Norm(self(f"{name}.{gain}", (d,)), self(f"{name}.{bias}", (d,)))


@dataclass(frozen=True)
class _Head:
    """Where a family keeps its language-model head, and what config.json says of it, as the family's
    *ForCausalLM or *ForMaskedLM computes its logits (see transformer.Unembedding). A tensor's name is found at
    the checkpoint's root or under one of its prefixes."""

    # the head's decoder, a Linear: NAME.weight [vocab, e], the first of these names present; (): none, the word
    # embeddings always (DeBERTa's non-legacy head)
    names: tuple[str, ...] = ("lm_head",)
    ties: bool = False  # tie_word_embeddings when config.json has none: true, and without NAME.weight, the word
    # embeddings are the head (with NAME.weight, transformers keeps it, tied to them or not)
    # the logits' bias [vocab]: the decoder's own, then the tensors transformers ties it to (read only where the
    # head is tied: BERT's cls.predictions.bias), the first present; (): none
    bias: tuple[str, ...] = ()
    bias_key: tuple[str, bool] | None = None  # a config.json flag for the bias, and its default (ModernBERT's)
    soft_cap: bool = False  # final_logit_softcapping is read (null: none): logits capped as cap · tanh(z / cap)
    soft_cap_default: float | None = None  # final_logit_softcapping when config.json has none (Gemma 2's 30)
    scale: tuple[str, float] | None = None  # (a config.json key the logits are multiplied by, its default): Cohere's
    divisor: tuple[str, float] | None = None  # (a config.json key the logits are divided by, its default): Granite's
    outer: bool = False  # its keys are config.json's own, not its text model's: a multimodal checkpoint's head
    # is the outer model's (Gemma 3's ties as its top-level tie_word_embeddings says and soft-caps nothing)
    # A masked-LM head's transform before the decoder (transformer.HeadTransform): its dense layer DENSE.weight
    # [e, d] and DENSE.bias, the word embeddings' width e; None: none (a causal LM's head)
    dense: str | None = None
    dense_bias_key: tuple[str, bool] | None = None  # a config.json flag for the dense layer's bias, and its default
    # (ModernBERT's classifier_bias); None: it has one
    norm: str = "LayerNorm"  # the transform's LayerNorm (the model's ε, and a bias where the model's norms have one)
    activation: str | None = None  # the transform's activation where it is fixed (RoBERTa's GELU); None: the model's
    activation_key: tuple[str, str] | None = None  # a config.json key naming it, and its default (ModernBERT's)
    # (a config.json flag, its default, the family's head where it is false): DeBERTa's legacy
    unless: "tuple[str, bool, _Head] | None" = None


def _masked_lm(module: str, decoder: str = "decoder", transform: str = "", **options) -> _Head:
    """A masked-LM head under `module` as BERT lays it out: MODULE.TRANSFORMdense, activation, LayerNorm, then
    MODULE.DECODER tied to the word embeddings, with its bias or, tied to it, MODULE.bias."""
    return _Head(
        names=(f"{module}.{decoder}",),
        ties=True,
        bias=(f"{module}.{decoder}.bias", f"{module}.bias"),
        dense=f"{module}.{transform}dense",
        **{"norm": f"{module}.{transform}LayerNorm", **options},
    )


# BERT's head (Megatron-BERT's, and DeBERTa's legacy one), and RoBERTa's (XLM-RoBERTa's, CamemBERT's and MPNet's):
# the GELU, layer_norm
_BERT_HEAD = _masked_lm("cls.predictions", transform="transform.")
_ROBERTA_HEAD = _masked_lm("lm_head", activation="gelu", norm="lm_head.layer_norm")


@dataclass(frozen=True)
class _EncoderNames:
    """Where a BERT-like encoder family keeps its tensors: the embeddings' and the encoder's under the
    checkpoint's prefix, each layer's parts under its `layer` prefix. BERT's names are the defaults."""

    # layer i's tensors; where layers share their weights (_Encoder.shared_layers), group i's
    layer: str = _ENCODER_LAYER
    shared: str | None = None  # where layers share their weights: layer i of a group, under the group's prefix
    q: str = "attention.self.query"
    k: str = "attention.self.key"
    v: str = "attention.self.value"
    o: str = "attention.output.dense"
    attention_norm: str = "attention.output.LayerNorm"  # after attention, or before it (_Encoder.pre_norm)
    up: str = "intermediate.dense"  # the feed-forward's first projection
    down: str = "output.dense"  # its last
    ffn_norm: str = "output.LayerNorm"  # after the feed-forward, or before it (_Encoder.pre_norm)
    positions: str = "embeddings.position_embeddings.weight"
    token_types: str | None = "embeddings.token_type_embeddings.weight"  # None: the family has no token types
    embedding_norm: str | None = "embeddings.LayerNorm"  # None: nothing normalises the embeddings (Megatron-BERT)
    project: str = "embeddings_project"  # the summed embeddings into hidden_size (_Encoder.projection)
    final_norm: str = "encoder.ln"  # the norm after the last layer, where the norms come before each sublayer
    relative_bias: str = "encoder.relative_attention_bias.weight"  # [buckets, heads] (_Encoder.relative_bias)


@dataclass(frozen=True)
class _Encoder:
    """How a BERT-like encoder family departs from BERT's layout and defaults: one field per behaviour."""

    names: _EncoderNames = _EncoderNames()  # where its tensors are
    keys: tuple[tuple[str, tuple[str, ...] | None], ...] = ()  # (BERT's config.json key, this family's names for
    # it, the first present read: DistilBERT's dim, n_heads ...), or None where transformers reads no such key
    # for the family, BERT's default standing (DistilBERT's layer_norm_eps, MPNet's pad_token_id)
    defaults: tuple[tuple[str, int], ...] = ()  # keys of its own its configuration fills in where config.json
    # leaves them out (ELECTRA's and ALBERT's embedding_size, ALBERT's groups)
    default_activation: str | None = None  # the activation when config.json names none; None: it must name one
    is_decoder: bool = True  # is_decoder is read: true (a causal mask on the encoder) is refused
    absolute_positions: bool = True  # position_embedding_type is read: all but absolute refused
    padded_positions: bool = False  # positions count from the padding index + 1 (pad_token_id, 1 unless given)
    pre_norm: bool = False  # a LayerNorm before each sublayer and one after the last layer (Megatron-BERT)
    # embedding_size is read: word, position and token type embeddings that wide, summed and normed, then
    # projected into hidden_size (names.project, with a bias) where the widths differ ("differing": ELECTRA) or
    # always ("always": ALBERT)
    projection: str | None = None
    # num_hidden_groups groups of inner_group_num layers, each run in turn, shared by the num_hidden_layers passes
    # (ALBERT); each of those layers attends, so the model has num_hidden_layers × inner_group_num of them
    shared_layers: bool = False
    relative_bias: bool = False  # a relative position bias on every layer's scores, one table for all (MPNet)
    head: _Head = _BERT_HEAD  # its masked-LM head

    def keys_for(self, name: str) -> tuple[str, ...]:
        """This family's config.json keys for what BERT's calls `name`, in the order transformers tries them;
        none where transformers reads no such key for the family."""
        names = dict(self.keys).get(name, (name,))
        return () if names is None else names


# ALBERT's published models run their shared layers 12 or 24 times; a config.json asking for more passes than
# this is damaged, as one naming more layers than its tensors hold is (and every pass's attention is kept).
_MOST_SHARED_PASSES = 1024


def _encoder_settings(config: dict, style: _Encoder) -> dict:
    """config.json with the family's defaults for the keys of its own it leaves out."""
    return dict(style.defaults) | config


def _encoder_config(config: dict, layers: int, style: _Encoder) -> dict:
    """The TransformerConfig fields of a BERT-like encoder, `style` saying how its family differs."""
    if style.absolute_positions and _field(config, "position_embedding_type", default="absolute") != "absolute":
        raise DataError("config.json: only absolute position embeddings are supported")
    if style.is_decoder and config.get("is_decoder"):  # transformers would add a causal mask to this encoder
        raise DataError("config.json: is_decoder true (a causal mask on an encoder) is not supported")

    def read(kind: Callable, name: str, default=None):
        """What this family's config.json says for BERT's key `name`, read by `kind` (_integer, _name ...),
        or `default` where it says nothing, or transformers reads no such key for the family."""
        keys = style.keys_for(name)
        return kind(config, *keys, default=default) if keys else default

    names, d = style.names, read(_integer, "hidden_size")
    shared = _shared_layers(config, layers) if style.shared_layers else None  # checked before any per-layer tuple
    layers = layers if shared is None else len(shared)
    fields = dict(
        family=config["model_type"],
        layers=layers,
        layer_attention=(LayerAttention(),) * layers,
        heads=read(_integer, "num_attention_heads"),
        d_model=d,
        d_ff=read(_integer, "intermediate_size"),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=read(_integer, "max_position_embeddings"),
        activation=read(_name, "hidden_act", default=style.default_activation),
        eps=read(_epsilon, "layer_norm_eps", default=1e-12),
        pre_norm=style.pre_norm,
        causal=False,
        type_vocab_size=read(_integer, "type_vocab_size", default=2) if names.token_types else 0,
        padding_idx=read(_integer, "pad_token_id", default=1) if style.padded_positions else None,
        embedding_norm=names.embedding_norm is not None,
        shared_layers=shared,
    )
    if style.projection is not None:
        e = _integer(config, "embedding_size")
        if style.projection == "always" or e != d:
            fields |= {"d_embed": None if e == d else e, "embedding_projection": "normed"}
    if style.relative_bias:
        fields["relative_bias"] = _relative_bias(config)
    return fields


def _shared_layers(config: dict, passes: int) -> tuple[tuple[int, int], ...]:
    """The layers of a model whose layers share their weights, as transformers runs ALBERT's, each as the
    (group, layer within it) of the stored weights it runs: `passes` (num_hidden_layers) passes, pass i
    through group ⌊i / (passes / num_hidden_groups)⌋ (in floating point, as transformers computes it), each
    group's inner_group_num layers in turn. Each of those layers attends and is one of the model's layers:
    passes × inner_group_num of them."""
    groups, inner = _integer(config, "num_hidden_groups"), _integer(config, "inner_group_num")
    if groups < 1 or inner < 1:
        raise DataError(f"config.json: num_hidden_groups = {groups}, inner_group_num = {inner}; both must be positive")
    if passes * inner > _MOST_SHARED_PASSES:
        raise DataError(
            f"config.json: num_hidden_layers {passes:,} × inner_group_num {inner:,} layers; attncli runs at most "
            f"{_MOST_SHARED_PASSES:,} passes through shared layers"
        )
    return tuple((int(i / (passes / groups)), j) for i in range(passes) for j in range(inner))


def _relative_bias(config: dict) -> RelativeBias:
    """MPNet's relative position bias: transformers buckets each query-key distance into 32 buckets up to a
    distance of 128 whatever config.json says (its compute_position_bias's own defaults), looked up in a table
    of relative_attention_num_buckets rows; a table of other than those 32 is refused."""
    bias, rows = RelativeBias(), _integer(config, "relative_attention_num_buckets")
    if rows != bias.buckets:
        raise DataError(
            f"config.json: relative_attention_num_buckets {rows} is not supported; transformers buckets relative "
            f"positions into {bias.buckets} whatever it says, and attncli reads a table of {bias.buckets}"
        )
    return bias


def _encoder_block(t: _Tensors, c: "TransformerConfig", names: _EncoderNames, layer: str) -> "Block":
    """The layer whose tensors are under `layer`: its attention, feed-forward network and two LayerNorms."""
    from attncli.transformer import Block, FeedForward

    d, f = c.d_model, c.d_ff
    (w_q, b_q), (w_k, b_k), (w_v, b_v), (w_o, b_o) = (
        t.linear(f"{layer}.{name}", d, d) for name in (names.q, names.k, names.v, names.o)
    )
    w_in, b_in = t.linear(f"{layer}.{names.up}", d, f)
    w_out, b_out = t.linear(f"{layer}.{names.down}", f, d)
    return Block(
        Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o),
        t.norm(f"{layer}.{names.attention_norm}", d),
        FeedForward(w_in, w_out, b_in, b_out),
        t.norm(f"{layer}.{names.ffn_norm}", d),
    )


def _encoder_weights(
    c: "TransformerConfig", tensors: "TensorFile | TensorHeaders", style: _Encoder
) -> "TransformerWeights":
    """A BERT-like encoder's weights, its tensors found where `style.names` says; where layers share their
    weights, each group's layers are read once, and the layers that run them are the same Blocks."""
    from attncli.transformer import TransformerWeights

    names = style.names
    t = _Tensors(tensors, _ENCODER_WORDS)
    d, e = c.d_model, c.d_embed or c.d_model  # e: the embeddings' width
    if c.shared_layers is None:  # each layer read when the forward pass reaches it (kept, in a small model)
        blocks = _Layers(c, lambda i: _encoder_block(t, c, names, names.layer.format(i=i)))
    else:
        stored: dict[tuple[int, int], Block] = {}  # (group, layer within it) -> its weights, read once
        for group, inner in c.shared_layers:
            if (group, inner) not in stored:
                layer = f"{names.layer.format(i=group)}.{names.shared.format(i=inner)}"
                stored[group, inner] = _encoder_block(t, c, names, layer)
        blocks = [stored[shared] for shared in c.shared_layers]
    projected = c.embedding_projection == "normed"  # the summed and normed embeddings, with a bias
    project_in, project_in_bias = t.linear(names.project, e, d) if projected else (None, None)
    types = c.type_vocab_size
    return TransformerWeights(
        word=t.table(_ENCODER_WORDS, (c.vocab_size, e)),
        position=t(names.positions, (c.max_positions, e)),
        token_type=t(names.token_types, (types, e)) if types else None,
        embedding_norm=t.norm(names.embedding_norm, e) if c.embedding_norm else None,
        blocks=blocks,
        final_norm=t.norm(names.final_norm, d) if c.pre_norm else None,
        project_in=project_in,
        project_in_bias=project_in_bias,
        relative_bias=t(names.relative_bias, (c.relative_bias.buckets, c.heads)) if c.relative_bias else None,
    )


def _deberta_config(config: dict, layers: int) -> dict:
    """DeBERTa-v2's and -v3's config (model_type deberta-v2): BERT's post-norm layers, their attention
    disentangled (attention.Disentangled), read as DebertaV2Config and its modeling code read it; a setting
    it computes and attncli does not is refused by name."""
    from attncli.transformer import ACTIVATIONS, Convolution

    if not _flag(config, "relative_attention"):  # DebertaV2Config's default: false
        raise DataError("config.json: relative_attention false (DeBERTa without relative positions) is not supported")
    d, heads = _integer(config, "hidden_size"), _integer(config, "num_attention_heads")
    if config.get("attention_head_size") is not None and _integer(config, "attention_head_size") * heads != d:
        raise DataError(  # its output projection is hidden_size square: transformers cannot run it
            f"config.json: attention_head_size {config['attention_head_size']} × {heads} heads is not hidden_size {d}"
        )
    max_positions = _integer(config, "max_position_embeddings")
    max_relative = _integer(config, "max_relative_positions", default=-1)
    max_relative = max_relative if max_relative >= 1 else max_positions
    buckets = max(_integer(config, "position_buckets", default=-1), 0)
    # transformers divides a distance by half the buckets, and the logs by that of (max_relative - 1) / half
    if buckets and (buckets < 2 or max_relative - 1 == buckets // 2):
        raise DataError(
            f"config.json: position_buckets {buckets} with max_relative_positions {max_relative} makes no log "
            "buckets (transformers divides by 0)"
        )
    terms = _position_terms(config)
    norms = {part.strip() for part in _name(config, "norm_rel_ebd", default="none").lower().split("|")}
    if norms - {"none", "layer_norm"}:
        raise DataError(f"config.json: norm_rel_ebd {config['norm_rel_ebd']!r} is not supported (none or layer_norm)")
    embedding = _integer(config, "embedding_size", default=d)
    kernel = _integer(config, "conv_kernel_size", default=0)
    convolution = None
    if kernel > 0:
        groups = _integer(config, "conv_groups", default=1)
        if kernel % 2 == 0:  # padded by (k - 1) // 2 a side, its output is a token short of its residual
            raise DataError(f"config.json: conv_kernel_size {kernel} (even) is not supported; transformers fails on it")
        if groups < 1 or d % groups:
            raise DataError(f"config.json: conv_groups {groups} does not divide hidden_size {d}")
        activation = _name(config, "conv_act", default="tanh")
        if activation not in ACTIVATIONS:
            raise DataError(f"config.json: conv_act {activation!r} is not supported; known: {sorted(ACTIVATIONS)}")
        convolution = Convolution(kernel, groups, activation)
    return dict(
        family="deberta-v2",
        layers=layers,
        layer_attention=(LayerAttention(),) * layers,
        heads=heads,
        d_model=d,
        d_ff=_integer(config, "intermediate_size"),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=max_positions,
        activation=_name(config, "hidden_act", default="gelu"),
        eps=_epsilon(config, "layer_norm_eps", default=1e-7),
        pre_norm=False,
        causal=False,
        type_vocab_size=_integer(config, "type_vocab_size", default=0),
        embedding_norm=True,
        d_embed=None if embedding == d else embedding,
        embedding_projection="sum",
        disentangled=Disentangled(
            c2p="c2p" in terms,
            p2c="p2c" in terms,
            span=buckets or max_relative,
            buckets=buckets,
            max_relative=max_relative,
            shared=_flag(config, "share_att_key"),
            normed="layer_norm" in norms,
            absolute=_flag(config, "position_biased_input", default=True),
        ),
        convolution=convolution,
    )


def _position_terms(config: dict) -> set[str]:
    """DeBERTa's position terms, pos_att_type: a list, or as published checkpoints give it, one string of them
    between bars ("p2c|c2p"), which DebertaV2Config lowercases; c2p and p2c, any other (DeBERTa v1's p2p)
    refused, where transformers would leave it out."""
    given = config.get("pos_att_type")
    if isinstance(given, str):
        given = [part.strip() for part in given.lower().split("|")]
    if given is None:
        return set()
    if not isinstance(given, list) or not all(isinstance(term, str) for term in given):
        raise DataError(f"config.json: pos_att_type should be a list of c2p and p2c, not {_shown(given)}")
    if set(given) - {"c2p", "p2c"}:
        unknown = sorted(set(given) - {"c2p", "p2c"})
        raise DataError(f"config.json: pos_att_type {_shown(unknown)} is not supported; attncli computes c2p and p2c")
    return set(given)


# Where DeBERTa keeps its tensors: BERT's names, but its attention's projections are named _proj, and beside them
# those of the relative positions (for p2c and c2p), where the layer does not share its own.
_DEBERTA_NAMES = _EncoderNames(
    q="attention.self.query_proj", k="attention.self.key_proj", v="attention.self.value_proj"
)
_DEBERTA_POSITIONS = ("attention.self.pos_query_proj", "attention.self.pos_key_proj")


def _deberta_block(t: _Tensors, c: "TransformerConfig", i: int) -> "Block":
    """DeBERTa's layer i: a BERT-like encoder's (_encoder_block), with its relative positions' projections
    (the layer's own W_Q and W_K where it shares them)."""
    d, relative, layer = c.d_model, c.disentangled, _ENCODER_LAYER.format(i=i)
    block = _encoder_block(t, c, _DEBERTA_NAMES, layer)
    p, (pos_q, pos_k) = block.attention, (f"{layer}.{name}" for name in _DEBERTA_POSITIONS)
    if relative.p2c:
        p.w_pos_q, p.b_pos_q = (p.w_q, p.b_q) if relative.shared else t.linear(pos_q, d, d)
    if relative.c2p:
        p.w_pos_k, p.b_pos_k = (p.w_k, p.b_k) if relative.shared else t.linear(pos_k, d, d)
    return block


def _deberta_weights(c: "TransformerConfig", tensors: "TensorFile | TensorHeaders") -> "TransformerWeights":
    """DeBERTa's weights: the embeddings (narrower ones, and their projection), its layers (_deberta_block),
    the relative embeddings and their LayerNorm, and the convolution."""
    from attncli.transformer import ConvolutionWeights, TransformerWeights

    names, t = _DEBERTA_NAMES, _Tensors(tensors, _ENCODER_WORDS)
    d, e, relative = c.d_model, c.d_embed or c.d_model, c.disentangled
    blocks = _Layers(c, functools.partial(_deberta_block, t, c))  # each read when the forward pass reaches it
    convolution = None
    if c.convolution is not None:
        k, groups = c.convolution.kernel, c.convolution.groups
        w = t("encoder.conv.conv.weight", (d, d // groups, k))  # [out, in of its group, k]
        convolution = ConvolutionWeights(
            w.reshape(groups, d // groups, d // groups, k).transpose(0, 3, 2, 1),  # [G, k, in, out]
            t("encoder.conv.conv.bias", (d,)),
            t.norm("encoder.conv.LayerNorm", d),
        )
    types = c.type_vocab_size
    return TransformerWeights(
        word=t.table(_ENCODER_WORDS, (c.vocab_size, e)),
        position=t(names.positions, (c.max_positions, e)) if relative.absolute else None,
        token_type=t(names.token_types, (types, e)) if types else None,
        embedding_norm=t.norm(names.embedding_norm, d),
        blocks=blocks,
        final_norm=None,
        project_in=t("embeddings.embed_proj.weight", (d, e)).T if c.d_embed else None,
        relative=t("encoder.rel_embeddings.weight", (2 * relative.span, d)),
        relative_norm=t.norm("encoder.LayerNorm", d) if relative.normed else None,
        convolution=convolution,
    )


def _gpt2_config(config: dict, layers: int) -> dict:
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise DataError("config.json: scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported")
    if config.get("scale_attn_weights") is False:
        raise DataError("config.json: scale_attn_weights false (unscaled attention) is not supported")
    d = _integer(config, "n_embd", "hidden_size")
    return dict(
        family="gpt2",
        layers=layers,
        layer_attention=(LayerAttention(),) * layers,
        heads=_integer(config, "n_head", "num_attention_heads"),
        d_model=d,
        d_ff=_integer(config, "n_inner", default=4 * d),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=_integer(config, "n_positions", "max_position_embeddings"),
        activation=_name(config, "activation_function", default="gelu_new"),
        eps=_epsilon(config, "layer_norm_epsilon", default=1e-5),
        pre_norm=True,
        causal=True,
    )


def _gpt2_weights(c: "TransformerConfig", tensors: "TensorFile | TensorHeaders") -> "TransformerWeights":
    from attncli.transformer import Block, FeedForward, TransformerWeights

    t = _Tensors(tensors, _GPT2_WORDS)
    d, f = c.d_model, c.d_ff
    blocks = []
    for i in range(c.layers):
        layer = _GPT2_LAYER.format(i=i)
        # Conv1D: weights are [in, out] already; c_attn holds Q, K and V side by side.
        w_q, w_k, w_v = np.split(t(f"{layer}.attn.c_attn.weight", (d, 3 * d)), 3, axis=1)
        b_q, b_k, b_v = np.split(t(f"{layer}.attn.c_attn.bias", (3 * d,)), 3)
        w_o, b_o = t(f"{layer}.attn.c_proj.weight", (d, d)), t(f"{layer}.attn.c_proj.bias", (d,))
        attention_norm = t.norm(f"{layer}.ln_1", d)
        w_in, b_in = t(f"{layer}.mlp.c_fc.weight", (d, f)), t(f"{layer}.mlp.c_fc.bias", (f,))
        w_out, b_out = t(f"{layer}.mlp.c_proj.weight", (f, d)), t(f"{layer}.mlp.c_proj.bias", (d,))
        blocks.append(
            Block(
                Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o),
                attention_norm,
                FeedForward(w_in, w_out, b_in, b_out),
                t.norm(f"{layer}.ln_2", d),
            )
        )
    return TransformerWeights(
        word=t.table(_GPT2_WORDS, (c.vocab_size, d)),
        position=t("wpe.weight", (c.max_positions, d)),
        token_type=None,
        embedding_norm=None,
        blocks=blocks,
        final_norm=t.norm("ln_f", d),
    )


@dataclass(frozen=True)
class _Names:
    """Where a decoder family keeps its tensors: the embedding table and the final norm under the
    checkpoint's prefix, each layer's parts under its `layer` prefix. Llama's names are the defaults."""

    words: str = _DECODER_WORDS  # the input embedding table
    final_norm: str = "norm"
    positions: str | None = None  # a learned position table, where the family has one (OPT, GPT-Neo)
    embedding_norm: str | None = None  # a norm on the embeddings before the first layer, where there is one (BLOOM)
    project_in: str = "project_in"  # word embeddings narrower than the model: into its width (OPT's
    # word_embed_proj_dim)
    project_out: str = "project_out"  # and the last hidden state back
    layer: str = _DECODER_LAYER
    attention_norm: str = "input_layernorm"
    ffn_norm: str | None = "post_attention_layernorm"  # None: the feed-forward reads the attention's norm
    q: str = "self_attn.q_proj"
    k: str = "self_attn.k_proj"
    v: str = "self_attn.v_proj"
    qkv: str = "self_attn.qkv_proj"  # q, k and v in one matrix, where the family fuses them (_Decoder.qkv)
    o: str = "self_attn.o_proj"
    gate: str = "mlp.gate_proj"  # a gated feed-forward's gate
    gate_up: str = "mlp.gate_up_proj"  # gate and up in one matrix, where the family fuses them (_Decoder.gate_up)
    up: str = "mlp.up_proj"  # the feed-forward's first projection (gated: the one the gate multiplies)
    down: str = "mlp.down_proj"  # its last
    q_norm: str = "self_attn.q_norm"  # the norm on q (each head's, or all of them at once), where the family has one
    k_norm: str = "self_attn.k_norm"
    head_norms: str | None = None  # each head's own q or k norm under q_norm's name ("norms.{i}": StableLM), where
    # the norms are per head (_Decoder.qk_norm_per_head); None: every head's weights in one [heads, d_k] tensor
    parallel_norms: tuple[str, str] | None = None  # a parallel block's attention and feed-forward norms where
    # config.json gives each its own, named apart from a sequential block's (Falcon's ln_attn, ln_mlp)


# Where Qwen 2 MoE keeps a layer's shared expert: a gated feed-forward network of its own.
_SHARED_EXPERT = _Names(
    gate="mlp.shared_expert.gate_proj", up="mlp.shared_expert.up_proj", down="mlp.shared_expert.down_proj"
)


@dataclass(frozen=True)
class _Decoder:
    """How a decoder family departs from Llama's layout and defaults: one field per behaviour."""

    names: _Names = _Names()  # where its tensors are
    keys: tuple[tuple[str, str | tuple[str, ...] | None], ...] = ()  # (Llama's config.json key, this family's name
    # for it) where they differ; or its names, the first present read (transformers' attribute_map and n_embed
    # win over the family's own); or None where transformers reads none for the family, its default standing
    # (hidden_act, the activation, among them: Gemma 2's hidden_activation; none for BLOOM and GPT-OSS)
    head_dim: int | None = None  # d_k when config.json has no head_dim; None: hidden_size / heads
    kv_heads: int | None = None  # num_key_value_heads when config.json has none; None: the heads
    attention_bias: bool = True  # attention_bias is read (else the attention has no biases)
    mlp_bias: bool = False  # mlp_bias is read (else the feed-forward has no biases)
    partial_rotary: bool = False  # partial_rotary_factor is read (else RoPE turns whole heads)
    qk_norm: bool = False  # an RMSNorm on each head's q and k, before RoPE (Qwen 3)
    qkv: str | None = None  # q, k and v in one matrix: "stacked" (every q row, then k's, then v's: Phi-3),
    # "per_head" (head by head, each head's q, k and v rows in turn: BLOOM) or "grouped" (key-value head by
    # key-value head, its query heads' rows, then its k's and v's: Falcon); None: three matrices
    gate_up: bool = False  # the gated feed-forward's gate and up in one matrix, gate's rows first (Phi-3)
    norm_offset: bool = False  # RMSNorm gains, the q and k norms' too, stored as gain - 1 (Gemma)
    embedding_scale: bool = False  # the word embeddings multiplied by √hidden_size (Gemma)
    sandwich: bool = False  # a norm after attention and after the feed-forward too, before each residual sum (Gemma 2)
    soft_cap: float | None = None  # attn_logit_softcapping is read, with this default (else no soft-capping)
    query_scalar: int | None = None  # query_pre_attn_scalar is read, with this default: scores · scalar^-½
    gelu_means_tanh: bool = False  # an activation named "gelu" is its tanh form, as transformers reads Gemma's
    layer_types: bool = False  # layer_types is read where config.json has it (else the rule below alone)
    # which layers slide without layer_types: none, all, upper (max_window_layers on), even, or pattern: all
    # but every sliding_window_pattern-th (Gemma 3)
    windows: str = "none"
    use_sliding_window: bool = False  # sliding_window counts only where use_sliding_window is true (Qwen)
    window: int | None = None  # sliding_window when config.json has none
    default_activation: str = "silu"  # the activation when config.json names none (or the family reads no key)
    eps: float = 1e-6  # the norms' epsilon when config.json has none
    norm: str = "rms"  # RMSNorm, or "layer": LayerNorm
    norm_bias: bool = True  # a LayerNorm adds a bias
    gated: bool = True  # the feed-forward is gated (SwiGLU and kin); else down(activation(up(x)))
    parallel: bool = False  # attention and feed-forward read the same residual stream and add to it together
    # config.json keys, and their values, that the family's configuration fills in where config.json leaves
    # them out and no field above gives them: rope_theta where it is not Llama's 10000 (SmolLM3, Mixtral,
    # GPT-OSS), and the many Gemma 3's published multimodal configs leave out
    defaults: tuple[tuple[str, int | float], ...] = ()
    text_config: bool = False  # the model's settings are config.json's text_config (a multimodal checkpoint)
    local_rope: bool = False  # sliding layers turn by RoPE of base rope_local_base_freq, the others by rope_theta
    # local_rope: the config.json keys of the global and of the sliding layers' RoPE bases (ModernBERT's
    # global_rope_theta, local_rope_theta), and whether rope_scaling scales the sliding layers' RoPE too
    rope_bases: tuple[str, str] = ("rope_theta", "rope_local_base_freq")
    local_rope_scaled: bool = False
    plain_norm: bool = False  # LayerNorm without gain or bias, its epsilon `eps` whatever config.json says (OLMo)
    clip_qkv: bool = False  # clip_qkv is read: q, k and v clamped to ±clip_qkv once projected (OLMo)
    whole_qk_norm: bool = False  # an RMSNorm over all of q's heads and one over all of k's, before RoPE (OLMo 2)
    input_norms: bool = True  # False, in a sandwich: no norms before the sublayers, only after them (OLMo 2)
    rope_types: tuple[tuple[str, str], ...] = ()  # the rope types read, each as the one computed; (): all of ROPE_TYPES
    original_context: int | None = None  # a top-level original_max_position_embeddings config.json leaves out (Phi-3)
    no_rope: bool = False  # no_rope_layers or no_rope_layer_interval name layers without RoPE (SmolLM3; windows
    # "no_rope": those layers slide)
    multipliers: bool = False  # embedding_, attention_ and residual_multiplier are read (Granite)
    # a config.json flag for biases on q, k and v alone, and its value where config.json leaves it out (Qwen 2
    # MoE's qkv_bias, true; StableLM's use_qkv_bias, false)
    qkv_bias_key: tuple[str, bool] | None = None
    qk_norm_key: str | None = None  # a config.json flag for the q and k norms, where the family reads one
    qk_norm_per_head: bool = False  # each head's q and k LayerNorm has weights of its own (StableLM, Cohere)
    parallel_residual: bool | None = None  # use_parallel_residual is read, with this default (else parallel says)
    parallel_shares_norm: bool = False  # a parallel block's feed-forward reads the attention's norm (StableLM)
    pairing: str = "halves"  # RoPE's dimension pairs: i with i + n/2, or "adjacent", 2i with 2i + 1 (GPT-J, Cohere)
    rotary_dim: int | None = None  # rotary_dim is read, with this default: RoPE of base 10,000 on that many of
    # a head's dimensions, and no other RoPE setting (GPT-J)
    moe: "_Mixture | None" = None  # mixture-of-experts layers, as the family configures and stores them
    positions: str = "rope"  # how positions enter: "rope", "alibi" (ALiBi's biases on the scores: BLOOM) or
    # "learned" (a table added to the embeddings: OPT, GPT-Neo)
    alibi: Alibi | None = None  # how the family computes ALiBi's biases, where it has them
    alibi_key: str | None = None  # a config.json flag choosing ALiBi (true) over RoPE (Falcon's alibi)
    position_offset: int = 0  # the learned position table's row of the first token (OPT's 2)
    max_positions: int | None = None  # max_position_embeddings when config.json has none (BLOOM's: its training length)
    ffn_factor: int | None = None  # intermediate_size when config.json has none (or null): this times hidden_size
    biases: tuple[bool, bool, bool] | None = None  # biases on q, k and v, on W_O and in the feed-forward, whatever
    # config.json says (Qwen 2, BLOOM, GPT-Neo, GPT-J, Phi); None: as attention_bias, mlp_bias and qkv_bias_key say
    bias_default: bool = False  # attention_bias and mlp_bias when config.json has none (OPT's enable_bias: true)
    unscaled: bool = False  # the scores are not divided by √d_k (GPT-Neo)
    pre_norm_key: str | None = None  # a config.json flag: norms before each sublayer (true, the default) or after
    # (OPT's do_layer_norm_before); None: before
    final_norm_key: str | None = None  # a config.json flag that drops the final norm (OPT's _remove_final_layer_norm)
    d_embed_key: str | None = None  # the config.json key of the word embeddings' width (OPT's word_embed_proj_dim)
    layer_kinds: bool = False  # each layer global or local (sliding), as attention_layers or attention_types say
    # (GPT-Neo)
    refused: tuple[tuple[str, object], ...] = ()  # (key, the value attncli computes): config.json settings the
    # family's transformers code computes and attncli does not, refused by name unless config.json gives that value
    variant: Callable[[dict, dict], dict] | None = None  # (config.json, the fields read) -> the TransformerConfig
    # fields the family's architectures decide between (Falcon's old and new)
    sinks: bool = False  # each head's learned sink logit, self_attn.sinks [h], joins every row's softmax (GPT-OSS)
    # RoPE's settings where config.json gives neither rope_parameters nor rope_scaling (GPT-OSS: yarn); (): default
    rope_defaults: tuple[tuple[str, str | float | bool], ...] = ()
    head: _Head = _Head()  # its language-model head

    def keys_for(self, name: str) -> tuple[str, ...]:
        """This family's config.json keys for what Llama's calls `name`, the one transformers reads first
        first; none where transformers reads no such key for the family."""
        names = dict(self.keys).get(name, name)
        return () if names is None else (names,) if isinstance(names, str) else names


@dataclass(frozen=True)
class _Mixture:
    """How a family's mixture-of-experts layers read config.json, and where their tensors are."""

    experts: int  # the number of experts when config.json gives none
    per_token: int  # num_experts_per_tok when config.json has none
    count: tuple[str, ...] = ("num_experts",)  # the keys that may give the number of experts, the first present wins
    # expert e's module and its gate, up and down projections, as published checkpoints name them:
    # MODULE.gate.weight is the router, MODULE.experts.{e}.GATE.weight the expert's gate projection
    published: tuple[str, str, str, str] = ("mlp", "gate_proj", "up_proj", "down_proj")
    width: int | None = None  # moe_intermediate_size when config.json has none; None: intermediate_size (Mixtral)
    renormalize: bool | None = None  # True: the top-k gates always renormalised (Mixtral); None: norm_topk_prob says
    shared_width: int | None = None  # a shared expert, shared_expert_intermediate_size wide by default (Qwen 2 MoE)
    dense_layers: bool = False  # mlp_only_layers and decoder_sparse_step make some layers dense (Qwen MoE)
    router: str = "gate"  # the router's module, under the mixture's: MODULE.ROUTER.weight [E, d]
    router_bias: bool = False  # the router adds a bias, MODULE.ROUTER.bias [E] (GPT-OSS)
    softmax_after_top_k: bool = False  # the top k of the router's logits, then softmax over them (GPT-OSS)
    clamped_swiglu: bool = False  # the experts' activation is the clamped SwiGLU of swiglu_alpha and swiglu_limit
    # a layer's experts in mlp.experts.gate_up_proj [E, d, 2f] (gate and up columns in turn) and down_proj [E, f, d],
    # stored [in, out], each with a bias, or in MXFP4 (GPT-OSS); see _interleaved_experts
    interleaved: bool = False


# RoPE's base where config.json gives none and the family's configuration no other (Llama's).
_ROPE_THETA = 10000.0
# rope types whose frequencies attncli computes; any other is refused by name.
ROPE_TYPES = ("default", "linear", "llama3", "yarn", "dynamic", "longrope")
# Layer types of config.json's layer_types and whether their attention slides.
_LAYER_TYPES = {"full_attention": False, "sliding_attention": True}


def _rope(config: dict, head_dim: int, style: _Decoder) -> Rope:
    """RoPE from config.json in either form: rope_parameters (transformers 5), or rope_theta and
    rope_scaling at the top level (most published checkpoints); rope_scaling first, as transformers
    reads them; Llama's θ of 10000 where neither gives one (a family whose θ differs has it in its
    `defaults`). A family that turns whole heads refuses partial_rotary_factor. GPT-J's RoPE is rotary_dim
    alone."""
    if style.rotary_dim is not None:
        if "rotary_dim" in config and config["rotary_dim"] is None:
            raise DataError("config.json: rotary_dim null (RoPE over all of hidden_size) is not supported")
        return Rope(_ROPE_THETA, _integer(config, "rotary_dim", default=style.rotary_dim), pairing=style.pairing)
    parameters = config.get("rope_scaling") or config.get("rope_parameters")
    parameters = dict(style.rope_defaults) if parameters is None else parameters or {}
    if not isinstance(parameters, dict) or any(isinstance(value, dict) for value in parameters.values()):
        raise DataError("config.json: rope_parameters should be one object of RoPE settings")
    kind = parameters.get("rope_type", parameters.get("type", "default"))
    if style.rope_types:
        read = dict(style.rope_types)
        if not isinstance(kind, str) or kind not in read:
            raise DataError(
                f"config.json: rope type {_shown(kind)} is not supported for {config['model_type']}, "
                f"which reads {', '.join(read)}"
            )
        kind = read[kind]
    if kind not in ROPE_TYPES:
        raise DataError(f"config.json: rope type {kind!r} is not supported; attncli computes {', '.join(ROPE_TYPES)}")
    merged = {"rope_theta": _ROPE_THETA}
    for name in ("rope_theta", "partial_rotary_factor"):  # under the family's names for them (GPT-NeoX's)
        given = [key for key in style.keys_for(name) if key in config]
        merged |= {name: config[given[0]]} if given else {}
    merged.update(parameters)
    theta = _number(merged, "rope_theta")
    partial = _number(merged, "partial_rotary_factor", default=1.0, at_most=1.0)
    if partial != 1.0 and not style.partial_rotary:
        raise DataError(
            f"config.json: partial_rotary_factor {partial!r} is not supported for {config['model_type']}, "
            "whose RoPE turns whole heads"
        )
    rope = {
        "theta": theta,
        "dims": head_dim if partial == 1.0 else int(head_dim * partial),
        "scaling": kind,
        "pairing": style.pairing,
    }
    if kind == "linear":
        rope["factor"] = _number(merged, "factor")
    if kind in ("llama3", "yarn", "longrope"):
        rope["original_max_positions"] = _original_context(config, merged, style, kind)
    if kind == "llama3":
        rope.update(
            factor=_number(merged, "factor"),
            low_freq_factor=_number(merged, "low_freq_factor"),
            high_freq_factor=_number(merged, "high_freq_factor"),
        )
        if not rope["high_freq_factor"] > rope["low_freq_factor"]:
            raise DataError("config.json: llama3 RoPE needs high_freq_factor above low_freq_factor")
    if kind == "yarn":
        rope.update(_yarn(config, merged, rope["original_max_positions"]))
        if theta == 1.0:  # YaRN's ramp divides by log θ
            raise DataError("config.json: yarn RoPE needs a rope_theta other than 1")
    if kind == "dynamic":
        rope.update(
            factor=_number(merged, "factor"), original_max_positions=_integer(config, "max_position_embeddings")
        )
        if rope["dims"] <= 2:  # its base is raised to the power n / (n - 2)
            raise DataError("config.json: dynamic RoPE needs more than 2 rotary dimensions")
    if kind == "longrope":
        rope.update(_longrope(config, merged, rope["original_max_positions"], rope["dims"]))
    return Rope(**rope)


def _layer_ropes(config: dict, head_dim: int, style: _Decoder) -> tuple[Rope, Rope]:
    """(the global layers' RoPE, the sliding layers') of a family that turns them by RoPEs of their own
    (Gemma 3, ModernBERT): the global layers' of base rope_theta, scaled as rope_scaling says, the sliding
    layers' of base rope_local_base_freq, never scaled (the family's `rope_bases`, and with
    `local_rope_scaled` scaled too); or, in transformers 5's form, rope_parameters' full_attention and
    sliding_attention objects (rope_scaling, where given too, updates the first, or both)."""
    nested = config.get("rope_parameters") or {}
    if not isinstance(nested, dict) or not set(nested) <= set(_LAYER_TYPES):
        raise DataError(
            f"config.json: rope_parameters should hold one object of RoPE settings for each layer type "
            f"({', '.join(_LAYER_TYPES)}), not {_shown(nested)}"
        )
    scaling = config.get("rope_scaling") or {}
    ropes = []
    for kind, base, update in (
        ("full_attention", style.rope_bases[0], scaling),
        ("sliding_attention", style.rope_bases[1], scaling if style.local_rope_scaled else {}),
    ):
        # A layer type without settings gets rope_type default, which an old-style "type" in rope_scaling
        # does not override: transformers then runs a rope_scaling of {"type": "linear"} unscaled.
        parameters = nested.get(kind)
        parameters = {"rope_type": "default"} if parameters is None else parameters
        if not isinstance(parameters, dict) or not isinstance(update, dict):
            raise DataError(f"config.json: the RoPE settings of {kind} layers should be an object")
        flat = {**config, "rope_theta": config.get(base), "rope_scaling": None, "rope_parameters": parameters | update}
        ropes.append(_rope(flat, head_dim, style))
    return ropes[0], ropes[1]


_ORIGINAL = "original_max_position_embeddings"


def _original_context(config: dict, merged: dict, style: _Decoder, kind: str) -> int:
    """The context a scaled RoPE was trained on, as transformers reads it: a top-level
    original_max_position_embeddings wins over the nested one (Phi-3's configuration always has one, 4096
    where config.json leaves it out), and max_position_embeddings stands in only where neither is given
    (a 0 is not "not given")."""
    given = (config.get(_ORIGINAL), style.original_context, merged.get(_ORIGINAL))
    length = next((value for value in given if value is not None), None)
    length = _integer(config, "max_position_embeddings") if length is None else _integer({_ORIGINAL: length}, _ORIGINAL)
    if length < 1:
        raise DataError(f"config.json: {_ORIGINAL} = {length}; {kind} RoPE needs a positive context length")
    return length


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention scale for a context stretched by `factor` (its Eq. 21): 0.1 · mscale · ln(factor) + 1."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _yarn(config: dict, merged: dict, original: int) -> dict:
    """YaRN's Rope fields as transformers reads them: a null factor is max_position_embeddings over the
    original context; beta_fast and beta_slow of 0 or null are 32 and 1; the attention factor, unless
    given, 0.1 · ln(factor) + 1 (the ratio of two such with mscale and mscale_all_dim)."""
    if "factor" in merged and merged["factor"] is None:
        factor = _integer(config, "max_position_embeddings") / original
    else:
        factor = _number(merged, "factor")
    attention_factor = merged.get("attention_factor")
    if attention_factor is not None:
        attention_factor = _number(merged, "attention_factor")
    elif merged.get("mscale") and merged.get("mscale_all_dim"):
        mscale, all_dims = _number(merged, "mscale"), _number(merged, "mscale_all_dim")
        attention_factor = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, all_dims)
    else:
        attention_factor = _yarn_mscale(factor)
    truncate = merged.get("truncate", True)
    if not isinstance(truncate, bool):
        raise DataError(f"config.json: truncate should be true or false, not {_shown(truncate)}")
    return dict(
        factor=factor,
        attention_factor=attention_factor,
        beta_fast=_number({"beta_fast": merged.get("beta_fast") or 32}, "beta_fast"),
        beta_slow=_number({"beta_slow": merged.get("beta_slow") or 1}, "beta_slow"),
        truncate=truncate,
    )


def _longrope(config: dict, merged: dict, original: int, dims: int) -> dict:
    """LongRoPE's Rope fields as transformers reads them (Phi-3's 128k models): a factor per rotary
    dimension pair for texts within the original context and one for longer texts; the attention factor,
    unless given, √(1 + ln(factor) / ln(original context)), the factor max_position_embeddings over the
    original context unless given."""
    factors = {}
    for key in ("short_factor", "long_factor"):
        values = merged.get(key)
        if (
            not isinstance(values, list)
            or len(values) != dims // 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf for v in values)
        ):
            raise DataError(
                f"config.json: {key} should list {dims // 2} positive numbers, one per rotary dimension pair, "
                f"not {_shown(values)}"
            )
        factors[key] = tuple(float(v) for v in values)
    if merged.get("factor") is None:
        factor = _integer(config, "max_position_embeddings") / original
    else:
        factor = _number(merged, "factor")
    if merged.get("attention_factor") is not None:
        attention_factor = _number(merged, "attention_factor")
    elif factor <= 1.0:
        attention_factor = 1.0
    elif original < 2:  # the factor's log is divided by the original context's
        raise DataError(f"config.json: {_ORIGINAL} = {original}; longrope RoPE needs a context above 1")
    else:
        attention_factor = math.sqrt(1 + math.log(factor) / math.log(original))
    return dict(attention_factor=attention_factor, **factors)


def _windows(config: dict, style: _Decoder, layers: int) -> tuple[int | None, ...]:
    """Each layer's sliding window (the last W keys a query sees), or None where it sees all: from
    layer_types where the family reads them (transformers 5, and Mistral's configs for Ministral), or
    by the family's rule (most published checkpoints)."""
    types = _layer_types(config, layers) if style.layer_types else None
    if style.windows == "none":
        return (None,) * layers
    window = config.get("sliding_window", style.window)
    if style.use_sliding_window and not config.get("use_sliding_window", False):
        window = None  # as transformers reads Qwen's config: no window unless use_sliding_window
    if types is not None and window is None and any(_LAYER_TYPES[kind] for kind in types):
        raise DataError(
            "config.json: layer_types has sliding_attention layers but no window (sliding_window, use_sliding_window)"
        )
    if window is None and types is None and style.windows == "even":
        # transformers makes Gemma 2's even layers slide whatever the config says, and needs a window for them
        raise DataError("config.json: sliding_window is null, but the even layers slide; give the window")
    if window is None and types is None and style.windows == "pattern":
        raise DataError(
            "config.json: sliding_window is null, but sliding_window_pattern makes layers slide; give the window"
        )
    if window is None:
        return (None,) * layers
    if isinstance(window, bool) or not isinstance(window, int) or not 0 < window <= _LARGEST:
        raise DataError(f"config.json: sliding_window should be a positive 64-bit integer, not {_shown(window)}")
    if types is not None:
        return tuple(window if _LAYER_TYPES[kind] else None for kind in types)
    if style.windows == "upper":
        first = _integer(config, "max_window_layers", default=28)
        return tuple(window if layer >= first else None for layer in range(layers))
    if style.windows == "even":
        return tuple(window if layer % 2 == 0 else None for layer in range(layers))
    if style.windows == "pattern":
        every = _integer(config, "sliding_window_pattern", default=6)
        if every < 1:
            raise DataError(f"config.json: sliding_window_pattern = {every}; it must be positive")
        return tuple(None if (layer + 1) % every == 0 else window for layer in range(layers))
    if style.windows == "no_rope":
        return tuple(None if turned else window for turned in _rope_layers(config, layers))
    if style.windows == "even_below":
        first = _integer(config, "max_window_layers", default=28)
        return tuple(window if layer % 2 == 0 and layer < first else None for layer in range(layers))
    return (window,) * layers


def _layer_types(config: dict, layers: int) -> list[str] | None:
    """config.json's layer_types, each a key of _LAYER_TYPES, one for each of the `layers` layers; None
    where it has none."""
    types = config.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise DataError(f"config.json: layer_types should list the type of each of the {layers} layers")
        unknown = [kind for kind in types if not isinstance(kind, str) or kind not in _LAYER_TYPES]
        if unknown:
            known = ", ".join(_LAYER_TYPES)
            raise DataError(f"config.json: layer type {_shown(unknown[0])} is not supported; attncli reads {known}")
    return types


def _rope_layers(config: dict, layers: int) -> tuple[bool, ...]:
    """Which layers turn q and k with RoPE, as SmolLM3 reads it: no_rope_layers says, a 1 for each layer
    with RoPE and a 0 for each without (NoPE), else every no_rope_layer_interval-th layer has none."""
    flags = config.get("no_rope_layers")
    if flags is None:
        interval = _integer(config, "no_rope_layer_interval", default=4)
        if interval < 1:
            raise DataError(f"config.json: no_rope_layer_interval = {interval}; it must be positive")
        return tuple((layer + 1) % interval != 0 for layer in range(layers))
    if not isinstance(flags, list) or len(flags) < layers or any(flag not in (0, 1) for flag in flags[:layers]):
        raise DataError(f"config.json: no_rope_layers should give each of the {layers} layers a 1 (RoPE) or a 0 (none)")
    return tuple(bool(flag) for flag in flags[:layers])


def _multiplier(config: dict, name: str, style: _Decoder) -> float | None:
    """One of Granite's multipliers (embedding_, attention_ or residual_multiplier), 1 where config.json has
    none; None for a family that reads none."""
    return _number(config, name, default=1.0) if style.multipliers else None


def _attention_scale(config: dict, style: _Decoder) -> float | None:
    """What the scores are multiplied by in place of 1/√d_k, where the family departs from it: 1 for
    unscaled scores (GPT-Neo), query_pre_attn_scalar^-½ (Gemma 2 and 3) or attention_multiplier
    (Granite); None: 1/√d_k."""
    if style.unscaled:
        return 1.0
    if style.query_scalar is not None:
        return _number(config, "query_pre_attn_scalar", default=style.query_scalar) ** -0.5
    return _multiplier(config, "attention_multiplier", style)


def _soft_cap(config: dict, style: _Decoder) -> float | None:
    """The cap on the attention logits where the family reads attn_logit_softcapping (null: none)."""
    if style.soft_cap is None or ("attn_logit_softcapping" in config and config["attn_logit_softcapping"] is None):
        return None
    return _number(config, "attn_logit_softcapping", default=style.soft_cap)


def _clip(config: dict) -> float | None:
    """The bound clip_qkv puts on q, k and v (null: none)."""
    return None if config.get("clip_qkv") is None else _number(config, "clip_qkv")


def _decoder_settings(config: dict, style: _Decoder) -> dict:
    """The settings of the model a decoder's config.json describes: its own keys or, for a multimodal
    checkpoint, its text_config's (under config.json's model_type), with the family's defaults for
    the keys it leaves out."""
    if style.text_config:
        text = config.get("text_config")
        if not isinstance(text, dict):
            raise DataError(
                f"config.json: a {config['model_type']} checkpoint without text_config is not supported; "
                "attncli reads the text model's settings from there"
            )
        config = text | {"model_type": config["model_type"]}
    return dict(style.defaults) | config


def _decoder_config(config: dict, layers: int, style: _Decoder) -> dict:
    """The TransformerConfig fields of a Llama-like decoder, `style` saying how its family differs."""
    if config.get("use_bidirectional_attention"):
        raise DataError("config.json: use_bidirectional_attention is not supported; attncli reads causal decoders")
    if config.get("is_causal", True) is not True:
        raise DataError("config.json: is_causal false (bidirectional attention) is not supported for a decoder")
    for name, value in style.refused:
        if config.get(name, value) != value:
            shown, computed = _shown(config[name]), _shown(value)
            raise DataError(f"config.json: {name} {shown} is not supported; attncli computes {computed}")

    def read(kind: Callable, name: str, default=None):
        """What this family's config.json says for Llama's key `name`, read by `kind` (_integer, _flag ...),
        or `default` where it says nothing, or transformers reads no such key for the family."""
        keys = style.keys_for(name)
        return kind(config, *keys, default=default) if keys else default

    d = read(_integer, "hidden_size")
    heads = read(_integer, "num_attention_heads")
    head_dim = read(_integer, "head_dim", default=style.head_dim or (d // heads if heads > 0 else 1))
    activation = read(_name, "hidden_act", default=style.default_activation)
    biases = style.biases
    if biases is None:
        attention_bias = style.attention_bias and read(_flag, "attention_bias", default=style.bias_default)
        mlp_bias = style.mlp_bias and read(_flag, "mlp_bias", default=style.bias_default)
        qkv_bias = style.qkv_bias_key is not None and _flag(config, *style.qkv_bias_key)
        biases = (attention_bias or qkv_bias, attention_bias, mlp_bias)
    parallel = style.parallel
    if style.parallel_residual is not None:
        parallel = _flag(config, "use_parallel_residual", style.parallel_residual)
    qk_norm = style.qk_norm or (style.qk_norm_key is not None and _flag(config, style.qk_norm_key))
    positions = "alibi" if style.alibi_key is not None and _flag(config, style.alibi_key) else style.positions
    rope = local = None
    if positions == "rope" and style.local_rope:
        rope, local = _layer_ropes(config, head_dim, style)
    elif positions == "rope":
        rope = local = _rope(config, head_dim, style)
    kinds = _layer_kinds(config, layers) if style.layer_kinds else (None,) * layers
    windows = _local_windows(config, kinds, style.window) if style.layer_kinds else _windows(config, style, layers)
    turned = _rope_layers(config, layers) if style.no_rope else (True,) * layers
    longest = read(_integer, "max_position_embeddings", default=style.max_positions)
    if rope is not None and rope.scaling == "dynamic":  # made for texts up to factor times its context
        longest = min(max(longest, int(longest * rope.factor)), _LARGEST)
    d_embed = _integer(config, style.d_embed_key, default=d) if style.d_embed_key else d
    fields = dict(
        family=config["model_type"],
        layers=layers,
        heads=heads,
        d_model=d,
        d_ff=read(_integer, "intermediate_size", default=style.ffn_factor and style.ffn_factor * d),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=longest + style.position_offset,  # a position table's rows: the offset's too
        activation="gelu_pytorch_tanh" if style.gelu_means_tanh and activation == "gelu" else activation,
        eps=style.eps if style.plain_norm else read(_epsilon, "rms_norm_eps", default=style.eps),
        pre_norm=_flag(config, style.pre_norm_key, True) if style.pre_norm_key else True,
        causal=True,
        layer_attention=tuple(
            LayerAttention(window, (rope if window is None else local) if turns else None, kind)
            for window, turns, kind in zip(windows, turned, kinds, strict=True)
        ),
        norm="layer" if style.plain_norm else style.norm,
        # null, as transformers reads it, is one key-value head per query head; left out, the family's default
        kv_heads=heads
        if "num_key_value_heads" in config and config["num_key_value_heads"] is None
        else read(_integer, "num_key_value_heads", default=style.kv_heads or heads),
        head_dim=head_dim,
        gated=style.gated,
        parallel=parallel,
        attention_scale=_attention_scale(config, style),
        soft_cap=_soft_cap(config, style),
        embedding_scale=d**0.5 if style.embedding_scale else _multiplier(config, "embedding_multiplier", style),
        sandwich=style.sandwich,
        qk_norm=qk_norm,
        qk_norm_per_head=qk_norm and style.qk_norm_per_head,
        attention_bias=biases[0],
        output_bias=biases[1],
        mlp_bias=biases[2],
        alibi=style.alibi if positions == "alibi" else None,
        position_offset=style.position_offset,
        d_embed=None if d_embed == d else d_embed,
        embedding_norm=style.names.embedding_norm is not None,
        final_norm=not (style.final_norm_key and _flag(config, style.final_norm_key)),
        shared_norm=parallel and (style.names.ffn_norm is None or style.parallel_shares_norm),
        clip_qkv=_clip(config) if style.clip_qkv else None,
        norm_gains=not style.plain_norm,
        norm_bias=style.norm_bias and not style.plain_norm,
        whole_qk_norm=style.whole_qk_norm,
        input_norms=style.input_norms,
        residual_scale=_multiplier(config, "residual_multiplier", style),
        moe=_mixture_config(config, style.moe, layers),
        sinks=style.sinks,
    )
    return fields if style.variant is None else fields | style.variant(config, fields)


def _mixture_config(config: dict, style: _Mixture | None, layers: int) -> "MixtureConfig | None":
    """How the layers' mixtures of experts route, where the family has them and some layer is one
    (a Qwen MoE config may make every layer dense); as transformers reads each family's config."""
    if style is None:
        return None
    from attncli.experts import MixtureConfig

    experts = _integer(config, *style.count, default=style.experts)
    sparse = (True,) * layers
    if style.dense_layers:
        dense = config.get("mlp_only_layers") or []
        if not isinstance(dense, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in dense):
            raise DataError(f"config.json: mlp_only_layers should list layer numbers, not {_shown(dense)}")
        step = _integer(config, "decoder_sparse_step", default=1)
        if step < 1:
            raise DataError(f"config.json: decoder_sparse_step = {step}; it must be positive")
        sparse = tuple(layer not in dense and experts > 0 and (layer + 1) % step == 0 for layer in range(layers))
    if not any(sparse):
        return None
    width = "intermediate_size" if style.width is None else "moe_intermediate_size"
    return MixtureConfig(
        experts=experts,
        per_token=_integer(config, "num_experts_per_tok", default=style.per_token),
        d_expert=_integer(config, width, default=style.width),
        renormalize=_flag(config, "norm_topk_prob") if style.renormalize is None else style.renormalize,
        sparse=sparse,
        d_shared=None
        if style.shared_width is None
        else _integer(config, "shared_expert_intermediate_size", default=style.shared_width),
        softmax_after_top_k=style.softmax_after_top_k,
        swiglu_alpha=_number(config, "swiglu_alpha", default=1.702) if style.clamped_swiglu else None,
        swiglu_limit=_number(config, "swiglu_limit", default=7.0) if style.clamped_swiglu else None,
    )


# GPT-Neo's kinds of layer: a global layer's queries see every earlier key, a local layer's their last window_size.
_LAYER_KINDS = ("global", "local")


def _layer_kinds(config: dict, layers: int) -> tuple[str, ...]:
    """Each layer's kind, global or local, as GPT-Neo's config.json gives them: attention_layers, which
    transformers reads where config.json has it, else attention_types, pairs of kinds and how many times
    to repeat them (transformers' default [[["global", "local"], 12]] is 24 layers, alternating)."""
    kinds = config.get("attention_layers")
    if kinds is None:
        pairs = config.get("attention_types") or [[["global", "local"], 12]]
        if not isinstance(pairs, list) or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], list)
            and isinstance(pair[1], int)
            and not isinstance(pair[1], bool)
            and pair[1] >= 0
            for pair in pairs
        ):
            raise DataError(f"config.json: attention_types should be [kinds, times] pairs, not {_shown(pairs)}")
        if sum(len(group) * times for group, times in pairs) == layers:  # counted first: times may be 10⁹
            kinds = [kind for group, times in pairs for _ in range(times) for kind in group]
    if not isinstance(kinds, list) or len(kinds) != layers:
        raise DataError(
            f"config.json: attention_layers (or attention_types) should give the kind of each of the {layers} layers"
        )
    unknown = [kind for kind in kinds if not isinstance(kind, str) or kind not in _LAYER_KINDS]
    if unknown:
        known = ", ".join(_LAYER_KINDS)
        raise DataError(f"config.json: attention type {_shown(unknown[0])} is not supported; attncli reads {known}")
    return tuple(kinds)


def _local_windows(config: dict, kinds: tuple[str, ...], default: int | None) -> tuple[int | None, ...]:
    """Each layer's sliding window: window_size for a local layer, none for a global one (GPT-Neo)."""
    window = _integer(config, "window_size", default=default)
    if window < 1:
        raise DataError(f"config.json: window_size = {window}; it must be positive")
    return tuple(window if kind == "local" else None for kind in kinds)


def _falcon_architecture(config: dict, fields: dict) -> dict:
    """The fields of Falcon's TransformerConfig that config.json's choice of architecture decides. The new
    (new_decoder_architecture: Falcon-40B, 180B, 2) has num_kv_heads key-value heads and a parallel block
    whose attention and feed-forward have a norm each (ln_attn, ln_mlp), or share one where
    num_ln_in_parallel_attn is 1. The old (Falcon-7B) has one key-value head (multi_query) or one per
    head, and a parallel block sharing one norm (parallel_attn) or a sequential one with two. What
    transformers cannot build (it fails on the layer's missing norms) is refused by name."""
    heads, norms = fields["heads"], config.get("num_ln_in_parallel_attn")
    if _flag(config, "new_decoder_architecture"):
        if not _flag(config, "parallel_attn", True):
            raise DataError("config.json: parallel_attn false is not supported with new_decoder_architecture")
        if norms not in (None, 1, 2):
            shown = _shown(norms)
            raise DataError(f"config.json: num_ln_in_parallel_attn {shown} is not supported; attncli reads 1 or 2")
        kv_heads = heads if config.get("num_kv_heads") is None else _integer(config, "num_kv_heads")
        return {"kv_heads": kv_heads, "parallel": True, "shared_norm": norms == 1}
    parallel, multi_query = _flag(config, "parallel_attn", True), _flag(config, "multi_query", True)
    if parallel and norms == 2:
        raise DataError("config.json: num_ln_in_parallel_attn 2 is not supported without new_decoder_architecture")
    if not multi_query and config.get("num_kv_heads") not in (None, heads):
        raise DataError(
            "config.json: num_kv_heads is not supported without new_decoder_architecture or multi_query; "
            "the old architecture has a key-value head per head"
        )
    return {"kv_heads": 1 if multi_query else heads, "parallel": parallel, "shared_norm": parallel}


def _decoder_weights(
    c: "TransformerConfig", tensors: "TensorFile | TensorHeaders", style: _Decoder
) -> "TransformerWeights":
    """A decoder's weights: the embedding table's rows as they are asked for, the final norm, and the
    layers, each read from disk when the forward pass comes to it (see _Layers)."""
    from attncli.transformer import TransformerWeights

    names, d, e = style.names, c.d_model, c.d_embed or c.d_model
    t = _Tensors(tensors, names.words)
    project_in = project_out = None
    if c.d_embed is not None:  # word embeddings narrower than the model: projected into its width and back out
        project_in = t.linear(names.project_in, e, d, bias=False)[0]  # [e, d]
        project_out = t.linear(names.project_out, d, e, bias=False)[0]  # [d, e]
    return TransformerWeights(
        word=t.table(names.words, (c.vocab_size, e)),
        position=t(names.positions, (c.max_positions, d)) if style.positions == "learned" else None,
        token_type=None,
        embedding_norm=_norm(t, names.embedding_norm, d, style) if c.embedding_norm else None,
        blocks=_Layers(c, functools.partial(_decoder_block, t, c, style)),
        final_norm=_decoder_norm(t, names.final_norm, d, style) if c.pre_norm and c.final_norm else None,
        project_in=project_in,
        project_out=project_out,
    )


def _norm(t: _Tensors, name: str, d: int, style: _Decoder) -> "Norm":
    """A norm's weights as the family keeps them: an RMSNorm's gain, stored as it is or as gain - 1;
    a LayerNorm's gain, and its bias where it has one."""
    from attncli.transformer import Norm

    gain = t(f"{name}.weight", (d,))
    if style.norm == "layer":
        return Norm(gain, t(f"{name}.bias", (d,)) if style.norm_bias else None)
    return Norm(gain + np.float32(1.0) if style.norm_offset else gain)


def _qkv(
    t: _Tensors, c: "TransformerConfig", style: _Decoder, layer: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """A layer's W_Q [d, h·d_k], W_K and W_V [d, g·d_k] and their biases (None without), from three
    matrices or the one the family fuses them in."""
    d, dk, h, g, names = c.d_model, c.d_head, c.heads, c.kv_heads or c.heads, style.names
    name = f"{layer}.{names.qkv}"
    if style.qkv == "stacked":  # every query row, then every key row, then every value row
        sizes = [h * dk, (h + g) * dk]
        w = np.split(t(f"{name}.weight", ((h + 2 * g) * dk, d)).T, sizes, axis=1)
        b = np.split(t(f"{name}.bias", ((h + 2 * g) * dk,)), sizes) if c.attention_bias else (None,) * 3
        return *w, *b
    if style.qkv in ("per_head", "grouped"):  # key-value head by key-value head: its query heads' rows, its key
        # rows, its value rows; "per_head" has a key-value head per head (GPT-NeoX, BLOOM), "grouped" any number
        # (Falcon: one for multi-query, one per head in its old architecture)
        if style.qkv == "per_head" and g != h:
            raise DataError(f"config.json: {g} key-value heads for {h} heads; {c.family}'s fused q, k, v needs as many")
        w = t(f"{name}.weight", ((h + 2 * g) * dk, d)).reshape(g, h // g + 2, dk, d)
        b = t(f"{name}.bias", ((h + 2 * g) * dk,)).reshape(g, h // g + 2, dk) if c.attention_bias else None
        parts = (slice(None, -2), -2, -1)  # a group's query heads, its key head, its value head
        return (
            *(w[:, part].reshape(-1, d).T for part in parts),
            *((None,) * 3 if b is None else (b[:, part].reshape(-1) for part in parts)),
        )
    w_q, b_q = t.linear(f"{layer}.{names.q}", d, h * dk, c.attention_bias)
    w_k, b_k = t.linear(f"{layer}.{names.k}", d, g * dk, c.attention_bias)
    w_v, b_v = t.linear(f"{layer}.{names.v}", d, g * dk, c.attention_bias)
    return w_q, w_k, w_v, b_q, b_k, b_v


def _mixture_of_experts(t: _Tensors, c: "TransformerConfig", style: _Mixture, layer: str) -> "MixtureOfExperts":
    """A layer's mixture of experts: its router, its experts (each read when the forward pass needs it,
    see _Experts; every expert's shapes checked here), and a shared expert with its gate where the family
    has one. The experts as published checkpoints store them, a module each (MODULE.experts.{e}.GATE ...),
    or as transformers 5 saves them when asked not to convert (save_original_format=False): each layer's
    in two tensors, mlp.experts.gate_up_proj [E, 2f, d] (gate's rows, then up's) and down_proj [E, d, f]."""
    from attncli.transformer import FeedForward, MixtureOfExperts

    d, m = c.d_model, c.moe
    f, count = m.d_expert, m.experts
    together = f"{layer}.mlp.experts.gate_up_proj"
    if style.interleaved:
        module, read = "mlp", _interleaved_experts(t, c, layer)
    elif t.has(together):
        module = "mlp"
        down = f"{layer}.mlp.experts.down_proj"
        t.check(together, (count, 2 * f, d))
        t.check(down, (count, d, f))

        def read(e: int) -> FeedForward:
            return FeedForward(t.part(together, e, (count, 2 * f, d)).T, t.part(down, e, (count, d, f)).T, gated=True)

    else:
        module, gate, up, down = style.published
        names = [
            [f"{layer}.{module}.experts.{e}.{name}.weight" for name in (gate, up, down)] for e in range(count)
        ]  # [E, 3]
        for gate_name, up_name, down_name in names:
            t.check(gate_name, (f, d))
            t.check(up_name, (f, d))
            t.check(down_name, (d, f))

        def read(e: int) -> FeedForward:
            w_in = t.stacked(names[e][:2], (f, d)).T  # [d, 2f]: the gate's columns, then up's
            return FeedForward(w_in, t(names[e][2], (d, f)).T, gated=True)

    shared = shared_gate = None
    if m.d_shared is not None:
        shared = _feed_forward(t, c, layer, m.d_shared, _SHARED_EXPERT)
        shared_gate = t(f"{layer}.mlp.shared_expert_gate.weight", (1, d)).T  # [d, 1]
    router = t(f"{layer}.{module}.{style.router}.weight", (count, d)).T  # [d, E]
    router_bias = t(f"{layer}.{module}.{style.router}.bias", (count,)) if style.router_bias else None  # [E]
    return MixtureOfExperts(router, _Experts(count, read, _keeps_layers(c)), shared, shared_gate, router_bias)


def _interleaved_experts(t: _Tensors, c: "TransformerConfig", layer: str) -> Callable[[int], "FeedForward"]:
    """How to read expert e of a GPT-OSS layer, every expert's shapes checked first: its slice of
    mlp.experts.gate_up_proj [E, d, 2f], the gate's and up's columns in turn (the gate's the even ones),
    and of down_proj [E, f, d], both stored [in, out] as x @ W wants them, with their biases
    gate_up_proj_bias [E, 2f] and down_proj_bias [E, d]. The two matrices in any float type, or in MXFP4
    as published checkpoints store them (NAME_blocks and NAME_scales, see TensorFile.mxfp4_part), stored
    [out, in] then, dequantized an expert at a time. The columns are reordered to [gate | up], as
    FeedForward holds them."""
    from attncli.transformer import FeedForward

    d, f, count = c.d_model, c.moe.d_expert, c.moe.experts
    experts = f"{layer}.mlp.experts"
    gate_up, down = f"{experts}.gate_up_proj", f"{experts}.down_proj"
    if t.has(f"{gate_up}_blocks"):
        t.check_mxfp4(gate_up, (count, 2 * f, d))
        t.check_mxfp4(down, (count, d, f))

        def matrices(e: int) -> tuple[np.ndarray, np.ndarray]:
            return t.mxfp4_part(gate_up, e, (count, 2 * f, d)).T, t.mxfp4_part(down, e, (count, d, f)).T

    else:
        t.check(gate_up, (count, d, 2 * f))
        t.check(down, (count, f, d))

        def matrices(e: int) -> tuple[np.ndarray, np.ndarray]:
            return t.part(gate_up, e, (count, d, 2 * f)), t.part(down, e, (count, f, d))

    t.check(f"{gate_up}_bias", (count, 2 * f))
    t.check(f"{down}_bias", (count, d))
    columns = np.concatenate([np.arange(0, 2 * f, 2), np.arange(1, 2 * f, 2)])  # [2f] the gate's, then up's

    def read(e: int) -> FeedForward:
        w_in, w_out = matrices(e)  # [d, 2f], [f, d]
        b_in, b_out = t.part(f"{gate_up}_bias", e, (count, 2 * f)), t.part(f"{down}_bias", e, (count, d))
        return FeedForward(w_in[:, columns], w_out, b_in[columns], b_out, gated=True)

    return read


def _decoder_norm(t: _Tensors, name: str, d: int, style: _Decoder) -> "Norm":
    """A decoder's norm (see _norm), or nothing for a family whose LayerNorm learns nothing (OLMo),
    which has no tensor to read."""
    from attncli.transformer import Norm

    return Norm(None) if style.plain_norm else _norm(t, name, d, style)


def _feed_forward(
    t: _Tensors, c: "TransformerConfig", layer: str, f: int, names: _Names, gate_up: bool = False
) -> "FeedForward":
    """Layer `layer`'s feed-forward network of width `f`, its tensors where `names` says: gated (gate and
    up side by side, as FeedForward wants them; `gate_up`: stored so, in one matrix), or plain."""
    from attncli.transformer import FeedForward

    d = c.d_model
    if not c.gated:
        w_up, b_up = t.linear(f"{layer}.{names.up}", d, f, c.mlp_bias)
        w_down, b_down = t.linear(f"{layer}.{names.down}", f, d, c.mlp_bias)
        return FeedForward(w_up, w_down, b_up, b_down)
    if gate_up:  # stored as gate's rows, then up's: what FeedForward wants, transposed
        w_in = t(f"{layer}.{names.gate_up}.weight", (2 * f, d)).T  # [d, 2f]
        b_in = t(f"{layer}.{names.gate_up}.bias", (2 * f,)) if c.mlp_bias else None
    else:
        w_in = t.stacked([f"{layer}.{names.gate}.weight", f"{layer}.{names.up}.weight"], (f, d)).T  # [d, 2f]
        b_in = (
            np.concatenate([t(f"{layer}.{name}.bias", (f,)) for name in (names.gate, names.up)]) if c.mlp_bias else None
        )
    w_down, b_down = t.linear(f"{layer}.{names.down}", f, d, c.mlp_bias)
    return FeedForward(w_in, w_down, b_in, b_down, gated=True)


def _head_norm(t: _Tensors, c: "TransformerConfig", style: _Decoder, name: str, heads: int) -> "Norm":
    """The norm on each of `heads` heads' q (or k): one norm's weights [d_k] for every head, or each
    head's own gains, [heads, 1, d_k] (to scale [heads, T, d_k] head by head), one tensor or a norm a head."""
    from attncli.transformer import Norm

    dk = c.d_head
    if not c.qk_norm_per_head:
        return _norm(t, name, dk, style)
    if style.names.head_norms is None:
        gains = t(f"{name}.weight", (heads, dk))
    else:
        gains = np.stack([t(f"{name}.{style.names.head_norms.format(i=i)}.weight", (dk,)) for i in range(heads)])
    return Norm(gains[:, None, :])


def _decoder_block(t: _Tensors, c: "TransformerConfig", style: _Decoder, i: int) -> "Block":
    from attncli.transformer import Block

    names = style.names
    layer = names.layer.format(i=i)
    d, dk, h = c.d_model, c.d_head, c.heads
    w_q, w_k, w_v, b_q, b_k, b_v = _qkv(t, c, style, layer)
    w_o, b_o = t.linear(f"{layer}.{names.o}", h * dk, d, c.output_bias)
    head_norms = {}
    if c.qk_norm:
        q_norm = _head_norm(t, c, style, f"{layer}.{names.q_norm}", h)
        k_norm = _head_norm(t, c, style, f"{layer}.{names.k_norm}", c.kv_heads or h)
        head_norms = dict(q_norm=q_norm.gain, k_norm=k_norm.gain, q_norm_bias=q_norm.bias, k_norm_bias=k_norm.bias)
    if c.whole_qk_norm:  # the same tensors as per-head norms, over all the heads: [h·d_k] and [g·d_k]
        head_norms = dict(
            whole_q_norm=_norm(t, f"{layer}.{names.q_norm}", h * dk, style).gain,
            whole_k_norm=_norm(t, f"{layer}.{names.k_norm}", (c.kv_heads or h) * dk, style).gain,
        )
    projections = Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, **head_norms)
    if c.sinks:
        projections.sinks = t(f"{layer}.self_attn.sinks", (h,))  # [h]
    if c.moe is not None and c.moe.sparse[i]:
        feed_forward = _mixture_of_experts(t, c, style.moe, layer)
    else:
        feed_forward = _feed_forward(t, c, layer, c.d_ff, style.names, style.gate_up)
    norm = functools.partial(_decoder_norm, t, d=d, style=style)
    if style.sandwich:
        return Block(
            projections,
            norm(f"{layer}.{names.attention_norm}") if style.input_norms else None,
            feed_forward,
            norm(f"{layer}.pre_feedforward_layernorm") if style.input_norms else None,
            attention_out_norm=norm(f"{layer}.post_attention_layernorm"),
            ffn_out_norm=norm(f"{layer}.post_feedforward_layernorm"),
        )
    attention_norm, ffn_norm = _block_norms(c, names)
    return Block(
        projections,
        norm(f"{layer}.{attention_norm}") if i > 0 or c.first_attention_norm else None,
        feed_forward,
        None if ffn_norm is None else norm(f"{layer}.{ffn_norm}"),
    )


def _block_norms(c: "TransformerConfig", names: _Names) -> tuple[str, str | None]:
    """The names of a layer's norms before attention and before the feed-forward (None where a parallel
    block's feed-forward reads the attention's)."""
    if c.parallel and not c.shared_norm and names.parallel_norms is not None:
        return names.parallel_norms
    return names.attention_norm, None if c.shared_norm else names.ffn_norm


# A model whose layers take at most this many bytes as float32 keeps them once read: a batch of
# texts then reads them once. A larger one reads each layer again for every text and keeps one
# layer in memory at a time (a 0.5B-parameter model's layers take 1.4 GB as float32), and of a
# mixture of experts, one expert at a time.
_KEPT_LAYERS_BYTES = 256 * 2**20


def _keeps_layers(config: "TransformerConfig") -> bool:
    """Whether the model's layers, every expert of every mixture included, fit in _KEPT_LAYERS_BYTES as float32."""
    d, f, dk, g = config.d_model, config.d_ff, config.d_head, config.kv_heads or config.heads
    attention = 2 * d * config.heads * dk + 2 * d * g * dk
    dense = (3 if config.gated else 2) * d * f
    m = config.moe
    sparse = (
        0
        if m is None
        else d * m.experts * (1 + 3 * m.d_expert) + (0 if m.d_shared is None else d * (1 + 3 * m.d_shared))
    )
    numbers = sum(attention + (sparse if m is not None and m.sparse[i] else dense) for i in range(config.layers))
    return 4 * numbers <= _KEPT_LAYERS_BYTES


class _ReadWhenAsked(Sequence):
    """Items read by `read(i)` when item i is asked for: with `keep`, kept once read; else read again each time."""

    def __init__(self, count: int, read: Callable, keep: bool):
        self.count, self.read = count, read
        self.kept: dict | None = {} if keep else None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):
        if not -self.count <= i < self.count:
            raise IndexError(i)
        i %= self.count
        if self.kept is None:
            return self.read(i)
        if i not in self.kept:
            self.kept[i] = self.read(i)
        return self.kept[i]

    def keep(self) -> None:
        """Read every item now and keep them all, whatever their size."""
        self.kept = {i: self[i] for i in range(self.count)}


class _Layers(_ReadWhenAsked):
    """A model's layers, each read from disk when it is asked for: kept once read when they are
    small (see _KEPT_LAYERS_BYTES), else read again each time, one layer in memory at a time."""

    def __init__(self, config: "TransformerConfig", read: Callable[[int], "Block"]):
        super().__init__(config.layers, read, _keeps_layers(config))


class _Experts(_ReadWhenAsked):
    """A mixture layer's experts, each read from disk when the forward pass asks for it, that is when some
    token is routed to it: kept once read in a model that keeps its layers, else read again each time, one
    expert in memory at a time."""


@dataclass(eq=False)
class Family:
    """What attncli knows of one model family, beyond its tensors' shapes."""

    title: str  # the family's name in prose
    layer_count: tuple[str, ...]  # the config.json keys that may give the number of layers, the first present wins
    read_config: Callable[[dict, int], dict]  # config.json and its layer count -> the TransformerConfig's fields
    read_weights: Callable[["TransformerConfig", "TensorFile | TensorHeaders"], "TransformerWeights"]
    word_table: str  # the input embedding table's tensor (under the checkpoint's prefix)
    layer: str  # the prefix of layer {i}'s tensors (under the checkpoint's prefix)
    wrapper: tuple[str, str] | None = None  # what transformers wraps one text in when tokenizer.json adds nothing
    # config.json -> the settings read_config reads, where they are not config.json's own keys as they stand
    # (a multimodal checkpoint's text model, the family's defaults); None: config.json as it is
    settings: Callable[[dict], dict] | None = None
    # the config.json key counting the layers the tensors hold, where layers share their weights (ALBERT's groups);
    # None: each layer has its own
    stored_layers: str | None = None
    head: _Head | None = None  # its language-model head; None: attncli reads none of the family's


# BLOOM's tensor names, and Falcon's (which has no norm on the embeddings, and names a parallel block's norms).
_BLOOM_NAMES = _Names(
    words="word_embeddings.weight",
    final_norm="ln_f",
    embedding_norm="word_embeddings_layernorm",
    layer=_GPT2_LAYER,
    qkv="self_attention.query_key_value",
    o="self_attention.dense",
    up="mlp.dense_h_to_4h",
    down="mlp.dense_4h_to_h",
)
# Families whose heads are always hidden_size / heads wide, each with its own key and value head (Falcon
# decides its own key-value heads): transformers reads neither head_dim nor num_key_value_heads for them.
_HIDDEN_SIZE_OF_HEADS = (("head_dim", None), ("num_key_value_heads", None))
# The blocks of the decoders before Llama: LayerNorms (ε 1e-5 unless config.json says otherwise) and a
# feed-forward network without a gate.
_LAYER_NORMS_PLAIN_MLP = {"norm": "layer", "eps": 1e-5, "gated": False}
# RoBERTa's computation, under its own name and XLM-RoBERTa's and CamemBERT's.
_ROBERTA = _Encoder(padded_positions=True, head=_ROBERTA_HEAD)
_BERT_WRAPPER, _ROBERTA_WRAPPER = ("[CLS]", "[SEP]"), ("<s>", "</s>")
# Each BERT-like encoder: its name in prose, an _Encoder of the flags where it departs from BERT, and what
# transformers wraps a text in when tokenizer.json adds nothing.
_ENCODERS = {
    "bert": ("BERT", _Encoder(), _BERT_WRAPPER),
    "roberta": ("RoBERTa", _ROBERTA, _ROBERTA_WRAPPER),
    "distilbert": (
        "DistilBERT",
        _Encoder(
            names=_EncoderNames(
                layer=_DISTILBERT_LAYER,
                q="attention.q_lin",
                k="attention.k_lin",
                v="attention.v_lin",
                o="attention.out_lin",
                attention_norm="sa_layer_norm",
                up="ffn.lin1",
                down="ffn.lin2",
                ffn_norm="output_layer_norm",
                token_types=None,
            ),
            keys=(
                ("num_hidden_layers", ("n_layers", "num_hidden_layers")),
                ("num_attention_heads", ("n_heads", "num_attention_heads")),
                ("hidden_size", ("dim", "hidden_size")),
                ("intermediate_size", ("hidden_dim", "intermediate_size")),
                ("hidden_act", ("activation",)),
                ("layer_norm_eps", None),  # fixed in DistilBERT's code, not in its config
            ),
            default_activation="gelu",
            is_decoder=False,
            absolute_positions=False,
            head=_Head(
                names=("vocab_projector",),
                ties=True,
                bias=("vocab_projector.bias",),
                dense="vocab_transform",
                norm="vocab_layer_norm",
            ),
        ),
        _BERT_WRAPPER,
    ),
    "xlm-roberta": ("XLM-RoBERTa", _ROBERTA, _ROBERTA_WRAPPER),
    "camembert": ("CamemBERT", _ROBERTA, _ROBERTA_WRAPPER),
    "electra": (
        "ELECTRA",
        _Encoder(
            defaults=(("embedding_size", 128),),
            projection="differing",
            head=_Head(  # the generator's (ElectraForMaskedLM); a discriminator has none
                names=("generator_lm_head",),
                ties=True,
                bias=("generator_lm_head.bias",),
                dense="generator_predictions.dense",
                norm="generator_predictions.LayerNorm",
                activation="gelu",
            ),
        ),
        _BERT_WRAPPER,
    ),
    "albert": (
        "ALBERT",
        _Encoder(
            names=_EncoderNames(
                layer="encoder.albert_layer_groups.{i}",
                shared="albert_layers.{i}",
                q="attention.query",
                k="attention.key",
                v="attention.value",
                o="attention.dense",
                attention_norm="attention.LayerNorm",
                up="ffn",
                down="ffn_output",
                ffn_norm="full_layer_layer_norm",
                project="encoder.embedding_hidden_mapping_in",
            ),
            defaults=(("embedding_size", 128), ("num_hidden_groups", 1), ("inner_group_num", 1)),
            is_decoder=False,
            projection="always",
            shared_layers=True,
            head=_masked_lm("predictions"),
        ),
        _BERT_WRAPPER,
    ),
    "megatron-bert": (
        "Megatron-BERT",
        _Encoder(names=_EncoderNames(attention_norm="attention.ln", ffn_norm="ln", embedding_norm=None), pre_norm=True),
        _BERT_WRAPPER,
    ),
    "mpnet": (
        "MPNet",
        _Encoder(
            names=_EncoderNames(
                q="attention.attn.q",
                k="attention.attn.k",
                v="attention.attn.v",
                o="attention.attn.o",
                attention_norm="attention.LayerNorm",
                token_types=None,
            ),
            keys=(("pad_token_id", None),),  # its padding index is 1 in its code, whatever config.json says
            defaults=(("relative_attention_num_buckets", 32),),
            is_decoder=False,
            absolute_positions=False,
            padded_positions=True,
            relative_bias=True,
            head=_ROBERTA_HEAD,
        ),
        _ROBERTA_WRAPPER,
    ),
}
FAMILIES = {
    name: Family(
        title,
        style.keys_for("num_hidden_layers"),
        functools.partial(_encoder_config, style=style),
        functools.partial(_encoder_weights, style=style),
        _ENCODER_WORDS,
        style.names.layer,
        wrapper,
        settings=functools.partial(_encoder_settings, style=style) if style.defaults else None,
        stored_layers="num_hidden_groups" if style.shared_layers else None,
        head=style.head,
    )
    for name, (title, style, wrapper) in _ENCODERS.items()
}
# DeBERTa is a Family of its own, not a row of _ENCODERS: its config.json (disentangled attention, the convolution,
# DebertaV2Config's defaults) and its tensors past BERT's (the relative embeddings, their projections) are its
# alone, flags no other encoder would set; its layers are read as the encoders' (_encoder_block).
FAMILIES["deberta-v2"] = Family(
    "DeBERTa",
    ("num_hidden_layers",),
    _deberta_config,
    _deberta_weights,
    _ENCODER_WORDS,
    _ENCODER_LAYER,
    _BERT_WRAPPER,
    # the legacy head (DebertaV2Config's default), BERT's; without it, one whose decoder is the word embeddings
    head=replace(
        _BERT_HEAD,
        unless=(
            "legacy",
            True,
            _Head(
                names=(),
                bias=("lm_predictions.lm_head.bias",),
                dense="lm_predictions.lm_head.dense",
                norm="lm_predictions.lm_head.LayerNorm",
            ),
        ),
    ),
)


# ModernBERT's tensors, laid out as a decoder's: q, k and v stacked in one matrix (attn.Wqkv), the gated
# feed-forward's two halves in mlp.Wi (its first half, "input", through the activation, times the second, the
# gate), LayerNorms. The defaults are ModernBertConfig's, for a config.json without the key.
_MODERNBERT = _Decoder(
    names=_Names(
        words="embeddings.tok_embeddings.weight",
        final_norm="final_norm",
        embedding_norm="embeddings.norm",
        attention_norm="attn_norm",
        ffn_norm="mlp_norm",
        qkv="attn.Wqkv",
        o="attn.Wo",
        gate_up="mlp.Wi",
        down="mlp.Wo",
    ),
    qkv="stacked",
    gate_up=True,
    norm="layer",
    defaults=(
        ("vocab_size", 50368),
        ("hidden_size", 768),
        ("intermediate_size", 1152),
        ("num_hidden_layers", 22),
        ("num_attention_heads", 12),
        ("max_position_embeddings", 8192),
        ("local_attention", 128),
        ("global_rope_theta", 160_000.0),
        ("local_rope_theta", 10_000.0),
    ),
    rope_bases=("global_rope_theta", "local_rope_theta"),
    local_rope_scaled=True,
)


def _modernbert_config(config: dict, layers: int) -> dict:
    """ModernBERT's TransformerConfig fields, as ModernBertConfig reads config.json in either form: an encoder
    (no causal mask) of LayerNorms before each sublayer (none before layer 0's attention, whose input the
    embedding norm has just normed), GeGLU, global layers and local ones that see the keys within
    local_attention // 2 on either side, each kind turned by a RoPE of its own base. Its attention's heads are
    hidden_size / num_attention_heads wide, as its q, k and v: a head_dim that differs is refused (transformers
    would turn them by a RoPE of that width and fail)."""
    d, heads = _integer(config, "hidden_size"), _integer(config, "num_attention_heads")
    head_dim = d // heads if heads > 0 else 1
    if config.get("head_dim", head_dim) != head_dim:
        raise DataError(
            f"config.json: head_dim {_shown(config['head_dim'])} is not supported for modernbert, whose heads are "
            f"hidden_size / num_attention_heads = {head_dim} wide"
        )
    full, local = _layer_ropes(config, head_dim, _MODERNBERT)
    window = _modernbert_window(config)
    attention_bias = _flag(config, "attention_bias")
    return dict(
        family="modernbert",
        layers=layers,
        heads=heads,
        d_model=d,
        d_ff=_integer(config, "intermediate_size"),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=_integer(config, "max_position_embeddings"),
        activation=_name(config, "hidden_activation", default="gelu"),
        eps=_epsilon(config, "norm_eps", default=1e-5),
        pre_norm=True,
        causal=False,
        layer_attention=tuple(
            LayerAttention(window, local) if sliding else LayerAttention(None, full)
            for sliding in _modernbert_local_layers(config, layers)
        ),
        norm="layer",
        gated=True,
        attention_bias=attention_bias,
        output_bias=attention_bias,
        mlp_bias=_flag(config, "mlp_bias"),
        embedding_norm=True,
        first_attention_norm=False,
        norm_bias=_flag(config, "norm_bias"),
    )


def _modernbert_local_layers(config: dict, layers: int) -> tuple[bool, ...]:
    """Whether each layer is local (its window slides), as ModernBertConfig reads config.json: layer_types
    where it has them (transformers 5's form), else every global_attn_every_n_layers-th layer global from
    the first on, the others local (published checkpoints; 3 where config.json says nothing)."""
    types = _layer_types(config, layers)
    if types is not None:
        return tuple(_LAYER_TYPES[kind] for kind in types)
    every = _integer(config, "global_attn_every_n_layers", default=3)
    if every < 1:
        raise DataError(f"config.json: global_attn_every_n_layers = {every}; it must be positive")
    return tuple(layer % every != 0 for layer in range(layers))


def _modernbert_window(config: dict) -> int:
    """How many keys a local layer's window spans, local_attention (a query sees the keys within half of
    it on either side); or, where config.json gives sliding_window, which ModernBertConfig takes for that
    half and sets local_attention from, twice it."""
    if "sliding_window" in config:
        half = config["sliding_window"]
        if isinstance(half, bool) or not isinstance(half, int) or not 0 < half <= _LARGEST // 2:
            raise DataError(
                f"config.json: sliding_window should be a positive 64-bit integer (half the local window), "
                f"not {_shown(half)}"
            )
        return 2 * half
    window = _integer(config, "local_attention")
    if window < 1:
        raise DataError(f"config.json: local_attention = {window}; it must be positive")
    return window


def _modernbert_weights(c: "TransformerConfig", tensors: "TensorFile | TensorHeaders") -> "TransformerWeights":
    """ModernBERT's weights, read as a decoder's (see _MODERNBERT), its LayerNorms with biases where
    config.json's norm_bias says."""
    return _decoder_weights(c, tensors, replace(_MODERNBERT, norm_bias=c.norm_bias))


FAMILIES["modernbert"] = Family(
    "ModernBERT",
    ("num_hidden_layers",),
    _modernbert_config,
    _modernbert_weights,
    _MODERNBERT.names.words,
    _MODERNBERT.names.layer,
    settings=functools.partial(_decoder_settings, style=_MODERNBERT),
    head=_Head(
        names=("decoder",),
        ties=True,
        bias=("decoder.bias",),
        bias_key=("decoder_bias", True),
        dense="head.dense",
        dense_bias_key=("classifier_bias", False),
        norm="head.norm",
        activation_key=("classifier_activation", "gelu"),
    ),
)
FAMILIES["gpt2"] = Family(
    "GPT-2",
    ("n_layer", "num_hidden_layers"),
    _gpt2_config,
    _gpt2_weights,
    _GPT2_WORDS,
    _GPT2_LAYER,
    head=_Head(ties=True),
)
_GEMMA3 = _Decoder(
    head_dim=256,
    kv_heads=4,
    norm_offset=True,
    embedding_scale=True,
    sandwich=True,
    qk_norm=True,
    query_scalar=256,
    layer_types=True,
    windows="pattern",
    window=4096,
    keys=(("hidden_act", "hidden_activation"),),
    default_activation="gelu_pytorch_tanh",
    defaults=(
        ("hidden_size", 2304),
        ("intermediate_size", 9216),
        ("num_hidden_layers", 26),
        ("num_attention_heads", 8),
        ("vocab_size", 262_208),
        ("max_position_embeddings", 131_072),
        ("rope_theta", 1_000_000.0),
        ("rope_local_base_freq", 10_000.0),
    ),
    local_rope=True,
    head=_Head(ties=True, soft_cap=True),
)
_MISTRAL = _Decoder(kv_heads=8, attention_bias=False, layer_types=True, windows="all", window=4096)
_DECODERS = {
    # The defaults are those of each family's configuration in transformers, for a config.json without the key.
    "llama": ("Llama", _Decoder(mlp_bias=True)),
    "mistral": ("Mistral", _MISTRAL),
    "qwen2": (
        "Qwen 2",
        _Decoder(
            kv_heads=32,
            biases=(True, False, False),
            layer_types=True,
            windows="upper",
            use_sliding_window=True,
            window=4096,
        ),
    ),
    "qwen3": (
        "Qwen 3",
        _Decoder(
            head_dim=128,
            kv_heads=32,
            qk_norm=True,
            layer_types=True,
            windows="upper",
            use_sliding_window=True,
            window=4096,
        ),
    ),
    "gemma": (
        "Gemma",
        _Decoder(
            head_dim=256,
            kv_heads=16,
            norm_offset=True,
            embedding_scale=True,
            gelu_means_tanh=True,
            default_activation="gelu_pytorch_tanh",
            head=_Head(ties=True),
        ),
    ),
    "gemma2": (
        "Gemma 2",
        _Decoder(
            head_dim=256,
            kv_heads=4,
            norm_offset=True,
            embedding_scale=True,
            sandwich=True,
            soft_cap=50.0,
            query_scalar=256,
            layer_types=True,
            windows="even",
            window=4096,
            keys=(("hidden_act", "hidden_activation"),),
            default_activation="gelu_pytorch_tanh",
            head=_Head(ties=True, soft_cap=True, soft_cap_default=30.0),
        ),
    ),
    "phi3": (
        "Phi-3",
        _Decoder(
            attention_bias=False,
            partial_rotary=True,
            qkv="stacked",
            gate_up=True,
            windows="all",
            eps=1e-5,
            rope_types=(("default", "default"), ("longrope", "longrope"), ("su", "longrope"), ("yarn", "longrope")),
            original_context=4096,
        ),
    ),
    "gemma3_text": ("Gemma 3", _GEMMA3),
    "gemma3": ("Gemma 3", dataclasses.replace(_GEMMA3, text_config=True, head=_Head(ties=True, outer=True))),
    "olmo": ("OLMo", _Decoder(plain_norm=True, clip_qkv=True, eps=1e-5)),
    "olmo2": ("OLMo 2", _Decoder(whole_qk_norm=True, sandwich=True, input_norms=False, eps=1e-5)),
    "ministral": ("Ministral", _MISTRAL),  # Ministral-8B: Mistral's configuration, layer_types read as Mistral's
    "smollm3": (
        "SmolLM3",
        _Decoder(
            kv_heads=4,
            mlp_bias=True,
            layer_types=True,
            windows="no_rope",
            use_sliding_window=True,
            defaults=(("rope_theta", 2_000_000.0),),
            no_rope=True,
            head=_Head(ties=True),
        ),
    ),
    "granite": (
        "Granite",
        _Decoder(mlp_bias=True, multipliers=True, head=_Head(divisor=("logits_scaling", 1.0))),
    ),
    "mixtral": (
        "Mixtral",
        _Decoder(
            kv_heads=8,
            attention_bias=False,
            windows="all",
            eps=1e-5,
            defaults=(("rope_theta", 1_000_000.0),),
            moe=_Mixture(
                experts=8,
                per_token=2,
                count=("num_experts", "num_local_experts"),  # as transformers reads both: num_experts wins
                published=("block_sparse_moe", "w1", "w3", "w2"),
                renormalize=True,
            ),
        ),
    ),
    "qwen2_moe": (
        "Qwen 2 MoE",
        _Decoder(
            kv_heads=16,
            attention_bias=False,
            qkv_bias_key=("qkv_bias", True),
            layer_types=True,
            windows="even_below",
            use_sliding_window=True,
            window=4096,
            moe=_Mixture(experts=60, per_token=4, width=1408, shared_width=5632, dense_layers=True),
        ),
    ),
    "qwen3_moe": (
        "Qwen 3 MoE",
        _Decoder(
            kv_heads=4,
            qk_norm=True,
            windows="all",
            use_sliding_window=True,
            window=4096,
            moe=_Mixture(
                experts=128,
                per_token=8,
                count=("num_local_experts", "num_experts"),  # as transformers reads both: num_local_experts wins
                width=768,
                dense_layers=True,
            ),
        ),
    ),
    "bloom": (
        "BLOOM",
        _Decoder(
            names=_BLOOM_NAMES,
            keys=(
                *_HIDDEN_SIZE_OF_HEADS,
                ("hidden_size", ("n_embed", "hidden_size")),
                ("num_attention_heads", ("num_attention_heads", "n_head")),
                ("num_hidden_layers", ("num_hidden_layers", "n_layer")),
                ("intermediate_size", None),
                ("max_position_embeddings", None),
                ("rms_norm_eps", "layer_norm_epsilon"),
                ("hidden_act", None),  # always GELU's tanh form
            ),
            qkv="per_head",
            default_activation="gelu_pytorch_tanh",
            **_LAYER_NORMS_PLAIN_MLP,
            positions="alibi",
            alibi=Alibi(),
            max_positions=2048,  # its config.json gives no length: the one it was trained on
            ffn_factor=4,
            biases=(True, True, True),
            refused=(("apply_residual_connection_post_layernorm", False),),
            head=_Head(ties=True),
        ),
    ),
    "falcon": (
        "Falcon",
        _Decoder(
            names=replace(_BLOOM_NAMES, embedding_norm=None, parallel_norms=("ln_attn", "ln_mlp")),
            keys=(
                *_HIDDEN_SIZE_OF_HEADS,
                ("hidden_size", ("n_embed", "hidden_size")),
                ("intermediate_size", "ffn_hidden_size"),
                ("rms_norm_eps", "layer_norm_epsilon"),
                ("attention_bias", "bias"),
                ("mlp_bias", "bias"),
                ("hidden_act", "activation"),
            ),
            mlp_bias=True,
            qkv="grouped",
            default_activation="gelu",
            **_LAYER_NORMS_PLAIN_MLP,
            alibi=Alibi(bfloat16=True, scaled=True),
            alibi_key="alibi",
            max_positions=2048,
            ffn_factor=4,
            variant=_falcon_architecture,
            head=_Head(ties=True),
        ),
    ),
    "opt": (
        "OPT",
        _Decoder(
            names=_Names(
                words="decoder.embed_tokens.weight",
                final_norm="decoder.final_layer_norm",
                positions="decoder.embed_positions.weight",
                project_in="decoder.project_in",
                project_out="decoder.project_out",
                layer="decoder.layers.{i}",
                attention_norm="self_attn_layer_norm",
                ffn_norm="final_layer_norm",
                o="self_attn.out_proj",
                up="fc1",
                down="fc2",
            ),
            keys=(
                *_HIDDEN_SIZE_OF_HEADS,
                ("intermediate_size", "ffn_dim"),
                ("rms_norm_eps", None),
                ("attention_bias", "enable_bias"),
                ("mlp_bias", "enable_bias"),
                ("hidden_act", "activation_function"),
            ),
            mlp_bias=True,
            bias_default=True,
            default_activation="relu",
            **_LAYER_NORMS_PLAIN_MLP,
            positions="learned",
            position_offset=2,
            max_positions=2048,
            pre_norm_key="do_layer_norm_before",
            final_norm_key="_remove_final_layer_norm",
            d_embed_key="word_embed_proj_dim",
            refused=(("layer_norm_elementwise_affine", True),),
            head=_Head(ties=True),
        ),
    ),
    "gpt_neo": (
        "GPT-Neo",
        _Decoder(
            names=_Names(
                words=_GPT2_WORDS,
                final_norm="ln_f",
                positions="wpe.weight",
                layer=_GPT2_LAYER,
                attention_norm="ln_1",
                ffn_norm="ln_2",
                q="attn.attention.q_proj",
                k="attn.attention.k_proj",
                v="attn.attention.v_proj",
                o="attn.attention.out_proj",
                up="mlp.c_fc",
                down="mlp.c_proj",
            ),
            keys=(
                *_HIDDEN_SIZE_OF_HEADS,
                ("num_attention_heads", ("num_attention_heads", "num_heads")),
                ("num_hidden_layers", ("num_hidden_layers", "num_layers")),
                ("rms_norm_eps", "layer_norm_epsilon"),
                ("hidden_act", "activation_function"),
            ),
            default_activation="gelu_new",
            **_LAYER_NORMS_PLAIN_MLP,
            positions="learned",
            max_positions=2048,
            ffn_factor=4,
            biases=(False, True, True),
            unscaled=True,
            layer_kinds=True,
            window=256,
            head=_Head(ties=True),
        ),
    ),
    # OLMoE-1B-7B: OLMo 2's norms over the whole projected q and k (then OLMo's clip_qkv), but before each
    # sublayer as Llama's; its experts intermediate_size wide, renormalised only with norm_topk_prob.
    "olmoe": (
        "OLMoE",
        _Decoder(
            whole_qk_norm=True,
            clip_qkv=True,
            eps=1e-5,
            moe=_Mixture(
                experts=64,
                per_token=8,
                count=("num_local_experts", "num_experts"),  # as transformers reads both: num_local_experts wins
            ),
        ),
    ),
    "gpt_oss": (
        "GPT-OSS",
        _Decoder(
            head_dim=64,
            kv_heads=8,
            layer_types=True,
            windows="even",
            window=128,
            keys=(("hidden_act", None),),  # its experts' clamped SwiGLU is their own, and it has no other activation
            eps=1e-5,
            defaults=(("attention_bias", True), ("rope_theta", 150_000.0)),
            sinks=True,
            rope_defaults=(
                ("rope_type", "yarn"),
                ("factor", 32.0),
                ("beta_fast", 32.0),
                ("beta_slow", 1.0),
                ("truncate", False),
                ("original_max_position_embeddings", 4096),
            ),
            moe=_Mixture(
                experts=128,
                per_token=4,
                count=("num_experts", "num_local_experts"),  # as transformers reads both: num_experts wins
                renormalize=True,  # softmax over the k: gates that sum to 1
                router="router",
                router_bias=True,
                softmax_after_top_k=True,
                clamped_swiglu=True,
                interleaved=True,
            ),
        ),
    ),
    "gpt_neox": (
        "GPT-NeoX",
        _Decoder(
            names=_Names(
                words="embed_in.weight",
                final_norm="final_layer_norm",
                qkv="attention.query_key_value",
                o="attention.dense",
                up="mlp.dense_h_to_4h",
                down="mlp.dense_4h_to_h",
            ),
            keys=(
                ("rms_norm_eps", "layer_norm_eps"),
                ("rope_theta", "rotary_emb_base"),
                ("partial_rotary_factor", "rotary_pct"),
                ("head_dim", None),
                ("num_key_value_heads", None),
                ("mlp_bias", None),  # its feed-forward always has biases: bias_default stands
            ),
            qkv="per_head",
            mlp_bias=True,
            bias_default=True,
            **_LAYER_NORMS_PLAIN_MLP,
            parallel_residual=True,
            partial_rotary=True,
            defaults=(("rotary_pct", 0.25),),
            default_activation="gelu",
            head=_Head(names=("embed_out", "lm_head")),  # published checkpoints' name, and transformers 5's
        ),
    ),
    "gptj": (
        "GPT-J",
        _Decoder(
            names=_Names(
                words="wte.weight",
                final_norm="ln_f",
                layer="h.{i}",
                attention_norm="ln_1",
                ffn_norm=None,
                q="attn.q_proj",
                k="attn.k_proj",
                v="attn.v_proj",
                o="attn.out_proj",
                up="mlp.fc_in",
                down="mlp.fc_out",
            ),
            keys=(
                ("hidden_size", "n_embd"),
                ("num_attention_heads", "n_head"),
                ("num_hidden_layers", "n_layer"),
                ("intermediate_size", "n_inner"),
                ("max_position_embeddings", "n_positions"),
                ("rms_norm_eps", "layer_norm_epsilon"),
                ("hidden_act", "activation_function"),
                ("head_dim", None),
                ("num_key_value_heads", None),
            ),
            biases=(False, False, True),
            **_LAYER_NORMS_PLAIN_MLP,
            parallel=True,
            rotary_dim=64,
            pairing="adjacent",
            ffn_factor=4,
            default_activation="gelu_new",
            head=_Head(bias=("lm_head.bias",)),
        ),
    ),
    "phi": (
        "Phi",
        _Decoder(
            names=_Names(
                final_norm="final_layernorm",
                ffn_norm=None,
                o="self_attn.dense",
                up="mlp.fc1",
                down="mlp.fc2",
                q_norm="self_attn.q_layernorm",
                k_norm="self_attn.k_layernorm",
            ),
            keys=(("rms_norm_eps", "layer_norm_eps"),),
            biases=(True, True, True),
            qk_norm_key="qk_layernorm",
            **_LAYER_NORMS_PLAIN_MLP,
            parallel=True,
            partial_rotary=True,
            defaults=(("partial_rotary_factor", 0.5),),
            default_activation="gelu_new",
            head=_Head(bias=("lm_head.bias",)),
        ),
    ),
    "stablelm": (
        "StableLM",
        _Decoder(
            names=_Names(q_norm="self_attn.q_layernorm", k_norm="self_attn.k_layernorm", head_norms="norms.{i}"),
            keys=(("rms_norm_eps", "layer_norm_eps"), ("head_dim", None)),
            kv_heads=32,
            attention_bias=False,
            qkv_bias_key=("use_qkv_bias", False),
            qk_norm_key="qk_layernorm",
            qk_norm_per_head=True,
            norm="layer",
            parallel_residual=False,
            parallel_shares_norm=True,
            partial_rotary=True,
            defaults=(("partial_rotary_factor", 0.25),),
            eps=1e-5,
        ),
    ),
    "cohere": (
        "Cohere",
        _Decoder(
            names=_Names(ffn_norm=None),
            keys=(("rms_norm_eps", "layer_norm_eps"),),
            qk_norm_key="use_qk_norm",
            qk_norm_per_head=True,
            norm="layer",
            norm_bias=False,
            parallel=True,
            defaults=(("rope_theta", 500000.0),),
            pairing="adjacent",
            eps=1e-5,
            head=_Head(ties=True, scale=("logit_scale", 0.0625)),
        ),
    ),
    "starcoder2": (
        "StarCoder2",
        _Decoder(
            names=_Names(up="mlp.c_fc", down="mlp.c_proj"),
            keys=(("rms_norm_eps", "norm_epsilon"), ("attention_bias", "use_bias"), ("mlp_bias", "use_bias")),
            kv_heads=2,
            mlp_bias=True,
            bias_default=True,
            **_LAYER_NORMS_PLAIN_MLP,
            windows="all",
            default_activation="gelu_pytorch_tanh",
            head=_Head(ties=True),
        ),
    ),
}
FAMILIES |= {
    name: Family(
        title,
        style.keys_for("num_hidden_layers"),
        functools.partial(_decoder_config, style=style),
        functools.partial(_decoder_weights, style=style),
        style.names.words,
        style.names.layer,
        settings=functools.partial(_decoder_settings, style=style),
        head=style.head,
    )
    for name, (title, style) in _DECODERS.items()
}
SUPPORTED = tuple(FAMILIES)


def read_config(config: dict, tensors: "TensorFile") -> "TransformerConfig":
    """The model config.json describes, checked for what attncli can run; its layer count first,
    against the layers `tensors` hold, before anything is made per layer (a config of 10⁹ layers is
    damage, not a large model)."""
    from attncli.transformer import TransformerConfig

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise DataError(
            f"config.json: model_type {model_type!r} is not supported; attncli reads {', '.join(SUPPORTED)}"
        )
    family = FAMILIES[model_type]
    if family.settings is not None:
        config = family.settings(config)
    layers = _integer(config, *family.layer_count)
    if layers < 1:
        raise DataError(f"config.json: layers = {layers}; it must be positive")
    prefix = _Tensors(tensors, family.word_table).prefix + family.layer.format(i="")
    held = {name[len(prefix) :].partition(".")[0] for name in tensors.names() if name.startswith(prefix)}
    stored = layers if family.stored_layers is None else _integer(config, family.stored_layers)
    if stored > len(held):
        counted = family.stored_layers or "layers"
        raise DataError(f"config.json gives {stored:,} {counted}, but model.safetensors holds {len(held):,}")
    model = TransformerConfig(**family.read_config(config, layers))
    # Every tensor's shape checked against the config from the file's headers alone, before any size the
    # config gives makes an array (a head_dim of 10⁹ would otherwise make RoPE tables of gigabytes).
    for _ in family.read_weights(model, tensors.headers()).blocks:  # a decoder reads a layer when asked
        pass
    return model


def read_weights(config: "TransformerConfig", tensors: "TensorFile") -> "TransformerWeights":
    """Every tensor the model needs, checked against `config` and laid out for x @ W."""
    return FAMILIES[config.family].read_weights(config, tensors)


def read_word_table(config: "TransformerConfig", tensors: "TensorFile") -> "Rows":
    """The input embedding table alone, checked against `config`: what `similar` reads, without the layers."""
    name = FAMILIES[config.family].word_table
    return _Tensors(tensors, name).table(name, (config.vocab_size, config.d_embed or config.d_model))


def read_unembedding(config: "TransformerConfig", tensors: "TensorFile", settings: dict) -> "Unembedding":
    """The model's language-model head, from config.json (`settings`, as it stands) and the head's tensors
    alone, read when asked: the word embedding table where the head is tied to it, else the head's own
    rows, read from disk as logits need them (see transformer.logits); checked against `config`."""
    family = FAMILIES[config.family]
    if family.head is None:
        raise DataError(
            f"attncli reads no language-model head of {family.title} checkpoints: this checkpoint can show "
            "attention, not predictions"
        )
    return _unembedding(config, tensors, settings, family)


def _unembedding(config: "TransformerConfig", tensors: "TensorFile", settings: dict, family: Family) -> "Unembedding":
    """A head as `family.head` says: a masked-LM head's transform, the decoder's rows (its own, or the word
    embeddings it is tied to), its bias, and what config.json says of its logits."""
    from attncli.transformer import Unembedding

    head, e = family.head, config.d_embed or config.d_model
    if not head.outer and family.settings is not None:
        settings = family.settings(settings)
    if head.unless is not None and not _flag(settings, head.unless[0], head.unless[1]):
        head = head.unless[2]
    names = set(tensors.names())

    def stored(name: str) -> bool:
        return any(prefix + name in names for prefix in _PREFIXES)

    if head.dense is not None and not stored(f"{head.dense}.weight"):
        raise DataError(
            f"model.safetensors has no masked-language-model head ({head.dense}.weight): this checkpoint can show "
            "attention, not predictions"
        )
    ties = _flag(settings, "tie_word_embeddings", head.ties)
    decoder = next((f"{name}.weight" for name in head.names if stored(f"{name}.weight")), None)
    if decoder is None and head.names and not ties:
        raise DataError(
            f"model.safetensors has no language-model head ({head.names[0]}.weight) and config.json does not tie it "
            "to the word embeddings: this checkpoint can show attention, not predictions"
        )
    w = (
        read_word_table(config, tensors)
        if decoder is None
        else _Tensors(tensors, decoder).table(decoder, (config.vocab_size, e))
    )
    bias = None
    if head.bias and (head.bias_key is None or _flag(settings, *head.bias_key)):
        candidates = head.bias if ties else head.bias[:1]
        name = next((name for name in candidates if stored(name)), candidates[0])
        bias = _Tensors(tensors, name)(name, (config.vocab_size,))
    return Unembedding(
        w,
        bias,
        transform=None if head.dense is None else _head_transform(config, tensors, settings, head),
        soft_cap=_final_soft_cap(settings, head),
        scale=_logit_scale(settings, head),
    )


def _head_transform(config: "TransformerConfig", tensors: "TensorFile", settings: dict, head: _Head) -> "HeadTransform":
    """A masked-LM head's dense layer [d -> e], activation and LayerNorm, as `head` says where they are."""
    from attncli.transformer import ACTIVATIONS, HeadTransform, Norm

    d, e = config.d_model, config.d_embed or config.d_model
    t = _Tensors(tensors, f"{head.dense}.weight")
    bias = head.dense_bias_key is None or _flag(settings, *head.dense_bias_key)
    w, b = t.linear(head.dense, d, e, bias)
    activation = head.activation or config.activation
    if head.activation_key is not None:
        key, default = head.activation_key
        activation = _name(settings, key, default=default)
        if activation not in ACTIVATIONS:
            raise DataError(f"config.json: {key} {activation!r} is not supported; known: {sorted(ACTIVATIONS)}")
    norm = t.norm(head.norm, e) if config.norm_bias else Norm(t(f"{head.norm}.weight", (e,)))
    return HeadTransform(w, b, activation, norm, config.eps)


def _final_soft_cap(settings: dict, head: _Head) -> float | None:
    """The cap on the logits where the family reads final_logit_softcapping (null: none)."""
    value = settings.get("final_logit_softcapping", head.soft_cap_default) if head.soft_cap else None
    return None if value is None else _number({"final_logit_softcapping": value}, "final_logit_softcapping")


def _logit_scale(settings: dict, head: _Head) -> float | None:
    """What the logits are multiplied by (Cohere's logit_scale), or divided by (Granite's logits_scaling) as one
    factor, where the family reads such a key; null is refused, where transformers fails on it."""
    for given, divides in ((head.scale, False), (head.divisor, True)):
        if given is None:
            continue
        key, default = given
        if key in settings and settings[key] is None:
            raise DataError(f"config.json: {key} null is not supported; transformers scales the logits by it")
        value = _number(settings, key, default=default)
        return 1 / value if divides else value
    return None


def uncased_wordpiece_tokenizer(vocab_file: Path) -> "Tokenizer":
    """BERT's uncased WordPiece tokenizer over `vocab_file` (one token a line, ids counting from 0),
    built in code: the same tokenizer as all-MiniLM-L6-v2's tokenizer.json (a test holds them equal),
    in about 9 ms where parsing that file takes 15."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece.from_file(str(vocab_file), unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer
