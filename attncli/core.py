"""One function per command: validated input in, a result object out. No printing."""

import math

import numpy as np

from attncli.analysis import softmax_parts
from attncli.errors import BadInput
from attncli.results import (
    AttentionRun,
    DotResult,
    EmbedResult,
    ExplainResult,
    HeatmapResult,
    Neighbor,
    Operand,
    SimilarResult,
    SoftmaxResult,
    TokenizeResult,
)
from attncli.sample_model import SampleConfig, forward
from attncli.vocab import Token, cosine, sample_vocabulary

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "dot",
    "embed",
    "explain",
    "heatmap",
    "parse_numbers",
    "resolve_focus",
    "run_sample",
    "similar",
    "softmax_steps",
    "tokenize",
]

# Far beyond what a terminal view can show, small enough that the [h, T, T]
# tensors stay a few megabytes; BERT-family models stop at 512 too.
DEFAULT_MAX_TOKENS = 512


def tokenize(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> TokenizeResult:
    return TokenizeResult(text, _tokens(text, max_tokens))


def embed(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> EmbedResult:
    tokens = _tokens(text, max_tokens)
    return EmbedResult(text, tokens, sample_vocabulary().embed([t.id for t in tokens]))


def run_sample(text: str, config: SampleConfig, max_tokens: int = DEFAULT_MAX_TOKENS) -> AttentionRun:
    """Tokenize `text`, look up its embeddings and run the sample model on them."""
    tokens = _tokens(text, max_tokens)
    embeddings = sample_vocabulary().embed([t.id for t in tokens])  # [T, d]
    return AttentionRun(text, tokens, config, forward(config, embeddings))


def heatmap(
    text: str, config: SampleConfig, head: int | None = None, max_tokens: int = DEFAULT_MAX_TOKENS
) -> HeatmapResult:
    _check_head(config, head)
    return HeatmapResult(run_sample(text, config, max_tokens), head)


def explain(
    text: str,
    config: SampleConfig,
    focus: str | None = None,
    head: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ExplainResult:
    _check_head(config, head)
    run = run_sample(text, config, max_tokens)
    return ExplainResult(run, resolve_focus(run.tokens, focus), head)


def _check_head(config: SampleConfig, head: int | None) -> None:
    if head is not None and not 0 <= head < config.heads:
        raise BadInput(f"--head {head} is out of range; the model has heads 0 to {config.heads - 1}")


def resolve_focus(tokens: list[Token], focus: str | None) -> int:
    """The index of the token named by `focus`: an index, or a token's text that occurs once.

    Without one, the last token: it is the one that sees every other token,
    with or without a causal mask.
    """
    if focus is None:
        return len(tokens) - 1
    if focus.strip().lstrip("-").isdigit():
        index = int(focus)
        if not 0 <= index < len(tokens):
            raise BadInput(f"--focus {index} is out of range; the text has tokens 0 to {len(tokens) - 1}")
        return index
    wanted = focus.strip().lower()
    matches = [t.index for t in tokens if t.text.lower() in (wanted, "##" + wanted)]
    if not matches:
        listing = " ".join(f"{t.index}:{t.text}" for t in tokens)
        raise BadInput(f"--focus {focus!r} is not a token of the text; choose one of {listing}")
    if len(matches) > 1:
        where = ", ".join(str(i) for i in matches)
        raise BadInput(f"--focus {focus!r} occurs at {where}; give the index instead, e.g. --focus {matches[-1]}")
    return matches[0]


def similar(word: str, k: int = 10) -> SimilarResult:
    if k < 1:
        raise BadInput(f"-k {k} asks for no neighbours; use -k 1 or more")
    vocabulary = sample_vocabulary()
    token_id = vocabulary.word_id(word)
    neighbors = [Neighbor(vocabulary.token_text(i), i, c) for i, c in vocabulary.nearest(token_id, k)]
    return SimilarResult(word, token_id, neighbors)


def softmax_steps(scores: list[float]) -> SoftmaxResult:
    if not scores:
        raise BadInput("no scores given; pass numbers, e.g. attncli softmax 2.0 1.0 0.5")
    x = np.asarray(scores, dtype=np.float64)  # [n]
    return SoftmaxResult(x, *softmax_parts(x))


def dot(a: str, b: str) -> DotResult:
    """The dot product of two vectors written as numbers ("1,2,3") or of two words' embeddings."""
    left, right = _operand(a), _operand(b)
    if left.vector.shape != right.vector.shape:
        lengths = f"{len(left.vector)} and {len(right.vector)}"
        raise BadInput(f"the vectors have different lengths ({lengths}); give two of the same length")
    products = left.vector * right.vector  # [n]
    return DotResult(left, right, products, float(products.sum()), cosine(left.vector, right.vector))


def parse_numbers(items: list[str]) -> list[float]:
    """Finite numbers from arguments that may each hold several, separated by commas or spaces."""
    numbers = []
    for item in items:
        for piece in item.replace(",", " ").split():
            try:
                value = float(piece)
            except ValueError:
                raise BadInput(f"{piece!r} is not a number; give numbers such as 2.0 1.0 0.5") from None
            if not math.isfinite(value):
                raise BadInput(f"{piece!r} is not a finite number; give finite numbers such as 2.0 1.0 0.5")
            numbers.append(value)
    return numbers


def _operand(argument: str) -> Operand:
    """Numbers if `argument` reads as numbers, else a word of the vocabulary."""
    try:
        numbers = parse_numbers([argument])
    except BadInput:
        numbers = []
    if numbers:
        return Operand(np.asarray(numbers, dtype=np.float64))
    vocabulary = sample_vocabulary()
    token_id = vocabulary.word_id(argument)
    return Operand(vocabulary.embed([token_id])[0], argument, token_id)


def _tokens(text: str, max_tokens: int) -> list[Token]:
    if max_tokens < 1:
        raise BadInput(f"--max-tokens {max_tokens} allows no tokens; use 1 or more (default {DEFAULT_MAX_TOKENS})")
    if not text.strip():
        raise BadInput('the text is empty; give a sentence, e.g. "The cat sat on the mat"')
    tokens = sample_vocabulary().tokenize(text)
    if not tokens:
        raise BadInput("the text has no tokens (only spaces, control or unknown characters); give words")
    if len(tokens) > max_tokens:
        raise BadInput(
            f"the text is {len(tokens)} tokens, over the limit of {max_tokens}; shorten it or raise --max-tokens"
        )
    return tokens
