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
from attncli.checkpoint import TensorFile
from attncli.errors import BadInput, DataError
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
    settings = legacy.get("text_config", legacy)  # a multimodal checkpoint's text model's
    assert legacy != json.loads((FIXTURES / name / "config.json").read_text()) and "rope_parameters" not in settings
    assert {"rope_theta", "rope_scaling", "rotary_emb_base"} & settings.keys() or name in UNROTATED
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, legacy))), name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_parameters": {"rope_type": "proportional", "rope_theta": 1e4}}, "rope type 'proportional'"),
        ({"rope_parameters": None, "rope_scaling": {"type": "mrope", "mrope_section": [1]}}, "rope type 'mrope'"),
        ({"rope_parameters": None, "rope_scaling": {"rope_type": "su"}}, "rope type 'su'"),
        ({"layer_types": ["full_attention", "chunked_attention", "full_attention"]}, "'chunked_attention'"),
        ({"layer_types": ["full_attention"]}, "type of each of the 3 layers"),
        ({"sliding_window": 0}, "sliding_window should be a positive 64-bit integer"),
        ({"num_key_value_heads": 3}, "cannot share 3 key-value heads"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ({"is_causal": False}, "is_causal false"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported for qwen2"),
        ({"sliding_window": None}, "layer_types has sliding_attention layers but no window"),
        ({"use_sliding_window": False}, "layer_types has sliding_attention layers but no window"),
        ({"rope_scaling": {"rope_type": "proportional"}}, "rope type 'proportional'"),  # read first
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
        ("starcoder2", {"rope_parameters": {"rope_type": "mrope"}}, "rope type 'mrope'"),
        ("gpt-neox", {"rope_parameters": {"rope_type": "proportional"}}, "rope type 'proportional'"),
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
    config = config_of("mistral") | {"num_key_value_heads": None}  # null, not left out
    assert read(config)["kv_heads"] == config["num_attention_heads"]  # not Mistral's default of 8


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


def config_of(name: str, legacy: bool = False, **changes) -> dict:
    """Fixture `name`'s config.json (or legacy_config.json) with `changes`: None drops a key."""
    config = json.loads((FIXTURES / name / ("legacy_config.json" if legacy else "config.json")).read_text())
    config |= changes
    return {key: value for key, value in config.items() if value is not None}


def read(config: dict) -> dict:
    """The TransformerConfig fields read_config reads from config.json `config`: its family's settings
    (a multimodal checkpoint's text model, the family's defaults), with as many layers as they give."""
    family = FAMILIES[config["model_type"]]
    settings = config if family.settings is None else family.settings(config)
    layers = next(settings[key] for key in family.layer_count if settings.get(key) is not None)
    return family.read_config(settings, layers)


def fields_of(name: str, legacy: bool = False, **changes) -> dict:
    """The TransformerConfig fields read from fixture `name`'s config.json (or legacy_config.json) with
    `changes` (None drops a key)."""
    return read(config_of(name, legacy, **changes))


@pytest.mark.parametrize("kind", ["su", "yarn", "longrope"])
def test_phi3_reads_su_and_yarn_as_longrope_as_transformers_does(tmp_path, kind):
    config = config_of("phi3-longrope", legacy=True)
    config["rope_scaling"] = {key: value for key, value in config["rope_scaling"].items() if key != "rope_type"}
    config["rope_scaling"]["type"] = kind
    assert_equals_transformers(load_model(str(with_config(tmp_path, "phi3-longrope", config))), "phi3-longrope")


@pytest.mark.parametrize(("kind", "shown"), [("linear", "'linear'"), (["su"], r'\["su"\]')])
def test_phi3_refuses_the_rope_types_its_configuration_refuses(tmp_path, kind, shown):
    config = config_of("phi3", legacy=True, rope_scaling={"type": kind, "factor": 2.0})
    with pytest.raises(DataError, match=f"rope type {shown} is not supported for phi3, which reads default, longrope"):
        load_model(str(with_config(tmp_path, "phi3", config)))


def test_the_original_context_is_read_where_transformers_reads_it():
    def context(name: str, **changes) -> int:
        return fields_of(name, **changes)["layer_attention"][0].rope.original_max_positions

    nested = config_of("llama-yarn")["rope_parameters"]
    assert context("llama-yarn") == 128
    assert context("llama-yarn", original_max_position_embeddings=100) == 100  # the top level wins
    assert context("llama-yarn", rope_parameters=nested | {"original_max_position_embeddings": None}) == 512
    # Phi-3's configuration always has one at the top level, 4096 where config.json leaves it out.
    assert context("phi3-longrope", original_max_position_embeddings=None) == 4096


def test_yarn_longrope_and_dynamic_read_their_settings_as_transformers_does():
    yarn = fields_of("qwen2-yarn")["layer_attention"][0].rope
    assert (yarn.factor, yarn.beta_fast, yarn.beta_slow, yarn.truncate) == (2.0, 16.0, 2.0, False)
    assert yarn.attention_factor == (0.1 * math.log(2) + 1) / (0.05 * math.log(2) + 1)  # mscale over mscale_all_dim
    nested = config_of("qwen2-yarn")["rope_parameters"]
    given = nested | {"attention_factor": 1.5, "beta_fast": 0, "beta_slow": None}
    yarn = fields_of("qwen2-yarn", rope_parameters=given)["layer_attention"][0].rope
    assert (yarn.attention_factor, yarn.beta_fast, yarn.beta_slow) == (1.5, 32.0, 1.0)  # 0 and null: the defaults
    yarn = fields_of("qwen2-yarn", rope_parameters=nested | {"factor": None})
    assert yarn["layer_attention"][0].rope.factor == 512 / 64  # null: max_position_embeddings over the original
    longrope = fields_of("phi3-longrope")["layer_attention"][0].rope
    assert longrope.attention_factor == math.sqrt(1 + math.log(512 / 128) / math.log(128))
    assert longrope.short_factor[:3] == (1.0, 1.01, 1.05) and len(longrope.long_factor) == 6
    dynamic = fields_of("llama-dynamic", legacy=True)
    assert dynamic["layer_attention"][0].rope.original_max_positions == 256
    assert dynamic["max_positions"] == 512  # made for texts up to factor times max_position_embeddings


def test_smollm3_reads_its_layers_without_rope_and_its_default_theta():
    def turned(**changes) -> list[bool]:
        return [layer.rope is not None for layer in fields_of("smollm3", **changes)["layer_attention"]]

    assert turned() == turned(no_rope_layers=None, layer_types=None) == [True, False, True, False]
    assert turned(no_rope_layers=None, no_rope_layer_interval=None) == [True, True, True, False]  # every 4th
    assert turned(no_rope_layers=[0, 1, 1, 1, 0]) == [False, True, True, True]  # longer than the layers: the first
    # Without layer_types, the layers without RoPE slide where use_sliding_window says so.
    windows = [layer.window for layer in fields_of("smollm3", legacy=True)["layer_attention"]]
    assert windows == [None, 5, None, 5]
    legacy = config_of("smollm3", legacy=True, use_sliding_window=False)
    assert {layer.window for layer in read(legacy)["layer_attention"]} == {None}
    theta = fields_of("smollm3", legacy=True, rope_theta=None)["layer_attention"][0].rope.theta
    assert theta == 2e6  # SmolLM3's default, not 10⁴


def test_ministral_without_layer_types_slides_everywhere_as_its_configuration_says():
    windows = [layer.window for layer in fields_of("ministral", layer_types=None)["layer_attention"]]
    assert windows == [5, 5, 5]
    unwindowed = config_of("ministral", layer_types=None, sliding_window=None)
    assert [layer.window for layer in read(unwindowed)["layer_attention"]] == [4096] * 3  # its default


def test_granites_multipliers_are_read_and_logits_scaling_changes_nothing_it_shows(tmp_path):
    fields = fields_of("granite")
    assert (fields["embedding_scale"], fields["attention_scale"], fields["residual_scale"]) == (6.0, 0.3, 0.4)
    plain = fields_of("granite", embedding_multiplier=None, attention_multiplier=None)
    assert (plain["embedding_scale"], plain["attention_scale"]) == (1.0, 1.0)  # not 1/√d_k: Granite's default
    assert fields_of("llama", residual_multiplier=0.5)["residual_scale"] is None  # Llama reads none
    # logits_scaling divides the logits only, after the last hidden state
    config = config_of("granite", logits_scaling=100.0)
    assert_equals_transformers(load_model(str(with_config(tmp_path, "granite", config))), "granite")


def sparse_layers(name: str, **changes) -> tuple[bool, ...] | None:
    """Which layers of fixture `name` are mixtures of experts, its config.json changed by `changes`."""
    mixture = fields_of(name, **changes)["moe"]
    return None if mixture is None else mixture.sparse


def test_mlp_only_layers_and_decoder_sparse_step_make_layers_dense_as_transformers_does():
    assert sparse_layers("qwen2-moe") == (True, True, False, True)  # mlp_only_layers [2]
    assert sparse_layers("qwen2-moe", mlp_only_layers=[], decoder_sparse_step=2) == (False, True, False, True)
    assert sparse_layers("qwen2-moe", mlp_only_layers=None) == (True,) * 4
    assert sparse_layers("qwen3-moe", mlp_only_layers=[0, 9], decoder_sparse_step=1) == (False, True, True)
    assert sparse_layers("qwen2-moe", num_experts=0) is None  # every layer dense, a Qwen 2 in all but name
    assert sparse_layers("mixtral", mlp_only_layers=[0], decoder_sparse_step=2) == (True,) * 3  # Mixtral reads neither


def test_each_moe_family_reads_its_own_keys_with_its_own_defaults(tmp_path):
    mixtral = json.loads((FIXTURES / "mixtral" / "config.json").read_text())
    mixtral.pop("rope_parameters")  # Mixtral's RoPE base, left out, is 10^6 (the fixture's), not 10^4
    mixtral |= {"norm_topk_prob": False, "router_jitter_noise": 0.5}  # read only by Qwen; only in training
    assert_equals_transformers(load_model(str(with_config(tmp_path, "mixtral", mixtral))), "mixtral")
    # Both keys name the number of experts: transformers takes Qwen 3 MoE's num_local_experts, Mixtral's num_experts
    fields = fields_of("qwen3-moe", num_experts=5)
    assert fields["moe"].experts == 8 and fields["moe"].renormalize
    assert read(mixtral | {"num_experts": 5})["moe"].experts == 5
    assert fields_of("qwen2-moe")["attention_bias"]  # qkv_bias, true when left out
    assert not fields_of("qwen2-moe", qkv_bias=False)["attention_bias"]
    assert not fields_of("qwen2-moe", attention_bias=True)["output_bias"]


def test_qwen2_moe_slides_its_even_layers_below_max_window_layers():
    fields = fields_of("qwen2-moe", legacy=True)
    assert [layer.window for layer in fields["layer_attention"]] == [4, None, 4, None]  # max_window_layers 3
    fields = fields_of("qwen2-moe", legacy=True, max_window_layers=28)
    assert [layer.window for layer in fields["layer_attention"]] == [4, None, 4, None]
    fields = fields_of("qwen2-moe", legacy=True, use_sliding_window=False)
    assert [layer.window for layer in fields["layer_attention"]] == [None] * 4


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("gemma3", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}, "one object of RoPE settings"),
        ("gemma3", {"rope_parameters": {"full_attention": 3}}, "RoPE settings of full_attention layers"),
        ("gemma3", {"rope_parameters": {"full_attention": {"rope_type": "mrope"}}}, "rope type 'mrope'"),
        ("gemma3", {"layer_types": None, "sliding_window": None}, "sliding_window is null, but sliding_window_pattern"),
        ("gemma3", {"layer_types": None, "sliding_window_pattern": 0}, "sliding_window_pattern = 0"),
        ("gemma3", {"layer_types": ["full_attention", "chunked_attention"] * 2}, "'chunked_attention'"),
        ("gemma3", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ("gemma3", {"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported"),
        ("olmo", {"clip_qkv": 0}, "clip_qkv should be a finite positive number, not 0"),
        ("olmo", {"clip_qkv": "8"}, "clip_qkv should be a finite positive number"),
    ],
)
def test_what_gemma3_and_olmo_do_not_compute_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    with pytest.raises(DataError, match=f"config.json: .*{message}"):
        load_model(str(with_config(tmp_path, name, config)))


@pytest.mark.parametrize("text_config", [None, "gemma3_text", ["hidden_size"]])
def test_a_multimodal_gemma3_config_without_a_text_model_is_refused(tmp_path, text_config):
    config = json.loads((FIXTURES / "gemma3-multimodal" / "config.json").read_text()) | {"text_config": text_config}
    if text_config is None:
        del config["text_config"]
    with pytest.raises(DataError, match="a gemma3 checkpoint without text_config is not supported"):
        load_model(str(with_config(tmp_path, "gemma3-multimodal", config)))


def test_a_published_gemma3_text_config_gets_its_configurations_defaults():
    """gemma-3-4b-it's text_config gives its sizes, rope_scaling and sliding_window; the rest is
    Gemma3TextConfig's: 8 heads of 256 dimensions sharing 4 key-value heads, bases of 10⁶ and 10⁴, a
    query scale of 256^-½, a window of 4096 and every 6th layer global where the config says nothing."""
    config = {
        "model_type": "gemma3",
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34},
        "vision_config": {"model_type": "siglip_vision_model"},
    }
    fields = read(config)
    assert (fields["heads"], fields["head_dim"], fields["kv_heads"]) == (8, 256, 4)
    assert (fields["vocab_size"], fields["max_positions"], fields["attention_scale"]) == (262_208, 131_072, 1 / 16)
    layers = fields["layer_attention"]
    assert [layer.window for layer in layers] == [None if i % 6 == 5 else 4096 for i in range(34)]
    assert {layer.rope.theta for layer in layers if layer.window} == {10_000.0}
    assert {layer.rope.theta for layer in layers if not layer.window} == {1_000_000.0}
    assert fields["soft_cap"] is None and fields["eps"] == 1e-6 and fields["activation"] == "gelu_pytorch_tanh"


def test_gemma3_turns_its_sliding_and_global_layers_by_ropes_of_their_own_in_both_config_forms():
    for legacy in (False, True):
        layers = fields_of("gemma3", legacy)["layer_attention"]
        assert [layer.window for layer in layers] == [4, 4, None, 4]
        local, scaled = layers[0].rope, layers[2].rope
        assert (local.theta, local.scaling) == (100.0, "default")
        assert (scaled.theta, scaled.scaling, scaled.factor) == (10000.0, "linear", 8.0)


def test_an_old_style_rope_scaling_type_leaves_gemma3_unscaled_as_transformers_reads_it():
    """Gemma3TextConfig starts the global layers' settings from rope_type default, which a "type" key in
    rope_scaling does not replace: transformers runs them unscaled (and warns of an unrecognised factor)."""
    layers = fields_of("gemma3", legacy=True, rope_scaling={"type": "linear", "factor": 8.0})["layer_attention"]
    assert layers[2].rope.scaling == "default" and layers[2].rope.theta == 10000.0


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
        ("gemma3", {"attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.5}),  # no cap reaches the attention
        ("olmo", {"rms_norm_eps": 0.5}),  # OLMo's LayerNorm has its epsilon in the code
        ("olmo2", {"clip_qkv": 0.01}),  # only OLMo's attention clamps
        # OLMoE's mask never slides, and its eager and sdpa attention drop the window it passes on
        ("olmoe", {"sliding_window": 4, "use_sliding_window": True, "layer_types": ["sliding_attention"] * 3}),
        ("olmoe", {"router_aux_loss_coef": 5.0, "output_router_logits": True}),  # training's loss only
    ],
)
def test_what_transformers_ignores_for_a_family_attncli_ignores_too(tmp_path, name, ignored):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | ignored
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, config))), name)


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


def test_a_multimodal_gemma3_reads_its_text_model_under_either_prefix(tmp_path):
    """transformers writes the text model's tensors under language_model.model., as gemma-3-4b-it publishes
    them, and names them model.language_model. in memory; the vision tower's are never read."""
    directory = copy_fixture(tmp_path, "gemma3-multimodal")

    def renamed(tensors: dict) -> dict:
        assert any(name.startswith("language_model.model.layers.") for name in tensors)
        kept = {name: tensor for name, tensor in tensors.items() if name.startswith("language_model.")}
        return {name.replace("language_model.model.", "model.language_model.", 1): t for name, t in kept.items()}

    edit_tensors(directory, renamed)
    assert_equals_transformers(load_model(str(directory)), "gemma3-multimodal")


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("llama-yarn", {"factor": "4"}, "factor should be a finite positive number, not '4'"),
        ("llama-yarn", {"beta_fast": "32"}, "beta_fast should be a finite positive number"),
        ("llama-yarn", {"beta_slow": -1}, "beta_slow should be a finite positive number, not -1"),
        ("llama-yarn", {"truncate": "no"}, "truncate should be true or false, not 'no'"),
        ("llama-yarn", {"attention_factor": 0}, "attention_factor should be a finite positive number, not 0"),
        ("llama-yarn", {"mscale": "1", "mscale_all_dim": 1}, "mscale should be a finite positive number"),
        ("llama-yarn", {"original_max_position_embeddings": 0}, "original_max_position_embeddings = 0; yarn RoPE"),
        ("llama-yarn", {"rope_theta": 1}, "yarn RoPE needs a rope_theta other than 1"),
        ("llama-dynamic", {"factor": None}, "missing factor"),
        ("llama-dynamic", {"factor": math.nan}, "factor should be a finite positive number, not NaN"),
        ("phi3-longrope", {"short_factor": [1.0] * 5}, "short_factor should list 6 positive numbers"),
        ("phi3-longrope", {"long_factor": [1, 2, 3, 4, 5, 0]}, r"long_factor should list 6 .*, not \[1, 2"),
        ("phi3-longrope", {"long_factor": None}, "long_factor should list 6 positive numbers, .* not null"),
        ("phi3-longrope", {"attention_factor": "big"}, "attention_factor should be a finite positive number"),
    ],
)
def test_a_scaled_ropes_setting_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, name, change, message):
    config = config_of(name)
    config["rope_parameters"] = config["rope_parameters"] | change
    with pytest.raises(DataError, match=f"config.json: {message}"):
        load_model(str(with_config(tmp_path, name, config)))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("llama-dynamic", {"head_dim": 2}, "dynamic RoPE needs more than 2 rotary dimensions"),
        ("phi3-longrope", {"original_max_position_embeddings": 1}, "original_max_position_embeddings = 1; longrope"),
        ("smollm3", {"no_rope_layers": [1, 2, 1, 0]}, "no_rope_layers should give each of the 4 layers a 1"),
        ("smollm3", {"no_rope_layers": [1, 0, 1]}, "no_rope_layers should give each of the 4 layers"),
        ("smollm3", {"no_rope_layers": None, "no_rope_layer_interval": 0}, "no_rope_layer_interval = 0"),
        ("granite", {"attention_multiplier": "0.3"}, "attention_multiplier should be a finite positive number"),
        ("granite", {"residual_multiplier": 0}, "residual_multiplier should be a finite positive number, not 0"),
        ("granite", {"embedding_multiplier": math.inf}, "embedding_multiplier .* not Infinity"),
    ],
)
def test_the_new_settings_of_the_wrong_type_or_range_are_refused_by_name(tmp_path, name, change, message):
    with pytest.raises(DataError, match=f"config.json: {message}"):
        load_model(str(with_config(tmp_path, name, config_of(name) | change)))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("mixtral", {"num_experts_per_tok": 5}, "num_experts_per_tok = 5; a token goes to 1 to 4 experts"),
        ("qwen3-moe", {"num_experts_per_tok": 0}, "num_experts_per_tok = 0"),
        ("qwen2-moe", {"decoder_sparse_step": 0}, "decoder_sparse_step = 0; it must be positive"),
        ("qwen2-moe", {"mlp_only_layers": "2"}, "mlp_only_layers should list layer numbers, not '2'"),
        ("qwen2-moe", {"mlp_only_layers": [True]}, "mlp_only_layers should list layer numbers"),
        ("qwen2-moe", {"norm_topk_prob": "yes"}, "norm_topk_prob should be true or false"),
        ("qwen2-moe", {"qkv_bias": 1}, "qkv_bias should be true or false"),
        ("mixtral", {"num_local_experts": 6}, "missing tensor model.layers.0.block_sparse_moe.experts.4.w1.weight"),
        ("mixtral", {"num_local_experts": 3}, r"block_sparse_moe.gate.weight has shape \(4, 16\)"),
        ("mixtral-fused", {"num_local_experts": 6}, r"mlp.experts.gate_up_proj has shape \(4, 64, 16\)"),
        ("qwen2-moe", {"moe_intermediate_size": 20}, r"experts.0.gate_proj.weight has shape \(24, 16\)"),
        ("qwen2-moe", {"shared_expert_intermediate_size": 24}, r"shared_expert.gate_proj.weight has shape \(20, 16\)"),
        ("qwen2-moe-fused", {"moe_intermediate_size": 20}, r"mlp.experts.gate_up_proj has shape \(4, 48, 16\)"),
        ("qwen3-moe", {"mlp_only_layers": [1]}, "missing tensor model.layers.1.mlp.gate_proj.weight"),
        ("olmoe", {"num_experts_per_tok": 7}, "num_experts_per_tok = 7; a token goes to 1 to 6 experts"),
        ("olmoe", {"num_experts": 7}, "missing tensor model.layers.0.mlp.experts.6.gate_proj.weight"),
        ("olmoe", {"num_local_experts": 5}, r"mlp.gate.weight has shape \(6, 16\)"),  # read over num_experts
        ("olmoe", {"intermediate_size": 24}, r"experts.0.gate_proj.weight has shape \(16, 16\)"),
        ("olmoe", {"norm_topk_prob": 1}, "norm_topk_prob should be true or false"),
        ("olmoe", {"clip_qkv": -2}, "clip_qkv should be a finite positive number, not -2"),
    ],
)
def test_a_mixture_the_tensors_or_transformers_would_not_run_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    with pytest.raises(DataError, match=message):
        load_model(str(with_config(tmp_path, name, config)))


def test_opts_final_norm_is_dropped_where_its_config_says_so(tmp_path):
    config = json.loads((FIXTURES / "opt" / "config.json").read_text()) | {"_remove_final_layer_norm": True}
    model = load_model(str(with_config(tmp_path, "opt", config)))
    trace = commands.run(SENTENCE, model, steps=True).trace
    assert_allclose(trace.output, trace.layer_outputs[-1])
    assert load_model(str(FIXTURES / "opt")).weights.final_norm is not None
    assert load_model(str(FIXTURES / "opt-post-norm")).weights.final_norm is None  # post-norm: none at all


def test_olmoe_reads_its_published_config_as_transformers_does():
    """OLMoE-1B-7B's config.json as published: 16 heads of 128, 64 experts 1024 wide, 8 a token, their
    probabilities not renormalised, no clip_qkv; q and k normed over their whole projections, before
    each sublayer's norm as Llama's; rms_norm_eps and rope_theta at the top level."""
    config = {
        "model_type": "olmoe",
        "hidden_size": 2048,
        "intermediate_size": 1024,
        "num_hidden_layers": 16,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "num_experts": 64,
        "num_experts_per_tok": 8,
        "norm_topk_prob": False,
        "clip_qkv": None,
        "attention_bias": False,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "vocab_size": 50304,
    }
    fields = read(config)
    assert (fields["heads"], fields["head_dim"], fields["kv_heads"], fields["eps"]) == (16, 128, 16, 1e-5)
    assert fields["whole_qk_norm"] and not fields["qk_norm"] and fields["clip_qkv"] is None
    assert not fields["sandwich"] and fields["input_norms"] and fields["norm"] == "rms"
    assert {layer.window for layer in fields["layer_attention"]} == {None}
    assert {layer.rope.theta for layer in fields["layer_attention"]} == {10000.0}
    moe = fields["moe"]
    assert (moe.experts, moe.per_token, moe.d_expert, moe.renormalize) == (64, 8, 1024, False)
    assert moe.sparse == (True,) * 16 and moe.d_shared is None
    # Left out, as OlmoeConfig fills them in: 64 experts, 8 a token, ε 1e-5, no renormalising
    left_out = ("num_experts", "num_experts_per_tok", "norm_topk_prob", "rms_norm_eps", "num_key_value_heads")
    fields = read({key: value for key, value in config.items() if key not in left_out})
    assert (fields["moe"].experts, fields["moe"].per_token, fields["moe"].renormalize) == (64, 8, False)
    assert (fields["eps"], fields["kv_heads"]) == (1e-5, 16)
    # As read with them: the top k renormalised, biases on all four projections, num_local_experts over num_experts
    fields = read(config | {"norm_topk_prob": True, "attention_bias": True, "num_local_experts": 32})
    assert fields["moe"].renormalize and fields["attention_bias"] and fields["output_bias"]
    assert fields["moe"].experts == 32


def test_olmoe_with_a_head_dim_its_norms_do_not_span_is_refused(tmp_path):
    """OLMoE's q and k norms span hidden_size and (hidden_size / heads) · key-value heads whatever head_dim
    says: with another head_dim, transformers builds the model but cannot run it, and attncli refuses it."""
    from safetensors.numpy import save_file

    directory = copy_fixture(tmp_path, "olmoe")
    edit_config(directory, head_dim=8)  # 4 heads of 8: q 32 numbers, k and v 16; the norms stay 16 and 8
    stored = TensorFile.open(directory)  # bf16, which safetensors' numpy reader cannot read
    tensors = {name: stored.get(name) for name in stored.names()}
    shapes = {"q_proj": (32, 16), "k_proj": (16, 16), "v_proj": (16, 16), "o_proj": (16, 32)}
    for name in tensors:
        part = name.split(".")[-2]
        if part in shapes:
            tensors[name] = np.zeros(shapes[part], np.float32)
    save_file(tensors, directory / "model.safetensors")
    with pytest.raises(DataError, match=r"q_norm.weight has shape \(16,\), but config.json implies \(32,\)"):
        load_model(str(directory))


def test_gpt_oss_reads_its_keys_with_its_own_defaults(tmp_path):
    # Left out: RoPE is its configuration's yarn, and the attention has biases on q, k, v and o
    published = config_of("gpt-oss", legacy=True, rope_theta=None, rope_scaling=None, attention_bias=None)
    assert_equals_transformers(load_model(str(with_config(tmp_path, "gpt-oss", published))), "gpt-oss")
    rope = fields_of("gpt-oss", rope_parameters=None)["layer_attention"][0].rope
    assert (rope.scaling, rope.theta, rope.factor, rope.truncate, rope.original_max_positions) == (
        "yarn",
        150000.0,
        32.0,
        False,
        4096,
    )
    assert fields_of("gpt-oss", rope_parameters={})["layer_attention"][0].rope.scaling == "default"  # given, if empty
    unbiased = fields_of("gpt-oss", attention_bias=False)
    assert not unbiased["attention_bias"] and not unbiased["output_bias"]
    # Its experts' activation is their clamped SwiGLU, whatever hidden_act says: transformers reads it nowhere
    nonsense = config_of("gpt-oss", hidden_act="nonsense")
    assert_equals_transformers(load_model(str(with_config(tmp_path / "act", "gpt-oss", nonsense))), "gpt-oss")
    both = fields_of("gpt-oss", num_experts=5)["moe"]  # as transformers reads both: num_experts wins
    assert (both.experts, both.per_token, both.d_expert) == (5, 2, 32)
    assert (both.swiglu_alpha, both.swiglu_limit, both.softmax_after_top_k) == (1.702, 2.0, True)
    defaults = fields_of("gpt-oss", swiglu_alpha=None, swiglu_limit=None)["moe"]
    assert (defaults.swiglu_alpha, defaults.swiglu_limit) == (1.702, 7.0)
    windows = [layer.window for layer in fields_of("gpt-oss", layer_types=None, sliding_window=None)["layer_attention"]]
    assert windows == [128, None, 128]  # its even layers slide, 128 keys wide unless config.json says
    assert [layer.window for layer in fields_of("gpt-oss", layer_types=["full_attention"] * 3)["layer_attention"]] == [
        None
    ] * 3


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("gpt-oss", {"swiglu_limit": 0}, "swiglu_limit should be a finite positive number, not 0"),
        ("gpt-oss", {"swiglu_alpha": "1.7"}, "swiglu_alpha should be a finite positive number"),
        ("gpt-oss", {"sliding_window": None}, "layer_types has sliding_attention layers but no window"),
        ("gpt-oss", {"attention_bias": None}, "attention_bias should be true or false, not None"),
        ("gpt-oss", {"num_local_experts": 3}, r"mlp.experts.gate_up_proj has shape \(4, 16, 64\), .* \(3, 16, 64\)"),
        ("gpt-oss", {"num_experts": 5}, r"mlp.experts.gate_up_proj has shape \(4, 16, 64\), .* \(5, 16, 64\)"),
        (
            "gpt-oss",
            {"intermediate_size": 16},
            r"gate_up_proj has shape \(4, 16, 64\), but config.json implies \(4, 16",
        ),
        ("gpt-oss-mxfp4", {"intermediate_size": 64}, r"gate_up_proj has shape \(4, 64, 32\), .* \(4, 128, 32\)"),
        ("gpt-oss-mxfp4", {"hidden_size": 64}, "embed_tokens.weight has shape"),
    ],
)
def test_a_gpt_oss_config_its_tensors_or_transformers_would_not_run_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    with pytest.raises(DataError, match=f"{message}"):
        load_model(str(with_config(tmp_path, name, config)))


def test_gpt_oss_without_a_window_and_without_layer_types_is_refused_as_transformers_refuses_it(tmp_path):
    config = config_of("gpt-oss", legacy=True) | {"sliding_window": None}
    with pytest.raises(DataError, match="sliding_window is null, but the even layers slide"):
        load_model(str(with_config(tmp_path, "gpt-oss", config)))


@pytest.mark.parametrize("name", ["modernbert", "modernbert-biases"])
def test_modernberts_published_form_of_config_json_gives_the_same_model(tmp_path, name):
    """Published checkpoints carry global_attn_every_n_layers, global_rope_theta and local_rope_theta (and
    rope_scaling, for both kinds of layer) where transformers 5 writes layer_types and rope_parameters."""
    legacy = config_of(name, legacy=True)
    assert "layer_types" not in legacy and "rope_parameters" not in legacy and "global_attn_every_n_layers" in legacy
    assert fields_of(name, legacy=True) == fields_of(name)
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, legacy))), name)


def test_modernberts_layers_are_global_every_nth_from_the_first_and_local_between():
    """Every global_attn_every_n_layers-th layer from layer 0 sees every key and turns by the global RoPE;
    the others see the keys within local_attention // 2 on either side, turned by the local RoPE."""
    layers = fields_of("modernbert")["layer_attention"]
    assert [layer.window for layer in layers] == [None, 8, 8, None]
    assert [layer.rope.theta for layer in layers] == [20000.0, 1000.0, 1000.0, 20000.0]
    both = fields_of("modernbert-biases")["layer_attention"]
    assert [(layer.window, layer.rope.scaling, layer.rope.factor) for layer in both] == [
        (None, "linear", 2.0),
        (8, "linear", 2.0),  # rope_scaling scales the local layers' RoPE too
        (None, "linear", 2.0),
    ]
    assert [layer.rope.theta for layer in both] == [160000.0, 10000.0, 160000.0]  # ModernBertConfig's defaults


@pytest.mark.parametrize(
    ("changes", "windows"),
    [
        ({"global_attn_every_n_layers": None}, [None, 8, 8, None]),  # 3 unless said
        ({"global_attn_every_n_layers": 1}, [None] * 4),
        ({"global_attn_every_n_layers": 2}, [None, 8, None, 8]),
        ({"local_attention": None}, [None, 128, 128, None]),  # 128 unless said
        ({"local_attention": 9}, [None, 9, 9, None]),  # a query sees 4 keys either side, as with 8
        ({"sliding_window": 3}, [None, 6, 6, None]),  # half the window, which ModernBertConfig sets it from
        ({"sliding_window": 3, "local_attention": 20}, [None, 6, 6, None]),  # and over local_attention
        ({"layer_types": ["sliding_attention"] * 4}, [8] * 4),  # over global_attn_every_n_layers
    ],
)
def test_modernbert_reads_its_windows_as_modernbertconfig_does(changes, windows):
    assert [layer.window for layer in fields_of("modernbert", legacy=True, **changes)["layer_attention"]] == windows


def test_modernbert_reads_its_defaults_and_keys_as_modernbertconfig_does():
    bare = fields_of("modernbert", legacy=True, global_rope_theta=None, local_rope_theta=None, norm_eps=None)
    assert [layer.rope.theta for layer in bare["layer_attention"]] == [160000.0, 10000.0, 10000.0, 160000.0]
    assert bare["eps"] == 1e-5 and bare["activation"] == "gelu" and not bare["causal"]
    # transformers 5's form, a layer type left out: its base is the key's or ModernBertConfig's default.
    nested = fields_of("modernbert", rope_parameters={"full_attention": {"rope_theta": 50.0}})
    assert [layer.rope.theta for layer in nested["layer_attention"]] == [50.0, 10000.0, 10000.0, 50.0]
    biases = fields_of("modernbert-biases")
    assert (biases["attention_bias"], biases["output_bias"], biases["mlp_bias"], biases["norm_bias"]) == (True,) * 4
    assert biases["activation"] == "gelu_pytorch_tanh" and not biases["first_attention_norm"]
    plain = fields_of("modernbert")
    assert (plain["attention_bias"], plain["output_bias"], plain["mlp_bias"], plain["norm_bias"]) == (False,) * 4


# Keys of ModernBertConfig that change neither the attention nor the hidden states: torch.compile of the
# feed-forward (reference_compile, gone from transformers 5), flash attention's determinism, the heads on top
# (masked-language model, classifier), dropout, initialization; keys it never reads (its attention is
# bidirectional whatever is_causal says). Each was run through transformers too, giving the same attention.
MODERNBERT_AS_BEFORE = {
    "reference_compile": True,
    "deterministic_flash_attn": True,
    "sparse_prediction": True,
    "decoder_bias": False,
    "classifier_pooling": "mean",
    "classifier_activation": "silu",
    "attention_dropout": 0.5,
    "mlp_dropout": 0.5,
    "embedding_dropout": 0.5,
    "initializer_range": 5.0,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "rope_theta": 5.0,  # the bases are global_rope_theta and local_rope_theta, or rope_parameters'
    "num_key_value_heads": 1,
    "head_dim": 16,  # hidden_size / num_attention_heads: as it is
    "is_causal": False,
    "use_bidirectional_attention": True,
}


@pytest.mark.parametrize(("key", "value"), MODERNBERT_AS_BEFORE.items())
def test_modernbert_keys_that_change_nothing_change_nothing(tmp_path, key, value):
    config = config_of("modernbert", legacy=True) | {key: value}
    assert read(config) == fields_of("modernbert")
    if key == "reference_compile":
        assert_equals_transformers(load_model(str(with_config(tmp_path, "modernbert", config))), "modernbert")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head_dim": 8}, "head_dim 8 is not supported for modernbert, whose heads are .* = 16 wide"),
        ({"global_attn_every_n_layers": 0}, "global_attn_every_n_layers = 0; it must be positive"),
        ({"local_attention": 0}, "local_attention = 0; it must be positive"),
        ({"local_attention": "8"}, "local_attention should be a 64-bit integer"),
        ({"sliding_window": 0}, "sliding_window should be a positive 64-bit integer .half the local window., not 0"),
        ({"sliding_window": None}, "sliding_window should be .*, not null"),  # transformers doubles it, and fails
        ({"layer_types": ["full_attention"] * 3}, "type of each of the 4 layers"),
        ({"layer_types": ["full_attention", "chunked_attention"] * 2}, "'chunked_attention' is not supported"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 5.0}}, "one object of RoPE settings for each"),
        ({"rope_scaling": {"rope_type": "proportional"}}, "rope type 'proportional' is not supported"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported for modernbert"),
        ({"norm_bias": "no"}, "norm_bias should be true or false"),
        ({"attention_bias": True}, r"attn.Wqkv.bias"),  # the tensors config.json promises, missing
        ({"hidden_activation": "gelu_accurate"}, "activation 'gelu_accurate' is not supported"),
    ],
)
def test_what_modernbert_does_not_compute_is_refused_by_name(tmp_path, changes, message):
    config = config_of("modernbert", legacy=True) | changes
    with pytest.raises(DataError, match=message):
        load_model(str(with_config(tmp_path, "modernbert", config)))


def test_modernberts_first_layer_reads_the_normed_embeddings_and_its_norms_have_biases_where_said():
    plain, biased = (load_model(str(FIXTURES / name)) for name in ("modernbert", "modernbert-biases"))
    for model in (plain, biased):
        blocks = list(model.weights.blocks)
        assert blocks[0].attention_norm is None and all(block.attention_norm is not None for block in blocks[1:])
    assert plain.weights.embedding_norm.bias is None and plain.weights.blocks[1].ffn_norm.bias is None
    assert biased.weights.embedding_norm.bias.shape == (32,) and biased.weights.final_norm.bias.shape == (32,)
    assert biased.weights.blocks[0].feed_forward.b_in.shape == (48,)  # mlp.Wi's bias: both halves


def test_modernbert_reads_texts_up_to_its_8192_positions_and_refuses_a_longer_one_by_the_limit(monkeypatch):
    monkeypatch.delenv("ATTNCLI_MEMORY_BUDGET", raising=False)
    model = load_model(str(FIXTURES / "modernbert"))
    text = "The" + " cat" * 8189  # 8,190 tokens and [CLS], [SEP]
    assert len(commands.tokenize(text, model, max_tokens=9000).tokens) == 8192
    # Its attention would take 4 layers × 2 heads × 8192² float32 numbers, and one layer's in flight: over the
    # default budget, which says so before running, and names the layers that fit.
    with pytest.raises(BadInput, match=r"8192 tokens would need 2,560 MB of attention tensors \(4 layers × 2 heads"):
        commands.run(text, model, max_tokens=9000)
    with pytest.raises(BadInput, match=r"keep 3 layers with layers 0:3"):
        commands.run(text, model, max_tokens=9000)
    with pytest.raises(BadInput, match=r"the text is 8193 tokens \(special tokens included\), but .* at most 8192"):
        commands.tokenize(text + " cat", model, max_tokens=9000)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("deberta-v3", {"relative_attention": False}, "relative_attention false"),
        ("deberta-v3", {"relative_attention": None}, "relative_attention false"),  # DebertaV2Config's default
        ("deberta-v3", {"attention_head_size": 8}, "attention_head_size 8 × 4 heads is not hidden_size 16"),
        ("deberta-v3", {"position_buckets": 1}, "position_buckets 1 with max_relative_positions 512 makes no log"),
        ("deberta-v3", {"position_buckets": 16, "max_relative_positions": 9}, "position_buckets 16 with max_relative"),
        ("deberta-v3", {"pos_att_type": "p2c|p2p"}, r'pos_att_type \["p2p"\] is not supported'),
        ("deberta-v3", {"pos_att_type": ["c2p", "C2P"]}, r'pos_att_type \["C2P"\] is not supported'),
        ("deberta-v3", {"pos_att_type": 3}, "pos_att_type should be a list of c2p and p2c, not 3"),
        ("deberta-v3", {"norm_rel_ebd": "batch_norm"}, "norm_rel_ebd 'batch_norm' is not supported"),
        ("deberta-v3", {"norm_rel_ebd": ["layer_norm"]}, "norm_rel_ebd should be a name"),
        ("deberta-v3", {"share_att_key": "yes"}, "share_att_key should be true or false"),
        ("deberta-v2", {"conv_kernel_size": 4}, "conv_kernel_size 4 .even. is not supported"),
        ("deberta-v2", {"conv_groups": 3}, "conv_groups 3 does not divide hidden_size 16"),
        ("deberta-v2", {"conv_act": "swish9"}, "conv_act 'swish9' is not supported"),
        ("deberta-v2", {"embedding_size": 12}, r"word_embeddings.weight has shape \(156, 8\), but config.json implies"),
        ("deberta-v2", {"max_relative_positions": 32}, r"rel_embeddings.weight has shape \(128, 16\)"),
        ("deberta-v3", {"share_att_key": False}, "missing tensor deberta.encoder.layer.0.attention.self.pos_query"),
        ("deberta-v3", {"position_biased_input": True}, "missing tensor deberta.embeddings.position_embeddings"),
    ],
)
def test_what_deberta_does_not_compute_or_its_tensors_do_not_hold_is_refused_by_name(tmp_path, name, change, message):
    with pytest.raises(DataError, match=message):
        load_model(str(with_config(tmp_path, name, config_of(name, **change))))


@pytest.mark.parametrize(
    "terms", ["p2c|c2p", "c2p|p2c", " C2P | p2c ", ["p2c", "c2p"], ["c2p", "p2c", "c2p"]], ids=repr
)
def test_debertas_position_terms_are_read_in_the_published_string_form_and_as_transformers_5_writes_them(
    tmp_path, terms
):
    """Published checkpoints say "p2c|c2p", which DebertaV2Config splits and lowercases; transformers 5 writes a
    list, which it reads as it is."""
    model = load_model(str(with_config(tmp_path, "deberta-v3", config_of("deberta-v3", pos_att_type=terms))))
    assert_equals_transformers(model, "deberta-v3")


def test_debertas_keys_are_read_with_its_configurations_defaults():
    v3 = fields_of("deberta-v3", max_relative_positions=None, layer_norm_eps=None, type_vocab_size=None)
    relative = v3["disentangled"]
    assert (relative.span, relative.buckets, relative.max_relative) == (16, 16, 512)  # max_position_embeddings
    assert (relative.c2p, relative.p2c, relative.shared, relative.normed, relative.absolute) == (True,) * 4 + (False,)
    assert (v3["eps"], v3["type_vocab_size"], v3["d_embed"], v3["convolution"]) == (1e-7, 0, None, None)
    clipped = fields_of("deberta-v2", position_buckets=-1)["disentangled"]  # no buckets: positions clipped to 64
    assert (clipped.span, clipped.buckets, clipped.max_relative, clipped.shared) == (64, 0, 64, False)
    assert fields_of("deberta-v2", position_buckets=None)["disentangled"].span == 64
    assert fields_of("deberta-v2", max_relative_positions=0, position_buckets=4)["disentangled"].max_relative == 512
    bare = fields_of(
        "deberta-v3",
        pos_att_type=None,
        norm_rel_ebd=None,
        share_att_key=None,
        position_biased_input=None,
        attention_head_size=4,
    )["disentangled"]
    assert (bare.c2p, bare.p2c, bare.normed, bare.shared, bare.absolute, bare.terms) == (False,) * 4 + (True, 1)
    conv = fields_of("deberta-v2", conv_act=None, conv_groups=None)["convolution"]
    assert (conv.kernel, conv.groups, conv.activation) == (3, 1, "tanh")
    assert fields_of("deberta-v2", conv_kernel_size=0)["convolution"] is None
    assert fields_of("deberta-v2", norm_rel_ebd="none|layer_norm")["disentangled"].normed


def test_debertas_tensors_are_found_under_a_masked_language_models_prefix_and_without_one():
    for name, prefix in (("deberta-v3", "deberta."), ("deberta-v2", "")):
        model = load_model(str(FIXTURES / name))
        assert f"{prefix}encoder.rel_embeddings.weight" in model.checkpoint.tensors.names()
        assert_equals_transformers(model, name)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        *(
            (name, {"is_decoder": True}, r"is_decoder true \(a causal mask on an encoder\) is not supported")
            for name in ("xlm-roberta", "camembert", "electra", "megatron-bert")
        ),
        *(
            (name, {"position_embedding_type": "relative_key"}, "only absolute position embeddings are supported")
            for name in ("xlm-roberta", "camembert", "electra", "albert", "megatron-bert")
        ),
        ("mpnet", {"relative_attention_num_buckets": 64}, "relative_attention_num_buckets 64 is not supported"),
        ("mpnet", {"relative_attention_num_buckets": 16}, "transformers buckets relative positions into 32"),
        ("albert", {"num_hidden_groups": 0}, "num_hidden_groups = 0, inner_group_num = 1; both must be positive"),
        ("albert", {"inner_group_num": -1}, "inner_group_num = -1; both must be positive"),
        ("albert", {"num_hidden_layers": 10**9}, "attncli runs at most 1,024 passes through shared layers"),
        ("albert-groups", {"num_hidden_groups": 3}, "gives 3 num_hidden_groups, but model.safetensors holds 2"),
        ("albert", {"inner_group_num": 2}, "missing tensor encoder.albert_layer_groups.0.albert_layers.1"),
        # ALBERT projects its embeddings in even where they are as wide as the model
        (
            "albert",
            {"embedding_size": 16},
            r"embedding_hidden_mapping_in.weight has shape \(16, 8\), but .* \(16, 16\)",
        ),
        # ELECTRA's configuration's default embedding_size, where config.json has none, is 128
        ("electra", {"embedding_size": None}, r"has shape \(\d+, 12\), but config.json implies \(\d+, 128\)"),
    ],
)
def test_what_the_encoders_do_not_compute_is_refused_by_name(tmp_path, name, change, message):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | change
    config = {key: value for key, value in config.items() if value is not None}
    with pytest.raises(DataError, match=message):
        load_model(str(with_config(tmp_path, name, config)))


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        # MPNet's padding index is 1 in its code, and it reads neither is_decoder nor position_embedding_type
        ("mpnet", {"pad_token_id": 0, "is_decoder": True, "position_embedding_type": "relative_key"}),
        ("mpnet", {"type_vocab_size": 7}),  # no token types
        ("albert", {"is_decoder": True}),  # its attention is never causal
        # albert-base-v2's config.json carries keys of Google's code that transformers never read
        ("albert", {"down_scale_factor": 1, "gap_size": 0, "net_structure_type": 0, "num_memory_blocks": 0}),
        ("albert", {"num_hidden_groups": None, "inner_group_num": None}),  # its configuration's 1 and 1
        ("electra", {"summary_type": "last", "summary_use_proj": False}),  # a classification head's settings
        ("xlm-roberta", {"add_cross_attention": False, "use_cache": False, "classifier_dropout": 0.5}),
    ],
)
def test_the_encoders_read_only_what_transformers_reads_for_them(tmp_path, name, ignored):
    config = json.loads((FIXTURES / name / "config.json").read_text()) | ignored
    config = {key: value for key, value in config.items() if value is not None}
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, config))), name)


def test_each_encoder_is_a_row_of_the_one_table_with_its_wrapper():
    wrappers = {name: FAMILIES[name].wrapper for name in ("xlm-roberta", "camembert", "mpnet", "electra", "albert")}
    assert wrappers == {
        "xlm-roberta": ("<s>", "</s>"),
        "camembert": ("<s>", "</s>"),
        "mpnet": ("<s>", "</s>"),
        "electra": ("[CLS]", "[SEP]"),
        "albert": ("[CLS]", "[SEP]"),
    }
    for name in ("xlm-roberta", "camembert", "albert", "mpnet"):
        tokens = load_model(str(FIXTURES / name)).tokenize(SENTENCE)
        first, last = FAMILIES[name].wrapper
        assert (tokens[0].text, tokens[-1].text, tokens[0].special, tokens[-1].special) == (first, last, True, True)
