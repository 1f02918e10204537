"""escapes.py: control and bidirectional characters shown as escapes in a view and kept exact in JSON."""

import json

import pytest
from helpers import attncli

from attncli.escapes import visible


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[bold red]alarm[/]", "[bold red]alarm[/]"),
        ("[link=https://example.com]click[/link]", "[link=https://example.com]click[/link]"),
        ("a\x1b[2Jb", "\\x1b[2Jb"),
        ("\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "\\x1b]8;;https://evil.example\\x07link"),
        ("bell\x07 back\x08space", "bell\\x07 back\\x08space"),
        ("abc \u202edlrow", "\\u202edlrow"),
    ],
)
def test_hostile_text_is_shown_escaped_and_kept_exact_in_json(text, shown):
    view = attncli("tokenize", text)
    assert view.returncode == 0
    out = view.stdout.decode()
    assert shown in out
    assert not any(char in out for char in "\x1b\x07\x08\u202e")
    document = json.loads(attncli("tokenize", text, "--json").stdout)
    assert document["text"] == text
    assert "\x1b" not in attncli("tokenize", text, "--json").stdout.decode()


def test_visible_escapes_control_and_bidi_characters():
    assert visible("a\x1b[2Jb\x07c\u202ed\nz") == "a\\x1b[2Jb\\x07c\\u202ed\\nz"
    assert visible("café 🐈") == "café 🐈"
