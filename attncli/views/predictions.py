"""The view of predict: the text with the predicted positions marked, and each one's most probable tokens."""

from rich.console import Group, RenderableType
from rich.text import Text

from attncli.escapes import visible
from attncli.results import PositionPredictions, PredictResult
from attncli.terminal import token_label
from attncli.views.common import bar, model_line, plain_table
from attncli.widgets.vectors import number

__all__ = ["predict_view"]

# Characters of the text shown on either side of the predicted positions, and the widest span of them shown whole
# (wider, only the one the result is about).
_CONTEXT = 80
_SPAN = 240


def predict_view(result: PredictResult) -> RenderableType:
    parts: list[RenderableType] = [_marked_text(result), model_line(result.model)]
    for position in result.positions:
        parts += [Text(""), _lead(result, position), _table(position)]
    parts.append(Text("--top K lists more; --json has every position's list.", style="dim"))
    return Group(*parts)


def _marked_text(result: PredictResult) -> Text:
    """The text around the predicted positions (_CONTEXT characters either side; the one the result is about
    alone where they are far apart), each one's characters marked (a special token, which has none, by its label
    where it stands); a decoder's followed by → ?, where the next token goes."""
    text, tokens, shown = result.text, result.tokens, result.tokens[result.position.index]
    marked = [result.tokens[position.index] for position in result.positions]
    first, last = min(t.start for t in marked), max(t.end for t in marked)
    if last - first > _SPAN:
        first, last = shown.start, shown.end
    first, last = max(first - _CONTEXT, 0), min(last + _CONTEXT, len(text))
    # widened to whole tokens, so that no token is cut
    first = min([t.start for t in tokens if t.end > first and not t.special] + [first])
    last = max([t.end for t in tokens if t.start < last and not t.special] + [last])
    line = Text.assemble(("Text: ", "bold"), ("… " if first > 0 else "", "dim"))
    at = first  # the next character of the text to write
    for token in marked:
        if token.start > at:
            line.append(visible(text[at : token.start]))
        label = token_label(token.text) if token.special else visible(text[token.start : token.end])
        line.append(f"⟦{label}⟧", style="bold reverse" if token is shown else "bold")
        at = max(at, token.end)
        if result.next_token:
            line.append(" → ?", style="bold")
            line.append("" if at >= last or text[at : at + 1].isspace() else " ")
    line.append(visible(text[at:last]))
    if last < len(text):
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
