"""Optimizers, the learning-rate schedule, weight averaging and the late-QAT switch.

Split of parameters (as in the record stack):
- Muon for the 2-D weights inside blocks (Q, K, V, out, MLP up/down): momentum, then the update
  is orthogonalized by a Newton–Schulz iteration, scaled by sqrt(max(1, rows/cols)), with
  decoupled weight decay and a momentum warm-up.
- AdamW for token / bigram / value embeddings (TIED_EMBED_LR) and for every scalar, gain, mix and
  small projection (SCALAR_LR); Adam for an untied output head (HEAD_LR).

Speed: Muon stacks equally shaped matrices and orthogonalizes them in one batched matmul chain;
with several ranks each rank orthogonalizes only its share of each stack and the results are
all-gathered, so the Newton–Schulz cost is divided by the world size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from reference_impl.config import Hyperparameters

# Quintic Newton–Schulz coefficients that push all singular values towards ~1 in few steps.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def _all_gather_single(out: Tensor, inp: Tensor) -> None:
    """Concatenate every rank's `inp` into `out` (the name changed in recent PyTorch)."""
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, inp)


def orthogonalize(g: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximate U V^T of each matrix in g ([..., m, n]) by a Newton–Schulz iteration.
    Runs in bf16 on GPU (fast, accurate enough for an update direction), float32 on CPU."""
    a, b, c = NS_COEFFS
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """Momentum + orthogonalized updates for 2-D weights; gradients must already be averaged
    over ranks (every rank holds the same gradient and momentum)."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int = 5,
                 weight_decay: float = 0.0, nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps,
                                      weight_decay=weight_decay, nesterov=nesterov))
        for group in self.param_groups:
            if any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon takes only 2-D parameters")

    @staticmethod
    def _stacks(params: list[nn.Parameter]) -> list[list[nn.Parameter]]:
        by_shape: dict[tuple[int, ...], list[nn.Parameter]] = {}
        for p in params:
            if p.grad is not None:
                by_shape.setdefault(tuple(p.shape), []).append(p)
        return sorted(by_shape.values(), key=lambda ps: -ps[0].numel() * len(ps))

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for stack in self._stacks(group["params"]):
                updates = []
                for p in stack:
                    buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(mom).add_(p.grad)
                    updates.append(p.grad.add(buf, alpha=mom) if group["nesterov"] else buf)
                u = torch.stack(updates)  # [N, m, n]
                per_rank = -(-len(stack) // world)
                if world > 1:
                    u = torch.cat((u, u.new_zeros(per_rank * world - len(stack), *u.shape[1:])))
                    mine = orthogonalize(u[rank * per_rank : (rank + 1) * per_rank], group["backend_steps"])
                    full = mine.new_empty(per_rank * world, *mine.shape[1:])
                    _all_gather_single(full, mine.contiguous())
                else:
                    full = orthogonalize(u, group["backend_steps"])
                rows, cols = stack[0].shape
                scale = max(1.0, rows / cols) ** 0.5
                for p, o in zip(stack, full[: len(stack)]):
                    if wd > 0:
                        p.mul_(1.0 - lr * wd)
                    p.add_(o.to(p.dtype), alpha=-lr * scale)


def classify_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """{"matrix", "embed", "head", "scalar"} -> parameters, by name (see module docstring)."""
    groups: dict[str, list[nn.Parameter]] = {"matrix": [], "embed": [], "head": [], "scalar": []}
    for name, p in model.named_parameters():
        if name.startswith("blocks.") and p.ndim == 2 and name.endswith(".weight") and "resid_mix" not in name:
            groups["matrix"].append(p)
        elif name in ("tok_emb.weight", "bigram.embed.weight", "ve.embed.weight"):
            groups["embed"].append(p)
        elif name == "lm_head.weight":
            groups["head"].append(p)
        else:
            groups["scalar"].append(p)
    return groups


@dataclass
class Optimizers:
    muon: Muon
    adams: list[torch.optim.Optimizer]

    @property
    def all(self) -> list[torch.optim.Optimizer]:
        return [*self.adams, self.muon]

    def set_lr_scale(self, scale: float) -> None:
        for opt in self.all:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale

    def set_muon_momentum(self, momentum: float) -> None:
        for group in self.muon.param_groups:
            group["momentum"] = momentum

    def step(self) -> None:
        for opt in self.all:
            opt.step()

    def zero_grad(self) -> None:
        for opt in self.all:
            opt.zero_grad(set_to_none=True)

    def state_dicts(self) -> list[dict]:
        return [opt.state_dict() for opt in self.all]

    def load_state_dicts(self, states: list[dict]) -> None:
        for opt, s in zip(self.all, states, strict=True):
            opt.load_state_dict(s)


def build_optimizers(model: nn.Module, hp: Hyperparameters) -> Optimizers:
    groups = classify_params(model)
    fused = all(p.is_cuda for p in model.parameters())
    adam_kw = dict(betas=(hp.beta1, hp.beta2), eps=hp.adam_eps, fused=fused)
    embed_lr = hp.tied_embed_lr if hp.tie_embeddings else hp.embed_lr
    adams: list[torch.optim.Optimizer] = [
        torch.optim.AdamW([dict(params=groups["embed"], lr=embed_lr, base_lr=embed_lr)],
                          weight_decay=hp.adam_wd, **adam_kw),
        torch.optim.AdamW([dict(params=groups["scalar"], lr=hp.scalar_lr, base_lr=hp.scalar_lr)],
                          weight_decay=hp.adam_wd, **adam_kw),
    ]
    if groups["head"]:
        adams.append(torch.optim.Adam([dict(params=groups["head"], lr=hp.head_lr, base_lr=hp.head_lr)], **adam_kw))
    muon = Muon(groups["matrix"], lr=hp.matrix_lr, momentum=hp.muon_momentum,
                backend_steps=hp.muon_backend_steps, weight_decay=hp.muon_wd)
    for group in muon.param_groups:
        group["base_lr"] = hp.matrix_lr
    return Optimizers(muon=muon, adams=adams)


def muon_momentum_at(step: int, hp: Hyperparameters) -> float:
    """Linear warm-up from MUON_MOMENTUM_WARMUP_START to MUON_MOMENTUM over the first steps."""
    if hp.muon_momentum_warmup_steps <= 0:
        return hp.muon_momentum
    frac = min(step / hp.muon_momentum_warmup_steps, 1.0)
    return (1 - frac) * hp.muon_momentum_warmup_start + frac * hp.muon_momentum


def lr_scale(step: int, elapsed_ms: float, hp: Hyperparameters) -> float:
    """Multiplier on every base LR: linear warm-up over LR_WARMUP_STEPS, then 1, then a linear
    warm-down to 0. With a wall-clock cap the warm-down is timed: it starts when the time left
    equals WARMDOWN_ITERS steps at the average step time so far, so it ends at the cap."""
    warm = min((step + 1) / hp.lr_warmup_steps, 1.0) if hp.lr_warmup_steps > 0 else 1.0
    if hp.warmdown_iters <= 0:
        return warm
    # by iterations: the last WARMDOWN_ITERS of ITERATIONS
    down = min(max((hp.iterations - step) / hp.warmdown_iters, 0.0), 1.0)
    if hp.max_wallclock_seconds > 0:
        # by time: WARMDOWN_ITERS steps at the average step time so far, ending at the cap;
        # whichever budget runs out first decides
        warmdown_ms = hp.warmdown_iters * elapsed_ms / max(step, 1)
        remaining_ms = max(1000.0 * hp.max_wallclock_seconds - elapsed_ms, 0.0)
        down = min(down, remaining_ms / max(warmdown_ms, 1e-9), 1.0)
    return min(warm, down)


class EMA:
    """Exponential moving average of every state tensor, kept in float32.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates, so a short run's
    average is not dominated by the random initialization; from n ≈ 3,000 on (a record run
    takes ~7,000 steps) it is the constant EMA_DECAY of the record stack.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1.0 - d)

    def state_dict(self, like: nn.Module) -> dict[str, Tensor]:
        """The average cast to the dtypes of `like`'s state, ready for `load_state_dict`."""
        return {k: self.shadow[k].to(v.dtype) for k, v in like.state_dict().items()}


class SWA:
    """Uniform average of snapshots taken every SWA_EVERY steps once the LR scale is below
    SWA_START_SCALE (the warm-down tail), accumulated on the CPU in float32."""

    def __init__(self, every: int, start_scale: float):
        self.every, self.start_scale = every, start_scale
        self.sum: dict[str, Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def maybe_add(self, model: nn.Module, step: int, scale: float) -> bool:
        """Take a snapshot if due; True when this was the first one."""
        if self.every <= 0 or scale >= self.start_scale or step % self.every:
            return False
        state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        if self.sum is None:
            self.sum = {k: v.clone() for k, v in state.items()}
        else:
            for k, v in state.items():
                self.sum[k] += v
        self.count += 1
        return self.count == 1

    def state_dict(self, like: nn.Module) -> dict[str, Tensor] | None:
        if self.sum is None:
            return None
        ref = like.state_dict()
        return {k: (v / self.count).to(ref[k].device, ref[k].dtype) for k, v in self.sum.items()}


class LateQAT:
    """Switch on fake quantization (model.set_qat) once the LR scale falls below a threshold."""

    def __init__(self, threshold: float, bits: int):
        self.threshold, self.bits, self.enabled = threshold, bits, False

    def maybe_enable(self, model: nn.Module, scale: float) -> bool:
        """True on the call that switches it on."""
        if self.enabled or self.threshold <= 0 or scale >= self.threshold:
            return False
        model.set_qat(self.bits)
        self.enabled = True
        return True
