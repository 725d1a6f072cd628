"""reference_impl.model: every feature behind a flag, each checked on CPU for shapes,
causality (changing token t changes no logit before t) and parameter sharing."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F

from reference_impl.config import Hyperparameters, ModelConfig
from reference_impl.model import GPT, Attention, Rotary, fake_quantize_rows

V, T = 97, 24
BASE = ModelConfig(
    vocab_size=V, num_layers=4, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2.0,
    mlp_activation="relu2", rope_dims=0, unet_skips=False, ln_scale=False, xsa_last_n=0,
    bigram_vocab_size=0, smear_gate=False, ve_layers=(), recur_layers=(), attention_backend="sdpa",
)
FEATURES = {
    "plain": {},
    "leaky_relu2": dict(mlp_activation="leaky_relu2"),
    "partial_rope": dict(rope_dims=4),
    "unet_skips": dict(unet_skips=True),
    "ln_scale": dict(ln_scale=True),
    "xsa": dict(xsa_last_n=2),
    "bigram_hash": dict(bigram_vocab_size=64, bigram_dim=16),
    "smear_gate": dict(smear_gate=True),
    "value_embeddings": dict(ve_layers=(2, 3), ve_dim=8),
    "untied_head": dict(tie_embeddings=False),
    "no_softcap": dict(logit_softcap=0.0),
    "mha": dict(num_kv_heads=4),
    "recurrence": dict(recur_layers=(1, 2), unet_skips=True),
    "everything": dict(mlp_activation="leaky_relu2", rope_dims=4, unet_skips=True, ln_scale=True, xsa_last_n=2,
                       bigram_vocab_size=64, bigram_dim=16, smear_gate=True, ve_layers=(2, 3), ve_dim=8,
                       recur_layers=(1, 2)),
}


def make(**kw) -> GPT:
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(BASE, **kw))
    # zero-initialized output projections make every block start as the identity; give them
    # weights so that each layer actually mixes positions in these tests
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and p.numel() and float(p.abs().max()) == 0.0:
                p.normal_(std=0.2)
    return model.eval()


@pytest.mark.parametrize("feature", FEATURES)
def test_shapes_loss_and_gradients(feature):
    model = make(**FEATURES[feature])
    x = torch.randint(0, V, (3, T))
    logits = model(x)
    assert logits.shape == (3, T, V) and logits.dtype == torch.float32
    per_token = model.loss(x, x, reduction="none")
    assert per_token.shape == (3, T)
    mean = model.loss(x, x)
    assert torch.allclose(mean, per_token.mean(), atol=1e-5)
    model.train()
    mean.backward()
    grads = [n for n, p in model.named_parameters() if p.grad is None]
    assert grads == [], grads


@pytest.mark.parametrize("feature", FEATURES)
def test_changing_token_t_changes_no_logit_before_t(feature):
    model = make(**FEATURES[feature])
    x = torch.randint(0, V, (2, T))
    base = model(x)
    for t in (0, 5, T - 1):
        y = x.clone()
        y[:, t] = (y[:, t] + 1) % V
        out = model(y)
        assert torch.equal(out[:, :t], base[:, :t]), f"{feature}: logits before {t} moved"
        assert not torch.allclose(out[:, t], base[:, t]), f"{feature}: token {t} did not reach its own logits"


def test_softcap_bounds_logits():
    model = make(logit_softcap=2.0)
    with torch.no_grad():
        model.tok_emb.weight.mul_(100)
    with torch.no_grad():
        assert float(model(torch.randint(0, V, (2, T))).abs().max()) <= 2.0


def test_tied_embeddings_share_the_table():
    tied, untied = make(), make(tie_embeddings=False)
    assert tied.lm_head is None and untied.lm_head is not None
    assert untied.num_params() - tied.num_params() == V * BASE.model_dim
    x = torch.randint(0, V, (1, T))
    h = tied.hidden(x)
    expected = 30.0 * torch.tanh(h @ tied.tok_emb.weight.T / 30.0)
    assert torch.allclose(tied(x), expected, atol=1e-5)


def test_depth_recurrence_shares_block_weights():
    plain, recur = make(unet_skips=True), make(unet_skips=True, recur_layers=(1, 2))
    assert len(recur.blocks) == 4 and recur.layer_plan == (0, 1, 2, 1, 2, 3)
    # the only new parameters: one scale vector per repeated pass and the extra skip weight
    extra = recur.num_params() - plain.num_params()
    assert extra == 2 * BASE.model_dim + (recur.num_skips - plain.num_skips) * BASE.model_dim
    calls = {i: 0 for i in range(4)}
    for i, block in enumerate(recur.blocks):
        block.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
    x = torch.randint(0, V, (2, T))
    recur(x)
    assert calls == {0: 1, 1: 2, 2: 2, 3: 1}
    # both passes write into the same weights' gradient
    recur.train()
    recur.zero_grad()
    recur.loss(x, x).backward()
    g_both = recur.blocks[1].attn.q.weight.grad.clone()
    recur.set_recurrence(False)
    assert recur.layer_plan == (0, 1, 2, 3)
    recur.zero_grad()
    recur.loss(x, x).backward()
    assert not torch.allclose(g_both, recur.blocks[1].attn.q.weight.grad)


def test_repeat_scales_start_at_identity_and_are_learnable():
    model = make(recur_layers=(1,))
    assert model.repeat_scales.shape == (1, BASE.model_dim) and torch.equal(model.repeat_scales, torch.ones(1, 32))
    x = torch.randint(0, V, (1, T))
    before = model(x)
    with torch.no_grad():
        model.repeat_scales.zero_()  # the second pass then adds nothing
    skip_second = model(x)
    assert not torch.allclose(before, skip_second)


def test_value_embeddings_only_on_chosen_layers():
    model = make(ve_layers=(3,), ve_dim=8)
    seen = []
    for i, block in enumerate(model.blocks):
        block.attn.register_forward_pre_hook(lambda m, a, i=i: seen.append((i, a[1] is not None)))
    model(torch.randint(0, V, (1, T)))
    assert seen == [(0, False), (1, False), (2, False), (3, True)]


def test_xsa_removes_the_self_value_direction():
    attn = Attention(dataclasses.replace(BASE, xsa_last_n=1), xsa=True)
    y = torch.randn(2, T, 4, 8)
    v = torch.randn(2, T, 2, 8)
    out = attn._exclude_self(y, v)
    v_per_head = v.repeat_interleave(2, dim=2)
    assert torch.allclose((out * F.normalize(v_per_head, dim=-1)).sum(-1), torch.zeros(2, T, 4), atol=1e-5)


def test_sdpa_gqa_matches_explicit_causal_attention():
    attn = Attention(BASE, xsa=False)
    q, k, v = torch.randn(2, T, 4, 8), torch.randn(2, T, 2, 8), torch.randn(2, T, 2, 8)
    k4, v4 = k.repeat_interleave(2, dim=2), v.repeat_interleave(2, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k4) / 8**0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    expected = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v4)
    assert torch.allclose(attn._attend(q, k, v), expected, atol=1e-5)


def test_partial_rope_rotates_only_the_first_dims():
    rot = Rotary(head_dim=8, rope_dims=4, base=10000.0)
    x = torch.randn(1, T, 2, 8)
    out = rot(x)
    assert torch.equal(out[..., 4:], x[..., 4:])
    assert torch.allclose(out[:, 0], x[:, 0])  # position 0 is not rotated
    assert not torch.allclose(out[:, 1:, :, :4], x[:, 1:, :, :4])
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation


@pytest.mark.parametrize("activation,slope", [("relu2", 0.0), ("leaky_relu2", 0.5)])
def test_mlp_activation(activation, slope):
    model = make(mlp_activation=activation)
    mlp = model.blocks[0].mlp
    x = torch.randn(2, 5, 32)
    h = x @ mlp.up.weight.T
    h = torch.where(h > 0, h, slope * h).square()
    assert torch.allclose(mlp(x), h @ mlp.down.weight.T, atol=1e-5)


def test_ln_scale_uses_the_virtual_depth():
    model = make(ln_scale=True, recur_layers=(1,))
    scales = []
    for block in model.blocks:
        block.register_forward_pre_hook(lambda m, a: scales.append(a[2]))
    model(torch.randint(0, V, (1, T)))
    assert scales == pytest.approx([1 / (v + 1) ** 0.5 for v in range(5)])


def test_late_qat_fake_quantizes_only_in_training():
    w = torch.randn(8, 16, requires_grad=True)
    q = fake_quantize_rows(w, 6)
    assert len(torch.unique(q[0].detach())) <= 64
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through
    model = make()
    x = torch.randint(0, V, (1, T))
    ref = model(x)
    model.set_qat(6)
    assert torch.equal(model(x), ref)  # eval mode: exact weights
    model.train()
    assert not torch.equal(model(x), ref)


def test_default_parameter_count_matches_the_record_log(corpus):
    """The record's own log prints model_params; the reference builds the same count."""
    log = corpus / "track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon/train_seed1337.log"
    if not log.is_file():
        pytest.skip(f"{log} absent")
    printed = int(re.search(r"^model_params:(\d+)$", log.read_text(errors="replace"), re.M).group(1))
    model = GPT(Hyperparameters.from_env({}).model_config())
    assert model.num_params() == printed == 26_928_220
    assert [i for i, b in enumerate(model.blocks) if b.attn.xsa] == [7, 8, 9, 10]
    assert model.flops_per_token(2048) > 6 * 26_000_000


def test_bf16_autocast_keeps_one_activation_dtype_and_float32_master_weights():
    """The GPU path (bf16 autocast), exercised on CPU: every block computes in bf16, the loss is
    float32, gradients land on float32 weights."""
    model = make(**FEATURES["everything"]).train()
    dtypes = set()
    for block in model.blocks:
        block.register_forward_hook(lambda m, a, o: dtypes.add(o.dtype))
    x = torch.randint(0, V, (2, T))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(x, x)
    assert dtypes == {torch.bfloat16} and loss.dtype == torch.float32
    loss.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
