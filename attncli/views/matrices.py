"""Views of whole attention matrices: heatmap, model (every head at once) and rollout."""

from collections.abc import Callable

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.text import Text

from attncli import analysis
from attncli.results import AttentionRun, HeatmapResult, ModelGridResult, RolloutResult
from attncli.terminal import token_label
from attncli.views.common import (
    NORMS_LEAD,
    bar,
    head_heatmaps,
    head_name,
    kept_heads,
    layer_mask,
    model_line,
    numbered,
    plain_table,
    plural,
    quantity,
    rolled_through,
    row_sums,
    scale_hint,
    scale_top,
    text_line,
    token_texts,
)
from attncli.widgets.heatmap import Heatmap, Legend, window_note
from attncli.widgets.minimap import MiniHeatmap
from attncli.widgets.vectors import number

__all__ = ["head_thumbnails", "heatmap_view", "model_view", "rollout_view", "thumbnail_block", "thumbnail_cells"]


def heatmap_view(
    result: HeatmapResult,
    values: bool = True,
    scale: str = "fixed",
    keys: slice | None = None,
    queries: slice | None = None,
) -> RenderableType:
    run = result.run
    lead = f"Attention weights: rows are queries, columns are keys; {row_sums(run.model)}" + scale_hint(run, scale)
    return Group(
        text_line(run.text),
        model_line(run.model),
        Text(NORMS_LEAD if run.shows_norms else lead, style="italic"),
        Text(""),
        head_heatmaps(run, result.layer, result.head, values, scale=scale, keys=keys, queries=queries),
    )


# A window of more tokens than this is drawn as thumbnails THUMBNAIL cells a side, each cell the
# mean of a block of weights: 12 heads then take one screen, not a screen each.
WHOLE_LIMIT = 32
THUMBNAIL = 16


def model_view(
    result: ModelGridResult, scale: str = "fixed", keys: slice | None = None, queries: slice | None = None
) -> RenderableType:
    run = result.run
    tokens = len(run.tokens)
    rows, columns = run.window(queries, "queries"), run.window(keys, "keys")
    longest = max(len(rows), len(columns))
    block = thumbnail_block(longest, THUMBNAIL if longest > WHOLE_LIMIT else longest)
    what = f"{len(rows)} × {len(columns)} {'norms' if run.shows_norms else 'weights'}"
    if block > 1:
        what += f", drawn {THUMBNAIL} cells a side: each cell the mean of a {block} × {block} block"
        if not run.shows_norms:  # the norms' scale ends at the largest mean drawn
            what += " (means of many weights are small: --scale log or row shows them)"
    lead = (
        f"Every head at once: each square is one head's {what}, queries down, keys across. "
        "--layers and --heads (e.g. 0-2,5) zoom in."
    )
    if run.shows_norms:
        lead += (
            " Norms ‖αv W_O‖ (Kobayashi et al., 2020): how much each key adds to a head's output, the weight times "
            "the length of the key's value through the head's part of W_O; colours run from 0 to the largest value "
            "drawn, one scale for every head."
        )
    parts: list[RenderableType] = [
        text_line(run.text),
        model_line(run.model),
        Text(lead + ("" if run.shows_norms else scale_hint(run, scale)), style="italic"),
    ]
    if note := window_note(tokens, rows, columns, range(0)):
        parts.append(Text(note, style="dim"))
    cells = {layer: thumbnail_cells(run, layer, result.heads, rows, columns, block) for layer in result.layers}
    top = scale_top(run, [means for layer in cells.values() for means, _ in layer])
    for layer in result.layers:
        maps = head_thumbnails(run, layer, result.heads, rows, columns, block, scale, top=top, cells=cells[layer])
        parts += [Text(""), Columns(maps, padding=(0, 2))]
    parts += [Text(""), Legend(scale, top, quantity(run))]
    return Group(*parts)


def thumbnail_block(tokens: int, cells: int) -> int:
    """The side of the blocks whose means draw `tokens` weights a side in at most `cells` cells a
    side: every thumbnail (terminal, explorer, SVG) is drawn by this one rule."""
    return max(1, -(-tokens // max(cells, 1)))


def thumbnail_cells(
    run: AttentionRun, layer: int, heads: list[int], rows: range, columns: range, block: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each of `heads` of `layer`, a window of its values (the run's measure) in `block` × `block` blocks:
    their means and whether each block has a cell its query sees (see analysis.block_means)."""
    mask = layer_mask(run, layer)
    seen = np.ones((len(rows), len(columns)), bool) if mask is None else mask[np.ix_(rows, columns)]
    return [analysis.block_means(run.head(layer, head)[np.ix_(rows, columns)], seen, block) for head in heads]


def head_thumbnails(
    run: AttentionRun,
    layer: int,
    heads: list[int],
    rows: range,
    columns: range,
    block: int,
    scale: str,
    selected: int | None = None,
    title: Callable[[int, int], str] = head_name,
    top: float = 1.0,
    cells: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[MiniHeatmap]:
    """`heads` of `layer` as small heatmaps of a window of their values (the run's measure), each cell the
    mean of a `block` × `block` block (`cells`, where thumbnail_cells made them already), on a scale ending at
    `top`, each under `title(layer, head)`; the head `selected` is marked."""
    cells = cells or thumbnail_cells(run, layer, heads, rows, columns, block)
    return [
        MiniHeatmap(means, title(layer, head), scale, mask=seen, selected=head == selected, top=top)
        for head, (means, seen) in zip(heads, cells, strict=True)
    ]


# What rollout makes of ‖α v W_O‖ norms, which are no distributions.
_ROLLOUT_NORMS = (
    "Of ‖αv W_O‖ norms (Kobayashi et al., 2020), how much each key adds to a head's output: each head's rows "
    "divided by their sums, so that a key's share of a row is its share of those norms, in place of its weight."
)


def _rollout_sinks(model) -> str:
    """What rollout makes of a model's learned attention sinks, where it has them."""
    if not model.sinks:
        return ""
    return (
        " A head's learned sink takes part of each of its rows and passes nothing on: the renormalisation shares "
        "that part out among the row's tokens and the residual path, in proportion to their weights."
    )


def rollout_view(
    result: RolloutResult, scale: str = "fixed", keys: slice | None = None, queries: slice | None = None
) -> RenderableType:
    run = result.run
    final = result.rollout[-1]  # [T, T]
    after = (
        f"all {plural(len(result.rollout), 'layer')}"
        if run.selection.layers is None
        else f"{numbered('layer', run.layers)} alone (--layers)"
    )
    # what the first layer multiplied reads: the embeddings, or the output of the layers run before the first kept
    first = run.layers[0]
    source = "input token" if first == 0 else f"token of layer {first}'s input"
    parts: list[RenderableType] = [
        text_line(run.text),
        model_line(run.model),
        Text(
            f"Attention rollout (Abnar & Zuidema, 2020): each layer's {kept_heads(run)} fused by {result.fusion}, "
            "mixed with the residual as 0.5·A + 0.5·I, rows renormalised, and the layers multiplied. Row i: how much "
            f"each {source} flows into position i after {after}; each row sums to 1." + _rollout_sinks(run.model),
            style="italic",
        ),
        *([Text(_ROLLOUT_NORMS, style="italic")] if run.shows_norms else []),
        Text(""),
        Heatmap(
            final,
            token_texts(run),
            title=f"rollout {rolled_through(run)}",
            highlight=result.token,
            scale=scale,
            rows=run.window(queries, "queries"),
            columns=run.window(keys, "keys"),
        ),
    ]
    if result.token is not None:
        table = plain_table(("#", "right"), (source, "left"), ("share", "right"), ("", "left"))
        for key in result.sources:
            share = final[result.token, key]
            table.add_row(str(key), token_label(run.tokens[key].text), number(share), bar(share))
        name = token_label(run.tokens[result.token].text)
        kept = "" if run.selection.layers is None else " kept"
        parts += [
            Text(""),
            Text(f"Where “{name}” (token {result.token}) draws from, after every layer{kept}:", style="bold"),
            table,
        ]
        if result.left_out:
            shares = ", ".join(
                f"{token_label(run.tokens[key].text)} {number(final[result.token, key])}" for key in result.left_out
            )
            kinds = "special tokens and a decoder's first token" if run.model.causal else "special tokens"
            parts.append(Text(f"Left out: {shares} ({kinds}; --include-special lists them).", style="dim"))
    return Group(*parts)
