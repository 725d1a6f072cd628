"""Reproduce a record: seeds × runner -> per-seed results -> observation, checks, comparison, report.

Layout of the output folder (OUT):
    seed_<S>/work/                the record copied for that seed, with what the run wrote
    seed_<S>/train_seed<S>.log    everything the run printed, in arrival order
    seed_<S>/stamps_seed<S>.tsv   the same lines with the harness stamp: "<seconds>\t<stream>\t<text>"
    seed_<S>/result.json          written atomically when the seed is finished (ok, failed, timeout)
    seed_<S>/running.json         while it runs: its RUN_ID, so a resumed reproduction can kill
                                  anything a hard-killed harness left behind
    reproduced/                   the record's submission.json + the reproduced logs: `pgolf check`
                                  runs on this folder like on any record
    report.{txt,md,json}, plots/  the aggregated report

Resuming: a seed whose result.json exists (and was made from the same record and settings, by
fingerprint) is skipped; `force` redoes every seed. Ctrl-C stops the running seed's process
group and leaves the finished seeds' results in place.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import safe_read
from harness import atomic, records, stats
from harness.errors import InputError
from harness.findings import EvidenceStep, Finding, Location, Severity
from harness.logs import RunLog, parse_log
from harness.reproduce.observe import Budgets, RULES, budgets_for, finding, judge, log_text, observe, define_rule
from harness.progress import NullProgress, Progress
from harness.runners import proctable
from harness.runners.base import RunSpec, Runner
from harness.runners.local import LocalRunner
from harness.reproduce.claims import claimed_for_seed, scored_phase, load_claims, Claims

RESULT_SCHEMA = "pgolf.seed-result/1"
DEFAULT_TOLERANCE_BPB = 0.003

RUN_FAILED = define_rule("PG-REPRO-001", "run-failed", "CLAIMS", "error",
                   "The record's training script exited with an error when run as submitted.")
SEED_OFF = define_rule("PG-REPRO-002", "seed-not-reproduced", "CLAIMS", "error",
                 "The reproduced val_bpb of a seed differs from the claimed one by more than the tolerance.")
MEAN_OFF = define_rule("PG-REPRO-003", "mean-not-reproduced", "CLAIMS", "error",
                 "The mean reproduced val_bpb differs from submission.json val_bpb by more than the tolerance.")
NO_SCORE = define_rule("PG-REPRO-004", "no-score-printed", "CLAIMS", "error",
                 "The reproduced run printed no evaluation phase with a val_bpb to compare.")
NO_CLAIM = define_rule("PG-REPRO-005", "no-claim-for-seed", "CLAIMS", "note",
                 "Neither submission.json nor a log of the record gives this seed's val_bpb.")

@dataclass
class ReproConfig:
    record_dir: Path
    out_dir: Path
    seeds: list[int]
    data_path: str | None = None
    tokenizer_path: str | None = None
    vocab_size: int | None = None
    nproc: int = 1
    launcher: str = "torchrun"  # or "python": `python ENTRY`, for records that are not distributed
    entry: str = "train_gpt.py"
    tolerance: float = DEFAULT_TOLERANCE_BPB
    force: bool = False
    against: Path | None = None
    ruleset: str | None = None
    budgets: Budgets | None = None
    timeout_s: float | None = None  # overrides budgets.kill_after_s (tests, dry runs)
    env_extra: dict[str, str] = field(default_factory=dict)  # reported; only for records that need it
    runner: str = "local"  # the runner's name, part of the fingerprint (results of two runners never mix)
    inputs: dict[str, Any] | None = None  # what harness.reproduce.inputs established, or why it was skipped (reported)

    def resolved_budgets(self) -> Budgets:
        return self.budgets or budgets_for(self.record_dir, self.ruleset)

    def argv(self) -> tuple[str, ...]:
        """The command for a seed. On this machine (the local runner) the interpreter is the one
        running pgolf (`sys.executable`), and torchrun is that interpreter's own
        `python -m torch.distributed.run`: pgolf from a venv that is not activated (or a pipx
        install) has neither `python` with torch nor `torchrun` on PATH. In a container the image's
        own `python` / `torchrun` are meant, so other runners keep the bare names."""
        local = self.runner == "local"
        if self.launcher == "python":
            return (sys.executable if local else "python", self.entry)
        if self.launcher == "torchrun":
            if not local:
                return ()
            return (sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={self.nproc}",
                    self.entry)
        raise InputError(f"unknown launcher {self.launcher!r} (torchrun or python)")


# --- fingerprints and per-seed files ---------------------------------------------------------
def record_fingerprint(cfg: ReproConfig) -> str:
    """sha256 over the record's files and the settings that change a run (not the seed list)."""
    h = hashlib.sha256()
    for e in _record_files(cfg.record_dir):
        h.update(e.rel.encode() + b"\0" + _read_record_file(cfg.record_dir, e) + b"\0")
    settings = {"data": cfg.data_path, "tok": cfg.tokenizer_path, "vocab": cfg.vocab_size, "nproc": cfg.nproc,
                "launcher": cfg.launcher, "entry": cfg.entry, "env": cfg.env_extra,
                "runner": cfg.runner}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


# A record's own files, listed by the harness's one inventory (`records.list_folder`: links are
# entries, never followed, so a link to /proc/self/environ is neither hashed nor copied into the
# reproduced record) and each read capped before it happens.
RECORD_FILE_CAP = 64 << 20


def _record_files(record_dir) -> list[records.Listed]:
    return [e for e in records.list_folder(Path(record_dir))
            if e.kind == "file" and "__pycache__" not in e.rel.split("/")]


def _read_record_file(record_dir, e: records.Listed) -> bytes:
    try:
        return safe_read.read_under(record_dir, e.rel, RECORD_FILE_CAP)
    except safe_read.UnsafeRead as err:
        raise InputError(f"record file not readable as plain data ({err.reason})", str(Path(record_dir) / e.rel)) from None


def seed_dir(cfg: ReproConfig, seed: int) -> Path:
    return Path(cfg.out_dir) / f"seed_{seed}"


RESULT_CAP = 64 << 20  # a result holds a curve and findings: a few hundred KB at most


def load_result(cfg: ReproConfig, seed: int, fingerprint: str | None = None) -> dict[str, Any] | None:
    """The seed's finished result, None when there is none yet. The one reader of result.json, for a
    resumed reproduction and for the queue alike: read capped, never through a link, and an
    unreadable file, another schema or (given `fingerprint`) another record's result is an
    InputError naming the file: rerunning a seed over it would silently replace evidence."""
    p = seed_dir(cfg, seed) / "result.json"
    try:
        raw = safe_read.read_capped(p, RESULT_CAP)
    except safe_read.UnsafeRead as e:
        if e.reason == "missing":
            return None
        raise InputError(f"unreadable result ({e.reason}); remove it or use --force", str(p)) from None
    try:
        res = json.loads(raw)
    except ValueError as e:
        raise InputError(f"unreadable result ({e}); remove it or use --force", str(p)) from None
    if not isinstance(res, dict) or res.get("schema") != RESULT_SCHEMA:
        raise InputError(f"not a {RESULT_SCHEMA} result; remove it or use --force", str(p))
    if fingerprint is not None and res.get("fingerprint") != fingerprint:
        raise InputError(f"seed {seed} was reproduced from a different record or settings; "
                         "use --force to redo it or choose another --out", str(p))
    return res


def kill_leftovers(cfg: ReproConfig, seed: int) -> list[int]:
    """A harness killed hard (SIGKILL, power loss) cannot stop its run; the next one does, by the
    RUN_ID it gave the run (every process of the run carries it in its environment)."""
    marker = seed_dir(cfg, seed) / "running.json"
    if not marker.is_file():
        return []
    try:
        run_id = json.loads(marker.read_text())["run_id"]
    except (OSError, ValueError, KeyError):
        return []
    pids = proctable.with_env("RUN_ID", run_id)
    proctable.signal_all(pids, signal.SIGKILL)
    marker.unlink(missing_ok=True)
    return pids


# --- one seed --------------------------------------------------------------------------------
def seed_env(cfg: ReproConfig, seed: int, run_id: str) -> dict[str, str]:
    env = {"SEED": str(seed), "RUN_ID": run_id}
    if cfg.data_path:
        env["DATA_PATH"] = str(cfg.data_path)
    if cfg.tokenizer_path:
        env["TOKENIZER_PATH"] = str(cfg.tokenizer_path)
    if cfg.vocab_size:
        env["VOCAB_SIZE"] = str(cfg.vocab_size)
    env.update(cfg.env_extra)
    return env


def validation_curve(log: RunLog) -> list[list[float]]:
    """[step, val_bpb, val_loss, train_time_ms] for every step line that printed a validation."""
    return [[s.step, s.val_bpb, s.val_loss, s.train_time_ms] for s in log.steps if s.val_bpb is not None]


def stream_to(runner: Runner, handle: Any, partial: Path, progress: Progress) -> None:
    """Follow a run: each line to a live log (for `tail -f`) and to the progress display. Any
    interruption (Ctrl-C, SIGTERM, an error here) stops the run's processes before it propagates."""
    with open(partial, "w", encoding="utf-8") as live:
        try:
            for ln in runner.stream(handle):
                live.write(ln.text + "\n")
                live.flush()
                progress.line(ln)
        except BaseException:
            runner.stop(handle, "interrupt")
            runner.collect(handle)
            raise


def run_findings(outcome: Any, status: str, scored: bool, log_path: str) -> list[Finding]:
    """A run that crashed (with its last lines as evidence), or ran but printed no score."""
    if status == "failed":
        tail = [ln.text for ln in outcome.lines[-5:]]
        return [finding(RUN_FAILED, f"seed {outcome.seed}: exited with status {outcome.exit_code}", log_path=log_path,
                        line=len(outcome.lines) or None, evidence=[EvidenceStep(t) for t in tail],
                        exit_code=outcome.exit_code)]
    if status == "ok" and not scored:
        return [finding(NO_SCORE, f"seed {outcome.seed}: no evaluation phase with val_bpb was printed", log_path=log_path)]
    return []


def run_seed(cfg: ReproConfig, runner: Runner, seed: int, claims: Claims, fingerprint: str,
             progress: Progress, index: int, count: int) -> dict[str, Any]:
    budgets = cfg.resolved_budgets()
    sdir = seed_dir(cfg, seed)
    sdir.mkdir(parents=True, exist_ok=True)
    run_id = f"pgolf-{fingerprint[:10]}-seed{seed}-{os.getpid()}-{int(time.time())}"
    timeout = cfg.timeout_s if cfg.timeout_s is not None else budgets.kill_after_s
    spec = RunSpec(record_dir=Path(cfg.record_dir), workdir=sdir / "work", seed=seed,
                   env=seed_env(cfg, seed, run_id), nproc=cfg.nproc, entry=cfg.entry, timeout_s=timeout,
                   data_dir=Path(cfg.data_path) if cfg.data_path else None, argv=cfg.argv())
    prepared = runner.prepare(spec)
    atomic.write_json(sdir / "running.json", {"run_id": run_id, "seed": seed})
    progress.seed_started(seed, index, count, timeout)
    handle = runner.start(prepared)
    stream_to(runner, handle, sdir / f"train_seed{seed}.log.partial", progress)
    outcome = runner.collect(handle)
    log_name = f"train_seed{seed}.log"
    text = log_text(outcome.lines)
    atomic.write_text(sdir / log_name, text)
    atomic.write_text(sdir / f"stamps_seed{seed}.tsv",
                      "".join(ln.tsv() for ln in outcome.lines))
    (sdir / f"{log_name}.partial").unlink(missing_ok=True)
    log = parse_log(text)
    obs, _ = observe(outcome, Path(cfg.record_dir), log)
    claimed = claimed_for_seed(claims, seed)
    phase, why = scored_phase(log, claimed["val_bpb"], claims.scored_name)
    log_path = str(sdir / log_name)
    status = "timeout" if outcome.timed_out else ("ok" if outcome.exit_code == 0 else "failed")
    findings = judge(obs, log, outcome, budgets, log_path, scored_phase=phase.name if phase else None)
    findings += run_findings(outcome, status, phase is not None, log_path)
    reproduced: dict[str, Any] = {"reason": why}
    if phase is not None:
        reproduced.update(phase=phase.name, line=phase.line, val_bpb=phase.val_bpb, val_loss=phase.val_loss)
    result = {
        "schema": RESULT_SCHEMA, "seed": seed, "status": status, "fingerprint": fingerprint, "run_id": run_id,
        "runner": outcome.runner, "command": outcome.details.get("command"),
        "runner_details": {k: v for k, v in outcome.details.items() if k in ("image", "image_tag", "user", "network")},
        "env_set": outcome.details.get("env_set"), "env_added": outcome.details.get("env_added"),
        "started_utc": outcome.started_utc, "started_monotonic": outcome.details.get("started_monotonic"),
        "wall_seconds": outcome.wall_seconds, "exit_code": outcome.exit_code,
        "stop_reason": outcome.stop_reason, "timeout_s": timeout,
        "log": f"seed_{seed}/{log_name}", "stamps": f"seed_{seed}/stamps_seed{seed}.tsv",
        "observed": obs.to_dict(), "reproduced": reproduced, "claimed": claimed,
        "curve": validation_curve(log),
        "written": outcome.details.get("written", outcome.details.get("files_written", [])),
        "leftovers_killed": outcome.details.get("leftovers_killed", []),
        "findings": [f.to_dict() for f in findings],
    }
    atomic.write_json(sdir / "result.json", result)
    (sdir / "running.json").unlink(missing_ok=True)
    bpb = f"val_bpb {phase.val_bpb:.4f}" if phase else "no score"
    progress.seed_finished(seed, status, bpb + (f" (claimed {claimed['val_bpb']:.4f})" if claimed["val_bpb"] else ""))
    return result


# --- the whole reproduction ------------------------------------------------------------------
def finding_from_dict(d: dict[str, Any]) -> Finding:
    loc = d.get("location")
    return Finding(d["id"], Severity(d["severity"]), d["message"], d.get("condition", "PARSE"),
                   Location(**loc) if loc else None,
                   tuple(EvidenceStep(e["message"], Location(**e["location"]) if e.get("location") else None)
                         for e in d.get("evidence", [])),
                   d.get("confidence", "high"), bool(d.get("undecided")), d.get("data", {}))


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def check_paths(cfg: ReproConfig) -> None:
    """The record folder exists and has its entry script; the output folder is outside it. Checked
    before anything runs or is queued."""
    if not Path(cfg.record_dir).is_dir():
        raise InputError("no such record folder", str(cfg.record_dir))
    if not (Path(cfg.record_dir) / cfg.entry).is_file():
        raise InputError(f"the record has no {cfg.entry} to run", str(cfg.record_dir))
    if Path(cfg.out_dir).resolve().is_relative_to(Path(cfg.record_dir).resolve()):
        raise InputError("the output folder is inside the record folder (each seed copies the record); "
                         "choose an --out outside it", str(cfg.out_dir))


def run_seeds(cfg: ReproConfig, runner: Runner | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run (or resume) every seed; returns their results in seed order."""
    runner = runner or LocalRunner()
    own_progress = progress is None  # a caller's progress display is the caller's to close
    progress = progress or NullProgress()
    check_paths(cfg)
    fingerprint = record_fingerprint(cfg)
    claims = load_claims(Path(cfg.record_dir))
    results: list[dict[str, Any]] = []
    main = threading.current_thread() is threading.main_thread()  # signals can only be set there
    old = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if main else None
    try:
        for i, seed in enumerate(cfg.seeds, 1):
            kill_leftovers(cfg, seed)
            res = None if cfg.force else load_result(cfg, seed, fingerprint)
            if res is not None:
                progress.seed_skipped(seed, i, len(cfg.seeds), res["status"])
            else:
                res = run_seed(cfg, runner, seed, claims, fingerprint, progress, i, len(cfg.seeds))
            results.append(res)
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)
        if own_progress:
            progress.close()
    return results


def assemble_reproduced_record(cfg: ReproConfig, results: list[dict[str, Any]]) -> Path:
    """A record folder made of the record's submission.json, README and code, and the reproduced
    logs in place of the submitted ones, so `pgolf check` judges the reproduction like any record."""
    dst = Path(cfg.out_dir) / "reproduced"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for e in _record_files(cfg.record_dir):
        if e.rel in ("submission.json", "README.md") or e.rel.endswith(".py"):
            (dst / e.rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / e.rel).write_bytes(_read_record_file(cfg.record_dir, e))
    for r in results:
        shutil.copyfile(Path(cfg.out_dir) / r["log"], dst / Path(r["log"]).name)
    return dst


def compare_seed(cfg: ReproConfig, r: dict[str, Any], claims: Claims) -> list[Finding]:
    """Claimed vs reproduced for one seed, judged at report time (tolerance and claims may change
    between resumes; the runs do not). Updates r["claimed"] and r["delta_bpb"]."""
    seed, rep = r["seed"], r["reproduced"]
    r["claimed"] = claimed = claimed_for_seed(claims, seed)
    r["delta_bpb"] = None
    log_path = str(Path(cfg.out_dir) / r["log"])
    if rep.get("val_bpb") is None:
        return []
    if claimed["val_bpb"] is None:
        return [finding(NO_CLAIM, f"seed {seed}: no claimed val_bpb for this seed to compare with", log_path=log_path)]
    delta = r["delta_bpb"] = rep["val_bpb"] - claimed["val_bpb"]
    if abs(delta) <= cfg.tolerance + 1e-12:
        return []
    return [finding(SEED_OFF, f"seed {seed}: reproduced val_bpb {rep['val_bpb']:.6f} vs claimed {claimed['val_bpb']:.6f} "
                    f"({delta:+.6f}, tolerance ±{cfg.tolerance})", log_path=log_path, line=rep.get("line"),
                    reproduced=rep["val_bpb"], claimed=claimed["val_bpb"], delta=delta, tolerance=cfg.tolerance,
                    claim_source=claimed["source"])]


def aggregate(cfg: ReproConfig, results: list[dict[str, Any]], claims: Claims,
              not_reproduced: str | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """Per seed: reproduced vs its own claim. Over the seeds: the mean vs `val_bpb` — only when
    every claimed seed was run and reproduced; a reproduction of some seeds, or one where seeds
    were lost on the way (`not_reproduced` says which), says the mean was not evaluated."""
    findings: list[Finding] = []
    subset = claims.subset([r["seed"] for r in results])
    not_judged = f"subset of seeds ({subset})" if subset else not_reproduced
    for r in results:
        findings.extend(compare_seed(cfg, r, claims))
    scored = [r for r in results if r["reproduced"].get("val_bpb") is not None]
    bpbs = [r["reproduced"]["val_bpb"] for r in scored]
    losses = [r["reproduced"]["val_loss"] for r in scored if r["reproduced"].get("val_loss") is not None]
    agg: dict[str, Any] = {"n": len(results), "n_scored": len(scored),
                           "mean_bpb": stats.mean(bpbs) if bpbs else None,
                           "std_bpb": stats.std(bpbs) if bpbs else None,
                           "mean_loss": stats.mean(losses) if losses else None,
                           "claimed_mean_bpb": claims.mean_bpb, "tolerance": cfg.tolerance, "subset": subset}
    if agg["std_bpb"] is not None and math.isnan(agg["std_bpb"]):
        agg["std_bpb"] = None
    if not_judged and claims.mean_bpb is not None:
        findings.append(finding(MEAN_OFF, f"not evaluated: {not_judged}", severity=Severity.NOTE,
                                log_path=claims.submission_path, line=claims.mean_line, not_evaluated=subset or not_judged))
    elif bpbs and claims.mean_bpb is not None:
        agg["delta_mean_bpb"] = agg["mean_bpb"] - claims.mean_bpb
        if abs(agg["delta_mean_bpb"]) > cfg.tolerance + 1e-12:
            findings.append(finding(
                MEAN_OFF, f"mean reproduced val_bpb {agg['mean_bpb']:.6f} over {len(bpbs)} seed(s) vs claimed "
                f"{claims.mean_bpb} ({agg['delta_mean_bpb']:+.6f}, tolerance ±{cfg.tolerance})",
                log_path=claims.submission_path, line=claims.mean_line,
                reproduced=agg["mean_bpb"], claimed=claims.mean_bpb))
    return agg, findings


def rules_table() -> list[dict[str, str]]:
    return [{"id": r.rule_id, "name": r.name, "condition": r.condition, "severity": r.severity.value,
             "rationale": r.rationale} for r in RULES.values()]
