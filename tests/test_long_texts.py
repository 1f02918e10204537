"""Long texts in the static views: windows of keys and queries, crop notes before what they crop,
thumbnails for `model`, and a pager on a terminal only."""

import os
import re
import subprocess

import numpy as np
import pytest
from helpers import ATTNCLI, PRONOUN, read_until_closed
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attncli.analysis import block_means

LONG = " ".join([PRONOUN] * 12)  # 156 tokens on the sample model


def _row_indices(view: str) -> list[int]:
    """The query indices a plain heatmap view draws: each grid row starts with its index and label."""
    return [int(match.group(1)) for match in re.finditer(r"^\s*(\d+) \S", view, re.MULTILINE)]


def test_a_window_draws_exactly_the_chosen_queries_and_keys_and_says_so_first(cli):
    run = cli("heatmap", LONG, "--head", "1", "--queries", "10:14", "--keys", "-6:", "--no-values")
    assert run.code == 0
    lines = run.stdout.splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("(showing"))
    assert "queries 10–13 and keys 150–155 of 156 tokens" in " ".join(lines[note : note + 2])
    assert _row_indices(run.stdout) == [10, 11, 12, 13]
    assert note < next(i for i, line in enumerate(lines) if re.match(r"^\s*10 \S", line))  # the note comes first
    hundreds = next(i for i, line in enumerate(lines) if line.split() == ["1"] * 6)  # key indices, downwards
    assert [line.split() for line in lines[hundreds + 1 : hundreds + 3]] == [["5"] * 6, list("012345")]


def test_keys_cut_by_the_width_are_named_with_the_window_that_shows_the_next_ones(cli):
    run = cli("heatmap", LONG, "--head", "0", env={"COLUMNS": "80"})
    text = " ".join(run.stdout.split())
    shown = re.search(r"showing keys 0–(\d+) of 156 tokens; the width holds (\d+) keys: --keys (\d+):(\d+)", text)
    assert shown, text[:600]
    last, held, start, stop = map(int, shown.groups())
    assert held == last + 1 and start == last + 1 and stop == start + held
    assert text.index("showing keys") < text.index(" 0 the")


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("200:300", "--keys 200:300 picks none of the 156 tokens (0 to 155)"),
        ("5", "is not a window A:B"),
        ("1_0:2_0", "is not a window A:B"),
        ("٣:٥", "is not a window A:B"),
    ],
)
def test_a_window_that_picks_nothing_or_is_not_a_window_is_one_line(cli, window, message):
    run = cli("heatmap", LONG, "--keys", window)
    assert run.code == 2 and message in run.stderr and run.stdout == ""


def test_query_shows_the_keys_around_its_strongest_not_the_first_ones(cli):
    doc = cli("query", LONG, "--token", "150", "--json").json()
    strongest = doc["heads"][0]["top"]["index"]
    view = " ".join(cli("query", LONG, "--token", "150", env={"COLUMNS": "80"}).stdout.split())
    first, last = map(int, re.search(r"showing keys (\d+)–(\d+) of 156 tokens", view).groups())
    assert first > 0 and first <= strongest <= last


def test_model_draws_a_long_text_as_thumbnails_of_block_means(cli):
    run = cli("model", LONG, "--layers", "0", "--no-pager")
    assert "drawn 16 cells a side: each cell the mean of a 10 × 10 block" in " ".join(run.stdout.split())
    grid = [line for line in run.stdout.splitlines() if line.startswith("L0 H0")]
    assert grid and len(run.stdout.splitlines()) < 60  # 4 heads of 16 lines, not 4 × 156


@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.floats(0, 1)), st.data())
def test_block_means_average_exactly_the_cells_the_mask_allows(weights, data):
    seen = data.draw(arrays(bool, weights.shape))
    block = data.draw(st.integers(1, 4))
    means, has_cells = block_means(weights, seen, block)
    for row, column in np.ndindex(means.shape):
        cells = (slice(row * block, (row + 1) * block), slice(column * block, (column + 1) * block))
        allowed = weights[cells][seen[cells]]
        assert has_cells[row, column] == (allowed.size > 0)
        if allowed.size:
            assert means[row, column] == pytest.approx(allowed.mean(), abs=1e-12)


def _on_a_terminal(*args: str, pager: str) -> tuple[int, str]:
    """Run attncli with its stdout on a pseudo-terminal of 24 rows and PAGER set: (exit code, what it printed)."""
    import pty

    controller, terminal = pty.openpty()
    os.set_blocking(controller, True)
    env = {**os.environ, "PAGER": pager, "LINES": "24", "COLUMNS": "100"}
    with subprocess.Popen([ATTNCLI, *args], stdout=terminal, stderr=subprocess.PIPE, env=env) as process:
        os.close(terminal)
        printed = read_until_closed(controller)
        code = process.wait(timeout=60)
    os.close(controller)
    return code, printed.decode(errors="replace")


def test_a_view_taller_than_the_terminal_goes_through_the_pager_unless_told_not_to(tmp_path):
    paged = tmp_path / "paged.txt"
    pager = f"tee {paged}"  # a pager that keeps what it was given
    code, printed = _on_a_terminal("heatmap", LONG, "--head", "0", pager=pager)
    assert code == 0 and paged.exists() and "head 0" in paged.read_text()
    paged.unlink()
    code, printed = _on_a_terminal("heatmap", LONG, "--head", "0", "--no-pager", pager=pager)
    assert code == 0 and not paged.exists() and "head 0" in printed
    code, printed = _on_a_terminal("tokenize", "The cat", pager=pager)  # shorter than the screen: printed
    assert code == 0 and not paged.exists() and "The" in printed


def test_the_window_is_said_once_above_heads_drawn_side_by_side(cli):
    run = cli("heatmap", LONG, "--keys", "0:5", "--no-values", env={"COLUMNS": "200"})
    assert run.stdout.count("(showing") == 1 and run.stdout.count("head ") >= 2
