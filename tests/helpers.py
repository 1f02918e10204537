"""Helpers the tests share (fixtures live in conftest.py)."""

import io

from rich.console import Console

SENTENCE = "The cat sat on the mat"


def render_text(renderable, width: int = 80, color_system: str | None = None) -> str:
    """What `renderable` prints on a console of `width` columns, colourless unless asked."""
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=color_system,
        force_terminal=color_system is not None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(renderable)
    return console.file.getvalue()
