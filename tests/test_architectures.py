"""architectures.py: config.json and tensor names read as transformers reads them, the rest refused by name."""

import json
import math
import re
import shutil

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
    PRONOUN,
    SENTENCE,
    assert_as_exact_as_transformers,
    attention_of,
    attncli,
    copy_fixture,
    edit_config,
    edit_tensors,
    references,
    render_text,
)
from numpy.testing import assert_allclose

from attncli import commands, views
from attncli.architectures import FAMILIES
from attncli.errors import DataError
from attncli.models import load_model


def as_gamma_beta(tensors: dict) -> dict:
    """Old BERT checkpoints name LayerNorm parameters gamma and beta, under a "bert." prefix."""
    renamed = {}
    for name, tensor in tensors.items():
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        renamed["bert." + name] = tensor
    renamed["cls.predictions.bias"] = np.zeros(3, dtype=np.float32)  # a head attncli ignores
    return renamed


def test_old_layer_norm_names_and_prefixes_load(tmp_path):
    directory = copy_fixture(tmp_path)
    edit_tensors(directory, as_gamma_beta)
    assert_allclose(attention_of(directory), attention_of(FIXTURES / "bert"))


BROKEN = [
    ("no config", lambda d: (d / "config.json").unlink(), "no config.json"),
    ("config not JSON", lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
    ("mamba", lambda d: edit_config(d, model_type="mamba"), "model_type 'mamba' is not supported"),
    ("is_decoder", lambda d: edit_config(d, is_decoder=True), "is_decoder true"),
    ("model_type list", lambda d: edit_config(d, model_type=["bert"]), "is not supported"),
    ("bare config", lambda d: (d / "config.json").write_text('{"model_type": "bert"}'), "missing num_hidden_layers"),
    ("layers as text", lambda d: edit_config(d, num_hidden_layers="2"), "should be a 64-bit integer, not .2."),
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


def with_config(tmp_path, name: str, config: dict):
    directory = tmp_path / name
    shutil.copytree(FIXTURES / name, directory)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def assert_equals_transformers(model, name: str) -> None:
    for case in references(name):
        run = commands.run(case.text, model)
        assert [t.id for t in run.tokens] == case.ids.tolist()
        rows = run.weights[:, :, case.rows]
        assert_as_exact_as_transformers(rows, case.attention, case.attention_error, f"{name}: {len(case.ids)} tokens")


@pytest.mark.parametrize("name", [name for name in DECODERS if (FIXTURES / name / "legacy_config.json").exists()])
def test_the_published_form_of_config_json_gives_the_same_model(name, tmp_path):
    legacy = json.loads((FIXTURES / name / "legacy_config.json").read_text())
    assert "rope_parameters" not in legacy and {"rope_theta", "rotary_emb_base"} & legacy.keys()  # GPT-NeoX's name
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, legacy))), name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "rope type 'yarn'"),
        ({"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope type 'dynamic'"),
        ({"rope_parameters": None, "rope_scaling": {"rope_type": "longrope"}}, "rope type 'longrope'"),
        ({"layer_types": ["full_attention", "chunked_attention", "full_attention"]}, "'chunked_attention'"),
        ({"layer_types": ["full_attention"]}, "type of each of the 3 layers"),
        ({"sliding_window": 0}, "sliding_window should be a positive 64-bit integer"),
        ({"num_key_value_heads": 3}, "cannot share 3 key-value heads"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ({"is_causal": False}, "is_causal false"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported for qwen2"),
        ({"sliding_window": None}, "layer_types has sliding_attention layers but no window"),
        ({"use_sliding_window": False}, "layer_types has sliding_attention layers but no window"),
        ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope type 'dynamic'"),  # read first
    ],
)
def test_what_attncli_does_not_compute_is_refused_by_name(tmp_path, change, message):
    config = json.loads((FIXTURES / "qwen2" / "config.json").read_text()) | change
    with pytest.raises(DataError, match=message):
        load_model(str(with_config(tmp_path, "qwen2", config)))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("gptj", {"rotary_dim": None}, "rotary_dim null .* is not supported"),
        ("gptj", {"rotary_dim": 10}, "RoPE turns 10 of a head's 8 dimensions"),
        ("cohere", {"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported for cohere"),
        ("starcoder2", {"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "rope type 'yarn'"),
        ("gpt-neox", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}}, "rope type 'dynamic'"),
        ("gpt-neox", {"use_parallel_residual": "yes"}, "use_parallel_residual should be true or false"),
        ("stablelm", {"qk_layernorm": 1}, "qk_layernorm should be true or false"),
        ("phi", {"partial_rotary_factor": 0, "rope_parameters": None}, "partial_rotary_factor should be a finite"),
    ],
)
def test_what_the_parallel_families_do_not_compute_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    with pytest.raises(DataError, match=f"config.json: {message}"):
        load_model(str(with_config(tmp_path, name, config)))


# Changes to a fixture's config.json that leave transformers' model as it was: a key the family's code
# never reads, or a key left out whose default is the value it had.
AS_BEFORE = [
    ("gpt-neox", "config.json", {"rope_theta": 5.0, "partial_rotary_factor": 1.0}),  # rotary_emb_base, rotary_pct
    ("gpt-neox", "config.json", {"num_key_value_heads": 1, "head_dim": 3}),
    ("gpt-neox", "config.json", {"use_parallel_residual": None, "attention_bias": None}),  # both true
    ("gpt-neox", "legacy_config.json", {"rotary_pct": None}),  # 0.25
    ("gptj", "config.json", {"rope_theta": 5.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "head_dim": 3}),
    ("phi", "legacy_config.json", {"partial_rotary_factor": None}),  # 0.5
    ("stablelm", "legacy_config.json", {"partial_rotary_factor": None, "use_parallel_residual": None}),
    ("stablelm", "config.json", {"head_dim": 3, "qk_layernorm": None}),
    ("cohere", "config.json", {"logit_scale": 3.0}),  # the logits' alone
    ("starcoder2", "config.json", {"use_bias": None, "num_key_value_heads": None}),  # true, 2
]


@pytest.mark.parametrize(("name", "form", "change"), AS_BEFORE, ids=[f"{case[0]} {case[2]}" for case in AS_BEFORE])
def test_a_family_reads_its_own_keys_and_defaults_as_transformers_does(tmp_path, name, form, change):
    config = json.loads((FIXTURES / name / form).read_text()) | change
    assert_equals_transformers(
        load_model(str(with_config(tmp_path, name, {k: v for k, v in config.items() if v is not None}))), name
    )


def test_gemma2_with_no_window_is_refused_as_transformers_refuses_it(tmp_path):
    config = json.loads((FIXTURES / "gemma2" / "legacy_config.json").read_text()) | {"sliding_window": None}
    with pytest.raises(DataError, match="sliding_window is null, but the even layers slide"):
        load_model(str(with_config(tmp_path, "gemma2", config)))


def test_a_null_key_value_head_count_is_one_per_query_head():
    config = json.loads((FIXTURES / "mistral" / "config.json").read_text()) | {"num_key_value_heads": None}
    fields = FAMILIES["mistral"].read_config(config, config["num_hidden_layers"])
    assert fields["kv_heads"] == config["num_attention_heads"]  # not Mistral's default of 8


@pytest.mark.parametrize("layers", [0, -3])
def test_a_layer_count_below_one_is_refused_before_anything_is_made_per_layer(tmp_path, layers):
    config = json.loads((FIXTURES / "qwen2" / "config.json").read_text()) | {"num_hidden_layers": layers}
    with pytest.raises(DataError, match=f"layers = {layers}; it must be positive"):
        load_model(str(with_config(tmp_path, "qwen2", config)))


def test_qwen_without_use_sliding_window_sees_every_key(tmp_path):
    config = json.loads((FIXTURES / "qwen2" / "legacy_config.json").read_text()) | {"use_sliding_window": False}
    info = load_model(str(with_config(tmp_path, "qwen2", config))).info
    assert info.windows is None


def test_a_family_reads_only_the_settings_transformers_reads_for_it(tmp_path):
    gemma = json.loads((FIXTURES / "gemma" / "config.json").read_text())
    gemma.pop("hidden_act")  # Gemma's default is the tanh GELU, not SiLU
    assert_equals_transformers(load_model(str(with_config(tmp_path, "gemma", gemma))), "gemma")
    qwen = load_model(str(FIXTURES / "qwen2"))  # biases on q, k and v, none on W_O
    text = render_text(views.view(commands.explain(PRONOUN, qwen)), width=200)
    assert "q = x·W_Q + b" in text and "multiplied by W_O (16 × 16)." in text
    mistral = json.loads((FIXTURES / "mistral" / "config.json").read_text()) | {"attention_bias": True}
    assert_equals_transformers(load_model(str(with_config(tmp_path, "mistral", mistral))), "mistral")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("architecture", "key"), [("bert", "num_hidden_layers"), ("gpt2", "n_layer"), ("llama", "num_hidden_layers")]
)
def test_a_config_naming_more_layers_than_the_tensors_hold_is_refused_as_damage(tmp_path, architecture, key):
    directory = copy_fixture(tmp_path, architecture)
    config = json.loads((directory / "config.json").read_text())
    held, config[key] = config[key], 10**9
    (directory / "config.json").write_text(json.dumps(config))
    run = attncli("explain", SENTENCE, "--model", str(directory), text=True)
    assert run.returncode == 2
    assert run.stderr == f"attncli: error: config.json gives 1,000,000,000 layers, but model.safetensors holds {held}\n"


def rope_of(name: str, **changes) -> dict:
    """Fixture `name`'s config.json with `changes` made to its rope_parameters."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    config["rope_parameters"] = config["rope_parameters"] | changes
    return config


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("llama", rope_of("llama", factor="abc"), "factor should be a finite positive number, not 'abc'"),
        ("llama", rope_of("llama", factor=[2]), r"factor should be a finite positive number, not \[2\]"),
        ("llama", rope_of("llama", low_freq_factor="1"), "low_freq_factor should be a finite positive number"),
        ("llama", rope_of("llama", low_freq_factor=math.inf), "low_freq_factor .* not Infinity"),
        ("llama", rope_of("llama", low_freq_factor=0), "low_freq_factor should be a finite positive number, not 0"),
        ("llama", rope_of("llama", high_freq_factor=[4]), "high_freq_factor should be a finite positive number"),
        ("llama", rope_of("llama", original_max_position_embeddings="16"), "original_max_position_embeddings .* '16'"),
        ("llama", rope_of("llama", original_max_position_embeddings=0), "original_max_position_embeddings = 0"),
        ("llama", rope_of("llama", rope_theta=math.nan), "rope_theta should be a finite positive number, not NaN"),
        ("llama", rope_of("llama", rope_theta=math.inf), "rope_theta .* not Infinity"),
        ("phi3", rope_of("phi3", partial_rotary_factor=1.5), "partial_rotary_factor .* at most 1, not 1.5"),
        ("mistral", {"sliding_window": 2**63}, "sliding_window should be a positive 64-bit integer"),
        ("qwen2", {"layer_types": [["full_attention"]] * 3}, r'layer type \["full_attention"\] is not supported'),
        ("gemma2", {"attn_logit_softcapping": math.inf}, "attn_logit_softcapping .* not Infinity"),
        ("llama", {"head_dim": 10**30}, "head_dim should be a 64-bit integer, not 1000000000000000000000000000000"),
        ("bert", {"max_position_embeddings": 10**30}, "max_position_embeddings should be a 64-bit integer"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, name, config, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | config
    with pytest.raises(DataError, match=f"config.json: {message}"):
        load_model(str(with_config(tmp_path, name, config)))


@pytest.mark.parametrize(
    ("change", "tensor"),
    [
        ({"head_dim": 10**9}, r"q_proj.weight has shape \(256, 16\), but config.json implies \(4000000000, 16\)"),
        ({"num_attention_heads": 10**9}, r"q_proj.weight has shape \(256, 16\)"),
        ({"intermediate_size": 10**9}, r"gate_proj.weight has shape \(32, 16\)"),
    ],
)
def test_every_shape_is_checked_against_the_tensors_before_the_config_sizes_anything(tmp_path, change, tensor):
    """A config.json whose sizes are not the tensors' is refused when the model loads, by the first
    tensor that disagrees: not after RoPE tables or attention stacks of its sizes were made."""
    config = json.loads((FIXTURES / "llama" / "config.json").read_text()) | change
    with pytest.raises(DataError, match=f"model.layers.0.self_attn.{tensor}|model.layers.0.mlp.{tensor}"):
        load_model(str(with_config(tmp_path, "llama", config)))
