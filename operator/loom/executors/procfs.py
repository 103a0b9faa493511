"""Process identity from Linux /proc: a pid plus its start time and the boot id name one process for
good, so a pid reused after the original exited (or after a reboot) is never taken for it."""

from __future__ import annotations

from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
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


def group_members(leader: int, ticks: int | None, boot: str) -> list[int]:
    """Live processes of the process group that the process `leader` (with start time `ticks`) led,
    whether or not the leader itself still exists: a supervisor killed with SIGKILL leaves its
    component running in the group. Empty when `leader` now names another process (the group id
    cannot then be the one the supervisor made) or after a reboot. Members that started before the
    leader cannot be its descendants and are never counted."""
    if boot != boot_id():
        return []
    now_leader = _stat_fields(leader)
    if now_leader is not None and ticks is not None and int(now_leader[19]) != ticks:
        return []
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] in ("Z", "X") or int(fields[2]) != leader:
            continue
        if ticks is None or int(fields[19]) >= ticks:
            members.append(int(entry.name))
    return sorted(members)


# Set by the local executor in the environment of each attempt's supervisor, and so inherited by all
# its descendants, also those that leave its process group (torchrun starts each worker in a session of
# its own): the attempt's processes are its process group plus whatever carries this marker.
ATTEMPT_ENV = "LOOM_ATTEMPT"


def marked(value: str, name: str = ATTEMPT_ENV) -> list[int]:
    """Live processes of this user whose environment has `name=value` (as they were started: a process
    cannot change what /proc shows of its initial environment)."""
    entry_wanted = f"{name}={value}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if entry_wanted in environ.split(b"\0"):
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return sorted(found)
