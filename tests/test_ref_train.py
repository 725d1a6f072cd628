"""reference_impl.train end to end: real torchrun with two gloo ranks on `pgolf data synth`
output, the wall-clock cap, and the byte count of the synthesized validation text."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main as pgolf
from reference_impl.data import build_byte_luts, read_shard, target_byte_counts

REPO = Path(__file__).resolve().parent.parent
TINY_ENV = dict(
    NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", NUM_KV_HEADS="2", MLP_MULT="2", TRAIN_SEQ_LEN="128",
    TRAIN_BATCH_TOKENS="4096", ITERATIONS="40", WARMUP_STEPS="2", WARMDOWN_ITERS="10", VAL_LOSS_EVERY="0",
)

# Runs the same functions as `python -m reference_impl.train`'s main(), then saves each rank's
# weights so the test can compare the ranks.
PROBE = """
import sys, torch
from reference_impl import train as t
from reference_impl.config import Hyperparameters
hp = Hyperparameters.from_env()
ctx, log = t.start(hp)
val = t.load_val_data(hp, ctx, log)
model, compiled = t.build_model(hp, ctx, log)
init = {k: v.clone() for k, v in model.state_dict().items()}
result = t.train(model, compiled, hp, ctx, val, log)
torch.save({"init": init, "final": model.state_dict()}, f"{sys.argv[1]}/rank{ctx.rank}.pt")
t.apply_average(result, log)
t.final_eval(result, val, ctx, log)
t.teardown()
"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("synth")
    assert pgolf(["data", "synth", str(out), "--train-tokens", "300000", "--val-tokens", "32768"]) == 0
    data = out / "datasets" / "fineweb10B_sp1024"
    return {"DATA_PATH": str(data), "TOKENIZER_PATH": str(out / "tokenizers" / "fineweb_1024_bpe.model"),
            "VOCAB_SIZE": "1024"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PYTHONFAULTHANDLER="1", **extra)
    return env


@pytest.mark.slow
def test_synth_layout_and_exact_val_bytes(synth):
    import sentencepiece as spm

    data = Path(synth["DATA_PATH"])
    assert sorted(p.name for p in data.iterdir()) == ["fineweb_train_000000.bin", "fineweb_val_000000.bin"]
    val = read_shard(data / "fineweb_val_000000.bin").long()
    assert val.numel() == 32768 and int(val.max()) < 1024
    sp = spm.SentencePieceProcessor(model_file=synth["TOKENIZER_PATH"])
    assert int(sp.vocab_size()) == 1024 and val[0] == sp.bos_id()
    # the decoded validation text, document by document (BOS separates them)
    ids = val.tolist()
    starts = [i for i, t in enumerate(ids) if t == sp.bos_id()] + [len(ids)]
    decoded = sum(len(sp.decode(ids[a + 1 : b]).encode("utf-8")) for a, b in zip(starts, starts[1:]))
    luts = build_byte_luts(sp, 1024)
    assert int(target_byte_counts(luts, val[:-1], val[1:]).sum()) == decoded


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_agree_and_learn(synth, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(tmp_path / "probe.py"), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(**synth, **TINY_ENV, RUN_ID="probe"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    log = (tmp_path / "logs" / "probe.txt").read_text()
    assert "world_size:2 grad_accum_steps:4" in log, log
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for name, w in r0["final"].items():
        assert torch.equal(w, r1["final"][name]), f"ranks disagree on {name}"
    moved = [n for n, w in r0["final"].items() if not torch.equal(w, r0["init"][n])]
    assert len(moved) == len(r0["final"]), set(r0["final"]) - set(moved)  # every tensor was trained
    first = float(re.search(r"^step:1/40 train_loss:([\d.]+) train_time:\d+ms step_avg:[\d.]+ms$", log, re.M).group(1))
    last = re.search(r"^step:40/40 val_loss:([\d.]+) val_bpb:([\d.]+) train_time:\d+ms step_avg:[\d.]+ms$", log, re.M)
    assert float(last.group(1)) < first - 1.5, (first, last.group(0))
    final = re.search(r"^final_fp32_exact val_loss:([\d.]+) val_bpb:([\d.]+)$", log, re.M)
    assert final and float(final.group(1)) < first - 1.5, log[-1500:]
    assert re.search(r"^peak memory ", log, re.M) and re.search(r"^model_params:\d+$", log, re.M)


@pytest.mark.slow
def test_wallclock_cap_stops_training_in_upstream_format(synth, tmp_path):
    env = _env(**synth, **{**TINY_ENV, "ITERATIONS": "100000", "WARMUP_STEPS": "0"}, MAX_WALLCLOCK_SECONDS="3",
               TRAIN_LOG_EVERY="1000", EMA_ENABLED="0", RUN_ID="cap")
    proc = subprocess.run([sys.executable, "-m", "reference_impl.train"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    m = re.search(r"^stopping_early: wallclock_cap train_time:(\d+)ms step:(\d+)/100000$", proc.stdout, re.M)
    assert m, proc.stdout[-2000:]
    assert 3000 <= int(m.group(1)) < 20000 and 0 < int(m.group(2)) < 100000
    # the step that hit the cap is logged, then validated, then the stop line follows
    assert re.search(rf"^step:{m.group(2)}/100000 val_loss:", proc.stdout, re.M)
    assert "late_qat:enabled" in proc.stdout, proc.stdout[-2000:]  # the timed warm-down reached it
