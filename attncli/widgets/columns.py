"""`FittedTable`: a table that leaves out its least needed columns, in a given order, until it fits the width."""

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["FittedTable"]

_UNBOUNDED = 100_000  # columns: wider than any table


class FittedTable:
    """A borderless table of `columns` (header, justify) and `rows` (a cell per column), one space between
    columns, no cell ever wrapped. Where it is wider than the console, the columns headed as `droppable`
    names are left out one at a time, in that order, until it fits (or none is left to drop), and a line
    under it names them."""

    def __init__(self, columns: list[tuple[str, str]], rows: list[list[str]], droppable: tuple[str, ...] = ()):
        self.columns = columns
        self.rows = rows
        self.droppable = [header for header in droppable if header in dict(columns)]

    def _table(self, left_out: list[str]) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 1, 0, 0))
        kept = [i for i, (header, _) in enumerate(self.columns) if header not in left_out]
        for i in kept:
            header, justify = self.columns[i]
            table.add_column(header, justify=justify, no_wrap=True)
        for row in self.rows:
            table.add_row(*(row[i] for i in kept))
        return table

    def _width(self, console: Console, options: ConsoleOptions, left_out: list[str]) -> int:
        """The table's natural width without the columns `left_out` (a measure at the console's width would
        stop at it)."""
        unbounded = options.update_width(_UNBOUNDED)
        return Measurement.get(console, unbounded, self._table(left_out)).maximum

    def _left_out(self, console: Console, options: ConsoleOptions) -> list[str]:
        """The columns to leave out at `options.max_width`: the fewest of `droppable`, in its order."""
        for count in range(len(self.droppable) + 1):
            left_out = self.droppable[:count]
            if self._width(console, options, left_out) <= options.max_width:
                return left_out
        return self.droppable

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        narrowest, widest = (self._width(console, options, left_out) for left_out in (self.droppable, []))
        return Measurement(narrowest, widest).clamp(max_width=options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        left_out = self._left_out(console, options)
        yield self._table(left_out)
        if left_out:
            them = "it" if len(left_out) == 1 else "them"
            yield Text(
                f"Left out to fit {options.max_width} columns: {', '.join(left_out)} (a wider terminal or --width "
                f"shows {them}; --json and --format csv have every column).",
                style="dim",
            )
