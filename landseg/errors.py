"""The errors landseg raises for its users, apart from bugs.

Library code raises these (and :class:`landseg.config.ConfigError`, :class:`landseg.data.errors.DataError`);
each says what is wrong in the library's own terms (option names as the Python API spells them) and
carries the exit code a command should end with. Only :mod:`landseg.cli` turns them into messages with
command-line flags (``tile`` -> ``--tile``) and exit codes.
"""

from __future__ import annotations

_UNSET = object()


class LandsegError(Exception):
    """Base of landseg's user-facing errors. ``exit_code``: what a command ends with; ``hint``: what to do."""

    exit_code = 2
    hint: str | None = None


class OptionError(LandsegError, ValueError):
    """A stage option (a keyword of the library function, a flag of the command) that cannot work.

    ``option`` is the library's name (``batch_size``); :meth:`text` words the message for any other name
    of it (the command line shows ``--batch-size``)."""

    def __init__(self, option: str, problem: str, value=_UNSET):
        self.option, self.problem, self.value = option, problem, value
        super().__init__(self.text(option))

    def text(self, name: str) -> str:
        if self.value is _UNSET:
            return f"{name}: {self.problem}"
        return f"{name} {self.value!r} {self.problem}"

    def __reduce__(self):
        return (type(self), (self.option, self.problem, self.value))


def invalid(option: str, value, valid: str) -> OptionError:
    """The error for a value outside what ``option`` accepts."""
    return OptionError(option, f"is not valid; valid: {valid}", value)
