"""models.py: load_model, a checkpoint's tokenizer and ModelInfo, the Vocabulary, a saved result's model."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    BERT,
    FIXTURES,
    GPT2,
    SENTENCE,
    attncli,
    check_with_damaged_model,
    copy_fixture,
    edit_tensors,
)

from attncli import commands
from attncli.errors import BadInput, DataError
from attncli.models import load_model


def test_special_tokens_are_the_models_own():
    bert = commands.tokenize("The cat", load_model(BERT)).tokens
    assert (bert[0].text, bert[-1].text) == ("[CLS]", "[SEP]")
    assert bert[0].special and not bert[1].special
    roberta = commands.tokenize("The cat", load_model(str(FIXTURES / "roberta"))).tokens
    assert (roberta[0].text, roberta[-1].text) == ("<s>", "</s>")
    gpt2 = commands.tokenize("The cat", load_model(GPT2)).tokens
    assert not any(t.special for t in gpt2)
    assert gpt2[1].text.startswith("Ġ")


def test_sample_options_do_not_apply_to_a_checkpoint():
    with pytest.raises(BadInput, match="heads only shape the sample model") as raised:
        load_model(BERT, heads=4)
    assert raised.value.worded({"heads": "--num-heads", "model": "--model"}).startswith("--num-heads only shape")


def test_a_tokenizer_without_its_wrapper_gets_cls_and_sep_back(tmp_path):
    directory = copy_fixture(tmp_path)
    spec = json.loads((directory / "tokenizer.json").read_text())
    spec["post_processor"] = None
    (directory / "tokenizer.json").write_text(json.dumps(spec))
    tokens = commands.tokenize("The cat", load_model(str(directory))).tokens
    assert (tokens[0].text, tokens[-1].text) == ("[CLS]", "[SEP]")


def test_json_names_the_decoders_choices():
    info = load_model(str(FIXTURES / "gemma2")).info.to_json()
    assert info["family"] == "Gemma 2" and info["kv_heads"] == 2 and info["d_head"] == 8 and info["norm"] == "rms"
    assert info["position_embeddings"] == {"type": "rotary", "theta": 10000.0, "dims": 8, "scaling": "default"}
    assert info["sliding_windows"] == [4, None, 4, None] and info["soft_cap"] == 2.0
    llama = load_model(str(FIXTURES / "llama")).info.to_json()["position_embeddings"]
    assert llama["scaling"] == "llama3" and llama["factor"] == 8.0 and llama["original_max_positions"] == 16


def test_json_names_alibi_and_its_slopes_where_positions_enter_as_biases():
    bloom = load_model(str(FIXTURES / "bloom")).info.to_json()["position_embeddings"]
    assert bloom == {"type": "alibi", "slopes": [0.0625, 0.00390625, 0.25], "scaled": False}
    assert load_model(str(FIXTURES / "falcon-alibi")).info.to_json()["position_embeddings"]["scaled"]
    assert load_model(str(FIXTURES / "opt")).info.to_json()["position_embeddings"] == "learned"


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(tmp_path):
    directory = tmp_path / "bert"
    shutil.copytree(FIXTURES / "bert", directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | {"vocab_size": 100}))
    table = "embeddings.word_embeddings.weight"
    edit_tensors(directory, lambda tensors: tensors | {table: tensors[table][:100]})
    with pytest.raises(DataError, match="tokenizer has 120 tokens but the model embeds only 100"):
        load_model(str(directory)).tokenize("a")  # the tokenizer is read when first asked for


@pytest.mark.slow
def test_a_tokenizer_whose_normalizer_multiplies_the_text_is_refused_before_encoding(tmp_path):
    from tokenizers import Regex, Tokenizer, normalizers

    directory = copy_fixture(tmp_path)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.normalizer = normalizers.Replace(Regex("."), "a " * 10_000)  # each character: 10,000 tokens
    tokenizer.save(str(directory / "tokenizer.json"))
    run = attncli("explain", "x" * 5000, "--model", str(directory), text=True, timeout=30)
    assert run.returncode == 2
    assert "characters once" in run.stderr and "normalizes it" in run.stderr


def test_neighbours_come_best_first(vocab):
    cosines = [c for _, c in vocab.nearest(vocab.word_id("paris"), 25)]
    assert cosines == sorted(cosines, reverse=True)


def test_a_word_of_several_tokens_is_refused_with_its_pieces(vocab):
    with pytest.raises(BadInput, match="token ##ization"):
        vocab.word_id("tokenization")


def test_neighbours_are_never_specials_placeholders_or_rows_past_the_tokenizer(vocab):
    from attncli.models import Vocabulary

    king = vocab.word_id("king")
    padded = np.vstack([vocab.embeddings, np.repeat(vocab.embeddings[king : king + 1], 3, axis=0)])  # exact copies
    byte = vocab.tokenizer.token_to_id("[unused0]")
    padded[byte] = vocab.embeddings[king]
    neighbours = [i for i, _ in Vocabulary(vocab.tokenizer, padded).nearest(king, 5)]
    assert neighbours == [i for i, _ in vocab.nearest(king, 5)]
    assert all(i < len(vocab.embeddings) and i != byte for i in neighbours)


@pytest.mark.parametrize(("word", "message"), [("[CLS]", "is a special token"), ("😀", "becomes \\[UNK\\]")])
def test_a_special_token_or_an_unknown_word_has_no_neighbours(vocab, word, message):
    with pytest.raises(BadInput, match=message):
        vocab.word_id(word)


def test_a_checkpoints_placeholders_are_nobodys_neighbours():
    from attncli.models import load_model

    vocabulary = load_model(str(FIXTURES / "gemma")).vocabulary
    texts = [vocabulary.token_text(i) for i, _ in vocabulary.nearest(0, 10_000)]  # every candidate
    assert texts and not any(text.startswith("<") and text.endswith(">") for text in texts)  # <0x0A>, <unk>


@pytest.mark.parametrize(
    "damage",
    [{"seed": 1.5}, {"heads": "8"}, {"causal": None}, {"seed": -1}, {"heads": True}, {"seed": False}, {"heads": 7}],
    ids=["seed", "heads", "causal", "negative seed", "heads true", "seed false", "heads not dividing 64"],
)
def test_check_refuses_a_sample_model_with_damaged_options(cli, tmp_path, damage):
    """The sample model is named, but it is rebuilt from options no sample model has: the document is
    damaged, and the message names no option the user never typed."""
    saved, stderr = check_with_damaged_model(cli, tmp_path, {"name": "sample"} | damage)
    assert stderr.startswith(f"attncli: error: {saved}: its model's heads, seed, causal and positions (heads ")
    assert stderr.endswith(") are not a sample model attncli makes; the saved result is damaged\n")
    assert "--" not in stderr


@pytest.mark.slow
def test_check_finds_a_checkpoint_saved_from_another_directory(tmp_path):
    relative = os.path.relpath(BERT, tmp_path)
    saved = tmp_path / "saved.json"
    done = attncli("heatmap", "The cat sat.", "--model", relative, "--json", "-o", str(saved), cwd=tmp_path, check=True)
    assert done.returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = attncli("check", "The cat sat.", "--against", str(saved), cwd=elsewhere)
    assert check.returncode == 0


def test_check_from_another_directory_keeps_the_model_s_saved_name(cli, tmp_path, monkeypatch):
    saved = tmp_path / "saved.json"
    document = json.loads(cli("heatmap", SENTENCE, "--model", BERT, "--json").stdout)
    document["model"]["name"] = "models/bert"  # a relative spec that does not exist from here
    saved.write_text(json.dumps(document))
    run = cli("check", "--against", str(saved), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["model"]["name"] == "models/bert" and run.json()["model"]["path"] == document["model"]["path"]


def with_tokenizer(tmp_path, edit) -> Path:
    """The bert fixture with its tokenizer.json as edit(its JSON) leaves it."""
    directory = copy_fixture(tmp_path)
    tokenizer = json.loads((directory / "tokenizer.json").read_text())
    edit(tokenizer)
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer))
    return directory


def _without_unknown(tokenizer: dict) -> None:
    del tokenizer["model"]["vocab"]["[UNK]"]
    tokenizer["added_tokens"] = [token for token in tokenizer["added_tokens"] if token["content"] != "[UNK]"]


def _template_naming(tokenizer: dict) -> None:
    tokenizer["post_processor"]["single"][0] = {"SpecialToken": {"id": "[FOO]", "type_id": 0}}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t["model"]["vocab"].update(cat=10**6), "gives 'cat' the id 1,000,000, past the 120 rows"),
        (_without_unknown, r"cannot tokenize the text \(WordPiece error: Missing \[UNK\] token"),
        (lambda t: t["post_processor"]["special_tokens"]["[CLS]"].update(ids=[]), "gives 8 ids for 9 tokens"),
        (_template_naming, "cannot tokenize a one-letter text .the tokenizers library failed"),
    ],
    ids=["id past the table", "no unknown token", "template token without ids", "template naming no token"],
)
def test_a_tokenizer_that_does_not_fit_its_model_is_one_line_on_stderr(tmp_path, capfd, edit, message):
    directory = with_tokenizer(tmp_path, edit)
    with pytest.raises(DataError, match=message):
        commands.run("The cat sat on the mat zq", load_model(str(directory)))
    assert capfd.readouterr().err == ""  # nor a Rust panic's report on file descriptor 2
