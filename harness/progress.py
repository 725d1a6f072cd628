"""Progress of a reproduction: seed, step, phase and elapsed time against the kill deadline.

On a terminal a `rich` live line redraws in place; elsewhere (CI logs, pipes) plain lines are
printed only when something changes (a seed starts or ends, the phase changes, or every
`every_s` seconds), so a log file stays readable. The phase is read from the stamped lines:
"start" until the first timed step line, "train" until the stop line, then the name of the
last evaluation phase seen, "done" at the end.

Phase names come from the submission's output: they are escaped for the terminal (no escape
sequences, no control characters) and never parsed as rich markup (`[/]` is text).
"""
from __future__ import annotations

import re
import sys
import time
from typing import Any, TextIO

from harness.runners.base import StampedLine

_STEP = re.compile(r"^(?:step:\s*)?(\d+)/(\d+)\s")
_STOP = re.compile(r"^stopping_early|^step:(\d+)/\1\s.*val_loss")
_PHASE = re.compile(r"^([A-Za-z][\w:-]*)\s+val_loss[:=]")


class Progress:
    """Plain-line progress; the base of the rich one. Thread-free: fed by the reproduction loop."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 30.0):
        self.out = stream or sys.stderr
        self.every_s = every_s
        self.seed: int | None = None
        self.index = self.count = 0
        self.step = self.total = None
        self.phase = "start"
        self.budget_s = 0.0
        self.t_start = time.monotonic()
        self.last_print = 0.0

    # -- events -------------------------------------------------------------------------
    def seed_started(self, seed: int, index: int, count: int, budget_s: float) -> None:
        self.seed, self.index, self.count, self.budget_s = seed, index, count, budget_s
        self.step = self.total = None
        self.phase = "start"
        self.t_start = time.monotonic()
        self.emit(force=True)

    def seed_skipped(self, seed: int, index: int, count: int, status: str) -> None:
        self.write(f"seed {seed} [{index}/{count}]: finished earlier ({status}), skipped; --force redoes it")

    def line(self, ln: StampedLine) -> None:
        text = ln.text.strip()
        m = _STEP.match(text)
        changed = False
        if m and self.phase in ("start", "train"):
            self.step, self.total = int(m.group(1)), int(m.group(2))
            if self.phase == "start":
                self.phase, changed = "train", True
        if text.startswith("stopping_early"):
            self.phase, changed = "eval", True
        elif self.phase != "start" and (pm := _PHASE.match(text)) and not text.startswith("step:"):
            name = pm.group(1)
            if not name.endswith("_exact") and name != self.phase:
                self.phase, changed = name, True
        self.emit(force=changed)

    def seed_finished(self, seed: int, status: str, summary: str) -> None:
        self.phase = "done"
        self.write(f"seed {seed} [{self.index}/{self.count}]: {status} in {self.elapsed():.1f} s  {summary}")

    def close(self) -> None:
        pass

    # -- output ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    def status_text(self) -> str:
        step = f"step {self.step}/{self.total}" if self.step is not None else "step -"
        return (f"seed {self.seed} [{self.index}/{self.count}]  {step}  phase {self.phase}  "
                f"elapsed {self.elapsed():.0f}s / {self.budget_s:.0f}s")

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_print >= self.every_s:
            self.last_print = now
            self.write(self.status_text())

    def write(self, text: str) -> None:
        from harness.escape import guard_output, terminal

        print(guard_output(terminal(text), "text"), file=self.out, flush=True)


class RichProgress(Progress):
    """A live status line and bar (rich), redrawn at most a few times a second."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import BarColumn, Progress as RProgress, TextColumn, TimeElapsedColumn

        self.console = Console(file=self.out)
        self.bar = RProgress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                             console=self.console, transient=False, refresh_per_second=4)
        self.task: Any = None
        self.bar.start()

    def seed_started(self, seed: int, index: int, count: int, budget_s: float) -> None:
        super().seed_started(seed, index, count, budget_s)

    def emit(self, force: bool = False) -> None:
        if self.seed is None:
            return
        from harness.escape import rich_markup

        # the description is rendered as rich markup: escape it (a phase named `[/]` is text)
        if self.task is None:
            self.task = self.bar.add_task(rich_markup(self.status_text()), total=self.budget_s or None)
        self.bar.update(self.task, description=rich_markup(self.status_text()), completed=min(self.elapsed(), self.budget_s))

    def seed_finished(self, seed: int, status: str, summary: str) -> None:
        self.phase = "done"
        self.emit()
        if self.task is not None:
            self.bar.stop_task(self.task)
            self.task = None
        self.write(f"seed {seed} [{self.index}/{self.count}]: {status} in {self.elapsed():.1f} s  {summary}")

    def write(self, text: str) -> None:
        from harness.escape import rich_text

        self.console.print(rich_text(text))

    def close(self) -> None:
        self.bar.stop()  # idempotent: rich ignores a second stop


class Silent:
    """Mixed into a display to print nothing (--quiet, or a caller that shows no progress)."""

    def write(self, text: str) -> None:
        pass


class NullProgress(Silent, Progress):
    pass


def make_display(stream: TextIO | None, quiet: bool, plain: type, rich: type, silent: type) -> Any:
    """The display for `stream`, for reproductions and queues alike: `silent` when quiet, `rich`
    redrawn in place on a terminal, else `plain` lines (CI logs, pipes, files)."""
    stream = stream or sys.stderr
    if quiet:
        return silent(stream)
    return rich(stream) if stream.isatty() else plain(stream)


def make_progress(stream: TextIO | None = None, quiet: bool = False) -> Progress:
    return make_display(stream, quiet, Progress, RichProgress, NullProgress)
