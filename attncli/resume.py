"""Corpus runs that survive being stopped. A run written to a file keeps its progress beside it, in
FILE.partial: batch appends its records there (what began the run in FILE.partial.json) and renames
it to FILE when done; heads saves its partial sums there after each partition. Resumed, the same run
continues where its progress ends, and refuses progress that another model, other texts or other
options made, or that does not hold together (records out of order, sums that no texts could give).
"""

import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from attncli.analysis import StatisticSums
from attncli.attention import EVERYTHING, Selection
from attncli.errors import AttncliError, BadInput, Parameter
from attncli.inputs import SAVED_LIMIT, TEXT_LIMIT, read_input
from attncli.models import ModelInfo
from attncli.output import file_mode, jsonl, leftover_temporaries, writable_target, write_file
from attncli.results import SCHEMA

__all__ = [
    "append_records",
    "checkpoint_of",
    "claimed",
    "fingerprint",
    "identity_file",
    "put_in_place",
    "records_checkpoint",
    "remove_leftover_temporaries",
    "resume_point",
    "resumed_heads",
    "save_heads_checkpoint",
]

_SUFFIX = ".partial"


def checkpoint_of(path: Path | None, resume: bool) -> Path | None:
    """Where a run to the file `path` keeps its progress (FILE.partial, beside the file a symbolic
    link names, so that it becomes that file by a rename), refused when one is there and the run is
    not resumed (it would be lost), when a resumed run has nothing to continue, or when the file's
    directory cannot take it: all before any work. None for standard output, and for a device or
    pipe, which is written straight (as > would)."""
    if path is None:
        if resume:
            raise BadInput(
                "{option} continues a run that wrote {path} FILE: give the same {path} FILE", option=Parameter("resume")
            )
        return None
    target = writable_target(path, "path")
    if target.exists() and not target.is_file():  # a device or a pipe
        if resume:
            raise BadInput("{resume}: {file} is not a regular file, so a run to it cannot be continued", file=path)
        return None
    checkpoint = target.with_name(target.name + _SUFFIX)
    if checkpoint.exists() and not resume:
        raise BadInput(
            "{file} holds an unfinished run: {resume} continues it (or delete it to start over)", file=checkpoint
        )
    if resume and not checkpoint.exists():
        raise BadInput("{resume}: there is no unfinished run to continue ({file} does not exist)", file=checkpoint)
    return checkpoint


def remove_leftover_temporaries(checkpoint: Path) -> None:
    """Remove the temporary files that a run to the same file, killed outright while it wrote its
    checkpoint, what began it or the file itself, left beside them (see output.leftover_temporaries)."""
    for path in (checkpoint, _identity(checkpoint), _target(checkpoint)):
        for temporary in leftover_temporaries(path):
            temporary.unlink(missing_ok=True)


@contextmanager
def claimed(checkpoint: Path | None) -> Iterator[None]:
    """The run to `checkpoint`'s file, for this process alone while it lasts: an exclusive lock
    (flock, which the system releases however the process ends) on FILE.partial.lock beside it, so
    that a second run on the same file, say a resumed run started twice, is refused by name instead
    of doing the work again over the same checkpoint; then the temporaries a killed run left are
    cleared. A lock file, not the checkpoint: heads replaces its checkpoint after every partition."""
    if checkpoint is None:
        yield
        return
    lock = checkpoint.with_name(checkpoint.name + ".lock")
    handle = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        if not _locked(handle, lock):
            raise BadInput(
                "{file} is in use by another run to the same {path} FILE; let that run end (or stop it) first",
                file=checkpoint,
            )
        try:
            remove_leftover_temporaries(checkpoint)
            yield
        finally:
            lock.unlink(missing_ok=True)  # before the lock goes: a run that opened it since finds it gone (_locked)
    finally:
        os.close(handle)


def _locked(handle: int, lock: Path) -> bool:
    """Whether the file open as `handle` is now locked for this process alone and is still the one
    named `lock` (the run that held it may have removed it in between, as it ended)."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        named, held = os.stat(lock), os.fstat(handle)
    except (BlockingIOError, FileNotFoundError):
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextmanager
def records_checkpoint(checkpoint: Path | None) -> Iterator[None]:
    """A batch's checkpoint, made empty where there is none yet (a run killed as it began leaves it so,
    and a resumed run starts it afresh), and removed with what began it when the run fails before a
    record is in it: nothing was done, so there is nothing to resume."""
    if checkpoint is None:
        yield
        return
    made = not checkpoint.exists()
    checkpoint.touch()
    try:
        yield
    except AttncliError:
        if made:
            _forget_if_empty(checkpoint)
        raise


def _forget_if_empty(checkpoint: Path) -> None:
    """Remove `checkpoint`, and what began its run, when it holds no record: there is nothing to resume."""
    if checkpoint.exists() and checkpoint.stat().st_size == 0:
        checkpoint.unlink()
        _identity(checkpoint).unlink(missing_ok=True)


def fingerprint(texts: list, *options) -> str:
    """What a resumed run must share with the run it continues: its texts (corpus.Text), their line
    numbers and the options that change its numbers."""
    digest = hashlib.sha256(repr(options).encode())
    for item in texts:
        digest.update(f"{item.line}\x00{item.text}\x00".encode())
    return digest.hexdigest()


def _identity(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".json")


def _target(checkpoint: Path) -> Path:
    """The file whose run `checkpoint` holds: a regular file (checkpoint_of resolved a link to it)."""
    return checkpoint.with_name(checkpoint.name.removesuffix(_SUFFIX))


def identity_file(checkpoint: Path, identity: dict, resume: bool) -> None:
    """Keep what began a batch, `identity` (its model, texts and options), beside its `checkpoint`
    (in FILE.partial.json); resumed, refuse a run that another model, other texts or other options
    began. A checkpoint without a record (its run killed as it began, maybe before this file was
    written) has nothing to check: the run starts afresh."""
    if not resume or checkpoint.stat().st_size == 0:
        write_file(_identity(checkpoint), orjson.dumps(identity))
        return
    try:
        saved = orjson.loads(read_input(str(_identity(checkpoint)), TEXT_LIMIT))
    except (ValueError, BadInput):
        raise BadInput(
            "{file} (what began the unfinished run) is missing or damaged; delete both to start over",
            file=_identity(checkpoint),
        ) from None
    if saved != identity:
        raise BadInput(
            "the unfinished run was begun with another model, other texts or other options ({file})",
            file=_identity(checkpoint),
        )


def append_records(batches: Iterable[list[dict]], checkpoint: Path, precision: int | None) -> None:
    """JSON Lines of `batches` appended to `checkpoint` a batch of records at a time, each batch on
    the disk (fsync) before the next is computed: a run killed at any moment leaves whole records,
    and at most one cut line at the end, which resume_point removes. A run that fails before
    writing anything leaves nothing to resume."""
    try:
        with open(checkpoint, "ab") as file:
            for batch in batches:
                file.write(b"".join(jsonl(batch, precision)))
                file.flush()
                os.fsync(file.fileno())
    except OSError as error:  # a full disk: what was written stays, for a resumed run
        raise BadInput(
            "cannot write {file}: {reason}; {resume} continues from what it holds",
            file=checkpoint,
            reason=error.strerror,
        ) from None
    except AttncliError:
        _forget_if_empty(checkpoint)
        raise


def put_in_place(checkpoint: Path) -> None:
    """The records of a finished run, `checkpoint`, become the file they are for; what began the
    run goes with them."""
    os.chmod(checkpoint, file_mode(_target(checkpoint)))  # the permissions of the file it replaces
    os.replace(checkpoint, _target(checkpoint))
    _identity(checkpoint).unlink(missing_ok=True)


def resume_point(path: Path, lines: list[int]) -> tuple[int, list[int]]:
    """(the last line number, the lines whose records carry "error") of the whole records in the
    JSON Lines file `path`, which is cut back to them (a killed run may have left half a line).
    Its records must be those of the first of `lines`, the corpus's line numbers in order, one
    each: one missing, repeated, out of order or with another "line" is damage, refused."""
    done, failed, keep = 0, [], 0
    with open(path, "rb+") as file:
        for count, raw in enumerate(file):
            if not raw.endswith(b"\n"):
                break
            try:
                record = orjson.loads(raw)
                line = record["line"]
            except (ValueError, KeyError, TypeError):
                line = None
            if type(line) is not int or count >= len(lines) or line != lines[count]:
                raise BadInput("{file} is damaged at byte {byte}; delete it to start over", file=path, byte=keep)
            done, keep = line, keep + len(raw)
            if "error" in record:
                failed.append(line)
        file.truncate(keep)
    return done, failed


def save_heads_checkpoint(
    checkpoint: Path,
    info: ModelInfo,
    texts: list,
    max_tokens: int,
    partitions: int,
    sums: StatisticSums,
    failures: list[tuple[int, str]],
    measure: str = "weights",
    selection: Selection = EVERYTHING,
) -> None:
    """Save the progress of heads over `texts` (corpus.Text) after `partitions` partitions: the
    partial sums and the failed lines, with the model, the texts, the measure and the selection they are of."""
    progress = {
        "schema": SCHEMA,
        "command": "heads (unfinished)",
        "model": info.to_json(),
        "texts": fingerprint(texts, *_heads_options(max_tokens, measure, selection)),
        "partitions": partitions,
        "partial_sums": sums.to_json(),
        "failures": failures,
    }
    write_file(checkpoint, orjson.dumps(progress))


def _heads_options(max_tokens: int, measure: str, selection: Selection = EVERYTHING) -> tuple:
    """The options of a heads run that change its numbers, as its fingerprint takes them: a run of the
    weights, of every layer and head, has the fingerprint it always had."""
    options = (max_tokens,) if measure == "weights" else (max_tokens, measure)
    return options if selection.everything else (*options, "selection", selection.layers, selection.heads)


def resumed_heads(
    checkpoint: Path,
    info: ModelInfo,
    parts: list[list],
    max_tokens: int,
    measure: str = "weights",
    selection: Selection = EVERYTHING,
) -> tuple[StatisticSums, list[tuple[int, str]], int]:
    """(partial sums, failed lines, partitions done) that an unfinished run of heads over the texts
    `parts` (partitions of corpus.Text) of `measure` and of the `selection`'s layers and heads left in
    `checkpoint`; refused when it is a run over other texts, another model, another measure or another selection,
    or when what it says does not add up: every text of the partitions it says are done summed or failed, once."""
    texts = [item for part in parts for item in part]
    try:
        saved = orjson.loads(read_input(str(checkpoint), SAVED_LIMIT))
        fingerprinted = fingerprint(texts, *_heads_options(max_tokens, measure, selection))
        same = saved["model"] == info.to_json() and saved["texts"] == fingerprinted
        sums, failures, done = StatisticSums.from_json(saved["partial_sums"]), saved["failures"], saved["partitions"]
        if type(done) is not int or not 0 <= done <= len(parts):
            raise ValueError("partitions that the corpus does not have")
        if not all(
            isinstance(f, list) and len(f) == 2 and type(f[0]) is int and isinstance(f[1], str) for f in failures
        ):
            raise TypeError("failures that are not (line, message)")
    except (ValueError, KeyError, TypeError):
        raise BadInput("{file} is damaged; delete it to start over", file=checkpoint) from None
    if not same:
        raise BadInput(
            "{file} is a run over other texts, of another model or of another measure or selection of layers and "
            "heads; delete it to start over",
            file=checkpoint,
        )
    covered = [item.line for part in parts[:done] for item in part]  # in order
    failed = [line for line, _ in failures]
    if sums.texts + len(failures) != len(covered) or not set(failed) <= set(covered) or failed != sorted(set(failed)):
        raise BadInput("{file} is damaged; delete it to start over", file=checkpoint)
    return sums, [tuple(failure) for failure in failures], done
