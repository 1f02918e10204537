"""The explorer under Textual's harness, for make bench: `first` opens a text and exits once the
first heatmap is drawn (the bench times the whole process); `switch` then moves to another head
again and again and prints, as JSON, the milliseconds of each move; `long` opens a text too long to keep
whole (kept on disk a layer at a time, see attncli.stored, as `explore` does) and prints, as JSON, the
seconds to its screen, to the pass's first layer, to its block means and to the layer's mean of heads in block means
(`a`), with the longest the screen's event loop went without running (a stall: keys wait that long).

Each move is timed two ways: the harness's round trip (Pilot.press, then Pilot.pause until the
screen is idle), beside the same round trip for a key that does nothing, which is the harness's own
cost; and the explorer's work alone: the head's change with what its watchers hand the panes, plus
rendering the heatmap and query panes to lines as Textual does.

usage: python bench/explore.py first|switch|long MODEL TEXT_FILE
"""

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path


async def main(mode: str, model: str, text_file: str) -> None:
    from attncli import commands
    from attncli.explorer import Explorer, MatrixPane, QueryPane
    from attncli.models import load_model

    if mode == "long":
        await long_text(model, text_file)
        sys.stdout.flush()
        # At once, as attncli ends: the pass's thread may be in OpenBLAS, whose exit handler would wait on it.
        os._exit(0)
    run = commands.run(Path(text_file).read_text(encoding="utf-8").strip(), load_model(model))
    app = Explorer(run)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()  # the first heatmap is on the screen
        if mode == "first":
            return
        moves, idle, work = [], [], []
        for _ in range(20):
            start = time.perf_counter()
            await pilot.press("full_stop")
            await pilot.pause()
            moves.append(time.perf_counter() - start)
            start = time.perf_counter()
            await pilot.press("f12")  # bound to nothing
            await pilot.pause()
            idle.append(time.perf_counter() - start)
        heatmap, query_pane, width = app.query_one(MatrixPane), app.query_one(QueryPane), app.size.width
        options = app.console.options.update_width(width)
        for _ in range(20):
            start = time.perf_counter()
            app.action_head(1)  # the watchers hand every pane what it draws
            # and the panes drawn to lines, as Textual will: the heatmap and the query pane
            for renderable in (heatmap.render(), query_pane.render()):
                list(app.console.render_lines(renderable, options))
            work.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "round_trip_ms": statistics.median(moves) * 1000,
                "idle_round_trip_ms": statistics.median(idle) * 1000,
                "redraw_ms": statistics.median(work) * 1000,
                "tokens": len(run.tokens),
            }
        )
    )


LONG_MAX_TOKENS = 5000  # as the docs' runs gave --max-tokens


async def long_text(model: str, text_file: str) -> None:
    from attncli import commands
    from attncli.explorer import Explorer, MatrixPane
    from attncli.models import load_model
    from attncli.stored import StoredAttention

    start = time.perf_counter()
    text = Path(text_file).read_text(encoding="utf-8").strip()
    streamed = commands.run(text, load_model(model), LONG_MAX_TOKENS, streamed=True)  # tokenized, no pass yet
    app = Explorer(streamed, stored=StoredAttention(streamed))
    stalls = [0.0]

    async def tick() -> None:  # wakes every 10 ms: what it wakes late is time the loop spent elsewhere
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stalls.append(now - last - 0.01)
            last = now

    layer_in = []  # when the pass's first layer was in

    async def drawn(pane) -> float:  # until the pane's block means are those of what it shows
        while not (pane.weights is not None and pane.means is not None and pane.means[0] is pane.weights):
            if app.layers_in and not layer_in:
                layer_in.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)
        return time.perf_counter() - start

    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        screen = time.perf_counter() - start
        ticker = asyncio.create_task(tick())
        pane = app.query_one(MatrixPane)
        first = await drawn(pane)
        mean_start = time.perf_counter()
        await pilot.press("a")
        mean = await drawn(pane) - (mean_start - start)
        ticker.cancel()
    print(
        json.dumps(
            {
                "screen_s": screen,
                "first_layer_in_s": layer_in[0],
                "first_block_means_s": first,
                "mean_block_means_s": mean,
                "longest_stall_ms": max(stalls) * 1000,
                "tokens": len(streamed.tokens),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
