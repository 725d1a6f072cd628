"""What the checks look at: the record, its per-seed figures, the rule set, an optional baseline.

`build_context` reads the submission's per-seed claims (`seed_results`, or `seeds` when it is a
mapping), picks one primary log per seed (the one whose scored phase matches that seed's claim,
else the first by name), and fixes each seed's scored phase, eval times, bytes and train time.
`SeedFigures.row()` is the per-seed table shown in every output format.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.checks.scored import ScoredChoice, all_eval_ms, choose_scored_phase, scored_eval_ms
from harness.checks.tokenizer import TokenizerId, tokenizer_of
from harness.findings import Location
from harness.logs import Located
from harness.records import LogFile, Record, claimed_seeds
from harness.rulesets import Ruleset

_BYTES_KEYS = ("artifact_bytes", "bytes_total", "bytes", "total_bytes")


@dataclass(frozen=True)
class SeedClaim:
    """What submission.json says about one seed, and where (for findings)."""

    seed: int
    values: dict[str, Any]
    source: str  # e.g. 'seed_results["42"]'
    line: int | None

    def number(self, *keys: str) -> float | None:
        for k in keys:
            v = finite_number(self.values.get(k))
            if v is not None:
                return v
        return None


# Claims larger than this are not figures of a record (a 16 MB cap, bpb near 1, seeds, steps):
# they are treated like any other non-number (PG-CLAIMS-006) rather than compared.
MAX_CLAIM = 1e15


def finite_number(v: Any) -> float | None:
    """`v` as a float when it is a real, finite, plausibly sized JSON number; else None (strings,
    lists, booleans, NaN, infinities and absurd magnitudes are not numbers for a claim)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        x = float(v)
    except OverflowError:  # an integer beyond float range
        return None
    return x if math.isfinite(x) and abs(x) <= MAX_CLAIM else None


@dataclass(frozen=True)
class Baseline:
    """The run to beat: per-seed `val_loss` (nats per token) and, when known, per-seed `val_bpb`,
    the tokenizer its logs print, and where they came from. Scores compare per token only
    between records shown to share a tokenizer; otherwise per byte (harness.checks.compare)."""

    val_losses: list[float]
    source: str
    val_bpbs: list[float] | None = None
    tokenizer: TokenizerId | None = None


@dataclass
class SeedFigures:
    seed: int | None
    log: LogFile
    others: list[LogFile]
    choice: ScoredChoice
    claim: SeedClaim | None

    @property
    def scored(self):
        return self.choice.phase

    def _with(self, attr: str) -> LogFile:
        """The log that printed `attr` (`bytes_total`, `train_time_ms`): the primary log, else
        another log of the same seed. An eval-only rerun prints the score but not the training
        run's bytes or train time; those come from that seed's training log."""
        if getattr(self.log.run, attr) is not None:
            return self.log
        for o in self.others:
            if getattr(o.run, attr) is not None:
                return o
        return self.log

    @property
    def bytes_log(self) -> LogFile:
        return self._with("bytes_total")

    @property
    def train_log(self) -> LogFile:
        return self._with("train_time_ms")

    @property
    def scored_eval_ms(self) -> Located[float] | None:
        return scored_eval_ms(self.log.run, self.scored) if self.scored else None

    @property
    def all_eval_ms(self) -> Located[float] | None:
        return all_eval_ms(self.log.run)

    def loc(self, line: int | None) -> Location:
        return Location(self.log.rel, line)

    def row(self) -> dict[str, Any]:
        run = self.log.run
        tot = self.bytes_log.run.bytes_total
        tt = self.train_log.run.train_time_ms
        se = self.scored_eval_ms
        ae = self.all_eval_ms
        return {
            "seed": self.seed,
            "log": self.log.rel,
            "scored_phase": self.scored.name if self.scored else None,
            "scored_line": self.scored.line if self.scored else None,
            "val_bpb": self.scored.val_bpb if self.scored else None,
            "val_loss": self.scored.val_loss if self.scored else None,
            "bytes_total": tot.bytes if tot else None,
            "bytes_label": tot.label if tot else None,
            "train_s": round(tt.value / 1000.0, 3) if tt else None,
            "scored_eval_s": round(se.value / 1000.0, 3) if se else None,
            "all_eval_s": round(ae.value / 1000.0, 3) if ae else None,
            "steps": self.train_log.run.last_step,
            "world_size": run.world_size.value if run.world_size else None,
            "calibration_s": _sum_seconds(self.train_log.run.training_data_after_stop()),
            "serialize_s": max((t.seconds for t in self.bytes_log.run.timing("serialize")), default=None),
            "why_scored": self.choice.reason,
            "bytes_log": self.bytes_log.rel if self.bytes_log is not self.log else None,
            "train_log": self.train_log.rel if self.train_log is not self.log else None,
            "other_logs": [o.rel for o in self.others],
        }


def _sum_seconds(lines: list) -> float | None:
    return round(sum(t.seconds for t in lines), 3) if lines else None


@dataclass
class CheckContext:
    record: Record
    ruleset: Ruleset
    seeds: list[SeedFigures]
    claims: dict[int, SeedClaim]
    against: Baseline | None = None
    notes: list[str] = field(default_factory=list)
    choices: dict[str, ScoredChoice] = field(default_factory=dict)  # every log's own scored phase, by rel path
    # Set when only some of the claimed seeds were run (a reproduction spot check): why the
    # record-level rules are not evaluated.
    subset: str | None = None

    @property
    def byte_cap(self) -> int:
        """The track's byte cap (PG-BYTES-001's setting), for rules that judge whether a
        misreported figure hides a broken limit."""
        return int(self.ruleset.setting("PG-BYTES-001", "cap_bytes"))

    @property
    def tokenizer(self) -> TokenizerId:
        """The tokenizer the record's scored logs print (harness.checks.tokenizer)."""
        ordered = [s.log for s in self.counted] + list(self.record.logs)
        return tokenizer_of((lf.path.name, lf.run) for lf in ordered)

    @property
    def counted(self) -> list[SeedFigures]:
        """Seeds that count for claims and seed totals: known seed, with a score. A folder whose
        only scored logs print no seed (one `train.log`) counts those, so its claims are still
        checked; the seed-count rule sees them as seed None."""
        known = [s for s in self.seeds if s.seed is not None and s.scored is not None]
        return known or [s for s in self.seeds if s.scored is not None]

    def submission_loc(self, *keys: str) -> Location | None:
        """Where `"key":` is in submission.json (`keys`: a path into nested objects)."""
        r = self.record
        if r.submission_path is None:
            return None
        return Location(str(r.submission_path), r.submission_line(*keys))


def _as_int(x: Any) -> int | None:
    try:
        return int(str(x).strip())
    except (TypeError, ValueError):
        return None


def read_claims(record: Record) -> dict[int, SeedClaim]:
    """Per-seed claims from `seed_results` (a mapping seed -> figures, or a list of objects with
    a `seed`), or from `seeds` when that is a mapping. A bare number counts as `val_bpb`."""
    sub = record.submission
    out: dict[int, SeedClaim] = {}
    for key in ("seed_results", "seeds"):
        block = sub.get(key)
        items: list[tuple[Any, Any, str]] = []
        if isinstance(block, dict):
            items = [(k, v, f'{key}["{k}"]') for k, v in block.items()]
        elif isinstance(block, list) and key == "seed_results":
            items = [(v.get("seed"), v, f"{key}[{i}]") for i, v in enumerate(block) if isinstance(v, dict)]
        for raw_seed, v, source in items:
            seed = _as_int(raw_seed)
            if seed is None or seed in out:
                continue
            values = v if isinstance(v, dict) else {"val_bpb": v}
            out[seed] = SeedClaim(seed, values, source, record.submission_line(str(raw_seed)))
    return out


def claimed_seed_list(record: Record, claims: dict[int, SeedClaim]) -> list[int]:
    """Seeds the submission says it ran: `seeds` (list or mapping) and `seed_results` keys."""
    return sorted(set(claims) | claimed_seeds(record.submission))


def _top_claim(record: Record) -> float | None:
    return finite_number(record.submission.get("val_bpb"))


def build_context(record: Record, ruleset: Ruleset, against: Baseline | None = None) -> CheckContext:
    claims = read_claims(record)
    top = _top_claim(record)
    groups = record.by_seed
    single = len([s for s in groups if s is not None]) == 1 and not claims

    def claim_for(seed: int | None) -> tuple[float | None, str]:
        if seed is not None and seed in claims:
            c = claims[seed].number("val_bpb")
            if c is not None:
                return c, claims[seed].source
        if top is not None:
            return top, "submission val_bpb" + ("" if single else " (the record's headline figure)")
        return None, ""

    # First pass: each log's own choice; the primary log of a seed is the one matching its claim.
    first: dict[int | None, tuple[LogFile, ScoredChoice, list[LogFile]]] = {}
    per_log: dict[str, ScoredChoice] = {}
    for seed, logs in groups.items():
        claimed, source = claim_for(seed)
        choices = [(lf, choose_scored_phase(lf.run, claimed, source)) for lf in logs]
        per_log.update((lf.rel, ch) for lf, ch in choices)
        # Closest match to the claim first (a rerun may match it better than the first run).
        ranked = sorted(
            choices,
            key=lambda c: (not c[1].by_claim,
                           abs(c[1].phase.val_bpb - claimed) if c[1].by_claim and claimed is not None else 0.0,
                           c[1].phase is None,
                           not (c[0].filename_seed is not None and c[0].filename_seed == seed)),
        )
        lf, ch = ranked[0]
        first[seed] = (lf, ch, [o for o, _ in choices if o is not lf])
    matched = Counter(ch.phase.name for lf, ch, _ in first.values() if ch.by_claim and ch.phase)
    preferred = matched.most_common(1)[0][0] if matched else None

    seeds: list[SeedFigures] = []
    for seed, (lf, ch, others) in first.items():
        if not ch.by_claim and preferred:
            claimed, source = claim_for(seed)
            ch = choose_scored_phase(lf.run, claimed, source, preferred)
        claim = claims.get(seed) if seed is not None else None
        seeds.append(SeedFigures(seed, lf, others, ch, claim))
        per_log[lf.rel] = ch
    for seed, (lf, ch, others) in first.items():  # extra runs: their own phase, named like the seeds'
        for o in others:
            if not per_log[o.rel].by_claim and preferred:
                claimed, source = claim_for(seed)
                per_log[o.rel] = choose_scored_phase(o.run, claimed, source, preferred)
    seeds.sort(key=lambda s: (s.seed is None, s.seed if s.seed is not None else math.inf, s.log.rel))
    return CheckContext(record, ruleset, seeds, claims, against, choices=per_log)
