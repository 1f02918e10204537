"""What attncli writes to a terminal: consoles that never interpret user text, and safe strings."""

import json
import re

from rich.console import Console

__all__ = ["json_text", "make_console", "visible"]

# C0 and C1 controls, DEL, bidirectional overrides and isolates, zero-width and
# other invisible format characters: text that could move the cursor, recolour
# the terminal or reorder what the reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every unsafe character spelled as an escape, e.g. ESC as \\x1b, U+202E as \\u202e."""
    return _UNSAFE.sub(lambda match: _escape(match.group()), text)


def json_text(document: dict) -> str:
    """`document` as one line of JSON, readable UTF-8 but with unsafe characters \\u-escaped.

    json already escapes the ASCII controls; the others are legal raw in JSON
    strings, and escaping them keeps a terminal showing the JSON safe too.
    """
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def make_console(stderr: bool = False, **settings) -> Console:
    """A rich console that treats every string as plain text: no markup, emoji codes or highlighting.

    Colour follows rich's rules: none when the stream is not a terminal or
    NO_COLOR is set.
    """
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, **settings)
