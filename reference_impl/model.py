"""The GPT of the record stack, one feature per `ModelConfig` field.

Data flow for input ids [B, T]::

    tok_emb (+ BigramHash) -> rms_norm -> SmearGate -> x0
    for each virtual layer v (physical block layer_plan[v]):
        decoder half: x += skip_weight * (mirrored encoder output)       # U-Net skips
        x = Block(x, x0): resid_mix(x, x0) -> attention -> MLP             # normed inputs * 1/sqrt(v+1)
        a repeated layer (depth recurrence) scales its update: x + s * (block(x) - x)
    final rms_norm -> tied embedding^T -> cap * tanh(logits / cap)

Every token mixer is causal: attention is masked, BigramHash and SmearGate look one token back,
XSA only subtracts each position's own value direction. Weights stay float32; `CastedLinear`
casts them to the activation dtype (bf16 under autocast on GPU) at use.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reference_impl.config import ModelConfig
# One fake quantizer for QAT and export: training must see the grid the artifact stores.
from reference_impl.quant import fake_quantize_rows


@functools.lru_cache(maxsize=1)
def _flash_attn_3():
    """flash-attn 3's `flash_attn_func` when importable and the GPU is Hopper, else None."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        return None
    try:
        from flash_attn_interface import flash_attn_func
    except ImportError:
        return None
    return flash_attn_func


class CastedLinear(nn.Linear):
    """A bias-free linear layer with float32 master weights cast to the input dtype.

    `qat_bits` (None = off) makes the forward pass see per-row fake-quantized weights while
    training, so the weights learn to survive the int-N export of part 2.
    """

    qat_bits: int | None = None

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if self.qat_bits is not None and self.training:
            w = fake_quantize_rows(w, self.qat_bits)
        return F.linear(x, w.to(x.dtype))


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The low-precision dtype when autocast is on for this device type, else None."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    """RoPE on the first `rope_dims` channels of each head (all when 0); the rest pass through."""

    def __init__(self, head_dim: int, rope_dims: int, base: float):
        super().__init__()
        self.rope_dims = rope_dims or head_dim
        inv_freq = base ** (-torch.arange(0, self.rope_dims, 2, dtype=torch.float32) / self.rope_dims)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # x: [B, T, H, D]
        t = torch.arange(x.size(1), device=x.device, dtype=torch.float32)
        angles = torch.outer(t, self.inv_freq.to(x.device))  # [T, rope_dims/2]
        cos = angles.cos()[None, :, None, :].to(x.dtype)
        sin = angles.sin()[None, :, None, :].to(x.dtype)
        rot, rest = x[..., : self.rope_dims], x[..., self.rope_dims :]
        a, b = rot.chunk(2, dim=-1)
        rot = torch.cat((a * cos + b * sin, b * cos - a * sin), dim=-1)
        return torch.cat((rot, rest), dim=-1) if rest.numel() else rot


class Attention(nn.Module):
    """Causal GQA attention with RMS-normed Q/K, partial RoPE, per-head query gain and XSA."""

    def __init__(self, cfg: ModelConfig, xsa: bool):
        super().__init__()
        self.h, self.hkv, self.d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        kv_dim = self.hkv * self.d
        self.q = CastedLinear(cfg.model_dim, cfg.model_dim)
        self.k = CastedLinear(cfg.model_dim, kv_dim)
        self.v = CastedLinear(cfg.model_dim, kv_dim)
        self.out = CastedLinear(cfg.model_dim, cfg.model_dim)
        self.q_gain = nn.Parameter(torch.full((self.h,), cfg.qk_gain_init))
        self.rotary = Rotary(self.d, cfg.rope_dims, cfg.rope_base)
        self.xsa = xsa
        self.fa3 = None  # flash-attn 3 kernel, set by GPT.select_attention_kernel

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        # q: [B, T, H, D], k/v: [B, T, Hkv, D] -> [B, T, H, D]
        if self.fa3 is not None and q.is_cuda:
            out = self.fa3(q, k, v, causal=True)
            return out[0] if isinstance(out, tuple) else out
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=self.hkv != self.h
        )
        return y.transpose(1, 2)

    def _exclude_self(self, y: Tensor, v: Tensor) -> Tensor:
        """XSA: remove from each head's output its component along the position's own value."""
        b, t, h, d = y.shape
        y = y.reshape(b, t, self.hkv, h // self.hkv, d)
        u = F.normalize(v, dim=-1).unsqueeze(-2)  # [B, T, Hkv, 1, D]
        y = y - (y * u).sum(-1, keepdim=True) * u
        return y.reshape(b, t, h, d)

    def forward(self, x: Tensor, value_embed: Tensor | None = None) -> Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.h, self.d)
        k = self.k(x).view(b, t, self.hkv, self.d)
        v = self.v(x)
        if value_embed is not None:
            v = v + value_embed
        v = v.view(b, t, self.hkv, self.d)
        # rms_norm may run in float32 under autocast; attention kernels want one dtype
        q, k = rms_norm(q).to(v.dtype), rms_norm(k).to(v.dtype)
        q, k = self.rotary(q), self.rotary(k)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = self._attend(q, k, v)
        if self.xsa:
            y = self._exclude_self(y, v)
        return self.out(y.reshape(b, t, self.h * self.d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = int(cfg.mlp_mult * cfg.model_dim)
        self.up = CastedLinear(cfg.model_dim, hidden)
        self.down = CastedLinear(hidden, cfg.model_dim)
        self.slope = cfg.leaky_slope if cfg.mlp_activation == "leaky_relu2" else 0.0

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        h = F.leaky_relu(h, self.slope) if self.slope else F.relu(h)
        return self.down(h.square())


class Block(nn.Module):
    """Pre-norm block with learned residual mixing against the embedding stream x0."""

    def __init__(self, cfg: ModelConfig, xsa: bool):
        super().__init__()
        dim = cfg.model_dim
        self.attn = Attention(cfg, xsa)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(dim))
        self.mlp_scale = nn.Parameter(torch.ones(dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))))

    def forward(self, x: Tensor, x0: Tensor, norm_scale: float, value_embed: Tensor | None = None) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * norm_scale, value_embed)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * norm_scale)


class ProjectedEmbedding(nn.Module):
    """A narrow embedding table, projected up to `out_dim` and scaled by a learned scalar."""

    def __init__(self, rows: int, dim: int, out_dim: int, scale: float):
        super().__init__()
        self.embed = nn.Embedding(rows, dim)
        self.proj = CastedLinear(dim, out_dim) if dim != out_dim else None
        self.scale = nn.Parameter(torch.tensor(scale))

    def lookup(self, rows: Tensor) -> Tensor:
        h = self.embed(rows)
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(h.dtype)


class BigramHash(ProjectedEmbedding):
    """An embedding of the hashed (previous, current) token pair, added to the token embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.bigram_vocab_size, cfg.bigram_dim, cfg.model_dim, scale=0.05)
        self.buckets = cfg.bigram_vocab_size

    def bucket_ids(self, ids: Tensor) -> Tensor:
        """Position 0 has no previous token and gets the reserved last bucket."""
        prev, cur = ids[:, :-1].long(), ids[:, 1:].long()
        hashed = torch.bitwise_xor(cur * 48271, prev * 69621) % (self.buckets - 1)
        first = torch.full_like(ids[:, :1], self.buckets - 1, dtype=torch.long)
        return torch.cat((first, hashed), dim=1)

    def forward(self, ids: Tensor) -> Tensor:
        return self.lookup(self.bucket_ids(ids))


class SmearGate(nn.Module):
    """x_t <- (1 - g) * x_t + g * x_{t-1}, one sigmoid gate per channel (starts at 0.5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        return x + g * (prev - x)


class ValueEmbedding(ProjectedEmbedding):
    """A second, low-rank token embedding fed into the attention values of chosen layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.vocab_size, cfg.ve_dim, cfg.num_kv_heads * cfg.head_dim, scale=0.1)
        self.layer_scales = nn.Parameter(torch.ones(len(cfg.ve_layers)))

    def forward(self, ids: Tensor) -> Tensor:
        return self.lookup(ids)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.num_layers
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.bigram = BigramHash(cfg) if cfg.bigram_vocab_size > 0 else None
        self.smear = SmearGate(cfg.model_dim) if cfg.smear_gate else None
        self.blocks = nn.ModuleList(Block(cfg, xsa=i >= n - cfg.xsa_last_n) for i in range(n))
        self.ve = ValueEmbedding(cfg) if cfg.ve_layers else None
        self.ve_slot = {layer: j for j, layer in enumerate(cfg.ve_layers)}
        full_plan = cfg.layer_plan
        self.num_skips = min(len(full_plan) // 2, len(full_plan) - len(full_plan) // 2) if cfg.unet_skips else 0
        self.skip_weights = nn.Parameter(torch.ones(self.num_skips, cfg.model_dim)) if self.num_skips else None
        # one learnable per-channel scale for each repeated (second) pass of a recurrent layer
        repeats = len(full_plan) - n
        self.repeat_scales = nn.Parameter(torch.ones(repeats, cfg.model_dim)) if repeats else None
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, cfg.vocab_size)
        self.recurrence_active = bool(cfg.recur_layers)
        self._init_weights()

    def _init_weights(self) -> None:
        """Orthogonal matrices, zero output projections (each block starts as the identity),
        small tied embeddings, a zero bigram table (it learns through its projection)."""
        std = self.cfg.tied_embed_init_std if self.cfg.tie_embeddings else 1.0
        nn.init.normal_(self.tok_emb.weight, std=std)
        for block in self.blocks:
            for lin in (block.attn.q, block.attn.k, block.attn.v, block.mlp.up):
                nn.init.orthogonal_(lin.weight)
            nn.init.zeros_(block.attn.out.weight)
            nn.init.zeros_(block.mlp.down.weight)
        if self.bigram is not None:
            nn.init.zeros_(self.bigram.embed.weight)
            if self.bigram.proj is not None:
                nn.init.orthogonal_(self.bigram.proj.weight)
        if self.ve is not None:
            nn.init.normal_(self.ve.embed.weight, std=0.01)
            if self.ve.proj is not None:
                nn.init.zeros_(self.ve.proj.weight)
        if self.lm_head is not None:
            nn.init.zeros_(self.lm_head.weight)

    def select_attention_kernel(self, device: torch.device) -> str:
        """Use flash-attn 3 on a Hopper GPU when importable (ATTENTION_BACKEND=auto|fa3), else
        PyTorch SDPA; returns the name of the kernel chosen. Call once, before compiling."""
        backend = self.cfg.attention_backend
        fa3 = _flash_attn_3() if device.type == "cuda" and backend != "sdpa" else None
        if backend == "fa3" and fa3 is None:
            raise RuntimeError("ATTENTION_BACKEND=fa3, but flash_attn_interface is not importable on a Hopper GPU here")
        for block in self.blocks:
            block.attn.fa3 = fa3
        return "flash_attn_3" if fa3 is not None else "sdpa"

    def set_recurrence(self, active: bool) -> None:
        """Switch depth recurrence on or off (e.g. from RECUR_START_STEP); weights are shared."""
        self.recurrence_active = active and bool(self.cfg.recur_layers)

    @property
    def layer_plan(self) -> tuple[int, ...]:
        return self.cfg.layer_plan if self.recurrence_active else tuple(range(self.cfg.num_layers))

    def hidden(self, input_ids: Tensor) -> Tensor:
        """Final normed hidden states [B, T, model_dim] for input ids [B, T]."""
        x = self.tok_emb(input_ids)
        low = autocast_dtype(x.device.type)
        if low is not None:  # under autocast the residual stream is bf16 too, as in the record
            x = x.to(low)
        if self.bigram is not None:
            x = x + self.bigram(input_ids).to(x.dtype)
        x = rms_norm(x).to(x.dtype)
        if self.smear is not None:
            x = self.smear(x)
        x0 = x
        plan = self.layer_plan
        n_enc = len(plan) // 2
        ve_base = self.ve(input_ids) if self.ve is not None else None
        skips: list[Tensor] = []
        seen: set[int] = set()
        repeat = 0
        for v, p in enumerate(plan):
            if v >= n_enc and skips:
                x = x + self.skip_weights[v - n_enc].to(x.dtype) * skips.pop()
            value_embed = None
            if ve_base is not None and p in self.ve_slot:
                value_embed = ve_base * self.ve.layer_scales[self.ve_slot[p]].to(ve_base.dtype)
            norm_scale = 1.0 / math.sqrt(v + 1) if self.cfg.ln_scale else 1.0
            y = self.blocks[p](x, x0, norm_scale, value_embed)
            if p in seen:
                y = x + self.repeat_scales[repeat].to(x.dtype) * (y - x)
                repeat += 1
            seen.add(p)
            x = y
            if v < n_enc and len(skips) < self.num_skips:
                skips.append(x)
        return rms_norm(x)

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """Soft-capped logits [B, T, V]; with `target_ids`, the float32 cross-entropy instead."""
        h = self.hidden(input_ids)
        w = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(h, w.to(h.dtype))
        cap = self.cfg.logit_softcap
        if cap > 0:
            logits = cap * torch.tanh(logits / cap)
        if target_ids is None:
            return logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), target_ids.flatten(), reduction=reduction)
        return loss.view_as(target_ids) if reduction == "none" else loss

    def loss(self, input_ids: Tensor, target_ids: Tensor, reduction: str = "mean") -> Tensor:
        """Cross-entropy in float32: a scalar for "mean"/"sum", per token [B, T] for "none"."""
        return self(input_ids, target_ids, reduction)

    def set_qat(self, bits: int | None) -> None:
        """Turn fake quantization of every CastedLinear weight on (bits) or off (None)."""
        for m in self.modules():
            if isinstance(m, CastedLinear):
                m.qat_bits = bits

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward = 3 x forward, 2 FLOPs per MAC):
        every matrix multiply of the active plan plus causal attention scores/values."""
        cfg = self.cfg
        d, kv = cfg.model_dim, cfg.num_kv_heads * cfg.head_dim
        hidden = int(cfg.mlp_mult * d)
        per_layer = d * d * 2 + d * kv * 2 + 2 * d * hidden  # q, out, k, v, up, down (MACs)
        attn = d * seq_len  # QK^T and AV: 2 * d * T/2 MACs on average under the causal mask
        macs = len(self.layer_plan) * (per_layer + attn) + d * cfg.vocab_size
        if self.bigram is not None and self.bigram.proj is not None:
            macs += cfg.bigram_dim * d
        if self.ve is not None and self.ve.proj is not None:
            macs += cfg.ve_dim * kv
        return 6 * macs
