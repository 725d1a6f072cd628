"""The live journal of a seed run inside a Slurm job, and the two runners built on it.

A Slurm job runs one seed with the local or docker runner (`slurm_job`). Two things must be
visible outside the job while it runs, on shared storage, and must survive the job's death:
every output line with its harness stamp (taken inside the job by the inner runner's clock,
never by the submission), and when the run started. The journal is that file:

    #start\t<unix time when the run started>\t<UTC ISO>\t<job id>
    <seconds since start>\t<stream>\t<text>          one line per output line, flushed at once

`JournalRunner` wraps the inner runner inside the job: each line it yields is appended to the
journal first; a watcher thread stops the run when Slurm warns that the time limit is near
(the outcome then reads TIMEOUT) or when the job finds it was superseded by a resubmission.

`ReplayRunner` replays an outcome rebuilt from a journal (a job that Slurm killed at its time
limit, a cancelled one, a lost one), so the harness writes that seed's result.json with the very
same code as every other seed (`harness.reproduce.seeds.run_seed`).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.runners.base import RunOutcome, RunSpec, Runner, StampedLine
from harness.runners.workdir import snapshot

HEADER = "#start"
WATCH_EVERY_S = 1.0


class Superseded(SystemExit):
    """This job's seed was resubmitted (its node was declared failed): write nothing."""


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def journal_line(ln: StampedLine) -> str:
    return ln.tsv()


@dataclass
class Journal:
    """What a journal holds so far (read incrementally from `offset`)."""

    start_unix: float | None = None
    job_id: str | None = None
    lines: list[StampedLine] = field(default_factory=list)
    offset: int = 0


def read_journal(path: Path, into: Journal | None = None, max_bytes: int = 64 << 20) -> Journal:
    """Read the complete lines added since `into.offset` (a line still being written is left for
    the next call). Capped per call: a run printing gigabytes cannot exhaust the harness."""
    j = into or Journal()
    try:
        with open(path, "rb") as f:
            f.seek(j.offset)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return j
    end = data.rfind(b"\n")
    if end < 0:
        return j
    j.offset += end + 1
    for raw in data[: end + 1].decode("utf-8", "replace").splitlines():
        if raw.startswith(HEADER + "\t"):
            parts = raw.split("\t", 3)
            j.start_unix = float(parts[1])
            j.job_id = parts[3] if len(parts) > 3 else None
            continue
        try:
            j.lines.append(StampedLine.from_tsv(raw))
        except ValueError:
            continue
    return j


# --- inside the job --------------------------------------------------------------------------
@dataclass
class JournalHandle:
    inner: Any
    file: Any
    started_unix: float
    stop_for: str | None = None  # "slurm-time-limit" or "superseded"


class JournalRunner(Runner):
    """The inner runner (local or docker), plus the journal and the job's own stop conditions.

    `time_limit_near` is set from the SIGUSR1 handler (sbatch --signal=B:USR1@N); `superseded()`
    says whether the queue has resubmitted this seed as a later job (read from shared storage).
    """

    name = "slurm"

    def __init__(self, inner: Runner, journal: Path, job_id: str, details: dict[str, Any],
                 superseded: Callable[[], bool] = lambda: False, time_limit_near: threading.Event | None = None):
        self.inner = inner
        self.journal = Path(journal)
        self.job_id = job_id
        self.details = details
        self.superseded = superseded
        self.time_limit_near = time_limit_near or threading.Event()

    def prepare(self, spec: RunSpec) -> Any:
        return self.inner.prepare(spec)

    def start(self, prepared: Any) -> JournalHandle:
        inner = self.inner.start(prepared)
        started = time.time()
        f = open(self.journal, "a", encoding="utf-8")
        f.write(f"{HEADER}\t{started:.6f}\t{utc_iso(started)}\t{self.job_id}\n")
        f.flush()
        handle = JournalHandle(inner, f, started)
        threading.Thread(target=self._watch, args=(handle,), daemon=True, name="pgolf-slurm-watch").start()
        return handle

    def _watch(self, handle: JournalHandle) -> None:
        while handle.stop_for is None and not handle.file.closed:
            if self.time_limit_near.wait(WATCH_EVERY_S):
                handle.stop_for = "slurm-time-limit"
            elif self.superseded():
                handle.stop_for = "superseded"
            else:
                continue
            self.inner.stop(handle.inner, "timeout" if handle.stop_for == "slurm-time-limit" else "superseded")

    def stream(self, handle: JournalHandle) -> Iterator[StampedLine]:
        for ln in self.inner.stream(handle.inner):
            handle.file.write(journal_line(ln))
            handle.file.flush()
            yield ln

    def stop(self, handle: JournalHandle, reason: str) -> None:
        self.inner.stop(handle.inner, reason)

    def collect(self, handle: JournalHandle) -> RunOutcome:
        try:
            outcome = self.inner.collect(handle.inner)
        finally:
            handle.file.close()
        if handle.stop_for == "superseded":
            raise Superseded(f"job {self.job_id}: the seed was resubmitted as a later job; this one writes nothing")
        if handle.stop_for == "slurm-time-limit":
            outcome.timed_out = True
            outcome.stop_reason = "slurm-time-limit"
        outcome.details = {**outcome.details, "inner_runner": self.inner.name, "slurm": dict(self.details)}
        outcome.runner = self.name
        return outcome


# --- in the harness --------------------------------------------------------------------------
class ReplayRunner(Runner):
    """Hands `run_seed` an outcome that already happened (rebuilt from a journal)."""

    name = "slurm"

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome

    def prepare(self, spec: RunSpec) -> RunSpec:
        return spec  # the job made the work directory; nothing is copied or run again

    def start(self, prepared: RunSpec) -> RunSpec:
        return prepared

    def stream(self, handle: RunSpec) -> Iterator[StampedLine]:
        yield from self.outcome.lines

    def stop(self, handle: RunSpec, reason: str) -> None:
        pass

    def collect(self, handle: RunSpec) -> RunOutcome:
        self.outcome.details.setdefault("command", handle.command())
        self.outcome.details.setdefault("env_set", dict(handle.env))
        return self.outcome


def files_written(workdir: Path, record_dir: Path) -> tuple[dict[str, int], list[str]]:
    """Sizes of every file in a work directory (`workdir.snapshot`: links listed, never
    followed), and those that differ from the record's (by size or absence): what a run wrote,
    for a job that ended before it could say so itself."""
    files = {rel: size for rel, (size, _mtime) in snapshot(workdir).items()}
    written: list[str] = []
    for rel, size in files.items():
        try:
            same = os.lstat(os.path.join(record_dir, rel)).st_size == size
        except OSError:
            same = False
        if not same:
            written.append(rel)
    return files, sorted(written)
