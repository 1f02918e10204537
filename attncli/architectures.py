"""The one place that knows each model family: BERT, RoBERTa, DistilBERT and GPT-2, and the
decoders with rotary embeddings: Llama, Mistral, Qwen 2 and 3, Gemma 1 and 2, Phi-3, GPT-NeoX,
GPT-J, Phi, StableLM, Cohere and StarCoder2.

`FAMILIES` maps config.json's model_type to a `Family`: how to read its config.json
(keys, defaults, and the forward pass's choices: norm placement, activation,
positions, token types, causal mask), how to find its tensors (names, a head model's
prefix such as "bert."), the special tokens transformers wraps a text in, and the name
prose gives it. Every shape is checked against the config and each matrix laid out for
x @ W: torch Linear weights are stored [out, in] and are transposed here, once; GPT-2's
Conv1D weights are already [in, out]. The bundled vocabulary's WordPiece tokenizer is
BERT's, so it is built here too. Adding a decoder family whose forward pass is Llama's with
switches is adding a row to `_DECODERS` (see the README's "Adding a family").
"""

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attncli.attention import LayerAttention, Projections, Rope
from attncli.errors import DataError, shortened

# The forward pass and the checkpoint reader (with safetensors) are imported where a checkpoint
# is read: the sample model needs only this module's tokenizer, and starts faster without them.
if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from attncli.checkpoint import Rows, TensorFile, TensorHeaders
    from attncli.transformer import Block, FeedForward, Norm, TransformerConfig, TransformerWeights

__all__ = [
    "FAMILIES",
    "SUPPORTED",
    "Family",
    "read_config",
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

    def stacked(self, names: list[str], shape: tuple[int, int]) -> np.ndarray:
        """Tensors of one `shape` [rows, columns], read straight into one [len(names) · rows, columns]."""
        fulls = [self._full(name) for name in names]
        for full in fulls:  # every shape checked before `shape` sizes anything
            self._check_shape(full, self.source.shape(full), shape)
        together = np.empty((len(names) * shape[0], shape[1]), np.float32)
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


def _bert_config(config: dict, layers: int, padded_positions: bool = False) -> dict:
    """A BERT-like encoder's config; with `padded_positions`, positions count from pad_token_id + 1 (RoBERTa)."""
    if _field(config, "position_embedding_type", default="absolute") != "absolute":
        raise DataError("config.json: only absolute position embeddings are supported")
    if config.get("is_decoder"):  # transformers would add a causal mask to this encoder
        raise DataError("config.json: is_decoder true (a causal mask on an encoder) is not supported")
    model_type = config["model_type"]
    return dict(
        family=model_type,
        layers=layers,
        layer_attention=(LayerAttention(),) * layers,
        heads=_integer(config, "num_attention_heads"),
        d_model=_integer(config, "hidden_size"),
        d_ff=_integer(config, "intermediate_size"),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=_integer(config, "max_position_embeddings"),
        activation=_name(config, "hidden_act"),
        eps=_epsilon(config, "layer_norm_eps", default=1e-12),
        pre_norm=False,
        causal=False,
        type_vocab_size=_integer(config, "type_vocab_size", default=2),
        padding_idx=_integer(config, "pad_token_id", default=1) if padded_positions else None,
    )


def _distilbert_config(config: dict, layers: int) -> dict:
    return dict(
        family="distilbert",
        layers=layers,
        layer_attention=(LayerAttention(),) * layers,
        heads=_integer(config, "n_heads", "num_attention_heads"),
        d_model=_integer(config, "dim", "hidden_size"),
        d_ff=_integer(config, "hidden_dim", "intermediate_size"),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=_integer(config, "max_position_embeddings"),
        activation=_name(config, "activation", default="gelu"),
        eps=1e-12,  # fixed in DistilBERT's code, not in its config
        pre_norm=False,
        causal=False,
    )


# Where the BERT-family encoders keep each part of layer i (torch Linear weights and LayerNorms).
_BERT_NAMES = {
    "layer": _ENCODER_LAYER,
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "in": "intermediate.dense",
    "out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_DISTILBERT_NAMES = {
    "layer": _DISTILBERT_LAYER,
    "q": "attention.q_lin",
    "k": "attention.k_lin",
    "v": "attention.v_lin",
    "o": "attention.out_lin",
    "attention_norm": "sa_layer_norm",
    "in": "ffn.lin1",
    "out": "ffn.lin2",
    "ffn_norm": "output_layer_norm",
}


def _encoder_weights(
    c: "TransformerConfig", tensors: "TensorFile | TensorHeaders", names: dict[str, str]
) -> "TransformerWeights":
    """BERT, RoBERTa or DistilBERT weights, their tensors found through `names`."""
    from attncli.transformer import Block, FeedForward, TransformerWeights

    t = _Tensors(tensors, _ENCODER_WORDS)
    d, f = c.d_model, c.d_ff
    blocks = []
    for i in range(c.layers):
        layer = names["layer"].format(i=i)
        part = {key: f"{layer}.{name}" for key, name in names.items()}
        (w_q, b_q), (w_k, b_k), (w_v, b_v), (w_o, b_o) = (t.linear(part[key], d, d) for key in "qkvo")
        w_in, b_in = t.linear(part["in"], d, f)
        w_out, b_out = t.linear(part["out"], f, d)
        blocks.append(
            Block(
                Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o),
                t.norm(part["attention_norm"], d),
                FeedForward(w_in, w_out, b_in, b_out),
                t.norm(part["ffn_norm"], d),
            )
        )
    types = c.type_vocab_size
    return TransformerWeights(
        word=t.table(_ENCODER_WORDS, (c.vocab_size, d)),
        position=t("embeddings.position_embeddings.weight", (c.max_positions, d)),
        token_type=t("embeddings.token_type_embeddings.weight", (types, d)) if types else None,
        embedding_norm=t.norm("embeddings.LayerNorm", d),
        blocks=blocks,
        final_norm=None,
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
    q_norm: str = "self_attn.q_norm"  # the norm on each head's q, where the family has one
    k_norm: str = "self_attn.k_norm"
    head_norms: str | None = None  # each head's own q or k norm under q_norm's name ("norms.{i}": StableLM), where
    # the norms are per head (_Decoder.qk_norm_per_head); None: every head's weights in one [heads, d_k] tensor


@dataclass(frozen=True)
class _Decoder:
    """How a decoder family departs from Llama's layout and defaults: one field per behaviour."""

    names: _Names = _Names()  # where its tensors are
    keys: tuple[tuple[str, str], ...] = ()  # (Llama's config.json key, this family's name for it) where they differ
    head_dim: int | None = None  # d_k when config.json has no head_dim; None: hidden_size / heads
    kv_heads: int | None = None  # num_key_value_heads when config.json has none; None: the heads
    attention_bias: bool = True  # attention_bias is read (else the attention has no biases)
    mlp_bias: bool = False  # mlp_bias is read (else the feed-forward has no biases)
    partial_rotary: bool = False  # partial_rotary_factor is read (else RoPE turns whole heads)
    qkv_bias: bool = False  # biases on q, k and v, whatever attention_bias says (Qwen 2)
    qk_norm: bool = False  # an RMSNorm on each head's q and k, before RoPE (Qwen 3)
    qkv: str | None = None  # q, k and v in one matrix: "stacked" (every q row, then k's, then v's: Phi-3) or
    # "per_head" (head by head, each head's q, k and v rows in turn: GPT-NeoX, BLOOM); None: three matrices
    gate_up: bool = False  # the gated feed-forward's gate and up in one matrix, gate's rows first (Phi-3)
    norm_offset: bool = False  # RMSNorm gains, the q and k norms' too, stored as gain - 1 (Gemma)
    embedding_scale: bool = False  # the word embeddings multiplied by √hidden_size (Gemma)
    sandwich: bool = False  # a norm after attention and after the feed-forward too, before each residual sum (Gemma 2)
    soft_cap: float | None = None  # attn_logit_softcapping is read, with this default (else no soft-capping)
    query_scalar: int | None = None  # query_pre_attn_scalar is read, with this default: scores · scalar^-½
    gelu_means_tanh: bool = False  # an activation named "gelu" is its tanh form, as transformers reads Gemma's
    layer_types: bool = False  # layer_types is read where config.json has it (else the rule below alone)
    windows: str = "none"  # which layers slide without layer_types: none, all, upper (max_window_layers on), even
    use_sliding_window: bool = False  # sliding_window counts only where use_sliding_window is true (Qwen)
    window: int | None = None  # sliding_window when config.json has none
    activation: str = "hidden_act"  # the config.json key of the feed-forward activation
    default_activation: str = "silu"  # the activation when config.json names none
    eps: float = 1e-6  # the norms' epsilon when config.json has none
    norm: str = "rms"  # RMSNorm, or "layer": LayerNorm
    norm_bias: bool = True  # a LayerNorm adds a bias
    gated: bool = True  # the feed-forward is gated (SwiGLU and kin); else down(activation(up(x)))
    parallel: bool = False  # attention and feed-forward read the same residual stream and add to it together
    unread: tuple[str, ...] = ()  # Llama's config.json keys transformers never reads for this family (defaults stand)
    bias_default: bool = False  # attention_bias and mlp_bias where config.json leaves them out
    qkv_bias_key: str | None = None  # a config.json flag for biases on q, k and v alone (StableLM's use_qkv_bias)
    output_bias: bool = False  # a bias on the attention's output, whatever attention_bias says (Phi)
    ffn_bias: bool = False  # biases on the feed-forward, whatever mlp_bias says (GPT-NeoX, GPT-J, Phi)
    qk_norm_key: str | None = None  # a config.json flag for the q and k norms (else qk_norm alone says)
    qk_norm_per_head: bool = False  # each head's q and k norm has weights of its own (StableLM, Cohere)
    parallel_residual: bool | None = None  # use_parallel_residual is read, with this default (else parallel says)
    parallel_shares_norm: bool = False  # a parallel block's feed-forward reads the attention's norm (StableLM)
    theta: float = 10000.0  # rope_theta when config.json has none
    rotary_fraction: float = 1.0  # partial_rotary_factor when config.json has none (where it is read)
    pairing: str = "halves"  # RoPE's dimension pairs: i with i + n/2, or "adjacent", 2i with 2i + 1 (GPT-J, Cohere)
    rotary_dim: int | None = None  # rotary_dim is read, with this default: RoPE of base 10,000 on that many of
    # a head's dimensions, and no other RoPE setting (GPT-J)
    inner_factor: int | None = None  # intermediate_size when config.json has none: this many times hidden_size

    def key(self, name: str) -> str:
        """This family's config.json key for what Llama's calls `name`."""
        return dict(self.keys).get(name, name)


# rope types whose frequencies attncli computes; any other is refused by name.
ROPE_TYPES = ("default", "linear", "llama3")
# Layer types of config.json's layer_types and whether their attention slides.
_LAYER_TYPES = {"full_attention": False, "sliding_attention": True}


def _rope(config: dict, head_dim: int, style: _Decoder) -> Rope:
    """RoPE from config.json in either form: rope_parameters (transformers 5), or rope_theta and
    rope_scaling at the top level (most published checkpoints, under the family's names for them);
    rope_scaling first, as transformers reads them. A family that turns whole heads refuses
    partial_rotary_factor. GPT-J's RoPE is rotary_dim alone."""
    if style.rotary_dim is not None:
        if "rotary_dim" in config and config["rotary_dim"] is None:
            raise DataError("config.json: rotary_dim null (RoPE over all of hidden_size) is not supported")
        return Rope(10000.0, _integer(config, "rotary_dim", default=style.rotary_dim), pairing=style.pairing)
    parameters = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(parameters, dict) or any(isinstance(value, dict) for value in parameters.values()):
        raise DataError("config.json: rope_parameters should be one object of RoPE settings")
    kind = parameters.get("rope_type", parameters.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise DataError(f"config.json: rope type {kind!r} is not supported; attncli computes {', '.join(ROPE_TYPES)}")
    merged = {
        "rope_theta": style.theta,
        **{key: config[style.key(key)] for key in ("rope_theta", "partial_rotary_factor") if style.key(key) in config},
    }
    merged.update(parameters)
    theta = _number(merged, "rope_theta")
    partial = _number(merged, "partial_rotary_factor", default=style.rotary_fraction, at_most=1.0)
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
    if kind == "llama3":
        # As transformers reads it: a top-level original_max_position_embeddings wins over the nested one,
        # and max_position_embeddings stands in only where neither is given (a 0 is not "not given").
        original = next(
            (where for where in (config, merged) if where.get("original_max_position_embeddings") is not None),
            {"original_max_position_embeddings": _integer(config, "max_position_embeddings")},
        )
        rope.update(
            factor=_number(merged, "factor"),
            low_freq_factor=_number(merged, "low_freq_factor"),
            high_freq_factor=_number(merged, "high_freq_factor"),
            original_max_positions=_integer(original, "original_max_position_embeddings"),
        )
        if rope["original_max_positions"] < 1:
            raise DataError(
                f"config.json: original_max_position_embeddings = {rope['original_max_positions']}; "
                "llama3 RoPE needs a positive context length"
            )
        if not rope["high_freq_factor"] > rope["low_freq_factor"]:
            raise DataError("config.json: llama3 RoPE needs high_freq_factor above low_freq_factor")
    return Rope(**rope)


def _windows(config: dict, style: _Decoder, layers: int) -> tuple[int | None, ...]:
    """Each layer's sliding window (the last W keys a query sees), or None where it sees all: from
    layer_types where the family reads them (transformers 5, and Mistral's configs for Ministral), or
    by the family's rule (most published checkpoints)."""
    types = config.get("layer_types") if style.layer_types else None
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise DataError(f"config.json: layer_types should list the type of each of the {layers} layers")
        unknown = [kind for kind in types if not isinstance(kind, str) or kind not in _LAYER_TYPES]
        if unknown:
            known = ", ".join(_LAYER_TYPES)
            raise DataError(f"config.json: layer type {_shown(unknown[0])} is not supported; attncli reads {known}")
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
    return (window,) * layers


def _soft_cap(config: dict, style: _Decoder) -> float | None:
    """The cap on the attention logits where the family reads attn_logit_softcapping (null: none)."""
    if style.soft_cap is None or ("attn_logit_softcapping" in config and config["attn_logit_softcapping"] is None):
        return None
    return _number(config, "attn_logit_softcapping", default=style.soft_cap)


def _decoder_config(config: dict, layers: int, style: _Decoder) -> dict:
    """The TransformerConfig fields of a Llama-like decoder, `style` saying how its family differs."""
    if config.get("use_bidirectional_attention"):
        raise DataError("config.json: use_bidirectional_attention is not supported; attncli reads causal decoders")
    if config.get("is_causal", True) is not True:
        raise DataError("config.json: is_causal false (bidirectional attention) is not supported for a decoder")
    config = {name: value for name, value in config.items() if name not in style.unread}
    key = style.key
    d = _integer(config, key("hidden_size"))
    heads = _integer(config, key("num_attention_heads"))
    head_dim = _integer(config, "head_dim", default=style.head_dim or (d // heads if heads > 0 else 1))
    activation = _name(config, style.activation, default=style.default_activation)
    attention_bias = style.attention_bias and _flag(config, key("attention_bias"), style.bias_default)
    qkv_bias = style.qkv_bias or (style.qkv_bias_key is not None and _flag(config, style.qkv_bias_key))
    rope = _rope(config, head_dim, style)
    parallel = (
        style.parallel
        if style.parallel_residual is None
        else _flag(config, "use_parallel_residual", style.parallel_residual)
    )
    qk_norm = style.qk_norm or (style.qk_norm_key is not None and _flag(config, style.qk_norm_key))
    scalar = (
        None if style.query_scalar is None else _number(config, "query_pre_attn_scalar", default=style.query_scalar)
    )
    return dict(
        family=config["model_type"],
        layers=layers,
        heads=heads,
        d_model=d,
        d_ff=_integer(config, key("intermediate_size"), default=style.inner_factor and style.inner_factor * d),
        vocab_size=_integer(config, "vocab_size"),
        max_positions=_integer(config, key("max_position_embeddings")),
        activation="gelu_pytorch_tanh" if style.gelu_means_tanh and activation == "gelu" else activation,
        eps=_epsilon(config, key("rms_norm_eps"), default=style.eps),
        pre_norm=True,
        causal=True,
        layer_attention=tuple(LayerAttention(window, rope) for window in _windows(config, style, layers)),
        norm=style.norm,
        # null, as transformers reads it, is one key-value head per query head; left out, the family's default
        kv_heads=heads
        if "num_key_value_heads" in config and config["num_key_value_heads"] is None
        else _integer(config, "num_key_value_heads", default=style.kv_heads or heads),
        head_dim=head_dim,
        gated=style.gated,
        parallel=parallel,
        attention_scale=None if scalar is None else scalar**-0.5,
        soft_cap=_soft_cap(config, style),
        embedding_scale=d**0.5 if style.embedding_scale else None,
        sandwich=style.sandwich,
        qk_norm=qk_norm,
        attention_bias=attention_bias or qkv_bias,
        output_bias=attention_bias or style.output_bias,
        mlp_bias=style.ffn_bias or (style.mlp_bias and _flag(config, key("mlp_bias"), style.bias_default)),
        shared_norm=parallel and (style.names.ffn_norm is None or style.parallel_shares_norm),
        qk_norm_per_head=qk_norm and style.qk_norm_per_head,
    )


def _decoder_weights(
    c: "TransformerConfig", tensors: "TensorFile | TensorHeaders", style: _Decoder
) -> "TransformerWeights":
    """A decoder's weights: the embedding table's rows as they are asked for, the final norm, and the
    layers, each read from disk when the forward pass comes to it (see _Layers)."""
    from attncli.transformer import TransformerWeights

    t = _Tensors(tensors, style.names.words)
    return TransformerWeights(
        word=t.table(style.names.words, (c.vocab_size, c.d_model)),
        position=None,
        token_type=None,
        embedding_norm=None,
        blocks=_Layers(c, functools.partial(_decoder_block, t, c, style)),
        final_norm=_norm(t, style.names.final_norm, c.d_model, style),
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
    if style.qkv == "per_head":  # head by head: its query rows, its key rows, its value rows
        if g != h:
            raise DataError(f"config.json: {g} key-value heads for {h} heads; {c.family}'s fused q, k, v needs as many")
        w = t(f"{name}.weight", (3 * h * dk, d)).reshape(h, 3, dk, d)
        b = t(f"{name}.bias", (3 * h * dk,)).reshape(h, 3, dk) if c.attention_bias else None
        return (
            *(w[:, part].reshape(h * dk, d).T for part in range(3)),
            *((None,) * 3 if b is None else (b[:, part].reshape(h * dk) for part in range(3))),
        )
    w_q, b_q = t.linear(f"{layer}.{names.q}", d, h * dk, c.attention_bias)
    w_k, b_k = t.linear(f"{layer}.{names.k}", d, g * dk, c.attention_bias)
    w_v, b_v = t.linear(f"{layer}.{names.v}", d, g * dk, c.attention_bias)
    return w_q, w_k, w_v, b_q, b_k, b_v


def _feed_forward(t: _Tensors, c: "TransformerConfig", style: _Decoder, layer: str) -> "FeedForward":
    """A layer's feed-forward network: gated (gate and up side by side, as FeedForward wants them), or plain."""
    from attncli.transformer import FeedForward

    d, f, names = c.d_model, c.d_ff, style.names
    if not c.gated:
        w_up, b_up = t.linear(f"{layer}.{names.up}", d, f, c.mlp_bias)
        w_down, b_down = t.linear(f"{layer}.{names.down}", f, d, c.mlp_bias)
        return FeedForward(w_up, w_down, b_up, b_down)
    if style.gate_up:  # stored as gate's rows, then up's: what FeedForward wants, transposed
        w_in, b_in = t(f"{layer}.{names.gate_up}.weight", (2 * f, d)).T, None
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
    projections = Projections(w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, **head_norms)
    feed_forward = _feed_forward(t, c, style, layer)
    norm = functools.partial(_norm, t, d=d, style=style)
    if style.sandwich:
        return Block(
            projections,
            norm(f"{layer}.{names.attention_norm}"),
            feed_forward,
            norm(f"{layer}.pre_feedforward_layernorm"),
            attention_out_norm=norm(f"{layer}.post_attention_layernorm"),
            ffn_out_norm=norm(f"{layer}.post_feedforward_layernorm"),
        )
    ffn_norm = None if c.shared_norm else norm(f"{layer}.{names.ffn_norm}")
    return Block(projections, norm(f"{layer}.{names.attention_norm}"), feed_forward, ffn_norm)


# A model whose layers take at most this many bytes as float32 keeps them once read: a batch of
# texts then reads them once. A larger one reads each layer again for every text and keeps one
# layer in memory at a time (a 0.5B-parameter model's layers take 1.4 GB as float32).
_KEPT_LAYERS_BYTES = 256 * 2**20


class _Layers(Sequence):
    """A model's layers, each read from disk when it is asked for: kept once read when they are
    small (see _KEPT_LAYERS_BYTES), else read again each time, one layer in memory at a time."""

    def __init__(self, config: "TransformerConfig", read: Callable[[int], "Block"]):
        self.count, self.read = config.layers, read
        d, f, dk, g = config.d_model, config.d_ff, config.d_head, config.kv_heads or config.heads
        per_layer = 2 * d * config.heads * dk + 2 * d * g * dk + (3 if config.gated else 2) * d * f
        self.kept: dict[int, Block] | None = {} if 4 * per_layer * self.count <= _KEPT_LAYERS_BYTES else None

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
        """Read every layer now and keep them all, whatever their size."""
        self.kept = {i: self[i] for i in range(self.count)}


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


_BERT_WEIGHTS = functools.partial(_encoder_weights, names=_BERT_NAMES)
_LAYERS = ("num_hidden_layers",)
FAMILIES = {
    "bert": Family("BERT", _LAYERS, _bert_config, _BERT_WEIGHTS, _ENCODER_WORDS, _ENCODER_LAYER, ("[CLS]", "[SEP]")),
    "roberta": Family(
        "RoBERTa",
        _LAYERS,
        functools.partial(_bert_config, padded_positions=True),
        _BERT_WEIGHTS,
        _ENCODER_WORDS,
        _ENCODER_LAYER,
        ("<s>", "</s>"),
    ),
    "distilbert": Family(
        "DistilBERT",
        ("n_layers", "num_hidden_layers"),
        _distilbert_config,
        functools.partial(_encoder_weights, names=_DISTILBERT_NAMES),
        _ENCODER_WORDS,
        _DISTILBERT_LAYER,
        ("[CLS]", "[SEP]"),
    ),
    "gpt2": Family("GPT-2", ("n_layer", "num_hidden_layers"), _gpt2_config, _gpt2_weights, _GPT2_WORDS, _GPT2_LAYER),
}
_DECODERS = {
    # The defaults are those of each family's configuration in transformers, for a config.json without the key.
    "llama": ("Llama", _Decoder(mlp_bias=True)),
    "mistral": (
        "Mistral",
        _Decoder(kv_heads=8, attention_bias=False, layer_types=True, windows="all", window=4096),
    ),
    "qwen2": (
        "Qwen 2",
        _Decoder(
            kv_heads=32,
            attention_bias=False,
            qkv_bias=True,
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
            activation="hidden_activation",
            default_activation="gelu_pytorch_tanh",
        ),
    ),
    "phi3": (
        "Phi-3",
        _Decoder(attention_bias=False, partial_rotary=True, qkv="stacked", gate_up=True, windows="all", eps=1e-5),
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
            ),
            unread=("head_dim", "num_key_value_heads"),
            qkv="per_head",
            bias_default=True,
            ffn_bias=True,
            norm="layer",
            gated=False,
            parallel_residual=True,
            partial_rotary=True,
            rotary_fraction=0.25,
            default_activation="gelu",
            eps=1e-5,
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
            ),
            unread=("head_dim", "num_key_value_heads"),
            attention_bias=False,
            ffn_bias=True,
            norm="layer",
            gated=False,
            parallel=True,
            rotary_dim=64,
            pairing="adjacent",
            inner_factor=4,
            activation="activation_function",
            default_activation="gelu_new",
            eps=1e-5,
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
            attention_bias=False,
            qkv_bias=True,
            output_bias=True,
            ffn_bias=True,
            qk_norm_key="qk_layernorm",
            norm="layer",
            gated=False,
            parallel=True,
            partial_rotary=True,
            rotary_fraction=0.5,
            default_activation="gelu_new",
            eps=1e-5,
        ),
    ),
    "stablelm": (
        "StableLM",
        _Decoder(
            names=_Names(q_norm="self_attn.q_layernorm", k_norm="self_attn.k_layernorm", head_norms="norms.{i}"),
            keys=(("rms_norm_eps", "layer_norm_eps"),),
            unread=("head_dim",),
            kv_heads=32,
            attention_bias=False,
            qkv_bias_key="use_qkv_bias",
            qk_norm_key="qk_layernorm",
            qk_norm_per_head=True,
            norm="layer",
            parallel_residual=False,
            parallel_shares_norm=True,
            partial_rotary=True,
            rotary_fraction=0.25,
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
            theta=500000.0,
            pairing="adjacent",
            eps=1e-5,
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
            norm="layer",
            gated=False,
            windows="all",
            default_activation="gelu_pytorch_tanh",
            eps=1e-5,
        ),
    ),
}
FAMILIES |= {
    name: Family(
        title,
        (style.key("num_hidden_layers"),),
        functools.partial(_decoder_config, style=style),
        functools.partial(_decoder_weights, style=style),
        style.names.words,
        style.names.layer,
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
    layers = _integer(config, *family.layer_count)
    if layers < 1:
        raise DataError(f"config.json: layers = {layers}; it must be positive")
    prefix = _Tensors(tensors, family.word_table).prefix + family.layer.format(i="")
    held = {name[len(prefix) :].partition(".")[0] for name in tensors.names() if name.startswith(prefix)}
    if layers > len(held):
        raise DataError(f"config.json gives {layers:,} layers, but model.safetensors holds {len(held):,}")
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
    return _Tensors(tensors, name).table(name, (config.vocab_size, config.d_model))


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
