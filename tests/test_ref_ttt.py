"""Legal score-first TTT: a ledger proves every update used only already-scored tokens, a
perturbation shows no later token reaches an earlier score, and the optimizer options work."""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from reference_impl.data import load_validation_tokens
from reference_impl.distributed import DistContext
from reference_impl.evaluate import ScoreSums
from reference_impl.ttt import Ledger, TTTConfig, cosine_lr, legal_ttt
from ref_part2_support import ledger_violations, luts_for, make_dataset, tiny_gpt

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
CFG = TTTConfig(seq_len=64, stride=32, chunk_tokens=256, epochs=2, lr=0.05, batch_seqs=2, grad_clip=1.0)
N_TARGETS = 4 * 256 + 176  # 5 chunks, the last one partial


@pytest.fixture(scope="module")
def dataset():
    data, _tok, sp = make_dataset()
    val = load_validation_tokens(str(Path(data) / "fineweb_val_*.bin"), 128)
    return val[: N_TARGETS + 1], luts_for(sp)


def _run(val, luts, cfg=CFG, seed=0, quiet=True):
    model = tiny_gpt(seed)
    ledger = Ledger()
    sums = ScoreSums.recording(torch.device("cpu"), val.numel() - 1)
    res = legal_ttt(model, val, luts, cfg, CPU, ledger=ledger, sums=sums, log=(lambda _m: None) if quiet else print)
    return model, ledger, sums, res


def test_ledger_proves_score_before_update(dataset):
    val, luts = dataset
    n = val.numel() - 1
    _model, ledger, sums, res = _run(val, luts)
    n_chunks = math.ceil(n / CFG.chunk_tokens)
    last_first = (n_chunks - 1) * CFG.chunk_tokens + 1
    assert ledger_violations([asdict(ledger)], n, last_first) == []
    assert res.chunks == n_chunks == 5
    # not vacuous: every chunk but the last was trained on, for every epoch
    seqs_per_chunk = CFG.chunk_tokens // CFG.seq_len
    assert res.steps == (n_chunks - 1) * CFG.epochs * math.ceil(seqs_per_chunk / CFG.batch_seqs)
    trained = {a // CFG.chunk_tokens for _s, a, _b in ledger.steps}  # chunk of its first target (a)
    assert trained == set(range(n_chunks - 1))
    assert torch.equal(sums.hits, torch.ones_like(sums.hits))


def test_checker_catches_illegal_orders():
    """The checker fails adapt-then-score, rescoring and training on the last chunk."""
    ok = {"scored": [[1, 101, 0], [101, 201, 1]], "steps": [[0, 0, 101]]}
    assert ledger_violations([ok], 200, 101) == []
    adapt_first = {"scored": [[1, 101, 1], [101, 201, 1]], "steps": [[0, 0, 101]]}
    assert any("scored later" in p for p in ledger_violations([adapt_first], 200, 101))
    rescored = {"scored": [[1, 101, 0], [101, 201, 1], [50, 60, 1]], "steps": [[0, 0, 101]]}
    assert any("scored 2 times" in p for p in ledger_violations([rescored], 200, 101))
    last = {"scored": [[1, 101, 0], [101, 201, 1]], "steps": [[0, 0, 101], [1, 100, 150]]}
    assert any("last chunk" in p for p in ledger_violations([last], 200, 101))


def test_no_later_token_changes_an_earlier_score(dataset):
    """Change one token in chunk 2: every score before it is bit-identical (through the TTT
    updates too), the scores after it differ because the model adapted on the changed text."""
    val, luts = dataset
    p = 2 * CFG.chunk_tokens + 100  # a position in chunk 2
    _, _, base, _ = _run(val, luts)
    changed = val.clone()
    changed[p] = (int(val[p]) + 1) % 512
    _, _, pert, _ = _run(changed, luts)
    assert torch.equal(pert.per_target[: p - 1], base.per_target[: p - 1])  # targets before position p
    assert not torch.equal(pert.per_target[p - 1:p], base.per_target[p - 1:p])
    next_chunk = slice(3 * CFG.chunk_tokens, 4 * CFG.chunk_tokens)
    assert not torch.equal(pert.per_target[next_chunk], base.per_target[next_chunk])


def test_ttt_adapts_and_improves_on_repetitive_text(dataset):
    """Validation text that repeats one paragraph: adaptation must lower the loss of later chunks."""
    val, luts = dataset
    rep = val[:129].repeat(10)[: N_TARGETS + 1]
    _, _, frozen, _ = _run(rep, luts, TTTConfig(**{**asdict(CFG), "epochs": 0}))
    _, _, adapted, res = _run(rep, luts)
    assert res.steps > 0
    tail = slice(3 * CFG.chunk_tokens, None)
    assert adapted.per_target[tail].mean() < frozen.per_target[tail].mean() - 0.1
    assert torch.equal(adapted.per_target[: CFG.chunk_tokens], frozen.per_target[: CFG.chunk_tokens])


def test_frozen_blocks_do_not_move_and_adamw_runs(dataset):
    val, luts = dataset
    cfg = TTTConfig(**{**asdict(CFG), "freeze_blocks": 1, "optimizer": "adamw", "lr": 1e-3})
    before = {k: v.clone() for k, v in tiny_gpt(0).state_dict().items()}
    model, ledger, _sums, res = _run(val, luts, cfg)
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("blocks.0."))
    assert not torch.equal(after["blocks.1.attn.q.weight"], before["blocks.1.attn.q.weight"])
    assert all(p.requires_grad for p in model.parameters())  # released afterwards
    assert res.steps > 0 and ledger.steps


def test_cosine_lr_runs_from_lr_to_zero_over_the_chunks():
    lrs = [cosine_lr(CFG, k, 5) for k in range(5)]
    assert lrs[0] == CFG.lr and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_bad_optimizer_is_refused():
    with pytest.raises(ValueError, match="TTT_OPTIMIZER"):
        TTTConfig(optimizer="lion")


_RANK_SCRIPT = '''
import json, sys, torch
sys.path.insert(0, {tests!r})
from dataclasses import asdict
from reference_impl.data import load_validation_tokens
from reference_impl.distributed import setup, teardown
from reference_impl.ttt import Ledger, TTTConfig, legal_ttt
from ref_part2_support import luts_for, tiny_gpt
import sentencepiece as spm
torch.set_num_threads(1)
ctx = setup()
sp = spm.SentencePieceProcessor(model_file={tok!r})
val = load_validation_tokens({data!r} + "/fineweb_val_*.bin", 128)[: {n} + 1]
cfg = TTTConfig(**{cfg!r})
ledger = Ledger(rank=ctx.rank)
res = legal_ttt(tiny_gpt(0), val, luts_for(sp), cfg, ctx, ledger=ledger, log=lambda m: None)
json.dump({{"loss": res.val_loss, "steps": res.steps, "ledger": asdict(ledger)}}, open({out!r} + str(ctx.rank), "w"))
teardown()
'''


@pytest.mark.slow
def test_two_ranks_score_first_and_agree_with_one(dataset, tmp_path):
    """Ranks split windows and sequences; gradients are summed over ranks: same result as one rank."""
    import json
    import os
    import subprocess
    import sys

    val, luts = dataset
    # TTT_BATCH_SEQS counts sequences per rank: one rank with twice the batch takes the same steps
    _, _, _, one = _run(val, luts, TTTConfig(**{**asdict(CFG), "batch_seqs": 2 * CFG.batch_seqs}))
    script = tmp_path / "rank.py"
    tests = str(Path(__file__).resolve().parent)
    data, tok, _sp = make_dataset()
    script.write_text(_RANK_SCRIPT.format(tests=tests, n=N_TARGETS, cfg=asdict(CFG), out=str(tmp_path / "out"),
                                          data=str(data), tok=str(tok)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(Path(tests).parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = [json.loads((tmp_path / f"out{r}").read_text()) for r in range(2)]
    assert outs[0]["loss"] == outs[1]["loss"] == pytest.approx(one.val_loss, rel=1e-4)
    assert outs[0]["steps"] == one.steps
    last_first = (math.ceil(N_TARGETS / CFG.chunk_tokens) - 1) * CFG.chunk_tokens + 1
    assert ledger_violations([o["ledger"] for o in outs], N_TARGETS, last_first) == []
    assert all(o["ledger"]["scored"] and o["ledger"]["steps"] for o in outs)  # both ranks did both
