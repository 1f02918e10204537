"""What must never reach a terminal raw, and `visible`, which spells it as escapes instead.

Both the terminal views and the JSON writer escape these characters: user text is data,
and a document printed to a terminal must not be able to move the cursor either.
"""

import re

__all__ = ["UNSAFE", "visible"]

# C0 and C1 controls, DEL, bidirectional overrides and isolates, zero-width and
# other invisible format characters: text that could move the cursor, recolour
# the terminal or reorder what the reader sees.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every unsafe character spelled as an escape, e.g. ESC as \\x1b, U+202E as \\u202e."""
    return UNSAFE.sub(lambda match: _escape(match.group()), text)
