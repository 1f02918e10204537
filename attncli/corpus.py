"""Corpus-scale runs of `heads` and `batch`: the texts cut into partitions of PARTITION lines, each
partition computed by a worker that loads the model once (here, in a pool of processes, or on the
workers of a Dask cluster), the results put back together in partition order. A run therefore gives
the same numbers, to the bit, however many workers shared it; what travels to a worker is the
partition's text and how to load the model, and back only partial sums or records, never weights.
"""

import collections
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from attncli import analysis
from attncli.errors import AttncliError
from attncli.models import Model, load_model

__all__ = ["PARTITION", "HeadsPart", "ModelRecipe", "Text", "batch_partition", "heads_partition", "partitions", "run"]

PARTITION = 64  # lines a worker takes at a time: large enough to keep a worker busy, small enough to resume often
# What a terminal or a process manager sends to a whole process group: the parent's to handle, so
# that it stops the pool in order (a worker killed mid-reply can leave a pool waiting for ever).
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Text:
    """One line of a corpus: its number in the file (from 1), its text and, from JSON Lines, its id."""

    line: int
    text: str
    id: object = None


@dataclass(frozen=True)
class ModelRecipe:
    """How another process loads the model again: load_model's name and sample options."""

    name: str
    options: tuple = ()  # (option, value) pairs

    def load(self) -> Model:
        """The model, loaded once per process."""
        return _loaded(self)


@functools.cache
def _loaded(recipe: ModelRecipe) -> Model:
    return load_model(recipe.name, **dict(recipe.options))


def partitions(texts: list[Text]) -> list[list[Text]]:
    return [texts[start : start + PARTITION] for start in range(0, len(texts), PARTITION)]


@dataclass(eq=False)
class HeadsPart:
    """What a worker sends back for a partition of `heads`: the partial sums and the lines that failed."""

    sums: analysis.StatisticSums
    failures: list[tuple[int, str]] = field(default_factory=list)  # (line, message)


def heads_partition(recipe: ModelRecipe, max_tokens: int, names: Mapping[str, str], part: list[Text]) -> HeadsPart:
    """The head statistics of each text of `part`, summed; a text that fails is left out and named,
    its message worded with `names` (see AttncliError.worded)."""
    from attncli.commands import statistics_of_many  # here: a worker needs no more of attncli than this

    sums, failures = analysis.StatisticSums(), []
    for item, statistics in zip(
        part, statistics_of_many([item.text for item in part], recipe.load(), max_tokens), strict=True
    ):
        if isinstance(statistics, AttncliError):
            failures.append((item.line, statistics.worded(names)))
        else:
            sums.add(statistics)
    return HeadsPart(sums, failures)


def batch_partition(
    recipe: ModelRecipe, steps: bool, max_tokens: int, names: Mapping[str, str], part: list[Text]
) -> list[dict]:
    """The batch record of each text of `part`, as JSON-ready dicts, in order."""
    from attncli.commands import batch

    records = batch([(item.line, item.text) for item in part], recipe.load(), steps, max_tokens)
    return [
        {**record.to_json(names), **({} if item.id is None else {"id": item.id})}
        for item, record in zip(part, records, strict=True)
    ]


def run(work: Callable, parts: list, jobs: int = 1, dask: str | None = None) -> Iterator:
    """work(part) for each of `parts`, the results in order as they come: in this process (one job),
    in a pool of `jobs` processes, or on the Dask cluster whose scheduler is at `dask`."""
    if dask is not None:
        yield from _on_dask(work, parts, dask)
    elif jobs > 1 and len(parts) > 1:
        yield from _in_pool(work, parts, jobs)
    else:
        yield from map(work, parts)


def _in_pool(work: Callable, parts: list, jobs: int) -> Iterator:
    """Fresh processes (spawned, not forked: a fork would copy the parent's BLAS threads mid-flight),
    each with one BLAS thread, since the processes share the cores among themselves. Signals to the
    process group are the parent's (_GROUP_SIGNALS); a worker that dies (kill -9, out of memory)
    ends the run with an error."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    single = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {name: os.environ.get(name) for name in single}
    os.environ.update(single)  # what the spawned processes start with: they start at the first submit
    pool = ProcessPoolExecutor(
        min(jobs, len(parts)), mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
    )
    try:
        # The workers start as the work is submitted: with the group's signals ignored, which they
        # inherit (Python leaves an ignored SIGINT ignored), so that even one still importing never
        # takes a Ctrl-C meant for the parent.
        handlers = {number: signal.signal(number, signal.SIG_IGN) for number in _GROUP_SIGNALS}
        ahead = 2 * jobs  # partitions submitted ahead of the one awaited: enough to keep every worker busy
        try:
            futures = collections.deque(pool.submit(work, part) for part in parts[:ahead])
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        for part in parts[ahead:]:  # results are awaited in order, and only `ahead` are ever held
            done = futures.popleft().result()
            futures.append(pool.submit(work, part))
            yield done
        while futures:
            yield futures.popleft().result()
    except BrokenProcessPool:
        raise AttncliError(
            "one of the {workers} worker processes ended before its work was done (killed, or out of "
            "memory); run again (with {resume} where the run wrote a file)",
            workers=min(jobs, len(parts)),
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the partitions under way finish; no process lingers


def _die_with_parent() -> None:
    """A worker ignores the group's signals (they are its parent's), so it must not outlive a parent
    killed with SIGKILL: on Linux the kernel sends it SIGKILL too (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _on_dask(work: Callable, parts: list, address: str) -> Iterator:
    try:
        from distributed import Client
    except ImportError:
        raise AttncliError(
            "running on Dask needs the dask extra: pip install 'attncli[dask]' (dask and distributed)"
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError, TypeError) as error:  # the last two: an address that is not one
        raise AttncliError(f"cannot reach the Dask scheduler at {address!r} ({error})") from None
    with client:
        futures = client.map(work, parts, pure=False)
        for future in futures:
            yield future.result()


def merged(parts: Iterable[analysis.StatisticSums]) -> analysis.StatisticSums:
    total = analysis.StatisticSums()
    for part in parts:
        total.merge(part)
    return total
