"""The language-model head: logits as exact as transformers' on every decoder, what config.json says of them,
and the checkpoints whose head attncli refuses."""

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import (
    DECODERS,
    FIXTURES,
    assert_as_exact_as_transformers,
    copy_fixture,
    edit_config,
    edit_tensors,
    needs_minilm,
    references,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from attncli import commands, transformer
from attncli.checkpoint import TensorFile
from attncli.errors import DataError
from attncli.models import load_model
from attncli.transformer import HeadTransform, Norm, Unembedding, head_input, logits

# Every decoder fixture, and GPT-2 (tested with the encoders elsewhere: its positions are learned).
WITH_HEADS = ["gpt2", *DECODERS]
# The encoders with masked-LM heads: each kind of head (tests/fixtures/make_fixtures.py, MASKED_LM_MADE).
MASKED_LM = [
    "distilbert",
    "deberta-v3",
    "modernbert",
    "bert-mlm",
    "megatron-bert-mlm",
    "roberta-mlm",
    "mpnet-mlm",
    "albert-mlm",
    "electra-mlm",
    "deberta-v2-mlm",
    "deberta-v3-lm-predictions",
    "modernbert-biases-mlm",
]


@dataclass
class LogitReference:
    """What transformers computed of one text's logits (see make_fixtures.py's logit_references)."""

    text: str
    ids: np.ndarray  # [T] the text's token ids
    rows: np.ndarray  # [R] the positions kept
    logits: np.ndarray  # [R, I] float64, the truth at the ids kept
    error: np.ndarray  # transformers' float32 run's [root mean square, largest] distance to it


def _logit_references(name: str) -> tuple[np.ndarray, list[LogitReference]]:
    """The token ids logits.npz keeps, and each of its texts' reference."""
    data = np.load(FIXTURES / name / "logits.npz")
    fields = ("ids", "rows", "logits", "logits_error")
    return data["logit_ids"], [
        LogitReference(str(text), *(data[f"{field}_{i}"] for field in fields)) for i, text in enumerate(data["texts"])
    ]


@pytest.mark.parametrize("name", WITH_HEADS + MASKED_LM)
def test_logits_are_as_exact_as_transformers(name):
    """The rule over every kept row of every text at once (and each text's largest difference alone): a row's
    logits are a linear map of its hidden state, whose error the attention tests hold to the rule text by text,
    and a short text's few rows at a sixteenth of the vocabulary are too small a sample of it alone (SmolLM3's
    11-token text: 1.42 times transformers' distance over the whole vocabulary, 1.58 over the ids kept)."""
    model = load_model(str(FIXTURES / name))
    ids, texts = _logit_references(name)
    assert ids[-1] == model.unembedding.vocab_size - 1
    assert max(len(case.ids) for case in texts) >= 450
    ours, squares = [], 0.0
    for case in texts:
        run = commands.run(case.text, model)
        assert [t.id for t in run.tokens] == case.ids.tolist()
        z = logits(run.trace.output[case.rows], model.unembedding)
        assert z.dtype == np.float32 and z.shape == (len(case.rows), model.unembedding.vocab_size)
        what = f"{name}, {len(case.ids)} tokens: logits"
        largest = np.abs(z[:, ids] - case.logits).max()
        assert largest <= max(1e-5, 3 * case.error[1]), what
        # and within 1e-4 of transformers' float32 logits, which are within error[1] of the truth
        assert largest + case.error[1] <= 1e-4, what
        ours.append(z[:, ids].ravel())
        squares += case.error[0] ** 2 * case.logits.size
    truth = np.concatenate([case.logits.ravel() for case in texts])
    pooled = np.array([np.sqrt(squares / truth.size), max(case.error[1] for case in texts)])
    assert_as_exact_as_transformers(np.concatenate(ours), truth, pooled, f"{name}: logits of every text")


def test_every_kind_of_head_is_among_the_fixtures():
    heads = {name: load_model(str(FIXTURES / name)).unembedding for name in WITH_HEADS}
    assert heads["llama"].w.name == "model.embed_tokens.weight"  # tied
    assert heads["opt-post-norm"].w.name == "model.decoder.embed_tokens.weight"  # tied, read through project_out
    assert heads["qwen2"].w.name == "lm_head.weight" and heads["gpt-neox"].w.name == "embed_out.weight"
    assert heads["phi"].bias is not None and heads["gptj"].bias is not None
    assert heads["gemma2"].soft_cap == 30.0 and heads["gemma3"].soft_cap is None
    assert heads["cohere"].scale == 0.0625 and heads["granite"].scale == pytest.approx(1 / 5)
    assert heads["gemma3-multimodal"].soft_cap is None


@pytest.mark.parametrize("name", ["llama", "opt-post-norm", "gemma2", "olmo", "gpt2"])
def test_the_trace_output_is_the_head_input_of_the_last_layer(name):
    model = load_model(str(FIXTURES / name))
    trace = model.run(model.tokenize(references(name)[1].text))
    assert_array_equal(head_input(trace.layer_outputs[-1], model.config, model.weights), trace.output)


def test_a_post_norm_model_s_head_reads_the_last_layer_itself():
    model = load_model(str(FIXTURES / "opt-post-norm"))
    assert model.weights.final_norm is None and model.weights.project_out is not None
    x = np.random.default_rng(0).normal(size=(3, model.config.d_model)).astype(np.float32)
    assert_array_equal(head_input(x, model.config, model.weights), x @ model.weights.project_out)


def _head_of(directory) -> Unembedding:
    return load_model(str(directory)).unembedding


def _head(vocab=7, d=5, seed=0, **options) -> tuple[np.ndarray, Unembedding]:
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(3, d)).astype(np.float32)
    return h, Unembedding(rng.normal(size=(vocab, d)).astype(np.float32), **options)


def test_logits_add_the_bias_then_scale_then_soft_cap():
    h, head = _head(bias=np.arange(7, dtype=np.float32))
    plain = h @ head.w.T + head.bias
    head.scale = 3.0
    assert_allclose(logits(h, head), 3 * plain, rtol=1e-6)
    head.soft_cap = 2.0
    assert_allclose(logits(h, head), 2 * np.tanh(3 * plain / 2), rtol=1e-6, atol=1e-6)


def test_a_masked_lm_head_transforms_before_its_decoder():
    rng = np.random.default_rng(1)
    h, head = _head(d=4)
    w, b = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    gain, shift = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    head.transform = HeadTransform(w, b, "relu", Norm(gain, shift), 1e-5)
    h = rng.normal(size=(3, 5)).astype(np.float32)
    hidden = np.maximum(h.astype(np.float64) @ w + b, 0)
    normed = (hidden - hidden.mean(-1, keepdims=True)) / np.sqrt(hidden.var(-1, keepdims=True) + 1e-5) * gain + shift
    assert_allclose(logits(h, head), normed @ head.w.T, rtol=1e-5, atol=1e-5)


@given(
    arrays(np.float32, (2, 3), elements=st.floats(-1e3, 1e3, width=32)),
    st.floats(0.1, 100),
    st.integers(1, 40),
)
def test_soft_capped_logits_stay_within_the_cap_and_blocks_change_nothing(h, cap, block):
    w = np.random.default_rng(2).normal(size=(11, 3)).astype(np.float32)
    whole = logits(h, Unembedding(w, soft_cap=cap))
    assert np.all(np.abs(whole) <= np.float32(cap))
    saved = transformer._LOGIT_BLOCK
    try:
        transformer._LOGIT_BLOCK = block
        assert_allclose(logits(h, Unembedding(w, soft_cap=cap)), whole, rtol=1e-6, atol=1e-6 * cap)
    finally:
        transformer._LOGIT_BLOCK = saved


def test_a_table_read_from_disk_gives_the_logits_its_array_gives(monkeypatch):
    model = load_model(str(FIXTURES / "qwen2"))
    head = model.unembedding
    h = np.random.default_rng(3).normal(size=(2, model.config.d_model)).astype(np.float32)
    monkeypatch.setattr(transformer, "_LOGIT_BLOCK", 7 * model.config.d_model)  # many blocks, the last short
    assert_allclose(logits(h, head), h @ head.w[:].T, rtol=1e-6, atol=1e-6)


def test_start_up_and_attention_read_no_head(monkeypatch):
    read = []
    for method in ("get", "rows", "part"):
        original = getattr(TensorFile, method)

        def recording(self, name, *args, original=original, **kwargs):
            read.append(name)
            return original(self, name, *args, **kwargs)

        monkeypatch.setattr(TensorFile, method, recording)
    model = load_model(str(FIXTURES / "qwen2"))
    commands.run("The cat sat on the mat.", model)
    assert "lm_head.weight" not in read
    assert model.unembedding.w.name == read[-1] == "lm_head.weight"


def test_the_sample_model_has_no_head():
    with pytest.raises(DataError, match="no language-model head: it can show attention, not predictions"):
        _head_of("sample")


def test_an_untied_checkpoint_without_its_head_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "llama-linear")
    edit_tensors(directory, lambda tensors: {k: v for k, v in tensors.items() if k != "lm_head.weight"})
    message = (
        "model.safetensors has no language-model head (lm_head.weight) and config.json does not tie it to the word "
        "embeddings: this checkpoint can show attention, not predictions"
    )
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _head_of(directory)
    load_model(str(directory)).run(load_model(str(directory)).tokenize("The cat"))  # attention still runs


@pytest.mark.parametrize(
    ("name", "ties"),
    [("llama", False), ("qwen3-moe", False), ("olmoe", False), ("gemma", True), ("gpt2", True), ("cohere", True)],
)
def test_tie_word_embeddings_defaults_as_the_family_s_configuration(tmp_path, name, ties):
    directory = copy_fixture(tmp_path, name)  # each tied, without a head of its own
    settings = json.loads((directory / "config.json").read_text())
    assert settings.pop("tie_word_embeddings") is True
    (directory / "config.json").write_text(json.dumps(settings))
    if ties:
        assert _head_of(directory).w.name.endswith(("embed_tokens.weight", "wte.weight"))
    else:
        with pytest.raises(DataError, match="does not tie it to the word embeddings"):
            _head_of(directory)


def test_a_head_of_its_own_is_read_whatever_config_json_ties(tmp_path):
    directory = copy_fixture(tmp_path, "llama-linear")
    edit_config(directory, tie_word_embeddings=True)
    assert _head_of(directory).w.name == "lm_head.weight"


def test_a_tied_checkpoint_that_config_json_unties_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "llama")
    edit_config(directory, tie_word_embeddings=False)
    with pytest.raises(DataError, match=r"no language-model head \(lm_head.weight\)"):
        _head_of(directory)


def test_tie_word_embeddings_must_be_true_or_false(tmp_path):
    directory = copy_fixture(tmp_path, "llama")
    edit_config(directory, tie_word_embeddings="yes")
    with pytest.raises(DataError, match="tie_word_embeddings should be true or false"):
        _head_of(directory)


def test_a_head_of_the_wrong_shape_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "llama-linear")
    edit_tensors(directory, lambda tensors: tensors | {"lm_head.weight": tensors["lm_head.weight"][:-1]})
    with pytest.raises(
        DataError, match=r"model.safetensors: lm_head.weight has shape \(375, 16\), but config.json implies \(376, 16\)"
    ):
        _head_of(directory)


def test_a_missing_head_bias_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "gptj")
    edit_tensors(directory, lambda tensors: {k: v for k, v in tensors.items() if k != "lm_head.bias"})
    with pytest.raises(DataError, match=r"no tensor lm_head\.bias"):
        _head_of(directory)


def test_final_logit_softcapping_is_read_as_gemma_reads_it(tmp_path):
    directory = copy_fixture(tmp_path, "gemma2")
    edit_config(directory, final_logit_softcapping=None)
    assert _head_of(directory).soft_cap is None
    edit_config(directory, final_logit_softcapping=12.5)
    assert _head_of(directory).soft_cap == 12.5
    edit_config(directory, final_logit_softcapping=-1)
    with pytest.raises(DataError, match="final_logit_softcapping should be a finite positive number, not -1"):
        _head_of(directory)
    directory = copy_fixture(tmp_path, "gemma3")
    edit_config(directory, final_logit_softcapping=7.0)
    assert _head_of(directory).soft_cap == 7.0


def test_gemma2_soft_caps_at_30_where_config_json_says_nothing(tmp_path):
    directory = copy_fixture(tmp_path, "gemma2")
    settings = json.loads((directory / "config.json").read_text())
    settings.pop("final_logit_softcapping", None)
    (directory / "config.json").write_text(json.dumps(settings))
    assert _head_of(directory).soft_cap == 30.0


def test_a_multimodal_gemma3_soft_caps_nothing_and_ties_as_its_outer_config_says(tmp_path):
    directory = copy_fixture(tmp_path, "gemma3-multimodal")
    config = json.loads((directory / "config.json").read_text())
    edit_config(directory, text_config=config["text_config"] | {"final_logit_softcapping": 5.0})
    assert _head_of(directory).soft_cap is None
    edit_config(directory, tie_word_embeddings=False)
    with pytest.raises(DataError, match="does not tie it"):
        _head_of(directory)


@pytest.mark.parametrize(
    ("name", "key", "value", "scale"), [("cohere", "logit_scale", 0.5, 0.5), ("granite", "logits_scaling", 4, 0.25)]
)
def test_logit_scales_are_read(tmp_path, name, key, value, scale):
    directory = copy_fixture(tmp_path, name)
    edit_config(directory, **{key: value})
    assert _head_of(directory).scale == scale
    edit_config(directory, **{key: None})
    with pytest.raises(DataError, match=f"config.json: {key} null is not supported"):
        _head_of(directory)
    edit_config(directory, **{key: 0})
    with pytest.raises(DataError, match=f"config.json: {key} should be a finite positive number, not 0"):
        _head_of(directory)


def test_rows_read_a_slice_of_a_table_in_one_go():
    rows = TensorFile.open(FIXTURES / "gptj").rows("lm_head.weight")  # float16 on disk
    whole = rows.all()
    assert_array_equal(rows[3:9], whole[3:9])
    assert_array_equal(rows[-2:], whole[-2:])
    assert rows[5:5].shape == (0, whole.shape[1])
    with pytest.raises(IndexError, match="a step of 1"):
        rows[::2]


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("bert", "cls.predictions.transform.dense.weight"),
        ("roberta", "lm_head.dense.weight"),
        ("electra", "generator_predictions.dense.weight"),  # a discriminator, not the generator
        ("albert", "predictions.dense.weight"),
        ("modernbert-biases", "head.dense.weight"),
        ("deberta-v2", "cls.predictions.transform.dense.weight"),
    ],
)
def test_an_encoder_saved_without_its_masked_lm_head_is_refused(name, missing):
    message = f"model.safetensors has no masked-language-model head ({missing}): this checkpoint can show attention"
    with pytest.raises(DataError, match=re.escape(message)):
        _head_of(FIXTURES / name)


@needs_minilm
def test_a_sentence_transformers_checkpoint_has_no_head():
    with pytest.raises(DataError, match=re.escape("no masked-language-model head (cls.predictions.transform.dense")):
        _head_of("minilm")


def test_a_masked_lm_decoder_untied_without_its_weights_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "bert-mlm")
    edit_config(directory, tie_word_embeddings=False)
    with pytest.raises(DataError, match=re.escape("no language-model head (cls.predictions.decoder.weight)")):
        _head_of(directory)


def test_deberta_s_legacy_flag_chooses_its_head(tmp_path):
    assert _head_of(FIXTURES / "deberta-v3").bias is not None
    directory = copy_fixture(tmp_path, "deberta-v3")
    edit_config(directory, legacy=False)
    with pytest.raises(DataError, match=re.escape("no masked-language-model head (lm_predictions.lm_head.dense")):
        _head_of(directory)
    head = _head_of(FIXTURES / "deberta-v3-lm-predictions")
    assert head.w.name == "deberta.embeddings.word_embeddings.weight"  # whatever config.json ties
    directory = copy_fixture(tmp_path, "deberta-v3-lm-predictions")
    edit_config(directory, tie_word_embeddings=False)
    assert _head_of(directory).w.name == head.w.name


def test_modernbert_s_head_keys_are_read(tmp_path):
    head = _head_of(FIXTURES / "modernbert-biases-mlm")
    assert head.transform.b is not None and head.bias is None and head.transform.activation == "silu"
    assert head.transform.norm.bias is not None  # the model's norm_bias
    head = _head_of(FIXTURES / "modernbert")
    assert head.transform.b is None and head.bias is not None and head.transform.activation == "gelu"
    assert head.transform.norm.bias is None
    directory = copy_fixture(tmp_path, "modernbert-biases-mlm")
    edit_config(directory, classifier_activation="softplus")
    with pytest.raises(DataError, match=re.escape("config.json: classifier_activation 'softplus' is not supported")):
        _head_of(directory)
    edit_config(directory, classifier_activation="gelu", classifier_bias=False)
    assert _head_of(directory).transform.b is None  # as transformers, which leaves the stored one unread
    edit_config(directory, decoder_bias=True)
    with pytest.raises(DataError, match=re.escape("model.safetensors: no tensor decoder.bias")):
        _head_of(directory)


def test_the_transform_reads_the_word_embeddings_width(tmp_path):
    for name in ("albert-mlm", "electra-mlm", "deberta-v2-mlm"):
        model = load_model(str(FIXTURES / name))
        e = model.config.d_embed
        assert e is not None and e < model.config.d_model
        assert model.unembedding.transform.w.shape == (model.config.d_model, e)


@pytest.mark.parametrize("count", [1, 7, 300, 1000])
def test_rows_read_in_blocks_are_the_table(count):
    rows = TensorFile.open(FIXTURES / "gptj").rows("lm_head.weight")
    whole = rows.all()
    blocks = [block.copy() for block in rows.blocks(count)]  # each block's buffers are the next one's
    assert all(len(block) == min(count, len(whole)) for block in blocks[:-1])
    assert_array_equal(np.concatenate(blocks), whole)
