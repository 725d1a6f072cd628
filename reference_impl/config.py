"""Hyperparameters of the reference stack, read from environment variables.

The variable names are the upstream ones (`DATA_PATH`, `NUM_LAYERS`, `MATRIX_LR`, ...) so a
command line that drives a record's `train_gpt.py` drives this code the same way. The defaults
are the 11-layer record stack (2026-03-23 LeakyReLU² + parallel Muon: 11×512, GQA 8/4, MLP×3,
BigramHash 1536, XSA on the last 4 layers, partial RoPE 16, LN scale, value embeddings on 9,10,
EMA + SWA, late QAT), as its README's run command sets them.

A tiny CPU run needs nothing but environment variables, e.g.::

    NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 MLP_MULT=2 TRAIN_SEQ_LEN=128 \
    TRAIN_BATCH_TOKENS=4096 ITERATIONS=40 WARMUP_STEPS=2 WARMDOWN_ITERS=10 VAL_LOSS_EVERY=0 \
    torchrun --standalone --nproc_per_node=2 -m reference_impl.train

Nothing here reads the environment at import time: `Hyperparameters.from_env()` does.
"""
from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Everything `model.GPT` needs; each architectural feature is one field (a flag or a size)."""

    vocab_size: int = 1024
    num_layers: int = 11             # physical blocks (distinct weights)
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4            # GQA: heads share K/V in groups of num_heads // num_kv_heads
    mlp_mult: float = 3.0            # hidden width = mlp_mult * model_dim
    mlp_activation: str = "leaky_relu2"  # "relu2" | "leaky_relu2"
    leaky_slope: float = 0.5         # negative slope of LeakyReLU before squaring
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0      # logits = cap * tanh(raw / cap); 0 disables
    rope_base: float = 10000.0
    rope_dims: int = 16              # rotate only the first rope_dims of each head; 0 = all
    qk_gain_init: float = 1.5        # learnable per-head gain on normalized queries
    unet_skips: bool = True          # encoder outputs added back into the mirrored decoder layers
    ln_scale: bool = True            # scale normed block inputs by 1/sqrt(virtual_layer + 1)
    xsa_last_n: int = 4              # exclusive self-attention on the last N physical layers
    bigram_vocab_size: int = 1536    # BigramHash buckets; 0 disables
    bigram_dim: int = 128
    smear_gate: bool = True          # blend each position with the previous one by a learned gate
    ve_layers: tuple[int, ...] = (-2, -1)  # layers given value embeddings (negative = from the end); () = off
    ve_dim: int = 128
    recur_layers: tuple[int, ...] = ()    # physical layers run twice (depth recurrence), e.g. (4, 5)
    attention_backend: str = "auto"  # "auto" (flash-attn 3 on Hopper if importable) | "sdpa" | "fa3"

    def __post_init__(self) -> None:
        problems = []
        for name in ("ve_layers", "recur_layers"):  # negative indices count from the last layer
            resolved = tuple(i + self.num_layers if i < 0 else i for i in getattr(self, name))
            object.__setattr__(self, name, resolved)
        if self.model_dim % self.num_heads:
            problems.append(f"MODEL_DIM={self.model_dim} is not divisible by NUM_HEADS={self.num_heads}")
        elif (self.model_dim // self.num_heads) % 2:
            problems.append(f"head dim {self.model_dim // self.num_heads} must be even for RoPE")
        if self.num_heads % self.num_kv_heads:
            problems.append(f"NUM_HEADS={self.num_heads} is not divisible by NUM_KV_HEADS={self.num_kv_heads}")
        if self.mlp_activation not in ("relu2", "leaky_relu2"):
            problems.append(f"MLP_ACTIVATION={self.mlp_activation!r}: expected relu2 or leaky_relu2")
        if self.attention_backend not in ("auto", "sdpa", "fa3"):
            problems.append(f"ATTENTION_BACKEND={self.attention_backend!r}: expected auto, sdpa or fa3")
        for name in ("ve_layers", "recur_layers"):
            bad = [i for i in getattr(self, name) if not 0 <= i < self.num_layers]
            if bad:
                problems.append(f"{name.upper()} {bad} outside 0..{self.num_layers - 1}")
        if self.rope_dims < 0 or self.rope_dims % 2 or self.rope_dims > self.model_dim // self.num_heads:
            problems.append(f"ROPE_DIMS={self.rope_dims} must be even, >= 0 and at most the head dim")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def layer_plan(self) -> tuple[int, ...]:
        """Physical block index for each virtual layer. Recurrence repeats the chosen layers
        right after their first pass: 11 layers with (4, 5) -> 0..5, 4, 5, 6..10 (13 virtual)."""
        if not self.recur_layers:
            return tuple(range(self.num_layers))
        rec = tuple(sorted(set(self.recur_layers)))
        cut = rec[-1] + 1
        return tuple(range(cut)) + rec + tuple(range(cut, self.num_layers))


@dataclass(frozen=True)
class Hyperparameters:
    """One run's settings. `from_env()` reads each field from the upper-cased variable name."""

    # data
    data_path: str = "./data/datasets/fineweb10B_sp1024"   # folder of fineweb_{train,val}_*.bin
    tokenizer_path: str = "./data/tokenizers/fineweb_1024_bpe.model"
    run_id: str = ""                  # log file name under logs/; a uuid when empty
    seed: int = 1337
    # schedule
    iterations: int = 9000            # planned optimizer steps (the wall clock usually stops first)
    max_wallclock_seconds: float = 600.0  # training-time cap, seconds; 0 = none
    train_batch_tokens: int = 786_432     # tokens per optimizer step, all ranks together
    train_seq_len: int = 2048
    eval_seq_len: int = 2048
    grad_accum_steps: int = 0         # 0 = 8 // world_size, as upstream (one 8-GPU batch shape)
    warmup_steps: int = 20            # compile/warm-up steps whose updates are rolled back
    warmdown_iters: int = 3500        # LR decays linearly to 0 over this many final steps
    lr_warmup_steps: int = 0          # linear LR ramp over the first steps (the record uses none)
    val_batch_size: int = 524_288     # tokens per validation batch, all ranks together
    val_loss_every: int = 4000        # steps between periodic validations; 0 = only at the end
    train_log_every: int = 500
    # optimizer
    matrix_lr: float = 0.025          # Muon, 2-D block weights
    scalar_lr: float = 0.025          # AdamW, gains / mixes / small projections
    tied_embed_lr: float = 0.035      # AdamW, token (and bigram / value) embeddings when tied
    embed_lr: float = 0.6             # AdamW, token embeddings when untied
    head_lr: float = 0.008            # Adam, untied output head
    muon_momentum: float = 0.99
    muon_momentum_warmup_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_backend_steps: int = 5       # Newton-Schulz iterations
    muon_wd: float = 0.04             # decoupled weight decay on Muon matrices
    adam_wd: float = 0.04
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.3       # 0 disables
    # weight averaging and quantization-aware training
    ema_enabled: bool = True
    ema_decay: float = 0.997
    swa_enabled: bool = True
    swa_every: int = 50               # steps between SWA snapshots once the LR scale < swa_start_scale
    swa_start_scale: float = 0.2
    late_qat_threshold: float = 0.15  # fake-quantize weights once the LR scale drops below; 0 = off
    qat_bits: int = 6
    # runtime
    compile: bool = True              # torch.compile the model on CUDA
    # model (see ModelConfig)
    vocab_size: int = 1024
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: float = 3.0
    mlp_activation: str = "leaky_relu2"
    leaky_slope: float = 0.5
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    rope_dims: int = 16
    qk_gain_init: float = 1.5
    unet_skips: bool = True
    ln_scale: bool = True
    xsa_last_n: int = 4
    bigram_vocab_size: int = 1536
    bigram_dim: int = 128
    smear_gate: bool = True
    ve_enabled: bool = True
    ve_layers: tuple[int, ...] = (-2, -1)  # = 9,10 for 11 layers, and valid for any depth
    ve_dim: int = 128
    recur_layers: tuple[int, ...] = ()
    recur_start_step: int = 0         # recurrence switched on from this step (0 = from the start)
    attention_backend: str = "auto"

    @property
    def train_files(self) -> str:
        return str(Path(self.data_path) / "fineweb_train_*.bin")

    @property
    def val_files(self) -> str:
        return str(Path(self.data_path) / "fineweb_val_*.bin")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Hyperparameters:
        """Build from `environ` (default `os.environ`); a malformed value raises ValueError
        naming the variable."""
        env = os.environ if environ is None else environ
        hp = cls(**env_values(cls, env))
        if not hp.run_id:
            hp = dataclasses.replace(hp, run_id=str(uuid.uuid4()))
        hp.model_config()  # validate the architecture early, with the variable names
        return hp

    def model_config(self) -> ModelConfig:
        names = {f.name for f in fields(ModelConfig)}
        kw = {k: getattr(self, k) for k in names}
        if not self.ve_enabled:
            kw["ve_layers"] = ()
        return ModelConfig(**kw)

    def describe(self) -> str:
        """One `name:value` pair per line, sorted, for the head of the log."""
        d = dataclasses.asdict(self)
        return "\n".join(f"hparam:{k}={d[k]}" for k in sorted(d))


def env_values(cls: type, environ: Mapping[str, str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Typed values of the dataclass `cls`'s fields found in `environ` under their upper-cased
    names; a malformed value raises ValueError naming the variable."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        raw = environ.get(f.name.upper())
        if f.name in skip or raw is None:
            continue
        try:
            values[f.name] = _parse(f.type, raw)
        except ValueError as e:
            raise ValueError(f"{f.name.upper()}={raw!r}: {e}") from None
    return values


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(type_name: Any, raw: str) -> Any:
    t = str(type_name)
    s = raw.strip()
    if t == "bool":
        low = s.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected 0/1")
    if t == "int":
        return int(s)
    if t == "float":
        return float(s)
    if t.startswith("tuple"):
        return tuple(int(x) for x in s.replace(" ", "").split(",") if x)
    return raw
