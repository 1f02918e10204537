"""Real checkpoints: attention equal to Hugging Face transformers' (eager) on every architecture."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    BERT,
    DECODERS,
    ENCODERS,
    FIXTURES,
    GPT2,
    PRONOUN,
    assert_as_exact_as_transformers,
    needs_minilm,
    references,
)
from numpy.testing import assert_allclose
from safetensors import deserialize
from safetensors.numpy import load_file, save_file

from attncli import commands
from attncli.errors import BadInput, DataError
from attncli.models import load_model
from attncli.transformer import gelu, gelu_tanh, position_ids


@pytest.mark.parametrize("name", ENCODERS + DECODERS)
def test_attention_is_as_exact_as_transformers_on_short_and_long_texts(name):
    model = load_model(str(FIXTURES / name))
    cases = references(name)
    assert max(len(case.ids) for case in cases) >= 450
    for case in cases:
        run = commands.run(case.text, model)
        assert [t.id for t in run.tokens] == case.ids.tolist()
        rows = run.weights[:, :, case.rows]  # [L, h, R, T]
        assert rows.shape == case.attention.shape
        what = f"{name}, {len(case.ids)} tokens"
        assert_as_exact_as_transformers(rows, case.attention, case.attention_error, f"{what}: attention")
        hidden = run.trace.output[case.rows]
        assert_as_exact_as_transformers(hidden, case.hidden, case.hidden_error, f"{what}: last hidden state")


@pytest.mark.parametrize("name", ENCODERS + DECODERS)
def test_fixture_attention_is_peaked_so_a_wrong_path_would_show(name):
    for case in references(name):
        assert case.attention.max(axis=-1).mean() > 3 / case.attention.shape[-1]


def test_special_tokens_are_the_models_own():
    bert = commands.tokenize("The cat", load_model(BERT)).tokens
    assert (bert[0].text, bert[-1].text) == ("[CLS]", "[SEP]")
    assert bert[0].special and not bert[1].special
    roberta = commands.tokenize("The cat", load_model(str(FIXTURES / "roberta"))).tokens
    assert (roberta[0].text, roberta[-1].text) == ("<s>", "</s>")
    gpt2 = commands.tokenize("The cat", load_model(GPT2)).tokens
    assert not any(t.special for t in gpt2)
    assert gpt2[1].text.startswith("Ġ")


def test_gpt2_attention_is_causal():
    run = commands.run("The cat sat on the mat.", load_model(GPT2))
    assert np.all(np.triu(run.weights, k=1) == 0)


def test_roberta_positions_start_after_the_padding_index():
    config = load_model(str(FIXTURES / "roberta")).config
    assert position_ids(np.array([0, 5, 6, 2]), config).tolist() == [2, 3, 4, 5]
    assert position_ids(np.array([0, 1, 6]), config).tolist() == [2, 1, 3]


def test_gelu_is_exact_to_float32_rounding():
    x = np.concatenate([np.linspace(-12, 12, 48_001), np.random.default_rng(0).normal(0, 3, 50_000)]).astype(np.float32)
    exact = np.array([v * math.erfc(-v / math.sqrt(2)) / 2 for v in x.astype(np.float64)])  # x · Φ(x), float64
    error = np.abs(gelu(x) - exact)
    rounding = np.abs(exact.astype(np.float32) - exact)  # what storing the exact values as float32 costs
    assert np.sqrt(np.mean(np.square(error))) <= 1.05 * np.sqrt(np.mean(np.square(rounding)))
    assert np.all(error <= 2.5 * np.spacing(np.abs(exact).astype(np.float32)) + 1e-13)


def test_gelu_variants():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    exact = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()]
    assert_allclose(gelu(x), exact, rtol=1e-6, atol=3e-7)
    assert np.abs(gelu_tanh(x) - gelu(x)).max() < 1e-3
    assert gelu(x).dtype == np.float32


GELU_INPUTS = {
    "0-d": np.float32(1.5),
    "empty": np.zeros((0, 4), np.float32),
    "small": np.float32([-3.0, 0.5, 2.0]),
    "several blocks": np.random.default_rng(0).normal(0.0, 3.0, size=(3, 40_000)).astype(np.float32),
    "3-d, block boundaries off the rows": np.random.default_rng(1).normal(0.0, 3.0, size=(2, 3, 20_001)),
    "strided": np.random.default_rng(2).normal(0.0, 3.0, size=(300, 400)).astype(np.float32)[::2, ::3],
    "integers": np.arange(-50_000, 50_000).reshape(100, 1000) // 10_000,
}


@pytest.mark.parametrize("x", GELU_INPUTS.values(), ids=GELU_INPUTS.keys())
def test_gelu_is_elementwise_across_its_blocks(x):
    """GELU works through large inputs a block at a time; every element, in any block, at any
    shape and layout, gets its own value (to float32 rounding) back in its place."""
    x = np.asarray(x)
    for activation in (gelu, gelu_tanh):
        y = activation(x)
        assert y.shape == x.shape
        assert y.dtype == np.result_type(x, np.float32)
        every = max(x.size // 997, 1)
        one_by_one = [activation(v) for v in x.reshape(-1)[::every]]
        assert_allclose(y.reshape(-1)[::every], one_by_one, rtol=1e-6, atol=1e-7)


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


def test_sample_options_do_not_apply_to_a_checkpoint():
    with pytest.raises(BadInput, match="heads only shape the sample model") as raised:
        load_model(BERT, heads=4)
    assert raised.value.worded({"heads": "--num-heads", "model": "--model"}).startswith("--num-heads only shape")


def copy_fixture(tmp_path, architecture="bert") -> Path:
    target = tmp_path / architecture
    shutil.copytree(FIXTURES / architecture, target)
    return target


def edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | changes))


def edit_tensors(directory: Path, edit) -> None:
    """Rewrite model.safetensors as edit(dict of arrays) returns it."""
    tensors = load_file(directory / "model.safetensors")
    save_file(edit(tensors), directory / "model.safetensors")


def as_gamma_beta(tensors: dict) -> dict:
    """Old BERT checkpoints name LayerNorm parameters gamma and beta, under a "bert." prefix."""
    renamed = {}
    for name, tensor in tensors.items():
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        renamed["bert." + name] = tensor
    renamed["cls.predictions.bias"] = np.zeros(3, dtype=np.float32)  # a head attncli ignores
    return renamed


def attention_of(directory: Path) -> np.ndarray:
    return commands.run("The cat sat on the mat.", load_model(str(directory))).weights


def test_old_layer_norm_names_and_prefixes_load(tmp_path):
    directory = copy_fixture(tmp_path)
    edit_tensors(directory, as_gamma_beta)
    assert_allclose(attention_of(directory), attention_of(FIXTURES / "bert"))


def test_a_sharded_checkpoint_loads(tmp_path):
    directory = copy_fixture(tmp_path)
    tensors = load_file(directory / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in halves.items():
        save_file({name: tensors[name] for name in members}, directory / shard)
    index = {"weight_map": {name: shard for shard, members in halves.items() for name in members}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "model.safetensors").unlink()
    assert_allclose(attention_of(directory), attention_of(FIXTURES / "bert"))


def test_a_tokenizer_without_its_wrapper_gets_cls_and_sep_back(tmp_path):
    directory = copy_fixture(tmp_path)
    spec = json.loads((directory / "tokenizer.json").read_text())
    spec["post_processor"] = None
    (directory / "tokenizer.json").write_text(json.dumps(spec))
    tokens = commands.tokenize("The cat", load_model(str(directory))).tokens
    assert (tokens[0].text, tokens[-1].text) == ("[CLS]", "[SEP]")


BROKEN = [
    ("no config", lambda d: (d / "config.json").unlink(), "no config.json"),
    ("config not JSON", lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
    ("mamba", lambda d: edit_config(d, model_type="mamba"), "model_type 'mamba' is not supported"),
    ("is_decoder", lambda d: edit_config(d, is_decoder=True), "is_decoder true"),
    ("model_type list", lambda d: edit_config(d, model_type=["bert"]), "is not supported"),
    ("bare config", lambda d: (d / "config.json").write_text('{"model_type": "bert"}'), "missing num_hidden_layers"),
    ("layers as text", lambda d: edit_config(d, num_hidden_layers="2"), "should be an integer"),
    ("eps as text", lambda d: edit_config(d, layer_norm_eps="abc"), "small positive number"),
    ("eps negative", lambda d: edit_config(d, layer_norm_eps=-1.0), "small positive number"),
    ("activation list", lambda d: edit_config(d, hidden_act=["gelu"]), "should be a name"),
    ("activation unknown", lambda d: edit_config(d, hidden_act="swish9"), "not supported"),
    ("zero heads", lambda d: edit_config(d, num_attention_heads=0), "heads = 0"),
    ("no tokenizer", lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
    ("tokenizer garbage", lambda d: (d / "tokenizer.json").write_text("[]"), "not a tokenizer file"),
    ("truncated weights", lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 7), "not a readable safetensors"),
    ("no weights", lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
    (
        "NaN weights",
        lambda d: edit_tensors(
            d, lambda t: t | {"encoder.layer.1.output.dense.weight": t["encoder.layer.1.output.dense.weight"] * np.nan}
        ),
        "holds NaN",
    ),
    (
        "integer embeddings",
        lambda d: edit_tensors(d, lambda t: t | {"embeddings.word_embeddings.weight": np.zeros((120, 16), np.int32)}),
        "not a floating-point type",
    ),
    (
        "shape mismatch",
        lambda d: edit_config(d, intermediate_size=48),
        r"intermediate.dense.weight has shape \(32, 16\)",
    ),
    (
        "pickle only",
        lambda d: [(d / "model.safetensors").unlink(), (d / "pytorch_model.bin").write_bytes(b"never opened")],
        "unpickling runs arbitrary code",
    ),
]


@pytest.mark.parametrize(("damage", "message"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_checkpoint_is_one_line_and_exit_2(cli, tmp_path, damage, message):
    directory = copy_fixture(tmp_path)
    damage(directory)
    run = cli("heatmap", "The cat sat", "--model", str(directory), "--json")
    assert run.code == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert re.search(message, run.stderr)


def test_a_bf16_word_table_with_nan_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "roberta")
    path = directory / "model.safetensors"
    blob = path.read_bytes()
    word = bytes(dict(deserialize(blob))["embeddings.word_embeddings.weight"]["data"])
    path.write_bytes(blob.replace(word, b"\xc0\x7f" * (len(word) // 2)))  # bf16 NaN in every cell
    with pytest.raises(DataError, match="holds NaN"):
        commands.run("The cat", load_model(str(directory)))


def test_tensors_are_read_whole_however_few_bytes_each_read_returns(monkeypatch):
    import os

    def short_preadv(descriptor, buffers, offset, real=os.preadv):
        return real(descriptor, [buffers[0][:7]], offset)  # as Linux does past 2 GiB, only sooner

    expected = load_file(f"{BERT}/model.safetensors")["embeddings.word_embeddings.weight"]
    monkeypatch.setattr(os, "preadv", short_preadv)
    model = load_model(BERT)
    assert_allclose(model.vocabulary.embeddings, expected, rtol=0, atol=0)
    assert commands.run("The cat sat", model).weights.shape[-1] == 5


def test_a_padding_index_beyond_the_position_table_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "roberta")
    edit_config(directory, pad_token_id=1000)
    with pytest.raises(DataError, match="pad_token_id 1000"):
        load_model(str(directory))


def test_a_model_id_resolves_from_the_hugging_face_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--tiny--bert" / "snapshots" / "abc123"
    shutil.copytree(FIXTURES / "bert", snapshot)
    (tmp_path / "hub" / "models--tiny--bert" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--bert" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_model("tiny/bert").info.path == str(snapshot)
    with pytest.raises(DataError, match="not in the local Hugging Face cache"):
        load_model("tiny/absent")


@needs_minilm
def test_minilm_equals_transformers():
    reference = np.load(FIXTURES / "minilm_reference.npz")
    run = commands.run(str(reference["text"]), load_model("minilm"))
    assert [t.id for t in run.tokens] == reference["ids"].tolist()
    assert_as_exact_as_transformers(run.weights, reference["attention"], reference["attention_error"], "attention")
    assert_as_exact_as_transformers(run.trace.output, reference["hidden"], reference["hidden_error"], "hidden state")


@needs_minilm
def test_minilm_has_a_head_that_resolves_it_to_animal():
    run = commands.run(PRONOUN, load_model("minilm"))
    texts = [t.text for t in run.tokens]
    it, animal = texts.index("it"), texts.index("animal")
    assert run.weights[:, :, it, animal].max() > 0.3


def test_explain_json_too_large_to_be_useful_is_refused(cli, monkeypatch):
    monkeypatch.setattr("attncli.results.EXPLAIN_JSON_LIMIT", 1000)
    run = cli("explain", "The cat sat on the mat.", "--model", BERT, "--json")
    assert run.code == 2
    assert run.stdout == ""
    assert "use heatmap --json" in run.stderr


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("def456", "names snapshot def456, which is not in"),  # as transformers offline: never another snapshot
        ("../../../../etc", "not a revision"),
        ("..", "not a revision"),
    ],
)
def test_a_cache_ref_naming_no_snapshot_of_its_own_is_refused(tmp_path, monkeypatch, cli, ref, message):
    repo = tmp_path / "hub" / "models--tiny--bert"
    shutil.copytree(FIXTURES / "bert", repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(ref)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    run = cli("tokenize", "The cat", "--model", "tiny/bert", env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert run.code == 2 and message in run.stderr and len(run.stderr.splitlines()) == 1
