"""reference_impl.quant: per-row int6 with clip search, GPTQ, classes of tensors, fake quantization."""
from __future__ import annotations

import pytest
import torch

from reference_impl import quant
from reference_impl.quant import QuantConfig
from ref_part2_support import tiny_gpt


def _rtn_error(w: torch.Tensor, bits: int) -> torch.Tensor:
    q, s = quant.quantize_rows(w, bits, (1.0,))
    return (w - q.float() * s.float()[:, None]).pow(2).sum(dim=1)


def test_clip_search_never_loses_to_absmax_and_clips_outlier_rows():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    w[3, 7] = 40.0  # one huge outlier: clipping it lowers that row's error
    q, s = quant.quantize_rows(w, 6, QuantConfig().clip_quantiles)
    assert q.dtype == torch.int8 and s.dtype == torch.float16
    assert int(q.abs().max()) <= 31
    err = (w - q.float() * s.float()[:, None]).pow(2).sum(dim=1)
    assert torch.all(err <= _rtn_error(w, 6) + 1e-6)
    assert float(s[3]) * 31 < 40.0  # row 3 chose a clip below its max
    assert err[3] < _rtn_error(w, 6)[3]


@pytest.mark.parametrize("bits,levels", [(6, 31), (8, 127), (4, 7)])
def test_codes_stay_in_range(bits, levels):
    w = torch.randn(16, 32) * 3
    q, _ = quant.quantize_rows(w, bits)
    assert int(q.abs().max()) == levels


def test_tensor_classes_of_the_real_model():
    model = tiny_gpt()
    cfg = QuantConfig(passthrough_numel=0)
    kinds = {n: quant.classify(n, t, cfg) for n, t in model.state_dict().items()}
    assert kinds["tok_emb.weight"] == "embed"
    assert kinds["ve.embed.weight"] == "embed"
    assert kinds["blocks.0.attn.q.weight"] == "matrix"
    assert kinds["blocks.1.mlp.down.weight"] == "matrix"
    assert kinds["blocks.0.resid_mix"] == "control"
    assert kinds["skip_weights"] == "control"
    assert kinds["smear.gate"] == "control"
    # with the upstream threshold every matrix of the tiny model is small enough to stay float16
    assert quant.classify("blocks.0.attn.q.weight", model.blocks[0].attn.q.weight, QuantConfig()) == "small"


def test_quantize_dequantize_state_dict_roundtrip_keeps_model_close():
    model = tiny_gpt()
    state = model.state_dict()
    qstate = quant.quantize_state_dict(state, QuantConfig(passthrough_numel=0))
    assert qstate["blocks.0.attn.q.weight"].bits == 6 and qstate["tok_emb.weight"].bits == 8
    assert qstate["blocks.0.resid_mix"].data.dtype == torch.float32
    back = quant.dequantize_state_dict(qstate)
    assert set(back) == set(state)
    for name, t in state.items():
        assert back[name].shape == t.shape and back[name].dtype == t.dtype
        rel = (back[name] - t).norm() / max(float(t.norm()), 1e-12)
        assert rel < 0.05, name
    x = torch.randint(0, 512, (2, 64))
    model.eval()
    with torch.no_grad():
        ref = model(x[:, :-1], x[:, 1:])
        model.load_state_dict(back)
        got = model(x[:, :-1], x[:, 1:])
    assert abs(float(got) - float(ref)) < 0.02


def test_gptq_beats_round_to_nearest_on_correlated_inputs():
    torch.manual_seed(0)
    cols = 96
    mix = torch.randn(cols, cols) * 0.3 + torch.eye(cols)
    x = torch.randn(4096, cols) @ mix  # correlated activations
    w = torch.randn(48, cols)
    h = x.T @ x / x.shape[0]
    q_rtn, s_rtn = quant.quantize_rows(w, 4, (1.0,))
    q_g, s_g = quant.gptq_quantize(w, h, 4, (1.0,), block=32)
    out_err = lambda q, s: float((x @ (w - q.float() * s.float()[:, None]).T).pow(2).mean())  # noqa: E731
    assert out_err(q_g, s_g) < 0.8 * out_err(q_rtn, s_rtn)
    assert int(q_g.abs().max()) <= 7


def test_hessians_collected_from_given_batches_for_every_int6_matrix():
    model = tiny_gpt()
    cfg = QuantConfig(passthrough_numel=0, gptq=True)
    batches = [torch.randint(0, 512, (2, 32)) for _ in range(2)]
    hs = quant.collect_hessians(model, batches, cfg)
    assert set(hs) == set(quant.qat_weight_names(model, cfg))
    h = hs["blocks.0.mlp.down.weight"]
    assert h.shape == (128, 128)
    assert torch.allclose(h, h.T, atol=1e-5)
    assert float(torch.linalg.eigvalsh(h).min()) > -1e-4
    qstate = quant.quantize_state_dict(model.state_dict(), cfg, hs)
    assert qstate["blocks.0.mlp.down.weight"].bits == 6


def test_self_generated_calibration_needs_no_data():
    model = tiny_gpt()
    batches = quant.self_generated_batches(model, n_seqs=3, seq_len=8, vocab_size=512, batch=2)
    assert [tuple(b.shape) for b in batches] == [(2, 8), (1, 8)]
    assert int(torch.cat(batches).max()) < 512


def test_fake_quantize_forward_is_quantized_and_gradient_straight_through():
    torch.manual_seed(0)
    w = torch.randn(8, 16, requires_grad=True)
    y = quant.fake_quantize_rows(w, 6)
    scale = w.detach().abs().amax(dim=1, keepdim=True) / 31
    codes = y.detach() / scale
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert not torch.equal(y.detach(), w.detach())
    (y * torch.arange(16.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(16.0).expand(8, 16))
