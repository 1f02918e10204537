"""explain's view: the walkthrough of one layer, stage by stage, with real numbers."""

import math

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from attncli.escapes import visible
from attncli.models import ModelInfo
from attncli.results import ExplainResult
from attncli.terminal import abbreviate, token_label
from attncli.views.common import (
    head_heatmaps,
    model_line,
    plain_table,
    plural,
    section,
    softmax_steps_table,
    text_line,
    token_texts,
    tokens_table,
)
from attncli.widgets.vectors import VectorTable, number

__all__ = ["explain_view"]

# Beyond this many heads a per-head list per token stops being readable.
_SUMMARY_HEADS = 16


def _note(model: ModelInfo) -> Text:
    if model.sample:
        return Text.assemble(
            ("Note: ", "bold"),
            f"W_Q, W_K, W_V and W_O are random (seed {model.seed}), so the patterns below show how attention "
            "computes, not what a trained model has learned. The word embeddings are trained. "
            "For a trained model's attention, try --model minilm.",
        )
    return Text.assemble(("Checkpoint: ", "bold"), visible(model.path or model.name))


def _input_lead(model: ModelInfo, layer: int) -> str:
    """How the walkthrough layer's input x is made, in words."""
    d = model.d_model
    if model.sample:
        if not model.positions:
            order = "" if model.causal else ", so word order changes no score"
            return f"x = √{d} · e: positions are off (--no-positions){order}."
        return f"x = √{d} · e + PE: the embedding scaled by √d_model, plus the sinusoidal encoding of its position."
    if model.pre_norm:
        residual = "e + p" if layer == 0 else f"the residual stream after layer {layer - 1}"
        return f"Layer {layer} attends over x = LayerNorm({residual}): {model.title} normalises before each sublayer."
    types = " + t, the token type 0 embedding" if model.token_types else ""
    if layer == 0:
        return f"Layer 0 attends over x = LayerNorm(e + p{types})."
    return f"Layer {layer} attends over x = the output of layer {layer - 1}."


def explain_view(result: ExplainResult, values: bool = True) -> RenderableType:
    run = result.run
    model = run.model
    trace = run.trace
    attention = result.attention
    labels = token_texts(run)
    h, f, layer = result.walk_head, result.focus, result.layer
    focus_name = token_label(run.tokens[f].text)
    d, d_k = model.d_model, model.d_head
    sample = model.sample
    plus_b = " + b" if model.biases else ""

    parts: list[RenderableType] = [text_line(run.text), model_line(model), _note(model)]

    parts += section(
        1,
        "Tokens",
        f"The tokenizer splits the text into {plural(len(labels), 'token')}; each id picks a row of the vocabulary.",
    )
    parts.append(tokens_table(run.tokens, run.text))

    if sample:
        embed_lead = f"Each token id picks a row e of the {d}-dimensional embedding matrix. "
    else:
        embed_lead = (
            f"Each token id picks a row e of the word embeddings and each position a row p of the position "
            f"embeddings ({d} dimensions). "
        )
    parts += section(2, "Embeddings", embed_lead + _input_lead(model, layer))
    parts.append(VectorTable(trace.embeddings, labels, title="e  (word embedding)"))
    if trace.positions is not None:
        title = "PE  (positional encoding)" if sample else "p  (position embedding)"
        parts.append(VectorTable(trace.positions, labels, title=title))
    parts.append(VectorTable(attention.x, labels, title=f"x  (input to layer {layer}'s attention)"))

    parts += section(
        3,
        "Queries, keys and values",
        f"q = x·W_Q{plus_b}, k = x·W_K{plus_b}, v = x·W_V{plus_b} (each W is {d} × {d}). Head {h} takes dimensions "
        f"{h * d_k} to {h * d_k + d_k - 1}: every token has a q, k and v of d_k = {d_k} numbers per head.",
    )
    for name, matrix in (("q", attention.q), ("k", attention.k), ("v", attention.v)):
        parts.append(VectorTable(matrix[h], labels, title=f"{name}  (head {h})"))

    parts += section(
        4,
        f"Scores for “{focus_name}”",
        f"Head {h}: token {f}'s query is dotted with every key (QKᵀ), divided by √d_k = √{d_k} = "
        f"{math.sqrt(d_k):.3f}, then softmax turns the scores into weights that sum to 1.",
    )
    parts += _focus_scores(result)

    parts += section(
        5,
        "Attention weights",
        f"Softmax of every row, for {'every head' if result.head is None else f'head {h}'}: rows are queries, "
        "columns are keys; each row sums to 1." + (" The causal mask hides later keys (·)." if model.causal else ""),
    )
    parts.append(head_heatmaps(run, layer, result.head, values, highlight=f))

    parts += section(
        6,
        f"Weighted sum for “{focus_name}”",
        f"Head {h}'s output for token {f} is Σ weight · v over the keys; the {model.heads} heads' outputs are "
        f"concatenated ({model.heads} × {d_k} = {d}) and multiplied by W_O ({d} × {d}){plus_b}.",
    )
    keys = result.focus_keys
    weights = attention.weights[h, f, keys]  # [keys]
    rows = np.vstack([result.weighted_values, attention.head_outputs[h, f][None]])  # [keys + 1, d_k]
    row_labels = [f"{w:.3f} × v({labels[j]})" for j, w in zip(keys, weights, strict=True)] + [f"= head {h} output"]
    parts.append(VectorTable(rows, row_labels, emphasis={len(keys)}))
    final_rows = [attention.concat[f], attention.output[f]]
    final_labels = [f"concat ({model.heads} heads)", f"output = concat·W_O{plus_b}"]
    if not sample:
        final_rows.append(trace.layer_outputs[layer][f])
        final_labels.append(f"layer {layer} output")
    parts.append(VectorTable(np.vstack(final_rows), final_labels, title=f"token {f} “{focus_name}”"))
    if not sample:
        parts.append(
            Text(
                "The layer output adds the residual, LayerNorms and the feed-forward network to the attention output.",
                style="dim",
            )
        )

    parts += section(7, "Summary", "What each token attends to most: averaged over heads, and in each head.")
    parts.append(_summary_table(result))
    return Group(*parts)


def _focus_scores(result: ExplainResult) -> list[RenderableType]:
    run = result.run
    attention = result.attention
    h, f = result.walk_head, result.focus
    labels = [token_label(label) for label in token_texts(run)]
    keys = result.focus_keys
    best = result.focus_top
    q, k = attention.q[h, f], attention.k[h, best]
    shown = 8  # terms of the worked dot product written out
    terms = " + ".join(f"({number(a)})({number(b)})" for a, b in zip(q[:shown], k[:shown], strict=True))
    if len(q) > shown:
        terms += f" + … ({len(q) - shown} more terms)"
    worked = Text.assemble(
        ("For example, ", "dim"),
        f"q({labels[f]}) · k({labels[best]}) = {terms} = {number(attention.scores[h, f, best])}",
    )
    key_columns = [(str(key), abbreviate(labels[key], 14), number(attention.scores[h, f, key])) for key in keys]
    table = softmax_steps_table(result.focus_steps, (f"÷√{len(q)}", "− max", "exp", "weight"), keys=key_columns)
    parts: list[RenderableType] = [worked, table]
    hidden = len(labels) - len(keys)
    if hidden:
        parts.append(Text(f"The causal mask hides {plural(hidden, 'later token')}: weight exactly 0.", style="dim"))
    return parts


def _summary_table(result: ExplainResult) -> Table:
    labels = [token_label(label) for label in token_texts(result.run)]
    keys, weights = result.strongest
    mean_keys, mean_weights = result.strongest_mean
    per_head = len(keys) <= _SUMMARY_HEADS
    columns = [("#", "right"), ("token", "left"), ("mean of heads", "left")]
    table = plain_table(*columns, *([("head:top key(weight)", "left")] if per_head else []))
    for i, label in enumerate(labels):
        row = [str(i), abbreviate(label, 12), f"{abbreviate(labels[mean_keys[i]], 10)} {mean_weights[i]:.2f}"]
        if per_head:
            # No spaces inside an entry, so a wrapped line never splits one.
            row.append(
                "  ".join(f"{h}:{abbreviate(labels[keys[h, i]], 8)}({weights[h, i]:.2f})" for h in range(len(keys)))
            )
        table.add_row(*row)
    if per_head:
        return table
    return Group(table, Text(f"(per-head targets of all {len(keys)} heads are in --json's summary)", style="dim"))
