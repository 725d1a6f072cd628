"""The data-access watch (inotify and the audit socket) on real folders, without a run."""
from __future__ import annotations

import os
import time

from harness.runners.dataaccess import DataWatch


def test_stop_twice_is_harmless_and_keeps_the_record(tmp_path):
    """A collect retried after a failed one stops the watch again: the second stop must not
    touch closed descriptors (it raised EBADF), and what was seen stays in the summary."""
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    work.mkdir()
    (data / "fineweb_train_000000.bin").write_bytes(b"x" * 64)
    watch = DataWatch([data], work)
    fds = len(os.listdir("/proc/self/fd"))
    watch.start(time.monotonic())
    with open(data / "fineweb_train_000000.bin", "rb") as f:
        f.read()
    (work / "artifact.bin").write_bytes(b"y")
    watch.stop()
    assert len(os.listdir("/proc/self/fd")) < fds  # the inotify descriptor, the socket, the stop pipe
    first = watch.summary()
    watch.stop()
    assert watch.summary() == first
    assert first["train"]["kernel"]["files"] == 1 and first["train"]["kernel"]["opens"] >= 1
    assert "artifact.bin" in first["work"]
    assert not watch.inotify and not watch.listener
