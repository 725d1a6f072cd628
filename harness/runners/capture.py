"""A run's output as the harness reads it: lines cut to a cap, stamped on arrival, kept on disk.

A submission controls what it prints. Held in memory as one Python object per line, 5 MB of bare
newlines cost the harness 1.3 GB, and a 100 MB line without a newline grew a buffer without end.
So the output of every runner goes through this module:

- `LineSplitter` cuts one byte stream into lines and keeps at most `MAX_LINE_BYTES` of each; the
  rest of a long line is counted and dropped before it is ever buffered, and the kept part says
  how much was cut.
- `OutputLog` appends each line to a file, `<stamp>\\t<stream>\\t<text>\\n` (the format of
  `stamps_seed<S>.tsv`: `base.tsv_row`), and keeps only a stamp, a file offset and a stream flag per line in
  memory (17 bytes a line). Past `MAX_LINES` lines or `MAX_OUTPUT_BYTES` bytes it keeps nothing
  more and counts what it drops. It is a read-only sequence of `StampedLine`: `lines[i]` reads
  line i back from the file, so observation and reports see the same lines, in bounded memory.
- `Capture` joins the two for a run's stdout and stderr, with a condition variable on which a
  runner's `stream()` waits for the next line (never a queue of lines: a slow consumer must not
  make the harness hold what the child printed).

Text is also made safe for line counting: the characters that `str.splitlines` (and so the log
parser) takes for line ends — `\\v \\f \\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029`, and a `\\r` inside a
line — become spaces. Line N of the log is then line N of the stamps, and a submission cannot
shift the parser's line numbers away from the stamps they are looked up in.
"""
from __future__ import annotations

import os
import threading
from array import array
from pathlib import Path
from typing import Iterator, Sequence, overload

from harness.runners.base import RunSpec, StampedLine, tsv_row

MAX_LINE_BYTES = 16 * 1024  # upstream's longest log line is 1.5 kB
MAX_LINES = 200_000  # upstream's longest log has under 5,000 lines
MAX_OUTPUT_BYTES = 32 * 1024 * 1024  # its largest is 150 kB
STREAMS = ("stdout", "stderr")
# str.splitlines breaks lines at these; a log line must stay one line for the parser.
_LINE_BREAKS = {ord(c): " " for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def clean_text(raw: bytes, cut: int = 0) -> str:
    """One output line as text: undecodable bytes replaced, a trailing \\r dropped, the other
    characters that would split it for the parser made spaces, and a note when it was cut."""
    text = raw.decode("utf-8", "replace")
    if text.endswith("\r"):
        text = text[:-1]
    text = text.translate(_LINE_BREAKS)
    if cut:
        text += f" [pgolf: {cut:,} more bytes of this line not kept]"
    return text


class LineSplitter:
    """Complete lines from a byte stream fed in chunks; at most `cap` bytes of each are buffered."""

    def __init__(self, cap: int = MAX_LINE_BYTES):
        self.cap = cap
        self.buf = bytearray()
        self.cut = 0  # bytes of the current line dropped so far

    def _take(self, piece: bytes | memoryview) -> None:
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += piece[:room]
        self.cut += max(0, len(piece) - max(room, 0))

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """The lines `chunk` completes, each as (kept bytes, bytes cut from it)."""
        pieces = chunk.split(b"\n")
        out: list[tuple[bytes, int]] = []
        for piece in pieces[:-1]:
            if self.buf or self.cut or len(piece) > self.cap:
                self._take(piece)
                out.append((bytes(self.buf), self.cut))
                self.buf.clear()
                self.cut = 0
            else:
                out.append((piece, 0))
        self._take(pieces[-1])
        return out

    def rest(self) -> tuple[bytes, int] | None:
        """The unterminated last line at end of stream, if any."""
        if not self.buf and not self.cut:
            return None
        line = (bytes(self.buf), self.cut)
        self.buf.clear()
        self.cut = 0
        return line


class OutputLog(Sequence[StampedLine]):
    """The lines of one run, on disk at `path`, indexed in memory (see the module docstring)."""

    def __init__(self, path: Path, max_lines: int = MAX_LINES, max_bytes: int = MAX_OUTPUT_BYTES):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        self.max_lines, self.max_bytes = max_lines, max_bytes
        self._t = array("d")
        self._off = array("q")
        self._err = bytearray()  # 1 where the line came on stderr
        self._size = 0  # bytes in the file (written or buffered)
        self._pending = bytearray()
        self._flushed = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.cut_lines = 0
        self.cut_bytes = 0
        self.closed = False
        self.lock = threading.RLock()

    # ---- writing ------------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return len(self._t) >= self.max_lines or self._size >= self.max_bytes

    def add(self, t: float, stream: str, raw: bytes, cut: int = 0) -> None:
        with self.lock:
            if cut:
                self.cut_lines += 1
                self.cut_bytes += cut
            if self.full or self.closed:
                self.dropped_lines += 1
                self.dropped_bytes += len(raw) + cut
                return
            rec = tsv_row(t, stream, clean_text(raw, cut)).encode("utf-8", "replace")
            self._t.append(t)
            self._off.append(self._size)
            self._err.append(stream == "stderr")
            self._pending += rec
            self._size += len(rec)
            if len(self._pending) >= 1 << 16:
                self.flush()

    def drop(self, lines: int, nbytes: int) -> None:
        """Count lines that arrived after the log was full, without splitting them."""
        with self.lock:
            self.dropped_lines += lines
            self.dropped_bytes += nbytes

    def flush(self) -> None:
        with self.lock:
            while self._pending:
                n = os.pwrite(self._fd, self._pending, self._flushed)
                del self._pending[:n]
                self._flushed += n

    def close(self) -> None:
        """No more lines: what arrives later is counted as dropped. The file stays open for
        reading until this object goes."""
        with self.lock:
            self.flush()
            self.closed = True

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    # ---- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._t)

    def stamp(self, i: int) -> float:
        """Line i's stamp, without reading the file."""
        return self._t[i]

    def _line(self, i: int) -> StampedLine:
        with self.lock:
            start = self._off[i]
            end = self._off[i + 1] if i + 1 < len(self._off) else self._size
            if end > self._flushed:
                self.flush()
            raw = os.pread(self._fd, end - start, start)
        # The stamp kept in memory is exact; the file's has 6 decimals.
        return StampedLine(self._t[i], StampedLine.from_tsv(raw.decode("utf-8", "replace")).text,
                           "stderr" if self._err[i] else "stdout")

    @overload
    def __getitem__(self, i: int) -> StampedLine: ...
    @overload
    def __getitem__(self, i: slice) -> list[StampedLine]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._line(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("output line index out of range")
        return self._line(i)

    def __iter__(self) -> Iterator[StampedLine]:
        """Every kept line, read sequentially (one buffered pass, not a read per line)."""
        with self.lock:
            n = len(self)
            self.flush()
        with open(self.path, "rb", buffering=1 << 20) as f:
            for i, rec in zip(range(n), f):
                text = StampedLine.from_tsv(rec.decode("utf-8", "replace")).text
                yield StampedLine(self._t[i], text, "stderr" if self._err[i] else "stdout")

    def summary(self) -> dict[str, int | str]:
        """What was kept and what was not, for the outcome's details."""
        return {"file": str(self.path), "lines": len(self), "bytes": self._size,
                "dropped_lines": self.dropped_lines, "dropped_bytes": self.dropped_bytes,
                "cut_lines": self.cut_lines, "cut_bytes": self.cut_bytes,
                "max_lines": self.max_lines, "max_bytes": self.max_bytes, "max_line_bytes": MAX_LINE_BYTES}


class Capture:
    """A run's stdout and stderr into one `OutputLog`, fed by reader threads as bytes arrive."""

    def __init__(self, path: Path, streams: Sequence[str] = STREAMS, **caps: int):
        self.lines = OutputLog(path, **caps)
        self._split = {s: LineSplitter() for s in streams}
        self.open_streams = set(streams)
        self.taken = 0  # lines handed out by `take`
        self.changed = threading.Condition(self.lines.lock)

    def feed(self, stream: str, chunk: bytes, t: float) -> None:
        """`chunk` arrived on `stream` at harness time `t` (taken when the read returned)."""
        log = self.lines
        with self.changed:
            if log.full:
                # Nothing more is kept: count the lines, never split them into objects.
                split = self._split[stream]
                split.buf.clear()
                split.cut = 0
                log.drop(chunk.count(b"\n"), len(chunk))
            else:
                for raw, cut in self._split[stream].feed(chunk):
                    log.add(t, stream, raw, cut)
            # No flush here: the log writes in 64 kB batches, and reading a line flushes first.
            self.changed.notify_all()

    def end(self, stream: str, t: float) -> None:
        with self.changed:
            rest = self._split[stream].rest()
            if rest is not None:
                self.lines.add(t, stream, *rest)
            self.open_streams.discard(stream)
            self.changed.notify_all()

    def take(self, timeout: float) -> StampedLine | None:
        """The next line not yet taken, waiting up to `timeout` for one; None when none came.
        A runner's `stream()` is a loop over this until `done`."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.lines) > self.taken or not self.open_streams, timeout)
            if len(self.lines) <= self.taken:
                return None
            self.taken += 1
            return self.lines[self.taken - 1]

    @property
    def ended(self) -> bool:
        return not self.open_streams

    @property
    def done(self) -> bool:
        """Every stream ended and every line taken."""
        return not self.open_streams and self.taken >= len(self.lines)


def capture_path(spec: RunSpec) -> Path:
    """Where a run's stamped output is kept: beside its work folder, never inside (the run could
    rewrite it there, and a container mounts the work folder)."""
    wd = Path(spec.workdir)
    return wd.with_name(f"{wd.name}.output.tsv")


def pump(fds: dict[int, str], t0: float, capture: Capture) -> None:
    """Read pipes (fd -> stream name) until each reaches EOF, feeding the capture; each chunk is
    stamped when its read returns. One thread for all of them, in its own thread so a slow
    consumer never delays a stamp: lines enter the log in the order they were read, so their
    order and their stamps agree (with both pipes ready, stdout is read first)."""
    import select
    import time

    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    open_fds = dict(fds)
    try:
        while open_fds:
            ready = [fd for fd, _ in poll.poll()]
            for fd in sorted(ready, key=lambda f: open_fds.get(f) != "stdout"):
                if fd not in open_fds:
                    continue
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    chunk = b""
                now = time.monotonic() - t0
                if chunk:
                    capture.feed(open_fds[fd], chunk, now)
                else:
                    poll.unregister(fd)
                    capture.end(open_fds.pop(fd), now)
                    os.close(fd)
    finally:
        for fd, stream in open_fds.items():
            capture.end(stream, time.monotonic() - t0)
            os.close(fd)
