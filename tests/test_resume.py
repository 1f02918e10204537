"""resume.py: corpus runs to a file that survive kill -9 and resume to the same bytes, through the installed command."""

import signal
import subprocess
import time

import pytest
from helpers import ATTNCLI, BERT, attncli, write_corpus

pytestmark = pytest.mark.slow  # every test here starts attncli in a process of its own


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
    """Start `command` and kill -9 it once `checkpoint` exists (its first partition done)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run ended before it could be killed; give it more lines"


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


def test_resume_needs_an_unfinished_run(tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.\n")
    run = attncli("heads", "--file", str(tmp_path / "a.txt"), "-o", str(tmp_path / "s.json"), "--resume", text=True)
    assert run.returncode == 2 and "there is no unfinished run to continue" in run.stderr


def test_batch_to_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 70)
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    assert attncli("batch", str(source), "--model", BERT, "-o", str(link)).returncode == 0
    assert link.is_symlink() and real.read_text().count("\n") == 70
