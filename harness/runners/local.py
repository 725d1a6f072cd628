"""The local runner: one seed as processes on this machine, observed line by line.

It is for trusted code. It isolates nothing: the run has the network, reads and writes the
host's files as the caller's user, and can write to the data folder. Every run says so, on
stderr and in the report (`ISOLATION_WARNING`); `pgolf reproduce` prefers the Docker runner when
an engine and the pinned image are there.

Why each choice:
- a fresh copy of the record folder per seed (`workdir.copy_record`: no link is copied), so runs
  never see each other's files and the files a run wrote can be measured against what the record
  shipped;
- a whitelisted environment (PATH, HOME, locale, CUDA/NCCL settings…) plus exactly the
  variables the harness sets on purpose (SEED, DATA_PATH, TOKENIZER_PATH, VOCAB_SIZE, RUN_ID),
  PYTHONUNBUFFERED=1 (Python children flush each line as they print it) and the audit hook's
  variables (`dataaccess`), so a reviewer's shell (an ITERATIONS=… left exported) cannot change
  the run;
- the kernel's grouping of processes (`confine`: a PID namespace and a cgroup where the machine
  allows them), so a daemon that leaves the session and clears its environment still dies with
  the run; where neither exists, a sweep of the process table (group, descendants, RUN_ID
  holders), with a warning in the report;
- one reader thread for both pipes, stamping each chunk with `time.monotonic()` the moment its
  read returns, into a `capture.Capture` that keeps lines on disk, cut to a cap, so neither a slow
  consumer nor a flood of output changes a stamp or the harness's memory;
- deadlines everywhere: `stream()` and `collect()` never wait past `spec.timeout_s` (a child
  that closes its output and sleeps is killed at the deadline like any other).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from harness.runners import proctable
from harness.runners.base import RunOutcome, RunSpec, Runner, StampedLine, env_added
# capture_path and with_hook_env were defined here; imported from here too.
from harness.runners.capture import Capture, capture_path, pump  # noqa: F401
from harness.runners.confine import Group
from harness.runners.dataaccess import DataWatch, data_roots, with_hook_env  # noqa: F401
# copy_record and snapshot were defined here; they live in `workdir` now (imported from here too).
from harness.runners.workdir import Skipped, copy_record, snapshot  # noqa: F401

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
DRAIN_AFTER_STOP_S = 5.0  # sweep mode: a pipe held open by an escaped process must not hang the harness
EXIT_DRAIN_S = 1.0  # after the main process exits, how long its leftovers may still print before they go
ISOLATION_WARNING = ("the local runner does not isolate the run: it has the network, reads and writes this "
                     "machine's files as {user}, and can write to the data folder; use it for trusted code only "
                     "(--runner docker isolates)")


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


def inherited_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """What a local run inherits from the harness's environment (`PASSTHROUGH`)."""
    base = os.environ if base is None else base
    return {k: v for k, v in base.items() if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}


def child_env(spec_env: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    return {**inherited_env(base), **ENV_ADDITIONS, **spec_env}


def _user() -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"
    except (KeyError, ImportError):
        return f"uid {os.getuid()}"


@dataclass
class LocalPrepared:
    spec: RunSpec
    argv: list[str]
    env: dict[str, str]
    before: dict[str, tuple[int, int]]
    skipped: list[Skipped] = field(default_factory=list)
    watch: DataWatch | None = None
    inherited: dict[str, str] = field(default_factory=dict)  # from the harness's environment


@dataclass
class LocalHandle:
    prepared: LocalPrepared
    proc: subprocess.Popen
    t0: float
    started_utc: str
    capture: Capture
    group: Group
    report_r: int | None = None
    init_report: dict[str, Any] | None = None
    stop_reason: str | None = None
    stopped_at: float | None = None
    signals: list[tuple[str, float]] = field(default_factory=list)
    timed_out: bool = False
    drained: bool = False
    exit_code: int | None = None
    leftovers_killed: list[int] = field(default_factory=list)  # pids (the namespace's init lists at most 200)
    leftover_count: int = 0  # how many there were
    known: dict[int, int] = field(default_factory=dict)  # sweep mode: pid -> start ticks of every descendant seen
    last_poll: float = 0.0
    exited_at: float | None = None  # when stream() saw the main process gone with the output still open
    reaped: bool = False
    collected: RunOutcome | None = None

    @property
    def seen(self):  # the lines streamed so far (kept for callers of the earlier interface)
        return self.capture.lines


class LocalRunner(Runner):
    """Options: term_grace_s (SIGTERM to SIGKILL), confine ("auto", "pidns", "cgroup",
    "pidns+cgroup", "sweep": see `confine.Group`), watch_data (the data-access channels),
    warn (the isolation warning on stderr; the report finding is always there)."""

    name = "local"

    def __init__(self, term_grace_s: float = TERM_GRACE_S, confine: str = "auto", watch_data: bool = True,
                 warn: bool = True):
        self.term_grace_s = term_grace_s
        self.confine = confine
        self.watch_data = watch_data
        self.warn = warn

    def prepare(self, spec: RunSpec) -> LocalPrepared:
        skipped = copy_record(Path(spec.record_dir), Path(spec.workdir))
        inherited = inherited_env()
        env = child_env(spec.env, inherited)
        watch = None
        if self.watch_data:
            watch = DataWatch(data_roots(spec.data_dir, spec.env), Path(spec.workdir))
            env = with_hook_env(env, watch.env())
        return LocalPrepared(spec, spec.command(), env, snapshot(Path(spec.workdir)), skipped, watch, inherited)

    def start(self, prepared: LocalPrepared) -> LocalHandle:
        spec = prepared.spec
        if self.warn:
            print(f"pgolf: warning: seed {spec.seed}: " + ISOLATION_WARNING.format(user=_user()), file=sys.stderr)
        name = f"{spec.env.get('RUN_ID') or 'run'}-{os.getpid()}-{time.monotonic_ns() % 10**9}".replace("/", "_")
        group = Group(name, self.confine)
        report_r, report_w = os.pipe() if group.pidns else (None, None)
        argv = group.wrap(prepared.argv, report_w)
        capture = Capture(capture_path(spec))
        started_utc = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        t0 = time.monotonic()
        if prepared.watch:
            prepared.watch.start(t0)
        try:
            proc = subprocess.Popen(
                argv, cwd=spec.workdir, env=prepared.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0, start_new_session=True,
                pass_fds=(report_w,) if report_w is not None else (),
            )
        except BaseException:
            group.release()
            if prepared.watch:
                prepared.watch.stop()
            raise
        finally:
            if report_w is not None:
                os.close(report_w)
        h = LocalHandle(prepared, proc, t0, started_utc, capture, group, report_r)
        fds = {}
        for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            fds[os.dup(pipe.fileno())] = stream
            pipe.close()
        threading.Thread(target=pump, args=(fds, t0, capture), daemon=True, name=f"pgolf-local-output-{spec.seed}").start()
        return h

    def elapsed(self, handle: LocalHandle) -> float:
        return time.monotonic() - handle.t0

    def _check_deadline(self, handle: LocalHandle) -> None:
        if handle.stop_reason is None and self.elapsed(handle) >= handle.prepared.spec.timeout_s:
            handle.timed_out = True
            self.stop(handle, "timeout")

    def stream(self, handle: LocalHandle) -> Iterator[StampedLine]:
        """Yield stamped lines until both pipes close; kill the run at its deadline."""
        deadline = handle.prepared.spec.timeout_s
        cap = handle.capture
        try:
            while not cap.done:
                self._check_deadline(handle)
                now = self.elapsed(handle)
                line = cap.take(0.2 if handle.stop_reason else max(0.01, min(0.2, deadline - now)))
                if line is not None:
                    yield line
                    continue
                if handle.stopped_at is not None and now - handle.stopped_at > DRAIN_AFTER_STOP_S:
                    break  # an escaped process holds a pipe (sweep mode); stop listening
                if handle.proc.poll() is not None:
                    # The run's main process is gone but something it started holds the output
                    # open: after a moment for the last lines, the leftovers go (in a PID
                    # namespace they already have).
                    handle.exited_at = handle.exited_at or now
                    if now - handle.exited_at > EXIT_DRAIN_S and not handle.reaped:
                        self._reap_leftovers(handle)
                    elif now - handle.exited_at > EXIT_DRAIN_S + DRAIN_AFTER_STOP_S:
                        break  # an escaped process holds a pipe (sweep mode); stop listening
                if not handle.group.kernel and now - handle.last_poll >= 1.0:
                    self._track(handle)
        except KeyboardInterrupt:
            self.stop(handle, "interrupt")
            raise
        handle.drained = True

    # ---- processes -------------------------------------------------------------------------------
    def _track(self, handle: LocalHandle) -> None:
        handle.last_poll = self.elapsed(handle)
        for p in proctable.descendants(handle.proc.pid):
            ticks = proctable.start_ticks(p)
            if ticks is not None:
                handle.known.setdefault(p, ticks)

    def members(self, handle: LocalHandle) -> list[int]:
        """Every live process of the run, the harness itself excluded: the cgroup's members where
        there is one, else what a sweep of the process table finds (see the module docstring)."""
        if handle.group.cgroup:
            found = set(handle.group.members() or [])
        else:
            pgid = handle.proc.pid
            found = set(proctable.group_members(pgid)) | set(proctable.descendants(pgid))
            if not handle.group.pidns:
                run_id = handle.prepared.spec.env.get("RUN_ID")
                if run_id:
                    found |= set(proctable.with_env("RUN_ID", run_id))
                found |= {p for p, t in handle.known.items() if proctable.start_ticks(p) == t and proctable.live(p)}
        found.discard(os.getpid())
        return sorted(p for p in found if proctable.live(p))

    def _signal(self, handle: LocalHandle, sig: int) -> None:
        handle.signals.append((signal.Signals(sig).name, round(self.elapsed(handle), 3)))
        proctable.signal_group(handle.proc.pid, sig)  # the launcher (and, in a namespace, its init)
        if handle.group.pidns and sig != signal.SIGKILL:
            return  # the namespace's init forwards it to every process of the run
        if sig == signal.SIGKILL and handle.group.cgroup:
            handle.group.kill()
        proctable.signal_all(self.members(handle), sig)

    def stop(self, handle: LocalHandle, reason: str) -> None:
        """SIGTERM every process of the run (torchrun then stops its workers), SIGKILL after a grace."""
        if handle.stop_reason is None:
            handle.stop_reason = reason
            handle.stopped_at = self.elapsed(handle)
        if handle.proc.poll() is not None and not self.members(handle):
            return
        if not handle.group.kernel:
            self._track(handle)
        self._signal(handle, signal.SIGTERM)
        t_end = time.monotonic() + self.term_grace_s
        while time.monotonic() < t_end and (handle.proc.poll() is None or self.members(handle)):
            time.sleep(0.05)
        if handle.proc.poll() is None or self.members(handle):
            self._signal(handle, signal.SIGKILL)
        try:
            handle.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stuck in the kernel (D state): nothing more to do here
            pass

    def _reap_leftovers(self, handle: LocalHandle) -> None:
        """A run that exited may leave processes behind; none may outlive the run. In a PID
        namespace they died with its init, which listed them; otherwise they are killed here."""
        handle.reaped = True
        if handle.init_report is not None:
            listed = handle.init_report.get("leftovers", [])
            handle.leftovers_killed = [p["pid"] for p in listed]
            handle.leftover_count = max(handle.leftover_count, int(handle.init_report.get("leftover_count", len(listed))))
        left = self.members(handle)
        if left:
            handle.leftovers_killed = sorted(set(handle.leftovers_killed) | set(left))
            handle.leftover_count = max(handle.leftover_count, len(handle.leftovers_killed))
            if handle.group.cgroup:
                handle.group.kill()
            proctable.signal_all(left, signal.SIGKILL)
            t_end = time.monotonic() + 2.0
            while self.members(handle) and time.monotonic() < t_end:
                time.sleep(0.02)

    def _wait_exit(self, handle: LocalHandle) -> None:
        """Wait for the launcher, never past the deadline: at the deadline the run is stopped."""
        while handle.proc.poll() is None:
            if handle.stop_reason is None:
                left = handle.prepared.spec.timeout_s - self.elapsed(handle)
                try:
                    handle.proc.wait(timeout=max(0.01, min(left, 1.0)))
                except subprocess.TimeoutExpired:
                    self._check_deadline(handle)
            else:
                self.stop(handle, handle.stop_reason)
                break

    def _read_init_report(self, handle: LocalHandle) -> None:
        if handle.report_r is None:
            return
        os.set_blocking(handle.report_r, False)
        try:
            raw = os.read(handle.report_r, 1 << 16)
        except (BlockingIOError, OSError):
            raw = b""
        os.close(handle.report_r)
        handle.report_r = None
        try:
            handle.init_report = json.loads(raw.decode().splitlines()[0]) if raw else None
        except (ValueError, IndexError):
            handle.init_report = None

    def collect(self, handle: LocalHandle) -> RunOutcome:
        if handle.collected is not None:
            return handle.collected
        if not handle.drained:
            for _ in self.stream(handle):
                pass
        self._wait_exit(handle)
        wall = self.elapsed(handle)
        handle.exit_code = handle.proc.returncode
        self._read_init_report(handle)
        if handle.init_report is not None:
            handle.exit_code = handle.init_report.get("exit", handle.exit_code)  # the command's own status
        self._reap_leftovers(handle)
        handle.group.release()
        handle.capture.lines.close()
        prepared = handle.prepared
        spec = prepared.spec
        watch = prepared.watch
        if watch:
            watch.stop()
        after = snapshot(Path(spec.workdir))
        written = sorted(k for k, v in after.items() if prepared.before.get(k) != v)
        handle.collected = RunOutcome(
            seed=spec.seed,
            exit_code=handle.exit_code,
            timed_out=handle.timed_out,
            stop_reason=handle.stop_reason,
            started_utc=handle.started_utc,
            wall_seconds=wall,
            lines=handle.capture.lines,
            files={k: v[0] for k, v in after.items()},
            runner=self.name,
            details={
                "command": prepared.argv,
                "env_set": dict(spec.env),
                "env_added": env_added(prepared.env, {**prepared.inherited, **spec.env}),
                "workdir": str(spec.workdir),
                "written": written,
                "pgid": handle.proc.pid,
                "leftovers_killed": handle.leftovers_killed,
                "leftovers_count": handle.leftover_count,
                "stopped_at_s": handle.stopped_at,
                "signals": handle.signals,
                "timeout_s": spec.timeout_s,
                "started_monotonic": handle.t0,  # CLOCK_MONOTONIC is system-wide: comparable across processes
                "output": handle.capture.lines.summary(),
                "links_not_copied": [s.to_dict() for s in prepared.skipped],
                "isolation": {"runner": "local", "isolated": False, "processes": handle.group.kind,
                              "kernel_grouping": handle.group.how, "warning": ISOLATION_WARNING.format(user=_user()),
                              "process_warning": handle.group.warning},
                "data_access": watch.summary() if watch else None,
            },
        )
        return handle.collected
