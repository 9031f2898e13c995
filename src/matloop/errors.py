"""User-facing errors: each names what is wrong and what to do about it."""

from __future__ import annotations


class MatloopError(Exception):
    """Base class for errors that reach the user as a message, never as a traceback.

    Args:
        message: What is wrong.
        hint: What the user can do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class StructureInputError(MatloopError):
    """A structure file or object cannot be used (unparseable, unphysical, disordered...)."""


class UnknownBackendError(MatloopError, ValueError):
    """An MLIP backend name that is not registered."""


class BackendUnavailableError(MatloopError):
    """A registered MLIP backend whose package or weights are not installed."""


class ReferenceDataError(MatloopError):
    """Reference phases are missing or cannot be imported."""


class RelaxationError(MatloopError):
    """A relaxation diverged or produced an unphysical result."""


class FileAccessError(MatloopError):
    """A path outside the folders matloop may read, or one it must not read (hidden, too big)."""


class StructureTooLargeError(StructureInputError):
    """A structure file or text larger than the size limit for structures."""


class ConfigError(MatloopError):
    """A setting with an invalid value, or a config file that cannot be read."""


class UsageError(MatloopError):
    """A command-line or API argument out of its allowed range (checked before any work)."""
