"""The token shard header, checked without torch: the reference stack's reader
(`reference_impl.data.read_shard`) and the harness's input check before a reproduction
(`harness.reproduce.inputs`) apply the same four facts, so a shard the harness accepts is one
the reference reader trains on.

Format (upstream, rules.md): a header of 256 little-endian int32 — magic 20240520, version 1,
token count, then zeros — followed by exactly that many little-endian uint16 tokens. A truncated
download or a file with trailing bytes is refused here, before a GPU trains on it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_BYTES = 2


class ShardError(ValueError):
    """A shard file that does not follow the format; `path` names the file, `reason` says what."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def check_header(path: str | os.PathLike[str], header: np.ndarray, size: int) -> int:
    """Return the token count of a shard whose header and size are consistent, else raise."""
    if header.size < HEADER_INTS:
        raise ShardError(path, f"truncated header: {size} bytes, a shard header is {HEADER_BYTES} bytes")
    magic, version, count = (int(x) for x in header[:3])
    if magic != SHARD_MAGIC:
        raise ShardError(path, f"bad magic {magic} in header int 0 (expected {SHARD_MAGIC}); not a token shard")
    if version != SHARD_VERSION:
        raise ShardError(path, f"unsupported shard version {version} (expected {SHARD_VERSION})")
    if count < 0:
        raise ShardError(path, f"negative token count {count} in header")
    expected = HEADER_BYTES + count * TOKEN_BYTES
    if size < expected:
        raise ShardError(path, f"truncated: {size} bytes on disk, header promises {count} tokens = {expected} bytes "
                               f"({(expected - size) // TOKEN_BYTES} tokens missing)")
    if size != expected:
        raise ShardError(path, f"wrong size: {size} bytes on disk, header says {count} tokens = {expected} bytes "
                               f"({size - expected} unexpected trailing bytes)")
    return count


def read_header(path: str | os.PathLike[str]) -> int:
    """The token count of the shard at `path`, its header and size checked (`check_header`);
    only the header is read."""
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
    return check_header(p, header, size)
