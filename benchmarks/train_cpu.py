"""Throughput of the reference stack: measured on this CPU, projected for 8×H100 from record logs.

Prints
1. tokens/s of full training steps (forward, backward, Muon + AdamW) of the tiny configuration
   on this machine's CPU, single process, float32;
2. parameter count and training FLOPs per token of the default 11-layer configuration;
3. what the default configuration reaches on 8×H100 according to the step times that the
   record this stack follows printed in its own logs (corpus), and the model-FLOPs utilization
   that implies.

    python benchmarks/train_cpu.py [--steps 20] [--threads 1] [--corpus ../shared/corpus/records]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_impl.config import Hyperparameters  # noqa: E402
from reference_impl.model import GPT  # noqa: E402
from reference_impl.optim import build_optimizers  # noqa: E402

TINY = dict(NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", NUM_KV_HEADS="2", MLP_MULT="2", TRAIN_SEQ_LEN="128",
            TRAIN_BATCH_TOKENS="4096")
RECORD = "track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon"
H100_BF16_DENSE_FLOPS = 989e12  # per GPU, SXM, dense
STOP = re.compile(r"^stopping_early: wallclock_cap train_time:(\d+)ms step:(\d+)/\d+", re.M)


def tiny_tokens_per_second(steps: int) -> tuple[float, int]:
    hp = Hyperparameters.from_env(TINY)
    torch.manual_seed(0)
    model = GPT(hp.model_config())
    opts = build_optimizers(model, hp)
    seqs = hp.train_batch_tokens // hp.train_seq_len
    x = torch.randint(0, hp.vocab_size, (seqs, hp.train_seq_len))
    y = torch.roll(x, -1, dims=1)
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opts.zero_grad()
        model.loss(x, y).backward()
        opts.step()
        if i >= 2:  # the first steps allocate optimizer state
            times.append(time.perf_counter() - t)
    return hp.train_batch_tokens / statistics.median(times), model.num_params()


def corpus_dir(arg: str | None) -> Path | None:
    for c in [arg, os.environ.get("PGOLF_CORPUS"), str(Path(__file__).resolve().parents[2] / "shared/corpus/records")]:
        if c and Path(c, RECORD).is_dir():
            return Path(c)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as under torchrun)")
    ap.add_argument("--corpus", default=None, help="records folder of the corpus (default: ../shared/corpus/records)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tps, tiny_params = tiny_tokens_per_second(args.steps)
    load = os.getloadavg()[0]
    print(f"tiny config (2x64, seq 128, 4096 tokens/step), CPU {args.threads} thread(s): "
          f"{tps:,.0f} tokens/s  ({tiny_params:,} params; load average {load:.1f} on {os.cpu_count()} cores)")

    hp = Hyperparameters.from_env({})
    model = GPT(hp.model_config())
    flops = model.flops_per_token(hp.train_seq_len)
    print(f"default config (11x512, seq {hp.train_seq_len}): {model.num_params():,} params, "
          f"{flops / 1e6:,.1f} MFLOP/token (train: fwd+bwd)")

    root = corpus_dir(args.corpus)
    if root is None:
        print("8xH100 projection: corpus not found (give --corpus)")
        return
    runs = []
    for log in sorted((root / RECORD).glob("train_seed*.log")):
        m = STOP.search(log.read_text(errors="replace"))
        if m:
            runs.append((log.name, int(m.group(1)), int(m.group(2))))
    for name, ms, steps in runs:
        step_ms = ms / steps
        tok_s = hp.train_batch_tokens / (step_ms / 1000)
        mfu = flops * tok_s / (8 * H100_BF16_DENSE_FLOPS)
        print(f"8xH100 per {RECORD.split('/')[1]}/{name}: {steps} steps in {ms / 1000:.1f} s = "
              f"{step_ms:.2f} ms/step, {tok_s / 1e6:.2f} M tokens/s, {steps * hp.train_batch_tokens / 1e9:.2f} B "
              f"tokens in 600 s, MFU {100 * mfu:.0f}%")


if __name__ == "__main__":
    main()
