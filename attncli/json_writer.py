"""The JSON writer: one line of JSON per document, streamed in pieces, numbers exact.

numpy arrays are written natively (float32 in its shortest round-tripping form), large
ones a slice at a time so a long text's attention never sits in memory whole as text;
strings are readable UTF-8 with the characters a terminal would obey escaped.
"""

from collections.abc import Iterator

import numpy as np
import orjson

from attncli.escapes import JSON_ESCAPES, UNSAFE

__all__ = ["json_bytes", "json_chunks"]

# Every character JSON leaves raw that must be escaped starts, in UTF-8, with one of these bytes
# (all but its last byte; DEL is its own). JSON itself escapes the characters below U+0020.
_UNSAFE_STARTS = frozenset(char.encode()[:-1] or char.encode() for char in UNSAFE if char >= "\x7f")

# Arrays with more numbers than this are written a slice at a time, so that the JSON of a long
# text's attention never has to sit in memory whole (18.9 million weights make 250 MB of it).
_SLICED = 1 << 20


def json_chunks(value) -> Iterator[bytes]:
    """`value` as one line of JSON, in pieces that join to what orjson would write whole: numpy
    arrays natively (float32 in its shortest form), readable UTF-8 with unsafe characters
    \\u-escaped. JSON already escapes the ASCII controls; the others are legal raw in JSON
    strings, and escaping them keeps a terminal showing the JSON safe too.

    A value holding fewer than _SLICED numbers is written in one piece; a larger one a key, an
    item or a slice at a time; an iterator (a stream of a long text's layers) is an array, an item at a
    time, as it yields them."""
    if _size(value) <= _SLICED:
        yield _dumps(value)
    elif isinstance(value, dict):
        for position, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"a JSON object key must be a string, not {key!r}")
            yield (b"," if position else b"{") + _dumps(key) + b":"
            yield from json_chunks(item)
        yield b"}" if value else b"{}"
    elif isinstance(value, list | tuple | Iterator) or (
        isinstance(value, np.ndarray) and value.ndim > 1 and value.size > _SLICED
    ):
        yield b"["
        first = True
        for item in value:  # not enumerate, whose tuple would hold the item while an iterator makes the next
            if not first:
                yield b","
            first = False
            yield from json_chunks(item)
            del item  # before an iterator makes the next: a long text's layer at a time, not two
        yield b"]"
    else:
        yield _dumps(value)


def _size(value) -> int:
    """About how many numbers `value` holds: an array's elements, one for anything else."""
    if isinstance(value, np.ndarray):
        return value.size
    if isinstance(value, dict):
        return sum(_size(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_size(item) for item in value)
    if isinstance(value, Iterator):  # unknown until read, and read once
        return _SLICED + 1
    return 1


def _dumps(value) -> bytes:
    data = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_unknown)
    if data.isascii() and b"\x7f" not in data:  # the usual case: numbers, no copy
        return data
    if not any(start in data for start in _UNSAFE_STARTS):  # tokens such as ▁the or Ġthe: still no copy
        return data  # (translating a document of 12 layers' attention over 15 tokens took 18 ms)
    return data.decode().translate(JSON_ESCAPES).encode()


def json_bytes(document) -> bytes:
    """`document` as one line of JSON in UTF-8 (see json_chunks)."""
    return b"".join(json_chunks(document))


def _unknown(value):
    if isinstance(value, np.ndarray):  # orjson takes C-contiguous arrays only
        return np.ascontiguousarray(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
