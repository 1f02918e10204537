"""Terminal views: each takes a command's result object and returns one rich renderable."""

import math

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from attncli.analysis import BROAD_ENTROPY, PATTERN_SHARE
from attncli.heatmap import Heatmap, Legend
from attncli.keybars import KeyBars
from attncli.minimap import MiniHeatmap
from attncli.models import ModelInfo
from attncli.results import (
    AttentionRun,
    CheckResult,
    CompareResult,
    DotResult,
    EmbedResult,
    ExplainResult,
    HeadsResult,
    HeatmapResult,
    ModelGridResult,
    QueryResult,
    RolloutResult,
    SimilarResult,
    SoftmaxResult,
    TokenizeResult,
)
from attncli.terminal import abbreviate, token_label, visible
from attncli.vectors import VectorTable, number

__all__ = [
    "check_view",
    "compare_view",
    "dot_view",
    "embed_view",
    "explain_view",
    "heads_view",
    "heatmap_view",
    "model_view",
    "query_view",
    "rollout_view",
    "similar_view",
    "softmax_view",
    "tokenize_view",
]

_BAR_WIDTH = 20
# Beyond this many heads a per-head list per token stops being readable.
_SUMMARY_HEADS = 16


def _bar(fraction: float, width: int = _BAR_WIDTH) -> Text:
    """A bar of eighth-blocks, `fraction` (0 … 1) of `width` cells; cropped, never wrapped, when space is short."""
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
    return Text(bar, style="cyan", no_wrap=True, overflow="crop")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _table(*columns: tuple[str, str], footer: bool = False) -> Table:
    """A borderless table; each column is (header, justify). Number columns never wrap, so a narrow
    terminal squeezes the bars instead of the numbers."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=footer, footer_style="bold")
    for header, justify in columns:
        if header == "":
            table.add_column("", ratio=1, min_width=0, no_wrap=True)
        else:
            table.add_column(header, justify=justify, no_wrap=justify == "right")
    return table


def _section(index: int, title: str, lead: str) -> list[RenderableType]:
    return [Text(""), Rule(f"{index}. {title}", align="left", style="cyan"), Text(lead, style="italic")]


def _labels(run: AttentionRun) -> list[str]:
    return [token.text for token in run.tokens]


def _model_line(model: ModelInfo) -> Text:
    shape = f"{_plural(model.layers, 'layer')} × {model.heads} heads, d_model {model.d_model}, d_k {model.d_head}"
    if model.type == "sample":
        positions = "positions" if model.positions else "no positions"
        mask = "causal mask" if model.causal else "no mask"
        return Text(f"sample model: {shape}, seed {model.seed}, {positions}, {mask}", style="dim")
    return Text(f"{visible(model.name)} ({model.type}): {shape}, up to {model.max_length} tokens", style="dim")


def _text_line(text: str) -> Text:
    return Text.assemble(("Text: ", "bold"), visible(text))


def _tokens_table(tokens, text: str) -> Table:
    table = _table(("#", "right"), ("token", "left"), ("id", "right"), ("chars", "left"), ("from the text", "left"))
    for token in tokens:
        if token.special:
            chars, source = "–", "(special token)"
        else:
            chars, source = f"{token.start}–{token.end}", visible(text[token.start : token.end])
        table.add_row(str(token.index), token_label(token.text), str(token.id), chars, source)
    return table


def _heatmaps(run: AttentionRun, layer: int, head: int | None, values: bool, highlight: int | None = None):
    weights = run.weights[layer]  # [h, T, T]
    heads = range(len(weights)) if head is None else [head]
    mask = np.tri(len(run.tokens), dtype=bool) if run.model.causal else None
    vmax = float(max(weights[h].max() for h in heads))
    prefix = f"layer {layer} " if run.model.layers > 1 else ""
    maps = [
        Heatmap(
            weights[h],
            _labels(run),
            title=f"{prefix}head {h}",
            vmax=vmax,
            show_values=values,
            mask=mask,
            highlight=highlight,
        )
        for h in heads
    ]
    return Columns(maps, padding=(1, 3)) if len(maps) > 1 else maps[0]


def heatmap_view(result: HeatmapResult, values: bool = True) -> RenderableType:
    run = result.run
    return Group(
        _text_line(run.text),
        _model_line(run.model),
        Text("Attention weights: rows are queries, columns are keys; each row sums to 1.", style="italic"),
        Text(""),
        _heatmaps(run, result.layer, result.head, values),
    )


def _note(model: ModelInfo) -> Text:
    if model.type == "sample":
        return Text.assemble(
            ("Note: ", "bold"),
            f"W_Q, W_K, W_V and W_O are random (seed {model.seed}), so the patterns below show how attention "
            "computes, not what a trained model has learned. The word embeddings are trained. "
            "For a trained model's attention, try --model minilm.",
        )
    return Text.assemble(("Checkpoint: ", "bold"), visible(model.path or model.name))


def _input_lead(model: ModelInfo, layer: int) -> str:
    """How the walkthrough layer's input x is made, in words."""
    d = model.d_model
    if model.type == "sample":
        if not model.positions:
            order = "" if model.causal else ", so word order changes no score"
            return f"x = √{d} · e: positions are off (--no-positions){order}."
        return f"x = √{d} · e + PE: the embedding scaled by √d_model, plus the sinusoidal encoding of its position."
    if model.type == "gpt2":
        residual = "e + p" if layer == 0 else f"the residual stream after layer {layer - 1}"
        return f"Layer {layer} attends over x = LayerNorm({residual}): GPT-2 normalises before each sublayer."
    types = " + t, the token type 0 embedding" if model.type != "distilbert" else ""
    if layer == 0:
        return f"Layer 0 attends over x = LayerNorm(e + p{types})."
    return f"Layer {layer} attends over x = the output of layer {layer - 1}."


def explain_view(result: ExplainResult, values: bool = True) -> RenderableType:
    run = result.run
    model = run.model
    trace = run.trace
    attention = result.attention
    labels = _labels(run)
    h, f, layer = result.walk_head, result.focus, result.layer
    focus_name = token_label(run.tokens[f].text)
    d, d_k = model.d_model, model.d_head
    sample = model.type == "sample"
    plus_b = "" if sample else " + b"

    parts: list[RenderableType] = [_text_line(run.text), _model_line(model), _note(model)]

    parts += _section(
        1,
        "Tokens",
        f"The tokenizer splits the text into {_plural(len(labels), 'token')}; each id picks a row of the vocabulary.",
    )
    parts.append(_tokens_table(run.tokens, run.text))

    if sample:
        embed_lead = f"Each token id picks a row e of the {d}-dimensional embedding matrix. "
    else:
        embed_lead = (
            f"Each token id picks a row e of the word embeddings and each position a row p of the position "
            f"embeddings ({d} dimensions). "
        )
    parts += _section(2, "Embeddings", embed_lead + _input_lead(model, layer))
    parts.append(VectorTable(trace.embeddings, labels, title="e  (word embedding)"))
    if trace.positions is not None:
        title = "PE  (positional encoding)" if sample else "p  (position embedding)"
        parts.append(VectorTable(trace.positions, labels, title=title))
    parts.append(VectorTable(attention.x, labels, title=f"x  (input to layer {layer}'s attention)"))

    parts += _section(
        3,
        "Queries, keys and values",
        f"q = x·W_Q{plus_b}, k = x·W_K{plus_b}, v = x·W_V{plus_b} (each W is {d} × {d}). Head {h} takes dimensions "
        f"{h * d_k} to {h * d_k + d_k - 1}: every token has a q, k and v of d_k = {d_k} numbers per head.",
    )
    for name, matrix in (("q", attention.q), ("k", attention.k), ("v", attention.v)):
        parts.append(VectorTable(matrix[h], labels, title=f"{name}  (head {h})"))

    parts += _section(
        4,
        f"Scores for “{focus_name}”",
        f"Head {h}: token {f}'s query is dotted with every key (QKᵀ), divided by √d_k = √{d_k} = "
        f"{math.sqrt(d_k):.3f}, then softmax turns the scores into weights that sum to 1.",
    )
    parts += _focus_scores(result)

    parts += _section(
        5,
        "Attention weights",
        f"Softmax of every row, for {'every head' if result.head is None else f'head {h}'}: rows are queries, "
        "columns are keys; each row sums to 1." + (" The causal mask hides later keys (·)." if model.causal else ""),
    )
    parts.append(_heatmaps(run, layer, result.head, values, highlight=f))

    parts += _section(
        6,
        f"Weighted sum for “{focus_name}”",
        f"Head {h}'s output for token {f} is Σ weight · v over the keys; the {model.heads} heads' outputs are "
        f"concatenated ({model.heads} × {d_k} = {d}) and multiplied by W_O ({d} × {d}){plus_b}.",
    )
    keys = result.focus_keys
    weights = attention.weights[h, f, keys]  # [keys]
    weighted = weights[:, None] * attention.v[h, keys]  # [keys, d_k]
    rows = np.vstack([weighted, attention.head_outputs[h, f][None]])  # [keys + 1, d_k]
    row_labels = [f"{w:.3f} × v({labels[j]})" for j, w in zip(keys, weights, strict=True)] + [f"= head {h} output"]
    parts.append(VectorTable(rows, row_labels, emphasis={len(keys)}))
    final_rows = [attention.concat[f], attention.output[f]]
    final_labels = [f"concat ({model.heads} heads)", f"output = concat·W_O{plus_b}"]
    if not sample:
        final_rows.append(trace.layer_outputs[layer][f])
        final_labels.append(f"layer {layer} output")
    parts.append(VectorTable(np.vstack(final_rows), final_labels, title=f"token {f} “{focus_name}”"))
    if not sample:
        parts.append(
            Text(
                "The layer output adds the residual, LayerNorms and the feed-forward network to the attention output.",
                style="dim",
            )
        )

    parts += _section(7, "Summary", "What each token attends to most: averaged over heads, and in each head.")
    parts.append(_summary_table(result))
    return Group(*parts)


def _focus_scores(result: ExplainResult) -> list[RenderableType]:
    run = result.run
    attention = result.attention
    h, f = result.walk_head, result.focus
    labels = [token_label(label) for label in _labels(run)]
    keys = result.focus_keys
    steps = result.focus_softmax()
    best = int(keys[np.argmax(steps.probabilities)])
    q, k = attention.q[h, f], attention.k[h, best]
    shown = 8  # terms of the worked dot product written out
    terms = " + ".join(f"({number(a)})({number(b)})" for a, b in zip(q[:shown], k[:shown], strict=True))
    if len(q) > shown:
        terms += f" + … ({len(q) - shown} more terms)"
    worked = Text.assemble(
        ("For example, ", "dim"),
        f"q({labels[f]}) · k({labels[best]}) = {terms} = {number(attention.scores[h, f, best])}",
    )

    table = _table(
        ("#", "right"),
        ("key", "left"),
        ("q·k", "right"),
        (f"÷√{len(q)}", "right"),
        ("− max", "right"),
        ("exp", "right"),
        ("weight", "right"),
        ("", "left"),
        footer=True,
    )
    table.columns[1].footer = "sum"
    table.columns[5].footer = number(steps.exp.sum())
    table.columns[6].footer = number(steps.probabilities.sum())
    for row, key in enumerate(keys):
        table.add_row(
            str(key),
            abbreviate(labels[key], 14),
            number(attention.scores[h, f, key]),
            number(steps.scores[row]),
            number(steps.shifted[row]),
            number(steps.exp[row]),
            number(steps.probabilities[row]),
            _bar(steps.probabilities[row]),
        )
    parts: list[RenderableType] = [worked, table]
    hidden = len(labels) - len(keys)
    if hidden:
        parts.append(Text(f"The causal mask hides {_plural(hidden, 'later token')}: weight exactly 0.", style="dim"))
    return parts


def _summary_table(result: ExplainResult) -> Table:
    labels = [token_label(label) for label in _labels(result.run)]
    keys, weights = result.strongest
    mean_keys, mean_weights = result.strongest_mean
    per_head = len(keys) <= _SUMMARY_HEADS
    columns = [("#", "right"), ("token", "left"), ("mean of heads", "left")]
    table = _table(*columns, *([("head:top key(weight)", "left")] if per_head else []))
    for i, label in enumerate(labels):
        row = [str(i), abbreviate(label, 12), f"{abbreviate(labels[mean_keys[i]], 10)} {mean_weights[i]:.2f}"]
        if per_head:
            # No spaces inside an entry, so a wrapped line never splits one.
            row.append(
                "  ".join(f"{h}:{abbreviate(labels[keys[h, i]], 8)}({weights[h, i]:.2f})" for h in range(len(keys)))
            )
        table.add_row(*row)
    if per_head:
        return table
    return Group(table, Text(f"(per-head targets of all {len(keys)} heads are in --json's summary)", style="dim"))


def tokenize_view(result: TokenizeResult) -> RenderableType:
    return Group(
        _text_line(result.text),
        Text(f"{_plural(len(result.tokens), 'token')} ({visible(result.model.name)} tokenizer)", style="dim"),
        _tokens_table(result.tokens, result.text),
    )


def embed_view(result: EmbedResult) -> RenderableType:
    labels = [token.text for token in result.tokens]
    norms = _table(("token", "left"), ("‖e‖", "right"))
    for label, vector in zip(labels, result.embeddings, strict=True):
        norms.add_row(token_label(label), number(np.linalg.norm(vector)))
    width = result.embeddings.shape[1]
    return Group(
        _text_line(result.text),
        Text(f"{_plural(len(labels), 'token')} × {width} dimensions (trained embeddings, reduced by PCA)", style="dim"),
        VectorTable(result.embeddings, labels),
        Text(""),
        norms,
    )


def similar_view(result: SimilarResult) -> RenderableType:
    table = _table(("#", "right"), ("token", "left"), ("id", "right"), ("cosine", "right"), ("", "left"))
    for rank, neighbor in enumerate(result.neighbors, start=1):
        table.add_row(
            str(rank), token_label(neighbor.text), str(neighbor.id), number(neighbor.cosine), _bar(neighbor.cosine)
        )
    lead = Text.assemble(
        "Nearest neighbours of ", (visible(result.word), "bold"), f" (id {result.id}) by cosine similarity"
    )
    return Group(lead, table)


def softmax_view(result: SoftmaxResult) -> RenderableType:
    table = _table(
        ("score x", "right"),
        ("x − max", "right"),
        ("exp(x − max)", "right"),
        ("probability", "right"),
        ("", "left"),
        footer=True,
    )
    table.columns[0].footer = "sum"
    table.columns[2].footer = number(result.exp.sum(), 4)
    table.columns[3].footer = number(result.probabilities.sum(), 4)
    for x, shifted, e, p in zip(result.scores, result.shifted, result.exp, result.probabilities, strict=True):
        cells = (number(value, 4, keep_small=True) for value in (x, shifted, e, p))
        table.add_row(*cells, _bar(p))
    return Group(
        Text(
            f"softmax(x)_i = exp(x_i) / Σ exp(x_j). Subtracting the max ({number(result.scores.max(), 4)}) first "
            "cancels out of the ratio but keeps exp from overflowing.",
            style="italic",
        ),
        table,
    )


def dot_view(result: DotResult) -> RenderableType:
    a = "a" if result.a.word is None else visible(result.a.word)
    b = "b" if result.b.word is None else visible(result.b.word)
    parts: list[RenderableType] = []
    if result.a.word is not None or result.b.word is not None:
        parts.append(Text(f"Word vectors are the {len(result.products)}-dimensional bundled embeddings.", style="dim"))
    vectors = np.vstack([result.a.vector, result.b.vector, result.products])  # [3, n]
    parts.append(VectorTable(vectors, [a, b, "a_i × b_i"], emphasis={2}))
    parts.append(
        Text.assemble(
            ("dot = Σ a_i × b_i = ", "bold"),
            (number(result.dot, 4, keep_small=True), "bold"),
            f"    cosine = dot / (‖a‖ ‖b‖) = {number(result.cosine, 4)}",
        )
    )
    return Group(*parts)


def _head_name(layer: int, head: int) -> str:
    return f"L{layer} H{head}"


def query_view(result: QueryResult, top: int = 12) -> RenderableType:
    run = result.run
    tokens = run.tokens
    token = tokens[result.token]
    ranking = result.ranking[:top]
    excluded = "itself" if result.include_special else "itself and special tokens"
    if result.target is None:
        order = f"ranked by the weight on its strongest key ({excluded} left out, and drawn dim)"
    else:
        target = tokens[result.target]
        order = f"ranked by the weight on “{token_label(target.text)}” (token {result.target})"
    lead = (
        f"What “{token_label(token.text)}” (token {result.token}) attends to in each of "
        f"{_plural(len(result.ranking), 'head')}, {order}. Showing the top {len(ranking)}; --top N for more, "
        "--json for all."
    )
    headers = ["#", "head", "top key", "weight"]
    rows = [
        [str(rank), _head_name(t.layer, t.head), abbreviate(token_label(tokens[t.top].text), 12), f"{t.top_weight:.2f}"]
        for rank, t in enumerate(ranking, start=1)
    ]
    if result.target is not None:
        headers.append("on " + abbreviate(token_label(tokens[result.target].text), 9))
        for row, t in zip(rows, ranking, strict=True):
            row.append(f"{t.weights[result.target]:.2f}")
    chart = KeyBars(
        headers,
        rows,
        np.stack([t.weights for t in ranking]),
        _labels(run),
        muted=~result.allowed,
    )
    return Group(_text_line(run.text), _model_line(run.model), Text(lead, style="italic"), Text(""), chart)


def model_view(result: ModelGridResult) -> RenderableType:
    run = result.run
    weights = run.weights[np.ix_(result.layers, result.heads)]  # [layers shown, heads shown, T, T]
    vmax = float(weights.max())
    parts: list[RenderableType] = [
        _text_line(run.text),
        _model_line(run.model),
        Text(
            f"Every head at once: each square is one head's {len(run.tokens)} × {len(run.tokens)} weights, "
            "queries down, keys across. --layers and --heads (e.g. 0-2,5) zoom in.",
            style="italic",
        ),
    ]
    for row, layer in enumerate(result.layers):
        maps = [
            MiniHeatmap(weights[row, column], _head_name(layer, head), vmax) for column, head in enumerate(result.heads)
        ]
        parts += [Text(""), Columns(maps, padding=(0, 2))]
    parts += [Text(""), Legend(vmax)]
    return Group(*parts)


_HEAD_COLUMNS = (
    ("entropy", "H"),
    ("entropy_normalized", "H/ln n"),
    ("distance", "dist"),
    ("self", "self"),
    ("previous", "prev"),
    ("next", "next"),
    ("first_special", "first"),
    ("separator", "sep"),
    ("punctuation", "punct"),
    ("max", "max"),
)


def heads_view(result: HeadsResult) -> RenderableType:
    table = _table(("head", "left"), *((header, "right") for _, header in _HEAD_COLUMNS), ("pattern", "left"))
    table.padding = (0, 1, 0, 0)  # one space between columns, so twelve of them fit 80 columns
    for column in table.columns:
        column.no_wrap = True
    layers, heads = result.labels.shape
    for layer in range(layers):
        for head in range(heads):
            cells = [
                "–" if np.isnan(result.statistics[name][layer, head]) else f"{result.statistics[name][layer, head]:.2f}"
                for name, _ in _HEAD_COLUMNS
            ]
            table.add_row(_head_name(layer, head), *cells, str(result.labels[layer, head]))
    source = (
        Text.assemble(("Text: ", "bold"), visible(result.text))
        if result.text is not None
        else Text(f"Averaged over {_plural(result.texts, 'text')}.", style="bold")
    )
    key = Text(
        "Means over the query rows: H entropy in nats, and over ln of the keys a row sees; dist = Σ weight·|i − j|; "
        "the share on the token itself, the previous and next token, the first special token ([CLS], <s>), the "
        "other special tokens ([SEP], </s>), punctuation; max = the largest weight of a row. – = not in the text. "
        f"Pattern: the largest of the previous, next, self and delimiter (special + punctuation) shares names the "
        f"head if it is at least {PATTERN_SHARE}; else broad if H/ln n ≥ {BROAD_ENTROPY}, else mixed.",
        style="dim",
    )
    return Group(source, _model_line(result.model), Text(""), table, Text(""), key)


def rollout_view(result: RolloutResult) -> RenderableType:
    run = result.run
    layers = len(result.rollout)
    final = result.rollout[-1]  # [T, T]
    parts: list[RenderableType] = [
        _text_line(run.text),
        _model_line(run.model),
        Text(
            f"Attention rollout (Abnar & Zuidema, 2020): each layer's heads fused by {result.fusion}, mixed "
            "with the residual as 0.5·A + 0.5·I, rows renormalised, and the layers multiplied. Row i: how much "
            f"each input token flows into position i after all {_plural(layers, 'layer')}; each row sums to 1.",
            style="italic",
        ),
        Text(""),
        Heatmap(final, _labels(run), title=f"rollout through layer {layers - 1}", highlight=result.token),
    ]
    if result.token is not None:
        table = _table(("#", "right"), ("input token", "left"), ("share", "right"), ("", "left"))
        for key in np.argsort(-final[result.token], kind="stable"):
            share = final[result.token, key]
            table.add_row(str(key), token_label(run.tokens[key].text), number(share), _bar(share))
        name = token_label(run.tokens[result.token].text)
        parts += [
            Text(""),
            Text(f"Where “{name}” (token {result.token}) draws from, after every layer:", style="bold"),
            table,
        ]
    return Group(*parts)


def compare_view(result: CompareResult, top: int = 8) -> RenderableType:
    a, b = result.a, result.b
    name = token_label(a.tokens[result.token_a].text)
    table = _table(("#", "right"), ("head", "left"), ("TV", "right"), ("top in A", "left"), ("top in B", "left"))
    for rank, (layer, head) in enumerate(result.ranking[:top], start=1):
        row_a = a.weights[layer, head, result.token_a]
        row_b = b.weights[layer, head, result.token_b]
        top_a, top_b = result.strongest(0, layer, head), result.strongest(1, layer, head)
        table.add_row(
            str(rank),
            _head_name(layer, head),
            f"{result.change[layer, head]:.2f}",
            f"{token_label(a.tokens[top_a].text)} {row_a[top_a]:.2f}",
            f"{token_label(b.tokens[top_b].text)} {row_b[top_b]:.2f}",
        )
    layer, head = result.ranking[0]
    spread_a, spread_b = result.spread
    aligned = _table(
        ("key in A", "left"), ("A", "right"), ("", "left"), ("B", "right"), ("", "left"), ("key in B", "left")
    )
    for slot, (i, j) in enumerate(result.slots):
        weight_a, weight_b = spread_a[layer, head, slot], spread_b[layer, head, slot]
        aligned.add_row(
            "—" if i is None else token_label(a.tokens[i].text),
            "" if i is None else number(weight_a),
            Text("") if i is None else _bar(weight_a, 12),
            "" if j is None else number(weight_b),
            Text("") if j is None else _bar(weight_b, 12),
            "—" if j is None else token_label(b.tokens[j].text),
        )
    unpaired_a = ", ".join(token_label(a.tokens[i].text) for i in result.unpaired(0)) or "none"
    unpaired_b = ", ".join(token_label(b.tokens[j].text) for j in result.unpaired(1)) or "none"
    return Group(
        Text.assemble(("A: ", "bold"), visible(a.text)),
        Text.assemble(("B: ", "bold"), visible(b.text)),
        _model_line(a.model),
        Text(
            f"How the attention of “{name}” (token {result.token_a} in A, {result.token_b} in B) changes, head by "
            "head: TV is the total variation distance between its two distributions (0 the same, 1 disjoint), "
            "with keys paired by their text.",
            style="italic",
        ),
        Text(""),
        table,
        Text(""),
        Text(
            f"Aligned, in the most changed head, {_head_name(layer, head)}:"
            if result.change[layer, head] > 0
            else f"No head changed; aligned, in {_head_name(layer, head)}:",
            style="bold",
        ),
        aligned,
        Text(f"No partner in B for: {unpaired_a}. No partner in A for: {unpaired_b}.", style="dim"),
    )


def check_view(result: CheckResult) -> RenderableType:
    verdict = (
        Text(f"passed: every attention weight is within {result.tolerance:g}", style="bold green")
        if result.passed
        else Text(
            f"FAILED: attention moved by up to {result.max_difference:.3g} (tolerance {result.tolerance:g})",
            style="bold red",
        )
    )
    heads = _table(("head", "left"), ("largest change", "right"))
    for layer, head, difference in result.worst_heads():
        heads.add_row(_head_name(layer, head), f"{difference:.3g}")
    cells = _table(("head", "left"), ("query", "left"), ("key", "left"), ("saved", "right"), ("now", "right"))
    labels = [token_label(label) for label in _labels(result.run)]
    for layer, head, query, key in result.worst_cells():
        cells.add_row(
            _head_name(layer, head),
            f"{query} {labels[query]}",
            f"{key} {labels[key]}",
            f"{result.saved[layer, head, query, key]:.6f}",
            f"{result.run.weights[layer, head, query, key]:.6f}",
        )
    return Group(
        _text_line(result.run.text),
        _model_line(result.run.model),
        verdict,
        Text(""),
        Text("Heads that moved most:", style="bold"),
        heads,
        Text(""),
        Text("Cells that moved most:", style="bold"),
        cells,
    )
