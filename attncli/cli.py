"""The attncli command line: parse options, call attncli.core, hand the result to a view or to JSON."""

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from attncli import __version__, core, render
from attncli.errors import AttncliError, BadInput
from attncli.sample_model import SampleConfig
from attncli.terminal import json_text, make_console, visible

__all__ = ["app", "main"]

# Typer re-exports BadParameter but not the click exceptions above it. Taking
# them from its MRO works whether typer vendors click (0.29 on) or depends on it.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Commands(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code.

    0 success, 1 an unexpected failure (set ATTNCLI_DEBUG=1 for the traceback),
    2 bad input or usage, 130 interrupted.
    """

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # plain `attncli`: the help is the answer
                sys.stdout.write(error.ctx.get_help() + "\n")
                sys.exit(0)
            where = error.ctx.command_path if error.ctx else "attncli"
            message = error.format_message().rstrip(".")
            _fail(f"{where}: error: {message}. See '{where} --help'.", 2)
        except _ClickException as error:
            _fail(f"attncli: error: {error.format_message()}", error.exit_code)
        except typer.Abort:
            _fail("attncli: interrupted", 130)
        except AttncliError as error:
            _fail(f"attncli: error: {error}", error.exit_code)
        except Exception as error:
            if os.environ.get("ATTNCLI_DEBUG"):
                raise
            _fail(f"attncli: internal error: {type(error).__name__}: {error} (ATTNCLI_DEBUG=1 shows where)", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(visible(message) + "\n")
    sys.exit(code)


app = typer.Typer(
    cls=_Commands,
    name="attncli",
    help="See what multi-head self-attention does to a sentence: every stage with real numbers, "
    "as tables and heatmaps, or as JSON with --json.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TextArg = Annotated[
    str, typer.Argument(help="The text, in quotes; - reads it from standard input.", show_default=False)
]
HeadsOpt = Annotated[int, typer.Option("--heads", help="Attention heads; must divide the width 64 (d_k = 64 / heads).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed that draws W_Q, W_K, W_V and W_O.")]
CausalOpt = Annotated[bool, typer.Option("--causal", help="Hide the keys after each query, as a decoder does.")]
PositionsOpt = Annotated[
    bool, typer.Option("--positions/--no-positions", help="Add sinusoidal positional encodings to the embeddings.")
]
HeadOpt = Annotated[
    int | None,
    typer.Option("--head", help="Draw only this head (0-based); JSON still holds every head.", show_default=False),
]
ValuesOpt = Annotated[bool, typer.Option("--values/--no-values", help="Print the weights inside the heatmap cells.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of the view.")]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Refuse texts with more tokens than this.")]


def _text(text: str) -> str:
    """The TEXT argument, read from standard input when it is "-"."""
    if text != "-":
        return text
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").removesuffix("\n")
    except UnicodeDecodeError as error:
        raise BadInput(f"standard input is not UTF-8 (bad byte at offset {error.start}); convert it to UTF-8") from None


def _config(heads: int, seed: int, causal: bool, positions: bool) -> SampleConfig:
    return SampleConfig(heads=heads, seed=seed, causal=causal, positions=positions)


def _emit(result, as_json: bool, view, **view_options) -> None:
    """Write the result: its JSON document on stdout, or its view on the terminal."""
    if as_json:
        sys.stdout.write(json_text(result.to_json()) + "\n")
    else:
        make_console().print(view(result, **view_options))


@app.command()
def explain(
    text: TextArg,
    focus: Annotated[
        str | None,
        typer.Option(
            "--focus",
            help="Token whose scores to follow: its text or index (default: the last token).",
            show_default=False,
        ),
    ] = None,
    heads: HeadsOpt = 8,
    seed: SeedOpt = 0,
    causal: CausalOpt = False,
    positions: PositionsOpt = True,
    head: HeadOpt = None,
    values: ValuesOpt = True,
    as_json: JsonOpt = False,
    max_tokens: MaxTokensOpt = core.DEFAULT_MAX_TOKENS,
) -> None:
    """Walk through self-attention on TEXT, stage by stage, with real numbers.

    Tokens, embeddings, Q, K and V, the scores of one token, every head's weights,
    the weighted sum and the output, then a summary of what each token attends to.

    Example: attncli explain "The cat sat on the mat" --focus cat --head 2
    """
    result = core.explain(_text(text), _config(heads, seed, causal, positions), focus, head, max_tokens)
    _emit(result, as_json, render.explain_view, values=values)


@app.command()
def heatmap(
    text: TextArg,
    heads: HeadsOpt = 8,
    seed: SeedOpt = 0,
    causal: CausalOpt = False,
    positions: PositionsOpt = True,
    head: HeadOpt = None,
    values: ValuesOpt = True,
    as_json: JsonOpt = False,
    max_tokens: MaxTokensOpt = core.DEFAULT_MAX_TOKENS,
) -> None:
    """Draw the attention weights of every head (or one, with --head) as heatmaps.

    Example: attncli heatmap "The cat sat on the mat" --causal --no-values
    """
    result = core.heatmap(_text(text), _config(heads, seed, causal, positions), head, max_tokens)
    _emit(result, as_json, render.heatmap_view, values=values)


@app.command()
def tokenize(text: TextArg, as_json: JsonOpt = False, max_tokens: MaxTokensOpt = core.DEFAULT_MAX_TOKENS) -> None:
    """Split TEXT into WordPiece tokens: ids and character offsets.

    Example: attncli tokenize "Tokenization is fun" --json
    """
    _emit(core.tokenize(_text(text), max_tokens), as_json, render.tokenize_view)


@app.command()
def embed(text: TextArg, as_json: JsonOpt = False, max_tokens: MaxTokensOpt = core.DEFAULT_MAX_TOKENS) -> None:
    """Show the 64-dimensional embedding vector of each token of TEXT.

    Example: attncli embed "king queen"
    """
    _emit(core.embed(_text(text), max_tokens), as_json, render.embed_view)


@app.command()
def similar(
    word: Annotated[str, typer.Argument(help="A word that is one token of the vocabulary.", show_default=False)],
    k: Annotated[int, typer.Option("-k", "--top", help="How many neighbours to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """List the words whose embeddings are nearest to WORD's, by cosine similarity.

    Example: attncli similar king -k 5
    """
    _emit(core.similar(word, k), as_json, render.similar_view)


@app.command(context_settings={"ignore_unknown_options": True})
def softmax(
    scores: Annotated[
        list[str], typer.Argument(help="Scores, as separate numbers or comma-separated.", show_default=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Turn scores into probabilities, step by step: x − max, exp, divide by the sum.

    Example: attncli softmax 2.0 1.0 0.5
    """
    _emit(core.softmax_steps(core.parse_numbers(scores)), as_json, render.softmax_view)


@app.command(context_settings={"ignore_unknown_options": True})
def dot(
    a: Annotated[str, typer.Argument(help="A vector such as 1,2,3, or a word.", show_default=False)],
    b: Annotated[str, typer.Argument(help="A vector of the same length, or a word.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """The dot product of two vectors, or of two words' embeddings, term by term.

    Example: attncli dot 1,2,3 4,5,6   (gives 32); attncli dot king queen
    """
    _emit(core.dot(a, b), as_json, render.dot_view)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"attncli {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """See what multi-head self-attention does to a sentence, as tables and heatmaps or as JSON (--json).

    Exit codes: 0 success, 1 unexpected failure, 2 bad input or usage, 130 interrupted.
    """


def main() -> None:
    app(prog_name="attncli")
