"""make bench: attncli against the torch + transformers peer on all-MiniLM-L6-v2 and on checkpoints of
larger models' shapes (random weights, made once), in one run.

Each command runs as its own process; wall time is the median of several runs,
the commands compared taking turns, and peak memory is the child's maximum
resident set size (from wait4). Both
sides get the same environment, with OPENBLAS_CORETYPE removed (it slows
numpy where it is set). Needs the minilm checkpoint (make model) and the peer's
virtual environment (made by make bench).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from attncli.bundled import SAMPLE_DIR
from attncli.checkpoint import resolve

TEXT = "The animal didn't cross the street because it was too tired"
# Start-up's floor: the four imports and building the bundled 30,522-token WordPiece vocabulary,
# which every command on the sample model needs before attncli runs a line of its own.
FLOOR = "import numpy, tokenizers, typer, rich; tokenizers.models.WordPiece.from_file({!r})"
# The same with the collector kept off during the imports and frozen after them, as attncli's
# entry point does (see attncli.main): against this, only attncli's own work is left.
FROZEN_FLOOR = "import gc; gc.disable(); " + FLOOR + "; gc.freeze(); gc.enable()"
HERE = Path(__file__).resolve().parent
# The decoder row's checkpoint: random weights in Qwen2.5-0.5B's shape, made once, kept out of the repository.
DECODER = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "attncli-bench" / "qwen2.5-0.5b-shape"
# The mixture-of-experts row's: Qwen3-30B-A3B's shape with 4 of its 48 layers, random weights, made once, kept out too.
MOE = DECODER.parent / "qwen3-30b-a3b-shape-4-layers"
# The large model's row: random weights in Llama-3.1-8B's shape (bf16, about 16 GB), made once, beside it.
LARGE = DECODER.parent / "llama-3.1-8b-shape"
# The Pythia row's: random weights in pythia-410m's shape (GPT-NeoX), made once, beside it.
PYTHIA = DECODER.parent / "pythia-410m-shape"
# The encoder rows': random weights in these models' shapes (bench/make_encoders.py's SHAPE argument), made
# once, beside them in NAME-shape; bert-base's is a family attncli has always read, at base size.
ENCODERS = {"all-mpnet-base-v2": "mpnet", "deberta-v3-base": "deberta-v3", "bert-base": "bert"}


def warm(directory: Path) -> None:
    """Read every file of checkpoint `directory` into the page cache: this virtual machine's memory manager
    evicts a checkpoint within seconds of its last read, so that a command would otherwise read it from disk
    or not by chance."""
    for path in directory.iterdir():
        with open(path, "rb") as file:
            while file.read(1 << 24):
                pass


def run_once(command: list[str], keep_output: bool, may_fail: bool = False) -> tuple[float, float, bytes]:
    """(wall seconds, peak RSS in MB, stdout if kept) of one run of `command`; with `may_fail`, a run that fails
    is first in line for the kernel's out-of-memory killer and gives its exit status (negative: the signal that
    ended it) in place of stdout, where otherwise the bench stops.

    Output not kept is read and dropped as it comes: a child forked from a bench that holds
    hundreds of megabytes would report them as its own peak.
    """
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
        preexec_fn=_first_to_kill if may_fail else None,
    )
    output = b""
    if keep_output:
        output = process.stdout.read()
    else:
        while process.stdout.read(1 << 20):
            pass
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if may_fail and status != 0:
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return elapsed, usage.ru_maxrss / 1024, str(code).encode()
    if status != 0:
        sys.exit(f"bench: {' '.join(command[:3])} ... failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024, output  # kB -> MB on Linux


def _first_to_kill() -> None:
    """In the child: the process the kernel's out-of-memory killer picks first, not the bench or the machine's
    others."""
    Path("/proc/self/oom_score_adj").write_text("1000")


def measure(
    commands: list[list[str]], runs: int, keep_output: bool = False, cached: Path | None = None
) -> list[tuple[float, float, bytes]]:
    """(median wall seconds, peak RSS in MB, stdout of the last run) of each command, over `runs`
    rounds that run every command once in turn: on a shared machine a slow spell then falls on
    all of the commands compared rather than on one of them. With `cached`, that checkpoint directory is
    read into the page cache before each run (see warm)."""
    results = [[] for _ in commands]
    for _ in range(runs):
        for command, result in zip(commands, results, strict=True):
            if cached is not None:
                warm(cached)
            result.append(run_once(command, keep_output))
    return [
        (statistics.median(t for t, _, _ in result), max(p for _, p, _ in result), result[-1][2]) for result in results
    ]


def sentences(count: int, path: Path) -> None:
    """Write `count` lines of 8 to 20 words, drawn with a fixed seed from a small vocabulary, to `path`."""
    import random

    rng = random.Random(0)
    words = [*TEXT.replace("'", " ").lower().split(), "cat", "sat", "mat", "dog", "bird", "house", "tree", "river"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 20))) for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")


def forward_times(python: str, engine: str, directory: str) -> dict[int, float]:
    done = subprocess.run(
        [python, str(HERE / "forward.py"), engine, directory],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"},
    )
    return {int(tokens): float(ms) for tokens, ms in (line.split() for line in done.stdout.splitlines())}


def best_forward_times(peer_python: str, directory: str, rounds: int) -> tuple[dict, dict]:
    """The best forward times of numpy and of torch over `rounds` alternating runs of each:
    on a shared machine a slow spell then falls on both engines rather than on one."""
    ours, peer = {}, {}
    for _ in range(rounds):
        for best, python, engine in ((ours, sys.executable, "numpy"), (peer, peer_python, "torch")):
            for tokens, ms in forward_times(python, engine, directory).items():
                best[tokens] = min(ms, best.get(tokens, ms))
    return ours, peer


def made_checkpoint(peer_python: str, directory: Path, script: str, what: str, *arguments: str) -> Path:
    """A benchmark's checkpoint `directory`, made by bench/`script` (given `arguments` first) with the peer's
    Python if it is not there."""
    if not (directory / "texts.json").is_file():
        print(f"bench: making the {what} in {directory}, once", file=sys.stderr)
        subprocess.run([peer_python, str(HERE / script), *arguments, str(directory)], check=True)
    return directory


def decoder_checkpoint(peer_python: str) -> Path:
    """The decoder benchmark's checkpoint, made by bench/make_decoder.py if it is not there."""
    return made_checkpoint(peer_python, DECODER, "make_decoder.py", "decoder checkpoint (about 1 GB)")


def npz_against_peer(attncli: str, peer_python: str, directory: Path, text: str, runs: int) -> tuple:
    """attncli and bench/peer_decoder.py each writing `text`'s attention on checkpoint `directory` as NPZ:
    ((wall seconds, peak MB) of attncli, the same of the peer, their largest difference in a weight)."""
    with tempfile.TemporaryDirectory() as scratch:
        ours_file, peer_file = Path(scratch) / "ours.npz", Path(scratch) / "peer.npz"
        (ours_time, ours_memory, _), (peer_time, peer_memory, _) = measure(
            [
                [attncli, "heatmap", text, "--model", str(directory), "--format", "npz", "-o", str(ours_file)],
                [peer_python, str(HERE / "peer_decoder.py"), str(directory), text, str(peer_file)],
            ],
            runs,
        )
        difference = np.abs(np.load(ours_file)["attention"] - np.load(peer_file)["attention"]).max()
    return (ours_time, ours_memory), (peer_time, peer_memory), difference


def npz_rows(name: str, directory: Path, text: str, attncli: str, peer_python: str, runs: int, targets) -> None:
    """The rows of npz_against_peer on checkpoint `directory`: the whole process's wall time and peak memory
    against the peer's, and the largest difference; `targets` (speed, memory) as the issue says."""
    (ours_time, ours_memory), (peer_time, peer_memory), difference = npz_against_peer(
        attncli, peer_python, directory, text, runs
    )
    speed, memory = targets
    row(f"{name} to NPZ, wall", f"{ours_time:.2f} s", f"{peer_time:.2f} s", f"{peer_time / ours_time:.1f}x", speed)
    row(
        f"{name} to NPZ, peak memory",
        f"{ours_memory:.0f} MB",
        f"{peer_memory:.0f} MB",
        f"1/{peer_memory / ours_memory:.1f}",
        memory,
    )
    row(f"{name}, max |attncli - peer|", f"{difference:.1e}", "", "", "<= 1e-5")


def decoder_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli against transformers writing one text's attention as NPZ, at 128 and 512 tokens, and
    the forward pass alone, on the Qwen2.5-0.5B-shaped checkpoint."""
    directory = decoder_checkpoint(peer_python)
    texts = json.loads((directory / "texts.json").read_text())
    ours_forward, peer_forward = best_forward_times(peer_python, str(directory), rounds=3)
    for tokens, text in texts.items():
        targets = {"128": (">= 3x faster", "<= 1/8"), "512": (">= 1.5x faster", "<= 1/4")}[tokens]
        npz_rows(f"decoder, {tokens} tokens", directory, text, attncli, peer_python, runs, targets)
        row(
            f"decoder, forward pass alone, {tokens} tokens",
            f"{ours_forward[int(tokens)]:.0f} ms",
            f"{peer_forward[int(tokens)]:.0f} ms",
            f"{ours_forward[int(tokens)] / peer_forward[int(tokens)]:.2f}x",
            "<= 1.3x torch",
        )


def predict_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli's predict --json against bench/peer_predict.py (AutoModelForCausalLM in float32, the softmax of
    the last position's logits and its top 10), whole process, on the Qwen2.5-0.5B-shaped checkpoint's
    128-token text: wall time, peak memory, and the largest difference in a logit of attncli's top 10 (the
    ids, in order, the same)."""
    directory = decoder_checkpoint(peer_python)
    text = json.loads((directory / "texts.json").read_text())["128"]
    with tempfile.TemporaryDirectory() as scratch:
        peer_file = Path(scratch) / "peer.npz"
        (ours_time, ours_memory, ours), (peer_time, peer_memory, _) = measure(
            [
                [attncli, "predict", text, "--model", str(directory), "--top", "10", "--json"],
                [peer_python, str(HERE / "peer_predict.py"), str(directory), text, str(peer_file), "10"],
            ],
            runs,
            keep_output=True,
            cached=directory,
        )
        peer = np.load(peer_file)
        predictions = json.loads(ours)["predictions"]
        if [p["id"] for p in predictions] != peer["ids"].tolist():
            sys.exit("bench: attncli's and the peer's top 10 ids differ")
        difference = max(abs(p["logit"] - float(peer["logits"][p["id"]])) for p in predictions)
    target = (">= 3x faster", "well under 1 GB")
    row(
        "predict, 128 tokens, wall",
        f"{ours_time:.2f} s",
        f"{peer_time:.2f} s",
        f"{peer_time / ours_time:.1f}x",
        target[0],
    )
    row(
        "predict, 128 tokens, peak memory",
        f"{ours_memory:.0f} MB",
        f"{peer_memory:.0f} MB",
        f"1/{peer_memory / ours_memory:.1f}",
        target[1],
    )
    row("predict, max |logit attncli - peer|", f"{difference:.1e}", "", "", "<= 1e-4")


def attribute_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli attribute --json against bench/peer_attribute.py (transformers with hooks, TransformerLens-style), whole
    process, on the 128-token text of the Qwen2.5-0.5B-shaped checkpoint: wall time, peak memory and the largest
    difference in a component's contribution to the predicted token's logit, over every component and over the
    peer's ten largest."""
    directory = decoder_checkpoint(peer_python)
    text = json.loads((directory / "texts.json").read_text())["128"]
    (ours_time, ours_memory, ours_out), (peer_time, peer_memory, peer_out) = measure(
        [
            [attncli, "attribute", text, "--model", str(directory), "--json"],
            [peer_python, str(HERE / "peer_attribute.py"), str(directory), text],
        ],
        runs,
        keep_output=True,
        cached=directory,
    )
    ours = {c["name"]: c["contribution"] for c in json.loads(ours_out)["components"]}
    peer = {c["name"]: c["contribution"] for c in json.loads(peer_out)["components"]}
    difference = max(abs(ours[name] - value) for name, value in peer.items())
    top = sorted(peer, key=lambda name: -abs(peer[name]))[:10]
    row(
        "attribute, 128 tokens, wall",
        f"{ours_time:.2f} s",
        f"{peer_time:.2f} s",
        f"{peer_time / ours_time:.1f}x",
        ">= 3x faster",
    )
    row(
        "attribute, peak memory",
        f"{ours_memory:.0f} MB",
        f"{peer_memory:.0f} MB",
        f"1/{peer_memory / ours_memory:.1f}",
        "",
    )
    row("attribute, max |attncli - peer|", f"{difference:.1e}", "", "", "every component")
    row(
        "attribute, top 10, max |attncli - peer|",
        f"{max(abs(ours[name] - peer[name]) for name in top):.1e}",
        "",
        "",
        f"the peer's largest, {top[0]} {peer[top[0]]:+.3g}",
    )


def moe_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli against transformers writing a 128-token text's attention as NPZ on the Qwen3-30B-A3B-shaped
    mixture of experts (4 layers, 128 experts of which 8 a token): attncli reads each expert from disk when
    a token is routed to it; the peer loads every expert as float32 first (over 20 GB at its peak)."""
    directory = made_checkpoint(peer_python, MOE, "make_moe.py", "mixture-of-experts checkpoint (about 5.5 GB)")
    text = json.loads((directory / "texts.json").read_text())["128"]
    npz_rows("mixture of experts, 128 tokens", directory, text, attncli, peer_python, runs, (">= 3x faster", "<= 1/8"))


def pythia_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli against transformers writing one text's attention as NPZ, at 128 tokens, on the
    pythia-410m-shaped checkpoint (bench/make_pythia.py): a GPT-NeoX parallel block, RoPE on a
    quarter of each head, float16 weights."""
    directory = made_checkpoint(peer_python, PYTHIA, "make_pythia.py", "Pythia checkpoint (about 810 MB)")
    text = json.loads((directory / "texts.json").read_text())["128"]
    npz_rows("Pythia, 128 tokens", directory, text, attncli, peer_python, runs, (">= 3x faster", "<= 1/8"))


def encoder_rows(attncli: str, peer_python: str, runs: int) -> None:
    """attncli's heatmap --json against bench/peer.py, whole process, on one sentence, on each of ENCODERS'
    checkpoints, each read into the page cache before each run: wall time, peak memory and the largest
    difference in an attention weight."""
    for name, shape in ENCODERS.items():
        directory = made_checkpoint(
            peer_python, DECODER.parent / f"{name}-shape", "make_encoders.py", f"{name}-shaped checkpoint", shape
        )
        text = json.loads((directory / "texts.json").read_text())["sentence"]
        peer = [peer_python, str(HERE / "peer.py"), str(directory), text]
        ours = [attncli, "heatmap", text, "--model", str(directory), "--json"]
        (ours_time, ours_memory, ours_out), (peer_time, peer_memory, peer_out) = measure(
            [ours, peer], runs, keep_output=True, cached=directory
        )
        row(
            f"{name} shape, heatmap --json, wall",
            f"{ours_time:.2f} s",
            f"{peer_time:.2f} s",
            f"{peer_time / ours_time:.1f}x",
            ">= 10x faster",
        )
        row(
            f"{name} shape, peak memory",
            f"{ours_memory:.0f} MB",
            f"{peer_memory:.0f} MB",
            f"1/{peer_memory / ours_memory:.1f}",
            "<= 1/3",
        )
        ours_attention, peer_attention = (np.array(json.loads(out)["attention"]) for out in (ours_out, peer_out))
        difference = np.abs(ours_attention - peer_attention).max()
        row(f"{name} shape, max |attncli - peer|", f"{difference:.1e}", "", "", "<= 1e-5")


def large_rows(attncli: str, peer_python: str) -> None:
    """A model bigger than memory in float32: Llama-3.1-8B's shape (bench/make_llama8b.py), a 128-token text's
    attention to NPZ, once each (minutes a run): attncli, reading a layer at a time and computing in float32;
    the peer in float32 (32 GB of weights on a 24 GB machine: what happens is the row); and the peer in bf16,
    the checkpoint's own dtype, its attention's distance from attncli's float32."""
    directory = made_checkpoint(peer_python, LARGE, "make_llama8b.py", "Llama-3.1-8B-shaped checkpoint (about 16 GB)")
    text = json.loads((directory / "texts.json").read_text())["128"]
    with tempfile.TemporaryDirectory() as scratch:
        ours_file, bf16_file = Path(scratch) / "ours.npz", Path(scratch) / "bf16.npz"
        peer = [peer_python, str(HERE / "peer_decoder.py"), str(directory), text]
        ours_time, ours_memory, _ = run_once(
            [attncli, "heatmap", text, "--model", str(directory), "--format", "npz", "-o", str(ours_file)], False
        )
        float32_time, float32_memory, float32_status = run_once([*peer, str(Path(scratch) / "f32.npz")], True, True)
        bf16_time, bf16_memory, bf16_status = run_once([*peer, str(bf16_file), "bfloat16"], True, True)
        ours = np.load(ours_file)["attention"]
        bf16 = np.load(bf16_file)["attention"] if bf16_status == b"" else None
    row("8B shape (bf16), 128 tokens to NPZ, wall", f"{ours_time:.1f} s", "", "", "")
    row("8B shape, peak memory", f"{ours_memory:.0f} MB", "", "", "<= 2 GB")
    fate = {b"": "ran", b"-9": "killed (OOM)"}
    for name, seconds, memory, status in (
        ("float32", float32_time, float32_memory, float32_status),
        ("bf16", bf16_time, bf16_memory, bf16_status),
    ):
        said = fate.get(status, f"failed ({status.decode()})")
        row(f"8B shape, peer in {name}: {said}, wall", "", f"{seconds:.1f} s", "", "")
        row(f"8B shape, peer in {name}, peak memory", "", f"{memory:.0f} MB", "", "")
    if bf16 is not None:
        row("8B shape, max |attncli float32 - peer bf16|", f"{np.abs(ours - bf16).max():.1e}", "", "", "")


def long_rows(attncli: str, peer_python: str) -> None:
    """Long texts on the Qwen2.5-0.5B-shaped decoder, once each (a minute a run): every layer and head of a
    4,096-token text to NPZ, written a layer at a time (time and peak memory: its [L, h, T, T] stack would be
    22.5 GB); and a 1,538-token text to NPZ against its terminal view (with the memory budget the view needs:
    the view keeps every layer, the NPZ one at a time)."""
    directory = decoder_checkpoint(peer_python)
    paragraph = json.loads((directory / "texts.json").read_text())["512"]
    with tempfile.TemporaryDirectory() as scratch:
        longest, npz_file = " ".join([paragraph] * 8), str(Path(scratch) / "attention.npz")
        heatmap = [attncli, "heatmap", "--model", str(directory), "--max-tokens", "5000"]
        long_time, long_memory, _ = run_once([*heatmap, longest, "--format", "npz", "-o", npz_file], False)
        with zipfile.ZipFile(npz_file) as archive, archive.open("attention.npy") as member:  # its header alone
            np.lib.format.read_magic(member)  # format 1.0, as attncli writes it
            layers, heads, tokens, _ = np.lib.format.read_array_header_1_0(member)[0]
            print(f"long: {layers} layers x {heads} heads x {tokens} tokens to NPZ", file=sys.stderr)
        middle = " ".join([paragraph] * 3)
        npz_time, npz_memory, _ = run_once([*heatmap, middle, "--format", "npz", "-o", npz_file], False)
        os.environ["ATTNCLI_MEMORY_BUDGET"] = "8000"  # the view keeps every layer: 3.2 GB at 1,538 tokens
        try:
            view_time, view_memory, _ = run_once([*heatmap, middle, "-o", str(Path(scratch) / "view.txt")], False)
        finally:
            del os.environ["ATTNCLI_MEMORY_BUDGET"]
    row(f"{tokens} tokens, every head to NPZ, wall", f"{long_time:.1f} s", "", "", "")
    row(f"{tokens} tokens to NPZ, peak memory", f"{long_memory:.0f} MB", "", "", "<= 2 GB")
    row(
        "1,538 tokens: NPZ vs the terminal view, wall",
        f"{npz_time:.1f} s",
        f"{view_time:.1f} s",
        f"{view_time / npz_time:.2f}x",
        "NPZ no slower",
    )
    row("1,538 tokens: NPZ vs the view, peak memory", f"{npz_memory:.0f} MB", f"{view_memory:.0f} MB", "", "")


def corpus_rows(attncli: str, peer_python: str, directory: str, lines: int) -> None:
    """heads --file over generated MiniLM lines: attncli as a user runs it (a process a core), on one process and
    on a local Dask cluster of two workers, against the torch peer batching 32 padded lines (bench/peer_heads.py),
    whose products and activations use every core."""
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "corpus.txt"
        sentences(lines, source)
        heads = [attncli, "heads", "--file", str(source), "--model", "minilm", "--json"]
        (one, one_memory, ours), (default, _, _), (peer, peer_memory, theirs) = measure(
            [
                [*heads, "--jobs", "1"],
                heads,
                [peer_python, str(HERE / "peer_heads.py"), directory, str(source)],
            ],
            1,
            keep_output=True,
        )
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            [(dask, _, _)] = measure([[*heads, "--dask", cluster.scheduler_address]], 1)
    ours, theirs = json.loads(ours), json.loads(theirs)
    entropy = np.array([[h["entropy"] for h in ours["heads"] if h["layer"] == layer] for layer in range(6)])
    difference = np.abs(entropy - np.array(theirs["entropy"])).max()
    row(
        f"heads --file, {lines} lines: lines/s, as run (a process a core)",
        f"{lines / default:.0f}",
        f"{lines / peer:.0f}",
        f"{peer / default:.2f}x",
        ">= 1.5x the batched peer",
    )
    row("  --jobs 1", f"{lines / one:.0f}", f"{lines / peer:.0f}", f"{peer / one:.2f}x", ">= 1x the batched peer")
    row(
        "  Dask, 2 local workers",
        f"{lines / dask:.0f}",
        f"{lines / one:.0f}",
        f"{one / dask:.2f}x",
        "against one process",
    )
    row("  peak memory, --jobs 1", f"{one_memory:.0f} MB", f"{peer_memory:.0f} MB", "", "")
    print(f"heads: max |mean entropy, attncli - peer|: {difference:.1e}")


def explore_rows(runs: int) -> None:
    """attncli explore on a 509-token MiniLM text, under Textual's harness (bench/explore.py): the
    whole process until the first heatmap is drawn, and moving to another head."""
    script = str(HERE / "explore.py")
    with tempfile.TemporaryDirectory() as scratch:
        text = Path(scratch) / "long.txt"
        text.write_text(" ".join([TEXT] * 39), encoding="utf-8")  # 509 tokens with [CLS] and [SEP]
        [(first, first_memory, _)] = measure([[sys.executable, script, "first", "minilm", str(text)]], runs)
        [(_, _, switch)] = measure([[sys.executable, script, "switch", "minilm", str(text)]], 1, keep_output=True)
    moves = json.loads(switch)
    tokens = moves["tokens"]
    row(f"explore, {tokens} tokens: first heatmap, whole process", f"{first:.2f} s", "", "", "< 2 s")
    row(f"explore, {tokens} tokens: peak memory", f"{first_memory:.0f} MB", "", "", "")
    row("explore: next head, redraw (explorer's work)", f"{moves['redraw_ms']:.0f} ms", "", "", "< 50 ms")
    row(
        "explore: next head, harness round trip",
        f"{moves['round_trip_ms']:.0f} ms",
        f"{moves['idle_round_trip_ms']:.0f} ms",
        "",
        "reference: a key bound to nothing",
    )


def row(name: str, value: str, peer: str, ratio: str, target: str) -> None:
    print(f"{name:<46} {value:>12} {peer:>12} {ratio:>9}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", required=True, help="python of the venv with torch and transformers")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-lines", type=int, default=1000)
    parser.add_argument(
        "--only",
        choices=["decoder", "moe", "pythia", "encoders", "explore", "corpus", "predict", "attribute", "large", "long"],
        help="run only the decoder rows, the mixture of experts', Pythia's, the encoders', the explorer's, the "
        "corpus's, predict's, attribute's, the large model's or the long texts'",
    )
    parser.add_argument("--corpus-lines", type=int, default=2000)
    args = parser.parse_args()

    attncli = str(Path(sys.executable).parent / "attncli")
    directory = str(resolve("minilm"))
    runs = args.runs
    alone = {
        "decoder": lambda: decoder_rows(attncli, args.peer_python, runs),
        "moe": lambda: moe_rows(attncli, args.peer_python, runs),
        "pythia": lambda: pythia_rows(attncli, args.peer_python, runs),
        "encoders": lambda: encoder_rows(attncli, args.peer_python, runs),
        "explore": lambda: explore_rows(runs),
        "corpus": lambda: corpus_rows(attncli, args.peer_python, directory, args.corpus_lines),
        "predict": lambda: predict_rows(attncli, args.peer_python, runs),
        "attribute": lambda: attribute_rows(attncli, args.peer_python, runs),
        "large": lambda: large_rows(attncli, args.peer_python),
        "long": lambda: long_rows(attncli, args.peer_python),
    }
    if args.only is not None:
        row("measure", "attncli", "reference", "ratio", "target")
        alone[args.only]()
        return
    print(
        f"all-MiniLM-L6-v2; medians of {runs} rounds ({4 * runs} for start-up) that run each compared "
        "command in turn, forward passes the best of three alternating rounds of ten; "
        "OPENBLAS_CORETYPE unset for every command",
        file=sys.stderr,
    )

    # Start-up takes a tenth of a second a run, so it gets more runs to steady its median.
    vocabulary = str(SAMPLE_DIR / "vocab.txt")
    (floor, _, _), (frozen_floor, _, _), (start, _, _) = measure(
        [
            [sys.executable, "-c", FLOOR.format(vocabulary)],
            [sys.executable, "-c", FROZEN_FLOOR.format(vocabulary)],
            [attncli, "explain", "The cat sat on the mat", "--json"],
        ],
        4 * runs,
    )
    (ours_time, ours_memory, ours_out), (heat_time, _, _), (peer_time, peer_memory, peer_out) = measure(
        [
            [attncli, "explain", "--model", "minilm", TEXT, "--json"],
            [attncli, "heatmap", "--model", "minilm", TEXT, "--json"],
            [args.peer_python, str(HERE / "peer.py"), directory, TEXT],
        ],
        runs,
        keep_output=True,
    )
    long_text = " ".join(["word"] * 510)
    [(long_time, long_memory, _)] = measure([[attncli, "heatmap", "--model", "minilm", long_text, "--json"]], runs)
    ours_forward, peer_forward = best_forward_times(args.peer_python, directory, rounds=3)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "sentences.txt"
        sentences(args.batch_lines, source)
        (batch_time, batch_memory, _), (loop_time, loop_memory, _) = measure(
            [
                [attncli, "batch", str(source), "--model", "minilm"],
                [args.peer_python, str(HERE / "peer_batch.py"), directory, str(source)],
            ],
            1,
        )

    ours = json.loads(ours_out)["attention"]
    peer = json.loads(peer_out)["attention"]
    difference = max(
        abs(a - b)
        for layer_a, layer_b in zip(ours, peer, strict=True)
        for head_a, head_b in zip(layer_a, layer_b, strict=True)
        for row_a, row_b in zip(head_a, head_b, strict=True)
        for a, b in zip(row_a, row_b, strict=True)
    )

    row("measure", "attncli", "reference", "ratio", "target")
    row(
        "start-up: explain --json (sample) vs the floor",
        f"{start:.3f} s",
        f"{floor:.3f} s",
        f"{start / floor:.2f}x",
        "<= 1.2x (floor: imports + vocabulary)",
    )
    row(
        "  the same vs the floor with a frozen collector",
        f"{start:.3f} s",
        f"{frozen_floor:.3f} s",
        f"{start / frozen_floor:.2f}x",
        "attncli's own work",
    )
    row(
        "explain --model minilm --json, wall",
        f"{ours_time:.2f} s",
        f"{peer_time:.2f} s",
        f"{peer_time / ours_time:.1f}x",
        ">= 15x faster (issue 4: 10x)",
    )
    row(
        "explain --model minilm --json, peak memory",
        f"{ours_memory:.0f} MB",
        f"{peer_memory:.0f} MB",
        f"{ours_memory / peer_memory:.0%}",
        "<= 25% (issue 4: 33%)",
    )
    row(
        "heatmap --model minilm --json, wall",
        f"{heat_time:.2f} s",
        f"{peer_time:.2f} s",
        f"{peer_time / heat_time:.1f}x",
        "",
    )
    for tokens in sorted(ours_forward):
        row(
            f"forward pass alone, {tokens} tokens",
            f"{ours_forward[tokens]:.0f} ms",
            f"{peer_forward[tokens]:.0f} ms",
            f"{ours_forward[tokens] / peer_forward[tokens]:.2f}x",
            "<= 1.3x torch",
        )
    row("512 tokens, all layers as JSON: wall", f"{long_time:.2f} s", "", "", "< 1.5 s")
    row("512 tokens, all layers as JSON: peak memory", f"{long_memory:.0f} MB", "", "", "< 400 MB")
    lines = args.batch_lines
    row(
        f"batch, {lines} lines: sentences per second",
        f"{lines / batch_time:.0f}",
        f"{lines / loop_time:.0f}",
        f"{loop_time / batch_time:.1f}x",
        "",
    )
    row(f"batch, {lines} lines: peak memory", f"{batch_memory:.0f} MB", f"{loop_memory:.0f} MB", "", "")
    print(f"max |attncli - peer| over every attention weight: {difference:.1e} (target 1e-5)")
    encoder_rows(attncli, args.peer_python, runs)
    explore_rows(runs)
    corpus_rows(attncli, args.peer_python, directory, args.corpus_lines)
    decoder_rows(attncli, args.peer_python, runs)
    predict_rows(attncli, args.peer_python, runs)
    moe_rows(attncli, args.peer_python, runs)
    pythia_rows(attncli, args.peer_python, runs)
    attribute_rows(attncli, args.peer_python, runs)
    large_rows(attncli, args.peer_python)


if __name__ == "__main__":
    main()
