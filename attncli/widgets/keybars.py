"""`KeyBars`: table rows that each end in a one-line bar chart over the keys of a text."""

import numpy as np
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from attncli.terminal import downward, pad, token_label
from attncli.widgets.heatmap import window_note

__all__ = ["KeyBars"]

_BLOCKS = "▁▂▃▄▅▆▇█"


def _block(weight: float) -> str:
    """A bar one cell wide in eighths, full at 1; blank only below 0.01, so a small weight still shows."""
    if weight < 0.01:
        return " "
    return _BLOCKS[max(round(min(weight, 1.0) * 8), 1) - 1]


class KeyBars:
    """Rows of text columns, each row ending in one bar per key whose height is its weight (0 … 1), or
    its value over `top` (a norm, over the largest drawn).

    The key labels are written downwards above the bars; keys in `muted` are drawn dim.
    Two cells a key when the width allows, else one. `columns` chooses a window of keys (all by
    default); when the width holds fewer, it shows those around `centre` (else the first), and a
    note above the chart says which.
    """

    def __init__(
        self,
        headers: list[str],
        rows: list[list[str]],
        weights: np.ndarray,
        keys: list[str],
        muted=None,
        columns: range | None = None,
        centre: int | None = None,
        notes: bool = True,
        label_limit: int = 6,
        top: float = 1.0,
    ):
        self.headers = headers
        self.rows = rows
        self.weights = weights  # [rows, T]
        self.keys = [token_label(key) for key in keys]
        self.muted = np.zeros(len(keys), dtype=bool) if muted is None else muted  # [T]
        self.columns = range(len(keys)) if columns is None else columns
        self.centre = centre
        self.notes = notes  # the line saying which keys are shown, when not all are
        self.label_limit = label_limit  # lines of each key's label, written downwards
        self.top = top  # the value a full bar stands for: 1 for weights, the largest drawn for norms

    @property
    def _widths(self) -> list[int]:
        return [
            max(cell_len(text) for text in [header, *column])
            for header, column in zip(self.headers, zip(*self.rows, strict=True), strict=True)
        ]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        prefix = sum(self._widths) + 2 * len(self._widths)
        return Measurement(prefix + len(self.columns), prefix + 2 * len(self.columns))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self._widths
        prefix = sum(widths) + 2 * len(widths)
        window = self.columns
        cell = 2 if prefix + 2 * len(window) <= options.max_width else 1
        fit = max(min(len(window), options.max_width - prefix), 1)  # keys that fit, at one cell each
        start = 0
        if fit < len(window) and self.centre in window:
            start = min(max(window.index(self.centre) - fit // 2, 0), len(window) - fit)
        shown = window[start : start + fit]
        note = window_note(len(self.keys), None, shown, window[start + fit :])
        if note and self.notes:
            yield Text(note, style="dim")
        lines = downward([self.keys[key] for key in shown], cell, limit=self.label_limit)
        for line, cells in enumerate(lines):
            text = Text(" " * prefix)
            if line == len(lines) - 1:
                text = Text("".join(pad(h, w) + "  " for h, w in zip(self.headers, widths, strict=True)), style="bold")
            for key, label_cell in zip(shown, cells, strict=True):
                text.append(label_cell, style="dim" if self.muted[key] else "")
            yield text
        for row, weights in zip(self.rows, self.weights, strict=True):
            text = Text("".join(pad(cell_text, w) + "  " for cell_text, w in zip(row, widths, strict=True)))
            for key in shown:
                text.append(
                    pad(_block(float(weights[key]) / self.top), cell), style="dim" if self.muted[key] else "cyan"
                )
            yield text
