"""A system a service could not read this time (an unreachable store or API server, a bad URI): an
observed value like any other, which the decision turns into a condition and a retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Unavailable:
    """What could not be read, and why (the error's own message)."""

    message: str


def read(reading: Callable[[], T]) -> T | Unavailable:
    try:
        return reading()
    except Exception as error:  # whatever keeps the value from coming back is observed alike
        return Unavailable(str(error) or type(error).__name__)
