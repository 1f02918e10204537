"""The sample model: one layer of multi-head self-attention over the bundled embeddings.

The embeddings are trained; W_Q, W_K, W_V and W_O are random, drawn from a
seed, so the model shows how attention computes, not what a trained model has
learned.
"""

from dataclasses import dataclass

import numpy as np

from attncli.attention import AttentionTrace, Projections, causal_mask, multi_head_attention
from attncli.errors import BadInput

__all__ = ["SampleConfig", "SampleForward", "forward", "positional_encoding", "sample_weights"]


@dataclass(frozen=True)
class SampleConfig:
    d_model: int = 64  # width of the bundled embeddings
    heads: int = 8  # the original Transformer's count, so d_k = 8
    seed: int = 0  # draws W_Q, W_K, W_V, W_O; the same seed always gives the same numbers
    causal: bool = False  # hide the keys after each query, as a decoder does
    positions: bool = True  # add sinusoidal positional encodings to the embeddings

    def __post_init__(self):
        if self.heads < 1:
            raise BadInput(f"--heads {self.heads} is not positive; use a divisor of {self.d_model}, e.g. 8")
        if self.d_model % self.heads:
            divisors = ", ".join(str(n) for n in range(1, self.d_model + 1) if self.d_model % n == 0)
            raise BadInput(
                f"--heads {self.heads} does not divide the model width {self.d_model}; use one of {divisors}"
            )
        if self.seed < 0:
            raise BadInput(f"--seed {self.seed} is negative; use a seed of 0 or more")

    @property
    def d_head(self) -> int:
        return self.d_model // self.heads


@dataclass(frozen=True, eq=False)
class SampleForward:
    """A text's path through the sample model."""

    embeddings: np.ndarray  # [T, d] rows of the embedding matrix
    positions: np.ndarray | None  # [T, d] sinusoidal encodings, None when turned off
    x: np.ndarray  # [T, d] √d · embeddings + positions, the attention layer's input
    attention: AttentionTrace


def sample_weights(config: SampleConfig) -> Projections:
    """W_Q, W_K, W_V, W_O drawn from N(0, 1/d), which keeps x @ W at the scale of x.

    They depend on the seed and width only, so changing --heads regroups the
    same projections into heads instead of drawing new ones.
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


def forward(config: SampleConfig, embeddings: np.ndarray) -> SampleForward:
    """Run the sample model on token embeddings [T, d].

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
    trace = multi_head_attention(x, sample_weights(config), config.heads, mask)
    return SampleForward(embeddings, positions, x, trace)
