"""attncli: see what multi-head attention does to a sentence, from the command line.

The library is the modules the CLI is built on (the README's "How the code is laid out"):

- `attncli.commands`: one function per command, each returning a result object whose
  `to_json()` is the command's JSON document;
- `attncli.models`: `load_model` and the interface of every model;
- `attncli.bundled`: the bundled vocabulary and the one-layer sample model;
- `attncli.attention`: softmax, scaled dot-product and multi-head attention (pure numpy);
- `attncli.analysis`: every number derived from the attention.
"""

import gc
import sys

__version__ = "0.1.0"
__all__ = ["__version__", "main"]


def main() -> None:
    """The `attncli` command. Importing the CLI (numpy, tokenizers, typer) happens inside the
    guard, so Ctrl-C during start-up also ends with exit 130 and one line, not a traceback.

    The objects the imports make live as long as the process. The garbage collector is kept off
    while they are made and then told to leave them alone (gc.freeze); otherwise its passes
    over them during start-up and at exit took about 20 ms of a 140 ms run here. Objects made
    from then on are collected as usual.
    """
    gc.disable()
    try:
        from attncli.cli import main as run

        gc.freeze()
        gc.enable()
        run()
    except KeyboardInterrupt:
        sys.stderr.write("attncli: interrupted\n")
        sys.exit(130)
