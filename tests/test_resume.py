"""resume.py: corpus runs to a file that survive kill -9 and resume to the same bytes, one run at a time,
refusing progress that does not hold together."""

import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import ATTNCLI, BERT, attncli, write_corpus

from attncli import corpus
from attncli.errors import AttncliError


@pytest.mark.slow
def test_a_batch_cut_short_resumes_without_losing_or_repeating_a_line(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 1500)
    reference = tmp_path / "reference.jsonl"
    assert attncli("batch", str(source), "--model", BERT, "--jobs", "1", "-o", str(reference)).returncode == 0
    target = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    command = [ATTNCLI, "batch", str(source), "--model", BERT, "--jobs", "1", "-o", str(target)]
    _killed_midway(command, partial)
    with open(partial, "ab") as file:
        file.write(reference.read_bytes()[:100])  # as a run killed mid-write leaves it: half a record
    refused = attncli(*command[1:], text=True)
    assert refused.returncode == 2 and "holds an unfinished run: --resume continues it" in refused.stderr
    other = attncli(*command[1:], "--steps", "--resume", text=True)  # other options: not this run
    assert other.returncode == 2 and "begun with another model, other texts or other options" in other.stderr
    resumed = attncli(*command[1:], "--resume")
    assert resumed.returncode == 0 and not partial.exists()
    assert target.read_bytes() == reference.read_bytes()


def _killed_midway(command: list[str], checkpoint) -> None:
    """Start `command` and kill -9 it once `checkpoint` holds something (its first partition done: a
    batch's checkpoint exists, empty and locked, from the start)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists() and checkpoint.stat().st_size > 0:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run ended before it could be killed; give it more lines"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["heads", "batch"])
def test_a_run_killed_by_sigkill_resumes_to_the_same_result(tmp_path, command):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 1500)
    target = tmp_path / ("stats.json" if command == "heads" else "out.jsonl")
    args = ["--file", str(source)] if command == "heads" else [str(source)]
    fresh = tmp_path / ("fresh.json" if command == "heads" else "fresh.jsonl")
    assert attncli(command, *args, "--model", BERT, "--jobs", "1", "-o", str(fresh), timeout=300).returncode == 0
    _killed_midway(
        [ATTNCLI, command, *args, "--model", BERT, "--jobs", "1", "-o", str(target)],
        tmp_path / f"{target.name}.partial",
    )
    assert not target.exists()
    resumed = attncli(command, *args, "--model", BERT, "--jobs", "1", "-o", str(target), "--resume", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert target.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
def test_resume_needs_an_unfinished_run(tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.\n")
    run = attncli("heads", "--file", str(tmp_path / "a.txt"), "-o", str(tmp_path / "s.json"), "--resume", text=True)
    assert run.returncode == 2 and "there is no unfinished run to continue" in run.stderr


@pytest.mark.slow
def test_batch_to_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 70)
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    assert attncli("batch", str(source), "--model", BERT, "-o", str(link)).returncode == 0
    assert link.is_symlink() and real.read_text().count("\n") == 70


# In-process runs from here on (--jobs 1: the partitions in this process, where a test can make one fail).
LONG_LINE = "word " * 130  # more tokens than the BERT fixture reads: the line fails


def _corpus(tmp_path, failing: tuple[int, ...] = ()) -> Path:
    """70 lines (two partitions), those numbered in `failing` too long for the model."""
    source = tmp_path / "corpus.txt"
    texts = write_corpus(source, 70)
    for line in failing:
        texts[line - 1] = LONG_LINE
    source.write_text("\n".join(texts) + "\n")
    return source


def _stopped(cli, monkeypatch, command: str, *args: str) -> None:
    """Run `command` (with --jobs 1) with its second partition failing, as a worker that died would:
    the first partition's progress is kept for --resume."""
    name = "heads_partition" if command == "heads" else "batch_partition"
    real, calls = getattr(corpus, name), []

    def second_fails(*arguments):
        calls.append(arguments)
        if len(calls) > 1:
            raise AttncliError("the second partition failed")
        return real(*arguments)

    with monkeypatch.context() as patch:
        patch.setattr(corpus, name, second_fails)
        run = cli(command, *args, "--jobs", "1")
    assert run.code == 2 and "the second partition failed" in run.stderr, run.stderr


def _batch(source: Path, target: Path, *options: str) -> tuple[str, ...]:
    return ("batch", str(source), "--model", BERT, "-o", str(target), *options)


def _heads(source: Path, target: Path, *options: str) -> tuple[str, ...]:
    return ("heads", "--file", str(source), "--model", BERT, "--json", "-o", str(target), *options)


def test_a_resumed_batch_names_every_failed_line_of_the_run(cli, monkeypatch, tmp_path):
    source, target = _corpus(tmp_path, failing=(3, 68)), tmp_path / "out.jsonl"
    _stopped(cli, monkeypatch, *_batch(source, target))  # line 3 failed in the run that stopped
    resumed = cli(*_batch(source, target, "--resume", "--jobs", "1"))
    assert resumed.code == 3
    assert resumed.stderr == 'attncli: 2 of 70 lines failed (line 3, 68); their records carry "error"\n'


@pytest.mark.parametrize("command", ["batch", "heads"])
def test_a_second_run_on_one_output_is_refused_while_the_first_holds_it(cli, monkeypatch, tmp_path, command):
    """Two runs to one file (a --resume started twice) would append to one FILE.partial, or do the
    work twice over one checkpoint: the second is refused by name, and the checkpoint left as it was."""
    source, target = _corpus(tmp_path), tmp_path / "out.json"
    partial = tmp_path / "out.json.partial"
    run = _batch if command == "batch" else _heads
    if command == "batch":
        _stopped(cli, monkeypatch, *run(source, target))
    before = partial.read_bytes() if partial.exists() else None
    with open(tmp_path / "out.json.partial.lock", "wb") as first_run:
        fcntl.flock(first_run, fcntl.LOCK_EX)  # as the run under way holds it
        second = cli(*run(source, target, *(["--resume"] if before else []), "--jobs", "1"))
    assert second.code == 2
    assert second.stderr == (
        f"attncli: error: {partial} is in use by another run to the same -o FILE; let that run end (or stop it) first\n"
    )
    assert (partial.read_bytes() if partial.exists() else None) == before and not target.exists()
    assert cli(*run(source, target, *(["--resume"] if before else []), "--jobs", "1")).code == 0  # let go: it runs
    assert target.exists() and not partial.exists() and not (tmp_path / "out.json.partial.lock").exists()


@pytest.mark.parametrize("resume", [False, True], ids=["next run", "resumed"])
@pytest.mark.parametrize("command", ["heads", "batch"])
def test_temporaries_a_run_killed_outright_left_are_cleared(cli, monkeypatch, tmp_path, command, resume):
    """kill -9 while a checkpoint, what began the run or the file was written leaves write_file's
    hidden temporary: the next run to the same file, or its --resume, clears them (and no other file)."""
    source, target = _corpus(tmp_path), tmp_path / "out.json"
    arguments = (_heads if command == "heads" else _batch)(source, target)
    if resume:
        _stopped(cli, monkeypatch, *arguments)
    left = [tmp_path / f".out.json{kind}.0123456789ab.part" for kind in ("", ".partial", ".partial.json")]
    others = [tmp_path / name for name in (".other.json.0123456789ab.part", "out.json.0123456789ab.part")]
    for path in left + others:
        path.write_text("cut short")
    run = cli(*arguments, *(["--resume"] if resume else []), "--jobs", "1")
    assert run.code == 0, run.stderr
    assert not any(path.exists() for path in left) and all(path.exists() for path in others)


@pytest.mark.parametrize("filesystem", ["same", "another"])
def test_a_run_through_a_symbolic_link_keeps_its_progress_beside_the_target(cli, monkeypatch, tmp_path, filesystem):
    """FILE.partial beside the file the link names becomes it by a rename, whatever filesystem the link is on."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if filesystem == "another" else tmp_path) as links:
        if os.stat(links).st_dev == os.stat(tmp_path).st_dev and filesystem == "another":
            pytest.skip("/dev/shm is on the same filesystem as the temporary directory here")
        link, real = Path(links) / "out.jsonl", tmp_path / "real.jsonl"
        link.symlink_to(real)  # dangling until the run is done: it makes the file
        source = _corpus(tmp_path)
        _stopped(cli, monkeypatch, *_batch(source, link))
        assert (tmp_path / "real.jsonl.partial").exists() and not Path(links, "out.jsonl.partial").exists()
        resumed = cli(*_batch(source, link, "--resume", "--jobs", "1"))
        assert resumed.code == 0, resumed.stderr
        assert link.is_symlink() and real.read_text().count("\n") == 70


@pytest.mark.parametrize("command", ["heads", "batch"])
def test_a_link_into_no_directory_is_refused_before_any_work(cli, monkeypatch, tmp_path, command):
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "gone" / "out.json")
    worked = []
    for name in ("heads_partition", "batch_partition"):
        monkeypatch.setattr(corpus, name, lambda *arguments: worked.append(arguments))
    run = cli(*(_heads if command == "heads" else _batch)(_corpus(tmp_path), link))
    assert run.code == 2 and not worked
    assert run.stderr == f"attncli: error: cannot write -o {link}: no such directory {tmp_path / 'gone'}\n"
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize(
    "damage",
    ["deleted", "repeated", "reordered", b"9999", b"-1", b'"64"', b"64.0", b"1e300", b"true"],
)
def test_a_batch_checkpoint_whose_records_do_not_follow_the_corpus_is_refused(cli, monkeypatch, tmp_path, damage):
    """Records missing, twice or out of order, or a "line" that is no line of the corpus in its
    place: resumed, they would make a wrong file with exit 0."""
    source, target = _corpus(tmp_path), tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    _stopped(cli, monkeypatch, *_batch(source, target))
    records = partial.read_bytes().splitlines(keepends=True)  # lines 1 to 64
    if damage == "deleted":
        records = records[:10] + records[11:]
    elif damage == "repeated":
        records = records[:11] + records[10:]
    elif damage == "reordered":
        records[10], records[11] = records[11], records[10]
    else:
        records[-1] = records[-1].replace(b'"line":64,', b'"line":' + damage + b",", 1)
    partial.write_bytes(b"".join(records))
    resumed = cli(*_batch(source, target, "--resume", "--jobs", "1"))
    assert resumed.code == 2 and "is damaged at byte" in resumed.stderr and str(partial) in resumed.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    "damage",
    [
        {"partitions": 999},
        {"partitions": -1},
        {"partitions": "1"},
        {"partitions": True},
        {"failures": [[1]]},
        {"failures": [["1", "why"]]},
        {"failures": [[999, "why"]]},  # a line of no partition done
        {"failures": "line 1"},
        {"partial_sums": {"texts": 63}},  # a text of the partition done neither summed nor failed
        {"partial_sums": {"texts": "64"}},
        {"partial_sums": {"counts": -1}},
        {"partial_sums": {"counts": 65}},  # more texts than were summed
        {"partial_sums": {"sums": -1.0}},
        {"partial_sums": {"sums": True}},
    ],
    ids=lambda damage: json.dumps(damage),
)
def test_a_heads_checkpoint_that_does_not_add_up_is_refused(cli, monkeypatch, tmp_path, damage):
    """A checkpoint of one partition done (64 texts summed) says otherwise: resumed, its statistics
    would be over other texts than the corpus's (exit 0), or it ended in a traceback (exit 1)."""
    source, target = _corpus(tmp_path), tmp_path / "stats.json"
    checkpoint = tmp_path / "stats.json.partial"
    _stopped(cli, monkeypatch, *_heads(source, target))
    saved = json.loads(checkpoint.read_text())
    sums = saved["partial_sums"]
    for key, value in damage.items():
        if key != "partial_sums":
            saved[key] = value
        elif "texts" in value:
            sums["texts"] = value["texts"]
        else:  # every cell of one statistic
            (kind, cell), name = next(iter(value.items())), next(iter(sums["sums"]))
            sums[kind][name] = [[cell] * len(row) for row in sums[kind][name]]
    checkpoint.write_text(json.dumps(saved))
    resumed = cli(*_heads(source, target, "--resume", "--jobs", "1"))
    assert resumed.code == 2 and resumed.stdout == "" and not target.exists()
    assert resumed.stderr == f"attncli: error: {checkpoint} is damaged; delete it to start over\n"


@pytest.mark.parametrize("command", ["heads", "batch"])
def test_an_output_directory_that_cannot_be_written_is_refused_before_any_work(cli, monkeypatch, tmp_path, command):
    """heads writes its first checkpoint after a partition's work: a directory it cannot write in
    (read-only, or not the user's) must be found before. Tests run as root, which any mode lets
    write, so the directory's answer is the one the system gives a read-only filesystem."""
    (tmp_path / "locked").mkdir()
    target = tmp_path / "locked" / "out.json"
    real_access, worked = os.access, []
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == target.parent else real_access(path, mode)
    )
    for name in ("heads_partition", "batch_partition"):
        monkeypatch.setattr(corpus, name, lambda *arguments: worked.append(arguments))
    run = cli(*(_heads if command == "heads" else _batch)(_corpus(tmp_path), target))
    assert run.code == 2 and not worked
    assert run.stderr == f"attncli: error: cannot write -o {target}: {target.parent} is not writable\n"


def test_a_run_killed_as_it_began_resumes_from_the_start(cli, tmp_path):
    """The checkpoint is made (and locked) before what began the run is written beside it: killed in
    between, it holds no record, so there is nothing to check and the resumed run starts afresh."""
    source, target = _corpus(tmp_path), tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").touch()
    resumed = cli(*_batch(source, target, "--resume", "--jobs", "1"))
    assert resumed.code == 0, resumed.stderr
    assert target.read_text() == cli("batch", str(source), "--model", BERT, "--jobs", "1").stdout


def test_a_run_that_fails_before_its_first_record_leaves_nothing_to_resume(cli, monkeypatch, tmp_path):
    def fails(*arguments):
        raise AttncliError("the first partition failed")

    monkeypatch.setattr(corpus, "batch_partition", fails)
    run = cli(*_batch(_corpus(tmp_path), tmp_path / "out.jsonl", "--jobs", "1"))
    assert run.code == 2 and "the first partition failed" in run.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus.txt"]


def test_a_finished_batch_keeps_the_permissions_of_the_file_it_replaces(cli, tmp_path):
    source, target = _corpus(tmp_path), tmp_path / "out.jsonl"
    target.write_text("an earlier run's records\n")
    target.chmod(0o600)
    assert cli(*_batch(source, target, "--jobs", "1")).code == 0
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_text().count("\n") == 70


@pytest.mark.slow  # three runs over two partitions
def test_a_heads_run_resumes_only_with_the_measure_it_began_with(cli, monkeypatch, tmp_path):
    source, target = _corpus(tmp_path), tmp_path / "out.json"
    _stopped(cli, monkeypatch, *_heads(source, target, "--measure", "norms"))
    other = cli(*_heads(source, target, "--resume"))
    assert other.code == 2 and "a run over other texts, of another model or of another measure" in other.stderr
    resumed = cli(*_heads(source, target, "--resume", "--measure", "norms"))
    assert resumed.code == 0, resumed.stderr
    whole = cli(*_heads(source, tmp_path / "whole.json", "--measure", "norms"))
    assert whole.code == 0 and json.loads(target.read_text()) == json.loads((tmp_path / "whole.json").read_text())


@pytest.mark.slow  # three runs over two partitions
def test_a_heads_run_of_some_layers_and_heads_resumes_only_with_that_selection(cli, monkeypatch, tmp_path):
    source, target = _corpus(tmp_path), tmp_path / "out.json"
    kept = ("--layers", "1", "--heads", "1:3")
    _stopped(cli, monkeypatch, *_heads(source, target, *kept))
    other = cli(*_heads(source, target, "--resume", "--layers", "1"))
    assert other.code == 2 and "of another measure or selection of layers and heads" in other.stderr
    resumed = cli(*_heads(source, target, "--resume", *kept))
    assert resumed.code == 0, resumed.stderr
    whole = cli(*_heads(source, tmp_path / "whole.json", *kept))
    assert whole.code == 0 and json.loads(target.read_text()) == json.loads((tmp_path / "whole.json").read_text())
    assert [(h["layer"], h["head"]) for h in json.loads(target.read_text())["heads"]] == [(1, 1), (1, 2)]
