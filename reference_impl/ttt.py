"""Legal score-first test-time training (TTT): the pattern of rules.md, "Legal pattern".

The validation targets are cut into chunks of `chunk_tokens`. For chunk k:

1. score: every sliding window whose first scored target lies in chunk k is scored under
   `torch.inference_mode()` and its NLL and bytes are added to the reported sums;
2. train: unless k is the last chunk, the model takes optimizer steps on chunk k's tokens
   (`epochs` passes, learning rate on a cosine from `lr` at chunk 0 to 0 at the last trained chunk).

So chunk k is scored by a model adapted only on chunks 0..k-1 (C3), each target once (C4), and
the last chunk is never trained on. Ranks split the windows of a chunk for scoring, and the
sequences of a chunk for training with gradients summed over ranks, so all ranks hold the same
weights: the weight "version" (optimizer steps taken so far) is one clock for every rank.

A `Ledger` records, with that clock, which validation positions each scoring and each optimizer
step touched. A position is an index into `val_tokens`; scoring target t scores position t + 1.
The ledger is what tests (and the harness's dynamic probes) use to prove the order above.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from reference_impl.data import ByteLuts
from reference_impl.distributed import DistContext
from reference_impl.evaluate import ScoreSums, Window, rank_slice, score_windows, sliding_windows


@dataclass(frozen=True)
class TTTConfig:
    """Test-time training settings; env names are the upstream TTT_* ones (see posttrain)."""

    seq_len: int = 2048  # window and training sequence length (tokens)
    stride: int = 64  # sliding-window stride while scoring
    chunk_tokens: int = 32_768  # targets per chunk: scored together, then trained on
    epochs: int = 3  # passes over each scored chunk
    lr: float = 0.002  # learning rate at chunk 0, on a half cosine to 0 at the last chunk
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adamw"
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # global grad-norm clip; 0 disables
    batch_seqs: int = 32  # training sequences per rank per optimizer step (also scoring batch)
    freeze_blocks: int = 0  # the first N transformer blocks are not adapted

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"TTT_OPTIMIZER={self.optimizer!r}: expected sgd or adamw")
        if self.chunk_tokens <= 0 or self.epochs < 0 or self.batch_seqs <= 0:
            raise ValueError("TTT_CHUNK_TOKENS and TTT_BATCH_SEQS must be positive, TTT_EPOCHS >= 0")


@dataclass
class Ledger:
    """Score/update events of one rank. `scored`: [first_pos, end_pos, version];
    `steps`: [step, first_pos, end_pos] per contiguous run of positions a step's loss used."""

    rank: int = 0
    scored: list[list[int]] = field(default_factory=list)
    steps: list[list[int]] = field(default_factory=list)
    last_chunk_first_pos: int = -1  # positions >= this belong to the last chunk

    def on_score(self, window: Window, version: int) -> None:
        self.scored.append([window.score_from + 1, window.end + 1, version])

    def on_step(self, step: int, first_pos: int, end_pos: int) -> None:
        self.steps.append([step, first_pos, end_pos])

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


@dataclass(frozen=True)
class TTTResult:
    val_loss: float
    val_bpb: float
    chunks: int
    steps: int  # optimizer steps taken


def chunk_windows(windows: list[Window], chunk_tokens: int, n_targets: int) -> list[list[Window]]:
    """Windows grouped by the chunk of their first scored target."""
    n_chunks = max(1, math.ceil(n_targets / chunk_tokens))
    groups: list[list[Window]] = [[] for _ in range(n_chunks)]
    for w in windows:
        groups[min(w.score_from // chunk_tokens, n_chunks - 1)].append(w)
    return groups


def _trainable(model: nn.Module, freeze_blocks: int) -> list[nn.Parameter]:
    frozen = tuple(f"blocks.{i}." for i in range(freeze_blocks))
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(not name.removeprefix("_orig_mod.").startswith(frozen))  # torch.compile wraps
        if p.requires_grad:
            params.append(p)
    return params


def _optimizer(params: list[nn.Parameter], cfg: TTTConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def cosine_lr(cfg: TTTConfig, chunk: int, n_chunks: int) -> float:
    """Half a cosine over the chunks: lr at chunk 0, reaching 0 at the last (never trained) one."""
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * chunk / max(n_chunks - 1, 1)))


class _Trainer:
    """Optimizer steps on the already-scored targets [c0, c1) of one chunk, split over ranks."""

    def __init__(self, model: nn.Module, cfg: TTTConfig, ctx: DistContext, ledger: Ledger | None):
        self.model, self.cfg, self.ctx, self.ledger = model, cfg, ctx, ledger
        self.params = _trainable(model, cfg.freeze_blocks)
        self.opt = _optimizer(self.params, cfg)
        self.steps = 0

    def train_chunk(self, val_tokens: Tensor, c0: int, c1: int, lr: float) -> None:
        seq = self.cfg.seq_len
        starts = list(range(c0, c1 - seq + 1, seq))  # sequences whose targets lie in [c0, c1)
        per_step = self.cfg.batch_seqs * self.ctx.world_size
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        for _epoch in range(self.cfg.epochs):
            for s0 in range(0, len(starts), per_step):
                self._step(val_tokens, starts[s0:s0 + per_step])

    def _step(self, val_tokens: Tensor, global_starts: list[int]) -> None:
        ctx, seq = self.ctx, self.cfg.seq_len
        mine = rank_slice(global_starts, ctx)
        self.opt.zero_grad(set_to_none=True)
        if mine:
            idx = torch.stack([torch.arange(a, a + seq + 1) for a in mine])  # positions [b, T + 1]
            tok = val_tokens[idx].to(ctx.device, torch.int64)
            if self.ledger is not None:
                for a in mine:
                    self.ledger.on_step(self.steps, a, a + seq + 1)
            with ctx.autocast():
                logits = self.model(tok[:, :-1])
            nll = nn.functional.cross_entropy(logits.float().flatten(0, 1), tok[:, 1:].flatten(),
                                              reduction="sum")
            # scaled so that the mean over ranks below is the mean over the global batch
            world = ctx.world_size if ctx.distributed else 1
            (nll * world / (len(global_starts) * seq)).backward()
        for p in self.params:
            if p.grad is None:  # a rank without sequences this step still joins the all-reduce
                p.grad = torch.zeros_like(p)
        ctx.average_gradients(self.params)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        self.steps += 1

    def release(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(True)


def legal_ttt(model: nn.Module, val_tokens: Tensor, luts: ByteLuts, cfg: TTTConfig, ctx: DistContext,
              *, ledger: Ledger | None = None, sums: ScoreSums | None = None,
              log: Callable[[str], None] = print) -> TTTResult:
    """Score-first chunked TTT over `val_tokens` (N + 1 tokens); adapts `model` in place."""
    n_targets = val_tokens.numel() - 1
    windows = sliding_windows(n_targets, cfg.seq_len, cfg.stride)
    groups = chunk_windows(windows, cfg.chunk_tokens, n_targets)
    n_chunks = len(groups)
    sums = sums or ScoreSums(ctx.device)
    trainer = _Trainer(model, cfg, ctx, ledger)
    if ledger is not None:
        ledger.last_chunk_first_pos = (n_chunks - 1) * cfg.chunk_tokens + 1
    log(f"ttt:start chunks={n_chunks} chunk_tokens={cfg.chunk_tokens} windows={len(windows)} "
        f"stride={cfg.stride} optimizer={cfg.optimizer} lr={cfg.lr} epochs={cfg.epochs} "
        f"freeze_blocks={cfg.freeze_blocks} trainable_params={sum(p.numel() for p in trainer.params)}")
    t0 = time.perf_counter()
    try:
        for k, group in enumerate(groups):
            version = trainer.steps
            on_scored = (lambda w: ledger.on_score(w, version)) if ledger is not None else None
            score_windows(model, val_tokens, rank_slice(group, ctx), luts, ctx, sums, cfg.batch_seqs,
                          on_scored)
            if k < n_chunks - 1 and cfg.epochs > 0:
                c0, c1 = k * cfg.chunk_tokens, min((k + 1) * cfg.chunk_tokens, n_targets)
                trainer.train_chunk(val_tokens, c0, c1, cosine_lr(cfg, k, n_chunks))
            if k % 10 == 0 or k == n_chunks - 1:
                log(f"  ttt_chunk [{k + 1}/{n_chunks}] steps={trainer.steps} "
                    f"time={time.perf_counter() - t0:.1f}s")
    finally:
        trainer.release()
        model.eval()
    val_loss, val_bpb = sums.result(ctx)
    return TTTResult(val_loss, val_bpb, n_chunks, trainer.steps)
