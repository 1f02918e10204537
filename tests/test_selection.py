"""--layers and --heads: a pass that keeps some layers and heads, and documents written a layer at a time as the pass
makes them (attncli/streamed.py), in float16 where asked."""

import io
import json
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attncli import analysis, commands
from attncli.analysis import Fusion
from attncli.attention import Selection
from attncli.errors import BadInput, DataError, listed
from attncli.models import load_model
from attncli.npz import Layers, npz_pieces
from attncli.streamed import LayerStream
from tests.helpers import BERT, FIXTURES

TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def llama():
    return load_model(str(FIXTURES / "llama"))


@pytest.mark.parametrize("name", ["bert", "llama", "gemma2", "gpt-oss", "deberta-v3"])
@pytest.mark.parametrize("norms", [False, True])
def test_a_selection_keeps_exactly_its_layers_and_heads_of_the_whole_run(name, norms):
    model = load_model(str(FIXTURES / name))
    info = model.info
    tokens = commands.tokenize(TEXT, model).tokens
    whole = model.run(tokens, keep_steps=False, value_norms=norms)
    layers, heads = (info.layers - 1,), tuple(range(0, info.heads, 2))
    kept = model.run(tokens, keep_steps=False, value_norms=norms, selection=Selection(layers, heads))
    assert np.array_equal(kept.weights, whole.weights[list(layers)][:, list(heads)])
    if norms:
        assert np.array_equal(kept.norms, whole.norms[list(layers)][:, list(heads)])


def test_the_pass_stops_after_the_last_layer_kept(llama):
    tokens = commands.tokenize(TEXT, llama).tokens
    done = []
    llama.run(tokens, keep_steps=False, selection=Selection((0,), None), on_layer=lambda n, of: done.append((n, of)))
    assert done == [(1, 1)] and llama.info.layers > 1


def test_handing_each_layer_on_keeps_none_and_gives_what_the_stack_holds(llama):
    tokens = commands.tokenize(TEXT, llama).tokens
    whole = llama.run(tokens, keep_steps=False, value_norms=True)
    handed = []
    trace = llama.run(
        tokens,
        keep_steps=False,
        value_norms=True,
        on_attention=lambda *layer: handed.append([np.copy(a) for a in layer]),
    )
    assert trace.weights.size == 0
    assert [layer for layer, _, _ in handed] == list(range(llama.info.layers))
    assert np.array_equal(np.stack([w for _, w, _ in handed]), whole.weights)
    assert np.array_equal(np.stack([n for _, _, n in handed]), whole.value_norms)


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [("1:3", [1, 2]), (":2", [0, 1]), ("2:", [2, 3]), ("-1:", [3]), ("0-1,3", [0, 1, 3]), (" 1 : 3 ", [1, 2])],
)
def test_layers_and_heads_read_slices_and_lists(spec, chosen):
    assert commands.parse_range(spec, 4, "layers") == chosen


@pytest.mark.parametrize(("spec", "message"), [("3:1", "picks none"), ("9:", "picks none"), ("1:2:3", "give a slice")])
def test_a_selection_of_nothing_is_refused_by_name(spec, message):
    with pytest.raises(BadInput, match=message):
        commands.parse_range(spec, 4, "layers")


@pytest.mark.parametrize("measure", ["weights", "norms"])
@pytest.mark.parametrize("form", [["--json"], ["--format", "csv"], ["--format", "npz"], ["--json", "--precision", "3"]])
@pytest.mark.parametrize("kept", [[], ["--layers", "1:", "--heads", "0,2"]])
def test_a_document_written_as_the_pass_makes_it_is_the_one_written_from_the_whole_run(
    cli, tmp_path, measure, form, kept
):
    """Written with a picture too, a document comes from the whole run kept in memory; without, a layer at a time."""
    model = str(FIXTURES / "llama")
    args = ["heatmap", TEXT, "--model", model, "--measure", measure, *form, *kept]
    streamed = cli(*args, "-o", str(tmp_path / "streamed"))
    whole = cli(*args, "-o", str(tmp_path / "whole"), "--export", str(tmp_path / "picture.svg"))
    assert streamed.code == whole.code == 0, streamed.stderr + whole.stderr
    assert (tmp_path / "streamed").read_bytes() == (tmp_path / "whole").read_bytes()


def test_a_document_of_kept_layers_names_them_and_holds_theirs_alone(cli, tmp_path):
    every = cli("heatmap", TEXT, "--model", BERT, "--json").json()
    kept = cli("heatmap", TEXT, "--model", BERT, "--json", "--layers", "1", "--heads", "1:3").json()
    assert (kept["layers"], kept["heads"]) == ([1], [1, 2]) and "layers" not in every
    assert np.array_equal(np.array(kept["attention"]), np.array(every["attention"])[1:, 1:3])
    cli("heatmap", TEXT, "--model", BERT, "--layers", "1", "--heads", "1:3", "-o", str(tmp_path / "a.npz"))
    archive = np.load(tmp_path / "a.npz")
    assert archive["layers"].tolist() == [1] and archive["heads"].tolist() == [1, 2]
    assert np.array_equal(archive["attention"], np.array(every["attention"], dtype=np.float32)[1:, 1:3])


def test_the_view_draws_the_first_layer_kept_and_labels_heads_by_the_model(cli):
    view = cli("heatmap", TEXT, "--model", BERT, "--layers", "1", "--heads", "2:", "--no-values").stdout
    assert "layer 1 head 2" in view and "layer 1 head 3" in view and "head 0" not in view and "head 1 " not in view


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "1", "--layer", "0"], "--layer 0: the run keeps --layers 1 alone"),
        (["--heads", "0-1", "--head", "3"], "--head 3: the run keeps --heads 0, 1 alone"),
        (["--dtype", "float16"], "--dtype float16 is how NPZ stores the weights: use it with --format npz"),
        (["--dtype", "float16", "--json"], "(JSON and CSV: --precision 3 rounds them)"),
        (["--layers", "1", "--export", "page.html"], "the --export page shows every layer and head"),
        (["--layers", "x"], "--layers 'x': give a slice such as 2:6"),
    ],
)
def test_a_selection_at_odds_with_what_is_drawn_is_one_line(cli, args, message):
    run = cli("heatmap", TEXT, "--model", BERT, *args)
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.strip() == f"attncli: error: {message}" or message in run.stderr.splitlines()[0]


def test_float16_documents_are_within_a_thousandth_and_npz_is_half_the_size(cli, tmp_path):
    text = " ".join([TEXT] * 6)
    model = str(FIXTURES / "llama")
    for dtype in ("float32", "float16"):
        cli("heatmap", text, "--model", model, "--dtype", dtype, "-o", str(tmp_path / f"{dtype}.npz"))
    full, half = np.load(tmp_path / "float32.npz")["attention"], np.load(tmp_path / "float16.npz")["attention"]
    assert half.dtype == np.float16 and full.dtype == np.float32
    assert np.abs(half.astype(np.float32) - full).max() <= 1e-3
    assert (tmp_path / "float16.npz").stat().st_size < 0.7 * (tmp_path / "float32.npz").stat().st_size


def test_over_the_budget_the_message_proposes_the_layers_that_fit(cli):
    model = str(FIXTURES / "llama")
    text = " ".join([TEXT] * 20)
    tokens = len(commands.tokenize(text, load_model(model)).tokens)
    layer = load_model(model).info.heads * tokens * tokens * 4  # one layer's weights, float32
    budget = {"ATTNCLI_MEMORY_BUDGET": str(3.5 * layer / 2**20)}  # one layer in flight and two kept
    run = cli("heatmap", text, "--model", model, env=budget)
    assert run.code == 2
    assert "keep 2 layers with --layers 0:2 (or fewer heads with --heads)" in run.stderr
    assert cli("heatmap", text, "--model", model, "--layers", "0:2", env=budget).code == 0
    # a document written a layer at a time needs one layer's memory, whatever the layers
    streamed = cli("heatmap", text, "--model", model, "--json", env=budget)
    assert streamed.code == 0 and len(streamed.json()["attention"]) == load_model(model).info.layers


def test_a_streamed_document_holds_one_layer_at_a_time_not_the_stack(monkeypatch):
    """tracemalloc sees numpy's arrays: writing every layer of a long text holds about one layer's weights (where
    two layers would pass a quarter of the budget: else the pass makes the next while the last is written)."""
    model = load_model(str(FIXTURES / "modernbert"))  # 4 layers, 2 heads
    text = "The" + " cat" * 2800  # long enough that a layer outweighs the model and the pieces being deflated
    layer = 2 * 2803 * 2803 * 4  # one layer's [h, T, T] float32: 63 MB
    monkeypatch.setenv("ATTNCLI_MEMORY_BUDGET", str(3 * layer / 2**20))
    run = commands.run(text, model, max_tokens=4096, streamed=True)
    assert len(run.tokens) == 2803
    tracemalloc.start()
    try:
        attention = Layers(run.attention.shape, np.dtype(np.float32), run.written())
        written = sum(len(piece) for piece in npz_pieces([("attention", attention)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written > 0
    # less than two layers (the masks and parts in flight on each core besides), where the stack would be 4 and one more
    assert peak < 2 * layer < len(run.layers) * layer


def test_a_reader_that_stops_early_lets_the_pass_end(llama):
    tokens = commands.tokenize(TEXT, llama).tokens
    made = []

    def forward(hand_on):
        llama.run(tokens, keep_steps=False, on_attention=lambda *layer: (made.append(layer[0]), hand_on(*layer)))

    stream = LayerStream((llama.info.layers, llama.info.heads, len(tokens), len(tokens)), forward)
    layers = iter(stream)
    next(layers)
    layers.close()
    for thread in threading.enumerate():
        if thread.name == "attncli-forward":
            thread.join(timeout=10)
            assert not thread.is_alive()
    assert len(made) < llama.info.layers


def test_what_the_pass_raises_reaches_the_reader_after_the_layers_it_made():
    def forward(hand_on):
        hand_on(0, np.zeros((1, 2, 2)), None)
        raise DataError("the forward pass gave NaN")

    layers = iter(LayerStream((2, 1, 2, 2), forward))
    assert next(layers).shape == (1, 2, 2)
    with pytest.raises(DataError, match="NaN"):
        next(layers)


def test_a_stream_is_read_once():
    stream = LayerStream((0, 1, 2, 2), lambda hand_on: None)
    assert list(stream) == []
    with pytest.raises(RuntimeError, match="read once"):
        list(stream)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(0, 3), st.booleans())
def test_layers_written_to_npz_read_back_as_the_array_and_a_wrong_count_is_refused(count, extra, half):
    dtype = np.dtype(np.float16 if half else np.float32)
    array = np.random.default_rng(count).random((count, 2, 3, 3)).astype(dtype)
    data = b"".join(npz_pieces([("attention", Layers(array.shape, dtype, iter(array)))]))
    assert np.array_equal(np.load(io.BytesIO(data))["attention"], array)
    if extra:
        with pytest.raises(ValueError, match="parts"):
            b"".join(npz_pieces([("attention", Layers((count + extra, 2, 3, 3), dtype, iter(array)))]))


def test_query_ranks_the_kept_heads_alone_by_the_model_s_numbers(cli):
    every = cli("query", TEXT, "--token", "cat", "--model", BERT, "--json").json()["heads"]
    kept = cli("query", TEXT, "--token", "cat", "--model", BERT, "--json", "--layers", "1", "--heads", "2:").json()[
        "heads"
    ]
    assert [(h["layer"], h["head"]) for h in kept] == [
        (h["layer"], h["head"]) for h in every if h["layer"] == 1 and h["head"] >= 2
    ]
    assert all(
        h["weights"] == next(e for e in every if (e["layer"], e["head"]) == (1, h["head"]))["weights"] for h in kept
    )


def test_batch_records_keep_the_selection_as_explain_keeps_it(cli, tmp_path):
    import jsonschema

    from attncli.schema import schemas

    source = tmp_path / "lines.txt"
    source.write_text("The cat sat on the mat.\nA dog barked.\n", encoding="utf-8")
    model = str(FIXTURES / "llama")
    records = [
        json.loads(line)
        for line in cli("batch", str(source), "--model", model, "--layers", "1:", "--heads", "1").stdout.splitlines()
    ]
    every = [json.loads(line) for line in cli("batch", str(source), "--model", model).stdout.splitlines()]
    for kept, whole in zip(records, every, strict=True):
        jsonschema.validate(kept, schemas()["batch"], cls=jsonschema.Draft202012Validator)
        assert (kept["layers"], kept["heads"], kept["layer"]) == ([1, 2], [1], 1)
        assert np.array_equal(np.array(kept["attention"]), np.array(whole["attention"])[1:, 1:2])
        assert [h["head"] for h in kept["summary"][0]["heads"]] == [1]


@pytest.mark.parametrize("kind", ["--summary", "--steps"])
def test_batch_summaries_and_steps_keep_the_selection_too(cli, tmp_path, kind):
    import jsonschema

    from attncli.schema import schemas

    source = tmp_path / "lines.txt"
    source.write_text("The cat sat on the mat.\nA dog barked.\n", encoding="utf-8")
    model = str(FIXTURES / "llama")
    kept = [
        json.loads(line)
        for line in cli(
            "batch", str(source), "--model", model, kind, "--layers", "1:", "--heads", "1"
        ).stdout.splitlines()
    ]
    every = [json.loads(line) for line in cli("batch", str(source), "--model", model, kind).stdout.splitlines()]
    for record, whole in zip(kept, every, strict=True):
        jsonschema.validate(record, schemas()["batch"], cls=jsonschema.Draft202012Validator)
        assert (record["layers"], record["heads"]) == ([1, 2], [1]) and "layers" not in whole
        if kind == "--summary":
            for name, values in record["statistics"].items():
                assert values == [row[1:2] for row in whole["statistics"][name][1:]], name
        else:  # the kept layers' steps, every head of each
            assert record["steps"]["scores"] == whole["steps"]["scores"][1:]
            assert np.array_equal(np.array(record["attention"]), np.array(whole["attention"])[1:, 1:2])


@pytest.mark.parametrize("source", ["text", "file", "induction"])
def test_heads_statistics_of_kept_heads_are_those_of_every_head(cli, tmp_path, source):
    model = str(FIXTURES / "qwen2")
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{TEXT}\nA dog barked at night.\n", encoding="utf-8")
    given = {"text": [TEXT], "file": ["--file", str(lines)], "induction": ["--induction"]}[source]
    every = cli("heads", *given, "--model", model, "--json").json()
    kept = cli("heads", *given, "--model", model, "--json", "--layers", "1", "--heads", "1:").json()
    chosen = [h for h in every["heads"] if h["layer"] == 1 and h["head"] >= 1]
    assert [(h["layer"], h["head"]) for h in kept["heads"]] == [(h["layer"], h["head"]) for h in chosen]
    for ours, whole in zip(kept["heads"], chosen, strict=True):
        assert ours["pattern"] == whole["pattern"]
        assert ours["entropy"] == pytest.approx(whole["entropy"], abs=1e-6)  # packed passes: float32 rounding
    sorted_csv = cli("heads", *given, "--model", model, "--format", "csv", "--layers", "1", "--sort", "head").stdout
    heads_of_layer = [str(h["head"]) for h in every["heads"] if h["layer"] == 1]
    assert [row.split(",")[:2] for row in sorted_csv.splitlines()[1:]] == [["1", h] for h in heads_of_layer]


def test_heads_merge_refuses_a_selection_in_one_line(cli, tmp_path):
    merged = cli("heads", "--merge", str(tmp_path / "a.json"), "--layers", "0", "--model", BERT)
    assert merged.code == 2 and "saved results of the layers and heads they were run with" in merged.stderr


def _selected_shard(cli, tmp_path, name: str, lines: list[str], *selection: str) -> dict:
    """heads --file over `lines` of the llama fixture with `selection` (--layers, --heads), written to `name`.json."""
    (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = tmp_path / f"{name}.json"
    source, model = str(tmp_path / f"{name}.txt"), str(FIXTURES / "llama")
    run = cli("heads", "--file", source, "--model", model, *selection, "-o", str(path))
    assert run.code == 0, run.stderr
    return json.loads(path.read_text())


def test_heads_merge_of_shards_of_a_selection_is_the_run_over_their_texts(cli, tmp_path):
    import jsonschema

    from attncli.schema import schemas

    texts = [TEXT, "A dog barked at night.", "The bird sang, and the cat sat."]
    kept = ("--layers", "1:", "--heads", "1")
    whole = _selected_shard(cli, tmp_path, "whole", texts, *kept)
    _selected_shard(cli, tmp_path, "a", texts[:2], *kept)
    _selected_shard(cli, tmp_path, "b", texts[2:], *kept)
    merged = cli("heads", "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert merged.code == 0, merged.stderr
    document = merged.json()
    jsonschema.validate(document, schemas()["heads"], cls=jsonschema.Draft202012Validator)
    assert (document["partial_sums"]["layers"], document["partial_sums"]["heads"]) == ([1, 2], [1])
    assert document["texts"] == whole["texts"] == 3
    assert [(h["layer"], h["head"]) for h in document["heads"]] == [(1, 1), (2, 1)]
    for ours, theirs in zip(document["heads"], whole["heads"], strict=True):
        assert (ours["layer"], ours["head"], ours["pattern"]) == (theirs["layer"], theirs["head"], theirs["pattern"])
        for name in analysis.STATISTICS:
            assert ours[name] == pytest.approx(theirs[name], abs=1e-6)  # packed passes: float32 rounding
    assert document["partial_sums"]["counts"] == whole["partial_sums"]["counts"]


def test_heads_merge_names_the_shard_of_another_selection(cli, tmp_path):
    _selected_shard(cli, tmp_path, "a", [TEXT], "--layers", "1:", "--heads", "1")
    _selected_shard(cli, tmp_path, "b", [TEXT], "--layers", "1:", "--heads", "0")
    every = _selected_shard(cli, tmp_path, "every", [TEXT])
    assert "layers" not in every["partial_sums"]
    first = tmp_path / "a.json"
    other = cli("heads", "--merge", str(first), str(tmp_path / "b.json"))
    assert other.code == 2 and other.stdout == ""
    assert other.stderr == (
        f"attncli: error: --merge {tmp_path / 'b.json'} holds statistics of layers 1, 2 and heads 0, {first} of "
        "layers 1, 2 and heads 1; merge runs of one selection\n"
    )
    info = load_model(str(FIXTURES / "llama")).info
    layers, heads = listed(tuple(range(info.layers))), listed(tuple(range(info.heads)))
    whole = cli("heads", "--merge", str(first), str(tmp_path / "every.json"))
    assert whole.code == 2 and whole.stderr.count("\n") == 1
    assert f"every.json holds statistics of layers {layers} and heads {heads}, {first} of" in whole.stderr
    # A shard an earlier attncli wrote of a selection, without naming it: its sums are not of every head.
    earlier = json.loads(first.read_text())
    del earlier["partial_sums"]["layers"], earlier["partial_sums"]["heads"]
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    unnamed = cli("heads", "--merge", str(tmp_path / "earlier.json"))
    assert unnamed.code == 2 and unnamed.stderr.count("\n") == 1
    assert "its partial sums are not of 3 × " in unnamed.stderr and "run heads on its texts again" in unnamed.stderr


def test_an_svg_of_a_selection_draws_a_kept_head_by_its_number(cli, tmp_path):
    figure = tmp_path / "head.svg"
    run = cli("heatmap", TEXT, "--model", BERT, "--layers", "1", "--heads", "2:", "--export", str(figure))
    assert run.code == 0, run.stderr
    assert "layer 1, head 2" in figure.read_text(encoding="utf-8")


def test_check_reruns_a_saved_selection(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", TEXT, "--model", BERT, "--layers", "1", "--heads", "0,2", "--json").stdout)
    run = cli("check", "--against", str(saved))
    assert run.code == 0 and "passed" in run.stdout


def test_heads_over_a_file_counts_the_budget_of_the_kept_layers_alone(cli, tmp_path):
    model = str(FIXTURES / "llama")
    lines = tmp_path / "lines.txt"
    lines.write_text(" ".join([TEXT] * 20) + "\n", encoding="utf-8")
    tokens = len(commands.tokenize(" ".join([TEXT] * 20), load_model(model)).tokens)
    layer = load_model(model).info.heads * tokens * tokens * 4
    budget = {"ATTNCLI_MEMORY_BUDGET": str(2.5 * layer / 2**20)}  # a layer in flight and one kept
    refused = cli("heads", "--file", str(lines), "--model", model, env=budget)
    assert (
        refused.code != 0 and "keep 1 layer with --layers 0:1 (or fewer heads with --heads), or raise" in refused.stderr
    )
    assert cli("heads", "--file", str(lines), "--model", model, "--layers", "0:1", env=budget).code == 0


def test_standard_output_into_a_file_is_cut_back_where_a_streamed_document_fails(tmp_path):
    """A document written as the pass makes it, into a file by >>, whose pass fails at its second layer (a damaged
    tensor, found as the layer is read): the file is left as it was before the command."""
    import subprocess

    from tests.helpers import ATTNCLI, copy_fixture, edit_tensors

    model = copy_fixture(tmp_path, "gpt2")

    def damaged(tensors: dict) -> dict:
        name = "transformer.h.1.mlp.c_proj.weight"
        return {**tensors, name: np.full_like(tensors[name], np.nan)}

    edit_tensors(model, damaged)
    out = tmp_path / "out.json"
    out.write_bytes(b"before\n")
    with out.open("ab") as appended:
        args = [ATTNCLI, "heatmap", " ".join([TEXT] * 20), "--model", str(model), "--json"]
        done = subprocess.run(args, stdout=appended, stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 2 and b"NaN" in done.stderr
    assert out.read_bytes() == b"before\n"


def test_explain_keeps_its_layers_and_heads_and_walks_through_the_first_of_them(cli):
    every = cli("explain", TEXT, "--model", BERT, "--json", "--layer", "1").json()
    kept = cli("explain", TEXT, "--model", BERT, "--json", "--layers", "1", "--heads", "2:").json()
    assert (kept["layers"], kept["heads"], kept["layer"]) == ([1], [2, 3], 1) and "layers" not in every
    assert np.array_equal(np.array(kept["attention"]), np.array(every["attention"])[1:, 2:])
    # the steps are of the layers kept, every head of each (a layer's output mixes them all)
    assert kept["steps"]["q"] == every["steps"]["q"][1:] and kept["steps"]["concat"] == every["steps"]["concat"][1:]
    assert [[h["head"] for h in t["heads"]] for t in kept["summary"]] == [[2, 3]] * len(kept["tokens"])
    assert [t["heads"][2:] for t in every["summary"]] == [t["heads"] for t in kept["summary"]]


def test_explain_draws_the_heads_kept_and_walks_through_the_first(cli):
    view = cli("explain", TEXT, "--model", BERT, "--layers", "1", "--heads", "2:", "--no-values").stdout
    assert "for heads 2, 3:" in view and "layer 1 head 2" in view and "layer 1 head 3" in view
    assert "head 0" not in view and "head 1 " not in view
    assert "Head 2's output for token" in view and "2:" in view.split("Summary")[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "1", "--layer", "0"], "--layer 0: the run keeps --layers 1 alone"),
        (["--heads", "0-1", "--head", "3"], "--head 3: the run keeps --heads 0, 1 alone"),
        (["--layers", "7"], "--layers '7'"),
    ],
)
def test_explain_refuses_what_its_selection_does_not_keep_in_one_line(cli, args, message):
    run = cli("explain", TEXT, "--model", BERT, *args)
    assert run.code == 2 and run.stdout == "" and len(run.stderr.splitlines()) == 1 and message in run.stderr


def test_a_rollout_of_kept_layers_multiplies_theirs_alone_and_fuses_the_kept_heads(cli):
    model = str(FIXTURES / "llama")
    whole = commands.run(TEXT, load_model(model))
    kept = cli("rollout", TEXT, "--model", model, "--json", "--layers", "1:", "--heads", "0,2").json()
    assert (kept["layers"], kept["heads"]) == ([1, 2], [0, 2])
    expected = analysis.rollout(whole.weights[1:][:, [0, 2]], Fusion.mean)  # [L', T, T], from layer 1's input on
    assert np.allclose(np.array(kept["rollout"]), expected, atol=1e-6)
    every = cli("rollout", TEXT, "--model", model, "--json").json()
    assert "layers" not in every and np.allclose(every["rollout"], analysis.rollout(whole.weights), atol=1e-6)
    table = cli("rollout", TEXT, "--model", model, "--format", "csv", "--layers", "2").stdout.splitlines()
    assert {row.split(",")[0] for row in table[1:]} == {"2"}  # the model's number of the layer


def test_a_rollout_of_kept_layers_says_which_it_multiplies(cli):
    llama = ["--model", str(FIXTURES / "llama")]
    view = " ".join(cli("rollout", TEXT, *llama, "--layers", "1:", "--heads", "0,2", "--token", "cat").stdout.split())
    assert "rollout through layers 1, 2" in view and "after layers 1, 2 alone (--layers)" in view
    # the first layer multiplied reads layer 0's output, not the text's tokens
    assert "how much each token of layer 1's input flows" in view and "layer 1's input share" in view
    assert "each layer's heads 0, 2 fused by mean" in view
    gaps = " ".join(cli("rollout", TEXT, *llama, "--layers", "0,2", "--heads", "1").stdout.split())
    assert "rollout through layers 0, 2" in gaps and "each input token flows" in gaps and "head 1 fused" in gaps
    assert "rollout through layer 2 " in " ".join(cli("rollout", TEXT, *llama).stdout.split())
    run = cli("rollout", TEXT, *llama, "--heads", "9")
    assert run.code == 2 and run.stdout == "" and run.stderr.startswith("attncli: error: --heads '9'")


@pytest.mark.parametrize(
    ("indices", "words"),
    [((4,), "4"), ((0, 4), "0, 4"), ((1, 2), "1, 2"), (tuple(range(20)), "0–19"), ((0, 1, 3, 4, 5, 7), "0, 1, 3–5, 7")],
)
def test_indices_are_listed_with_runs_of_three_or_more_as_their_ends(indices, words):
    assert listed(indices) == words


@pytest.mark.parametrize("two_models", [False, True])
def test_compare_ranks_the_kept_heads_alone_by_the_model_s_numbers(cli, two_models):
    texts = [TEXT, "The cat sat on the big mat because it was tired."]
    models = ["--model", BERT, "--model", str(FIXTURES / "distilbert")] if two_models else ["--model", BERT]
    args = ["compare", *(texts[:1] if two_models else texts), "--token", "cat", *models, "--json"]
    every = cli(*args).json()
    kept = cli(*args, "--layers", "1", "--heads", "1:3").json()
    chosen = [h for h in every["heads"] if h["layer"] == 1 and h["head"] in (1, 2)]
    assert kept["heads"] == chosen  # the same heads, rows and order, by the model's numbers
    table = cli(*args[:-1], "--format", "csv", "--layers", "1", "--heads", "1:3").stdout.splitlines()
    assert [row.split(",")[1:3] for row in table[1:]] == [[str(h["layer"]), str(h["head"])] for h in chosen]
    view = " ".join(cli(*args[:-1], "--layers", "1", "--heads", "1:3").stdout.split())
    assert "Of layer 1 and heads 1, 2 kept alone." in view and "L0" not in view


def test_compare_of_two_shapes_is_refused_for_them_before_any_selection(cli):
    run = cli("compare", TEXT, "--token", "cat", "--model", BERT, "--model", str(FIXTURES / "llama"), "--layers", "2")
    assert run.code == 2 and "compare two checkpoints of one shape" in run.stderr  # bert has no layer 2: not said
    infos = [load_model(BERT).info, load_model(str(FIXTURES / "distilbert")).info]
    assert commands.compared_selection(infos, "1", None) == Selection((1,), None)


def test_generate_runs_every_layer_for_its_tokens_and_keeps_the_selected_attention(cli, tmp_path):
    args = ["generate", "The cat sat", "--model", str(FIXTURES / "llama"), "--max-new-tokens", "3"]
    every = cli(*args, "--json").json()
    kept = cli(*args, "--json", "--layers", "1", "--heads", "0,2").json()
    assert (kept["layers"], kept["heads"]) == ([1], [0, 2]) and "layers" not in every
    assert kept["generated"] == every["generated"]  # the logits read the last layer, whatever is kept
    assert np.array_equal(np.array(kept["attention"]), np.array(every["attention"])[1:2][:, [0, 2]])
    view = " ".join(cli(*args, "--layers", "1").stdout.split())
    assert "A greedy continuation" in view and "--explore" not in view  # refused with a selection: not offered
    assert "--explore shows the whole sequence's attention" in " ".join(cli(*args).stdout.split())
    cli(*args, "--layers", "1", "--heads", "0,2", "-o", str(tmp_path / "a.npz"))
    assert np.load(tmp_path / "a.npz")["layers"].tolist() == [1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "1", "--explore"], "--explore shows every layer and head: give no --layers or --heads with it"),
        (["--heads", "4"], "--heads '4': the model has 4, numbered 0 to 3"),
        (
            ["--layers", "1", "--export", "page.html"],
            "the --export page shows every layer and head: give no --layers or --heads, or export an .svg",
        ),
    ],
)
def test_generate_refuses_a_selection_it_cannot_show_in_one_line(cli, args, message):
    run = cli("generate", "The cat sat", "--model", str(FIXTURES / "llama"), "--max-new-tokens", "1", *args)
    assert run.code == 2 and run.stdout == "" and run.stderr == f"attncli: error: {message}\n"


def test_explain_s_steps_need_the_memory_of_the_layers_run_alone(cli):
    text = " ".join(["The cat sat on the mat."] * 30)  # 360 tokens: 8 MB of steps a layer on the llama fixture
    model = str(FIXTURES / "llama")
    budget = {"ATTNCLI_MEMORY_BUDGET": "12"}
    refused = cli("explain", text, "--model", model, env=budget)
    assert refused.code == 2 and "(3 layers × 4 heads × 360²)" in refused.stderr
    assert "keep 1 layer with --layers 0:1, or raise" in refused.stderr  # 8 MB a layer run: one fits in 12
    assert cli("explain", text, "--model", model, "--layers", "0", "--json", env=budget).code == 0
    assert "(2 layers × 4 heads × 360²)" in cli("explain", text, "--model", model, "--layers", "1", env=budget).stderr


def test_generate_s_steps_keep_no_attention_and_its_last_run_the_selection_s(llama, monkeypatch):
    """The memory budget counts the last run's attention alone: the steps, run for their logits, keep none."""
    kept, run = [], llama.run

    def counted(*args, **options):
        trace = run(*args, **options)
        kept.append(trace.weights.shape[:2])
        return trace

    monkeypatch.setattr(llama, "run", counted)
    commands.generate("The cat sat", llama, max_new_tokens=3, selection=Selection((0,), (0,)))
    assert kept == [(0, 0)] * 3 + [(1, 1)]
