"""`Heatmap`: a matrix of weights as a grid of coloured cells, with labelled axes and a legend."""

import math

import numpy as np
from rich.cells import cell_len
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from attncli.terminal import abbreviate, downward, pad, token_label

__all__ = [
    "SHADES",
    "VIRIDIS",
    "Heatmap",
    "Legend",
    "colour_of",
    "colours_of",
    "fractions",
    "shade_levels",
    "span",
    "uses_colour",
    "window_note",
]

# Viridis (perceptually uniform, readable with the common colour-vision
# deficiencies) sampled at nine evenly spaced stops; colours in between are
# interpolated linearly in RGB.
VIRIDIS = np.array(
    [
        (0x44, 0x01, 0x54),
        (0x47, 0x2D, 0x7B),
        (0x3B, 0x52, 0x8B),
        (0x2C, 0x72, 0x8E),
        (0x21, 0x91, 0x8C),
        (0x28, 0xAE, 0x80),
        (0x5E, 0xC9, 0x62),
        (0xAD, 0xDC, 0x30),
        (0xFD, 0xE7, 0x25),
    ],
    dtype=float,
)
# Without colour, five shades: blank for the lowest fifth of the scale; on the fixed scale, below
# the first of FIXED_SHADE_EDGES.
SHADES = " ░▒▓█"
# Where the shades after the blank begin on the fixed scale. A row of n keys averages 1/n, so even
# fifths would leave every weight of a long text under 0.2 blank, and the view empty where its
# numbers are not: these steps rank a long text's weights (twice the average of 100 keys is 0.02)
# and still tell a short text's strong weights from its middling ones.
FIXED_SHADE_EDGES = (0.01, 0.05, 0.2, 0.5)
_LABEL_LIMIT = 12  # characters of a row label before it is abbreviated


# log scale: weights from LOG_FLOOR (and below) to 1 spread over the colours by their log10.
LOG_FLOOR = 1e-3


def fractions(weights: np.ndarray, scale: str, top: float = 1.0) -> np.ndarray:
    """Where each weight of `weights` [..., T] falls on the colour scale, 0 … 1: the weight itself
    (fixed), the weight over its row's largest (row), or (log10(weight) + 3) / 3, from 0.001 (log).
    Values on a scale that ends at `top` rather than 1 (‖α v W_O‖ norms, to the largest drawn) fall
    where value / top does."""
    if top != 1.0:
        weights = weights / top
    if scale == "row":
        top = weights.max(axis=-1, keepdims=True)
        return weights / np.where(top > 0, top, 1.0)
    if scale == "log":
        return (np.log10(np.maximum(weights, LOG_FLOOR)) - math.log10(LOG_FLOOR)) / -math.log10(LOG_FLOOR)
    return np.clip(weights, 0.0, 1.0)


def scale_number(value: float) -> str:
    """A value the colour scale names, in three significant digits at most: 4.31, 0.0431, 431."""
    return f"{value:.3g}"


def _ticks(scale: str, top: float = 1.0) -> list[tuple[float, str]]:
    """(position on the scale, label) of the legend's ticks, on a scale that ends at `top`."""
    if top != 1.0 and scale != "row":
        if scale == "log":
            return [(0.0, f"≤{scale_number(top * LOG_FLOOR)}"), (1 / 3, ""), (2 / 3, ""), (1.0, scale_number(top))]
        return [(0.0, "0"), (0.5, scale_number(top / 2)), (1.0, scale_number(top))]
    if scale == "log":
        return [(0.0, "≤0.001"), (1 / 3, "0.01"), (2 / 3, "0.1"), (1.0, "1")]
    top = "row max" if scale == "row" else "1"
    return [(0.0, "0"), (0.25, ".25"), (0.5, ".5"), (0.75, ".75"), (1.0, top)]


def shade_levels(weights: np.ndarray, scale: str, top: float = 1.0) -> np.ndarray:
    """Which of SHADES (an index, 0 blank) draws each weight of `weights` [..., T] without colour: on
    the fixed scale the steps of FIXED_SHADE_EDGES (of `top`, where the scale ends there), on the others
    a fifth of the scale (`fractions`) each."""
    if scale == "fixed":
        return np.searchsorted(FIXED_SHADE_EDGES, weights if top == 1.0 else weights / top, side="right")
    return np.minimum((fractions(weights, scale, top) * len(SHADES)).astype(int), len(SHADES) - 1)


def colour_of(fraction: float) -> Color:
    """The viridis colour at `fraction` of the scale (0 darkest, 1 brightest)."""
    position = min(max(fraction, 0.0), 1.0) * (len(VIRIDIS) - 1)
    low = min(int(position), len(VIRIDIS) - 2)
    rgb = VIRIDIS[low] + (position - low) * (VIRIDIS[low + 1] - VIRIDIS[low])
    red, green, blue = (round(c) for c in rgb)
    return Color.from_rgb(red, green, blue)


def colours_of(fractions: np.ndarray) -> list[list[Color]]:
    """colour_of of each of `fractions` [R, C], the same colours, each found in one pass of numpy over them all: a
    whole matrix's thousands of cells drawn in a blink rather than half a second. Its steps are colour_of's, in
    float32 where the fractions are, so every rounding is its."""
    position = np.clip(fractions, 0.0, 1.0) * (len(VIRIDIS) - 1)  # [R, C]
    low = np.minimum(position.astype(np.int64), len(VIRIDIS) - 2)  # [R, C]
    rgb = np.rint(VIRIDIS[low] + (position - low.astype(position.dtype))[..., None] * (VIRIDIS[low + 1] - VIRIDIS[low]))
    made: dict[tuple[int, int, int], Color] = {}  # one Color a distinct colour
    return [
        [made.get(triplet) or made.setdefault(triplet, Color.from_rgb(*triplet)) for triplet in map(tuple, row)]
        for row in rgb.astype(np.int64).tolist()
    ]


def _ink_for(background: Color) -> str:
    """Black or white, whichever reads better on `background`."""
    red, green, blue = background.get_truecolor()
    luminance = (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
    return "black" if luminance > 0.45 else "white"


def _cell_number(weight: float) -> str:
    """A weight in three characters for a four-character cell, so a space still separates the cells:
    .42 for 0.42, and 1.0 for what rounds to 1.00; a larger value (a norm) as fits: 4.3, 12, 431, 2e3."""
    text = f"{weight:.2f}"
    if weight < 1.0:
        return text[1:] if text.startswith("0") else text[:3]
    return _number_within(weight, 3)


def _wide_cell_number(weight: float) -> str:
    """A value in four characters at most for a five-character cell: 0.42, 4.31, 12.3, 431, 2e4."""
    return f"{weight:.2f}" if weight < 9.995 else _number_within(weight, 4)


def _number_within(value: float, width: int) -> str:
    """`value` (1 or more) in at most `width` characters: as many decimals as fit, else a power of ten."""
    for decimals in (1, 0):
        text = f"{value:.{decimals}f}"
        if len(text) <= width:
            return text
    return f"{value:.0e}".replace("e+0", "e")


def uses_colour(console: Console) -> bool:
    """Whether to draw with colours: only with 256 colours or more, where viridis survives;
    16-colour terminals would collapse the scale to a few greys, so they get shades instead."""
    return console.color_system in ("256", "truecolor", "windows") and not console.no_color


class Heatmap:
    """Rows are queries, columns keys; a cell's colour (or shade) is its weight on the `scale`
    (see `fractions`): the same 0 … 1 in every view by default, or 0 … `top` for values that are not
    weights (‖α v W_O‖ norms), which the legend names `quantity`.

    Cells are five characters wide with their value printed in them when
    `show_values` is set and the width allows, then four (.42); narrower
    otherwise, down to one character, and the values are then left out with a
    note saying so.
    Masked cells (where `mask` is False) are left blank.

    `rows` and `columns` choose a window of queries and keys (all by default); keys past what the
    width holds are left out, and a note above the grid says which rows and columns it shows.
    """

    def __init__(
        self,
        weights: np.ndarray,
        labels: list[str],
        *,
        title: str = "",
        scale: str = "fixed",
        show_values: bool = True,
        mask: np.ndarray | None = None,
        highlight: int | None = None,
        rows: range | None = None,
        columns: range | None = None,
        cursor: tuple[int, int] | None = None,
        cell: int | None = None,
        notes: bool = True,
        label_limit: int = _LABEL_LIMIT,
        legend: bool = True,
        label_rows: range | None = None,
        top: float = 1.0,
        quantity: str = "weight",
    ):
        self.weights = weights  # [T, T]
        self.top = top  # the value the fixed and log scales end at: 1 for weights
        self.quantity = quantity  # what the values are, as the legend names them
        self.labels = [token_label(label) for label in labels]
        self.rows = range(len(labels)) if rows is None else rows  # the queries drawn
        self.columns = range(len(labels)) if columns is None else columns  # the keys drawn, as far as they fit
        self.cursor = cursor  # (query, key) of a cell drawn in reverse
        self.cell = cell  # each cell's width; None: the widest that fits
        self.notes = notes  # the lines saying what is left out
        self.label_limit = label_limit  # characters of a key's label, written downwards when they do not fit across
        self.legend = legend
        # "12 " before each row's label, abbreviated past _LABEL_LIMIT; worked out once, read per row
        # Sized by `label_rows` (default: the rows drawn): a pane that pans gives every row, so its
        # columns stay put as it moves.
        sizing = self.rows if label_rows is None else label_rows
        longest = max(cell_len(self.labels[row]) for row in sizing)
        self._index_width = len(str(sizing[-1]))
        self.row_label_width = self._index_width + 1 + min(longest, _LABEL_LIMIT) + 1
        self.title = title
        self.scale = scale
        self.fractions = fractions(weights, scale, top)  # [T, T]
        self.show_values = show_values
        self.mask = mask  # [T, T] bool or None
        self.highlight = highlight

    def _cell_width(self, max_width: int) -> int:
        if self.cell is not None:
            return self.cell
        room = max_width - self.row_label_width
        columns = len(self.columns)
        for width in (5, 4, 3, 2, 1) if self.show_values else (3, 2, 1):
            if width * columns <= room:
                return width
        return 1

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        columns = len(self.columns)
        widest = self.row_label_width + columns * (5 if self.show_values else 3)
        return Measurement(min(self.row_label_width + columns, widest), widest)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cell = self._cell_width(options.max_width)
        fit = max((options.max_width - self.row_label_width) // cell, 1)  # one key at least, however narrow
        columns = self.columns[:fit]
        values = self.show_values and cell >= 4
        colour = uses_colour(console)
        if self.title:
            yield Text(self.title, style="bold")
        note = window_note(len(self.labels), self.rows, columns, self.columns[fit:])
        if note and self.notes:
            yield Text(note, style="dim")
        yield from self._column_labels(cell, columns)
        for row in self.rows:
            yield self._row(row, cell, columns, values, colour)
        if self.legend and (colour or not values):  # numbers in plain cells need no key
            yield from _legend_lines(self.scale, colour, self.top, self.quantity)
        if self.notes and self.show_values and not values:
            yield Text(
                "(too narrow for the numbers in the cells; widen the terminal, give --width, or use --json)",
                style="dim",
            )

    def header_lines(self, cell: int, columns: range) -> int:
        """How many lines the keys' labels and indices take above the grid."""
        return sum(1 for _ in self._column_labels(cell, columns))

    def _column_labels(self, cell: int, columns: range):
        """The keys' labels in full (up to _LABEL_LIMIT characters): across when every one fits its
        cell, else written downwards; then the keys' indices, which tell equal labels apart."""
        indent = " " * self.row_label_width
        labels = [self.labels[key] for key in columns]
        if all(cell_len(label) <= cell - 1 for label in labels):
            heads = Text(indent)
            for label in labels:
                heads.append(pad(label, cell, "center"))
            yield heads
        else:  # too narrow to write them across: each one downwards, a character a line
            for cells in downward(labels, cell, "center", limit=self.label_limit):
                yield Text(indent + "".join(cells))
        indices = [str(key) for key in columns]
        if all(len(index) <= cell - 1 for index in indices) or cell == 1 == len(indices[-1]):
            yield Text(indent + "".join(pad(index, cell, "center") for index in indices))
        else:
            for cells in downward(indices, cell, "center"):
                yield Text(indent + "".join(cells))

    def _row(self, row: int, cell: int, columns: range, values: bool, colour: bool) -> Text:
        label = f"{row:>{self._index_width}} {abbreviate(self.labels[row], _LABEL_LIMIT)}"
        text = Text(pad(label, self.row_label_width), style="bold" if row == self.highlight else "")
        shades = None if values or colour else shade_levels(self.weights[row], self.scale, self.top)  # [T]
        for key in columns:
            weight = float(self.weights[row, key])
            if self.mask is not None and not self.mask[row, key]:
                text.append("·".center(cell), style="dim")
                continue
            fraction = float(self.fractions[row, key])
            if values:
                content = (_wide_cell_number(weight) if cell >= 5 else _cell_number(weight)).rjust(cell)
            elif colour:
                content = " " * cell
            else:
                content = SHADES[shades[key]] * cell
            cursor = self.cursor == (row, key)
            if cursor and not values and cell > 1:  # a blank cell would hide the cursor's reverse video
                content = "[" + content[1:-1] + "]"
            if colour:
                background = colour_of(fraction)
                text.append(content, style=Style(color=_ink_for(background), bgcolor=background, reverse=cursor))
            else:
                text.append(content, style=Style(reverse=cursor))
        return text


def span(indices: range) -> str:
    """A run of token indices as a reader says it: "7", or "0–62"."""
    return str(indices[0]) if len(indices) == 1 else f"{indices[0]}–{indices[-1]}"


def window_note(tokens: int, rows: range | None, columns: range, rest: range) -> str:
    """What a grid over `tokens` tokens leaves out, said before it: which queries (`rows`; None for
    a view without rows) and keys (`columns`) it shows, and how to see the keys in `rest` (those
    of the chosen window the width could not hold). Empty when it shows everything."""
    shown = []
    if rows is not None and len(rows) < tokens:
        shown.append(f"queries {span(rows)}")
    if len(columns) < tokens:
        shown.append(f"keys {span(columns)}")
    if not shown:
        return ""
    note = f"(showing {' and '.join(shown)} of {tokens} tokens"
    if rest:
        following = rest[: len(columns)]
        note += f"; the width holds {len(columns)} keys: --keys {following.start}:{following[-1] + 1} for the next"
    choose = "--queries A:B and --keys A:B choose" if rows is not None else "--keys A:B chooses"
    return note + f"; {choose} others)"


_LEGEND_WIDTH = 21  # cells of the colour strip


def _legend_lines(scale: str, colour: bool, top: float = 1.0, quantity: str = "weight") -> list[Text]:
    """The scale (ending at `top`, of values named `quantity`) as a strip of colours with its ticks under it,
    the last one `top`, or the shades and where each begins."""
    names = {"fixed": quantity, "row": f"share of the row's largest {quantity}", "log": f"{quantity}, log scale"}
    name = names[scale]
    if colour:
        strip = Text(f"{name}  ")
        indent = len(strip)
        for step in range(_LEGEND_WIDTH):
            strip.append(" ", style=Style(bgcolor=colour_of(step / (_LEGEND_WIDTH - 1))))
        ticks = [" "] * (_LEGEND_WIDTH + 8)
        for position, label in _ticks(scale, top):
            at = round(position * (_LEGEND_WIDTH - 1))
            at = min(at, len(ticks) - len(label))
            ticks[at : at + len(label)] = label
        return [strip, Text(" " * indent + "".join(ticks).rstrip(), style="dim")]
    # Say where each shade begins.
    edges = fractions_edges(scale, top)
    legend = Text(f"{name}: ")
    for shade, edge in zip(SHADES[1:], edges, strict=True):
        legend.append(f"{shade} ≥{edge}  ")
    return [legend]


def fractions_edges(scale: str, top: float = 1.0) -> list[str]:
    """Where each shade but the blank one begins, in the scale's own terms (see shade_levels), on a scale
    that ends at `top`."""
    if scale == "fixed":
        return [f"{edge:g}" if top == 1.0 else scale_number(edge * top) for edge in FIXED_SHADE_EDGES]
    steps = [level / len(SHADES) for level in range(1, len(SHADES))]
    if scale == "log":
        return [f"{top * 10 ** (math.log10(LOG_FLOOR) * (1 - step)):.2g}" for step in steps]
    return [f"{step:.2f}" for step in steps]


class Legend:
    """The colour scale: a strip of colours with ticks, or the shades and where each begins; of values
    named `quantity` (a weight, a norm, a probability), the fixed and log scales ending at `top` (1 for weights)."""

    def __init__(self, scale: str = "fixed", top: float = 1.0, quantity: str = "weight"):
        self.scale = scale
        self.top = top
        self.quantity = quantity

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from _legend_lines(self.scale, uses_colour(console), self.top, self.quantity)
