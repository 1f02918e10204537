"""What must never reach a terminal raw, and `visible`, which spells it as escapes instead.

Both the terminal views and the JSON writer escape these characters: user text is data,
and a document printed to a terminal must not be able to move the cursor either.
"""

__all__ = ["JSON_ESCAPES", "UNSAFE", "visible"]

# C0 and C1 controls, DEL, bidirectional overrides and isolates, zero-width and
# other invisible format characters: text that could move the cursor, recolour
# the terminal or reorder what the reader sees. (Tables for str.translate rather than a
# regular expression: compiling one took half a millisecond of every run's start.)
_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x61C, 0x61C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
)
UNSAFE = frozenset(chr(code) for first, last in _RANGES for code in range(first, last + 1))
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_VISIBLE = {ord(char): _escape(char) for char in UNSAFE}
# The same characters as JSON spells them, for characters that are legal raw in JSON strings.
JSON_ESCAPES = {ord(char): f"\\u{ord(char):04x}" for char in UNSAFE}


def visible(text: str) -> str:
    """`text` with every unsafe character spelled as an escape, e.g. ESC as \\x1b, U+202E as \\u202e."""
    return text.translate(_VISIBLE)
