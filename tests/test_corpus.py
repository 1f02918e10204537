"""Corpus-scale heads and batch: shared over processes or a Dask cluster with the same numbers, JSON
Lines input, partial sums that merge, and runs that survive kill -9."""

import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import ATTNCLI, BERT, attncli, read_until_closed

from attncli.analysis import STATISTICS

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "animal", "street", "because", "it", "was", "too", "tired"]


def _corpus(path, lines: int, seed: int = 1) -> list[str]:
    chooser = random.Random(seed)
    texts = [" ".join(chooser.choice(WORDS) for _ in range(chooser.randint(3, 14))) for _ in range(lines)]
    path.write_text("\n".join(texts) + "\n")
    return texts


def _heads(*args: str, **options) -> dict:
    run = attncli("heads", *args, "--json", text=True, **options)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_jobs_share_the_work_without_moving_a_number(tmp_path):
    source = tmp_path / "corpus.txt"
    _corpus(source, 150)  # three partitions
    one = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json")
    two = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "2", "--json")
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout
    batch_one = attncli("batch", str(source), "--model", BERT, "--jobs", "1")
    batch_two = attncli("batch", str(source), "--model", BERT, "--jobs", "2")
    assert batch_one.stdout == batch_two.stdout and batch_one.stdout.count(b"\n") == 150


def test_shards_merge_into_the_run_over_the_whole_corpus(tmp_path):
    texts = _corpus(tmp_path / "all.txt", 120)
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


def test_merge_refuses_results_of_another_model(tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    for name, model in (("bert", BERT), ("sample", "sample")):
        attncli(
            "heads", "--file", str(tmp_path / "a.txt"), "--model", model, "--json", "-o", str(tmp_path / f"{name}.json")
        )
    run = attncli("heads", "--merge", str(tmp_path / "bert.json"), "--merge", str(tmp_path / "sample.json"), text=True)
    assert run.returncode == 2 and "is for another model" in run.stderr


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


def test_a_batch_cut_short_resumes_without_losing_or_repeating_a_line(tmp_path):
    source = tmp_path / "corpus.txt"
    _corpus(source, 1500)
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
    _corpus(source, 1500)
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


def test_a_dask_cluster_gives_the_single_process_numbers(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra: pip install '.[dask]'")
    source = tmp_path / "corpus.txt"
    _corpus(source, 150)
    alone = attncli("heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json")
    batch_alone = attncli("batch", str(source), "--model", BERT, "--jobs", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        shared = attncli("heads", "--file", str(source), "--model", BERT, "--dask", address, "--json", timeout=120)
        batch_shared = attncli("batch", str(source), "--model", BERT, "--dask", address, timeout=120)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout == alone.stdout and batch_shared.stdout == batch_alone.stdout


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "a.txt").write_text("The cat sat.\nA dog ran.\n")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    run = attncli("heads", "--file", str(tmp_path / "a.txt"), "--dask", "tcp://127.0.0.1:9", env=env, text=True)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in run.stderr


@pytest.mark.parametrize(
    "architecture",
    ["bert", "roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"],
)
def test_texts_packed_into_one_forward_pass_get_their_own_attention(architecture):
    """Packed texts share the projections and feed-forward layers, never attention: each text's
    weights (its own positions, masks, sliding windows and RoPE) are those of a pass of its own."""
    from helpers import FIXTURES

    from attncli.commands import _tokens
    from attncli.models import load_model

    model = load_model(str(FIXTURES / architecture))
    texts = ["The cat sat on the mat.", "A dog", "it was too tired because the street was wide and long", "x"]
    tokens = [_tokens(text, model, 512) for text in texts]
    packed = model.run_many(tokens)
    for one, weights in zip(tokens, packed, strict=True):
        alone = model.run(one, keep_steps=False).weights
        assert weights.shape == alone.shape
        np.testing.assert_allclose(weights, alone, atol=1e-6, rtol=0)


def test_a_text_too_long_for_the_model_fails_alone_in_its_pack(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text("The cat sat.\n" + "word " * 130 + "\nA dog ran.\n")
    run = attncli("heads", "--file", str(source), "--model", BERT, "--json", text=True)
    assert run.returncode == 3 and json.loads(run.stdout)["texts"] == 2
    assert "1 of 3 lines failed (line 2), left out of the statistics; line 2: the text is 522 tokens" in run.stderr
    two = tmp_path / "two.txt"
    two.write_text("The cat sat.\nA dog ran.\n")
    assert json.loads(run.stdout)["heads"] == _heads("--file", str(two), "--model", BERT)["heads"]


def test_progress_on_a_terminal_counts_lines_with_their_rate(tmp_path):
    import pty

    source = tmp_path / "corpus.txt"
    _corpus(source, 400)
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [ATTNCLI, "heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "100"},
    ) as process:
        os.close(terminal)
        shown = read_until_closed(controller)
        assert process.wait(timeout=120) == 0
    os.close(controller)
    text = shown.decode(errors="replace")
    assert "/400" in text and "lines/s" in text


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_to_a_shared_run_ends_it_cleanly_and_resume_finishes_it(tmp_path, signal_name):
    """Ctrl-C (or SIGTERM) reaches the whole process group, workers included: the run must end with
    its code, no traceback and no wait for ever, and --resume must then give the uninterrupted bytes."""
    source = tmp_path / "corpus.txt"
    _corpus(source, 2000)
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


def test_a_corpus_where_every_line_fails_says_why_and_leaves_nothing_to_resume(tmp_path):
    source = tmp_path / "long.txt"
    source.write_text(("word " * 130 + "\n") * 3)
    target = tmp_path / "stats.json"
    run = attncli("heads", "--file", str(source), "--model", BERT, "-o", str(target), text=True)
    assert run.returncode == 3 and "3 of 3 lines failed" in run.stderr and "reads at most 512" in run.stderr
    assert not target.exists() and not (tmp_path / "stats.json.partial").exists()


def test_batch_to_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    source = tmp_path / "corpus.txt"
    _corpus(source, 70)
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    assert attncli("batch", str(source), "--model", BERT, "-o", str(link)).returncode == 0
    assert link.is_symlink() and real.read_text().count("\n") == 70
