"""The models attncli runs: the bundled sample model, or a trained checkpoint read from disk.

Both tokenize a text and run it, returning a `ModelTrace` of every layer, so
the commands and views do not care which one they have.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from tokenizers import Tokenizer, processors

from attncli import sample_model
from attncli.attention import AttentionTrace
from attncli.errors import BadInput, DataError
from attncli.vocab import Token, sample_vocabulary, special_ids

__all__ = ["CheckpointModel", "ModelInfo", "ModelTrace", "SampleModel", "load_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What the views and the JSON `model` object say about a model."""

    name: str  # as given to --model
    type: str  # sample, bert, roberta, distilbert or gpt2
    layers: int
    heads: int
    d_model: int
    d_head: int
    causal: bool
    max_length: int | None  # the longest input in tokens, special tokens included; None: no limit
    path: str | None = None  # the checkpoint directory
    seed: int | None = None  # sample model only
    positions: bool | None = None  # sample model only

    def to_json(self) -> dict:
        fields = {
            "name": self.name,
            "type": self.type,
            "layers": self.layers,
            "heads": self.heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "max_length": self.max_length,
            "causal": self.causal,
        }
        if self.type == "sample":
            return {**fields, "positions": self.positions, "seed": self.seed}
        return {**fields, "path": self.path}


@dataclass(frozen=True, eq=False)
class ModelTrace:
    """What a model did to a text, layer by layer."""

    embeddings: np.ndarray  # [T, d] word embedding rows
    positions: np.ndarray | None  # [T, d] added position encodings or embeddings; None when off
    weights: np.ndarray  # [L, h, T, T] every layer's attention weights
    layers: list[AttentionTrace]  # per layer, every intermediate (.x: its input); empty unless steps were kept
    output: np.ndarray  # [T, d] the model's last output
    layer_outputs: list[np.ndarray]  # [T, d] per layer: what it passes on (after FFN and norms); as layers


class SampleModel:
    """One layer of attention with random projections over the bundled trained embeddings."""

    def __init__(self, config: sample_model.SampleConfig):
        self.config = config

    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo("sample", "sample", 1, c.heads, c.d_model, c.d_head, c.causal, None, None, c.seed, c.positions)

    def tokenize(self, text: str) -> list[Token]:
        return sample_vocabulary().tokenize(text)

    def run(self, tokens: list[Token], keep_steps: bool = True) -> ModelTrace:
        embeddings = sample_vocabulary().embed([t.id for t in tokens])  # [T, d]
        forward = sample_model.forward(self.config, embeddings)
        attention = forward.attention
        return ModelTrace(
            embeddings, forward.positions, attention.weights[None], [attention], attention.output, [attention.output]
        )


class CheckpointModel:
    """A trained BERT, RoBERTa, DistilBERT or GPT-2 checkpoint; weights are read on first run."""

    def __init__(self, name: str, checkpoint):
        from attncli.architectures import read_config

        self.name = name
        self.checkpoint = checkpoint
        self.config = read_config(checkpoint.config)
        self.tokenizer = _checkpoint_tokenizer(checkpoint.tokenizer_path, self.config)
        self.special = special_ids(self.tokenizer)

    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            self.name,
            c.model_type,
            c.layers,
            c.heads,
            c.d_model,
            c.d_head,
            c.causal,
            c.max_tokens,
            str(self.checkpoint.directory.resolve()),
        )

    @cached_property
    def weights(self):
        from attncli.architectures import read_weights

        return read_weights(self.config, self.checkpoint.tensors)

    def tokenize(self, text: str) -> list[Token]:
        encoding = self.tokenizer.encode(text)
        return [
            Token(index, token_id, piece, start, end, bool(special) or token_id in self.special)
            for index, (token_id, piece, (start, end), special) in enumerate(
                zip(encoding.ids, encoding.tokens, encoding.offsets, encoding.special_tokens_mask, strict=True)
            )
        ]

    def run(self, tokens: list[Token], keep_steps: bool = True) -> ModelTrace:
        """The forward pass; without `keep_steps`, only the attention weights of each layer are kept."""
        from attncli.transformer import forward

        if len(tokens) > self.config.max_tokens:
            specials = " (special tokens included)" if any(t.special for t in tokens) else ""
            raise BadInput(
                f"the text is {len(tokens)} tokens{specials}, but {self.name} reads at most "
                f"{self.config.max_tokens}; shorten it"
            )
        ids = np.array([t.id for t in tokens])
        embeddings = self.weights.word[ids]  # [T, d]; a checkpoint's table is read here, not in forward
        with np.errstate(all="ignore"):  # damaged weights can overflow; the check below reports it
            trace = forward(ids, embeddings, self.config, self.weights, keep_steps)
        if not np.all(np.isfinite(trace.weights)) or not np.all(np.isfinite(trace.output)):
            raise DataError(
                f"{self.checkpoint.directory}: the forward pass gave NaN or infinite values; "
                "the checkpoint's weights or config.json are broken"
            )
        return ModelTrace(embeddings, trace.positions, trace.weights, trace.layers, trace.output, trace.layer_outputs)


# The special tokens a model type wraps a single text in, as transformers adds them.
_WRAPPERS = {"bert": ("[CLS]", "[SEP]"), "distilbert": ("[CLS]", "[SEP]"), "roberta": ("<s>", "</s>")}


def _checkpoint_tokenizer(path, config) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises plain Exception for a bad file
        raise DataError(f"{path}: not a tokenizer file the tokenizers library can read ({error})") from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise DataError(
            f"{path}: the tokenizer has {tokenizer.get_vocab_size()} tokens but the model embeds only "
            f"{config.vocab_size}; they do not belong together"
        )
    if tokenizer.post_processor is None and config.model_type in _WRAPPERS:
        # transformers re-adds the wrapper from the tokenizer's configuration; so must we.
        first, last = _WRAPPERS[config.model_type]
        ids = [tokenizer.token_to_id(first), tokenizer.token_to_id(last)]
        if None in ids:
            raise DataError(f"{path}: adds no special tokens and has no {first} and {last} to add")
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{first} $A {last}", special_tokens=[(first, ids[0]), (last, ids[1])]
        )
    return tokenizer


def load_model(spec: str = "sample", **sample_options) -> SampleModel | CheckpointModel:
    """The model --model SPEC names: `sample`, built with `sample_options` (heads, seed, causal,
    positions; None means the default), or a checkpoint, which takes none of them."""
    given = {name: value for name, value in sample_options.items() if value is not None}
    if spec == "sample":
        return SampleModel(sample_model.SampleConfig(**given))
    if given:
        flags = ", ".join("--" + name.replace("positions", "no-positions") for name in given)
        raise BadInput(f"{flags} only shape the sample model; a checkpoint (--model {spec}) has its own")
    from attncli.checkpoint import open_checkpoint

    return CheckpointModel(spec, open_checkpoint(spec))
