"""Views of tokens and vectors: tokenize, embed, similar, softmax and dot."""

import numpy as np
from rich.console import Group, RenderableType
from rich.text import Text

from attncli.escapes import visible
from attncli.results import DotResult, EmbedResult, SimilarResult, SoftmaxResult, TokenizeResult
from attncli.terminal import token_label
from attncli.views.common import bar, plain_table, plural, softmax_steps_table, text_line, tokens_table
from attncli.widgets.vectors import VectorTable, number

__all__ = ["dot_view", "embed_view", "similar_view", "softmax_view", "tokenize_view"]


def tokenize_view(result: TokenizeResult) -> RenderableType:
    return Group(
        text_line(result.text),
        Text(f"{plural(len(result.tokens), 'token')} ({visible(result.model.name)} tokenizer)", style="dim"),
        tokens_table(result.tokens, result.text),
    )


def embed_view(result: EmbedResult) -> RenderableType:
    labels = [token.text for token in result.tokens]
    norms = plain_table(("token", "left"), ("‖e‖", "right"))
    for label, norm in zip(labels, result.norms, strict=True):
        norms.add_row(token_label(label), number(norm))
    width = result.embeddings.shape[1]
    return Group(
        text_line(result.text),
        Text(f"{plural(len(labels), 'token')} × {width} dimensions (trained embeddings, reduced by PCA)", style="dim"),
        VectorTable(result.embeddings, labels),
        Text(""),
        norms,
    )


def similar_view(result: SimilarResult) -> RenderableType:
    table = plain_table(("#", "right"), ("token", "left"), ("id", "right"), ("cosine", "right"), ("", "left"))
    for rank, neighbor in enumerate(result.neighbors, start=1):
        table.add_row(
            str(rank), token_label(neighbor.text), str(neighbor.id), number(neighbor.cosine), bar(neighbor.cosine)
        )
    where = "the bundled embeddings" if result.model.sample else f"{visible(result.model.name)}'s input embeddings"
    lead = Text.assemble(
        "Nearest neighbours of “",
        (visible(result.word), "bold"),
        f"” (id {result.id}) in {where}, by cosine similarity",
    )
    return Group(lead, table)


def softmax_view(result: SoftmaxResult) -> RenderableType:
    table = softmax_steps_table(result, ("score x", "x − max", "exp(x − max)", "probability"), 4, keep_small=True)
    return Group(
        Text(
            f"softmax(x)_i = exp(x_i) / Σ exp(x_j). Subtracting the max ({number(result.scores.max(), 4)}) first "
            "cancels out of the ratio but keeps exp from overflowing.",
            style="italic",
        ),
        table,
    )


def dot_view(result: DotResult) -> RenderableType:
    a = "a" if result.a.word is None else visible(result.a.word)
    b = "b" if result.b.word is None else visible(result.b.word)
    parts: list[RenderableType] = []
    if result.a.word is not None or result.b.word is not None:
        parts.append(Text(f"Word vectors are the {len(result.products)}-dimensional bundled embeddings.", style="dim"))
    vectors = np.vstack([result.a.vector, result.b.vector, result.products])  # [3, n]
    parts.append(VectorTable(vectors, [a, b, "a_i × b_i"], emphasis={2}))
    parts.append(
        Text.assemble(
            ("dot = Σ a_i × b_i = ", "bold"),
            (number(result.dot, 4, keep_small=True), "bold"),
            f"    cosine = dot / (‖a‖ ‖b‖) = {number(result.cosine, 4)}",
        )
    )
    return Group(*parts)
