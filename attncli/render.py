"""Terminal views: each takes a command's result object and returns one rich renderable."""

import math

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from attncli.heatmap import Heatmap, abbreviate
from attncli.results import (
    AttentionRun,
    DotResult,
    EmbedResult,
    ExplainResult,
    HeatmapResult,
    SimilarResult,
    SoftmaxResult,
    TokenizeResult,
)
from attncli.terminal import visible
from attncli.vectors import VectorTable, number

__all__ = [
    "dot_view",
    "embed_view",
    "explain_view",
    "heatmap_view",
    "similar_view",
    "softmax_view",
    "tokenize_view",
]

_BAR_WIDTH = 20


def _bar(fraction: float, width: int = _BAR_WIDTH) -> str:
    """A horizontal bar of eighth-blocks, `fraction` (0 … 1) of `width` cells long."""
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def _section(number_: int, title: str, lead: str) -> list[RenderableType]:
    return [Text(""), Rule(f"{number_}. {title}", align="left", style="cyan"), Text(lead, style="italic")]


def _labels(run: AttentionRun) -> list[str]:
    return [token.text for token in run.tokens]


def _model_line(run: AttentionRun) -> Text:
    c = run.config
    positions = "positions" if c.positions else "no positions"
    mask = "causal mask" if c.causal else "no mask"
    return Text(
        f"sample model: 1 layer × {c.heads} heads, d_model {c.d_model}, d_k {c.d_head}, seed {c.seed}, "
        f"{positions}, {mask}",
        style="dim",
    )


def _text_line(text: str) -> Text:
    return Text.assemble(("Text: ", "bold"), visible(text))


def tokens_table(tokens, text: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("#", "token", "id", "chars", "from the text"):
        table.add_column(name, justify="right" if name in ("#", "id") else "left", no_wrap=True)
    for token in tokens:
        table.add_row(
            str(token.index),
            visible(token.text),
            str(token.id),
            f"{token.start}–{token.end}",
            visible(text[token.start : token.end]),
        )
    return table


def _heatmaps(run: AttentionRun, head: int | None, values: bool, highlight: int | None = None) -> RenderableType:
    weights = run.weights  # [h, T, T]
    heads = range(len(weights)) if head is None else [head]
    mask = np.tri(len(run.tokens), dtype=bool) if run.config.causal else None
    vmax = float(max(weights[h].max() for h in heads))
    maps = [
        Heatmap(
            weights[h], _labels(run), title=f"head {h}", vmax=vmax, show_values=values, mask=mask, highlight=highlight
        )
        for h in heads
    ]
    return Columns(maps, padding=(1, 3)) if len(maps) > 1 else maps[0]


def heatmap_view(result: HeatmapResult, values: bool = True) -> RenderableType:
    run = result.run
    return Group(
        _text_line(run.text),
        _model_line(run),
        Text("Attention weights: rows are queries, columns are keys; each row sums to 1.", style="italic"),
        Text(""),
        _heatmaps(run, result.head, values),
    )


def explain_view(result: ExplainResult, values: bool = True) -> RenderableType:
    run = result.run
    config = run.config
    forward = run.forward
    trace = forward.attention
    labels = _labels(run)
    h = result.walk_head
    f = result.focus
    focus_name = visible(run.tokens[f].text)
    d, d_k = config.d_model, config.d_head

    parts: list[RenderableType] = [
        _text_line(run.text),
        _model_line(run),
        Text.assemble(
            ("Note: ", "bold"),
            f"W_Q, W_K, W_V and W_O are random (seed {config.seed}), so the patterns below show how attention "
            "computes, not what a trained model has learned. The word embeddings are trained.",
        ),
    ]

    parts += _section(
        1,
        "Tokens",
        f"The WordPiece tokenizer splits the text into {len(labels)} tokens; each id picks a row of the vocabulary.",
    )
    parts.append(tokens_table(run.tokens, run.text))

    input_lead = f"x = √{d} · e + PE: the embedding scaled by √d_model, plus the sinusoidal encoding of its position."
    if not config.positions:
        input_lead = f"x = √{d} · e: positions are off (--no-positions), so word order does not change any score."
    parts += _section(
        2, "Embeddings", f"Each token id picks a row e of the {d}-dimensional embedding matrix. {input_lead}"
    )
    parts.append(VectorTable(forward.embeddings, labels, title="e  (embedding)"))
    if forward.positions is not None:
        parts.append(VectorTable(forward.positions, labels, title="PE  (positional encoding)"))
    parts.append(VectorTable(forward.x, labels, title="x  (input to attention)"))

    parts += _section(
        3,
        "Queries, keys and values",
        f"q = x·W_Q, k = x·W_K, v = x·W_V (each W is {d} × {d}). Head {h} takes dimensions "
        f"{h * d_k} to {h * d_k + d_k - 1}, so every token has a {d_k}-dimensional q, k and v per head.",
    )
    for name, matrix in (("q", trace.q), ("k", trace.k), ("v", trace.v)):
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
        "Softmax of every row, for every head: rows are queries, columns are keys; each row sums to 1."
        + (" The causal mask hides later keys (·)." if config.causal else ""),
    )
    parts.append(_heatmaps(run, result.head, values, highlight=f))

    parts += _section(
        6,
        f"Weighted sum for “{focus_name}”",
        f"Head {h}'s output for token {f} is Σ weight · v over the keys; the {config.heads} heads' outputs are "
        f"concatenated ({config.heads} × {d_k} = {d}) and multiplied by W_O ({d} × {d}).",
    )
    keys = result.focus_keys
    weights = trace.weights[h, f, keys]
    rows = np.vstack([trace.v[h, keys], trace.head_outputs[h, f][None]])  # [keys + 1, d_k]
    row_labels = [f"{w:.3f} × v({labels[j]})" for j, w in zip(keys, weights, strict=True)] + [f"= head {h} output"]
    parts.append(VectorTable(rows, row_labels, emphasis={len(keys)}))
    parts.append(
        VectorTable(
            np.vstack([trace.concat[f], trace.output[f]]),
            [f"concat ({config.heads} heads)", "output = concat·W_O"],
            title=f"token {f} “{focus_name}”",
        )
    )

    parts += _section(7, "Summary", "What each token attends to most: averaged over heads, and in each head.")
    parts.append(_summary_table(result))
    return Group(*parts)


def _focus_scores(result: ExplainResult) -> list[RenderableType]:
    run = result.run
    trace = run.forward.attention
    h, f = result.walk_head, result.focus
    labels = _labels(run)
    keys = result.focus_keys
    steps = result.focus_softmax()
    best = int(keys[np.argmax(steps.probabilities)])
    q, k = trace.q[h, f], trace.k[h, best]
    terms = " + ".join(f"({number(a)})({number(b)})" for a, b in zip(q, k, strict=True))
    worked = Text.assemble(
        ("For example, ", "dim"),
        f"q({visible(labels[f])}) · k({visible(labels[best])}) = {terms} = {number(trace.scores[h, f, best])}",
    )

    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=True, footer_style="bold")
    table.add_column("#", justify="right", footer="")
    table.add_column("key", footer="sum")
    table.add_column("q·k", justify="right", footer="")
    table.add_column(f"÷√{len(q)}", justify="right", footer="")
    table.add_column("− max", justify="right", footer="")
    table.add_column("exp", justify="right", footer=number(steps.exp.sum()))
    table.add_column("weight", justify="right", footer=number(steps.probabilities.sum()))
    table.add_column("", no_wrap=True, footer="")
    top = steps.probabilities.max()
    for row, key in enumerate(keys):
        table.add_row(
            str(key),
            abbreviate(visible(labels[key]), 14),
            number(trace.scores[h, f, key]),
            number(steps.scores[row]),
            number(steps.shifted[row]),
            number(steps.exp[row]),
            number(steps.probabilities[row]),
            Text(_bar(steps.probabilities[row] / top), style="cyan"),
        )
    hidden = len(labels) - len(keys)
    notes = [worked, table]
    if hidden:
        notes.append(
            Text(f"The causal mask hides the {hidden} later token(s): their weight is exactly 0.", style="dim")
        )
    return notes


def _summary_table(result: ExplainResult) -> Table:
    labels = [visible(label) for label in _labels(result.run)]
    keys, weights = result.strongest
    mean_keys, mean_weights = result.strongest_mean
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("token", no_wrap=True)
    table.add_column("mean of heads", no_wrap=True)
    table.add_column("head: top key (weight)")
    for i, label in enumerate(labels):
        # No spaces inside an entry, so a wrapped line never splits one.
        per_head = "  ".join(f"{h}:{abbreviate(labels[keys[h, i]], 8)}({weights[h, i]:.2f})" for h in range(len(keys)))
        table.add_row(
            str(i),
            abbreviate(label, 12),
            f"{abbreviate(labels[mean_keys[i]], 10)} {mean_weights[i]:.2f}",
            per_head,
        )
    return table


def tokenize_view(result: TokenizeResult) -> RenderableType:
    return Group(
        _text_line(result.text),
        Text(f"{len(result.tokens)} tokens", style="dim"),
        tokens_table(result.tokens, result.text),
    )


def embed_view(result: EmbedResult) -> RenderableType:
    labels = [token.text for token in result.tokens]
    norms = Table(box=None, pad_edge=False, header_style="bold")
    norms.add_column("token")
    norms.add_column("‖e‖", justify="right")
    for label, vector in zip(labels, result.embeddings, strict=True):
        norms.add_row(visible(label), number(np.linalg.norm(vector)))
    width = result.embeddings.shape[1]
    return Group(
        _text_line(result.text),
        Text(f"{len(labels)} tokens × {width} dimensions (trained embeddings, reduced by PCA)", style="dim"),
        VectorTable(result.embeddings, labels),
        Text(""),
        norms,
    )


def similar_view(result: SimilarResult) -> RenderableType:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("token")
    table.add_column("id", justify="right")
    table.add_column("cosine", justify="right")
    table.add_column("", no_wrap=True)
    for rank, neighbor in enumerate(result.neighbors, start=1):
        table.add_row(
            str(rank),
            visible(neighbor.text),
            str(neighbor.id),
            number(neighbor.cosine),
            Text(_bar(max(neighbor.cosine, 0.0)), style="cyan"),
        )
    lead = Text.assemble(
        "Nearest neighbours of ", (visible(result.word), "bold"), f" (id {result.id}) by cosine similarity"
    )
    return Group(lead, table)


def softmax_view(result: SoftmaxResult) -> RenderableType:
    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=True, footer_style="bold")
    table.add_column("score x", justify="right", footer="sum")
    table.add_column("x − max", justify="right")
    table.add_column("exp(x − max)", justify="right", footer=number(result.exp.sum(), 4))
    table.add_column("probability", justify="right", footer=number(result.probabilities.sum(), 4))
    table.add_column("", no_wrap=True)
    for x, shifted, e, p in zip(result.scores, result.shifted, result.exp, result.probabilities, strict=True):
        table.add_row(number(x, 4), number(shifted, 4), number(e, 4), number(p, 4), Text(_bar(p), style="cyan"))
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
            (number(result.dot, 4), "bold"),
            f"    cosine = dot / (‖a‖ ‖b‖) = {number(result.cosine, 4)}",
        )
    )
    return Group(*parts)
