"""reference_impl.optim: Newton–Schulz, Muon, the parameter split, schedules, EMA/SWA, late QAT."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from reference_impl.config import Hyperparameters, ModelConfig
from reference_impl.model import GPT
from reference_impl.optim import (
    EMA,
    SWA,
    LateQAT,
    Muon,
    build_optimizers,
    classify_params,
    lr_scale,
    muon_momentum_at,
    orthogonalize,
)

TINY = ModelConfig(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2.0, rope_dims=4,
                   bigram_vocab_size=32, bigram_dim=16, ve_layers=(2,), ve_dim=8, recur_layers=(1,))


def test_orthogonalize_pushes_singular_values_towards_one():
    torch.manual_seed(0)
    for shape in [(16, 48), (48, 16), (24, 64)]:
        g = torch.randn(*shape) * 3.0  # well-conditioned rectangular: every value lands near 1
        s = torch.linalg.svdvals(orthogonalize(g, steps=5))
        assert s.shape[0] == min(shape)
        assert 0.6 < float(s.min()) and float(s.max()) < 1.25, (shape, s.min(), s.max())
    g = torch.randn(32, 32) * torch.logspace(-2, 1, 32)  # badly conditioned: the bulk still does
    before, after = torch.linalg.svdvals(g), torch.linalg.svdvals(orthogonalize(g))
    assert float(before.max() / before.median()) > 5
    assert float(after.max()) < 1.25 and float(((after > 0.6) & (after < 1.25)).float().mean()) > 0.7


def test_orthogonalize_batched_equals_one_by_one():
    g = torch.randn(3, 8, 12)
    stacked = orthogonalize(g)
    for i in range(3):
        assert torch.allclose(stacked[i], orthogonalize(g[i]), atol=1e-5)


def test_muon_update_size_weight_decay_and_momentum():
    p = torch.nn.Parameter(torch.zeros(16, 8))
    opt = Muon([p], lr=0.1, momentum=0.9, weight_decay=0.0)
    p.grad = torch.randn(16, 8)
    opt.step()
    # orthogonalized step scaled by sqrt(rows/cols) = sqrt(2): singular values ~ 0.1 * sqrt(2)
    s = torch.linalg.svdvals(p.detach())
    assert 0.5 * 0.1 * 2**0.5 < float(s.mean()) < 1.3 * 0.1 * 2**0.5
    assert "momentum_buffer" in opt.state[p]
    q = torch.nn.Parameter(torch.ones(4, 4))
    decay = Muon([q], lr=0.5, momentum=0.0, weight_decay=0.1)
    q.grad = torch.zeros(4, 4)
    decay.step()
    assert torch.allclose(q.detach(), torch.full((4, 4), 1 - 0.5 * 0.1))  # decoupled: p *= 1 - lr * wd


def test_muon_refuses_vectors():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)


def test_every_parameter_has_exactly_one_optimizer():
    model = GPT(TINY)
    groups = classify_params(model)
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert all(p.ndim == 2 for p in groups["matrix"]) and len(groups["matrix"]) == 6 * TINY.num_layers
    assert {id(model.tok_emb.weight), id(model.bigram.embed.weight), id(model.ve.embed.weight)} == {
        id(p) for p in groups["embed"]}
    assert id(model.repeat_scales) in {id(p) for p in groups["scalar"]}
    untied = GPT(dataclasses.replace(TINY, tie_embeddings=False))
    assert classify_params(untied)["head"] == [untied.lm_head.weight]


def test_optimizers_reduce_the_loss():
    torch.manual_seed(0)
    model = GPT(TINY)
    hp = Hyperparameters.from_env({"MATRIX_LR": "0.05", "SCALAR_LR": "0.05", "TIED_EMBED_LR": "0.05"})
    opts = build_optimizers(model, hp)
    x = torch.randint(0, 64, (4, 16))
    y = torch.roll(x, -1, dims=1)
    first = None
    for _ in range(15):
        opts.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        opts.step()
        first = first if first is not None else loss.item()
    with torch.no_grad():
        assert model.loss(x, y).item() < first - 0.5
    opts.set_lr_scale(0.5)
    assert opts.muon.param_groups[0]["lr"] == pytest.approx(0.025)


def test_muon_momentum_warmup():
    hp = Hyperparameters.from_env({})
    assert muon_momentum_at(0, hp) == pytest.approx(0.92)
    assert muon_momentum_at(750, hp) == pytest.approx(0.955)
    assert muon_momentum_at(5000, hp) == pytest.approx(0.99)


def test_lr_schedule_iterations_and_wallclock():
    no_cap = Hyperparameters.from_env({"ITERATIONS": "100", "WARMDOWN_ITERS": "20", "MAX_WALLCLOCK_SECONDS": "0"})
    assert [lr_scale(s, 0.0, no_cap) for s in (0, 80, 90, 100)] == pytest.approx([1.0, 1.0, 0.5, 0.0])
    capped = Hyperparameters.from_env({"ITERATIONS": "100000", "WARMDOWN_ITERS": "100", "MAX_WALLCLOCK_SECONDS": "10"})
    # 10 ms per step so far: warm-down covers the last 100 steps = 1 s before the 10 s cap
    assert lr_scale(500, 5000.0, capped) == 1.0
    assert lr_scale(950, 9500.0, capped) == pytest.approx(0.5)
    assert lr_scale(1000, 10000.0, capped) == 0.0
    warm = Hyperparameters.from_env({"LR_WARMUP_STEPS": "4", "MAX_WALLCLOCK_SECONDS": "0"})
    assert [lr_scale(s, 0.0, warm) for s in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


def test_ema_tracks_and_warms_up():
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    ema = EMA(model, decay=0.997)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(50):
        ema.update(model)
    avg = ema.state_dict(model)["weight"]
    assert float(avg.mean()) > 0.99  # a plain 0.997 EMA would still sit at 1 - 0.997**50 = 0.14
    ema.updates = 10_000
    assert ema.current_decay() == 0.997


def test_swa_averages_only_warmdown_snapshots():
    model = torch.nn.Linear(1, 1, bias=False)
    swa = SWA(every=2, start_scale=0.2)
    for step, (value, scale) in enumerate([(1.0, 0.5), (2.0, 0.1), (3.0, 0.1), (4.0, 0.1), (5.0, 0.05)], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        swa.maybe_add(model, step, scale)
    assert swa.count == 2  # steps 2 and 4
    assert float(swa.state_dict(model)["weight"]) == pytest.approx(3.0)


def test_late_qat_switches_once():
    model = GPT(TINY)
    qat = LateQAT(threshold=0.15, bits=6)
    assert not qat.maybe_enable(model, 0.5)
    assert qat.maybe_enable(model, 0.1)
    assert not qat.maybe_enable(model, 0.05)
    assert model.blocks[0].attn.q.qat_bits == 6


def test_parameters_of_an_inactive_recurrence_are_left_alone():
    """Until RECUR_START_STEP the repeat scales get no gradient; weight decay must not shrink them."""
    model = GPT(TINY)
    model.set_recurrence(False)
    opts = build_optimizers(model, Hyperparameters.from_env({"ADAM_WD": "0.5", "SCALAR_LR": "0.5"}))
    x = torch.randint(0, 64, (2, 16))
    for _ in range(3):
        opts.zero_grad()
        model.loss(x, x).backward()
        opts.step()
    assert model.repeat_scales.grad is None and torch.equal(model.repeat_scales, torch.ones_like(model.repeat_scales))
    assert not torch.equal(model.blocks[0].attn_scale, torch.ones(32))  # the rest trained
