"""Errors every layer may raise or catch, so callers need not import the layer that raised them."""

from __future__ import annotations


class SecretNotFoundError(LookupError):
    """A referenced Secret (or a key in it) does not exist (yet); services report it and look again later."""


class TrainingKindMissingError(LookupError):
    """The cluster has no CRD for the Kubeflow kind a training workload needs (TrainJob or PyTorchJob);
    the message names what to install, or the other backend to choose."""


class LibraryError(Exception):
    """An error a driven system's library raised in another process (drivers/host.py), carried across
    as its type's name and its message, so the operator need not import the library to read it."""

    def __init__(self, message: str, qualified_type: str = "") -> None:
        super().__init__(message)
        self.qualified_type = qualified_type

    def __reduce__(self) -> tuple[type[LibraryError], tuple[str, str]]:
        return type(self), (str(self), self.qualified_type)


def error_name(error: BaseException) -> str:
    """The name of the error's type as its raiser knew it (a library's own for a LibraryError)."""
    if isinstance(error, LibraryError) and error.qualified_type:
        return error.qualified_type.rsplit(".", 1)[-1]
    return type(error).__name__
