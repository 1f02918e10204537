"""What the views share: tables, bars, section rules, the lines about the text and the model."""

import re
from pathlib import PurePath

import numpy as np
from rich.columns import Columns
from rich.console import RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from attncli.errors import listed
from attncli.escapes import visible
from attncli.models import ModelInfo
from attncli.results import AttentionRun, SoftmaxResult
from attncli.terminal import token_label
from attncli.tokens import SPACE, WORD_START, readable_all
from attncli.widgets.heatmap import Heatmap
from attncli.widgets.vectors import number

__all__ = [
    "BAR_WIDTH",
    "NORMS_LEAD",
    "bar",
    "figure_name",
    "head_heatmaps",
    "head_name",
    "layer_mask",
    "markup_text",
    "model_line",
    "plain_table",
    "plural",
    "quantity",
    "row_sums",
    "scale_hint",
    "scale_top",
    "section",
    "softmax_steps_table",
    "text_line",
    "token_texts",
    "tokens_table",
    "word_texts",
]

BAR_WIDTH = 20
# What the views call the values of each measure (analysis.Measure): in legends, columns and titles.
QUANTITIES = {"weights": "weight", "norms": "‖αv W_O‖"}


def bar(fraction: float, width: int = BAR_WIDTH) -> Text:
    """A bar of eighth-blocks, `fraction` (0 … 1) of `width` cells; cropped, never wrapped, when space is short."""
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    blocks = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
    return Text(blocks, style="cyan", no_wrap=True, overflow="crop")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def rolled_through(run: AttentionRun) -> str:
    """The layers a rollout of `run` multiplies, for a title: "through layer 5" (every layer), or where --layers
    kept some, exactly those: "through layers 0, 4", "through layers 2–5"."""
    if run.selection.layers is None:
        return f"through layer {run.layers[-1]}"
    return f"through {numbered('layer', run.layers)}"


def numbered(noun: str, indices: tuple[int, ...]) -> str:
    """`noun` and `indices`, for a sentence: "layer 4", "layers 0, 4", "heads 0–11" (see errors.listed)."""
    return f"{noun if len(indices) == 1 else noun + 's'} {listed(indices)}"


def kept_heads(run: AttentionRun) -> str:
    """The heads each layer of `run` keeps, for a sentence: "heads" (every one), or "heads 0, 2", "head 3"."""
    return "heads" if run.selection.heads is None else numbered("head", run.heads)


def plain_table(*columns: tuple[str, str], footer: bool = False) -> Table:
    """A borderless table; each column is (header, justify). Number columns never wrap, so a narrow
    terminal squeezes the bars instead of the numbers."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=footer, footer_style="bold")
    for header, justify in columns:
        if header == "":
            table.add_column("", ratio=1, min_width=0, no_wrap=True)
        else:
            table.add_column(header, justify=justify, no_wrap=justify == "right")
    return table


def section(index: int, title: str, lead: str) -> list[RenderableType]:
    """A numbered rule with a line in italics under it, as explain's stages open."""
    return [Text(""), Rule(f"{index}. {title}", align="left", style="cyan"), Text(lead, style="italic")]


def token_texts(run: AttentionRun) -> list[str]:
    """The tokens' labels: readable, byte-fallback tokens decoded to the characters they make."""
    return readable_all([token.text for token in run.tokens])


def word_texts(run: AttentionRun) -> list[str]:
    """The tokens' labels as a figure for a paper writes them: token_texts without the mark of a word's
    start (␣cat is cat), unless the token is nothing else (a space)."""
    return readable_all([_unmarked(token.text) for token in run.tokens])


def _unmarked(piece: str) -> str:
    return piece.removeprefix(SPACE).removeprefix(WORD_START) or piece


def figure_name(model: ModelInfo) -> str:
    """The model as a figure's title names it: the last part of its name, a directory or a model id
    ("tiny" for ~/checkpoints/tiny/, "all-MiniLM-L6-v2" for sentence-transformers/all-MiniLM-L6-v2)."""
    name = PurePath(model.name).name
    if name in ("", ".", ".."):  # "..", "./": the directory's own name, from the path it resolved to
        return PurePath(model.path).name if model.path else model.name
    return name


def markup_text(text: str) -> str:
    """`text` for an SVG or HTML document: made `visible`, and every other character XML 1.0 forbids
    (U+FFFE, U+FFFF, lone surrogates, which only a file name or a typed title can hold) spelled as
    an escape too, as visible spells the controls."""
    return re.sub("[\ud800-\udfff\ufffe\uffff]", lambda found: f"\\u{ord(found[0]):04x}", visible(text))


def model_line(model: ModelInfo, caveat: bool = True) -> Text:
    """The model's name and shape; for the sample model, with a caveat that its patterns are not
    learned (leave it to a view that says so at more length)."""
    layers, heads = plural(model.layers, "layer"), plural(model.heads, "head")
    shape = f"{layers} × {heads}, d_model {model.d_model}, d_k {model.d_head}"
    if model.sample:
        positions = "positions" if model.positions else "no positions"
        mask = "causal mask" if model.causal else "no mask"
        line = f"sample model: {shape}, seed {model.seed}, {positions}, {mask}"
        if caveat:
            line += (
                ". Its W_Q, W_K, W_V and W_O are random: these patterns are not learned; "
                "--model minilm shows a trained model's"
            )
        return Text(line, style="dim")
    if model.sinks:
        shape += ", a learned attention sink per head"
    if model.shared_layers is not None:
        shape += f", sharing the weights of {plural(len(set(model.shared_layers)), 'stored layer')}"
    if model.mixture is not None:
        shape += f", {model.mixture.experts} experts ({model.mixture.per_token} a token)"
    return Text(f"{visible(model.name)} ({model.type}): {shape}, up to {model.max_length} tokens", style="dim")


def text_line(text: str) -> Text:
    return Text.assemble(("Text: ", "bold"), visible(text))


def tokens_table(tokens, text: str) -> Table:
    table = plain_table(
        ("#", "right"), ("token", "left"), ("id", "right"), ("chars", "left"), ("from the text", "left")
    )
    for token in tokens:
        if token.special:
            chars, source = "–", "(special token)"
        else:
            chars, source = f"{token.start}–{token.end}", visible(text[token.start : token.end])
        table.add_row(str(token.index), token_label(token.text), str(token.id), chars, source)
    return table


def quantity(run: AttentionRun) -> str:
    """What the run's values are called: "weight", or "‖αv W_O‖" for its norms."""
    return QUANTITIES[run.measure]


def scale_top(run: AttentionRun, drawn) -> float:
    """Where the fixed and log colour scales of a view of `run` end: at 1 for weights; for norms, at the
    largest of the values `drawn` (an array, or arrays), or 1 where all are 0."""
    if not run.shows_norms:
        return 1.0
    largest = max((float(np.max(values, initial=0.0)) for values in drawn), default=0.0)
    return largest if largest > 0 else 1.0


# What a matrix view of the norms draws, said before it: what the values are, and that rows need not sum to 1.
NORMS_LEAD = (
    "‖αv W_O‖ norms (Kobayashi et al., 2020): how much each key adds to a head's output at each query, "
    "α·‖v W_O‖, the weight times the length of the key's value through the head's part of W_O; rows "
    "are queries, columns are keys; a row need not sum to 1, and colours run from 0 to the largest value drawn."
)


def head_heatmaps(
    run: AttentionRun,
    layer: int,
    head: int | None,
    values: bool,
    highlight: int | None = None,
    scale: str = "fixed",
    keys: slice | None = None,
    queries: slice | None = None,
):
    """Every head of `layer` (or only `head`) as a heatmap of the run's measure, side by side where they fit,
    on one colour scale; `keys` and `queries` choose a window of each."""
    heads = run.heads if head is None else [head]
    weights = dict(zip(run.heads, run.layer(layer), strict=True))  # [T, T] of each head kept
    mask = layer_mask(run, layer)
    prefix = f"layer {layer} " if run.model.layers > 1 else ""
    labels = token_texts(run)
    rows, columns = run.window(queries, "queries"), run.window(keys, "keys")
    top = scale_top(run, [weights[h][np.ix_(rows, columns)] for h in heads])
    maps = [
        Heatmap(
            weights[h],
            labels,
            title=f"{prefix}head {h}",
            scale=scale,
            show_values=values,
            mask=mask,
            highlight=highlight,
            rows=rows,
            columns=columns,
            notes=h == heads[0],  # the window is every head's: said once, above the first
            top=top,
            quantity=quantity(run),
        )
        for h in heads
    ]
    return Columns(maps, padding=(1, 3)) if len(maps) > 1 else maps[0]


def row_sums(model: ModelInfo) -> str:
    """What each row of a head's weights sums to, as a sentence: 1, or 1 less its head's learned sink's share."""
    if not model.sinks:
        return "each row sums to 1."
    return (
        "each row sums to 1 less the share its head's learned sink takes (a logit of the head's own that joins "
        "every row's softmax as one more key, and is dropped)."
    )


def scale_hint(run: AttentionRun, scale: str) -> str:
    """For a decoder on the fixed scale: how to see past its first token, which takes most weight."""
    if not run.model.causal or scale != "fixed" or run.model.sample:
        return ""
    return (
        " In a trained decoder the first token often takes much of every row (an attention sink): "
        "--scale log shows the rest."
    )


def layer_mask(run: AttentionRun, layer: int):
    """[T, T] bool, the keys each query of `layer` may see (causal, and its sliding window), or None."""
    return run.model.mask(layer, len(run.tokens))


def head_name(layer: int, head: int) -> str:
    return f"L{layer} H{head}"


def softmax_steps_table(
    steps: SoftmaxResult,
    headers: tuple[str, str, str, str],
    digits: int = 3,
    keep_small: bool = False,
    keys: list[tuple[str, ...]] | None = None,
    key_headers: tuple[str, ...] = ("#", "key", "q·k"),
) -> Table:
    """softmax's steps as a table: a row per score with its shift, exp, probability and a bar, and a sum row.

    `headers` name the score, shift, exp and probability columns; `keys`, if given, adds columns in
    front of them for each row, named by `key_headers` (index, key, raw score, and what else a
    score was made of), as explain's focus table has.
    """
    leading = [(header, "left" if header == "key" else "right") for header in key_headers] if keys else []
    table = plain_table(*leading, *((header, "right") for header in headers), ("", "left"), footer=True)
    offset = len(leading)
    table.columns[1 if keys else 0].footer = "sum"
    table.columns[offset + 2].footer = number(steps.exp.sum(), digits)
    table.columns[offset + 3].footer = number(steps.probabilities.sum(), digits)
    for row, values in enumerate(zip(steps.scores, steps.shifted, steps.exp, steps.probabilities, strict=True)):
        cells = [number(value, digits, keep_small=keep_small) for value in values]
        table.add_row(*(keys[row] if keys else ()), *cells, bar(steps.probabilities[row]))
    return table
