"""The errors attncli raises on purpose: what went wrong, in the library's terms, with the facts.

An error raised with facts (keyword arguments) has a template for its message: `{fact}`
quotes a fact, and any other `{name}` refers to a parameter of the call that failed
(`{focus}`, `{max_tokens}`). Printed as it is, a parameter reads as its own name; the command
line words it as the option a user typed (see attncli.cli.OPTION_NAMES), so the library
never needs to know its flags. A fact that is a `Parameter` (or a tuple of them) is named the same
way: for messages about whichever parameters the caller says; an `Argument`, a value the caller
was given, reads as its parameter so named and the value. An error raised with a message alone
prints it as it is. A Notice, what a run says as it goes on, is worded the same way.
"""

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "Argument",
    "AttncliError",
    "BadInput",
    "DataError",
    "LinesFailed",
    "Notice",
    "Parameter",
    "PipeClosed",
    "listed",
    "shortened",
]


class Parameter(str):
    """The name of a parameter, quoted in a message as a fact: worded like `{name}` in the template."""


@dataclass(frozen=True)
class Argument:
    """A value and the parameter that was given it, quoted in a message as a fact: the parameter
    worded like `{name}` in the template, then the value."""

    parameter: str
    value: object


class _Names(dict):
    """Facts by name; any other field of a message is a parameter, named as `names` says or by itself."""

    def __init__(self, facts: Mapping, names: Mapping[str, str]):
        super().__init__(facts)
        self.names = names

    def __missing__(self, key: str) -> str:
        return self.names.get(key, key)


def _worded(fact, names: Mapping[str, str]):
    """A fact as a message quotes it: a Parameter (or a tuple of them, listed) named as `names` says,
    an Argument as its parameter so named and its value."""
    if isinstance(fact, Parameter):
        return names.get(fact, fact)
    if isinstance(fact, Argument):
        return f"{names.get(fact.parameter, fact.parameter)} {fact.value}"
    if isinstance(fact, tuple) and fact and all(isinstance(item, Parameter) for item in fact):
        return ", ".join(names.get(item, item) for item in fact)
    return fact


def shortened(value, limit: int = 24) -> str:
    """A value a user typed, cut for a one-line message when it is longer than `limit` characters."""
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit // 2]}… ({len(text):,} characters)"


def listed(indices: tuple[int, ...]) -> str:
    """Layer or head indices in words, a run of three or more as its ends: "4", "0, 4", "0–19", "0–2, 5"."""
    words, start = [], 0
    for end in range(1, len(indices) + 1):
        if end == len(indices) or indices[end] != indices[end - 1] + 1:  # a run of consecutive indices ends
            run = indices[start:end]
            words += [f"{run[0]}–{run[-1]}"] if len(run) >= 3 else map(str, run)
            start = end
    return ", ".join(words)


def _message(template: str, facts: Mapping, names: Mapping[str, str]) -> str:
    """`template` with its facts and parameters filled in, each parameter named as `names` maps it."""
    if not facts:
        return template
    worded = {key: _worded(value, names) for key, value in facts.items()}
    try:
        return template.format_map(_Names(worded, names))
    except (ValueError, IndexError, TypeError):  # a template at odds with its facts: say it unformatted
        return template


class Notice:
    """Something a run does otherwise than it was asked, said as the run goes on; its message has a
    template and facts as an error's has (see AttncliError)."""

    def __init__(self, message: str, **facts):
        self.message = message
        self.facts = facts

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each parameter named as `names` maps it (unnamed ones by themselves)."""
        return _message(self.message, self.facts, names)


class AttncliError(Exception):
    """A problem the user can fix; the message says what it is and what to do."""

    exit_code = 2

    def __init__(self, message: str, **facts):
        super().__init__(message)
        self.message = message
        self.facts = facts

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each parameter named as `names` maps it (unnamed ones by themselves)."""
        return _message(self.message, self.facts, names)

    def __str__(self) -> str:
        return self.worded({})


class BadInput(AttncliError):
    """The text, a word or a parameter's value cannot be used."""


class DataError(AttncliError):
    """A file attncli needs is missing or unreadable."""


class LinesFailed(AttncliError):
    """Lines of a corpus failed: the run went on without them, or had nothing left to do."""


class PipeClosed(AttncliError):
    """Whoever reads standard output stopped (`attncli ... | head`); not an error to report."""

    exit_code = 141  # what a process killed by SIGPIPE reports to the shell
