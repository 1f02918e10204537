"""make bench: attncli against the torch + transformers peer on all-MiniLM-L6-v2, in one run.

Each command runs as its own process; wall time is the median of several runs
and peak memory is the child's maximum resident set size (from wait4). Both
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
import time
from pathlib import Path

from attncli.checkpoint import resolve

TEXT = "The animal didn't cross the street because it was too tired"
HERE = Path(__file__).resolve().parent


def measure(command: list[str], runs: int) -> tuple[float, float, bytes]:
    """(median wall seconds, peak RSS in MB, stdout of the last run) over `runs` runs of `command`."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    times, peaks, output = [], [], b""
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment)
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        times.append(time.perf_counter() - start)
        if status != 0:
            sys.exit(f"bench: {' '.join(command[:3])} ... failed with status {status}")
        peaks.append(usage.ru_maxrss / 1024)  # kB -> MB on Linux
    return statistics.median(times), max(peaks), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", required=True, help="python of the venv with torch and transformers")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    attncli = str(Path(sys.executable).parent / "attncli")
    directory = str(resolve("minilm"))
    print(
        f"all-MiniLM-L6-v2, one sentence ({TEXT!r}); median of {args.runs} runs; OPENBLAS_CORETYPE unset",
        file=sys.stderr,
    )

    ours_time, ours_memory, ours_out = measure([attncli, "explain", "--model", "minilm", TEXT, "--json"], args.runs)
    heat_time, heat_memory, _ = measure([attncli, "heatmap", "--model", "minilm", TEXT, "--json"], args.runs)
    peer_time, peer_memory, peer_out = measure([args.peer_python, str(HERE / "peer.py"), directory, TEXT], args.runs)

    ours = json.loads(ours_out)["attention"]
    peer = json.loads(peer_out)["attention"]
    difference = max(
        abs(a - b)
        for layer_a, layer_b in zip(ours, peer, strict=True)
        for head_a, head_b in zip(layer_a, layer_b, strict=True)
        for row_a, row_b in zip(head_a, head_b, strict=True)
        for a, b in zip(row_a, row_b, strict=True)
    )

    rows = [
        ("attncli explain --model minilm --json", ours_time, ours_memory),
        ("attncli heatmap --model minilm --json", heat_time, heat_memory),
        ("peer: torch + transformers script", peer_time, peer_memory),
    ]
    print(f"{'command':<40} {'wall s':>8} {'peak MB':>8} {'speed-up':>9} {'memory':>8}")
    for name, seconds, megabytes in rows:
        print(
            f"{name:<40} {seconds:>8.2f} {megabytes:>8.0f} {peer_time / seconds:>8.1f}x {megabytes / peer_memory:>7.0%}"
        )
    print(f"max |attncli - peer| over every attention weight: {difference:.1e}")
    print(
        f"targets: explain at least 10x faster than the peer (now {peer_time / ours_time:.1f}x) and at most a "
        f"third of its peak memory (now {ours_memory / peer_memory:.0%}); attention within 1e-5"
    )


if __name__ == "__main__":
    main()
