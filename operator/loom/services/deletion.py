"""What every finalizer shares: removing an object's workloads by its owner label, describing what a
cleanup had to leave behind, and the pure decision to try again or to let the object go.

A user's delete must finish: a cleanup that keeps failing is retried a bounded number of times with a
growing delay, then the finalizer lets go and a Warning names each thing that was left and why."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from loom.domain.errors import error_name
from loom.executors.base import Executor

# Longest delay between two attempts, as a multiple of the first one.
MAX_BACKOFF_FACTOR = 16
MAX_REASON_CHARS = 240
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s]*@")
_KEY_PASSWORD = re.compile(r"(password=)[^,\s]*", re.IGNORECASE)


@dataclass(frozen=True)
class Left:
    """Something a cleanup could not remove: what it is, and why (redacted)."""

    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what} left: {self.why}"


@dataclass(frozen=True)
class Cleanup:
    """One attempt at cleaning up after an object: what it removed and what it had to leave."""

    removed: tuple[str, ...] = ()
    left: tuple[Left, ...] = ()

    def __add__(self, other: Cleanup) -> Cleanup:
        return Cleanup(self.removed + other.removed, self.left + other.left)

    @property
    def message(self) -> str:
        return "; ".join(str(item) for item in self.left)


@dataclass(frozen=True)
class Verdict:
    """`retry_after`: try again after that many seconds; None: let the object go. `warning`: what was
    left behind for good, for the Warning Event."""

    retry_after: float | None
    warning: str | None


def verdict(cleanup: Cleanup, attempt: int, attempts: int, first_delay: float) -> Verdict:
    """`attempt` counts from 0; the last of `attempts` lets go whatever is left. The delay doubles
    from `first_delay` up to `MAX_BACKOFF_FACTOR` times it."""
    if not cleanup.left:
        return Verdict(None, None)
    if attempt + 1 < attempts:
        return Verdict(first_delay * min(2 ** attempt, MAX_BACKOFF_FACTOR), None)
    return Verdict(None, cleanup.message)


def remove_workloads(executor: Executor, namespace: str, selector: Mapping[str, str]) -> Cleanup:
    """Delete every workload (and its runs and schedule) carrying the owner's label; each one that
    cannot be deleted is reported, the others still go."""
    try:
        names = sorted(executor.names(namespace, selector))
    except Exception as error:  # the API server failed: nothing is known about the workloads
        return Cleanup(left=(Left(f"workloads labelled {_selector(selector)}", describe(error)),))
    removed: list[str] = []
    left: list[Left] = []
    for name in names:
        try:
            executor.delete(namespace, name)
        except Exception as error:
            left.append(Left(f"workload {name}", describe(error)))
        else:
            removed.append(f"workload {name}")
    return Cleanup(tuple(removed), tuple(left))


def describe(error: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The error's type and text, with passwords and the given secret values redacted, unprintable
    characters escaped and the length bounded (it goes into an Event)."""
    text = f"{error_name(error)}: {error}" if str(error) else error_name(error)
    text = redact(text, secrets)
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 3] + "..."


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """A URL or connection string fit for an Event: passwords and secret values replaced."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, "***")
    text = _KEY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
