"""The live view of a queue: pending / running / done / failed per record, and each running seed's
elapsed time against its kill deadline with its last line.

On a terminal a `rich` table redraws in place (a few times a second at most); elsewhere (CI logs,
pipes, files) plain lines are printed when a seed changes state, and a one-line count of the
whole queue every `every_s` seconds, so a log stays readable.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from harness.escape import guard_output, rich_text, terminal
from harness.progress import Silent, make_display

COLUMNS = ("pending", "running", "done", "failed")


def bucket(status: str) -> str:
    if status in ("queued", "pending"):
        return "pending"
    if status == "running":
        return "running"
    return "done" if status == "ok" else "failed"


def counts(tracks: list[Any]) -> dict[str, int]:
    out = dict.fromkeys(COLUMNS, 0)
    for t in tracks:
        out[bucket(t.status)] += 1
    return out


def clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def deadline_s(t: Any) -> float | None:
    cfg = t.job.cfg
    return cfg.timeout_s if cfg.timeout_s is not None else cfg.resolved_budgets().kill_after_s


def running_line(t: Any, now: float) -> str:
    h = t.handle
    start = t.started_unix()
    elapsed = now - start if start else None
    where = f"job {h.job_id}" + (f" on {h.state.node}" if h.state and h.state.node else "")
    last = (t.last_line.text.strip()[:70] if t.last_line else "")
    return f"{t.key}: {where}  {clock(elapsed)} / {clock(deadline_s(t))}  {last}"


def finished_text(t: Any) -> str:
    r = t.result or {}
    bpb = (r.get("reproduced") or {}).get("val_bpb")
    return f"{t.status}" + (f", val_bpb {bpb:.4f}" if isinstance(bpb, (int, float)) else "")


class QueueView:
    """Plain lines: one per state change, a summary every `every_s` seconds."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 30.0):
        self.out = stream or sys.stderr
        self.every_s = every_s
        self.last_summary = time.monotonic()

    def write(self, text: str) -> None:
        # lines carry the runs' own output (the last line a seed printed): control characters,
        # ANSI and OSC sequences never reach the terminal
        print(guard_output(terminal(text, multiline=True), "text"), file=self.out, flush=True)

    def start(self, tracks: list[Any]) -> None:
        self.write(self.summary(tracks))

    def message(self, text: str) -> None:
        self.write(text)

    def changed(self, t: Any, old: str) -> None:
        h = t.handle
        job = f" (job {h.job_id}{' on ' + h.state.node if h.state and h.state.node else ''})" if h else ""
        now = finished_text(t) if t.terminal else t.status
        self.write(f"{t.key}: {old} -> {now}{job}")

    def reported(self, entry: Any, report: Any) -> None:
        self.write(f"{entry.name}: all seeds finished: {report.verdict.value}; report {entry.out}/report.md")

    def summary(self, tracks: list[Any]) -> str:
        c = counts(tracks)
        return "queue: " + ", ".join(f"{c[k]} {k}" for k in COLUMNS) + f" ({len(tracks)} seeds)"

    def tick(self, tracks: list[Any]) -> None:
        if time.monotonic() - self.last_summary >= self.every_s:
            self.last_summary = time.monotonic()
            self.write(self.summary(tracks))
            now = time.time()
            for t in tracks:
                if t.status == "running":
                    self.write("  " + running_line(t, now))

    def close(self) -> None:
        pass


class RichQueueView(QueueView):
    """A table per record (counts) with a line per running seed, redrawn in place."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.out)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.tracks: list[Any] = []
        self.live.start()

    def write(self, text: str) -> None:
        # as QueueView.write: the runs' own output never reaches the terminal as escapes or markup
        self.console.print(rich_text(text, multiline=True), highlight=False)

    def changed(self, t: Any, old: str) -> None:
        if t.terminal:
            super().changed(t, old)

    def table(self) -> Any:
        """Counts per record, then one line per running seed (elapsed / deadline, last line)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title="pgolf queue", expand=False)
        table.add_column("record", overflow="fold")
        for k in COLUMNS:
            table.add_column(k, justify="right")
        for name in dict.fromkeys(t.entry.name for t in self.tracks):
            c = counts([t for t in self.tracks if t.entry.name == name])
            table.add_row(name, *(str(c[k]) for k in COLUMNS))
        now = time.time()
        running = [Text(terminal(running_line(t, now)), overflow="ellipsis", no_wrap=True)
                   for t in self.tracks if t.status == "running"]
        return Group(table, *running)

    def start(self, tracks: list[Any]) -> None:
        self.tracks = tracks
        self.live.update(self.table())

    def tick(self, tracks: list[Any]) -> None:
        self.tracks = tracks
        self.live.update(self.table())

    def close(self) -> None:
        self.live.stop()


class NullQueueView(Silent, QueueView):
    pass


def make_view(stream: TextIO | None = None, quiet: bool = False) -> QueueView:
    return make_display(stream, quiet, QueueView, RichQueueView, NullQueueView)
