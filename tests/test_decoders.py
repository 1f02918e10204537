"""The modern decoders (Llama, Mistral, Qwen 2 and 3, Gemma 1 and 2, Phi-3): attention equal to
transformers' (eager, float32) on tiny random checkpoints, in both forms of config.json."""

import json
import shutil

import numpy as np
import pytest
from helpers import DECODERS, FIXTURES, PRONOUN, assert_as_exact_as_transformers, attncli, references, render_text
from numpy.testing import assert_allclose, assert_array_equal

from attncli import commands, views
from attncli.attention import Rope, inverse_frequencies
from attncli.errors import DataError
from attncli.models import load_model
from attncli.tokens import CONTINUED, readable_all


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
    assert "rope_parameters" not in legacy and "rope_theta" in legacy
    assert_equals_transformers(load_model(str(with_config(tmp_path, name, legacy))), name)


@pytest.mark.parametrize("name", DECODERS)
def test_rope_tables_are_transformers_own_bit_for_bit(name):
    reference = np.load(FIXTURES / name / "reference.npz")["inverse_frequencies"]
    (rope,) = {layer.rope for layer in load_model(str(FIXTURES / name)).info.layer_attention}
    assert_array_equal(inverse_frequencies(rope), reference)


@pytest.mark.parametrize("name", DECODERS)
def test_fixture_attention_is_masked_as_its_family_says(name):
    config = json.loads((FIXTURES / name / "config.json").read_text())
    types = config.get("layer_types")
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    for case in references(name):
        keys = np.arange(case.attention.shape[-1])
        later = keys[None, :] > case.rows[:, None]  # [R, T] the keys after each query kept
        assert np.all(case.attention[:, :, later] == 0)  # causal
        if window and len(case.ids) > window:
            # Every layer that slides (all, for Mistral and Phi-3 without layer_types) hides the keys beyond
            # its window from the queries far enough along.
            outside = keys[None, :] <= case.rows[:, None] - window  # [R, T]
            hidden = [bool(np.all(layer[:, outside] == 0)) for layer in case.attention]
            if types is not None:
                assert hidden == [kind == "sliding_attention" for kind in types]
            else:
                assert any(hidden) and (not all(hidden) or config["model_type"] in ("mistral", "phi3"))


def test_json_names_the_decoders_choices():
    info = load_model(str(FIXTURES / "gemma2")).info.to_json()
    assert info["family"] == "Gemma 2" and info["kv_heads"] == 2 and info["d_head"] == 8 and info["norm"] == "rms"
    assert info["position_embeddings"] == {"type": "rotary", "theta": 10000.0, "dims": 8, "scaling": "default"}
    assert info["sliding_windows"] == [4, None, 4, None] and info["soft_cap"] == 2.0
    llama = load_model(str(FIXTURES / "llama")).info.to_json()["position_embeddings"]
    assert llama["scaling"] == "llama3" and llama["factor"] == 8.0 and llama["original_max_positions"] == 16


def test_llama3_scaling_keeps_short_wavelengths_divides_long_ones_and_blends_between():
    plain = inverse_frequencies(Rope(theta=500000.0, dims=128))
    scaled = inverse_frequencies(Rope(500000.0, 128, "llama3", 8.0, 1.0, 4.0, 8192))
    wavelength = 2 * np.pi / plain
    short, long = wavelength < 8192 / 4, wavelength > 8192 / 1
    assert_allclose(scaled[short], plain[short])
    assert_allclose(scaled[long], plain[long] / 8, rtol=1e-6)
    middle = ~short & ~long
    assert middle.any() and np.all((scaled[middle] < plain[middle]) & (scaled[middle] > plain[middle] / 8))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "rope type 'yarn'"),
        ({"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope type 'dynamic'"),
        ({"rope_parameters": None, "rope_scaling": {"rope_type": "longrope"}}, "rope type 'longrope'"),
        ({"layer_types": ["full_attention", "chunked_attention", "full_attention"]}, "'chunked_attention'"),
        ({"layer_types": ["full_attention"]}, "type of each of the 3 layers"),
        ({"sliding_window": 0}, "sliding_window should be a positive integer"),
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


def test_qwen_without_use_sliding_window_sees_every_key(tmp_path):
    config = json.loads((FIXTURES / "qwen2" / "legacy_config.json").read_text()) | {"use_sliding_window": False}
    info = load_model(str(with_config(tmp_path, "qwen2", config))).info
    assert info.windows is None


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


def test_byte_fallback_tokens_show_the_characters_they_make():
    pieces = ["▁A", "▁", "<0xC3>", "<0xAF>", "<0xE2>", "<0x98>", "<0x95>", "<0xFF>", "Ġit"]
    assert readable_all(pieces) == ["␣A", "␣", "ï", CONTINUED, "☕", CONTINUED, CONTINUED, "<0xFF>", "␣it"]


def test_the_model_grid_leaves_masked_cells_blank():
    result = commands.model_grid(PRONOUN, load_model(str(FIXTURES / "mistral")))  # window 5 in every layer
    text = render_text(views.view(result), width=200)
    first_head = text.split("L0 H0")[1].splitlines()[1:14]
    assert first_head[-1].startswith("·" * 8) and first_head[0].endswith("·" * 12)


def test_npz_holds_the_attention_json_has(tmp_path):
    directory = str(FIXTURES / "phi3")
    out = tmp_path / "attention.npz"
    assert attncli("heatmap", PRONOUN, "--model", directory, "--format", "npz", "-o", str(out)).returncode == 0
    saved = np.load(out)
    document = json.loads(attncli("heatmap", PRONOUN, "--model", directory, "--json").stdout)
    assert_allclose(saved["attention"], np.array(document["attention"], dtype=np.float32), rtol=0, atol=0)
    assert saved["ids"].tolist() == [token["id"] for token in document["tokens"]]
    assert saved["tokens"].tolist() == [token["text"] for token in document["tokens"]]


def test_a_family_reads_only_the_settings_transformers_reads_for_it(tmp_path):
    gemma = json.loads((FIXTURES / "gemma" / "config.json").read_text())
    gemma.pop("hidden_act")  # Gemma's default is the tanh GELU, not SiLU
    assert_equals_transformers(load_model(str(with_config(tmp_path, "gemma", gemma))), "gemma")
    qwen = load_model(str(FIXTURES / "qwen2"))  # biases on q, k and v, none on W_O
    text = render_text(views.view(commands.explain(PRONOUN, qwen)), width=200)
    assert "q = x·W_Q + b" in text and "multiplied by W_O (16 × 16)." in text
    mistral = json.loads((FIXTURES / "mistral" / "config.json").read_text()) | {"attention_bias": True}
    assert_equals_transformers(load_model(str(with_config(tmp_path, "mistral", mistral))), "mistral")


def test_masked_weights_are_exactly_zero_not_minus_zero():
    run = commands.run(PRONOUN, load_model(str(FIXTURES / "mistral")))
    masked = np.triu(np.ones(run.weights.shape[-2:], dtype=bool), k=1)
    assert not np.signbit(run.weights[..., masked]).any()


def test_head_statistics_count_the_keys_a_sliding_window_lets_a_row_see():
    model = load_model(str(FIXTURES / "mistral"))  # window 5 in every layer
    result = commands.heads(PRONOUN, model)
    run = commands.run(PRONOUN, model)
    rows = run.weights[0, 0, 1:]  # every row but the first sees more than one key
    seen = np.minimum(np.arange(2, run.weights.shape[-1] + 1), 5)
    plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1)), 0).sum(-1)
    assert_allclose(result.statistics["entropy_normalized"][0, 0], (-plogp / np.log(seen)).mean(), rtol=1e-6)


def test_the_command_line_leaves_out_sinks_unless_asked_and_draws_on_the_asked_scale(cli):
    qwen = str(FIXTURES / "qwen2")
    plain = cli("explain", PRONOUN, "--model", qwen, "--json").json()
    kept = cli("explain", PRONOUN, "--model", qwen, "--include-special", "--json").json()
    assert plain["include_special"] is False and kept["include_special"] is True
    assert all(entry["mean"]["index"] != 0 for entry in plain["summary"][1:])
    view = cli("heatmap", PRONOUN, "--model", qwen, "--scale", "log", "--color", "always")
    assert view.code == 0 and "weight, log scale" in view.stdout and "≤0.001" in view.stdout
    assert "--scale log shows the rest" in cli("heatmap", PRONOUN, "--model", qwen).stdout
