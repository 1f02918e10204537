"""The attncli command line: parse options, call attncli.commands, hand the result to a view or to JSON.

This is also the error boundary: the library raises errors that name its own parameters
(attncli.errors); here they become one line on stderr that names the options a user typed.
"""

import enum
import functools
import inspect
import os
import re
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from attncli import __version__, commands, interrupted_code
from attncli.allocator import keep_freed_memory, no_huge_pages
from attncli.analysis import HEAD_COLUMNS, Fusion, Measure
from attncli.attention import EVERYTHING
from attncli.errors import AttncliError, BadInput, LinesFailed, Notice, PipeClosed, shortened
from attncli.escapes import visible
from attncli.inputs import SAVED_LIMIT, read_input, read_text
from attncli.models import Model, load_model
from attncli.output import (
    FILE_FORMATS,
    Color,
    Format,
    Output,
    Scale,
    TableFormat,
    WrittenType,
    format_named_by,
    write_records,
)
from attncli.output import write as write_output
from attncli.progress import Rate
from attncli.results import AttentionRun

__all__ = ["app", "main"]

# Typer re-exports BadParameter but not the click exceptions above it. Taking
# them from its MRO works whether typer vendors click (0.29 on) or depends on it.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


# Exit codes beyond 0 (success), 1 (an unexpected failure; ATTNCLI_DEBUG=1 shows the traceback),
# 2 (bad input or usage), 130 (interrupted) and 141 (standard output closed by its reader).
BATCH_FAILED = 3  # heads --file and batch: some lines failed (LinesFailed); the others' results are written
CHECK_FAILED = 4  # check: some attention weight moved beyond the tolerance

# How the library's parameters read on the command line, for errors that name them
# (see attncli.errors): the options and arguments a user types ...
OPTION_NAMES = {
    "a": "A",
    "against": "--against",
    "at": "--at",
    "b": "B",
    "batch_file": "FILE",
    "causal": "--causal",
    "export": "--export",
    "field": "--field",
    "file": "--file",
    "focus": "--focus",
    "format": "--format",
    "fusion": "--head-fusion",
    "head": "--head",
    "heads": "--num-heads",
    "kept_heads": "--heads",
    "dtype": "--dtype",
    "sort": "--sort",
    "steps": "--steps",
    "summary": "--summary",
    "shown_tokens": "--tokens",
    "id_field": "--id",
    "dask": "--dask",
    "jobs": "--jobs",
    "include_special": "--include-special",
    "k": "-k",
    "keys": "--keys",
    "layer": "--layer",
    "layers": "--layers",
    "max_new_tokens": "--max-new-tokens",
    "max_tokens": "--max-tokens",
    "measure": "--measure",
    "merge": "--merge",
    "model": "--model",
    "path": "-o",
    "positions": "--no-positions",
    "precision": "--precision",
    "queries": "--queries",
    "resume": "--resume",
    "seed": "--seed",
    "target": "--target",
    "text_a": "TEXT_A",
    "text_b": "TEXT_B",
    "title": "--title",
    "to": "--to",
    "token": "--token",
    "tolerance": "--tolerance",
    "top": "--top",
    "versus": "--versus",
}
# ... and the ways of doing something that the library's hints point to.
PHRASES = {
    "attention_json": "heatmap --json",
    "explain_json": "explain --json",
    "json": "--json",
    "make_model": "`make model`",
}
WORDS = OPTION_NAMES | PHRASES


class _Commands(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code (see above)."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":
                sys.exit(0)  # plain `attncli`: typer has printed the help while raising this
            where = error.ctx.command_path if error.ctx else "attncli"
            message = error.format_message().rstrip(".")
            _fail(f"{where}: error: {message}. See '{where} --help'.", 2)
        except _ClickException as error:
            _fail(f"attncli: error: {error.format_message()}", error.exit_code)
        except typer.Abort:
            _fail("attncli: interrupted", interrupted_code())
        except (PipeClosed, BrokenPipeError):  # BrokenPipeError: from typer's own help and version
            _reader_gone()
        except SystemExit as stop:
            # rich and typer answer a closed pipe while printing help with exit 1.
            if stop.code == 1 and isinstance(stop.__context__, BrokenPipeError):
                _reader_gone()
            raise
        except LinesFailed as error:  # the other lines' results are written: a report, not an error
            _fail(f"attncli: {error.worded(WORDS)}", BATCH_FAILED)
        except AttncliError as error:
            _fail(f"attncli: error: {error.worded(WORDS)}", error.exit_code)
        except OSError as error:  # the system refused a path or a write: a full disk, a name too long
            where = "" if error.filename is None else f"{shortened(error.filename, 80)}: "
            _fail(f"attncli: error: {where}{error.strerror or error}", 2)
        except Exception as error:
            if os.environ.get("ATTNCLI_DEBUG"):
                raise
            _fail(f"attncli: internal error: {type(error).__name__}: {error} (ATTNCLI_DEBUG=1 shows where)", 1)
        if code == 130:
            _fail("attncli: interrupted", interrupted_code())
        sys.exit(code if isinstance(code, int) else 0)


def _reader_gone() -> None:
    """Exit as a process whose reader closed the pipe: nothing more can reach it, and the exit-time
    flush of stdout must not complain."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(PipeClosed.exit_code)


def _fail(message: str, code: int) -> None:
    _say(message)
    sys.exit(code)


def _say(message: str) -> None:
    sys.stderr.write(visible(message) + "\n")


def _notify(notice: Notice) -> None:
    """What a run says as it goes on (see corpus.Runner): one line on stderr."""
    _say(f"attncli: {notice.worded(WORDS)}")


app = typer.Typer(
    cls=_Commands,
    name="attncli",
    help="See what multi-head self-attention does to a sentence: every stage with real numbers, "
    "as tables and heatmaps, or as JSON with --json.",
    epilog="Exit codes: 0 success, 1 unexpected failure, 2 bad input or usage, 3 batch lines failed, "
    "4 check found changed weights, 130 interrupted (143 SIGTERM, 129 SIGHUP), 141 output closed by its reader.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TextArg = Annotated[
    str,
    typer.Argument(metavar="TEXT", help="The text, in quotes; - reads it from standard input.", show_default=False),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="ATTNCLI_MODEL",
        help="sample (the bundled model), minilm, a checkpoint directory, or a model id in the local "
        "Hugging Face cache.",
    ),
]
HeadsOpt = Annotated[
    int | None,
    typer.Option("--num-heads", help="Sample model: attention heads, a divisor of 64 (default 8).", show_default=False),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Sample model: seed of W_Q, W_K, W_V, W_O (default 0).", show_default=False)
]
CausalOpt = Annotated[
    bool | None,
    typer.Option("--causal", metavar="", help="Sample model: hide the keys after each query.", show_default=False),
]
PositionsOpt = Annotated[
    bool | None,
    typer.Option(
        "--positions/--no-positions",
        metavar="",
        help="Sample model: add sinusoidal positions (default on).",
        show_default=False,
    ),
]
KeptLayersOpt = Annotated[
    str | None,
    typer.Option(
        "--layers",
        help="Keep only these layers' attention, e.g. 20:24 (from 20 up to 24) or 0-2,5 (default all); the pass "
        "stops after the last.",
        show_default=False,
    ),
]
KeptHeadsOpt = Annotated[
    str | None,
    typer.Option(
        "--heads", help="Keep only these heads of each layer, e.g. 0:4 or 0-3,7 (default all).", show_default=False
    ),
]
DtypeOpt = Annotated[
    WrittenType,
    typer.Option("--dtype", help="How NPZ stores the weights: float16 halves the file, to within 1e-3."),
]
HeadOpt = Annotated[
    int | None,
    typer.Option("--head", help="Draw only this head (0-based); JSON still holds every head.", show_default=False),
]
WalkHeadOpt = Annotated[
    int | None,
    typer.Option(
        "--head",
        help="Draw only this head (0-based) and walk through it (default: the first kept); JSON still holds every "
        "head kept.",
        show_default=False,
    ),
]
ValuesOpt = Annotated[
    bool, typer.Option("--values/--no-values", metavar="", help="Print the weights inside the heatmap cells.")
]
IncludeSpecialOpt = Annotated[
    bool,
    typer.Option(
        "--include-special",
        metavar="",
        help="Let special tokens ([CLS], [SEP]) and a decoder's first token (its attention sink) be a top key.",
    ),
]
ScaleOpt = Annotated[
    Scale,
    typer.Option(
        "--scale", help="Colours: fixed (0 to 1 in every view), row (to each row's largest) or log (from 0.001)."
    ),
]
MeasureOpt = Annotated[
    Measure,
    typer.Option(
        "--measure",
        help="What to show of each query and key: the attention weights α, or norms, ‖α·v W_O‖: how much "
        "the key adds to the head's output (Kobayashi et al., 2020).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON document on stdout instead.")]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format", help="The output; csv is the view's table, npz the attention weights.", show_default=False
    ),
]
TableFormatOpt = Annotated[
    TableFormat | None,
    typer.Option("--format", help="The output; csv is the view's table.", show_default=False),
]


def _records_file(path: Path | None) -> Path | None:
    """batch's -o FILE, whose records are JSON Lines: a name for another format is refused before any work."""
    named = format_named_by(path)
    if named not in (None, Format.json):
        raise BadInput(
            f"-o {shortened(path, 80)} is named for {named.value.upper()}, but batch writes JSON Lines: "
            "name the file .jsonl"
        )
    return path


RecordsOutOpt = Annotated[
    Path | None,
    typer.Option(
        "-o", "--output", callback=_records_file, help="Write to this file (whole or not at all).", show_default=False
    ),
]
PrecisionOpt = Annotated[
    int | None, typer.Option("--precision", help="Round JSON and CSV numbers to N decimals.", show_default=False)
]
ExportOpt = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="Also save a figure: FILE.html (an interactive page of the attention) or FILE.svg.",
        show_default=False,
    ),
]
WidthOpt = Annotated[
    int | None,
    typer.Option(
        "--width",
        min=20,
        max=10_000,
        help="Columns to draw a view in (default: the terminal's; into a pipe or file, COLUMNS or 120).",
        show_default=False,
    ),
]
TitleOpt = Annotated[
    str | None,
    typer.Option(
        "--title", help="The --export figure's title (default: the model's name, layer and head).", show_default=False
    ),
]
ColorOpt = Annotated[Color, typer.Option("--color", help="Escape codes for colour; NO_COLOR and FORCE_COLOR count.")]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Refuse texts with more tokens than this.")]
KeysOpt = Annotated[
    str | None,
    typer.Option(
        "--keys",
        metavar="A:B",
        help="Draw keys A to B-1 only (0-based, a Python slice: 40:80, :50, -20:); JSON holds all.",
        show_default=False,
    ),
]
QueriesOpt = Annotated[
    str | None,
    typer.Option(
        "--queries",
        metavar="A:B",
        help="Draw queries (rows) A to B-1 only, as --keys; JSON holds all.",
        show_default=False,
    ),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs", min=1, help="Processes that share the texts (default: the cores available).", show_default=False
    ),
]
DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask",
        metavar="ADDRESS",
        # The backslash: typer reads help as rich markup, which would take [dask] for a style and drop it.
        help="Run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); needs attncli\\[dask].",
        show_default=False,
    ),
]
FieldOpt = Annotated[
    str | None,
    typer.Option(
        "--field", metavar="NAME", help="Read the file as JSON Lines, each text in field NAME.", show_default=False
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume", metavar="", help="Continue the unfinished run that -o FILE left (FILE.partial) where it stopped."
    ),
]
PagerOpt = Annotated[
    bool,
    typer.Option(
        "--pager/--no-pager",
        metavar="",
        help="Page a view taller than the terminal through $PAGER (default less -FRX); never when piped.",
    ),
]


def _shared_options(supplies: tuple[str, ...], options: tuple, build):
    """A decorator giving commands a set of options declared once, in `options`, as
    (parameter, annotation, default). typer sees those options in the command's signature
    in place of the keyword-only parameters named in `supplies`; the command receives those,
    as the dict build(**the options' values) holds them.

    typer reads a command's options from its signature alone, so rewriting the signature is
    the one way to declare a set of options once for many commands.
    """

    def decorate(command):
        signature = inspect.signature(command)
        kept = [parameter for parameter in signature.parameters.values() if parameter.name not in supplies]
        extra = [
            inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for option, annotation, default in options
        ]

        @functools.wraps(command)
        def with_options(*args, **kwargs):
            chosen = {option: kwargs.pop(option) for option, _, _ in options}
            return command(*args, **kwargs, **build(**chosen))

        with_options.__signature__ = signature.replace(parameters=kept + extra)
        with_options.__annotations__ = {
            key: value.annotation for key, value in with_options.__signature__.parameters.items()
        }
        return with_options

    return decorate


def _output(formats, as_json: bool, format, output_path, precision, export, title, width, color, pager) -> dict:
    if as_json and format not in (None, Format.json, TableFormat.json):
        raise BadInput(f"--json and --format {format.value} disagree; give one of them")
    asked = Format.json if as_json else None if format is None else Format(format)
    named = format_named_by(output_path)
    if named is not None and asked not in (None, named):
        typed = "--json" if as_json else f"--format {asked.value}"
        words, name = _FORMAT_WORDS[asked]
        raise BadInput(
            f"-o {shortened(output_path, 80)} is named for {named.value.upper()}, but {typed} writes {words}: "
            f"name the file {name}, or leave {typed} out"
        )
    if named is not None and named.value not in formats.__members__:
        raise BadInput(
            f"-o {shortened(output_path, 80)} is named for {named.value.upper()}, which this command does not "
            f"write ({', '.join(choice.value for choice in formats)}); name the file otherwise"
        )
    output = Output(
        asked or named or Format.table,
        output_path,
        precision,
        export,
        color,
        pager,
        width=width,
        title=title,
    )
    return {"output": output}


# How each format reads in a message, and what a file of it is named.
_FORMAT_WORDS = {
    Format.table: ("the view", "otherwise (such as .txt)"),
    Format.json: ("JSON", ".json"),
    Format.csv: ("CSV", ".csv"),
    Format.npz: ("NPZ", ".npz"),
}


def _output_options(format_option, formats):
    """--json, --format (with the choices `format_option` offers, `formats`), -o (whose extension,
    when it names a format, chooses it), --precision, --export, --title, --width, --color and --pager:
    the command receives `output`."""
    names = ", ".join(suffix for suffix, format in FILE_FORMATS.items() if format.value in formats.__members__)
    out = Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help=f"Write to this file (whole or not at all); a name ending in {names} chooses that format.",
            show_default=False,
        ),
    ]
    options = (
        ("as_json", JsonOpt, False),
        ("format", format_option, None),
        ("output_path", out, None),
        ("precision", PrecisionOpt, None),
        ("export", ExportOpt, None),
        ("title", TitleOpt, None),
        ("width", WidthOpt, None),
        ("color", ColorOpt, Color.auto),
        ("pager", PagerOpt, True),
    )
    return _shared_options(("output",), options, functools.partial(_output, formats))


# For the commands that compute attention: any format, the numpy archive included.
output_options = _output_options(FormatOpt, Format)
# For the others: their own tables, as a view, JSON or CSV.
table_output_options = _output_options(TableFormatOpt, TableFormat)


def _model(
    spec: str, max_tokens: int = commands.DEFAULT_MAX_TOKENS, num_heads: int | None = None, **sample_options
) -> dict:
    model = load_model(spec, heads=num_heads, **sample_options)
    _LOADED.append(model)  # kept to the end of the process, which never frees it (see attncli.main)
    return {"model": _reported(model), "max_tokens": max_tokens}


# The models this process loaded: a model freed when its command returns would take its tokenizer with it,
# and dropping a tokenizer of 128,000 pieces takes 0.13 s.
_LOADED: list = []


_MODEL = ("spec", ModelOpt, "sample")
_MAX_TOKENS = ("max_tokens", MaxTokensOpt, commands.DEFAULT_MAX_TOKENS)
_SAMPLE = (
    ("num_heads", HeadsOpt, None),
    ("seed", SeedOpt, None),
    ("causal", CausalOpt, None),
    ("positions", PositionsOpt, None),
)
# --model, --max-tokens and the sample model's --num-heads, --seed, --causal and --no-positions:
# the command receives `model` and `max_tokens`.
model_options = _shared_options(("model", "max_tokens"), (_MAX_TOKENS, _MODEL, *_SAMPLE), _model)


def _corpus_model(spec: str, max_tokens: int, num_heads: int | None = None, **sample_options) -> dict:
    from attncli.corpus import ModelRecipe

    recipe = ModelRecipe(spec, tuple({"heads": num_heads, **sample_options}.items()))
    recipe.load()  # here, before any input is read: a model that cannot be loaded is said first
    return {"max_tokens": max_tokens, "recipe": recipe}


# For commands that may run on other processes: they receive `max_tokens` and `recipe`, how to load
# the model there (and here, once, with recipe.load()).
corpus_model_options = _shared_options(("max_tokens", "recipe"), (_MAX_TOKENS, _MODEL, *_SAMPLE), _corpus_model)


InductionOpt = Annotated[
    bool,
    typer.Option(
        "--induction",
        metavar="",
        help="Run the induction test instead of a text: 50 random tokens of the vocabulary, then the same 50 "
        "again, drawn with --seed (default 0).",
    ),
]


def _heads_model(spec: str, max_tokens: int, induction: bool, seed: int | None = None, **sample_options) -> dict:
    """corpus_model_options', and `induction`: the seed of --induction's random tokens (--seed, which seeds a
    sample model's weights too, and is a checkpoint's to take then), or None without --induction."""
    if not induction:
        return {**_corpus_model(spec, max_tokens, seed=seed, **sample_options), "induction": None}
    weights_seed = seed if spec == "sample" else None
    chosen = commands.INDUCTION_SEED if seed is None else seed
    return {**_corpus_model(spec, max_tokens, seed=weights_seed, **sample_options), "induction": chosen}


HeadsSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Sample model: seed of W_Q, W_K, W_V, W_O (default 0). With --induction, any model: the seed of its "
        "random tokens (default 0).",
        show_default=False,
    ),
]
# heads' model options: corpus_model_options' and --induction, whose tokens --seed draws; the command
# receives `max_tokens`, `recipe` and `induction`.
heads_model_options = _shared_options(
    ("max_tokens", "recipe", "induction"),
    (
        _MAX_TOKENS,
        _MODEL,
        ("induction", InductionOpt, False),
        *(("seed", HeadsSeedOpt, None) if option[0] == "seed" else option for option in _SAMPLE),
    ),
    _heads_model,
)


def _windows(keys: str | None, queries: str | None) -> dict:
    return {"windows": {"keys": _window(keys, "--keys"), "queries": _window(queries, "--queries")}}


# --keys and --queries, the window of the matrix a view draws: the command receives `windows`.
window_options = _shared_options(("windows",), (("keys", KeysOpt, None), ("queries", QueriesOpt, None)), _windows)
# --max-tokens and --model alone, for commands that only tokenize, and those that read a language-model
# head, which the sample model (whose options these leave out) has none of.
tokenizer_options = _shared_options(("model", "max_tokens"), (_MAX_TOKENS, _MODEL), _model)


def _vocabulary_model(spec: str) -> dict:
    return {"model": load_model(spec)}


# --model alone, for commands that read a model's vocabulary and embedding table.
vocabulary_options = _shared_options(("model",), (_MODEL,), _vocabulary_model)


def _window(value: str | None, option: str) -> slice | None:
    """--keys or --queries A:B as a slice: 0-based, B left out, either end optional or negative."""
    if value is None:
        return None
    start, colon, stop = value.partition(":")
    try:
        if not colon or not all(re.fullmatch(r"\s*(-?[0-9]+)?\s*", end) for end in (start, stop)):
            raise ValueError  # int() would also take 1_0 and other scripts' digits
        return slice(*(int(end) if end.strip() else None for end in (start, stop)))
    except ValueError:  # int() also refuses more than 4,300 digits
        raise BadInput(
            f"{option} {shortened(value)!r} is not a window A:B of token indices; e.g. 40:80, :50 or -20:"
        ) from None


def _utf8(value: str, what: str) -> str:
    """`value` as typed, refused if it is not UTF-8 (Python keeps an undecodable byte of an argument
    as a lone surrogate, which the tokenizer cannot take). File names need no such check."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadInput(f"{what} is not UTF-8 (bad byte at character {error.start + 1}); convert it to UTF-8") from None
    return value


def _text(text: str) -> str:
    """The TEXT argument, read from standard input when it is "-" (one trailing line break dropped)."""
    if text != "-":
        return _utf8(text, "TEXT")
    return read_text("-").removesuffix("\n").removesuffix("\r")


@app.command()
@output_options
@model_options
@window_options
def explain(
    text: TextArg,
    focus: Annotated[
        str | None,
        typer.Option(
            "--focus",
            help="Token whose scores to follow: its index, or its text if it occurs once (default: the last token).",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[
        int | None,
        typer.Option(
            "--layer", help="The layer to walk through (0-based; default the first kept).", show_default=False
        ),
    ] = None,
    head: WalkHeadOpt = None,
    values: ValuesOpt = True,
    scale: ScaleOpt = Scale.fixed,
    include_special: IncludeSpecialOpt = False,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    windows: dict,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Walk through self-attention on TEXT, stage by stage, with real numbers.

    Tokens, embeddings, Q, K and V, the scores of one token, every head's weights,
    the weighted sum and the output, then a summary of what each token attends to.

    Example: attncli explain "The cat sat on the mat" --focus cat --head 2
    """
    selection = _kept(model, layers, heads, output)
    result = commands.explain(
        _text(text), model, focus, layer, head, max_tokens, include_special=include_special, selection=selection
    )
    write(result, output, values=values, scale=scale, **windows)


@app.command()
@output_options
@model_options
@window_options
def heatmap(
    text: TextArg,
    layer: Annotated[
        int | None,
        typer.Option("--layer", help="The layer to draw (0-based; default the first kept).", show_default=False),
    ] = None,
    head: HeadOpt = None,
    values: ValuesOpt = True,
    scale: ScaleOpt = Scale.fixed,
    measure: MeasureOpt = Measure.weights,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    dtype: DtypeOpt = WrittenType.float32,
    *,
    windows: dict,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Draw the attention weights of every head of a layer (or one, with --head) as heatmaps.

    JSON, CSV and NPZ hold every layer and head kept, written a layer at a time as the pass makes them.

    Example: attncli heatmap "The cat sat on the mat" --model minilm --layer 2 --no-values
    """
    selection = _kept(model, layers, heads, output)
    streamed = _written_as_made(output, dtype)
    written = None if dtype == WrittenType.float32 else dtype.value
    result = commands.heatmap(_text(text), model, layer, head, max_tokens, measure, selection, streamed, written)
    write(result, output, values=values, scale=scale, **windows)


def _kept(model: Model, layers: str | None, heads: str | None, output: Output):
    """The selection --layers and --heads name; refused with an interactive page, which shows every layer and head."""
    selection = commands.selection(model.info, layers, heads)
    if not selection.everything and output.export is not None and output.export.suffix.lower() == ".html":
        raise BadInput("the --export page shows every layer and head: give no --layers or --heads, or export an .svg")
    return selection


def _written_as_made(output: Output, dtype: "WrittenType") -> bool:
    """Whether a document of the attention alone can be written as the pass makes it, a layer at a time: a JSON,
    CSV or NPZ document with no picture, which would need every layer at once. Refuses float16 but for NPZ (JSON and
    CSV write a float16 with float32's digits: no shorter)."""
    if dtype != WrittenType.float32 and output.format != Format.npz:
        raise BadInput(
            "{dtype} {value} is how NPZ stores the weights: use it with {format} npz (JSON and CSV: {precision} 3 "
            "rounds them)",
            value=dtype.value,
        )
    return output.format in (Format.json, Format.csv, Format.npz) and output.export is None


@app.command()
@table_output_options
@tokenizer_options
def tokenize(
    text: TextArg,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Split TEXT into tokens: ids and character offsets, special tokens included.

    Example: attncli tokenize "Tokenization is fun" --json
    """
    write(commands.tokenize(_text(text), model, max_tokens), output)


@app.command()
@table_output_options
def embed(text: TextArg, max_tokens: MaxTokensOpt = commands.DEFAULT_MAX_TOKENS, *, output: Output) -> None:
    """Show the bundled 64-dimensional embedding vector of each token of TEXT.

    Example: attncli embed "king queen"
    """
    write(commands.embed(_text(text), max_tokens), output)


@app.command()
@table_output_options
@vocabulary_options
def similar(
    word: Annotated[
        str,
        typer.Argument(
            metavar="WORD",
            help="A word that is one token of the vocabulary. Where the vocabulary marks a word's leading "
            "space (byte-level BPE), ' cat' is the word inside a sentence and 'cat' the one that starts it.",
            show_default=False,
        ),
    ],
    k: Annotated[int, typer.Option("-k", "--top", help="How many neighbours to list.")] = 10,
    *,
    model: Model,
    output: Output,
) -> None:
    """List the tokens whose input embeddings are nearest to WORD's, by cosine similarity.

    The bundled vocabulary's by default; a checkpoint's own embedding table with --model.

    Example: attncli similar king -k 5 --model minilm
    """
    write(commands.similar(_utf8(word, "WORD"), model, k), output)


AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="The position to predict at: its index, or its text if it occurs once (default: a decoder's last "
        "token; an encoder's mask tokens).",
        show_default=False,
    ),
]


@app.command()
@table_output_options
@model_options
def predict(
    text: TextArg,
    top: Annotated[int, typer.Option("-k", "--top", help="How many of the most probable tokens to list.")] = 10,
    at: AtOpt = None,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """What the model's language-model head predicts: a decoder's next token, an encoder's masked tokens.

    Probabilities are the softmax of the head's logits over the whole vocabulary; the most probable first.

    Example: attncli predict "The capital of France is" --model DECODER --top 5; attncli predict
    "The cat sat on the [MASK]." --model ENCODER
    """
    write(commands.predict(_text(text), model, top, at, max_tokens), output)


@app.command(context_settings={"ignore_unknown_options": True})
@table_output_options
def softmax(
    scores: Annotated[
        list[str],
        typer.Argument(metavar="X...", help="Scores, as separate numbers or comma-separated.", show_default=False),
    ],
    *,
    output: Output,
) -> None:
    """Turn scores into probabilities, step by step: x − max, exp, divide by the sum.

    Example: attncli softmax 2.0 1.0 0.5
    """
    write(commands.softmax(scores), output)


@app.command(context_settings={"ignore_unknown_options": True})
@table_output_options
def dot(
    a: Annotated[str, typer.Argument(metavar="A", help="A vector such as 1,2,3, or a word.", show_default=False)],
    b: Annotated[str, typer.Argument(metavar="B", help="A vector of the same length, or a word.", show_default=False)],
    *,
    output: Output,
) -> None:
    """The dot product of two vectors, or of two words' bundled embeddings, term by term.

    Example: attncli dot 1,2,3 4,5,6   (gives 32); attncli dot king queen
    """
    write(commands.dot(a, b), output)


TokenOpt = Annotated[
    str,
    typer.Option("--token", help="The token to follow: its index, or its text if it occurs once.", show_default=False),
]


@app.command()
@output_options
@model_options
def query(
    text: TextArg,
    token: Annotated[
        str,
        typer.Option(
            "--token",
            help="The token to follow: its index, or its text if it occurs once; a word split into several "
            "tokens follows their mean row.",
            show_default=False,
        ),
    ],
    include_special: IncludeSpecialOpt = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Rank heads by the weight on this token instead (index or text; a split word: the sum over "
            "its tokens).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the ranked heads to draw.")] = 12,
    keys: Annotated[
        str | None,
        typer.Option(
            "--keys",
            metavar="A:B",
            help="Draw keys A to B-1 only, as a Python slice (default: around the strongest key, or --to, "
            "when they do not all fit).",
            show_default=False,
        ),
    ] = None,
    measure: MeasureOpt = Measure.weights,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """What one token attends to in every head of every layer, heads ranked by their strongest key.

    Example: attncli query "The animal didn't cross the street because it was too tired" --token it --to animal
    --model minilm
    """
    window = _window(keys, "--keys")
    selection = _kept(model, layers, heads, output)
    result = commands.query(_text(text), model, token, include_special, to, max_tokens, measure, selection)
    write(result, output, top=top, keys=window)


@app.command(name="model")
@output_options
@model_options
@window_options
def model_command(
    text: TextArg,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    scale: ScaleOpt = Scale.fixed,
    measure: MeasureOpt = Measure.weights,
    dtype: DtypeOpt = WrittenType.float32,
    *,
    windows: dict,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """All layers and heads at once: a small heatmap per head, a row of them per layer.

    Example: attncli model "The cat sat on the mat" --model minilm --layers 4-5
    """
    _written_as_made(output, dtype)  # the grid's picture needs every layer kept: written whole
    selection = _kept(model, layers, heads, output)
    written = None if dtype == WrittenType.float32 else dtype.value
    result = commands.model_grid(_text(text), model, max_tokens, measure, selection, written)
    write(result, output, scale=scale, **windows)


@app.command()
@model_options
def explore(
    text: TextArg,
    measure: Annotated[
        Measure, typer.Option("--measure", help="What to show first: the weights, or norms, ‖α·v W_O‖ (m switches).")
    ] = Measure.weights,
    *,
    model: Model,
    max_tokens: int,
) -> None:
    """Explore TEXT's attention full-screen, head by head; ? lists the keys.

    Pan and zoom a head's heatmap, step through layers and heads, pick a query token and see the
    heads ranked by what it gets from them; m switches between the weights and their ‖α·v W_O‖ norms; with a
    decoder's head, d shows what each head adds to the next token; with any language-model head, o the logit lens.

    Example: attncli explore "The animal didn't cross the street because it was too tired" --model minilm
    """

    def opened():
        # The text from standard input for "-": the keys come from the terminal. The norms are made whichever
        # measure shows first, for m to switch to. A text whose every layer would pass the memory budget is
        # explored as its pass makes the layers, kept on disk (see attncli.stored): the screen opens at once.
        from attncli.stored import StoredAttention, keeps_whole

        streamed = commands.run(_text(text), _unreported(model), max_tokens, streamed=True)  # tokenized, no pass yet
        if not keeps_whole(model.info, len(streamed.tokens)):
            return streamed, {"stored": StoredAttention(streamed)}
        run = commands.run(streamed.text, model, max_tokens, measure=Measure.norms)
        return run, {"measure": measure, **_head_panes(run, _unreported(model))}

    _explore(opened)


def _explore(opened: Callable[[], tuple[AttentionRun, dict]]) -> None:
    """The explorer on the terminal, whatever standard input, output and error are, of the run `opened` makes,
    with the options of explorer.Explorer it gives (measure, attribute, lens, prompt_tokens); refused before
    `opened` does any work where there is no terminal to explore on."""
    from attncli.explorer import Explorer, open_terminal  # here: Textual loads for the explorer only

    if sys.__stdin__ is None or sys.__stderr__ is None:  # closed at start (`<&-`): Textual's driver asks for both
        raise BadInput("explore needs standard input and error open; give them a file, /dev/null or the terminal")
    with open_terminal() as terminal:
        if terminal is None:
            raise BadInput("explore needs a terminal for its keys and screen; for a pipe use heatmap or query --json")
        run, options = opened()
        Explorer(run, **options).run_on(terminal)


def _head_panes(run: AttentionRun, model: Model) -> dict:
    """The explorer's panes that read `model`'s language-model head, over the tokens of `run`: the direct logit
    attribution after a position (d) and the logit lens (o). Each says why where the model has no head."""
    return {
        "attribute": functools.partial(commands.attribution_at, run.text, run.tokens, model),
        "lens": functools.partial(commands.lens_of, run.text, run.tokens, model),
    }


_VOCABULARY_TOKEN = (
    "a token of the vocabulary: its piece as the views show it (␣Paris), a text of one token (' Paris') or #ID"
)


@app.command()
@table_output_options
@model_options
def attribute(
    text: TextArg,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="TOKEN",
            help=f"The next token whose logit to attribute (default: the one predicted): {_VOCABULARY_TOKEN}.",
            show_default=False,
        ),
    ] = None,
    versus: Annotated[
        str | None,
        typer.Option(
            "--versus",
            metavar="TOKEN",
            help="Attribute the target's logit less this token's (a logit difference), as --target names tokens.",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="POSITION",
            help="The token after which to predict: its index, or its text if it occurs once (default: the last).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many heads to list each way.")] = 10,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Direct logit attribution: what each head, MLP and the embeddings add to the next token's logit.

    Through the final norm with its scale frozen, the parts of the last residual stream add up to the logit of the
    predicted token (or --target, or --target less --versus): the heads that push it up and down most, and every
    head of the model on a scale centred on 0. Pre-norm decoders with their language-model head.

    Example: attncli attribute "The Eiffel Tower is in the city of" --model Qwen/Qwen2.5-0.5B --target " Paris"
    --versus " Rome"
    """
    write(
        commands.attribute(
            _text(text), model, _token_option(target, "--target"), _token_option(versus, "--versus"), at, max_tokens
        ),
        output,
        top=top,
    )


def _token_option(value: str | None, option: str) -> str | None:
    return None if value is None else _utf8(value, option)


# heads --sort: a column of its table.
HeadColumn = enum.StrEnum("HeadColumn", {name: name for name in HEAD_COLUMNS})


# lens's --tokens A:B: the window of positions its grid draws.
LensWindowOpt = Annotated[
    str | None,
    typer.Option(
        "--tokens",
        metavar="A:B",
        help="Draw the positions of tokens A to B-1 only (0-based, a Python slice: 40:80, -20:); JSON holds all.",
        show_default=False,
    ),
]


@app.command()
@table_output_options
@tokenizer_options
def lens(
    text: TextArg,
    top: Annotated[
        int,
        typer.Option(
            "--top",
            min=1,
            help="The most probable tokens --json and CSV give at each layer and position (the view: 1).",
        ),
    ] = 1,
    shown_tokens: LensWindowOpt = None,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """The logit lens: each layer's residual stream at each position, read through the final norm and the
    unembedding as the model reads its last; the most probable token of each, a layer a row.

    Example: attncli lens "The Eiffel Tower is in the city of" --model ~/models/Qwen2.5-0.5B
    """
    window = _window(shown_tokens, "--tokens")
    result = commands.lens(_text(text), model, top, max_tokens)
    result.window(window, "shown_tokens")
    write(result, output, positions=window)


@app.command()
@output_options
@tokenizer_options
def generate(
    text: TextArg,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", min=1, help="Stop after this many new tokens, if not at the end first.")
    ] = 20,
    explore: Annotated[
        bool,
        typer.Option(
            "--explore",
            metavar="",
            help="Explore the whole sequence's attention full-screen, the prompt's end marked, in place of the view.",
        ),
    ] = False,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Continue TEXT greedily (the most probable next token at each step, no sampling), then show the whole
    sequence: the prompt, the continuation and each new token's probability, and its attention.

    Example: attncli generate "The Eiffel Tower is in" --model ~/models/Qwen2.5-0.5B --max-new-tokens 8 --explore
    """
    selection = _kept(model, layers, heads, output)
    if not explore:
        shown = _on_token(model)
        write(
            commands.generate(_text(text), model, max_new_tokens, max_tokens, on_token=shown, selection=selection),
            output,
        )
        return
    if output.format != Format.table or output.path is not None or output.export is not None:
        raise BadInput("--explore shows the sequence full-screen: give --json, --format, -o or --export without it")
    if not selection.everything:
        raise BadInput("--explore shows every layer and head: give no --layers or --heads with it")

    def opened():
        result = commands.generate(
            _text(text), model, max_new_tokens, max_tokens, value_norms=True, on_token=_on_token(model)
        )
        return result.run, {**_head_panes(result.run, _unreported(model)), "prompt_tokens": result.prompt_tokens}

    _explore(opened)


@app.command(name="heads")
@table_output_options
@heads_model_options
def heads_command(
    text: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TEXT]",
            help="The text (or - for standard input); or use --file. After --merge: more files to merge.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="A file of texts, one per line (- for standard input).", show_default=False),
    ] = None,
    field: FieldOpt = None,
    jobs: JobsOpt = None,
    dask: DaskOpt = None,
    resume: ResumeOpt = False,
    merge: Annotated[
        list[Path] | None,
        typer.Option(
            "--merge",
            metavar="FILE...",
            help="Merge the --json results of runs over parts of a corpus: --merge shards/*.json, or --merge once "
            "per file.",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        HeadColumn | None,
        typer.Option(
            "--sort",
            metavar="COLUMN",
            help="Order the view's and CSV's heads by this column: a score the largest first, layer, head and "
            "pattern the smallest; JSON keeps layer order and gives each head its rank. One of "
            f"{', '.join(HEAD_COLUMNS)}.",
            show_default=False,
        ),
    ] = None,
    measure: MeasureOpt = Measure.weights,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    max_tokens: int,
    recipe,
    induction: int | None,
    output: Output,
) -> None:
    """What each head does: entropy, distance, where its attention goes, duplicate-token and induction
    scores, and a pattern label.

    Over a file, the statistics are averaged over its lines (partial sums that add up across runs), with
    progress on stderr; --jobs or --dask share the work, -o with --resume survives an interrupted run,
    and --merge joins runs over parts of a corpus.

    --induction runs random tokens twice over instead, where induction heads show.

    Example: attncli heads --file sentences.txt --model minilm --jobs 2 -o stats.json;
    attncli heads --induction --model DIR --sort induction
    """
    from attncli import corpus

    column = None if sort is None else sort.value
    texts = text or []
    kept = layers is not None or heads is not None
    if kept and merge:
        raise BadInput(
            "--merge joins saved results of the layers and heads they were run with: give no --layers or --heads "
            "with it"
        )
    selection = commands.selection(recipe.load().info, layers, heads) if kept else EVERYTHING
    if induction is not None:
        if texts or file is not None or merge:
            raise BadInput("--induction runs random tokens of its own: give no TEXT, --file or --merge with it")
        tested = commands.induction(_reported(recipe.load()), induction, max_tokens, measure, selection)
        write(commands.sort_heads(tested, column), output)
        return
    if merge:
        # Typer gives an option one value: the files a shell glob adds after `--merge` come as TEXT,
        # and are shards like the first (one that cannot be read is worded as any --merge file is).
        if file is not None:
            raise BadInput("--merge joins saved results: give no --file with it")
        if measure != Measure.weights:
            raise BadInput("--merge joins saved results of the measure they were run with: give no --measure with it")
        write(commands.sort_heads(corpus.merged_heads([*merge, *map(Path, texts)]), column), output)
        return
    if len(texts) > 1:
        count = len(texts)
        raise BadInput(f"give one TEXT, in quotes (got {count} arguments); to join saved results, use --merge FILE...")
    if bool(texts) == (file is not None):
        raise BadInput("give either TEXT or --file FILE (one text per line)")
    if file is None:
        result = commands.heads(_text(texts[0]), _reported(recipe.load()), max_tokens, measure, selection)
        write(commands.sort_heads(result, column), output)
        return
    runner = corpus.Runner(recipe, WORDS, max_tokens, jobs=jobs, dask=dask, progress=_progress, notify=_notify)
    run = corpus.heads(corpus.read(file, "file", field), runner, output.path, resume, measure, selection)
    write(commands.sort_heads(run.result, column), output)
    run.written()
    if run.failed is not None:
        raise run.failed


@app.command()
@output_options
@model_options
@window_options
def rollout(
    text: TextArg,
    head_fusion: Annotated[Fusion, typer.Option("--head-fusion", help="How to fuse a layer's heads.")] = Fusion.mean,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="List which input tokens this token draws on (index or text).", show_default=False
        ),
    ] = None,
    include_special: IncludeSpecialOpt = False,
    scale: ScaleOpt = Scale.fixed,
    measure: MeasureOpt = Measure.weights,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Roll out through these layers alone, e.g. 20:24 or 0-2,5 (default all); the pass stops after the "
            "last.",
            show_default=False,
        ),
    ] = None,
    heads: Annotated[
        str | None,
        typer.Option(
            "--heads", help="Fuse only these heads of each layer, e.g. 0:4 or 0-3,7 (default all).", show_default=False
        ),
    ] = None,
    *,
    windows: dict,
    model: Model,
    max_tokens: int,
    output: Output,
) -> None:
    """Attention rollout: how much each input token flows into each position through all the layers.

    Example: attncli rollout "The cat sat on the mat" --model minilm --token cat
    """
    selection = commands.selection(model.info, layers, heads)  # its --export is a picture of the rollout alone
    result = commands.rollout(_text(text), model, head_fusion, token, max_tokens, include_special, measure, selection)
    write(result, output, scale=scale, **windows)


ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="As elsewhere (default: ATTNCLI_MODEL, else sample); given twice, with one TEXT, the two checkpoints "
        "to compare.",
        show_default=False,
    ),
]


def _compared_models(specs: list[str] | None, max_tokens: int, **sample_options) -> dict:
    """compare's --model, given once or twice (none: ATTNCLI_MODEL, else the sample model), and the options
    of model_options: the command receives `models` and `max_tokens`."""
    specs = specs or [os.environ.get("ATTNCLI_MODEL") or "sample"]
    if len(specs) > 2:
        raise BadInput(f"--model is given {len(specs)} times; compare takes one model, or two checkpoints")
    models = [_model(spec, max_tokens, **sample_options)["model"] for spec in specs]
    return {"models": models, "max_tokens": max_tokens}


# compare's: --model once or twice, --max-tokens and the sample model's options.
compare_model_options = _shared_options(
    ("models", "max_tokens"), (_MAX_TOKENS, ("specs", ModelsOpt, None), *_SAMPLE), _compared_models
)


@app.command()
@table_output_options
@compare_model_options
def compare(
    texts: Annotated[
        list[str],
        typer.Argument(
            metavar="TEXT_A [TEXT_B]",
            help="Two texts, to compare them through one model; or one text, to compare two --model on it.",
            show_default=False,
        ),
    ],
    token: TokenOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the most changed heads to list.")] = 8,
    measure: MeasureOpt = Measure.weights,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    models: list[Model],
    max_tokens: int,
    output: Output,
) -> None:
    """How one token's attention changes between two texts, or between two checkpoints on one text, head by head.

    Example: attncli compare "...because it was too tired" "...because it was too wide" --token it --model minilm;
    attncli compare "...because it was too tired" --token it --model base/ --model tuned/
    """
    if len(texts) > 2:
        raise BadInput(f"give one or two texts, in quotes (got {len(texts)} arguments)")
    if len(texts) == len(models) == 1:
        raise BadInput("give TEXT_B, to compare two texts; or --model twice, to compare two checkpoints on TEXT_A")
    if len(texts) == len(models) == 2:
        raise BadInput("give two texts and one --model, or one text and two --model; not two of each")
    selection = commands.compared_selection([model.info for model in models], layers, heads)
    if len(models) == 2:
        result = commands.compare_models(_text(texts[0]), *models, token, max_tokens, measure, selection)
    else:
        result = commands.compare(_text(texts[0]), _text(texts[1]), models[0], token, max_tokens, measure, selection)
    write(result, output, top=top)


@contextmanager
def _progress(total: int, done: int):
    """A progress bar on stderr while texts are processed, with their rate and the time left, when
    there are several and stderr is a terminal, from a second on; yields the function to call with each
    count done, fractions of a text too, or None where nothing shows (see corpus.Progress). The rate is of the
    lines done over a moving window (see progress.Rate)."""
    if total < 2 or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn

    rate = Rate(time.monotonic(), done)
    progress = _stderr_progress(BarColumn(), MofNCompleteColumn(), *_time_columns("lines"))
    task = progress.add_task("texts", total=total, completed=done, rate=rate)

    def advance(count: float) -> None:
        rate.update(time.monotonic(), rate.done + count)
        progress.update(task, completed=rate.done)

    with _shown_after(progress, SHOW_AFTER):
        yield advance


SHOW_AFTER = 1.0  # seconds a command runs before its progress shows: a short run flickers nothing


def _stderr_progress(*columns):
    """A rich Progress of `columns` on stderr, cleared when it stops; standard output and error left as they are
    (the records a run writes to standard output meanwhile go there, not through the bar)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True, markup=False)
    return Progress(*columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False)


@contextmanager
def _shown_after(progress, delay: float):
    """`progress` (a rich Progress) on the terminal from `delay` seconds on until the block ends, then cleared."""
    import threading

    timer = threading.Timer(max(0.0, delay), progress.start)
    timer.daemon = True
    timer.start()
    try:
        yield progress
    finally:
        timer.cancel()
        timer.join()  # a start under way is over before the stop
        progress.stop()


def _time_columns(unit: str | None) -> tuple:
    """The columns of a task's time: how long it has run, its `rate` (a progress.Rate, in its fields) in
    `unit`s a second (none where `unit` is None) and the time left at that rate."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            rate = task.fields["rate"].per_second
            return Text("" if rate is None else f"{rate:,.1f} {unit}/s", style="dim")

    class LeftColumn(ProgressColumn):
        def render(self, task) -> Text:
            left = task.fields["rate"].left(task.total)
            return Text("" if left is None else f"{_duration(left)} left", style="cyan")

    return (_elapsed_column(), LeftColumn()) if unit is None else (_elapsed_column(), RateColumn(), LeftColumn())


def _elapsed_column():
    """The column of how long a task has run, as m:ss (see _duration)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class ElapsedColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(_duration(task.elapsed or 0), style="yellow")

    return ElapsedColumn()


def _duration(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


class _Reported:
    """A model whose forward pass shows on stderr the layers it has done (`layer 7/24`, the time it has taken
    and the time left), once the command has run a second; the pass only calls back after each layer (see
    transformer.forward's on_layer). `step`, where a command sets it (generate's `token 3/20`), leads the
    next pass's line. Everything else is the model's."""

    def __init__(self, model: Model):
        self.reported = model
        self.began = time.monotonic()
        self.step = ""

    def __getattr__(self, name: str):
        return getattr(self.reported, name)

    def run(self, tokens, *args, **kwargs):
        from rich.progress import BarColumn, TextColumn

        step, self.step = self.step, ""
        layers = self.reported.info.layers
        rate = Rate(time.monotonic())
        progress = _stderr_progress(TextColumn("{task.description}"), BarColumn(), *_time_columns(None))
        task = progress.add_task(f"{step}layer 0/{layers}", total=layers, rate=rate)

        def on_layer(done: int, layers: int) -> None:
            rate.update(time.monotonic(), done)
            progress.update(task, completed=done, total=layers, description=f"{step}layer {done}/{layers}")

        with _shown_after(progress, SHOW_AFTER - (time.monotonic() - self.began)):
            return self.reported.run(tokens, *args, on_layer=on_layer, **kwargs)


@contextmanager
def _step(description: str):
    """`description` on stderr with the time it has taken while the block runs, where stderr is a terminal, from
    SHOW_AFTER seconds on (a step with no count to show: reading a saved result)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.progress import SpinnerColumn, TextColumn

    progress = _stderr_progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), _elapsed_column())
    progress.add_task(description, total=None)
    with _shown_after(progress, SHOW_AFTER):
        yield


class _Drawn:
    """A view whose drawing shows on stderr the lines drawn so far and the time it has taken, once it has taken
    SHOW_AFTER seconds: a long text's heatmaps take about as long to draw as its forward pass. Cleared when the
    last line is drawn, before the console writes any (the view goes to standard output, often the same
    terminal)."""

    def __init__(self, view):
        self.view = view

    def __rich_console__(self, console, options):
        from rich.progress import SpinnerColumn, TextColumn

        progress = _stderr_progress(
            SpinnerColumn(), TextColumn("drawing the view: {task.completed:,.0f} lines"), _elapsed_column()
        )
        task = progress.add_task("drawing", total=None)
        with _shown_after(progress, SHOW_AFTER):
            for segment in console.render(self.view, options):
                if segment.text == "\n":
                    progress.advance(task)
                yield segment

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self.view)


def write(result, output: Output, **view_options) -> None:
    """Write `result` as `output` asks (see output.write), its view's drawing shown on stderr where stderr is a
    terminal (see _Drawn)."""
    write_output(result, output, drawn=_Drawn if sys.stderr.isatty() else None, **view_options)


def _reported(model: Model) -> Model:
    """`model`, its forward pass's layers shown on stderr where stderr is a terminal (see _Reported)."""
    return _Reported(model) if sys.stderr.isatty() else model


def _unreported(model: Model) -> Model:
    """`model` without its layers shown: for what runs while the explorer has the screen."""
    return model.reported if isinstance(model, _Reported) else model


def _on_token(model: Model) -> Callable[[int, int], None] | None:
    """generate's step, shown before the layers of its pass where `model` shows them: `token 3/20 · `."""
    if not isinstance(model, _Reported):
        return None

    def on_token(index: int, of: int) -> None:
        model.step = f"token {index}/{of} · "

    return on_token


@app.command()
@corpus_model_options
def batch(
    source: Annotated[
        str, typer.Argument(metavar="FILE", help="Texts, one per line; - reads standard input.", show_default=False)
    ],
    steps: Annotated[
        bool, typer.Option("--steps", metavar="", help="Add every intermediate, as explain does.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", metavar="", help="Stop at the first line that fails.")
    ] = False,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            metavar="",
            help="Write each line's head statistics (as heads gives them for one text) instead of its attention.",
        ),
    ] = False,
    output_path: RecordsOutOpt = None,
    precision: PrecisionOpt = None,
    field: FieldOpt = None,
    id_field: Annotated[
        str | None,
        typer.Option(
            "--id", metavar="NAME", help='With --field: carry field NAME into each record as "id".', show_default=False
        ),
    ] = None,
    jobs: JobsOpt = None,
    dask: DaskOpt = None,
    resume: ResumeOpt = False,
    layers: KeptLayersOpt = None,
    heads: KeptHeadsOpt = None,
    *,
    max_tokens: int,
    recipe,
) -> None:
    """Explain every line of FILE as JSON Lines: one record a line, in order, the model loaded once per process.

    A line that fails gives {"line": N, "error": "..."} and the run goes on; the exit code is then 3.
    With -o FILE the records go to FILE.partial as they are done, and FILE when all are: --resume
    continues a run that was stopped. --summary keeps the records small: each head's statistics,
    no attention. A run whose records would pass a gigabyte says so on stderr before it starts.

    Example: attncli batch sentences.txt --model minilm > attention.jsonl;
    attncli batch sentences.txt --model minilm --summary -o heads.jsonl
    """
    from attncli import corpus

    runner = corpus.Runner(recipe, WORDS, max_tokens, jobs=jobs, dask=dask, progress=_progress, notify=_notify)
    texts = corpus.read(source, "batch_file", field, id_field)
    selection = EVERYTHING if layers is None and heads is None else commands.selection(runner.info, layers, heads)
    options = {"steps": steps, "precision": precision, "fail_fast": fail_fast, "summary": summary}
    corpus.batch(texts, runner, output_path, resume, **options, selection=selection)


@app.command()
@output_options
def check(
    against: Annotated[
        Path, typer.Option("--against", help="A saved --json result of explain, heatmap or model.", show_default=False)
    ],
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="[TEXT]", help="The text (- for standard input); default: the saved result's.", show_default=False
        ),
    ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="The largest change allowed in any weight.")] = 1e-5,
    *,
    output: Output,
) -> None:
    """Recompute a saved --json result's text (or TEXT) with its model and options and compare the attention.

    Exit 0 when every weight is within the tolerance; otherwise 4, with the heads and cells that moved most.

    Example: attncli check "The cat sat on the mat" --against saved.json --tolerance 1e-6
    """
    from attncli.saved import SavedRun  # here: only check reads a saved result

    # The document's bytes are let go once parsed: a 512-token result is 250 MB of text.
    with _step(f"reading {shortened(str(against), 60)}"):
        saved = SavedRun.from_bytes(read_input(str(against), SAVED_LIMIT, "against"), str(against))
    result = commands.check(None if text is None else _text(text), saved, tolerance, str(against), shown=_reported)
    write(result, output)
    if not result.passed:
        raise typer.Exit(CHECK_FAILED)


@app.command()
def schema(
    command: Annotated[
        str | None,
        typer.Argument(
            metavar="[COMMAND]", help="The command whose --json schema to print (default: all).", show_default=False
        ),
    ] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a command's --json output, or of every command's.

    Example: attncli schema explain
    """
    from attncli.schema import command_schema

    write_records([command_schema(command)], None, None)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"attncli {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


def _keep_only_invoked_command(arguments: list[str]) -> None:
    """Leave in the app only the command invoked, when the first argument names one.

    Typer turns every registered command's signature into click options before it runs one,
    which for all fifteen costs more than the sample model's whole forward pass. The top-level
    help (`attncli --help explain` included), shell completion and a misspelt command still
    see every command.
    """
    invoked = [
        command
        for command in app.registered_commands
        if arguments and (command.name or typer.main.get_command_name(command.callback.__name__)) == arguments[0]
    ]
    if invoked:
        app.registered_commands[:] = invoked


def main() -> None:
    if sys.stderr is None:  # started with stderr closed: messages go nowhere, exit codes still tell
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open for the life of the process)
    if sys.stdout is None:
        _fail("attncli: error: standard output is closed; give it a file or a pipe", 2)
    keep_freed_memory()
    no_huge_pages()
    _keep_only_invoked_command(sys.argv[1:])
    app(prog_name="attncli")
