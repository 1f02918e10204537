"""What attncli writes to a terminal: consoles that never interpret user text, and the helpers that
fit text to terminal cells (cutting, padding, writing labels downwards, tokens made readable)."""

import os
import sys

from rich.cells import cell_len, set_cell_size

from attncli.errors import PipeClosed
from attncli.escapes import visible
from attncli.tokens import readable

__all__ = ["abbreviate", "downward", "make_console", "pad", "page", "token_label"]


def token_label(text: str) -> str:
    """A vocabulary string as the terminal shows it: word-piece marks made readable (tokens.readable),
    then made `visible`. JSON keeps the exact string."""
    return visible(readable(text))


def abbreviate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` terminal cells, ending in "…" when cut."""
    if cell_len(text) <= limit:
        return text
    return set_cell_size(text, max(limit - 1, 0)).rstrip() + "…"


def downward(labels: list[str], cell: int, align: str = "left", limit: int = 6) -> list[list[str]]:
    """Labels written top to bottom, for columns too narrow to write them across: one list of
    `cell`-wide strings (one per label) for each line, each label cut to `limit` characters."""
    cut = [abbreviate(label, limit) for label in labels]
    return [
        [set_cell_size(pad(label[line] if line < len(label) else " ", cell, align), cell) for label in cut]
        for line in range(max(len(label) for label in cut))
    ]


def pad(text: str, width: int, align: str = "left") -> str:
    """`text` padded with spaces to `width` terminal cells (wide characters count two)."""
    room = max(width - cell_len(text), 0)
    if align == "right":
        return " " * room + text
    if align == "center":
        return " " * (room // 2) + text + " " * (room - room // 2)
    return text + " " * room


def page(text: str) -> bool:
    """Show `text` (escape codes included) through the user's pager, as git does: $PAGER, else
    `less` with LESS=FRX (quit at once if it fits, keep colours, leave the screen as it was).
    False when there is no pager to run (PAGER empty, cat, unparsable or not found) or it failed
    (exit status other than 0): then print it yourself. Ctrl-C belongs to the pager while it runs,
    as it does in git."""
    import shlex
    import signal
    import subprocess

    try:
        command = shlex.split(os.environ.get("PAGER", "less"))
    except ValueError:  # an unclosed quote
        return False
    if not command or command == ["cat"]:
        return False
    environment = {**os.environ, "LESS": os.environ.get("LESS", "FRX"), "LV": os.environ.get("LV", "-c")}
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pager = subprocess.Popen(command, stdin=subprocess.PIPE, env=environment)
    except OSError:
        signal.signal(signal.SIGINT, interrupt)
        return False
    try:
        with pager.stdin:
            pager.stdin.write(text.encode(sys.stdout.encoding or "utf-8", errors="replace"))
    except BrokenPipeError:  # the reader quit the pager before the end: what they asked for
        pass
    finally:
        pager.wait()
        signal.signal(signal.SIGINT, interrupt)
    return pager.returncode == 0


def make_console(color: str = "auto", **settings):
    """A rich console that treats every string as plain text: no markup, emoji codes or highlighting.

    color "never", or "auto" with NO_COLOR set (to anything non-empty): no escape codes at all.
    "always": colour even into a pipe. "auto" otherwise: colour on a terminal, none elsewhere
    (rich's rules, FORCE_COLOR included).
    """
    from rich.console import Console  # imported here: JSON output never needs it

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise PipeClosed("standard output was closed")

    if color == "never" or (color == "auto" and os.environ.get("NO_COLOR")):
        settings = {"color_system": None, **settings}
    elif color == "always":
        settings = {"force_terminal": True, "color_system": "truecolor", **settings}
    return _Console(markup=False, emoji=False, highlight=False, **settings)
