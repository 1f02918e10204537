"""Direct logit attribution, as plain numpy functions (Elhage et al. 2021, "A Mathematical Framework for
Transformer Circuits").

A pre-norm model's last residual stream x_L at position i is a sum of parts (transformer.ResidualParts): the
embeddings, each head's output z_h W_O^h, each layer's attention output bias and feed-forward network. The logit
of token t is (LN_f(x_L) · W_U[t] + b_U[t]) · s, with s the head's logit scale. Once the final norm's scale at
position i is frozen at what x_L gave it (as TransformerLens freezes it), LN_f is linear, and so is the whole
path from a part to the logit: each part's contribution is LN_f's frozen map of it dotted with s · W_U[t]; the
final norm's shift β and the head's bias b_U[t] are a constant of their own. The contributions add up to the
logit. A soft cap on the logits (Gemma 2's) is not linear: the logit attributed is the one before it.

Shapes: p positions, d width, e the width the head reads (d, unless the model projects out), h heads, L layers.
"""

from dataclasses import dataclass, replace

import numpy as np

from attncli.transformer import Norm, ResidualParts, TransformerConfig, Unembedding, frozen_norm, logits, norm_scale

__all__ = [
    "BIAS",
    "EMBED",
    "KINDS",
    "Component",
    "components",
    "direct_logit_attribution",
    "head_logit",
    "ranked_heads",
    "totals",
]

EMBED = "embed"  # the embeddings' component
BIAS = "bias"  # the final norm's shift and the head's bias, which are no part's


# The kinds of component, in the order a model's parts come.
KINDS = ("embed", "head", "attn bias", "mlp", "bias")


@dataclass(frozen=True)
class Component:
    """One part of the residual stream: `embed`, a head `L3H5`, a layer's attention bias `L3 attn bias` or its
    feed-forward network `L3 mlp`; or `bias`, the constant of the final norm's shift and the head's bias."""

    name: str
    kind: str  # one of KINDS
    layer: int | None = None  # None for the embeddings and the bias
    head: int | None = None  # None where the component is no head


def totals(named: list[Component], contributions: np.ndarray) -> dict[str, float]:
    """The contributions [N] summed by kind, in the order of KINDS, the kinds the model has: {kind: sum}."""
    kinds = [component.kind for component in named]
    return {kind: float(contributions[[k == kind for k in kinds]].sum()) for kind in KINDS if kind in kinds}


def ranked_heads(named: list[Component], contributions: np.ndarray) -> list[int]:
    """The indices of the heads among the components, the largest contribution first (ties: the model's order)."""
    heads = [i for i, component in enumerate(named) if component.kind == "head"]
    return sorted(heads, key=lambda i: -contributions[i])


def components(parts: ResidualParts, row: int) -> tuple[list[Component], np.ndarray]:
    """The parts of the residual stream at `parts.positions[row]`, in the model's order (the embeddings, then each
    layer's heads, attention bias where it has one, and feed-forward network), and their vectors: [N] and [N, d]
    float64, which add up to parts.stream[row] (to float32 rounding)."""
    named = [Component(EMBED, "embed")]
    vectors = [parts.embed[row][None]]  # [1, d] each
    for layer, part in enumerate(parts.layers):
        named += [Component(f"L{layer}H{head}", "head", layer, head) for head in range(len(part.heads))]
        vectors.append(part.heads[:, row])  # [h, d]
        if part.attention_bias is not None:
            named.append(Component(f"L{layer} attn bias", "attn bias", layer))
            vectors.append(part.attention_bias[row][None])
        named.append(Component(f"L{layer} mlp", "mlp", layer))
        vectors.append(part.feed_forward[row][None])
    return named, np.concatenate(vectors).astype(np.float64)  # [N, d]


def head_logit(h: np.ndarray, unembedding: Unembedding, target: int, versus: int | None = None) -> float:
    """The logit of `target` (less `versus`'s, where given) the head makes of `h` [e], before any soft cap: the
    head's own computation (transformer.logits) over those rows alone."""
    ids = [target] if versus is None else [target, versus]
    rows = replace(
        unembedding,
        w=unembedding.w[np.array(ids)],
        bias=None if unembedding.bias is None else unembedding.bias[ids],
        soft_cap=None,
    )
    z = logits(h[None], rows)[0].astype(np.float64)  # [1 or 2]
    return float(z[0] if versus is None else z[0] - z[1])


def direct_logit_attribution(
    vectors: np.ndarray,
    stream: np.ndarray,
    final_norm: Norm | None,
    config: TransformerConfig,
    unembedding: Unembedding,
    target: int,
    versus: int | None = None,
    project_out: np.ndarray | None = None,
) -> tuple[np.ndarray, float | None]:
    """Each of the residual stream's parts `vectors` [N, d] (see `components`) through the final norm with its scale
    frozen at what the stream x_L `stream` [d] gave it, out through `project_out` [d, e] where the model projects
    the stream back to its word embeddings' width, into the logit of `target` (less `versus`'s): LN_f(c) ·
    s·(W_U[t] − W_U[v]), [N] float64; and the constant no part holds, β · s·(W_U[t] − W_U[v]) + s·(b_U[t] − b_U[v]),
    or None where the model has neither a shift β in its final norm nor a bias in its head. Before any soft cap;
    the head must have no transform (a masked-LM head's, which is not linear)."""
    assert unembedding.transform is None, "a masked-LM head's transform is not linear"
    ids = [target] if versus is None else [target, versus]
    scale = 1.0 if unembedding.scale is None else unembedding.scale
    rows = unembedding.w[np.array(ids)].astype(np.float64) * scale  # [1 or 2, e]
    direction = rows[0] if versus is None else rows[0] - rows[1]  # [e]
    constant = None
    if unembedding.bias is not None:
        bias = unembedding.bias[ids].astype(np.float64) * scale
        constant = float(bias[0] if versus is None else bias[0] - bias[1])
    if project_out is not None:
        direction = project_out.astype(np.float64) @ direction  # [e] -> [d]
    if final_norm is None:
        return vectors @ direction, constant
    frozen = norm_scale(stream[None], config).astype(np.float64)  # [1, 1] the final norm's scale at this position
    contributions = frozen_norm(vectors, frozen, final_norm, config) @ direction  # [N]
    if final_norm.bias is not None:
        constant = (constant or 0.0) + float(final_norm.bias.astype(np.float64) @ direction)
    return contributions, constant
