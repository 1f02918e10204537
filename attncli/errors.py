"""The errors attncli raises on purpose; the CLI turns each into one line on stderr."""

__all__ = ["AttncliError", "BadInput", "DataError", "PipeClosed"]


class AttncliError(Exception):
    """A problem the user can fix; the message says what it is and what to do."""

    exit_code = 2


class BadInput(AttncliError):
    """The text, a word or an option value cannot be used."""


class DataError(AttncliError):
    """A file attncli needs is missing or unreadable."""


class PipeClosed(AttncliError):
    """Whoever reads standard output stopped (`attncli ... | head`); not an error to report."""

    exit_code = 141  # what a process killed by SIGPIPE reports to the shell
