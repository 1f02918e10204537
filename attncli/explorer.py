"""`attncli explore`: one run's attention in a full-screen terminal explorer, built with Textual.

Only the explore command imports this module (and with it Textual), so no other command's start-up
pays for it. It computes nothing of its own: the heatmap is the static views' Heatmap widget over a
window of the matrix, the overview and the model grid their thumbnails (analysis.block_means), the
query pane `query`'s chart over commands.query_run. What it shows are the numbers the other
commands print.
"""

import os
from dataclasses import dataclass
from typing import ClassVar

# Textual draws in 24-bit colour on any terminal (converting where it must); saying so before it is
# imported lets the heatmap widgets, which ask the console, draw their colours rather than shades.
os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from attncli import analysis, commands
from attncli.errors import AttncliError
from attncli.escapes import visible
from attncli.results import AttentionRun
from attncli.terminal import token_label
from attncli.views.common import head_name, layer_mask, token_texts
from attncli.views.matrices import head_thumbnails, thumbnail_block
from attncli.views.rankings import query_chart
from attncli.widgets.heatmap import Heatmap, Legend
from attncli.widgets.minimap import MiniHeatmap

__all__ = ["Explorer"]

SCALES = ("fixed", "row", "log")
# Zoom levels: a cell's width in characters (5 and 4 print the weight in it); 0 draws the whole
# matrix at once, each cell the mean of a block of weights.
ZOOMS = (5, 3, 2, 1, 0)
RANKED_HEADS = 4  # heads the query pane ranks under the current one


@dataclass(eq=False)
class Place:
    """Where the explorer is: the head (or the mean of the layer's heads), the cursor cell, how it draws."""

    layer: int = 0
    head: int = 0
    query: int = 0  # the cursor's row: the query token
    key: int = 0  # the cursor's column
    zoom: int = 0  # index into ZOOMS
    scale: str = "fixed"
    mean: bool = False  # the mean over the layer's heads instead of one head
    include_special: bool = False  # let special tokens and a decoder's first token (sinks) top the ranking
    grid: bool = False  # the model grid instead of the heatmap


class MatrixPane(Widget, can_focus=True):
    """The heatmap of the current head over the window of rows and columns that fits, panned to keep
    the cursor in view; or, at the last zoom level, the whole matrix in block means."""

    def __init__(self):
        super().__init__()
        self.first_row = self.first_column = 0  # the first row and column in view
        self.drawn: tuple[int, int, int] | None = None  # (header lines, row label width, cell) last drawn

    def render(self) -> RenderableType:
        explorer: Explorer = self.app
        place, weights = explorer.place, explorer.matrix()
        tokens = len(weights)
        width, height = max(self.size.width, 8), max(self.size.height, 4)
        mask = layer_mask(explorer.attention, place.layer)
        cell = ZOOMS[place.zoom]
        if cell == 0:
            self.drawn = None
            block = thumbnail_block(tokens, min(width, 2 * (height - 3)))  # a title line, and two of legend
            seen = np.ones(weights.shape, bool) if mask is None else mask
            means, any_seen = analysis.block_means(weights, seen, block)
            title = f"whole matrix: each cell the mean of a {block} × {block} block"
            return Group(MiniHeatmap(means, title, place.scale, mask=any_seen), Legend(place.scale))
        labels = explorer.labels
        label_limit = 6 if height >= 20 else 3
        whole = Heatmap(weights, labels, cell=cell, label_limit=label_limit)  # for the layout's sizes
        columns = max((width - whole.row_label_width) // cell, 1)
        self.first_column = _scrolled(self.first_column, place.key, columns, tokens)
        shown_columns = range(self.first_column, min(self.first_column + columns, tokens))
        header = whole.header_lines(cell, shown_columns)
        rows = max(height - header - 2, 1)  # two lines of legend under the grid
        self.first_row = _scrolled(self.first_row, place.query, rows, tokens)
        self.drawn = (header, whole.row_label_width, cell)
        return Heatmap(
            weights,
            labels,
            scale=place.scale,
            mask=mask,
            rows=range(self.first_row, min(self.first_row + rows, tokens)),
            columns=shown_columns,
            cursor=(place.query, place.key),
            cell=cell,
            notes=False,
            label_limit=label_limit,
            highlight=place.query,
            label_rows=range(tokens),  # as `whole` sized them: where a click lands is where a cell is drawn
        )

    def on_click(self, event: events.Click) -> None:
        """A click on a cell puts the cursor there."""
        if self.drawn is None:
            return
        header, label_width, cell = self.drawn
        row, column = event.y - header, (event.x - label_width) // cell
        if row >= 0 and column >= 0 and event.x >= label_width:
            self.app.move_to(self.first_row + row, self.first_column + column)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.app.move_by(3, 0)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.app.move_by(-3, 0)


def _scrolled(first: int, cursor: int, size: int, total: int) -> int:
    """The first index in view of `size`, moved as little as keeps `cursor` in view."""
    first = min(first, cursor)
    first = max(first, cursor - size + 1)
    return max(min(first, total - size), 0)


class GridPane(Widget):
    """Every layer × head as a thumbnail, as many layers as fit around the current one; the head under
    the cursor is marked, Enter opens it."""

    def render(self) -> RenderableType:
        explorer: Explorer = self.app
        place, run = explorer.place, explorer.attention
        heads, tokens = run.model.heads, len(run.tokens)
        side = max(min(self.size.width // heads - 2, 16), 4)  # cells a side, so a layer's heads fit a line
        block = thumbnail_block(tokens, side)
        lines_per_layer = -(-min(side, tokens) // 2) + 2
        layers = max(self.size.height // lines_per_layer, 1)
        first = max(min(place.layer - layers // 2, run.model.layers - layers), 0)
        everything = range(tokens)
        parts: list[RenderableType] = [
            Text(f"each thumbnail the whole matrix, each cell the mean of a {block} × {block} block", style="dim")
        ]
        for layer in range(first, min(first + layers, run.model.layers)):
            selected = place.head if layer == place.layer else None
            maps = head_thumbnails(run, layer, list(range(heads)), everything, everything, block, place.scale, selected)
            parts.append(Columns(maps, padding=(0, 1)))
        return Group(*parts)


class TokenStrip(Static):
    """The tokens around the query, the query in reverse video; a click on one makes it the query."""

    def __init__(self):
        super().__init__()
        self.spans: list[tuple[int, int, int]] = []  # (first column, end column, token) of each token shown

    def draw(self, labels: list[str], query: int) -> None:
        width = max(self.size.width or self.app.size.width, 20)
        pieces = [f"{i}:{visible(label)}" for i, label in enumerate(labels)]  # never a raw control character
        start, used = query, len(pieces[query])
        while start > 0 and used + len(pieces[start - 1]) + 1 <= width // 2:
            start -= 1
            used += len(pieces[start]) + 1
        text = Text("… " if start else "")
        self.spans = []
        for i in range(start, len(pieces)):
            if len(text) + len(pieces[i]) > width - 2:
                text.append("…")
                break
            self.spans.append((len(text), len(text) + len(pieces[i]), i))
            text.append(pieces[i], style="reverse bold" if i == query else "")
            text.append(" ")
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        for start, end, index in self.spans:
            if start <= event.x < end:
                self.app.move_to(index, self.app.place.key)


class HelpScreen(ModalScreen):
    """Every key the explorer takes, from its bindings."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for binding in Explorer.BINDINGS:
            table.add_row(_keys(binding.key), binding.description)
        table.add_row("click", "a cell: the cursor; a token in the strip: the query")
        table.add_row("wheel", "move the query up or down")
        # It scrolls (arrows, page keys, the wheel) where the screen is shorter than the list.
        with VerticalScroll():
            yield Static(Group(Text("attncli explore: keys", style="bold"), Text(""), table))


_KEY_NAMES = {
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "comma": ",",
    "full_stop": ".",
    "plus": "+",
    "minus": "-",
    "equals_sign": "=",
    "slash": "/",
    "question_mark": "?",
}


def _keys(spec: str) -> str:
    return " ".join(_KEY_NAMES.get(key, key) for key in spec.split(","))


class Explorer(App):
    """The explorer of one run: a heatmap pane (or the model grid), the query pane, the token strip
    and a status line with the cursor cell's exact weight."""

    TITLE = "attncli explore"
    CSS_PATH = "explorer.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has its key, listed by ?
    BINDINGS: ClassVar = [
        Binding("up,k", "move(-1, 0)", "query up", show=False),
        Binding("down,j", "move(1, 0)", "query down", show=False),
        Binding("left,h", "move(0, -1)", "key left", show=False),
        Binding("right,l", "move(0, 1)", "key right", show=False),
        Binding("pageup", "move(-10, 0)", "ten queries up", show=False),
        Binding("pagedown", "move(10, 0)", "ten queries down", show=False),
        Binding("home", "move(0, -100000)", "first key", show=False),
        Binding("end", "move(0, 100000)", "last key", show=False),
        Binding("question_mark", "help", "help"),
        Binding("left_square_bracket", "layer(-1)", "layer −"),
        Binding("right_square_bracket", "layer(1)", "layer +"),
        Binding("comma", "head(-1)", "head −"),
        Binding("full_stop", "head(1)", "head +"),
        Binding("g", "grid", "grid"),
        Binding("slash", "find", "find"),
        Binding("q", "quit", "quit"),
        Binding("plus,equals_sign", "zoom(-1)", "zoom in", show=False),
        Binding("minus", "zoom(1)", "zoom out", show=False),
        Binding("enter", "open", "open the head under the grid's cursor", show=False),
        Binding("escape", "close_grid", "back from the grid or the find box", show=False),
        Binding("a", "mean", "mean of the layer's heads, or one head", show=False),
        Binding("s", "sinks", "special tokens and the first token in the ranking, or not", show=False),
        Binding("c", "scale", "colour scale: fixed, row, log", show=False),
        Binding("n", "find_next", "next match", show=False),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, run: AttentionRun):
        super().__init__()
        self.attention = run  # not `run`: App.run starts the app
        self.labels = token_texts(run)
        # The cursor starts on the last token that is not special: what a sentence leads up to.
        ordinary = [token.index for token in run.tokens if not token.special]
        self.place = Place(query=ordinary[-1] if ordinary else len(run.tokens) - 1)
        self.found = ""  # the text `/` last looked for

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield MatrixPane()
        yield GridPane()
        yield Static(id="query")
        yield TokenStrip()
        yield Static(id="status")
        yield Input(placeholder="find a token: type part of it, Enter", id="find")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(GridPane).display = False
        self.query_one(MatrixPane).focus()  # not the hidden find box: keys belong to the explorer
        self.redraw()

    # What is drawn

    def matrix(self) -> np.ndarray:
        """The weights [T, T] the heatmap shows: the current head's, or the mean of the layer's heads."""
        place, weights = self.place, self.attention.weights
        return weights[place.layer].mean(axis=0) if place.mean else weights[place.layer, place.head]

    def redraw(self, message: str = "") -> None:
        place, model = self.place, self.attention.model
        which = f"L{place.layer} mean of {model.heads} heads" if place.mean else head_name(place.layer, place.head)
        sinks = "sinks ranked" if place.include_special else "sinks left out of the ranking"
        zoom = "whole matrix" if ZOOMS[place.zoom] == 0 else f"cells {ZOOMS[place.zoom]} wide"
        self.query_one("#top", Static).update(
            Text(f"{which} · scale {place.scale} · {sinks} · {zoom} · ? for keys", style="bold")
        )
        self.query_one(MatrixPane).display = not place.grid
        self.query_one(GridPane).display = place.grid
        self.query_one(MatrixPane).refresh()
        self.query_one(GridPane).refresh()
        self.query_one("#query", Static).update(self._query_pane())
        self.query_one(TokenStrip).draw(self.labels, self.place.query)
        self.query_one("#status", Static).update(Text(message or self._cursor_line()))

    def _cursor_line(self) -> str:
        place, tokens = self.place, self.attention.tokens
        matrix = self.matrix()
        weight = matrix.dtype.type(matrix[place.query, place.key])  # printed in its own precision's shortest form
        mask = layer_mask(self.attention, place.layer)
        allowed = "" if mask is None or mask[place.query, place.key] else " (masked: the query may not see this key)"
        return (
            f"query {place.query} “{token_label(tokens[place.query].text)}” → key {place.key} "
            f"“{token_label(tokens[place.key].text)}”: {weight!s}{allowed}"
        )

    def _query_pane(self) -> RenderableType:
        place = self.place
        try:
            result = commands.query_run(self.attention, [place.query], place.include_special)
        except AttncliError as error:
            return Text(f"query {place.query}: {error}", style="dim")
        pinned = None if place.mean else (place.layer, place.head)  # this head first, with its rank
        return query_chart(result, RANKED_HEADS, centre=place.key, pinned=pinned, notes=False, label_limit=3)

    # Moving

    def move_to(self, query: int, key: int) -> None:
        last = len(self.attention.tokens) - 1
        self.place.query, self.place.key = min(max(query, 0), last), min(max(key, 0), last)
        self.redraw()

    def move_by(self, rows: int, columns: int) -> None:
        if self.place.grid:
            heads, layers = self.attention.model.heads, self.attention.model.layers
            self.place.head = (self.place.head + columns) % heads
            self.place.layer = min(max(self.place.layer + rows, 0), layers - 1)
            self.redraw()
            return
        self.move_to(self.place.query + rows, self.place.key + columns)

    def action_move(self, rows: int, columns: int) -> None:
        self.move_by(rows, columns)

    def action_layer(self, step: int) -> None:
        self.place.layer = (self.place.layer + step) % self.attention.model.layers
        self.redraw()

    def action_head(self, step: int) -> None:
        self.place.head = (self.place.head + step) % self.attention.model.heads
        self.place.mean = False
        self.redraw()

    def action_zoom(self, step: int) -> None:
        self.place.zoom = min(max(self.place.zoom + step, 0), len(ZOOMS) - 1)
        self.redraw()

    def action_grid(self) -> None:
        self.place.grid = not self.place.grid
        self.redraw()

    def action_open(self) -> None:
        if self.place.grid:
            self.place.grid, self.place.mean = False, False
            self.redraw()

    def action_close_grid(self) -> None:
        """Escape: away from the find box, or back from the grid."""
        find = self.query_one("#find", Input)
        if find.display:
            find.display = False
            self.query_one(MatrixPane).focus()
        elif self.place.grid:
            self.place.grid = False
            self.redraw()

    def action_mean(self) -> None:
        self.place.mean = not self.place.mean
        self.redraw()

    def action_sinks(self) -> None:
        self.place.include_special = not self.place.include_special
        self.redraw()

    def action_scale(self) -> None:
        self.place.scale = SCALES[(SCALES.index(self.place.scale) + 1) % len(SCALES)]
        self.redraw()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # Finding a token

    def action_find(self) -> None:
        find = self.query_one("#find", Input)
        find.display = True
        find.value = ""
        find.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one(MatrixPane).focus()
        self.found = event.value.strip().lower()
        self.action_find_next()

    def action_find_next(self) -> None:
        if not self.found:
            return
        matches = [i for i, label in enumerate(self.labels) if self.found in label.lower()]
        if not matches:
            self.redraw(f"no token has “{self.found}” in it")
            return
        after = [i for i in matches if i > self.place.query]
        self.place.query = (after or matches)[0]
        self.redraw()
        where = matches.index(self.place.query) + 1
        self.query_one("#status", Static).update(
            Text(f"“{self.found}”: match {where} of {len(matches)} (n for the next) · " + self._cursor_line())
        )
