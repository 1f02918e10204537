"""`attncli explore`: one run's attention in a full-screen terminal explorer, built with Textual.

Only the explore command imports this module (and with it Textual), so no other command's start-up
pays for it. It computes nothing of its own: the heatmap is the static views' Heatmap widget over a
window of the matrix, the overview and the model grid their thumbnails (analysis.block_means), the
query pane `query`'s chart over commands.query_run, the attribution pane `attribute`'s chart, the lens
pane (`o`) `lens`'s grid over commands.lens_of. What it shows are the numbers the other commands print; a
generated sequence's continuation is marked where it shows tokens.

Where the explorer is (layer, head, cursor, zoom, ...) is the app's reactive state. Setting it is
all an action does: data bindings and watch_ methods hand each pane the plain values it draws, and
the panes draw from those alone; a click or the wheel comes back to the app as a message. The
layout is in explorer.tcss.
"""

import contextlib
import dataclasses
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar, NamedTuple

# Textual draws in 24-bit colour on any terminal (converting where it must); saying so before it is
# imported lets the heatmap widgets, which ask the console, draw their colours rather than shades.
os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import Initialize, reactive, var
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from attncli import analysis, commands
from attncli.analysis import Measure
from attncli.errors import AttncliError
from attncli.escapes import visible
from attncli.results import AttentionRun, AttributionResult, LensResult, QueryResult
from attncli.stored import Closed, StoredAttention
from attncli.terminal import token_label
from attncli.views.attribution import attribution_chart
from attncli.views.common import head_name, layer_mask, quantity, scale_top, token_texts
from attncli.views.lens import lens_grid, predicted_label
from attncli.views.matrices import head_thumbnails, thumbnail_block, thumbnail_cells
from attncli.views.rankings import query_chart
from attncli.widgets.heatmap import Heatmap, Legend, uses_colour
from attncli.widgets.minimap import MiniHeatmap

__all__ = ["Explorer", "open_terminal"]

TERMINAL = "/dev/tty"  # the process's controlling terminal, whatever its standard streams are
STANDARD_STREAMS = (0, 1, 2)  # input, output, error

SCALES = ("fixed", "row", "log")
# Zoom levels: a cell's width in characters (5 and 4 print the weight in it); 0 draws the whole
# matrix at once, each cell the mean of a block of weights.
ZOOMS = (5, 3, 2, 1, 0)
RANKED_HEADS = 4  # heads the query pane ranks under the current one
# The query pane's weights in three significant digits (0.512, 0.00318, 3.05e-05): on a long text
# every weight is small, and two decimals would print 0.00 for all of them.
WEIGHT_FORMAT = "#.3g"
# What the help says of a text whose every layer would pass the memory budget (see attncli.stored).
STORED_NOTE = (
    "This text's layers would pass the memory budget: each is kept on disk in float16 (within 1e-3 of the "
    "float32 weights) as the pass makes it, and drawn once it is in. The model grid, the query pane, m, d and o "
    "need every layer in memory and are not available."
)
# Rankings kept, one per (query, sinks setting): each holds a row of weights per head, so a long
# text's rankings are not all kept; sixteen cover going back and forth between a few queries.
RANKINGS_KEPT = 16
# The app's state: every change of one redraws the status line (the cursor cell's weight), which so
# drops the notice a find left there.
STATE = (
    "layer",
    "head",
    "mean",
    "cursor",
    "zoom",
    "scale",
    "include_special",
    "grid",
    "measure",
    "lens_shown",
    "lens_row",
)


class Cursor(NamedTuple):
    """The cursor cell: its row is the query token, its column the key."""

    query: int
    key: int


class MatrixPane(Widget, can_focus=True):
    """The heatmap of `weights` over the window of rows and columns that fits, panned to keep the
    cursor in view; or, at cell width 0, the whole matrix in block means (with `apart`, a long text's,
    computed on a thread of their own, one matrix at a time, while the screen says so)."""

    # Given by the app before the first draw. A new matrix or mask always redraws: numpy arrays have
    # no single answer to `!=`.
    weights: reactive[np.ndarray | None] = reactive(None, always_update=True)  # [T, T]
    mask: reactive[np.ndarray | None] = reactive(None, always_update=True)  # [T, T] bool, the keys seen; None: all
    cursor = reactive(Cursor(0, 0))
    cell = reactive(ZOOMS[0])  # a cell's width in characters; 0: the whole matrix
    scale = reactive(SCALES[0])
    top = reactive(1.0)  # where the fixed and log scales end: 1 for weights, the head's largest norm for norms
    quantity = reactive("weight")  # what the values are, as the legend names them
    waiting = reactive("")  # what stands in for a matrix not yet computed (weights None)

    class CellClicked(Message):
        """A click on a cell: the cursor goes there."""

        def __init__(self, cursor: Cursor) -> None:
            super().__init__()
            self.cursor = cursor

    class Scrolled(Message):
        """The wheel turned over the heatmap: the query moves by `rows`."""

        def __init__(self, rows: int) -> None:
            super().__init__()
            self.rows = rows

    class Averaged(Message, bubble=False):
        """Block means computed apart from the screen: `means` of `weights` under `mask` in `block` blocks."""

        def __init__(self, weights: np.ndarray, mask: np.ndarray | None, block: int, means) -> None:
            super().__init__()
            self.means = (weights, mask, block, means)

    def __init__(self, labels: list[str], apart: bool = False):
        super().__init__()
        self.labels = labels
        self.apart = apart  # block means computed on a thread of their own
        self.first_row = self.first_column = 0  # the first row and column in view
        self.drawn: tuple[int, int, int] | None = None  # (header lines, row label width, cell) last drawn
        # The block means last drawn, with the weights, mask and block they are of: a long text's take a second,
        # and moving the cursor redraws the pane.
        self.means: tuple[np.ndarray, np.ndarray | None, int, tuple[np.ndarray, np.ndarray]] | None = None
        self.averaging = False  # block means being computed apart: one matrix's at a time

    def render(self) -> RenderableType:
        weights, cursor, cell = self.weights, self.cursor, self.cell
        if weights is None:
            self.drawn = None
            return Text(self.waiting, style="dim")
        tokens = len(weights)
        width, height = max(self.size.width, 8), max(self.size.height, 4)
        if cell == 0:
            self.drawn = None
            block = thumbnail_block(tokens, min(width, 2 * (height - 3)))  # a title line, and two of legend
            if (kept := self._block_means(block)) is None:
                return Text(f"computing the whole matrix's means in {block} × {block} blocks …", style="dim")
            means, any_seen = kept
            title = f"whole matrix: each cell the mean of a {block} × {block} block"
            return Group(
                MiniHeatmap(means, title, self.scale, mask=any_seen, top=self.top),
                Legend(self.scale, self.top, self.quantity),
            )
        label_limit = 6 if height >= 20 else 3
        whole = Heatmap(weights, self.labels, cell=cell, label_limit=label_limit)  # for the layout's sizes
        columns = max((width - whole.row_label_width) // cell, 1)
        self.first_column = _scrolled(self.first_column, cursor.key, columns, tokens)
        shown_columns = range(self.first_column, min(self.first_column + columns, tokens))
        header = whole.header_lines(cell, shown_columns)
        rows = max(height - header - 2, 1)  # two lines of legend under the grid
        self.first_row = _scrolled(self.first_row, cursor.query, rows, tokens)
        self.drawn = (header, whole.row_label_width, cell)
        return Heatmap(
            weights,
            self.labels,
            scale=self.scale,
            mask=self.mask,
            rows=range(self.first_row, min(self.first_row + rows, tokens)),
            columns=shown_columns,
            cursor=cursor,
            cell=cell,
            notes=False,
            label_limit=label_limit,
            highlight=cursor.query,
            label_rows=range(tokens),  # as `whole` sized them: where a click lands is where a cell is drawn
            top=self.top,
            quantity=self.quantity,
        )

    def _block_means(self, block: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The weights' means in `block` × `block` blocks, and which blocks have a cell seen (analysis.block_means);
        apart, None while they are computed (on a thread, which redraws the pane when done)."""
        if self.means is not None:
            weights, mask, kept_block, means = self.means
            if weights is self.weights and mask is self.mask and kept_block == block:
                return means
        if not self.apart:
            self.means = (self.weights, self.mask, block, _block_means(self.weights, self.mask, block))
            return self.means[3]
        if not self.averaging:  # else the one being computed, once done, redraws and asks for these
            self.averaging = True
            self._average(self.weights, self.mask, block)
        return None

    @work(thread=True, group="block-means")
    def _average(self, weights: np.ndarray, mask: np.ndarray | None, block: int) -> None:
        means = _block_means(weights, mask, block)
        with contextlib.suppress(RuntimeError):  # the app's event loop is closed
            self.post_message(self.Averaged(weights, mask, block, means))

    def on_matrix_pane_averaged(self, message: Averaged) -> None:
        self.means, self.averaging = message.means, False
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        """A click on a cell puts the cursor there."""
        if self.drawn is None:
            return
        header, label_width, cell = self.drawn
        row, column = event.y - header, (event.x - label_width) // cell
        if row >= 0 and column >= 0 and event.x >= label_width:
            self.post_message(self.CellClicked(Cursor(self.first_row + row, self.first_column + column)))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.post_message(self.Scrolled(3))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.post_message(self.Scrolled(-3))


def _block_means(weights: np.ndarray, mask: np.ndarray | None, block: int) -> tuple[np.ndarray, np.ndarray]:
    """`weights`' means in `block` × `block` blocks over the cells `mask` lets a query see (None: all)."""
    return analysis.block_means(weights, np.ones(weights.shape, bool) if mask is None else mask, block)


def _scrolled(first: int, cursor: int, size: int, total: int) -> int:
    """The first index in view of `size`, moved as little as keeps `cursor` in view."""
    first = min(first, cursor)
    first = max(first, cursor - size + 1)
    return max(min(first, total - size), 0)


class GridLayout(NamedTuple):
    """How the model grid fills its pane, for thumbnails of at most some cells a side."""

    block: int  # each cell the mean of a block × block block of weights
    per_line: int  # thumbnails a line: a layer whose heads do not fit one line takes more
    layers: int  # layers that fit the height


class GridPane(Widget):
    """Every layer × head of a run as a thumbnail, a layer a row (its heads titled H0, H1 ... after
    the layer's name): as many layers as fit the height, around the selected one, in the largest
    thumbnails that fit as many; the selected head is marked, Enter opens it."""

    selected_layer = reactive(0)
    selected_head = reactive(0)
    scale = reactive(SCALES[0])
    measure = reactive(Measure.weights)

    def __init__(self, runs: dict[Measure, AttentionRun], unavailable: str = ""):
        super().__init__()
        self.runs = runs  # the run of each measure the explorer shows
        self.unavailable = unavailable  # why there is no grid (a long text's), or ""

    @property
    def attention(self) -> AttentionRun:
        return self.runs[self.measure]

    def render(self) -> RenderableType:
        if self.unavailable:
            return Text(self.unavailable, style="dim")
        run = self.attention
        layers, heads, tokens = run.model.layers, run.model.heads, len(run.tokens)
        label_width = len(f"L{layers - 1}")
        widest = max(min((self.size.width - label_width) // heads - 1, 16), 4)  # a layer's heads on a line
        layouts = [self._layout(side, label_width) for side in range(4, widest + 1)]
        block, per_line, shown = [layout for layout in layouts if layout.layers == layouts[0].layers][-1]
        first = max(min(self.selected_layer - shown // 2, layers - shown), 0)
        grid = Table.grid(padding=(0, 0, 0, 1))
        for _ in range(1 + per_line):
            grid.add_column()
        everything = range(tokens)
        cells = {
            layer: thumbnail_cells(run, layer, list(range(heads)), everything, everything, block)
            for layer in range(first, first + shown)
        }
        top = scale_top(run, [means for layer in cells.values() for means, _ in layer])
        for layer in range(first, first + shown):
            selected = self.selected_head if layer == self.selected_layer else None
            maps = head_thumbnails(
                run,
                layer,
                list(range(heads)),
                everything,
                everything,
                block,
                self.scale,
                selected,
                _head_title,
                top,
                cells[layer],
            )
            label = Text(f"L{layer}", style="bold reverse" if selected is not None else "bold")
            for start in range(0, heads, per_line):
                grid.add_row(label if start == 0 else "", *maps[start : start + per_line])
        what = f"layers {first}–{first + shown - 1} of {layers} · whole matrices"
        what += f", each cell the mean of a {block} × {block} block"
        return Group(Text(what, style="dim", no_wrap=True, overflow="ellipsis"), grid)

    def _layout(self, side: int, label_width: int) -> GridLayout:
        """The grid of thumbnails at most `side` cells a side, a space apart after the layers' names."""
        run = self.attention
        heads, tokens = run.model.heads, len(run.tokens)
        block = thumbnail_block(tokens, side)
        cells = -(-tokens // block)  # a thumbnail's cells a side
        per_line = max((self.size.width - label_width) // (max(cells, len(f"H{heads - 1}")) + 1), 1)
        rows_a_line = 2 if uses_colour(self.app.console) else 1  # as MiniHeatmap draws them
        lines = -(-heads // per_line) * (1 + -(-cells // rows_a_line))  # each line of thumbnails: titles, cells
        fit = (self.size.height - 1) // lines  # under the line that says what is drawn
        return GridLayout(block, per_line, min(max(fit, 1), run.model.layers))


def _head_title(layer: int, head: int) -> str:
    return f"H{head}"  # the layer is named at the start of its row


class LensPane(Widget):
    """The logit lens of the run's tokens (see commands.lens_of), a layer a row and a position a column, the
    cursor's cell in reverse video: the window of rows and columns that fits, panned to keep it in view."""

    lens: reactive[LensResult | str] = reactive("")  # the lens, or what stands for it (being computed, or why not)
    cursor = reactive((0, 0))  # (row, position): row 0 the embeddings, row l + 1 after layer l

    def __init__(self):
        super().__init__()
        self.first_row = self.first_column = 0  # the first row and position in view

    def render(self) -> RenderableType:
        if isinstance(self.lens, str):
            return Text(self.lens, style="dim")
        row, position = self.cursor
        width, height = max(self.size.width, 8), max(self.size.height, 6)
        whole = lens_grid(self.lens)  # for the layout's sizes
        positions, layers = len(self.lens.tokens), len(self.lens.ids)
        cell = whole.cell_width(width)
        columns = max((width - whole.row_label_width) // cell, 1)
        self.first_column = _scrolled(self.first_column, position, columns, positions)
        rows = max(height - 4, 1)  # two lines of labels above the grid, two of legend under it
        self.first_row = _scrolled(self.first_row, row, rows, layers)
        return lens_grid(
            self.lens,
            rows=range(self.first_row, min(self.first_row + rows, layers)),
            columns=range(self.first_column, min(self.first_column + columns, positions)),
            cursor=self.cursor,
            cell=cell,
            notes=False,
        )


class QueryPane(Widget):
    """`query`'s chart for one query token: its weights over the keys in the head `pinned` (first,
    with its rank) and in the heads that give it the most."""

    # Its height follows the chart's, which the labels of the keys in view decide.
    ranking: reactive[QueryResult | str] = reactive("", layout=True)  # every head ranked, or why there is no ranking
    pinned: reactive[tuple[int, int] | None] = reactive(None, layout=True)  # (layer, head); None: the layer's mean
    centre = reactive(0, layout=True)  # the key the window of keys is centred on

    def render(self) -> RenderableType:
        if isinstance(self.ranking, str):
            return Text(self.ranking, style="dim")
        return query_chart(
            self.ranking,
            RANKED_HEADS,
            centre=self.centre,
            pinned=self.pinned,
            weight_format=WEIGHT_FORMAT,
            notes=False,
            label_limit=3,
        )


class AttributionPane(Widget):
    """`attribute`'s chart for the next token after the query: the heads that push its logit up and down most,
    and every head of the model on a scale centred on 0."""

    result: reactive[AttributionResult | str] = reactive("", layout=True)  # or why there is none

    def render(self) -> RenderableType:
        if isinstance(self.result, str):
            return Text(self.result, style="dim")
        result = self.result
        position = result.tokens[result.position]
        target = "#" + str(result.target.id) if result.target.text is None else token_label(result.target.text)
        title = f"direct logit attribution after {result.position} “{token_label(position.text)}”: “{target}”"
        title += f" (its logit {result.logit:.3f}" + (", before the soft cap)" if result.soft_cap else ")")
        return Group(Text(title, style="bold"), attribution_chart(result, RANKED_HEADS))


class TokenStrip(Widget):
    """The tokens around the cursor's query, the query in reverse video; a click on one makes it the query."""

    cursor = reactive(Cursor(0, 0))

    class TokenClicked(Message):
        """A click on a token: it becomes the query."""

        def __init__(self, token: int) -> None:
            super().__init__()
            self.token = token

    def __init__(self, labels: list[str], prompt_tokens: int | None = None):
        super().__init__()
        self.pieces = [f"{i}:{visible(label)}" for i, label in enumerate(labels)]  # never a raw control character
        self.spans: list[tuple[int, int, int]] = []  # (first column, end column, token) of each token shown
        self.prompt_tokens = prompt_tokens  # a generated sequence's: the tokens after these, italic after a bar

    def render(self) -> RenderableType:
        width, pieces, query = max(self.size.width, 20), self.pieces, self.cursor.query
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
            if i == self.prompt_tokens:
                text.append("│ ", style="bold")
            self.spans.append((len(text), len(text) + len(pieces[i]), i))
            generated = self.prompt_tokens is not None and i >= self.prompt_tokens
            text.append(pieces[i], style=("reverse bold" if i == query else "") + (" italic" if generated else ""))
            text.append(" ")
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, token in self.spans:
            if start <= event.x < end:
                self.post_message(self.TokenClicked(token))


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
        parts = [Text("attncli explore: keys", style="bold"), Text(""), table]
        if self.app.stored is not None:  # first: what this text's numbers are
            parts[1:1] = [Text(""), Text(STORED_NOTE, style="italic")]
        # It scrolls (arrows, page keys, the wheel) where the screen is shorter than the list.
        with VerticalScroll():
            yield Static(Group(*parts))


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
        Binding("escape", "back", "back from the find box, the lens or the grid", show=False),
        Binding("a", "mean", "mean of the layer's heads, or one head", show=False),
        Binding("s", "sinks", "special tokens and the first token in the ranking, or not", show=False),
        Binding("c", "scale", "colour scale: fixed, row, log", show=False),
        Binding("m", "measure", "measure: the weights, or their norms ‖αv W_O‖", show=False),
        Binding("n", "find_next", "next match", show=False),
        Binding(
            "d", "attribution", "direct logit attribution of the query's next token, or the query pane", show=False
        ),
        Binding("o", "lens", "the logit lens: each layer's top tokens, or back", show=False),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def _opening_cursor(self) -> Cursor:
        """The last token that is not special, on key 0: what a sentence leads up to."""
        ordinary = [token.index for token in self.attention.tokens if not token.special]
        return Cursor(ordinary[-1] if ordinary else len(self.attention.tokens) - 1, 0)

    # Where the explorer is. Setting one redraws what shows it: the panes bound to it in compose()
    # and the watch_ methods below. `var`, not `reactive`: the app has nothing of its own to repaint.
    layer = var(0)
    head = var(0)
    mean = var(False)  # the mean over the layer's heads instead of one head
    cursor = var(Initialize(_opening_cursor))
    # a cell's width in characters, one of ZOOMS: a stored (long) text opens on its whole matrix in block means
    zoom = var(Initialize(lambda explorer: ZOOMS[-1] if explorer.stored else ZOOMS[0]))
    scale = var(SCALES[0])
    include_special = var(False)  # let special tokens and a decoder's first token (sinks) top the ranking
    measure = var(Initialize(lambda explorer: explorer.first_measure))  # what the panes show of each query and key
    grid = var(False, toggle_class="-grid")  # the model grid instead of the heatmap: explorer.tcss swaps them
    # the attribution pane in the query pane's place (explorer.tcss swaps them)
    attribution = var(False, toggle_class="-attribution")
    lens_shown = var(False, toggle_class="-lens")  # the logit lens instead of the heatmap (or the grid)
    lens_row = var(0)  # the lens's cursor row: 0 the embeddings, l + 1 after layer l; its position is the query
    layers_in = var(0)  # of a stored run's layers, how many the pass has made (see LayersIn)
    heading = var("")  # the top line, made from the above by compute_heading

    def __init__(
        self,
        run: AttentionRun,
        measure: Measure = Measure.weights,
        attribute: Callable[[int], AttributionResult] | None = None,
        lens: Callable[[], LensResult] | None = None,
        prompt_tokens: int | None = None,
        stored: StoredAttention | None = None,
    ):
        super().__init__()
        # A long text's weights, kept on disk as its pass makes them, in the place of `run`'s (a streamed run's):
        # the explorer opens at once and shows each layer as it comes. What it shows of them (a head, or a layer's
        # mean) is read on a thread, one at a time: `read` is the last read, ((layer, head or None for the mean),
        # its [T, T] float16 weights or why they could not be read), and `reading` whether one is being read.
        self.stored = stored
        self.read: tuple[tuple[int, int | None], np.ndarray | str] | None = None
        self.reading = False
        # The run as each measure shows it, one trace for both; a run without the value norms (a forward pass not
        # asked for them) shows its weights alone.
        self.runs = {Measure(run.measure): run}
        if run.trace is not None and run.trace.value_norms is not None:
            self.runs = {shown: dataclasses.replace(run, measure=shown.value) for shown in Measure}
        self.first_measure = Measure(measure) if measure in self.runs else Measure(run.measure)
        # Computes the direct logit attribution after a position (commands.attribution_at's), apart from the screen
        # the first time the pane shows there; the last RANKINGS_KEPT positions' results (or why there is none)
        # are kept, and `attributing` is the position being computed, one at a time.
        self.attribute = attribute
        self.attributions: dict[int, AttributionResult | str] = {}
        self.attributing: int | None = None
        self.lens = lens  # computes the run's logit lens, the first time `o` asks for it; None: no lens
        self.prompt_tokens = prompt_tokens  # a generated sequence's: its first tokens are the prompt's
        self.labels = token_texts(run)
        # What the panes that need every layer in memory say for a stored text instead
        self.too_long = f"not available for {len(run.tokens):,} tokens, kept a layer at a time"
        self.found = ""  # the text `/` last looked for
        # [T, T] bool, the keys each query of a layer sees (or None): the same array each time, which the heatmap's
        # block means are kept for
        self.layer_mask = functools.lru_cache(maxsize=2)(lambda layer: layer_mask(run, layer))
        # Every head ranked for a query, as `query` ranks them, kept per (query, sinks setting, measure): moving
        # along the query's row or to another head shows the same ranking again.
        self.ranking = functools.lru_cache(maxsize=RANKINGS_KEPT)(
            lambda query, include_special, measure: commands.query_run(self.runs[measure], [query], include_special)
        )

    @property
    def attention(self) -> AttentionRun:
        """The run as the measure now shown has it (not `run`: App.run starts the app)."""
        return self.runs[self.measure]

    def run_on(self, terminal: int) -> None:
        """Run on `terminal` (a descriptor), whatever standard input, output and error are. Textual's
        driver reads keys from standard input, draws on standard error and sizes the screen by
        standard output: the three are the terminal while the explorer runs, then what they were."""
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(stream) for stream in STANDARD_STREAMS]
        try:
            for stream in STANDARD_STREAMS:
                os.dup2(terminal, stream)
            self.run()
        finally:
            for stream, copy in zip(STANDARD_STREAMS, saved, strict=True):
                os.dup2(copy, stream)
                os.close(copy)

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield MatrixPane(self.labels, apart=self.stored is not None).data_bind(
            Explorer.cursor, Explorer.scale, cell=Explorer.zoom
        )
        yield GridPane(self.runs, f"the model grid: {self.too_long}" if self.stored else "").data_bind(
            Explorer.scale, Explorer.measure, selected_layer=Explorer.layer, selected_head=Explorer.head
        )
        yield LensPane()
        yield QueryPane()
        yield AttributionPane()
        yield TokenStrip(self.labels, self.prompt_tokens).data_bind(Explorer.cursor)
        yield Static(id="status")
        yield Input(placeholder="find a token: type part of it, Enter", id="find")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MatrixPane).focus()  # not the hidden find box: keys belong to the explorer
        for name in STATE:
            self.watch(self, name, self._show_cursor_line)
        if self.stored is not None:
            filling = threading.Thread(target=self.stored.fill, args=(self._layer_made,), name="attncli-explore")
            filling.daemon = True  # a quit does not wait for the layer being made
            filling.start()

    def on_unmount(self) -> None:
        if self.stored is not None:
            self.stored.close()  # its file goes; the pass stops at its next layer

    # A stored run's layers, as the pass makes them

    class LayersIn(Message):
        """The pass has made the first `layers` layers of a stored run (or stopped: see StoredAttention.error)."""

        def __init__(self, layers: int) -> None:
            super().__init__()
            self.layers = layers

    def _layer_made(self, layers: int) -> None:
        """On the pass's thread: say so to the app, which may have quit."""
        with contextlib.suppress(RuntimeError):  # its event loop is closed
            self.post_message(self.LayersIn(layers))

    class MatrixRead(Message):
        """What the heatmap shows of a stored run, read: see Explorer.read."""

        def __init__(self, chosen: tuple[int, int | None], matrix: np.ndarray | str) -> None:
            super().__init__()
            self.chosen, self.matrix = chosen, matrix

    def _chosen(self) -> tuple[int, int | None]:
        """(layer, head) the heatmap shows; head None for the mean of the layer's heads."""
        return self.layer, None if self.mean else self.head

    @work(thread=True, group="stored")
    def _read_stored(self, chosen: tuple[int, int | None]) -> None:
        """A head of a stored run, or its layer's mean, read apart from the screen (a mean takes seconds at 4,096
        tokens)."""
        layer, head = chosen
        try:
            matrix: np.ndarray | str = self.stored.mean(layer) if head is None else self.stored.head(layer, head)
        except Closed:  # the explorer quit
            return
        except OSError as error:
            matrix = str(error)
        with contextlib.suppress(RuntimeError):  # the app's event loop is closed
            self.post_message(self.MatrixRead(chosen, matrix))

    def on_explorer_matrix_read(self, message: MatrixRead) -> None:
        self.read, self.reading = (message.chosen, message.matrix), False
        self._show_head()  # what it read, or, where the choice moved on meanwhile, reads that
        self._show_cursor_line()

    def on_explorer_layers_in(self, message: LayersIn) -> None:
        arrived = self.layers_in <= self.layer < message.layers
        self.layers_in = message.layers
        if arrived or self.stored.error:  # the layer shown is in, or will never be
            self._show_head()
        self._show_cursor_line()

    # What is drawn

    def matrix(self) -> np.ndarray | None:
        """The weights [T, T] the heatmap shows (or their norms): the current head's, or the mean of the layer's
        heads; for a stored run, in float16, and None while the layer is being computed or read."""
        if self.stored is not None:
            if self.read is None or self.read[0] != self._chosen() or isinstance(self.read[1], str):
                return None
            return self.read[1]
        weights = self.attention.attention
        return weights[self.layer].mean(axis=0) if self.mean else weights[self.layer, self.head]

    def watch_layer(self) -> None:
        self._show_head()

    def watch_head(self) -> None:
        self._show_head()

    def watch_mean(self) -> None:
        self._show_head()

    def watch_measure(self) -> None:
        self._show_head()
        self.query_one(QueryPane).ranking = self._cursor_ranking()

    def _show_head(self) -> None:
        """Hand the head now chosen (or the layer's mean) to the heatmap pane and the query pane; for a stored
        run, once it is read (reading it if it is not)."""
        stored = self.stored
        unread = stored is not None and stored.has(self.layer) and (self.read is None or self.read[0] != self._chosen())
        if unread and not self.reading:  # else the read under way, once done, reads what is chosen then
            self.reading = True
            self._read_stored(self._chosen())
        heatmap = self.query_one(MatrixPane)
        heatmap.waiting = self._waiting()
        heatmap.weights = self.matrix()
        heatmap.top = 1.0 if heatmap.weights is None else scale_top(self.attention, [heatmap.weights])
        heatmap.quantity = quantity(self.attention)
        heatmap.mask = self.layer_mask(self.layer)
        self.query_one(QueryPane).pinned = None if self.mean else (self.layer, self.head)  # first, with its rank

    def _waiting(self) -> str:
        """What a stored run's layers being computed say: how far the pass is, or why it stopped; or, once the
        layer is in, that what is shown is being read (or why it could not be)."""
        stored = self.stored
        if stored is None or self.matrix() is not None:
            return ""
        if stored.has(self.layer):
            shown = f"L{self.layer}'s mean of {stored.shape[1]} heads" if self.mean else head_name(*self._chosen())
            if self.read is not None and self.read[0] == self._chosen():
                return f"{shown} could not be read: {self.read[1]}"
            return f"reading {shown} …"
        if stored.error:
            return f"L{self.layer} was not computed: {stored.error}"
        return f"computing layer {self.layer} … {self.layers_in} of {stored.shape[0]} layers in ([ ] to move to one)"

    def watch_cursor(self, cursor: Cursor) -> None:
        """The query pane follows the cursor: its query's ranking, its key in the middle."""
        query_pane = self.query_one(QueryPane)
        query_pane.ranking = self._cursor_ranking()
        query_pane.centre = cursor.key
        self._show_attribution()
        self._show_lens_cursor()

    def watch_attribution(self) -> None:
        self._show_attribution()

    def _show_attribution(self) -> None:
        """Hand the attribution pane the attribution after the cursor's query, where the pane shows: the one kept,
        or, once the one being computed is done, a new one (a forward pass, apart from the screen)."""
        if not self.attribution:
            return
        query = self.cursor.query
        pane = self.query_one(AttributionPane)
        if self.stored is not None:
            pane.result = f"direct logit attribution: {self.too_long}"
        elif self.attribute is None:
            pane.result = "no model to attribute with"
        elif query in self.attributions:
            pane.result = self.attributions[query]
        else:
            pane.result = f"computing the direct logit attribution after {query} …"
            if self.attributing is None:
                self.attributing = query
                self._attribute_after(query)

    # not _compute_attribution: Textual would take it for the method that computes the `attribution` var
    @work(thread=True, group="attribution")
    def _attribute_after(self, query: int) -> None:
        try:
            result: AttributionResult | str = self.attribute(query)
        except AttncliError as error:
            result = f"attribution after {query}: {error}"
        self.call_from_thread(self._attributed, query, result)

    def _attributed(self, query: int, result: AttributionResult | str) -> None:
        """Keep the attribution after `query`, and show the cursor's (computing it, where it has moved on)."""
        if len(self.attributions) >= RANKINGS_KEPT:
            del self.attributions[next(iter(self.attributions))]  # the first kept
        self.attributions[query] = result
        self.attributing = None
        self._show_attribution()

    def watch_include_special(self) -> None:
        self.query_one(QueryPane).ranking = self._cursor_ranking()

    def _cursor_ranking(self) -> QueryResult | str:
        """Every head ranked for the cursor's query, or why there is no ranking."""
        query = self.cursor.query
        if self.stored is not None:
            return f"ranking the heads for query {query}: {self.too_long}"
        try:
            return self.ranking(query, self.include_special, self.measure)
        except AttncliError as error:
            return f"query {query}: {error}"

    def compute_heading(self) -> str:
        """The top line: what the heatmap (or the lens) shows and how."""
        if self.lens_shown:
            row = "embeddings" if self.lens_row == 0 else f"L{self.lens_row - 1}"
            return f"logit lens · {row} · ↑↓ layers, ←→ positions · o back to attention · ? for keys"
        which = (
            f"L{self.layer} mean of {self.attention.model.heads} heads"
            if self.mean
            else head_name(self.layer, self.head)
        )
        sinks = "sinks ranked" if self.include_special else "sinks left out of the ranking"
        zoom = "whole matrix" if self.zoom == 0 else f"cells {self.zoom} wide"
        measure = " · ‖αv W_O‖ norms" if self.measure == Measure.norms else ""
        if self.stored is None:
            return f"{which}{measure} · scale {self.scale} · {sinks} · {zoom} · ? for keys"
        layers = self.stored.shape[0]
        made = "" if self.layers_in == layers else f" · layers in: {self.layers_in} of {layers}"
        return f"{which} · float16{made} · scale {self.scale} · {zoom} · ? for keys"

    def watch_heading(self, heading: str) -> None:
        self.query_one("#top", Static).update(Text(heading, style="bold"))

    def _show_cursor_line(self) -> None:
        line = self._lens_line() if self.lens_shown else self._cursor_line()
        self.query_one("#status", Static).update(Text(line))

    def _lens_line(self) -> str:
        """The lens's cursor cell: the input token there, and its most probable token with probability and logit."""
        lens, row, position = self.query_one(LensPane).lens, self.lens_row, self.cursor.query
        if isinstance(lens, str):
            return lens
        layer = "the embeddings" if row == 0 else f"after L{row - 1}"
        predicted, probability, logit = (
            lens.ids[row, position, 0],
            lens.probabilities[row, position, 0],
            lens.logits[row, position, 0],
        )
        return (
            f"{layer}, position {position} “{token_label(lens.tokens[position].text)}”: "
            f"“{predicted_label(lens, int(predicted))}” {probability!s} (logit {logit!s})"
        )

    def _cursor_line(self) -> str:
        (query, key), tokens = self.cursor, self.attention.tokens
        matrix = self.matrix()
        if matrix is None:
            return self._waiting()
        weight = matrix.dtype.type(matrix[query, key])  # printed in its own precision's shortest form
        mask = self.layer_mask(self.layer)
        allowed = "" if mask is None or mask[query, key] else " (masked: the query may not see this key)"
        value = f"‖αv W_O‖ {weight!s}" if self.measure == Measure.norms else f"{weight!s}"
        generated = "" if self.prompt_tokens is None or query < self.prompt_tokens else " (generated)"
        return (
            f"query {query} “{token_label(tokens[query].text)}”{generated} → key {key} "
            f"“{token_label(tokens[key].text)}”: {value}{allowed}"
        )

    # Moving

    def move_to(self, query: int, key: int) -> None:
        last = len(self.attention.tokens) - 1
        self.cursor = Cursor(min(max(query, 0), last), min(max(key, 0), last))

    def move_by(self, rows: int, columns: int) -> None:
        if self.lens_shown:  # the lens's rows are its layers, its columns the positions (the query)
            self.lens_row = min(max(self.lens_row + rows, 0), self.attention.model.layers)
            self.move_to(self.cursor.query + columns, self.cursor.key)
            return
        if self.grid:  # the grid's cursor is the selected head
            self.head = (self.head + columns) % self.attention.model.heads
            self.layer = min(max(self.layer + rows, 0), self.attention.model.layers - 1)
            return
        self.move_to(self.cursor.query + rows, self.cursor.key + columns)

    def on_matrix_pane_cell_clicked(self, message: MatrixPane.CellClicked) -> None:
        self.move_to(*message.cursor)

    def on_matrix_pane_scrolled(self, message: MatrixPane.Scrolled) -> None:
        self.move_by(message.rows, 0)

    def on_token_strip_token_clicked(self, message: TokenStrip.TokenClicked) -> None:
        self.move_to(message.token, self.cursor.key)

    def action_move(self, rows: int, columns: int) -> None:
        self.move_by(rows, columns)

    def action_layer(self, step: int) -> None:
        self.layer = (self.layer + step) % self.attention.model.layers

    def action_head(self, step: int) -> None:
        self.head = (self.head + step) % self.attention.model.heads
        self.mean = False

    def action_zoom(self, step: int) -> None:
        level = min(max(ZOOMS.index(self.zoom) + step, 0), len(ZOOMS) - 1)
        self.zoom = ZOOMS[level]

    def action_grid(self) -> None:
        """g: the model grid, or back to the heatmap; from the lens, the grid in its place."""
        self.grid = True if self.lens_shown else not self.grid
        self.lens_shown = False

    def action_open(self) -> None:
        if self.grid and not self.lens_shown:
            self.grid, self.mean = False, False

    def action_back(self) -> None:
        """Escape: away from the find box, or back from the lens, or from the grid."""
        find = self.query_one("#find", Input)
        if find.display:
            find.display = False
            self.query_one(MatrixPane).focus()
        elif self.lens_shown:
            self.lens_shown = False
        else:
            self.grid = False

    def action_lens(self) -> None:
        """o: the logit lens in the heatmap's place, or back; computed the first time, apart from the screen."""
        self.lens_shown = not self.lens_shown
        pane = self.query_one(LensPane)
        if self.lens_shown and pane.lens == "":
            if self.stored is not None:
                pane.lens = f"the logit lens: {self.too_long}"
                return
            if self.lens is None:
                pane.lens = "no logit lens here"
                return
            pane.lens = "computing the logit lens: every layer's stream at every position through the head …"
            self._compute_lens()

    @work(thread=True, exclusive=True)
    def _compute_lens(self) -> None:
        try:
            lens: LensResult | str = self.lens()
        except AttncliError as error:
            lens = f"no logit lens: {error}"
        self.call_from_thread(self._show_lens, lens)

    def _show_lens(self, lens: LensResult | str) -> None:
        self.query_one(LensPane).lens = lens
        self.lens_row = len(lens.ids) - 1 if isinstance(lens, LensResult) else 0  # the model's own prediction
        self._show_lens_cursor()
        self._show_cursor_line()

    def watch_lens_row(self) -> None:
        self._show_lens_cursor()

    def _show_lens_cursor(self) -> None:
        self.query_one(LensPane).cursor = (self.lens_row, self.cursor.query)

    def action_mean(self) -> None:
        self.mean = not self.mean

    def action_attribution(self) -> None:
        self.attribution = not self.attribution

    def action_sinks(self) -> None:
        self.include_special = not self.include_special

    def action_scale(self) -> None:
        self.scale = SCALES[(SCALES.index(self.scale) + 1) % len(SCALES)]

    def action_measure(self) -> None:
        """The other measure, where the run has both."""
        others = [shown for shown in self.runs if shown != self.measure]
        if others:
            self.measure = others[0]
        elif self.stored is not None:
            self.query_one("#status", Static).update(Text(f"the ‖αv W_O‖ norms: {self.too_long}"))
        else:
            self.query_one("#status", Static).update(Text("this run has its weights alone: no value norms to show"))

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
        status = self.query_one("#status", Static)
        matches = [i for i, label in enumerate(self.labels) if self.found in label.lower()]
        if not matches:
            status.update(Text(f"no token has “{self.found}” in it"))
            return
        after = [i for i in matches if i > self.cursor.query]
        self.cursor = Cursor((after or matches)[0], self.cursor.key)
        where = matches.index(self.cursor.query) + 1
        status.update(
            Text(f"“{self.found}”: match {where} of {len(matches)} (n for the next) · " + self._cursor_line())
        )


@contextlib.contextmanager
def open_terminal() -> Iterator[int | None]:
    """A descriptor of the terminal to explore on, or None where there is none: the controlling
    terminal, whatever standard input, output and error are (`explore - < file.txt` reads its text
    from one, `2> log` sends messages to another), else a standard stream that is a terminal (a
    process started with its terminal but outside its session, as `setsid` starts one)."""
    try:
        terminal = os.open(TERMINAL, os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # ENXIO: no controlling terminal
        terminal = next((os.dup(stream) for stream in STANDARD_STREAMS if os.isatty(stream)), None)
    try:
        yield terminal
    finally:
        if terminal is not None:
            os.close(terminal)
