"""`DivergingGrid`: signed numbers in a labelled grid, coloured on a scale centred on 0, and its `DivergingLegend`.

The scale is symmetric: its extremes are minus and plus the largest magnitude in the grid, so that a colour's
strength is a magnitude whatever its sign. Colours run from red (below 0) through white to blue (above 0),
ColorBrewer's RdBu, which the common colour-vision deficiencies keep apart. Without colour, each cell's number
still reads as its sign and magnitude; where the numbers do not fit, a sign and a bar of eighth-blocks do; in the
narrowest grid, one character: ▲ or ▼ past half the extreme, + or - past a tenth, · nearer 0, its columns labelled
by their last character (a head's last digit).
"""

import math

import numpy as np
from rich.cells import cell_len
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from attncli.terminal import abbreviate, pad
from attncli.widgets.heatmap import uses_colour

__all__ = ["DOWN", "UP", "DivergingGrid", "DivergingLegend", "diverging_colour", "signed"]

# ColorBrewer's RdBu at nine stops, from -1 (red) through 0 (white) to +1 (blue); interpolated linearly in RGB.
RDBU = np.array(
    [
        (0xB2, 0x18, 0x2B),
        (0xD6, 0x60, 0x4D),
        (0xF4, 0xA5, 0x82),
        (0xFD, 0xDB, 0xC7),
        (0xF7, 0xF7, 0xF7),
        (0xD1, 0xE5, 0xF0),
        (0x92, 0xC5, 0xDE),
        (0x43, 0x93, 0xC3),
        (0x21, 0x66, 0xAC),
    ],
    dtype=float,
)
# The scale's two sides, for what draws beside a grid (a bar of a value above 0, one below).
UP, DOWN = "#4393c3", "#d6604d"
# A cell's width: its number in five characters and a space; where they do not fit, its sign and a bar of its
# magnitude, two eighth-block characters wide (sixteen steps), and a space; or where even those do not, one.
_NUMBER, _BAR, _NARROW = 6, 4, 2
_EIGHTHS = " ▁▂▃▄▅▆▇█"


def diverging_colour(fraction: float) -> Color:
    """The colour at `fraction` (-1 … 1) of the scale: red below 0, white at 0, blue above."""
    position = (min(max(fraction, -1.0), 1.0) + 1) / 2 * (len(RDBU) - 1)
    low = min(int(position), len(RDBU) - 2)
    red, green, blue = (round(c) for c in RDBU[low] + (position - low) * (RDBU[low + 1] - RDBU[low]))
    return Color.from_rgb(red, green, blue)


def _ink_for(background: Color) -> str:
    red, green, blue = background.get_truecolor()
    return "black" if (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255 > 0.45 else "white"


def signed(value: float, width: int = 5) -> str:
    """`value` with its sign in at most `width` characters: +1.23, -0.05, +12.3, +123."""
    for decimals in (2, 1, 0):
        text = f"{value:+.{decimals}f}"
        if len(text) <= width:
            return text
    return f"{value:+.0e}"


class DivergingGrid:
    """Rows of signed numbers under column headers, each row after its label; a cell's colour (or, without colour,
    its number) is its value on a scale from -`limit` to +`limit` (default: the largest magnitude), centred on 0.
    NaN leaves a cell empty."""

    def __init__(self, values: np.ndarray, row_labels: list[str], column_labels: list[str], limit: float | None = None):
        self.values = values  # [R, C]
        self.row_labels = row_labels
        self.column_labels = column_labels
        finite = np.abs(values[np.isfinite(values)])
        self.limit = limit if limit is not None else float(finite.max()) if finite.size else 0.0
        self.label_width = max(cell_len(label) for label in row_labels) + 1

    def _cell(self, max_width: int) -> int:
        columns = self.values.shape[1]
        return next((cell for cell in (_NUMBER, _BAR) if self.label_width + columns * cell <= max_width), _NARROW)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        columns = self.values.shape[1]
        return Measurement(self.label_width + columns * _NARROW, self.label_width + columns * _NUMBER)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cell = self._cell(options.max_width)
        colour = uses_colour(console)
        shown = [label[-1] if cell == _NARROW else abbreviate(label, cell - 1) for label in self.column_labels]
        yield Text(" " * self.label_width + " ".join(pad(label, cell - 1, "right") for label in shown), style="bold")
        for label, row in zip(self.row_labels, self.values, strict=True):
            cells = [self._content(float(value), cell, colour) for value in row]
            yield Text.assemble((pad(label, self.label_width), "bold"), Text(" ").join(cells))

    def _content(self, value: float, cell: int, colour: bool) -> Text:
        if math.isnan(value):
            return Text(" " * (cell - 1))
        fraction = value / self.limit if self.limit > 0 else 0.0
        sign = "+" if value > 0 else "-" if value < 0 else " "
        if cell == _NUMBER:
            content = signed(value).rjust(cell - 1)
        elif cell == _BAR:
            eighths = round(abs(fraction) * 16)
            content = sign + _EIGHTHS[min(eighths, 8)] + _EIGHTHS[max(eighths - 8, 0)]
        else:  # ▲ or ▼ past half the extreme, + or - past a tenth, · nearer 0
            marks = ("▲", "+") if value > 0 else ("▼", "-")
            content = "·" if abs(fraction) < 0.1 else marks[0] if abs(fraction) >= 0.5 else marks[1]
        if not colour:
            return Text(content)
        background = diverging_colour(fraction)
        return Text(content, style=Style(color=_ink_for(background), bgcolor=background))


class DivergingLegend:
    """The scale of a DivergingGrid: its extremes, what each side means, and with colour a strip of its colours;
    without, how a narrow grid's bars read."""

    def __init__(self, limit: float, below: str, above: str):
        self.limit = limit
        self.below, self.above = below, above  # what a value below 0 does, and above

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = Text(f"{self.below} {signed(-self.limit)} ")
        if uses_colour(console):
            for step in range(21):
                line.append(" ", style=Style(bgcolor=diverging_colour(step / 10 - 1)))
        else:
            line.append("◀ 0 ▶")
        line.append(f" {signed(self.limit)} {self.above}")
        yield line
