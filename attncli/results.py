"""One result object per command. The terminal view draws it; `to_json()` is its `--json` document."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from attncli.analysis import (
    BROAD_ENTROPY,
    PATTERN_SHARE,
    PATTERNS,
    ranked_targets,
    softmax_parts,
    spread,
    strongest_keys,
    total_variation,
)
from attncli.attention import AttentionTrace
from attncli.errors import BadInput, DataError
from attncli.models import ModelInfo, ModelTrace
from attncli.vocab import Token

__all__ = [
    "SCHEMA",
    "AttentionRun",
    "CheckResult",
    "CompareResult",
    "DotResult",
    "EmbedResult",
    "ExplainResult",
    "HeadTarget",
    "HeadsResult",
    "HeatmapResult",
    "ModelGridResult",
    "Neighbor",
    "Operand",
    "QueryResult",
    "RolloutResult",
    "SimilarResult",
    "SoftmaxResult",
    "TokenizeResult",
    "numbers",
]

SCHEMA = "attncli/v1"
# explain --json writes every step of every layer, which grows as layers × heads × tokens²:
# past this many numbers (about 400 MB of JSON) it refuses rather than flood a pipe.
EXPLAIN_JSON_LIMIT = 20_000_000


def _document(command: str, **fields) -> dict:
    return {"schema": SCHEMA, "command": command, **fields}


def _tokens_json(tokens: list[Token]) -> list[dict]:
    return [token.to_json() for token in tokens]


def numbers(array: np.ndarray) -> np.ndarray:
    """`array` ready for JSON: checked to hold only finite numbers, since JSON has no NaN or infinity."""
    if not np.all(np.isfinite(array)):
        raise DataError("a computation gave a non-finite number, which JSON cannot hold; nothing was written")
    return array


@dataclass(frozen=True, eq=False)
class AttentionRun:
    """A text through a model: the tokens and every layer's intermediates."""

    text: str
    tokens: list[Token]
    model: ModelInfo
    trace: ModelTrace

    @property
    def weights(self) -> np.ndarray:
        """[L, h, T, T] attention weights of every layer."""
        return self.trace.weights

    def header_json(self) -> dict:
        """What every document about a run opens with: the text, the model and the tokens."""
        return {"text": self.text, "model": self.model.to_json(), "tokens": _tokens_json(self.tokens)}

    def common_json(self) -> dict:
        return {**self.header_json(), "attention": numbers(self.weights)}  # [layer][head][query][key]


@dataclass(frozen=True, eq=False)
class HeatmapResult:
    run: AttentionRun
    layer: int = 0  # the layer to draw
    head: int | None = None  # the one head to draw; None draws them all (JSON always has all)

    def to_json(self) -> dict:
        return _document("heatmap", **self.run.common_json())


@dataclass(frozen=True, eq=False)
class ExplainResult:
    run: AttentionRun
    focus: int  # index of the token whose scores the walkthrough follows
    layer: int = 0  # the layer the walkthrough follows
    head: int | None = None  # the one head to draw; None draws them all (JSON always has all)

    @property
    def walk_head(self) -> int:
        """The head whose Q, K, V and scores the walkthrough shows."""
        return 0 if self.head is None else self.head

    @property
    def attention(self) -> AttentionTrace:
        """The walkthrough layer's trace."""
        return self.run.trace.layers[self.layer]

    @property
    def focus_keys(self) -> np.ndarray:
        """Indices of the keys the focus token may attend to: all, or those up to it when causal."""
        return np.arange(self.focus + 1 if self.run.model.causal else len(self.run.tokens))

    def focus_softmax(self) -> "SoftmaxResult":
        """The softmax of the focus token's scaled scores over its keys, in the walkthrough's head."""
        x = self.attention.scaled[self.walk_head, self.focus, self.focus_keys]  # [keys]
        return SoftmaxResult(x, *softmax_parts(x))

    @property
    def strongest(self) -> tuple[np.ndarray, np.ndarray]:
        """Per head of the walkthrough layer, each query's most-attended key and its weight: ([h, T], [h, T])."""
        return strongest_keys(self.run.weights[self.layer])

    @property
    def strongest_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Each query's most-attended key averaged over the layer's heads, and that mean weight: ([T], [T])."""
        return strongest_keys(self.run.weights[self.layer].mean(axis=0))

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

    def to_json(self, steps: bool = True) -> dict:
        """The --json document; without `steps`, the attention and summary alone (as batch writes)."""
        trace = self.run.trace
        layers = trace.layers
        focus = self.run.tokens[self.focus]
        fields = {
            **self.run.common_json(),
            "focus": {"index": focus.index, "text": focus.text},
            "layer": self.layer,
            "summary": self.summary_json(),
        }
        if not steps:
            return _document("explain", **fields)
        _check_size(self.run)

        def per_layer(name: str) -> list:
            return [numbers(getattr(layer, name)) for layer in layers]

        return _document(
            "explain",
            **fields,
            steps={
                "embeddings": numbers(trace.embeddings),
                "positions": None if trace.positions is None else numbers(trace.positions),
                "input": per_layer("x"),
                "q": per_layer("q"),
                "k": per_layer("k"),
                "v": per_layer("v"),
                "scores": per_layer("scores"),
                "scaled": per_layer("scaled"),
                "head_outputs": per_layer("head_outputs"),
                "concat": per_layer("concat"),
                "attention_output": per_layer("output"),
                "output": numbers(trace.output),
            },
        )


def _check_size(run: AttentionRun) -> None:
    """Refuse an explain document too large to be useful, before writing any of it."""
    fields = ("x", "q", "k", "v", "scores", "scaled", "weights", "head_outputs", "concat", "output")
    total = sum(getattr(layer, field).size for layer in run.trace.layers for field in fields)
    if total > EXPLAIN_JSON_LIMIT:
        raise BadInput(
            f"explain --json for {len(run.tokens)} tokens would write {total / 1e6:.0f} million numbers (every step "
            f"of every layer; the limit is {EXPLAIN_JSON_LIMIT / 1e6:.0f} million): use heatmap --json for the "
            "attention alone, or a shorter text"
        )


@dataclass(frozen=True)
class TokenizeResult:
    text: str
    tokens: list[Token]
    model: ModelInfo

    def to_json(self) -> dict:
        return _document("tokenize", text=self.text, model=self.model.to_json(), tokens=_tokens_json(self.tokens))


@dataclass(frozen=True, eq=False)
class EmbedResult:
    text: str
    tokens: list[Token]
    embeddings: np.ndarray  # [T, d]

    def to_json(self) -> dict:
        return _document("embed", text=self.text, tokens=_tokens_json(self.tokens), embeddings=numbers(self.embeddings))


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


@dataclass(frozen=True, eq=False)
class SoftmaxResult:
    """softmax(scores) with the steps a reader can check by hand."""

    scores: np.ndarray  # [n]
    shifted: np.ndarray  # [n] scores - max(scores)
    exp: np.ndarray  # [n] exp(shifted)
    probabilities: np.ndarray  # [n] exp / sum(exp)

    def to_json(self) -> dict:
        return _document(
            "softmax",
            scores=numbers(self.scores),
            shifted=numbers(self.shifted),
            exp=numbers(self.exp),
            probabilities=numbers(self.probabilities),
        )


@dataclass(frozen=True, eq=False)
class Operand:
    """One side of a dot product: a vector given as numbers, or a word's embedding."""

    vector: np.ndarray  # [n]
    word: str | None = None
    id: int | None = None

    def to_json(self) -> dict:
        named = {} if self.word is None else {"word": self.word, "id": self.id}
        return {**named, "vector": numbers(self.vector)}


@dataclass(frozen=True, eq=False)
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
            products=numbers(self.products),
            dot=self.dot,
            cosine=self.cosine,
        )


def _token_ref(token: Token) -> dict:
    return {"index": token.index, "text": token.text}


def _statistic(value: float) -> float | None:
    """A statistic for JSON: NaN, which marks one that does not apply, becomes null."""
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True, eq=False)
class HeadTarget:
    """One head's view from a query token: its weights over the keys and the strongest allowed key."""

    layer: int
    head: int
    weights: np.ndarray  # [T]
    top: int  # key index
    top_weight: float


@dataclass(frozen=True, eq=False)
class QueryResult:
    """What one token attends to, in every head of every layer, heads ranked by their top weight."""

    run: AttentionRun
    token: int
    include_special: bool
    target: int | None = None  # rank heads by the weight on this key instead of on their strongest key

    @cached_property
    def allowed(self) -> np.ndarray:
        """[T] bool: keys that may be a head's top target (not the token itself, not special tokens)."""
        allowed = np.array([self.include_special or not t.special for t in self.run.tokens])
        allowed[self.token] = False
        return allowed

    @cached_property
    def ranking(self) -> list[HeadTarget]:
        rows = self.run.weights[:, :, self.token, :]  # [L, h, T]
        return [
            HeadTarget(layer, head, rows[layer, head], top, float(rows[layer, head, top]))
            for layer, head, top in ranked_targets(rows, self.allowed, self.target)
        ]

    def to_json(self) -> dict:
        tokens = self.run.tokens
        return _document(
            "query",
            **self.run.header_json(),
            token=_token_ref(tokens[self.token]),
            include_special=self.include_special,
            target=None if self.target is None else _token_ref(tokens[self.target]),
            heads=[
                {
                    "layer": target.layer,
                    "head": target.head,
                    "weights": numbers(target.weights),
                    "top": {**_token_ref(tokens[target.top]), "weight": target.top_weight},
                }
                for target in self.ranking
            ],
        )


@dataclass(frozen=True, eq=False)
class ModelGridResult:
    """Every head of every layer at once; `layers` and `heads` choose what the view draws."""

    run: AttentionRun
    layers: list[int]
    heads: list[int]

    def to_json(self) -> dict:
        return _document("model", **self.run.common_json(), shown={"layers": self.layers, "heads": self.heads})


@dataclass(frozen=True, eq=False)
class HeadsResult:
    """Per-head statistics and pattern labels, averaged over one or more texts."""

    model: ModelInfo
    texts: int
    text: str | None  # the text, when there is one
    statistics: dict[str, np.ndarray]  # name -> [L, h], NaN where a statistic never applied
    labels: np.ndarray  # [L, h]

    def to_json(self) -> dict:
        layers, heads = self.labels.shape
        return _document(
            "heads",
            model=self.model.to_json(),
            texts=self.texts,
            text=self.text,
            rules={"share": PATTERN_SHARE, "broad_entropy": BROAD_ENTROPY, "patterns": list(PATTERNS)},
            heads=[
                {
                    "layer": layer,
                    "head": head,
                    **{name: _statistic(values[layer, head]) for name, values in self.statistics.items()},
                    "pattern": str(self.labels[layer, head]),
                }
                for layer in range(layers)
                for head in range(heads)
            ],
        )


@dataclass(frozen=True, eq=False)
class RolloutResult:
    run: AttentionRun
    fusion: str
    rollout: np.ndarray  # [L, T, T] products of the fused, residual-mixed layers up to each layer
    token: int | None  # the query token whose sources the view lists, if any

    def to_json(self) -> dict:
        tokens = self.run.tokens
        return _document(
            "rollout",
            **self.run.header_json(),
            head_fusion=self.fusion,
            token=None if self.token is None else _token_ref(tokens[self.token]),
            rollout=numbers(self.rollout),
        )


@dataclass(frozen=True, eq=False)
class CompareResult:
    """One token's attention in two texts, head by head, keys aligned by their text."""

    a: AttentionRun
    b: AttentionRun
    token_a: int
    token_b: int
    slots: list[tuple[int | None, int | None]]  # aligned key positions; None where a key has no partner

    @cached_property
    def spread(self) -> tuple[np.ndarray, np.ndarray]:
        """Both texts' token rows spread over the alignment slots: ([L, h, S], [L, h, S])."""
        rows_a = self.a.weights[:, :, self.token_a, :]  # [L, h, T_a]
        rows_b = self.b.weights[:, :, self.token_b, :]  # [L, h, T_b]
        return spread(rows_a, [i for i, _ in self.slots]), spread(rows_b, [j for _, j in self.slots])

    @cached_property
    def change(self) -> np.ndarray:
        """[L, h] total variation distance between the two distributions."""
        return total_variation(*self.spread)

    @cached_property
    def ranking(self) -> list[tuple[int, int]]:
        """(layer, head) pairs, the most changed first."""
        layers, heads = self.change.shape
        pairs = [(layer, head) for layer in range(layers) for head in range(heads)]
        return sorted(pairs, key=lambda pair: -self.change[pair])

    def strongest(self, side: int, layer: int, head: int) -> int:
        """The key the token attends to most in one text and head, not itself and not a special token."""
        run, token = (self.a, self.token_a) if side == 0 else (self.b, self.token_b)
        allowed = np.array([not t.special for t in run.tokens])
        allowed[token] = False
        rows = run.weights[layer : layer + 1, head : head + 1, token, :]  # [1, 1, T]
        return ranked_targets(rows, allowed)[0][2] if allowed.any() else token

    def unpaired(self, side: int) -> list[int]:
        return [slot[side] for slot in self.slots if slot[1 - side] is None]

    def to_json(self) -> dict:
        return _document(
            "compare",
            texts=[self.a.text, self.b.text],
            model=self.a.model.to_json(),
            tokens={"a": _tokens_json(self.a.tokens), "b": _tokens_json(self.b.tokens)},
            token={"a": _token_ref(self.a.tokens[self.token_a]), "b": _token_ref(self.b.tokens[self.token_b])},
            alignment=[list(slot) for slot in self.slots],
            unpaired={"a": self.unpaired(0), "b": self.unpaired(1)},
            heads=[
                {
                    "layer": layer,
                    "head": head,
                    "tv": float(self.change[layer, head]),
                    "a": numbers(self.a.weights[layer, head, self.token_a]),
                    "b": numbers(self.b.weights[layer, head, self.token_b]),
                }
                for layer, head in self.ranking
            ],
        )


@dataclass(frozen=True, eq=False)
class CheckResult:
    """A recomputed run against a saved --json result: how far each attention weight moved."""

    run: AttentionRun
    saved: np.ndarray  # [L, h, T, T] the saved attention
    tolerance: float

    @cached_property
    def difference(self) -> np.ndarray:
        """[L, h, T, T] |now - saved|."""
        return np.abs(self.run.weights - self.saved)

    @property
    def max_difference(self) -> float:
        return float(self.difference.max())

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance

    def worst_heads(self, count: int = 5) -> list[tuple[int, int, float]]:
        per_head = self.difference.max(axis=(2, 3))  # [L, h]
        order = np.argsort(-per_head, axis=None, kind="stable")[:count]
        layers, heads = np.unravel_index(order, per_head.shape)
        return [
            (int(layer), int(head), float(per_head[layer, head])) for layer, head in zip(layers, heads, strict=True)
        ]

    def worst_cells(self, count: int = 5) -> list[tuple[int, int, int, int]]:
        order = np.argsort(-self.difference, axis=None, kind="stable")[:count]
        indices = np.unravel_index(order, self.difference.shape)
        return [tuple(int(i) for i in cell) for cell in zip(*indices, strict=True)]

    def to_json(self) -> dict:
        now = self.run.weights
        return _document(
            "check",
            text=self.run.text,
            model=self.run.model.to_json(),
            tolerance=self.tolerance,
            passed=self.passed,
            max_difference=self.max_difference,
            heads=[
                {"layer": layer, "head": head, "max_difference": difference}
                for layer, head, difference in self.worst_heads()
            ],
            cells=[
                {
                    "layer": cell[0],
                    "head": cell[1],
                    "query": cell[2],
                    "key": cell[3],
                    "saved": float(self.saved[cell]),
                    "now": float(now[cell]),
                }
                for cell in self.worst_cells()
            ],
        )
