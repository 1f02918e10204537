"""attribution.py and the attribute command: direct logit attribution as exact as transformers' (TransformerLens's
way, through hooks), its parts adding up to the logit on every pre-norm decoder, and what it refuses."""

import dataclasses

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
    PRONOUN,
    SENTENCE,
    assert_as_exact_as_transformers,
    small_pre_norm_models,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from attncli import attribution, commands
from attncli.errors import BadInput, DataError
from attncli.models import load_model
from attncli.transformer import HeadTransform, Norm, Unembedding, forward, head_input, logits

# The decoders whose attribution.npz holds transformers' attribution (see make_fixtures.ATTRIBUTION_MODULES).
REFERENCED = ["llama", "gemma2", "olmo2", "granite", "qwen2-moe", "gpt-neox", "phi", "cohere", "gpt2"]
PRE_NORM_DECODERS = [name for name in [*DECODERS, "gpt2"] if name != "opt-post-norm"]


def _by_kind(result, kind: str) -> np.ndarray:
    return np.array([v for c, v in zip(result.components, result.contributions, strict=True) if c.kind == kind])


@pytest.mark.parametrize("name", REFERENCED)
def test_each_parts_contribution_is_as_exact_as_transformers(name):
    """Against transformers' float64 run, with hooks on its modules (make_fixtures.attribution): the embeddings,
    every head, attention bias and feed-forward network, and the constant, at the last token, for the token the
    float64 run predicts."""
    model = load_model(str(FIXTURES / name))
    truth = np.load(FIXTURES / name / "attribution.npz")
    for i, text in enumerate(truth["texts"]):
        result = commands.attribute(str(text), model)
        assert [t.id for t in result.tokens] == truth[f"ids_{i}"].tolist()
        assert result.target.id == truth[f"target_{i}"] and result.predicted
        layers, heads = model.info.layers, model.info.heads
        biases = _by_kind(result, "attn bias")
        ours = np.concatenate(
            [
                _by_kind(result, "embed"),
                _by_kind(result, "head").reshape(layers, heads).ravel(),
                biases if biases.size else np.zeros(layers),
                _by_kind(result, "mlp"),
                _by_kind(result, "bias") if "bias" in result.totals else np.zeros(1),
            ]
        )
        fields = ("embed", "heads", "attention_bias", "mlp", "bias")
        expected = np.concatenate([truth[f"{field}_{i}"].reshape(-1) for field in fields])
        assert_as_exact_as_transformers(ours, expected, truth[f"error_{i}"], f"{name}, text {i}")
        assert abs(result.logit - float(truth[f"logit_{i}"])) <= 1e-4


@pytest.mark.parametrize("name", PRE_NORM_DECODERS)
def test_the_contributions_add_up_to_the_heads_logit_on_every_pre_norm_decoder(name):
    """To 1e-4 of transformer.logits' value for the target (before the soft cap, where the head has one), at the last
    token and at another, for the predicted token and against another."""
    model = load_model(str(FIXTURES / name))
    tokens = model.tokenize(PRONOUN)
    uncapped = dataclasses.replace(model.unembedding, soft_cap=None)
    trace = model.run(tokens, keep_steps=False)
    for at, versus in ((None, None), ("3", "#5")):
        result = commands.attribute(PRONOUN, model, at=at, versus=versus)
        position = len(tokens) - 1 if at is None else int(at)
        z = logits(trace.output[position][None], uncapped)[0].astype(np.float64)  # [vocab]
        expected = z[result.target.id] - (0.0 if versus is None else z[5])
        assert abs(result.logit - expected) <= 1e-4
        assert abs(result.contributions.sum() - expected) <= 1e-4
        assert result.position == position
        if at is None:
            assert result.target.id == int(np.argmax(z))
        assert len(result.components) == len(result.contributions)
        assert sum(result.totals.values()) == pytest.approx(result.contributions.sum(), abs=1e-9)


def test_a_difference_is_the_difference_of_the_two_attributions():
    model = load_model(str(FIXTURES / "phi"))
    both = commands.attribute(SENTENCE, model, target="#7", versus="#11")
    seven, eleven = (commands.attribute(SENTENCE, model, target=f"#{i}") for i in (7, 11))
    assert [c.name for c in both.components] == [c.name for c in seven.components]
    assert_allclose(both.contributions, seven.contributions - eleven.contributions, atol=1e-9)
    assert both.logit == pytest.approx(seven.logit - eleven.logit, abs=1e-5)
    assert not both.predicted and both.versus.id == 11


def test_components_are_named_and_ordered_as_the_model_runs():
    result = commands.attribute(SENTENCE, load_model(str(FIXTURES / "phi")))  # an attention bias, a head's bias
    names = [c.name for c in result.components]
    heads = result.model.heads
    assert names[: heads + 3] == ["embed", *(f"L0H{h}" for h in range(heads)), "L0 attn bias", "L0 mlp"]
    assert names[-1] == "bias" and len(names) == 1 + result.model.layers * (heads + 2) + 1
    assert all((c.head is None) == (c.kind != "head") for c in result.components)
    ranked = [result.contributions[i] for i in result.ranking]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) == result.model.layers * heads
    llama = commands.attribute(SENTENCE, load_model(str(FIXTURES / "llama")))  # RMSNorm, no biases: no constant
    assert "bias" not in llama.totals and "attn bias" not in llama.totals


def test_a_soft_capped_head_is_attributed_before_its_cap():
    result = commands.attribute(SENTENCE, load_model(str(FIXTURES / "gemma2")))
    assert result.soft_cap == 30.0
    assert result.to_json()["soft_cap"] == 30.0
    assert commands.attribute(SENTENCE, load_model(str(FIXTURES / "llama"))).soft_cap is None


@settings(max_examples=60, deadline=None)
@given(small_pre_norm_models(), st.integers(1, 7), st.booleans(), st.booleans(), st.data())
def test_any_pre_norm_models_contributions_add_up_to_its_logit(model, tokens, bias, scaled, data):
    """Random models (see helpers.small_pre_norm_models) with a random head: a bias, a logit scale, a stream projected
    out; at a random position, for a random target against another."""
    config, weights = model
    rng = np.random.default_rng(tokens)
    width = config.d_model if weights.project_out is None else weights.project_out.shape[1]
    unembedding = Unembedding(
        rng.normal(0, 1, (13, width)).astype(np.float32),
        rng.normal(0, 1, 13).astype(np.float32) if bias else None,
        scale=0.25 if scaled else None,
    )
    ids = np.arange(tokens) % 11
    position = data.draw(st.integers(0, tokens - 1))
    target, versus = data.draw(st.integers(0, 12)), data.draw(st.none() | st.integers(0, 12))
    trace = forward(ids, weights.word[ids], config, weights, keep_steps=False, decompose_at=np.array([position]))
    _, vectors = attribution.components(trace.residual_parts, 0)
    contributions, constant = attribution.direct_logit_attribution(
        vectors, trace.residual_parts.stream[0], weights.final_norm, config, unembedding, target, versus,
        weights.project_out,
    )  # fmt: skip
    z = logits(head_input(trace.residual_parts.stream, config, weights), unembedding)[0].astype(np.float64)
    expected = z[target] - (0.0 if versus is None else z[versus])
    total = contributions.sum() + (constant or 0.0)
    assert abs(total - expected) <= 1e-4 * (1 + np.abs(z).max())
    assert attribution.head_logit(trace.output[position], unembedding, target, versus) == pytest.approx(
        expected, abs=1e-5 * (1 + np.abs(z).max())
    )
    assert (constant is None) == (unembedding.bias is None and (weights.final_norm.bias is None))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("#7", 7), ("Ġcat", "Ġcat"), ("␣cat", "Ġcat"), (" cat", "Ġcat")],
)
def test_a_token_is_named_by_its_id_its_piece_as_shown_or_a_text_of_one_token(spec, expected):
    model = load_model(str(FIXTURES / "gpt2"))
    token_id = commands.vocabulary_token(model, spec, "target", model.unembedding.vocab_size)
    assert token_id == (expected if isinstance(expected, int) else model.tokenizer.token_to_id(expected))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (" catapult", "target ' catapult' is not one token of the vocabulary: the tokenizer makes '␣cat' 'a' 'p'"),
        ("", "the tokenizer makes nothing of it"),
        ("#999999", "target #999999 is past the vocabulary's last id"),
    ],
)
def test_a_token_that_is_not_one_of_the_vocabulary_is_refused_naming_its_pieces(spec, message):
    model = load_model(str(FIXTURES / "gpt2"))
    with pytest.raises(BadInput, match=message):
        commands.vocabulary_token(model, spec, "target", model.unembedding.vocab_size)


def test_a_post_norm_model_has_no_direct_path_to_its_logits():
    with pytest.raises(BadInput, match="normalises the residual stream after every sublayer"):
        commands.attribute(SENTENCE, load_model(str(FIXTURES / "opt-post-norm")))


def test_a_head_with_a_transform_is_not_linear_and_is_refused():
    """A masked-LM head's dense layer, activation and LayerNorm before its logits."""
    model = load_model(str(FIXTURES / "llama"))
    d = model.info.d_model
    transform = HeadTransform(np.eye(d, dtype=np.float32), None, "gelu", Norm(np.ones(d, np.float32)), 1e-5)
    model.unembedding = dataclasses.replace(model.unembedding, transform=transform)
    with pytest.raises(BadInput, match="masked-LM head passes the stream through a dense layer"):
        commands.attribute(SENTENCE, model)


def test_a_checkpoint_without_a_head_is_refused():
    with pytest.raises(DataError, match="language-model head"):
        commands.attribute(SENTENCE, load_model(str(FIXTURES / "bert")))


def test_the_sample_model_has_no_head_to_attribute():
    with pytest.raises(DataError, match="no language-model head"):
        commands.attribute(SENTENCE, load_model())


def test_versus_the_target_itself_is_refused():
    with pytest.raises(BadInput, match="versus '#3' is the target itself"):
        commands.attribute(SENTENCE, load_model(str(FIXTURES / "llama")), target="#3", versus="#3")
