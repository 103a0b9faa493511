"""The driven systems' libraries in a process of their own, so the operator stays a small control loop.

Feast (with pandas, pyarrow, duckdb and scipy) and the MLflow library cost the operator several
hundred MiB once imported, and an import cannot be undone: before this, an operator that had
reconciled one FeatureSet kept them for good. A driver marks its calls that need them with
`@out_of_process`; once `start()` has run (the operator's start-up does it), those calls run in one
spawned helper process, and the helper exits after `idle_seconds` without a call, taking the
libraries' memory with it. Without `start()` (tests that call services directly, the workloads'
own processes) the same calls run inline.

Arguments and results cross by pickle, so they are Loom's own plain types. An exception crosses as
itself when it is Loom's or Python's own; any other (Feast's, SQLAlchemy's, MLflow's) becomes a
`LibraryError` with the same message and its type's name, so the operator never imports a library to unpickle its error.
The helper exits by itself when the operator is gone (even after a kill -9), and a helper that died
is replaced at the next call."""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, cast

from loom.domain.errors import LibraryError

F = TypeVar("F", bound=Callable[..., Any])
# Imported by Feast whenever installed, never needed by Loom's calls (Feast treats it as absent).
NOT_IN_HELPER = ("torch",)
PARENT_CHECK_SECONDS = 1.0


class DriverHostError(LibraryError):
    """The helper process died during the call (killed, or out of memory); the next call starts another."""


class Host:
    """One helper process, started at the first call and stopped after `idle_seconds` without one."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0
        self._last = time.monotonic()
        self._stopped = threading.Event()
        threading.Thread(target=self._reap_when_idle, name="loom-driver-host", daemon=True).start()

    def call(self, module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_helper_started, initargs=(os.getpid(),))
            pool = self._pool
            self._busy += 1
        try:
            return pool.submit(_invoke, module, name, args, kwargs).result()
        except BrokenProcessPool as broken:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            raise DriverHostError(f"the driver process stopped during {module}.{name}: {broken}") from None
        finally:
            with self._lock:
                self._busy -= 1
                self._last = time.monotonic()

    @property
    def running(self) -> bool:
        return self._pool is not None

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _reap_when_idle(self) -> None:
        while not self._stopped.wait(min(self.idle_seconds, 5.0)):
            with self._lock:
                idle = self._pool is not None and self._busy == 0 and time.monotonic() - self._last >= self.idle_seconds
                pool = self._pool if idle else None
                if idle:
                    self._pool = None
            if pool is not None:
                pool.shutdown(wait=True)


_host: Host | None = None
_users = 0
_users_lock = threading.Lock()


def start(idle_seconds: float) -> Host:
    """From now on, `@out_of_process` calls of this process run in the helper. Counted: an operator
    started while another runs in the same process (tests) shares the host until both stopped."""
    global _host, _users
    with _users_lock:
        _users += 1
        if _host is None:
            _host = Host(idle_seconds)
        return _host


def stop() -> None:
    """One user fewer; with none left, calls run inline again and the helper is stopped."""
    global _host, _users
    with _users_lock:
        _users = max(_users - 1, 0)
        host, _host = (_host, None) if _users == 0 else (None, _host)
    if host is not None:
        host.stop()


def out_of_process(inline_if: Callable[..., bool] | None = None) -> Callable[[F], F]:
    """Run the decorated module-level driver function in the helper once the host is started, except
    for the calls `inline_if(*args, **kwargs)` accepts (those that need no heavy library)."""

    def decorate(function: F) -> F:
        module, name = function.__module__, function.__qualname__

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            host = _host
            if host is None or (inline_if is not None and inline_if(*args, **kwargs)):
                return function(*args, **kwargs)
            return host.call(module, name, args, kwargs)

        return cast(F, call)

    return decorate


def _invoke(module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """In the helper: the undecorated function, its error made portable."""
    function = getattr(importlib.import_module(module), name).__wrapped__
    try:
        return function(*args, **kwargs)
    except Exception as error:
        raise portable(error) from None


def portable(error: Exception) -> Exception:
    """`error` itself when the operator can unpickle it without importing a library, else a LibraryError."""
    home = type(error).__module__.split(".", 1)[0]
    if home in ("builtins", "loom"):
        try:
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # an exception whose arguments do not survive pickling
            pass
    return LibraryError(str(error), f"{type(error).__module__}.{type(error).__qualname__}")


def _helper_started(parent: int) -> None:
    for name in NOT_IN_HELPER:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    threading.Thread(target=_exit_with, args=(parent,), name="loom-parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """The helper ends when the operator does: its pipes stay open in the helper itself, so it would
    otherwise wait for calls forever after the operator was killed."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)
