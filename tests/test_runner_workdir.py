"""The seed's work folder: copies that follow no link, and what a run changed coming back."""
from __future__ import annotations

import os

from harness.runners.workdir import copy_tree, snapshot


def test_copy_back_follows_a_file_that_became_a_folder_and_a_folder_that_became_a_file(tmp_path):
    """A run may replace a file with a folder of the same name, or a folder with a file: the
    copy-back (Docker runner, bounded work folder) must take the new shape, not crash."""
    work, bound = tmp_path / "work", tmp_path / "bound"
    for root in (work, bound):
        (root / "ckpt").mkdir(parents=True)
        (root / "ckpt" / "old.pt").write_bytes(b"old")
        (root / "out.bin").write_bytes(b"file")
        (root / "keep.txt").write_text("same")
    before = snapshot(bound)
    # What the run did inside the bound folder: ckpt (a folder) is now a file, out.bin (a file) a folder.
    (bound / "ckpt" / "old.pt").unlink()
    (bound / "ckpt").rmdir()
    (bound / "ckpt").write_bytes(b"now a file")
    (bound / "out.bin").unlink()
    (bound / "out.bin").mkdir()
    (bound / "out.bin" / "part0").write_bytes(b"p0")
    os.symlink("/etc/hostname", bound / "link")
    after = snapshot(bound)
    changed = {p for p, st in after.items() if before.get(p) != st}
    skipped = copy_tree(bound, work, max_bytes=None, only=changed)
    assert (work / "ckpt").read_bytes() == b"now a file"
    assert (work / "out.bin").is_dir() and (work / "out.bin" / "part0").read_bytes() == b"p0"
    assert (work / "keep.txt").read_text() == "same"
    assert [(s.rel, s.kind) for s in skipped] == [("link", "link")] and not os.path.lexists(work / "link")
    assert snapshot(work).keys() == {"ckpt", "out.bin/part0", "keep.txt"}


def test_copy_back_replaces_a_link_with_the_folder_the_run_made(tmp_path):
    """The destination may hold a link where the run now has a folder: the link goes, nothing is
    written through it."""
    outside, work, bound = tmp_path / "outside", tmp_path / "work", tmp_path / "bound"
    outside.mkdir()
    work.mkdir()
    os.symlink(outside, work / "d")
    (bound / "d").mkdir(parents=True)
    (bound / "d" / "f").write_bytes(b"x")
    copy_tree(bound, work, max_bytes=None)
    assert not (work / "d").is_symlink() and (work / "d" / "f").read_bytes() == b"x"
    assert list(outside.iterdir()) == []
