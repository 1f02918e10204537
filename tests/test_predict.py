"""predict: the head's most probable tokens as exact as transformers' on every family with a head, at a decoder's
last token or any position, at an encoder's mask tokens; its view, CSV and refusals."""

import csv
import io
import json

import numpy as np
import pytest
from helpers import (
    FIXTURES,
    HOSTILE,
    assert_as_exact_as_transformers,
    attncli,
    clean_error,
    copy_fixture,
    edit_tensors,
    needs_minilm,
    render_text,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from test_unembedding import MASKED_LM, WITH_HEADS, _logit_references

from attncli import analysis, commands
from attncli.errors import DataError
from attncli.models import load_model
from attncli.transformer import logits
from attncli.views import view

QWEN2 = str(FIXTURES / "qwen2")
BERT_MLM = str(FIXTURES / "bert-mlm")
ROBERTA_MLM = str(FIXTURES / "roberta-mlm")
MASKED = "The cat sat on the [MASK] with a [MASK]."


@pytest.mark.parametrize("name", WITH_HEADS + MASKED_LM)
def test_the_most_probable_tokens_at_the_last_token_are_transformers(name):
    """The ids in transformers' order; their probabilities to the exactness rule over every text's at once (one
    row's ten probabilities alone are too small a sample, as the logits' rows are: see test_unembedding). An
    encoder predicts at its last token as --at asks (the [SEP] a masked LM reconstructs)."""
    model = load_model(str(FIXTURES / name))
    data = np.load(FIXTURES / name / "logits.npz")
    ours, truths, squares = [], [], 0.0
    for i, case in enumerate(_logit_references(name)[1]):
        at = None if model.info.causal else str(len(case.ids) - 1)
        result = commands.predict(case.text, model, top=10, at=at)
        assert result.position.index == len(case.ids) - 1
        assert [p.id for p in result.position.predictions] == data[f"top_ids_{i}"].tolist(), (name, i)
        ours.append([p.probability for p in result.position.predictions])
        truths.append(data[f"top_probabilities_{i}"])
        squares += data[f"top_probabilities_error_{i}"][0] ** 2
    error = [np.sqrt(squares / len(truths)), max(data[key][1] for key in data if key.startswith("top_probabilities_e"))]
    assert_as_exact_as_transformers(np.ravel(ours), np.ravel(truths), error, f"{name}: top probabilities")


def test_predictions_are_the_logits_of_the_position(tmp_path):
    model = load_model(QWEN2)
    text = "The animal didn't cross the street because it was too tired"
    tokens = model.tokenize(text)
    z = logits(model.run(tokens, keep_steps=False).output, model.unembedding)  # [T, vocab]
    for at in (None, "3", "it"):
        result = commands.predict(text, model, top=5, at=at)
        index = result.position.index
        assert index == (len(tokens) - 1 if at is None else commands.resolve_token(tokens, at, "at", text))
        row = z[index].astype(np.float64)
        probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        order = np.argsort(-row, kind="stable")[:5]
        assert [p.id for p in result.position.predictions] == order.tolist()
        # a decoder runs the text only to the position: the same logits, to float32 rounding
        assert_allclose([p.logit for p in result.position.predictions], row[order], rtol=1e-5, atol=1e-5)
        assert_allclose([p.probability for p in result.position.predictions], probabilities[order], rtol=1e-4)
        assert result.position.rest == pytest.approx(1 - probabilities[order].sum(), abs=1e-6)
        assert [p.token for p in result.position.predictions] == [
            model.tokenizer.id_to_token(i) for i in order.tolist()
        ]


def test_an_encoder_predicts_at_each_mask_token():
    model = load_model(BERT_MLM)
    result = commands.predict(MASKED, model, top=3)
    masks = [t.index for t in result.tokens if t.text == "[MASK]"]
    assert len(masks) == 2 and [p.index for p in result.positions] == masks
    assert result.position.index == masks[0] and not result.next_token and result.mask == "[MASK]"
    z = logits(model.run(result.tokens, keep_steps=False).output[masks], model.unembedding)
    for row, position in zip(z, result.positions, strict=True):
        assert [p.id for p in position.predictions] == np.argsort(-row, kind="stable")[:3].tolist()
    document = result.to_json()
    assert document["predicts"] == "masked" and document["mask"] == "[MASK]"
    assert document["position"] == {"index": masks[0], "text": "[MASK]"}
    assert document["predictions"] == document["positions"][0]["predictions"]
    assert [p["index"] for p in document["positions"]] == masks
    later = commands.predict(MASKED, model, top=3, at=str(masks[1])).to_json()
    assert later["predictions"] == later["positions"][1]["predictions"] == document["positions"][1]["predictions"]


def test_at_names_any_position_of_an_encoder_and_joins_its_masks():
    model = load_model(ROBERTA_MLM)
    result = commands.predict("The cat sat on the <mask>.", model, top=2, at="1")
    mask = next(t.index for t in result.tokens if t.text == "<mask>")
    assert result.mask == "<mask>"
    assert [p.index for p in result.positions] == [1, mask] and result.position.index == 1
    alone = commands.predict("The cat sat on the mat.", model, top=2, at="1")
    assert [p.index for p in alone.positions] == [1]


@given(arrays(np.float32, (2, 9), elements=st.integers(-3, 3).map(float)), st.integers(1, 12))
def test_predictions_rank_by_probability_the_smaller_id_first_on_a_tie(z, k):
    best, probabilities = analysis.predictions(z, k)
    assert best.shape == (2, min(k, 9))
    assert_allclose(probabilities.sum(axis=-1), 1.0)
    for row, chosen in zip(z, best, strict=True):
        assert chosen.tolist() == sorted(range(9), key=lambda i: (-row[i], i))[: len(chosen)]


def test_probabilities_of_large_logits_stay_finite():
    z = np.array([[1e30, 1e30, -1e30, 0.0]], dtype=np.float32)
    best, probabilities = analysis.predictions(z, 2)
    assert_array_equal(best, [[0, 1]])
    assert_allclose(probabilities[0], [0.5, 0.5, 0, 0])


def test_the_view_marks_the_position_and_lists_the_tokens():
    model = load_model(QWEN2)
    shown = render_text(view(commands.predict("The cat sat on the mat", model, top=3)), width=140)
    assert "Text: The cat sat on the m⟦at⟧ → ?" in shown
    assert "The next token after “at” (token 9)" in shown and "over all 300 ids" in shown
    assert "every other id" in shown and "\n1  " in shown
    masked = render_text(view(commands.predict(MASKED, load_model(BERT_MLM), top=3)), width=140)
    assert "the ⟦[MASK]⟧ with a ⟦[MASK]⟧." in masked and masked.count("The token at “[MASK]”") == 2


def test_the_view_of_a_long_text_shows_the_tokens_around_the_position():
    text = " ".join(["The cat sat on the mat."] * 20)
    shown = render_text(view(commands.predict(text, load_model(QWEN2), top=2, at="60")), width=80)
    line = next(line for line in shown.splitlines() if line.startswith("Text:"))
    assert line.startswith("Text: … ") and "⟦" in shown and " …" in shown


def test_hostile_text_and_token_strings_are_shown_escaped():
    shown = render_text(view(commands.predict(HOSTILE, load_model(QWEN2), top=3, at="3")), width=120)
    assert "\x01" not in shown and "\u202e" not in shown and "\\x01" in shown
    result = commands.predict("The cat", load_model(QWEN2), top=1)
    result.position.predictions[0].token = "Ċ\x1b[31m"
    shown = render_text(view(result), width=80)
    assert "\x1b" not in shown and "↵\\x1b[31m" in shown


def test_csv_lists_each_position_s_predictions(cli):
    run = cli("predict", MASKED, "--model", BERT_MLM, "--top", "2", "--format", "csv")
    assert run.code == 0, run.stderr
    rows = list(csv.reader(io.StringIO(run.stdout)))
    assert rows[0] == ["rank", "id", "token", "logit", "probability", "position"]
    assert [row[0] for row in rows[1:]] == ["1", "2", "1", "2"]
    assert [row[5] for row in rows[1:]] == ["6", "6", "12", "12"]


def test_output_and_export(cli, tmp_path):
    target, page = tmp_path / "p.json", tmp_path / "p.html"
    run = cli("predict", "The cat sat", "--model", QWEN2, "-o", str(target), "--export", str(page))
    assert run.code == 0, run.stderr
    document = json.loads(target.read_text())
    assert document["command"] == "predict" and document["predicts"] == "next" and document["mask"] is None
    assert len(document["predictions"]) == 10 and document["vocabulary"] == 300
    html = page.read_text()
    assert "<html" in html.lower() and "every other id" in html and "<script" not in html.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["The cat sat", "--top", "0"], "--top 0 asks for no predictions; use --top 1 or more"),
        (["The cat sat", "--at", "9"], "--at 9 is out of range; the text has tokens 0 to"),
        (["The cat sat", "--at", "dog"], "--at 'dog' is not a token of the text"),
    ],
)
def test_bad_options_are_refused(args, message):
    clean_error(attncli("predict", *args, "--model", QWEN2), message)


def test_an_encoder_text_without_a_mask_is_refused():
    clean_error(
        attncli("predict", "The cat sat on the mat.", "--model", BERT_MLM),
        "the text has no [MASK] token to predict; put one where a word should be, e.g. 'The cat sat on the [MASK].'",
    )
    clean_error(attncli("predict", "The cat sat on the mat.", "--model", ROBERTA_MLM), "no <mask> token to predict")


def test_a_tokenizer_without_a_mask_token_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "bert-mlm")
    path = directory / "tokenizer.json"
    path.write_text(path.read_text().replace("[MASK]", "[HOLE]"))
    clean_error(
        attncli("predict", "The cat sat.", "--model", str(directory)),
        "tokenizer has no mask token ([MASK] or <mask>) to predict at; give --at the position to predict",
    )
    assert commands.predict("The cat sat.", load_model(str(directory)), at="cat").position.index == 2


def test_models_without_a_head_are_refused():
    clean_error(
        attncli("predict", "The cat sat"),
        "the sample model is one layer of attention over trained embeddings, with no language-model head",
    )
    clean_error(
        attncli("predict", "The cat [MASK]", "--model", str(FIXTURES / "bert")),
        "model.safetensors has no masked-language-model head (cls.predictions.transform.dense.weight)",
    )


@needs_minilm
def test_minilm_has_no_head():
    with pytest.raises(DataError, match=r"no masked-language-model head \(cls\.predictions\.transform\.dense"):
        commands.predict("The cat [MASK]", load_model("minilm"))


def test_a_head_with_a_nan_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "gptj")
    edit_tensors(directory, lambda tensors: tensors | {"lm_head.weight": _with_nan(tensors["lm_head.weight"])})
    clean_error(
        attncli("predict", "The cat sat", "--model", str(directory)),
        "the language-model head gave NaN or infinite logits; the checkpoint's weights are broken",
    )


def _with_nan(weights: np.ndarray) -> np.ndarray:
    weights = weights.copy()
    weights[5, 3] = np.nan
    return weights
