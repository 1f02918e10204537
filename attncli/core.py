"""One function per command: validated input in, a result object out. No printing."""

import math
import os
import re
from pathlib import Path

import numpy as np

from attncli import analysis
from attncli.analysis import (
    FUSIONS,
    STATISTICS,
    align,
    head_statistics,
    is_punctuation,
    pattern_labels,
    softmax_parts,
)
from attncli.errors import AttncliError, BadInput
from attncli.models import CheckpointModel, ModelInfo, SampleModel, load_model
from attncli.results import (
    SCHEMA,
    AttentionRun,
    CheckResult,
    CompareResult,
    DotResult,
    EmbedResult,
    ExplainResult,
    HeadsResult,
    HeatmapResult,
    ModelGridResult,
    Neighbor,
    Operand,
    QueryResult,
    RolloutResult,
    SimilarResult,
    SoftmaxResult,
    TokenizeResult,
)
from attncli.vocab import Token, cosine, sample_vocabulary

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "LARGEST_NUMBER",
    "batch",
    "check",
    "compare",
    "dot",
    "embed",
    "explain",
    "heads",
    "heatmap",
    "load_model",
    "memory_budget",
    "model_grid",
    "parse_numbers",
    "parse_range",
    "query",
    "resolve_focus",
    "rollout",
    "run",
    "similar",
    "softmax",
    "tokenize",
]

# Far beyond what a terminal view can show, small enough that the [L, h, T, T]
# tensors stay modest; BERT-family checkpoints stop at 512 too.
DEFAULT_MAX_TOKENS = 512
# No tokenizer here makes one token of more than 100 characters (WordPiece turns longer words
# into [UNK]), so a text longer than this many characters per allowed token cannot fit and is
# refused before tokenizing: a 1 MB paste fails at once instead of after a second of work.
CHARACTERS_PER_TOKEN = 100
# The attention a forward pass keeps (scores, scaled scores and weights for every layer and head)
# may use at most this many bytes, so a long text is refused with the number instead of the
# operating system killing the process. ATTNCLI_MEMORY_BUDGET (in MB) changes it.
DEFAULT_MEMORY_BUDGET_MB = 2048
# Numbers typed on the command line stay below this, so that no step of
# softmax or a dot product (x - max, a_i * b_i, Σ a_i²) can overflow.
LARGEST_NUMBER = 1e100

Model = SampleModel | CheckpointModel


def tokenize(text: str, model: Model, max_tokens: int = DEFAULT_MAX_TOKENS) -> TokenizeResult:
    """The tokens of `text` as `model` sees them, special tokens included."""
    return TokenizeResult(text, _tokens(text, model, max_tokens), model.info)


def embed(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> EmbedResult:
    """The bundled embedding vector of each token of `text`."""
    tokens = _tokens(text, load_model(), max_tokens)
    return EmbedResult(text, tokens, sample_vocabulary().embed([t.id for t in tokens]))


def run(text: str, model: Model, max_tokens: int = DEFAULT_MAX_TOKENS, steps: bool = False) -> AttentionRun:
    """Tokenize `text` and run `model` on it, keeping every layer's attention weights, and with
    `steps` every intermediate (Q, K, V, scores ...) as explain shows them."""
    tokens = _tokens(text, model, max_tokens)
    _check_memory(model.info, len(tokens), steps)
    return AttentionRun(text, tokens, model.info, model.run(tokens, steps))


def memory_budget() -> int:
    """The attention memory budget in bytes: ATTNCLI_MEMORY_BUDGET megabytes, else the default."""
    setting = os.environ.get("ATTNCLI_MEMORY_BUDGET", "")
    if not setting:
        return DEFAULT_MEMORY_BUDGET_MB * 2**20
    try:
        megabytes = float(setting)
    except ValueError:
        megabytes = -1.0
    if not 0 < megabytes < 2**40:
        raise BadInput(f"ATTNCLI_MEMORY_BUDGET={setting!r}: give a number of megabytes, e.g. 2048")
    return int(megabytes * 2**20)


def _check_memory(info: ModelInfo, tokens: int, steps: bool) -> None:
    """Refuse, with the figure, a run whose attention tensors would pass the memory budget."""
    itemsize = 8 if info.type == "sample" else 4  # the sample model computes in float64
    # With steps: every layer's scores, scaled scores and weights, plus the stacked weights; without,
    # the stacked weights plus one layer's scores and weights in flight.
    kept = 4 * info.layers if steps else info.layers + 2
    needed = kept * info.heads * tokens * tokens * itemsize
    budget = memory_budget()
    if needed > budget:
        raise BadInput(
            f"{tokens} tokens would need {needed / 2**20:,.0f} MB of attention tensors ({info.layers} layers × "
            f"{info.heads} heads × {tokens}²), over the budget of {budget / 2**20:,.0f} MB; shorten the text or "
            "raise ATTNCLI_MEMORY_BUDGET (MB)"
        )


def heatmap(
    text: str, model: Model, layer: int = 0, head: int | None = None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> HeatmapResult:
    """Every head's attention weights; the view draws `layer` (and only `head`, if given)."""
    _check_layer_and_head(model, layer, head)
    return HeatmapResult(run(text, model, max_tokens), layer, head)


def explain(
    text: str,
    model: Model,
    focus: str | None = None,
    layer: int = 0,
    head: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    steps: bool = True,
) -> ExplainResult:
    """The walkthrough of `layer` for the token named by `focus` (see `resolve_focus`). Without
    `steps`, only the attention and its summary are kept: enough for JSON without steps, not for the view."""
    _check_layer_and_head(model, layer, head)
    result = run(text, model, max_tokens, steps)
    return ExplainResult(result, resolve_focus(result.tokens, focus), layer, head)


def resolve_focus(tokens: list[Token], focus: str | None, flag: str = "--focus") -> int:
    """The index of the token named by `focus`: digits are an index, anything else a token that occurs once.

    Without one, the last token that is not a special token: it sees every
    other token, with or without a causal mask.
    """
    if focus is None:
        ordinary = [t.index for t in tokens if not t.special]
        return ordinary[-1] if ordinary else len(tokens) - 1
    if re.fullmatch(r"[0-9]+", focus.strip()):
        index = int(focus)
        if index >= len(tokens):
            raise BadInput(f"{flag} {index} is out of range; the text has tokens 0 to {len(tokens) - 1}")
        return index
    wanted = focus.strip().lower()
    matches = [t.index for t in tokens if t.text.lower() in (wanted, "##" + wanted, "ġ" + wanted)]
    if not matches:
        listing = " ".join(f"{t.index}:{t.text}" for t in tokens)
        raise BadInput(f"{flag} {focus!r} is not a token of the text; give one of {listing}, or its index")
    if len(matches) > 1:
        where = ", ".join(str(i) for i in matches)
        raise BadInput(f"{flag} {focus!r} occurs at {where}; give the index instead, e.g. {flag} {matches[-1]}")
    return matches[0]


def query(
    text: str,
    model: Model,
    token: str,
    include_special: bool = False,
    to: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> QueryResult:
    """What the token named by `token` attends to in every head, heads ranked by their top weight,
    or by the weight on the token named by `to`."""
    result = run(text, model, max_tokens)
    index = resolve_focus(result.tokens, token, "--token")
    target = None if to is None else resolve_focus(result.tokens, to, "--to")
    answer = QueryResult(result, index, include_special, target)
    specials = any(t.special for t in result.tokens) and not include_special
    if not answer.allowed.any():
        hint = ", or --include-special" if specials else ""
        raise BadInput(f"--token {token!r} has no other token to attend to; give a longer text{hint}")
    if model.info.causal and not answer.allowed[:index].any():
        raise BadInput(f"--token {token!r} sees no earlier token under the causal mask; choose a later token")
    if model.info.causal and target is not None and target > index:
        raise BadInput(f"--to {to!r} (token {target}) comes after --token (token {index}); the causal mask hides it")
    return answer


def parse_range(spec: str | None, count: int, flag: str) -> list[int]:
    """Indices from a spec such as "0-2,5" (0-based, inclusive), all `count` of them when None."""
    if spec is None:
        return list(range(count))
    chosen: list[int] = []
    for part in spec.split(","):
        found = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if not found:
            raise BadInput(f"{flag} {spec!r}: give indices and ranges such as 0-2,5")
        first, last = int(found[1]), int(found[2] or found[1])
        if first > last or last >= count:
            raise BadInput(f"{flag} {spec!r}: the model has {count}, numbered 0 to {count - 1}")
        chosen += [i for i in range(first, last + 1) if i not in chosen]
    return chosen


def model_grid(
    text: str, model: Model, layers: str | None = None, heads: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> ModelGridResult:
    """Every head of every layer; `layers` and `heads` ("0-2,5") choose the ones the view draws."""
    info = model.info
    shown_layers = parse_range(layers, info.layers, "--layers")
    shown_heads = parse_range(heads, info.heads, "--heads")
    return ModelGridResult(run(text, model, max_tokens), shown_layers, shown_heads)


def heads(
    texts: list[tuple[int, str]], model: Model, progress=None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> HeadsResult:
    """Per-head statistics and pattern labels, averaged over `texts`, (line number, text) pairs
    (NaN-aware: a statistic that does not apply to a text, such as the [SEP] share of a model
    without [SEP], is left out of its mean).

    `progress`, if given, is called once per text, after it is done.
    """
    if not texts:
        raise BadInput("no texts: the file has no non-empty lines")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for number, text in texts:
        try:
            result = run(text, model, max_tokens)
        except BadInput as error:
            raise BadInput(f"line {number}: {error}" if len(texts) > 1 else str(error)) from None
        tokens = result.tokens
        first = 0 if tokens[0].special else None
        separators = np.array([t.special and t.index != first for t in tokens])
        punctuation = np.array([not t.special and is_punctuation(t.text) for t in tokens])
        for name, values in head_statistics(result.weights, first, separators, punctuation, model.info.causal).items():
            sums[name] = sums.get(name, 0) + np.nan_to_num(values)
            counts[name] = counts.get(name, 0) + ~np.isnan(values)
        if progress is not None:
            progress()
    with np.errstate(invalid="ignore"):  # 0 / 0 where a statistic never applied: NaN, as it should be
        statistics = {name: sums[name] / counts[name] for name in STATISTICS}
    single = texts[0][1] if len(texts) == 1 else None
    return HeadsResult(model.info, len(texts), single, statistics, pattern_labels(statistics))


def rollout(
    text: str, model: Model, fusion: str = "mean", token: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> RolloutResult:
    """Attention rollout through every layer, heads fused by `fusion`; `token` picks a row to list."""
    if fusion not in FUSIONS:
        raise BadInput(f"--head-fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
    result = run(text, model, max_tokens)
    index = None if token is None else resolve_focus(result.tokens, token, "--token")
    return RolloutResult(result, fusion, analysis.rollout(result.weights, fusion), index)


def batch(lines: list[tuple[int, str]], model: Model, steps: bool = False, max_tokens: int = DEFAULT_MAX_TOKENS):
    """One JSON record per (line number, text): the explain document (without steps unless
    `steps`), or {"line": N, "error": "..."} for a text that fails. A generator, so records can
    be written as they come."""
    for number, text in lines:
        try:
            document = explain(text, model, max_tokens=max_tokens, steps=steps).to_json(steps)
        except AttncliError as error:
            yield {"schema": SCHEMA, "command": "batch", "line": number, "error": str(error)}
            continue
        fields = {key: value for key, value in document.items() if key not in ("schema", "command")}
        yield {"schema": SCHEMA, "command": "batch", "line": number, **fields}


def check(text: str, saved: dict, tolerance: float = 1e-5, source: str = "the saved result") -> CheckResult:
    """Recompute `text` with the model and options `saved` (a --json document) names, and compare attention."""
    if tolerance < 0:
        raise BadInput(f"--tolerance {tolerance} is negative; give 0 or more")
    damaged = BadInput(f"{source} is not an attncli --json result with text, model and attention")
    try:
        saved_text, model_json = saved["text"], saved["model"]
        with np.errstate(all="ignore"):
            attention = np.asarray(saved["attention"], dtype=np.float64)
        name = model_json["name"]
    except (KeyError, TypeError, ValueError):
        raise damaged from None
    if not isinstance(name, str) or not isinstance(saved_text, str) or not np.all(np.isfinite(attention)):
        raise damaged
    if saved_text != text:
        raise BadInput(f"{source} is for the text {saved_text!r}, not {text!r}")
    options = {}
    if name == "sample":
        kinds = {"heads": int, "seed": int, "causal": bool, "positions": bool}
        options = {key: model_json.get(key) for key in kinds}
        if not all(isinstance(value, kind) for (key, kind), value in zip(kinds.items(), options.values(), strict=True)):
            raise BadInput(f"{source}: its model's heads, seed, causal and positions are damaged")
    elif not Path(name).exists() and isinstance(model_json.get("path"), str) and Path(model_json["path"]).is_dir():
        name = model_json["path"]  # saved from another directory: the checkpoint's full path still finds it
    result = run(text, load_model(name, **options))
    if result.weights.shape != attention.shape:
        raise BadInput(
            f"{source} has attention of shape {attention.shape}, but the model now gives {result.weights.shape}"
        )
    # JSON holds float32 weights in their shortest decimal form: read them back as float32.
    return CheckResult(result, attention.astype(result.weights.dtype), tolerance)


def compare(text_a: str, text_b: str, model: Model, token: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> CompareResult:
    """How the attention of `token` changes from `text_a` to `text_b`, head by head.

    `token` names a token of `text_a` (an index, or a text that occurs once); its partner in
    `text_b` is the token the alignment pairs it with.
    """
    a, b = run(text_a, model, max_tokens), run(text_b, model, max_tokens)
    index_a = resolve_focus(a.tokens, token, "--token")
    slots = align([t.text for t in a.tokens], [t.text for t in b.tokens])
    index_b = next((j for i, j in slots if i == index_a), None)
    if index_b is None:
        name = a.tokens[index_a].text
        raise BadInput(
            f"--token {token!r} ({name!r}, token {index_a} of TEXT_A) has no partner in TEXT_B; "
            "choose a token both texts share"
        )
    return CompareResult(a, b, index_a, index_b, slots)


def similar(word: str, k: int = 10) -> SimilarResult:
    """The `k` vocabulary words whose bundled embeddings are nearest to `word`'s by cosine."""
    if k < 1:
        raise BadInput(f"-k {k} asks for no neighbours; use -k 1 or more")
    vocabulary = sample_vocabulary()
    token_id = vocabulary.word_id(word)
    neighbors = [Neighbor(vocabulary.token_text(i), i, c) for i, c in vocabulary.nearest(token_id, k)]
    return SimilarResult(word, token_id, neighbors)


def softmax(arguments: list[str]) -> SoftmaxResult:
    """softmax of the numbers in `arguments`, with its steps."""
    scores = parse_numbers(arguments)
    if not scores:
        raise BadInput("no scores given; pass numbers, e.g. attncli softmax 2.0 1.0 0.5")
    x = np.asarray(scores, dtype=np.float64)  # [n]
    return SoftmaxResult(x, *softmax_parts(x))


def dot(a: str, b: str) -> DotResult:
    """The dot product of two vectors written as numbers ("1,2,3") or of two words' embeddings."""
    left, right = _operand(a), _operand(b)
    if left.vector.shape != right.vector.shape:
        raise BadInput(
            f"the vectors have different lengths: {_describe(a, left)} and {_describe(b, right)}; "
            "give two of the same length"
        )
    products = left.vector * right.vector  # [n]
    return DotResult(left, right, products, float(products.sum()), cosine(left.vector, right.vector))


def parse_numbers(items: list[str]) -> list[float]:
    """Numbers from arguments that may each hold several, separated by commas or spaces."""
    numbers = []
    for item in items:
        for piece in item.replace(",", " ").split():
            try:
                value = float(piece)
            except ValueError:
                raise BadInput(f"{piece!r} is not a number; give numbers such as 2.0 1.0 0.5") from None
            if not math.isfinite(value) or abs(value) > LARGEST_NUMBER:
                raise BadInput(f"{piece!r} is out of range; give numbers between -1e100 and 1e100")
            numbers.append(value)
    return numbers


def _describe(argument: str, operand: Operand) -> str:
    if operand.word is None:
        return f"{argument} has {len(operand.vector)} numbers"
    return f"{argument!r} is a {len(operand.vector)}-dimensional word embedding"


def _reads_as_numbers(argument: str) -> bool:
    pieces = argument.replace(",", " ").split()
    try:
        return bool(pieces) and all(float(piece) is not None for piece in pieces)
    except ValueError:
        return False


def _operand(argument: str) -> Operand:
    """Numbers if `argument` reads as numbers, else a word of the vocabulary."""
    if _reads_as_numbers(argument):
        return Operand(np.asarray(parse_numbers([argument]), dtype=np.float64))
    vocabulary = sample_vocabulary()
    token_id = vocabulary.word_id(argument)
    return Operand(vocabulary.embed([token_id])[0], argument, token_id)


def _check_layer_and_head(model: Model, layer: int, head: int | None) -> None:
    info = model.info
    if not 0 <= layer < info.layers:
        raise BadInput(f"--layer {layer} is out of range; {info.name} has layers 0 to {info.layers - 1}")
    if head is not None and not 0 <= head < info.heads:
        raise BadInput(f"--head {head} is out of range; {info.name} has heads 0 to {info.heads - 1}")


def _tokens(text: str, model: Model, max_tokens: int) -> list[Token]:
    if max_tokens < 1:
        raise BadInput(f"--max-tokens {max_tokens} allows no tokens; use 1 or more (default {DEFAULT_MAX_TOKENS})")
    if not text.strip():
        raise BadInput('the text is empty; give a sentence, e.g. "The cat sat on the mat"')
    if len(text) > CHARACTERS_PER_TOKEN * max_tokens:
        raise BadInput(
            f"the text is {len(text):,} characters, more than {max_tokens} tokens can hold (at most "
            f"{CHARACTERS_PER_TOKEN * max_tokens:,}); shorten it or raise --max-tokens"
        )
    tokens = model.tokenize(text)
    if not any(not t.special for t in tokens):
        raise BadInput("the text has no tokens (only spaces, control or unknown characters); give words")
    if len(tokens) > max_tokens:
        raise BadInput(
            f"the text is {len(tokens)} tokens, over the limit of {max_tokens}; shorten it or raise --max-tokens"
        )
    return tokens
