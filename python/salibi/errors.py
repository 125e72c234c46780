"""Errors salibi raises for things the user can fix.

Each subclasses a builtin (so ``except ValueError`` keeps working) and :class:`SalibiError`
(so the command line turns it into one line on stderr and exit status 1). Messages name the
file or argument at fault and say how to fix it.
"""

from __future__ import annotations


class SalibiError(Exception):
    """Base class: a user-facing error with a message that says what to do."""


class InputError(SalibiError, ValueError):
    """An argument or input value that cannot be used as given."""


class DataFormatError(SalibiError, ValueError):
    """A file that exists but is not in the expected format or format version."""


class MissingInputError(SalibiError, FileNotFoundError):
    """A file or folder that should exist does not."""


class OutputExistsError(SalibiError, FileExistsError):
    """An output that would overwrite something the user has not agreed to lose."""


class OutputError(SalibiError, OSError):
    """An output that could not be written where asked (a full disk, a quota, an I/O error)."""


class UnsafePickleError(SalibiError, RuntimeError):
    """A pickle that references something outside the allowed, data-only classes."""


class DeviceError(SalibiError, RuntimeError):
    """A requested device (GPU count, CUDA) that this machine does not have."""


class TasksFailedError(SalibiError, RuntimeError):
    """Every task of an evaluation failed (none gave a result): ``failed`` maps each to its reason."""

    def __init__(self, message: str, failed: dict[str, str]) -> None:
        super().__init__(message)
        self.failed = failed
