"""Reading an input whole: a file, or standard input for "-", up to a limit, as bytes or as UTF-8 text.

An error names the input as the parameter that was given it and its name (an errors.Argument),
else by its name alone, or as standard input."""

import sys
from contextlib import nullcontext

from attncli.errors import Argument, BadInput

__all__ = ["SAVED_LIMIT", "TEXT_LIMIT", "read_input", "read_text"]

# The most attncli reads of one input: texts and batches (a long book is a few MB), and a saved
# result for check (a 512-token heatmap of a 24-layer, 14-head model is about 0.9 GB as JSON). Reading stops
# there, so `yes | attncli explain -` or /dev/zero end at once.
TEXT_LIMIT = 256 * 2**20
SAVED_LIMIT = 2**30


def read_input(source: str, limit: int, parameter: str | None = None) -> bytearray:
    """The bytes of file `source`, or of standard input for "-", refused past `limit` bytes; errors
    name it as given to `parameter`, if given. Read a piece at a time (one read of `limit` bytes
    would reserve all of them, however small the input) into one buffer, so a large input is never
    held twice."""
    data = bytearray()
    try:
        with nullcontext(sys.stdin.buffer) if source == "-" else open(source, "rb") as stream:
            while len(data) <= limit and (piece := stream.read(min(16 * 2**20, limit + 1 - len(data)))):
                data += piece
    except OSError as error:
        raise BadInput("{what}: {reason}", what=_named(source, parameter), reason=error.strerror) from None
    if len(data) > limit:
        raise BadInput(
            "{what} is over {megabytes:,} MB, the most attncli reads of one input",
            what=_named(source, parameter),
            megabytes=limit // 2**20,
        )
    return data


def read_text(source: str, parameter: str | None = None) -> str:
    """The text of file `source`, or of standard input for "-", checked to be UTF-8 (a byte-order
    mark is not part of the text); errors name it as given to `parameter`, if given."""
    data = read_input(source, TEXT_LIMIT, parameter)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(
            "{what} is not UTF-8 (bad byte at offset {offset}); convert it to UTF-8",
            what=_named(source, parameter),
            offset=error.start,
        ) from None


def _named(source: str, parameter: str | None) -> Argument | str:
    """The input as a message names it: with the parameter that was given it, else by its name."""
    if parameter is not None:
        return Argument(parameter, source)
    return "standard input" if source == "-" else source
