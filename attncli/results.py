"""One result object per command. The terminal view draws it; `to_json()` is its `--json` document."""

from dataclasses import dataclass

import numpy as np

from attncli.analysis import softmax_parts, strongest_keys
from attncli.sample_model import SampleConfig, SampleForward
from attncli.vocab import Token

__all__ = [
    "SCHEMA",
    "AttentionRun",
    "DotResult",
    "EmbedResult",
    "ExplainResult",
    "HeatmapResult",
    "Neighbor",
    "Operand",
    "SimilarResult",
    "SoftmaxResult",
    "TokenizeResult",
]

SCHEMA = "attncli/v1"


def _document(command: str, **fields) -> dict:
    return {"schema": SCHEMA, "command": command, **fields}


def _tokens_json(tokens: list[Token]) -> list[dict]:
    return [token.to_json() for token in tokens]


@dataclass(frozen=True)
class AttentionRun:
    """A text through the sample model: the tokens and every intermediate."""

    text: str
    tokens: list[Token]
    config: SampleConfig
    forward: SampleForward

    @property
    def weights(self) -> np.ndarray:
        """[h, T, T] attention weights of the model's only layer."""
        return self.forward.attention.weights

    def model_json(self) -> dict:
        c = self.config
        return {
            "name": "sample",
            "layers": 1,
            "heads": c.heads,
            "d_model": c.d_model,
            "d_head": c.d_head,
            "causal": c.causal,
            "positions": c.positions,
            "seed": c.seed,
        }

    def common_json(self) -> dict:
        return {
            "text": self.text,
            "model": self.model_json(),
            "tokens": _tokens_json(self.tokens),
            "attention": [self.weights.tolist()],  # [layer][head][query][key]
        }


@dataclass(frozen=True)
class HeatmapResult:
    run: AttentionRun
    head: int | None = None  # the one head to draw; None draws them all (JSON always has all)

    def to_json(self) -> dict:
        return _document("heatmap", **self.run.common_json())


@dataclass(frozen=True)
class ExplainResult:
    run: AttentionRun
    focus: int  # index of the token whose scores the walkthrough follows
    head: int | None = None  # the one head to draw; None draws them all (JSON always has all)

    @property
    def walk_head(self) -> int:
        """The head whose Q, K, V and scores the walkthrough shows."""
        return 0 if self.head is None else self.head

    @property
    def focus_keys(self) -> np.ndarray:
        """Indices of the keys the focus token may attend to: all, or those up to it when causal."""
        return np.arange(self.focus + 1 if self.run.config.causal else len(self.run.tokens))

    def focus_softmax(self) -> "SoftmaxResult":
        """The softmax of the focus token's scaled scores over its keys, in the walkthrough's head."""
        x = self.run.forward.attention.scaled[self.walk_head, self.focus, self.focus_keys]  # [keys]
        return SoftmaxResult(x, *softmax_parts(x))

    @property
    def strongest(self) -> tuple[np.ndarray, np.ndarray]:
        """Per head, each query's most-attended key and its weight: ([h, T], [h, T])."""
        return strongest_keys(self.run.weights)

    @property
    def strongest_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Each query's most-attended key averaged over heads, and that mean weight: ([T], [T])."""
        return strongest_keys(self.run.weights.mean(axis=0))

    def summary_json(self) -> list[dict]:
        tokens = self.run.tokens
        keys, weights = self.strongest
        mean_keys, mean_weights = self.strongest_mean

        def target(key, weight) -> dict:
            return {"index": int(key), "text": tokens[key].text, "weight": float(weight)}

        return [
            {
                "index": token.index,
                "text": token.text,
                "heads": [{"head": h, **target(keys[h, i], weights[h, i])} for h in range(len(keys))],
                "mean": target(mean_keys[i], mean_weights[i]),
            }
            for i, token in enumerate(tokens)
        ]

    def to_json(self) -> dict:
        forward = self.run.forward
        trace = forward.attention
        focus = self.run.tokens[self.focus]
        return _document(
            "explain",
            **self.run.common_json(),
            focus={"index": focus.index, "text": focus.text},
            summary=self.summary_json(),
            steps={
                "embeddings": forward.embeddings.tolist(),
                "positions": None if forward.positions is None else forward.positions.tolist(),
                "input": forward.x.tolist(),
                # per layer, then [head][token][...]
                "q": [trace.q.tolist()],
                "k": [trace.k.tolist()],
                "v": [trace.v.tolist()],
                "scores": [trace.scores.tolist()],
                "scaled": [trace.scaled.tolist()],
                "head_outputs": [trace.head_outputs.tolist()],
                "concat": trace.concat.tolist(),
                "output": trace.output.tolist(),
            },
        )


@dataclass(frozen=True)
class TokenizeResult:
    text: str
    tokens: list[Token]

    def to_json(self) -> dict:
        return _document("tokenize", text=self.text, tokens=_tokens_json(self.tokens))


@dataclass(frozen=True)
class EmbedResult:
    text: str
    tokens: list[Token]
    embeddings: np.ndarray  # [T, d]

    def to_json(self) -> dict:
        return _document("embed", text=self.text, tokens=_tokens_json(self.tokens), embeddings=self.embeddings.tolist())


@dataclass(frozen=True)
class Neighbor:
    text: str
    id: int
    cosine: float


@dataclass(frozen=True)
class SimilarResult:
    word: str
    id: int
    neighbors: list[Neighbor]

    def to_json(self) -> dict:
        return _document(
            "similar",
            word=self.word,
            id=self.id,
            neighbors=[{"text": n.text, "id": n.id, "cosine": n.cosine} for n in self.neighbors],
        )


@dataclass(frozen=True)
class SoftmaxResult:
    """softmax(scores) with the steps a reader can check by hand."""

    scores: np.ndarray  # [n]
    shifted: np.ndarray  # [n] scores - max(scores)
    exp: np.ndarray  # [n] exp(shifted)
    probabilities: np.ndarray  # [n] exp / sum(exp)

    def to_json(self) -> dict:
        return _document(
            "softmax",
            scores=self.scores.tolist(),
            shifted=self.shifted.tolist(),
            exp=self.exp.tolist(),
            probabilities=self.probabilities.tolist(),
        )


@dataclass(frozen=True)
class Operand:
    """One side of a dot product: a vector given as numbers, or a word's embedding."""

    vector: np.ndarray  # [n]
    word: str | None = None
    id: int | None = None

    def to_json(self) -> dict:
        named = {} if self.word is None else {"word": self.word, "id": self.id}
        return {**named, "vector": self.vector.tolist()}


@dataclass(frozen=True)
class DotResult:
    a: Operand
    b: Operand
    products: np.ndarray  # [n] a_i * b_i
    dot: float
    cosine: float

    def to_json(self) -> dict:
        return _document(
            "dot",
            a=self.a.to_json(),
            b=self.b.to_json(),
            products=self.products.tolist(),
            dot=self.dot,
            cosine=self.cosine,
        )
