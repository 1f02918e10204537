"""Corpus runs that survive being stopped. A run written to a file keeps its progress beside it, in
FILE.partial: batch appends its records there (what began the run in FILE.partial.json) and renames
it to FILE when done; heads saves its partial sums there after each partition. Resumed, the same run
continues where its progress ends, and refuses progress that another model, other texts or other
options made.
"""

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import orjson

from attncli.analysis import StatisticSums
from attncli.errors import Argument, AttncliError, BadInput, Parameter
from attncli.inputs import SAVED_LIMIT, TEXT_LIMIT, read_input
from attncli.models import ModelInfo
from attncli.output import jsonl, write_file
from attncli.results import SCHEMA

__all__ = [
    "checkpoint_of",
    "fingerprint",
    "identity_file",
    "records_to_file",
    "resume_point",
    "resumed_heads",
    "save_heads_checkpoint",
]


def checkpoint_of(path: Path | None, resume: bool) -> Path | None:
    """Where a run to the file `path` keeps its progress (FILE.partial), refused when one is there
    and the run is not resumed (it would be lost), or when a resumed run has nothing to continue.
    None for standard output, and for a device or pipe, which is written straight (as > would)."""
    if path is not None and (not path.name or path.is_dir()):
        raise BadInput("{what} names a directory; give a file name", what=Argument("path", path))
    if path is not None and path.exists() and not path.resolve().is_file():
        if resume:
            raise BadInput("{resume}: {file} is not a regular file, so a run to it cannot be continued", file=path)
        return None
    if path is None:
        if resume:
            raise BadInput(
                "{option} continues a run that wrote {path} FILE: give the same {path} FILE", option=Parameter("resume")
            )
        return None
    checkpoint = path.with_name(path.name + ".partial")
    if checkpoint.exists() and not resume:
        raise BadInput(
            "{file} holds an unfinished run: {resume} continues it (or delete it to start over)", file=checkpoint
        )
    if resume and not checkpoint.exists():
        raise BadInput("{resume}: there is no unfinished run to continue ({file} does not exist)", file=checkpoint)
    return checkpoint


def fingerprint(texts: list, *options) -> str:
    """What a resumed run must share with the run it continues: its texts (corpus.Text), their line
    numbers and the options that change its numbers."""
    digest = hashlib.sha256(repr(options).encode())
    for item in texts:
        digest.update(f"{item.line}\x00{item.text}\x00".encode())
    return digest.hexdigest()


def _identity(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".json")


def identity_file(checkpoint: Path, identity: dict, resume: bool) -> None:
    """Keep what began a batch, `identity` (its model, texts and options), beside its `checkpoint`
    (in FILE.partial.json); resumed, refuse a run that another model, other texts or other options
    began."""
    if not resume:
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


def records_to_file(batches: Iterable[list[dict]], checkpoint: Path, path: Path, precision: int | None) -> None:
    """JSON Lines of `batches` appended to `checkpoint` (see _append_records), which becomes `path`
    (a symbolic link's target) when all are written, what began the run going with it. A run that
    fails before writing anything leaves nothing to resume."""
    try:
        _append_records(batches, checkpoint, precision)
    except AttncliError:
        if checkpoint.exists() and checkpoint.stat().st_size == 0:  # nothing done: nothing to resume
            checkpoint.unlink()
            _identity(checkpoint).unlink(missing_ok=True)
        raise
    os.replace(checkpoint, path.resolve() if path.is_symlink() else path)
    _identity(checkpoint).unlink(missing_ok=True)


def _append_records(batches: Iterable[list[dict]], path: Path, precision: int | None) -> None:
    """JSON Lines appended to `path` a batch of records at a time, each batch on the disk (fsync)
    before the next is computed: a run killed at any moment leaves whole records, and at most one
    cut line at the end, which resume_point removes."""
    try:
        with open(path, "ab") as file:
            for batch in batches:
                file.write(b"".join(jsonl(batch, precision)))
                file.flush()
                os.fsync(file.fileno())
    except OSError as error:  # a full disk: what was written stays, for a resumed run
        raise BadInput(
            "cannot write {file}: {reason}; {resume} continues from what it holds", file=path, reason=error.strerror
        ) from None


def resume_point(path: Path) -> tuple[int, int]:
    """(the last line number, how many records carry "error") of the whole records in the JSON
    Lines file `path`, which is cut back to them (a killed run may have left half a line)."""
    done, failed, keep = 0, 0, 0
    with open(path, "rb+") as file:
        for raw in file:
            if not raw.endswith(b"\n"):
                break
            try:
                record = orjson.loads(raw)
                line = int(record["line"])
            except (ValueError, KeyError, TypeError):
                raise BadInput(
                    "{file} is damaged at byte {byte}; delete it to start over", file=path, byte=keep
                ) from None
            done, failed, keep = line, failed + ("error" in record), keep + len(raw)
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
) -> None:
    """Save the progress of heads over `texts` (corpus.Text) after `partitions` partitions: the
    partial sums and the failed lines, with the model and the texts they are of."""
    progress = {
        "schema": SCHEMA,
        "command": "heads (unfinished)",
        "model": info.to_json(),
        "texts": fingerprint(texts, max_tokens),
        "partitions": partitions,
        "partial_sums": sums.to_json(),
        "failures": failures,
    }
    write_file(checkpoint, orjson.dumps(progress))


def resumed_heads(
    checkpoint: Path, info: ModelInfo, texts: list, max_tokens: int
) -> tuple[StatisticSums, list[tuple[int, str]], int]:
    """(partial sums, failed lines, partitions done) that an unfinished run of heads over `texts` left
    in `checkpoint`; refused when it is a run over other texts or another model."""
    try:
        saved = orjson.loads(read_input(str(checkpoint), SAVED_LIMIT))
        same = saved["model"] == info.to_json() and saved["texts"] == fingerprint(texts, max_tokens)
        progress = StatisticSums.from_json(saved["partial_sums"]), [tuple(f) for f in saved["failures"]]
        done = int(saved["partitions"])
    except (ValueError, KeyError, TypeError):
        raise BadInput("{file} is damaged; delete it to start over", file=checkpoint) from None
    if not same:
        raise BadInput("{file} is a run over other texts or another model; delete it to start over", file=checkpoint)
    return (*progress, done)
