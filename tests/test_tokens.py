"""tokens.py: the readable text of word pieces and byte-fallback tokens."""

from attncli.tokens import CONTINUED, readable_all


def test_byte_fallback_tokens_show_the_characters_they_make():
    pieces = ["▁A", "▁", "<0xC3>", "<0xAF>", "<0xE2>", "<0x98>", "<0x95>", "<0xFF>", "Ġit"]
    assert readable_all(pieces) == ["␣A", "␣", "ï", CONTINUED, "☕", CONTINUED, CONTINUED, "<0xFF>", "␣it"]
