"""Every number derived from a forward pass, as pure functions over arrays: rankings, head
statistics, rollout, comparisons, differences, nearest neighbours. No I/O, no printing."""

import difflib
import enum
from collections.abc import Iterable

import numpy as np

from attncli.attention import softmax
from attncli.tokens import bare

__all__ = [
    "DETECTORS",
    "HEAD_COLUMNS",
    "PATTERNS",
    "STATISTICS",
    "EarlierSums",
    "Fusion",
    "Measure",
    "StatisticSums",
    "align",
    "at_bound",
    "block_means",
    "candidate_keys",
    "cosine",
    "detector_score",
    "duplicate_keys",
    "entropy",
    "head_detectors",
    "head_statistics",
    "induction_keys",
    "is_punctuation",
    "largest",
    "nearest",
    "pattern_labels",
    "predictions",
    "ranked_targets",
    "rms_divisor",
    "rollout",
    "row_shares",
    "sink_shares",
    "sinks",
    "softmax_parts",
    "sorted_heads",
    "spread",
    "strongest_allowed",
    "strongest_keys",
    "text_statistics",
    "top_tokens",
    "total_variation",
]


def strongest_keys(weights: np.ndarray, excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query row of `weights` [..., T, T], the key it attends to most and that weight,
    leaving out the keys `excluded` [T] bool marks, unless a row gives weight to no other key.

    Returns (keys, weights), both [..., T]; a tie goes to the earliest key.
    """
    keys = np.argmax(weights, axis=-1)  # [..., T]
    if excluded is not None and excluded.any():
        others = np.where(excluded, -1.0, weights)  # [..., T, T]
        keys = np.where((others > 0).any(axis=-1), np.argmax(others, axis=-1), keys)
    return keys, np.take_along_axis(weights, keys[..., None], axis=-1)[..., 0]


def sinks(special: np.ndarray, causal: bool) -> np.ndarray:
    """[T] bool: the keys that soak up attention without meaning much: the special tokens ([CLS],
    [SEP], <s>), and in a causal model the first token, which every query sees and most heads of a
    trained decoder pour their spare weight into (an attention sink)."""
    marked = special.copy()
    if causal and len(marked):
        marked[0] = True
    return marked


def softmax_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The steps of softmax over a vector `x` [n], for showing: (x - max, exp of that, probabilities).

    The probabilities are `softmax(x)` itself, so what is shown is what the model computes.
    """
    shifted = x - x.max()  # [n]
    return shifted, np.exp(shifted), softmax(x)


def entropy(weights: np.ndarray) -> np.ndarray:
    """-Σ w log w of each row of `weights` [..., T] in nats (0 · log 0 counts as 0): [...]."""
    logs = np.log(np.where(weights > 0, weights, 1.0))
    return -(weights * logs).sum(axis=-1)


def sink_shares(weights: np.ndarray) -> np.ndarray:
    """What a head's learned attention sink took of each row of `weights` [..., T], the rest of 1 its keys
    leave (GPT-OSS): 1 - Σ w, [...] float64, at least 0 (rounding can make a row's sum pass 1)."""
    return np.maximum(1.0 - weights.sum(axis=-1, dtype=np.float64), 0.0)


# The head detectors' scores (see head_detectors), TransformerLens's duplicate-token and induction heads.
DETECTORS = ("duplicate", "induction")
# Per-head statistics, each a mean over the query rows of one text (see head_statistics and head_detectors).
STATISTICS = (
    "entropy",
    "entropy_normalized",
    "distance",
    "self",
    "previous",
    "next",
    "first_special",
    "separator",
    "punctuation",
    "max",
    *DETECTORS,
)
# The columns of a heads table, as its JSON and CSV name them: each head's place, its statistics and its pattern.
HEAD_COLUMNS = ("layer", "head", *STATISTICS, "pattern")


def head_statistics(
    weights: np.ndarray,
    first_special: int | None,
    separators: np.ndarray,
    punctuation: np.ndarray,
    visible: np.ndarray | None = None,
    learned_sinks: bool = False,
) -> dict[str, np.ndarray]:
    """What each head of `weights` [L, h, T, T] does, as a mean over its query rows: {name: [L, h]}.

    `visible` [T, T] bool is the keys each query may see (a causal mask, a sliding window); None:
    all. Only rows that may see more than one key count: under a causal mask the first row can only
    attend to itself, which says nothing about the head. entropy: of each row, in nats;
    entropy_normalized: divided by ln of the number of keys the row may see; distance:
    Σ_j w_ij |i - j|; self, previous, next: the weight on key i, i - 1, i + 1 (over the rows that
    may see that key); first_special: on the first token when it is special ([CLS], <s>) or the
    model causal (its attention sink), over the rows that may see it; separator: on the other
    special tokens ([SEP], </s>); punctuation: on punctuation tokens; max: the largest weight of
    the row. A statistic that does not apply (no such key, or a causal model's next token) is NaN.
    `separators` and `punctuation` are [T] bool masks. With `learned_sinks` (a model whose heads have learned
    attention sinks, whose rows sum to less than 1), a row's entropy counts its sink's share as one more
    outcome, and entropy_normalized divides it by ln of the keys it may see plus one; the other statistics
    are shares of the whole row, the sink's part included.
    """
    layers, heads, tokens, _ = weights.shape
    rows = np.arange(tokens)
    seen = np.ones((tokens, tokens), dtype=bool) if visible is None else visible  # [T, T]
    keys_seen = seen.sum(axis=-1)  # [T]
    counted = rows[keys_seen > 1]  # the rows that say something about the head
    nan = np.full((layers, heads), np.nan)
    if not len(counted):
        return {name: nan for name in STATISTICS if name not in DETECTORS}
    w = weights[:, :, counted, :]  # [L, h, rows counted, T]

    def on_key(key_of) -> np.ndarray:
        """Mean weight on key key_of(i) of each counted row i that may see it: [L, h]."""
        keys = key_of(counted)
        inside = (keys >= 0) & (keys < tokens)
        inside[inside] = seen[counted[inside], keys[inside]]
        queries = counted[inside]
        return weights[:, :, queries, key_of(queries)].mean(axis=-1) if len(queries) else nan

    def diagonal(offset: int) -> np.ndarray:
        return on_key(lambda queries: queries + offset)

    def on(keys: np.ndarray) -> np.ndarray:
        return w[..., keys].sum(axis=-1).mean(axis=-1) if keys.any() else nan

    row_entropy = entropy(w)  # [L, h, rows counted]
    outcomes = keys_seen[counted]  # [rows counted]
    if learned_sinks:
        row_entropy = row_entropy + entropy(sink_shares(w)[..., None])
        outcomes = outcomes + 1
    return {
        "entropy": row_entropy.mean(axis=-1),
        "entropy_normalized": (row_entropy / np.log(outcomes)).mean(axis=-1),
        "distance": (w * np.abs(counted[:, None] - rows[None, :])).sum(axis=-1).mean(axis=-1),
        "self": diagonal(0),
        "previous": diagonal(-1),
        "next": diagonal(1),
        "first_special": nan if first_special is None else on_key(lambda queries: np.full_like(queries, first_special)),
        "separator": on(separators),
        "punctuation": on(punctuation),
        "max": w.max(axis=-1).mean(axis=-1),
    }


def duplicate_keys(ids: np.ndarray) -> np.ndarray:
    """[T, T] bool: the keys that hold query i's token id (`ids` [T]) earlier in the text, j < i: where a
    duplicate-token head looks (TransformerLens's duplicate_token_head detection pattern)."""
    return np.tril(ids[:, None] == ids[None, :], k=-1)


def induction_keys(ids: np.ndarray) -> np.ndarray:
    """[T, T] bool: the keys that follow an earlier occurrence of query i's token id (`ids` [T]):
    ids[j - 1] == ids[i] with j - 1 < i, where an induction head looks to copy what came next last time
    (TransformerLens's induction_head detection pattern: the duplicate pattern moved one key right)."""
    keys = np.zeros((len(ids), len(ids)), dtype=bool)  # [T, T]
    keys[:, 1:] = duplicate_keys(ids)[:, :-1]
    return keys


def detector_score(weights: np.ndarray, keys: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """How much of its attention each head of `weights` [L, h, T, T] puts on the keys `keys` [T, T] bool
    marks: the mean, over the query rows that may see such a key (`visible` [T, T] bool, None: all), of
    the row's weight on them; NaN where no row has one. [L, h] float64.

    Σ_ij w_ij·keys_ij / |rows|: TransformerLens's "mul" score (Σ_ij w_ij·keys_ij / Σ_ij w_ij) of those rows
    alone, as their weights sum to 1 each; a head with a learned sink, whose rows sum to less, gets the
    share of its whole rows, as head_statistics gives every share."""
    if visible is not None:
        keys = keys & visible
    rows = np.count_nonzero(keys.any(axis=-1))
    if not rows:
        return np.full(weights.shape[:2], np.nan)
    queries, targets = np.nonzero(keys)  # [pairs] each
    return weights[:, :, queries, targets].sum(axis=-1, dtype=np.float64) / rows


def head_detectors(weights: np.ndarray, ids: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The duplicate-token and induction scores (see detector_score) of each head of `weights` [L, h, T, T]
    over a text of token ids `ids` [T], its rows seeing the keys `visible` [T, T] bool allows (None: all):
    {name: [L, h]} for each name of DETECTORS, NaN where no token of the text occurs twice."""
    return {
        "duplicate": detector_score(weights, duplicate_keys(ids), visible),
        "induction": detector_score(weights, induction_keys(ids), visible),
    }


# The pattern labels, in the order the rule tries them (see pattern_labels).
PATTERNS = ("previous-token", "next-token", "self", "delimiter-sink", "broad", "mixed")
PATTERN_SHARE = 0.5  # a head is named after a kind of key that gets at least this share
BROAD_ENTROPY = 0.8  # ... or is broad when its normalised entropy is at least this


def pattern_labels(statistics: dict[str, np.ndarray]) -> np.ndarray:
    """A label per head from its statistics: [L, h] strings.

    The kind of key with the largest share among previous token, next token, the token itself,
    and delimiters (special tokens and punctuation together) names the head if that share is at
    least PATTERN_SHARE; otherwise the head is "broad" if its normalised entropy is at least
    BROAD_ENTROPY, else "mixed".
    """
    delimiters = sum(np.nan_to_num(statistics[name]) for name in ("first_special", "separator", "punctuation"))
    shares = np.stack(
        [np.nan_to_num(statistics[name]) for name in ("previous", "next", "self")] + [delimiters]
    )  # [4, L, h]
    best = shares.argmax(axis=0)  # [L, h]
    labels = np.array(PATTERNS[:4], dtype=object)[best]
    broad = np.nan_to_num(statistics["entropy_normalized"]) >= BROAD_ENTROPY
    fallback = np.where(broad, "broad", "mixed")
    return np.where(shares.max(axis=0) >= PATTERN_SHARE, labels, fallback)


class Measure(enum.StrEnum):
    """What a view of a run's attention shows of each query and key."""

    weights = "weights"  # the attention weights α_ij: where a head looks
    norms = "norms"  # ‖α_ij v_j W_O^h‖ (attention.weighted_value_norms): what each key adds to the head's output


def row_shares(values: np.ndarray) -> np.ndarray:
    """Each row of `values` [..., T] (of 0 or more) divided by its sum, a row of zeros left as it is: rows of
    shares that sum to 1, what the analyses that need distributions read of ‖α v W_O‖ norms, as Kobayashi et
    al. (2020) compare them with the weights: [..., T] float64."""
    sums = values.sum(axis=-1, keepdims=True, dtype=np.float64)  # [..., 1]
    return np.divide(values, sums, out=np.zeros(values.shape), where=sums > 0)


class Fusion(enum.StrEnum):
    """How rollout fuses the heads of a layer into one matrix."""

    mean = "mean"
    max = "max"
    min = "min"


def rollout(weights: np.ndarray, fusion: Fusion = Fusion.mean) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) of `weights` [L, h, T, T]: [L, T, T].

    Each layer's heads are fused (mean, max or min), the residual path is added as
    0.5·A + 0.5·I, rows are renormalised, and the layers are multiplied in order;
    entry l is the product up to layer l, so its rows sum to 1. Where heads have learned
    attention sinks (rows of A summing to less than 1), the renormalisation shares the part
    the sinks took out among the row's keys and the residual, in proportion.
    """
    fused = {Fusion.mean: np.mean, Fusion.max: np.max, Fusion.min: np.min}[fusion](weights, axis=1)  # [L, T, T]
    identity = np.eye(weights.shape[-1])
    cumulative, products = identity, []
    for layer in fused:
        a = 0.5 * layer + 0.5 * identity  # [T, T]
        a = a / a.sum(axis=-1, keepdims=True)
        cumulative = a @ cumulative  # [T, T]
        products.append(cumulative)
    return np.stack(products)


# Cells of a strip of block_means' rows summed at once: 2²⁰ float64s (8 MB; a strip is at least one row of blocks).
BLOCK_STRIP_CELLS = 2**20


def block_means(weights: np.ndarray, seen: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """`weights` [R, C] in blocks of `block` × `block` cells (the last row and column of blocks may be
    smaller): each block's mean over the cells `seen` [R, C] allows, [⌈R/block⌉, ⌈C/block⌉], and
    whether it has any such cell (a block of masked cells only has no mean).

    Summed in float64 a strip of whole rows of blocks at a time, so that a long text's [T, T] is never copied
    whole: each block's sum is the same to the bit as summing the whole padded matrix at once would give, as
    numpy adds a block's cells in the same order wherever the block's rows sit."""
    rows, columns = -(-weights.shape[0] // block), -(-weights.shape[1] // block)
    sums, counts = np.zeros((rows, columns)), np.zeros((rows, columns))  # [⌈R/block⌉, ⌈C/block⌉]
    strip_rows = max(BLOCK_STRIP_CELLS // (block * block * columns), 1)  # rows of blocks a strip
    for first in range(0, rows, strip_rows):
        last = min(first + strip_rows, rows)
        cells = slice(first * block, last * block)
        strip_sums = np.zeros(((last - first) * block, columns * block))  # [strip rows, C padded]
        strip_counts = np.zeros(((last - first) * block, columns * block))
        strip_sums[: len(weights[cells]), : weights.shape[1]] = np.where(seen[cells], weights[cells], 0.0)
        strip_counts[: len(weights[cells]), : weights.shape[1]] = seen[cells]
        sums[first:last] = strip_sums.reshape(last - first, block, columns, block).sum(axis=(1, 3))
        counts[first:last] = strip_counts.reshape(last - first, block, columns, block).sum(axis=(1, 3))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0), counts > 0


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """½ Σ |p - q| over the last axis: how much probability moved, between 0 and 1."""
    return 0.5 * np.abs(p - q).sum(axis=-1)


def align(a: list[str], b: list[str]) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) of positions in `a` and `b` whose strings match, in order, with (i, None) or
    (None, j) for a position that has no partner (a longest-matching-blocks alignment)."""
    slots: list[tuple[int | None, int | None]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            slots += zip(range(a_start, a_end), range(b_start, b_end), strict=True)
        else:
            slots += [(i, None) for i in range(a_start, a_end)] + [(None, j) for j in range(b_start, b_end)]
    return slots


def is_punctuation(token: str) -> bool:
    """Whether a vocabulary string is punctuation once its word-piece marks (##, Ġ) are stripped."""
    import unicodedata  # here: only the head statistics ask, and every other run would pay for it

    text = bare(token)
    return bool(text) and all(unicodedata.category(char).startswith("P") for char in text)


def ranked_targets(
    rows: np.ndarray, allowed: np.ndarray, target: list[int] | None = None
) -> list[tuple[int, int, int]]:
    """Heads ranked for a query token: (layer, head, strongest allowed key), strongest first.

    `rows` [L, h, T] are the token's weights in every head and `allowed` [T] the keys that may be
    a head's strongest; with `target`, heads are ranked by their total weight on those keys instead.
    """
    tops = strongest_allowed(rows, allowed, fallback=0)  # [L, h]
    if target is None:
        order = np.take_along_axis(rows, tops[..., None], axis=-1)[..., 0]
    else:
        order = rows[..., target].sum(axis=-1)
    ranking = np.argsort(-order, axis=None, kind="stable")  # flat indices into [L, h]
    layers, heads = np.unravel_index(ranking, order.shape)
    return [(int(layer), int(head), int(tops[layer, head])) for layer, head in zip(layers, heads, strict=True)]


def spread(rows: np.ndarray, slots: list[int | None]) -> np.ndarray:
    """Weights [..., T] laid out over alignment slots [..., S]: slot s takes key slots[s], or 0 if None."""
    zeros = np.zeros(rows.shape[:-1])
    return np.stack([zeros if key is None else rows[..., key] for key in slots], axis=-1)


def strongest_allowed(rows: np.ndarray, allowed: np.ndarray, fallback: int) -> np.ndarray:
    """For rows of weights [..., T], the allowed key (`allowed` [T] bool) with the largest weight,
    the earliest on a tie; `fallback` everywhere when no key is allowed: [...]."""
    if not allowed.any():
        return np.full(rows.shape[:-1], fallback)
    return np.where(allowed, rows, -1.0).argmax(axis=-1)


def candidate_keys(special: np.ndarray, query: int | list[int], include_special: bool) -> np.ndarray:
    """[T] bool: the keys that may be a head's top target for token `query` (or the tokens of one
    word): not the query itself, and not the keys `special` [T] bool marks (special tokens, sinks)
    unless `include_special`."""
    allowed = np.ones_like(special) if include_special else ~special
    allowed[query] = False
    return allowed


def text_statistics(
    weights: np.ndarray,
    special: np.ndarray,
    pieces: list[str],
    causal: bool,
    masks: list | None = None,
    learned_sinks: bool = False,
    *,
    ids: np.ndarray,
) -> dict:
    """`head_statistics` and `head_detectors` of one text's weights [L, h, T, T], its keys told apart by
    their tokens: `special` [T] bool, `pieces` the vocabulary strings and `ids` [T] their ids, each layer
    with its mask of `masks` ([T, T] bool or None for all keys; None: every layer sees all). The first
    token counts as the first special token when it is one, or in a causal model (the attention sink,
    see `sinks`); the other special tokens are separators. `learned_sinks`: the model's heads have
    learned attention sinks (see head_statistics)."""
    first = 0 if sinks(special, causal)[0] else None
    separators = special.copy()
    if first is not None:
        separators[first] = False
    punctuation = np.array([not s and is_punctuation(piece) for s, piece in zip(special, pieces, strict=True)])
    if masks is None or all(mask is masks[0] for mask in masks):
        mask = None if masks is None else masks[0]
        return head_statistics(weights, first, separators, punctuation, mask, learned_sinks) | head_detectors(
            weights, ids, mask
        )
    layers = [
        head_statistics(weights[layer : layer + 1], first, separators, punctuation, mask, learned_sinks)
        | head_detectors(weights[layer : layer + 1], ids, mask)
        for layer, mask in enumerate(masks)
    ]
    return {name: np.concatenate([layer[name] for layer in layers]) for name in STATISTICS}


class EarlierSums(ValueError):
    """Partial sums that an attncli from before some statistics were added wrote: they lack those."""

    def __init__(self, missing: list[str]):
        super().__init__(f"partial sums without {', '.join(missing)}")
        self.missing = missing


class StatisticSums:
    """Head statistics summed over texts, and how many texts each one applied to, for their means
    (a statistic that does not apply to a text, NaN there, is left out of its mean).

    Partial sums merge exactly: sums over two sets of texts, merged, are the sums over both (kept in
    float64, so the order of merging moves a mean by about 1e-16, far below the float32 noise of the
    weights themselves). Means are taken once, at the end: never a mean of means."""

    def __init__(self):
        self.texts = 0
        self.sums: dict[str, np.ndarray] = {}  # name -> [L, h] float64
        self.counts: dict[str, np.ndarray] = {}  # name -> [L, h] int64

    def add(self, statistics: dict[str, np.ndarray]) -> None:
        self.texts += 1
        for name, values in statistics.items():
            self.sums[name] = self.sums.get(name, 0.0) + np.nan_to_num(values).astype(np.float64)
            self.counts[name] = self.counts.get(name, 0) + (~np.isnan(values)).astype(np.int64)

    def merge(self, other: "StatisticSums") -> None:
        """Add `other`'s texts to these. ValueError where they are sums of other statistics or shapes,
        OverflowError where the sums together pass what float64 (or the counts int64) holds."""
        if not other.texts:
            return
        if self.texts and set(self.sums) != set(other.sums):
            raise ValueError("partial sums of different statistics")
        if self.texts + other.texts > np.iinfo(np.int64).max:
            raise OverflowError("more texts than the counts can hold")
        merged = {}
        with np.errstate(over="ignore"):  # checked below: sums that pass float64's range are refused, not inf
            for name in other.sums:
                merged[name] = self.sums.get(name, 0.0) + other.sums[name]
        if not all(np.all(np.isfinite(values)) for values in merged.values()):
            raise OverflowError("sums past the range of float64")
        self.texts += other.texts
        for name in other.sums:
            self.sums[name] = merged[name]
            self.counts[name] = self.counts.get(name, 0) + other.counts[name]

    def means(self) -> dict[str, np.ndarray]:
        """{name: [L, h]} in STATISTICS order; NaN where a statistic never applied."""
        with np.errstate(invalid="ignore"):  # 0 / 0 where a statistic never applied: NaN, as it should be
            return {name: self.sums[name] / self.counts[name] for name in STATISTICS}

    def to_json(self) -> dict:
        """The partial sums as JSON: float64 sums (every digit kept) and integer counts, [layer][head]."""
        return {
            "texts": self.texts,
            "sums": {name: values.tolist() for name, values in self.sums.items()},
            "counts": {name: values.tolist() for name, values in self.counts.items()},
        }

    @classmethod
    def from_json(cls, document: dict) -> "StatisticSums":
        """Partial sums as to_json wrote them; EarlierSums where they lack statistics added since they were
        written; ValueError, KeyError or TypeError where they are damaged or could not be sums of
        statistics: a count of texts that is not a whole number of 0 or more, counts that are not whole
        numbers from 0 to it, sums that are negative or not finite (every statistic is a finite number of
        0 or more)."""
        sums = cls()
        sums.texts = document["texts"]
        if type(sums.texts) is not int or sums.texts < 0:
            raise ValueError("a count of texts that is not a whole number of 0 or more")
        names = set(document["sums"])
        if sums.texts == 0 and not names and not document["counts"]:  # nothing summed yet
            return sums
        if names < set(STATISTICS) and names == set(document["counts"]):
            raise EarlierSums([name for name in STATISTICS if name not in names])
        if names != set(STATISTICS) or names != set(document["counts"]):
            raise ValueError("the statistics are not attncli's")
        for name in STATISTICS:
            values, counts = np.array(document["sums"][name]), np.array(document["counts"][name])  # [L, h]
            if values.dtype.kind not in "iuf" or counts.dtype.kind not in "iu":  # bool, str, object: not numbers
                raise TypeError("partial sums that are not numbers")
            if values.ndim != 2 or values.shape != counts.shape:
                raise ValueError("partial sums of the wrong shape")
            sums_fit = np.all(np.isfinite(values)) and np.all(values >= 0)
            if not (sums_fit and np.all((counts >= 0) & (counts <= sums.texts))):
                raise ValueError("partial sums that no texts could give")
            sums.sums[name], sums.counts[name] = values.astype(np.float64), counts.astype(np.int64)
        return sums


def weighted_values(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each key's share of a query's head output: weights [keys] times v [keys, d_k], row by row: [keys, d_k]."""
    return weights[:, None] * v


def at_bound(values: np.ndarray, bound: float) -> int:
    """How many of `values` (clamped to [-bound, bound]) sit at ±bound: those the clamp moved there."""
    return int(np.count_nonzero(np.abs(values) == values.dtype.type(bound)))


def rms_divisor(x: np.ndarray, eps: float) -> float:
    """√(mean(x²) + eps) of a vector `x` [n]: what an RMSNorm divides it by."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + eps))


def ranked(values: np.ndarray) -> list[int]:
    """Indices of `values` [n], the largest first (the earliest on a tie)."""
    return [int(i) for i in np.argsort(-values, kind="stable")]


def weight_changes(now: np.ndarray, saved: np.ndarray, count: int = 5) -> tuple[float, list, list]:
    """How far attention [L, h, T, T] moved from `saved`: the largest change, the (at most) `count`
    heads that moved most as (layer, head, largest change), and the cells as (layer, head, query,
    key); heads and cells that did not move at all are not listed."""
    difference = now - saved  # [L, h, T, T]
    np.abs(difference, out=difference)
    per_head = difference.max(axis=(2, 3))  # [L, h]
    heads = [(layer, head, float(per_head[layer, head])) for layer, head in largest(per_head, count)]
    # The largest cells lie in the rows with the largest maxima (on a tie, the earlier row's first):
    # sorting those rows' cells ranks them as sorting every cell would, without an index per cell.
    rows = largest(difference.max(axis=-1), count)  # [(layer, head, query)]
    candidates = [(*row, key) for row in rows for key in range(difference.shape[-1])]
    cells = sorted(candidates, key=lambda cell: (-difference[cell], cell))[:count]
    return float(difference.max()), [head for head in heads if head[2] > 0], [c for c in cells if difference[c] > 0]


def largest(values: np.ndarray, count: int) -> list[tuple[int, ...]]:
    """Indices of the `count` largest entries of `values` (any shape), largest first, earliest on a tie."""
    order = np.argsort(-values, axis=None, kind="stable")[:count]
    return [tuple(int(i) for i in index) for index in zip(*np.unravel_index(order, values.shape), strict=True)]


def sorted_heads(values: np.ndarray, descending: bool) -> list[tuple[int, int]]:
    """Every head of `values` [L, h] as (layer, head), the largest value first (the smallest unless
    `descending`), NaN last, and heads of equal values in layer order."""
    order = np.argsort(-values if descending else values, axis=None, kind="stable")  # flat indices into [L, h]
    return [(int(layer), int(head)) for layer, head in zip(*np.unravel_index(order, values.shape), strict=True)]


def lengths(vectors: np.ndarray) -> np.ndarray:
    """The Euclidean length of each row of `vectors` [n, d]: [n]."""
    return np.linalg.norm(vectors, axis=1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two vectors; 0 when either is all zeros."""
    a, b = _unit(a), _unit(b)  # each scaled first: the product of two tiny norms underflows to 0
    return float(a @ b)


def _unit(v: np.ndarray) -> np.ndarray:
    """`v` / ‖v‖, scaled to its largest entry first so that a tiny (or huge) norm stays representable."""
    largest = np.abs(v).max(initial=0.0)
    if not largest:
        return v
    v = v / largest
    return v / np.linalg.norm(v)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)  # [n, 1]
    return m / np.where(norms == 0, 1.0, norms)


def nearest(vectors: np.ndarray, row: int, k: int, excluded: list[int]) -> list[tuple[int, float]]:
    """The `k` rows of `vectors` [n, d] with the highest cosine to row `row`, best first, as
    (row, cosine); rows in `excluded` are never chosen."""
    cosines = _unit_rows(vectors) @ _unit(vectors[row])  # [n]
    cosines[excluded] = -np.inf
    k = min(k, int(np.isfinite(cosines).sum()))
    best = np.argpartition(-cosines, k - 1)[:k]
    best = best[np.argsort(-cosines[best], kind="stable")]
    return [(int(i), float(cosines[i])) for i in best]


def predictions(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most probable ids of each row of `logits` [P, V] (best first; the smaller id on a tie) and every
    id's probability, softmax of the row in float64 over the whole vocabulary: ([P, k] ids, [P, V] float64).
    For the few rows whose logits can be held whole (predict's positions): ties broken at every rank, and the
    probability of the ids left out. More rows than that (the logit lens's) go through top_tokens."""
    probabilities = softmax(logits.astype(np.float64))  # [P, V]
    k = min(k, logits.shape[-1])
    best = []
    for row in logits:
        kth = np.partition(row, len(row) - k)[len(row) - k]  # the k-th largest logit
        candidates = np.flatnonzero(row >= kth)  # ascending ids: every one tied with the k-th among them
        best.append(candidates[np.argsort(-row[candidates], kind="stable")][:k])
    return np.array(best, dtype=np.intp).reshape(len(logits), k), probabilities


def top_tokens(blocks: Iterable[tuple[int, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `k` largest logits of each row over a vocabulary given a block of columns at a time, as (the
    block's first id, its logits [R, B]), the best first (among equal logits, the lower id; with k = 1,
    the lowest of equal largest ones, as argmax takes it), with their ids
    and their probabilities under softmax over the whole vocabulary: ([R, k] ids, [R, k] logits, [R, k]
    probabilities). A block at a time: a running top k, which only the rows whose block beats their kth best
    so far update, and a running log-sum-exp (its peak m and Σ e^(z - m), rescaled as m grows, in float64), so
    no more than one block of logits is ever held; each block is overwritten once read. For a few rows,
    predictions gives every id's probability and breaks ties at every rank, from logits held whole."""
    ids = logits = peak = total = None
    for start, z in blocks:  # z [R, B]
        block_peak = z.max(axis=1)  # [R]
        if ids is None:
            ids, logits = np.empty((len(z), 0), np.int64), np.empty((len(z), 0), z.dtype)
            peak, total = np.full(len(z), -np.inf), np.zeros(len(z))
        # a row's top k changes only where the block holds a logit above its kth best (equal ones have higher ids)
        rows = np.flatnonzero(block_peak > logits[:, -1]) if logits.shape[1] == k else np.arange(len(z))
        if len(rows):
            kth = max(z.shape[1] - k, 0)  # the block's k largest lie past this place once partitioned
            if k == 1:  # the first of equal largest logits, as argmax (and torch's) takes it
                candidates = z[rows].argmax(axis=1)[:, None]
            else:  # which of logits equal to the kth largest stay is the partition's choice
                candidates = np.argpartition(z[rows], kth, axis=1)[:, kth:] if kth else np.arange(z.shape[1])
            candidates = np.broadcast_to(candidates, (len(rows), min(k, z.shape[1])))  # [rows, ≤ k] in no order
            merged_ids = np.concatenate([ids[rows], candidates + start], axis=1)
            merged = np.concatenate([logits[rows], np.take_along_axis(z[rows], candidates, axis=1)], axis=1)
            order = np.lexsort((merged_ids, -merged), axis=1)[:, :k]  # the largest logits first, then the lower ids
            merged_ids, merged = (
                np.take_along_axis(merged_ids, order, axis=1),
                np.take_along_axis(merged, order, axis=1),
            )
            if len(rows) == len(z):  # every row (and while blocks narrower than k come, the lists grow)
                ids, logits = merged_ids, merged
            else:
                ids[rows], logits[rows] = merged_ids, merged
        grown = np.maximum(peak, block_peak)  # [R]
        with np.errstate(over="ignore"):  # a difference past float32's range is -inf, whose exp is the 0 it means
            z -= grown[:, None].astype(z.dtype)
            np.exp(z, out=z)
        total = total * np.exp(peak - grown) + z.sum(axis=1, dtype=np.float64)
        peak = grown
    probabilities = np.exp(logits - peak[:, None]) / total[:, None]  # [R, k]
    return ids, logits, probabilities.astype(logits.dtype)
