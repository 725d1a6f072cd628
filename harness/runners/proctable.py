"""The Linux process table, read from /proc: who is in a process group, who descends from whom.

The local runner kills a run by its process group, but a submission may `setsid` a helper out
of that group; walking parent links before the kill finds those too. Tests use the same reads
to prove that nothing of a run is left behind.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces and parens)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def live(pid: int) -> bool:
    """True when PID exists and is not a zombie (a zombie holds no resources and runs nothing)."""
    f = _stat_fields(pid)
    return f is not None and f[0] != "Z"


def parent_of(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): tells a pid from a later reuse of it."""
    f = _stat_fields(pid)
    return int(f[19]) if f else None


def group_of(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[2]) if f else None


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    return [p for p in all_pids() if group_of(p) == pgid and live(p)]


def descendants(root: int) -> list[int]:
    """Live processes below `root` in the parent tree (not `root` itself)."""
    children: dict[int, list[int]] = {}
    for p in all_pids():
        pp = parent_of(p)
        if pp is not None:
            children.setdefault(pp, []).append(p)
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        p = todo.pop()
        if live(p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment holds NAME=VALUE (readable ones only: our own user's)."""
    needle = f"{name}={value}".encode()
    found = []
    for p in all_pids():
        try:
            env = (PROC / str(p) / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and live(p):
            found.append(p)
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def signal_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def owner_gone(name: str, prefix: str) -> bool:
    """For a resource named `<prefix><pid>-…` by the harness process that made it: True when
    that process no longer exists (a harness killed hard leaves such things behind)."""
    if not name.startswith(prefix):
        return False
    pid = name[len(prefix):].split("-", 1)[0]
    return pid.isdigit() and not (PROC / pid).exists()
