"""tokens.py: the readable text of word pieces and byte-fallback tokens, and which tokens are special."""

import pytest
from helpers import FIXTURES
from tokenizers import Tokenizer, models

from attncli.models import load_model
from attncli.tokens import CONTINUED, added_around, ordinary_ids, readable_all, special_ids


def test_byte_fallback_tokens_show_the_characters_they_make():
    pieces = ["▁A", "▁", "<0xC3>", "<0xAF>", "<0xE2>", "<0x98>", "<0x95>", "<0xFF>", "Ġit"]
    assert readable_all(pieces) == ["␣A", "␣", "ï", CONTINUED, "☕", CONTINUED, CONTINUED, "<0xFF>", "␣it"]


@pytest.mark.parametrize("unknown_id", [0, None])
def test_a_unigram_tokenizers_unknown_token_is_not_special(unknown_id):
    vocabulary = [("<unk>", 0.0), ("<s>", 0.0), ("▁a", -1.0)]
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=unknown_id))
    tokenizer.add_special_tokens(["<unk>", "<s>"])
    assert special_ids(tokenizer) == ({1} if unknown_id == 0 else {0, 1})


@pytest.mark.parametrize("fixture", ["xlm-roberta", "deberta-v3"])
def test_a_character_a_unigram_vocabulary_lacks_is_text_not_a_special_token(fixture):
    model = load_model(str(FIXTURES / fixture))
    unknown = [token for token in model.tokenize("a 日 cat") if token.text == "日"]
    assert len(unknown) == 1 and not unknown[0].special  # kept in summaries and rankings, as BERT's [UNK] is
    assert unknown[0].id == model.tokenizer.token_to_id("<unk>" if fixture == "xlm-roberta" else "[UNK]")


@pytest.mark.parametrize(
    ("fixture", "before", "after"),
    [
        ("bert", ["[CLS]"], ["[SEP]"]),
        ("roberta", ["<s>"], ["</s>"]),
        ("llama", ["<|begin_of_text|>"], []),
        ("gpt2", [], []),
    ],
)
def test_what_a_tokenizer_adds_around_a_text_and_the_ids_a_text_is_made_of(fixture, before, after):
    model = load_model(str(FIXTURES / fixture))
    tokenizer = model.tokenizer
    added = added_around(tokenizer)
    assert [[tokenizer.id_to_token(i) for i in ids] for ids in added] == [before, after]
    ordinary = ordinary_ids(tokenizer)
    assert ordinary == sorted(ordinary) and not set(ordinary) & (special_ids(tokenizer) | set(added[0] + added[1]))
    tokens = model.tokens_of([ordinary[0], ordinary[0]])
    assert [t.text for t in tokens] == [*before, *[tokenizer.id_to_token(ordinary[0])] * 2, *after]
    assert [t.special for t in tokens] == [True] * len(before) + [False, False] + [True] * len(after)
