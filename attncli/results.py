"""One result object per command: plain data, computed by attncli.commands. The terminal view
draws it; `to_json()` is its JSON document. Nothing here derives a number: it arranges them, and
refuses what JSON cannot hold (NaN, infinity, a document too large to be useful)."""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from attncli.analysis import BROAD_ENTROPY, PATTERN_SHARE, PATTERNS, StatisticSums
from attncli.attention import EVERYTHING, AttentionTrace, Selection, Trace
from attncli.errors import AttncliError, BadInput, DataError, Parameter, listed
from attncli.experts import Routing
from attncli.models import ModelInfo
from attncli.tokens import Token

if TYPE_CHECKING:  # attribution, and the forward pass's code it reads, load for the attribute command alone
    from attncli.attribution import Component
    from attncli.streamed import LayerStream

__all__ = [
    "SCHEMA",
    "AttentionRun",
    "AttributionResult",
    "BatchRecord",
    "CheckResult",
    "CompareResult",
    "DotResult",
    "EmbedResult",
    "ExplainResult",
    "GenerateResult",
    "HeadTarget",
    "HeadsResult",
    "HeatmapResult",
    "InductionTest",
    "LensResult",
    "ModelGridResult",
    "Neighbor",
    "Operand",
    "PositionPredictions",
    "PredictResult",
    "Prediction",
    "QueryResult",
    "RolloutResult",
    "SimilarResult",
    "SoftmaxResult",
    "TokenizeResult",
    "VocabularyToken",
    "numbers",
]

SCHEMA = "attncli/v1"
# explain's JSON writes every step of every layer, which grows as layers × heads × tokens²:
# past this many numbers (about 400 MB of JSON) it refuses rather than flood a pipe.
EXPLAIN_JSON_LIMIT = 20_000_000


def _document(command: str, **fields) -> dict:
    return {"schema": SCHEMA, "command": command, **fields}


def _tokens_json(tokens: list[Token]) -> list[dict]:
    return [token.to_json() for token in tokens]


def _measure_json(measure: str) -> dict:
    """{"measure": "norms"} for a result of ‖α v W_O‖ norms, else {}: a document of weights is as it always was."""
    return {} if measure == "weights" else {"measure": measure}


def _window(tokens: int, selection: slice | None, parameter: str) -> range:
    """The indices of `tokens` tokens that `selection` (a window of them to draw; None: all) picks, refused,
    naming `parameter`, when it picks none."""
    chosen = range(tokens)[selection or slice(None)]
    if not chosen:
        typed = ":".join("" if end is None else str(end) for end in (selection.start, selection.stop))
        raise BadInput(
            "{option} {typed} picks none of the {tokens} tokens (0 to {last}); choose others",
            option=Parameter(parameter),
            typed=typed,
            tokens=tokens,
            last=tokens - 1,
        )
    return chosen


def numbers(array: np.ndarray) -> np.ndarray:
    """`array` ready for JSON: checked to hold only finite numbers, since JSON has no NaN or infinity."""
    if not np.all(np.isfinite(array)):
        raise DataError("a computation gave a non-finite number, which JSON cannot hold; nothing was written")
    return array


def _checked(layers: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Each of `layers`, checked as `numbers` checks an array, as it comes."""
    for layer in layers:
        yield numbers(layer)
        del layer  # before the next is made: see streamed


def _place(kept: tuple[int, ...], index: int, what: str) -> int:
    """Where the model's `index` (a layer or head) is among those a run `kept`, refused in one line where it is not."""
    if index not in kept:
        raise BadInput(f"{what} {index} is not among those the run kept: {listed(kept)}")
    return kept.index(index)


def _cast(layers: Iterable[np.ndarray], dtype: str) -> Iterator[np.ndarray]:
    """Each of `layers` in `dtype`, as it comes."""
    for layer in layers:
        cast = layer.astype(dtype, copy=False)
        del layer  # before the next is made: see streamed
        yield cast
        del cast


@dataclass(eq=False, repr=False)
class AttentionRun:
    """A text through a model: the tokens and every layer's intermediates; or, for a document of the attention
    alone, its layers as the pass makes them (`stream`, read once, in place of the trace)."""

    text: str
    tokens: list[Token]
    model: ModelInfo
    trace: Trace | None
    # What `attention` holds: "weights", or "norms", their ‖α_ij v_j W_O^h‖ (the trace must hold its value norms)
    measure: str = "weights"
    selection: Selection = EVERYTHING  # the layers and heads the run kept
    stream: "LayerStream | None" = None
    dtype: str | None = None  # how documents write the attention: float16 where 1e-3 will do; None: as computed

    @property
    def weights(self) -> np.ndarray:
        """[L', h', T, T] attention weights of every layer (of the layers and heads kept)."""
        return self.trace.weights

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers the run kept, in order: the first axis of `attention`."""
        return self.selection.kept_layers(self.model.layers)

    @property
    def heads(self) -> tuple[int, ...]:
        """The heads of each layer the run kept, in order: the second axis of `attention`."""
        return self.selection.kept_heads(self.model.heads)

    def one_head(self, head: int | None) -> int:
        """`head`, or where None the first kept: the one head a walkthrough or a figure shows."""
        return self.heads[0] if head is None else head

    def layer(self, layer: int) -> np.ndarray:
        """[h', T, T] what the run's measure shows of model layer `layer` (one it kept), for its kept heads."""
        return self.attention[_place(self.layers, layer, "layer")]

    def head(self, layer: int, head: int) -> np.ndarray:
        """[T, T] what the run's measure shows of `head` of `layer` (ones it kept)."""
        return self.attention[_place(self.layers, layer, "layer"), _place(self.heads, head, "head")]

    def selection_json(self) -> dict:
        """{"layers": [...], "heads": [...]}, the model's indices of what the attention's axes hold, for a run that
        kept some of them; {} for one that kept all: such a document is as it always was."""
        return {} if self.selection.everything else {"layers": list(self.layers), "heads": list(self.heads)}

    @property
    def shows_norms(self) -> bool:
        """Whether the run's measure is ‖α v W_O‖ rather than the weights."""
        return self.measure == "norms"

    @property
    def attention(self) -> "np.ndarray | LayerStream":
        """[L', h', T, T] what the run's measure shows of every layer kept: its weights, or their ‖α_ij v_j W_O^h‖;
        for a streamed run, its stream of them."""
        if self.stream is not None:
            return self.stream
        return self.trace.norms if self.shows_norms else self.weights

    def measure_json(self) -> dict:
        return _measure_json(self.measure)

    @property
    def special(self) -> np.ndarray:
        """[T] bool: which tokens are special tokens."""
        return np.array([token.special for token in self.tokens], dtype=bool)

    def window(self, selection: slice | None, parameter: str) -> range:
        """The token indices `selection` (a window of the keys or queries to draw; None: all) picks,
        refused, naming `parameter`, when it picks none."""
        return _window(len(self.tokens), selection, parameter)

    def header_json(self) -> dict:
        """What every document about a run opens with: the text, the model and the tokens."""
        return {"text": self.text, "model": self.model.to_json(), "tokens": _tokens_json(self.tokens)}

    def written(self, dtype: str | None = None) -> Iterator[np.ndarray]:
        """Each kept layer's [h', T, T] as documents write it: in the run's `dtype`, else in `dtype`, else as
        computed; a layer at a time (a stream's as the pass makes them)."""
        dtype = self.dtype or dtype
        return iter(self.attention) if dtype is None else _cast(self.attention, dtype)

    def common_json(self) -> dict:
        if self.stream is not None:
            attention = _checked(self.written())  # [L'][h'][T][T], each layer checked as it comes
        else:
            attention = numbers(self.attention if self.dtype is None else self.attention.astype(self.dtype))
        return {**self.header_json(), **self.measure_json(), **self.selection_json(), "attention": attention}


@dataclass(eq=False, repr=False)
class HeatmapResult:
    """Every head's attention weights for a text; the view draws one layer."""

    run: AttentionRun
    layer: int = 0  # the layer to draw
    head: int | None = None  # the one head to draw; None draws them all (JSON always has all)

    def to_json(self) -> dict:
        return _document("heatmap", **self.run.common_json())


@dataclass(eq=False, repr=False)
class ExplainResult:
    """The walkthrough of one layer for one focus token, and what each token attends to most."""

    run: AttentionRun
    focus: int  # index of the token whose scores the walkthrough follows
    layer: int  # the layer the walkthrough follows
    head: int | None  # the one head to draw; None draws them all (JSON always has all)
    focus_keys: np.ndarray  # [keys] indices of the keys the focus token may attend to
    strongest: tuple[np.ndarray, np.ndarray]  # per head of the layer, each query's top key and its weight: [h, T]
    strongest_mean: tuple[np.ndarray, np.ndarray]  # the same for the mean of the layer's heads: [T]
    # softmax of the focus token's scaled scores over its keys (and, last, its head's sink logit where the model
    # has attention sinks); with steps
    focus_steps: "SoftmaxResult | None"
    focus_top: int | None  # the key the focus token weights most in the walkthrough head; with steps
    weighted_values: np.ndarray | None  # [keys, d_k] weight · v of each key, in the walkthrough head; with steps
    include_special: bool = False  # the summary's targets may be special tokens and a causal model's first token
    focus_angles: np.ndarray | None = None  # [n/2] RoPE: the angle each dimension pair of the focus token turns by
    clipped: tuple[int, int, int] | None = None  # how many numbers of the layer's q, k and v clip_qkv clamped
    # The focus token's √(mean(x²) + ε) over its whole projected q, over the walkthrough head's part of it
    # alone, and over its whole projected k: what norms over the whole projections divide them by
    projection_rms: tuple[float, float, float] | None = None
    focus_biases: np.ndarray | None = None  # [keys] ALiBi: what the walkthrough head added to the focus token's score
    # for each key it sees, m·(j - focus); a relative position bias: that head's bias for the key's bucket
    focus_feed_forward: np.ndarray | None = None  # [d] a parallel block: what its feed-forward network added for the
    # focus token (the layer's output less its input and the attention's output); with steps
    focus_relative: np.ndarray | None = None  # [keys] disentangled attention: the relative position the focus
    # token's c2p and p2c terms read for each key it sees (focus − key, log-bucketed, clipped); with steps
    # [T, T] a relative position bias: each query's bucket for each key (the focus token's row: the buckets whose
    # biases focus_biases holds); with steps
    relative_buckets: np.ndarray | None = None

    @property
    def walk_head(self) -> int:
        """The head whose Q, K, V and scores the walkthrough shows."""
        return self.run.one_head(self.head)

    @property
    def attention(self) -> AttentionTrace:
        """The walkthrough layer's trace."""
        return self.run.trace.layers[self.layer]

    def summary_json(self) -> list[dict]:
        tokens = self.run.tokens
        keys, weights = self.strongest
        mean_keys, mean_weights = self.strongest_mean

        def target(key, weight) -> dict:
            return {**_token_ref(tokens[key]), "weight": float(weight)}

        return [
            {
                "index": token.index,
                "text": token.text,
                "heads": [{"head": head, **target(keys[h, i], weights[h, i])} for h, head in enumerate(self.run.heads)],
                "mean": target(mean_keys[i], mean_weights[i]),
            }
            for i, token in enumerate(tokens)
        ]

    def fields(self, steps: bool = True) -> dict:
        """The document's fields after "schema" and "command"; without `steps`, the attention and
        summary alone (as batch writes)."""
        trace = self.run.trace
        focus = self.run.tokens[self.focus]
        fields = {
            **self.run.common_json(),
            "focus": _token_ref(focus),
            "layer": self.layer,
            "include_special": self.include_special,
            "summary": self.summary_json(),
        }
        if not steps:
            return fields
        _check_size(self.run)
        layers = [trace.layers[layer] for layer in self.run.layers]  # the steps of the layers kept
        first = trace.layers[0]  # what every layer shares (ALiBi, a relative position bias): the pass runs the first

        def per_layer(name: str) -> list:
            return [numbers(getattr(layer, name)) for layer in layers]

        experts = (
            {}
            if self.run.model.mixture is None
            else {"experts": [_routing_json(trace.routing[layer]) for layer in self.run.layers]}
        )
        return {
            **fields,
            "steps": {
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
                **_projected_json(layers),
                **experts,
                **({} if first.alibi is None else {"alibi": numbers(first.alibi)}),
                **({"sinks": per_layer("sinks")} if self.run.model.sinks else {}),
                **_disentangled_json(trace, layers),
                **({} if trace.normed_embeddings is None else {"normed_embeddings": numbers(trace.normed_embeddings)}),
                **_relative_bias_json(self.relative_buckets, first),
            },
        }

    def to_json(self, steps: bool = True) -> dict:
        """The JSON document; without `steps`, the attention and summary alone."""
        return _document("explain", **self.fields(steps))


@dataclass(eq=False, repr=False)
class BatchRecord:
    """One line of a batch: the fields of its explain document, or why it failed."""

    line: int  # the line number in the input, from 1
    fields: dict | None = None  # ExplainResult.fields()
    error: AttncliError | None = None

    def to_json(self, names: Mapping[str, str]) -> dict:
        """The record; an error's message names parameters as `names` says (see AttncliError.worded)."""
        if self.fields is None:
            return _document("batch", line=self.line, error=self.error.worded(names))
        return _document("batch", line=self.line, **self.fields)


def _routing_json(routing: Routing | None) -> dict | None:
    """Where a mixture layer sent each token: its experts [T][k] and their weights (and the shared
    expert's gate [T], where there is one); None for a dense layer."""
    if routing is None:
        return None
    fields = {"experts": routing.experts, "weights": numbers(routing.weights)}
    return fields if routing.shared is None else {**fields, "shared_gate": numbers(routing.shared)}


def _check_size(run: AttentionRun) -> None:
    """Refuse an explain document too large to be useful, before writing any of it."""
    fields = ("x", "q", "k", "v", "scores", "scaled", "weights", "head_outputs", "concat", "output")
    total = sum(getattr(layer, field).size for layer in run.trace.layers for field in fields)
    total += sum(part.size for layer in run.trace.layers for part in layer.projected or ())
    total += sum(part.size for layer in run.trace.layers for part in (layer.c2p, layer.p2c) if part is not None)
    if total > EXPLAIN_JSON_LIMIT:
        raise BadInput(
            "{explain_json} for {tokens} tokens would write {total:.0f} million numbers (every step of every layer; "
            "the limit is {limit:.0f} million): use {attention_json} for the attention alone, or a shorter text",
            tokens=len(run.tokens),
            total=total / 1e6,
            limit=EXPLAIN_JSON_LIMIT / 1e6,
        )


@dataclass(eq=False, repr=False)
class TokenizeResult:
    """The tokens of a text as a model sees them."""

    text: str
    tokens: list[Token]
    model: ModelInfo

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The view's table: one row per token."""
        header = ["index", "id", "token", "start", "end", "special"]
        return header, ([t.index, t.id, t.text, t.start, t.end, t.special] for t in self.tokens)

    def to_json(self) -> dict:
        return _document("tokenize", text=self.text, model=self.model.to_json(), tokens=_tokens_json(self.tokens))


@dataclass(eq=False, repr=False)
class EmbedResult:
    """The bundled embedding vector of each token of a text."""

    text: str
    tokens: list[Token]
    embeddings: np.ndarray  # [T, d]
    norms: np.ndarray  # [T] the length of each embedding

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """One row per token: its embedding's dimensions, then its length."""
        width = self.embeddings.shape[1]
        header = ["index", "token", *(f"d{i}" for i in range(width)), "length"]
        rows = zip(self.tokens, self.embeddings, self.norms, strict=True)
        return header, ([t.index, t.text, *vector, norm] for t, vector, norm in rows)

    def to_json(self) -> dict:
        return _document("embed", text=self.text, tokens=_tokens_json(self.tokens), embeddings=numbers(self.embeddings))


@dataclass(eq=False, repr=False)
class Neighbor:
    """A vocabulary word near another, and the cosine of their embeddings."""

    text: str
    id: int
    cosine: float


@dataclass(eq=False, repr=False)
class SimilarResult:
    """The words whose embeddings are nearest to one word's."""

    word: str
    id: int
    neighbors: list[Neighbor]
    model: ModelInfo

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The neighbours, nearest first."""
        rows = ([rank, n.text, n.id, n.cosine] for rank, n in enumerate(self.neighbors, start=1))
        return ["rank", "token", "id", "cosine"], rows

    def to_json(self) -> dict:
        return _document(
            "similar",
            model=self.model.to_json(),
            word=self.word,
            id=self.id,
            neighbors=[{"text": n.text, "id": n.id, "cosine": n.cosine} for n in self.neighbors],
        )


@dataclass(eq=False, repr=False)
class Prediction:
    """One token of the vocabulary a position predicts: its id, its string (None for a row of the head past
    the tokenizer's vocabulary), its logit and its probability."""

    id: int
    token: str | None
    logit: float
    probability: float

    def to_json(self) -> dict:
        return {"id": self.id, "token": self.token, "logit": self.logit, "probability": self.probability}


@dataclass(eq=False, repr=False)
class PositionPredictions:
    """What the model predicts at one position: the next token after it (a decoder), or the token masked
    there (an encoder); the most probable first."""

    index: int  # the token's position in the text
    predictions: list[Prediction]
    rest: float  # the probability of every other id of the vocabulary


@dataclass(eq=False, repr=False)
class PredictResult:
    """The model's prediction at the position asked for, or at each of the text's mask tokens."""

    text: str
    tokens: list[Token]
    model: ModelInfo
    positions: list[PositionPredictions]  # the position asked for, or every mask token, in the text's order
    shown: int  # the index in `positions` of the one the result is about: the position asked for, or the first mask
    next_token: bool  # the distribution is over the token after each position (a decoder's), not the one at it
    vocabulary: int  # the ids the softmax runs over: the head's rows
    mask: str | None = None  # the tokenizer's mask token, where the model predicts masked tokens

    @property
    def position(self) -> PositionPredictions:
        return self.positions[self.shown]

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """Each position's predictions, the most probable first; the position last (one, unless several masks)."""
        rows = (
            [rank, p.id, p.token, p.logit, p.probability, position.index]
            for position in self.positions
            for rank, p in enumerate(position.predictions, start=1)
        )
        return ["rank", "id", "token", "logit", "probability", "position"], rows

    def to_json(self) -> dict:
        def predictions(position: PositionPredictions) -> list[dict]:
            return [prediction.to_json() for prediction in position.predictions]

        return _document(
            "predict",
            text=self.text,
            model=self.model.to_json(),
            tokens=_tokens_json(self.tokens),
            predicts="next" if self.next_token else "masked",
            mask=self.mask,
            vocabulary=self.vocabulary,
            position=_token_ref(self.tokens[self.position.index]),
            predictions=predictions(self.position),
            positions=[{**_token_ref(self.tokens[p.index]), "predictions": predictions(p)} for p in self.positions],
        )


@dataclass(eq=False, repr=False)
class SoftmaxResult:
    """softmax(scores) with the steps a reader can check by hand (see analysis.softmax_parts)."""

    scores: np.ndarray  # [n]
    shifted: np.ndarray  # [n] scores - max(scores)
    exp: np.ndarray  # [n] exp(shifted)
    probabilities: np.ndarray  # [n] exp / sum(exp)

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """Each score's steps."""
        rows = zip(self.scores, self.shifted, self.exp, self.probabilities, strict=True)
        return ["score", "shifted", "exp", "probability"], (list(row) for row in rows)

    def to_json(self) -> dict:
        return _document(
            "softmax",
            scores=numbers(self.scores),
            shifted=numbers(self.shifted),
            exp=numbers(self.exp),
            probabilities=numbers(self.probabilities),
        )


@dataclass(eq=False, repr=False)
class Operand:
    """One side of a dot product: a vector given as numbers, or a word's embedding."""

    vector: np.ndarray  # [n]
    word: str | None = None
    id: int | None = None

    def to_json(self) -> dict:
        named = {} if self.word is None else {"word": self.word, "id": self.id}
        return {**named, "vector": numbers(self.vector)}


@dataclass(eq=False, repr=False)
class DotResult:
    """A dot product, term by term, and the cosine of the two vectors."""

    a: Operand
    b: Operand
    products: np.ndarray  # [n] a_i * b_i
    dot: float
    cosine: float

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The product term by term."""
        rows = zip(self.a.vector, self.b.vector, self.products, strict=True)
        return ["i", "a", "b", "product"], ([i, *row] for i, row in enumerate(rows))

    def to_json(self) -> dict:
        return _document(
            "dot",
            a=self.a.to_json(),
            b=self.b.to_json(),
            products=numbers(self.products),
            dot=self.dot,
            cosine=self.cosine,
        )


def _disentangled_json(trace: Trace, layers: list[AttentionTrace]) -> dict:
    """Disentangled attention's steps: each of `layers`' c2p and p2c terms [L][h][T][T] (those it has), the
    relative position [T][T] each query's read for each key, and the first layer's convolution [T][d] where
    it has one; else {}."""
    if trace.relative_positions is None:
        return {}
    fields = {
        name: [numbers(getattr(layer, name)) for layer in layers]
        for name in ("c2p", "p2c")
        if getattr(layers[0], name) is not None
    }
    fields["relative_positions"] = trace.relative_positions.tolist()
    return fields if trace.convolution is None else {**fields, "convolution": numbers(trace.convolution)}


def _relative_bias_json(buckets: np.ndarray | None, first: AttentionTrace) -> dict:
    """{"relative_position_buckets": [T][T], "relative_position_bias": [h][T][T]} for a model with a relative
    position bias (the same in every layer: the `first` layer's); else {}."""
    if buckets is None:
        return {}
    return {"relative_position_buckets": buckets.tolist(), "relative_position_bias": numbers(first.position_bias)}


def _projected_json(layers: list[AttentionTrace]) -> dict:
    """{"projected": each layer's q, k and v as projected, [L][T][h·d_k] and [L][T][g·d_k]} for a model
    whose norms over the whole projections or clip_qkv change them before the heads split; else {}."""
    if not layers or layers[0].projected is None:
        return {}
    return {"projected": {name: [numbers(layer.projected[i]) for layer in layers] for i, name in enumerate("qkv")}}


def _shortest(array: np.ndarray) -> list:
    """`array` (checked finite) as nested lists of floats, each float32 number in its shortest form, as JSON
    writes a float32 array: for a document whose numbers sit in objects, one per token."""
    flat = [float(str(value)) for value in numbers(array).ravel()]
    return np.array(flat, dtype=np.float64).reshape(array.shape).tolist()


def _token_ref(token: Token) -> dict:
    return {"index": token.index, "text": token.text}


def _statistic(value: float) -> float | None:
    """A statistic for JSON: NaN, which marks one that does not apply, becomes null."""
    return None if np.isnan(value) else float(value)


@dataclass(eq=False, repr=False)
class HeadTarget:
    """One head's view from a query token: its weights over the keys and the strongest allowed key."""

    layer: int
    head: int
    weights: np.ndarray  # [T]
    top: int  # key index
    top_weight: float


@dataclass(eq=False, repr=False)
class QueryResult:
    """What one token (or the tokens of one split word) attends to, in every head of every layer,
    heads ranked by their top weight."""

    run: AttentionRun
    token: list[int]  # the query: one token, or the tokens of a word split into several
    include_special: bool
    target: list[int] | None  # heads are ranked by the weight on these keys instead of on their strongest
    allowed: np.ndarray  # [T] bool: keys that may be a head's top target
    ranking: list[HeadTarget]  # every head, the strongest first (a word's weights: its tokens' mean row)

    def label(self, span: list[int]) -> str:
        """What the text says at the tokens `span`: one token's string, or the word they split."""
        tokens = self.run.tokens
        if len(span) == 1:
            return tokens[span[0]].text
        return self.run.text[
            tokens[span[0]].start : tokens[span[-1]].end
        ].strip()  # a BPE piece's offsets hold its space

    def span_json(self, span: list[int]) -> dict:
        """One token as {index, text}; a word as {indices, text}."""
        if len(span) == 1:
            return _token_ref(self.run.tokens[span[0]])
        return {"indices": span, "text": self.label(span)}

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The heads as ranked, each with its top key (and its weight on the target key, if any)."""
        tokens = self.run.tokens
        value = "norm" if self.run.shows_norms else "weight"
        header = ["rank", "layer", "head", "top_index", "top_token", f"top_{value}"]
        if self.target is not None:
            header.append(f"target_{value}")

        def row(rank: int, t: HeadTarget) -> list:
            target = [] if self.target is None else [t.weights[self.target].sum()]
            return [rank, t.layer, t.head, t.top, tokens[t.top].text, t.top_weight, *target]

        return header, (row(rank, t) for rank, t in enumerate(self.ranking, start=1))

    def to_json(self) -> dict:
        tokens = self.run.tokens
        return _document(
            "query",
            **self.run.header_json(),
            **self.run.measure_json(),
            token=self.span_json(self.token),
            include_special=self.include_special,
            target=None if self.target is None else self.span_json(self.target),
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


@dataclass(eq=False, repr=False)
class ModelGridResult:
    """Every head of every layer at once (of those the run kept)."""

    run: AttentionRun

    @property
    def layers(self) -> list[int]:
        return list(self.run.layers)

    @property
    def heads(self) -> list[int]:
        return list(self.run.heads)

    def to_json(self) -> dict:
        return _document("model", **self.run.common_json(), shown={"layers": self.layers, "heads": self.heads})


@dataclass(eq=False, repr=False)
class InductionTest:
    """The tokens heads runs for the induction test, instead of a text: `length` random ids of the vocabulary drawn
    with `seed`, twice over, between the special tokens the tokenizer adds to a text."""

    seed: int
    length: int  # the random ids in each copy
    tokens: list[Token]  # the whole sequence

    @property
    def copy(self) -> list[Token]:
        """The first copy of the random tokens."""
        first = next(i for i, token in enumerate(self.tokens) if not token.special)
        return self.tokens[first : first + self.length]

    def to_json(self) -> dict:
        return {"seed": self.seed, "length": self.length, "tokens": _tokens_json(self.tokens)}


@dataclass(eq=False, repr=False)
class HeadsResult:
    """Per-head statistics and pattern labels, averaged over one or more texts."""

    model: ModelInfo
    texts: int
    text: str | None  # the text, when there is one
    statistics: dict[str, np.ndarray]  # name -> [L, h], NaN where a statistic never applied
    labels: np.ndarray  # [L, h]
    sums: StatisticSums  # the partial sums the means came from, which merge with another run's
    induction_test: InductionTest | None = None  # the tokens run instead of a text: the induction test
    sort: str | None = None  # the column (analysis.HEAD_COLUMNS) the heads are ordered by; None: layer order
    order: list[tuple[int, int]] | None = None  # every (layer, head) in that order
    measure: str = "weights"  # what the statistics are of: the weights, or ‖α v W_O‖ norms as shares of each row
    selection: Selection = EVERYTHING  # the layers and heads the statistics are of: the [L, h] arrays' rows, columns

    @property
    def ordered(self) -> list[tuple[int, int]]:
        """Every (layer, head) place in the [L, h] arrays, in the order asked for (`order`), else layer by layer."""
        return self.order or list(np.ndindex(self.labels.shape))

    def named(self, layer: int, head: int) -> tuple[int, int]:
        """The model's layer and head at place (`layer`, `head`) of the [L, h] arrays."""
        return self.selection.kept_layers(self.model.layers)[layer], self.selection.kept_heads(self.model.heads)[head]

    def selection_json(self) -> dict:
        """{"layers": [...], "heads": [...]}, the model's indices of the [L, h] arrays' rows and columns, for statistics
        of some of them (a merge reads them back from the partial sums); {} for statistics of all."""
        if self.selection.everything:
            return {}
        return {
            "layers": list(self.selection.kept_layers(self.model.layers)),
            "heads": list(self.selection.kept_heads(self.model.heads)),
        }

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """One row per head, in the order asked for: its statistics (empty where one does not apply) and pattern."""
        names = list(self.statistics)
        rows = (
            [
                *self.named(layer, head),
                *(_statistic(self.statistics[n][layer, head]) for n in names),
                str(self.labels[layer, head]),
            ]
            for layer, head in self.ordered
        )
        return ["layer", "head", *names, "pattern"], rows

    def to_json(self) -> dict:
        """The heads layer by layer, whatever the order asked for, each with its rank in that order."""
        layers, heads = self.labels.shape
        rank = {head: place for place, head in enumerate(self.ordered, start=1)}
        return _document(
            "heads",
            model=self.model.to_json(),
            texts=self.texts,
            text=self.text,
            **_measure_json(self.measure),
            rules={"share": PATTERN_SHARE, "broad_entropy": BROAD_ENTROPY, "patterns": list(PATTERNS)},
            partial_sums={**self.sums.to_json(), **self.selection_json()},
            heads=[
                {
                    **dict(zip(("layer", "head"), self.named(layer, head), strict=True)),
                    **{name: _statistic(values[layer, head]) for name, values in self.statistics.items()},
                    "pattern": str(self.labels[layer, head]),
                    "rank": rank[layer, head],
                }
                for layer in range(layers)
                for head in range(heads)
            ],
            sort=self.sort,
            induction_test=None if self.induction_test is None else self.induction_test.to_json(),
        )

    def by_head_json(self) -> dict:
        """Each per-head field of the document's heads (every statistic, then pattern) as one [layer][head] array:
        the names written once, not once per head, as batch's summaries write them for every line."""
        statistics = {
            name: [[_statistic(value) for value in row] for row in values] for name, values in self.statistics.items()
        }
        return {**statistics, "pattern": self.labels.tolist()}


@dataclass(eq=False, repr=False)
class RolloutResult:
    """Attention rollout through every layer of a run (every layer it kept: the rollout starts at the first)."""

    run: AttentionRun
    fusion: str
    rollout: np.ndarray  # [L', T, T] products of the fused, residual-mixed layers kept up to each layer kept
    token: int | None  # the query token whose sources the view lists, if any
    sources: list[int] | None  # with a token: the input tokens, the largest share of it first, sinks left out
    left_out: list[int] | None = None  # with a token: the sinks (special tokens ...) the ranking leaves out

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The rollout in long form: how much of each key flows into each query, layer by layer."""
        texts = [t.text for t in self.run.tokens]
        header = ["layer", "query_index", "query_token", "key_index", "key_token", "share"]
        layers = self.run.layers  # the model's number of each layer kept
        rows = (
            [layers[kept], query, texts[query], key, texts[key], self.rollout[kept, query, key]]
            for kept, query, key in np.ndindex(self.rollout.shape)
        )
        return header, rows

    def to_json(self) -> dict:
        tokens = self.run.tokens
        return _document(
            "rollout",
            **self.run.header_json(),
            **self.run.measure_json(),
            **self.run.selection_json(),
            head_fusion=self.fusion,
            token=None if self.token is None else _token_ref(tokens[self.token]),
            rollout=numbers(self.rollout),
        )


@dataclass(eq=False, repr=False)
class CompareResult:
    """One token's attention in two texts, head by head, keys aligned by their text."""

    a: AttentionRun
    b: AttentionRun
    token_a: int
    token_b: int
    slots: list[tuple[int | None, int | None]]  # aligned key positions; None where a key has no partner
    # the arrays' axes are of the layers and heads the runs kept (both the same: see AttentionRun.selection)
    spread: tuple[np.ndarray, np.ndarray]  # both texts' token rows laid out over the slots: [L', h', S] each
    change: np.ndarray  # [L', h'] total variation distance between the two distributions
    ranking: list[tuple[int, int]]  # (layer, head) places in those axes, the most changed first
    strongest: tuple[np.ndarray, np.ndarray]  # [L', h'] each: the top key in A and in B, not itself or special
    # [L', h', T_a] and [L', h', T_b]: the token's rows compared, its weights (or its norms as shares of each row)
    rows: tuple[np.ndarray, np.ndarray]
    two_models: bool = False  # A and B are two checkpoints on one text, not one model on two texts

    def unpaired(self, side: int) -> list[int]:
        return [slot[side] for slot in self.slots if slot[1 - side] is None]

    def named(self, layer: int, head: int) -> tuple[int, int]:
        """The model's layer and head at places `layer` and `head` of the arrays."""
        return self.a.layers[layer], self.a.heads[head]

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The heads, the most changed first, with the token's top key in each text (its weight, or its norm's share
        of the row)."""
        value = "share" if self.a.shows_norms else "weight"
        header = ["rank", "layer", "head", "tv", "top_a_index", "top_a_token", f"top_a_{value}"]
        header += ["top_b_index", "top_b_token", f"top_b_{value}"]

        def row(rank: int, layer: int, head: int) -> list:
            top_a, top_b = (int(top[layer, head]) for top in self.strongest)
            weight_a = self.rows[0][layer, head, top_a]
            weight_b = self.rows[1][layer, head, top_b]
            side_a = [top_a, self.a.tokens[top_a].text, weight_a]
            side_b = [top_b, self.b.tokens[top_b].text, weight_b]
            return [rank, *self.named(layer, head), self.change[layer, head], *side_a, *side_b]

        return header, (row(rank, layer, head) for rank, (layer, head) in enumerate(self.ranking, start=1))

    def to_json(self) -> dict:
        return _document(
            "compare",
            texts=[self.a.text, self.b.text],
            model=self.a.model.to_json(),
            **({"models": {"a": self.a.model.to_json(), "b": self.b.model.to_json()}} if self.two_models else {}),
            **self.a.measure_json(),
            tokens={"a": _tokens_json(self.a.tokens), "b": _tokens_json(self.b.tokens)},
            token={"a": _token_ref(self.a.tokens[self.token_a]), "b": _token_ref(self.b.tokens[self.token_b])},
            alignment=[list(slot) for slot in self.slots],
            unpaired={"a": self.unpaired(0), "b": self.unpaired(1)},
            heads=[
                {
                    **dict(zip(("layer", "head"), self.named(layer, head), strict=True)),
                    "tv": float(self.change[layer, head]),
                    "a": numbers(self.rows[0][layer, head]),
                    "b": numbers(self.rows[1][layer, head]),
                }
                for layer, head in self.ranking
            ],
        )


@dataclass(eq=False, repr=False)
class CheckResult:
    """A recomputed run against a saved JSON result: how far each attention weight moved."""

    run: AttentionRun
    saved: np.ndarray  # [L, h, T, T] the saved attention (the weights, or norms where the run's measure is norms)
    tolerance: float
    max_difference: float
    worst_heads: list[tuple[int, int, float]]  # (layer, head, largest change), the largest first
    worst_cells: list[tuple[int, int, int, int]]  # (layer, head, query, key), the largest change first

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The cells that moved most, with their saved and present weights (or norms)."""
        now = self.run.attention
        rows = ([*cell, self.saved[cell], now[cell]] for cell in self.worst_cells)
        return ["layer", "head", "query", "key", "saved", "now"], rows

    def to_json(self) -> dict:
        now = self.run.attention
        return _document(
            "check",
            text=self.run.text,
            model=self.run.model.to_json(),
            **self.run.measure_json(),
            tolerance=self.tolerance,
            passed=self.passed,
            max_difference=self.max_difference,
            heads=[
                {"layer": layer, "head": head, "max_difference": difference}
                for layer, head, difference in self.worst_heads
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
                for cell in self.worst_cells
            ],
        )


@dataclass(eq=False, repr=False)
class VocabularyToken:
    """A token of the vocabulary a logit is of: its id and its piece (None where the tokenizer has none for the id,
    a row the model pads its head with)."""

    id: int
    text: str | None

    def to_json(self) -> dict:
        return {"id": self.id, "token": self.text}


@dataclass(eq=False, repr=False)
class AttributionResult:
    """Direct logit attribution at one position: what each part of the residual stream (the embeddings, each head,
    attention bias and feed-forward network, and the constant of the final norm's shift and the head's bias) adds
    to the logit of a target token there, or to its difference from another's, through the final norm with its
    scale frozen; the contributions add up to the logit."""

    text: str
    tokens: list[Token]
    model: ModelInfo
    position: int  # the token whose next-token logit is attributed
    target: VocabularyToken
    versus: VocabularyToken | None  # the logit attributed is target's less this one's
    predicted: bool  # the target is the token the model predicts there (no target was given)
    logit: float  # the head's logit of target (less versus's), before any soft cap
    components: list["Component"]  # in the model's order: embed, then each layer's heads, attn bias, mlp; bias
    contributions: np.ndarray  # [N] float64, each component's; they add up to `logit`
    soft_cap: float | None  # the head's soft cap, which the logit is taken before (it is not linear)
    totals: dict[str, float]  # the contributions summed by kind (attribution.KINDS): embed, head, attn bias, mlp, bias
    ranking: list[int]  # the heads' indices among the components, the largest contribution first

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """One row per component, in the model's order."""
        rows = zip(self.components, self.contributions, strict=True)
        return ["name", "layer", "head", "contribution"], ([c.name, c.layer, c.head, float(v)] for c, v in rows)

    def to_json(self) -> dict:
        rows = zip(self.components, numbers(self.contributions), strict=True)
        return _document(
            "attribute",
            text=self.text,
            model=self.model.to_json(),
            tokens=_tokens_json(self.tokens),
            position=_token_ref(self.tokens[self.position]),
            target=self.target.to_json(),
            versus=None if self.versus is None else self.versus.to_json(),
            predicted=self.predicted,
            logit=float(numbers(np.float64(self.logit))),
            soft_cap=self.soft_cap,
            components=[
                {"name": c.name, "layer": c.layer, "head": c.head, "contribution": float(value)} for c, value in rows
            ],
        )


@dataclass(eq=False, repr=False)
class LensResult:
    """The logit lens of a text (nostalgebraist, 2020): each layer's residual stream at each position read
    through the final norm and the unembedding, as the model reads its last; the most probable tokens of
    each. Row 0 is the embeddings, row l + 1 the stream after layer l, so the last row is the model's own
    prediction."""

    text: str
    tokens: list[Token]
    model: ModelInfo
    ids: np.ndarray  # [L + 1, T, K] the K most probable token ids at each row and position, the most probable first
    logits: np.ndarray  # [L + 1, T, K] their logits
    probabilities: np.ndarray  # [L + 1, T, K] their probabilities, softmax over the whole vocabulary
    pieces: Mapping[int, str | None]  # each id's vocabulary string (None: a row of the head past the tokenizer's)

    def window(self, selection: slice | None, parameter: str) -> range:
        """The positions `selection` (a window of them to draw; None: all) picks, refused, naming `parameter`,
        when it picks none."""
        return _window(len(self.tokens), selection, parameter)

    @staticmethod
    def layer_of(row: int) -> int | None:
        """The layer whose output row `row` is (None: row 0, the embeddings)."""
        return None if row == 0 else row - 1

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """One row per layer, position and rank: the input token there and the predicted one."""
        header = ["layer", "position", "input_token", "rank", "id", "token", "probability", "logit"]

        def row(r: int, position: int, rank: int) -> list:
            layer = self.layer_of(r)
            token_id = int(self.ids[r, position, rank])
            return [
                "embeddings" if layer is None else layer,
                position,
                self.tokens[position].text,
                rank + 1,
                token_id,
                self.pieces[token_id],
                self.probabilities[r, position, rank],
                self.logits[r, position, rank],
            ]

        return header, (row(*cell) for cell in np.ndindex(self.ids.shape))

    def to_json(self) -> dict:
        probabilities, logits = _shortest(self.probabilities), _shortest(self.logits)

        def top(r: int, position: int) -> list[dict]:
            return [
                {
                    "id": int(token_id),
                    "token": self.pieces[int(token_id)],
                    "probability": probabilities[r][position][rank],
                    "logit": logits[r][position][rank],
                }
                for rank, token_id in enumerate(self.ids[r, position])
            ]

        return _document(
            "lens",
            text=self.text,
            model=self.model.to_json(),
            tokens=_tokens_json(self.tokens),
            top=self.ids.shape[2],
            lens=[
                {"layer": self.layer_of(r), "positions": [top(r, position) for position in range(len(self.tokens))]}
                for r in range(len(self.ids))
            ],
        )


@dataclass(eq=False, repr=False)
class GenerateResult:
    """A greedy continuation: each new token the most probable next token given the text so far, and the
    whole sequence's run (prompt and continuation) with its attention."""

    run: AttentionRun  # the whole sequence: its text the prompt and the continuation, its tokens both
    prompt: str
    prompt_tokens: int  # the sequence's first tokens are the prompt's; the rest were generated
    probabilities: np.ndarray  # [N] each new token's probability when it was chosen
    stopped: str  # "end_of_sequence": a new token was one that ends a text; "max_new_tokens": it made as many as asked

    @property
    def continuation(self) -> str:
        return self.run.text[len(self.prompt) :]

    @property
    def generated(self) -> list[Token]:
        return self.run.tokens[self.prompt_tokens :]

    def csv_table(self) -> tuple[list[str], Iterable[list]]:
        """The new tokens, in order, with their probabilities."""
        rows = zip(self.generated, self.probabilities, strict=True)
        return ["index", "id", "token", "probability"], ([t.index, t.id, t.text, p] for t, p in rows)

    def to_json(self) -> dict:
        probabilities = _shortest(self.probabilities)
        return _document(
            "generate",
            **self.run.common_json(),
            prompt=self.prompt,
            prompt_tokens=self.prompt_tokens,
            continuation=self.continuation,
            generated=[
                {"index": t.index, "id": t.id, "token": t.text, "probability": p}
                for t, p in zip(self.generated, probabilities, strict=True)
            ],
            stopped=self.stopped,
        )
