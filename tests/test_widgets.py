"""widgets/ on a fixed-width console: they fit, stay legible without colour, never hide a number's size."""

import re

import numpy as np
from helpers import ANSI, LONG, render_text, widest_line
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from rich.color import Color

from attncli import commands
from attncli.models import load_model
from attncli.widgets.columns import FittedTable
from attncli.widgets.heatmap import Heatmap, colour_of, colours_of, fractions
from attncli.widgets.minimap import MiniHeatmap
from attncli.widgets.vectors import VectorTable, number


def test_keys_cut_by_the_width_are_named_with_the_window_that_shows_the_next_ones(cli):
    run = cli("heatmap", LONG, "--head", "0", env={"COLUMNS": "80"})
    text = " ".join(run.stdout.split())
    shown = re.search(r"showing keys 0–(\d+) of 156 tokens; the width holds (\d+) keys: --keys (\d+):(\d+)", text)
    assert shown, text[:600]
    last, held, start, stop = map(int, shown.groups())
    assert held == last + 1 and start == last + 1 and stop == start + held
    assert text.index("showing keys") < text.index(" 0 the")


WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


FORTY_TOKENS = " ".join(WORDS[i % len(WORDS)] for i in range(40))


def uniform_heatmap(n: int, **options) -> Heatmap:
    return Heatmap(np.full((n, n), 1 / n), [f"t{i}" for i in range(n)], **options)


def test_six_tokens_with_numbers_fit_80_columns():
    text = render_text(uniform_heatmap(6, show_values=True), width=80)
    assert widest_line(text) <= 80
    assert "0.17" in text
    assert "too narrow" not in text


def test_forty_tokens_fit_120_columns():
    tokens = commands.tokenize(FORTY_TOKENS, load_model()).tokens
    assert len(tokens) == 40
    heatmap = Heatmap(np.full((40, 40), 1 / 40), [t.text for t in tokens], show_values=False)
    text = render_text(heatmap, width=120)
    assert widest_line(text) <= 120
    assert len(text.splitlines()) >= 40
    assert "showing keys" not in text


def test_narrower_cells_keep_the_numbers_short():
    weights = np.array([[0.42, 0.58, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    heatmap = Heatmap(weights, ["a", "b", "c"], show_values=True)
    text = render_text(heatmap, width=heatmap.row_label_width + 12)
    assert " .42 .58" in text
    assert " 1.0 .00" in text


def test_numbers_that_do_not_fit_are_dropped_with_a_note():
    text = render_text(uniform_heatmap(40, show_values=True), width=120)
    assert "0.03" not in text
    assert "too narrow for the numbers" in text


def test_without_colour_or_numbers_the_grid_uses_shades_that_rank_even_small_weights():
    weights = np.array([[0.005, 0.02, 0.08, 0.295, 0.6], *[[0.2] * 5] * 4])
    text = render_text(Heatmap(weights, ["a", "b", "c", "d", "e"], show_values=False), width=40)
    assert not ANSI.search(text)
    rows = [line[4:] for line in text.splitlines() if line.startswith(("0 a", "1 b"))]
    assert rows == ["   ░░░▒▒▒▓▓▓███", "▓▓▓" * 5]  # 0.005 blank, 0.02 and 0.08 apart: a long text's weights show
    assert "weight: ░ ≥0.01  ▒ ≥0.05  ▓ ≥0.2  █ ≥0.5" in text  # and the legend says where each shade begins


def test_sixteen_colour_terminals_get_shades_not_a_broken_scale():
    weights = np.full((3, 3), 1 / 3)
    heatmap = Heatmap(weights, ["t0", "t1", "t2"], show_values=False, scale="row")
    text = render_text(heatmap, width=80, color_system="standard")
    assert "\x1b[" not in text
    rows = [line for line in text.splitlines() if line.startswith(("0 t0", "1 t1", "2 t2"))]
    assert rows == [f"{i} t{i} {'█' * 9}" for i in range(3)]  # every weight is its row's largest: the fullest shade
    assert "share of the row's largest weight: ░ ≥0.20" in text  # and the legend says where each shade begins


def test_one_colour_means_one_weight_on_the_fixed_scale_and_log_shows_small_weights():
    weights = np.array([[0.9, 0.09, 0.01], [0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    assert_allclose(fractions(weights, "fixed"), weights)
    assert_allclose(fractions(weights, "row")[0], [1.0, 0.1, 1 / 90])
    assert_allclose(fractions(weights, "log")[0], [(np.log10(0.9) + 3) / 3, (np.log10(0.09) + 3) / 3, 1 / 3])
    assert fractions(np.array([[1e-9]]), "log")[0, 0] == 0.0
    legend = render_text(Heatmap(weights, ["a", "b", "c"], scale="log"), width=80, color_system="truecolor")
    assert "weight, log scale" in legend and "≤0.001" in legend and "0.01" in legend


def test_with_colour_cells_get_background_colours():
    text = render_text(uniform_heatmap(3, show_values=False), width=80, color_system="truecolor")
    assert "\x1b[" in text
    assert ";48;2;" in text or "\x1b[48;2;" in text


def test_masked_cells_are_blank():
    weights = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    text = render_text(Heatmap(weights, ["a", "b", "c"], mask=np.tri(3, dtype=bool)), width=60)
    first_row = next(line for line in text.splitlines() if line.startswith("0 a"))
    assert first_row.count("·") == 2


def test_long_labels_are_abbreviated_not_wrapped():
    labels = ["supercalifragilistic", "b"]
    text = render_text(Heatmap(np.eye(2), labels), width=80)
    assert "supercalifr…" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_viridis_ends():
    assert colour_of(0.0) == Color.from_rgb(0x44, 0x01, 0x54)
    assert colour_of(1.0) == Color.from_rgb(0xFD, 0xE7, 0x25)
    assert colour_of(-1.0) == colour_of(0.0)


def test_wide_characters_keep_the_grid_aligned():
    text = render_text(Heatmap(np.full((3, 3), 1 / 3), ["我", "the", "cat"], show_values=True), width=80)
    rows = [line.rstrip() for line in text.splitlines() if "0.33" in line]
    widths = {sum(2 if "\u4e00" <= c <= "\u9fff" else 1 for c in row) for row in rows}
    assert len(widths) == 1


def test_numbers_never_hide_their_size():
    assert number(-0.0) == "0.000"
    assert number(-1.23456) == "-1.235"
    assert number(1e30) == "1.000e+30"
    assert number(0.0004) == "0.000"
    assert number(0.0004, keep_small=True) == "4.000e-04"
    assert number(0.0006, keep_small=True) == "0.001"


def test_vector_table_shows_what_fits_and_says_so():
    text = render_text(VectorTable(np.ones((2, 64)), ["a", "b"]), width=80)
    assert widest_line(text) <= 80
    assert "of 64" in text


def test_column_labels_are_whole_and_numbered_so_equal_labels_differ():
    labels = ["[CLS]", "the", "animal", "crossed", "the", "[SEP]"]
    text = render_text(Heatmap(np.full((6, 6), 1 / 6), labels), width=140)
    lines = text.splitlines()
    index_line = next(line for line in lines if line.split() == [str(k) for k in range(6)])
    downward = lines[: lines.index(index_line)]
    columns = ["".join(line[i] for line in downward if i < len(line)).strip() for i in range(len(index_line))]
    assert {"[CLS]", "animal", "crossed", "[SEP]"} <= set(columns) and "…" not in text


def test_mini_heatmap_packs_two_rows_a_line_in_colour_and_one_without():
    weights = np.eye(4)
    coloured = render_text(MiniHeatmap(weights, "L0 H0"), color_system="truecolor")
    plain = render_text(MiniHeatmap(weights, "L0 H0"))
    assert coloured.count("▀") == 8
    assert [line.rstrip() for line in plain.splitlines()[1:] if line.strip()] == ["█", " █", "  █", "   █"]


def test_a_fitted_table_leaves_out_its_droppable_columns_in_order_until_it_fits():
    columns = [("name", "left"), ("wide", "right"), ("wider", "right"), ("kept", "right")]
    rows = [["a", "1" * 10, "2" * 20, "3" * 10]]
    table = FittedTable(columns, rows, droppable=("wider", "wide"))
    assert "Left out" not in render_text(table, width=60)
    narrow = " ".join(render_text(table, width=40).split())
    assert "2" * 20 not in narrow and "1" * 10 in narrow and "Left out to fit 40 columns: wider (" in narrow
    narrowest = render_text(table, width=20)
    assert "1" * 10 not in narrowest and "3" * 10 in narrowest
    assert "Left out to fit 20 columns: wider, wide (" in " ".join(narrowest.split())


def test_values_on_a_scale_that_ends_at_top_fall_where_their_share_of_it_does():
    norms = np.array([[0.0, 1.5, 6.0], [3.0, 0.006, 12.0]])
    assert_allclose(fractions(norms, "fixed", 12.0), norms / 12.0)
    assert_allclose(fractions(norms, "log", 12.0), fractions(norms / 12.0, "log"))
    assert_allclose(fractions(norms, "row", 12.0), fractions(norms, "row"))  # each row's largest: no top


def test_a_heatmap_of_norms_writes_values_past_1_whole_and_its_legend_ends_at_the_largest():
    norms = np.array([[4.3125, 12.345], [431.0, 23456.0]])
    wide = render_text(Heatmap(norms, ["a", "b"], top=23456.0, quantity="‖αv W_O‖"), width=60)
    assert " 4.31 12.3" in wide and "  431  2e4" in wide  # four characters at most
    narrow = Heatmap(norms, ["a", "b"], top=23456.0, quantity="‖αv W_O‖")
    cells = render_text(narrow, width=narrow.row_label_width + 8)  # four-character cells: three at most
    assert " 4.3  12" in cells and " 431 2e4" in cells
    shaded = render_text(Heatmap(norms, ["a", "b"], top=200.0, quantity="‖αv W_O‖", show_values=False), width=60)
    assert "‖αv W_O‖: ░ ≥2  ▒ ≥10  ▓ ≥40  █ ≥100" in shaded
    coloured = render_text(Heatmap(norms, ["a", "b"], top=4.5, quantity="‖αv W_O‖"), 60, "truecolor")
    legend = ANSI.sub("", coloured).splitlines()[-2:]
    assert legend[0].startswith("‖αv W_O‖") and legend[1].split() == ["0", "2.25", "4.5"]


def test_a_mini_heatmap_of_norms_draws_its_largest_value_in_the_brightest_shade():
    norms = np.array([[0.6, 6.0], [2.0, 0.0]])
    assert render_text(MiniHeatmap(norms, "L0 H0", top=6.0), width=20).splitlines()[1:] == ["▒█", "▓ "]


@given(
    arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(-0.5, 1.5, width=16),
    )
)
def test_colours_found_at_once_are_colour_of_each(fractions_drawn):
    """MiniHeatmap's colours, found with numpy over the whole matrix, are colour_of's, cell by cell."""
    expected = [[colour_of(value) for value in row] for row in fractions_drawn]
    assert colours_of(fractions_drawn) == expected
