"""transformer.py's forward pass: as exact as transformers' on every family; GELU, positions, masks, packing."""

import copy
import dataclasses
import json
import math
import re
import warnings
import weakref
from collections.abc import Sequence

import numpy as np
import pytest
from helpers import (
    BERT,
    DECODERS,
    ENCODERS,
    FIXTURES,
    GPT2,
    PRONOUN,
    SENTENCE,
    assert_as_exact_as_transformers,
    copy_fixture,
    edit_config,
    needs_minilm,
    references,
    small_pre_norm_models,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli import commands
from attncli.analysis import Measure
from attncli.attention import LayerAttention, Projections
from attncli.errors import DataError
from attncli.models import load_model
from attncli.transformer import (
    Block,
    FeedForward,
    Norm,
    TransformerConfig,
    block_output,
    convolution,
    feed_forward,
    forward,
    forward_packed,
    frozen_norm,
    gelu,
    gelu_tanh,
    layer_norm,
    norm_scale,
    normalized,
    position_ids,
    relative_embeddings,
    text_positions,
)


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


# The fixtures with transformers' value norms beside their reference (make_fixtures.py's norms group): one of each
# kind of block they pass through (see NORMS_MODULES there).
NORMS = sorted(path.parent.name for path in FIXTURES.glob("*/norms.npz"))


def test_the_norms_references_cover_every_kind_of_block_they_pass_through():
    kinds = {"bert", "gpt2", "qwen2", "phi", "gemma2", "olmo2", "mixtral", "gpt-oss", "mpnet", "deberta-v2"}
    assert set(NORMS) == kinds


@pytest.mark.parametrize("name", NORMS)
def test_norms_are_as_exact_as_transformers_own_value_and_output_projections(name):
    """‖v_j W_O^h‖ against transformers' float64 run (its v from its own value projection, W_O^h from its
    output projection's weight), and α_ij · ‖v_j W_O^h‖ at the reference's query rows against the float64
    weights times those: each as exact as transformers' float32 run, on the short, accented and long texts."""
    model = load_model(str(FIXTURES / name))
    truth = np.load(FIXTURES / name / "norms.npz")
    for i, case in enumerate(references(name)):
        run = commands.run(case.text, model, measure=Measure.norms)
        what = f"{name}, {len(case.ids)} tokens"
        value_norms, error = truth[f"value_norms_{i}"], truth[f"value_norms_error_{i}"]
        assert_as_exact_as_transformers(run.trace.value_norms, value_norms, error, f"{what}: value norms")
        norms = case.attention * value_norms[:, :, None, :]  # [L, h, R, T]
        rows = run.attention[:, :, case.rows]
        assert_as_exact_as_transformers(rows, norms, truth[f"norms_error_{i}"], f"{what}: norms")


def test_the_forward_pass_makes_no_norms_unless_asked():
    model = load_model(GPT2)
    assert commands.run(SENTENCE, model).trace.value_norms is None
    run = commands.run(SENTENCE, model, measure=Measure.norms)
    assert run.trace.value_norms.shape == (2, 4, len(run.tokens))


@pytest.mark.parametrize("name", ["gpt2", "qwen2", "bert"])
def test_the_forward_pass_calls_back_once_per_layer_in_order_and_computes_the_same(name):
    model = load_model(str(FIXTURES / name))
    tokens = model.tokenize(PRONOUN)
    calls = []
    reported = model.run(tokens, on_layer=lambda done, layers: calls.append((done, layers)))
    assert calls == [(layer, model.info.layers) for layer in range(1, model.info.layers + 1)]
    assert_array_equal(reported.weights, model.run(tokens).weights)


def test_the_sample_model_calls_back_after_its_one_layer():
    model, calls = load_model("sample"), []
    model.run(model.tokenize(SENTENCE), on_layer=lambda *done: calls.append(done))
    assert calls == [(1, 1)]


@pytest.mark.parametrize("architecture", ["bert", "qwen2", "gemma2", "gpt-oss", "deberta-v2"])
def test_packed_texts_get_the_norms_of_a_pass_of_their_own(architecture):
    """forward_packed with norms gives each text the ‖α v W_O‖ its own forward pass gives, in place of its
    weights, to float32 rounding."""
    from attncli.commands import _tokens

    model = load_model(str(FIXTURES / architecture))
    tokens = [_tokens(text, model, 512) for text in ("The cat sat on the mat.", "A dog", "it was too tired")]
    for one, norms in zip(tokens, model.run_many(tokens, norms=True), strict=True):
        np.testing.assert_allclose(
            norms, model.run(one, keep_steps=False, value_norms=True).norms, atol=1e-5, rtol=1e-6
        )


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


@pytest.mark.parametrize("architecture", ENCODERS + DECODERS)
def test_texts_packed_into_one_forward_pass_get_their_own_attention(architecture):
    """Packed texts share the projections and feed-forward layers, never attention: each text's
    weights (its own positions, masks, sliding windows, RoPE, ALiBi and sinks) are those of a pass of
    its own, to float32 rounding: BLAS multiplies the N packed rows in another order than a text's T
    (the projections a few units in the last place apart), which three layers carry to 3.4e-6 in
    qwen2-yarn and gpt-oss-mxfp4."""
    from attncli.commands import _tokens
    from attncli.models import load_model

    model = load_model(str(FIXTURES / architecture))
    texts = ["The cat sat on the mat.", "A dog", "it was too tired because the street was wide and long", "x"]
    tokens = [_tokens(text, model, 512) for text in texts]
    packed = model.run_many(tokens)
    for one, weights in zip(tokens, packed, strict=True):
        alone = model.run(one, keep_steps=False).weights
        assert weights.shape == alone.shape
        np.testing.assert_allclose(weights, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", DECODERS)
def test_fixture_attention_is_masked_as_its_family_says(name):
    config = json.loads((FIXTURES / name / "config.json").read_text())
    config = config.get("text_config", config)  # a multimodal checkpoint's text model
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
                assert any(hidden) and (
                    not all(hidden) or config["model_type"] in ("mistral", "phi3", "mixtral", "starcoder2")
                )


@pytest.mark.parametrize("name", ["modernbert", "modernbert-biases"])
def test_modernberts_local_layers_see_the_keys_within_half_their_window_on_either_side(name):
    """In transformers' attention as in attncli's: a local layer's query sees the keys at most local_attention
    // 2 from it, before and after it, and no other; a global layer's every key. No causal mask."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    reach = config["local_attention"] // 2
    model = load_model(str(FIXTURES / name))
    for case in references(name):
        keys = np.arange(len(case.ids))
        seen = np.abs(keys[None, :] - case.rows[:, None]) <= reach  # [R, T]
        for weights, kind in zip(case.attention, config["layer_types"], strict=True):
            local = kind == "sliding_attention"
            assert np.all(weights[:, ~seen] == 0) if local else np.all(weights > 0)
            assert np.all(weights[:, seen] > 0)
        ours = commands.run(case.text, model).weights[:, :, case.rows]
        assert_array_equal(ours == 0, case.attention == 0)


def test_masked_weights_are_exactly_zero_not_minus_zero():
    run = commands.run(PRONOUN, load_model(str(FIXTURES / "mistral")))
    masked = np.triu(np.ones(run.weights.shape[-2:], dtype=bool), k=1)
    assert not np.signbit(run.weights[..., masked]).any()


@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(2, 12)), elements=st.floats(-100, 100, width=32)))
def test_a_layer_norm_that_learns_nothing_centres_and_scales_each_row_and_stays_float32(x):
    """OLMo's LayerNorm: no gain, no shift."""
    y = layer_norm(x, Norm(None), 1e-5)
    assert y.dtype == np.float32
    exact = x.astype(np.float64)
    deviation = np.sqrt(exact.var(axis=-1, keepdims=True) + 1e-5)
    exact = (exact - exact.mean(axis=-1, keepdims=True)) / deviation  # mean 0, variance 1 less ε's share
    # float32 rounding of x and of its mean, magnified by the division: a few units in the last place of max |x|
    rounding = 1e-6 * (1 + np.abs(x).max(axis=-1, keepdims=True) / deviation)
    assert np.all(np.abs(y - exact) <= rounding)


@given(st.floats(0.01, 4.0), st.integers(0, 2**32 - 1))
def test_a_residual_multiplier_scales_what_each_sublayer_adds_to_the_stream(scale, seed):
    rng = np.random.default_rng(seed)
    d, f = 4, 6
    config = TransformerConfig(
        "granite", 1, 1, d, f, 10, 16, "silu", 1e-6, True, True, (LayerAttention(),), norm="rms", gated=True
    )
    scaled = dataclasses.replace(config, residual_scale=scale)
    gains = [Norm(rng.normal(1.0, 0.1, d).astype(np.float32)) for _ in range(2)]
    ffn = FeedForward(*(rng.normal(0, 0.3, shape).astype(np.float32) for shape in ((d, 2 * f), (f, d))), gated=True)
    block = Block(Projections(*[np.zeros((d, d), np.float32)] * 4), gains[0], ffn, gains[1])
    x, attended = rng.normal(size=(2, 3, d)).astype(np.float32)  # [T, d] each
    kept = attended.copy()
    h = x + attended * np.float32(scale)
    expected = h + feed_forward(normalized(h, gains[1], config), ffn, "silu") * np.float32(scale)
    assert_allclose(block_output(x, attended, block, scaled)[0], expected, rtol=1e-6, atol=1e-6)
    assert_array_equal(attended, kept)  # the trace's attention output, left as it was
    unscaled = x + attended
    assert_array_equal(
        block_output(x, attended, block, config)[0],
        unscaled + feed_forward(normalized(unscaled, gains[1], config), ffn, "silu"),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"parallel": True, "residual_scale": 0.5},
        {"parallel": True, "sandwich": True},
        {"pre_norm": False, "input_norms": False},
        {"pre_norm": False, "residual_scale": 0.5},
    ],
)
def test_norms_after_sublayers_and_their_scaling_are_refused_where_block_output_does_not_compute_them(changes):
    """A parallel or post-norm block has no norms after its sublayers and no residual_scale: asked for
    them, TransformerConfig refuses rather than runs without them."""
    with pytest.raises(ValueError, match="only in a sequential pre-norm block"):
        TransformerConfig(
            **{"family": "llama", "layers": 1, "heads": 1, "d_model": 4, "d_ff": 6, "vocab_size": 10}
            | {"max_positions": 16, "activation": "silu", "eps": 1e-6, "pre_norm": True, "causal": True}
            | {"layer_attention": (LayerAttention(),)}
            | changes
        )


@pytest.mark.parametrize(
    ("name", "renormalized"), [("mixtral", True), ("qwen2-moe", False), ("qwen3-moe", True), ("gpt-oss", True)]
)
def test_the_trace_records_where_each_layer_sent_each_token(name, renormalized):
    model = load_model(str(FIXTURES / name))
    run = commands.run(PRONOUN, model, steps=True)
    mixture = model.info.mixture
    assert len(run.trace.routing) == model.info.layers
    for routing, sparse in zip(run.trace.routing, mixture.sparse, strict=True):
        if not sparse:
            assert routing is None
            continue
        assert routing.experts.shape == routing.weights.shape == (len(run.tokens), mixture.per_token)
        assert np.all((routing.experts >= 0) & (routing.experts < mixture.experts))
        sums = routing.weights.sum(axis=-1)
        assert np.allclose(sums, 1, atol=1e-6) if renormalized else np.all(sums < 1)
        assert (routing.shared is not None) == (mixture.d_shared is not None)


@pytest.mark.parametrize(
    ("name", "gate"),
    [
        ("qwen3-moe", "mlp.experts.{e}.gate_proj.weight"),
        ("mixtral-fused", "mlp.experts.gate_up_proj"),
        ("gpt-oss", "mlp.experts.gate_up_proj"),
        ("gpt-oss-mxfp4", "mlp.experts.gate_up_proj"),  # read from its blocks and scales
    ],
)
def test_a_large_mixture_reads_only_the_experts_its_tokens_are_routed_to(monkeypatch, name, gate):
    from attncli import architectures
    from attncli.checkpoint import TensorFile

    read = []  # (tensor, the expert of a fused tensor) as each is read
    get, part, mxfp4_part = TensorFile.get, TensorFile.part, TensorFile.mxfp4_part
    monkeypatch.setattr(
        TensorFile, "get", lambda self, name, **out: read.append((name, None)) or get(self, name, **out)
    )
    monkeypatch.setattr(TensorFile, "part", lambda self, name, e: read.append((name, e)) or part(self, name, e))
    monkeypatch.setattr(
        TensorFile, "mxfp4_part", lambda self, name, e: read.append((name, e)) or mxfp4_part(self, name, e)
    )

    def experts_read(layer: int) -> list[int]:
        if "{e}" in gate:
            pattern = f"model.layers.{layer}.{gate}"
            return sorted(e for e in range(64) for tensor, _ in read if tensor == pattern.format(e=e))
        return sorted(e for tensor, e in read if tensor == f"model.layers.{layer}.{gate}")

    monkeypatch.setattr(architectures, "_KEPT_LAYERS_BYTES", 0)  # as a model too large to keep its layers
    model = load_model(str(FIXTURES / name))
    for _ in range(2):  # each text reads its experts again: nothing is kept
        read.clear()
        run = commands.run("The cat", model, steps=True)
        for layer, routing in enumerate(run.trace.routing):
            used = sorted(set(routing.experts.ravel().tolist()))
            assert len(used) < model.info.mixture.experts  # some expert goes unread
            assert experts_read(layer) == used
    monkeypatch.setattr(architectures, "_KEPT_LAYERS_BYTES", 256 * 2**20)  # a small model keeps what it read
    model = load_model(str(FIXTURES / name))
    commands.run("The cat", model)
    read.clear()
    commands.run("The cat", model)
    assert read == []


def test_gpt_neos_local_layers_hide_what_transformers_hides_and_its_global_layers_nothing():
    assert load_model(str(FIXTURES / "gpt-neo")).info.windows == [None, 5, None]  # global, local, global
    for case in references("gpt-neo")[1:]:  # texts longer than the window
        keys = np.arange(case.attention.shape[-1])
        outside = keys[None, :] <= case.rows[:, None] - 5  # [R, T] more than 4 keys back
        assert [bool(np.all(layer[:, outside] == 0)) for layer in case.attention] == [False, True, False]


def test_opts_positions_start_at_row_2_of_its_table():
    config = load_model(str(FIXTURES / "opt")).config
    assert position_ids(np.array([0, 5, 1, 1]), config).tolist() == [2, 3, 4, 5]  # padding or not
    assert (config.max_positions, config.max_length) == (514, 512)


def test_alibi_takes_the_place_of_positions_and_gpt_neo_leaves_its_scores_unscaled():
    bloom = commands.run(PRONOUN, load_model(str(FIXTURES / "bloom")), steps=True).trace
    assert bloom.positions is None and all(layer.q_rotated is None for layer in bloom.layers)
    assert all(np.array_equal(layer.alibi, bloom.layers[0].alibi) for layer in bloom.layers)
    assert bloom.layers[0].alibi.shape == (3, len(bloom.output))
    neo = commands.run(PRONOUN, load_model(str(FIXTURES / "gpt-neo")), steps=True).trace
    assert neo.positions is not None and all(np.array_equal(layer.scaled, layer.scores) for layer in neo.layers)


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


@given(
    st.integers(1, 9),
    st.sampled_from([(1, 1), (3, 1), (3, 2), (5, 4), (3, 8)]),
    st.integers(0, 2**32 - 1),
)
def test_the_convolution_sums_each_groups_neighbours_and_pads_the_ends_with_zeros(tokens, shape, seed):
    """y_t,o = b_o + Σ_m Σ_c x_{t+m-(k-1)/2, c} W[o, c, m] over the channels c of o's group, as torch's Conv1d
    computes it with padding (k - 1)/2, its weight [d, d/G, k] laid out [G, k, d/G, d/G]."""
    kernel, groups = shape
    rng = np.random.default_rng(seed)
    d = 8
    x, b = rng.normal(size=(tokens, d)), rng.normal(size=d)
    torch_weight = rng.normal(size=(d, d // groups, kernel))  # [out, in of its group, k]
    w = torch_weight.reshape(groups, d // groups, d // groups, kernel).transpose(0, 3, 2, 1)
    expected = np.tile(b, (tokens, 1))
    width = d // groups
    for t in range(tokens):
        for o in range(d):
            group = o // width
            for m in range(kernel):
                source = t + m - (kernel - 1) // 2
                if 0 <= source < tokens:
                    expected[t, o] += x[source, group * width : (group + 1) * width] @ torch_weight[o, :, m]
    assert_allclose(convolution(x, w, b), expected, rtol=1e-10, atol=1e-10)


def test_deberta_v2s_embeddings_are_summed_then_projected_and_its_first_layer_convolved():
    model = load_model(str(FIXTURES / "deberta-v2"))
    trace = model.run(model.tokenize(PRONOUN))
    weights, config = model.weights, model.config
    tokens = len(trace.output)
    summed = trace.embeddings + weights.position[:tokens] + weights.token_type[0]  # [T, e]: e narrower than d
    assert summed.shape[1] == config.d_embed < config.d_model
    assert_allclose(trace.layer_inputs[0], layer_norm(summed @ weights.project_in, weights.embedding_norm, config.eps))
    first = trace.layers[0]
    block = weights.blocks[0]
    h = layer_norm(trace.layer_inputs[0] + first.output, block.attention_norm, config.eps)
    ffn = feed_forward(h, block.feed_forward, config.activation)
    unconvolved = layer_norm(h + ffn, block.ffn_norm, config.eps)
    conv = weights.convolution
    convolved = np.tanh(convolution(trace.layer_inputs[0], conv.w, conv.b))
    assert_allclose(trace.convolution, convolved, rtol=1e-5, atol=1e-6)
    assert_allclose(trace.layer_outputs[0], layer_norm(unconvolved + convolved, conv.norm, config.eps), atol=2e-5)
    assert trace.layer_inputs[1] is trace.layer_outputs[0]  # the second layer reads the convolved output


def test_relative_embeddings_are_the_rows_read_normed_only_where_the_model_norms_them(tmp_path):
    normed = load_model(str(FIXTURES / "deberta-v2"))
    directory = copy_fixture(tmp_path, "deberta-v2")
    edit_config(directory, norm_rel_ebd="none")
    raw = load_model(str(directory))
    for model in (normed, raw):
        relative = relative_embeddings(model.config, model.weights, 20)
        rows = model.weights.relative[relative.rows]  # [R, d]
        if model.weights.relative_norm is None:
            assert_array_equal(relative.embeddings, rows)
        else:
            assert_allclose(relative.embeddings, layer_norm(rows, model.weights.relative_norm, model.config.eps))
    assert raw.weights.relative_norm is None and normed.weights.relative_norm is not None
    assert not np.allclose(commands.run(PRONOUN, raw).weights, commands.run(PRONOUN, normed).weights)


@pytest.mark.parametrize(("name", "kind"), [("bert", None), ("mpnet", "bias"), ("deberta-v3", "disentangled")])
def test_a_texts_relative_positions_are_a_bias_or_disentangled_attentions_or_none(name, kind):
    model = load_model(str(FIXTURES / name))
    relative = text_positions(model.config, model.weights, 7)
    if kind is None:
        assert relative is None  # the scores of most models read no relative positions
        return
    made = {"bias": relative.bias, "disentangled": relative.disentangled}
    assert [part for part, value in made.items() if value is not None] == [kind]
    assert relative.bias is None or relative.bias.shape == (model.config.heads, 7, 7)


def test_a_relative_position_bias_is_looked_up_once_and_added_to_every_layers_scores():
    model = load_model(str(FIXTURES / "mpnet"))
    trace = commands.run(PRONOUN, model, steps=True).trace
    bias = trace.layers[0].position_bias  # [h, T, T]
    assert bias.shape == (model.info.heads, len(trace.output), len(trace.output))
    assert all(layer.position_bias is bias for layer in trace.layers)  # one array for the text
    for layer in trace.layers:
        assert_allclose(layer.scaled, layer.scores / 2 + bias, atol=1e-6)
    # Without it (a table of zeros) the weights move far past the exactness bound: the bias is no rounding.
    without = dataclasses.replace(model.weights, relative_bias=np.zeros_like(model.weights.relative_bias))
    ids = np.array([t.id for t in model.tokenize(PRONOUN)])
    from attncli.transformer import forward

    assert np.abs(forward(ids, model.weights.word[ids], model.config, without).weights - trace.weights).max() > 0.01


def test_mpnets_positions_count_from_its_padding_index_whatever_pad_token_id_says(tmp_path):
    directory = copy_fixture(tmp_path, "mpnet")
    edit_config(directory, pad_token_id=0)
    config = load_model(str(directory)).config
    assert config.padding_idx == 1 and position_ids(np.array([0, 5, 6, 2]), config).tolist() == [2, 3, 4, 5]


@pytest.mark.parametrize(("name", "width"), [("electra", 12), ("albert", 8), ("albert-groups", 12)])
def test_narrow_embeddings_are_summed_and_normed_at_their_width_then_projected_in(name, width):
    model = load_model(str(FIXTURES / name))
    trace = model.run(model.tokenize(SENTENCE))
    weights, config = model.weights, model.config
    e = trace.embeddings + trace.positions + weights.token_type[0]  # [T, e]
    assert e.shape[-1] == width and weights.project_out is None
    assert_allclose(trace.normed_embeddings, layer_norm(e, weights.embedding_norm, config.eps), atol=1e-6)
    assert_allclose(trace.layer_inputs[0], trace.normed_embeddings @ weights.project_in + weights.project_in_bias)
    assert trace.layer_inputs[0].shape[-1] == config.d_model == 16


@pytest.mark.parametrize(
    ("name", "shared"),
    [("albert", [(0, 0), (0, 0)]), ("albert-groups", [(0, 0), (0, 1), (0, 0), (0, 1), (1, 0), (1, 1)])],
)
def test_layers_that_share_weights_run_the_same_blocks_each_read_once(monkeypatch, name, shared):
    from attncli.checkpoint import TensorFile

    read = []
    get = TensorFile.get
    monkeypatch.setattr(TensorFile, "get", lambda self, tensor, **out: read.append(tensor) or get(self, tensor, **out))
    model = load_model(str(FIXTURES / name))
    read.clear()  # what loading read: the config's shape checks read headers, not tensors
    blocks = model.weights.blocks
    assert list(model.config.shared_layers) == shared and len(blocks) == len(shared)
    assert all(blocks[i] is blocks[shared.index(weights)] for i, weights in enumerate(shared))
    assert len(read) == len(set(read))  # no tensor read twice
    stored = {re.search(r"groups\.(\d+)\.albert_layers\.(\d+)\.", tensor) for tensor in read} - {None}
    assert {tuple(map(int, found.groups())) for found in stored} == set(shared)


def test_megatron_normalises_before_each_sublayer_and_after_the_last_layer_not_its_embeddings():
    model = load_model(str(FIXTURES / "megatron-bert"))
    trace = model.run(model.tokenize(SENTENCE))
    weights, config = model.weights, model.config
    assert weights.embedding_norm is None
    assert_allclose(trace.layer_inputs[0], trace.embeddings + trace.positions + weights.token_type[0], atol=1e-6)
    for layer, block in enumerate(weights.blocks):
        assert_allclose(trace.layers[layer].x, layer_norm(trace.layer_inputs[layer], block.attention_norm, config.eps))
    assert_allclose(trace.output, layer_norm(trace.layer_outputs[-1], weights.final_norm, config.eps))


class _LayersAlone(Sequence):
    """A model's layers, read anew when asked for, that fail a read while an earlier layer is still alive."""

    def __init__(self, blocks):
        self.blocks, self.alive = blocks, []

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        assert all(alive() is None for alive in self.alive), f"layer {i} read while an earlier one is in memory"
        block = copy.copy(self.blocks[i])
        self.alive.append(weakref.ref(block))
        return block


def test_a_layer_read_from_disk_is_freed_before_the_next_is_read():
    """So that the next layer's weights reuse its memory rather than fresh pages: one layer in memory at a time."""
    model = load_model(BERT)
    ids = np.array([token.id for token in model.tokenize(SENTENCE)])
    embeddings = model.weights.word[ids]
    for run in (
        lambda weights: forward(ids, embeddings, model.config, weights, keep_steps=False),
        lambda weights: forward_packed([ids, ids[:3]], [embeddings, embeddings[:3]], model.config, weights),
    ):
        layers = _LayersAlone(model.weights.blocks)
        run(dataclasses.replace(model.weights, blocks=layers))
        assert len(layers.alive) == model.config.layers


def _parts_sum(parts) -> np.ndarray:
    """embed + Σ_l (Σ_h heads + attention bias + feed-forward): [p, d] float64."""
    total = parts.embed.astype(np.float64)
    for layer in parts.layers:
        total = total + layer.heads.sum(axis=0, dtype=np.float64) + layer.feed_forward
        if layer.attention_bias is not None:
            total = total + layer.attention_bias
    return total


def _assert_parts_add_up(parts, stream: np.ndarray) -> None:
    """The parts add up to the last residual stream, to float32 rounding of the stream's largest number."""
    assert_array_equal(parts.stream, stream)
    assert_allclose(_parts_sum(parts), stream, rtol=0, atol=2e-6 * max(1.0, float(np.abs(stream).max())))


@pytest.mark.parametrize("name", [name for name in [*DECODERS, "gpt2"] if name != "opt-post-norm"])
def test_a_pre_norm_models_last_residual_stream_is_the_sum_of_its_parts(name):
    """Embeddings, each head's z_h W_O^h, each attention bias and each feed-forward network (or mixture of
    experts), through the norms after sublayers with their scales frozen (Gemma 2 and 3, OLMo 2) and Granite's
    residual multiplier: at every position asked, they add up to x_L (the stream the final norm reads)."""
    model = load_model(str(FIXTURES / name))
    ids = np.array([token.id for token in model.tokenize(PRONOUN)])
    positions = np.array([0, len(ids) // 2, len(ids) - 1])
    steps = forward(ids, model.weights.word[ids], model.config, model.weights)
    trace = forward(ids, model.weights.word[ids], model.config, model.weights, keep_steps=False, decompose_at=positions)
    parts = trace.residual_parts
    assert_array_equal(parts.positions, positions)
    assert len(parts.layers) == model.config.layers
    assert all(layer.heads.shape == (model.config.heads, 3, model.config.d_model) for layer in parts.layers)
    assert_array_equal(trace.weights, steps.weights)  # asking for the parts changes nothing else
    assert_array_equal(trace.output, steps.output)
    _assert_parts_add_up(parts, steps.layer_outputs[-1][positions])
    assert_array_equal(parts.embed, steps.layer_inputs[0][positions])
    for layer, part in enumerate(parts.layers):  # each layer's heads and bias are what its attention added
        attention = steps.layers[layer]
        without_ffn = part.heads.sum(axis=0, dtype=np.float64)
        if part.attention_bias is not None:
            without_ffn += part.attention_bias
        added = steps.layer_outputs[layer][positions] - steps.layer_inputs[layer][positions] - part.feed_forward
        assert_allclose(without_ffn, added, rtol=0, atol=4e-6 * max(1.0, float(np.abs(attention.output).max())))


def test_a_forward_pass_without_decompose_at_keeps_no_parts():
    model = load_model(str(FIXTURES / "llama"))
    assert model.run(model.tokenize(SENTENCE)).residual_parts is None


@given(small_pre_norm_models(), st.integers(1, 9), st.data())
def test_the_parts_of_any_pre_norm_models_stream_add_up_to_it(model, tokens, data):
    config, weights = model
    ids = np.arange(tokens) % 11
    positions = np.array(data.draw(st.lists(st.integers(0, tokens - 1), min_size=1, max_size=3)))
    steps = forward(ids, weights.word[ids], config, weights)
    trace = forward(ids, weights.word[ids], config, weights, keep_steps=False, decompose_at=positions)
    _assert_parts_add_up(trace.residual_parts, steps.layer_outputs[-1][positions])


@given(
    arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(2, 9)), elements=st.floats(-9, 9)),
    st.sampled_from(["rms", "layer"]),
    st.integers(0, 2**32 - 1),
)
def test_a_norm_with_its_scale_frozen_is_linear_in_the_parts_of_what_it_normalises(parts, kind, seed):
    """frozen_norm of each part, plus the shift, is the norm of their sum: the model's own norm, to rounding."""
    rng = np.random.default_rng(seed)
    d = parts.shape[-1]
    config = TransformerConfig("llama", 1, 1, d, 4, 11, 32, "silu", 1e-5, True, True, (LayerAttention(),), norm=kind)
    gain, shift = rng.normal(1, 0.3, d).astype(np.float32), rng.normal(0, 0.3, d).astype(np.float32)
    norm = Norm(gain, shift if kind == "layer" else None)
    whole = parts.sum(axis=0)  # [p, d]
    scaled = frozen_norm(parts, norm_scale(whole, config), norm, config).sum(axis=0, dtype=np.float64)
    if norm.bias is not None:
        scaled += norm.bias
    expected = normalized(whole, norm, config)
    assert_allclose(scaled, expected, rtol=0, atol=1e-5 * (1 + np.abs(parts).max() * norm_scale(whole, config).max()))


def test_a_decomposing_forward_pass_frees_each_layer_before_reading_the_next():
    """The parts kept hold no view of a layer's weights (Phi's attention output bias among them)."""
    model = load_model(str(FIXTURES / "phi"))
    ids = np.array([token.id for token in model.tokenize(SENTENCE)])
    layers = _LayersAlone(model.weights.blocks)
    weights = dataclasses.replace(model.weights, blocks=layers)
    forward(ids, model.weights.word[ids], model.config, weights, keep_steps=False, decompose_at=np.array([1]))
    assert len(layers.alive) == model.config.layers
