"""Corpus-scale runs of `heads` and `batch`: a file of texts, one a line or in a field of JSON Lines,
cut into partitions of PARTITION lines, each partition computed by a worker that loads the model once
(here, in a pool of processes, or on the workers of a Dask cluster), the results put back together in
partition order. A run therefore gives the same numbers, to the bit, however many workers shared it;
what travels to a worker is the partition's text and how to load the model, and back only partial
sums or records, never weights. A run to a file can be resumed (see attncli.resume); the lines that
fail are reported at the end (LinesFailed), the others' results written.
"""

import codecs
import collections
import contextlib
import functools
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from attncli import analysis, commands, workers
from attncli.attention import EVERYTHING, Selection
from attncli.commands import DEFAULT_MAX_TOKENS
from attncli.errors import Argument, AttncliError, BadInput, LinesFailed, Notice, Parameter, listed, shortened
from attncli.inputs import SAVED_LIMIT, TEXT_LIMIT, read_input
from attncli.models import Model, ModelInfo, load_model, load_saved_model
from attncli.output import jsonl, write_file, write_stdout
from attncli.results import BatchRecord, HeadsResult
from attncli.resume import (
    append_records,
    checkpoint_of,
    claimed,
    fingerprint,
    identity_file,
    put_in_place,
    records_checkpoint,
    resume_point,
    resumed_heads,
    save_heads_checkpoint,
)
from attncli.tokens import Token

__all__ = [
    "PARTITION",
    "Corpus",
    "HeadsPart",
    "HeadsRun",
    "ModelRecipe",
    "Progress",
    "Runner",
    "Text",
    "batch",
    "batch_partition",
    "heads",
    "heads_partition",
    "merged_heads",
    "no_progress",
    "partitions",
    "read",
    "run",
]

PARTITION = 64  # lines a worker takes at a time: large enough to keep a worker busy, small enough to resume often
REPORT_EVERY = 0.1  # seconds between a partition's reports of its progress: enough to follow it, too few to cost


@dataclass(frozen=True)
class Text:
    """One line of a corpus: its number in the file (from 1), its text and, from JSON Lines with an id
    field, that id's JSON as it was written."""

    line: int
    text: str
    id: bytes | None = None


@dataclass(frozen=True)
class Corpus:
    """The texts of a corpus file, and the lines that could not be read, with why."""

    texts: list[Text]
    unreadable: list[tuple[int, str]]  # (line, why), in line order
    text_field: str | None = None  # the field of JSON Lines that held the texts; None: plain lines
    id_field: str | None = None  # the field that held their ids

    @property
    def lines(self) -> int:
        """The file's non-empty lines: its texts and the lines that could not be read."""
        return len(self.texts) + len(self.unreadable)


def read(source: str, parameter: str, field: str | None = None, id_field: str | None = None) -> Corpus:
    """The corpus in file `source`, or standard input for "-" (errors name it as given to
    `parameter`): each non-empty line, or with `field` each JSON line's text in that field (and with
    `id_field` its id); a line that is not UTF-8, or a JSON line without them, is set apart, with why.

    Lines end at \\n (and \\r\\n) only: other Unicode line separators stay inside a text.
    """
    if not source:
        raise BadInput("{option} is empty; give a file name, or - for standard input", option=Parameter(parameter))
    if field is None and id_field is not None:
        raise BadInput("{option} names a field of JSON Lines: give {field} with it", option=Parameter("id_field"))
    texts, unreadable = [], []
    for number, line in _lines(read_input(source, TEXT_LIMIT, parameter)):
        if isinstance(line, UnicodeDecodeError):
            unreadable.append((number, f"not UTF-8 (bad byte at offset {line.start} of the line)"))
        elif field is None:
            texts.append(Text(number, line))
        else:
            try:
                texts.append(_json_line(number, line, field, id_field))
            except ValueError as why:
                unreadable.append((number, str(why)))
    return Corpus(texts, unreadable, field, id_field)


def _lines(data: bytearray) -> Iterator[tuple[int, str | UnicodeDecodeError]]:
    """(number, text) of each non-empty line of `data` (a byte-order mark is not part of the text),
    or (number, why it is not UTF-8): one bad byte spoils its line only."""
    lines = data.split(b"\n")
    lines[0] = lines[0].removeprefix(codecs.BOM_UTF8)
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode().removesuffix("\r")
        except UnicodeDecodeError as error:
            yield number, error
            continue
        if line.strip():
            yield number, line


def _json_line(number: int, line: str, field: str, id_field: str | None) -> Text:
    """The text of JSON line `line` in `field`, with the JSON of its id in `id_field` when given;
    ValueError says why a line has none."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not a JSON object ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise ValueError(f"no text in field {shortened(field)!r}")
    if id_field is None:
        return Text(number, record[field])
    if id_field not in record:
        raise ValueError(f"no field {shortened(id_field)!r}")
    return Text(number, record[field], _id_json(line, record[id_field], id_field))


def _id_json(line: str, value, id_field: str) -> bytes:
    """The JSON of an id, `value` as orjson read it from `line`, as it was written: orjson reads each
    number as a float or a 64-bit integer, which can change its digits (1.50, 1e2, 2**64), so an id
    that holds a float is read again with every number kept as its literal."""
    try:
        if not _holds_float(value):
            return orjson.dumps(value)
        exact = json.loads(line, parse_int=orjson.Fragment, parse_float=orjson.Fragment)
        return orjson.dumps(exact[id_field])
    except (orjson.JSONEncodeError, RecursionError):  # orjson writes at most 254 levels of nesting
        raise ValueError(f"field {shortened(id_field)!r} is nested too deeply to carry") from None


def _holds_float(value) -> bool:
    if isinstance(value, dict):
        return any(map(_holds_float, value.values()))
    if isinstance(value, list):
        return any(map(_holds_float, value))
    return isinstance(value, float)


@dataclass(frozen=True)
class ModelRecipe:
    """How each process of a run loads the model, this one included: load_model's name and sample
    options."""

    name: str
    options: tuple = ()  # (option, value) pairs, in the order given (a message that lists them keeps it)

    def load(self) -> Model:
        """The model, loaded once per process."""
        return _loaded(self)


@functools.cache
def _loaded(recipe: ModelRecipe) -> Model:
    return load_model(recipe.name, **dict(recipe.options))


def partitions(texts: list[Text]) -> list[list[Text]]:
    """`texts` cut into partitions of PARTITION lines, the last one shorter."""
    return [texts[start : start + PARTITION] for start in range(0, len(texts), PARTITION)]


@dataclass(eq=False)
class HeadsPart:
    """What a worker sends back for a partition of `heads`: the partial sums and the lines that failed."""

    sums: analysis.StatisticSums
    failures: list[tuple[int, str]] = field(default_factory=list)  # (line, message)


def heads_partition(
    recipe: ModelRecipe,
    max_tokens: int,
    names: Mapping[str, str],
    measure: str,
    selection: Selection,
    part: list[Text],
    report: Callable[[float], None] | None = None,
) -> HeadsPart:
    """The head statistics (of `measure`, of the `selection`'s layers and heads: see commands.heads) of each text of
    `part`, summed; a text that
    fails is left out and named, its message worded with `names` (see AttncliError.worded). With `report`,
    report(texts done) as the passes go (see _Counted)."""
    sums, failures = analysis.StatisticSums(), []
    texts = [item.text for item in part]
    model = _counted(recipe.load(), report)
    statistics_of = commands.statistics_of_many(texts, model, max_tokens, measure, selection)
    for item, statistics in zip(part, statistics_of, strict=True):
        if isinstance(statistics, AttncliError):
            failures.append((item.line, statistics.worded(names)))
        else:
            sums.add(statistics)
    return HeadsPart(sums, failures)


def batch_partition(
    recipe: ModelRecipe,
    steps: bool,
    max_tokens: int,
    names: Mapping[str, str],
    summary: bool,
    selection: Selection,
    part: list[Text],
    report: Callable[[float], None] | None = None,
) -> list[dict]:
    """The batch record of each text of `part` (with `summary`, its statistics instead of its attention; of the
    `selection`'s layers and heads), as JSON-ready dicts, in order (without the texts' ids: see _with_ids). With
    `report`, report(texts done) as the passes go (see _Counted)."""
    lines = [(item.line, item.text) for item in part]
    model = _counted(recipe.load(), report)
    records = commands.batch(lines, model, steps, max_tokens, summary=summary, selection=selection)
    return [record.to_json(names) for record in records]


class _Counted:
    """A model whose forward passes report(texts done) as their layers are: a pass of one text (`run`) or of
    several packed together (`run_many`) counts each of its texts as the fraction of the layers done, on the
    texts the passes before it did. (A text that fails before its pass counts once its partition is done.)
    Everything else is the model's."""

    def __init__(self, model: Model, report: Callable[[float], None]):
        self.counted = model
        self.report = report
        self.done = 0  # texts the passes so far have done

    def __getattr__(self, name: str):
        return getattr(self.counted, name)

    def run(self, tokens: list[Token], *args, **kwargs):
        trace = self.counted.run(tokens, *args, on_layer=self._layers_of(1), **kwargs)
        self.done += 1
        return trace

    def run_many(self, texts: list[list[Token]], norms: bool = False, selection: Selection = EVERYTHING):
        attention = self.counted.run_many(texts, norms, on_layer=self._layers_of(len(texts)), selection=selection)
        self.done += len(texts)
        return attention

    def _layers_of(self, texts: int) -> Callable[[int, int], None]:
        """on_layer of a pass of `texts` texts."""
        return lambda done, layers: self.report(self.done + texts * done / layers)


def _counted(model: Model, report: Callable[[float], None] | None) -> Model:
    """`model`, its passes counted to `report` where there is one (see _Counted)."""
    return model if report is None else _Counted(model, report)


def _with_ids(part: list[Text], records: list[dict]) -> list[dict]:
    """The batch `records` of the texts of `part`, each with its text's id as it was written (an
    orjson.Fragment: written as it is, never rounded, but it cannot travel back from a worker)."""
    return [{**record, "id": orjson.Fragment(item.id)} for item, record in zip(part, records, strict=True)]


# How a run shows its progress: progress(total, done) wraps the run and gives the function to call with
# each count of texts done, fractions of a text too (the command line's draws a bar on stderr), or None
# where it shows nothing: then the run's partitions need not count their texts as they go.
Progress = Callable[[int, int], AbstractContextManager[Callable[[float], None] | None]]


@contextmanager
def no_progress(total: int, done: int) -> Iterator[None]:
    """Progress that shows nothing."""
    yield None


class _PartsDone:
    """The texts done in a run's partitions, from what each one's work reports as it goes (in this process,
    or from a worker's, by another thread) and from the partitions that come back: advance(more texts done)
    each time their sum grows. A report never takes a partition back (one that failed as a pack and runs
    again a text at a time counts no text twice)."""

    def __init__(self, advance: Callable[[float], None]):
        self.advance = advance
        self.done: dict[int, float] = {}  # texts done, by the partition's index among those run
        self.lock = threading.Lock()

    def __call__(self, index: int, done: float) -> None:
        with self.lock:
            more = done - self.done.get(index, 0)
            if more > 0:
                self.done[index] = done
                self.advance(more)


def _parts_done(advance: Callable[[float], None] | None) -> _PartsDone | None:
    return None if advance is None else _PartsDone(advance)


@dataclass(frozen=True)
class Runner:
    """How a corpus run computes: the model, which each worker loads from `recipe`; texts of at most
    `max_tokens` tokens; messages of the lines that fail worded with `names` (see
    AttncliError.worded); the partitions shared by `jobs` processes (None: one per core available;
    never more than one per core or per partition) or run on the Dask cluster whose scheduler is at
    `dask`; how `progress` shows; and how the run says what it does otherwise than asked (`notify`)."""

    recipe: ModelRecipe
    names: Mapping[str, str] = field(default_factory=dict)
    max_tokens: int = DEFAULT_MAX_TOKENS
    jobs: int | None = None
    dask: str | None = None
    progress: Progress = no_progress
    notify: Callable[[Notice], None] = lambda notice: None

    def __post_init__(self):
        if self.jobs is not None and self.dask is not None:  # the cluster's workers are its own to count
            raise BadInput(
                "{jobs} counts processes here and {dask} runs on a cluster's workers: give one of them",
                jobs=Parameter("jobs"),
                dask=Parameter("dask"),
            )

    @property
    def info(self) -> ModelInfo:
        """The model's description (the model loaded here, once per process)."""
        return self.recipe.load().info

    def results(self, work: Callable, parts: list, progress: Callable[[int, float], None] | None = None) -> Iterator:
        """work(part) for each of `parts`, in order, where this runner runs them, with their `progress` (see `run`)."""
        if self.dask is not None:
            return run(work, parts, dask=self.dask, progress=progress)
        cores = len(os.sched_getaffinity(0))
        processes = max(1, min(self.jobs or cores, cores, len(parts)))
        if self.jobs is not None and parts and processes < self.jobs:  # more processes would only wait
            each = "core" if processes == cores else "partition of {size} lines"
            self.notify(
                Notice(
                    "{jobs} {asked}: using {processes} process{plural}, one per " + each,
                    asked=self.jobs,
                    processes=processes,
                    plural="" if processes == 1 else "es",
                    size=PARTITION,
                )
            )
        return run(work, parts, processes, progress=progress)


@dataclass(eq=False)
class HeadsRun:
    """heads over a corpus: the result, and the lines that failed and were left out of it."""

    result: HeadsResult
    failed: LinesFailed | None  # to raise once the result is written
    checkpoint: Path | None  # the run's progress, kept until the result is written

    def written(self) -> None:
        """The result is written: the progress kept to resume the run has done its work."""
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)


def heads(
    corpus: Corpus,
    runner: Runner,
    path: Path | None = None,
    resume: bool = False,
    measure: str = "weights",
    selection: Selection = EVERYTHING,
) -> HeadsRun:
    """Per-head statistics and pattern labels averaged over the texts of `corpus` (see
    commands.heads_result), of the weights or, with `measure` norms, of their ‖α v W_O‖ as shares of each
    row, computed as `runner` says. A line that fails is left out and named; when every one fails,
    LinesFailed says why.

    With `path`, the file the result is for, the partial sums are kept beside it after each
    partition (resume.checkpoint_of), and `resume` continues from them. With a `selection`, the statistics
    are of its layers and heads alone (and a run resumes one of the same selection)."""
    if not corpus.lines:
        raise BadInput("{option} has no non-empty lines: no texts to average over", option=Parameter("file"))
    texts, info, max_tokens = corpus.texts, runner.info, runner.max_tokens
    parts = partitions(texts)
    checkpoint = checkpoint_of(path, resume)
    with claimed(checkpoint):
        if resume:
            sums, failures, start = resumed_heads(checkpoint, info, parts, max_tokens, measure, selection)
        else:
            sums, failures, start = analysis.StatisticSums(), [], 0
        work = functools.partial(heads_partition, runner.recipe, max_tokens, runner.names, measure, selection)
        with runner.progress(len(texts), sum(len(part) for part in parts[:start])) as advance:
            for index, part in enumerate(runner.results(work, parts[start:], _parts_done(advance)), start=start):
                sums.merge(part.sums)
                failures += part.failures
                if checkpoint is not None:
                    save_heads_checkpoint(
                        checkpoint, info, texts, max_tokens, index + 1, sums, failures, measure, selection
                    )
    failures = sorted(corpus.unreadable + failures)
    failed = None
    if failures or not sums.texts:
        first, reason = failures[0]
        fate = "left out of the statistics" if sums.texts else "so there is nothing to average"
        lines = [line for line, _ in failures]
        failed = _lines_failed(
            corpus.lines, lines, ", {fate}; line {first}: {reason}", fate=fate, first=first, reason=reason
        )
    if not sums.texts:  # nothing to average, and nothing to resume
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        raise failed
    return HeadsRun(commands.heads_result(info, sums, measure=measure, selection=selection), failed, checkpoint)


def merged_heads(paths: list[Path]) -> HeadsResult:
    """The heads result of runs over parts of one corpus, from their JSON documents: runs of one model, one
    measure and one selection of layers and heads, which the documents name."""
    if len({_file_identity(path) for path in paths}) < len(paths):
        raise BadInput("{option} names one file twice; its texts would count twice", option=Parameter("merge"))
    total, first, measure, selection, kept = analysis.StatisticSums(), None, None, EVERYTHING, None
    for path in paths:
        given = Argument("merge", path)
        try:
            document = orjson.loads(read_input(str(path), SAVED_LIMIT, "merge"))
            sums, model = analysis.StatisticSums.from_json(document["partial_sums"]), document["model"]
            if not isinstance(model["name"], str):
                raise TypeError("a model without a name")
            if document.get("measure", "weights") not in tuple(analysis.Measure):
                raise ValueError("a measure attncli has not")
            saved = _saved_selection(document["partial_sums"])
            layers, heads = saved.kept_layers(model["layers"]), saved.kept_heads(model["heads"])
        except analysis.EarlierSums as earlier:
            raise BadInput(
                "{what} has no partial sums of {missing}: an earlier attncli wrote it; run heads on its texts again",
                what=given,
                missing=", ".join(earlier.missing),
            ) from None
        except (ValueError, KeyError, TypeError):
            raise BadInput("{what} is not an attncli heads {json} result with partial sums", what=given) from None
        if measure not in (None, document.get("measure", "weights")):
            raise BadInput(
                "{what} holds statistics of {its}, {first} of {theirs}; merge runs of one measure",
                what=given,
                its=document.get("measure", "weights"),
                first=paths[0],
                theirs=measure,
            )
        measure = document.get("measure", "weights")
        if any(values.shape != (len(layers), len(heads)) for values in sums.sums.values()):
            # A run of a selection names it since such runs merge; one written before does not (as if of all).
            raise BadInput(
                "{what}: its partial sums are not of {layer_count} × {head_count} heads, as its model and selection "
                "say (a run of {layers} or {heads} by an earlier attncli does not name them; run heads on its texts "
                "again)",
                layers=Parameter("layers"),
                heads=Parameter("kept_heads"),
                what=given,
                layer_count=len(layers),
                head_count=len(heads),
            )
        if first is None:
            first, selection, kept = model, saved, (layers, heads)
        elif model != first:
            raise BadInput(
                "{what} is for another model than {first}; merge runs of one model", what=given, first=paths[0]
            )
        elif (layers, heads) != kept:
            raise BadInput(
                "{what} holds statistics of layers {its_layers} and heads {its_heads}, {first} of layers "
                "{their_layers} and heads {their_heads}; merge runs of one selection",
                what=given,
                its_layers=listed(layers),
                its_heads=listed(heads),
                first=paths[0],
                their_layers=listed(kept[0]),
                their_heads=listed(kept[1]),
            )
        try:
            total.merge(sums)
        except ValueError:
            raise BadInput("{what} has statistics of another shape than {first}", what=given, first=paths[0]) from None
        except OverflowError:
            raise BadInput("{what}: its partial sums, added to the others', pass float64's range", what=given) from None
    info = load_saved_model(first, Argument("merge", paths[0])).info
    if (info.layers, info.heads) != (first.get("layers"), first.get("heads")):
        raise BadInput(
            "{what}: its model, loaded again, has {layer_count} × {head_count} heads, not the partial sums' {saved}",
            what=Argument("merge", paths[0]),
            layer_count=info.layers,
            head_count=info.heads,
            saved=f"{first.get('layers')} × {first.get('heads')}",
        )
    return commands.heads_result(info, total, measure=measure, selection=selection)


def _saved_selection(partial_sums: dict) -> Selection:
    """The layers and heads partial sums name (HeadsResult.selection_json): every one where they name none, as
    a run of all of them, or one before they were named, wrote. ValueError or TypeError where they are not a
    selection."""
    if "layers" not in partial_sums and "heads" not in partial_sums:
        return EVERYTHING
    layers, heads = partial_sums["layers"], partial_sums["heads"]
    if not all(type(kept) is list and all(type(index) is int for index in kept) for kept in (layers, heads)):
        raise TypeError("a selection that is not lists of indices")
    return Selection(tuple(layers), tuple(heads))


def _file_identity(path: Path) -> tuple:
    """What tells one file from another however it is named (a hard link, a symbolic link, a path
    through another directory): its device and inode; a path that names nothing, resolved."""
    try:
        status = path.stat()
    except OSError:  # read_input says why it cannot be read
        return (path.resolve(),)
    return status.st_dev, status.st_ino


def batch(
    corpus: Corpus,
    runner: Runner,
    path: Path | None = None,
    resume: bool = False,
    *,
    steps: bool = False,
    precision: int | None = None,
    fail_fast: bool = False,
    summary: bool = False,
    selection: Selection = EVERYTHING,
) -> None:
    """Each text of `corpus` as a batch record (commands.batch, with its steps only with `steps`, or with
    `summary` its heads statistics instead of its attention; with a `selection`, the attention, steps or statistics
    of its layers and heads alone), computed as `runner` says and written as
    JSON Lines in line order, numbers rounded to `precision`, to standard output or to the file `path`.
    A line that cannot be read or run gets a record with its "error" and the run goes on, or with
    `fail_fast` ends there; LinesFailed, at the end, names them all (a resumed run's earlier ones too).
    Records that would pass LARGE_OUTPUT bytes are said to (runner.notify) before any is computed.

    To a regular file, the records go to a checkpoint beside it as they come, which becomes the file
    when all are done, and only then: a run that `fail_fast` stopped leaves the file as it was and
    its records in the checkpoint, which `resume` continues (see attncli.resume). One run at a time
    has the file (resume.claimed)."""
    if steps and summary:
        raise BadInput(
            "{steps} adds every intermediate to each record's attention, which {summary} leaves out: give one of them",
            steps=Parameter("steps"),
            summary=Parameter("summary"),
        )
    checkpoint = checkpoint_of(path, resume)
    lines = sorted([*(item.line for item in corpus.texts), *(line for line, _ in corpus.unreadable)])
    failures = []  # this run's failed lines
    with claimed(checkpoint), records_checkpoint(checkpoint):
        if checkpoint is not None:
            # summary named only when asked: the runs begun before it existed resume as they were
            options = (
                steps,
                precision,
                corpus.text_field,
                corpus.id_field,
                runner.max_tokens,
                *(("summary",) if summary else ()),
                *(() if selection.everything else ("selection", selection.layers, selection.heads)),
            )
            identity = {"model": runner.info.to_json(), "texts": fingerprint(corpus.texts, corpus.unreadable, *options)}
            identity_file(checkpoint, identity, resume)
        done, failed_before = resume_point(checkpoint, lines) if resume else (0, [])
        texts = [item for item in corpus.texts if item.line > done]
        unreadable = [
            BatchRecord(line, error=BadInput(why)).to_json(runner.names)
            for line, why in corpus.unreadable
            if line > done
        ]
        notice = _large_output(texts, runner, precision, summary, steps, selection)
        if notice is not None:
            runner.notify(notice)
        options = (steps, runner.max_tokens, runner.names, summary, selection)
        work = functools.partial(batch_partition, runner.recipe, *options)
        with runner.progress(corpus.lines, corpus.lines - len(texts)) as advance:  # the unreadable lines take no time
            parts = partitions(texts)
            records = runner.results(work, parts, _parts_done(advance))
            if corpus.id_field is not None:
                records = map(_with_ids, parts, records)
            in_order = _in_line_order(records, unreadable, fail_fast, failures)
            if checkpoint is not None:
                append_records(in_order, checkpoint, precision)
            else:  # standard output (or a device or pipe): a partition's records at once
                pieces = (b"".join(jsonl(part, precision)) for part in in_order)
                if path is None:
                    write_stdout(pieces)
                else:
                    write_file(path, pieces)
        stopped = bool(fail_fast and failures) and failures[-1] != lines[-1]  # lines were left undone
        if checkpoint is not None and not stopped:
            put_in_place(checkpoint)
    failed = failed_before + failures
    if stopped and checkpoint is not None:
        stop = "; stopped there, so {file} is not written: the records so far are in {checkpoint} for {resume}"
        raise _lines_failed(corpus.lines, failed, stop, file=path, checkpoint=checkpoint)
    if failed:
        raise _lines_failed(corpus.lines, failed, '; their records carry "error"')


# A batch whose records would pass this many bytes says so before it starts, and what would shrink them.
LARGE_OUTPUT = 10**9
# The lines whose tokens the estimate counts: all of a corpus up to this many, else this many spread evenly
# over it (a line takes a tokenizer about 0.1 ms: a million lines would be a silent minute and a half).
SAMPLED_LINES = 2000
# Bytes of JSON besides the numbers: one token's object (index, id, text, offsets, special), one record's
# opening (schema, command, line, text, model), one head's object in explain's summary of a token (its index,
# text and weight's names), one pattern label (quoted, and its comma), a statistic's name once.
TOKEN_JSON = 75
RECORD_JSON = 400
SUMMARY_HEAD_JSON = 40
PATTERN_JSON = 15
NAME_JSON = 25
# Significant digits of a number as written: float32's shortest form that reads back, float64's.
FLOAT32_DIGITS = 9
FLOAT64_DIGITS = 17


def record_bytes(
    tokens: int,
    layers: int,
    heads: int,
    *,
    causal: bool,
    digits: int,
    scored_heads: int,
    precision: int | None = None,
    summary: bool = False,
    steps: bool = False,
    step_width: int = 0,
) -> float:
    """About how many bytes batch writes for a line of `tokens` tokens through a model of `layers` × `heads`
    heads kept (`causal`: half of each head's weights are 0.0), its attention's numbers of `digits` significant
    digits (see FLOAT32_DIGITS), rounded to `precision` decimals when given: each number is its digits, "0."
    and a comma. With `summary`, the statistics record instead (linear in the tokens); with `steps`, the
    scores and scaled scores of `scored_heads` heads a layer (the model's every head: the steps are every head's,
    whatever heads the selection keeps) as the weights, and `step_width` numbers a token and layer besides (see
    _step_width; the steps only some families write left out)."""
    kept = (lambda given: given) if precision is None else (lambda given: min(given, max(precision, 1)))
    number = kept(digits) + len("0.,")
    statistic = kept(FLOAT64_DIGITS) + len("0.,")  # the statistics are float64 means
    opening = RECORD_JSON + TOKEN_JSON * tokens
    if summary:
        per_head = len(analysis.STATISTICS) * statistic + PATTERN_JSON
        return opening + layers * heads * per_head + (len(analysis.STATISTICS) + 1) * (NAME_JSON + 2 * layers)
    seen = tokens * (tokens + 1) / 2 if causal else tokens * tokens  # the weights not masked to 0.0
    weights = seen * number + (tokens * tokens - seen) * len("0.0,") + 3 * tokens  # a head's, its rows' brackets
    written = opening + layers * heads * weights + tokens * heads * (SUMMARY_HEAD_JSON + statistic)
    if steps:
        written += layers * (2 * scored_heads * tokens * tokens + step_width * tokens) * number
    return written


def _large_output(
    texts: list[Text],
    runner: Runner,
    precision: int | None,
    summary: bool,
    steps: bool,
    selection: Selection = EVERYTHING,
) -> Notice | None:
    """What a batch of `texts` says before it starts when its records would pass LARGE_OUTPUT bytes (see
    record_bytes), with what would shrink them; None when they would not, or when the model cannot be loaded
    here (a Dask run whose model's path resolves on the workers only)."""
    try:
        model = runner.recipe.load()
    except AttncliError:
        return None
    info = model.info
    step = max(1, -(-len(texts) // SAMPLED_LINES))  # SAMPLED_LINES at most
    sampled = texts[::step]
    counts = [_token_count(item.text, model, runner.max_tokens) for item in sampled]
    digits = FLOAT64_DIGITS if info.sample else FLOAT32_DIGITS  # the sample model computes in float64
    layers, heads = len(selection.kept_layers(info.layers)), len(selection.kept_heads(info.heads))
    shape = {"layers": layers, "heads": heads, "causal": info.causal, "digits": digits, "scored_heads": info.heads}

    def written(**options) -> float:
        return len(texts) / max(len(sampled), 1) * sum(record_bytes(count, **shape, **options) for count in counts)

    size = written(precision=precision, summary=summary, steps=steps, step_width=_step_width(info))
    if size <= LARGE_OUTPUT:
        return None
    if summary:
        shrink = "; {precision} 4 would write about {smaller}" if precision is None or precision > 4 else ""
        smaller = written(precision=4, summary=True)
    else:  # a summary keeps the selection's heads too
        shrink = (
            "; {summary} would write about {smaller} (or a smaller {max_tokens}, which leaves the longest lines out)"
        )
        smaller = written(precision=precision, summary=True)
    return Notice(
        "this run will write about {size} ({lines} lines{what})" + shrink + "; going on",
        size=_in_bytes(size),
        lines=f"{len(texts):,}",
        what="" if summary else ", every head's attention" if selection.everything else ", the kept heads' attention",
        smaller=_in_bytes(smaller),
    )


def _step_width(info: ModelInfo) -> int:
    """The numbers explain's steps hold for one token in one layer, besides its scores: q, head_outputs and
    concat, a d_head for each head; k and v, for each key-value head; the layer's input and output, d_model."""
    kv_heads = info.kv_heads or info.heads
    return (3 * info.heads + 2 * kv_heads) * info.d_head + 2 * info.d_model


def _token_count(text: str, model: Model, max_tokens: int) -> int:
    """The tokens batch runs for `text`; none for a text it refuses (a short error record)."""
    try:
        return len(commands.tokenize(text, model, max_tokens).tokens)
    except AttncliError:
        return 0


def _in_bytes(size: float) -> str:
    """A size as a person reads it: 1.3 GB, 646 MB, 12 kB."""
    if size >= 1e9:
        return f"{size / 1e9:,.1f} GB"
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


def _in_line_order(
    records: Iterable[list[dict]],
    unreadable: list[dict],
    fail_fast: bool,
    failures: list[int],
) -> Iterator[list[dict]]:
    """Each partition's `records` with the error records of the `unreadable` lines put among them
    in line order; the line of each record that carries "error" is added to `failures`, and with
    `fail_fast` nothing comes after the first."""
    pending = unreadable
    for part in records:
        last = part[-1]["line"]
        early = [record for record in pending if record["line"] < last]
        pending = pending[len(early) :]
        ordered = sorted([*part, *early], key=lambda record: record["line"])
        failed = [i for i, record in enumerate(ordered) if "error" in record]
        if failed and fail_fast:  # nothing past the first failure
            ordered = ordered[: failed[0] + 1]
        failures.extend(ordered[i]["line"] for i in failed if i < len(ordered))
        yield ordered
        if failures and fail_fast:
            return
    if pending:
        pending = pending[:1] if fail_fast else pending
        failures.extend(record["line"] for record in pending)
        yield pending


def _lines_failed(total: int, lines: list[int], outcome: str, **facts) -> LinesFailed:
    """What a run says of its lines that failed, `lines` of the `total`: how many, the first ten,
    then `outcome`, what became of them (a template of `facts`, see AttncliError)."""
    where = ", ".join(str(line) for line in lines[:10]) + (" ..." if len(lines) > 10 else "")
    return LinesFailed(f"{len(lines)} of {total} lines failed (line {where}){outcome}", **facts)


def run(
    work: Callable,
    parts: list,
    jobs: int = 1,
    dask: str | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Iterator:
    """work(part) for each of `parts`, the results in order as they come: in this process (one job),
    in a pool of `jobs` processes, or on the Dask cluster whose scheduler is at `dask`.

    With `progress`, progress(index of a part, its items done) as they are done, a part's items being its
    length: here and in the pool, work(part, report=...) reports its own as it goes, fractions of an item
    too (see _PartProgress); on Dask, a part's items count once it comes back."""
    if dask is not None:
        results = _on_dask(work, parts, dask)
    elif jobs > 1 and len(parts) > 1:
        results = _in_pool(work, parts, jobs, progress)
    else:
        results = (
            work(part) if progress is None else _reported_work(work, progress, index, part)
            for index, part in enumerate(parts)
        )
    with contextlib.closing(results):  # a pool's or a cluster's work stopped where the run stops
        for index, result in enumerate(results):
            if progress is not None:
                progress(index, len(parts[index]))
            yield result


class _PartProgress:
    """What a part's work calls with how many of its items it has done (fractions of one too): passed on
    as send(the part's index, items done), at most every REPORT_EVERY seconds."""

    def __init__(self, index: int, send: Callable[[int, float], None]):
        self.index = index
        self.send = send
        self.sent = time.monotonic()  # the part's start: its first report comes a while into it

    def __call__(self, done: float) -> None:
        now = time.monotonic()
        if now - self.sent >= REPORT_EVERY:
            self.sent = now
            self.send(self.index, done)


def _reported_work(work: Callable, send: Callable[[int, float], None], index: int, part: list):
    """work(part), its progress sent as send(`index`, items done) as it goes (see _PartProgress), and every
    item of it once it is done."""
    result = work(part, report=_PartProgress(index, send))
    send(index, len(part))
    return result


def _to_parent(index: int, done: float) -> None:
    """Send a part's progress from a worker of the pool to the process that shows it (see _in_pool)."""
    workers.reports.put((index, done))


def _in_pool(work: Callable, parts: list, jobs: int, progress: Callable[[int, float], None] | None) -> Iterator:
    """Fresh processes (spawned, not forked: a fork would copy the parent's BLAS threads mid-flight),
    each with one BLAS thread, since the processes share the cores among themselves. Signals to the
    process group are the parent's (workers.GROUP_SIGNALS); a worker that dies (kill -9, out of
    memory) ends the run with an error. With `progress`, the workers put their parts' progress on a
    queue, which a thread of this process passes on to it (see `run`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    processes = min(jobs, len(parts))
    spawn = multiprocessing.get_context("spawn")
    reports = None if progress is None else spawn.Queue()
    pool = ProcessPoolExecutor(processes, mp_context=spawn, initializer=workers.start, initargs=(os.getpid(), reports))

    def submit(index: int):
        if progress is None:
            return pool.submit(work, parts[index])
        return pool.submit(_reported_work, work, _to_parent, index, parts[index])

    try:
        ahead = 2 * jobs  # partitions submitted ahead of the one awaited: enough to keep every worker busy
        with _group_signals_held(), _one_blas_thread():  # the workers start as the first work is submitted
            futures = collections.deque(submit(index) for index in range(min(ahead, len(parts))))
        with _heard(reports, progress):
            for index in range(ahead, len(parts)):  # results are awaited in order, and only `ahead` are ever held
                done = futures.popleft().result()
                futures.append(submit(index))
                yield done
            while futures:
                yield futures.popleft().result()
    except BrokenProcessPool:
        raise AttncliError(
            "one of the {workers} worker processes ended before its work was done (killed, or out of "
            "memory); run again (with {resume} where the run wrote a file)",
            workers=processes,
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the partitions under way finish; no process lingers


@contextmanager
def _heard(reports, progress: Callable[[int, float], None] | None) -> Iterator[None]:
    """The (index, done) reports the workers put on `reports` (a multiprocessing queue, or None: no reports)
    passed on to progress(index, done) meanwhile, by a thread of this process."""
    if reports is None:
        yield
        return
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):  # none for a while: is the run over?
                progress(*reports.get(timeout=REPORT_EVERY))

    listener = threading.Thread(target=listen, name="attncli-progress", daemon=True)
    listener.start()
    try:
        yield
    finally:
        stop.set()
        listener.join()
        reports.close()


@contextmanager
def _group_signals_held() -> Iterator[None]:
    """The group's signals held back while processes start, and dealt with once they have.

    Blocked, as the processes started meanwhile inherit them (see workers.start): even one still
    importing never takes a Ctrl-C meant for this one. Here, one that comes (to another thread, which
    does not block it) is kept for the end, when its handler runs: never lost, nor raised in the
    middle of starting a process."""
    held = []
    handlers = {number: signal.signal(number, lambda got, frame: held.append(got)) for number in workers.GROUP_SIGNALS}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, workers.GROUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # one that came to this thread is held now
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if held:
            signal.raise_signal(held[0])


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """The environment the processes started meanwhile get: one BLAS thread each."""
    single = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {name: os.environ.get(name) for name in single}
    os.environ.update(single)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _on_dask(work: Callable, parts: list, address: str) -> Iterator:
    """On the Dask cluster whose scheduler is at `address`, reached within distributed's connect
    timeout (its setting distributed.comm.timeouts.connect: 30 s unless the dask config or
    DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT says otherwise). A cluster lost mid-run ends the run
    with one error; the results given before stay given (a run to a file keeps them to resume)."""
    try:
        import dask
        from distributed.client import FutureCancelledError
    except ImportError:
        raise AttncliError(
            "running on Dask needs the dask extra: pip install 'attncli[dask]' (dask and distributed)"
        ) from None
    where = f"the Dask scheduler at {shortened(address, 60)!r}"
    timeout = dask.utils.parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")
    with _silent_loggers("distributed"), _dask_client(address, timeout, where) as client:
        try:
            for future in client.map(work, parts, pure=False):
                yield future.result()
        except FutureCancelledError as error:  # the scheduler is gone, or someone cancelled the work
            raise AttncliError(
                "lost {where} mid-run ({reason}); run again (with {resume} where the run wrote a file)",
                where=where,
                reason=error.reason,
            ) from None


def _dask_client(address: str, timeout: float, where: str):
    """A distributed Client of the scheduler at `address` (named `where` in errors), or one line on
    why it cannot be reached within `timeout` seconds.

    The Client limits its connection and what follows, but not the handshake that opens it: a server
    that accepts and never answers would hold it for ever. So a handshake is made first, alone, in a
    thread with an event loop of its own (this one may run one), left behind on a Ctrl-C."""
    import asyncio
    import threading

    from distributed import Client
    from distributed.comm import CommClosedError, connect
    from distributed.security import Security

    security = Security()  # the TLS settings of the dask config, as the Client takes them
    failed = []

    async def handshake() -> None:
        comm = await connect(address, timeout=timeout, **security.get_connection_args("client"))
        await comm.close()

    def greet() -> None:
        try:
            asyncio.run(asyncio.wait_for(handshake(), timeout))
        except Exception as error:
            failed.append(error)

    try:
        greeting = threading.Thread(target=greet, name="attncli-dask-handshake", daemon=True)
        greeting.start()
        greeting.join()
        if failed:
            raise failed[0]
        return Client(address, timeout=timeout, security=security)
    except CommClosedError:
        reason = "it closed the connection without a Dask handshake"
    except OSError:  # TimeoutError among them: nothing answered, or a server took the connection and stayed silent
        reason = f"no answer within {timeout:g} s"
    except Exception as error:  # an address that is none, or an answer that is not Dask's (MemoryError: garbage)
        said = str(error).replace(address, "…") if address else str(error)
        why = f"{type(error).__name__}: {shortened(said, 200)}" if said else type(error).__name__
        reason = f"{why}; is it the address of a Dask scheduler, such as tcp://host:8786?"
    raise AttncliError(f"cannot reach {where}: {reason}")


@contextmanager
def _silent_loggers(name: str) -> Iterator[None]:
    """The logger `name` and those below it silent for a while (distributed logs to stderr, and sets
    levels below its own logger: what goes wrong becomes the run's one error)."""
    names = [name, *(other for other in logging.root.manager.loggerDict if other.startswith(name + "."))]
    loggers = [logging.getLogger(each) for each in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
