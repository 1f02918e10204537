"""The view of a greedy continuation: the prompt, what the model added, and each new token's probability."""

from rich.console import Group, RenderableType
from rich.text import Text

from attncli.escapes import visible
from attncli.results import GenerateResult
from attncli.terminal import token_label
from attncli.views.common import bar, model_line, plain_table, plural, text_line
from attncli.widgets.vectors import number

__all__ = ["generate_view"]


def generate_view(result: GenerateResult) -> RenderableType:
    run, count = result.run, len(result.generated)
    ending = {
        "end_of_sequence": "stopped at the model's end-of-sequence token",
        "max_new_tokens": "as many as --max-new-tokens asked for",
    }[result.stopped]
    table = plain_table(("#", "right"), ("token", "left"), ("id", "right"), ("probability", "right"), ("", "left"))
    for token, probability in zip(result.generated, result.probabilities, strict=True):
        table.add_row(str(token.index), token_label(token.text), str(token.id), number(probability), bar(probability))
    first = result.prompt_tokens
    # the page and the explorer show every layer and head, and refuse a selection
    shown = ""
    if run.selection.everything:
        shown = " --export FILE.html or --explore shows the whole sequence's attention, the prompt's end marked."
    return Group(
        text_line(run.text),
        model_line(run.model),
        Text(
            f"A greedy continuation: each new token the most probable next one given the text so far (no "
            f"sampling); {plural(count, 'new token')}, {ending}.{shown}",
            style="italic",
        ),
        Text(""),
        Text.assemble(("Prompt: ", "bold"), visible(result.prompt), (f"  ({plural(first, 'token')})", "dim")),
        Text.assemble(
            ("Continuation: ", "bold"),
            (visible(result.continuation), "bold cyan"),
            (f"  (tokens {first} to {first + count - 1})" if count else "", "dim"),
        ),
        Text(""),
        table,
    )
