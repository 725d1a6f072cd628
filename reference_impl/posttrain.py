"""After training, in the same torchrun run: weights -> quantize -> artifact -> round trip -> scores.

    averaged weights (EMA from the loop; SWA with POSTTRAIN_WEIGHTS=swa)
      -> optional GPTQ Hessians from *training* shards or self-generated text (GPTQ_ENABLED=1)
      -> int6/int8 quantization (quant.py) -> artifact file + size lines, cap enforced (artifact.py)
      -> every rank loads the artifact back into a fresh GPT: `final_int6_roundtrip`
      -> sliding-window score (EVAL_STRIDE < seq_len): `final_int6_sliding_window`
      -> legal score-first TTT (TTT_ENABLED=1): `legal_ttt`, printed last, so it is the scored phase

Each scoring phase prints `<name> val_loss:… val_bpb:… eval_time:…ms` and `<name>_exact …`.
The scores come from the model rebuilt from the artifact file, never from the training weights.
Settings are read from the environment into `PostTrainConfig` (kept apart from `config.py` so
part 1's hyperparameters stay as they are); the config is printed into the log.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from reference_impl import artifact, quant
from reference_impl.config import Hyperparameters, env_values
from reference_impl.data import DistributedTokenLoader, shard_files
from reference_impl.distributed import DistContext
from reference_impl.evaluate import eval_val, eval_val_sliding
from reference_impl.model import GPT
from reference_impl.ttt import Ledger, TTTConfig, legal_ttt

if TYPE_CHECKING:
    from reference_impl.train import TrainResult, ValData


@dataclass(frozen=True)
class PostTrainConfig:
    """Post-training settings; `from_env` reads each field from its upper-cased name."""

    posttrain_weights: str = "ema"  # "ema": as the loop left them (EMA applied) | "swa": SWA average
    quant_matrix_bits: int = 6
    quant_embed_bits: int = 8
    quant_passthrough_numel: int = 65_536  # float tensors this small stay float16
    gptq_enabled: bool = False
    gptq_calib_source: str = "train"  # "train" (training shards) | "self" (model-generated text)
    gptq_calib_batches: int = 16  # calibration batches per rank
    gptq_calib_seqs: int = 8  # sequences per calibration batch
    artifact_codec: str = "zstd"  # "zstd" (level 22) | "lzma"
    artifact_path: str = "final_model.int6.ptz"
    artifact_max_decompressed: int = artifact.DEFAULT_MAX_DECOMPRESSED
    code_launcher: str = "train_gpt.py"  # counted as code when it exists in the working directory
    eval_stride: int = 64  # sliding-window stride; 0 or >= seq_len skips the sliding phase
    eval_batch_seqs: int = 32  # windows per rank per scoring batch
    ttt_enabled: bool = False
    ttt_lr: float = 0.002
    ttt_epochs: int = 3
    ttt_chunk_tokens: int = 32_768
    ttt_momentum: float = 0.9
    ttt_optimizer: str = "sgd"
    ttt_weight_decay: float = 0.0
    ttt_freeze_blocks: int = 0
    ttt_grad_clip: float = 1.0
    ttt_batch_seqs: int = 32
    ttt_ledger_dir: str = ""  # when set, each rank writes its score/update ledger there (probes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "PostTrainConfig":
        return cls(**env_values(cls, os.environ if environ is None else environ))

    def quant_config(self) -> quant.QuantConfig:
        return quant.QuantConfig(matrix_bits=self.quant_matrix_bits, embed_bits=self.quant_embed_bits,
                                 passthrough_numel=self.quant_passthrough_numel, gptq=self.gptq_enabled)

    def ttt_config(self, seq_len: int) -> TTTConfig:
        return TTTConfig(seq_len=seq_len, stride=min(self.eval_stride or seq_len, seq_len),
                         chunk_tokens=self.ttt_chunk_tokens, epochs=self.ttt_epochs, lr=self.ttt_lr,
                         optimizer=self.ttt_optimizer, momentum=self.ttt_momentum,
                         weight_decay=self.ttt_weight_decay, grad_clip=self.ttt_grad_clip,
                         batch_seqs=self.ttt_batch_seqs, freeze_blocks=self.ttt_freeze_blocks)

    def describe(self) -> str:
        d = dataclasses.asdict(self)
        return "\n".join(f"posttrain:{k}={d[k]}" for k in sorted(d))


class _Phase:
    """Times one scoring phase (device-synchronized) and prints its two upstream lines."""

    def __init__(self, name: str, ctx: DistContext, log: Callable[[str], None], extra: str = ""):
        self.name, self.ctx, self.log, self.extra = name, ctx, log, extra

    def __enter__(self) -> "_Phase":
        self.ctx.sync()
        self.t0 = time.perf_counter()
        return self

    def report(self, val_loss: float, val_bpb: float) -> None:
        self.ctx.sync()
        ms = 1000.0 * (time.perf_counter() - self.t0)
        self.log(f"{self.name} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} {self.extra}eval_time:{ms:.0f}ms")
        self.log(f"{self.name}_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")

    def __exit__(self, *exc) -> None:
        return None


def select_weights(result: "TrainResult", cfg: PostTrainConfig, log: Callable[[str], None]) -> GPT:
    """The model whose weights are exported; with POSTTRAIN_WEIGHTS=swa, the SWA average."""
    model = result.model
    if cfg.posttrain_weights == "swa":
        state = result.swa.state_dict(model) if result.swa is not None else None
        if state is None:
            log("swa:no snapshots taken; exporting the weights as trained")
        else:
            log(f"swa:applying SWA weights snapshots:{result.swa.count}")
            model.load_state_dict(state)
    elif cfg.posttrain_weights != "ema":
        raise ValueError(f"POSTTRAIN_WEIGHTS={cfg.posttrain_weights!r}: expected ema or swa")
    return model


def calibration_batches(model: GPT, hp: Hyperparameters, cfg: PostTrainConfig, ctx: DistContext) -> list:
    """GPTQ calibration tokens: training shards or self-generated text, never the validation split."""
    seq = hp.train_seq_len
    if cfg.gptq_calib_source == "self":
        return quant.self_generated_batches(model, cfg.gptq_calib_batches * cfg.gptq_calib_seqs, seq,
                                            hp.vocab_size, seed=hp.seed + ctx.rank, device=ctx.device,
                                            batch=cfg.gptq_calib_seqs)
    if cfg.gptq_calib_source != "train":
        raise ValueError(f"GPTQ_CALIB_SOURCE={cfg.gptq_calib_source!r}: expected train or self")
    val_files = {p.resolve() for p in Path(hp.data_path).glob("fineweb_val_*.bin")}
    overlap = [p for p in shard_files(hp.train_files) if p.resolve() in val_files]
    if overlap:
        raise ValueError(f"refusing to calibrate GPTQ on {overlap[0]}: it is a validation shard")
    loader = DistributedTokenLoader(hp.train_files, ctx.rank, ctx.world_size, ctx.device)
    return [loader.next_batch(cfg.gptq_calib_seqs * seq * ctx.world_size, seq, 1)[0]
            for _ in range(cfg.gptq_calib_batches)]


def export(model: GPT, hp: Hyperparameters, cfg: PostTrainConfig, ctx: DistContext,
           log: Callable[[str], None]) -> Path:
    """Quantize and write the artifact on rank 0; every rank learns whether it succeeded."""
    qcfg = cfg.quant_config()
    hessians = None
    if qcfg.gptq:
        t0 = time.perf_counter()
        hessians = quant.collect_hessians(model, calibration_batches(model, hp, cfg, ctx), qcfg)
        # Reading training shards here is after the training clock stopped: a record must keep
        # this time inside its 600 s (upstream reserves it, `gptq:reserving 12s`), or use "self".
        log(f"gptq:collected {len(hessians)} Hessians from {cfg.gptq_calib_source} data "
            f"in {time.perf_counter() - t0:.1f}s")
    path = Path(cfg.artifact_path)
    failure = ""
    if ctx.is_main:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        try:
            qstate = quant.quantize_state_dict(state, qcfg, hessians, device=ctx.device)
            artifact.write_artifact(path, qstate, codec=cfg.artifact_codec, label=qcfg.label,
                                    raw_model_bytes=artifact.float_container_bytes(state),
                                    code=artifact.code_files(launcher=Path(cfg.code_launcher)), log=log)
        except artifact.ArtifactError as exc:
            failure = str(exc)
            log(f"artifact:refused {failure}")
    failed = ctx.all_reduce_max(torch.tensor(int(bool(failure)), device=ctx.device))
    if failed.item():
        raise SystemExit(failure or "artifact export failed on rank 0 (see its log)")
    return path


def load_roundtrip(path: Path, hp: Hyperparameters, cfg: PostTrainConfig, ctx: DistContext) -> GPT:
    """A fresh GPT holding the dequantized weights read back from the artifact file."""
    qstate = artifact.read_artifact(path, cfg.artifact_max_decompressed)
    model = GPT(hp.model_config()).to(ctx.device)
    model.load_state_dict(quant.dequantize_state_dict(qstate))
    model.select_attention_kernel(ctx.device)
    return model


def run_posttrain(result: "TrainResult", val: "ValData", hp: Hyperparameters, ctx: DistContext,
                  log: Callable[[str], None], cfg: PostTrainConfig | None = None) -> None:
    """The whole post-training pipeline; the TTT line, when enabled, is the last scored phase."""
    cfg = cfg or PostTrainConfig.from_env()
    log(cfg.describe())
    model = select_weights(result, cfg, log)
    path = export(model, hp, cfg, ctx, log)
    eval_model: torch.nn.Module = load_roundtrip(path, hp, cfg, ctx)
    if hp.compile and ctx.device.type == "cuda":  # one compiled module for scoring and TTT steps
        eval_model = torch.compile(eval_model, dynamic=False)
    label = cfg.quant_config().label
    with _Phase(f"final_{label}_roundtrip", ctx, log) as ph:
        ph.report(*eval_val(eval_model, val.tokens, val.luts, val.seq_len, val.batch_seqs, ctx))
    seq_len = hp.eval_seq_len if hp.eval_seq_len > 0 else hp.train_seq_len
    if 0 < cfg.eval_stride < seq_len:
        with _Phase(f"final_{label}_sliding_window", ctx, log, f"stride:{cfg.eval_stride} ") as ph:
            ph.report(*eval_val_sliding(eval_model, val.tokens, val.luts, seq_len, cfg.eval_stride,
                                        cfg.eval_batch_seqs, ctx))
    if cfg.ttt_enabled:
        ledger = Ledger(rank=ctx.rank) if cfg.ttt_ledger_dir else None
        with _Phase("legal_ttt", ctx, log) as ph:
            res = legal_ttt(eval_model, val.tokens, val.luts, cfg.ttt_config(seq_len), ctx,
                            ledger=ledger, log=log)
            ph.report(res.val_loss, res.val_bpb)
        if ledger is not None:
            Path(cfg.ttt_ledger_dir).mkdir(parents=True, exist_ok=True)
            ledger.save(Path(cfg.ttt_ledger_dir) / f"ttt_ledger_rank{ctx.rank}.json")
