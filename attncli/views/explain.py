"""explain's view: the walkthrough of one layer, stage by stage, with real numbers."""

import math

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from attncli.attention import Rope, dynamic_theta
from attncli.errors import listed
from attncli.escapes import visible
from attncli.models import ModelInfo
from attncli.results import ExplainResult
from attncli.terminal import abbreviate, token_label
from attncli.views.common import (
    head_heatmaps,
    model_line,
    numbered,
    plain_table,
    plural,
    row_sums,
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
    words = (
        "e·W_in" if model.d_embed else f"{_multiplier(model.embedding_scale, d)} · e" if model.embedding_scale else "e"
    )
    first = f"{words} + p" if learned else words  # what the first layer's residual stream starts as
    if model.token_types:
        first += " + t"
    if model.pre_norm:
        start = f"LayerNorm({first})" if model.embedding_norm else first
        residual = start if layer == 0 else f"the residual stream after layer {layer - 1}"
        norm = _norm_name(model)
        if not model.input_norms:
            lead = (
                f"Layer {layer} attends over x = {residual} itself: {model.title} normalises after each sublayer, "
                f"not before it: the attention's output passes an {norm} before it is added to the residual stream, "
                "and so does the feed-forward network's; the stream itself is normalised only after the last layer."
            )
        elif layer == 0 and not model.first_attention_norm:
            lead = (
                f"Layer 0 attends over x = {residual} as it is: {model.title} normalises before each sublayer, but "
                "its first layer's attention reads the embeddings' own LayerNorm, with no norm of its own."
            )
        else:
            lead = f"Layer {layer} attends over x = {norm}({residual}): {model.title} normalises before each sublayer."
        if model.embedding_norm and model.first_attention_norm:
            lead += " Its embeddings pass a LayerNorm of their own before the first layer."
        elif model.embedding_norm and layer > 0:
            lead += (
                " Its embeddings pass a LayerNorm of their own before the first layer, whose attention reads them so, "
                "with no norm of its own."
            )
        if model.norm == "rms":
            lead += " RMSNorm(x) = x / √(mean(x²) + ε) · g, with no centring and no shift."
        elif not model.norm_gains:
            lead += (
                f" Its LayerNorm learns no gain and no shift: LayerNorm(x) = (x − mean(x)) / √(var(x) + ε), "
                f"ε = {model.eps:g}."
            )
        if model.parallel:
            lead += _parallel_lead(model, layer)
        if not model.causal:  # an encoder, its norms before each sublayer where most have them after
            lead += (
                " Unlike an encoder that normalises after each sublayer, here each sublayer reads a LayerNorm of the "
                "stream r and adds its output to r as it is: r + attention(LayerNorm(r)), then that + feed-forward("
                f"LayerNorm′(that)); one more LayerNorm follows the last layer (layer {model.layers - 1})."
            )
        return lead
    if not model.embedding_norm:  # a post-norm decoder: its embeddings go in as they are
        after = (
            f"as {model.title} normalises after each sublayer: LayerNorm(x + attention), then LayerNorm(that + "
            "feed-forward)"
        )
        if layer == 0:
            return f"Layer 0 attends over x = {first}, not normalised, {after}."
        return f"Layer {layer} attends over x = the output of layer {layer - 1}, normalised, {after}."
    types = " + t, the token type 0 embedding" if model.token_types else ""
    if layer == 0 and model.embedding_projection == "normed":
        e, plus_t = model.d_embed or d, " + t" if model.token_types else ""
        kinds = "word, position and token type 0" if model.token_types else "word and position"
        return (
            f"Layer 0 attends over x = LayerNorm(e + p{plus_t})·W + b: the {kinds} embeddings are summed and "
            f"normed {e} wide, then W ({e} × {d}) and its bias b project them into the model's {d} dimensions."
        )
    if layer == 0:
        return f"Layer 0 attends over x = LayerNorm(e + p{types})."
    return f"Layer {layer} attends over x = the output of layer {layer - 1}."


def _concatenated(model: ModelInfo, plus_b_o: str) -> str:
    """How the heads' outputs become the attention's output, in words: concatenated, then through W_O."""
    heads, d_k, d = model.heads, model.d_head, model.d_model
    if heads == 1:
        return f"the one head's output is multiplied by W_O ({d_k} × {d}){plus_b_o}."
    return (
        f"the {heads} heads' outputs are concatenated ({heads} × {d_k} = {heads * d_k}) and multiplied by W_O "
        f"({heads * d_k} × {d}){plus_b_o}."
    )


def _disentangled_embeddings(model: ModelInfo) -> str:
    """Section 2's lead for a model of disentangled attention: the rows its embeddings add, and that
    position enters every score."""
    relative, e = model.disentangled, model.d_embed or model.d_model
    later = f"as the distance between query and key in every score ({model.title}'s disentangled attention, section 4)"
    if relative.absolute:
        again = f"position enters again later, {later}" if relative.terms > 1 else "its scores have no position terms"
        return (
            "Each token id picks a row e of the word embeddings and each position a row p of the position "
            f"embeddings ({e} dimensions each); {again}. "
        )
    if relative.terms == 1:  # pos_att_type names no position term
        return (
            f"Each token id picks a row e of the word embeddings ({e} dimensions). Nothing is added for its "
            "position, and its scores have no position terms: word order changes no score. "
        )
    return (
        f"Each token id picks a row e of the word embeddings ({e} dimensions). Nothing is added for its position: "
        f"it enters later, {later}. "
    )


def _disentangled_input(model: ModelInfo) -> str:
    """How layer 0's input x is made in a model of disentangled attention, in words: the embeddings' sum
    (projected where they are narrower than the model) through a LayerNorm."""
    summed = ["e", *(["p"] if model.disentangled.absolute else []), *(["t"] if model.token_types else [])]
    x = " + ".join(summed)
    notes = ["t the token type 0 embedding"] if model.token_types else []
    if model.d_embed:
        x, what = (f"({x})·W_in", "their sum") if len(summed) > 1 else (f"{x}·W_in", "e")
        notes.append(
            f"W_in ({model.d_embed} × {model.d_model}) turns {what} into the model's {model.d_model} dimensions"
        )
    return f"Layer 0 attends over x = LayerNorm({x})" + (f": {'; '.join(notes)}." if notes else ".")


def _convolution_note(model: ModelInfo) -> str:
    """What the convolution beside the first layer adds to its output, in words."""
    conv = model.convolution
    groups = f", its channels in {conv.groups} groups that convolve apart" if conv.groups > 1 else ""
    return (
        f" Layer 0 has {model.title}'s convolution beside it too: its input x, convolved along the tokens "
        f"({conv.kernel} tokens wide{groups}) and through {conv.activation}, is added to that output, and the "
        f"sum LayerNormed again: layer 0 output = LayerNorm(that + {conv.activation}(conv(x)))."
    )


def _multiplier(scale: float, d: int) -> str:
    """A multiplier as the walkthrough writes it: √d where it is √d_model (Gemma's), else its number."""
    return f"√{d}" if scale == d**0.5 else f"{scale:g}"


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
    d = model.d_model
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
    elif model.disentangled is not None:
        embed_lead = _disentangled_embeddings(model)
    elif learned and model.embedding_projection == "words" and (model.d_embed or model.position_offset):
        narrower = (
            f" ({model.d_embed} dimensions, which W_in, {model.d_embed} × {d}, turns into the model's {d})"
            if model.d_embed
            else ""
        )
        offset = model.position_offset
        rows = f" Position i reads row i + {offset}: the table's positions start at row {offset}." if offset else ""
        embed_lead = (
            f"Each token id picks a row e of the word embeddings{narrower} and each position a row p of the "
            f"position embeddings ({d} dimensions).{rows} "
        )
    elif learned:  # as wide as the model, or summed and normed narrower, then projected in (_input_lead)
        embed_lead = (
            f"Each token id picks a row e of the word embeddings and each position a row p of the position "
            f"embeddings ({model.d_embed or d} dimensions). "
        )
    else:
        if model.layer_attention[layer].rope is not None:
            entry = "position: position enters later, as a rotation of each query and key (RoPE, section 4). "
        elif model.alibi is not None:
            entry = (
                "position: position enters later, as a bias on each score for the key's distance (ALiBi, section 4). "
            )
        else:
            entry = "position. "
        embed_lead = (
            f"Each token id picks a row e of the word embeddings ({d} dimensions). Nothing is added for its {entry}"
        )
    first = model.disentangled is not None and layer == 0  # its embeddings are summed and projected its own way
    input_lead = _disentangled_input(model) if first else _input_lead(model, layer, learned)
    parts += section(2, "Embeddings", embed_lead + input_lead)
    parts.append(VectorTable(trace.embeddings, labels, title="e  (word embedding)"))
    if trace.positions is not None:
        title = "PE  (positional encoding)" if sample else "p  (position embedding)"
        if model.position_offset:
            title = (
                f"p  (position embedding: rows {model.position_offset} to {model.position_offset + len(labels) - 1})"
            )
        parts.append(VectorTable(trace.positions, labels, title=title))
    parts += _embedding_projection(result)
    if not sample and model.pre_norm and not model.causal:  # the stream the layer reads, then its norm attention reads
        parts.append(VectorTable(trace.layer_inputs[layer], labels, title=f"r  (layer {layer}'s input, not normed)"))
    parts.append(VectorTable(attention.x, labels, title=f"x  (input to layer {layer}'s attention)"))

    parts += section(
        3, "Queries, keys and values", _projection_lead(model, h, plus_b) + _clip_note(result) + _shared(model, layer)
    )
    g = attention.key_head(h)
    for name, matrix, row in (("q", attention.q, h), ("k", attention.k, g), ("v", attention.v, g)):
        which = f"head {h}" if row == h else f"key-value head {g}, which head {h} reads"
        parts.append(VectorTable(matrix[row], labels, title=f"{name}{_made(model, name)}  ({which})"))
    if result.projection_rms is not None:
        parts += _whole_norm(result)
    if model.qk_norm and model.norm == "layer":
        parts.append(_head_norms(result))

    parts += section(4, f"Scores for “{focus_name}”", _scores_lead(model, layer, h, f))
    if result.focus_angles is not None:
        parts += _rotation(result)
    if result.relative_buckets is not None:
        parts.append(_relative_bias(result))
    elif result.focus_biases is not None:
        parts.append(_alibi(result))
    if result.focus_relative is not None and model.disentangled.terms > 1:
        parts.append(_relative(result))
    parts += _focus_scores(result)

    parts += section(
        5,
        "Attention weights",
        f"Softmax of every row, for {_heads_drawn(result)}: rows are queries, "
        f"columns are keys; {row_sums(model)}" + _mask_note(model, layer) + scale_hint(run, scale),
    )
    parts.append(head_heatmaps(run, layer, result.head, values, highlight=f, scale=scale, keys=keys, queries=queries))

    parts += section(
        6,
        f"Weighted sum for “{focus_name}”",
        f"Head {h}'s output for token {f} is Σ weight · v over the keys; " + _concatenated(model, plus_b_o),
    )
    keys = result.focus_keys
    weights = attention.weights[h, f, keys]  # [keys]
    rows = np.vstack([result.weighted_values, attention.head_outputs[h, f][None]])  # [keys + 1, d_k]
    row_labels = [f"{w:.3f} × v({labels[j]})" for j, w in zip(keys, weights, strict=True)] + [f"= head {h} output"]
    parts.append(VectorTable(rows, row_labels, emphasis={len(keys)}))
    final_rows = [attention.concat[f], attention.output[f]]
    final_labels = [f"concat ({plural(model.heads, 'head')})", f"output = concat·W_O{plus_b_o}"]
    if result.focus_feed_forward is not None:  # a parallel block: what it adds to its input, side by side
        final_rows += [trace.layer_inputs[layer][f], result.focus_feed_forward]
        final_labels += [f"layer {layer} input", "feed-forward output"]
    convolved = layer == 0 and trace.convolution is not None  # the convolution beside the first layer
    if convolved:
        final_rows.append(trace.convolution[f])
        final_labels.append(f"{model.convolution.activation}(conv(x))")
    if not sample:
        final_rows.append(trace.layer_outputs[layer][f])
        final_labels.append(f"layer {layer} output")
    if not sample and model.pre_norm and not model.causal and layer == model.layers - 1:
        final_rows.append(trace.output[f])
        final_labels.append("last hidden state")
    title = f"token {f} “{focus_name}”"
    if len(final_rows[0]) == len(final_rows[1]):
        parts.append(VectorTable(np.vstack(final_rows), final_labels, title=title))
    else:  # heads × d_k differs from d_model: the concatenation gets a table of its own
        parts.append(VectorTable(final_rows[0], final_labels[:1], title=title))
        parts.append(VectorTable(np.vstack(final_rows[1:]), final_labels[1:]))
    routing = trace.routing[layer] if model.mixture is not None else None
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
        if routing is not None:
            network = "the mixture of experts (section 7)"
        norm = _norm_name(model)
        added = f"The layer output adds the residual, {norm}s and {network} to the attention output."
        if not model.input_norms:
            added = (
                f"The layer output: the attention output, through an {norm}, added to the residual stream; then "
                f"{network} reads the stream, and its output, through an {norm} too, is added."
            )
        if model.pre_norm and not model.causal:
            added = (
                f"The layer output: the attention output added to the residual stream as it is, then {network}'s "
                f"output, which read a {norm} of that sum, added too."
            )
            if layer == model.layers - 1:
                added += " The last layer's output passes one more LayerNorm: the model's last hidden state."
        if model.residual_scale is not None:
            scale = f"{model.residual_scale:g}"
            added = (
                f"The layer output adds the attention output × {scale} to the residual stream, then {network}'s "
                f"output × {scale} (each sublayer reading an {norm} of the stream): the residual "
                f"multiplier {scale} scales what each sublayer adds."
            )
        if convolved:
            added += _convolution_note(model)
        parts.append(Text(added, style="dim"))

    summary = 7
    if model.mixture is not None:
        parts += _experts(model, layer, routing, labels)
        summary = 8
    parts += section(
        summary,
        "Summary",
        "What each token attends to most: averaged over heads, and in each head"
        + ("" if result.run.selection.heads is None else f" of those kept ({listed(result.run.heads)})")
        + "."
        + _left_out(result),
    )
    parts.append(_summary_table(result))
    return Group(*parts)


def _experts(model: ModelInfo, layer: int, routing, labels: list[str]) -> list[RenderableType]:
    """Section 7 of a mixture-of-experts model: the experts the router sent each token to, with their
    weights (an experts.Routing); or, for one of its dense layers, that it has none."""
    mixture = model.mixture
    sparse = [i for i, is_sparse in enumerate(mixture.sparse) if is_sparse]
    if routing is None:
        lead = (
            f"Layer {layer} is one of the model's dense layers: every token goes through one gated feed-forward "
            f"network, {model.d_ff} wide. Layers {', '.join(map(str, sparse))} are mixtures of {mixture.experts} "
            "experts."
        )
        return section(7, "Experts", lead)
    k = mixture.per_token
    weighted = (
        f"renormalised over the {k} to sum to 1"
        if mixture.renormalize
        else f"as it is (the {k} are not renormalised: they sum to less than 1)"
    )
    lead = (
        f"Layer {layer}'s feed-forward network is a mixture of {mixture.experts} experts, each a gated feed-forward "
        f"network {mixture.d_expert} wide. A router scores each token's normed residual x against them, "
        f"p = softmax(x·W_g) (W_g is {model.d_model} × {mixture.experts}), and sends it to its {k} most probable; "
        f"the token's output is the sum of their outputs, each weighted by its probability, {weighted}."
    )
    if mixture.softmax_after_top_k:
        lead = _top_k_first(model, layer)
    if mixture.d_shared is not None:
        lead += (
            f" A shared expert, {mixture.d_shared} wide, adds its output to every token's, weighted by its gate "
            "σ(x·w_s)."
        )
    lead += " Only the experts some token is sent to are computed."
    columns = [("#", "right"), ("token", "left"), ("expert(weight)", "left")]
    if routing.shared is not None:
        columns.append(("shared gate", "right"))
    table = plain_table(*columns)
    for i, label in enumerate(labels):
        # No spaces inside an entry, so a wrapped line never splits one.
        chosen = "  ".join(
            f"{expert}({weight:.2f})" for expert, weight in zip(routing.experts[i], routing.weights[i], strict=True)
        )
        row = [str(i), abbreviate(token_label(label), 12), chosen]
        if routing.shared is not None:
            row.append(f"{routing.shared[i]:.2f}")
        table.add_row(*row)
    used = len(set(routing.experts.ravel().tolist()))
    note = Text(
        f"{used} of the {mixture.experts} experts are used for these {plural(len(labels), 'token')}.", style="dim"
    )
    return [*section(7, "Experts", lead), table, note]


def _top_k_first(model: ModelInfo, layer: int) -> str:
    """How GPT-OSS's mixture layer routes and what its experts compute, in words."""
    mixture = model.mixture
    k, limit = mixture.per_token, f"{mixture.swiglu_limit:g}"
    return (
        f"Layer {layer}'s feed-forward network is a mixture of {mixture.experts} experts, each a feed-forward "
        f"network {mixture.d_expert} wide with biases, gated by a clamped SwiGLU: with its gate g clamped to at "
        f"most {limit} and its up projection u to ±{limit}, it passes on (u + 1) · g · σ({mixture.swiglu_alpha:g}"
        f" · g). A router scores each token's normed residual x against them, x·W_g + b (W_g is {model.d_model} × "
        f"{mixture.experts}), and sends it to its {k} highest scores; softmax over those {k} alone gives the "
        f"weights of their outputs, which sum to 1."
    )


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
    if model.whole_qk_norm:
        lead += (
            f" q then passes one RMSNorm over all its {heads * d_k} numbers at once, every head's together, and k "
            f"one over its {kv * d_k}, before they split into heads: a head's part is divided by the root mean "
            "square of the whole projection, not by its own."
        )
    return lead


def _made(model: ModelInfo, name: str) -> str:
    """How q, k or v (`name`) is made of its projection x·W, as its table's title says: "" for the projection
    itself, " = RMSNorm(x·W_Q)" where q and k are normed, " = clamp(x·W_V, ±8)" where clip_qkv clamps."""
    projection = made = f"x·W_{name.upper()}"
    if (model.qk_norm or model.whole_qk_norm) and name != "v":
        made = f"{'LayerNorm' if model.qk_norm and model.norm == 'layer' else 'RMSNorm'}({made})"
    if model.clip_qkv is not None:
        made = f"clamp({made}, ±{model.clip_qkv:g})"
    return "" if made == projection else f" = {made}"


def _clip_note(result: ExplainResult) -> str:
    """How many numbers of the walkthrough layer's q, k and v clip_qkv clamped, where the model clamps them."""
    if result.clipped is None:
        return ""
    attention, bound = result.attention, result.run.model.clip_qkv
    q, k, v = result.clipped
    total = attention.q.size + attention.k.size + attention.v.size
    return (
        f" Once projected, every number of q, k and v is clamped to ±{bound:g} (clip_qkv): in layer "
        f"{result.layer} that clamped {q + k + v:,} of their {total:,} numbers (q {q:,}, k {k:,}, v {v:,})."
    )


def _whole_norm(result: ExplainResult) -> list[RenderableType]:
    """The norms over the whole projections, for the focus token: what its q and k are divided by, and
    the walkthrough head's part of them before and after."""
    attention, h, f = result.attention, result.walk_head, result.focus
    model = result.run.model
    d_k, g = model.d_head, attention.key_head(h)
    whole, own, keys = result.projection_rms
    q, k, _ = attention.projected  # [T, h·d_k], [T, g·d_k]
    name = token_label(result.run.tokens[f].text)
    lead = Text(
        f"Token {f} “{name}”: its x·W_Q, all {q.shape[-1]} numbers, has √(mean(x²) + ε) = {whole:.3f} (head {h}'s "
        f"{d_k} alone would give {own:.3f}), so each head's q is its part of x·W_Q ÷ {whole:.3f} · g; its x·W_K's "
        f"{k.shape[-1]} numbers give {keys:.3f}.",
        style="dim",
    )
    rows = np.vstack(
        [
            q[f, h * d_k : (h + 1) * d_k],
            attention.q[h, f],
            k[f, g * d_k : (g + 1) * d_k],
            attention.k[g, f],
        ]
    )  # [4, d_k]
    key_head = f"kv head {g}" if len(attention.k) < len(attention.q) else f"head {g}"
    q_after, k_after, after = "q = RMSNorm(x·W_Q)", "k = RMSNorm(x·W_K)", "the whole-projection norm"
    if model.clip_qkv is not None:  # OLMoE clamps them too, once normed
        q_after, k_after, after = (
            "q (normed, clamped)",
            "k (normed, clamped)",
            f"{after} and the clamp to ±{model.clip_qkv:g}",
        )
    labels = [f"x·W_Q (head {h})", q_after, f"x·W_K ({key_head})", k_after]
    return [lead, VectorTable(rows, labels, title=f"token {f} “{name}”, before and after {after}")]


def _head_norms(result: ExplainResult) -> VectorTable:
    """The q and k LayerNorms for the focus token: its q and k in the walkthrough head, before and after."""
    attention, h, f = result.attention, result.walk_head, result.focus
    g = attention.key_head(h)
    rows = np.vstack([attention.q_projected[h, f], attention.q[h, f], attention.k_projected[g, f], attention.k[g, f]])
    norms = f"head {h}'s and key head {g}'s own" if result.run.model.qk_norm_per_head else "the"
    labels = ["x·W_Q", "q = LayerNorm(x·W_Q)", "x·W_K", "k = LayerNorm(x·W_K)"]
    title = f"token {f} “{token_label(result.run.tokens[f].text)}” through {norms} q and k norms"
    return VectorTable(rows, labels, title=title)


def _embedding_projection(result: ExplainResult) -> list[RenderableType]:
    """Where the model sums and normalises its embeddings narrower than its width, then projects them in: the
    normed embeddings, and (for a later layer than the first) what the projection made of them; else nothing."""
    run, layer = result.run, result.layer
    trace, model = run.trace, run.model
    if trace.normed_embeddings is None:
        return []
    labels = token_texts(run)
    plus_t = " + t" if model.token_types else ""
    e, d = model.d_embed or model.d_model, model.d_model
    tables = [VectorTable(trace.normed_embeddings, labels, title=f"LayerNorm(e + p{plus_t})  ({e} dimensions)")]
    if layer > 0:  # the layer's own input comes next; the projection's output is layer 0's
        title = f"LayerNorm(e + p{plus_t})·W + b  (projected to {d} dimensions: layer 0's input)"
        tables.append(VectorTable(trace.layer_inputs[0], labels, title=title))
    return tables


def _shared(model: ModelInfo, layer: int) -> str:
    """Whose weights `layer` runs, where the model's layers share them, in words; else ""."""
    shared = model.shared_layers
    if shared is None:
        return ""
    group, inner = shared[layer]
    stored = sorted(set(shared))
    if len(stored) == 1:
        return (
            f" {model.title}'s {model.layers} layers all run one stored layer's weights (group {group}'s layer "
            f"{inner}): the W_Q, W_K, W_V and W_O here, its LayerNorms and its feed-forward network are the same in "
            "every layer; only what a layer reads differs."
        )
    per_group = max(j for _, j in shared) + 1
    passes = [shared[start][0] for start in range(0, len(shared), per_group)]  # each pass's group
    runs = [(p, g) for p, g in enumerate(passes) if p == 0 or passes[p - 1] != g]  # (first pass, group) of each run
    ends = [start - 1 for start, _ in runs[1:]] + [len(passes) - 1]
    spans = ", ".join(
        f"pass{'es' if end > start else ''} {start}{f'–{end}' if end > start else ''} through group {g}"
        for (start, g), end in zip(runs, ends, strict=True)
    )
    others = [i for i, weights in enumerate(shared) if weights == shared[layer] and i != layer]
    same = ""
    if others:
        same = f", as layer {others[0]} does" if len(others) == 1 else f", as layers {', '.join(map(str, others))} do"
    return (
        f" {model.title}'s layers share their weights: its {model.layers} layers are {len(passes)} passes through "
        f"groups of {plural(per_group, 'layer')} ({spans}), {len(stored)} stored layers in all. Layer {layer}, "
        f"pass {layer // per_group}'s layer {inner}, runs group {group}'s layer {inner}{same}: W_Q, W_K, W_V and "
        "W_O here, its LayerNorms and its feed-forward network are that stored layer's."
    )


def _relative_bias(result: ExplainResult) -> Text:
    """The relative position bias for the focus token: how distances fall into buckets, and what the walkthrough
    head adds for the keys next to it (every key's bucket and bias are the table's columns)."""
    model, h, f = result.run.model, result.walk_head, result.focus
    bias = model.relative_bias
    half = bias.buckets // 2
    exact = half // 2
    keys = list(result.focus_keys)
    near = [
        f"{what} (bucket {result.relative_buckets[f, j]}) {number(result.focus_biases[keys.index(j)])}"
        for j, what in ((f, "itself"), (f - 1, "the token before"), (f + 1, "the token after"))
        if j in keys
    ]
    return Text(
        f"Relative position bias: each key j's distance from token {f} falls in one of {bias.buckets} buckets, "
        f"{half} for the keys before it (itself included) and {half} for those after: one for each distance up to "
        f"{exact - 1}, then buckets wider and wider up to {bias.max_distance}, past which all share the last. Head "
        f"{h} adds its learned number for the key's bucket to the scaled score (the bucket and bias columns): "
        f"{', '.join(near)}. One table serves every layer, looked up once for the text. (--json's steps hold "
        "every query's buckets and biases.)",
        style="dim",
    )


def _scores_lead(model: ModelInfo, layer: int, h: int, f: int) -> str:
    """How a query's scores are made, in words: RoPE, the scale, soft-capping, softmax."""
    if model.disentangled is not None and model.disentangled.terms > 1:
        return _disentangled_lead(model, h, f)
    d_k = model.d_head
    rotated = (
        "rotated query is dotted with every rotated key"
        if model.layer_attention[layer].rope is not None
        else "query is dotted with every key"
    )
    if model.attention_scale is None:
        scale = f"divided by √d_k = √{d_k} = {math.sqrt(d_k):.3f}"
    elif model.attention_scale == 1.0:
        scale = f"not scaled ({model.title} leaves out the division by √d_k = √{d_k} = {math.sqrt(d_k):.3f})"
    else:
        scale = f"multiplied by {model.title}'s scale {model.attention_scale:.4g}"
    if model.alibi is not None:
        scale += ", plus ALiBi's bias for the key's distance" + (", divided by √d_k too" if model.alibi.scaled else "")
    if model.relative_bias is not None:
        scale += f", plus head {h}'s relative position bias for the key's distance"
    capped = f", soft-capped as {model.soft_cap:g} · tanh(s / {model.soft_cap:g})" if model.soft_cap else ""
    weights = "weights that sum to 1"
    if model.sinks:
        weights = (
            f"weights, with head {h}'s learned sink logit as one more score; the sink's share is then dropped, "
            "so the keys' weights sum to less than 1"
        )
    lead = f"Head {h}: token {f}'s {rotated} (QKᵀ), {scale}{capped}, then softmax turns the scores into {weights}."
    if model.layer_attention[layer].rope is None and any(other.rope for other in model.layer_attention):
        lead += (
            f" Layer {layer} has no RoPE, unlike the model's other layers: its queries and keys carry no "
            "position, and only the causal mask tells earlier tokens from later ones."
        )
    return lead


def _disentangled_lead(model: ModelInfo, h: int, f: int) -> str:
    """How disentangled attention's scores are made, in words: the terms each sums, their scale, softmax."""
    relative, d_k = model.disentangled, model.d_head
    terms = ["c2c, content to content: its query against the key's k, q·k as QKᵀ"]
    if relative.c2p:
        terms.append("c2p, content to position: its query against k_r(δ), the key of position δ = i − j relative to it")
    if relative.p2c:
        terms.append("p2c, position to content: the key's k against q_r(δ), the query of that same relative position")
    root = f"√(d_k · {relative.terms}) = √{d_k * relative.terms} = {relative.scale(d_k):.3f}"
    return (
        f"Head {h}: token {f}'s score for each key j sums the {relative.terms} terms of {model.title}'s disentangled "
        f"attention: {'; '.join(terms)}. The sum is divided by {root}, then softmax turns the scores into weights "
        "that sum to 1."
    )


def _relative(result: ExplainResult) -> Text:
    """Disentangled attention's relative positions for the focus token: the table k_r and q_r are made of,
    and how δ is read."""
    relative, f = result.run.model.disentangled, result.focus
    k = relative.span
    normed = ", passed through a LayerNorm" if relative.normed else ""
    made = " and ".join(
        name for name, kept in (("k_r = P·W_K,r + b", relative.c2p), ("q_r = P·W_Q,r + b", relative.p2c)) if kept
    )
    whose = "with weights of their own, apart from W_K and W_Q"
    if relative.shared:
        made, whose = made.replace(",r", ""), "with the layer's own W_K and W_Q (share_att_key)"
    if relative.buckets:
        m = relative.buckets // 2
        read = (
            f"δ = i − j counts as it is up to ±{m}; farther distances share log-spaced buckets, ±{2 * m - 1} at a "
            f"distance of {relative.max_relative - 1}, and farther still read the table's end rows"
        )
    else:
        read = f"δ = i − j counts as it is from −{k} to {k - 1}; farther keys read the table's end rows"
    return Text(
        f"Relative positions: P is a table of {2 * k} relative position embeddings (δ = −{k} to {k - 1}){normed}; "
        f"{made} project it {whose}. {read}. The δ column is what token {f}'s terms read for each key (--json's "
        "steps.relative_positions holds every query's).",
        style="dim",
    )


def _terms_table(result: ExplainResult, labels: list[str]) -> Table:
    """Disentangled attention's terms for the focus token: per key its distance, the δ read, c2c, c2p and
    p2c, their sum, and that divided by the scale."""
    attention, h, f = result.attention, result.walk_head, result.focus
    relative = result.run.model.disentangled
    terms = [("c2c", attention.scores)] + [
        (name, values) for name, values in (("c2p", attention.c2p), ("p2c", attention.p2c)) if values is not None
    ]
    root = f"÷√{result.run.model.d_head * relative.terms}"
    table = plain_table(
        ("#", "right"),
        ("key", "left"),
        ("i − j", "right"),
        ("δ", "right"),
        *((name, "right") for name, _ in terms),
        ("sum", "right"),
        (root, "right"),
    )
    for key, delta in zip(result.focus_keys, result.focus_relative, strict=True):
        values = [float(matrix[h, f, key]) for _, matrix in terms]
        table.add_row(
            str(key),
            abbreviate(labels[key], 14),
            str(f - key),
            str(delta),
            *(number(value) for value in values),
            number(sum(values)),
            number(attention.scaled[h, f, key]),
        )
    return table


def _alibi(result: ExplainResult) -> Text:
    """ALiBi for the focus token: the walkthrough head's slope, and what its bias does with distance."""
    model, h, f = result.run.model, result.walk_head, result.focus
    slopes = model.slopes  # [h]
    m, shown = float(slopes[h]), 8
    listed = ", ".join(f"{slope:.4g}" for slope in slopes[:shown]) + (", …" if len(slopes) > shown else "")
    root = math.sqrt(model.d_head)
    scaled, step = (f", divided by √d_k = {root:.3f} as the scores are", m / root) if model.alibi.scaled else ("", m)
    seen = f"m·(j − {f}){'/√d_k' if model.alibi.scaled else ''}"
    return Text(
        f"ALiBi: head {h}'s slope is m = {m:.4g}; each key j's score gets m·j{scaled}. Softmax ignores what a "
        f"row adds to all its scores, so token {f} sees {seen} (the bias column): 0 for itself, {-step:.4g} for "
        f"the token before, {-10 * step:.4g} ten tokens back, a penalty growing with the distance. The "
        f"{model.heads} heads' slopes: {listed}; a head with a larger slope looks nearer. (--json's steps.alibi "
        "holds each head's bias for each key j.)",
        style="dim",
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
        f"RoPE: {pairs} by an angle of position × θ^(-2i/{rope.dims}), {_base(rope, len(result.run.tokens))}"
        + (
            f"; the last {attention.q.shape[-1] - rope.dims} dimensions stay as they are"
            if rope.dims < attention.q.shape[-1]
            else ""
        )
        + f".{_layer_ropes(result.run.model, result.layer, len(result.run.tokens))} Token {f} is at position {f}, "
        "so its pairs turn by these "
        "angles (radians):",
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


def _base(rope: Rope, tokens: int) -> str:
    """A RoPE's base and its frequencies' scaling, in words, for a text of `tokens` tokens."""
    return f"θ = {rope.theta:g}{_scaling(rope, tokens)}"


def _layer_ropes(model: ModelInfo, layer: int, tokens: int) -> str:
    """Where the sliding and the global layers turn by RoPEs of their own: which `layer` uses, and the others'."""
    kinds: dict[Rope, list[bool]] = {}  # each RoPE: whether each of its layers slides
    for attention in model.layer_attention:
        if attention.rope is not None:
            kinds.setdefault(attention.rope, []).append(attention.window is not None)
    if len(kinds) < 2:
        return ""
    here = model.layer_attention[layer].rope
    others = [
        f"the {plural(len(slides), 'sliding layer' if slides[0] else 'global layer')} by {_base(rope, tokens)}"
        for rope, slides in kinds.items()
        if rope != here
    ]
    kind, count = "sliding" if kinds[here][0] else "global", len(kinds[here])
    which = f"the one {kind} layer" if count == 1 else f"one of the {count} {kind} layers"
    return (
        f" The sliding and the global layers turn by RoPEs of their own: layer {layer} is {which}, turned by this "
        f"base; {' and '.join(others)}."
    )


def _scaling(rope: Rope, tokens: int) -> str:
    """How RoPE's frequencies are scaled, with the numbers; for dynamic and longrope, which table a text of
    `tokens` tokens gets."""
    context = rope.original_max_positions
    beyond = rope.beyond_context(tokens)
    where = f"this text's {plural(tokens, 'token')} {'outrun' if beyond else 'stay within'} the {context} positions"
    factor = f"cos and sin × attention factor {rope.attention_factor:.4g}"
    if rope.scaling == "yarn":
        return (
            f", frequencies scaled by YaRN (factor {rope.factor:g}): pairs making more than {rope.beta_fast:g} "
            f"turns over the {context} positions it was trained on keep their frequency, those making fewer than "
            f"{rope.beta_slow:g} have it divided by {rope.factor:g}, with a ramp between; {factor}"
        )
    if rope.scaling == "dynamic":
        if beyond:
            return (
                f", raised by dynamic NTK scaling (factor {rope.factor:g}) as {where} it was trained on: "
                f"θ' = {dynamic_theta(rope, tokens):.6g} for this text"
            )
        return f", which dynamic NTK scaling (factor {rope.factor:g}) keeps as {where} it was trained on"
    if rope.scaling == "longrope":
        which = rope.long_factor if beyond else rope.short_factor
        shown = ", ".join(f"{value:g}" for value in which[:4]) + (", …" if len(which) > 4 else "")
        return (
            f", frequencies divided by LongRoPE's {'long' if beyond else 'short'} factors ({shown}) as "
            f"{where} it was trained on; {factor}"
        )
    if rope.scaling == "default":
        return ""
    return f", frequencies scaled ({rope.scaling}, factor {rope.factor:g})"


def _mask_note(model: ModelInfo, layer: int) -> str:
    if not model.causal:
        return _two_sided_note(model, layer)
    window, kind = model.layer_attention[layer].window, model.layer_attention[layer].kind
    if kind is not None:
        return _kind_note(model, layer)
    if window is None:
        return " The causal mask hides later keys (·)."
    return (
        f" The causal mask hides later keys, and layer {layer}'s sliding window keys more than {window - 1} back (·)."
    )


def _kind_note(model: ModelInfo, layer: int) -> str:
    """The mask of a model whose layers are global (every earlier key) or local (a sliding window of them)."""
    window = model.layer_attention[layer].window
    if window is not None:
        return (
            f" Layer {layer} is a local layer: the causal mask hides later keys, and its sliding window keys more "
            f"than {window - 1} back (·)."
        )
    local = [i for i, attention in enumerate(model.layer_attention) if attention.window is not None]
    note = f" Layer {layer} is a global layer: the causal mask hides later keys (·) and nothing else"
    if not local:
        return note + "."
    windows = " or ".join(str(size) for size in sorted({model.layer_attention[i].window for i in local}))
    which = f"layer {local[0]} sees" if len(local) == 1 else f"layers {', '.join(map(str, local))} see"
    return note + f"; the local {which} only a query's last {windows} keys."


def _two_sided_note(model: ModelInfo, layer: int) -> str:
    """The mask of a bidirectional model whose local layers see a window of keys on either side of each
    query, and its global layers every key; nothing where no layer has a window."""
    local = [i for i, attention in enumerate(model.layer_attention) if attention.window is not None]
    if not local:
        return ""
    window = model.layer_attention[layer].window
    if window is not None:
        reach = window // 2
        return (
            f" Layer {layer} is a local layer: a query sees only the keys at most {reach} positions from it, before "
            f"and after it ({2 * reach + 1} keys, itself included, of a window {window} wide); the mask hides the "
            "others (·)."
        )
    reaches = " or ".join(str(size // 2) for size in sorted({model.layer_attention[i].window for i in local}))
    which = f"layer {local[0]} sees" if len(local) == 1 else f"layers {', '.join(map(str, local))} see"
    return (
        f" Layer {layer} is a global layer: every query sees every key, before and after it; the local {which} only "
        f"the keys at most {reaches} positions from each query."
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
    if model.attention_scale == 1.0:
        scaled = "unscaled"
    if model.soft_cap:
        scaled += ", capped"
    key_headers = ("#", "key", "q·k")
    if result.relative_buckets is not None:  # a relative position bias: each key's bucket, its bias beside it
        buckets = result.relative_buckets[f, keys]
        key_columns = [(*row, str(bucket)) for row, bucket in zip(key_columns, buckets, strict=True)]
        key_headers = (*key_headers, "bucket")
    if result.focus_biases is not None:  # ALiBi, a relative position bias: the bias each key's score got
        key_columns = [(*row, number(bias)) for row, bias in zip(key_columns, result.focus_biases, strict=True)]
        key_headers, scaled = (*key_headers, "bias"), f"{scaled} + bias"
    if attention.sinks is not None:  # the sink: one more row of the softmax, a key with no value
        key_columns.append(("", "(sink)", *[""] * (len(key_headers) - 2)))
    disentangled = None
    if attention.c2p is not None or attention.p2c is not None:  # disentangled: its terms in a table, then softmax
        disentangled = _terms_table(result, labels)
        key_columns, key_headers = [row[:2] for row in key_columns], ("#", "key")
        scaled = f"÷√{len(q) * model.disentangled.terms}"
    table = softmax_steps_table(
        result.focus_steps, (scaled, "− max", "exp", "weight"), keys=key_columns, key_headers=key_headers
    )
    parts: list[RenderableType] = [worked, table] if disentangled is None else [worked, disentangled, table]
    if attention.sinks is not None:
        share = result.focus_steps.probabilities[-1]
        parts.append(
            Text(
                f"The sink: head {h}'s learned logit, {number(attention.sinks[h])} in every row of layer "
                f"{result.layer}, joins the softmax unscaled, as a key with no value. It takes {number(share)} of "
                f"token {f}'s row, which goes nowhere: the keys' weights sum to {number(1 - share)}.",
                style="dim",
            )
        )
    hidden = len(labels) - len(keys)
    if hidden and not model.causal:  # a local layer's window, on both sides of the focus token
        reach = model.layer_attention[result.layer].window // 2
        parts.append(
            Text(
                f"Layer {result.layer} is a local layer: token {f} sees keys {keys[0]} to {keys[-1]}, those at most "
                f"{reach} positions from it (|j − {f}| ≤ {reach}); the mask hides the other {plural(hidden, 'key')} "
                f"({_outside(keys, len(labels))}): weight exactly 0.",
                style="dim",
            )
        )
    elif hidden:
        later = len(labels) - 1 - f
        why = [plural(later, "later token")] if later else []
        if hidden > later:
            why.append(f"{hidden - later} outside the sliding window")
        parts.append(Text(f"The mask hides {' and '.join(why)}: weight exactly 0.", style="dim"))
    return parts


def _heads_drawn(result: ExplainResult) -> str:
    """The heads section 5 draws, in words: every head, the heads --heads kept, or the one --head names."""
    if result.head is not None:
        return f"head {result.head}"
    if result.run.selection.heads is None:
        return "every head"
    return numbered("head", result.run.heads)


def _outside(keys: np.ndarray, tokens: int) -> str:
    """The keys a window of contiguous `keys` leaves out of `tokens` tokens, in words: "0 to 1 and 11 to 22"."""
    runs = [(0, int(keys[0]) - 1), (int(keys[-1]) + 1, tokens - 1)]
    return " and ".join(f"{start} to {end}" if end > start else str(start) for start, end in runs if end >= start)


def _summary_table(result: ExplainResult) -> Table:
    labels = [token_label(label) for label in token_texts(result.run)]
    keys, weights = result.strongest
    mean_keys, mean_weights = result.strongest_mean
    heads = result.run.heads  # the model's numbers of the heads kept
    per_head = len(keys) <= _SUMMARY_HEADS
    columns = [("#", "right"), ("token", "left"), ("mean of heads", "left")]
    table = plain_table(*columns, *([("head:top key(weight)", "left")] if per_head else []))
    for i, label in enumerate(labels):
        row = [str(i), abbreviate(label, 12), f"{abbreviate(labels[mean_keys[i]], 10)} {mean_weights[i]:.2f}"]
        if per_head:
            # No spaces inside an entry, so a wrapped line never splits one.
            row.append(
                "  ".join(
                    f"{head}:{abbreviate(labels[keys[h, i]], 8)}({weights[h, i]:.2f})" for h, head in enumerate(heads)
                )
            )
        table.add_row(*row)
    if per_head:
        return table
    return Group(table, Text(f"(per-head targets of all {len(keys)} heads are in --json's summary)", style="dim"))
