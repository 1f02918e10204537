"""The one place that knows each model family: BERT, RoBERTa, DistilBERT and GPT-2.

`FAMILIES` maps config.json's model_type to a `Family`: how to read its config.json
(keys, defaults, and the forward pass's choices: norm placement, activation,
positions, token types, causal mask), how to find its tensors (names, a head model's
prefix such as "bert."), the special tokens transformers wraps a text in, and the name
prose gives it. Every shape is checked against the config and each matrix laid out for
x @ W: torch Linear weights are stored [out, in] and are transposed here, once; GPT-2's
Conv1D weights are already [in, out]. The bundled vocabulary's WordPiece tokenizer is
BERT's, so it is built here too. Adding a family is adding a row to `FAMILIES`.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attncli.attention import Projections
from attncli.errors import DataError

# The forward pass and the checkpoint reader (with safetensors) are imported where a checkpoint
# is read: the sample model needs only this module's tokenizer, and starts faster without them.
if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from attncli.checkpoint import TensorFile
    from attncli.transformer import Norm, TransformerConfig, TransformerWeights

__all__ = ["FAMILIES", "SUPPORTED", "Family", "read_config", "read_weights", "uncased_wordpiece_tokenizer"]

_PREFIXES = ("", "bert.", "roberta.", "distilbert.", "transformer.", "model.")


def _field(config: dict, *names: str, default=None):
    """The first of `names` present in config.json (architectures spell the same thing differently)."""
    for name in names:
        if config.get(name) is not None:
            return config[name]
    if default is not None:
        return default
    raise DataError(f"config.json: missing {names[0]}")


def _integer(config: dict, *names: str, default=None) -> int:
    value = _field(config, *names, default=default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f"config.json: {names[0]} should be an integer, not {value!r}")
    return value


def _epsilon(config: dict, *names: str, default: float) -> float:
    value = _field(config, *names, default=default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise DataError(f"config.json: {names[0]} should be a small positive number, not {value!r}")
    return float(value)


def _name(config: dict, *names: str, default=None) -> str:
    value = _field(config, *names, default=default)
    if not isinstance(value, str):
        raise DataError(f"config.json: {names[0]} should be a name, not {value!r}")
    return value


class _Tensors:
    """Looks tensors up under the checkpoint's prefix and checks their shapes."""

    def __init__(self, source: "TensorFile", anchor: str):
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

    def table(self, name: str, shape: tuple[int, int]):
        """An embedding table whose rows are read when looked up (see TensorFile.rows)."""
        full = self._full(name)
        self._check_shape(full, self.source.shape(full), shape)
        return self.source.rows(full)

    def linear(self, name: str, d_in: int, d_out: int) -> tuple[np.ndarray, np.ndarray]:
        """A torch Linear layer as (W [d_in, d_out], b [d_out])."""
        return self(f"{name}.weight", (d_out, d_in)).T, self(f"{name}.bias", (d_out,))

    def norm(self, name: str, d: int) -> "Norm":
        """A LayerNorm's gain and bias, named weight/bias or, in older BERT checkpoints, gamma/beta."""
        from attncli.transformer import Norm

        gain, bias = ("gamma", "beta") if self.prefix + f"{name}.gamma" in self.names else ("weight", "bias")
        return Norm(self(f"{name}.{gain}", (d,)), self(f"{name}.{bias}", (d,)))


def _bert_config(config: dict) -> dict:
    if _field(config, "position_embedding_type", default="absolute") != "absolute":
        raise DataError("config.json: only absolute position embeddings are supported")
    model_type = config["model_type"]
    return dict(
        family=model_type,
        layers=_integer(config, "num_hidden_layers"),
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
        padding_idx=_integer(config, "pad_token_id", default=1) if model_type == "roberta" else None,
    )


def _distilbert_config(config: dict) -> dict:
    return dict(
        family="distilbert",
        layers=_integer(config, "n_layers", "num_hidden_layers"),
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
    "layer": "encoder.layer.{i}",
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
    "layer": "transformer.layer.{i}",
    "q": "attention.q_lin",
    "k": "attention.k_lin",
    "v": "attention.v_lin",
    "o": "attention.out_lin",
    "attention_norm": "sa_layer_norm",
    "in": "ffn.lin1",
    "out": "ffn.lin2",
    "ffn_norm": "output_layer_norm",
}


def _encoder_weights(c: "TransformerConfig", tensors: "TensorFile", names: dict[str, str]) -> "TransformerWeights":
    """BERT, RoBERTa or DistilBERT weights, their tensors found through `names`."""
    from attncli.transformer import Block, FeedForward, TransformerWeights

    t = _Tensors(tensors, "embeddings.word_embeddings.weight")
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
        word=t.table("embeddings.word_embeddings.weight", (c.vocab_size, d)),
        position=t("embeddings.position_embeddings.weight", (c.max_positions, d)),
        token_type=t("embeddings.token_type_embeddings.weight", (types, d)) if types else None,
        embedding_norm=t.norm("embeddings.LayerNorm", d),
        blocks=blocks,
        final_norm=None,
    )


def _gpt2_config(config: dict) -> dict:
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise DataError("config.json: scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported")
    if config.get("scale_attn_weights") is False:
        raise DataError("config.json: scale_attn_weights false (unscaled attention) is not supported")
    d = _integer(config, "n_embd", "hidden_size")
    return dict(
        family="gpt2",
        layers=_integer(config, "n_layer", "num_hidden_layers"),
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


def _gpt2_weights(c: "TransformerConfig", tensors: "TensorFile") -> "TransformerWeights":
    from attncli.transformer import Block, FeedForward, TransformerWeights

    t = _Tensors(tensors, "wte.weight")
    d, f = c.d_model, c.d_ff
    blocks = []
    for i in range(c.layers):
        layer = f"h.{i}"
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
        word=t.table("wte.weight", (c.vocab_size, d)),
        position=t("wpe.weight", (c.max_positions, d)),
        token_type=None,
        embedding_norm=None,
        blocks=blocks,
        final_norm=t.norm("ln_f", d),
    )


@dataclass(eq=False)
class Family:
    """What attncli knows of one model family, beyond its tensors' shapes."""

    title: str  # the family's name in prose
    read_config: Callable[[dict], dict]  # config.json -> the TransformerConfig's fields
    read_weights: Callable[["TransformerConfig", "TensorFile"], "TransformerWeights"]
    wrapper: tuple[str, str] | None = None  # what transformers wraps one text in when tokenizer.json adds nothing


_BERT_WEIGHTS = functools.partial(_encoder_weights, names=_BERT_NAMES)
FAMILIES = {
    "bert": Family("BERT", _bert_config, _BERT_WEIGHTS, ("[CLS]", "[SEP]")),
    "roberta": Family("RoBERTa", _bert_config, _BERT_WEIGHTS, ("<s>", "</s>")),
    "distilbert": Family(
        "DistilBERT",
        _distilbert_config,
        functools.partial(_encoder_weights, names=_DISTILBERT_NAMES),
        ("[CLS]", "[SEP]"),
    ),
    "gpt2": Family("GPT-2", _gpt2_config, _gpt2_weights),
}
SUPPORTED = tuple(FAMILIES)


def read_config(config: dict) -> "TransformerConfig":
    """The model config.json describes, checked for what attncli can run."""
    from attncli.transformer import TransformerConfig

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise DataError(
            f"config.json: model_type {model_type!r} is not supported; attncli reads {', '.join(SUPPORTED)}"
        )
    return TransformerConfig(**FAMILIES[model_type].read_config(config))


def read_weights(config: "TransformerConfig", tensors: "TensorFile") -> "TransformerWeights":
    """Every tensor the model needs, checked against `config` and laid out for x @ W."""
    return FAMILIES[config.family].read_weights(config, tensors)


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
