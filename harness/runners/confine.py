"""Kill everything a run started, with the kernel's grouping of processes.

Process trees, sessions and environments belong to the submission: a daemon that forks twice,
calls `setsid` and re-executes itself with a clean environment leaves the run's process group,
its parent chain and its RUN_ID behind, and a sweep of the process table misses it. Two
groupings it cannot leave:

- a **PID namespace** (`unshare --pid --fork --kill-child --mount-proc`: as root, or as any user
  where user namespaces are allowed). Every process the run starts is in it; its pid 1 is
  `nsinit.py`, and when that exits (the run's command ended, or the harness killed it) the kernel
  kills every process in the namespace;
- a **cgroup**: v2 `cgroup.kill` kills every member at once; under v1 the freezer cgroup is
  frozen, each task gets SIGKILL, and it is thawed, so nothing forks while it is being killed.
  Its member list (`cgroup.procs`) also tells, from outside, whether anything of the run lives.

A run gets both where the machine allows them. `probe()` finds out, once per harness process,
by trying each on a trivial command. Where neither works (no root, no user namespaces, no
writable cgroup), runs fall back to sweeping the process table (group, descendants, RUN_ID
holders) and every report says so: such a sweep misses the daemon above.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.runners import proctable

NSINIT = Path(__file__).with_name("nsinit.py")
CGROUP_PREFIX = "pgolf-run-"  # + the harness's pid + the run's name
UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc"]
MODES = ("auto", "pidns", "cgroup", "pidns+cgroup", "sweep")
SWEEP_WARNING = ("no kernel grouping of processes is available here (no PID namespace: {pidns}; no cgroup: "
                 "{cgroup}); the run's processes are found by sweeping the process table (group, descendants, "
                 "RUN_ID), which misses a daemon that leaves its session and environment")


def _run_ok(argv: list[str], timeout: float = 10.0) -> tuple[bool, str]:
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{argv[0]}: {e}"
    return p.returncode == 0, (p.stderr or p.stdout).strip()[-200:]


def _pidns_prefix() -> tuple[list[str] | None, str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "no unshare command (util-linux)"
    tries = [[unshare, *UNSHARE_FLAGS]]
    if os.geteuid() != 0:  # a user namespace lends the capabilities needed inside it
        tries.insert(0, [unshare, "--user", "--map-current-user", *UNSHARE_FLAGS])
        tries.insert(1, [unshare, "--user", "--map-root-user", *UNSHARE_FLAGS])
    why = ""
    for prefix in tries:
        ok, why = _run_ok([*prefix, "true"])
        if ok:
            return prefix, "unshare " + " ".join(prefix[1:])
    return None, f"unshare failed ({why or 'no reason given'})"


def _mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4:
                    out.append((parts[1], parts[2], set(parts[3].split(","))))
    except OSError:
        pass
    return out


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup path in the v2 hierarchy (controller None) or a v1 one."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller is None and ctrls == "") or (controller and controller in ctrls.split(",")):
                    return path
    except (OSError, ValueError):
        pass
    return "/"


def _cgroup_parents() -> list[tuple[str, Path]]:
    """Candidate parent folders for a run's cgroup: v2 first (under our own cgroup, then the
    root of the hierarchy), then v1's freezer."""
    out: list[tuple[str, Path]] = []
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup2":
            own = _own_cgroup(None).lstrip("/")
            out += [("v2", Path(mnt) / own)] if own else []
            out.append(("v2", Path(mnt)))
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup" and "freezer" in opts:
            own = _own_cgroup("freezer").lstrip("/")
            out += [("v1-freezer", Path(mnt) / own)] if own else []
            out.append(("v1-freezer", Path(mnt)))
    return out


def _cgroup_parent() -> tuple[tuple[str, Path] | None, str]:
    why = "no cgroup hierarchy mounted"
    for kind, parent in _cgroup_parents():
        probe = parent / f"pgolf-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError as e:
            why = f"cannot create a cgroup under {parent} ({e.strerror})"
            continue
        try:
            if kind == "v2" and not (probe / "cgroup.kill").exists():
                why = f"{parent} has no cgroup.kill (kernel older than 5.14)"
                continue
            ok, err = _run_ok(["/bin/sh", "-c", 'echo $$ > "$0"', str(probe / "cgroup.procs")])
            if ok:
                return (kind, parent), f"cgroup {kind} under {parent}"
            why = f"cannot move a process into {probe} ({err})"
        finally:
            _rmdir(probe)
    return None, why


@dataclass(frozen=True)
class Support:
    """What this machine allows, with a reason for each."""

    pidns: list[str] | None
    pidns_why: str
    cgroup: tuple[str, Path] | None
    cgroup_why: str


@functools.lru_cache(maxsize=1)
def probe() -> Support:
    prefix, pwhy = _pidns_prefix()
    parent, cwhy = _cgroup_parent()
    return Support(prefix, pwhy, parent, cwhy)


def _remove_stale(parent: Path) -> None:
    """Empty cgroups left by harnesses that were killed hard (the kernel refuses to remove one
    that still has processes)."""
    try:
        names = [p.name for p in parent.iterdir() if p.name.startswith(CGROUP_PREFIX)]
    except OSError:
        return
    for n in names:
        if proctable.owner_gone(n, CGROUP_PREFIX):
            _rmdir(parent / n)


def _rmdir(path: Path, wait_s: float = 0.0) -> bool:
    end = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)


class Group:
    """The kernel grouping of one run: `wrap` its command, `kill` it whole, `release` after.

    mode: "auto" (every grouping the machine allows), "pidns", "cgroup", "pidns+cgroup" (each
    required; an error when missing) or "sweep" (none: the fallback, forced).
    """

    def __init__(self, name: str, mode: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"unknown confinement {mode!r}; one of {', '.join(MODES)}")
        sup = probe() if mode != "sweep" else Support(None, "not asked for", None, "not asked for")
        want_ns = mode in ("auto", "pidns", "pidns+cgroup")
        want_cg = mode in ("auto", "cgroup", "pidns+cgroup")
        if mode != "auto":
            if want_ns and sup.pidns is None:
                raise RuntimeError(f"no PID namespace here: {sup.pidns_why}")
            if want_cg and sup.cgroup is None:
                raise RuntimeError(f"no usable cgroup here: {sup.cgroup_why}")
        self.pidns = sup.pidns if want_ns else None
        self.cgroup_kind: str | None = None
        self.cgroup: Path | None = None
        if want_cg and sup.cgroup is not None:
            kind, parent = sup.cgroup
            _remove_stale(parent)
            path = parent / f"{CGROUP_PREFIX}{os.getpid()}-{name}"
            try:
                path.mkdir()
                self.cgroup_kind, self.cgroup = kind, path
            except OSError as e:
                if mode != "auto":
                    raise RuntimeError(f"cannot create cgroup {path}: {e.strerror}") from None
        self.how = {"pid_namespace": sup.pidns_why if self.pidns else None,
                    "cgroup": f"{self.cgroup_kind} {self.cgroup}" if self.cgroup else None}
        self.warning = None
        if not self.pidns and not self.cgroup:
            self.warning = SWEEP_WARNING.format(pidns=sup.pidns_why, cgroup=sup.cgroup_why)

    @property
    def kind(self) -> str:
        parts = (["pid-namespace"] if self.pidns else []) + ([f"cgroup-{self.cgroup_kind}"] if self.cgroup else [])
        return "+".join(parts) or "sweep"

    @property
    def kernel(self) -> bool:
        return bool(self.pidns or self.cgroup)

    def wrap(self, argv: list[str], report_fd: int | None) -> list[str]:
        """The command line that starts `argv` inside the grouping. With a PID namespace,
        `report_fd` (inherited) receives nsinit's exit report."""
        out = list(argv)
        if self.pidns:
            out = [*self.pidns, sys.executable, "-I", "-S", str(NSINIT), str(report_fd), "--", *out]
        if self.cgroup:
            # The shell moves itself into the cgroup, then becomes the command: no process of
            # the run ever exists outside it.
            out = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.cgroup / "cgroup.procs"), *out]
        return out

    def members(self) -> list[int] | None:
        """Host pids in the run's cgroup (None without one)."""
        if not self.cgroup:
            return None
        try:
            return sorted(int(x) for x in (self.cgroup / "cgroup.procs").read_text().split())
        except OSError:
            return []

    def signal_members(self, sig: int) -> None:
        for pid in self.members() or []:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def kill(self, wait_s: float = 5.0) -> None:
        """SIGKILL every member of the cgroup at once (the PID namespace dies with its init,
        which the runner kills)."""
        if not self.cgroup:
            return
        if self.cgroup_kind == "v2":
            try:
                (self.cgroup / "cgroup.kill").write_text("1")
            except OSError:
                self.signal_members(signal.SIGKILL)
        else:
            self._freeze_and_kill()
        end = time.monotonic() + wait_s
        while self.members() and time.monotonic() < end:
            time.sleep(0.02)

    def _freeze_and_kill(self) -> None:
        state = self.cgroup / "freezer.state"
        try:
            state.write_text("FROZEN")
            end = time.monotonic() + 2.0
            while state.read_text().strip() != "FROZEN" and time.monotonic() < end:
                time.sleep(0.01)
        except OSError:
            pass
        self.signal_members(signal.SIGKILL)  # frozen tasks die as soon as they are thawed
        try:
            state.write_text("THAWED")
        except OSError:
            pass

    def release(self) -> None:
        """Remove the (empty) cgroup; kills what is left first."""
        if not self.cgroup:
            return
        if self.members():
            self.kill()
        _rmdir(self.cgroup, wait_s=2.0)
