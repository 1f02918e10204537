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
    scale_hint,
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


def _norm_name(model: ModelInfo) -> str:
    return "RMSNorm" if model.norm == "rms" else "LayerNorm"


def _input_lead(model: ModelInfo, layer: int, learned: bool) -> str:
    """How the walkthrough layer's input x is made, in words; `learned`: a position table is added."""
    d = model.d_model
    if model.sample:
        if not model.positions:
            order = "" if model.causal else ", so word order changes no score"
            return f"x = √{d} · e: positions are off (--no-positions){order}."
        return f"x = √{d} · e + PE: the embedding scaled by √d_model, plus the sinusoidal encoding of its position."
    if model.pre_norm:
        first = "e + p" if learned else f"√{d} · e" if model.embedding_scale else "e"
        residual = first if layer == 0 else f"the residual stream after layer {layer - 1}"
        norm = _norm_name(model)
        lead = f"Layer {layer} attends over x = {norm}({residual}): {model.title} normalises before each sublayer."
        if model.norm == "rms":
            lead += " RMSNorm(x) = x / √(mean(x²) + ε) · g, with no centring and no shift."
        if model.parallel:
            lead += _parallel_lead(model, layer)
        return lead
    types = " + t, the token type 0 embedding" if model.token_types else ""
    if layer == 0:
        return f"Layer 0 attends over x = LayerNorm(e + p{types})."
    return f"Layer {layer} attends over x = the output of layer {layer - 1}."


def _parallel_lead(model: ModelInfo, layer: int) -> str:
    """How a parallel block's two sublayers read the residual stream and add to it, in words."""
    r = "e" if layer == 0 else "r"
    named = "" if layer == 0 else f", r being the residual stream after layer {layer - 1}"
    if model.shared_norm:
        read, formula = "both read this x", f"{r} + attention(x) + feed-forward(x)"
    else:
        norm = _norm_name(model)
        read = f"read {r}, each through a {norm} of its own (attention's makes this x)"
        formula = f"{r} + attention(x) + feed-forward({norm}′({r}))"
    return (
        f" Attention and the feed-forward network {read}, side by side (a parallel block): layer {layer} passes on "
        f"{formula}{named}; neither sublayer sees the other's output (section 6)."
    )


def explain_view(
    result: ExplainResult,
    values: bool = True,
    scale: str = "fixed",
    keys: slice | None = None,
    queries: slice | None = None,
) -> RenderableType:
    run = result.run
    model = run.model
    trace = run.trace
    attention = result.attention
    labels = token_texts(run)
    h, f, layer = result.walk_head, result.focus, result.layer
    focus_name = token_label(run.tokens[f].text)
    d, d_k = model.d_model, model.d_head
    sample = model.sample
    learned = trace.positions is not None  # a table of positions added to the embeddings (not RoPE)
    plus_b = " + b" if model.attention_bias else ""
    plus_b_o = " + b" if model.output_bias else ""

    parts: list[RenderableType] = [text_line(run.text), model_line(model, caveat=False), _note(model)]

    parts += section(
        1,
        "Tokens",
        f"The tokenizer splits the text into {plural(len(labels), 'token')}; each id picks a row of the vocabulary.",
    )
    parts.append(tokens_table(run.tokens, run.text))

    if sample:
        embed_lead = f"Each token id picks a row e of the {d}-dimensional embedding matrix. "
    elif learned:
        embed_lead = (
            f"Each token id picks a row e of the word embeddings and each position a row p of the position "
            f"embeddings ({d} dimensions). "
        )
    else:
        entry = (
            "position: position enters later, as a rotation of each query and key (RoPE, section 4). "
            if model.layer_attention[layer].rope is not None
            else "position. "
        )
        embed_lead = (
            f"Each token id picks a row e of the word embeddings ({d} dimensions). Nothing is added for its {entry}"
        )
    parts += section(2, "Embeddings", embed_lead + _input_lead(model, layer, learned))
    parts.append(VectorTable(trace.embeddings, labels, title="e  (word embedding)"))
    if trace.positions is not None:
        title = "PE  (positional encoding)" if sample else "p  (position embedding)"
        parts.append(VectorTable(trace.positions, labels, title=title))
    parts.append(VectorTable(attention.x, labels, title=f"x  (input to layer {layer}'s attention)"))

    parts += section(3, "Queries, keys and values", _projection_lead(model, h, plus_b))
    g = attention.key_head(h)
    for name, matrix, row in (("q", attention.q, h), ("k", attention.k, g), ("v", attention.v, g)):
        which = f"head {h}" if row == h else f"key-value head {g}, which head {h} reads"
        normed = f" = {_norm_name(model)}(x·W_{name.upper()})" if model.qk_norm and name != "v" else ""
        parts.append(VectorTable(matrix[row], labels, title=f"{name}{normed}  ({which})"))
    if model.qk_norm and model.norm == "layer":
        parts.append(_head_norms(result))

    parts += section(4, f"Scores for “{focus_name}”", _scores_lead(model, layer, h, f))
    if result.focus_angles is not None:
        parts += _rotation(result)
    parts += _focus_scores(result)

    parts += section(
        5,
        "Attention weights",
        f"Softmax of every row, for {'every head' if result.head is None else f'head {h}'}: rows are queries, "
        "columns are keys; each row sums to 1." + _mask_note(model, layer) + scale_hint(run, scale),
    )
    parts.append(head_heatmaps(run, layer, result.head, values, highlight=f, scale=scale, keys=keys, queries=queries))

    parts += section(
        6,
        f"Weighted sum for “{focus_name}”",
        f"Head {h}'s output for token {f} is Σ weight · v over the keys; the {model.heads} heads' outputs are "
        f"concatenated ({model.heads} × {d_k} = {model.heads * d_k}) and multiplied by W_O "
        f"({model.heads * d_k} × {d}){plus_b_o}.",
    )
    keys = result.focus_keys
    weights = attention.weights[h, f, keys]  # [keys]
    rows = np.vstack([result.weighted_values, attention.head_outputs[h, f][None]])  # [keys + 1, d_k]
    row_labels = [f"{w:.3f} × v({labels[j]})" for j, w in zip(keys, weights, strict=True)] + [f"= head {h} output"]
    parts.append(VectorTable(rows, row_labels, emphasis={len(keys)}))
    final_rows = [attention.concat[f], attention.output[f]]
    final_labels = [f"concat ({model.heads} heads)", f"output = concat·W_O{plus_b_o}"]
    if result.focus_feed_forward is not None:  # a parallel block: what it adds to its input, side by side
        final_rows += [trace.layer_inputs[layer][f], result.focus_feed_forward]
        final_labels += [f"layer {layer} input", "feed-forward output"]
    if not sample:
        final_rows.append(trace.layer_outputs[layer][f])
        final_labels.append(f"layer {layer} output")
    title = f"token {f} “{focus_name}”"
    if len(final_rows[0]) == len(final_rows[1]):
        parts.append(VectorTable(np.vstack(final_rows), final_labels, title=title))
    else:  # heads × d_k differs from d_model: the concatenation gets a table of its own
        parts.append(VectorTable(final_rows[0], final_labels[:1], title=title))
        parts.append(VectorTable(np.vstack(final_rows[1:]), final_labels[1:]))
    if result.focus_feed_forward is not None:
        norm = _norm_name(model)
        read = f"the same {norm}(input) as attention" if model.shared_norm else f"its own {norm} of the input"
        parts.append(
            Text(
                f"A parallel block: layer {layer} output = input + attention output + feed-forward output. The "
                f"feed-forward network read {read}, not the attention's output: the two sublayers run side by side.",
                style="dim",
            )
        )
    elif not sample:
        network = "the gated feed-forward network" if model.gated else "the feed-forward network"
        parts.append(
            Text(
                f"The layer output adds the residual, {_norm_name(model)}s and {network} to the attention output.",
                style="dim",
            )
        )

    parts += section(
        7, "Summary", "What each token attends to most: averaged over heads, and in each head." + _left_out(result)
    )
    parts.append(_summary_table(result))
    return Group(*parts)


def _projection_lead(model: ModelInfo, h: int, plus_b: str) -> str:
    """How q, k and v are made, in words: the projections' shapes, the heads and what they share."""
    d, d_k, heads = model.d_model, model.d_head, model.heads
    kv = model.kv_heads or heads
    if kv == heads and heads * d_k == d:
        shapes = f"each W is {d} × {d}"
    else:
        shapes = f"W_Q is {d} × {heads * d_k}, W_K and W_V {d} × {kv * d_k}"
    lead = (
        f"q = x·W_Q{plus_b}, k = x·W_K{plus_b}, v = x·W_V{plus_b} ({shapes}). Head {h} takes dimensions "
        f"{h * d_k} to {h * d_k + d_k - 1}: every token has a q, k and v of d_k = {d_k} numbers per head."
    )
    if kv < heads:
        group = heads // kv
        first = h // group * group
        lead += (
            f" Grouped-query attention: the {heads} query heads share {kv} key-value heads, {group} each; "
            f"heads {first} to {first + group - 1} read key-value head {h // group}."
        )
    if model.qk_norm and model.norm == "layer":
        weights = "each head's own gains" if model.qk_norm_per_head else "gains shared by every head, plus a bias"
        lead += (
            f" Each head's q and k then pass a LayerNorm over their {d_k} numbers: less their mean, divided by their "
            f"standard deviation, times {weights}."
        )
    elif model.qk_norm:
        lead += " Each head's q and k then pass an RMSNorm of their own."
    return lead


def _head_norms(result: ExplainResult) -> VectorTable:
    """The q and k LayerNorms for the focus token: its q and k in the walkthrough head, before and after."""
    attention, h, f = result.attention, result.walk_head, result.focus
    g = attention.key_head(h)
    rows = np.vstack([attention.q_projected[h, f], attention.q[h, f], attention.k_projected[g, f], attention.k[g, f]])
    norms = f"head {h}'s and key head {g}'s own" if result.run.model.qk_norm_per_head else "the"
    labels = ["x·W_Q", "q = LayerNorm(x·W_Q)", "x·W_K", "k = LayerNorm(x·W_K)"]
    title = f"token {f} “{token_label(result.run.tokens[f].text)}” through {norms} q and k norms"
    return VectorTable(rows, labels, title=title)


def _scores_lead(model: ModelInfo, layer: int, h: int, f: int) -> str:
    """How a query's scores are made, in words: RoPE, the scale, soft-capping, softmax."""
    d_k = model.d_head
    rotated = (
        "rotated query is dotted with every rotated key"
        if model.layer_attention[layer].rope is not None
        else "query is dotted with every key"
    )
    if model.attention_scale is None:
        scale = f"divided by √d_k = √{d_k} = {math.sqrt(d_k):.3f}"
    else:
        scale = f"multiplied by {model.title}'s scale {model.attention_scale:.4g}"
    capped = f", soft-capped as {model.soft_cap:g} · tanh(s / {model.soft_cap:g})" if model.soft_cap else ""
    return (
        f"Head {h}: token {f}'s {rotated} (QKᵀ), {scale}{capped}, then softmax turns the scores into weights "
        "that sum to 1."
    )


def _rotation(result: ExplainResult) -> list[RenderableType]:
    """RoPE for the focus token: the angle each dimension pair turns by, and its q before and after."""
    attention, h, f = result.attention, result.walk_head, result.focus
    rope = result.run.model.layer_attention[result.layer].rope
    angles = result.focus_angles  # [n/2]
    half = len(angles)
    adjacent = rope.pairing == "adjacent"
    pairs = (
        "each pair of adjacent dimensions of a head, 2i and 2i + 1, turns together"
        if adjacent
        else f"dimension i of a head turns with dimension i + {rope.dims // 2}"
    )
    lead = Text(
        f"RoPE: {pairs} by an angle of position × θ^(-2i/{rope.dims}), θ = {rope.theta:g}"
        + ("" if rope.scaling == "default" else f", frequencies scaled ({rope.scaling}, factor {rope.factor:g})")
        + (
            f"; the last {attention.q.shape[-1] - rope.dims} dimensions stay as they are"
            if rope.dims < attention.q.shape[-1]
            else ""
        )
        + f". Token {f} is at position {f}, so its pairs turn by these angles (radians):",
        style="dim",
    )
    g, key = attention.key_head(h), result.focus_top
    # Halves: the first of each pair, dimensions 0 to n/2 - 1; adjacent: both of each pair, side by side.
    shown = slice(0, rope.dims if adjacent else half)
    rows = np.vstack(
        [
            np.repeat(angles, 2) if adjacent else angles,
            attention.q[h, f, shown],
            attention.q_rotated[h, f, shown],
            attention.k[g, key, shown],
            attention.k_rotated[g, key, shown],
        ]
    )  # [5, n/2], or adjacent [5, n]
    labels = ["angle", "q before", "q after", f"k({key}) before", f"k({key}) after"]
    note = Text(
        f"k is token {key}'s key (its strongest below), turned by its own position's angles: a score depends on "
        "the two tokens' distance, not on where they stand.",
        style="dim",
    )
    which = "in pairs (0, 1), (2, 3) …" if adjacent else "the first of each pair"
    title = f"dimensions 0 to {shown.stop - 1}, {which}: token {f}, head {h}"
    return [lead, VectorTable(rows, labels, title=title), note]


def _mask_note(model: ModelInfo, layer: int) -> str:
    if not model.causal:
        return ""
    window = model.layer_attention[layer].window
    if window is None:
        return " The causal mask hides later keys (·)."
    return (
        f" The causal mask hides later keys, and layer {layer}'s sliding window keys more than {window - 1} back (·)."
    )


def _left_out(result: ExplainResult) -> str:
    """What the summary's targets leave out, and how to keep it."""
    if result.include_special:
        return ""
    run = result.run
    kinds = ["special tokens"] if run.special.any() else []
    if run.model.causal:
        kinds.append("the first token (where decoders park their spare attention)")
    if not kinds:
        return ""
    return f" Targets leave out {' and '.join(kinds)}; --include-special keeps them."


def _focus_scores(result: ExplainResult) -> list[RenderableType]:
    run = result.run
    attention = result.attention
    h, f = result.walk_head, result.focus
    labels = [token_label(label) for label in token_texts(run)]
    keys = result.focus_keys
    best = result.focus_top
    queries = attention.q if attention.q_rotated is None else attention.q_rotated
    keys_of = attention.k if attention.k_rotated is None else attention.k_rotated
    q, k = queries[h, f], keys_of[attention.key_head(h), best]
    shown = 8  # terms of the worked dot product written out
    terms = " + ".join(f"({number(a)})({number(b)})" for a, b in zip(q[:shown], k[:shown], strict=True))
    if len(q) > shown:
        terms += f" + … ({len(q) - shown} more terms)"
    worked = Text.assemble(
        ("For example, ", "dim"),
        f"q({labels[f]}) · k({labels[best]}) = {terms} = {number(attention.scores[h, f, best])}",
    )
    key_columns = [(str(key), abbreviate(labels[key], 14), number(attention.scores[h, f, key])) for key in keys]
    model = result.run.model
    scaled = f"÷√{len(q)}" if model.attention_scale is None else f"×{model.attention_scale:.3g}"
    if model.soft_cap:
        scaled += ", capped"
    table = softmax_steps_table(result.focus_steps, (scaled, "− max", "exp", "weight"), keys=key_columns)
    parts: list[RenderableType] = [worked, table]
    hidden = len(labels) - len(keys)
    if hidden:
        later = len(labels) - 1 - f
        why = [plural(later, "later token")] if later else []
        if hidden > later:
            why.append(f"{hidden - later} outside the sliding window")
        parts.append(Text(f"The mask hides {' and '.join(why)}: weight exactly 0.", style="dim"))
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
