"""`LensGrid`: the logit lens as a grid of tokens, a row per layer and a column per position, each cell
coloured by its token's probability."""

import numpy as np
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from attncli.terminal import abbreviate, pad
from attncli.widgets.heatmap import SHADES, Legend, _ink_for, colour_of, shade_levels, span, uses_colour

__all__ = ["CELL_WIDTHS", "LensGrid"]

# A cell's width in characters, the widest that fits first: a token of up to seven characters, then a
# space (without colour, the last but one character is the probability's shade). Narrower cells would cut
# most tokens to a letter: positions past the width are left out instead, and said so.
CELL_WIDTHS = (8, 7, 6, 5)


class LensGrid:
    """Rows are the layers (the embeddings first), columns the positions; a cell is the most probable
    token there, its background that token's probability on viridis from 0 to 1 (without colour, a shade
    after it, as the fixed scale's shades step). `rows` and `columns` are the window of layers and positions
    to draw, the positions as far as the width holds them; a note above the grid says which it shows."""

    def __init__(
        self,
        tokens: list[list[str]],
        probabilities: np.ndarray,
        row_labels: list[str],
        column_labels: list[str],
        *,
        rows: range | None = None,
        columns: range | None = None,
        cursor: tuple[int, int] | None = None,
        cell: int | None = None,
        notes: bool = True,
        legend: bool = True,
    ):
        self.tokens = tokens  # [R][T] each cell's token, as the terminal shows it
        self.probabilities = probabilities  # [R, T]
        self.row_labels = row_labels  # [R]
        self.column_labels = column_labels  # [T] the input token at each position
        self.rows = range(len(row_labels)) if rows is None else rows  # the layers drawn
        self.columns = range(len(column_labels)) if columns is None else columns
        self.cursor = cursor  # (row, position) of a cell drawn in reverse video
        self.cell = cell  # each cell's width; None: the widest of CELL_WIDTHS that fits
        self.notes = notes  # the line saying which positions are left out
        self.legend = legend
        self.row_label_width = max(cell_len(label) for label in row_labels) + 1

    def cell_width(self, max_width: int) -> int:
        """The widest of CELL_WIDTHS that fits every position of the window in `max_width`, else the narrowest."""
        if self.cell is not None:
            return self.cell
        room = max_width - self.row_label_width
        return next((width for width in CELL_WIDTHS if width * len(self.columns) <= room), CELL_WIDTHS[-1])

    def fit(self, max_width: int) -> range:
        """The positions of the window drawn in `max_width` columns (one at least, however narrow)."""
        columns = max((max_width - self.row_label_width) // self.cell_width(max_width), 1)
        return self.columns[:columns]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        narrowest = self.row_label_width + CELL_WIDTHS[-1]
        return Measurement(narrowest, self.row_label_width + CELL_WIDTHS[0] * len(self.columns))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cell = self.cell_width(options.max_width)
        columns = self.fit(options.max_width)
        colour = uses_colour(console)
        if self.notes and (note := positions_note(len(self.column_labels), columns, self.columns[len(columns) :])):
            yield Text(note, style="dim")
        indent = " " * self.row_label_width
        yield Text(indent + "".join(pad(abbreviate(self.column_labels[i], cell - 1), cell) for i in columns))
        yield Text(indent + "".join(pad(str(i), cell) for i in columns), style="dim")
        for row in self.rows:
            yield self._row(row, self.row_labels[row], cell, columns, colour)
        if self.legend:
            yield Legend("fixed", name="probability")

    def _row(self, row: int, label: str, cell: int, columns: range, colour: bool) -> Text:
        text = Text.assemble((pad(label, self.row_label_width), "bold"))
        shades = None if colour else shade_levels(self.probabilities[row], "fixed")  # [T]
        for position in columns:
            reverse = self.cursor == (row, position)
            token = self.tokens[row][position]
            if colour:
                background = colour_of(float(self.probabilities[row, position]))
                content = pad(abbreviate(token, cell - 1), cell)
                text.append(content, style=Style(color=_ink_for(background), bgcolor=background, reverse=reverse))
            else:
                content = pad(abbreviate(token, cell - 2), cell - 2) + SHADES[shades[position]] + " "
                text.append(content, style=Style(reverse=reverse))
        return text


def positions_note(tokens: int, columns: range, rest: range) -> str:
    """What a grid over `tokens` positions leaves out, said before it: which it shows (`columns`), and how
    to see those of the window the width could not hold (`rest`). Empty when it shows every position."""
    if len(columns) == tokens:
        return ""
    note = f"(showing positions {span(columns)} of {tokens}"
    if rest:
        following = rest[: len(columns)]
        note += f"; the width holds {len(columns)}: --tokens {following.start}:{following[-1] + 1} for the next"
    return note + "; --tokens A:B chooses others)"
