"""Views on a fixed-width console: they fit, stay legible without colour, and never obey user text."""

import re

import numpy as np
import pytest
from helpers import SENTENCE, render_text
from numpy.testing import assert_allclose
from rich.color import Color

from attncli import commands, views
from attncli.escapes import visible
from attncli.json_writer import json_bytes
from attncli.models import load_model
from attncli.terminal import abbreviate, pad, token_label
from attncli.widgets.heatmap import Heatmap, colour_of, fractions
from attncli.widgets.vectors import VectorTable, number

ANSI = re.compile(r"\x1b\[[0-9;]*m")
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
FORTY_TOKENS = " ".join(WORDS[i % len(WORDS)] for i in range(40))


def widest_line(text: str) -> int:
    return max(len(ANSI.sub("", line)) for line in text.splitlines())


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


def test_without_colour_or_numbers_the_grid_uses_shades():
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    text = render_text(Heatmap(weights, ["a", "b"], show_values=False), width=40)
    assert not ANSI.search(text)
    rows = [line for line in text.splitlines() if line.startswith(("0 a", "1 b"))]
    assert "███" in rows[0]
    assert "▒▒▒" in rows[1]
    assert "▓ ≥0.60" in text


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


def test_abbreviate_and_pad_count_terminal_cells():
    assert abbreviate("cat", 5) == "cat"
    assert abbreviate("tokenization", 5) == "toke…"
    assert abbreviate("猫猫猫猫", 5) == "猫猫…"
    assert pad("猫", 4) == "猫  "
    assert pad("ab", 4, "right") == "  ab"


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


def test_token_label_shows_byte_level_spaces():
    assert token_label("Ġthe") == "␣the"
    assert token_label("Ċ") == "↵"


def test_visible_escapes_control_and_bidi_characters():
    assert visible("a\x1b[2Jb\x07c\u202ed\nz") == "a\\x1b[2Jb\\x07c\\u202ed\\nz"
    assert visible("café 🐈") == "café 🐈"


def test_json_escapes_invisible_characters_and_keeps_the_rest_readable():
    text = json_bytes({"t": "é\u202e\x1b"}).decode()
    assert text == '{"t":"é\\u202e\\u001b"}'


@pytest.mark.parametrize("width", [80, 120])
def test_explain_fits_the_terminal(width):
    result = commands.explain(SENTENCE, load_model())
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    for stage in ("Tokens", "Embeddings", "Queries, keys and values", "Scores", "Attention weights", "Weighted sum"):
        assert stage in text
    assert "random" in text


def scores_table(text: str) -> list[list[str]]:
    """The rows of the explain view's scores table, split into columns."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "key", "q·k"])
    end = next(i for i in range(start, len(lines)) if lines[i].split()[:1] == ["sum"])
    return [line.split() for line in lines[start + 1 : end]]


def test_explain_shows_the_focus_softmax_that_the_model_computed():
    result = commands.explain(SENTENCE, load_model(), focus="cat", head=3)
    text = render_text(views.view(result), width=120)
    trace = result.run.trace.layers[0]
    rows = scores_table(text)
    assert [row[1] for row in rows] == ["the", "cat", "sat", "on", "the", "mat"]
    assert [float(row[2]) for row in rows] == [round(float(s), 3) for s in trace.scores[3, 1]]
    assert [float(row[3]) for row in rows] == [round(float(s), 3) for s in trace.scaled[3, 1]]
    assert [float(row[6]) for row in rows] == [round(float(w), 3) for w in trace.weights[3, 1]]
    assert "Scores for “cat”" in text


def test_the_weighted_sum_rows_add_up_to_the_head_output():
    result = commands.explain(SENTENCE, load_model(), focus="mat")
    trace = result.run.trace.layers[0]
    text = render_text(views.view(result), width=120)
    for key, weight in enumerate(trace.weights[0, 5]):
        expected = " ".join(number(v) for v in weight * trace.v[0, key])
        assert expected in " ".join(text.split())


def test_rich_markup_in_the_text_is_shown_literally():
    result = commands.tokenize("[bold red]alarm[/]", load_model())
    text = render_text(views.view(result), color_system="truecolor")
    assert "[bold red]alarm[/]" in ANSI.sub("", text)
    assert "\x1b[1;31m" not in text


def test_softmax_view_keeps_tiny_scores_visible():
    text = render_text(views.view(commands.softmax(["1e-5", "2e-5"])))
    assert "1.0000e-05" in text and "2.0000e-05" in text


def test_softmax_view_shows_the_right_numbers():
    text = render_text(views.view(commands.softmax(["2.0", "1.0", "0.5"])))
    for value in ("0.6285", "0.2312", "0.1402", "1.0000"):
        assert value in text


def test_json_in_slices_is_the_same_as_json_whole():
    import orjson

    big = np.random.default_rng(0).random((3, 2, 700, 800)).astype(np.float32)  # over the slicing size
    document = {"schema": "x", "attention": big, "rows": [big[0, 0, :2], {"a": [1, None, True]}], "empty": {}}
    expected = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    assert json_bytes(document) == expected


def test_column_labels_are_whole_and_numbered_so_equal_labels_differ():
    labels = ["[CLS]", "the", "animal", "crossed", "the", "[SEP]"]
    text = render_text(Heatmap(np.full((6, 6), 1 / 6), labels), width=140)
    lines = text.splitlines()
    index_line = next(line for line in lines if line.split() == [str(k) for k in range(6)])
    downward = lines[: lines.index(index_line)]
    columns = ["".join(line[i] for line in downward if i < len(line)).strip() for i in range(len(index_line))]
    assert {"[CLS]", "animal", "crossed", "[SEP]"} <= set(columns) and "…" not in text
