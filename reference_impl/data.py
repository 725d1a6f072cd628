"""Token shards, the distributed training stream, the validation split and byte counting.

Shard format (upstream, rules.md): a header of 256 little-endian int32 — magic 20240520,
version 1, token count, then zeros — followed by exactly that many little-endian uint16 tokens.
The reader checks all three facts and the file size before trusting a byte (`reference_impl.shard`), because a truncated
download otherwise trains silently on a short file.

`val_bpb` needs the number of UTF-8 bytes each target token stands for. SentencePiece pieces
carry that directly (piece length, "▁" = one space byte, byte-fallback pieces = one byte), except
that a leading "▁" is dropped by the decoder after a boundary token (BOS/control/unknown), so the
count of a target depends on the token before it: `target_byte_counts(luts, prev, target)`.
"""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

# the header check lives in a torch-free module the harness's input check shares
from reference_impl.shard import (HEADER_BYTES, HEADER_INTS, SHARD_MAGIC, SHARD_VERSION,  # noqa: F401 (re-exported)
                                  TOKEN_BYTES, ShardError, check_header)


def read_shard(path: str | os.PathLike[str]) -> Tensor:
    """Tokens of one shard as a 1-D uint16 tensor (few ops support uint16: index with it after
    `.long()`); `ShardError` on any format violation."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
        count = check_header(p, header, size)
        tokens = np.frombuffer(f.read(count * TOKEN_BYTES), dtype="<u2")
    if tokens.size != count:  # the file shrank while we read it
        raise ShardError(p, f"short read: {tokens.size} of {count} tokens")
    return torch.from_numpy(tokens.astype(np.uint16))


def write_shard(path: str | os.PathLike[str], tokens: Tensor | np.ndarray) -> None:
    """Write `tokens` (ids < 65536) as a shard, atomically (temp file + rename)."""
    arr = tokens.cpu().numpy() if isinstance(tokens, Tensor) else np.asarray(tokens)
    arr = arr.reshape(-1)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 1 << 16):
        raise ValueError(f"{path}: token ids must lie in [0, 65535]")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, arr.size)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.tobytes())
            f.write(arr.astype("<u2").tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shard_files(pattern: str) -> list[Path]:
    files = [Path(p) for p in sorted(glob.glob(pattern))]
    if not files:
        raise FileNotFoundError(f"no shard matches {pattern}")
    return files


class TokenStream:
    """All shards of a pattern read in name order, end to end, wrapping around forever."""

    def __init__(self, pattern: str):
        self.files = shard_files(pattern)
        self._file = 0
        self._tokens = read_shard(self.files[0])
        self._pos = 0

    def take(self, n: int) -> Tensor:
        parts: list[Tensor] = []
        while n > 0:
            left = self._tokens.numel() - self._pos
            if left <= 0:
                self._file = (self._file + 1) % len(self.files)
                self._tokens = read_shard(self.files[self._file])
                self._pos = 0
                continue
            k = min(n, left)
            parts.append(self._tokens[self._pos : self._pos + k])
            self._pos += k
            n -= k
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class DistributedTokenLoader:
    """Deterministic batches: every rank reads the same stream and keeps its own slice.

    One micro-batch consumes world_size * (local + 1) tokens; rank r takes the r-th span, so the
    ranks see disjoint tokens and the whole run is a function of the files and world size only.
    """

    def __init__(self, pattern: str, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device
        self.stream = TokenStream(pattern)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[Tensor, Tensor]:
        local = global_tokens // (self.world_size * grad_accum_steps)
        local -= local % seq_len
        if local <= 0:
            raise ValueError(
                f"TRAIN_BATCH_TOKENS={global_tokens} leaves no full sequence of {seq_len} per rank and "
                f"micro-step (world_size={self.world_size}, grad_accum_steps={grad_accum_steps})"
            )
        span = local + 1
        chunk = self.stream.take(span * self.world_size)
        mine = chunk[self.rank * span : (self.rank + 1) * span].to(torch.int64)
        x = mine[:-1].reshape(-1, seq_len)  # [B, T] inputs
        y = mine[1:].reshape(-1, seq_len)   # [B, T] next-token targets
        non_blocking = self.device.type == "cuda"
        return x.to(self.device, non_blocking=non_blocking), y.to(self.device, non_blocking=non_blocking)


def load_validation_tokens(pattern: str, seq_len: int) -> Tensor:
    """All validation tokens, cut to a whole number of `seq_len` windows plus one target token."""
    tokens = torch.cat([read_shard(f) for f in shard_files(pattern)])
    usable = ((tokens.numel() - 1) // seq_len) * seq_len
    if usable <= 0:
        raise ValueError(f"validation split {pattern} has {tokens.numel()} tokens, fewer than seq_len={seq_len} + 1")
    return tokens[: usable + 1]


class ByteLuts(NamedTuple):
    """Per-token-id tables for byte counting (index = token id)."""

    base_bytes: Tensor         # int16: UTF-8 bytes of the piece without its leading "▁"
    has_leading_space: Tensor  # bool: piece starts with "▁" (one space byte unless after a boundary)
    is_boundary: Tensor        # bool: control / unknown / unused ids (BOS, EOS, pad, unk)

    def to(self, device: torch.device | str) -> ByteLuts:
        return ByteLuts(*(t.to(device) for t in self))


def build_byte_luts(sp, vocab_size: int, device: torch.device | str = "cpu") -> ByteLuts:
    """Tables for a SentencePiece processor `sp`; ids past its vocabulary count as boundaries."""
    n = max(int(sp.vocab_size()), vocab_size)
    base = np.zeros(n, dtype=np.int16)
    space = np.zeros(n, dtype=np.bool_)
    boundary = np.ones(n, dtype=np.bool_)
    for i in range(int(sp.vocab_size())):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return ByteLuts(torch.from_numpy(base), torch.from_numpy(space), torch.from_numpy(boundary)).to(device)


def target_byte_counts(luts: ByteLuts, prev_ids: Tensor, target_ids: Tensor) -> Tensor:
    """Bytes each target token decodes to, given the token before it (same shapes, int16)."""
    prev_ids, target_ids = prev_ids.long(), target_ids.long()
    extra = luts.has_leading_space[target_ids] & ~luts.is_boundary[prev_ids]
    return luts.base_bytes[target_ids] + extra.to(torch.int16)
