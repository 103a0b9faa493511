"""Process identity from Linux /proc: a pid plus its start time and the boot id name one process for
good, so a pid reused after the original exited (or after a reboot) is never taken for it."""

from __future__ import annotations

from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces; fields restart after it.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def boot_id() -> str:
    return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()


def alive(pid: int, ticks: int | None, boot: str) -> bool:
    """True while that very process exists and has not exited (a zombie has exited)."""
    fields = _stat_fields(pid)
    if fields is None or boot != boot_id():
        return False
    state, started = fields[0], int(fields[19])
    return state not in ("Z", "X") and started == ticks
