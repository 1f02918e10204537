"""`MiniHeatmap`: a whole attention matrix in T columns, for seeing many heads at once.

With colour, each text line holds two matrix rows: an upper half block whose
foreground is the upper row's colour and whose background is the lower row's; a
masked cell (a key its query may not see) is left in the terminal's own background.
Without colour, one line per row in five shades, a masked cell as ·.
"""

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from attncli.widgets.heatmap import SHADES, colours_of, shade_levels, uses_colour
from attncli.widgets.heatmap import fractions as scale_fractions

__all__ = ["MiniHeatmap"]


class MiniHeatmap:
    """One head's whole [T, T] matrix in T columns, under its title; its values on a scale ending at `top`
    (see widgets.heatmap.fractions)."""

    def __init__(
        self,
        weights: np.ndarray,
        title: str,
        scale: str = "fixed",
        mask: np.ndarray | None = None,
        selected: bool = False,
        top: float = 1.0,
    ):
        self.weights = weights  # [T, T]
        self.title = title
        self.scale = scale
        self.top = top  # the value the fixed and log scales end at: 1 for weights, the largest drawn for norms
        self.mask = np.ones(weights.shape, dtype=bool) if mask is None else mask  # [T, T] True where a key is seen
        self.selected = selected  # title in reverse video: the head a cursor is on

    @property
    def _width(self) -> int:
        return max(self.weights.shape[1], len(self.title))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self._width, self._width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.title.ljust(self._width), style="bold reverse" if self.selected else "bold")
        fractions = scale_fractions(self.weights, self.scale, self.top)  # [T, T]
        seen = self.mask
        keys = fractions.shape[1]
        if keys > options.max_width:  # too wide for the terminal: draw the first keys and say so
            fractions, seen = fractions[:, : options.max_width], seen[:, : options.max_width]
            yield Text(f"(keys 0 to {options.max_width - 1} of {keys})", style="dim")
        if not uses_colour(console):
            levels = shade_levels(self.weights, self.scale, self.top)[:, : fractions.shape[1]]  # [T, keys drawn]
            for row, row_seen in zip(levels, seen, strict=True):
                yield Text(
                    "".join(SHADES[level] if visible else "·" for level, visible in zip(row, row_seen, strict=True))
                )
            return
        colours = colours_of(np.where(seen, fractions, 0.0))  # [T][keys drawn]; a masked cell's is not drawn
        for top in range(0, len(fractions), 2):
            line = Text()
            for column in range(fractions.shape[1]):
                upper = colours[top][column] if seen[top, column] else None
                has_lower = top + 1 < len(fractions) and seen[top + 1, column]
                lower = colours[top + 1][column] if has_lower else None
                if upper is None and lower is not None:  # only the lower half has a colour: draw that half
                    line.append("▄", style=Style(color=lower))
                elif upper is None:
                    line.append(" ")
                else:
                    line.append("▀", style=Style(color=upper, bgcolor=lower))
            yield line
