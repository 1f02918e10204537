"""`attncli explore`, driven through Textual's own harness (App.run_test and its Pilot): keys and
clicks change what it shows, and what it shows are the numbers the other commands compute."""

import asyncio
import dataclasses
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import ATTNCLI, BERT, FIXTURES, PRONOUN, SENTENCE, attncli, clean_error, copy_fixture, edit_config
from rich.console import Console

from attncli import analysis, commands
from attncli.models import load_model
from attncli.terminal import token_label
from attncli.views.lens import predicted_label

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def _run(text: str = PRONOUN, model: str = BERT):
    return commands.run(text, load_model(model))


def explore(run, *steps, size=(80, 24), **options):
    """Open the explorer on `run` at `size` (with `options`: its measure, attribute, lens, prompt_tokens), then
    take each step:
    a key name (as Pilot.press takes it), ("click", selector, (x, y)), ("resize", (width, height)) or a
    function given the running app, each once the work it started is done. Returns (the app, its screen as
    text); app.pane holds what the heatmap pane last drew (drawn, first_row, width, weights), app.strip where
    the token strip put each token, app.chart the query pane's chart, app.grid_height the model grid's height."""
    from attncli.explorer import Explorer

    async def drive():
        app = Explorer(run, **options)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for step in steps:
                if isinstance(step, str):
                    await pilot.press(step)
                elif callable(step):
                    step(app)
                elif step[0] == "click":
                    await pilot.click(step[1], offset=step[2])
                else:
                    await pilot.resize_terminal(*step[1])
                await app.workers.wait_for_complete()
                await pilot.pause()
            pane = app.query_one("MatrixPane")
            app.pane = SimpleNamespace(
                drawn=pane.drawn, first_row=pane.first_row, width=pane.size.width, weights=pane.weights
            )
            app.strip = app.query_one("TokenStrip").spans
            app.chart = app.query_one("QueryPane").render()
            app.grid_height = app.query_one("GridPane").size.height
            return app, _screen_text(app)

    return asyncio.run(drive())


def _screen_text(app) -> str:
    """What the screen shows, as text: the screen's lines (what export_screenshot draws as SVG) printed plain."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen._compositor.render_update(full=True))  # the one way Textual exposes the frame
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def test_it_opens_on_the_last_ordinary_token_and_shows_the_cursor_cell_s_exact_weight():
    run = _run()
    app, screen = explore(run)
    last = max(token.index for token in run.tokens if not token.special)
    assert app.cursor == (last, 0)
    label = token_label(run.tokens[last].text)
    assert f"query {last} “{label}” → key 0 “[CLS]”: {np.float32(run.weights[0, 0, last, 0])!s}" in screen


@pytest.mark.slow  # a second or more of key presses in the real app
def test_keys_move_the_cursor_and_step_through_layers_heads_and_the_mean():
    run = _run()
    start, _ = explore(run)
    app, screen = explore(run, "up", "right", "right", "right_square_bracket", "full_stop", "full_stop")
    query = start.cursor.query - 1
    assert (*app.cursor, app.layer, app.head) == (query, 2, 1, 2)
    np.testing.assert_array_equal(app.matrix(), run.weights[1, 2])
    assert f"{np.float32(run.weights[1, 2, query, 2])!s}" in screen and screen.startswith("L1 H2")
    app, screen = explore(run, "a")
    np.testing.assert_array_equal(app.matrix(), run.weights[0].mean(axis=0))
    assert screen.startswith("L0 mean of 4 heads")
    app, _ = explore(run, "comma", "left_square_bracket")  # both wrap around
    assert (app.layer, app.head) == (1, 3)


def test_the_query_pane_ranks_heads_as_query_does_with_this_head_first():
    run = _run()
    app, screen = explore(run, "full_stop")
    ranking = [
        (rank, f"L{t.layer} H{t.head}") for rank, t in enumerate(commands.query_run(run, [app.cursor.query]).ranking, 1)
    ]
    shown = [(int(rank), head) for rank, head in re.findall(r"^(\d+)\s+(L\d+ H\d+) ", screen, re.MULTILINE)]
    pinned = next(entry for entry in ranking if entry[1] == "L0 H1")
    assert shown == [pinned, *(entry for entry in ranking[:4] if entry != pinned)]


def test_special_tokens_join_the_ranking_with_s():
    run = _run()
    app, _ = explore(run, "s")
    with_sinks = commands.query_run(run, [app.cursor.query], include_special=True)
    assert app.include_special
    assert app.chart.rows[1][2] == with_sinks.run.tokens[with_sinks.ranking[0].top].text


@pytest.mark.slow  # a second or more of key presses in the real app
def test_the_query_s_ranking_is_computed_once_per_query_and_sinks_setting(monkeypatch):
    """Moving the cursor along the query's row, to another head or to the mean reuses the ranking;
    another query, or the other sinks setting, ranks the heads anew (once: going back reuses it)."""
    ranked = []
    query_run = commands.query_run

    def counted(result, span, include_special=False, *args, **kwargs):
        ranked.append((span[0], include_special))
        return query_run(result, span, include_special, *args, **kwargs)

    monkeypatch.setattr(commands, "query_run", counted)
    run = _run()
    app, _ = explore(run, "right", "right", "left", "full_stop", "right_square_bracket", "a")
    query = app.cursor.query
    assert ranked == [(query, False)]
    ranked.clear()
    explore(run, "up", "right", "down", "s", "s")
    assert ranked == [(query, False), (query - 1, False), (query, True)]


def test_setting_the_state_redraws_what_shows_it():
    """The app's state is reactive: setting its head from code, with no redraw called, draws the
    screen that pressing "." twice draws, the heatmap pane included."""
    run = _run()
    _, opening = explore(run)
    _, pressed = explore(run, "full_stop", "full_stop")
    app, screen = explore(run, lambda app: setattr(app, "head", 2))
    assert screen == pressed != opening and screen.startswith("L0 H2")
    np.testing.assert_array_equal(app.pane.weights, run.weights[0, 2])


@pytest.mark.slow  # a second or more of key presses in the real app
def test_zooming_out_ends_in_the_whole_matrix_as_block_means():
    run = _run(" ".join([PRONOUN] * 6), "sample")  # 78 tokens
    _, screen = explore(run, "minus", "minus", "minus", "minus", size=(80, 24))
    block = re.search(r"whole matrix: each cell the mean of a (\d+) × \1 block", screen)
    assert block and int(block[1]) > 1 and "weight" in screen  # and the legend under it
    _, screen = explore(run, "minus", "minus", "minus", "minus", "plus", size=(80, 24))
    assert "cells 1 wide" in screen


@pytest.mark.slow  # a second or more of key presses in the real app
def test_the_grid_marks_the_head_under_its_cursor_and_enter_opens_it():
    run = _run()
    app, screen = explore(run, "g", "right", "right", "down")
    assert app.grid and re.search(r"layers 0–1 of 2 · whole matrices, each cell the mean of a (\d+) × \1 block", screen)
    app, screen = explore(run, "g", "right", "right", "down", "enter")
    assert not app.grid and (app.layer, app.head) == (1, 2) and screen.startswith("L1 H2")


@pytest.mark.slow  # a second or more of key presses in the real app
def test_colour_scale_cycles_and_help_lists_every_key():
    run = _run()
    app, screen = explore(run, "c", "c")
    assert app.scale == "log" and "scale log" in screen
    from attncli.explorer import Explorer

    app, screen = explore(run, "question_mark", size=(100, 40))
    for binding in Explorer.BINDINGS:
        assert binding.description in screen
    app, screen = explore(run, "question_mark", "escape")
    assert "attncli explore: keys" not in screen
    _, top = explore(run, "question_mark", size=(80, 24))  # shorter than the list: it scrolls to its end
    _, bottom = explore(run, "question_mark", "end", size=(80, 24))
    assert "attncli explore: keys" in top and "wheel" not in top and "wheel" in bottom


@pytest.mark.slow  # a second or more of key presses in the real app
def test_find_moves_the_query_to_each_match_in_turn():
    run = _run(f"{SENTENCE} and the dog sat on the cat")
    the = [token.index for token in run.tokens if token.text == "the"]
    app, screen = explore(run, "slash", "t", "h", "e", "enter")
    assert app.cursor.query == the[0] and f"match 1 of {len(the)}" in screen
    app, _ = explore(run, "slash", "t", "h", "e", "enter", "n")
    assert app.cursor.query == the[1]
    app, screen = explore(run, "slash", "z", "z", "enter")
    assert "no token has “zz” in it" in screen


@pytest.mark.slow  # a second or more of key presses in the real app
def test_a_click_lands_on_the_cell_drawn_under_it_and_on_a_token_makes_it_the_query():
    """Where a cell is drawn is read off the screen (its row's label, its key's index above it), so
    the test cannot share a mistake with the explorer's own idea of its layout; the visible rows'
    labels are short while an off-screen one is long, which once moved the columns under the mouse."""
    run = _run(" ".join("abcdefghijklmnopqrstuvwxy") + " understanding", "sample")
    steps = ["up"] * 20  # the cursor up at row 5: "understanding", row 26, is off screen
    _, screen = explore(run, *steps)
    lines = screen.splitlines()
    labelled = [(i, re.match(r"^\s*(\d+) [a-z]\s+0\.", line)) for i, line in enumerate(lines)]
    row, query = next((i, int(match[1])) for i, match in labelled if match)
    indices = next(line for line in lines if re.match(r"^\s+0\s+1\s+2\b", line))
    column = indices.index(" 3 ") + 1  # the index of key 3, written in the middle of its cell
    app, _ = explore(run, *steps, ("click", "MatrixPane", (column, row - 1)))  # the pane starts on line 1
    assert app.cursor == (query, 3) and query != 26
    opened, _ = explore(_run())
    start, _, token = opened.strip[1]  # the second token the strip shows
    app, _ = explore(_run(), ("click", "TokenStrip", (start, 0)))
    assert app.cursor.query == token


def test_control_characters_in_tokens_never_reach_the_screen():
    from helpers import FIXTURES

    _, screen = explore(_run("a\x1b[31mb \u202eRTL c\x07d", str(FIXTURES / "gemma")))
    assert "\x1b" not in screen and "\u202e" not in screen and "\x07" not in screen


@pytest.mark.parametrize("width", [14, 18, 30])
def test_a_narrow_terminal_still_draws(width):
    app, screen = explore(_run(), "right", "minus", ("resize", (width + 5, 20)), "plus", size=(width, 20))
    assert len(screen.splitlines()) == 20 and app.pane.width == width + 5


def test_it_follows_a_resize_and_fits_80_by_24():
    run = _run(" ".join([PRONOUN] * 6), "sample")
    app, small = explore(run, size=(80, 24))
    lines = small.splitlines()
    assert len(lines) == 24 and max(map(len, lines)) <= 80
    assert lines[0].startswith("L0 H0") and "query " in lines[-2]
    app, large = explore(run, ("resize", (140, 40)))
    assert len(large.splitlines()) == 40 and app.pane.width == 140


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
def test_q_and_ctrl_c_quit(key):
    app, _ = explore(_run(), key)
    assert app.return_code == 0 and not app.is_running


@pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "140x40"])
def test_the_screen_matches_its_snapshot(size):
    """The whole screen as text. After a deliberate change to what the explorer draws, rewrite the
    snapshots with ATTNCLI_UPDATE_SNAPSHOTS=1 and read the difference before committing it."""
    from importlib.metadata import version  # not `import textual`: the explorer sets its colours up first

    _, screen = explore(_run(), "up", "right", "full_stop", size=size)
    snapshot = SNAPSHOTS / f"explore_{size[0]}x{size[1]}.txt"
    made_with = f"(drawn with textual {version('textual')})\n"
    if os.environ.get("ATTNCLI_UPDATE_SNAPSHOTS"):
        snapshot.write_text(made_with + screen + "\n", encoding="utf-8")
    recorded = snapshot.read_text(encoding="utf-8")
    if not recorded.startswith(made_with):  # its footer and borders are Textual's to change
        pytest.skip(f"the snapshot is {recorded.splitlines()[0]}; this is textual {version('textual')}: regenerate it")
    assert made_with + screen + "\n" == recorded


def _deeper(tmp_path, layers: int = 24) -> str:
    """The qwen2 fixture with its three layers repeated to `layers` (a decoder as deep as Qwen2.5-0.5B):
    config.json says so, and model.safetensors holds layer i's tensors again as layer i + 3, i + 6 ..."""
    directory = copy_fixture(tmp_path, "qwen2")
    config = json.loads((directory / "config.json").read_text())
    held = config["num_hidden_layers"]
    edit_config(
        directory,
        num_hidden_layers=layers,
        layer_types=[config["layer_types"][layer % held] for layer in range(layers)],
    )
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + size]), raw[8 + size :]
    entries, pieces, offset = {}, [], 0
    for name, entry in header.items():
        if name == "__metadata__":
            entries[name] = entry
            continue
        begin, end = entry["data_offsets"]
        layer = re.match(r"model\.layers\.(\d+)\.(.+)", name)
        copies = range(int(layer[1]), layers, held) if layer else []
        for copy in [f"model.layers.{i}.{layer[2]}" for i in copies] or [name]:
            entries[copy] = entry | {"data_offsets": [offset, offset + end - begin]}
            pieces.append(data[begin:end])
            offset += end - begin
    encoded = json.dumps(entries).encode()
    weights.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(pieces))
    return str(directory)


@pytest.mark.slow  # a second or more of key presses in the real app
@pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "140x40"])
def test_the_grid_fills_its_height_with_the_layers_around_the_selected_one(tmp_path, size):
    """A 24-layer decoder's grid: as many layers as fit (each at most three lines, with thumbnails of
    four cells a side, two rows a line), around the selected layer, and no room left under the last
    for another."""
    run = _run(" ".join([PRONOUN] * 8), _deeper(tmp_path))
    assert run.model.layers == 24
    app, screen = explore(run, "g", *["down"] * 12, size=size)
    assert app.layer == 12
    grid = screen.splitlines()[1 : 1 + app.grid_height]  # under the heading line
    starts = [(i, int(match[1])) for i, line in enumerate(grid) if (match := re.match(r"L(\d+)\s", line))]
    shown = [layer for _, layer in starts]
    assert len(shown) >= (app.grid_height - 1) // 3 > 1
    assert shown == list(range(shown[0], shown[-1] + 1)) and abs((shown[0] + shown[-1]) / 2 - 12) <= 1  # around L12
    lines_per_layer = starts[1][0] - starts[0][0]
    below = grid[starts[-1][0] + lines_per_layer :]
    assert len(below) < lines_per_layer and not any(line.strip() for line in below)
    assert f"layers {shown[0]}–{shown[-1]} of 24" in grid[0]


def test_the_query_pane_gives_each_weight_in_three_significant_digits():
    """On a long text every weight is small: rows of 422 keys that are near-uniform (each weight
    about 0.0024) were all printed 0.00. Each head's top weight reads as its own value."""
    run = _run(" ".join([PRONOUN] * 30))
    logits = np.random.default_rng(7).normal(scale=0.1, size=run.weights.shape)
    uniform = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)  # [L, h, T, T]
    run = dataclasses.replace(run, trace=dataclasses.replace(run.trace, weights=uniform.astype(np.float32)))
    app, _ = explore(run)
    ranking = {(t.layer, t.head): t.top_weight for t in commands.query_run(run, [app.cursor.query]).ranking}
    shown = [(row[1], row[3]) for row in app.chart.rows]
    assert len(shown) == 5 and all(float(weight) < 0.005 for _, weight in shown)
    for head, weight in shown:
        layer, number = map(int, re.fullmatch(r"L(\d+) H(\d+)", head).groups())
        assert float(weight) == pytest.approx(ranking[layer, number], rel=5e-3), (head, weight)
    assert len({weight for _, weight in shown}) == len({round(float(weight), 5) for _, weight in shown}) > 1


def _on_a_terminal(
    *args: str, controlling: bool = True, size=(100, 30), keys: bytes = b"", shows: bytes = b"", **streams
) -> tuple[int, str]:
    """Run attncli with ARGS on a new pseudo-terminal of `size` (columns, rows), its controlling
    terminal unless not `controlling`; standard input, output and error are the terminal but for
    those given in `streams` (stdin=, stdout=, stderr=: a file). Once the explorer has drawn its
    heading, press `keys`, and once it has drawn `shows` too, q. Returns (exit code, everything written to
    the terminal); a process that never draws is killed after 20 s."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
    with subprocess.Popen(
        [ATTNCLI, *args],
        **{"stdin": terminal, "stdout": terminal, "stderr": terminal} | streams,
        env=env | {"TERM": "xterm-256color"},
        start_new_session=True,  # a session of its own, whose controlling terminal is this one or none
        preexec_fn=(lambda: fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)) if controlling else None,
    ) as process:
        os.close(terminal)
        shown, pressed, quit, deadline = b"", None, False, time.monotonic() + 20
        while time.monotonic() < deadline:
            if select.select([controller], [], [], 0.2)[0]:
                try:
                    piece = os.read(controller, 65536)
                except OSError:  # Linux reports the other end closed as EIO
                    break
                shown += piece
            if pressed is None and b"? for keys" in shown:
                os.write(controller, keys)
                pressed = len(shown)  # what was drawn before the keys
            if pressed is not None and not quit and shows in shown[pressed:]:
                os.write(controller, b"q")
                quit = True
        else:
            process.kill()
        code = process.wait(timeout=30)
    os.close(controller)
    return code, shown.decode(errors="replace")


@pytest.mark.slow  # starts attncli on a pseudo-terminal
@pytest.mark.parametrize("redirected", ["stdin", "stdout", "stderr"])
def test_it_takes_keys_from_and_draws_on_the_terminal_whatever_is_redirected(tmp_path, redirected):
    """`explore - < text.txt` reads the text from the file, `> out` and `2> log` leave the file and
    the log empty: the keys and the screen are the terminal's, at the terminal's size."""
    source, output = tmp_path / "text.txt", tmp_path / "redirected"
    source.write_text(PRONOUN + "\n", encoding="utf-8")
    text = "-" if redirected == "stdin" else PRONOUN
    with (source if redirected == "stdin" else output).open("rb" if redirected == "stdin" else "wb") as stream:
        code, shown = _on_a_terminal("explore", text, "--model", BERT, **{redirected: stream})
    assert code == 0
    assert "L0 H0 · scale fixed" in shown and "animal" in shown  # the heading, and a token of the text
    assert "\x1b[30;1H" in shown and "\x1b[31;1H" not in shown  # drawn 30 rows high: the terminal's size
    assert redirected == "stdin" or output.read_bytes() == b""


@pytest.mark.slow  # starts attncli on a pseudo-terminal
def test_a_terminal_outside_the_process_s_session_still_serves():
    """Started with its terminal but without it as controlling terminal (as `setsid` starts it), it
    runs on the terminal its standard streams are."""
    code, shown = _on_a_terminal("explore", PRONOUN, "--model", BERT, controlling=False)
    assert code == 0 and "L0 H0 · scale fixed" in shown


@pytest.mark.slow  # starts attncli on a pseudo-terminal
def test_its_loading_shows_its_progress_before_the_screen_opens():
    """generate --explore's steps (over a second) show on the terminal, and are cleared, before the explorer draws."""
    qwen = str(FIXTURES / "qwen2")
    code, shown = _on_a_terminal("generate", PRONOUN, "--model", qwen, "--max-new-tokens", "400", "--explore")
    loading = shown.split("? for keys", 1)[0]
    assert code == 0 and re.search(r"token \d+/400 · layer \d/3", loading)


@pytest.mark.slow  # starts attncli in a process of its own
def test_with_no_terminal_at_all_it_refuses():
    """Into a pipe, in a session with no terminal: one line, exit 2, before any work (the text is not even
    read: an empty one is not what is refused; generate --explore generates nothing); a closed standard input
    too."""
    no_terminal = "explore needs a terminal for its keys and screen; for a pipe use heatmap or query --json"
    for args in (
        ["explore", SENTENCE],
        ["explore", ""],
        ["generate", "", "--model", str(FIXTURES / "qwen2"), "--explore"],
    ):
        clean_error(attncli(*args, stdin=b"", start_new_session=True), no_terminal)
    closed = subprocess.run(
        ["sh", "-c", f'"{ATTNCLI}" explore "{SENTENCE}" <&-'], capture_output=True, start_new_session=True, timeout=60
    )
    clean_error(closed, "explore needs standard input and error open")


def test_no_other_command_loads_textual():
    """Textual is the explorer's alone: a view or a JSON document never pays for importing it."""
    import sys

    probe = (
        "import sys\n"
        "from attncli.cli import main\n"
        "for args in (['heatmap', 'the cat', '--no-pager'], ['query', 'the cat', '--token', 'cat', '--json']):\n"
        "    sys.argv = ['attncli', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "sys.stderr.write(str(sorted(name for name in sys.modules if name.split('.')[0] == 'textual')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stderr.endswith("[]"), done.stderr[-300:]


def _norms_run(text: str = PRONOUN, model: str = BERT):
    return commands.run(text, load_model(model), measure="norms")


@pytest.mark.slow  # key presses in the real app, twice over
def test_m_switches_every_pane_to_the_norms_and_back():
    run = _norms_run()
    app, screen = explore(run, "m")
    assert app.measure == "norms"
    norms = run.attention  # [L, h, T, T]
    np.testing.assert_array_equal(app.matrix(), norms[0, 0])
    assert app.pane.weights is not None and screen.startswith("L0 H0 · ‖αv W_O‖ norms · scale fixed")
    query, key = app.cursor
    assert f"→ key {key} “[CLS]”: ‖αv W_O‖ {np.float32(norms[0, 0, query, 0])!s}" in screen
    assert app.chart.headers[3] == "norm" and app.chart.top == pytest.approx(
        max(t.weights.max() for t in commands.query_run(run, [query]).ranking[:4])
    )
    lines = screen.splitlines()
    legend = lines.index("‖αv W_O‖")  # under the heatmap: its scale, from 0 to the head's largest norm
    assert lines[legend + 1].split() == ["0", f"{norms[0, 0].max() / 2:.3g}", f"{norms[0, 0].max():.3g}"]
    back, screen = explore(run, "m", "m")
    assert back.measure == "weights" and "‖αv W_O‖" not in screen
    np.testing.assert_array_equal(back.matrix(), run.weights[0, 0])


def test_explore_opens_on_the_measure_asked_and_its_grid_draws_norms_too():
    run, drawn = _norms_run(), []
    app, screen = explore(run, "g", lambda app: drawn.append(app.query_one("GridPane").attention), measure="norms")
    assert app.measure == "norms" and "‖αv W_O‖ norms" in screen.splitlines()[0]
    assert drawn[0].shows_norms and drawn[0].attention is run.attention


def test_a_run_without_value_norms_stays_on_its_weights_and_says_why():
    app, screen = explore(_run(), "m")
    assert app.measure == "weights" and "this run has its weights alone: no value norms to show" in screen


def test_d_shows_the_direct_logit_attribution_after_the_query_in_the_query_pane_s_place():
    """Computed when shown, for the cursor's query, once per query (going back reuses it)."""
    model = load_model(str(FIXTURES / "phi"))
    run = commands.run(PRONOUN, model)
    asked = []

    def attribute(position):
        asked.append(position)
        return commands.attribute(PRONOUN, model, at=str(position))

    app, screen = explore(run, size=(100, 40), attribute=attribute)
    assert asked == [] and "push it up" not in screen
    app, screen = explore(run, "d", "up", "down", size=(100, 40), attribute=attribute)
    last = app.cursor.query
    assert asked == [last, last - 1] and app.attribution
    expected = commands.attribute(PRONOUN, model, at=str(last))
    top = expected.components[expected.ranking[0]]
    assert f"direct logit attribution after {last}" in screen and "Heads that push it up" in screen
    value = re.escape(f"{expected.contributions[expected.ranking[0]]:+.3f}")
    assert re.search(rf"1\s+L{top.layer} H{top.head}\s+{value}", screen)
    assert "top key" not in screen  # the query pane is hidden
    _, screen = explore(run, "d", "d", size=(100, 40), attribute=attribute)
    assert "Heads that push it up" not in screen and "top key" in screen
    _, screen = explore(_run(), "d", size=(100, 40))  # no model to attribute with
    assert "no model to attribute with" in screen


def test_the_attribution_is_computed_apart_from_the_screen_one_at_a_time_for_the_cursor_s_query():
    """A forward pass a position: the keys go on while it runs, moving the query starts no second one at once,
    and once it is done the query the cursor has moved to is computed."""
    import threading

    from attncli.explorer import AttributionPane, Explorer

    model = load_model(str(FIXTURES / "phi"))
    run = commands.run(PRONOUN, model)
    release, asked = threading.Event(), []

    def attribute(position):
        asked.append(position)
        release.wait(30)
        return commands.attribution_at(PRONOUN, run.tokens, model, position)

    async def drive():
        app = Explorer(run, attribute=attribute)
        async with app.run_test(size=(100, 40)) as pilot:
            last = app.cursor.query
            await pilot.press("d", "up")
            pane = app.query_one(AttributionPane)
            assert pane.result == f"computing the direct logit attribution after {last - 1} …"
            assert app.cursor.query == last - 1 and asked == [last]  # the key was taken; one pass at a time
            release.set()
            while len(asked) < 2 or app.workers:
                await app.workers.wait_for_complete()
                await pilot.pause()
            assert asked == [last, last - 1] and pane.result.position == last - 1
            await pilot.press("down")  # kept: shown at once
            assert pane.result.position == last and asked == [last, last - 1]

    asyncio.run(drive())


def test_the_attribution_pane_says_why_a_model_has_none():
    model = load_model(BERT)

    def attribute(position):
        return commands.attribute(PRONOUN, model, at=str(position))

    _, screen = explore(_run(), "d", size=(100, 30), attribute=attribute)
    assert "language-model head" in " ".join(screen.split())


def _lens_run(name: str = "qwen2", text: str = PRONOUN):
    """A run of fixture `name` and the function that makes its logit lens, as explore hands them over."""
    model = load_model(str(FIXTURES / name))
    run = commands.run(text, model)
    return run, lambda: commands.lens_of(text, run.tokens, model)


def test_o_shows_the_logit_lens_on_the_model_s_own_prediction_and_arrows_move_through_it():
    run, lens = _lens_run()
    result = lens()
    app, screen = explore(run, "o", lens=lens)
    query = app.cursor.query  # the last token: the lens opens on the last row, the model's own prediction
    assert app.lens_row == 3 and "logit lens · L2 · ↑↓ layers, ←→ positions" in screen
    top = predicted_label(result, int(result.ids[3, query, 0]))
    status = screen.splitlines()[-2]
    assert status.startswith(f"after L2, position {query} “{token_label(run.tokens[query].text)}”: “{top}”")
    assert f" {result.probabilities[3, query, 0]!s} (logit {result.logits[3, query, 0]!s})" in status
    assert all(label in screen for label in ("embeddings", "L0", "L1", "L2", "probability"))
    app, screen = explore(run, "o", "up", "up", "up", "up", "left", lens=lens)
    assert app.lens_row == 0 and app.cursor.query == query - 1
    assert screen.splitlines()[-2].startswith(f"the embeddings, position {query - 1}")
    app, screen = explore(run, "o", "o", lens=lens)
    assert not app.lens_shown and "query " in screen.splitlines()[-2]  # back to the heatmap


def test_g_and_escape_leave_the_lens_for_the_grid_or_what_it_covered():
    """The lens takes the heatmap's or the grid's place: g from it shows the grid, Escape what it covered, and
    Enter there opens no head of the hidden grid."""
    run, lens = _lens_run()
    app, screen = explore(run, "o", "g", lens=lens)
    assert app.grid and not app.lens_shown and "logit lens" not in screen.splitlines()[0]
    app, _ = explore(run, "g", "o", "enter", "escape", lens=lens)
    assert app.grid and not app.lens_shown  # back on the grid, which enter left as it was
    app, _ = explore(run, "o", "escape", lens=lens)
    assert not app.grid and not app.lens_shown
    app, _ = explore(run, "g", "g", lens=lens)
    assert not app.grid  # g still toggles the grid off the lens


def test_the_lens_pane_says_why_there_is_no_lens():
    run = commands.run(PRONOUN, load_model(BERT))
    _, screen = explore(run, "o", lens=lambda: commands.lens_of(PRONOUN, run.tokens, load_model(BERT)))
    assert "no logit lens: model.safetensors has no masked-language-model head" in screen.replace("\n", " ")
    _, screen = explore(run, "o")
    assert "no logit lens here" in screen


def test_a_generated_sequence_s_continuation_is_marked_where_tokens_show():
    model = load_model(str(FIXTURES / "qwen2"))
    result = commands.generate(SENTENCE, model, max_new_tokens=3)
    first = result.prompt_tokens
    _, screen = explore(result.run, "right", prompt_tokens=first)
    strip = screen.splitlines()[-3]
    assert f"│ {first}:" in strip  # a bar before the first new token
    assert "(generated)" in screen.splitlines()[-2]  # the cursor opens on the last token, a new one
    _, screen = explore(result.run, *["up"] * 4, prompt_tokens=first)
    assert "(generated)" not in screen.splitlines()[-2]


@pytest.mark.slow  # starts attncli on a pseudo-terminal
def test_generate_explore_switches_to_the_norms_and_attributes_the_generated_tokens():
    """The whole sequence's run carries its value norms (m) and the model for the attribution pane (d), as explore's
    does: here after the last token, the model's next prediction."""
    qwen2 = str(FIXTURES / "qwen2")
    args = ("generate", SENTENCE, "--model", qwen2, "--max-new-tokens", "2", "--explore")
    code, shown = _on_a_terminal(*args, keys=b"md", shows=b"Heads that push it up")  # the chart, not its placeholder
    assert code == 0 and "‖αv W_O‖ norms" in shown and "Heads that push it up" in shown


# A long text: its every layer would pass the memory budget, so the explorer keeps each on disk as the pass makes it.

LONG_TEXT = " ".join([PRONOUN] * 4)  # 75 tokens on the qwen2 fixture: 3 layers × 4 heads


def _stored(gates: list | None = None):
    """A streamed run of LONG_TEXT on the qwen2 fixture, its StoredAttention and the whole run in float32: with
    `gates` (a threading.Event per layer), the pass hands each layer on only once its gate is set."""
    from attncli.stored import StoredAttention
    from attncli.streamed import LayerStream

    model = load_model(str(FIXTURES / "qwen2"))
    streamed = commands.run(LONG_TEXT, model, streamed=True)
    if gates is not None:
        made = streamed.stream._run

        def gated(hand_on):
            def on_attention(layer, weights, norms):
                gates[layer].wait(timeout=20)
                hand_on(layer, weights, norms)

            return made(on_attention)

        streamed = dataclasses.replace(streamed, stream=LayerStream(streamed.stream.shape, gated))
    return streamed, StoredAttention(streamed), commands.run(LONG_TEXT, model)


def _until(condition):
    """A step of `explore`: waits (up to 20 s) until condition(app) holds, the app's loop running."""

    async def wait(app):
        deadline = time.monotonic() + 20
        while not condition(app) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert condition(app)

    return wait


def _opened_on_stored(streamed, stored, *steps, **options):
    """`explore` on a stored run, whose steps may be coroutines (see _until) run on the app's loop."""
    from attncli.explorer import Explorer

    async def drive():
        app = Explorer(streamed, stored=stored, **options)
        screens = []
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for step in steps:
                if step == "screen":
                    screens.append(_screen_text(app))
                elif isinstance(step, str):
                    await pilot.press(step)
                else:
                    await step(app)
                await pilot.pause()
            app.pane = app.query_one("MatrixPane")
        return app, screens

    return asyncio.run(drive())


def test_a_long_text_opens_on_block_means_and_shows_each_layer_once_it_is_made():
    """The screen opens before the pass is done, on the whole matrix in block means; a layer not yet made says it
    is being computed (no numbers), and is drawn once it comes; the heading counts the layers in."""
    import threading

    gates = [threading.Event() for _ in range(3)]
    streamed, stored, whole = _stored(gates)
    gates[0].set()
    app, (first, waiting, drawn) = _opened_on_stored(
        streamed,
        stored,
        _until(lambda app: app.layers_in == 1 and _drawn(app)),
        "screen",
        "right_square_bracket",
        "screen",
        lambda app: _release(gates),
        _until(lambda app: app.layers_in == 3 and _drawn(app)),
        "screen",
    )
    assert app.zoom == 0 and "whole matrix: each cell the mean of a" in first
    assert "L0 H0 · float16 · layers in: 1 of 3" in first
    query, key = app.cursor
    status = first.splitlines()[-2]
    assert re.search(rf"→ key {key} .*: (\S+)$", status)
    shown = float(re.search(r": (\S+)$", status)[1])
    assert abs(shown - whole.weights[0, 0, query, key]) < 1e-3
    assert "computing layer 1 … 1 of 3 layers in" in waiting and "whole matrix: each cell" not in waiting
    assert not re.search(r"→ key \d+ .*: \d", waiting)  # no weight of a layer not made
    assert "L1 H0 · float16 ·" in drawn and "layers in" not in drawn and "whole matrix: each cell" in drawn
    np.testing.assert_allclose(app.pane.weights, whole.weights[1, 0], atol=1e-3)


def _drawn(app) -> bool:
    """Whether the heatmap pane has the block means of what it shows (computed apart from the screen)."""
    pane = app.query_one("MatrixPane")
    return pane.weights is not None and pane.means is not None and pane.means[0] is pane.weights


async def _release(gates) -> None:
    for gate in gates:
        gate.set()


def test_a_long_text_s_block_means_are_computed_apart_while_the_screen_takes_keys(monkeypatch):
    """A stored run's block means (a second at 4,096 tokens) are computed on a thread of their own: the screen says
    so meanwhile and answers keys; once done, the pane draws them."""
    import threading

    from attncli import explorer

    computed = threading.Event()
    threads = []
    block_means = analysis.block_means

    def held_block_means(weights, seen, block):
        threads.append(threading.current_thread())
        assert computed.wait(timeout=20)
        return block_means(weights, seen, block)

    monkeypatch.setattr(explorer.analysis, "block_means", held_block_means)
    streamed, stored, _ = _stored()
    app, (computing, drawn) = _opened_on_stored(
        streamed,
        stored,
        _until(lambda app: stored.complete and threads),
        "c",  # the scale: the screen answers while the means are computed
        "screen",
        lambda app: _release([computed]),
        _until(_drawn),
        "screen",
    )
    assert threading.main_thread() not in threads
    assert "computing the whole matrix's means in" in computing and "scale row" in computing
    assert "whole matrix: each cell the mean of a" in drawn
    block = int(re.search(r"the mean of a (\d+) × ", drawn)[1])
    np.testing.assert_array_equal(
        app.pane.means[3][0], analysis.block_means(app.pane.weights, np.tri(len(streamed.tokens), dtype=bool), block)[0]
    )


def test_stored_weights_are_the_run_s_in_float16_within_1e_3():
    _, stored, whole = _stored()
    stored.fill(lambda layers: None)
    try:
        assert stored.complete and stored.error is None
        for layer in range(3):
            mean = stored.mean(layer)
            assert mean.dtype == np.float16
            np.testing.assert_allclose(mean, whole.weights[layer].mean(axis=0), atol=1e-3, rtol=0)
            for head in range(4):
                np.testing.assert_allclose(stored.head(layer, head), whole.weights[layer, head], atol=1e-3, rtol=0)
    finally:
        stored.close()


class _Layers:
    """A stream of given [h, T, T] layers, as StoredAttention reads a run's."""

    def __init__(self, layers: np.ndarray):
        self.shape, self._layers = layers.shape, layers

    def __iter__(self):
        return iter(self._layers)


def test_a_stored_layer_s_mean_and_its_block_means_hold_no_whole_float32_or_float64_matrix(monkeypatch):
    """A layer's mean is summed a strip of rows at a time (equal, to the bit, to summing whole heads) and its block
    means a strip of blocks at a time: besides the float16 mean, never the memory of a float32 [T, T]."""
    import tracemalloc

    from attncli import stored as stored_module

    monkeypatch.setattr(stored_module, "MEAN_STRIP_CELLS", 2**14)
    monkeypatch.setattr(analysis, "BLOCK_STRIP_CELLS", 2**14)
    tokens, heads = 1024, 4
    weights = np.random.default_rng(0).random((1, heads, tokens, tokens), np.float32)  # [L, h, T, T]
    stored = stored_module.StoredAttention(SimpleNamespace(stream=_Layers(weights)))
    stored.fill(lambda layers: None)
    seen = np.tri(tokens, dtype=bool)  # [T, T]
    try:
        tracemalloc.start()  # numpy reports its arrays' memory to it
        try:
            mean = stored.mean(0)  # [T, T] float16
            analysis.block_means(mean, seen, 8)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak - mean.nbytes < tokens * tokens * 4 / 2  # half a float32 [T, T]
        whole_heads = sum(stored.head(0, head).astype(np.float32) for head in range(heads))  # [T, T]
        assert mean.tobytes() == (whole_heads / heads).astype(np.float16).tobytes()
    finally:
        stored.close()


def test_the_stored_file_is_never_named_and_is_gone_when_the_explorer_quits(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def open_in_tmp_path() -> list[str]:
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:  # the listing's own descriptor, closed since
                continue
        return [link for link in links if link.startswith(str(tmp_path))]

    streamed, stored, _ = _stored()
    seen = []
    _opened_on_stored(
        streamed, stored, _until(lambda app: stored.complete), lambda app: _note(seen, open_in_tmp_path())
    )
    assert len(seen[0]) == 1 and seen[0][0].endswith("(deleted)")  # open, with no name in the directory
    assert list(tmp_path.iterdir()) == [] and open_in_tmp_path() == []


async def _note(seen: list, value) -> None:
    seen.append(value)


def test_panes_that_need_every_layer_in_memory_say_so_for_a_long_text():
    streamed, stored, _ = _stored()
    app, screens = _opened_on_stored(
        streamed,
        stored,
        _until(lambda app: stored.complete),
        "screen",
        "d",
        "screen",
        "o",
        "screen",
        "g",
        "screen",
        "question_mark",
        "screen",
    )
    query_pane, attribution, lens, grid, helped = screens
    too_long = f"not available for {len(streamed.tokens)} tokens, kept a layer at a time"
    assert f"ranking the heads for query {app.cursor.query}: {too_long}" in query_pane
    assert f"direct logit attribution: {too_long}" in attribution
    assert f"the logit lens: {too_long}" in lens
    assert f"the model grid: {too_long}" in grid
    assert "This text's layers would pass the memory budget" in helped and "float16" in helped and "1e-3" in helped


@pytest.mark.slow  # starts attncli on a pseudo-terminal
def test_explore_keeps_a_text_over_the_memory_budget_on_disk(monkeypatch):
    """Where its layers would pass the budget but one fits, explore opens on the stored layers, in block means."""
    model = load_model(str(FIXTURES / "qwen2"))
    tokens = len(model.tokenize(LONG_TEXT))
    one_layer = model.info.heads * tokens * tokens * model.info.itemsize
    monkeypatch.setenv("ATTNCLI_MEMORY_BUDGET", str(2 * one_layer / 2**20))
    code, shown = _on_a_terminal("explore", LONG_TEXT, "--model", str(FIXTURES / "qwen2"), shows=b"each cell the mean")
    assert code == 0 and "float16" in shown and "whole matrix" in shown
