"""The models attncli runs, behind one interface: tokenize a text, run the tokens, get a `Trace`.

`load_model` turns a model's name into one: "sample" is the bundled sample model
(attncli.bundled); anything else a trained checkpoint read from disk
(attncli.checkpoint, attncli.architectures). `ModelInfo` is what the results, views
and JSON say about a model, whichever it is.
"""

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from attncli import analysis
from attncli.attention import EVERYTHING, Selection, Trace, attention_mask
from attncli.errors import Argument, AttncliError, BadInput, DataError, Parameter, shortened
from attncli.tokens import CHARACTERS_PER_TOKEN, Token, added_around, normalized_length, ordinary_ids, special_ids

if TYPE_CHECKING:
    from attncli.transformer import Unembedding
    from attncli.unigram import Cut

__all__ = ["CheckpointModel", "Model", "ModelInfo", "Vocabulary", "load_model", "load_saved_model"]


@dataclass(eq=False, kw_only=True)
class ModelInfo:
    """What the views and the JSON `model` object say about a model: its name, where it came from, and
    its config, whose fields (layers, heads, d_model, layer_attention ...) read as the model's own."""

    name: str  # as the user named it: "sample", "minilm", a directory or a model id
    type: str  # "sample", or config.json's model_type (a key of attncli.architectures.FAMILIES)
    title: str  # the model's family as prose names it
    config: Any  # a checkpoint's transformer.TransformerConfig, or the sample model's bundled.SampleConfig
    path: str | None = None  # the checkpoint directory

    def __getattr__(self, name: str):
        # Called only for what ModelInfo itself lacks: the shape and choices, declared once, in the config.
        if name == "config":  # not set yet (a copy being made): no config to ask
            raise AttributeError(name)
        return getattr(self.config, name)

    def mask(self, layer: int, tokens: int) -> np.ndarray | None:
        """[T, T] bool, the keys each query of `layer` sees (causal, within its sliding window; or, bidirectional,
        within its window on either side), or None: all."""
        return attention_mask(tokens, self.layer_attention[layer].window, self.causal)

    @property
    def windows(self) -> list[int | None] | None:
        """Each layer's sliding window (None where a layer sees every earlier key), or None where none slides."""
        windows = [layer.window for layer in self.layer_attention]
        return None if windows == [None] * len(windows) else windows

    @property
    def sample(self) -> bool:
        """Whether this is the bundled sample model, whose projections are random."""
        return self.type == "sample"

    @property
    def mixture(self):
        """How the model's mixture-of-experts layers route (an experts.MixtureConfig), or None: it has none."""
        return None if self.sample else self.config.moe

    def to_json(self) -> dict:
        fields = {
            "name": self.name,
            "type": self.type,
            "layers": self.layers,
            "heads": self.heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "max_length": self.max_length,
            "causal": self.causal,
        }
        if self.sample:
            return {**fields, "positions": self.positions, "seed": self.seed}
        ropes = [None if layer.rope is None else layer.rope.to_json() for layer in self.layer_attention]
        if self.disentangled is not None:
            positions = self.disentangled.to_json()
        elif self.alibi is not None:
            positions = self.alibi.to_json(self.heads)
        elif ropes == [None] * len(ropes):
            positions = "learned"
        else:  # one rotary embedding for the whole model, or each layer's (null where a layer has none)
            positions = ropes[0] if ropes.count(ropes[0]) == len(ropes) else ropes
        checkpoint = {
            **fields,
            "path": self.path,
            "family": self.title,
            "kv_heads": self.kv_heads or self.heads,
            "norm": self.norm,
            "position_embeddings": positions,
            "sliding_windows": self.windows,
            "soft_cap": self.soft_cap,
        }
        if self.sinks:
            checkpoint["attention_sinks"] = True
        if self.relative_bias is not None:
            checkpoint["relative_position_bias"] = self.relative_bias.to_json()
        if self.shared_layers is not None:
            checkpoint["shared_layers"] = [list(shared) for shared in self.shared_layers]
        return checkpoint if self.mixture is None else {**checkpoint, "experts": self.mixture.to_json()}


# [PAD], [unused17], <unk>, a byte-fallback <0x0A> ...: placeholders, not words, so never anyone's neighbour.
_PLACEHOLDER = re.compile(r"^\[.+\]$|^<[^<>\s]+>$")


class Vocabulary:
    """A tokenizer and the embedding matrix its ids index."""

    def __init__(self, tokenizer, embeddings: np.ndarray):
        self.tokenizer = tokenizer  # a tokenizers.Tokenizer
        self.embeddings = embeddings  # [vocab, d]
        self.special = special_ids(tokenizer)

    def tokenize(self, text: str) -> list[Token]:
        """The tokens of `text`, without adding special tokens such as [CLS] and [SEP] (typed ones stay)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return [
            Token(index, token_id, piece, start, end, token_id in self.special)
            for index, (token_id, piece, (start, end)) in enumerate(
                zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True)
            )
        ]

    def ordinary_ids(self) -> list[int]:
        """The ids of the vocabulary that are no special token (see tokens.ordinary_ids)."""
        return ordinary_ids(self.tokenizer)

    def tokens_of(self, ids: list[int]) -> list[Token]:
        """`ids` as the tokens of a text no string spells, without special tokens around them (as `tokenize`
        adds none); offsets 0."""
        return [
            Token(index, token_id, self.token_text(token_id), 0, 0, token_id in self.special)
            for index, token_id in enumerate(ids)
        ]

    def embed(self, ids: list[int]) -> np.ndarray:
        """The embedding rows of `ids`: [T, d] float64."""
        return self.embeddings[ids].astype(np.float64)

    def word_id(self, word: str) -> int:
        """The id of a word that is a single token of the vocabulary."""
        pieces = self.tokenize(word)
        if len(pieces) != 1:
            shown = " ".join(piece.text for piece in pieces) or "nothing"
            raise BadInput(
                "{word!r} is not one token of the vocabulary (it tokenizes to: {shown}); give a single word",
                word=word,
                shown=shown,
            )
        piece = pieces[0]
        if (piece.special or _PLACEHOLDER.match(piece.text)) and piece.text.lower() == word.strip().lower():
            raise BadInput("{word!r} is a special token, not a word; give a word", word=word)
        if piece.special or _PLACEHOLDER.match(piece.text):
            raise BadInput(
                "{word!r} is not in the vocabulary (it becomes {piece}); give a word", word=word, piece=piece.text
            )
        return piece.id

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(token_id)

    def nearest(self, token_id: int, k: int) -> list[tuple[int, float]]:
        """The `k` ids whose embeddings have the highest cosine with `token_id`'s, best first; the word
        itself, special tokens, placeholder tokens ([PAD], [unused0], <0x0A>, ...) and the rows a
        checkpoint pads its table with past the tokenizer's last id are left out."""
        vocabulary = self.tokenizer.get_vocab(with_added_tokens=True)  # {token: id}
        placeholders = [i for token, i in vocabulary.items() if _PLACEHOLDER.match(token)]
        padding = range(max(vocabulary.values()) + 1, len(self.embeddings))
        excluded = [token_id, *self.special, *placeholders, *padding]
        return analysis.nearest(self.embeddings.astype(np.float64), token_id, k, excluded)


class Model(Protocol):
    """What every model offers: its description, its tokenizer and its forward pass."""

    @property
    def info(self) -> ModelInfo: ...

    def tokenize(self, text: str) -> list[Token]: ...

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's tokenizer with its own embedding table."""
        ...

    def run(
        self,
        tokens: list[Token],
        keep_steps: bool = True,
        value_norms: bool = False,
        decompose_at: np.ndarray | None = None,
        head_inputs: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
        on_attention: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
    ) -> Trace:
        """The forward pass; without `keep_steps`, only the attention weights of each layer need be kept; with
        `value_norms`, each layer's ‖v_j W_O^h‖ too (the trace's `norms`); with `decompose_at` [p], the last
        residual stream at those positions in its parts (the trace's `residual_parts`); with `head_inputs`, each
        layer's residual stream as the language-model head reads it too. The last two are for a model with a
        language-model head, which the sample model refuses first (`unembedding`). With `on_layer`, on_layer(layers
        done, layers) after each layer, in order; with a `selection`, only its layers' and heads' attention is kept;
        with `on_attention`, none is, each selected layer's handed to it instead (see transformer.forward)."""
        ...

    def ordinary_ids(self) -> list[int]:
        """The ids of its vocabulary, in order, that are no special token: what a text's own tokens may be."""
        ...

    def tokens_of(self, ids: list[int]) -> list[Token]:
        """A text given as token ids, which no string need spell: its tokens, between the special tokens
        `tokenize` puts around a text's own ([CLS] … [SEP], <s> …); with no characters, every offset 0."""
        ...

    def run_many(
        self,
        texts: list[list[Token]],
        norms: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
    ) -> list[np.ndarray]:
        """Several texts' attention weights, each [L, h, T, T], as `run` gives them (to float32 rounding);
        with `norms`, their ‖α_ij v_j W_O^h‖ (the trace's `norms`) instead. With `on_layer`, on_layer(layers done,
        layers) after each layer of the pass that runs them all; with a `selection`, of its layers and heads alone."""
        ...

    @property
    def unembedding(self) -> "Unembedding":
        """The language-model head (see transformer.Unembedding); DataError where the model has none. What the
        commands that read it use besides is a checkpoint's: its `weights` (the final norm, the projection out),
        `end_of_sequence` and `extend` (see CheckpointModel)."""
        ...

    @property
    def tokenizer(self):
        """The model's tokenizers.Tokenizer."""
        ...


class CheckpointModel:
    """A trained checkpoint of a supported family; weights are read on first run."""

    def __init__(self, name: str, checkpoint):
        from attncli.architectures import FAMILIES, read_config

        self.name = name
        self.checkpoint = checkpoint
        self.config = read_config(checkpoint.config, checkpoint.tensors)
        self.family = FAMILIES[self.config.family]
        self._cut: tuple[str, Cut] | None = None  # the first text and its tokenizer, where one was cut for it

    @cached_property
    def tokenizer(self):
        """The checkpoint's whole tokenizers.Tokenizer, read when first needed."""
        path, wrapper = self.checkpoint.tokenizer_path, self.family.wrapper
        with _tokenizer_failures(path, "not a tokenizer file the tokenizers library can read"):
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
        return _prepared(tokenizer, path, tokenizer.get_vocab_size(), self.config.vocab_size, wrapper)

    @cached_property
    def special(self) -> frozenset[int]:
        """The ids of the whole tokenizer's special tokens (see tokens.special_ids)."""
        return special_ids(self.tokenizer)

    @cached_property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            name=self.name,
            type=c.family,
            title=self.family.title,
            config=c,
            path=str(self.checkpoint.directory.resolve()),
        )

    @cached_property
    def weights(self):
        from attncli.architectures import read_weights

        return read_weights(self.config, self.checkpoint.tensors)

    @cached_property
    def unembedding(self) -> "Unembedding":
        """The language-model head, its tensors read when first asked for (and a large table's rows only as
        logits need them): attention-only commands never read them."""
        from attncli.architectures import read_unembedding

        return read_unembedding(self.config, self.checkpoint.tensors, self.checkpoint.config)

    @cached_property
    def vocabulary(self) -> Vocabulary:
        from attncli.architectures import read_word_table

        return Vocabulary(self.tokenizer, read_word_table(self.config, self.checkpoint.tensors).all())

    def tokenize(self, text: str) -> list[Token]:
        path = self.checkpoint.tokenizer_path
        with _tokenizer_failures(path, "cannot tokenize the text"):
            tokenizer, cut = self._tokenizer_of(text)
            encoding = tokenizer.encode(text)
        ids = encoding.ids if cut is None else cut.ids[encoding.ids].tolist()
        special = self.special if cut is None else frozenset(cut.ids[sorted(special_ids(tokenizer))].tolist())
        parts = ids, encoding.tokens, encoding.offsets, encoding.special_tokens_mask
        if len({len(part) for part in parts}) > 1:  # a template whose special token has no id, say
            raise DataError(f"{path}: the tokenizer gives {len(parts[0])} ids for {len(parts[1])} tokens")
        past = next(
            ((i, piece) for i, piece in zip(parts[0], parts[1], strict=True) if not 0 <= i < self.config.vocab_size),
            None,
        )
        if past is not None:
            raise DataError(
                f"{path}: the tokenizer gives {shortened(past[1])!r} the id {past[0]:,}, past the "
                f"{self.config.vocab_size:,} rows the model embeds; they do not belong together"
            )
        return [
            Token(index, token_id, piece, start, end, bool(added) or token_id in special)
            for index, (token_id, piece, (start, end), added) in enumerate(zip(*parts, strict=True))
        ]

    def _tokenizer_of(self, text: str) -> "tuple[Any, Cut | None]":
        """The tokenizer to tokenize `text` with, once its normalized length is checked, and the Cut it is, if one.
        The first text a model tokenizes, while nothing has read the whole tokenizer, is given a tokenizer of the
        pieces it can use where the whole is a large Unigram one (see attncli.unigram): a command on one sentence
        never builds the whole. Any other text is tokenized by the whole."""
        if self._cut is not None and self._cut[0] == text:
            return self._cut[1].tokenizer, self._cut[1]
        cut = None
        if self._cut is None and "tokenizer" not in self.__dict__:  # no text tokenized yet
            from attncli import unigram

            cutter = unigram.cutter(self.checkpoint.tokenizer_path.read_bytes())
            if cutter is not None:
                self._check_normalized_length(cutter.shell, text)  # before cutting, which normalizes the text
                # with the pieces of the text _prepared tokenizes, as the whole tokenizer has them
                cut = cutter.cut((text, _TRIED_TEXT), also=self.family.wrapper or ())
        if cut is None:
            self._check_normalized_length(self.tokenizer, text)
            return self.tokenizer, None
        path = self.checkpoint.tokenizer_path
        _prepared(cut.tokenizer, path, cut.size, self.config.vocab_size, self.family.wrapper)
        self._cut = text, cut
        return cut.tokenizer, cut

    def _check_normalized_length(self, tokenizer, text: str) -> None:
        """BadInput where `tokenizer`'s normalizer makes `text` longer than the model's positions can hold (checked
        first: encoding it has no bound)."""
        limit = CHARACTERS_PER_TOKEN * self.config.max_length
        if normalized_length(tokenizer, text, limit) > limit:
            raise BadInput(
                "the text is over {limit:,} characters once {name}'s tokenizer normalizes it, more than its "
                "{tokens} tokens can hold; shorten it",
                limit=limit,
                name=self.name,
                tokens=self.config.max_length,
            )

    def ordinary_ids(self) -> list[int]:
        return ordinary_ids(self.tokenizer)

    def tokens_of(self, ids: list[int]) -> list[Token]:
        before, after = added_around(self.tokenizer)
        every = [*before, *ids, *after]
        own = range(len(before), len(before) + len(ids))  # the positions of `ids`; the others were added
        return [
            Token(
                index,
                token_id,
                self.tokenizer.id_to_token(token_id),
                0,
                0,
                index not in own or token_id in self.special,
            )
            for index, token_id in enumerate(every)
        ]

    def run_many(
        self,
        texts: list[list[Token]],
        norms: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
    ) -> list[np.ndarray]:
        """Several texts packed into one forward pass (see transformer.forward_packed), with `norms` their
        ‖α_ij v_j W_O^h‖ in place of the weights; with `on_layer`, on_layer(layers done, layers) after each layer; with
        a `selection`, of its layers and heads alone."""
        from attncli.transformer import forward_packed

        for tokens in texts:
            self._check_length(tokens)
        ids = [np.array([t.id for t in tokens]) for tokens in texts]
        rows = self.weights.word[np.concatenate(ids)]  # [N, d], read in one go
        embeddings = np.split(rows, np.cumsum([len(i) for i in ids])[:-1])
        with np.errstate(all="ignore"), self._pass():  # damaged weights can overflow; the check below reports it
            attention, output = forward_packed(
                ids, embeddings, self.config, self.weights, norms, on_layer=on_layer, selection=selection
            )
        self._check_finite(output)
        return attention

    def _check_length(self, tokens: list[Token]) -> None:
        if len(tokens) > self.config.max_length:
            specials = " (special tokens included)" if any(t.special for t in tokens) else ""
            raise BadInput(
                "the text is {count} tokens{specials}, but {name} reads at most {limit}; shorten it",
                count=len(tokens),
                specials=specials,
                name=self.name,
                limit=self.config.max_length,
            )

    @contextmanager
    def _pass(self) -> Iterator[None]:
        """A forward pass, after which the buffers its layers were read into are let go (see allocator.Reused)."""
        try:
            yield
        finally:
            self.checkpoint.tensors.release()

    def _check_finite(self, output: np.ndarray) -> None:
        # A NaN or infinity anywhere in a layer reaches the output (a weight's row through its head's
        # output, a score through its softmax), so the output alone tells; checking the [L, h, T, T]
        # weights as well took a tenth of a second at 512 tokens.
        if not np.all(np.isfinite(output)):
            raise DataError(
                f"{self.checkpoint.directory}: the forward pass gave NaN or infinite values; "
                "the checkpoint's weights or config.json are broken"
            )

    def run(
        self,
        tokens: list[Token],
        keep_steps: bool = True,
        value_norms: bool = False,
        decompose_at: np.ndarray | None = None,
        head_inputs: bool = False,
        on_layer: Callable[[int, int], None] | None = None,
        selection: Selection = EVERYTHING,
        on_attention: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
    ) -> Trace:
        """The forward pass; without `keep_steps`, only the attention weights of each layer are kept; with
        `value_norms`, each layer's ‖v_j W_O^h‖ too; with `decompose_at` [p], the last residual stream at those
        positions in its parts; with `head_inputs`, each layer's residual stream through the final norm; with
        `on_layer`, on_layer(layers done, layers) after each layer; with `selection` and `on_attention`, which
        layers' and heads' attention to keep, or to hand on a layer at a time (see transformer.forward)."""
        from attncli.transformer import forward

        self._check_length(tokens)
        ids = np.array([t.id for t in tokens])
        embeddings = self.weights.word[ids]  # [T, d]; a checkpoint's table is read here, not in forward
        with np.errstate(all="ignore"), self._pass():  # damaged weights can overflow; the check below reports it
            trace = forward(
                ids,
                embeddings,
                self.config,
                self.weights,
                keep_steps,
                value_norms=value_norms,
                decompose_at=decompose_at,
                head_inputs=head_inputs,
                on_layer=on_layer,
                selection=selection,
                on_attention=on_attention,
            )
        self._check_finite(trace.output if trace.head_inputs is None else trace.head_inputs)
        return trace

    @cached_property
    def end_of_sequence(self) -> frozenset[int]:
        """The ids that end a text the model writes, as transformers' generate reads them: generation_config.json's
        eos_token_id where the checkpoint has that file, else config.json's (its text model's, where it has one):
        an id or a list of them; none where neither names one."""
        from attncli.checkpoint import read_generation_config

        directory = self.checkpoint.directory
        generation = read_generation_config(directory)
        config, name = (
            (self.checkpoint.config, "config.json") if generation is None else (generation, "generation_config.json")
        )
        text_model = config.get("text_config")
        value = config.get("eos_token_id", text_model.get("eos_token_id") if isinstance(text_model, dict) else None)
        if value is None:
            return frozenset()
        ids = [value] if isinstance(value, int) else value
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise DataError(
                f"{directory / name}: eos_token_id {shortened(value, 60)} is not a token id or a list of them"
            )
        return frozenset(ids)

    def extend(self, text: str, tokens: list[Token], ids: list[int]) -> tuple[str, list[Token]]:
        """`text` (whose tokens are `tokens`) followed by the tokens `ids`, and the tokens of the whole: the new
        text what the tokenizer decodes `ids` to after the text's own ids (skipping special tokens), each new
        token's characters the part of it that its id completes (none where its bytes end no character yet)."""
        head = [t.id for t in tokens]
        decode = self.tokenizer.decode
        base = decode(head)
        decoded = [decode(head + ids[: n + 1]) for n in range(len(ids))]
        final = decoded[-1] if decoded else base
        shared = _shared_start(base, final)
        added = final[shared:]
        whole, ends, end = text + added, [], 0
        for prefix in decoded:
            part = prefix[shared:]
            end = max(end, len(part)) if added.startswith(part) else end  # a character its bytes do not end yet
            ends.append(end)
        starts = [0, *ends[:-1]]
        new = [
            Token(
                len(tokens) + n,
                token_id,
                self.tokenizer.id_to_token(token_id) or "",  # none for a row past the tokenizer's
                len(text) + start,
                len(text) + end,
                token_id in self.special,
            )
            for n, (token_id, start, end) in enumerate(zip(ids, starts, ends, strict=True))
        ]
        return whole, [*tokens, *new]


def _shared_start(a: str, b: str) -> int:
    """How many characters `a` and `b` share from their start."""
    length = min(len(a), len(b))
    return next((i for i in range(length) if a[i] != b[i]), length)


@contextmanager
def _tokenizer_failures(path, doing: str):
    """A failure of the tokenizers library as one DataError naming tokenizer.json: a plain Exception
    (a bad file, a WordPiece vocabulary without its unknown token), or a Rust panic, which reaches
    Python as a PanicException deriving from BaseException (a template naming a token it lacks)."""
    try:
        yield
    except AttncliError:
        raise
    except Exception as error:
        raise DataError(f"{path}: {doing} ({shortened(error, 200)})") from None
    except BaseException as error:
        if type(error).__name__ != "PanicException":  # KeyboardInterrupt and SystemExit are not the tokenizer's
            raise
        raise DataError(f"{path}: {doing} (the tokenizers library failed: {shortened(error, 200)})") from None


_TRIED_TEXT = "a"  # what _prepared tokenizes, once, to find a tokenizer that fails on every text


def _prepared(tokenizer, path, size: int, vocab_size: int, wrapper: tuple[str, str] | None):
    """`tokenizer`, read from `path` (or cut from it: `size` is the whole's number of tokens), checked against the
    `vocab_size` rows the model embeds and set to tokenize a text as it is, adding the `wrapper` special tokens when
    the file adds none."""
    from tokenizers import processors

    tokenizer.no_truncation()
    tokenizer.no_padding()
    if size > vocab_size:
        raise DataError(
            f"{path}: the tokenizer has {size} tokens but the model embeds only "
            f"{vocab_size}; they do not belong together"
        )
    if tokenizer.post_processor is None and wrapper is not None:
        # transformers re-adds the wrapper from the tokenizer's configuration; so must we.
        first, last = wrapper
        ids = [tokenizer.token_to_id(first), tokenizer.token_to_id(last)]
        if None in ids:
            raise DataError(f"{path}: adds no special tokens and has no {first} and {last} to add")
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{first} $A {last}", special_tokens=[(first, ids[0]), (last, ids[1])]
        )
    # A template naming a token it does not define panics in Rust at the first text, and Rust's panic
    # report goes to stderr before Python sees it: found here, once, with that report silenced.
    with _tokenizer_failures(path, "cannot tokenize a one-letter text"), _stderr_silenced():
        tokenizer.encode(_TRIED_TEXT)
    return tokenizer


@contextmanager
def _stderr_silenced():
    """File descriptor 2 pointed at /dev/null for the block: what a library's native code writes
    there (a Rust panic's report) does not reach the user."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def load_model(name: str = "sample", **sample_options) -> Model:
    """The model `name` names: "sample", built with `sample_options` (heads, seed, causal,
    positions; None means the default), or a checkpoint, which takes none of them."""
    given = {option: value for option, value in sample_options.items() if value is not None}
    if name == "sample":
        from attncli.bundled import SampleConfig, SampleModel

        return SampleModel(SampleConfig(**given))
    if given:
        raise BadInput(
            "{options} only shape the sample model; a checkpoint ({model} {name}) has its own",
            options=tuple(Parameter(option) for option in given),
            name=name,
        )
    from attncli.checkpoint import open_checkpoint

    return CheckpointModel(name, open_checkpoint(name))


# The sample model's options, as its JSON `model` object records them, with their types.
_SAMPLE_OPTIONS = {"heads": int, "seed": int, "causal": bool, "positions": bool}


def load_saved_model(saved: dict, source: str | Argument) -> Model:
    """The model a saved document's `model` object describes (see ModelInfo.to_json), loaded again."""
    name = saved["name"]  # a string: its readers (SavedRun.from_bytes, corpus.merged_heads) checked it
    if name == "sample":
        options = {key: saved.get(key) for key in _SAMPLE_OPTIONS}
        typed = all(
            isinstance(options[key], kind) and (kind is bool or not isinstance(options[key], bool))
            for key, kind in _SAMPLE_OPTIONS.items()
        )
        try:
            if typed:
                return load_model(name, **options)
        except BadInput:  # its message would name the options that shape a sample model, never typed here
            pass
        raise BadInput(
            "{source}: its model's heads, seed, causal and positions ({shown}) are not a sample model attncli makes; "
            "the saved result is damaged",
            source=source,
            shown=shortened(", ".join(f"{key} {options[key]!r}" for key in _SAMPLE_OPTIONS), 80),
        )
    from pathlib import Path

    if not Path(name).exists() and isinstance(saved.get("path"), str) and Path(saved["path"]).is_dir():
        # Saved from another directory: the checkpoint's full path still finds it, and the model keeps
        # the name it was saved with.
        from attncli.checkpoint import open_checkpoint

        return CheckpointModel(name, open_checkpoint(saved["path"]))
    return load_model(name)
