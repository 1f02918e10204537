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
    UNROTATED,
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
    assert legacy != json.loads((FIXTURES / name / "config.json").read_text()) and "rope_parameters" not in legacy
    assert "rope_theta" in legacy or name in UNROTATED
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


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("bloom", {"apply_residual_connection_post_layernorm": True}, "apply_residual_connection_post_layernorm true"),
        ("opt", {"layer_norm_elementwise_affine": False}, "layer_norm_elementwise_affine false is not supported"),
        ("falcon", {"parallel_attn": False}, "parallel_attn false is not supported with new_decoder_architecture"),
        ("falcon", {"num_ln_in_parallel_attn": 3}, "num_ln_in_parallel_attn 3 is not supported; attncli reads 1 or 2"),
        ("falcon-multi-query", {"num_ln_in_parallel_attn": 2}, "num_ln_in_parallel_attn 2 is not supported without"),
        ("falcon-alibi", {"num_kv_heads": 1}, "num_kv_heads is not supported without new_decoder_architecture"),
        ("gpt-neo", {"attention_layers": ["global", "sparse", "global"]}, "attention type 'sparse' is not supported"),
        ("gpt-neo", {"attention_layers": ["global"]}, "attention_layers .* the kind of each of the 3 layers"),
        ("gpt-neo", {"attention_layers": None, "attention_types": [[["global"], 2]]}, "attention_layers .* 3 layers"),
        ("gpt-neo", {"attention_layers": None, "attention_types": [[["local"], 10**12]]}, "attention_layers .* 3"),
        ("gpt-neo", {"attention_layers": None, "attention_types": [["global", 3]]}, r"attention_types should be \["),
        ("gpt-neo", {"window_size": 0}, "window_size = 0; it must be positive"),
    ],
)
def test_what_the_new_families_do_not_compute_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    with pytest.raises(DataError, match=f"config.json: {message}"):
        load_model(str(with_config(tmp_path, name, config)))


def fields_of(name: str, **changes) -> dict:
    """The TransformerConfig fields attncli reads from fixture `name`'s config.json with `changes`."""
    config = json.loads((FIXTURES / name / "config.json").read_text()) | changes
    family = FAMILIES[config["model_type"]]
    layers = next(config[key] for key in family.layer_count if config.get(key) is not None)
    return family.read_config(config, layers)


def test_names_transformers_reads_first_win_as_there():
    # BloomConfig's attribute_map reads num_attention_heads and num_hidden_layers into n_head and n_layer, and its
    # n_embed wins over hidden_size; GPTNeoConfig's reads num_attention_heads into num_heads
    bloom = fields_of("bloom", num_attention_heads=4, n_head=3, n_embed=16, hidden_size=12)
    assert (bloom["heads"], bloom["d_model"]) == (4, 16)
    assert FAMILIES["bloom"].layer_count == ("num_hidden_layers", "n_layer")
    assert fields_of("gpt-neo", num_attention_heads=2)["heads"] == 2
    # GPTNeoConfig keeps config.json's attention_layers over what attention_types would make
    neo = fields_of("gpt-neo", attention_types=[[["local"], 3]])
    assert [layer.kind for layer in neo["layer_attention"]] == ["global", "local", "global"]


def test_falcons_architectures_decide_its_key_value_heads_and_blocks():
    new = fields_of("falcon", num_key_value_heads=4)  # written by transformers, read by nothing
    assert (new["kv_heads"], new["parallel"], new["shared_norm"]) == (2, True, False)
    assert fields_of("falcon", num_ln_in_parallel_attn=1)["shared_norm"]
    old = fields_of("falcon-multi-query")
    assert (old["kv_heads"], old["parallel"], old["shared_norm"], old["alibi"]) == (1, True, True, None)
    rw = fields_of("falcon-alibi")
    assert (rw["kv_heads"], rw["parallel"], rw["alibi"].bfloat16, rw["alibi"].scaled) == (3, False, True, True)
    assert fields_of("falcon-alibi", parallel_attn=True)["shared_norm"]  # the old parallel block: one norm


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("bloom", {"head_dim": 2, "intermediate_size": 5, "num_key_value_heads": 1, "max_position_embeddings": 3}),
        ("opt", {"rms_norm_eps": 0.5, "head_dim": 2, "attention_bias": False, "hidden_act": "gelu"}),
        ("gpt-neo", {"attention_bias": True, "mlp_bias": False, "sliding_window": 2, "rope_theta": 10.0}),
        ("falcon-alibi", {"rope_parameters": {"rope_type": "yarn"}, "num_key_value_heads": 7}),
    ],
)
def test_the_new_families_read_only_the_settings_transformers_reads_for_them(tmp_path, name, ignored):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | ignored
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, config))), name)


def test_opts_final_norm_is_dropped_where_its_config_says_so(tmp_path):
    config = json.loads((FIXTURES / "opt" / "config.json").read_text()) | {"_remove_final_layer_norm": True}
    model = load_model(str(with_config(tmp_path, "opt", config)))
    trace = commands.run(SENTENCE, model, steps=True).trace
    assert_allclose(trace.output, trace.layer_outputs[-1])
    assert load_model(str(FIXTURES / "opt")).weights.final_norm is not None
    assert load_model(str(FIXTURES / "opt-post-norm")).weights.final_norm is None  # post-norm: none at all
