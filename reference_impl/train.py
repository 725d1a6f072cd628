"""The training loop of the reference stack.

Launch (8×H100, the record setting; every hyperparameter has its upstream environment name)::

    torchrun --standalone --nproc_per_node=8 -m reference_impl.train

and on CPU with two gloo ranks, the tiny configuration::

    DATA_PATH=out/datasets/fineweb10B_sp1024 TOKENIZER_PATH=out/tokenizers/fineweb_1024_bpe.model \
    NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 MLP_MULT=2 TRAIN_SEQ_LEN=128 \
    TRAIN_BATCH_TOKENS=4096 ITERATIONS=40 WARMUP_STEPS=2 WARMDOWN_ITERS=10 VAL_LOSS_EVERY=0 \
    torchrun --standalone --nproc_per_node=2 -m reference_impl.train

Log lines follow the upstream formats (`step:N/M train_loss:…`, `step:N/M val_loss:… val_bpb:…`,
`stopping_early: wallclock_cap train_time:…ms step:N/M`, `peak memory …`), so the log of this
script parses like any record's. `train_time` counts training only: the clock stops around
validation and starts after warm-up, and it is read after a device synchronization.
"""
from __future__ import annotations

import copy
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reference_impl.config import Hyperparameters
from reference_impl.data import ByteLuts, DistributedTokenLoader, build_byte_luts, load_validation_tokens, shard_files
from reference_impl.distributed import DistContext, setup, teardown
from reference_impl.evaluate import eval_val
from reference_impl.model import GPT
from reference_impl.optim import EMA, SWA, LateQAT, build_optimizers, lr_scale, muon_momentum_at
from reference_impl.posttrain import run_posttrain


class Logger:
    """Rank 0 prints each line and appends it to logs/<RUN_ID>.txt; other ranks stay silent."""

    def __init__(self, ctx: DistContext, run_id: str, log_dir: str = "logs"):
        self.enabled = ctx.is_main
        self.path: Path | None = None
        if self.enabled:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self.path = Path(log_dir) / f"{run_id}.txt"
            print(self.path, flush=True)

    def __call__(self, msg: str, console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            print(msg, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                print(msg, file=f)


@dataclass
class ValData:
    tokens: Tensor  # 1-D validation tokens, a whole number of seq_len windows + 1
    luts: ByteLuts
    batch_seqs: int  # sequences per rank per evaluation batch
    seq_len: int


@dataclass
class TrainResult:
    model: GPT               # the trained (un-averaged) model
    compiled: nn.Module      # what the loop called (torch.compile'd on GPU), shares its weights
    ema: EMA | None
    swa: SWA | None
    steps: int
    train_time_ms: float


def grad_accum_steps(hp: Hyperparameters, ctx: DistContext) -> int:
    """Upstream keeps one 8-GPU batch shape: 8 // world_size micro-steps per optimizer step."""
    if hp.grad_accum_steps > 0:
        return hp.grad_accum_steps
    return 8 // ctx.world_size if 8 % ctx.world_size == 0 else 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_val_data(hp: Hyperparameters, ctx: DistContext, log: Logger) -> ValData:
    import sentencepiece as spm

    if not hp.tokenizer_path.endswith(".model"):
        raise ValueError(f"TOKENIZER_PATH={hp.tokenizer_path}: expected a SentencePiece .model file")
    sp = spm.SentencePieceProcessor(model_file=hp.tokenizer_path)
    if int(sp.vocab_size()) != hp.vocab_size:
        raise ValueError(f"VOCAB_SIZE={hp.vocab_size} but {hp.tokenizer_path} has {int(sp.vocab_size())} pieces")
    seq_len = max(hp.train_seq_len, hp.eval_seq_len if hp.eval_seq_len > 0 else hp.train_seq_len)
    tokens = load_validation_tokens(hp.val_files, seq_len)
    luts = build_byte_luts(sp, hp.vocab_size, ctx.device)
    batch_seqs = max(1, hp.val_batch_size // (ctx.world_size * grad_accum_steps(hp, ctx) * hp.train_seq_len))
    log(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={hp.tokenizer_path}")
    log(f"train_loader:dataset:{Path(hp.data_path).resolve().name} train_shards:{len(shard_files(hp.train_files))}")
    log(f"val_loader:shards pattern={hp.val_files} tokens:{tokens.numel() - 1}")
    return ValData(tokens=tokens, luts=luts, batch_seqs=batch_seqs, seq_len=hp.train_seq_len)


def build_model(hp: Hyperparameters, ctx: DistContext, log: Logger) -> tuple[GPT, nn.Module]:
    """The model in float32 master weights on the device, and the callable the loop uses."""
    model = GPT(hp.model_config()).to(ctx.device)
    if hp.recur_layers and hp.recur_start_step > 0:
        model.set_recurrence(False)
    kernel = model.select_attention_kernel(ctx.device)
    compiled: nn.Module = model
    if hp.compile and ctx.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        compiled = torch.compile(model, dynamic=False)
    log(f"model_params:{model.num_params()}")
    xsa = [i for i, b in enumerate(model.blocks) if b.attn.xsa]
    log(f"XSA:last_{hp.xsa_last_n} active_layers:{xsa}")
    log(f"world_size:{ctx.world_size} grad_accum_steps:{grad_accum_steps(hp, ctx)}")
    log(f"attention_kernel:{kernel} compile:{compiled is not model} autocast:{ctx.autocast_dtype}")
    log(f"attention_mode:gqa num_heads:{hp.num_heads} num_kv_heads:{hp.num_kv_heads}")
    if hp.recur_layers:
        log(f"recurrence:layers={list(model.cfg.recur_layers)} start_step={hp.recur_start_step} "
            f"virtual_layers:{len(model.cfg.layer_plan)} active={int(model.recurrence_active)}")
    return model, compiled


def _step_grads(compiled: nn.Module, loader: DistributedTokenLoader, hp: Hyperparameters,
                ctx: DistContext, accum: int) -> Tensor:
    """Forward/backward over `accum` micro-batches; returns the mean training loss."""
    total = torch.zeros((), device=ctx.device)
    for _ in range(accum):
        x, y = loader.next_batch(hp.train_batch_tokens, hp.train_seq_len, accum)
        with ctx.autocast():
            loss = compiled(x, y)
        (loss / accum).backward()
        total += loss.detach()
    return total / accum


def _warm_up(model: GPT, compiled: nn.Module, hp: Hyperparameters, ctx: DistContext, log: Logger) -> None:
    """Run WARMUP_STEPS real steps to compile and warm kernels, then roll every weight back:
    the timed run starts from the initial model and the first batch. Modes the run switches
    into later (deferred recurrence, late QAT) are warmed too, so no recompilation lands
    inside the timed region."""
    if hp.warmup_steps <= 0:
        return
    initial_recurrence = model.recurrence_active
    modes = [(initial_recurrence, None)]
    if hp.recur_layers and not initial_recurrence:
        modes.append((True, None))
    if hp.late_qat_threshold > 0:
        modes.append((bool(hp.recur_layers), hp.qat_bits))
    saved_model = copy.deepcopy(model.state_dict())
    accum = grad_accum_steps(hp, ctx)
    params = list(model.parameters())
    for recurrence, qat_bits in modes:
        model.set_recurrence(recurrence)
        model.set_qat(qat_bits)
        opts = build_optimizers(model, hp)
        loader = DistributedTokenLoader(hp.train_files, ctx.rank, ctx.world_size, ctx.device)
        for i in range(hp.warmup_steps):
            opts.zero_grad()
            _step_grads(compiled, loader, hp, ctx, accum)
            ctx.average_gradients(params)
            opts.step()
            if hp.warmup_steps <= 20 or (i + 1) % 10 == 0 or i + 1 == hp.warmup_steps:
                log(f"warmup_step:{i + 1}/{hp.warmup_steps}")
        opts.zero_grad()
    model.set_recurrence(initial_recurrence)
    model.set_qat(None)
    model.load_state_dict(saved_model)


def train(model: GPT, compiled: nn.Module, hp: Hyperparameters, ctx: DistContext, val: ValData,
          log: Logger) -> TrainResult:
    """Train until ITERATIONS or the wall-clock cap; returns the model and its averages."""
    _warm_up(model, compiled, hp, ctx, log)
    opts = build_optimizers(model, hp)
    loader = DistributedTokenLoader(hp.train_files, ctx.rank, ctx.world_size, ctx.device)
    accum = grad_accum_steps(hp, ctx)
    params = list(model.parameters())
    ema = EMA(model, hp.ema_decay) if hp.ema_enabled else None
    swa = SWA(hp.swa_every, hp.swa_start_scale) if hp.swa_enabled else None
    qat = LateQAT(hp.late_qat_threshold, hp.qat_bits)
    cap_ms = 1000.0 * hp.max_wallclock_seconds if hp.max_wallclock_seconds > 0 else None
    train_ms = 0.0
    stop_after: int | None = None
    step = 0
    ctx.sync()
    t0 = time.perf_counter()
    while True:
        last = step == hp.iterations or (stop_after is not None and step >= stop_after)
        if last or (hp.val_loss_every > 0 and step % hp.val_loss_every == 0):
            ctx.sync()
            train_ms += 1000.0 * (time.perf_counter() - t0)
            val_loss, val_bpb = eval_val(compiled, val.tokens, val.luts, val.seq_len, val.batch_seqs, ctx)
            log(f"step:{step}/{hp.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                f"train_time:{train_ms:.0f}ms step_avg:{train_ms / max(step, 1):.2f}ms")
            ctx.sync()
            t0 = time.perf_counter()
        if last:
            if stop_after is not None and step < hp.iterations:
                log(f"stopping_early: wallclock_cap train_time:{train_ms:.0f}ms step:{step}/{hp.iterations}")
            break
        if hp.recur_layers and not model.recurrence_active and step >= hp.recur_start_step:
            model.set_recurrence(True)
            log(f"recurrence:activated step:{step} layers={list(model.cfg.recur_layers)} "
                f"virtual_layers:{len(model.layer_plan)}")
        scale = lr_scale(step, train_ms + 1000.0 * (time.perf_counter() - t0), hp)
        if qat.maybe_enable(model, scale):
            log(f"late_qat:enabled step:{step} scale:{scale:.4f}")
        opts.zero_grad()
        train_loss = _step_grads(compiled, loader, hp, ctx, accum)
        ctx.average_gradients(params)
        if hp.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, hp.grad_clip_norm)
        opts.set_muon_momentum(muon_momentum_at(step, hp))
        opts.set_lr_scale(scale)
        opts.step()
        if ema is not None:
            ema.update(model)
        step += 1
        elapsed_ms = train_ms + 1000.0 * (time.perf_counter() - t0)
        if swa is not None and swa.maybe_add(model, step, scale):
            log(f"swa:start step:{step}")
        if hp.train_log_every > 0 and (step <= 10 or step % hp.train_log_every == 0 or stop_after is not None):
            log(f"step:{step}/{hp.iterations} train_loss:{train_loss.item():.4f} "
                f"train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / step:.2f}ms")
        if cap_ms is not None and stop_after is None:
            reached = torch.tensor(int(elapsed_ms >= cap_ms), device=ctx.device)
            if bool(ctx.all_reduce_max(reached).item()):  # every rank stops at the same step
                stop_after = step
    log(peak_memory_line(ctx))
    return TrainResult(model=model, compiled=compiled, ema=ema, swa=swa, steps=step, train_time_ms=train_ms)


def peak_memory_line(ctx: DistContext) -> str:
    if ctx.device.type == "cuda":
        return (f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB "
                f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
    return f"peak memory rss: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"


def apply_average(result: TrainResult, log: Logger) -> None:
    """Load the EMA weights into the model (the record stack scores the EMA, not the raw run)."""
    if result.ema is not None:
        log("ema:applying EMA weights")
        result.model.load_state_dict(result.ema.state_dict(result.model))


def final_eval(result: TrainResult, val: ValData, ctx: DistContext, log: Logger, name: str = "final_fp32") -> None:
    ctx.sync()
    t = time.perf_counter()
    val_loss, val_bpb = eval_val(result.compiled, val.tokens, val.luts, val.seq_len, val.batch_seqs, ctx)
    ctx.sync()
    log(f"{name} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} eval_time:{1000.0 * (time.perf_counter() - t):.0f}ms")
    log(f"{name}_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")


def start(hp: Hyperparameters) -> tuple[DistContext, Logger]:
    """Join the process group, open the log, print versions and every hyperparameter."""
    ctx = setup()
    log = Logger(ctx, hp.run_id)
    log(f"Running Python {sys.version}", console=False)
    log(f"Running PyTorch {torch.__version__}", console=False)
    log(hp.describe(), console=False)
    log(f"train_batch_tokens:{hp.train_batch_tokens} train_seq_len:{hp.train_seq_len} "
        f"iterations:{hp.iterations} warmup_steps:{hp.warmup_steps} "
        f"max_wallclock_seconds:{hp.max_wallclock_seconds:.3f}")
    log(f"seed:{hp.seed}")
    seed_everything(hp.seed)
    return ctx, log


def main() -> None:
    hp = Hyperparameters.from_env()
    ctx, log = start(hp)
    val = load_val_data(hp, ctx, log)
    model, compiled = build_model(hp, ctx, log)
    result = train(model, compiled, hp, ctx, val, log)
    apply_average(result, log)
    final_eval(result, val, ctx, log)
    run_posttrain(result, val, hp, ctx, log)  # quantize, artifact, round trip, sliding window, TTT
    teardown()


if __name__ == "__main__":
    main()
