"""terminal.py: text fitted to terminal cells (wide characters counted) and tokens made readable."""

from attncli.terminal import abbreviate, pad, token_label


def test_abbreviate_and_pad_count_terminal_cells():
    assert abbreviate("cat", 5) == "cat"
    assert abbreviate("tokenization", 5) == "toke…"
    assert abbreviate("猫猫猫猫", 5) == "猫猫…"
    assert pad("猫", 4) == "猫  "
    assert pad("ab", 4, "right") == "  ab"


def test_token_label_shows_byte_level_spaces():
    assert token_label("Ġthe") == "␣the"
    assert token_label("Ċ") == "↵"
