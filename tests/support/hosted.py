"""Driver-like functions for the driver host's tests: module-level, so the helper can import them."""

from __future__ import annotations

import os
import sys
import time

from loom.domain.errors import SecretNotFoundError
from loom.drivers.host import out_of_process


@out_of_process()
def pid() -> int:
    return os.getpid()


@out_of_process()
def packages() -> list[str]:
    """The top-level packages the process holds."""
    return sorted({name.split(".")[0] for name, module in sys.modules.items() if module is not None})


@out_of_process()
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@out_of_process()
def fail(kind: str) -> None:
    if kind == "loom":
        raise SecretNotFoundError("Secret ml/lake has no key 'uri'")
    if kind == "library":
        import sqlite3

        raise sqlite3.OperationalError("unable to open database file")
    raise ValueError(f"no such failure: {kind}")


@out_of_process(inline_if=lambda where: where == "here")
def where(where: str) -> int:
    return os.getpid()
