"""corpus.py: heads --file and batch over a corpus, on processes or Dask with the same numbers; merges."""

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from helpers import (
    ATTNCLI,
    BERT,
    GPT2,
    PRONOUN,
    attncli,
    write_corpus,
)
from numpy.testing import assert_allclose

from attncli.analysis import STATISTICS
from attncli.attention import EVERYTHING
from attncli.schema import schemas


def _heads(*args: str, **options) -> dict:
    run = attncli("heads", *args, "--json", text=True, **options)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.slow
def test_jobs_share_the_work_without_moving_a_number(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 150)  # three partitions
    one = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json")
    two = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "2", "--json")
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout
    batch_one = attncli("batch", str(source), "--model", BERT, "--jobs", "1")
    batch_two = attncli("batch", str(source), "--model", BERT, "--jobs", "2")
    assert batch_one.stdout == batch_two.stdout and batch_one.stdout.count(b"\n") == 150


@pytest.mark.slow
def test_shards_merge_into_the_run_over_the_whole_corpus(tmp_path):
    texts = write_corpus(tmp_path / "all.txt", 120)
    whole = _heads("--file", str(tmp_path / "all.txt"), "--model", BERT, "--jobs", "1")
    shuffled = random.Random(7).sample(texts, len(texts))
    shards = []
    for i, part in enumerate((shuffled[:50], shuffled[50:51], shuffled[51:])):
        (tmp_path / f"part{i}.txt").write_text("\n".join(part) + "\n")
        shards.append(tmp_path / f"part{i}.json")
        shard = attncli(
            "heads", "--file", str(tmp_path / f"part{i}.txt"), "--model", BERT, "--json", "-o", str(shards[-1])
        )
        assert shard.returncode == 0
    merged = _heads("--merge", str(shards[0]), "--merge", str(shards[1]), "--merge", str(shards[2]))
    assert merged["texts"] == whole["texts"] == 120
    for a, b in zip(merged["heads"], whole["heads"], strict=True):
        assert a["pattern"] == b["pattern"]
        for name in STATISTICS:
            assert (a[name] is None) == (b[name] is None)
            if a[name] is not None:
                assert a[name] == pytest.approx(b[name], abs=1e-6)
    for name in STATISTICS:
        assert merged["partial_sums"]["counts"][name] == whole["partial_sums"]["counts"][name]


@pytest.mark.slow
def test_merge_refuses_results_of_another_model(tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    for name, model in (("bert", BERT), ("sample", "sample")):
        attncli(
            "heads", "--file", str(tmp_path / "a.txt"), "--model", model, "--json", "-o", str(tmp_path / f"{name}.json")
        )
    run = attncli("heads", "--merge", str(tmp_path / "bert.json"), "--merge", str(tmp_path / "sample.json"), text=True)
    assert run.returncode == 2 and "is for another model" in run.stderr


@pytest.mark.slow
def test_json_lines_carry_their_id_and_bad_lines_are_named(tmp_path):
    source = tmp_path / "corpus.jsonl"
    source.write_text(
        '{"id": "a1", "body": "The cat sat."}\n'
        "not json at all\n"
        '{"id": 7, "body": "A dog ran."}\n'
        '{"id": 8, "title": "no body"}\n'
    )
    run = attncli("batch", str(source), "--model", BERT, "--field", "body", "--id", "id", text=True)
    assert run.returncode == 3
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["line"], r.get("id"), "error" in r) for r in records] == [
        (1, "a1", False),
        (2, None, True),
        (3, 7, False),
        (4, None, True),
    ]
    assert records[0]["text"] == "The cat sat." and "no text in field 'body'" in records[3]["error"]
    from jsonschema import Draft202012Validator

    from attncli.schema import command_schema

    validator = Draft202012Validator(command_schema("batch"))
    for record in records:
        validator.validate(record)
    assert "2 of 4 lines failed (line 2, 4)" in run.stderr
    heads = attncli("heads", "--file", str(source), "--model", BERT, "--field", "body", "--json", text=True)
    assert heads.returncode == 3 and json.loads(heads.stdout)["texts"] == 2
    assert "2 of 4 lines failed (line 2, 4), left out of the statistics; line 2: not a JSON object" in heads.stderr
    plain = tmp_path / "plain.txt"
    plain.write_text("The cat sat.\nA dog ran.\n")
    assert json.loads(heads.stdout)["heads"] == _heads("--file", str(plain), "--model", BERT)["heads"]


@pytest.mark.slow
def test_a_dask_cluster_gives_the_single_process_numbers(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra: pip install '.[dask]'")
    source = tmp_path / "corpus.txt"
    write_corpus(source, 150)
    alone = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json")
    batch_alone = attncli("batch", str(source), "--model", BERT, "--jobs", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        shared = attncli("heads", "--file", str(source), "--model", BERT, "--dask", address, "--json", timeout=120)
        batch_shared = attncli("batch", str(source), "--model", BERT, "--dask", address, timeout=120)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout == alone.stdout and batch_shared.stdout == batch_alone.stdout


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    run = attncli("heads", "--file", str(tmp_path / "a.txt"), "--dask", "tcp://127.0.0.1:9", env=env, text=True)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("silent", "no answer within 2 s"),
        ("garbage", "MemoryError: "),
        ("closing", "it closed the connection without a Dask handshake"),
        (None, "ValueError: missing port number in address '…'; is it the address of a Dask scheduler"),
    ],
)
def test_a_server_that_is_not_a_scheduler_is_one_line_in_the_time_given(tmp_path, server, message):
    """A server that accepts and never answers, one that answers garbage (read as a frame size, it
    asks for petabytes), one that hangs up, and a 10,000-character address that is none."""
    pytest.importorskip("distributed")
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = "x" * 10_000 if server is None else f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        threading.Thread(target=_serve, args=(listener, server), daemon=True).start()
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
        started = time.monotonic()
        run = attncli("batch", str(tmp_path / "a.txt"), "--dask", address, env=env, text=True, timeout=30)
    assert time.monotonic() - started < 15
    assert run.returncode == 2 and run.stdout == "" and len(run.stderr.splitlines()) == 1, run.stderr
    where = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (10,000 characters)" if server is None else address
    assert run.stderr.startswith(f"attncli: error: cannot reach the Dask scheduler at '{where}': {message}")
    assert len(run.stderr) < 300


@pytest.mark.slow
def test_ctrl_c_while_a_silent_server_is_awaited_ends_the_run_at_once(tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "a.txt").write_text("The cat sat.\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=_serve, args=(listener, "silent"), daemon=True).start()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        command = [ATTNCLI, "batch", str(tmp_path / "a.txt"), "--dask", address]
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
            time.sleep(3)  # started, and waiting for the handshake (30 s by default)
            interrupted = time.monotonic()
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
    assert (process.returncode, stderr) == (130, "attncli: interrupted\n")
    assert time.monotonic() - interrupted < 5


def _serve(listener: socket.socket, server: str | None) -> None:
    """Accept connections on `listener` and answer them as `server` says, until it is closed."""
    connections = []
    with contextlib.suppress(OSError):
        while True:
            connection, _ = listener.accept()
            connections.append(connection)
            if server == "garbage":
                connection.sendall(bytes(range(256)) * 4)
            elif server == "closing":
                connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["batch", "heads"])
def test_a_cluster_lost_mid_run_is_one_line_and_resume_finishes_the_run(tmp_path, command):
    distributed = pytest.importorskip("distributed", reason="the dask extra: pip install '.[dask]'")
    source = tmp_path / "corpus.txt"
    write_corpus(source, 4000)
    args = ["batch", str(source)] if command == "batch" else ["heads", "--file", str(source), "--json"]
    whole, target = tmp_path / "whole", tmp_path / "out"
    assert attncli(*args, "--model", BERT, "--jobs", "1", "-o", str(whole), timeout=300).returncode == 0
    checkpoint = tmp_path / "out.partial"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        command_line = [ATTNCLI, *args, "--model", BERT, "--dask", cluster.scheduler_address, "-o", str(target)]
        with subprocess.Popen(command_line, stderr=subprocess.PIPE, text=True) as process:
            deadline = time.monotonic() + 60
            while not (checkpoint.exists() and checkpoint.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.01)
            cluster.close()  # the scheduler and its workers, mid-run
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert stderr == (
        f"attncli: error: lost the Dask scheduler at '{cluster.scheduler_address}' mid-run "
        "(scheduler-connection-lost); run again (with --resume where the run wrote a file)\n"
    )
    assert checkpoint.exists() and not target.exists()  # what was done is kept
    resumed = attncli(*args, "--model", BERT, "--jobs", "1", "-o", str(target), "--resume", timeout=300)
    assert resumed.returncode == 0 and target.read_bytes() == whole.read_bytes()


@pytest.mark.slow
def test_a_text_too_long_for_the_model_fails_alone_in_its_pack(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text("The cat sat.\n" + "word " * 130 + "\nA dog ran.\n")
    run = attncli("heads", "--file", str(source), "--model", BERT, "--json", text=True)
    assert run.returncode == 3 and json.loads(run.stdout)["texts"] == 2
    assert "1 of 3 lines failed (line 2), left out of the statistics; line 2: the text is 522 tokens" in run.stderr
    two = tmp_path / "two.txt"
    two.write_text("The cat sat.\nA dog ran.\n")
    assert json.loads(run.stdout)["heads"] == _heads("--file", str(two), "--model", BERT)["heads"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_to_a_shared_run_ends_it_cleanly_and_resume_finishes_it(tmp_path, signal_name):
    """Ctrl-C (or SIGTERM) reaches the whole process group, workers included: the run must end with
    its code, no traceback and no wait for ever, and --resume must then give the uninterrupted bytes."""
    source = tmp_path / "corpus.txt"
    write_corpus(source, 2000)
    fresh = tmp_path / "fresh.jsonl"
    assert attncli("batch", str(source), "--model", BERT, "--jobs", "1", "-o", str(fresh), timeout=300).returncode == 0
    target = tmp_path / "out.jsonl"
    command = [ATTNCLI, "batch", str(source), "--model", BERT, "--jobs", "2", "-o", str(target)]
    for delay in (0.3, 0.8, 1.5, 2.5):
        resume = ["--resume"] if (tmp_path / "out.jsonl.partial").exists() else []
        with subprocess.Popen([*command, *resume], stderr=subprocess.PIPE, start_new_session=True) as process:
            time.sleep(delay)
            if process.poll() is None:
                os.killpg(process.pid, getattr(signal, signal_name))
            _, stderr = process.communicate(timeout=60)
        assert process.returncode in (0, 130 if signal_name == "SIGINT" else 143), stderr
        assert b"Traceback" not in stderr and len(stderr.splitlines()) <= 1
        if process.returncode == 0:
            break
    if not target.exists():
        assert attncli(*command[1:], "--resume", timeout=300).returncode == 0
    assert target.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_signal_while_the_pool_starts_ends_the_run_and_every_worker(tmp_path, signal_name):
    """The moments after the first process of a pool is spawned (its resource tracker, then its
    workers, still importing): SIGTERM ends the run with 143, and after SIGKILL of the parent no
    process of its group outlives it by more than two seconds."""
    source = tmp_path / "corpus.txt"
    write_corpus(source, 4000)
    for attempt, delay in enumerate((0, 0, 0.02, 0.05, 0.1, 0.2, 0.4)):
        target, log = tmp_path / f"out{attempt}.jsonl", tmp_path / f"stderr{attempt}"
        command = [ATTNCLI, "batch", str(source), "--model", BERT, "--jobs", "2", "-o", str(target)]
        # stderr to a file: a worker that outlived the parent would hold a pipe open
        with open(log, "wb") as stderr, subprocess.Popen(command, stderr=stderr, start_new_session=True) as process:
            try:
                deadline = time.monotonic() + 30
                while len(_process_group(process.pid)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(delay)
                process.send_signal(getattr(signal, signal_name))
                code = process.wait(timeout=60)
                deadline = time.monotonic() + 2
                while _process_group(process.pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert _process_group(process.pid) == [], f"left running {delay} s into the pool"
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        if signal_name == "SIGTERM":
            assert (code, log.read_text()) == (143, "attncli: interrupted\n"), f"{delay} s into the pool"


def _process_group(group: int) -> list[int]:
    """The processes of process group `group` that are alive (not zombies), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended as it was read
            state, _, process_group = stat.read_text().rpartition(")")[2].split()[:3]
            if int(process_group) == group and state != "Z":
                members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
def test_a_corpus_where_every_line_fails_says_why_and_leaves_nothing_to_resume(tmp_path):
    source = tmp_path / "long.txt"
    source.write_text(("word " * 130 + "\n") * 3)
    target = tmp_path / "stats.json"
    run = attncli("heads", "--file", str(source), "--model", BERT, "-o", str(target), text=True)
    assert run.returncode == 3 and "3 of 3 lines failed" in run.stderr and "reads at most 512" in run.stderr
    assert not target.exists() and not (tmp_path / "stats.json.partial").exists()


def write_lines(tmp_path, *lines) -> str:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_batch_writes_a_record_per_non_empty_line(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "", "A dog barked.")
    run = cli("batch", source, "--model", BERT)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [record["line"] for record in records] == [1, 3]
    validator = jsonschema.Draft202012Validator(schemas()["batch"])
    for record in records:
        validator.validate(record)
        assert "steps" not in record
        assert np.array(record["attention"]).shape[:2] == (2, 4)


def test_a_failing_line_gives_an_error_record_and_exit_3(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "word " * 130, "A dog barked.")
    run = cli("batch", source, "--model", BERT)
    assert run.code == 3
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [sorted(record)[:2] for record in records][1] == ["command", "error"]
    assert records[1]["line"] == 2 and "reads at most 512" in records[1]["error"]
    assert records[2]["line"] == 3
    assert "1 of 3 lines failed (line 2)" in run.stderr
    fast = cli("batch", source, "--model", BERT, "--fail-fast")
    assert fast.code == 3
    assert len(fast.stdout.splitlines()) == 2


def test_batch_steps_precision_and_output_file(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.")
    target = tmp_path / "out.jsonl"
    run = cli("batch", source, "--steps", "--precision", "2", "-o", str(target))
    assert run.code == 0 and run.stdout == ""
    record = json.loads(target.read_text())
    assert "steps" in record
    assert all(round(w, 2) == w for w in np.ravel(record["attention"]))


def test_batch_reads_standard_input(cli):
    run = cli("batch", "-", stdin="The cat sat.\nA dog barked.\n")
    assert [json.loads(line)["text"] for line in run.stdout.splitlines()] == ["The cat sat.", "A dog barked."]


def test_heads_over_a_file_averages_the_lines(cli, tmp_path):
    texts = ["The cat sat on the mat.", "", "A dog barked.", "   "]
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    doc = cli("heads", "--file", str(tmp_path / "texts.txt"), "--model", BERT, "--json").json()
    one = cli("heads", "The cat sat on the mat.", "--model", BERT, "--json").json()
    two = cli("heads", "A dog barked.", "--model", BERT, "--json").json()
    assert doc["texts"] == 2 and doc["text"] is None
    for averaged, first, second in zip(doc["heads"], one["heads"], two["heads"], strict=True):
        assert_allclose(averaged["distance"], (first["distance"] + second["distance"]) / 2)


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_heads_of_a_file_without_a_text_is_one_line_and_exit_2(cli, tmp_path, content):
    source = tmp_path / "empty.txt"
    source.write_text(content)
    run = cli("heads", "--file", str(source), "--json")
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == "attncli: error: --file has no non-empty lines: no texts to average over\n"


def test_a_batch_stopped_by_fail_fast_leaves_the_output_file_as_it_was(cli, tmp_path):
    """A run that stopped is not a result: FILE (a complete earlier one here) is not replaced by the
    records before the failure, which wait in FILE.partial; --resume goes on past it."""
    source = write_lines(tmp_path, "The cat sat.", "word " * 130, "A dog barked.")
    target, partial = tmp_path / "out.jsonl", tmp_path / "out.jsonl.partial"
    target.write_text("an earlier run's records\n")
    fast = cli("batch", source, "--model", BERT, "--fail-fast", "-o", str(target))
    assert fast.code == 3 and target.read_text() == "an earlier run's records\n"
    assert fast.stderr == (
        f"attncli: 1 of 3 lines failed (line 2); stopped there, so {target} is not written: "
        f"the records so far are in {partial} for --resume\n"
    )
    assert [json.loads(line)["line"] for line in partial.read_text().splitlines()] == [1, 2]
    resumed = cli("batch", source, "--model", BERT, "-o", str(target), "--resume")
    assert resumed.code == 3 and "1 of 3 lines failed (line 2)" in resumed.stderr
    assert target.read_text() == cli("batch", source, "--model", BERT).stdout and not partial.exists()


def test_fail_fast_on_the_last_line_has_stopped_nothing_and_writes_the_file(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "A dog barked.", "word " * 130)
    target = tmp_path / "out.jsonl"
    fast = cli("batch", source, "--model", BERT, "--fail-fast", "-o", str(target))
    assert fast.code == 3 and fast.stderr == 'attncli: 1 of 3 lines failed (line 3); their records carry "error"\n'
    assert target.read_text().count("\n") == 3 and not (tmp_path / "out.jsonl.partial").exists()


def _shard(cli, tmp_path, name: str = "shard.json") -> tuple[Path, dict]:
    """A heads --json result over two lines, to merge: (its file, its document)."""
    source = write_lines(tmp_path, "The cat sat.", "A dog barked.")
    path = tmp_path / name
    assert cli("heads", "--file", source, "--model", BERT, "--json", "-o", str(path)).code == 0
    return path, json.loads(path.read_text())


def test_merge_counts_a_file_once_however_it_is_named(cli, tmp_path):
    shard, _ = _shard(cli, tmp_path)
    os.link(shard, tmp_path / "hard.json")
    (tmp_path / "soft.json").symlink_to(shard)
    for other in ("hard.json", "soft.json"):
        run = cli("heads", "--merge", str(shard), "--merge", str(tmp_path / other))
        assert (
            run.code == 2
            and run.stderr == "attncli: error: --merge names one file twice; its texts would count twice\n"
        )


def _every_cell(document: dict, kind: str, value) -> dict:
    """`document` with every cell of its first statistic's partial sums (kind "sums" or "counts") set to `value`."""
    name = next(iter(document["partial_sums"][kind]))
    document["partial_sums"][kind][name] = [[value] * len(row) for row in document["partial_sums"][kind][name]]
    return document


@pytest.mark.parametrize(
    "damage",
    [
        lambda document: _every_cell(document, "counts", -1),
        lambda document: _every_cell(document, "counts", 3),  # more than its 2 texts
        lambda document: _every_cell(document, "counts", 1.5),
        lambda document: _every_cell(document, "sums", -0.5),
        lambda document: _every_cell(document, "sums", "0.5"),
        lambda document: document["partial_sums"].update(texts="2") or document,
        lambda document: document["partial_sums"].update(texts=2.0) or document,
        lambda document: document["model"].update(name=5) or document,
        lambda document: document["model"].update(name=None) or document,
    ],
    ids=[
        "negative count",
        "count past texts",
        "half count",
        "negative sum",
        "sum a string",
        "texts a string",
        "texts a float",
        "model name a number",
        "model name null",
    ],
)
def test_merge_refuses_partial_sums_no_run_could_have_written(cli, tmp_path, damage):
    shard, document = _shard(cli, tmp_path)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(damage(document)))
    run = cli("heads", "--merge", str(shard), "--merge", str(damaged))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == f"attncli: error: --merge {damaged} is not an attncli heads --json result with partial sums\n"


def test_merge_says_a_shard_of_an_earlier_attncli_lacks_the_statistics_added_since(cli, tmp_path):
    shard, document = _shard(cli, tmp_path)
    for part in ("sums", "counts"):
        for name in ("duplicate", "induction"):
            del document["partial_sums"][part][name]
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(document))
    run = cli("heads", "--merge", str(shard), "--merge", str(earlier))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == (
        f"attncli: error: --merge {earlier} has no partial sums of duplicate, induction: an earlier attncli wrote "
        "it; run heads on its texts again\n"
    )


def test_merge_refuses_sums_that_together_pass_float64s_range(cli, tmp_path):
    """1e308 + 1e308 is no number: the merged result would say null (and numpy warn on stderr)."""
    _, document = _shard(cli, tmp_path)
    shards = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in shards:
        path.write_text(json.dumps(_every_cell(document, "sums", 1e308)))
    run = cli("heads", "--merge", str(shards[0]), "--merge", str(shards[1]), "--json")
    assert run.code == 2 and run.stdout == ""
    assert (
        run.stderr
        == f"attncli: error: --merge {shards[1]}: its partial sums, added to the others', pass float64's range\n"
    )


def test_merge_refuses_sums_of_another_shape_than_the_model_they_name(cli, tmp_path):
    """A result that says 3 layers, with sums for 3, of a checkpoint that has 2: its means would be of heads
    the model does not have."""
    _, document = _shard(cli, tmp_path)
    document["model"]["layers"] = 3
    for kind in ("sums", "counts"):
        for rows in document["partial_sums"][kind].values():
            rows.append(rows[0])
    shard = tmp_path / "three.json"
    shard.write_text(json.dumps(document))
    run = cli("heads", "--merge", str(shard))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == (
        f"attncli: error: --merge {shard}: its model, loaded again, has 2 × 4 heads, not the partial sums' 3 × 4\n"
    )


def test_merge_takes_the_files_a_shell_glob_gives_after_it(cli, tmp_path):
    shards = []
    for name, texts in (("a", ["The cat sat.", "A dog ran."]), ("b", ["It was tired."]), ("c", ["The end."])):
        source = write_lines(tmp_path, *texts)
        shards.append(str(tmp_path / f"{name}.json"))
        assert cli("heads", "--file", source, "--json", "-o", shards[-1]).code == 0
    globbed = cli("heads", "--merge", *shards, "--json")  # what `--merge shards/*.json` hands over
    repeated = cli("heads", "--merge", shards[0], "--merge", shards[1], "--merge", shards[2], "--json")
    assert globbed.code == repeated.code == 0, globbed.stderr
    assert globbed.stdout == repeated.stdout and globbed.json()["texts"] == 4
    with_text = cli("heads", "--merge", *shards, "The cat sat.")  # a shard like the others: one that is no file
    missing = cli("heads", "--merge", shards[0], "--merge", "The cat sat.")
    assert with_text.code == missing.code == 2 and with_text.stderr == missing.stderr == (
        "attncli: error: --merge The cat sat.: No such file or directory\n"
    )
    several = cli("heads", "The", "cat", "sat.")
    assert several.code == 2 and several.stderr == (
        "attncli: error: give one TEXT, in quotes (got 3 arguments); to join saved results, use --merge FILE...\n"
    )
    help_text = cli("heads", "--help", env={"COLUMNS": "200"}).stdout
    assert "--merge shards/*.json" in help_text and "After --merge: more files to merge." in help_text


def test_ids_pass_through_exactly_as_they_were_written(cli, tmp_path):
    ids = ["1.50", "0.123456789", str(2**64 + 1), "-" + "9" * 30, "null", "1e2", '{"a":[2.50,7]}', '"a1"', "true"]
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(f'{{"id": {id}, "body": "The cat sat."}}\n' for id in ids))
    run = cli("batch", str(source), "--field", "body", "--id", "id", "--precision", "1")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line[line.rindex(',"id":') + 6 : -1] for line in lines] == ids
    assert all(round(w, 1) == w for w in np.ravel(json.loads(lines[0])["attention"]))  # the rest is rounded


def test_a_line_that_is_not_utf8_fails_alone(cli, tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_bytes(b"\xef\xbb\xbfThe cat sat.\nA \xff dog ran.\r\nIt was tired.\n")
    run = cli("batch", str(source))
    assert run.code == 3
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(record["line"], record.get("text"), record.get("error")) for record in records] == [
        (1, "The cat sat.", None),
        (2, None, "not UTF-8 (bad byte at offset 2 of the line)"),
        (3, "It was tired.", None),
    ]
    assert run.stderr == 'attncli: 1 of 3 lines failed (line 2); their records carry "error"\n'
    for field in ([], ["--field", "body"]):
        if field:
            source.write_bytes(b'{"body": "The cat sat."}\n{"body": "A \xff dog"}\n{"body": "It was tired."}\n')
        heads = cli("heads", "--file", str(source), *field, "--json")
        assert heads.code == 3 and heads.json()["texts"] == 2
        assert heads.stderr == (
            "attncli: 1 of 3 lines failed (line 2), left out of the statistics; line 2: not UTF-8 "
            f"(bad byte at offset {12 if field else 2} of the line)\n"
        )


def test_jobs_are_capped_at_the_cores_and_the_partitions_and_it_is_said(cli, tmp_path, monkeypatch):
    from attncli import corpus
    from attncli.cli import WORDS

    monkeypatch.setattr(corpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    used = []
    monkeypatch.setattr(
        corpus, "run", lambda work, parts, jobs=1, dask=None, progress=None: used.append(jobs) or map(work, parts)
    )
    notices = []
    for parts, asked in ((9, 1000), (3, 1000), (3, 3), (9, None)):
        notices.clear()
        runner = corpus.Runner(corpus.ModelRecipe("sample"), WORDS, jobs=asked, notify=notices.append)
        assert list(runner.results(str, list(range(parts)))) == [str(part) for part in range(parts)]
        assert [notice.worded(WORDS) for notice in notices] == {
            (9, 1000): ["--jobs 1000: using 4 processes, one per core"],
            (3, 1000): ["--jobs 1000: using 3 processes, one per partition of 64 lines"],
        }.get((parts, asked), [])
    assert used == [4, 3, 3, 4]
    run = cli("heads", "--file", write_lines(tmp_path, "The cat sat.", "A dog ran."), "--jobs", "1000", "--json")
    assert run.code == 0 and run.stderr == "attncli: --jobs 1000: using 1 process, one per partition of 64 lines\n"


def test_merged_detector_scores_are_the_means_over_the_texts_they_apply_to(cli, tmp_path):
    """A text without a repeated token has no duplicate or induction score: its shard leaves those means to the
    texts that have one, and adds to the others."""
    repeated, distinct = "the cat sat and the cat ran", "a dog sat"
    shards = []
    for name, text in (("repeated", repeated), ("distinct", distinct)):
        shards.append(tmp_path / f"{name}.json")
        assert cli("heads", text, "--model", BERT, "--json", "-o", str(shards[-1])).code == 0
    alone = [json.loads(shard.read_text()) for shard in shards]
    assert all(head["duplicate"] is None and head["induction"] is None for head in alone[1]["heads"])
    merged = cli("heads", "--merge", str(shards[0]), str(shards[1]), "--json").json()
    assert merged["partial_sums"]["counts"]["duplicate"] == [[1] * 4] * 2
    for head, first, second in zip(merged["heads"], *(shard["heads"] for shard in alone), strict=True):
        assert head["duplicate"] == pytest.approx(first["duplicate"], abs=1e-15)
        assert head["induction"] == pytest.approx(first["induction"], abs=1e-15)
        assert head["entropy"] == pytest.approx((first["entropy"] + second["entropy"]) / 2, abs=1e-15)


def test_heads_over_a_file_of_norms_averages_what_each_line_gives_alone(cli, tmp_path):
    """The texts run packed, their norms made in the packed pass: the same statistics as each text's own."""
    texts = ["The cat sat on the mat.", "A dog barked.", PRONOUN]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    doc = cli("heads", "--file", str(tmp_path / "texts.txt"), "--model", BERT, "--measure", "norms", "--json").json()
    alone = [cli("heads", text, "--model", BERT, "--measure", "norms", "--json").json() for text in texts]
    weights = cli("heads", "--file", str(tmp_path / "texts.txt"), "--model", BERT, "--json").json()
    assert doc["measure"] == "norms" and "measure" not in weights
    for averaged, *each in zip(doc["heads"], *(one["heads"] for one in alone), strict=True):
        assert_allclose(averaged["entropy"], np.mean([one["entropy"] for one in each]), rtol=1e-5)
    assert [h["entropy"] for h in doc["heads"]] != pytest.approx([h["entropy"] for h in weights["heads"]])


def test_merge_joins_runs_of_one_measure_and_says_which(cli, tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    (tmp_path / "b.txt").write_text("The bird sang.\n")
    for name in ("a", "b"):
        for measure in ("weights", "norms"):
            saved = tmp_path / f"{name}-{measure}.json"
            run = cli(
                "heads",
                "--file",
                str(tmp_path / f"{name}.txt"),
                "--model",
                BERT,
                "--measure",
                measure,
                "-o",
                str(saved),
            )
            assert run.code == 0, run.stderr
    merged = cli(
        "heads", "--merge", str(tmp_path / "a-norms.json"), "--merge", str(tmp_path / "b-norms.json"), "--json"
    )
    assert merged.json()["measure"] == "norms" and merged.json()["texts"] == 3
    mixed = cli("heads", "--merge", str(tmp_path / "a-norms.json"), "--merge", str(tmp_path / "b-weights.json"))
    assert mixed.code == 2 and mixed.stderr.count("\n") == 1
    assert f"b-weights.json holds statistics of weights, {tmp_path / 'a-norms.json'} of norms" in mixed.stderr
    asked = cli("heads", "--merge", str(tmp_path / "a-norms.json"), "--measure", "norms")
    assert asked.code == 2 and "give no --measure with it" in asked.stderr


@pytest.mark.parametrize("model", [BERT, GPT2, "sample"])
def test_summary_records_hold_what_heads_and_tokenize_give_each_line_alone(cli, tmp_path, model):
    source = write_lines(tmp_path, "The cat sat.", "word " * 1100, PRONOUN)
    run = cli("batch", source, "--model", model, "--summary")
    assert run.code == 3 and run.stderr.startswith("attncli: 1 of 3 lines failed (line 2)")
    records = [json.loads(line) for line in run.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(schemas()["batch"])
    for record in records:
        validator.validate(record)
    assert "error" in records[1] and not any("attention" in record or "summary" in record for record in records)
    for record in (records[0], records[2]):
        heads = cli("heads", record["text"], "--model", model, "--json").json()
        assert record["model"] == heads["model"]
        assert record["tokens"] == cli("tokenize", record["text"], "--model", model, "--json").json()["tokens"]
        for head in heads["heads"]:
            for name in (*STATISTICS, "pattern"):  # the same numbers, to the bit
                assert record["statistics"][name][head["layer"]][head["head"]] == head[name], name


def test_summary_records_carry_ids_and_round_to_the_precision(cli, tmp_path):
    source = tmp_path / "corpus.jsonl"
    source.write_text('{"id": 1.50, "body": "The cat sat."}\n{"id": "b", "body": "A dog ran."}\n')
    run = cli("batch", str(source), "--field", "body", "--id", "id", "--summary", "--precision", "3")
    assert run.code == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first.endswith(',"id":1.50}') and second.endswith(',"id":"b"}')  # as written, not rounded
    entropy = np.array(json.loads(first)["statistics"]["entropy"])
    assert entropy.shape == (1, 8) and np.array_equal(entropy, np.round(entropy, 3))


def test_a_summary_run_resumes_into_the_file_an_uninterrupted_run_writes(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "word " * 130, "A dog barked.")
    target, partial = tmp_path / "out.jsonl", tmp_path / "out.jsonl.partial"
    fast = cli("batch", source, "--model", BERT, "--summary", "--fail-fast", "-o", str(target))
    assert fast.code == 3 and [json.loads(line)["line"] for line in partial.read_text().splitlines()] == [1, 2]
    full = cli("batch", source, "--model", BERT, "-o", str(target), "--resume")
    assert full.code == 2 and "begun with another model, other texts or other options" in full.stderr
    resumed = cli("batch", source, "--model", BERT, "--summary", "-o", str(target), "--resume")
    assert resumed.code == 3 and not partial.exists()
    assert target.read_text() == cli("batch", source, "--model", BERT, "--summary").stdout


def test_summary_and_steps_are_refused_together_in_one_line(cli, tmp_path):
    run = cli("batch", write_lines(tmp_path, "The cat sat."), "--summary", "--steps")
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == (
        "attncli: error: --steps adds every intermediate to each record's attention, which --summary leaves out: "
        "give one of them\n"
    )


@pytest.mark.slow
def test_summary_records_are_the_same_however_many_processes_share_them(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 150)  # three partitions
    one = attncli("batch", str(source), "--model", BERT, "--summary", "--jobs", "1")
    two = attncli("batch", str(source), "--model", BERT, "--summary", "--jobs", "2")
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout and one.stdout.count(b"\n") == 150


@pytest.mark.parametrize("model", [BERT, GPT2, "sample"])
@pytest.mark.parametrize(
    "options", [[], ["--precision", "3"], ["--summary"], ["--summary", "--precision", "3"], ["--steps"]]
)
def test_the_size_estimate_is_within_a_quarter_of_what_a_run_writes(cli, tmp_path, model, options):
    from attncli import corpus
    from attncli.models import load_model

    texts = ["The cat sat.", PRONOUN, "A dog barked at night, loudly and for a long time, until the neighbours woke."]
    written = len(cli("batch", write_lines(tmp_path, *texts), "--model", model, *options).stdout.encode())
    loaded = load_model(model)
    info = loaded.info
    digits = corpus.FLOAT64_DIGITS if info.sample else corpus.FLOAT32_DIGITS
    precision = int(options[-1]) if "--precision" in options else None
    estimate = sum(
        corpus.record_bytes(
            len(loaded.tokenize(text)),
            info.layers,
            info.heads,
            causal=info.causal,
            digits=digits,
            scored_heads=info.heads,
            precision=precision,
            summary="--summary" in options,
            steps="--steps" in options,
            step_width=corpus._step_width(info),
        )
        for text in texts
    )
    assert written / 1.25 < estimate < written * 1.25


def test_a_run_that_would_write_over_a_gigabyte_says_so_before_any_work(cli, tmp_path, monkeypatch):
    from attncli import corpus
    from attncli.cli import WORDS

    source = write_lines(tmp_path, "The cat sat.", PRONOUN)
    quiet = cli("batch", source, "--model", GPT2)
    assert quiet.code == 0 and quiet.stderr == ""
    monkeypatch.setattr(corpus, "LARGE_OUTPUT", 1000)  # as if a gigabyte were a kilobyte
    loud = cli("batch", source, "--model", GPT2)
    assert loud.code == 0 and loud.stdout == quiet.stdout  # a warning: the run goes on
    assert re.fullmatch(
        r"attncli: this run will write about \d+ kB \(2 lines, every head's attention\); --summary would write "
        r"about \d+ kB \(or a smaller --max-tokens, which leaves the longest lines out\); going on\n",
        loud.stderr,
    )
    kept = cli("batch", source, "--model", GPT2, "--layers", "1", "--heads", "0").stderr
    assert "(2 lines, the kept heads' attention); --summary would write about" in kept
    summary = cli("batch", source, "--model", GPT2, "--summary")
    assert summary.stderr.startswith("attncli: this run will write about 7 kB (2 lines); --precision 4 would write")
    assert "--precision" not in cli("batch", source, "--model", GPT2, "--summary", "--precision", "2").stderr
    events = []
    partition = corpus.batch_partition

    def work(*args, **options) -> list[dict]:
        events.append("work")
        return partition(*args, **options)

    monkeypatch.setattr(corpus, "batch_partition", work)
    runner = corpus.Runner(corpus.ModelRecipe(GPT2), WORDS, notify=events.append)
    corpus.batch(corpus.read(source, "batch_file"), runner, tmp_path / "out.jsonl")
    assert [type(event) for event in events] == [corpus.Notice, str]


@pytest.mark.slow
def test_summary_records_on_a_dask_cluster_are_the_single_process_ones(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra: pip install '.[dask]'")
    source = tmp_path / "corpus.txt"
    write_corpus(source, 100)
    alone = attncli("batch", str(source), "--model", BERT, "--summary", "--jobs", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        shared = attncli("batch", str(source), "--model", BERT, "--summary", "--dask", cluster.scheduler_address)
    assert shared.returncode == 0 and shared.stdout == alone.stdout and alone.stdout.count(b"\n") == 100


def _partition(count: int, repeat: int = 4) -> list:
    """`count` lines of a corpus, each PRONOUN `repeat` times."""
    from attncli import corpus

    return [corpus.Text(line, " ".join([PRONOUN] * repeat)) for line in range(1, count + 1)]


@pytest.mark.parametrize("command", ["heads", "batch"])
def test_a_partition_counts_its_lines_as_its_passes_layers_are_done(monkeypatch, command):
    from attncli import commands, corpus

    monkeypatch.setattr(corpus, "REPORT_EVERY", 0.0)  # every layer's report
    monkeypatch.setattr(commands, "PACK_TOKENS", 100)  # heads packs a few lines a pass
    part, reports = _partition(7), []
    recipe = corpus.ModelRecipe(GPT2)  # two layers
    if command == "heads":
        corpus.heads_partition(recipe, 512, {}, "weights", EVERYTHING, part, report=reports.append)
    else:
        corpus.batch_partition(recipe, False, 512, {}, False, EVERYTHING, part, report=reports.append)
    assert reports == sorted(reports) and 0 < reports[0] < 1 and reports[-1] == 7
    assert any(count != int(count) for count in reports)  # lines part done, a layer of two at a time


def _progress_of(jobs: int, parts: list) -> list[tuple[str, int, float]]:
    """(thread, part, lines done) of each call of the progress of a heads run over `parts` on `jobs` processes."""
    import functools

    from attncli import corpus

    calls = []
    work = functools.partial(corpus.heads_partition, corpus.ModelRecipe(GPT2), 512, {}, "weights", EVERYTHING)
    progress = lambda index, done: calls.append((threading.current_thread().name, index, done))  # noqa: E731
    results = list(corpus.run(work, parts, jobs, progress=progress))
    assert len(results) == len(parts)
    return calls


def test_a_run_counts_every_line_of_its_partitions_and_none_twice():
    parts = [_partition(3), _partition(5), _partition(2)]
    calls = _progress_of(1, parts)
    done = {}
    for _, index, count in calls:
        assert count >= done.get(index, 0)
        done[index] = count
    assert done == {0: 3, 1: 5, 2: 2}


@pytest.mark.slow
def test_a_pool_s_workers_report_their_partitions_as_they_go():
    parts = [_partition(4, repeat=20) for _ in range(6)]
    calls = _progress_of(2, parts)
    heard = [(index, count) for thread, index, count in calls if thread == "attncli-progress"]
    assert heard and all(count <= 4 for _, count in heard)  # from the workers, by the thread that listens
    assert {index: count for _, index, count in calls if _ == "MainThread"} == dict.fromkeys(range(6), 4)


def test_a_run_without_progress_gives_its_partitions_no_report(monkeypatch):
    from attncli import corpus

    given, partition = [], corpus.batch_partition

    def work(*args, **options) -> list[dict]:
        given.append(options)
        return partition(*args, **options)

    monkeypatch.setattr(corpus, "batch_partition", work)
    corpus.batch(corpus.Corpus(_partition(3), []), corpus.Runner(corpus.ModelRecipe(GPT2), jobs=1))
    assert given == [{}]
