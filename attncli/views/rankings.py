"""Views that rank heads or tokens: query, heads, compare and check."""

import numpy as np
from rich.console import Group, RenderableType
from rich.text import Text

from attncli.analysis import BROAD_ENTROPY, PATTERN_SHARE
from attncli.escapes import visible
from attncli.results import CheckResult, CompareResult, HeadsResult, InductionTest, QueryResult
from attncli.terminal import abbreviate, token_label
from attncli.views.common import (
    bar,
    head_name,
    model_line,
    numbered,
    plain_table,
    plural,
    scale_top,
    text_line,
    token_texts,
)
from attncli.widgets.columns import FittedTable
from attncli.widgets.keybars import KeyBars
from attncli.widgets.vectors import number

__all__ = ["check_view", "compare_view", "heads_view", "query_chart", "query_view"]


def query_view(result: QueryResult, top: int = 12, keys: slice | None = None) -> RenderableType:
    run = result.run
    ranking = result.ranking[:top]
    if result.include_special:
        excluded = "itself"
    elif run.model.causal:
        excluded = "itself, special tokens and the first token, a decoder's attention sink,"
    else:
        excluded = "itself and special tokens"
    value = "norm" if run.shows_norms else "weight"
    if result.target is None:
        order = f"ranked by the {value} on its strongest key ({excluded} left out, and drawn dim)"
    else:
        order = f"ranked by the {value} on {_span_phrase(result, result.target, f'{value}s summed')}"
    lead = (
        f"What {_span_phrase(result, result.token, 'rows averaged')} attends to in each of "
        f"{plural(len(result.ranking), 'head')}, {order}. Showing the top {len(ranking)}; --top N for more, "
        "--json for all."
    )
    if run.shows_norms:
        lead += (
            " Norms ‖αv W_O‖ (Kobayashi et al., 2020): how much each key adds to the head's output, the weight "
            "times the length of the key's value through the head's part of W_O; bars run from 0 to the largest "
            "value drawn."
        )
    return Group(
        text_line(run.text), model_line(run.model), Text(lead, style="italic"), Text(""), query_chart(result, top, keys)
    )


def query_chart(
    result: QueryResult,
    top: int = 12,
    keys: slice | None = None,
    centre: int | None = None,
    pinned: tuple[int, int] | None = None,
    weight_format: str = ".2f",
    **bars,
) -> KeyBars:
    """The `top` ranked heads, each a row with its rank, top key (its weight as `weight_format`
    formats it) and a bar per key (a window of them: `keys`, else around `centre`, the target or the
    strongest key); the head `pinned` (layer, head), if given, first whatever its rank. `bars` go to
    KeyBars."""
    tokens = result.run.tokens
    ranked = list(enumerate(result.ranking[:top], start=1))
    if pinned is not None:
        rank = next(i for i, t in enumerate(result.ranking, start=1) if (t.layer, t.head) == pinned)
        ranked = [(rank, result.ranking[rank - 1]), *(entry for entry in ranked if entry[0] != rank)]
    ranking = [t for _, t in ranked]
    headers = ["#", "head", "top key", "norm" if result.run.shows_norms else "weight"]
    rows = [
        [
            str(rank),
            head_name(t.layer, t.head),
            abbreviate(token_label(tokens[t.top].text), 12),
            format(t.top_weight, weight_format),
        ]
        for rank, t in ranked
    ]
    if result.target is not None:
        headers.append("on " + abbreviate(_span_text(result, result.target), 9))
        for row, t in zip(rows, ranking, strict=True):
            row.append(f"{t.weights[result.target].sum():.2f}")
    weights = np.stack([t.weights for t in ranking])  # [heads, T]
    return KeyBars(
        headers,
        rows,
        weights,
        token_texts(result.run),
        muted=~result.allowed,
        columns=result.run.window(keys, "keys"),
        centre=centre if centre is not None or keys is not None or not ranking else _strongest(result),
        top=scale_top(result.run, [weights]),
        **bars,
    )


def _strongest(result: QueryResult) -> int:
    """Where a chart of `result` centres unless told: on the target, else the top head's strongest key."""
    return (result.target or [result.ranking[0].top])[0]


def _span_text(result: QueryResult, span: list[int]) -> str:
    """One token as its label (␣ for a word-start mark), a split word as the text has it."""
    return token_label(result.label(span)) if len(span) == 1 else visible(result.label(span))


def _span_phrase(result: QueryResult, span: list[int], combined: str) -> str:
    """“it” (token 9), or “didn't” (tokens 3–5, their <combined>)."""
    if len(span) == 1:
        return f"“{_span_text(result, span)}” (token {span[0]})"
    return f"“{_span_text(result, span)}” (tokens {span[0]}–{span[-1]}, their {combined})"


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
    ("duplicate", "dup"),
    ("induction", "ind"),
)
# The columns a narrow terminal loses first: entropy has its normalised twin, and distance is the
# least read.
_HEAD_COLUMNS_DROPPED = ("H", "dist")


# How heads and compare read ‖α v W_O‖ norms, where they need distributions (analysis.row_shares).
_NORMS_AS_SHARES = (
    "Of norms ‖αv W_O‖ (Kobayashi et al., 2020), how much each key adds to the head's output: each row divided by "
    "its sum, so that a key's share ({number}) is its share of the row's norms."
)


def heads_view(result: HeadsResult) -> RenderableType:
    headers = dict(_HEAD_COLUMNS)
    columns = [("head", "left"), *((header, "right") for _, header in _HEAD_COLUMNS), ("pattern", "left")]
    rows = [
        [
            head_name(*result.named(layer, head)),
            *(
                "–" if np.isnan(result.statistics[name][layer, head]) else f"{result.statistics[name][layer, head]:.2f}"
                for name, _ in _HEAD_COLUMNS
            ),
            str(result.labels[layer, head]),
        ]
        for layer, head in result.ordered
    ]
    droppable = tuple(header for header in _HEAD_COLUMNS_DROPPED if header != headers.get(result.sort))
    table = FittedTable(columns, rows, droppable)
    if result.induction_test is not None:
        source = _induction_lines(result.induction_test)
    elif result.text is not None:
        source = Text.assemble(("Text: ", "bold"), visible(result.text))
    else:
        source = Text(f"Averaged over {plural(result.texts, 'text')}.", style="bold")
    entropies, shares = "H entropy in nats, and over ln of the keys a row sees", ""
    if result.model.sinks and result.measure == "weights":
        entropies = "H entropy in nats (a learned sink's share one more key), and over ln of the keys a row sees + 1"
        shares = " Shares are of the whole row, the part its head's learned sink takes included."
    key = Text(
        f"Means over the query rows: {entropies}; dist = Σ weight·|i − j|; "
        "the share on the token itself, the previous and next token, the first special token ([CLS], <s>), the "
        "other special tokens ([SEP], </s>), punctuation; max = the largest weight of a row; dup and ind = the "
        "share on earlier copies of the token and on the tokens after them (TransformerLens's duplicate-token and "
        "induction scores; prev is its previous-token score), over the rows that have one. – = not in the text. "
        f"Pattern: the largest of the previous, next, self and delimiter (special + punctuation) shares names the "
        f"head if it is at least {PATTERN_SHARE}; else broad if H/ln n ≥ {BROAD_ENTROPY}, else mixed." + shares,
        style="dim",
    )
    lead = []
    if result.measure == "norms":
        lead = [Text(_NORMS_AS_SHARES.format(number="the weight below"), style="italic")]
    parts: list[RenderableType] = [source, model_line(result.model), *lead]
    if result.sort is not None:
        first = "the smallest" if result.sort in ("layer", "head", "pattern") else "the largest"
        shown = headers.get(result.sort, result.sort)
        parts.append(Text(f"Sorted by {shown}, {first} first.", style="italic"))
    return Group(*parts, Text(""), table, Text(""), key)


def _induction_lines(test: InductionTest) -> Group:
    """What heads --induction ran: the random tokens of the first copy, and the special tokens around them."""
    tokens, copy = test.tokens, test.copy
    before = " ".join(token_label(t.text) for t in tokens[: copy[0].index])
    after = " ".join(token_label(t.text) for t in tokens[copy[-1].index + test.length + 1 :])
    around = {(True, True): f", between {before} and {after}", (True, False): f", after {before}"}.get(
        (bool(before), bool(after)), f", before {after}" if after else ""
    )
    return Group(
        Text.assemble(
            ("Induction test: ", "bold"),
            f"{test.length} random tokens of the vocabulary (seed {test.seed}), then the same {test.length} again"
            f"{around}; dup and ind are the second copy's.",
        ),
        Text.assemble(("Random tokens: ", "bold"), visible(" ".join(token_label(t.text) for t in copy))),
    )


def compare_view(result: CompareResult, top: int = 8) -> RenderableType:
    a, b = result.a, result.b
    name = token_label(a.tokens[result.token_a].text)
    table = plain_table(("#", "right"), ("head", "left"), ("TV", "right"), ("top in A", "left"), ("top in B", "left"))
    for rank, (layer, head) in enumerate(result.ranking[:top], start=1):
        row_a, row_b = result.rows[0][layer, head], result.rows[1][layer, head]
        top_a, top_b = (int(top[layer, head]) for top in result.strongest)
        table.add_row(
            str(rank),
            head_name(*result.named(layer, head)),
            f"{result.change[layer, head]:.2f}",
            f"{token_label(a.tokens[top_a].text)} {row_a[top_a]:.2f}",
            f"{token_label(b.tokens[top_b].text)} {row_b[top_b]:.2f}",
        )
    layer, head = result.ranking[0]
    spread_a, spread_b = result.spread
    aligned = plain_table(
        ("key in A", "left"), ("A", "right"), ("", "left"), ("B", "right"), ("", "left"), ("key in B", "left")
    )
    for slot, (i, j) in enumerate(result.slots):
        weight_a, weight_b = spread_a[layer, head, slot], spread_b[layer, head, slot]
        aligned.add_row(
            "—" if i is None else token_label(a.tokens[i].text),
            "" if i is None else number(weight_a),
            Text("") if i is None else bar(weight_a, 12),
            "" if j is None else number(weight_b),
            Text("") if j is None else bar(weight_b, 12),
            "—" if j is None else token_label(b.tokens[j].text),
        )
    unpaired_a = ", ".join(token_label(a.tokens[i].text) for i in result.unpaired(0)) or "none"
    unpaired_b = ", ".join(token_label(b.tokens[j].text) for j in result.unpaired(1)) or "none"
    learned_sinks = not a.shows_norms and (a.model.sinks or b.model.sinks)
    sinks = ", and the share each head's learned sink takes counted as one more key." if learned_sinks else "."
    if a.shows_norms:
        sinks = ". " + _NORMS_AS_SHARES.format(number="the numbers below")
    selected = (("layer", a.selection.layers), ("head", a.selection.heads))
    kept = [numbered(axis, chosen) for axis, chosen in selected if chosen is not None]
    if kept:
        sinks += f" Of {' and '.join(kept)} kept alone."
    if result.two_models:
        opening = [
            text_line(a.text),
            Text.assemble(("A: ", "bold"), model_line(a.model, caveat=False)),
            Text.assemble(("B: ", "bold"), model_line(b.model, caveat=False)),
        ]
        lead = (
            f"How the attention of “{name}” (token {result.token_a}) changes from checkpoint A to B, head by head: "
            "TV is the total variation distance between its two distributions (0 the same, 1 disjoint)" + sinks
        )
        unpaired = []
    else:
        opening = [
            Text.assemble(("A: ", "bold"), visible(a.text)),
            Text.assemble(("B: ", "bold"), visible(b.text)),
            model_line(a.model),
        ]
        lead = (
            f"How the attention of “{name}” (token {result.token_a} in A, {result.token_b} in B) changes, head by "
            "head: TV is the total variation distance between its two distributions (0 the same, 1 disjoint), "
            "with keys paired by their text" + sinks
        )
        unpaired = [Text(f"No partner in B for: {unpaired_a}. No partner in A for: {unpaired_b}.", style="dim")]
    return Group(
        *opening,
        Text(lead, style="italic"),
        Text(""),
        table,
        Text(""),
        Text(
            f"Aligned, in the most changed head, {head_name(*result.named(layer, head))}:"
            if result.change[layer, head] > 0
            else f"No head changed; aligned, in {head_name(*result.named(layer, head))}:",
            style="bold",
        ),
        aligned,
        *unpaired,
    )


def check_view(result: CheckResult) -> RenderableType:
    values = "‖αv W_O‖ norm" if result.run.shows_norms else "attention weight"
    verdict = (
        Text(f"passed: every {values} is within {result.tolerance:g}", style="bold green")
        if result.passed
        else Text(
            f"FAILED: attention moved by up to {result.max_difference:.3g} (tolerance {result.tolerance:g})",
            style="bold red",
        )
    )
    heads = plain_table(("head", "left"), ("largest change", "right"))
    for layer, head, difference in result.worst_heads:
        heads.add_row(head_name(layer, head), f"{difference:.3g}")
    cells = plain_table(("head", "left"), ("query", "left"), ("key", "left"), ("saved", "right"), ("now", "right"))
    labels = [token_label(label) for label in token_texts(result.run)]
    for layer, head, query, key in result.worst_cells:
        cells.add_row(
            head_name(layer, head),
            f"{query} {labels[query]}",
            f"{key} {labels[key]}",
            f"{result.saved[layer, head, query, key]:.6f}",
            f"{result.run.attention[layer, head, query, key]:.6f}",
        )
    parts: list[RenderableType] = [text_line(result.run.text), model_line(result.run.model), verdict]
    if not result.worst_cells:
        return Group(*parts, Text("No weight moved at all.", style="dim"))
    return Group(
        *parts,
        Text(""),
        Text("Heads that moved most:", style="bold"),
        heads,
        Text(""),
        Text("Cells that moved most:", style="bold"),
        cells,
    )
