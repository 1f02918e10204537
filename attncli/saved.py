"""Reading back a saved result for check: the text, the model and the attention of a JSON document
of explain, heatmap or model, streamed (the attention a row at a time: a long text's millions of
weights never all exist as Python floats at once)."""

import re
from dataclasses import dataclass

import numpy as np
import orjson

from attncli.errors import BadInput

__all__ = ["SavedRun"]

# A JSON string (escapes included) or a bracket: what the scan of a saved document must see.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_KEY_OF_ARRAY = re.compile(rb"\s*:(\s*\[)")  # what follows a key whose value is an array
_FIRST_ELEMENT = re.compile(rb"\s*([\[\]])")  # an array's first element opens, or the array closes
_NEXT_ELEMENT = re.compile(rb"\s*(?:,\s*(\[)|(\]))")
_NUMBER_ROW_BYTES = b"0123456789.eE+-,[] \t\r\n"


@dataclass(eq=False, repr=False)
class SavedRun:
    """What check reads back from a saved document: the text, the model object and the attention."""

    text: str
    model: dict  # as ModelInfo.to_json wrote it
    attention: np.ndarray  # [L, h, T, T] float64, every digit the document wrote (a sample model's are float64)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, source: str) -> "SavedRun":
        """The run a document of explain, heatmap or model holds (as `common_json` wrote it).

        The attention array is read a row at a time into float64, never as one Python float per
        weight: a 512-token document holds 19 million of them (the rest of the document is small).
        UTF-8 with a byte-order mark and UTF-16 (what some shells' > writes) are read as UTF-8."""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            data = bytes(data).decode("utf-16").encode()
        elif data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        damaged = BadInput("{source} is not an attncli {json} result with text, model and attention", source=source)
        try:
            found = _saved_attention(data)
            start, end, attention = found or (0, 0, None)
            document = orjson.loads(data[:start] + b"null" + data[end:] if found else data)
        except orjson.JSONDecodeError as error:
            raise BadInput("{source} is not a readable JSON file ({error})", source=source, error=error) from None
        except ValueError:  # an attention array that is not one of equally long rows of numbers
            raise damaged from None
        if attention is None or not isinstance(document, dict):
            raise damaged
        try:
            text, model, name = document["text"], document["model"], document["model"]["name"]
        except (KeyError, TypeError):
            raise damaged from None
        if not isinstance(name, str) or not isinstance(text, str) or not np.all(np.isfinite(attention)):
            raise damaged
        return cls(text, model, attention)


def _saved_attention(data: bytes) -> tuple[int, int, np.ndarray] | None:
    """The value of the JSON document's top-level "attention" key, as float64, and where it starts
    and ends in `data`; None when it has no such array.

    A scan of strings and brackets finds the key; its array is then parsed one element at a time,
    so its millions of weights never all exist as Python floats at once. Raises ValueError where the
    value is not an array of equally shaped arrays of numbers."""
    depth = 0
    for piece in _STRING_OR_BRACKET.finditer(data):
        mark = data[piece.start()]
        if mark == ord('"'):
            key = depth == 1 and piece.group() == b'"attention"' and _KEY_OF_ARRAY.match(data, piece.end())
            if key:
                return key.start(1), *_array(data, key.end() - 1, dimensions=4)  # [L, h, T, T]
        else:
            depth += 1 if mark in b"[{" else -1
    return None


def _array(data: bytes, at: int, dimensions: int) -> tuple[int, np.ndarray]:
    """Where the array that opens at `data[at]` ends, and that array (of `dimensions` dimensions, each
    of one length) as float64; parsed a row of numbers at a time."""
    close = data.find(b"]", at)
    if close >= 0 and data.find(b"[", at + 1, close) < 0:  # a row of numbers
        row = data[at : close + 1]
        if dimensions != 1 or row.translate(None, _NUMBER_ROW_BYTES):
            raise ValueError("the attention array is not an array of layers, heads, queries and keys")
        return close + 1, np.array(orjson.loads(row), dtype=np.float64)
    elements, step = [], _FIRST_ELEMENT.match(data, at + 1)
    while step and step.group(1) == b"[" and dimensions > 1:
        element_end, element = _array(data, step.end() - 1, dimensions - 1)
        elements.append(element)
        step = _NEXT_ELEMENT.match(data, element_end)
    if not step or dimensions == 1:
        raise ValueError("the attention array is not an array of layers, heads, queries and keys")
    return step.end(), np.array(elements, dtype=np.float64)  # ValueError if their shapes differ
