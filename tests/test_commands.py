"""commands.py: each command's result and refusals, in-process and through the CLI's JSON."""

import json

import numpy as np
import pytest
from helpers import (
    BERT,
    FIXTURES,
    GPT2,
    PRONOUN,
    SENTENCE,
    assert_as_exact_as_transformers,
    attncli,
    clean_error,
    copy_fixture,
    edit_config,
    edit_tensors,
    needs_minilm,
    render_text,
)
from numpy.testing import assert_allclose, assert_array_equal

from attncli import analysis, commands, views
from attncli.errors import BadInput, DataError
from attncli.models import load_model


def test_explain_walks_through_the_chosen_layer():
    model = load_model(BERT)
    result = commands.explain("The cat sat on the mat.", model, layer=1)
    doc = result.to_json()
    assert doc["layer"] == 1
    assert np.array(doc["attention"]).shape == (2, 4, 9, 9)
    assert np.array(doc["steps"]["q"]).shape == (2, 4, 9, 4)
    assert doc["focus"]["text"] == "."  # the last token that is not [SEP]
    assert doc["model"]["type"] == "bert" and doc["model"]["max_length"] == 512


def test_too_long_a_text_is_refused():
    with pytest.raises(BadInput, match="reads at most 512"):
        commands.run("cat " * 600, load_model(BERT))


def test_the_first_token_of_a_decoder_is_left_out_of_rankings_unless_asked():
    model = load_model(str(FIXTURES / "qwen2"))  # no BOS: the first token is a word, and still the sink
    result = commands.explain(PRONOUN, model)
    keys, _ = result.strongest
    assert not (keys[:, 1:] == 0).any()  # every query past the first has a target other than token 0
    kept = commands.explain(PRONOUN, model, include_special=True)
    assert (kept.strongest[0][:, 1:] == 0).any()
    ranking = commands.query(PRONOUN, model, "it").ranking
    assert all(target.top != 0 for target in ranking)
    assert not commands.query(PRONOUN, model, "it").allowed[0]


@pytest.mark.slow
def test_a_text_of_unknown_characters_only_is_a_valid_run():
    document = json.loads(attncli("explain", "😀 🍕", "--json").stdout)
    assert [t["text"] for t in document["tokens"]] == ["[UNK]", "[UNK]"]
    assert np.allclose(np.sum(document["attention"], axis=-1), 1.0)


@pytest.mark.slow
def test_extreme_scores_give_finite_probabilities():
    document = json.loads(attncli("softmax", "1e30", "-1e30", "0", "--json").stdout)
    assert document["probabilities"] == [1.0, 0.0, 0.0]


@pytest.mark.slow
def test_a_request_over_the_memory_budget_is_refused_with_the_number():
    env = {"ATTNCLI_MEMORY_BUDGET": "1", "PATH": "/usr/bin:/bin"}
    clean_error(attncli("explain", "word " * 300, env=env), "300 tokens would need 22 MB of attention tensors")


def test_check_passes_on_its_own_output_and_fails_on_a_moved_weight(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("explain", SENTENCE, "--json").stdout)
    assert cli("check", SENTENCE, "--against", str(saved)).code == 0
    document = json.loads(saved.read_text())
    document["attention"][0][2][1][3] += 0.01
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(document))
    run = cli("check", SENTENCE, "--against", str(moved), "--json")
    assert run.code == 4
    report = run.json()
    assert report["passed"] is False
    assert report["heads"][0]["layer"] == 0 and report["heads"][0]["head"] == 2
    assert report["cells"][0] | {"saved": 0, "now": 0} == {
        "layer": 0,
        "head": 2,
        "query": 1,
        "key": 3,
        "saved": 0,
        "now": 0,
    }


def test_check_with_a_checkpoint(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", "The cat sat.", "--model", BERT, "--json").stdout)
    assert cli("check", "The cat sat.", "--against", str(saved), "--tolerance", "0").code == 0
    refused = cli("check", "--against", str(saved), "--tolerance", "nan")
    assert refused.code == 2
    assert "--tolerance nan is not a number of 0 or more" in refused.stderr


def test_batch_keeps_only_the_attention_unless_asked_for_steps():
    from attncli import commands
    from attncli.models import load_model

    model = load_model(BERT)
    assert commands.explain("The cat sat.", model, steps=False).run.trace.layers == []
    record = next(commands.batch([(1, "The cat sat.")], model)).to_json({})
    assert "steps" not in record and len(record["summary"]) == 6


def test_check_takes_the_saved_text_and_lists_only_what_moved(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", SENTENCE, "--model", BERT, "--json").stdout)
    same = cli("check", "--against", str(saved), "--json")
    assert same.code == 0 and same.json()["text"] == SENTENCE
    assert same.json()["heads"] == [] and same.json()["cells"] == []
    view = cli("check", "--against", str(saved)).stdout
    assert "No weight moved at all." in view and "L0 H0" not in view
    document = json.loads(saved.read_text())
    document["attention"][1][2][3][4] += 0.5
    saved.write_text(json.dumps(document))
    moved = cli("check", "--against", str(saved), "--json")
    assert moved.code == 4 and [(c["layer"], c["head"], c["query"], c["key"]) for c in moved.json()["cells"]] == [
        (1, 2, 3, 4)
    ]


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


@needs_minilm
def test_minilm_resolves_it_to_animal():
    result = commands.query(PRONOUN, load_model("minilm"), "it", to="animal")
    best = result.ranking[0]
    assert (best.layer, best.head) == (5, 11)
    assert best.top == 2 and best.top_weight > 0.6
    plain = commands.query(PRONOUN, load_model("minilm"), "it").ranking[:5]
    assert any(target.top == 2 and target.top_weight > 0.6 for target in plain)


def test_model_grid_keeps_and_draws_only_the_chosen_layers_and_heads(cli):
    doc = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", "1", "--heads", "0,2-3", "--json").json()
    assert doc["shown"] == {"layers": [1], "heads": [0, 2, 3]} == {key: doc[key] for key in ("layers", "heads")}
    every = cli("model", "The cat sat on the mat.", "--model", BERT, "--json").json()
    assert np.array_equal(np.array(doc["attention"]), np.array(every["attention"])[1:2][:, [0, 2, 3]])
    assert "layers" not in every and every["shown"] == {"layers": [0, 1], "heads": [0, 1, 2, 3]}
    view = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", "1", "--heads", "0,2-3").stdout
    assert "L1 H0" in view and "L1 H2" in view and "L1 H3" in view and "L1 H1" not in view


@pytest.mark.parametrize("spec", ["2", "0-9", "x", "3-1"])
def test_model_grid_rejects_bad_ranges(cli, spec):
    run = cli("model", "The cat sat on the mat.", "--model", BERT, "--layers", spec)
    assert run.code == 2
    assert "--layers" in run.stderr


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


def test_heads_on_a_causal_model(cli):
    doc = cli("heads", "The cat sat on the mat.", "--model", GPT2, "--json").json()
    assert all(head["next"] is None for head in doc["heads"])  # a causal model never sees the next token


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_rows_sum_to_one(cli, fusion):
    doc = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--head-fusion", fusion, "--json").json()
    rollout = np.array(doc["rollout"])
    assert rollout.shape == (2, 9, 9)
    assert_allclose(rollout.sum(axis=-1), 1.0)
    assert doc["head_fusion"] == fusion


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


def test_explain_json_keeps_q_k_and_v_as_projected_where_whole_norms_or_clamping_change_them():
    for name, changed in (("olmo", True), ("olmo2", True), ("qwen3", False)):
        result = commands.explain(SENTENCE, load_model(str(FIXTURES / name)))
        steps = result.fields()["steps"]
        assert ("projected" in steps) == changed
        if changed:
            assert [len(layer) for layer in steps["projected"]["q"]] == [len(result.run.tokens)] * 3
            np.testing.assert_array_equal(steps["projected"]["v"][1], result.run.trace.layers[1].projected[2])


def test_compare_counts_what_a_learned_sink_takes_as_one_more_key():
    model = load_model(str(FIXTURES / "gpt-oss"))
    result = commands.compare(SENTENCE, "A cat lay on the mat", model, "1")
    rows = [run.weights[:, :, token] for run, token in ((result.a, 1), (result.b, result.token_b))]  # [L, h, T]
    keys = 0.5 * np.abs(result.spread[0] - result.spread[1]).sum(axis=-1)  # [L, h]
    sinks = 0.5 * np.abs(rows[0].sum(axis=-1, dtype=np.float64) - rows[1].sum(axis=-1, dtype=np.float64))
    assert sinks.max() > 0.05  # the sinks' shares differ between the texts
    assert_allclose(result.change, keys + sinks, atol=1e-6)
    assert np.all(result.change <= 1 + 1e-6)
    itself = commands.compare(SENTENCE, SENTENCE, model, "1")
    assert_allclose(itself.change, 0.0, atol=1e-7)


def test_explain_json_of_a_model_with_learned_sinks_carries_each_heads_logit():
    result = commands.explain(SENTENCE, load_model(str(FIXTURES / "gpt-oss-mxfp4")))
    document = result.to_json()
    assert document["model"]["attention_sinks"] is True
    assert document["model"]["experts"] | {"layers": None} == {
        "experts": 4,
        "per_token": 2,
        "renormalized": True,
        "shared_expert": False,
        "layers": None,
        "softmax_after_top_k": True,
        "swiglu_alpha": 1.702,
        "swiglu_limit": 7.0,
    }
    sinks = document["steps"]["sinks"]  # [L][h]
    assert np.array_equal(sinks, [layer.sinks for layer in result.run.trace.layers])
    rows = np.asarray(document["attention"]).sum(axis=-1)  # [L, h, T] what each row's keys got
    assert np.all(rows <= 1 + 1e-6) and rows.min() < 0.5
    plain = commands.explain(SENTENCE, load_model(str(FIXTURES / "mixtral"))).to_json()
    assert "attention_sinks" not in plain["model"] and "sinks" not in plain["steps"]
    assert "softmax_after_top_k" not in plain["model"]["experts"]


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [("bert", ["[CLS]"], ["[SEP]"]), ("llama", ["<|begin_of_text|>"], []), ("gpt2", [], []), ("sample", [], [])],
)
def test_the_induction_test_repeats_random_tokens_between_the_tokenizers_own(name, before, after):
    """50 ids of the vocabulary, no special token and none twice, then the same 50, inside the special tokens
    the model's tokenizer adds to a text; the second copy's rows, and they alone, have duplicate and induction
    keys."""
    model = load_model(name if name == "sample" else str(FIXTURES / name))
    test = commands.induction(model).induction_test
    tokens = test.tokens
    assert [t.text for t in tokens[: len(before)]] == before and [
        t.text for t in tokens[len(tokens) - len(after) :]
    ] == after
    drawn = [t.id for t in tokens[len(before) : len(tokens) - len(after)]]
    assert test.length == commands.INDUCTION_LENGTH and drawn == 2 * [t.id for t in test.copy]
    assert len(set(drawn)) == test.length and not any(t.special for t in test.copy)
    ids = np.array([t.id for t in tokens])
    second = (np.arange(len(tokens)) >= len(before) + test.length) & (np.arange(len(tokens)) < len(tokens) - len(after))
    assert np.array_equal(analysis.duplicate_keys(ids).any(axis=-1), second)
    assert np.array_equal(analysis.induction_keys(ids).any(axis=-1), second)


def test_the_induction_tests_tokens_are_the_seeds_on_every_machine():
    """numpy's default_rng draws them: the same seed, the same ids (these are seed 0's and 1's on the bundled
    vocabulary); heads' result is that of the tokens."""
    model = load_model()
    first = commands.induction(model)
    assert [t.id for t in first.induction_test.copy][:6] == [2297, 869, 25823, 25921, 22242, 26149]
    again = commands.induction(model, seed=0)
    assert [t.id for t in again.induction_test.tokens] == [t.id for t in first.induction_test.tokens]
    assert [t.id for t in commands.induction(model, seed=1).induction_test.copy][:3] != [2297, 869, 25823]
    for name in analysis.STATISTICS:
        assert_allclose(again.statistics[name], first.statistics[name], equal_nan=True)
    assert first.text is None and first.texts == 1


def test_the_induction_test_refuses_a_seed_numpy_cannot_take_and_fits_a_short_limit():
    with pytest.raises(BadInput, match="use a seed from 0"):
        commands.induction(load_model(), seed=-1)
    short = commands.induction(load_model(str(FIXTURES / "bert")), max_tokens=22)  # [CLS], 10 twice, [SEP]
    assert short.induction_test.length == 10 and len(short.induction_test.tokens) == 22
    with pytest.raises(BadInput, match="needs at least 6 tokens"):
        commands.induction(load_model(str(FIXTURES / "bert")), max_tokens=5)


def test_heads_sort_by_a_column_and_keep_json_in_layer_order():
    result = commands.heads(PRONOUN, load_model(BERT))
    by_entropy = commands.sort_heads(result, "entropy")
    entropies = [by_entropy.statistics["entropy"][head] for head in by_entropy.ordered]
    assert entropies == sorted(entropies, reverse=True)
    _, rows = by_entropy.csv_table()
    assert [(row[0], row[1]) for row in rows] == by_entropy.ordered
    document = by_entropy.to_json()
    assert document["sort"] == "entropy"
    assert [(h["layer"], h["head"]) for h in document["heads"]] == [
        (h["layer"], h["head"]) for h in result.to_json()["heads"]
    ]
    ranked = sorted(document["heads"], key=lambda h: h["rank"])
    assert [(h["layer"], h["head"]) for h in ranked] == by_entropy.ordered
    by_head = commands.sort_heads(result, "head").ordered
    assert by_head[:2] == [(0, 0), (1, 0)]
    by_pattern = commands.sort_heads(result, "pattern")
    places = [analysis.PATTERNS.index(by_pattern.labels[head]) for head in by_pattern.ordered]
    assert places == sorted(places)
    with pytest.raises(BadInput, match="not a column of heads; give one of layer, head, entropy"):
        commands.sort_heads(result, "bogus")


def _perturbed(tmp_path, layer: int, head: int):
    """A copy of the Qwen 3 fixture whose q projection of one head is moved: a second checkpoint of its shape and
    tokenizer, in which that head's attention, and no other head's of that layer or before, changes."""
    directory = copy_fixture(tmp_path, "qwen3")
    d_head = json.loads((directory / "config.json").read_text()).get("head_dim")

    def move(tensors):
        q = tensors[f"model.layers.{layer}.self_attn.q_proj.weight"]  # [heads · d_head, d_model]
        q[head * d_head : (head + 1) * d_head] += (
            np.random.default_rng(0).normal(0, 1, q[:d_head].shape).astype(q.dtype)
        )
        return tensors

    edit_tensors(directory, move)
    return load_model(str(directory))


def test_compare_of_two_checkpoints_ranks_the_head_that_moved_first(tmp_path):
    base = load_model(str(FIXTURES / "qwen3"))
    result = commands.compare_models(PRONOUN, base, _perturbed(tmp_path, 1, 2), "it")
    assert result.ranking[0] == (1, 2) and result.change[1, 2] > 0.05
    assert_allclose(result.change[0], 0.0, atol=1e-6)  # the layer before is untouched
    assert_allclose(np.delete(result.change[1], 2), 0.0, atol=1e-6)  # as are the layer's other heads
    assert result.two_models and result.slots == [(i, i) for i in range(len(result.a.tokens))]
    document = result.to_json()
    assert document["texts"] == [PRONOUN, PRONOUN] and document["models"]["b"]["path"] == str(tmp_path / "qwen3")
    assert (document["heads"][0]["layer"], document["heads"][0]["head"]) == (1, 2)
    itself = commands.compare_models(PRONOUN, base, base, "it")
    assert_allclose(itself.change, 0.0) and "models" in itself.to_json()
    assert "models" not in commands.compare(PRONOUN, PRONOUN, base, "it").to_json()


def test_compare_of_two_checkpoints_refuses_other_shapes_and_tokenizers():
    llama = load_model(str(FIXTURES / "llama"))
    with pytest.raises(BadInput, match=r"llama has 3 layers × 4 heads but model .*gpt2 has 2 layers × 4; compare two"):
        commands.compare_models(PRONOUN, llama, load_model(GPT2), "it")
    with pytest.raises(BadInput, match=r"tokenize the text differently \(token 0: '<\|begin_of_text\|>' and"):
        commands.compare_models(PRONOUN, llama, load_model(str(FIXTURES / "qwen2")), "it")


def _norms(text: str, model) -> np.ndarray:
    """α_ij · ‖v_j W_O^h‖ of every layer, from the weights and value norms of a run asked for them: [L, h, T, T]."""
    trace = model.run(model.tokenize(text), value_norms=True)
    return trace.weights * trace.value_norms[:, :, None, :]


def test_the_commands_of_norms_hold_the_norms_and_the_weights_stay_as_they_were():
    model = load_model(BERT)
    norms, weights = commands.run(PRONOUN, model, measure="norms"), commands.run(PRONOUN, model)
    assert_allclose(norms.attention, _norms(PRONOUN, model), rtol=1e-6)
    assert_array_equal(norms.weights, weights.weights)
    assert weights.attention is weights.weights
    for result in (
        commands.heatmap(PRONOUN, model, 1, measure="norms"),
        commands.model_grid(PRONOUN, model, measure="norms"),
    ):
        assert result.to_json()["measure"] == "norms"
        assert_allclose(result.to_json()["attention"], norms.attention)
    with pytest.raises(BadInput, match="use one of weights, norms"):
        commands.run(PRONOUN, model, measure="lengths")


def test_compare_reads_norms_as_shares_of_each_row_between_texts_and_between_checkpoints(tmp_path):
    """--measure norms on compare: the token's ‖α v W_O‖ row divided by its sum, as heads and rollout read norms;
    a learned sink, which adds nothing to a head's output, is no outcome of it."""
    base = load_model(str(FIXTURES / "qwen3"))
    result = commands.compare_models(PRONOUN, base, _perturbed(tmp_path, 1, 2), "it", measure="norms")
    assert result.ranking[0] == (1, 2) and result.change[1, 2] > 0.05
    assert_allclose(result.change[0], 0.0, atol=1e-6)  # the layer before the moved head is untouched
    it = result.token_a
    shares = _norms(PRONOUN, base)[:, :, it] / _norms(PRONOUN, base)[:, :, it].sum(axis=-1, keepdims=True)
    assert_allclose(result.rows[0], shares, rtol=1e-5)
    document = result.to_json()
    assert (
        document["measure"] == "norms" and "measure" not in commands.compare_models(PRONOUN, base, base, "it").to_json()
    )
    assert_allclose(document["heads"][0]["a"], shares[1, 2], rtol=1e-5)
    sinks = load_model(str(FIXTURES / "gpt-oss"))
    texts = commands.compare(PRONOUN, PRONOUN.replace("tired", "wide"), sinks, "it", measure="norms")
    assert_allclose(texts.change, analysis.total_variation(*texts.spread))  # no sink's share added
    assert_allclose(texts.rows[0].sum(axis=-1), 1.0)


def test_query_ranks_heads_by_the_norm_on_their_strongest_key_or_on_the_target():
    model = load_model(BERT)
    norms = _norms(PRONOUN, model)  # [L, h, T, T]
    it, animal = 8, 2
    result = commands.query(PRONOUN, model, str(it), measure="norms")
    assert [t.top_weight for t in result.ranking] == sorted((t.top_weight for t in result.ranking), reverse=True)
    first = result.ranking[0]
    assert first.top_weight == pytest.approx(norms[first.layer, first.head, it, first.top], rel=1e-6)
    target = commands.query(PRONOUN, model, str(it), to=str(animal), measure="norms")
    on_animal = [t.weights[animal] for t in target.ranking]
    assert on_animal == sorted(on_animal, reverse=True) and on_animal[0] == pytest.approx(norms[..., it, animal].max())
    assert target.csv_table()[0][-2:] == ["top_norm", "target_norm"]


def test_heads_and_rollout_of_norms_read_each_row_as_shares_of_its_sum():
    """Their distributions: each row of ‖α v W_O‖ divided by its sum (Kobayashi et al., 2020)."""
    from attncli import analysis

    model = load_model(str(FIXTURES / "gpt-oss"))  # a learned sink's share of a row is no norm's
    run = commands.run(SENTENCE, model, measure="norms")
    shares = analysis.row_shares(run.attention)
    assert_allclose(shares.sum(axis=-1), 1.0)
    statistics = commands.heads(SENTENCE, model, measure="norms").statistics
    masks = [model.info.mask(layer, len(run.tokens)) for layer in range(model.info.layers)]
    ids = np.array([t.id for t in run.tokens])
    expected = analysis.text_statistics(shares, run.special, [t.text for t in run.tokens], True, masks, False, ids=ids)
    for name in analysis.STATISTICS:
        assert_allclose(statistics[name], expected[name], rtol=1e-6, atol=1e-12)
    rollout = commands.rollout(SENTENCE, model, measure="norms")
    assert_allclose(rollout.rollout, analysis.rollout(shares))
    assert rollout.to_json()["measure"] == "norms"


def test_check_recomputes_the_norms_a_saved_result_of_norms_holds(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", SENTENCE, "--model", BERT, "--measure", "norms", "--json").stdout)
    run = cli("check", "--against", str(saved), "--json")
    assert run.code == 0 and run.json()["measure"] == "norms", run.stderr
    document = json.loads(saved.read_text())
    document["attention"][1][2][3][4] += 0.01  # a norm moved: a weight would have moved it less, or more
    saved.write_text(json.dumps(document))
    moved = cli("check", "--against", str(saved))
    assert moved.code == 4 and "FAILED: attention moved by up to 0.01" in moved.stdout
    saved.write_text(json.dumps(document | {"measure": "lengths"}))
    clean_error(
        attncli("check", "--against", str(saved)), "is not an attncli --json result with text, model and attention"
    )


# The fixtures whose logit lens transformers' run decoded (make_fixtures.py's lens group), and its top k.
LENS_FIXTURES = sorted(path.parent.name for path in FIXTURES.glob("*/lens.npz"))
LENS_TOP = 5


@pytest.mark.parametrize("name", LENS_FIXTURES)
def test_the_logit_lens_is_as_exact_as_transformers(name):
    """Each layer's top tokens, their probabilities and logits, against transformers' float64 run decoding each
    layer's stream with its own final norm and head, on every text of the fixture (a long text's kept positions)."""
    data = np.load(FIXTURES / name / "lens.npz")
    model = load_model(str(FIXTURES / name))
    _needs_a_head(model)
    for i, text in enumerate(data["texts"]):
        result = commands.lens(str(text), model, top=LENS_TOP)
        assert [t.id for t in result.tokens] == data[f"ids_{i}"].tolist()
        rows, what = data[f"rows_{i}"], f"{name}, text {i}"
        truth, error = data[f"top_logits_{i}"], data[f"logit_error_{i}"]  # [L + 1, R, K]
        assert_as_exact_as_transformers(result.logits[:, rows], truth, error, f"{what}: logits")
        probabilities = result.probabilities[:, rows]
        assert_as_exact_as_transformers(
            probabilities, data[f"top_probabilities_{i}"], data[f"probability_error_{i}"], f"{what}: probabilities"
        )
        # The ids too, wherever the truth's logits stand further apart than float32 can blur them: a rank whose
        # logit is clear of its neighbours' by ten times transformers' own largest float32 error.
        apart = np.diff(-truth, axis=-1) > 10 * error[1]  # [L + 1, R, K - 1] rank r's logit clear of rank r + 1's
        clear = np.ones(truth.shape, bool)
        clear[..., :-1] &= apart
        clear[..., 1:] &= apart
        assert np.array_equal(result.ids[:, rows][clear], data[f"top_ids_{i}"][clear]), what
        assert clear[..., 0].mean() > 0.9, f"{what}: too few clear top tokens for the test to mean much"


def _needs_a_head(model) -> None:
    """Skip, saying why, where attncli reads no head of an encoder fixture's family yet (its masked-LM head)."""
    try:
        assert model.unembedding.vocab_size > 0
    except DataError as error:
        if model.info.causal:
            raise
        pytest.skip(f"{model.info.name}: {error}")


@pytest.mark.parametrize("name", ["llama", "gemma2", "distilbert"])
def test_the_lens_s_last_row_is_the_model_s_own_prediction(name):
    from attncli.transformer import logits

    model = load_model(str(FIXTURES / name))
    _needs_a_head(model)
    result = commands.lens(PRONOUN, model, top=3)
    own = logits(model.run(result.tokens, keep_steps=False).output, model.unembedding)  # [T, vocab]
    assert np.array_equal(result.ids[-1], np.argsort(-own, axis=1, kind="stable")[:, :3])
    assert_allclose(result.logits[-1], np.take_along_axis(own, result.ids[-1], axis=1), rtol=1e-6, atol=1e-6)
    assert result.ids.shape == (model.info.layers + 1, len(result.tokens), 3)


def test_the_lens_holds_the_whole_vocabulary_s_softmax():
    model = load_model(str(FIXTURES / "qwen2"))
    vocab = model.unembedding.vocab_size
    result = commands.lens(SENTENCE, model, top=vocab + 5)  # more than there are: every token, ranked
    assert result.ids.shape[2] == vocab
    assert_allclose(result.probabilities.sum(axis=2), 1, atol=1e-5)
    assert np.all(np.diff(result.logits, axis=2) <= 0)
    assert np.array_equal(np.sort(result.ids, axis=2), np.broadcast_to(np.arange(vocab), result.ids.shape))


def test_the_lens_refuses_a_model_without_a_head():
    for name in (BERT, "sample"):
        with pytest.raises(DataError, match="head"):
            commands.lens(SENTENCE, load_model(name))
    with pytest.raises(BadInput, match="asks for no tokens"):
        commands.lens(SENTENCE, load_model(GPT2), top=0)


def test_the_lens_refuses_to_keep_more_tokens_than_its_limit(monkeypatch):
    monkeypatch.setattr(commands, "LENS_LIMIT", 150)
    assert commands.lens(SENTENCE, load_model(GPT2), top=5).ids.size == 3 * 10 * 5  # 150
    with pytest.raises(BadInput, match=r"top 6 over 3 rows of layers and 10 tokens would keep 180 tokens \(the limit"):
        commands.lens(SENTENCE, load_model(GPT2), top=6)


# The decoders whose greedy continuation transformers' generate(do_sample=False) made (make_fixtures.py).
GENERATED = sorted(name for name in LENS_FIXTURES if "generate_ids" in np.load(FIXTURES / name / "lens.npz"))


@pytest.mark.parametrize("name", GENERATED)
def test_a_greedy_continuation_is_transformers_generate(name):
    data = np.load(FIXTURES / name / "lens.npz")
    expected, prompt = data["generate_ids"], str(data["generate_prompt"])
    model = load_model(str(FIXTURES / name))
    count = len(model.tokenize(prompt))
    result = commands.generate(prompt, model, max_new_tokens=len(expected) - count)
    assert [t.id for t in result.run.tokens] == expected.tolist()
    assert result.prompt_tokens == count and result.stopped == "max_new_tokens"
    assert result.run.text.startswith(prompt) and result.continuation == result.run.text[len(prompt) :]
    assert np.all((result.probabilities > 0) & (result.probabilities <= 1))
    tokens = len(expected)
    assert result.run.weights.shape == (model.info.layers, model.info.heads, tokens, tokens)


def test_generation_stops_at_the_end_of_sequence_token(tmp_path):
    data = np.load(FIXTURES / "qwen2" / "lens.npz")
    prompt = str(data["generate_prompt"])
    new = data["generate_ids"][len(load_model(str(FIXTURES / "qwen2")).tokenize(prompt)) :].tolist()
    last = next(i for i, token in enumerate(new) if i > 0 and token not in new[:i])  # ends the text, now
    directory = copy_fixture(tmp_path, "qwen2")
    edit_config(directory, eos_token_id=[7, new[last]])
    result = commands.generate(prompt, load_model(str(directory)), max_new_tokens=8)
    assert [t.id for t in result.generated] == new[: last + 1] and result.stopped == "end_of_sequence"
    (directory / "generation_config.json").write_text('{"eos_token_id": 7}')  # transformers reads this first
    assert len(commands.generate(prompt, load_model(str(directory)), max_new_tokens=8).generated) == 8
    (directory / "generation_config.json").write_text('{"eos_token_id": "7"}')
    with pytest.raises(DataError, match=r"generation_config\.json: eos_token_id 7 is not a token id"):
        commands.generate(prompt, load_model(str(directory)), max_new_tokens=8)


def test_a_generated_sequence_is_attributed_on_its_own_tokens_and_keeps_its_value_norms_where_asked():
    """The explorer's panes over a generated sequence read its tokens as generated, not its text tokenized again:
    the attribution after each token but the last is of the token greedy generation chose next."""
    model = load_model(str(FIXTURES / "llama"))
    result = commands.generate(SENTENCE, model, max_new_tokens=3, value_norms=True)
    run = result.run
    assert run.trace.value_norms is not None and commands.generate(SENTENCE, model, 1).run.trace.value_norms is None
    for position in range(result.prompt_tokens - 1, len(run.tokens) - 1):
        attributed = commands.attribution_at(run.text, run.tokens, model, position)
        assert attributed.predicted and attributed.target.id == run.tokens[position + 1].id
        assert attributed.contributions.sum() == pytest.approx(attributed.logit, abs=1e-4)
    predicted = commands.attribution_at(run.text, run.tokens, model, 0).target.id
    with pytest.raises(BadInput, match="versus is the token the model predicts there"):
        commands.attribution_at(run.text, run.tokens, model, 0, versus_id=predicted)


def test_generate_refuses_an_encoder_and_a_model_without_a_head():
    for name in (str(FIXTURES / "distilbert"), BERT, "sample"):
        with pytest.raises(BadInput, match="is an encoder"):
            commands.generate(SENTENCE, load_model(name))
    with pytest.raises(DataError, match="no language-model head"):
        commands.generate(SENTENCE, load_model("sample", causal=True))
