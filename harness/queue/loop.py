"""Run a queue to the end: submit, follow, resubmit once after a cluster failure, settle, report.

Nothing here is kept only in memory. Per seed, on shared storage:
    OUT/seed_<S>/result.json          written by the job (or, for a job that died without one,
                                      by this loop from the job's journal): the seed is finished
    OUT/slurm/seed_<S>/jobs.json      every submission: token, job id, how it ended
    OUT/slurm/seed_<S>/journal-<id>.tsv, started-<id>.json, slurm-<id>.out   written by the job
A restarted harness rebuilds its state from these files and Slurm's answers, and follows the
jobs it had submitted (it never submits a seed that has a live job or a result).

How a job that ended without a result is settled (`harness.runners.slurm.END_RULES`):
- NODE_FAIL, PREEMPTED, BOOT_FAIL, or unknown to Slurm: the cluster's failure, not the
  submission's: resubmitted once (PG-SLURM-001 in the report); a second loss reads "lost"
  (PG-SLURM-002, REVIEW);
- TIMEOUT: Slurm killed it at its time limit: the seed reads TIMEOUT (PG-TIME-106, PG-SLURM-005);
- CANCELLED: scancel from outside, or `pgolf queue --cancel`: "cancelled" (PG-SLURM-003, REVIEW);
- FAILED and the rest: "failed" (PG-SLURM-004, REVIEW), with the job's output as evidence.
A seed whose run exited nonzero or broke a limit wrote its own result: it is never retried.
Before settling, the loop waits `settle_grace_s` for a result written just before the job ended
to become visible (network file systems cache directory entries).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.safe_read import UnsafeRead, read_tail
from harness import atomic
from harness.findings import EvidenceStep, Finding
from harness.queue.config import ClusterConfig
from harness.queue.plan import RecordEntry
from harness.reproduce.observe import define_rule, finding
from harness.reproduce.seeds import load_result
from harness.runners.base import StampedLine
from harness.runners.slurm import (END_RULES, MAX_RETRIES, SeedJob, SlurmHandle, SlurmRunner, end_rule,
                                   load_attempts, save_attempts)

RESUBMITTED = define_rule("PG-SLURM-001", "seed-resubmitted", "CLAIMS", "note",
                          "The seed's job was lost to the cluster (node failure, preemption) and resubmitted once.")
LOST = define_rule("PG-SLURM-002", "seed-lost", "CLAIMS", "warning",
                   "The seed's job was lost to the cluster twice: the seed was not reproduced.")
CANCELLED = define_rule("PG-SLURM-003", "seed-cancelled", "CLAIMS", "warning",
                        "The seed's job was cancelled before it wrote a result: the seed was not reproduced.")
NO_RESULT = define_rule("PG-SLURM-004", "job-ended-without-result", "CLAIMS", "warning",
                        "The seed's job ended without writing a result; its Slurm output says why.")
INCOMPLETE = define_rule("PG-SLURM-006", "reproduction-incomplete", "CLAIMS", "warning",
                         "Some seeds were not reproduced (cancelled, lost, or their job failed outside the run): "
                         "the record's claims are not judged on the others alone.")
SLURM_TIMEOUT = define_rule("PG-SLURM-005", "slurm-time-limit", "TIME", "note",
                            "Slurm killed the seed's job at its time limit (the rule set's deadline + a margin).")

TERMINAL = ("ok", "failed", "timeout", "cancelled", "lost")


@dataclass
class SeedTrack:
    """What the loop knows of one seed right now (rebuilt from disk on every start)."""

    entry: RecordEntry
    job: SeedJob
    handle: SlurmHandle | None = None
    status: str = "queued"  # queued, pending, running, then one of TERMINAL
    result: dict[str, Any] | None = None
    ended_seen: float | None = None  # monotonic time a finished job without result was first seen
    last_line: StampedLine | None = None
    first_line_unix: float | None = None

    @property
    def key(self) -> str:
        return f"{self.entry.name} seed {self.job.seed}"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def started_unix(self) -> float | None:
        return self.handle.journal.start_unix if self.handle else None


@dataclass
class QueueRun:
    """The loop's options; `cancel` scancels every live job first, `wait` False only submits."""

    poll_s: float = 1.0
    state_poll_s: float = 5.0
    settle_grace_s: float = 20.0
    cancel: bool = False
    wait: bool = True
    with_plots: bool = True
    reports: dict[str, Any] = field(default_factory=dict)  # entry.out -> Report, once written


def mark_attempt(job: SeedJob, job_id: str, **facts: Any) -> None:
    attempts = load_attempts(job.slurm_dir)
    for a in attempts:
        if str(a.get("job_id")) == job_id:
            a.update(facts)
    save_attempts(job.slurm_dir, attempts)


def retries_used(job: SeedJob) -> int:
    return sum(1 for a in load_attempts(job.slurm_dir)[:-1] if end_rule(a.get("end_state", "")).retry)


# --- settling a job that left no result -------------------------------------------------------
def settle(runner: SlurmRunner, t: SeedTrack) -> dict[str, Any]:
    """Write the seed's result from the job's journal with the same code as every other seed
    (`run_seed` over a replayed outcome), then say what Slurm did in place of the run's exit."""
    from harness.progress import NullProgress
    from harness.reproduce.claims import load_claims
    from harness.reproduce.seeds import run_seed
    from harness.runners.slurm_journal import ReplayRunner

    h = t.handle
    assert h is not None and h.state is not None
    rule = end_rule(h.state.state)
    outcome = runner.collect(h)
    cfg = t.job.cfg
    res = run_seed(cfg, ReplayRunner(outcome), t.job.seed, load_claims(Path(cfg.record_dir)), t.job.fingerprint,
                   NullProgress(), 1, 1)
    status = "lost" if rule.retry else rule.status
    out_file = h.out_path
    try:  # the job's output file: the run may write to it, so its end is read capped
        tail = read_tail(out_file.parent, out_file.name, 64 << 10).decode("utf-8", "replace").splitlines()[-5:]
    except UnsafeRead:
        tail = []
    where = f"job {h.job_id}" + (f" on {h.state.node}" if h.state.node else "")
    cancel_by = next((a.get("cancel_requested") for a in load_attempts(t.job.slurm_dir)
                      if str(a.get("job_id")) == h.job_id and a.get("cancel_requested")), None)
    log = str(out_file)
    if status == "timeout":
        extra = finding(SLURM_TIMEOUT, f"seed {t.job.seed}: {where} ended TIMEOUT: Slurm killed it at its time limit of "
                        f"{t.job.time_limit_s or 0:.0f} s before it wrote a result", log_path=log,
                        job_id=h.job_id, state=h.state.state)
    elif status == "cancelled":
        who = f"by `{cancel_by}`" if cancel_by else "from outside pgolf (scancel by a user or an administrator)"
        extra = finding(CANCELLED, f"seed {t.job.seed}: {where} was cancelled {who} before it wrote a result; "
                        "the seed was not reproduced", log_path=log, undecided=True, job_id=h.job_id, by=cancel_by)
    elif status == "lost":
        extra = finding(LOST, f"seed {t.job.seed}: {where} ended {h.state.state} ({rule.says}) after the seed had been "
                        f"resubmitted {MAX_RETRIES} time(s); not retried again, the seed was not reproduced",
                        log_path=log, undecided=True, job_id=h.job_id, state=h.state.state)
    else:
        extra = finding(NO_RESULT, f"seed {t.job.seed}: {where} ended {h.state.state}"
                        f"{' (exit ' + h.state.exit_code + ')' if h.state.exit_code else ''}: {rule.says}; see {out_file.name}",
                        log_path=log, undecided=True, evidence=[EvidenceStep(x) for x in tail], job_id=h.job_id,
                        state=h.state.state)
    if status != "timeout":  # the run did not exit on its own: no exit status to blame it for
        res["findings"] = [f for f in res["findings"] if f["id"] != "PG-REPRO-001"]
    res["status"] = status
    res["findings"].append(extra.to_dict())
    res["slurm_settled"] = {"job_id": h.job_id, "state": h.state.state, "node": h.state.node, "rule": rule.says}
    atomic.write_json(t.job.result_path, res)
    return res


def slurm_findings(job: SeedJob) -> list[Finding]:
    """What the report says about the seed's submissions: each resubmission and why."""
    out: list[Finding] = []
    attempts = load_attempts(job.slurm_dir)
    for prev, nxt in zip(attempts, attempts[1:]):
        rule = END_RULES.get(prev.get("end_state", ""))
        if rule is None or not rule.retry:
            continue
        node = f" on {prev['end_node']}" if prev.get("end_node") else ""
        out.append(finding(RESUBMITTED, f"seed {job.seed}: job {prev.get('job_id')}{node} ended {prev['end_state']} "
                           f"({rule.says}); resubmitted once as job {nxt.get('job_id')}",
                           log_path=str(job.slurm_dir / "jobs.json"), first_job=prev.get("job_id"),
                           state=prev["end_state"], second_job=nxt.get("job_id")))
    for a in attempts:
        started = job.slurm_dir / f"started-{a.get('job_id')}.json"
        try:
            restarts = int(json.loads(started.read_text()).get("restart_count", 0))
        except (OSError, ValueError):
            continue
        if restarts:
            out.append(finding(RESUBMITTED, f"seed {job.seed}: job {a.get('job_id')} was requeued by Slurm "
                               f"({restarts} restart(s)); counted as its one resubmission", log_path=str(started)))
    return out


# --- the loop -------------------------------------------------------------------------------
def build_tracks(entries: list[RecordEntry], runner: SlurmRunner, force: bool = False) -> list[SeedTrack]:
    tracks: list[SeedTrack] = []
    for e in entries:
        for job in e.jobs():
            t = SeedTrack(e, job)
            t.result = None if force else load_result(job.cfg, job.seed, job.fingerprint)
            if t.result is not None:
                t.status = t.result["status"]
            elif not force:
                t.handle = runner.reattach(job)
                t.status = "pending" if t.handle else "queued"
            tracks.append(t)
    return tracks


def submit(runner: SlurmRunner, t: SeedTrack) -> None:
    t.handle = runner.start(runner.prepare(t.job))
    t.status, t.ended_seen, t.last_line, t.first_line_unix = "pending", None, None, None


def write_record_report(entry: RecordEntry, tracks: list[SeedTrack], with_plots: bool) -> Any:
    from harness.reproduce.report import build_report, write_report

    cfg = entry.report_cfg()
    ordered = sorted(tracks, key=lambda t: entry.seeds.index(t.job.seed))
    results = []
    for t in ordered:
        r = dict(t.result or {})
        r["findings"] = list(r.get("findings", [])) + [f.to_dict() for f in slurm_findings(t.job)]
        results.append(r)
    # seeds the cluster lost: the record is not judged on the seeds that happened to finish
    missing = {t.job.seed: t.status for t in ordered if t.status in ("cancelled", "lost")
               or (t.status == "failed" and (t.result or {}).get("slurm_settled"))}
    report = build_report(cfg, results, with_plots=with_plots, missing=missing)
    if missing:
        report.findings.append(finding(
            INCOMPLETE, f"{report.data['not_reproduced']}: the checks on the reproduced logs and the mean against "
            f"the claim are not judged; requeue the record with --force to redo it", log_path=str(entry.out),
            undecided=True, seeds=list(missing)))
    report.data["slurm"] = {"seeds": {str(t.job.seed): load_attempts(t.job.slurm_dir) for t in tracks},
                            "gpus": entry.gpus, "time_limit_s": entry.time_limit_s, "runner_in_job": entry.inner}
    write_report(report, Path(entry.out))
    return report


def step(runner: SlurmRunner, tracks: list[SeedTrack], opts: QueueRun, view: Any, refresh_states: bool) -> None:
    """One pass: new lines, finished results, Slurm states, settlements and resubmissions."""
    live = [t for t in tracks if not t.terminal and t.handle is not None]
    if refresh_states and live:
        runner.refresh([t.handle for t in live])
    for t in live:
        h = t.handle
        for ln in runner.poll(h):
            if t.first_line_unix is None and h.journal.start_unix is not None:
                t.first_line_unix = h.journal.start_unix + ln.t
            t.last_line = ln
        res = load_result(t.job.cfg, t.job.seed, t.job.fingerprint)
        if res is not None:
            mark_attempt(t.job, h.job_id, collected_unix=time.time())
            t.result, old = res, t.status
            t.status = res["status"]
            view.changed(t, old)
            continue
        if h.state is None:
            continue
        old = t.status
        if h.state.active:
            t.status = "running" if h.state.state in ("RUNNING", "COMPLETING", "CONFIGURING") else "pending"
            t.ended_seen = None
        elif t.ended_seen is None:
            t.ended_seen = time.monotonic()
        elif time.monotonic() - t.ended_seen >= opts.settle_grace_s:
            rule = end_rule(h.state.state)
            mark_attempt(t.job, h.job_id, end_state=h.state.state, end_node=h.state.node, end_seen_unix=time.time())
            if rule.retry and retries_used(t.job) < MAX_RETRIES:
                view.message(f"{t.key}: job {h.job_id} ended {h.state.state} ({rule.says}): resubmitting once")
                submit(runner, t)
                view.message(f"{t.key}: resubmitted as job {t.handle.job_id}")
            else:
                t.result = settle(runner, t)
                t.status = t.result["status"]
        if t.status != old:
            view.changed(t, old)


def run_queue(entries: list[RecordEntry], cluster: ClusterConfig, view: Any, opts: QueueRun,
              runner: SlurmRunner | None = None, force: bool = False) -> list[SeedTrack]:
    """Submit what has neither a job nor a result, follow everything to the end, write each
    record's report as soon as its last seed is finished. Ctrl-C leaves the jobs running."""
    runner = runner or SlurmRunner(cluster)
    tracks = build_tracks(entries, runner, force)
    if opts.cancel:
        live = [t.handle for t in tracks if t.handle is not None and not t.terminal]
        runner.refresh(live)
        ids = runner.cancel(live)
        view.message(f"cancelled {len(ids)} job(s): {' '.join(ids) or 'none running'}")
    else:
        for t in tracks:
            if t.status == "queued":
                submit(runner, t)
                view.changed(t, "queued")
    view.start(tracks)
    last_state = 0.0
    reported: set[str] = set()
    while True:
        now = time.monotonic()
        fresh = now - last_state >= opts.state_poll_s
        if fresh:
            last_state = now
        step(runner, tracks, opts, view, fresh)
        for e in entries:
            mine = [t for t in tracks if t.entry is e]
            if e.out not in reported and all(t.terminal for t in mine):
                opts.reports[e.out] = write_record_report(e, mine, opts.with_plots)
                reported.add(e.out)
                view.reported(e, opts.reports[e.out])
        view.tick(tracks)
        # after --cancel, seeds never submitted stay so: nothing to wait for
        if all(t.terminal or (opts.cancel and t.status == "queued") for t in tracks) or not opts.wait:
            break
        time.sleep(opts.poll_s)
    return tracks
