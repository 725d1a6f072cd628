"""The typed result of parsing one train log: what the log printed, each figure with its line.

Every figure keeps the 1-based line number it came from so a finding can point at `file:line`
and quote the line. Nothing here knows about rules or limits; `harness.checks` judges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Located(Generic[T]):
    """A value and the line (1-based) of the log that printed it."""

    value: T
    line: int


@dataclass(frozen=True)
class StepLine:
    """A periodic training line: `step:500/20000 train_loss:2.57 train_time:48000ms step_avg:96ms`
    or the newer `500/20000 train_loss: 2.57 train_time: 0.8m tok/s: 8216992`."""

    step: int
    total: int | None
    line: int
    train_loss: float | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    train_time_ms: float | None = None  # minutes-only prints ("0.8m") are converted, coarse
    step_avg_ms: float | None = None


@dataclass(frozen=True)
class StopLine:
    """Why training ended: `stopping_early: wallclock_cap train_time:600128ms step:7179/9000`."""

    kind: str  # "wallclock_cap" (the only kind logs print; iteration ends print no line)
    line: int
    train_time_ms: float | None = None
    step: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class EvalPhase:
    """One evaluation result line, e.g. `final_int6_sliding_window val_loss:1.89 val_bpb:1.12
    stride:64 eval_time:73133ms`, `legal_ttt_exact ...`, or a TTT done line
    `ttt_sliding:done val_loss=1.9 val_bpb=1.12 elapsed=410.2s`."""

    name: str
    val_loss: float | None
    val_bpb: float
    line: int
    stride: int | None = None
    eval_time_ms: float | None = None
    text: str = ""
    bpb_decimals: int | None = None  # decimals as printed ("1.1200" -> 4): the figure's precision
    loss_decimals: int | None = None  # the same for val_loss (the byte-denominator check's rounding slack)

    @property
    def exact(self) -> bool:
        """`_exact` lines print the full-precision figure of the phase printed just before."""
        return self.name.endswith("_exact") or "_exact " in self.name

    @property
    def diagnostic(self) -> bool:
        """Diagnostic phases (pre-quantization, post-EMA checks) are never the score."""
        low = self.name.lower()
        return low.startswith("diagnostic") or "pre-quant" in low or low.startswith("pre_quant")


@dataclass(frozen=True)
class SizeLine:
    """A byte count: model (raw or with its codec), code (raw/compressed), or a total."""

    kind: str  # "model", "code", "total"
    bytes: int
    line: int
    label: str = ""  # codec for model/total ("int6+lzma"), "compressed"/"uncompressed" for code


@dataclass(frozen=True)
class TimingLine:
    """A timing line printed around quantization and serialization, in seconds.

    `kind`: `gptq_reserve` (training budget set aside for calibration: `gptq:reserving 12s,
    effective=588000ms`), `effective_budget` (the loop's budget after that reserve, from the same
    line: the reserve itself may print rounded, `reserving 0s, effective=599500ms`), `calibration` (GPTQ Hessian collection / calibration: `GPTQ:collected 67
    Hessians in 12.7s`), `serialize` (compressing and writing the artifact: `serialize_wallclock:
    81.8s`, `GPTQ:compressed+saved in 67.0s`), `artifact_production` (the organizers' compliance
    re-run: training start to artifact written), `post_gptq_elapsed` (`wallclock:post_gptq
    total_elapsed:856.2s`). `source` says what a calibration read, as the log tells it:
    `training` (`(training data)`, or `GPTQ:collecting Hessians from calibration data`, which every
    merged record that prints it feeds from a training-shard loader), `self-generated`
    (autoregressive calibration data), or `unknown`."""

    kind: str
    seconds: float
    line: int
    source: str = ""


@dataclass
class Artifact:
    """Every size line the log printed, in order.

    The counted total is the last total line that is not the raw one: scripts print
    `Total submission size: N` twice, first for the uncompressed state dict + code (equal to the
    raw `Serialized model:` + `Code size:`), then for the compressed artifact, with or without a
    codec label (`Total submission size int6+lzma: N bytes`)."""

    sizes: list[SizeLine] = field(default_factory=list)

    def _last(self, kind: str, labeled: bool | None = None, label: str | None = None) -> SizeLine | None:
        for s in reversed(self.sizes):
            if s.kind != kind:
                continue
            if labeled is True and not s.label:
                continue
            if labeled is False and s.label:
                continue
            if label is not None and s.label != label:
                continue
            return s
        return None

    @property
    def total(self) -> SizeLine | None:
        totals = [s for s in self.sizes if s.kind == "total"]
        if not totals:
            return None
        raw_sums: set[int] = set()
        raw_model: int | None = None
        for s in self.sizes:
            if s.kind == "model" and not s.label:
                raw_model = s.bytes
            elif s.kind == "code" and raw_model is not None:
                raw_sums.add(raw_model + s.bytes)
        counted = [t for t in totals if t.label or t.bytes not in raw_sums]
        return (counted or totals)[-1]

    @property
    def model(self) -> SizeLine | None:
        """The compressed model: the last model line with a codec (raw `Serialized model:` is
        the uncompressed state dict)."""
        return self._last("model", labeled=True)

    @property
    def model_raw(self) -> SizeLine | None:
        return self._last("model", labeled=False)

    @property
    def code(self) -> SizeLine | None:
        """The code figure as printed: plain `Code size:` or the uncompressed one."""
        return self._last("code", label="") or self._last("code", label="uncompressed")

    @property
    def code_compressed(self) -> SizeLine | None:
        return self._last("code", label="compressed")


@dataclass
class RunLog:
    """One parsed train log. Fields are None when the log did not print them.

    `unknown` keeps every non-blank line the parser did not use, with its line number, so a
    reviewer (or a later rule) can still see it; `decode_errors` counts bytes that were not
    UTF-8 (replaced, never fatal). A hostile log cannot make this object large: lines are cut
    at a length cap (`long_lines` counts them) and each list keeps a bounded number of entries
    (`dropped_lines` counts the rest; the last step line is always kept).
    """

    path: str | None = None
    seed: Located[int] | None = None
    world_size: Located[int] | None = None
    train_shards: Located[int] | None = None
    val_tokens: Located[int] | None = None
    model_params: Located[int] | None = None
    iterations: Located[int] | None = None
    vocab_size: Located[int] | None = None
    tokenizer_path: Located[str] | None = None  # as printed (`tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model`)
    steps: list[StepLine] = field(default_factory=list)
    stop: StopLine | None = None
    artifact: Artifact = field(default_factory=Artifact)
    phases: list[EvalPhase] = field(default_factory=list)
    total_eval: Located[float] | None = None  # `total_eval_time:519.5s`, in seconds
    timings: list[TimingLine] = field(default_factory=list)  # GPTQ reserve, calibration, serialization
    unknown: list[tuple[int, str]] = field(default_factory=list)
    line_count: int = 0
    decode_errors: int = 0
    # Bounds on what one log may cost (harness.logs.parse): lines cut at the line-length cap, and
    # lines recognised or not but not kept once a list (steps, phases, sizes, unknown) was full.
    long_lines: int = 0
    dropped_lines: int = 0
    _calibration_source: str = field(default="", repr=False, compare=False)  # parser state: the open calibration

    # -- derived figures ---------------------------------------------------------------
    @property
    def train_time_ms(self) -> Located[float] | None:
        """Training time at stop: the stop line's, else the last step line that printed one."""
        if self.stop is not None and self.stop.train_time_ms is not None:
            return Located(self.stop.train_time_ms, self.stop.line)
        for s in reversed(self.steps):
            if s.train_time_ms is not None:
                return Located(s.train_time_ms, s.line)
        return None

    @property
    def last_step(self) -> int | None:
        if self.stop is not None and self.stop.step is not None:
            return self.stop.step
        return self.steps[-1].step if self.steps else None

    @property
    def step_avg_ms(self) -> float | None:
        """Mean step time: the last printed `step_avg`, else train time / steps."""
        for s in reversed(self.steps):
            if s.step_avg_ms is not None and s.step > 0:
                return s.step_avg_ms
        tt, n = self.train_time_ms, self.last_step
        if tt is not None and n:
            return tt.value / n
        return None

    @property
    def bytes_total(self) -> SizeLine | None:
        return self.artifact.total

    def timing(self, kind: str) -> list[TimingLine]:
        return [t for t in self.timings if t.kind == kind]

    def training_data_after_stop(self) -> list[TimingLine]:
        """Calibration lines that read training data, printed after the training clock stopped
        (after the stop line, else after the last step line): rules.md "Timing" counts them as
        training."""
        end = self.stop.line if self.stop is not None else (self.steps[-1].line if self.steps else 0)
        return [t for t in self.timing("calibration") if t.source == "training" and t.line > end]

    def is_train_log(self) -> bool:
        """Whether this looks like a train log at all (steps, a stop line, or a result)."""
        return bool(self.steps or self.phases or self.stop is not None)
