"""attncli: see what multi-head attention does to a sentence, from the command line.

The library is the modules the CLI is built on:

- `attncli.attention`: softmax, scaled dot-product and multi-head attention (pure numpy);
- `attncli.vocab`: the bundled tokenizer and embeddings;
- `attncli.sample_model`: the one-layer sample model;
- `attncli.core`: one function per command, each returning a result object whose
  `to_json()` is the command's JSON document.
"""

import sys

__version__ = "0.1.0"
__all__ = ["__version__", "main"]


def main() -> None:
    """The `attncli` command. Importing the CLI (numpy, tokenizers, typer) happens inside the
    guard, so Ctrl-C during start-up also ends with exit 130 and one line, not a traceback."""
    try:
        from attncli.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("attncli: interrupted\n")
        sys.exit(130)
