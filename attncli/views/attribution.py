"""The view of direct logit attribution: the heads that push the logit up and down most, what each kind of part
adds, and every head of the model as a grid on a scale centred on 0, the feed-forward networks beside it."""

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from attncli.results import AttributionResult, VocabularyToken
from attncli.terminal import token_label
from attncli.views.common import bar, head_name, model_line, plain_table, text_line
from attncli.widgets.diverging import DOWN, UP, DivergingGrid, DivergingLegend, signed

__all__ = ["attribution_chart", "attribution_view"]

# How each kind of component reads in the line of totals.
_KIND_NAMES = {"embed": "embed", "head": "heads", "attn bias": "attn biases", "mlp": "mlps", "bias": "bias"}
# The grid's columns beside the heads, each layer's: (its header, what it is).
_COLUMNS = {"attn bias": ("b_O", "attention output bias (b_O)"), "mlp": ("mlp", "feed-forward network (mlp)")}


def _token(token: VocabularyToken) -> str:
    """“␣Paris” (#1234), or #1234 alone where the tokenizer has no piece for the id."""
    return f"#{token.id}" if token.text is None else f"“{token_label(token.text)}” (#{token.id})"


def _lead(result: AttributionResult) -> str:
    position = result.tokens[result.position]
    what = f"the logit of {_token(result.target)}"
    if result.predicted:
        what += ", the next token the model predicts"
    if result.versus is not None:
        what += f", less that of {_token(result.versus)} (a logit difference)"
    lead = (
        f"Direct logit attribution after token {result.position} “{token_label(position.text)}”: what each part of "
        f"the residual stream adds to {what}, through the final norm with its scale there frozen. The parts add up "
        f"to {result.logit:.3f}."
    )
    if result.soft_cap is not None:
        lead += (
            f" The head caps its logits at {result.soft_cap:g} (cap · tanh(z / cap)), which is not linear: this is "
            "z, before the cap."
        )
    return lead


def _ranked(result: AttributionResult, heads: list[int], title: str, largest: float, colour: str) -> Table:
    """The heads `heads` in a table of their contributions, each with a bar (in `colour`) of its magnitude."""
    table = plain_table(("#", "right"), ("head", "left"), ("Δ logit", "right"), ("", "left"))
    table.title, table.title_justify, table.title_style = title, "left", "bold"
    for rank, index in enumerate(heads, start=1):
        component, value = result.components[index], float(result.contributions[index])
        magnitude = bar(abs(value) / largest if largest > 0 else 0.0, 12)
        magnitude.style = colour
        table.add_row(str(rank), head_name(component.layer, component.head), f"{value:+.3f}", magnitude)
    return table


def _grid(result: AttributionResult) -> tuple[DivergingGrid, list[str], list[str]]:
    """Every head's contribution as [layers, heads], each layer's attention bias and mlp in columns beside; the parts
    no layer holds (embed, bias), for a line under it; and what the columns beside the heads are."""
    model = result.model
    kinds = {component.kind for component in result.components}
    extras = [kind for kind in ("attn bias", "mlp") if kind in kinds]
    grid = np.full((model.layers, model.heads + len(extras)), np.nan)  # [L, h + extras]
    others = []
    for component, value in zip(result.components, result.contributions, strict=True):
        if component.kind == "head":
            grid[component.layer, component.head] = value
        elif component.kind in extras:
            grid[component.layer, model.heads + extras.index(component.kind)] = value
        else:
            others.append(f"{component.name} {signed(float(value))}")
    columns = [f"H{head}" for head in range(model.heads)] + [_COLUMNS[kind][0] for kind in extras]
    layers = [f"L{layer}" for layer in range(model.layers)]
    return DivergingGrid(grid, layers, columns), others, [_COLUMNS[kind][1] for kind in extras]


def attribution_chart(result: AttributionResult, top: int = 10) -> Group:
    """The ranked heads (up and down, `top` of each), the totals by kind and the model's grid with its legend."""
    ranking = result.ranking
    up = [i for i in ranking if result.contributions[i] > 0][:top]
    down = [i for i in reversed(ranking) if result.contributions[i] < 0][:top]
    largest = float(np.abs(result.contributions[ranking]).max()) if ranking else 0.0
    tables = [
        _ranked(result, up, "Heads that push it up", largest, UP),
        _ranked(result, down, "Heads that push it down", largest, DOWN),
    ]
    totals = " ".join(f"{_KIND_NAMES[kind]} {value:+.3f}" for kind, value in result.totals.items())
    grid, others, beside = _grid(result)
    return Group(
        Columns(tables, padding=(0, 4)),
        Text(""),
        Text(f"By kind: {totals} = {result.logit:.3f}"),
        Text(""),
        Text(f"Every head, layers down; beside them, each layer's {' and '.join(beside)}:", style="bold"),
        grid,
        Text("; ".join(others)) if others else Text(""),
        DivergingLegend(grid.limit, "pushes down", "pushes up"),
    )


def attribution_view(result: AttributionResult, top: int = 10) -> RenderableType:
    return Group(
        text_line(result.text),
        model_line(result.model),
        Text(_lead(result), style="italic"),
        Text(""),
        attribution_chart(result, top),
    )
