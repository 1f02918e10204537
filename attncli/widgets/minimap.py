"""`MiniHeatmap`: a whole attention matrix in T columns, for seeing many heads at once.

With colour, each text line holds two matrix rows: an upper half block whose
foreground is the upper row's colour and whose background is the lower row's.
Without colour, one line per row in five shades.
"""

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from attncli.widgets.heatmap import SHADES, colour_of, uses_colour

__all__ = ["MiniHeatmap"]


class MiniHeatmap:
    def __init__(self, weights: np.ndarray, title: str, vmax: float = 1.0):
        self.weights = weights  # [T, T]
        self.title = title
        self.vmax = vmax or 1.0

    @property
    def _width(self) -> int:
        return max(self.weights.shape[1], len(self.title))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self._width, self._width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.title.ljust(self._width), style="bold")
        fractions = self.weights / self.vmax  # [T, T]
        keys = fractions.shape[1]
        if keys > options.max_width:  # too wide for the terminal: draw the first keys and say so
            fractions = fractions[:, : options.max_width]
            yield Text(f"(keys 0 to {options.max_width - 1} of {keys})", style="dim")
        if not uses_colour(console):
            for row in fractions:
                yield Text("".join(SHADES[min(int(f * len(SHADES)), len(SHADES) - 1)] for f in row))
            return
        for top in range(0, len(fractions), 2):
            line = Text()
            for column in range(fractions.shape[1]):
                upper = colour_of(fractions[top, column])
                lower = colour_of(fractions[top + 1, column]) if top + 1 < len(fractions) else None
                line.append("▀", style=Style(color=upper, bgcolor=lower))
            yield line
