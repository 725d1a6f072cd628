"""Scoring on the validation split: mean loss in nats per token and bits per byte.

Standard evaluation cuts the validation tokens into non-overlapping windows of `seq_len`; each
rank scores a contiguous slice of the windows, and the loss, token and byte sums are summed over
ranks in float64, so the result does not depend on the number of ranks.

Sliding-window evaluation scores each token once too, but with more context: windows of
`seq_len` advance by `stride`, and each scores only its last `stride` targets (the first window
all of its own). stride = seq_len is the standard evaluation. The legal TTT loop of `ttt.py`
scores with the same windows, chunk by chunk.

    val_bpb = (sum NLL / ln 2) / (sum target bytes)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reference_impl.data import ByteLuts, target_byte_counts
from reference_impl.distributed import DistContext, eval_mode


def bits_per_byte(loss_sum: float, byte_sum: float) -> float:
    return loss_sum / math.log(2.0) / byte_sum


def eval_val(
    model: nn.Module,
    val_tokens: Tensor,
    luts: ByteLuts,
    seq_len: int,
    batch_seqs: int,
    ctx: DistContext,
) -> tuple[float, float]:
    """(val_loss, val_bpb) of `model` over every full window of `val_tokens` (1-D)."""
    total_seqs = (val_tokens.numel() - 1) // seq_len
    first = total_seqs * ctx.rank // ctx.world_size
    last = total_seqs * (ctx.rank + 1) // ctx.world_size
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # nll, tokens, bytes
    luts = luts.to(ctx.device)
    batch_seqs = max(1, batch_seqs)
    with eval_mode(model):
        for start in range(first, last, batch_seqs):
            end = min(start + batch_seqs, last)
            chunk = val_tokens[start * seq_len : end * seq_len + 1].to(ctx.device, torch.int64)
            x = chunk[:-1].view(-1, seq_len)  # [b, T]
            y = chunk[1:].view(-1, seq_len)   # [b, T]
            with ctx.autocast():
                nll = model(x, y, "sum")
            sums[0] += nll.double()
            sums[1] += y.numel()
            sums[2] += target_byte_counts(luts, x, y).double().sum()
    ctx.all_reduce_sum(sums)
    loss_sum, tokens, byte_sum = sums.tolist()
    return loss_sum / tokens, bits_per_byte(loss_sum, byte_sum)

# ---------------------------------------------------------------- sliding-window evaluation
#
# Positions: `val_tokens` holds N + 1 tokens; target index t in [0, N) is the prediction of
# val_tokens[t + 1] from val_tokens[: t + 1]. A window feeds inputs val_tokens[start:end] and
# scores the targets t in [score_from, end), which it sees with at least
# (score_from - start) tokens of context. The first window scores all its targets; each later one
# scores only the `stride` targets after the previous window's end, so every target is scored
# exactly once, each with at least seq_len - stride earlier tokens in view. All windows have the
# same length min(seq_len, N) (the last one is shifted back to end at N), so batches have one shape.


@dataclass(frozen=True)
class Window:
    start: int  # first input index into val_tokens
    score_from: int  # first scored target index (start <= score_from < end)
    end: int  # one past the last input / target index


def sliding_windows(n_targets: int, seq_len: int, stride: int) -> list[Window]:
    """Windows scoring each target in [0, n_targets) exactly once (see the comment above)."""
    if not 0 < stride <= seq_len:
        raise ValueError(f"stride must be in 1..seq_len={seq_len}, got {stride}")
    length = min(seq_len, n_targets)
    windows = [Window(0, 0, length)]
    done = length
    while done < n_targets:
        end = min(done + stride, n_targets)
        windows.append(Window(end - length, done, end))
        done = end
    return windows


@dataclass
class ScoreSums:
    """float64 sums of NLL (nats), scored targets and their bytes; optional per-target record."""

    device: torch.device
    per_target: Tensor | None = None  # float64 [N] NLL of each target, NaN until scored (tests)
    hits: Tensor | None = None  # int32 [N] times each target was scored (tests)

    def __post_init__(self) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64, device=self.device)

    @classmethod
    def recording(cls, device: torch.device, n_targets: int) -> "ScoreSums":
        return cls(device, torch.full((n_targets,), math.nan, dtype=torch.float64),
                   torch.zeros(n_targets, dtype=torch.int32))

    def result(self, ctx: DistContext) -> tuple[float, float]:
        """(val_loss, val_bpb) over all ranks."""
        total = ctx.all_reduce_sum(self.sums.clone())
        loss_sum, tokens, byte_sum = total.tolist()
        return loss_sum / tokens, bits_per_byte(loss_sum, byte_sum)


def window_batch(val_tokens: Tensor, windows: list[Window], device: torch.device) -> tuple[Tensor, Tensor]:
    """Inputs and targets [B, L] of equally long windows."""
    starts = torch.tensor([w.start for w in windows])
    idx = starts[:, None] + torch.arange(windows[0].end - windows[0].start + 1)[None, :]  # [B, L + 1]
    tok = val_tokens[idx].to(device=device, dtype=torch.int64)
    return tok[:, :-1], tok[:, 1:]


def score_windows(model: nn.Module, val_tokens: Tensor, windows: list[Window], luts: ByteLuts,
                  ctx: DistContext, sums: ScoreSums, batch_seqs: int,
                  on_scored: Callable[[Window], None] | None = None) -> None:
    """Add the NLL and bytes of each window's scored targets to `sums`; no gradient, no update.

    `model` maps input ids [B, L] to logits [B, L, V]; the NLL is taken in float32 over the full
    softmax, so the distribution is normalized over the vocabulary (C2).
    """
    luts = luts.to(ctx.device)
    with eval_mode(model):
        for b0 in range(0, len(windows), max(1, batch_seqs)):
            batch = windows[b0:b0 + max(1, batch_seqs)]
            x, y = window_batch(val_tokens, batch, ctx.device)
            with ctx.autocast():
                logits = model(x)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").view_as(y)
            offsets = torch.tensor([w.score_from - w.start for w in batch], device=ctx.device)
            mask = torch.arange(y.shape[1], device=ctx.device)[None, :] >= offsets[:, None]  # [B, L]
            sums.sums[0] += (nll.double() * mask).sum()
            sums.sums[1] += mask.sum()
            sums.sums[2] += (target_byte_counts(luts, x, y).double() * mask).sum()
            for i, w in enumerate(batch):
                if sums.per_target is not None:
                    off = w.score_from - w.start
                    sums.per_target[w.score_from:w.end] = nll[i, off:].double().cpu()
                    sums.hits[w.score_from:w.end] += 1
                if on_scored is not None:
                    on_scored(w)


def rank_slice(items: list, ctx: DistContext) -> list:
    """The contiguous share of `items` this rank handles."""
    n = len(items)
    return items[n * ctx.rank // ctx.world_size: n * (ctx.rank + 1) // ctx.world_size]


def eval_val_sliding(model: nn.Module, val_tokens: Tensor, luts: ByteLuts, seq_len: int, stride: int,
                     batch_seqs: int, ctx: DistContext, sums: ScoreSums | None = None) -> tuple[float, float]:
    """(val_loss, val_bpb) with sliding windows; stride == seq_len is the standard evaluation."""
    windows = sliding_windows(val_tokens.numel() - 1, seq_len, stride)
    sums = sums or ScoreSums(ctx.device)
    score_windows(model, val_tokens, rank_slice(windows, ctx), luts, ctx, sums, batch_seqs)
    return sums.result(ctx)
