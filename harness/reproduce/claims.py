"""What a record claims, per seed, for a reproduction to compare against.

A seed's claimed `val_bpb` is its `submission.json` entry (`seed_results`), else the scored phase
of the record's own log for that seed (chosen exactly as `pgolf check` chooses it), else none.
The same reading gives a baseline record's per-seed `val_loss` for the significance test.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.context import build_context, claimed_seed_list, finite_number, read_claims
from harness.checks.scored import choose_scored_phase
from harness.checks.tokenizer import TokenizerId
from harness.errors import InputError
from harness.logs import EvalPhase, RunLog
from harness.records import Record, load_record
from harness.rulesets import load_ruleset, ruleset_for_track


@dataclass
class Claims:
    record_dir: Path
    track: str | None = None
    per_seed_bpb: dict[int, tuple[float, str]] = field(default_factory=dict)
    per_seed_loss: dict[int, float | None] = field(default_factory=dict)
    curves: dict[int, list[list[float]]] = field(default_factory=dict)  # seed -> [step, bpb, loss, ms]
    scored_name: str | None = None  # the phase the record's own logs score (most common name)
    mean_bpb: float | None = None
    mean_line: int | None = None
    submission_path: str | None = None
    seeds: list[int] = field(default_factory=list)  # the seeds the record claims (submission.json, else its logs)
    tokenizer: TokenizerId = field(default_factory=TokenizerId)  # what the record's logs print about it

    def subset(self, run: list[int]) -> str | None:
        """Why a reproduction of `run` is a subset of the claimed seeds (None when it covers them)."""
        missing = [s for s in self.seeds if s not in run]
        if not self.seeds or not missing:
            return None
        return f"ran {', '.join(map(str, run))} of the claimed {', '.join(map(str, self.seeds))}"


def _submission_only(folder: Path) -> Record | None:
    """A record folder without logs still has claims in its submission.json."""
    from harness.records import _track, load_submission  # the loader's own readers

    sub, path, text = load_submission(folder)
    if not sub:
        return None
    track, source = _track(folder, sub)
    return Record(path=folder, track=track, track_source=source, submission=sub, submission_path=path,
                  submission_text=text)


def load_claims(record_dir: Path) -> Claims:
    out = Claims(Path(record_dir))
    try:
        record: Record | None = load_record(record_dir)
    except InputError as e:
        if "no train logs" not in str(e):
            raise
        record = _submission_only(Path(record_dir))
    if record is None:
        return out
    out.track = record.track
    v = finite_number(record.submission.get("val_bpb"))
    if v is not None:
        out.mean_bpb = v
        out.mean_line = record.submission_line("val_bpb")
    out.submission_path = str(record.submission_path) if record.submission_path else None
    claims = read_claims(record)
    out.seeds = claimed_seed_list(record, claims)
    for seed, c in claims.items():
        n = c.number("val_bpb")
        if n is not None:
            out.per_seed_bpb[seed] = (n, f"submission.json {c.source}")
    if record.logs:
        ctx = build_context(record, load_ruleset(ruleset_for_track(record.track)))
        out.tokenizer = ctx.tokenizer
        out.seeds = out.seeds or sorted(s.seed for s in ctx.counted if s.seed is not None)
        names = Counter(s.scored.name for s in ctx.seeds if s.scored is not None)
        out.scored_name = names.most_common(1)[0][0] if names else None
        for s in ctx.seeds:
            if s.seed is None:
                continue
            out.curves[s.seed] = [[x.step, x.val_bpb, x.val_loss, x.train_time_ms] for x in s.log.run.steps
                                  if x.val_bpb is not None]
            if s.scored is not None:
                out.per_seed_loss[s.seed] = s.scored.val_loss
                out.per_seed_bpb.setdefault(s.seed, (s.scored.val_bpb, f"{s.log.rel}:{s.scored.line}"))
    return out


def claimed_for_seed(claims: Claims, seed: int) -> dict[str, Any]:
    if seed in claims.per_seed_bpb:
        v, src = claims.per_seed_bpb[seed]
        return {"val_bpb": v, "source": src}
    return {"val_bpb": None, "source": None}


def scored_phase(log: RunLog, claimed_bpb: float | None, record_phase: str | None = None) -> tuple[EvalPhase | None, str]:
    """The reproduced log's scored phase: the check's choice, guided by the seed's claim, else the
    phase the record's own logs score (a reproduction rarely matches a claim to the last digit)."""
    choice = choose_scored_phase(log, claimed_bpb, "claimed", record_phase)
    return choice.phase, choice.reason
