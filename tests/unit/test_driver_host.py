"""The driver host with a real helper process: calls leave the process once it is started and come
back with their results and errors, the helper goes when idle, when killed, and when the operator is
killed, and a call that can stay inline does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.domain.errors import LibraryError, SecretNotFoundError, error_name
from loom.drivers import host
from loom.drivers.host import DriverHostError
from tests.conftest import eventually
from tests.support import hosted

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def started() -> Iterator[host.Host]:
    running = host.start(idle_seconds=1.0)
    yield running
    host.stop()


def test_without_a_host_calls_run_inline() -> None:
    assert hosted.pid() == os.getpid()


def test_calls_run_in_one_helper_and_their_errors_come_back(started: host.Host) -> None:
    helper = hosted.pid()
    assert helper != os.getpid() and hosted.pid() == helper
    with pytest.raises(SecretNotFoundError, match="has no key 'uri'"):
        hosted.fail("loom")  # Loom's own error, as itself
    with pytest.raises(ValueError, match="no such failure"):
        hosted.fail("other")
    with pytest.raises(LibraryError, match="^unable to open database file$") as raised:
        hosted.fail("library")  # a library's error: its message, without the library in this process
    assert raised.value.qualified_type == "sqlite3.OperationalError"
    assert error_name(raised.value) == "OperationalError"
    assert hosted.where("here") == os.getpid() and hosted.where("there") == helper


def test_the_helper_exits_when_idle_and_the_next_call_starts_another(started: host.Host) -> None:
    first = hosted.pid()
    eventually(lambda: not alive(first), timeout=15, what="the idle helper gone")
    assert not started.running
    second = hosted.pid()
    assert second != first and alive(second)


def test_a_helper_killed_during_a_call_fails_that_call_only(started: host.Host) -> None:
    helper = hosted.pid()
    failure: list[BaseException] = []

    def call() -> None:
        try:
            hosted.nap(30)
        except BaseException as error:
            failure.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)
    os.kill(helper, signal.SIGKILL)
    caller.join(timeout=20)
    assert not caller.is_alive() and isinstance(failure[0], DriverHostError), failure
    assert hosted.pid() not in (helper, os.getpid())


def test_two_users_share_the_host_until_both_stopped() -> None:
    first = host.start(idle_seconds=30)
    assert host.start(idle_seconds=30) is first
    helper = hosted.pid()
    host.stop()
    assert hosted.pid() == helper  # the other user still holds it
    host.stop()
    assert hosted.pid() == os.getpid()
    eventually(lambda: not alive(helper), timeout=15, what="the stopped helper gone")


def test_the_helper_exits_when_its_operator_is_killed() -> None:
    script = textwrap.dedent("""
        import sys, time
        from loom.drivers import host
        from tests.support import hosted
        host.start(idle_seconds=600)
        print(hosted.pid(), flush=True)
        time.sleep(600)
    """)
    operator = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert operator.stdout is not None
        helper = int(operator.stdout.readline())
        assert alive(helper)
    finally:
        operator.kill()
        operator.wait()
    eventually(lambda: not alive(helper), timeout=15, what="the orphaned helper gone")
