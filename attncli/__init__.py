"""attncli: see what multi-head attention does to a sentence, from the command line.

The library is the modules the CLI is built on (the README's "How the code is laid out"):

- `attncli.commands`: one function per command, each returning a result object whose
  `to_json()` is the command's JSON document;
- `attncli.models`: `load_model` and the interface of every model;
- `attncli.bundled`: the bundled vocabulary and the one-layer sample model;
- `attncli.attention`: softmax, scaled dot-product and multi-head attention (pure numpy);
- `attncli.analysis`: every number derived from the attention;
- `attncli.attribution`: direct logit attribution, each part of the residual stream's share of a logit (pure numpy).
"""

import contextlib
import gc
import os
import signal
import sys

__version__ = "0.1.0"
__all__ = ["__version__", "interrupted_code", "main"]

# 130 after Ctrl-C; 128 + the signal's number after SIGTERM or SIGHUP, as a shell reports them.
_interrupted_code = 130


def _on_signal(number: int, frame) -> None:
    """SIGTERM and SIGHUP end a run as Ctrl-C does, so a file being written is removed, not left."""
    global _interrupted_code
    _interrupted_code = 128 + number
    raise KeyboardInterrupt


def interrupted_code() -> int:
    """The exit code of a run that was interrupted."""
    return _interrupted_code


# How long, as a power of two of CPU cycles, an idle OpenBLAS thread spins waiting for more work
# before it sleeps. OpenBLAS's default, 2^28 cycles, is about a tenth of a second: its threads
# then spin through the reading of a decoder's next layer, taking a core from it on a 2-core
# machine (Pythia-410m's shape at 128 tokens, 1.73 s to NPZ at 28, 1.38 s at 16). 2^16 cycles
# (tens of microseconds) still keeps them awake from one product to the next of a layer.
_BLAS_SPIN = "16"
# The signals that end a run, kept from the threads the libraries start (see main).
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main() -> None:
    """The `attncli` command. Importing the CLI (numpy, tokenizers, typer) happens inside the
    guard, so Ctrl-C during start-up also ends with exit 130 and one line, not a traceback.

    The objects the imports make live as long as the process. The garbage collector is kept off
    while they are made and then told to leave them alone (gc.freeze); otherwise its passes
    over them during start-up and at exit took about 20 ms of a 140 ms run here. Objects made
    from then on are collected as usual.
    """
    for name in ("SIGTERM", "SIGHUP"):  # first, so that no moment of the run is left to their default
        signal.signal(getattr(signal, name), _on_signal)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", _BLAS_SPIN)  # OpenBLAS reads it as the imports below load it
    gc.disable()
    try:
        # Held while the imports start OpenBLAS's threads, which keep the mask they start with: a Ctrl-C
        # the kernel gave one of them would leave this thread blocked in a read (of standard input, say)
        # that nothing interrupts. Given back after, a signal that came meanwhile is raised here.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            from attncli.cli import main as run
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

        gc.freeze()
        gc.enable()
        run()
    except KeyboardInterrupt:
        sys.stderr.write("attncli: interrupted\n")
        sys.exit(_interrupted_code)
    except SystemExit as done:  # every other ending, success or failure: the command line's exit code
        _exit_at_once(done.code)


def _exit_at_once(code) -> None:
    """End the process with `code` (SystemExit's: None is 0, a string is written to stderr and is 1) once
    its output is flushed and its exit handlers have run, without taking the interpreter apart: freeing
    every object one by one, a loaded model and its tokenizer among them, is work nothing reads (0.13 s
    for a tokenizer of 128,000 pieces)."""
    import atexit

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:  # empty, as every command flushes what it writes, unless that write failed too
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        code = code or 120  # as the interpreter ends a process whose last flush fails
    with contextlib.suppress(OSError, ValueError):  # stderr gone: nothing more can be said
        if sys.stderr is not None:
            sys.stderr.flush()
    atexit._run_exitfuncs()  # what the interpreter would run (worker pools, distributed's clients)
    os._exit(code)
