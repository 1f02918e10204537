"""What attncli writes to a terminal: consoles that never interpret user text, and safe strings."""

import os
import re
from collections.abc import Iterator

import numpy as np
import orjson
from rich.cells import cell_len, set_cell_size

from attncli.errors import PipeClosed

__all__ = ["abbreviate", "downward", "json_bytes", "json_chunks", "make_console", "pad", "token_label", "visible"]

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


def token_label(text: str) -> str:
    """A vocabulary string as the terminal shows it: byte-level BPE's Ġ (a leading space) as ␣ and
    Ċ (a newline) as ↵, then made `visible`. JSON keeps the exact string."""
    return visible(text.replace("Ġ", "␣").replace("Ċ", "↵"))


def abbreviate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` terminal cells, ending in "…" when cut."""
    if cell_len(text) <= limit:
        return text
    return set_cell_size(text, max(limit - 1, 0)).rstrip() + "…"


def downward(labels: list[str], cell: int, align: str = "left", limit: int = 6) -> list[list[str]]:
    """Labels written top to bottom, for columns too narrow to write them across: one list of
    `cell`-wide strings (one per label) for each line, each label cut to `limit` characters."""
    cut = [abbreviate(label, limit) for label in labels]
    return [
        [set_cell_size(pad(label[line] if line < len(label) else " ", cell, align), cell) for label in cut]
        for line in range(max(len(label) for label in cut))
    ]


def pad(text: str, width: int, align: str = "left") -> str:
    """`text` padded with spaces to `width` terminal cells (wide characters count two)."""
    room = max(width - cell_len(text), 0)
    if align == "right":
        return " " * room + text
    if align == "center":
        return " " * (room // 2) + text + " " * (room - room // 2)
    return text + " " * room


# Arrays with more numbers than this are written a slice at a time, so that the JSON of a long
# text's attention never has to sit in memory whole (18.9 million weights make 250 MB of it).
_SLICED = 1 << 20


def json_chunks(value) -> Iterator[bytes]:
    """`value` as one line of JSON, in pieces that join to what orjson would write whole: numpy
    arrays natively (float32 in its shortest form), readable UTF-8 with unsafe characters
    \\u-escaped. JSON already escapes the ASCII controls; the others are legal raw in JSON
    strings, and escaping them keeps a terminal showing the JSON safe too."""
    if isinstance(value, dict):
        for position, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"a JSON object key must be a string, not {key!r}")
            yield (b"," if position else b"{") + _dumps(key) + b":"
            yield from json_chunks(item)
        yield b"}" if value else b"{}"
    elif isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim > 1 and value.size > _SLICED):
        yield b"["
        for position, item in enumerate(value):
            if position:
                yield b","
            yield from json_chunks(item)
        yield b"]"
    else:
        yield _dumps(value)


def _dumps(value) -> bytes:
    data = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_unknown)
    if data.isascii() and b"\x7f" not in data:  # the usual case: numbers, no copy
        return data
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", data.decode()).encode()


def json_bytes(document) -> bytes:
    """`document` as one line of JSON in UTF-8 (see json_chunks)."""
    return b"".join(json_chunks(document))


def _unknown(value):
    if isinstance(value, np.ndarray):  # orjson takes C-contiguous arrays only
        return np.ascontiguousarray(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def make_console(color: str = "auto", **settings):
    """A rich console that treats every string as plain text: no markup, emoji codes or highlighting.

    color "never", or "auto" with NO_COLOR set (to anything non-empty): no escape codes at all.
    "always": colour even into a pipe. "auto" otherwise: colour on a terminal, none elsewhere
    (rich's rules, FORCE_COLOR included).
    """
    from rich.console import Console  # imported here: --json never needs it

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise PipeClosed("standard output was closed")

    if color == "never" or (color == "auto" and os.environ.get("NO_COLOR")):
        settings = {"color_system": None, **settings}
    elif color == "always":
        settings = {"force_terminal": True, "color_system": "truecolor", **settings}
    return _Console(markup=False, emoji=False, highlight=False, **settings)
