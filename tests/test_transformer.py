"""transformer.py's forward pass: as exact as transformers' on every family; GELU, positions, masks, packing."""

import json
import math
import warnings

import numpy as np
import pytest
from helpers import (
    DECODERS,
    ENCODERS,
    FIXTURES,
    GPT2,
    PRONOUN,
    assert_as_exact_as_transformers,
    copy_fixture,
    edit_config,
    needs_minilm,
    references,
)
from numpy.testing import assert_allclose

from attncli import commands
from attncli.errors import DataError
from attncli.models import load_model
from attncli.transformer import feed_forward, gelu, gelu_tanh, layer_norm, position_ids


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
    bulk = np.abs(x) <= 10  # beyond, |x · Φ(x)| is under 1e-22 or Φ(x) is 1 in float32
    assert np.all(error[bulk] <= 3 * np.spacing(np.abs(exact[bulk]).astype(np.float32)))
    assert np.all(error <= 1e-22 + 3 * np.spacing(np.abs(exact).astype(np.float32)))


def test_gelu_of_nan_and_infinities_warns_of_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning would reach the user's stderr
        y = gelu(np.float32([np.nan, np.inf, -np.inf, -0.0, 1e30, -1e30]))
    assert np.isnan(y[0]) and y[1] == np.inf and y[4] == np.float32(1e30)
    assert np.all(np.abs(y[[2, 3, 5]]) < 1e-30)


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


def test_a_padding_index_beyond_the_position_table_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "roberta")
    edit_config(directory, pad_token_id=1000)
    with pytest.raises(DataError, match="pad_token_id 1000"):
        load_model(str(directory))


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


@pytest.mark.parametrize(
    "architecture",
    [
        *("bert", "roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"),
        *("gpt-neox", "gptj", "phi", "stablelm-parallel", "cohere", "starcoder2"),
    ],
)
def test_texts_packed_into_one_forward_pass_get_their_own_attention(architecture):
    """Packed texts share the projections and feed-forward layers, never attention: each text's
    weights (its own positions, masks, sliding windows and RoPE) are those of a pass of its own."""
    from helpers import FIXTURES

    from attncli.commands import _tokens
    from attncli.models import load_model

    model = load_model(str(FIXTURES / architecture))
    texts = ["The cat sat on the mat.", "A dog", "it was too tired because the street was wide and long", "x"]
    tokens = [_tokens(text, model, 512) for text in texts]
    packed = model.run_many(tokens)
    for one, weights in zip(tokens, packed, strict=True):
        alone = model.run(one, keep_steps=False).weights
        assert weights.shape == alone.shape
        np.testing.assert_allclose(weights, alone, atol=1e-6, rtol=0)


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
                assert any(hidden) and (not all(hidden) or config["model_type"] in ("mistral", "phi3", "starcoder2"))


def test_masked_weights_are_exactly_zero_not_minus_zero():
    run = commands.run(PRONOUN, load_model(str(FIXTURES / "mistral")))
    masked = np.triu(np.ones(run.weights.shape[-2:], dtype=bool), k=1)
    assert not np.signbit(run.weights[..., masked]).any()


@pytest.mark.parametrize(("name", "norms"), [("gpt-neox", 2), ("gptj", 1), ("stablelm-parallel", 1)])
def test_a_parallel_block_adds_attention_and_feed_forward_of_the_same_input(name, norms):
    """x + attention(LN(x)) + FFN(LN'(x)), LN' the attention's LN where the block has one norm: the
    feed-forward network reads the layer's input, never the attention's output."""
    model = load_model(str(FIXTURES / name))
    trace = model.run(model.tokenize(PRONOUN))
    config = model.config
    assert config.parallel and config.shared_norm == (norms == 1)
    for layer, block in enumerate(model.weights.blocks):
        x = trace.layer_inputs[layer]  # [T, d]
        assert x is (trace.layer_outputs[layer - 1] if layer else x)
        norm = block.attention_norm if block.ffn_norm is None else block.ffn_norm
        assert (block.ffn_norm is None) == (norms == 1)
        ffn = feed_forward(layer_norm(x, norm, config.eps), block.feed_forward, config.activation)
        assert_allclose(trace.layer_outputs[layer], x + trace.layers[layer].output + ffn, rtol=1e-6, atol=1e-5)
