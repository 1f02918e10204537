"""What ships inside attncli: the bundled vocabulary and the sample model.

The vocabulary is all-MiniLM-L6-v2's uncased WordPiece tokenizer with its trained embeddings,
reduced to 64 dimensions (see sample_vocab/README.md for where the vectors come from). The sample
model is one layer of multi-head self-attention over them, whose W_Q, W_K, W_V and
W_O are random, drawn from a seed: it shows how attention computes, not what a
trained model has learned.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from attncli.attention import (
    EVERYTHING,
    AttentionOptions,
    LayerAttention,
    Projections,
    Selection,
    Trace,
    causal_mask,
    multi_head_attention,
)
from attncli.attention import value_norms as value_norms_of
from attncli.errors import BadInput, DataError, shortened
from attncli.models import ModelInfo, Vocabulary
from attncli.tokens import Token

__all__ = [
    "SAMPLE_DIR",
    "SampleConfig",
    "SampleModel",
    "positional_encoding",
    "sample_forward",
    "sample_vocabulary",
    "sample_weights",
]

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_vocab"


@cache
def sample_vocabulary() -> Vocabulary:
    """The vocabulary bundled with attncli, loaded once (the embeddings memory-mapped)."""
    from attncli.architectures import uncased_wordpiece_tokenizer

    try:
        tokenizer = uncased_wordpiece_tokenizer(SAMPLE_DIR / "vocab.txt")
        embeddings = np.load(SAMPLE_DIR / "embeddings.npy", mmap_mode="r")
    except Exception as error:  # tokenizers raises plain Exception for a bad file
        raise DataError(f"cannot read the bundled vocabulary in {SAMPLE_DIR} ({error}); reinstall attncli") from error
    return Vocabulary(tokenizer, embeddings)


@dataclass(frozen=True)
class SampleConfig:
    """The sample model's shape and choices; checked when built."""

    d_model: int = 64  # width of the bundled embeddings
    heads: int = 8  # the original Transformer's count, so d_k = 8
    seed: int = 0  # draws W_Q, W_K, W_V, W_O; the same seed always gives the same numbers
    causal: bool = False  # hide the keys after each query, as a decoder does
    positions: bool = True  # add sinusoidal positional encodings to the embeddings

    # What every model's config says, here fixed: one layer of plain multi-head attention without
    # biases, computed in float64, over a text of any length.
    layers = 1
    layer_attention = (LayerAttention(),)
    max_length = None
    kv_heads = None
    attention_bias = output_bias = qk_norm = whole_qk_norm = sinks = False
    clip_qkv = None
    attention_scale = soft_cap = alibi = relative_bias = shared_layers = disentangled = None
    position_offset = 0
    itemsize = 8

    def __post_init__(self):
        if self.heads < 1:
            raise BadInput(
                "{heads} {value} is not positive; use a divisor of {width}, e.g. 8",
                value=self.heads,
                width=self.d_model,
            )
        if self.d_model % self.heads:
            divisors = ", ".join(str(n) for n in range(1, self.d_model + 1) if self.d_model % n == 0)
            raise BadInput(
                "{heads} {value} does not divide the model width {width}; use one of {divisors}",
                value=self.heads,
                width=self.d_model,
                divisors=divisors,
            )
        if self.seed < 0:
            raise BadInput("{seed} {value} is negative; use a seed of 0 or more", value=self.seed)
        if self.seed >= 2**63:  # JSON readers and numpy's integer types stop at 64 bits
            raise BadInput("{seed} {value} is too large; use a seed below 2**63", value=shortened(self.seed))

    @property
    def d_head(self) -> int:
        return self.d_model // self.heads


def sample_weights(config: SampleConfig) -> Projections:
    """W_Q, W_K, W_V, W_O drawn from N(0, 1/d), which keeps x @ W at the scale of x.

    They depend on the seed and width only, so changing the number of heads regroups
    the same projections into heads instead of drawing new ones.
    """
    rng = np.random.default_rng(config.seed)
    d = config.d_model
    w_q, w_k, w_v, w_o = (rng.normal(0.0, 1.0 / np.sqrt(d), size=(d, d)) for _ in range(4))
    return Projections(w_q, w_k, w_v, w_o)


def positional_encoding(tokens: int, width: int) -> np.ndarray:
    """Sinusoidal encodings [T, d]: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    angles = np.arange(tokens)[:, None] / 10000 ** (np.arange(0, width, 2) / width)  # [T, d/2]
    encoding = np.empty((tokens, width))  # [T, d]
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles)
    return encoding


def sample_forward(config: SampleConfig, embeddings: np.ndarray, value_norms: bool = False) -> Trace:
    """Run the sample model on token embeddings [T, d]; with `value_norms`, keep its heads'
    ‖v_j W_O^h‖ too (attention.value_norms: the trace's `norms`).

    The embeddings are multiplied by √d before the positions are added, as in
    "Attention Is All You Need": the bundled vectors have norms near 0.7, the
    encodings near √(d/2), and the scaling puts both on the same footing.
    """
    tokens, width = embeddings.shape
    positions = positional_encoding(tokens, width) if config.positions else None
    x = embeddings * np.sqrt(width)  # [T, d]
    if positions is not None:
        x = x + positions
    mask = causal_mask(tokens) if config.causal else None
    weights = sample_weights(config)
    attention = multi_head_attention(x, weights, AttentionOptions(config.heads), mask)
    norms = value_norms_of(attention.v, weights.w_o, config.heads)[None] if value_norms else None  # [1, h, T]
    return Trace(
        embeddings,
        positions,
        attention.weights[None],
        [attention],
        [attention.output],
        attention.output,
        value_norms=norms,
    )


class SampleModel:
    """One layer of attention with random projections over the bundled trained embeddings."""

    def __init__(self, config: SampleConfig):
        self.config = config

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name="sample", type="sample", title="sample model", config=self.config)

    @property
    def vocabulary(self) -> Vocabulary:
        return sample_vocabulary()

    @property
    def tokenizer(self):
        return sample_vocabulary().tokenizer

    def tokenize(self, text: str) -> list[Token]:
        return sample_vocabulary().tokenize(text)

    def ordinary_ids(self) -> list[int]:
        return sample_vocabulary().ordinary_ids()

    def tokens_of(self, ids: list[int]) -> list[Token]:
        return sample_vocabulary().tokens_of(ids)

    def run(
        self,
        tokens: list[Token],
        keep_steps: bool = True,
        value_norms: bool = False,
        decompose_at: np.ndarray | None = None,
        head_inputs: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
        on_attention: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
    ) -> Trace:
        """The forward pass; one layer, so every step is kept whatever `keep_steps` says; no language-model
        head reads its output, so it has no `residual_parts` or `head_inputs` to keep. `on_layer` is called once,
        after it; the `selection`'s heads are kept, or handed to `on_attention` (see Model.run)."""
        trace = sample_forward(self.config, sample_vocabulary().embed([t.id for t in tokens]), value_norms)
        if on_layer is not None:
            on_layer(1, 1)
        if selection.everything and on_attention is None:
            return trace
        heads = list(selection.kept_heads(self.config.heads))
        weights = trace.weights[:, heads]  # [1, h', T, T]
        norms = None if trace.value_norms is None else trace.value_norms[:, heads]  # [1, h', T]
        if on_attention is not None:
            on_attention(0, weights[0], None if norms is None else norms[0])
            weights, norms = weights[:0, :0], None if norms is None else norms[:0, :0]
        return replace(trace, weights=weights, value_norms=norms)

    def run_many(
        self,
        texts: list[list[Token]],
        norms: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
    ) -> list[np.ndarray]:
        """One text at a time: the sample model is one small layer, with nothing to gain from packing. `on_layer`
        is called once, after all of them; the `selection`'s heads are kept."""
        attention = [
            self.run(tokens, value_norms=True, selection=selection).norms
            if norms
            else self.run(tokens, selection=selection).weights
            for tokens in texts
        ]
        if on_layer is not None:
            on_layer(1, 1)
        return attention

    @property
    def unembedding(self):
        """None to give: the sample model is one layer of attention, with no language-model head."""
        raise DataError(
            "{name} is one layer of attention over trained embeddings, with no language-model head: it can show "
            "attention, not predictions; give {model} a checkpoint that has one",
            name="the sample model",
        )
