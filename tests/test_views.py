"""views/ on a fixed-width console and through the CLI: explain, windows, thumbnails, rankings, vectors."""

import re

import numpy as np
import pytest
from helpers import ANSI, BERT, FIXTURES, LONG, PRONOUN, SENTENCE, render_text, widest_line
from numpy.testing import assert_allclose

from attncli import commands, views
from attncli.attention import inverse_frequencies, layer_norm
from attncli.models import load_model
from attncli.transformer import feed_forward
from attncli.widgets.vectors import number


def test_the_walkthrough_shows_the_weights_the_model_gave_inside_a_sliding_window():
    model = load_model(str(FIXTURES / "gemma2"))  # layer 0 slides over the last 4 keys
    result = commands.explain(PRONOUN, model, layer=0, head=3)
    focus = result.focus
    assert result.focus_keys.tolist() == list(range(focus - 3, focus + 1))
    row = result.run.weights[0, 3, focus]
    assert_allclose(result.focus_steps.probabilities, row[result.focus_keys], atol=1e-6)
    assert row[: focus - 3].sum() == 0
    text = render_text(views.view(result), width=120)
    assert "The mask hides 9 outside the sliding window: weight exactly 0." in text
    assert "multiplied by Gemma 2's scale 0.4082," in text and "soft-capped as 2 · tanh(s / 2)" in text


def test_the_walkthrough_turns_q_by_the_angles_it_shows():
    model = load_model(str(FIXTURES / "qwen3"))
    result = commands.explain(PRONOUN, model, focus="7", head=2)
    rope = model.info.layer_attention[0].rope
    assert_allclose(result.focus_angles, 7 * inverse_frequencies(rope))
    q, turned = result.attention.q[2, 7], result.attention.q_rotated[2, 7]
    half = rope.dims // 2
    cos, sin = np.cos(result.focus_angles), np.sin(result.focus_angles)
    assert_allclose(turned[:half], q[:half] * cos - q[half : 2 * half] * sin, atol=1e-5)
    text = render_text(views.view(result), width=120)
    assert "heads 2 to 3 read key-value head 1" in text and "Each head's q and k then pass an RMSNorm" in text


def test_the_walkthrough_of_a_parallel_block_adds_both_sublayers_to_the_same_input():
    model = load_model(str(FIXTURES / "gpt-neox"))  # a feed-forward norm of its own
    result = commands.explain(PRONOUN, model, layer=1)
    f, trace = result.focus, result.run.trace
    block = model.weights.blocks[1]
    x = trace.layer_inputs[1][f]
    norm = block.ffn_norm
    ffn = feed_forward(layer_norm(x[None], norm.gain, norm.bias, model.config.eps), block.feed_forward, "gelu")[0]
    assert_allclose(result.focus_feed_forward, ffn, atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert (
        "read r, each through a LayerNorm of its own" in text
        and "r + attention(x) + feed-forward(LayerNorm′(r))" in text
    )
    for label, row in (
        ("layer 1 input", x),
        ("feed-forward output", ffn),
        ("layer 1 output", trace.layer_outputs[1][f]),
    ):
        assert f"{label} {' '.join(number(v) for v in row[:8])}" in text
    shared = " ".join(render_text(views.view(commands.explain(PRONOUN, load_model(str(FIXTURES / "gptj"))))).split())
    assert (
        "both read this x, side by side (a parallel block): layer 0 passes on e + attention(x) + feed-forward(x)"
        in shared
    )
    assert "read the same LayerNorm(input) as attention" in shared


def test_the_walkthrough_turns_adjacent_pairs_of_dimensions_together():
    model = load_model(str(FIXTURES / "cohere"))
    result = commands.explain(PRONOUN, model, focus="5", head=1)
    q, turned = result.attention.q[1, 5], result.attention.q_rotated[1, 5]
    cos, sin = np.cos(result.focus_angles), np.sin(result.focus_angles)
    assert_allclose(turned[0::2], q[0::2] * cos - q[1::2] * sin, atol=1e-5)
    assert_allclose(turned[1::2], q[1::2] * cos + q[0::2] * sin, atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert "each pair of adjacent dimensions of a head, 2i and 2i + 1, turns together" in text
    assert "dimensions 0 to 7, in pairs (0, 1), (2, 3) …: token 5, head 1" in text
    angles = np.repeat(result.focus_angles, 2)
    assert f"angle {' '.join(number(a) for a in angles)} q before {' '.join(number(v) for v in q)}" in text


def test_the_walkthrough_shows_each_heads_own_q_and_k_layer_norm():
    model = load_model(str(FIXTURES / "stablelm-parallel"))
    result = commands.explain(PRONOUN, model, layer=1, head=3)  # head 3 reads key-value head 1
    attention, f, p = result.attention, result.focus, model.weights.blocks[1].attention
    projected = (attention.x @ p.w_q)[f, 24:32]
    assert_allclose(attention.q_projected[3, f], projected, rtol=1e-5, atol=1e-5)
    assert_allclose(attention.q[3, f], layer_norm(projected, p.q_norm[3, 0], None, model.config.eps), atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert "pass a LayerNorm over their 8 numbers: less their mean, divided by their standard deviation" in text
    assert "through head 3's and key head 1's own q and k norms" in text
    assert f"q = LayerNorm(x·W_Q) {' '.join(number(v) for v in attention.q[3, f])}" in text


def test_the_model_grid_leaves_masked_cells_blank():
    result = commands.model_grid(PRONOUN, load_model(str(FIXTURES / "mistral")))  # window 5 in every layer
    text = render_text(views.view(result), width=200)
    first_head = text.split("L0 H0")[1].splitlines()[1:14]
    assert first_head[-1].startswith("·" * 8) and first_head[0].endswith("·" * 12)


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


def test_the_window_is_said_once_above_heads_drawn_side_by_side(cli):
    run = cli("heatmap", LONG, "--keys", "0:5", "--no-values", env={"COLUMNS": "200"})
    assert run.stdout.count("(showing") == 1 and run.stdout.count("head ") >= 2


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


def test_query_view_draws_a_bar_per_key(cli):
    run = cli("query", SENTENCE, "--token", "mat", "--top", "3")
    assert run.code == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert len(rows) == 3
    assert any(block in rows[0] for block in "▁▂▃▄▅▆▇█")


def test_heads_view_explains_its_columns(cli):
    run = cli("heads", "The cat sat on the mat.", "--model", BERT)
    assert "pattern" in run.stdout and "L1 H3" in run.stdout and "Pattern:" in run.stdout


def test_rollout_lists_the_sources_of_a_token(cli):
    run = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat")
    assert "Where “cat” (token 2) draws from" in run.stdout
    assert cli("rollout", "The cat", "--head-fusion", "median").code == 2
    assert cli("query", "The cat", "--token", "cat", "--top", "0").code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["heatmap", PRONOUN],
        ["model", PRONOUN],
        ["query", PRONOUN, "--token", "it"],
        ["heads", PRONOUN],
        ["rollout", PRONOUN],
        ["compare", PRONOUN, PRONOUN.replace("tired", "wide"), "--token", "it"],
        ["explain", PRONOUN],
    ],
)
def test_every_view_of_the_sample_model_says_its_patterns_are_not_learned(cli, args):
    text = " ".join(cli(*args, env={"COLUMNS": "200"}).stdout.split())
    assert text.count("not learned") + text.count("not what a trained model has learned") == 1


def test_rollout_ranks_sources_without_special_tokens_unless_asked(cli):
    plain = " ".join(cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat").stdout.split())
    listed = plain.split("draws from, after every layer:")[1].split("Left out:")[0]
    assert "[CLS]" not in listed and "[SEP]" not in listed
    assert "[CLS]" in plain.split("Left out:")[1] and "--include-special lists them" in plain
    kept = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat", "--include-special").stdout
    assert "[CLS]" in kept.split("draws from, after every layer:")[1] and "Left out" not in kept
