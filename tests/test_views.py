"""The analysis commands end to end: query, model, heads, rollout and compare, as views and as JSON."""

import numpy as np
import pytest
from helpers import BERT, GPT2, PRONOUN, SENTENCE, needs_minilm, render_text
from numpy.testing import assert_allclose

from attncli import commands, views
from attncli.models import load_model
from attncli.widgets.minimap import MiniHeatmap


def test_query_ranks_every_head_by_its_strongest_other_key(cli):
    doc = cli("query", "The cat sat on the mat.", "--token", "cat", "--model", BERT, "--json").json()
    assert doc["token"] == {"index": 2, "text": "cat"}
    heads = doc["heads"]
    assert len(heads) == 2 * 4
    tops = [head["top"]["weight"] for head in heads]
    assert tops == sorted(tops, reverse=True)
    for head in heads:
        weights = np.array(head["weights"])
        allowed = [i for i, token in enumerate(doc["tokens"]) if i != 2 and not token["special"]]
        assert head["top"]["index"] == allowed[int(np.argmax(weights[allowed]))]
        assert_allclose(weights.sum(), 1.0, rtol=1e-6)


def test_query_can_let_special_tokens_win_and_rank_by_a_chosen_target(cli):
    with_special = cli(
        "query", "The cat sat on the mat.", "--token", "cat", "--model", BERT, "--include-special", "--json"
    )
    assert any(head["top"]["text"] in ("[CLS]", "[SEP]") for head in with_special.json()["heads"])
    ranked = cli("query", "The cat sat on the mat.", "--token", "cat", "--to", "mat", "--model", BERT, "--json").json()
    on_mat = [head["weights"][6] for head in ranked["heads"]]
    assert on_mat == sorted(on_mat, reverse=True)
    assert ranked["target"] == {"index": 6, "text": "mat"}


def test_a_word_split_into_tokens_queries_with_its_rows_averaged_and_is_weighed_as_their_sum(cli):
    split = cli("query", PRONOUN, "--token", "didn't", "--model", BERT, "--json").json()
    word = split["token"]
    assert word["text"] == "didn't"
    assert [split["tokens"][i]["text"] for i in word["indices"]] == ["didn", "'", "t"]
    weights = np.array(cli("heatmap", PRONOUN, "--model", BERT, "--json").json()["attention"])  # [L, h, T, T]
    for head in split["heads"]:
        expected = weights[head["layer"], head["head"], word["indices"]].mean(axis=0)
        assert_allclose(head["weights"], expected, rtol=1e-6)
        assert head["top"]["index"] not in word["indices"]
    on_word = cli("query", PRONOUN, "--token", "it", "--to", "DIDN'T", "--model", BERT, "--json").json()
    assert on_word["target"] == word
    totals = [sum(head["weights"][i] for i in word["indices"]) for head in on_word["heads"]]
    assert totals == sorted(totals, reverse=True)
    view = cli("query", PRONOUN, "--token", "it", "--to", "didn't", "--model", BERT).stdout
    assert "“didn't” (tokens 3–5, their weights summed)" in " ".join(view.split())


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("I didn't go, she didn't stay", ["--token", "didn't"], "is split into tokens 1 to 3 (didn ' t) and 7 to 9"),
        (PRONOUN, ["--token", "the street"], "'the street' is not a token of the text"),
        (PRONOUN, ["--token", "cross", "--to", "street", "--model", GPT2], "'street' (tokens 8 to 9) comes after"),
    ],
)
def test_a_split_word_must_be_one_word_that_occurs_once(cli, text, args, message):
    run = cli("query", text, *args)
    assert run.code == 2
    assert message in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "dog"], "is not a token of the text; give one of 0:the"),
        (["--token", "the"], "occurs at 0, 4"),
        (["--token", "0", "--causal"], "sees no earlier token"),
    ],
)
def test_query_errors(cli, args, message):
    run = cli("query", SENTENCE, *args)
    assert run.code == 2
    assert message in run.stderr


def test_query_view_draws_a_bar_per_key(cli):
    run = cli("query", SENTENCE, "--token", "mat", "--top", "3")
    assert run.code == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert len(rows) == 3
    assert any(block in rows[0] for block in "▁▂▃▄▅▆▇█")


@needs_minilm
def test_minilm_resolves_it_to_animal():
    result = commands.query(PRONOUN, load_model("minilm"), "it", to="animal")
    best = result.ranking[0]
    assert (best.layer, best.head) == (5, 11)
    assert best.top == 2 and best.top_weight > 0.6
    plain = commands.query(PRONOUN, load_model("minilm"), "it").ranking[:5]
    assert any(target.top == 2 and target.top_weight > 0.6 for target in plain)


def test_model_grid_draws_the_chosen_layers_and_heads(cli):
    doc = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", "1", "--heads", "0,2-3", "--json").json()
    assert doc["shown"] == {"layers": [1], "heads": [0, 2, 3]}
    assert np.array(doc["attention"]).shape == (2, 4, 9, 9)
    view = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", "1", "--heads", "0,2-3").stdout
    assert "L1 H0" in view and "L1 H2" in view and "L1 H3" in view and "L1 H1" not in view


@pytest.mark.parametrize("spec", ["2", "0-9", "x", "3-1"])
def test_model_grid_rejects_bad_ranges(cli, spec):
    run = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", spec)
    assert run.code == 2
    assert "--layers" in run.stderr


def test_mini_heatmap_packs_two_rows_a_line_in_colour_and_one_without():
    weights = np.eye(4)
    coloured = render_text(MiniHeatmap(weights, "L0 H0"), color_system="truecolor")
    plain = render_text(MiniHeatmap(weights, "L0 H0"))
    assert coloured.count("▀") == 8
    assert [line.rstrip() for line in plain.splitlines()[1:] if line.strip()] == ["█", " █", "  █", "   █"]


def test_heads_of_one_text(cli):
    doc = cli("heads", "The cat sat on the mat.", "--model", BERT, "--json").json()
    assert doc["texts"] == 1 and doc["text"] == "The cat sat on the mat."
    assert len(doc["heads"]) == 8
    head = doc["heads"][0]
    assert set(head) >= {"layer", "head", "entropy", "distance", "previous", "separator", "pattern"}
    assert 0 <= head["entropy_normalized"] <= 1


def test_heads_without_special_tokens_report_null_shares(cli):
    doc = cli("heads", SENTENCE, "--json").json()
    assert all(head["first_special"] is None and head["separator"] is None for head in doc["heads"])


def test_heads_over_a_file_averages_the_lines(cli, tmp_path):
    texts = ["The cat sat on the mat.", "", "A dog barked.", "   "]
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    doc = cli("heads", "--file", str(tmp_path / "texts.txt"), "--model", BERT, "--json").json()
    one = cli("heads", "The cat sat on the mat.", "--model", BERT, "--json").json()
    two = cli("heads", "A dog barked.", "--model", BERT, "--json").json()
    assert doc["texts"] == 2 and doc["text"] is None
    for averaged, first, second in zip(doc["heads"], one["heads"], two["heads"], strict=True):
        assert_allclose(averaged["distance"], (first["distance"] + second["distance"]) / 2)


def test_heads_on_a_causal_model(cli):
    doc = cli("heads", "The cat sat on the mat.", "--model", GPT2, "--json").json()
    assert all(head["next"] is None for head in doc["heads"])  # a causal model never sees the next token


@pytest.mark.parametrize(("args", "message"), [([], "either TEXT or --file"), (["x", "--file", "y"], "either TEXT")])
def test_heads_needs_exactly_one_source(cli, args, message):
    run = cli("heads", *args)
    assert run.code == 2 and message in run.stderr


def test_heads_view_explains_its_columns(cli):
    run = cli("heads", "The cat sat on the mat.", "--model", BERT)
    assert "pattern" in run.stdout and "L1 H3" in run.stdout and "Pattern:" in run.stdout


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_rows_sum_to_one(cli, fusion):
    doc = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--head-fusion", fusion, "--json").json()
    rollout = np.array(doc["rollout"])
    assert rollout.shape == (2, 9, 9)
    assert_allclose(rollout.sum(axis=-1), 1.0)
    assert doc["head_fusion"] == fusion


def test_rollout_lists_the_sources_of_a_token(cli):
    run = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat")
    assert "Where “cat” (token 2) draws from" in run.stdout
    assert cli("rollout", "The cat", "--head-fusion", "median").code == 2
    assert cli("query", "The cat", "--token", "cat", "--top", "0").code == 2


def test_compare_aligns_the_texts_and_ranks_heads_by_change(cli):
    doc = cli(
        "compare", "The cat sat on the mat.", "The cat sat on the big mat.", "--token", "cat", "--model", BERT, "--json"
    ).json()
    assert doc["unpaired"] == {"a": [], "b": [6, 7, 8]}  # "big" is b ##i ##g in the tiny vocabulary
    tvs = [head["tv"] for head in doc["heads"]]
    assert tvs == sorted(tvs, reverse=True)
    assert all(0 <= tv <= 1 for tv in tvs)


def test_compare_of_a_text_with_itself_changes_nothing():
    result = commands.compare("The cat sat on the mat.", "The cat sat on the mat.", load_model(BERT), "cat")
    assert_allclose(result.change, 0.0, atol=1e-7)
    text = render_text(views.view(result), width=100)
    assert "No partner in B for: none" in text


def test_compare_needs_the_token_in_both_texts(cli):
    run = cli("compare", "The cat sat", "The dog sat", "--token", "cat")
    assert run.code == 2
    assert "has no partner in TEXT_B" in run.stderr
    assert "is not a token" in cli("compare", "The cat sat", "The dog sat", "--token", "dog").stderr


def test_compare_follows_the_token_of_text_a_into_text_b(cli):
    unpartnered = cli("compare", "A big cat sat", "The cat saw the other cat", "--token", "3")
    assert unpartnered.code == 2 and "'sat', token 3 of TEXT_A" in unpartnered.stderr
    by_index = cli("compare", "A big cat sat", "The cat saw the other cat", "--token", "2", "--json").json()
    assert by_index["token"] == {"a": {"index": 2, "text": "cat"}, "b": {"index": 1, "text": "cat"}}


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
