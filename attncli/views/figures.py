"""SVG figures of results (`--export FILE.svg`), for a paper or slides: real vector drawings, not
pictures of a terminal.

A heatmap (heatmap, explain's head, rollout) has every token's label in full (the keys' turned
upright), row and column indices, a colour bar with ticks, a title naming model, layer and head
(or the title given), and the weight written in each cell where it fits, in black or white,
whichever contrasts more with the cell (WCAG: at least 4.5:1 on every viridis colour). `model` is
a grid of heads, `query` a bar chart of the ranked heads; every figure draws the window of keys
and queries asked for. A label is the token as a paper writes the word: without the terminal's
mark of a word's start (␣). Colours are the terminal's viridis on the same scales; fonts are the
system's, so the file fetches nothing. Every text is escaped for XML, the characters XML forbids
spelled as escapes, so every figure parses whatever its text holds.

A result with no figure of its own gets a picture of its terminal view (`terminal_picture`).
"""

import html
import io
import re

import numpy as np

from attncli.results import AttentionRun, ExplainResult, HeatmapResult, ModelGridResult, QueryResult, RolloutResult
from attncli.terminal import make_console
from attncli.views.common import (
    figure_name,
    head_name,
    kept_heads,
    layer_mask,
    markup_text,
    quantity,
    rolled_through,
    scale_top,
    word_texts,
)
from attncli.views.matrices import thumbnail_block, thumbnail_cells
from attncli.widgets.heatmap import LOG_FLOOR, VIRIDIS, colour_of, fractions, scale_number, span

__all__ = ["FIGURES", "contrast", "ink", "terminal_picture"]

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
CHARACTER = 0.62  # a character's width in ems, generously, to lay text out without measuring it
MASKED = "#d9d9d9"  # a cell its query may not see


def _luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def ink(background: tuple[int, int, int]) -> str:
    """Black or white, whichever contrasts more with `background`."""
    return "#000" if contrast(background, (0, 0, 0)) >= contrast(background, (255, 255, 255)) else "#fff"


def _rgb(fraction: float) -> tuple[int, int, int]:
    return colour_of(fraction).get_truecolor()


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _text(x: float, y: float, content: str, size: float, **attributes) -> str:
    """A <text> element: `content` made visible (see views.common.markup_text) and escaped."""
    extra = "".join(f' {name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}"{extra}>{html.escape(markup_text(content))}</text>'


def _width(content: str, size: float) -> float:
    return len(content) * size * CHARACTER


def _document(width: float, height: float, title: str, subtitle: str, body: list[str]) -> str:
    """The SVG file: the title and subtitle at its top left, then `body`; at least as wide as they are."""
    title = markup_text(title)  # a typed title, or a model's name, may hold anything
    width = max(width, 40 + _width(title, 16), 40 + _width(subtitle, 11))
    heading = [_text(20, 24, title, 16, font_weight="bold", fill="#111"), _text(20, 42, subtitle, 11, fill="#555")]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}">\n'
        f"<title>{html.escape(title)}</title>\n"
        f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(heading + body) + "\n</svg>\n"
    )


def _colour_bar(
    x: float, y: float, scale: str, scale_end: float = 1.0, quantity: str = "weight"
) -> tuple[list[str], float]:
    """The colour scale of values named `quantity` as a bar with ticks, the fixed and log scales ending at
    `scale_end` (1 for weights): (its elements, its height)."""
    width, height = 240, 12
    stops = "".join(
        f'<stop offset="{i / (len(VIRIDIS) - 1):.3f}" stop-color="{_hex(tuple(int(c) for c in stop))}"/>'
        for i, stop in enumerate(VIRIDIS)
    )
    name = {
        "fixed": quantity,
        "row": f"share of the row's largest {quantity}",
        "log": f"{quantity} (log scale)",
    }[scale]
    ticks = {
        "fixed": [(0, "0"), (0.25, "0.25"), (0.5, "0.5"), (0.75, "0.75"), (1, "1")],
        "row": [(0, "0"), (0.5, "0.5"), (1, "row max")],
        "log": [(0, f"≤{LOG_FLOOR}"), (1 / 3, "0.01"), (2 / 3, "0.1"), (1, "1")],
    }[scale]
    if scale_end != 1.0 and scale != "row":  # a norm's scale: 0 (or its floor) to the largest drawn
        name += f", 0 to the largest drawn, {scale_number(scale_end)}" if scale == "fixed" else ", to the largest drawn"
        ticks = [(position, scale_number(scale_end * float(label.lstrip("≤")))) for position, label in ticks]
        if scale == "log":
            ticks[0] = (0, f"≤{ticks[0][1]}")
    parts = [
        f'<defs><linearGradient id="viridis">{stops}</linearGradient></defs>',
        _text(x, y + 10, name, 11, fill="#333"),
        f'<rect x="{x:.1f}" y="{y + 16:.1f}" width="{width}" height="{height}" fill="url(#viridis)"/>',
    ]
    for position, label in ticks:
        at = x + position * width
        parts.append(f'<line x1="{at:.1f}" y1="{y + 16 + height}" x2="{at:.1f}" y2="{y + 20 + height}" stroke="#333"/>')
        parts.append(_text(at, y + 32 + height, label, 10, fill="#333", text_anchor="middle"))
    return parts, 32 + height + 6


def matrix_svg(
    weights: np.ndarray,
    labels: list[str],  # readable (views.common.word_texts)
    title: str,
    subtitle: str,
    scale: str,
    mask: np.ndarray | None,
    rows: range | None = None,
    columns: range | None = None,
    scale_end: float = 1.0,
    quantity: str = "weight",
) -> str:
    """A [T, T] matrix (or the window `rows` × `columns` of it) as a heatmap: queries down, keys
    across, every label whole, each with its index; its values named `quantity`, the fixed and log
    scales ending at `scale_end` (1 for weights)."""
    rows = range(len(labels)) if rows is None else rows
    columns = range(len(labels)) if columns is None else columns
    cell = float(min(36, max(4, round(900 / max(len(rows), len(columns))))))
    names = [f"{i} {markup_text(label)}" for i, label in enumerate(labels)]
    font = min(12.0, max(cell * 0.8, 6.0))
    side = max(_width(names[i], font) for i in [*rows, *columns]) + 8  # room for the labels: left, and above
    margin, header = 20, 54
    left, top = margin + side, header + side
    body = []
    shares = fractions(weights, scale, scale_end)  # of whole rows: a window does not change a row's largest weight
    values = cell >= 30
    for row, q in enumerate(rows):
        y = top + row * cell
        body.append(_text(left - 4, y + cell / 2 + font / 3, names[q], font, text_anchor="end", fill="#111"))
        for column, k in enumerate(columns):
            x = left + column * cell
            if mask is not None and not mask[q, k]:
                body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:g}" height="{cell:g}" fill="{MASKED}"/>')
                continue
            rgb = _rgb(float(shares[q, k]))
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:g}" height="{cell:g}" fill="{_hex(rgb)}"/>')
            if values:
                number = f"{weights[q, k]:.2f}"
                body.append(_text(x + cell / 2, y + cell / 2 + 3.5, number, 10, fill=ink(rgb), text_anchor="middle"))
    for column, k in enumerate(columns):
        x = left + column * cell + cell / 2 + font / 3
        body.append(_text(x, top - 4, names[k], font, fill="#111", transform=f"rotate(-90 {x:.1f} {top - 4:.1f})"))
    bottom = top + len(rows) * cell + 14
    bar, bar_height = _colour_bar(left, bottom, scale, scale_end, quantity)
    body += bar
    if mask is not None and not mask.all():
        body.append(_text(left + 280, bottom + 10, "grey: masked (not seen by the query)", 11, fill="#333"))
    width = max(left + len(columns) * cell + margin, left + 560)
    return _document(width, bottom + bar_height + margin, title, subtitle, body)


def _subtitle(run: AttentionRun, rows: range | None = None, columns: range | None = None) -> str:
    """The text (made visible: XML takes no control characters) and its length, and the window of
    queries (`rows`) and keys (`columns`) drawn when it is not all of them."""
    text = markup_text(run.text if len(run.text) <= 110 else run.text[:109] + "…")
    tokens = len(run.tokens)
    shown = [
        f"{what} {span(chosen)}"
        for what, chosen in (("queries", rows), ("keys", columns))
        if chosen is not None and len(chosen) < tokens
    ]
    return f"“{text}” · {tokens} tokens" + (f" (drawn: {' and '.join(shown)})" if shown else "")


def _head_figure(run: AttentionRun, layer: int, head: int, scale: str, keys, queries, title: str | None) -> str:
    rows, columns = run.window(queries, "queries"), run.window(keys, "keys")
    values = run.head(layer, head)  # [T, T]
    measure = " · ‖αv W_O‖" if run.shows_norms else ""
    return matrix_svg(
        values,
        word_texts(run),
        title or f"{figure_name(run.model)} · layer {layer}, head {head}{measure}",
        _subtitle(run),
        scale,
        layer_mask(run, layer),
        rows,
        columns,
        scale_top(run, [values[np.ix_(rows, columns)]]),
        quantity(run),
    )


def heatmap_figure(result: HeatmapResult, scale="fixed", keys=None, queries=None, title=None, **_) -> str:
    """The head --head names (the first kept without it): a figure shows one head."""
    return _head_figure(result.run, result.layer, result.run.one_head(result.head), scale, keys, queries, title)


def explain_figure(result: ExplainResult, scale="fixed", keys=None, queries=None, title=None, **_) -> str:
    return _head_figure(result.run, result.layer, result.walk_head, scale, keys, queries, title)


def rollout_figure(result: RolloutResult, scale="fixed", keys=None, queries=None, title=None, **_) -> str:
    run = result.run
    return matrix_svg(
        result.rollout[-1],
        word_texts(run),
        title
        or f"{figure_name(run.model)} · attention rollout {rolled_through(run)} ({result.fusion} of {kept_heads(run)}"
        + (", of ‖αv W_O‖ norms as shares of each row)" if run.shows_norms else ")"),
        _subtitle(run),
        scale,
        None,
        run.window(queries, "queries"),
        run.window(keys, "keys"),
    )


GRID_CELLS = 24  # a thumbnail's cells a side at most: longer texts are drawn in block means


def model_figure(result: ModelGridResult, scale="fixed", keys=None, queries=None, title=None, **_) -> str:
    """Every chosen layer × head as a thumbnail of the window of queries and keys asked for, each
    cell the mean of a block when the window is long."""
    run = result.run
    rows, columns = run.window(queries, "queries"), run.window(keys, "keys")
    block = thumbnail_block(max(len(rows), len(columns)), GRID_CELLS)
    cells = -(-max(len(rows), len(columns)) // block)
    pixel = max(2.0, round(96 / cells))
    size = cells * pixel
    margin, header, gap = 20, 70, 14
    values = "‖αv W_O‖ norms" if run.shows_norms else "weights"
    body = [
        _text(
            margin,
            58,
            f"each square: one head's {values}, queries down, keys across"
            + (f"; each cell the mean of a {block} × {block} block" if block > 1 else ""),
            11,
            fill="#555",
        ),
    ]
    cells = {layer: thumbnail_cells(run, layer, result.heads, rows, columns, block) for layer in result.layers}
    scale_end = scale_top(run, [means for layer in cells.values() for means, _ in layer])
    for row, layer in enumerate(result.layers):
        for column, (head, (means, any_seen)) in enumerate(zip(result.heads, cells[layer], strict=True)):
            x0, y0 = margin + column * (size + gap), header + row * (size + gap + 14)
            body.append(_text(x0, y0 + 10, head_name(layer, head), 11, fill="#111"))
            shares = fractions(means, scale, scale_end)
            for q in range(means.shape[0]):
                for k in range(means.shape[1]):
                    fill = _hex(_rgb(float(shares[q, k]))) if any_seen[q, k] else MASKED
                    body.append(
                        f'<rect x="{x0 + k * pixel:.1f}" y="{y0 + 14 + q * pixel:.1f}" width="{pixel:g}" '
                        f'height="{pixel:g}" fill="{fill}"/>'
                    )
    bottom = header + len(result.layers) * (size + gap + 14)
    bar, bar_height = _colour_bar(margin, bottom, scale, scale_end, quantity(run))
    body += bar
    width = max(margin * 2 + len(result.heads) * (size + gap), 560)
    title = title or f"{figure_name(run.model)} · every head" + (" · ‖αv W_O‖" if run.shows_norms else "")
    return _document(width, bottom + bar_height + margin, title, _subtitle(run, rows, columns), body)


def query_figure(result: QueryResult, top: int = 12, keys=None, title=None, **_) -> str:
    """The ranked heads as rows of bars over every key (or the window of keys asked for): the chart
    of `query`, whole."""
    run = result.run
    drawn = run.window(keys, "keys")
    ranking = result.ranking[:top]
    bar = float(min(16, max(2, round(900 / len(drawn)))))
    rise = 30.0
    labels = [markup_text(label) for label in word_texts(run)]
    names = [f"{i} {label}" for i, label in enumerate(labels)]
    columns = [
        [f"{rank}", head_name(t.layer, t.head), labels[t.top], f"{t.top_weight:.2f}"]
        for rank, t in enumerate(ranking, start=1)
    ]
    headers = ["#", "head", "top key", "norm" if run.shows_norms else "weight"]
    full = scale_top(run, [t.weights[drawn.start : drawn.stop] for t in ranking])  # a full bar: 1, or the largest norm
    widths = [max(_width(row[i], 11) for row in [headers, *columns]) + 10 for i in range(4)]
    margin = 20
    left = margin + sum(widths)
    query = ", ".join(labels[i] for i in result.token)
    measure = ", ‖αv W_O‖" if run.shows_norms else ""
    title = title or f"{figure_name(run.model)} · what “{query}” attends to, heads ranked{measure}"
    labelled = bar >= 10
    label_room = max(_width(names[k], 10) for k in drawn) + 8 if labelled else 16
    top_y = 70 + label_room
    subtitle = _subtitle(run, None, drawn) + " · grey: keys left out of the ranking"
    if run.shows_norms:
        subtitle += f" · a full bar: the largest norm drawn, {scale_number(full)}"
    body = []
    x = margin
    for header, width in zip(headers, widths, strict=True):
        body.append(_text(x, top_y - 6, header, 11, font_weight="bold", fill="#111"))
        x += width
    for column, k in enumerate(drawn):
        x = left + column * bar + bar / 2
        if labelled:
            body.append(
                _text(x + 3.5, top_y - 6, names[k], 10, fill="#111", transform=f"rotate(-90 {x + 3.5:.1f} {top_y - 6})")
            )
        elif k % 10 == 0:
            body.append(_text(x, top_y - 6, str(k), 9, fill="#111", text_anchor="middle"))
    for row, (cells, target) in enumerate(zip(columns, ranking, strict=True)):
        y = top_y + row * (rise + 8)
        x = margin
        for content, width in zip(cells, widths, strict=True):
            body.append(_text(x, y + rise - 6, content, 11, fill="#111"))
            x += width
        body.append(
            f'<line x1="{left}" y1="{y + rise:.1f}" x2="{left + len(drawn) * bar:.1f}" y2="{y + rise:.1f}" '
            'stroke="#bbb"/>'
        )
        for column, k in enumerate(drawn):
            height = rise * min(float(target.weights[k]) / full, 1.0)
            colour = "#2c728e" if result.allowed[k] else "#b5b5b5"
            body.append(
                f'<rect x="{left + column * bar + 0.5:.1f}" y="{y + rise - height:.2f}" width="{max(bar - 1, 1):g}" '
                f'height="{height:.2f}" fill="{colour}"/>'
            )
    width = left + len(drawn) * bar + margin
    return _document(max(width, 560), top_y + len(columns) * (rise + 8) + margin, title, subtitle, body)


FIGURES = {
    HeatmapResult: heatmap_figure,
    ExplainResult: explain_figure,
    RolloutResult: rollout_figure,
    ModelGridResult: model_figure,
    QueryResult: query_figure,
}


# rich's own SVG template (rich._export_format.CONSOLE_SVG_FORMAT) without what it fetches: its Fira
# Code fonts come from a CDN, in url(...)s. A monospace font of the system's draws the same grid.
_TERMINAL_SVG = """\
<svg class="rich-terminal" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">
    <style>
    .{unique_id}-matrix {{
        font-family: "Fira Code", Menlo, "DejaVu Sans Mono", Consolas, monospace;
        font-size: {char_height}px;
        line-height: {line_height}px;
        font-variant-east-asian: full-width;
    }}

    .{unique_id}-title {{
        font-size: 18px;
        font-weight: bold;
        font-family: system-ui, sans-serif;
    }}

    {styles}
    </style>

    <defs>
    <clipPath id="{unique_id}-clip-terminal">
      <rect x="0" y="0" width="{terminal_width}" height="{terminal_height}" />
    </clipPath>
    {lines}
    </defs>

    {chrome}
    <g transform="translate({terminal_x}, {terminal_y})" clip-path="url(#{unique_id}-clip-terminal)">
    {backgrounds}
    <g class="{unique_id}-matrix">
    {matrix}
    </g>
    </g>
</svg>
"""

# rich's HTML template (CONSOLE_HTML_FORMAT) with a title; $title is put in before rich fills the rest.
_TERMINAL_HTML = """\
<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<title>$title</title>
<style>
{stylesheet}
body {{
    color: {foreground};
    background-color: {background};
}}
</style>
</head>
<body>
    <pre style="font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace">\
<code style="font-family:inherit">{code}</code></pre>
</body>
</html>
"""

# What XML 1.0 forbids: C0 controls but tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"


def terminal_picture(renderable, kind: str, width: int, title: str | None = None) -> str:
    """A view as a truecolor terminal `width` columns wide shows it, as an SVG or HTML document (`kind`
    ".svg" or ".html") that fetches nothing, titled `title` (else "attncli"). A character XML forbids
    becomes U+FFFD, one cell wide as a terminal draws it."""
    console = make_console("always", file=io.StringIO(), width=width, record=True)
    console.print(renderable)
    title = markup_text(title or "attncli")
    if kind == ".svg":
        document = console.export_svg(title=title, code_format=_TERMINAL_SVG)
    else:
        heading = html.escape(title).replace("{", "{{").replace("}", "}}")
        document = console.export_html(inline_styles=True, code_format=_TERMINAL_HTML.replace("$title", heading))
    return re.sub(_NOT_XML, "\ufffd", document)
