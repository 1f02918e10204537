"""Writing a result: its terminal view, or its numbers as JSON, CSV or NPZ; to stdout or to a file.

Files are written whole or not at all: into a temporary file beside the target, then renamed
over it. A run's outputs go in place together: every file is renamed only once all of them, and
standard output, were written, so a run that fails at any point leaves every existing file as
it was. The view a result gets is attncli.views' to choose.
"""

import contextlib
import enum
import io
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attncli.errors import Argument, BadInput, Parameter, PipeClosed
from attncli.escapes import JSON_ESCAPES
from attncli.json_writer import json_bytes, json_chunks

__all__ = [
    "FILE_FORMATS",
    "VIEW_WIDTH",
    "Color",
    "Format",
    "Output",
    "Scale",
    "TableFormat",
    "WrittenType",
    "attention_csv",
    "attention_npz",
    "file_mode",
    "format_named_by",
    "jsonl",
    "leftover_temporaries",
    "rounded",
    "writable_target",
    "write",
    "write_file",
    "write_records",
    "write_stdout",
]


class Format(enum.StrEnum):
    """What a result is written as."""

    table = "table"  # the terminal view
    json = "json"
    csv = "csv"  # the attention weights in long form
    npz = "npz"  # the attention weights as a numpy archive


class WrittenType(enum.StrEnum):
    """How documents write attention weights: every digit, or float16 where 1e-3 will do."""

    float32 = "float32"
    float16 = "float16"


# What every result can be written as: the formats but the numpy archive, which holds attention.
TableFormat = enum.StrEnum("TableFormat", {format.name: format.value for format in Format if format != Format.npz})


class Color(enum.StrEnum):
    """When a view gets escape codes for colour."""

    auto = "auto"  # on a terminal, unless NO_COLOR is set
    always = "always"
    never = "never"


class Scale(enum.StrEnum):
    """How a heatmap maps weights to colours (see widgets.heatmap.fractions)."""

    fixed = "fixed"  # 0 to 1, the same in every view: a colour is a weight
    row = "row"  # 0 to each row's largest weight: where each query's attention goes, however small
    log = "log"  # log10 of the weight from 0.001 to 1: small weights beside a large one stay visible


_EXPORTS = (".svg", ".html")
# Columns of a view drawn where no terminal says how wide it is: into a file, a pipe, or a picture.
VIEW_WIDTH = 120

# The formats a file's extension names. A JSON document is one line, so it is JSON Lines as well.
FILE_FORMATS = {".json": Format.json, ".jsonl": Format.json, ".csv": Format.csv, ".npz": Format.npz}


def format_named_by(path: Path | None) -> Format | None:
    """The format the extension of `path` names (.json and .jsonl JSON, .csv, .npz), or None."""
    return None if path is None else FILE_FORMATS.get(path.suffix.lower())


@dataclass(eq=False)
class Output:
    """How a result is to be written: its format, where to, rounded how, with a picture or not (and
    its title), in colour or not, how wide a view."""

    format: Format = Format.table
    path: Path | None = None  # None: standard output
    precision: int | None = None  # decimals of JSON and CSV numbers; None: every digit
    export: Path | None = None  # an SVG or HTML picture of the view
    color: Color = Color.auto
    pager: bool = True  # a view taller than the terminal goes through a pager (never when piped)
    width: int | None = None  # columns of a view; None: the terminal's (COLUMNS counts), else VIEW_WIDTH
    title: str | None = None  # the export's title; None: the figure's own (the model, layer and head)

    def __post_init__(self):
        if self.precision is not None and not 0 <= self.precision <= 17:
            raise BadInput("{precision} {value}: use 0 to 17 decimals", value=self.precision)
        if self.title is not None and self.export is None:
            raise BadInput(
                "{option} titles the figure {export} FILE saves; give {export} too", option=Parameter("title")
            )
        if self.export is not None and self.export.suffix.lower() not in _EXPORTS:
            raise BadInput("{export} {file}: name an .svg or .html file", file=self.export)
        if self.path is not None and self.export is not None and self.path.resolve() == self.export.resolve():
            raise BadInput("{path} and {export} both name {file}; give each its own file", file=self.path)
        for parameter, path in (("path", self.path), ("export", self.export)):
            if path is not None:  # before any work, so a bad export never leaves the output file without it
                writable_target(path, parameter)


def _replaced(path: Path) -> Path:
    """The file that writing `path` replaces: a symbolic link's target (the link stays a link)."""
    return path.resolve() if path.is_symlink() else path


def writable_target(path: Path, parameter: str) -> Path:
    """The file that writing `path` (given as `parameter`) replaces: a symbolic link's target, checked
    before any work to be no directory and to lie in a directory that exists and can be written. A
    device or a pipe that exists is written straight through (as a shell's > would), unchecked."""
    target = _replaced(path)
    if target.exists() and not target.is_file() and not target.is_dir():
        return target
    if not path.name or target.is_dir():
        raise BadInput("{what} names a directory; give a file name", what=Argument(parameter, path))
    if not target.parent.is_dir():
        raise BadInput(
            "cannot write {option} {file}: no such directory {parent}",
            option=Parameter(parameter),
            file=path,
            parent=target.parent,
        )
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise BadInput(
            "cannot write {option} {file}: {parent} is not writable",
            option=Parameter(parameter),
            file=path,
            parent=target.parent,
        )
    return target


def rounded(value, decimals: int | None):
    """`value` (a JSON document of dicts, lists, arrays and floats) with every float rounded."""
    if decimals is None:
        return value
    if isinstance(value, dict):
        return {key: rounded(item, decimals) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, decimals) for item in value]
    if isinstance(value, Iterator):  # a stream of layers: each as it comes
        return _rounded_each(value, decimals)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return np.round(value, decimals)
    if isinstance(value, float):
        return round(value, decimals)
    return value


def _rounded_each(items: Iterator, decimals: int) -> Iterator:
    """Each of `items` rounded, as it comes."""
    for item in items:
        done = rounded(item, decimals)
        del item  # before the next is made: a long text's layer at a time, not two
        yield done
        del done


# CSV cells: what a spreadsheet would run as a formula gets a leading apostrophe, which shows as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CSV_ESCAPES = {ord("\\"): "\\\\"} | {ord(c): e for c, e in (("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r"))}


def csv_text(text: str) -> str:
    """A token for a CSV cell: backslashes, and the characters a terminal would obey, escaped as
    JSON escapes them (\\n, \\u001b, \\u202e); a cell a spreadsheet would read as a formula
    prefixed with an apostrophe."""
    escaped = text.translate(_CSV_ESCAPES).translate(JSON_ESCAPES)
    return "'" + escaped if escaped.startswith(_FORMULA_STARTS) else escaped


def _cell(value, decimals: int | None):
    """A value as a CSV cell: text escaped (csv_text), numbers in their shortest round-tripping form
    (float32 as float32) rounded to `decimals` when given, true/false, and nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return csv_text(value)
    if isinstance(value, float | np.floating):
        return str(value if decimals is None else type(value)(round(value, decimals)))
    return str(value)


def table_csv(header: list[str], rows: Iterable[list], decimals: int | None) -> Iterator[bytes]:
    """A result's own table (see its csv_table) as CSV, a thousand rows a piece."""
    import csv  # here, not at the top: every run of every command would pay for its import

    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(header)
    for number, row in enumerate(rows, start=1):
        out.writerow([_cell(value, decimals) for value in row])
        if number % 1000 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def attention_csv(run, decimals: int | None) -> Iterator[bytes]:
    """Every attention weight of `run` (or, for a run of norms, its ‖α v W_O‖: a column "norm") in long
    form, one row per (layer, head, query, key), in pieces of one head each. Weights in their shortest
    round-tripping form, as JSON writes them (float32 as float32), rounded to `decimals` when given."""
    import csv  # here, not at the top: every run of every command would pay for its import

    texts = [csv_text(token.text) for token in run.tokens]
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    value = "norm" if run.shows_norms else "weight"
    out.writerow(["layer", "head", "query_index", "query_token", "key_index", "key_token", value])
    layers = iter(run.layers)  # not zipped with the layers written, whose tuple would hold one while the next is made
    for weights in run.written():  # [h', T, T] a layer at a time
        layer = next(layers, None)
        if layer is None:
            raise ValueError(f"more layers written than the {len(run.layers)} the run kept")
        for head, block in zip(run.heads, weights, strict=True):  # [T, T]
            block = block if decimals is None else np.round(block, decimals)
            for query in range(len(block)):  # no row view left behind to hold the layer (see below)
                numbers = json_bytes(block[query])[1:-1].decode().split(",")
                out.writerows([layer, head, query, texts[query], key, texts[key], w] for key, w in enumerate(numbers))
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        del weights, block  # before the next layer is made: one at a time, not two
    if next(layers, None) is not None:
        raise ValueError(f"fewer layers written than the {len(run.layers)} the run kept")


def attention_npz(run) -> Iterator[bytes]:
    """`attention` float32 (or the run's float16) [layer, head, query, key], with `tokens` (strings) and `ids` (for
    a run that kept some layers and heads, `layers` and `heads`, the model's indices of the first two axes; for a
    run of norms, whose `attention` holds its ‖α v W_O‖, `measure`: "norms"), as the bytes of an .npz file, in
    pieces (see attncli.npz): the attention is deflated a piece at a time, a layer at a time, so neither it nor
    the file is ever copied whole (nor, for a streamed run, held whole)."""
    from attncli.npz import Layers, npz_pieces  # here, not at the top: only NPZ output needs it

    measure = [("measure", np.array(run.measure))] if run.shows_norms else []
    kept = [] if run.selection.everything else [("layers", np.array(run.layers)), ("heads", np.array(run.heads))]
    dtype = np.dtype(run.dtype or np.float32)
    attention = Layers(run.attention.shape, dtype, run.written(dtype))  # [L', h', T, T] a layer at a time
    yield from npz_pieces(
        [
            ("attention", attention),
            ("tokens", np.array([token.text for token in run.tokens])),
            ("ids", np.array([token.id for token in run.tokens])),
            *kept,
            *measure,
        ]
    )


def write_file(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write `data` (bytes, or pieces of them) to `path` whole or not at all, replacing an existing
    file only when done. A symbolic link's target is what gets replaced; a path that is not a
    regular file (a named pipe, /dev/null) is written straight through, as a shell's > would."""
    with _together() as files:
        files.write(path, data)


# A temporary's name: ".NAME.<12 hex digits>.part" beside the file NAME it is to become.
_TEMPORARY_SUFFIX = ".part"


class _Staged:
    """Files written whole to temporaries beside their targets, put in place together by `commit`;
    what `discard` finds still staged is removed."""

    def __init__(self):
        self._staged: list[tuple[Path, Path, Path]] = []  # (temporary, target, the path as given)

    def write(self, path: Path, data: bytes | Iterable[bytes]) -> None:
        """Write `data` to a temporary beside `path` (see write_file)."""
        pieces = [data] if isinstance(data, bytes) else data
        target = _replaced(path)
        if target.exists() and not target.is_file():
            try:
                with open(target, "wb") as file:
                    file.writelines(pieces)
            except OSError as error:
                raise BadInput(f"cannot write {path}: {error.strerror}") from None
            return
        # Named and staged before it exists (48 random bits; O_EXCL refuses a clash), so that an
        # interrupt at any moment, even as the file is made, leaves it to `discard`.
        temporary = target.parent / f".{target.name}.{os.urandom(6).hex()}{_TEMPORARY_SUFFIX}"
        self._staged.append((temporary, target, path))
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            if isinstance(error, FileExistsError):  # a clash: the file is someone else's
                self._staged.pop()
            raise BadInput(f"cannot write {path}: {error.strerror}") from None
        try:
            with os.fdopen(handle, "wb") as file:
                file.writelines(pieces)
        except OSError as error:
            raise BadInput(f"cannot write {path}: {error.strerror}") from None

    def commit(self) -> None:
        """Put every staged file in place, in the order written."""
        while self._staged:
            temporary, target, path = self._staged[0]
            try:
                os.chmod(temporary, file_mode(target))
                os.replace(temporary, target)
            except OSError as error:
                raise BadInput(f"cannot write {path}: {error.strerror}") from None
            self._staged.pop(0)

    def discard(self) -> None:
        """Remove every temporary not put in place."""
        for temporary, _, _ in self._staged:
            temporary.unlink(missing_ok=True)
        self._staged.clear()


@contextmanager
def _together():
    """Staged files (see _Staged), put in place when the block ends, and only if it succeeds: a
    run whose last output fails (a full disk, a closed standard output, an interrupt) leaves every
    file it was to replace as it was."""
    files = _Staged()
    try:
        yield files
        files.commit()
    finally:
        files.discard()


def leftover_temporaries(path: Path) -> list[Path]:
    """The temporary files that writes of `path` (write_file's, _Staged's) killed outright, by kill -9
    or a power cut, left beside it: on any other ending they remove their own."""
    target = _replaced(path)
    name = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{12}}{re.escape(_TEMPORARY_SUFFIX)}")
    try:
        return [target.parent / found for found in os.listdir(target.parent) if name.fullmatch(found)]
    except OSError:  # no directory to look in: nothing was left there
        return []


def file_mode(path: Path) -> int:
    """The permissions the file should get: those of the file it replaces, else the umask's default
    (the temporary file is made private)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_stdout(data: bytes | Iterable[bytes]) -> None:
    """Write bytes, or pieces of them, to standard output; a reader that went away is PipeClosed,
    any other failure (a full disk, a closed descriptor) one clear error. Where standard output is a
    regular file (a shell's > or >>) and making the pieces fails part way (a document written as a
    forward pass makes it, whose pass fails), the file is cut back to where this output began: no
    half a document left in it. A pipe's reader has had what it read; the exit code says it failed."""
    if sys.stdout is None:
        raise BadInput("standard output is closed; give {option} FILE", option=Parameter("path"))
    start = _regular_file_offset(sys.stdout)
    try:
        for piece in [data] if isinstance(data, bytes) else _coalesced(data):
            if sys.stdout.buffer.write(piece) < len(piece):  # a pipe closed by its reader takes only part
                raise PipeClosed("standard output was closed")
        sys.stdout.flush()
    except BrokenPipeError:
        raise PipeClosed("standard output was closed") from None
    except OSError as error:
        raise BadInput(f"cannot write standard output: {error.strerror}") from None
    except BaseException:
        if start is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
                os.ftruncate(sys.stdout.fileno(), start)
        raise


def _regular_file_offset(stream) -> int | None:
    """Where the regular file `stream` writes to now (its end, for >>); None for anything else."""
    import fcntl  # here, not at the top: only standard output asks
    import stat

    try:
        descriptor = stream.fileno()
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return None
        stream.flush()
        if fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_APPEND:  # every write goes to the end
            return status.st_size
        return os.lseek(descriptor, 0, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


# Pieces of output are gathered up to this many bytes before a write: unbuffered (PYTHONUNBUFFERED),
# each piece would be a system call of its own, hundreds of them for one small document.
_WRITE_SIZE = 1 << 16


def _coalesced(pieces: Iterable[bytes]) -> Iterable[bytes]:
    """`pieces` joined into blocks of at least _WRITE_SIZE bytes (the last one may be smaller)."""
    block = bytearray()
    for piece in pieces:
        block += piece
        if len(block) >= _WRITE_SIZE:
            yield bytes(block)
            block.clear()
    if block:
        yield bytes(block)


def write(result, output: Output, *, drawn: Callable | None = None, **view_options) -> None:
    """Write `result` as `output` asks; a view gets `view_options` (see attncli.views), and is drawn as
    drawn(view) where given (a renderable around it: the command line's shows on stderr how the drawing goes).
    The windows of its tokens that `view_options` choose (`keys`, `queries`) are checked whatever is written."""
    if sys.stdout is None and output.path is None:
        raise BadInput("standard output is closed; give {option} FILE", option=Parameter("path"))
    for parameter in ("keys", "queries"):
        if view_options.get(parameter) is not None:
            result.run.window(view_options[parameter], parameter)
    try:
        _write(result, output, drawn, **view_options)
    except BrokenPipeError:
        raise PipeClosed("standard output was closed") from None


def write_records(records, path: Path | None, precision: int | None) -> None:
    """JSON Lines: one record a line, to standard output as they come, or to `path` whole at the end."""
    pieces = jsonl(records, precision)
    if path is not None:
        write_file(path, pieces)
    else:
        write_stdout(pieces)


def jsonl(records: Iterable[dict], precision: int | None) -> Iterator[bytes]:
    """JSON Lines of `records`, rounded to `precision` decimals, as pieces of bytes."""
    for record in records:
        yield from json_chunks(rounded(record, precision))
        yield b"\n"


def _write(result, output: Output, drawn: Callable | None, **view_options) -> None:
    if output.format == Format.npz and not hasattr(result, "run"):
        raise BadInput(
            "{format} {value} writes attention weights: use it with a command that computes them",
            value=output.format.value,
        )
    if output.format == Format.npz and output.path is None and sys.stdout.isatty():
        raise BadInput("{format} {value} is binary: give {path} FILE.npz, or redirect standard output", value="npz")
    renderable = None
    if output.format == Format.table or output.export is not None:
        from attncli.views import view  # only views need rich's layout machinery

        renderable = view(result, **view_options)
        if drawn is not None:
            renderable = drawn(renderable)
    # Standard output is written before the files are put in place: a reader that went away, or a
    # full disk, leaves the files that were there as they were.
    with _together() as files:
        if output.export is not None:
            files.write(output.export, _export(result, renderable, output, view_options))
        if output.format == Format.json:
            data = itertools.chain(json_chunks(rounded(result.to_json(), output.precision)), [b"\n"])
        elif output.format == Format.csv and hasattr(result, "csv_table"):
            data = table_csv(*result.csv_table(), output.precision)
        elif output.format == Format.csv:  # a result that is the attention itself: in long form
            data = attention_csv(result.run, output.precision)
        elif output.format == Format.npz:
            data = attention_npz(result.run)
        elif output.path is not None:
            text = io.StringIO()
            _console(Color.never, file=text, width=_view_width(output)).print(renderable)
            data = _without_trailing_spaces(text.getvalue()).encode()
        else:
            _print_view(renderable, output)
            return
        if output.path is not None:
            files.write(output.path, data)
        else:
            write_stdout(data)


def _print_view(renderable, output: Output) -> None:
    """A view on standard output: through a pager when a terminal is too short for it, laid out
    for the terminal's width there; elsewhere for `output.width`, else COLUMNS, else VIEW_WIDTH."""
    on_terminal = sys.stdout.isatty()  # a real terminal, not one that forced colour pretends
    console = _console(output.color, file=_stdout_text(), width=_view_width(output, on_terminal))
    if output.pager and on_terminal:
        from attncli.terminal import page

        with console.capture() as captured:
            console.print(renderable)
        view = captured.get()
        if view.count("\n") < console.height or not page(view):
            console.file.write(view)
    elif console.is_terminal or console.color_system is not None:
        console.print(renderable)  # a terminal (or colour asked for): as rich lays it out
    else:  # plain text into a pipe or file: lines without the spaces that pad them to the width
        with console.capture() as captured:
            console.print(renderable)
        write_stdout(_without_trailing_spaces(captured.get()).encode())


def _view_width(output: Output, on_terminal: bool = False) -> int | None:
    """The columns a view is drawn in: `output.width`; on a terminal, its own (None: rich asks it,
    COLUMNS counting); elsewhere, a pipe or a file, COLUMNS, else VIEW_WIDTH."""
    if output.width is not None or on_terminal:
        return output.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else VIEW_WIDTH


def _without_trailing_spaces(text: str) -> str:
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def _console(color: Color, **settings):
    """A console that treats all text as plain text (see terminal.make_console)."""
    from attncli.terminal import make_console  # only views need rich's console

    return make_console(color, **settings)


def _stdout_text():
    """Standard output for a view. When Python runs unbuffered (PYTHONUNBUFFERED or -u) its text
    layer writes straight to the descriptor and drops the rest of a partial write without an
    error, so a reader that stopped early would go unnoticed (exit 0, not 141); a buffered writer
    on the same descriptor, left open when done, reports it."""
    if not isinstance(sys.stdout.buffer, io.RawIOBase):
        return sys.stdout
    return open(sys.stdout.fileno(), "w", encoding=sys.stdout.encoding, errors=sys.stdout.errors, closefd=False)


def _export(result, renderable, output: Output, view_options: dict) -> bytes:
    """The picture `output.export` asks for: the result's own figure where it has one (an interactive
    page of its attention, an SVG heatmap, grid or chart), else its view as a truecolor terminal
    shows it, `output.width` columns wide, else VIEW_WIDTH (whatever COLUMNS says: a figure is the
    same wherever it is made)."""
    from attncli.views import figure

    kind = output.export.suffix.lower()
    width = output.width or VIEW_WIDTH
    return figure(result, kind, renderable, width, title=output.title, **view_options).encode()
