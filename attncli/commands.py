"""One function per command: validated input in, a result object out. No printing.

Each function checks what it is given, runs the model, asks attncli.analysis for every
derived number and returns a plain result from attncli.results. Errors name the
parameters of these functions (see attncli.errors); the command line words them as flags.
"""

import dataclasses
import math
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from attncli import analysis
from attncli.analysis import Fusion, Measure, align, pattern_labels, row_shares, softmax_parts
from attncli.attention import EVERYTHING, AttentionTrace, Selection, inverse_frequencies, relative_position_buckets
from attncli.errors import Argument, AttncliError, BadInput, DataError, Parameter, listed, shortened
from attncli.models import Model, ModelInfo, load_model, load_saved_model
from attncli.results import (
    AttentionRun,
    AttributionResult,
    BatchRecord,
    CheckResult,
    CompareResult,
    DotResult,
    EmbedResult,
    ExplainResult,
    GenerateResult,
    HeadsResult,
    HeadTarget,
    HeatmapResult,
    InductionTest,
    LensResult,
    ModelGridResult,
    Neighbor,
    Operand,
    PositionPredictions,
    Prediction,
    PredictResult,
    QueryResult,
    RolloutResult,
    SimilarResult,
    SoftmaxResult,
    TokenizeResult,
    VocabularyToken,
)
from attncli.tokens import (
    CHARACTERS_PER_TOKEN,
    MASK_TOKENS,
    SPACE,
    WORD_START,
    Token,
    mask_token,
    matches,
    readable,
    word_spans,
)

# The reader of saved results is check's alone, the language-model head's code (attncli.transformer) the commands'
# that read a head: the other commands start without them.
if TYPE_CHECKING:
    from attncli.saved import SavedRun
    from attncli.transformer import Unembedding

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "LARGEST_NUMBER",
    "attribute",
    "batch",
    "check",
    "compare",
    "compare_models",
    "dot",
    "embed",
    "explain",
    "generate",
    "heads",
    "heatmap",
    "induction",
    "lens",
    "lens_of",
    "memory_budget",
    "model_grid",
    "parse_numbers",
    "parse_range",
    "predict",
    "query",
    "resolve_token",
    "resolve_word",
    "rollout",
    "run",
    "similar",
    "softmax",
    "sort_heads",
    "summary_fields",
    "tokenize",
    "vocabulary_token",
]

# Far beyond what a terminal view can show, small enough that the [L, h, T, T]
# tensors stay modest; the trained encoders' position tables stop at 512 too.
DEFAULT_MAX_TOKENS = 512
# The attention a forward pass keeps (scores, scaled scores and weights for every layer and head)
# may use at most this many bytes, so a long text is refused with the number instead of the
# operating system killing the process. ATTNCLI_MEMORY_BUDGET (in MB) changes it.
DEFAULT_MEMORY_BUDGET_MB = 2048
# The logit lens keeps at most this many tokens (its rows of layers × positions × the top tokens of each): about
# 400 MB of JSON.
LENS_LIMIT = 5_000_000
# Numbers typed on the command line stay below this, so that no step of
# softmax or a dot product (x - max, a_i * b_i, Σ a_i²) can overflow.
LARGEST_NUMBER = 1e100


def tokenize(text: str, model: Model, max_tokens: int = DEFAULT_MAX_TOKENS) -> TokenizeResult:
    """The tokens of `text` as `model` sees them, special tokens included."""
    return TokenizeResult(text, _tokens(text, model, max_tokens), model.info)


def embed(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> EmbedResult:
    """The bundled embedding vector of each token of `text`."""
    from attncli.bundled import sample_vocabulary

    tokens = _tokens(text, load_model(), max_tokens)
    embeddings = sample_vocabulary().embed([t.id for t in tokens])  # [T, d]
    return EmbedResult(text, tokens, embeddings, analysis.lengths(embeddings))


def run(
    text: str,
    model: Model,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    steps: bool = False,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
    streamed: bool = False,
    dtype: str | None = None,
    streamable: bool = False,
) -> AttentionRun:
    """Tokenize `text` and run `model` on it, keeping every layer's attention weights (of the `selection`'s
    layers and heads), and with `steps` every intermediate (Q, K, V, scores ...) as explain shows them. With
    `measure` norms, the run's attention is their ‖α_ij v_j W_O^h‖ (attention.weighted_value_norms), the
    weights kept too. `streamed`: for a document of the attention alone, none is kept, the pass handing it on
    a layer at a time as the document is written (the run's `stream`; `streamable`: where it could be, which the
    memory budget's message says); `dtype` is how documents write it."""
    tokens = _tokens(text, model, max_tokens)
    return _run(text, tokens, model, steps, _measure(measure), selection, streamed, dtype, streamable)


def _run(
    text: str,
    tokens: list[Token],
    model: Model,
    steps: bool = False,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
    streamed: bool = False,
    dtype: str | None = None,
    streamable: bool = False,
) -> AttentionRun:
    """Run `model` on the `tokens` of `text` (see `run`), refused where their attention would pass the memory
    budget (`streamable`: where it is, the message says a document could be written a layer at a time)."""
    norms = measure == Measure.norms
    _check_memory(model.info, len(tokens), steps, norms, selection, streamed, streamable)
    if not streamed:
        trace = model.run(tokens, steps, value_norms=norms, selection=selection)
        return AttentionRun(text, tokens, model.info, trace, measure.value, selection, dtype=dtype)
    from attncli.streamed import LayerStream  # here: only documents of the attention alone are streamed

    info = model.info
    shape = (len(selection.kept_layers(info.layers)), len(selection.kept_heads(info.heads)), len(tokens), len(tokens))

    def forward(hand_on) -> None:
        model.run(tokens, False, value_norms=norms, selection=selection, on_attention=hand_on)

    layer = (info.heads + shape[1]) * shape[2] * shape[3] * info.itemsize  # a layer's scores, and the heads kept
    stream = LayerStream(shape, forward, norms, ahead=4 * layer <= memory_budget())  # 2 layers: at most half of it
    return AttentionRun(text, tokens, info, None, measure.value, selection, stream, dtype)


def selection(info: ModelInfo, layers: str | None = None, heads: str | None = None) -> Selection:
    """The layers and heads `layers` and `heads` name (see parse_range), in order; everything where neither does."""
    if layers is None and heads is None:
        return EVERYTHING
    return Selection(
        None if layers is None else tuple(sorted(parse_range(layers, info.layers, "layers"))),
        None if heads is None else tuple(sorted(parse_range(heads, info.heads, "kept_heads"))),
    )


def compared_selection(infos: list[ModelInfo], layers: str | None = None, heads: str | None = None) -> Selection:
    """The `selection` `layers` and `heads` name of the model compared, or of two checkpoints, which must be of one
    shape (refused first, as compare_models refuses them: the selection is then of both)."""
    if len(infos) == 2:
        _check_one_shape(*infos)
    return selection(infos[0], layers, heads)


def _measure(measure: str) -> Measure:
    """`measure` as a Measure, refused by name where it is none."""
    if measure not in tuple(Measure):
        raise BadInput("{measure} {value!r}: use one of {choices}", value=measure, choices=", ".join(Measure))
    return Measure(measure)


def memory_budget() -> int:
    """The attention memory budget in bytes: ATTNCLI_MEMORY_BUDGET megabytes, else the default."""
    setting = os.environ.get("ATTNCLI_MEMORY_BUDGET", "")
    if not setting:
        return DEFAULT_MEMORY_BUDGET_MB * 2**20
    try:
        megabytes = float(setting)
    except ValueError:
        megabytes = -1.0
    if not 0 < megabytes < 2**40:
        raise BadInput(f"ATTNCLI_MEMORY_BUDGET={setting!r}: give a number of megabytes, e.g. 2048")
    return int(megabytes * 2**20)


def _check_memory(
    info: ModelInfo,
    tokens: int,
    steps: bool,
    norms: bool = False,
    selection: Selection = EVERYTHING,
    streamed: bool = False,
    streamable: bool = False,
) -> None:
    """Refuse, with the figure and a selection of layers that would fit, a run whose attention tensors would
    pass the memory budget (and, where a document of its attention could be written a layer at a time,
    `streamable`, say so)."""
    square = tokens * tokens * info.itemsize  # one head's [T, T]
    layers, heads = len(selection.kept_layers(info.layers)), len(selection.kept_heads(info.heads))
    in_flight = info.heads * square  # a layer's scores, turned into its weights in place, as it runs
    kept_layer = heads * square * (2 if norms else 1)  # a kept layer's weights (with norms, its norms too)
    handed = 0 if selection.heads is None else kept_layer  # streamed: the kept heads' copy, besides the layer
    kept = handed if streamed else layers * kept_layer
    runs = selection.runs(info.layers)
    # with steps, every layer's scores, scaled scores and weights (of every layer run), plus the stacked weights
    needed = 4 * runs * info.heads * square if steps else in_flight + kept
    budget = memory_budget()
    if needed <= budget:
        return
    if streamed:
        fit = 0
    elif steps:  # every head's steps of every layer up to the last kept: fewer layers from the first alone help
        fit = budget // (4 * info.heads * square)
    else:
        fit = (budget - in_flight) // kept_layer
    needed, budget = round(needed / 2**20), round(budget / 2**20)
    first = 0 if steps else selection.kept_layers(info.layers)[0]  # steps: every layer's from the first is run
    shape, word = f"{layers} layers × {heads} heads × {tokens}²", "layer" if fit == 1 else "layers"
    if steps:  # every step of every head of every layer run
        shape = f"{runs} {'layer' if runs == 1 else 'layers'} × {info.heads} heads × {tokens}²"
    if fit >= 1:
        raise BadInput(
            "{tokens} tokens would need {needed:,} MB of attention tensors ({shape}), over the budget of {budget:,} "
            "MB; "
            + ("the steps are kept for every head of every layer up to the last kept: " if steps else "")
            + "keep {fit} {layer_word} with {layers} {first}:{end}"
            + ("" if steps else " (or fewer heads with {heads})")
            + ", "
            # heatmap's documents can be written a layer at a time
            + ("write them to a file a layer at a time with {format} npz, " if streamable else "")
            + "or raise ATTNCLI_MEMORY_BUDGET (MB)",
            tokens=tokens,
            needed=needed,
            budget=budget,
            fit=fit,
            layer_word=word,
            first=first,
            end=first + fit,
            shape=shape,
            layers=Parameter("layers"),
            heads=Parameter("kept_heads"),
            format=Parameter("format"),
        )
    if streamed:  # every head of the one layer in flight
        shape = f"a layer of {info.heads} heads × {tokens}²"
    raise BadInput(
        "{tokens} tokens would need {needed:,} MB of attention tensors ({shape}), over the budget of {budget:,} MB; "
        "shorten the text or raise ATTNCLI_MEMORY_BUDGET (MB)",
        tokens=tokens,
        needed=needed,
        budget=budget,
        shape=shape,
    )


def heatmap(
    text: str,
    model: Model,
    layer: int | None = None,
    head: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
    streamed: bool = False,
    dtype: str | None = None,
) -> HeatmapResult:
    """Every head's attention weights (or, with `measure` norms, their ‖α v W_O‖), of the `selection`'s layers and
    heads; the view draws `layer` (the first kept, if None; and only `head`, if given). `streamed` and `dtype`:
    see `run`."""
    layer = selection.kept_layers(model.info.layers)[0] if layer is None else layer
    _check_layer_and_head(model.info, layer, head, selection)
    result = run(text, model, max_tokens, False, measure, selection, streamed, dtype, streamable=True)
    return HeatmapResult(result, layer, head)


def explain(
    text: str,
    model: Model,
    focus: str | None = None,
    layer: int | None = None,
    head: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    steps: bool = True,
    include_special: bool = False,
    selection: Selection = EVERYTHING,
) -> ExplainResult:
    """The walkthrough of `layer` (the first the `selection` keeps, if None) for the token named by `focus` (see
    `resolve_token`), in `head` (the first kept, if None). The attention and its summary are of the `selection`'s
    layers and heads, which `layer` and `head` must be among; the steps, of its layers, every head of each (the pass
    stops after the last). Without `steps`, only the attention and its summary are kept: enough for JSON without
    steps, not for the view.
    The summary's targets leave out special tokens and a causal model's first token (see
    analysis.sinks) unless `include_special`."""
    layer = selection.kept_layers(model.info.layers)[0] if layer is None else layer
    _check_layer_and_head(model.info, layer, head, selection)
    result = run(text, model, max_tokens, steps, selection=selection)
    index = _focus(result.tokens, text, focus)
    mask = model.info.mask(layer, len(result.tokens))
    keys = np.arange(len(result.tokens)) if mask is None else np.flatnonzero(mask[index])  # [keys] the focus sees
    weights = result.layer(layer)  # [h', T, T]
    excluded = None if include_special else analysis.sinks(result.special, model.info.causal)
    focus_steps = focus_top = weighted = angles = clipped = projection_rms = biases = feed_forward = None
    relative = buckets = None
    rope = model.info.layer_attention[layer].rope
    if steps and rope is not None:
        angles = index * inverse_frequencies(rope, len(result.tokens))  # [n/2] each dimension pair's turn at the focus
    if steps:
        walk_head = result.one_head(head)
        attention = result.trace.layers[layer]
        if not model.info.sample and model.info.parallel:  # output = input + attention + feed-forward
            layer_input, layer_output = result.trace.layer_inputs[layer], result.trace.layer_outputs[layer]
            feed_forward = layer_output[index] - layer_input[index] - attention.output[index]  # [d]
        scaled = attention.scaled[walk_head, index, keys]  # [keys]
        if attention.sinks is not None:  # the head's sink logit joins the row as one more, last
            scaled = np.append(scaled, attention.sinks[walk_head])  # [keys + 1]
        focus_steps = SoftmaxResult(scaled, *softmax_parts(scaled))
        focus_top = int(keys[np.argmax(focus_steps.probabilities[: len(keys)])])
        row = attention.weights[walk_head, index, keys]  # [keys]
        weighted = analysis.weighted_values(row, attention.v[attention.key_head(walk_head), keys])  # [keys, d_k]
        clipped, projection_rms = _projection_changes(model.info, attention, index, walk_head)
        if attention.alibi is not None:  # each key's bias less the focus token's own, as attention added them
            biases = attention.alibi[walk_head, keys] - attention.alibi[walk_head, index]  # [keys]
        if result.trace.relative_positions is not None:  # disentangled: the relative position each key's terms read
            relative = result.trace.relative_positions[index, keys]  # [keys]
        if attention.position_bias is not None:  # a relative position bias: each key's bucket, and its bias
            buckets = relative_position_buckets(len(result.tokens), model.info.relative_bias)  # [T, T]
            biases = attention.position_bias[walk_head, index, keys]  # [keys]
    return ExplainResult(
        result,
        index,
        layer,
        head,
        keys,
        analysis.strongest_keys(weights, excluded),
        analysis.strongest_keys(weights.mean(axis=0), excluded),
        focus_steps,
        focus_top,
        weighted,
        include_special,
        angles,
        clipped,
        projection_rms,
        biases,
        feed_forward,
        relative,
        buckets,
    )


def _projection_changes(
    info: ModelInfo, attention: AttentionTrace, index: int, head: int
) -> tuple[tuple[int, int, int] | None, tuple[float, float, float] | None]:
    """What clip_qkv and norms over the whole projections did in a layer, where the model has them: how
    many numbers of q, k and v were clamped, and what the focus token's whole q projection, `head`'s
    part of it alone, and its whole k projection are divided by (see ExplainResult)."""
    clipped = projection_rms = None
    if info.clip_qkv is not None:
        clipped = tuple(analysis.at_bound(part, info.clip_qkv) for part in (attention.q, attention.k, attention.v))
    if info.whole_qk_norm:
        q, k, _ = attention.projected  # [T, h·d_k], [T, g·d_k]
        d_k, eps = info.d_head, info.eps
        own = q[index, head * d_k : (head + 1) * d_k]  # [d_k]
        projection_rms = tuple(analysis.rms_divisor(part, eps) for part in (q[index], own, k[index]))
    return clipped, projection_rms


def _focus(tokens: list[Token], text: str, focus: str | None) -> int:
    """The token `focus` names; without one, the last token that is not a special token: it sees
    every other token, with or without a causal mask."""
    if focus is not None:
        return resolve_token(tokens, focus, "focus", text)
    ordinary = [t.index for t in tokens if not t.special]
    return ordinary[-1] if ordinary else len(tokens) - 1


def resolve_token(tokens: list[Token], spec: str, parameter: str, text: str) -> int:
    """The index of the one token `spec` names (see `resolve_word`); a word of `text` split into
    several tokens is refused, naming them."""
    span = resolve_word(tokens, text, spec, parameter)
    if len(span) > 1:
        raise _split_word(tokens, spec, parameter, [span])
    return span[0]


def resolve_word(tokens: list[Token], text: str, spec: str, parameter: str) -> list[int]:
    """The indices of the tokens `spec` names: digits are an index; anything else a token that occurs
    once (ignoring case and word-piece marks), or else a word of `text` that occurs once and was split
    into several tokens (see tokens.word_spans). Errors name the `parameter` that gave `spec`."""
    word = spec.strip()
    if re.fullmatch(r"[0-9]+", word):
        if len(word) > 9 or int(word) >= len(tokens):  # no text has a billion tokens
            raise BadInput(
                "{option} {index} is out of range; the text has tokens 0 to {last}",
                option=Parameter(parameter),
                index=shortened(word),
                last=len(tokens) - 1,
            )
        return [int(word)]
    found = [t.index for t in tokens if matches(t.text, word)]
    spans = [] if found else word_spans(tokens, text, word)
    if len(spans) == 1:
        return spans[0]
    if spans:
        raise _split_word(tokens, spec, parameter, spans)
    if not found:
        listing = " ".join(f"{t.index}:{t.text}" for t in tokens)
        raise BadInput(
            "{option} {spec!r} is not a token of the text; give one of {listing}, or its index",
            option=Parameter(parameter),
            spec=spec,
            listing=listing,
        )
    if len(found) > 1:
        raise BadInput(
            "{option} {spec!r} occurs at {where}; give the index instead, e.g. {option} {last}",
            option=Parameter(parameter),
            spec=spec,
            where=", ".join(str(i) for i in found),
            last=found[-1],
        )
    return found


def _tokens_phrase(span: list[int]) -> str:
    """'token 8', or 'tokens 8 to 9' for a split word."""
    return f"token {span[0]}" if len(span) == 1 else f"tokens {span[0]} to {span[-1]}"


def _split_word(tokens: list[Token], spec: str, parameter: str, spans: list[list[int]]) -> BadInput:
    """The error for a word that cannot be one token: it was split, at each of `spans`."""
    return BadInput(
        "{option} {spec!r} is split into tokens {where}; name one token by its index",
        option=Parameter(parameter),
        spec=spec,
        where=" and ".join(f"{s[0]} to {s[-1]} ({' '.join(tokens[i].text for i in s)})" for s in spans),
    )


def query(
    text: str,
    model: Model,
    token: str,
    include_special: bool = False,
    to: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> QueryResult:
    """What the token named by `token` attends to in every head (of the `selection`'s layers and heads), heads
    ranked by their top weight, or by the weight on the token named by `to`; with `measure` norms, by their
    ‖α v W_O‖ instead.

    Either may name a word split into several tokens: a word's query row is the mean of its tokens'
    rows (still weights that sum to what each row does), and the weight on a word is the sum of the weights on its
    tokens, as Clark et al. (2019) combine a split word's attention.
    """
    result = run(text, model, max_tokens, measure=measure, selection=selection)
    span = resolve_word(result.tokens, text, token, "token")
    target = None if to is None else resolve_word(result.tokens, text, to, "to")
    return query_run(result, span, include_special, target, token, to)


def query_run(
    result: AttentionRun,
    span: list[int],
    include_special: bool = False,
    target: list[int] | None = None,
    token: str | None = None,
    to: str | None = None,
) -> QueryResult:
    """What the tokens `span` of a run attend to in every head (see `query`); `token` and `to` are
    how the query and target were named, for messages (default: their indices)."""
    token = token or str(span[0])
    to = to or (target and str(target[0]))
    causal = result.model.causal
    sinks = analysis.sinks(result.special, causal)
    allowed = analysis.candidate_keys(sinks, span, include_special)
    if not allowed.any() and sinks.any() and not include_special:
        raise BadInput(
            "{token} {spec!r} has no other token to attend to; give a longer text, or {include_special}", spec=token
        )
    if not allowed.any():
        raise BadInput("{token} {spec!r} has no other token to attend to; give a longer text", spec=token)
    if causal and not allowed[: span[-1]].any():
        raise BadInput("{token} {spec!r} sees no earlier token under the causal mask; choose a later token", spec=token)
    if causal and target is not None and target[0] > span[-1]:
        raise BadInput(
            "{to} {spec!r} ({target}) comes after {token} {query!r} ({index}); the causal mask hides it",
            spec=to,
            query=token,
            target=_tokens_phrase(target),
            index=_tokens_phrase(span),
        )
    rows = result.attention[:, :, span, :].mean(axis=2)  # [L', h', T]
    ranking = [  # each head by the model's layer and head
        HeadTarget(result.layers[layer], result.heads[head], rows[layer, head], top, float(rows[layer, head, top]))
        for layer, head, top in analysis.ranked_targets(rows, allowed, target)
    ]
    return QueryResult(result, span, include_special, target, allowed, ranking)


def parse_range(spec: str | None, count: int, parameter: str) -> list[int]:
    """Indices from a spec such as "0-2,5" (0-based, inclusive) or "A:B" (Python's slice of the `count`: from A
    up to, not including, B; either may be left out, or count from the end when negative), all `count` of them
    when None. Errors name the `parameter` that gave `spec`."""
    if spec is None:
        return list(range(count))
    sliced = re.fullmatch(r"\s*(-?[0-9]{1,9})?\s*:\s*(-?[0-9]{1,9})?\s*", spec)
    if sliced:
        chosen = list(range(count)[slice(*(None if end is None else int(end) for end in sliced.groups()))])
        if not chosen:
            raise BadInput(
                "{option} {spec} picks none of the model's {count} (numbered 0 to {last})",
                option=Parameter(parameter),
                spec=repr(shortened(spec)),
                count=count,
                last=count - 1,
            )
        return chosen
    chosen = []
    for part in spec.split(","):
        found = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if not found:
            raise BadInput(
                "{option} {spec}: give a slice such as 2:6, or indices and ranges such as 0-2,5",
                option=Parameter(parameter),
                spec=repr(shortened(spec)),
            )
        if max(len(found[1]), len(found[2] or "")) > 9:  # no model has a billion layers or heads
            first, last = 0, count
        else:
            first, last = int(found[1]), int(found[2] or found[1])
        if first > last or last >= count:
            raise BadInput(
                "{option} {spec}: the model has {count}, numbered 0 to {last}",
                option=Parameter(parameter),
                spec=repr(shortened(spec)),
                count=count,
                last=count - 1,
            )
        chosen += [i for i in range(first, last + 1) if i not in chosen]
    return chosen


def model_grid(
    text: str,
    model: Model,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
    dtype: str | None = None,
) -> ModelGridResult:
    """Every head of every layer of the `selection` (its weights, or with `measure` norms their ‖α v W_O‖)."""
    return ModelGridResult(run(text, model, max_tokens, False, measure, selection, dtype=dtype))


def heads(
    text: str,
    model: Model,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> HeadsResult:
    """Per-head statistics and pattern labels of `text` (NaN where a statistic does not apply, such
    as the [SEP] share of a model without [SEP]), of the `selection`'s layers and heads; over a corpus, see
    attncli.corpus.heads. With `measure` norms, the statistics are of each row's ‖α v W_O‖ as shares of the
    row's sum (analysis.row_shares)."""
    return _heads_of(run(text, model, max_tokens, measure=measure, selection=selection), text)


def _heads_of(
    result: AttentionRun, text: str | None = None, induction_test: InductionTest | None = None
) -> HeadsResult:
    """heads' result of one run: its statistics, {name: [L, h]} (see analysis.text_statistics), of its weights
    or, where the run shows norms, of its norms as shares of each row; `text` or `induction_test` as heads_result
    takes them."""
    sums = analysis.StatisticSums()
    sums.add(_statistics(result.attention, result.tokens, result.model, result.shows_norms, result.layers))
    return heads_result(result.model, sums, text, induction_test, result.measure, result.selection)


def _statistics(
    values: np.ndarray, tokens: list[Token], info: ModelInfo, norms: bool = False, layers: tuple[int, ...] | None = None
) -> dict[str, np.ndarray]:
    """The statistics of one text's weights [L, h, T, T] (of the model's `layers`, where they are some), or of its
    ‖α v W_O‖ norms (`norms`) as shares of each row: a learned sink's share of a row is then none, as a sink adds
    nothing to a head's output."""
    count = len(tokens)
    layers = range(info.layers) if layers is None else layers
    if info.windows is None:  # one mask for every layer
        masks = [info.mask(0, count)] * len(layers)
    else:
        masks = [info.mask(layer, count) for layer in layers]
    special = np.array([t.special for t in tokens], dtype=bool)
    weights, sinks = (row_shares(values), False) if norms else (values, info.sinks)
    ids = np.array([t.id for t in tokens])
    return analysis.text_statistics(weights, special, [t.text for t in tokens], info.causal, masks, sinks, ids=ids)


# Tokens of one packed forward pass (see transformer.forward_packed): enough for BLAS to run at
# speed, few enough that the texts' attention weights stay small.
PACK_TOKENS = 2048


def statistics_of_many(
    texts: list[str],
    model: Model,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> list[dict[str, np.ndarray] | AttncliError]:
    """Each text's head statistics (as heads computes them for one text, to float32 rounding; of the
    `selection`'s layers and heads), or the error it gave; the texts run packed together, up to PACK_TOKENS
    tokens a forward pass."""
    layers = selection.kept_layers(model.info.layers)
    norms = _measure(measure) == Measure.norms
    results: list = [None] * len(texts)
    packs, pack, size = [], [], 0
    for index, text in enumerate(texts):
        try:
            tokens = _tokens(text, model, max_tokens)
            _check_memory(model.info, len(tokens), False, norms, selection)
        except AttncliError as error:
            results[index] = error
            continue
        if pack and size + len(tokens) > PACK_TOKENS:
            packs.append(pack)
            pack, size = [], 0
        pack.append((index, tokens))
        size += len(tokens)
    packs += [pack] if pack else []
    for pack in packs:
        try:
            attention = model.run_many([tokens for _, tokens in pack], norms=norms, selection=selection)
        except AttncliError as error:
            if len(pack) == 1:
                results[pack[0][0]] = error
            else:  # one at a time: each text's own error, or its numbers
                packs += [[entry] for entry in pack]
            continue
        for (index, tokens), values in zip(pack, attention, strict=True):
            results[index] = _statistics(values, tokens, model.info, norms, layers)  # [L', h', T, T] each
    return results


def heads_result(
    info: ModelInfo,
    sums: analysis.StatisticSums,
    text: str | None = None,
    induction_test: InductionTest | None = None,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> HeadsResult:
    """The statistics' means over the texts `sums` holds (of `measure`; of the `selection`'s layers and heads),
    and each head's pattern; `text`: the one text, or `induction_test`: the tokens run instead."""
    if not sums.texts:
        raise BadInput("no text could be read: every line failed")
    statistics = sums.means()
    labels = pattern_labels(statistics)
    measure = Measure(measure).value
    return HeadsResult(
        info, sums.texts, text, statistics, labels, sums, induction_test, measure=measure, selection=selection
    )


# The induction test (heads on random tokens repeated): this many random tokens, then the same again (TransformerLens's
# tutorials repeat 50), drawn by numpy's default_rng from this seed unless told.
INDUCTION_LENGTH = 50
INDUCTION_SEED = 0


def induction(
    model: Model,
    seed: int = INDUCTION_SEED,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> HeadsResult:
    """heads on the induction test instead of a text: INDUCTION_LENGTH ids of the model's vocabulary, no
    special token and none twice, drawn by numpy's default_rng(`seed`), then the same ids again, between the
    special tokens its tokenizer puts around a text. The rows of the second copy, and they alone, have a
    duplicate and an induction key, so the duplicate and induction scores are theirs. Fewer ids where the
    vocabulary, the model's length or `max_tokens` hold fewer."""
    if not 0 <= seed < 2**63:  # what default_rng takes, and JSON readers' integers hold
        raise BadInput("{seed} {value}: use a seed from 0 to 2**63 - 1", value=shortened(seed))
    ordinary = model.ordinary_ids()
    added = len(model.tokens_of([]))
    room = min(max_tokens, model.info.max_length or max_tokens) - added
    length = min(INDUCTION_LENGTH, len(ordinary), room // 2)
    if length < 2:
        raise BadInput(
            "the induction test needs at least {needed} tokens (two random ones, twice, and {added} special); "
            "raise {max_tokens}",
            needed=4 + added,
            added=added,
        )
    drawn = [int(i) for i in np.random.default_rng(seed).choice(ordinary, size=length, replace=False)]
    run = _run("", model.tokens_of(drawn + drawn), model, measure=_measure(measure), selection=selection)
    return _heads_of(run, induction_test=InductionTest(seed, length, run.tokens))


def sort_heads(result: HeadsResult, column: str | None) -> HeadsResult:
    """`result` with its heads ordered by `column` (one of analysis.HEAD_COLUMNS): a statistic the largest
    first, NaN last; layer, head and pattern (in analysis.PATTERNS' order) the smallest first; ties in layer
    order. None: layer order."""
    if column is None:
        return result
    if column not in analysis.HEAD_COLUMNS:
        columns = ", ".join(analysis.HEAD_COLUMNS)
        raise BadInput(
            "{sort} {value!r} is not a column of heads; give one of {columns}", value=column, columns=columns
        )
    layers, heads = np.indices(result.labels.shape)  # [L, h] each
    places = {
        "layer": layers,
        "head": heads,
        "pattern": np.vectorize(analysis.PATTERNS.index, otypes=[int])(result.labels),
    }
    if column in places:
        order = analysis.sorted_heads(places[column], descending=False)
    else:
        order = analysis.sorted_heads(result.statistics[column], descending=True)
    return dataclasses.replace(result, sort=column, order=order)


def rollout(
    text: str,
    model: Model,
    fusion: Fusion = Fusion.mean,
    token: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    include_special: bool = False,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> RolloutResult:
    """Attention rollout through every layer (the `selection`'s alone, in order, its heads alone fused), heads fused
    by `fusion`; `token` picks a row to list, its sources ranked without special tokens and a causal model's first
    token (analysis.sinks) unless `include_special`. With `measure` norms, each head's ‖α v W_O‖ as shares of each
    row (analysis.row_shares) take the place of its weights."""
    if fusion not in tuple(Fusion):
        choices = ", ".join(Fusion)
        raise BadInput("{fusion} {value!r}: use one of {choices}", value=fusion, choices=choices)
    fusion = Fusion(fusion)
    result = run(text, model, max_tokens, measure=measure, selection=selection)
    index = None if token is None else resolve_token(result.tokens, token, "token", text)
    attention = row_shares(result.attention) if result.shows_norms else result.weights  # [L', h', T, T]
    products = analysis.rollout(attention, fusion)  # [L', T, T]
    sources = left_out = None
    if index is not None:
        sinks = (
            np.zeros(len(result.tokens), bool) if include_special else analysis.sinks(result.special, model.info.causal)
        )
        ranked = analysis.ranked(products[-1, index])
        sources, left_out = [k for k in ranked if not sinks[k]], [k for k in ranked if sinks[k]]
    return RolloutResult(result, fusion.value, products, index, sources, left_out)


def lens(text: str, model: Model, top: int = 1, max_tokens: int = DEFAULT_MAX_TOKENS) -> LensResult:
    """The logit lens of `text` (see lens_of)."""
    return lens_of(text, _tokens(text, model, max_tokens), model, top)


def lens_of(text: str, tokens: list[Token], model: Model, top: int = 1) -> LensResult:
    """The logit lens (nostalgebraist, 2020) of `tokens`, the tokens of `text`: each layer's residual stream at
    each position (the embeddings' first) through the final norm and the unembedding, as the model reads its
    last, and the `top` most probable tokens of each. The logits are made a block of the vocabulary at a time
    for every row at once, each block reduced to its top tokens and a running softmax sum (analysis.top_tokens),
    so the [L + 1, T, vocab] logits are never held, and a head read from disk is read once."""
    from attncli.transformer import logit_blocks  # here: the other commands never make logits

    _check_top(top)
    unembedding = model.unembedding  # before the forward pass: a model without a head is refused at once
    k = min(top, unembedding.vocab_size)
    kept = (model.info.layers + 1) * len(tokens) * k
    if kept > LENS_LIMIT:
        raise BadInput(
            "{top} {value} over {rows} rows of layers and {count} tokens would keep {kept:,} tokens (the limit is "
            "{limit:,}); give a smaller {top} or a shorter text",
            value=top,
            rows=model.info.layers + 1,
            count=len(tokens),
            kept=kept,
            limit=LENS_LIMIT,
        )
    _check_memory(model.info, len(tokens), False)
    streams = model.run(tokens, keep_steps=False, head_inputs=True).head_inputs  # [L + 1, T, d_h]
    rows = streams.reshape(-1, streams.shape[-1])  # [(L + 1)·T, d_h]
    ids, logits, probabilities = analysis.top_tokens(logit_blocks(rows, unembedding), k)  # [(L + 1)·T, k] each
    shape = (*streams.shape[:2], k)
    pieces = {int(i): model.tokenizer.id_to_token(int(i)) for i in np.unique(ids)}
    return LensResult(
        text, tokens, model.info, ids.reshape(shape), logits.reshape(shape), probabilities.reshape(shape), pieces
    )


def _check_room(prompt: int, new: int, max_tokens: int, info: ModelInfo) -> None:
    """Refuse a continuation of `new` tokens that would take a prompt of `prompt` tokens past `max_tokens`
    or the model's length, before any work."""
    limit = min(max_tokens, info.max_length)
    if prompt + new <= limit:
        return
    room, name = limit - prompt, info.name
    if limit < info.max_length and prompt < limit:
        raise BadInput(
            "the prompt is {count} tokens, so {max_new_tokens} {new} would pass the limit of {limit}; give "
            "{max_new_tokens} {room} or fewer, or raise {max_tokens}",
            count=prompt,
            new=new,
            limit=limit,
            room=room,
        )
    if limit < info.max_length:
        raise BadInput("the prompt is {count} tokens, the limit: no new token fits; raise {max_tokens}", count=prompt)
    if prompt < limit:
        raise BadInput(
            "the prompt is {count} tokens, so {max_new_tokens} {new} would pass the {limit} tokens {name} reads; "
            "give {max_new_tokens} {room} or fewer",
            count=prompt,
            new=new,
            limit=limit,
            name=name,
            room=room,
        )
    raise BadInput(
        "the prompt is {count} tokens, the most {name} reads: no new token fits; shorten it", count=prompt, name=name
    )


def _check_top(top: int) -> None:
    """Refuse a `top` that asks for no tokens (predict's, lens's)."""
    if top < 1:
        raise BadInput("{top} {value} asks for no tokens; use {top} 1 or more", value=top)


def generate(
    text: str,
    model: Model,
    max_new_tokens: int = 20,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    value_norms: bool = False,
    on_token: Callable[[int, int], None] | None = None,
    selection: Selection = EVERYTHING,
) -> GenerateResult:
    """A greedy continuation of `text`: at each step the forward pass over the text so far (no cache of keys and
    values: each step recomputes every earlier position), and its most probable next token appended, as its
    id (the continuation is never tokenized again), until `max_new_tokens` or a token that ends a text (the
    model's end of sequence); then the whole sequence's run, for its attention (with `value_norms`, its
    ‖v_j W_O^h‖ too, for a view that switches to the norms): of the `selection`'s layers and heads, that pass
    stopping after the last (each step's runs every layer, for the logits, and keeps no attention). With
    `on_token`, on_token(n, max_new_tokens) before the step that chooses the n-th new token (how a caller shows the
    steps' progress)."""
    from attncli.transformer import logit_blocks  # here: the other commands never make logits

    if max_new_tokens < 1:
        raise BadInput("{max_new_tokens} {value} asks for no tokens; use 1 or more", value=max_new_tokens)
    if not model.info.causal:
        raise BadInput(
            "{model} {name} is an encoder: it sees the whole text at once and predicts no next token; generate "
            "needs a decoder",
            name=model.info.name,
        )
    unembedding = model.unembedding
    prompt = _tokens(text, model, max_tokens)
    _check_room(len(prompt), max_new_tokens, max_tokens, model.info)
    _check_memory(model.info, len(prompt) + max_new_tokens, False, selection=selection)
    sequence, probabilities, stopped = list(prompt), [], "max_new_tokens"
    ends = model.end_of_sequence
    while len(sequence) - len(prompt) < max_new_tokens:
        if on_token is not None:
            on_token(len(sequence) - len(prompt) + 1, max_new_tokens)
        # [1, d_h] what the head reads at the last position; no attention kept (the memory budget counts the last run's)
        last = model.run(sequence, keep_steps=False, on_attention=_dropped).output[-1:]
        (token_id,), _, (probability,) = (part[0] for part in analysis.top_tokens(logit_blocks(last, unembedding), 1))
        sequence.append(Token(len(sequence), int(token_id), "", 0, 0))  # its text and place: model.extend, below
        probabilities.append(probability)
        if int(token_id) in ends:
            stopped = "end_of_sequence"
            break
    whole, tokens = model.extend(text, prompt, [t.id for t in sequence[len(prompt) :]])
    trace = model.run(tokens, keep_steps=False, value_norms=value_norms, selection=selection)
    result = AttentionRun(whole, tokens, model.info, trace, selection=selection)
    return GenerateResult(result, text, len(prompt), np.array(probabilities, dtype=np.float32), stopped)


def _dropped(layer: int, weights: np.ndarray, norms: np.ndarray | None) -> None:
    """Keep none of a layer's attention (an on_attention of Model.run): a pass run for its output alone."""


def batch(
    lines: list[tuple[int, str]],
    model: Model,
    steps: bool = False,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    summary: bool = False,
    selection: Selection = EVERYTHING,
):
    """One `BatchRecord` per (line number, text): the fields of its explain document (its steps only
    with `steps`; its attention and steps of the `selection`'s layers and heads, its summary of the first of them),
    or with `summary` its heads statistics (of the selection's too) instead of any attention (summary_fields); or
    the error of a text that fails. A generator, so records can be written as they come."""
    layer = selection.kept_layers(model.info.layers)[0]
    for number, text in lines:
        try:
            if summary:
                fields = summary_fields(text, model, max_tokens, selection)
            else:
                kept = explain(text, model, layer=layer, max_tokens=max_tokens, steps=steps, selection=selection)
                fields = kept.fields(steps)
        except AttncliError as error:
            yield BatchRecord(number, error=error)
            continue
        yield BatchRecord(number, fields=fields)


def summary_fields(
    text: str, model: Model, max_tokens: int = DEFAULT_MAX_TOKENS, selection: Selection = EVERYTHING
) -> dict:
    """The fields of batch's summary of a text: the text, model and tokens, and its `statistics`, each of heads'
    per-head fields by head (HeadsResult.by_head_json), computed as heads computes them for one text (of the
    `selection`'s layers and heads, which the fields then name); no attention."""
    result = run(text, model, max_tokens, selection=selection)
    statistics = _heads_of(result, text).by_head_json()
    return {**result.header_json(), **result.selection_json(), "statistics": statistics}


def check(
    text: str | None,
    saved_run: "SavedRun",
    tolerance: float = 1e-5,
    source: str = "the saved run",
    shown: Callable[[Model], Model] | None = None,
) -> CheckResult:
    """Recompute `text` (None: the text `saved_run` holds) with the model and options it names, and
    compare the attention (its weights, or the norms of a saved run of norms). `shown`, where given, wraps
    the model loaded (the command line's shows the layers of its pass)."""
    if not tolerance >= 0:  # NaN too: no weight would ever count as moved
        raise BadInput("{tolerance} {value} is not a number of 0 or more; give one", value=tolerance)
    text = saved_run.text if text is None else text
    if saved_run.text != text:
        raise BadInput(
            "{source} is for the text {saved!r}, not {text!r}", source=source, saved=saved_run.text, text=text
        )
    model = load_saved_model(saved_run.model, source)
    selection = saved_run.selection
    if not selection.fits(model.info.layers, model.info.heads):
        raise BadInput("{source} keeps layers or heads its model does not have", source=source)
    result = run(text, model if shown is None else shown(model), measure=saved_run.measure, selection=selection)
    if result.weights.shape != saved_run.attention.shape:
        raise BadInput(
            "{source} has attention of shape {saved}, but the model now gives {now}",
            source=source,
            saved=saved_run.attention.shape,
            now=result.weights.shape,
        )
    attention = saved_run.attention.astype(result.weights.dtype, copy=False)
    return CheckResult(result, attention, tolerance, *analysis.weight_changes(result.attention, attention))


def compare(
    text_a: str,
    text_b: str,
    model: Model,
    token: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> CompareResult:
    """How the attention of `token` changes from `text_a` to `text_b`, head by head (with `measure` norms, its
    ‖α v W_O‖ as shares of its row, see _token_rows), of the `selection`'s layers and heads.

    `token` names a token of `text_a` (an index, or a text that occurs once); its partner in
    `text_b` is the token the alignment pairs it with.
    """
    runs = (run(text, model, max_tokens, measure=measure, selection=selection) for text in (text_a, text_b))
    return _compared(*runs, token)


def compare_models(
    text: str,
    model_a: Model,
    model_b: Model,
    token: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    measure: Measure = Measure.weights,
    selection: Selection = EVERYTHING,
) -> CompareResult:
    """How the attention of `token` (a token of `text`, see `resolve_token`) changes from checkpoint `model_a`
    to `model_b`, head by head, as `compare` measures it between two texts (of `measure`; of the `selection`'s
    layers and heads). The two must tokenize `text` alike and have as many layers and heads."""
    measure = _measure(measure)
    first, second = model_a.info, model_b.info
    _check_one_shape(first, second)
    tokens_a, tokens_b = _tokens(text, model_a, max_tokens), _tokens(text, model_b, max_tokens)
    ids_a, ids_b = [t.id for t in tokens_a], [t.id for t in tokens_b]
    if ids_a != ids_b:
        shorter = min(len(ids_a), len(ids_b))
        at = next((i for i in range(shorter) if ids_a[i] != ids_b[i]), shorter)
        said = [repr(tokens[at].text) if at < len(tokens) else "the end" for tokens in (tokens_a, tokens_b)]
        raise BadInput(
            "{model} {first} and {model} {second} tokenize the text differently (token {at}: {said_a} and "
            "{said_b}); compare two checkpoints that share a tokenizer",
            first=first.name,
            second=second.name,
            at=at,
            said_a=said[0],
            said_b=said[1],
        )
    runs = (
        _run(text, tokens, model, measure=measure, selection=selection)
        for tokens, model in ((tokens_a, model_a), (tokens_b, model_b))
    )
    return _compared(*runs, token, two_models=True)


def _check_one_shape(first: ModelInfo, second: ModelInfo) -> None:
    """Refuse two checkpoints of different numbers of layers or heads, which compare cannot pair."""
    if (first.layers, first.heads) != (second.layers, second.heads):
        raise BadInput(
            "{model} {first} has {first_shape} heads but {model} {second} has {second_shape}; "
            "compare two checkpoints of one shape",
            first=first.name,
            second=second.name,
            first_shape=f"{first.layers} layers × {first.heads}",
            second_shape=f"{second.layers} layers × {second.heads}",
        )


def _compared(a: AttentionRun, b: AttentionRun, token: str, two_models: bool = False) -> CompareResult:
    """How the attention of `token`, a token of run `a`, moves to its partner's in run `b` (see `compare`);
    `two_models`: the runs are of two checkpoints on one text."""
    index_a = resolve_token(a.tokens, token, "token", a.text)
    slots = align([t.text for t in a.tokens], [t.text for t in b.tokens])
    index_b = next((j for i, j in slots if i == index_a), None)
    if index_b is None:
        raise BadInput(
            "{token} {spec!r} ({name!r}, token {index} of {text_a}) has no partner in {text_b}; "
            "choose a token both texts share",
            spec=token,
            name=a.tokens[index_a].text,
            index=index_a,
        )
    rows_a, rows_b = _token_rows(a, index_a), _token_rows(b, index_b)  # [L, h, T_a], [L, h, T_b]
    spread = analysis.spread(rows_a, [i for i, _ in slots]), analysis.spread(rows_b, [j for _, j in slots])
    change = analysis.total_variation(*spread)  # [L, h]
    if not a.shows_norms and (a.model.sinks or b.model.sinks):  # the sinks' shares, one more outcome of each row
        change += 0.5 * np.abs(analysis.sink_shares(rows_a) - analysis.sink_shares(rows_b))
    ranking = [(layer, head) for layer, head in analysis.largest(change, change.size)]

    strongest = _top_keys(a, index_a, rows_a), _top_keys(b, index_b, rows_b)
    return CompareResult(
        a, b, index_a, index_b, slots, spread, change, ranking, strongest, (rows_a, rows_b), two_models
    )


def _token_rows(run: AttentionRun, index: int) -> np.ndarray:
    """[L, h, T] the rows of token `index` that compare reads as distributions: its weights, or its ‖α v W_O‖ norms
    as shares of each row (analysis.row_shares, as heads and rollout read them), in which a learned sink, which
    adds nothing to a head's output, has no share."""
    rows = run.attention[:, :, index, :]
    return row_shares(rows) if run.shows_norms else rows


def _top_keys(run: AttentionRun, index: int, rows: np.ndarray) -> np.ndarray:
    """[L, h]: the key token `index` weights most in each head (`rows` [L, h, T]), not itself and not a
    sink (analysis.sinks); itself when there is no other."""
    sinks = analysis.sinks(run.special, run.model.causal)
    return analysis.strongest_allowed(rows, analysis.candidate_keys(sinks, index, include_special=False), index)


def attribute(
    text: str,
    model: Model,
    target: str | None = None,
    versus: str | None = None,
    at: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> AttributionResult:
    """Direct logit attribution (see attncli.attribution) at the token `at` names (see resolve_token; default: the
    last): what the embeddings, each head, each attention bias and each feed-forward network add directly to the
    logit of the next token `target` (default: the one the model predicts), or to its difference from `versus`'s,
    through the final norm with its scale there frozen (see attribution_at). Tokens of the vocabulary are named as
    vocabulary_token reads them."""
    unembedding = _attributable_head(model)
    tokens = _tokens(text, model, max_tokens)
    index = len(tokens) - 1 if at is None else resolve_token(tokens, at, "at", text)
    target_id = None if target is None else vocabulary_token(model, target, "target", unembedding.vocab_size)
    versus_id = None if versus is None else vocabulary_token(model, versus, "versus", unembedding.vocab_size)
    if target_id is not None and versus_id == target_id:
        raise BadInput(
            "{versus} {spec!r} is the target itself (id {id}); the difference would be 0: give another token",
            spec=versus,
            id=target_id,
        )
    return attribution_at(text, tokens, model, index, target_id, versus_id)


def _attributable_head(model: Model) -> "Unembedding":
    """The language-model head of `model`, refused where direct logit attribution has no direct path through the
    model to it: a model without a head (DataError: the sample model, a sentence encoder), a post-norm model's
    norms after every sublayer, and a masked-LM head's transform, which are not linear."""
    info = model.info
    unembedding = model.unembedding
    if not info.pre_norm:
        raise BadInput(
            "{name} normalises the residual stream after every sublayer (post-norm), so no part of it reaches the "
            "logits directly: direct logit attribution needs a pre-norm model (a decoder)",
            name=info.name,
        )
    if unembedding.transform is not None:
        raise BadInput(
            "{name}'s masked-LM head passes the stream through a dense layer, an activation and a LayerNorm before "
            "its logits, which is not linear: direct logit attribution needs a head that is (a decoder's)",
            name=info.name,
        )
    return unembedding


def attribution_at(
    text: str,
    tokens: list[Token],
    model: Model,
    position: int,
    target_id: int | None = None,
    versus_id: int | None = None,
) -> AttributionResult:
    """Direct logit attribution after the token at `position` of `tokens`, the tokens of `text` (a generated
    sequence's need be no tokenization of its text): the parts of the last residual stream there into the logit
    of the token id `target_id` (default: the one the model predicts), less `versus_id`'s where given. A pre-norm
    model with a linear head only (see _attributable_head)."""
    from attncli import attribution  # here: the other commands never read a head (see TYPE_CHECKING above)
    from attncli.transformer import logits

    unembedding = _attributable_head(model)
    info = model.info
    _check_memory(info, len(tokens), False)
    trace = model.run(tokens, keep_steps=False, decompose_at=np.array([position]))
    h = trace.output[position]  # [e] what the head reads at the position
    predicted = target_id is None
    if predicted:
        target_id = int(np.argmax(logits(h[None], unembedding)[0]))
    if versus_id == target_id:
        raise BadInput(
            "{versus} is the token the model predicts there (id {id}); the difference would be 0: give another token",
            id=target_id,
        )
    parts = trace.residual_parts
    named, vectors = attribution.components(parts, 0)
    weights = model.weights
    contributions, constant = attribution.direct_logit_attribution(
        vectors,
        parts.stream[0],
        weights.final_norm,
        info.config,
        unembedding,
        target_id,
        versus_id,
        weights.project_out,
    )
    if constant is not None:
        named.append(attribution.Component(attribution.BIAS, "bias"))
        contributions = np.append(contributions, constant)
    return AttributionResult(
        text,
        tokens,
        info,
        position,
        _vocabulary_token(model, target_id),
        None if versus_id is None else _vocabulary_token(model, versus_id),
        predicted,
        attribution.head_logit(h, unembedding, target_id, versus_id),
        named,
        contributions,
        unembedding.soft_cap,
        attribution.totals(named, contributions),
        attribution.ranked_heads(named, contributions),
    )


def vocabulary_token(model: Model, spec: str, parameter: str, vocab_size: int) -> int:
    """The id of the one token of `model`'s vocabulary `spec` names: #ID; a piece of the vocabulary as its tokenizer
    writes it (ĠParis, ▁Paris: as the views show tokens, ␣ for the mark of a word's start); or a text the tokenizer
    makes one token of (" Paris"). A text of several tokens is refused, naming them; errors name `parameter`."""
    by_id = re.fullmatch(r"#([0-9]{1,10})", spec)
    if by_id:
        token_id = int(by_id[1])
        if token_id >= vocab_size:
            raise BadInput(
                "{option} {spec} is past the vocabulary's last id, {last}",
                option=Parameter(parameter),
                spec=spec,
                last=vocab_size - 1,
            )
        return token_id
    tokenizer = model.tokenizer
    # the piece as it is, or as the views show it: ␣ for either tokenizer style's mark of a word's start
    pieces = (spec, spec.replace("␣", SPACE), spec.replace("␣", WORD_START))
    token_id = next((i for i in map(tokenizer.token_to_id, pieces) if i is not None), None)
    if token_id is None:
        encoding = tokenizer.encode(spec, add_special_tokens=False)
        if len(encoding.ids) != 1:
            pieces = " ".join(repr(readable(piece)) for piece in encoding.tokens) or "nothing"
            raise BadInput(
                "{option} {spec!r} is not one token of the vocabulary: the tokenizer makes {pieces} of it; give one "
                "token (its text, its piece as the views show it, or #ID)",
                option=Parameter(parameter),
                spec=spec,
                pieces=pieces,
            )
        token_id = encoding.ids[0]
    if token_id >= vocab_size:
        raise BadInput(
            "{option} {spec!r} is id {id}, past the {size:,} logits of the model's head",
            option=Parameter(parameter),
            spec=spec,
            id=token_id,
            size=vocab_size,
        )
    return token_id


def _vocabulary_token(model: Model, token_id: int) -> VocabularyToken:
    return VocabularyToken(token_id, model.tokenizer.id_to_token(token_id))


def similar(word: str, model: Model, k: int = 10) -> SimilarResult:
    """The `k` tokens of `model`'s vocabulary whose input embeddings are nearest to `word`'s by cosine."""
    if k < 1:
        raise BadInput("{k} {value} asks for no neighbours; use {k} 1 or more", value=k)
    vocabulary = model.vocabulary
    token_id = vocabulary.word_id(word)
    neighbors = [Neighbor(vocabulary.token_text(i), i, c) for i, c in vocabulary.nearest(token_id, k)]
    return SimilarResult(word, token_id, neighbors, model.info)


def predict(
    text: str, model: Model, top: int = 10, at: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> PredictResult:
    """What `model`'s language-model head predicts: a decoder, the next token after the token `at` names (default:
    the last); an encoder, the token at each of the text's mask tokens (or at the token `at` names). Probabilities
    are softmax of the logits over the whole vocabulary, in float64; the `top` most probable, best first."""
    from attncli.transformer import logits

    _check_top(top)
    head = model.unembedding  # refused here, before the forward pass, where the model has none
    # The whole vocabulary, which the predictions are tokens of, read before the text is tokenized: a model's first
    # text would otherwise get a tokenizer cut to its pieces (see attncli.unigram), made for nothing.
    vocabulary = model.tokenizer
    tokens = _tokens(text, model, max_tokens)
    causal = model.info.causal
    mask = None if causal else mask_token(vocabulary)
    masks = [] if mask is None else [t.index for t in tokens if t.id == mask[1]]
    if at is not None:
        shown = resolve_token(tokens, at, "at", text)
        indices = sorted({shown, *masks})
    elif causal:
        shown = len(tokens) - 1
        indices = [shown]
    elif masks:
        shown, indices = masks[0], masks
    elif mask is None:
        raise BadInput(
            "{name}'s tokenizer has no mask token ({spellings}) to predict at; give {at} the position to predict",
            name=model.info.name,
            spellings=" or ".join(MASK_TOKENS),
        )
    else:
        raise BadInput(
            "the text has no {mask} token to predict; put one where a word should be, e.g. {example!r}, or give "
            "{at} a position",
            mask=mask[0],
            example=f"The cat sat on the {mask[0]}.",
        )
    # a decoder's prediction at a position reads no later token: the text is run only so far
    kept = tokens[: max(indices) + 1] if causal else tokens
    _check_memory(model.info, len(kept), steps=False)
    z = logits(model.run(kept, keep_steps=False).output[indices], head)  # [P, vocab]
    if not np.all(np.isfinite(z)):
        raise DataError("the language-model head gave NaN or infinite logits; the checkpoint's weights are broken")
    best, probabilities = analysis.predictions(z, top)  # [P, k], [P, vocab]
    positions = []
    for row, index in enumerate(indices):
        chosen = [
            Prediction(int(i), vocabulary.id_to_token(int(i)), float(z[row, i]), float(probabilities[row, i]))
            for i in best[row]
        ]
        others = np.ones(len(z[row]), dtype=bool)
        others[best[row]] = False
        positions.append(PositionPredictions(index, chosen, float(probabilities[row].sum(where=others))))
    return PredictResult(
        text,
        tokens,
        model.info,
        positions,
        indices.index(shown),
        causal,
        head.vocab_size,
        None if mask is None else mask[0],
    )


def softmax(arguments: list[str]) -> SoftmaxResult:
    """softmax of the numbers in `arguments`, with its steps."""
    scores = parse_numbers(arguments)
    if not scores:
        raise BadInput("no scores given; pass numbers, e.g. attncli softmax 2.0 1.0 0.5")
    x = np.asarray(scores, dtype=np.float64)  # [n]
    return SoftmaxResult(x, *softmax_parts(x))


def dot(a: str, b: str) -> DotResult:
    """The dot product of two vectors written as numbers ("1,2,3") or of two words' embeddings."""
    left, right = _operand(a, "a"), _operand(b, "b")
    if left.vector.shape != right.vector.shape:
        raise BadInput(
            "the vectors have different lengths: {left} and {right}; give two of the same length",
            left=_describe(a, left),
            right=_describe(b, right),
        )
    products = left.vector * right.vector  # [n]
    return DotResult(left, right, products, float(products.sum()), analysis.cosine(left.vector, right.vector))


def parse_numbers(items: list[str], parameter: str | None = None) -> list[float]:
    """Numbers from arguments that may each hold several, separated by commas or spaces. An empty
    part between two commas ("1,,2", or "1, ,2" over two arguments) is refused, not dropped: it would
    shorten the vector. A comma before the first number or after the last separates nothing and is
    let be, except in one vector given as `parameter` (dot's A and B), every part of which is a
    number; errors then name it."""
    text = " ".join(items)
    parts = [part.strip() for part in text.split(",")]
    filled = [i for i, part in enumerate(parts) if part]
    inner = range(len(parts)) if parameter is not None or not filled else range(filled[0], filled[-1] + 1)
    blank = next((i for i in inner if not parts[i]), None)
    if blank is not None and (filled or parameter is not None):
        given = repr(shortened(text)) if parameter is None else Argument(parameter, repr(shortened(text)))
        raise BadInput(
            "{given}: part {place} of its {count} comma-separated parts is empty; give numbers such as 1,2,3",
            given=given,
            place=blank - inner.start + 1,
            count=len(inner),
        )
    numbers = []
    for piece in text.replace(",", " ").split():
        try:
            value = float(piece)
        except ValueError:
            raise BadInput("{piece!r} is not a number; give numbers such as 2.0 1.0 0.5", piece=piece) from None
        if not math.isfinite(value) or abs(value) > LARGEST_NUMBER:
            raise BadInput("{piece!r} is out of range; give numbers between -1e100 and 1e100", piece=piece)
        numbers.append(value)
    return numbers


def _describe(argument: str, operand: Operand) -> str:
    if operand.word is None:
        return f"{argument} has {len(operand.vector)} numbers"
    return f"{argument!r} is a {len(operand.vector)}-dimensional word embedding"


def _reads_as_numbers(argument: str) -> bool:
    pieces = argument.replace(",", " ").split()
    try:
        return bool(pieces) and all(float(piece) is not None for piece in pieces)
    except ValueError:
        return False


def _operand(argument: str, parameter: str) -> Operand:
    """Numbers if `argument` (given parameter `parameter`) reads as numbers (see parse_numbers), else a
    word of the vocabulary."""
    from attncli.bundled import sample_vocabulary

    if _reads_as_numbers(argument):
        return Operand(np.asarray(parse_numbers([argument], parameter), dtype=np.float64))
    vocabulary = sample_vocabulary()
    token_id = vocabulary.word_id(argument)
    return Operand(vocabulary.embed([token_id])[0], argument, token_id)


def _check_layer_and_head(info: ModelInfo, layer: int, head: int | None, selection: Selection = EVERYTHING) -> None:
    """Refuse a `layer` or `head` to draw that the model does not have, or that the `selection` does not keep."""
    if 0 <= layer < info.layers and layer not in selection.kept_layers(info.layers):
        raise BadInput(
            "{layer} {value}: the run keeps {layers} {kept} alone", value=layer, kept=listed(selection.layers)
        )
    if head is not None and 0 <= head < info.heads and head not in selection.kept_heads(info.heads):
        raise BadInput(
            "{head} {value}: the run keeps {heads} {kept} alone",
            value=head,
            kept=listed(selection.heads),
            heads=Parameter("kept_heads"),
        )
    if not 0 <= layer < info.layers:
        raise BadInput(
            "{layer} {value} is out of range; {name} has layers 0 to {last}",
            value=layer,
            name=info.name,
            last=info.layers - 1,
        )
    if head is not None and not 0 <= head < info.heads:
        raise BadInput(
            "{head} {value} is out of range; {name} has heads 0 to {last}",
            value=head,
            name=info.name,
            last=info.heads - 1,
        )


def _tokens(text: str, model: Model, max_tokens: int) -> list[Token]:
    if max_tokens < 1:
        raise BadInput(
            "{max_tokens} {value} allows no tokens; use 1 or more (default {default})",
            value=max_tokens,
            default=DEFAULT_MAX_TOKENS,
        )
    if not text:  # spaces alone are text: some tokenizers make tokens of them
        raise BadInput('the text is empty; give a sentence, e.g. "The cat sat on the mat"')
    if len(text) > CHARACTERS_PER_TOKEN * max_tokens:
        raise BadInput(
            "the text is {length:,} characters, more than {limit} tokens can hold (at most {characters:,}); "
            "shorten it or raise {max_tokens}",
            length=len(text),
            limit=max_tokens,
            characters=CHARACTERS_PER_TOKEN * max_tokens,
        )
    tokens = model.tokenize(text)
    if not any(not t.special for t in tokens):
        raise BadInput("the text has no tokens (only spaces, control or unknown characters); give words")
    longest = model.info.max_length
    if longest is not None and len(tokens) > longest:  # raising max_tokens would not help: say the model's limit
        specials = " (special tokens included)" if any(t.special for t in tokens) else ""
        raise BadInput(
            "the text is {count} tokens{specials}, but {name} reads at most {limit}; shorten it",
            count=len(tokens),
            specials=specials,
            name=model.info.name,
            limit=longest,
        )
    if len(tokens) > max_tokens:
        raise BadInput(
            "the text is {count} tokens, over the limit of {limit}; shorten it or raise {max_tokens}",
            count=len(tokens),
            limit=max_tokens,
        )
    return tokens
