"""Post-training quantization of a GPT state_dict, and the fake quantizer late QAT trains with.

The artifact cap (16,000,000 bytes) is what forces quantization: an 11-layer 512-wide model holds
~27M parameters, 54 MB in bf16. The record stack stores

* 2-D weight matrices as int6 per row (one float16 scale per output row), the clip of each row
  chosen among a few quantiles of |w| to minimise that row's reconstruction error ("GPTQ-lite"),
  or, with Hessians, by full GPTQ (error compensation across columns);
* embedding tables (token, bigram, value embeddings; the head when untied) as int8 per row,
  because their rows are looked up one at a time and int6 costs more there than it saves;
* small and control tensors (gains, gates, skip weights, norms) as floats: they are few bytes
  and the model is sensitive to them.

int6 values are stored one per int8 byte: the entropy coder of the artifact (zstd, lzma) packs the
unused two bits away, which is simpler and as small as bit packing.

GPTQ needs the Hessian H = sum x x^T of each layer's inputs. Those inputs must come from training
tokens or from text the model generates itself, never from validation tokens: calibrating on the
scored data leaks it into the artifact (rules.md, "Validation-calibrated GPTQ").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

# Substrings naming control tensors that stay float32 whatever their size.
CONTROL_PATTERNS: tuple[str, ...] = (
    "scale", "resid_mix", "q_gain", "skip_weight", "smear", "gate", "lambda", "norm",
)
# Substrings naming embedding tables (int8 per row).
EMBED_PATTERNS: tuple[str, ...] = ("emb", "lm_head")


@dataclass(frozen=True)
class QuantConfig:
    """How each tensor of the state_dict is stored. Env names in `from_env` (posttrain)."""

    matrix_bits: int = 6  # bits of 2-D weight matrices (int6: values in [-31, 31])
    embed_bits: int = 8  # bits of embedding tables
    passthrough_numel: int = 65_536  # float tensors with at most this many elements stay float16
    clip_quantiles: tuple[float, ...] = (0.999, 0.9995, 0.9999, 0.99999, 1.0)  # per-row clip candidates
    gptq: bool = False  # full GPTQ with Hessians (needs calibration activations)
    gptq_block: int = 128  # columns per GPTQ block
    gptq_damp: float = 0.01  # dampening, fraction of mean(diag H)
    control_patterns: tuple[str, ...] = CONTROL_PATTERNS
    embed_patterns: tuple[str, ...] = EMBED_PATTERNS

    @property
    def label(self) -> str:
        """Codec prefix printed in the upstream lines, e.g. `int6` in `int6+zstd`."""
        return f"int{self.matrix_bits}"


@dataclass
class QTensor:
    """One stored tensor. kind: 'int' (q int8 + per-row float16 scale) or 'float' (data as stored)."""

    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype  # dtype of the original tensor, restored on dequantization
    data: Tensor  # int8 codes [rows, cols] for 'int'; the stored tensor for 'float'
    scale: Tensor | None = None  # float16 [rows] for 'int'
    bits: int = 0


def max_level(bits: int) -> int:
    """Largest code of a symmetric signed `bits`-bit quantizer (int6 -> 31, int8 -> 127)."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    return 2 ** (bits - 1) - 1


def _scales_for_clip(clip: Tensor, qmax: int) -> Tensor:
    # float16 is what is stored; quantize with the rounded scale so dequantization matches.
    return (clip / qmax).clamp_min(1e-7).to(torch.float16).float()


def _row_clips(w: Tensor, quantiles: Iterable[float]) -> list[Tensor]:
    absw = w.abs()
    clips = []
    for qt in quantiles:
        clips.append(absw.amax(dim=1) if qt >= 1.0 else torch.quantile(absw, qt, dim=1))
    return clips


def quantize_rows(w: Tensor, bits: int, quantiles: Iterable[float] = (1.0,)) -> tuple[Tensor, Tensor]:
    """Per-row symmetric quantization; each row keeps the clip with the least squared error.

    w: [rows, cols] (higher ranks are flattened after the first dim). Returns (codes int8 [rows,
    cols], scale float16 [rows]).
    """
    qmax = max_level(bits)
    w32 = w.detach().float().reshape(w.shape[0], -1)
    best_q = torch.zeros_like(w32, dtype=torch.int8)
    best_s = torch.ones(w32.shape[0], dtype=torch.float32)
    best_err = torch.full((w32.shape[0],), math.inf)
    for clip in _row_clips(w32, quantiles):
        s = _scales_for_clip(clip, qmax)  # [rows]
        q = torch.clamp(torch.round(w32 / s[:, None]), -qmax, qmax)
        err = (w32 - q * s[:, None]).pow(2).sum(dim=1)  # [rows]
        better = err < best_err
        best_q[better] = q[better].to(torch.int8)
        best_s[better] = s[better]
        best_err = torch.where(better, err, best_err)
    return best_q, best_s.to(torch.float16)


def _gptq_codes(w: Tensor, hinv_chol: Tensor, s: Tensor, qmax: int, block: int) -> Tensor:
    """Column-by-column GPTQ with fixed per-row scales s. w: [rows, cols] (permuted), float32."""
    w = w.clone()
    rows, cols = w.shape
    q_all = torch.zeros_like(w)
    for c0 in range(0, cols, block):
        c1 = min(c0 + block, cols)
        wb = w[:, c0:c1].clone()
        errb = torch.zeros_like(wb)
        hb = hinv_chol[c0:c1, c0:c1]
        for j in range(c1 - c0):
            col = wb[:, j]
            q = torch.clamp(torch.round(col / s), -qmax, qmax)
            q_all[:, c0 + j] = q
            err = (col - q * s) / hb[j, j]
            wb[:, j:] -= err[:, None] * hb[j, j:][None, :]
            errb[:, j] = err
        w[:, c1:] -= errb @ hinv_chol[c0:c1, c1:]
    return q_all


def gptq_quantize(w: Tensor, hessian: Tensor, bits: int, quantiles: Iterable[float] = (1.0,),
                  block: int = 128, damp: float = 0.01) -> tuple[Tensor, Tensor]:
    """GPTQ (Frantar et al. 2022) with per-row scales and act-order.

    Each candidate clip fixes the row scales; GPTQ then rounds columns in order of decreasing
    diag(H), spreading each column's rounding error onto the columns not yet rounded through
    the Cholesky factor of H^-1. Each row keeps the candidate whose output error
    (w - q) H (w - q)^T is least. Returns (codes int8 [rows, cols], scale float16 [rows]).
    """
    qmax = max_level(bits)
    w32 = w.detach().float().reshape(w.shape[0], -1).clone()
    h = hessian.detach().float().clone()
    if h.shape != (w32.shape[1], w32.shape[1]):
        raise ValueError(f"Hessian shape {tuple(h.shape)} does not match weight columns {w32.shape[1]}")
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w32[:, dead] = 0.0
    h += damp * torch.diag(h).mean() * torch.eye(h.shape[0], device=h.device)
    perm = torch.argsort(torch.diag(h), descending=True)
    inv_perm = torch.argsort(perm)
    wp, hp = w32[:, perm], h[perm][:, perm]
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(hp))
    hinv_chol = torch.linalg.cholesky(hinv, upper=True)
    best_q = torch.zeros_like(w32, dtype=torch.int8)
    best_s = torch.ones(w32.shape[0], device=w32.device)
    best_err = torch.full((w32.shape[0],), math.inf, device=w32.device)
    for clip in _row_clips(w32, quantiles):
        s = _scales_for_clip(clip, qmax)
        q = _gptq_codes(wp, hinv_chol, s, qmax, block)[:, inv_perm]
        delta = w32 - q * s[:, None]
        err = ((delta @ h) * delta).sum(dim=1)  # per-row output error
        better = err < best_err
        best_q[better] = q[better].to(torch.int8)
        best_s[better] = s[better]
        best_err = torch.where(better, err, best_err)
    return best_q, best_s.to(torch.float16)


def classify(name: str, t: Tensor, cfg: QuantConfig) -> str:
    """'raw' (non-float), 'control' (float32), 'small' (float16), 'embed' (int8) or 'matrix' (int6)."""
    if not t.is_floating_point():
        return "raw"
    if any(p in name for p in cfg.control_patterns):
        return "control"
    if t.ndim < 2 or t.numel() <= cfg.passthrough_numel:
        return "small"
    if any(p in name for p in cfg.embed_patterns):
        return "embed"
    return "matrix"


def quantize_state_dict(state: dict[str, Tensor], cfg: QuantConfig, hessians: dict[str, Tensor] | None = None,
                        device: torch.device | str = "cpu") -> dict[str, QTensor]:
    """Quantize every tensor of `state` by its class. `hessians` maps weight names to H (GPTQ);
    GPTQ runs on `device` (its column loop is slow on a CPU at full size), results land on the CPU."""
    out: dict[str, QTensor] = {}
    for name, tensor in state.items():
        t = tensor.detach().cpu()
        kind = classify(name, t, cfg)
        shape = tuple(t.shape)
        if kind == "raw":
            out[name] = QTensor("float", shape, t.dtype, t.contiguous())
        elif kind == "control":
            out[name] = QTensor("float", shape, t.dtype, t.float().contiguous())
        elif kind == "small":
            out[name] = QTensor("float", shape, t.dtype, t.to(torch.float16).contiguous())
        else:
            bits = cfg.embed_bits if kind == "embed" else cfg.matrix_bits
            h = (hessians or {}).get(name) if cfg.gptq and kind == "matrix" else None
            if h is not None:
                q, s = gptq_quantize(t.to(device), h.to(device), bits, cfg.clip_quantiles, cfg.gptq_block,
                                     cfg.gptq_damp)
                q, s = q.cpu(), s.cpu()
            else:
                q, s = quantize_rows(t, bits, cfg.clip_quantiles)
            out[name] = QTensor("int", shape, t.dtype, q.contiguous(), s.contiguous(), bits)
    return out


def dequantize_state_dict(qstate: dict[str, QTensor]) -> dict[str, Tensor]:
    """Float tensors back, each in its original dtype and shape."""
    out: dict[str, Tensor] = {}
    for name, qt in qstate.items():
        if qt.kind == "int":
            w = qt.data.float() * qt.scale.float()[:, None]
            out[name] = w.reshape(qt.shape).to(qt.dtype)
        else:
            out[name] = qt.data.reshape(qt.shape).to(qt.dtype)
    return out


# ---------------------------------------------------------------- late QAT (training side)

def fake_quantize_rows(w: Tensor, bits: int = 6) -> Tensor:
    """Straight-through fake quantization: forward sees per-row int`bits` weights, backward is identity.

    Used by late QAT in the last part of warm-down so the weights settle where rounding costs
    least. The scale is per row from the current max |w| (no clip search: it runs every step).
    """
    qmax = max_level(bits)
    w2 = w.reshape(w.shape[0], -1)
    scale = (w2.detach().abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-7)
    wq = torch.clamp(torch.round(w2 / scale), -qmax, qmax) * scale
    return (w2 + (wq - w2).detach()).reshape(w.shape)


def qat_weight_names(model: nn.Module, cfg: QuantConfig) -> list[str]:
    """Names of the parameters post-training quantization stores as int`matrix_bits` matrices."""
    return [n for n, p in model.named_parameters() if classify(n, p, cfg) == "matrix"]


# ---------------------------------------------------------------- GPTQ calibration

@dataclass
class HessianCollector:
    """Accumulates H = sum x x^T / n for the inputs of chosen nn.Linear modules via forward hooks."""

    model: nn.Module
    weight_names: set[str]
    sums: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __enter__(self) -> "HessianCollector":
        self._handles = []
        for mod_name, mod in self.model.named_modules():
            wname = f"{mod_name}.weight" if mod_name else "weight"
            if isinstance(mod, nn.Linear) and wname in self.weight_names:
                self._handles.append(mod.register_forward_hook(self._hook(wname)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()

    def _hook(self, wname: str) -> Callable:
        def hook(_mod: nn.Module, inputs: tuple, _out: Tensor) -> None:
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])  # [n, in]
            h = x.T @ x
            if wname in self.sums:
                self.sums[wname] += h
            else:
                self.sums[wname] = h
            self.counts[wname] = self.counts.get(wname, 0) + x.shape[0]
        return hook

    def hessians(self) -> dict[str, Tensor]:
        """Mean outer products, summed over ranks when torch.distributed is initialised (CPU)."""
        out = {}
        for name in sorted(self.sums):
            h = self.sums[name]
            n = torch.tensor(float(self.counts[name]), device=h.device)
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(h)
                dist.all_reduce(n)
            out[name] = (h / n).cpu()
        return out


@torch.no_grad()
def self_generated_batches(model: nn.Module, n_seqs: int, seq_len: int, vocab_size: int,
                           temperature: float = 0.8, seed: int = 0, device: str | torch.device = "cpu",
                           batch: int = 8) -> list[Tensor]:
    """Token batches sampled from the model itself, a calibration set that needs no data at all.

    Sampling starts from a uniformly random first token per sequence; no validation text is
    read. Cost is seq_len forward passes per batch (no KV cache: this runs once, after training).
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    was_training = model.training
    model.eval()
    for b0 in range(0, n_seqs, batch):
        bsz = min(batch, n_seqs - b0)
        seq = torch.randint(0, vocab_size, (bsz, 1), generator=gen).to(device)
        for _ in range(seq_len - 1):
            logits = model(seq)[:, -1, :].float() / max(temperature, 1e-6)
            probs = torch.softmax(logits, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=gen).to(device)
            seq = torch.cat([seq, nxt], dim=1)
        out.append(seq)
    model.train(was_training)
    return out


@torch.no_grad()
def collect_hessians(model: nn.Module, batches: Iterable[Tensor], cfg: QuantConfig) -> dict[str, Tensor]:
    """Run `batches` (LongTensor [B, T] of training or self-generated tokens) and return H per matrix."""
    names = set(qat_weight_names(model, cfg))
    was_training = model.training
    model.eval()
    with HessianCollector(model, names) as col:
        for x in batches:
            model(x)
    model.train(was_training)
    return col.hessians()
