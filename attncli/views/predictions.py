"""The view of predict: the text with the predicted positions marked, and each one's most probable tokens."""

from rich.console import Group, RenderableType
from rich.text import Text

from attncli.escapes import visible
from attncli.results import PositionPredictions, PredictResult
from attncli.terminal import token_label
from attncli.views.common import bar, model_line, plain_table
from attncli.widgets.vectors import number

__all__ = ["predict_view"]

# Tokens shown on either side of the position the result is about, where the text is longer.
_CONTEXT = 12


def predict_view(result: PredictResult) -> RenderableType:
    parts: list[RenderableType] = [_marked_text(result), model_line(result.model)]
    for position in result.positions:
        parts += [Text(""), _lead(result, position), _table(position)]
    parts.append(Text("--top K lists more; --json has every position's list.", style="dim"))
    return Group(*parts)


def _marked_text(result: PredictResult) -> Text:
    """The text around the position the result is about (_CONTEXT tokens either side), each predicted token's
    characters marked (a special token, which has none, by its label where it stands); a decoder's followed by
    → ?, where the next token goes."""
    tokens, shown = result.tokens, result.position.index
    marked = {position.index for position in result.positions}
    first, last = max(shown - _CONTEXT, 0), min(shown + _CONTEXT, len(tokens) - 1)
    start = min(t.start for t in tokens[first : last + 1])
    end = max(t.end for t in tokens[first : last + 1])
    line = Text("Text: ", style="bold")
    if start > 0:
        line.append("… ", style="dim")
    at = start  # the next character of the text to write
    for token in tokens[first : last + 1]:
        if token.index not in marked:
            continue
        if token.start > at:
            line.append(visible(result.text[at : token.start]))
        label = token_label(token.text) if token.special else visible(result.text[token.start : token.end])
        line.append(f"⟦{label}⟧", style="bold reverse" if token.index == shown else "bold")
        at = max(at, token.end)
        if result.next_token:
            line.append(" → ?", style="bold")
            line.append("" if result.text[at:end][:1].isspace() or at >= end else " ")
    if end > at:
        line.append(visible(result.text[at:end]))
    if end < len(result.text):
        line.append(" …", style="dim")
    return line


def _lead(result: PredictResult, position: PositionPredictions) -> Text:
    token = result.tokens[position.index]
    where = f"“{token_label(token.text)}” (token {position.index})"
    what = f"The next token after {where}" if result.next_token else f"The token at {where}"
    return Text(
        f"{what}: softmax of the head's logits over all {result.vocabulary:,} ids of the vocabulary, the "
        f"{len(position.predictions)} most probable",
        style="italic",
    )


def _table(position: PositionPredictions):
    table = plain_table(("#", "right"), ("token", "left"), ("probability", "right"), ("logit", "right"), ("", "left"))
    for rank, prediction in enumerate(position.predictions, start=1):
        token = "(no token: past the tokenizer)" if prediction.token is None else token_label(prediction.token)
        table.add_row(
            str(rank),
            token,
            number(prediction.probability, 4, keep_small=True),
            number(prediction.logit, 3),
            bar(prediction.probability),
        )
    table.add_row("", Text("every other id", style="dim"), Text(number(position.rest, 4, keep_small=True), style="dim"))
    return table
