"""`VectorTable`: labelled vectors as rows of numbers, as many leading dimensions as the width allows."""

import numpy as np
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from attncli.terminal import abbreviate, pad, token_label

__all__ = ["VectorTable", "number"]

_LABEL_LIMIT = 20


def number(value: float, digits: int = 3, keep_small: bool = False) -> str:
    """`value` with `digits` decimals; never "-0.000". Scientific notation instead where fixed
    decimals would mislead: from 1e6 up, and, with `keep_small`, for values that would round to 0."""
    value = float(value)
    tiny = keep_small and value != 0 and abs(value) < 10**-digits / 2
    if tiny or abs(value) >= 1e6:
        return f"{value:.{digits}e}"
    return f"{round(value, digits) + 0.0:.{digits}f}"


class VectorTable:
    """One row per vector: a label, then the vector's first dimensions, then "…" if some are cut.

    A dimension header (0, 1, 2, ...) tops the columns and a note under the
    table says how many dimensions were left out.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        labels: list[str],
        *,
        title: str = "",
        digits: int = 3,
        emphasis: set[int] = frozenset(),
    ):
        self.vectors = np.atleast_2d(vectors)  # [n, d]
        self.labels = [abbreviate(token_label(label), _LABEL_LIMIT) for label in labels]
        self.title = title
        self.digits = digits
        self.emphasis = emphasis  # rows drawn bold

    @property
    def _cell_width(self) -> int:
        return max(len(number(v, self.digits)) for v in self.vectors.ravel()) + 1

    @property
    def _label_width(self) -> int:
        return max(cell_len(label) for label in self.labels) + 1

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        dims = self.vectors.shape[1]
        return Measurement(self._label_width + self._cell_width + 2, self._label_width + self._cell_width * dims)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        dims = self.vectors.shape[1]
        cell = self._cell_width
        room = options.max_width - self._label_width
        shown = dims if cell * dims <= room else max((room - 2) // cell, 1)
        more = " …" if shown < dims else ""
        if self.title:
            yield Text(self.title, style="bold")
        header = "".ljust(self._label_width) + "".join(str(i).rjust(cell) for i in range(shown))
        yield Text(header, style="dim")
        for row, (label, vector) in enumerate(zip(self.labels, self.vectors, strict=True)):
            line = pad(label, self._label_width) + "".join(number(v, self.digits).rjust(cell) for v in vector[:shown])
            yield Text(line + more, style="bold" if row in self.emphasis else "")
        if shown < dims:
            yield Text(
                f"(dimensions 0 to {shown - 1} of {dims}; widen the terminal or use --json for all)", style="dim"
            )
