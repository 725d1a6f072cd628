"""The local runner: one seed as a process group on this machine, observed line by line.

Why each choice:
- a fresh copy of the record folder per seed, so runs never see each other's files and the
  files a run wrote can be measured against what the record shipped;
- a whitelisted environment (PATH, HOME, locale, CUDA/NCCL settings…) plus exactly the
  variables the harness sets on purpose (SEED, DATA_PATH, TOKENIZER_PATH, VOCAB_SIZE, RUN_ID)
  and PYTHONUNBUFFERED=1, so a reviewer's shell (an ITERATIONS=… left exported) cannot change
  the run, and Python children flush each line as they print it;
- `start_new_session=True`: the run is its own process group, so Ctrl-C at the terminal reaches
  the harness only. Killing the group is not enough: torchrun starts its workers in sessions of
  their own, and a submission may do the same. So the runner kills the union of the group, the
  live descendants, every process it saw descend from the run (polled each second, checked by
  start time against pid reuse) and every process carrying the run's RUN_ID in its environment;
- one reader thread per pipe, reading raw bytes with `os.read` and stamping each line with
  `time.monotonic()` the moment its bytes arrive, so a slow consumer (progress display, disk)
  never delays a stamp.
"""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from harness.runners import proctable
from harness.runners.base import RunOutcome, RunSpec, Runner, StampedLine

# Inherited from the harness environment when set; everything else is dropped.
PASSTHROUGH = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
    "TMPDIR", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
)
PASSTHROUGH_PREFIXES = ("PYENV_", "NCCL_")
# Added to every run (reported as such): line-by-line flushing of Python children's output.
ENV_ADDITIONS = {"PYTHONUNBUFFERED": "1"}

TERM_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
DRAIN_AFTER_STOP_S = 5.0  # a pipe held open by an escaped process must not hang the harness


def default_nproc() -> int:
    """All GPUs (counted with nvidia-smi: importing torch costs seconds), else 1 on CPU."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
            n = sum(1 for ln in out.splitlines() if ln.startswith("GPU "))
            if n:
                return n
        except (OSError, subprocess.SubprocessError):
            pass
    return 1


def child_env(spec_env: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}
    env.update(ENV_ADDITIONS)
    env.update(spec_env)
    return env


def copy_record(src: Path, dst: Path) -> None:
    """Copy a record folder into a fresh, writable work directory (records may be read-only)."""
    if dst.exists():
        for root, dirs, _ in os.walk(dst):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(dst)
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = Path(root) / name, dst / rel / name
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
                continue
            shutil.copyfile(s, d)
            os.chmod(d, (s.stat().st_mode & 0o777) | 0o600)
        for x in [x for x in dirs if (Path(root) / x).is_symlink()]:
            os.symlink(os.readlink(Path(root) / x), dst / rel / x)
            dirs.remove(x)


def snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file (symlinks not followed)."""
    out: dict[str, tuple[int, int]] = {}
    for root, dirs, files in os.walk(workdir):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[os.path.relpath(p, workdir)] = (st.st_size, st.st_mtime_ns)
    return out


@dataclass
class LocalPrepared:
    spec: RunSpec
    argv: list[str]
    env: dict[str, str]
    before: dict[str, tuple[int, int]]


@dataclass
class LocalHandle:
    prepared: LocalPrepared
    proc: subprocess.Popen
    t0: float
    started_utc: str
    lines: queue.Queue = field(default_factory=queue.Queue)
    seen: list[StampedLine] = field(default_factory=list)
    open_streams: int = 2
    stop_reason: str | None = None
    stopped_at: float | None = None
    timed_out: bool = False
    drained: bool = False
    leftovers_killed: list[int] = field(default_factory=list)
    known: dict[int, int] = field(default_factory=dict)  # pid -> start ticks of every descendant seen
    last_poll: float = 0.0


def _pump(fd: int, name: str, t0: float, q: queue.Queue) -> None:
    """Read raw bytes as they come; every complete line gets the arrival time of its last byte."""
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        now = time.monotonic() - t0
        if not chunk:
            break
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for raw in complete:
            q.put(StampedLine(now, raw.rstrip(b"\r").decode("utf-8", "replace"), name))
    if buf:
        q.put(StampedLine(time.monotonic() - t0, buf.rstrip(b"\r").decode("utf-8", "replace"), name))
    os.close(fd)
    q.put(name)  # end of this stream


class LocalRunner(Runner):
    name = "local"

    def __init__(self, term_grace_s: float = TERM_GRACE_S):
        self.term_grace_s = term_grace_s

    def prepare(self, spec: RunSpec) -> LocalPrepared:
        copy_record(Path(spec.record_dir), Path(spec.workdir))
        return LocalPrepared(spec, spec.command(), child_env(spec.env), snapshot(Path(spec.workdir)))

    def start(self, prepared: LocalPrepared) -> LocalHandle:
        started_utc = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            prepared.argv,
            cwd=prepared.spec.workdir,
            env=prepared.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        h = LocalHandle(prepared, proc, t0, started_utc)
        for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            fd = os.dup(pipe.fileno())
            pipe.close()
            threading.Thread(target=_pump, args=(fd, name, t0, h.lines), daemon=True).start()
        return h

    def elapsed(self, handle: LocalHandle) -> float:
        return time.monotonic() - handle.t0

    def stream(self, handle: LocalHandle) -> Iterator[StampedLine]:
        """Yield stamped lines until both pipes close; kill the run at its deadline."""
        deadline = handle.prepared.spec.timeout_s
        try:
            while handle.open_streams > 0:
                now = self.elapsed(handle)
                if handle.stop_reason is None and now >= deadline:
                    handle.timed_out = True
                    self.stop(handle, "timeout")
                if handle.stopped_at is not None and now - handle.stopped_at > DRAIN_AFTER_STOP_S:
                    break  # an escaped process holds a pipe; stop listening
                wait = 0.2 if handle.stop_reason else max(0.01, min(0.2, deadline - now))
                try:
                    item = handle.lines.get(timeout=wait)
                except queue.Empty:
                    continue
                if now - handle.last_poll >= 1.0:
                    self._track(handle)
                if isinstance(item, str):
                    handle.open_streams -= 1
                    continue
                handle.seen.append(item)
                yield item
        except KeyboardInterrupt:
            self.stop(handle, "interrupt")
            raise
        handle.drained = True

    def _track(self, handle: LocalHandle) -> None:
        handle.last_poll = self.elapsed(handle)
        for p in proctable.descendants(handle.proc.pid):
            ticks = proctable.start_ticks(p)
            if ticks is not None:
                handle.known.setdefault(p, ticks)

    def members(self, handle: LocalHandle) -> list[int]:
        """Every live process of the run (see the module docstring), the harness itself excluded."""
        pgid = handle.proc.pid
        found = set(proctable.group_members(pgid)) | set(proctable.descendants(pgid))
        run_id = handle.prepared.spec.env.get("RUN_ID")
        if run_id:
            found |= set(proctable.with_env("RUN_ID", run_id))
        found |= {p for p, t in handle.known.items() if proctable.start_ticks(p) == t and proctable.live(p)}
        found.discard(os.getpid())
        return sorted(found)

    def stop(self, handle: LocalHandle, reason: str) -> None:
        """SIGTERM every process of the run (torchrun then stops its workers), SIGKILL after a grace."""
        if handle.stop_reason is None:
            handle.stop_reason = reason
            handle.stopped_at = self.elapsed(handle)
        self._track(handle)
        procs = self.members(handle)
        proctable.signal_group(handle.proc.pid, signal.SIGTERM)
        proctable.signal_all(procs, signal.SIGTERM)
        t_end = time.monotonic() + self.term_grace_s
        while time.monotonic() < t_end:
            if handle.proc.poll() is not None and not self.members(handle):
                break
            time.sleep(0.05)
        proctable.signal_group(handle.proc.pid, signal.SIGKILL)
        proctable.signal_all(self.members(handle), signal.SIGKILL)
        handle.proc.wait()

    def _reap_leftovers(self, handle: LocalHandle) -> None:
        """A run that exited may leave processes behind; none may outlive the run."""
        left = self.members(handle)
        if left:
            handle.leftovers_killed = left
            proctable.signal_all(left, signal.SIGKILL)
            t_end = time.monotonic() + 2.0
            while self.members(handle) and time.monotonic() < t_end:
                time.sleep(0.02)

    def collect(self, handle: LocalHandle) -> RunOutcome:
        if not handle.drained:
            for _ in self.stream(handle):
                pass
        exit_code = handle.proc.wait()
        wall = self.elapsed(handle)
        self._reap_leftovers(handle)
        spec = handle.prepared.spec
        after = snapshot(Path(spec.workdir))
        before = handle.prepared.before
        written = sorted(k for k, v in after.items() if before.get(k) != v)
        return RunOutcome(
            seed=spec.seed,
            exit_code=exit_code,
            timed_out=handle.timed_out,
            stop_reason=handle.stop_reason,
            started_utc=handle.started_utc,
            wall_seconds=wall,
            lines=list(handle.seen),
            files={k: v[0] for k, v in after.items()},
            runner=self.name,
            details={
                "command": handle.prepared.argv,
                "env_set": dict(spec.env),
                "env_added": dict(ENV_ADDITIONS),
                "workdir": str(spec.workdir),
                "written": written,
                "pgid": handle.proc.pid,
                "leftovers_killed": handle.leftovers_killed,
                "stopped_at_s": handle.stopped_at,
                "timeout_s": spec.timeout_s,
                "started_monotonic": handle.t0,  # CLOCK_MONOTONIC is system-wide: comparable across processes
            },
        )
