"""unigram.py: a Unigram tokenizer cut to the pieces of one text tokenizes it as the whole tokenizer does."""

import json

import pytest
from helpers import FIXTURES, copy_fixture, edit_config, edit_tensors
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers

from attncli import commands, unigram
from attncli.errors import BadInput, DataError
from attncli.models import load_model

WORDS = "deberta.embeddings.word_embeddings.weight"
UNIGRAM_FIXTURES = ["albert", "camembert", "deberta-v2", "deberta-v3", "xlm-roberta"]


@pytest.fixture(scope="module")
def cutters():
    """Each Unigram fixture's whole tokenizer and a Cutter of it (the fixtures' vocabularies are far below CUT_FROM,
    so the threshold is lowered while they are read)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unigram, "CUT_FROM", 0)
        return {
            name: (
                Tokenizer.from_file(str(FIXTURES / name / "tokenizer.json")),
                unigram.cutter((FIXTURES / name / "tokenizer.json").read_bytes()),
            )
            for name in UNIGRAM_FIXTURES
        }


def _pieces_text(name: str) -> st.SearchStrategy[str]:
    """Texts of the fixture's own pieces (so that most of a text is cut into real pieces, with ties and choices
    between them), its added tokens typed, whitespace of several kinds, and characters no fixture has: accents
    composed and combining, CJK, emoji, the ▁ mark itself."""
    document = json.loads((FIXTURES / name / "tokenizer.json").read_text())
    pieces = [piece.replace("▁", " ") for piece, _ in document["model"]["vocab"]]
    added = [token["content"] for token in document["added_tokens"]]
    others = [" ", "  ", "\t", "\n", "\u3000", "é", "e\u0301", "ﬁ", "東京", "😀", "▁", "''", "``", "Ä"]
    return st.lists(st.sampled_from(pieces + added + others), max_size=12).map("".join)


@pytest.mark.parametrize("name", UNIGRAM_FIXTURES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_cut_tokenizer_gives_a_text_the_whole_tokenizers_tokens(cutters, name, data):
    whole, cutter = cutters[name]
    text = data.draw(_pieces_text(name))
    cut = cutter.cut((text,))
    for special in (True, False):
        expected, got = (
            whole.encode(text, add_special_tokens=special),
            cut.tokenizer.encode(text, add_special_tokens=special),
        )
        assert cut.ids[got.ids].tolist() == expected.ids
        assert (got.tokens, got.offsets, got.special_tokens_mask) == (
            expected.tokens,
            expected.offsets,
            expected.special_tokens_mask,
        )
    assert len(cut.ids) < whole.get_vocab_size() or not text  # it is cut
    assert cut.size == whole.get_vocab_size()


def test_the_first_text_a_model_tokenizes_never_builds_the_whole_tokenizer_and_the_next_does(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    first, second = "The cat sat on the mat, naïvely: 東京 😀", "Another text"
    whole = load_model(str(FIXTURES / "deberta-v3"))
    assert whole.tokenizer is not None  # read first, so that every text is tokenized by it
    model = load_model(str(FIXTURES / "deberta-v3"))
    tokens = model.tokenize(first)
    assert "tokenizer" not in model.__dict__
    assert [t.to_json() for t in tokens] == [t.to_json() for t in whole.tokenize(first)]
    assert [t.to_json() for t in model.tokenize(second)] == [t.to_json() for t in whole.tokenize(second)]
    assert "tokenizer" in model.__dict__


def _edited(name: str, edit) -> bytes:
    document = json.loads((FIXTURES / name / "tokenizer.json").read_text())
    edit(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False}), id="bytes"),
        pytest.param(lambda d: d.update(post_processor={"type": "Unknown"}), id="unknown post-processor"),
        pytest.param(lambda d: d["added_tokens"][0].update(single_word=True), id="single-word token"),
        pytest.param(lambda d: d["added_tokens"][0].update(id=len(d["model"]["vocab"]) + 5), id="added id apart"),
        pytest.param(lambda d: d["model"].update(type="BPE"), id="not Unigram"),
    ],
)
def test_a_tokenizer_the_rule_cannot_see_through_is_read_whole(monkeypatch, edit):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    assert unigram.cutter(_edited("deberta-v3", lambda d: None)) is not None
    assert unigram.cutter(_edited("deberta-v3", edit)) is None


def test_a_small_vocabulary_is_read_whole():
    assert unigram.cutter((FIXTURES / "deberta-v3" / "tokenizer.json").read_bytes()) is None
    assert unigram.cutter((FIXTURES / "gpt2" / "tokenizer.json").read_bytes()) is None


def test_the_unknown_tokens_score_is_ten_below_the_whole_vocabularys_lowest(monkeypatch):
    """▁yzw as ▁yz + w (-60) rather than ▁ + an unknown y + zw (-2 + the unknown's score): the unknown scores ten
    below the vocabulary's lowest piece, "q" at -100, which a cut must keep though the text has no q. Without it
    the lowest would be -30, and the unknown's path (-42) the better."""
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    vocabulary = [("<unk>", 0.0), ("▁", -1.0), ("zw", -1.0), ("▁yz", -30.0), ("w", -30.0), ("q", -100.0)]
    whole = Tokenizer(models.Unigram(vocabulary, unk_id=0))
    whole.pre_tokenizer = pre_tokenizers.Metaspace()
    cut = unigram.cutter(whole.to_str().encode()).cut(("yzw",))
    assert whole.encode("yzw").tokens == cut.tokenizer.encode("yzw").tokens == ["▁yz", "w"]
    assert "q" in cut.tokenizer.get_vocab()


def test_a_cut_tokenizer_is_checked_as_the_whole_one_is(monkeypatch, tmp_path):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    directory = copy_fixture(tmp_path, "deberta-v3")
    edit_config(directory, vocab_size=100)
    edit_tensors(directory, lambda tensors: tensors | {WORDS: tensors[WORDS][:100]})
    with pytest.raises(DataError, match="tokenizer has 156 tokens but the model embeds only 100"):
        load_model(str(directory)).tokenize("a cat")
    directory = copy_fixture(tmp_path / "long", "deberta-v3")
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.normalizer = normalizers.Replace(Regex("."), "a " * 10_000)  # each character: 10,000 tokens
    tokenizer.save(str(directory / "tokenizer.json"))
    model = load_model(str(directory))
    with pytest.raises(BadInput, match=r"once .*tokenizer normalizes it"):
        model.tokenize("x" * 5000)  # refused before cutting, which normalizes the whole text
    assert "tokenizer" not in model.__dict__  # by the cutter's shell


def test_a_cut_keeps_the_wrapper_a_tokenizer_without_a_post_processor_is_given(monkeypatch, tmp_path):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    directory = copy_fixture(tmp_path, "xlm-roberta")
    path = directory / "tokenizer.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"post_processor": None}))
    whole = load_model(str(directory))
    assert whole.tokenizer is not None  # read first, so that every text is tokenized by it
    model = load_model(str(directory))
    tokens = model.tokenize("a cat")
    assert "tokenizer" not in model.__dict__
    assert [t.to_json() for t in tokens] == [t.to_json() for t in whole.tokenize("a cat")]
    assert [tokens[0].text, tokens[-1].text] == ["<s>", "</s>"]


def test_pieces_holding_the_character_they_are_joined_with_are_made_bare_one_by_one(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    vocabulary = [("<unk>", 0.0), ("▁", -1.0), ("a\x00b", -1.0), ("a", -5.0), ("b", -5.0), ("\x00", -5.0)]
    whole = Tokenizer(models.Unigram(vocabulary, unk_id=0))
    whole.pre_tokenizer = pre_tokenizers.Metaspace()
    cut = unigram.cutter(whole.to_str().encode()).cut(("xa\x00b",))
    assert whole.encode("xa\x00b").tokens == cut.tokenizer.encode("xa\x00b").tokens == ["▁", "x", "a\x00b"]


def test_a_tokenizer_without_an_unknown_token_is_cut_with_the_pieces_of_the_text_it_is_tried_on(monkeypatch, tmp_path):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    directory = copy_fixture(tmp_path, "deberta-v3")
    path = directory / "tokenizer.json"
    document = json.loads(path.read_text())
    document["model"]["unk_id"] = None
    document["added_tokens"] = [token for token in document["added_tokens"] if token["content"] != "[UNK]"]
    path.write_text(json.dumps(document))
    whole = load_model(str(directory))
    assert whole.tokenizer is not None  # read first, so that every text is tokenized by it
    model = load_model(str(directory))
    tokens = model.tokenize("sex")  # no "a", which the tokenizer is tried on
    assert "tokenizer" not in model.__dict__
    assert [t.to_json() for t in tokens] == [t.to_json() for t in whole.tokenize("sex")]


def test_an_added_token_takes_the_id_of_the_last_piece_it_is(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    vocabulary = [("<unk>", 0.0), ("▁", -1.0), ("a", -2.0), ("b", -2.0), ("a", -3.0), ("q", -9.0)]
    whole = Tokenizer(models.Unigram(vocabulary, unk_id=0))
    whole.pre_tokenizer = pre_tokenizers.Metaspace()
    whole.add_tokens([AddedToken("a", normalized=False, special=True)])
    document = json.loads(whole.to_str())
    document["added_tokens"][0]["id"] = 2  # the first "a", as a file may say; the library takes the last
    whole = Tokenizer.from_str(json.dumps(document))
    cut = unigram.cutter(json.dumps(document).encode()).cut(("b a b",))
    expected = whole.encode("b a b")
    assert cut.ids[cut.tokenizer.encode("b a b").ids].tolist() == expected.ids and 4 in expected.ids


def test_an_added_token_past_the_vocabulary_that_is_a_piece_is_read_whole(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    vocabulary = [("<unk>", 0.0), ("▁", -1.0), ("foo", -2.0)]
    whole = Tokenizer(models.Unigram(vocabulary, unk_id=0))
    document = json.loads(whole.to_str())
    document["added_tokens"] = [
        {"id": 3, "content": "foo", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
        | {"special": True}
    ]
    assert Tokenizer.from_str(json.dumps(document)).encode("foo").ids == [2]  # the piece's id, not 3
    assert unigram.cutter(json.dumps(document).encode()) is None


def test_the_whitespace_an_added_token_strips_is_no_part_of_the_text_normalized(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    vocabulary = [("<unk>", 0.0), ("a", -1.0), ("z", -1.0), ("b", -1.0), ("▁", -1.0), ("▁a", -1.0)]
    whole = Tokenizer(models.Unigram(vocabulary, unk_id=0))
    whole.normalizer = normalizers.Replace(Regex(" a"), "z")  # sees the whitespace <m> strips, if left in
    whole.pre_tokenizer = pre_tokenizers.Metaspace()
    whole.add_special_tokens([AddedToken("<m>", lstrip=True, rstrip=True, normalized=False)])
    cut = unigram.cutter(whole.to_str().encode()).cut(("<m> a",))
    assert cut.tokenizer.encode("<m> a").tokens == whole.encode("<m> a").tokens == ["<m> ", "▁a"]


def test_a_text_too_long_to_be_worth_cutting_for_is_tokenized_by_the_whole(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    monkeypatch.setattr(unigram, "_MOST_SUBSTRINGS", 1000)
    whole = load_model(str(FIXTURES / "deberta-v3"))
    text = "The cat sat on the mat. " * 20
    assert whole.tokenizer is not None  # read first, so that every text is tokenized by it
    model = load_model(str(FIXTURES / "deberta-v3"))
    assert [t.to_json() for t in model.tokenize(text)] == [t.to_json() for t in whole.tokenize(text)]
    assert "tokenizer" in model.__dict__


def test_predict_reads_the_whole_vocabulary_before_the_text_and_cuts_nothing(monkeypatch):
    monkeypatch.setattr(unigram, "CUT_FROM", 0)
    model = load_model(str(FIXTURES / "deberta-v3-lm-predictions"))
    result = commands.predict("The cat [MASK] on the mat", model)
    assert model._cut is None and "tokenizer" in model.__dict__
    assert result.mask == "[MASK]" and result.position.predictions  # named from the whole vocabulary
