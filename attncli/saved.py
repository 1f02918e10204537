"""Reading back a saved result for check: the text, the model and the attention of a JSON document
of explain, heatmap or model, streamed (the attention a row at a time into one array made for it: a
long text's millions of weights never all exist as Python floats at once, nor twice as arrays)."""

import math
import re
from dataclasses import dataclass

import numpy as np
import orjson

from attncli.analysis import Measure
from attncli.attention import EVERYTHING, Selection
from attncli.errors import BadInput

__all__ = ["SavedRun"]

# A JSON string (escapes included) or a bracket: what the scan of a saved document must see.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_KEY = re.compile(rb"\s*:")  # what follows a string that is a key
_ARRAY_VALUE = re.compile(rb"\s*:\s*(\[)")  # what follows a key whose value is an array
_FIRST_ELEMENT = re.compile(rb"\s*([\[\]])")  # an array's first element opens, or the array closes
_NEXT_ELEMENT = re.compile(rb"\s*(?:,\s*(\[)|(\]))")
_EMPTY_ROW = re.compile(rb"\[\s*\]")
_NUMBER_ROW_BYTES = b"0123456789.eE+-,[] \t\r\n"
# the top-level keys check reads: each must be there once
_READ_KEYS = ("text", "model", "attention", "layers", "heads")
_NOT_ATTENTION = "the attention array is not an array of layers, heads, queries and keys"


class _RepeatedKey(ValueError):
    """A top-level key check reads is in the document more than once (JSON readers differ on which counts)."""


@dataclass(eq=False, repr=False)
class SavedRun:
    """What check reads back from a saved document: the text, the model object and the attention."""

    text: str
    model: dict  # as ModelInfo.to_json wrote it
    attention: np.ndarray  # [L, h, T, T] float64, every digit the document wrote (a sample model's are float64)
    measure: str = "weights"  # what the attention is: the weights, or "norms", their ‖α v W_O‖ (its "measure")
    selection: Selection = EVERYTHING  # the layers and heads it kept (its "layers" and "heads")

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
        except _RepeatedKey as repeated:
            raise BadInput(
                "{source} holds the key {key} more than once; keep one", source=source, key=str(repeated)
            ) from None
        except ValueError:  # an attention array that is not one of equally long rows of numbers
            raise damaged from None
        if attention is None or not isinstance(document, dict):
            raise damaged
        try:
            text, model, name = document["text"], document["model"], document["model"]["name"]
        except (KeyError, TypeError):
            raise damaged from None
        measure = document.get("measure", "weights")
        if not isinstance(name, str) or not isinstance(text, str) or not np.all(np.isfinite(attention)):
            raise damaged
        if measure not in tuple(Measure):
            raise damaged
        try:
            selection = Selection(*(_indices(document.get(key)) for key in ("layers", "heads")))
        except (TypeError, ValueError):
            raise damaged from None
        return cls(text, model, attention, measure, selection)


def _indices(value) -> tuple[int, ...] | None:
    """A document's list of layer or head indices as a Selection keeps them; None where it has none."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise TypeError("not a list of indices")
    return tuple(value)


def _saved_attention(data: bytes) -> tuple[int, int, np.ndarray] | None:
    """The value of the JSON document's top-level "attention" key, as float64, and where it starts
    and ends in `data`; None when it has no such array.

    A scan of strings and brackets finds the top-level keys; the attention array is read where it
    stands (see _array), and the scan goes on past it. Raises _RepeatedKey where one of the keys
    check reads is there twice, ValueError where the attention is not an array of equally shaped
    arrays of numbers."""
    depth, seen, found, at = 0, set(), None, 0
    while piece := _STRING_OR_BRACKET.search(data, at):
        at, mark = piece.end(), data[piece.start()]
        if mark != ord('"'):
            depth += 1 if mark in b"[{" else -1
            continue
        if depth != 1 or not _KEY.match(data, at):
            continue
        key = orjson.loads(piece.group())  # short, and escapes must read as a JSON reader reads them
        if key in seen:
            raise _RepeatedKey(f'"{key}"')
        if key in _READ_KEYS:
            seen.add(key)
        if key == "attention" and (array := _ARRAY_VALUE.match(data, at)):
            at, attention = _array(data, array.start(1))
            found = array.start(1), at, attention
    return found


def _array(data: bytes, at: int) -> tuple[int, np.ndarray]:
    """Where the array of layers, heads, queries and keys that opens at `data[at]` ends, and that
    array as float64, read in two passes: the first finds its rows and checks that they make one
    shape, the second parses each row into its place in an array made once for all of them, so
    that reading it takes the document and the array, not a copy of either."""
    end, shape, rows = _rows(data, at, dimensions=4)
    attention = np.empty(shape, dtype=np.float64)  # [L, h, T, T]
    in_rows = attention.reshape(math.prod(shape[:-1]), shape[-1])  # [L·h·T, T], a view of the same memory
    for place, (start, stop) in zip(in_rows, rows, strict=True):
        row = data[start:stop]
        if row.translate(None, _NUMBER_ROW_BYTES):
            raise ValueError(_NOT_ATTENTION)
        numbers = orjson.loads(row)
        if len(numbers) != len(place):
            raise ValueError(_NOT_ATTENTION)
        place[:] = numbers
    return end, attention


def _rows(data: bytes, at: int, dimensions: int) -> tuple[int, tuple[int, ...], list[tuple[int, int]]]:
    """Where the array that opens at `data[at]` ends, its shape (of `dimensions` dimensions, each of
    one length), and where each of its rows of numbers starts and ends, in order; no number is read."""
    close = data.find(b"]", at)
    if close >= 0 and data.find(b"[", at + 1, close) < 0:  # a row of numbers
        if dimensions != 1:
            raise ValueError(_NOT_ATTENTION)
        length = 0 if _EMPTY_ROW.match(data, at) else data.count(b",", at, close) + 1
        return close + 1, (length,), [(at, close + 1)]
    shape, rows, count, step = None, [], 0, _FIRST_ELEMENT.match(data, at + 1)
    while step and step.group(1) == b"[" and dimensions > 1:
        element_end, element_shape, element_rows = _rows(data, step.end() - 1, dimensions - 1)
        if shape not in (None, element_shape):
            raise ValueError(_NOT_ATTENTION)
        shape, count = element_shape, count + 1
        rows += element_rows
        step = _NEXT_ELEMENT.match(data, element_end)
    if not step or dimensions == 1:
        raise ValueError(_NOT_ATTENTION)
    return step.end(), (count, *(shape or (0,) * (dimensions - 1))), rows
