"""Observation: what a reproduction saw with its own clock and on disk, against what the run printed.

The harness stamped every output line on arrival (`harness.runners`). From those stamps and the
parsed log (`harness.logs`, whose figures keep their line numbers) this module finds when
training stopped and when each evaluation phase ended, measures train and eval wall-clock, and
measures the artifact file and the code on disk. Disagreements become Findings (PG-TIME-1xx,
PG-BYTES-1xx; the 00x ids belong to `pgolf check`, which reads only what was printed).

How train time is observed. Upstream loops pause their timer while validating, and print the
validation step line right after the pause; so between two consecutive timed lines the printed
`train_time` advance should match the stamped advance, except for segments that end on a
validation line. The comparison uses only those clean segments (ratio = printed / stamped);
with none, it falls back to the whole span and marks the finding undecided (validation pauses
could explain it). The observed train time is the printed one divided by that ratio.

How training-data reads are judged. The runner records, by the harness clock, every open and
read of a training shard it could see (`harness.runners.dataaccess`: inotify from outside, an
audit hook inside). The training budget runs from the moment the training clock starts — the
stamp of the first timed training line minus the train_time it prints — for the train budget
plus the one-step grace. A read before that start (warm-up, compilation) is allowed; a read after
its end is training over budget (PG-TIME-108), whatever the loop printed.

How eval time is observed. An eval phase ends when its result line arrives; it began at the
previous boundary: the stop line, a size line, or the previous phase line (not a line printing
the same result, such as a TTT `done` line before its `legal_ttt` line). The evaluation as a
whole runs from the training stop to the last phase line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.findings import EvidenceStep, Finding, Location, Severity
from harness.logs import RunLog, parse_log
from harness.runners.base import RunOutcome, StampedLine


# --- budgets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budgets:
    """Limits a reproduction enforces by observation (seconds, bytes)."""

    train_s: float = 600.0
    eval_s: float = 600.0
    grace_s: float = 30.0  # added to train + eval before the harness kills a run
    train_grace_s: float = 1.0  # the loop checks its cap after each step (rules.md)
    byte_cap: int = 16_000_000
    time_tolerance: float = 0.05  # a printed time more than 5% below the observed one is flagged
    time_slack_s: float = 0.5  # ...and more than this many seconds below (pipe/scheduler jitter)
    track: str = "track_10min_16mb"

    @property
    def kill_after_s(self) -> float:
        return self.train_s + self.eval_s + self.grace_s


def budgets_for(record_dir: Path | None = None, ruleset: str | None = None) -> Budgets:
    """The budgets of a record's rule set (`harness/rulesets/*.yaml`, chosen from the record's
    track or named by `ruleset`); the single place that reads them. A rule set without a time
    check (the non-record track) gives unlimited time; `kill_grace_seconds` may be set in a rule
    set, else 30 s."""
    from harness.records import _track, load_submission
    from harness.rulesets import load_ruleset, ruleset_for_track

    if ruleset is None:
        track = None
        if record_dir is not None and Path(record_dir).is_dir():
            try:
                track, _ = _track(Path(record_dir), load_submission(Path(record_dir))[0])
            except Exception:  # a bad submission.json is reported by the checks, not here
                track = None
        ruleset = ruleset_for_track(track)
    rs = load_ruleset(ruleset)
    d = Budgets()
    train, scored, cap = rs.params("PG-TIME-001"), rs.params("PG-TIME-002"), rs.params("PG-BYTES-001")
    return Budgets(
        train_s=float(getattr(train, "limit_seconds", float("inf"))) if train else float("inf"),
        eval_s=float(getattr(scored, "limit_seconds", float("inf"))) if scored else float("inf"),
        grace_s=float(rs.extra.get("kill_grace_seconds", d.grace_s)),
        train_grace_s=float(getattr(train, "grace_max_seconds", d.train_grace_s)) if train else d.train_grace_s,
        byte_cap=int(getattr(cap, "cap_bytes", d.byte_cap)) if cap else d.byte_cap,
        track=rs.track or rs.name,
    )


# --- rules -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObsRule:
    rule_id: str
    name: str
    condition: str
    severity: Severity
    rationale: str


RULES: dict[str, ObsRule] = {}


def define_rule(rule_id: str, name: str, condition: str, severity: str, rationale: str) -> ObsRule:
    if rule_id in RULES:
        raise ValueError(f"observation rule {rule_id} defined twice")
    RULES[rule_id] = r = ObsRule(rule_id, name, condition, Severity(severity), rationale)
    return r


TRAIN_UNDERSTATED = define_rule(
    "PG-TIME-101", "train-time-understated", "TIME", "error",
    "The printed train_time advanced more than 5% slower than the harness clock over training "
    "segments without validation: the run's own timer under-reports (rules.md, Timing).")
TRAIN_OVER = define_rule(
    "PG-TIME-102", "observed-train-over-budget", "TIME", "error",
    "Training observed by the harness clock exceeded the train budget plus one-step grace.")
EVAL_UNDERSTATED = define_rule(
    "PG-TIME-103", "eval-time-understated", "TIME", "warning",
    "An evaluation phase printed an eval_time more than 5% below the time the harness saw it "
    "take (e.g. untimed compilation or loading before its timer started).")
SCORED_EVAL_OVER = define_rule(
    "PG-TIME-104", "observed-scored-eval-over-budget", "TIME", "error",
    "The scored evaluation phase took longer than the eval budget by the harness clock.")
EVAL_OVER = define_rule(
    "PG-TIME-105", "observed-evaluation-over-budget", "TIME", "warning",
    "From the training stop to the last evaluation line took longer than the eval budget.")
TIMED_OUT = define_rule(
    "PG-TIME-106", "run-timed-out", "TIME", "error",
    "The harness killed the run at train budget + eval budget + grace.")
NO_STOP = define_rule(
    "PG-TIME-107", "training-stop-not-seen", "TIME", "note",
    "No timed training line was seen, so training time could not be observed.")
DATA_AFTER_BUDGET = define_rule(
    "PG-TIME-108", "training-data-read-after-budget", "TIME", "error",
    "Training data may only be touched inside the training budget (rules.md, Timing; the organizers' "
    "PR #1868 compliance re-run moved GPTQ Hessian collection on training shards inside the 600 s with "
    "GPTQ_RESERVE_SECONDS). The budget is counted from the moment the training clock starts — by the "
    "harness clock, the stamp of the first timed training line minus the train_time it prints — and "
    "ends the train budget plus the one-step grace later (600 + 1 s on the record track). Reads of "
    "training shards before the clock starts (warm-up, compilation) are allowed; a read after the end, "
    "such as calibration on training shards once the loop has stopped, is training over budget — "
    "unless it still falls within the budget from the training start, as in the #1868 re-run. Seen by "
    "the kernel (inotify on the data folder) or by pgolf's audit hook in the run's Python processes.")
DATA_NOT_OBSERVED = define_rule(
    "PG-TIME-109", "training-data-reads-not-observed", "TIME", "note",
    "A data folder was given but no read of a training shard was observed, or a channel was missing or "
    "overflowed, so PG-TIME-108 could not be fully judged (reads through a memory mapping, or of a copy "
    "made earlier, leave no event).")
NOT_ISOLATED = define_rule(
    "PG-RUN-001", "local-runner-not-isolated", "NET", "warning",
    "The local runner isolates nothing: the run had the network, the host's files as the caller's user "
    "and write access to the data folder. It is for trusted code; --runner docker isolates.")
SWEEP_ONLY = define_rule(
    "PG-RUN-002", "processes-found-by-sweep", "TIME", "warning",
    "Neither a PID namespace nor a cgroup was available, so the run's processes were found by sweeping "
    "the process table; a daemon that left the run's session and environment could have outlived it.")
WORK_UNBOUNDED = define_rule(
    "PG-RUN-003", "work-folder-not-bounded", "BYTES", "warning",
    "The Docker runner could not give the run a size-bounded work folder (a loop-mounted filesystem "
    "needs root), so what the run may write there was bounded only by the host's disk.")
OUTPUT_CAPPED = define_rule(
    "PG-RUN-004", "output-over-cap", "PARSE", "warning",
    "The run printed more than the harness keeps (line length, line count or bytes): the excess was "
    "counted and dropped, so lines after the cap were not observed.")
LINK_SKIPPED = define_rule(
    "PG-RUN-005", "record-link-not-copied", "PARSE", "warning",
    "The record holds a symbolic link or a special file; it was not copied into the run's work folder "
    "(a link would resolve to the reviewer's machine, not to the record).")
LEFTOVERS = define_rule(
    "PG-RUN-006", "processes-left-after-exit", "TIME", "note",
    "The run's main process exited while processes it started were still alive; they were killed.")
BYTES_OVER = define_rule(
    "PG-BYTES-101", "measured-over-cap", "BYTES", "error",
    "The artifact file on disk plus the counted code exceed the byte cap (measured, not printed).")
BYTES_UNDERSTATED = define_rule(
    "PG-BYTES-102", "printed-total-below-measured", "BYTES", "error",
    "The printed total is below the measured artifact + code bytes.")
CODE_MISMATCH = define_rule(
    "PG-BYTES-103", "printed-code-bytes-differ", "BYTES", "warning",
    "The printed code size differs from the code files measured in the record folder.")
NO_ARTIFACT = define_rule(
    "PG-BYTES-104", "artifact-not-found", "BYTES", "warning",
    "The run wrote no file that looks like the model artifact, so its bytes were not measured.")


def finding(rule: ObsRule, message: str, *, severity: Severity | None = None, line: int | None = None,
            log_path: str | None = None, evidence: Sequence[EvidenceStep] = (), undecided: bool = False,
            **data: Any) -> Finding:
    loc = Location(log_path, line) if log_path else None
    return Finding(rule.rule_id, severity or rule.severity, message, rule.condition, loc,
                   tuple(evidence), "high", undecided, {"rule": rule.name, **data})


# --- observation -----------------------------------------------------------------------------
LOG_SUFFIXES = (".log", ".txt", ".json", ".jsonl", ".csv", ".md", ".pyc", ".py")
ARTIFACT_SUFFIXES = (".ptz", ".zst", ".zstd", ".xz", ".lzma", ".gz", ".bz2", ".br", ".zip", ".bin", ".tar", ".int8", ".int6")


@dataclass
class PhaseTiming:
    name: str
    line: int
    ended_s: float  # harness stamp of the phase's line
    observed_s: float  # since the previous boundary
    printed_s: float | None


@dataclass
class Observation:
    """What the harness measured for one seed (seconds are harness-clock, since the child start)."""

    first_line_s: float | None = None
    train_anchor_s: float | None = None  # stamp of the first timed training line
    train_stop_s: float | None = None  # stamp of the stop line (or last timed step line)
    printed_train_s: float | None = None
    observed_train_s: float | None = None
    train_ratio: float | None = None  # printed / stamped advance over clean segments
    clean_segments: int = 0
    phases: list[PhaseTiming] = field(default_factory=list)
    eval_end_s: float | None = None
    observed_eval_s: float | None = None
    artifact_path: str | None = None
    artifact_bytes: int | None = None
    artifact_candidates: dict[str, int] = field(default_factory=dict)
    code_files: dict[str, int] = field(default_factory=dict)
    code_bytes: int | None = None
    printed_total: int | None = None
    printed_code: int | None = None
    measured_total: int | None = None
    # training data and artifact, by the harness clock (see `observe_data`)
    train_start_s: float | None = None  # when the training clock started: first timed line's stamp - its train_time
    train_data_deadline_s: float | None = None  # train_start_s + train budget + grace (set by `judge`)
    train_data_first_s: float | None = None
    train_data_last_s: float | None = None  # the last open or read of a training shard, any channel
    train_data_last_file: str | None = None
    train_data_last_channel: str | None = None
    train_data_channels: dict[str, Any] = field(default_factory=dict)  # how each channel watched, or why not
    train_data_seen: dict[str, Any] = field(default_factory=dict)  # per channel: opens, reads, maps, first/last
    hook_processes: int | None = None  # Python processes of the run that reported the hook installed
    artifact_appeared_s: float | None = None  # first created (kernel), or None when not observed
    artifact_written_s: float | None = None  # its last completed write

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_text(lines: Sequence[StampedLine]) -> str:
    return "\n".join(ln.text for ln in lines) + ("\n" if lines else "")


def _stamp(lines: Sequence[StampedLine], lineno: int) -> float:
    i = min(max(lineno, 1), len(lines)) - 1
    stamp = getattr(lines, "stamp", None)  # an OutputLog answers without reading the file
    return stamp(i) if stamp else lines[i].t


def observe_train(lines: Sequence[StampedLine], log: RunLog, obs: Observation) -> None:
    timed = [(s.line, s.train_time_ms, s.val_loss is not None) for s in log.steps if s.train_time_ms is not None]
    if log.stop is not None and log.stop.train_time_ms is not None:
        timed.append((log.stop.line, log.stop.train_time_ms, False))
    timed.sort()
    if not timed:
        return
    (l0, t0_ms, _), (l1, t1_ms, _) = timed[0], timed[-1]
    obs.train_anchor_s, obs.train_stop_s = _stamp(lines, l0), _stamp(lines, l1)
    obs.train_start_s = obs.train_anchor_s - t0_ms / 1000.0
    obs.printed_train_s = t1_ms / 1000.0
    printed = stamped = 0.0
    for (la, ta, _), (lb, tb, val_b) in zip(timed, timed[1:]):
        if not val_b:
            printed += (tb - ta) / 1000.0
            stamped += _stamp(lines, lb) - _stamp(lines, la)
            obs.clean_segments += 1
    if obs.clean_segments == 0 or stamped <= 0:
        printed = (t1_ms - t0_ms) / 1000.0
        stamped = obs.train_stop_s - obs.train_anchor_s
    if stamped > 0:
        obs.train_ratio = printed / stamped
    if obs.train_ratio and obs.clean_segments:
        obs.observed_train_s = obs.printed_train_s / obs.train_ratio
    else:
        obs.observed_train_s = t0_ms / 1000.0 + (obs.train_stop_s - obs.train_anchor_s)


def observe_eval(lines: Sequence[StampedLine], log: RunLog, obs: Observation) -> None:
    boundaries = sorted({s.line for s in log.artifact.sizes} | {p.line for p in log.phases}
                        | ({log.stop.line} if log.stop else set()))
    by_line = {p.line: p for p in log.phases}

    def same_result(line: int, p) -> bool:
        """Two prints of one result (`ttt_sliding:done … elapsed=` then `legal_ttt … eval_time:`)
        are one phase: the second must not start where the first ended."""
        q = by_line.get(line)
        return q is not None and round(q.val_bpb, 4) == round(p.val_bpb, 4)

    start_line = log.stop.line if log.stop else (log.steps[-1].line if log.steps else None)
    for p in log.phases:
        if p.exact or start_line is None or p.line < start_line:
            continue
        prev = max((b for b in boundaries if b < p.line and not same_result(b, p)), default=start_line)
        ended = _stamp(lines, p.line)
        printed = p.eval_time_ms / 1000.0 if p.eval_time_ms is not None else None
        obs.phases.append(PhaseTiming(p.name, p.line, ended, ended - _stamp(lines, prev), printed))
    if obs.phases and start_line is not None:
        obs.eval_end_s = max(ph.ended_s for ph in obs.phases)
        obs.observed_eval_s = obs.eval_end_s - _stamp(lines, start_line)


def code_files(record_dir: Path) -> dict[str, int]:
    """The code a submission counts: every .py file in its folder (rules.md: train_gpt.py and any
    other code it needs in the folder), relative path -> bytes. Links are not followed (a link's
    target is not the record's code; the copy into the work folder skips it too)."""
    from audit.safe_read import scan

    return {e.rel: e.size for e in scan(record_dir, hidden=True)
            if e.kind == "file" and e.rel.endswith(".py") and "__pycache__" not in e.rel.split("/")}


def find_artifact(written: dict[str, int], printed_model: int | None) -> tuple[str | None, dict[str, int]]:
    """Pick the artifact among the files a run wrote: the one whose size the log printed for the
    compressed model, else the largest compressed-looking file, else the largest other file that
    is not a raw `.pt` checkpoint. Returns (path, all candidates)."""
    cands = {p: n for p, n in written.items()
             if not p.endswith(LOG_SUFFIXES) and not p.startswith("logs/") and "__pycache__" not in p}
    if not cands:
        return None, {}
    if printed_model is not None:
        for p, n in cands.items():
            if n == printed_model:
                return p, cands
    packed = {p: n for p, n in cands.items() if p.endswith(ARTIFACT_SUFFIXES)}
    pool = packed or {p: n for p, n in cands.items() if not p.endswith((".pt", ".pth"))}
    if not pool:
        return None, cands
    return max(pool, key=lambda p: pool[p]), cands


def observe_bytes(outcome: RunOutcome, log: RunLog, record_dir: Path, obs: Observation) -> None:
    changed = outcome.details.get("written", outcome.details.get("files_written", []))  # local / docker
    written = {p: outcome.files[p] for p in changed if p in outcome.files}
    model = log.artifact.model
    obs.artifact_path, obs.artifact_candidates = find_artifact(written, model.bytes if model else None)
    if obs.artifact_path:
        obs.artifact_bytes = written[obs.artifact_path]
    obs.code_files = code_files(record_dir)
    obs.code_bytes = sum(obs.code_files.values())
    total = log.artifact.total
    obs.printed_total = total.bytes if total else None
    code = log.artifact.code
    obs.printed_code = code.bytes if code else None
    counted_code = log.artifact.code_compressed.bytes if log.artifact.code_compressed else obs.code_bytes
    if obs.artifact_bytes is not None:
        obs.measured_total = obs.artifact_bytes + counted_code


def observe_data(outcome: RunOutcome, obs: Observation) -> None:
    """When the run last touched a training shard and when its artifact appeared, from the
    runner's data-access record (both channels: the later sighting wins)."""
    access = outcome.details.get("data_access") or {}
    obs.train_data_channels = dict(access.get("channels") or {})
    obs.train_data_seen = dict(access.get("train") or {})
    obs.hook_processes = access.get("hook_processes")
    for channel, seen in (access.get("train") or {}).items():
        if seen.get("first_s") is not None:
            obs.train_data_first_s = min(x for x in (obs.train_data_first_s, seen["first_s"]) if x is not None)
        if seen.get("last_s") is not None and (obs.train_data_last_s is None or seen["last_s"] > obs.train_data_last_s):
            obs.train_data_last_s, obs.train_data_last_file = seen["last_s"], seen.get("last_file")
            obs.train_data_last_channel = channel
    work = (access.get("work") or {}).get(obs.artifact_path or "")
    if work:
        obs.artifact_appeared_s, obs.artifact_written_s = work.get("created_s"), work.get("last_write_s")


def observe(outcome: RunOutcome, record_dir: Path, log: RunLog | None = None) -> tuple[Observation, RunLog]:
    lines = outcome.lines
    log = log or parse_log(log_text(lines))
    obs = Observation(first_line_s=_stamp(lines, 1) if len(lines) else None)
    observe_train(lines, log, obs)
    observe_eval(lines, log, obs)
    observe_bytes(outcome, log, Path(record_dir), obs)
    observe_data(outcome, obs)
    return obs, log


# --- judging ---------------------------------------------------------------------------------
def judge(obs: Observation, log: RunLog, outcome: RunOutcome, budgets: Budgets, log_path: str,
          scored_phase: str | None = None) -> list[Finding]:
    """Findings from one seed's observation. `scored_phase` names the phase that is the score."""
    out: list[Finding] = []
    f = lambda rule, msg, **kw: out.append(finding(rule, msg, log_path=log_path, **kw))  # noqa: E731
    if outcome.timed_out:
        deadline = outcome.details.get("timeout_s", budgets.kill_after_s)
        source = ("train + eval budgets + grace" if abs(deadline - budgets.kill_after_s) < 1e-6
                  else "set for this reproduction (--timeout)")
        signals = ", ".join(f"{name} at {t:.1f} s" for name, t in outcome.details.get("signals") or [])
        outlived = sum(1 for name, _ in outcome.details.get("signals") or [] if name == "SIGTERM") and any(
            name == "SIGKILL" for name, _ in outcome.details.get("signals") or [])
        f(TIMED_OUT, f"seed {outcome.seed}: killed by the harness at its deadline of {deadline:g} s ({source})"
          + (f": {signals}" if signals else "") + (" (it outlived SIGTERM)" if outlived else "")
          + f"; ended {outcome.wall_seconds:.1f} s after it started",
          line=len(outcome.lines) or None, wall_seconds=round(outcome.wall_seconds, 3), deadline_s=deadline,
          deadline_source=source)
    tol, slack = budgets.time_tolerance, budgets.time_slack_s
    if obs.printed_train_s is None:
        if outcome.exit_code == 0:
            f(NO_STOP, f"seed {outcome.seed}: no timed training line (train_time) was printed", undecided=True)
    else:
        stop_line = log.stop.line if log.stop else log.train_time_ms.line
        ratio = obs.train_ratio
        observed = obs.observed_train_s or 0.0
        if ratio is not None and ratio < 1 - tol and observed - obs.printed_train_s > slack:
            clean = obs.clean_segments > 0
            f(TRAIN_UNDERSTATED,
              f"seed {outcome.seed}: printed train_time {obs.printed_train_s:.2f} s, observed {observed:.2f} s "
              f"by the harness clock (printed/observed = {ratio:.3f})"
              + ("" if clean else "; no segment without validation, so validation pauses may explain part of it"),
              severity=None if clean else Severity.WARNING, undecided=not clean, line=stop_line,
              printed_s=round(obs.printed_train_s, 3), observed_s=round(observed, 3), ratio=round(ratio, 4))
        if observed > budgets.train_s + budgets.train_grace_s:
            f(TRAIN_OVER, f"seed {outcome.seed}: training observed at {observed:.1f} s > {budgets.train_s:.0f} s "
              f"+ {budgets.train_grace_s:.0f} s grace", line=stop_line, observed_s=round(observed, 3))
    for ph in obs.phases:
        if ph.printed_s is not None and ph.printed_s < ph.observed_s * (1 - tol) and ph.observed_s - ph.printed_s > slack:
            f(EVAL_UNDERSTATED, f"seed {outcome.seed}: {ph.name} printed eval_time {ph.printed_s:.2f} s, observed "
              f"{ph.observed_s:.2f} s since the previous phase", line=ph.line, phase=ph.name,
              printed_s=round(ph.printed_s, 3), observed_s=round(ph.observed_s, 3))
        if ph.name == scored_phase and ph.observed_s > budgets.eval_s:
            f(SCORED_EVAL_OVER, f"seed {outcome.seed}: scored phase {ph.name} observed at {ph.observed_s:.1f} s "
              f"> {budgets.eval_s:.0f} s", line=ph.line, observed_s=round(ph.observed_s, 3))
    if obs.observed_eval_s is not None and obs.observed_eval_s > budgets.eval_s:
        f(EVAL_OVER, f"seed {outcome.seed}: evaluation from training stop to the last phase took "
          f"{obs.observed_eval_s:.1f} s > {budgets.eval_s:.0f} s", line=obs.phases[-1].line,
          observed_s=round(obs.observed_eval_s, 3))
    out.extend(judge_data(obs, outcome, budgets, log_path))
    out.extend(judge_bytes(obs, log, outcome.seed, budgets, log_path))
    out.extend(judge_run(outcome, log_path))
    return out


def judge_data(obs: Observation, outcome: RunOutcome, budgets: Budgets, log_path: str) -> list[Finding]:
    """PG-TIME-108/109: training-shard reads against the training budget (see the module docstring).
    Sets `obs.train_data_deadline_s`."""
    out: list[Finding] = []
    access = outcome.details.get("data_access") or {}
    channels = obs.train_data_channels
    if not access or not access.get("roots"):
        return out
    seed, last = outcome.seed, obs.train_data_last_s
    allowed = budgets.train_s + budgets.train_grace_s
    if obs.train_start_s is not None and budgets.train_s != float("inf"):
        obs.train_data_deadline_s = obs.train_start_s + allowed
    deadline = obs.train_data_deadline_s
    late = [e for e in access.get("recent") or [] if deadline is not None and e[0] > deadline + budgets.time_slack_s]
    ev = [EvidenceStep(f"training clock started at {obs.train_start_s:.2f} s (harness clock); budget "
                       f"{budgets.train_s:g} s + {budgets.train_grace_s:g} s grace ends at {deadline:.2f} s")] if deadline else []
    for channel, seen in (access.get("train") or {}).items():
        if seen.get("last_s") is not None:
            ev.append(EvidenceStep(f"{channel}: {seen['opens']} open(s), {seen['reads']} read(s), {seen['maps']} "
                                   f"mapping(s) of {seen['files']} training shard(s); last at {seen['last_s']:.2f} s "
                                   f"({seen['last_file']})"))
    ev += [EvidenceStep(f"{t:.2f} s: {kind} of {name} ({channel})") for t, channel, kind, name in late[-5:]]
    if last is not None and deadline is not None and last > deadline + budgets.time_slack_s:
        hook_on = str(channels.get("hook", "")).startswith("audit hook")
        hook_last = ((access.get("train") or {}).get("hook") or {}).get("last_s")
        only_kernel = hook_on and (hook_last is None or hook_last <= deadline + budgets.time_slack_s)
        out.append(finding(
            DATA_AFTER_BUDGET,
            f"seed {seed}: training data read at {last:.1f} s ({obs.train_data_last_file}, seen by "
            f"{obs.train_data_last_channel}), {last - obs.train_start_s:.1f} s after the training clock started at "
            f"{obs.train_start_s:.1f} s: past the {budgets.train_s:g} s training budget + {budgets.train_grace_s:g} s grace"
            + (" (the in-process hook saw no such read: native code, or another process reading the same data folder)"
               if only_kernel else ""),
            log_path=log_path, evidence=ev, last_read_s=round(last, 3), deadline_s=round(deadline, 3),
            train_start_s=round(obs.train_start_s, 3), file=obs.train_data_last_file, channel=obs.train_data_last_channel))
    elif last is not None and deadline is None and budgets.train_s != float("inf") and last > allowed + budgets.time_slack_s:
        out.append(finding(
            DATA_AFTER_BUDGET, f"seed {seed}: training data read at {last:.1f} s after the run started, and no timed "
            "training line shows when the training clock started: whether it was inside the budget is undecided",
            severity=Severity.WARNING, undecided=True, log_path=log_path, evidence=ev, last_read_s=round(last, 3)))
    gaps = [f"{k}: {v}" for k, v in channels.items() if not str(v).startswith(("inotify", "audit hook"))]
    if access.get("kernel_overflow"):
        gaps.append("kernel: the inotify queue overflowed, events were lost")
    if last is None and outcome.exit_code == 0:
        gaps.append("no read of a training shard was seen by any channel")
    if gaps:
        out.append(finding(DATA_NOT_OBSERVED, f"seed {seed}: training-data reads not fully observed ({'; '.join(gaps)})",
                           log_path=log_path, channels=channels))
    return out


def judge_run(outcome: RunOutcome, log_path: str) -> list[Finding]:
    """PG-RUN-00x: what the runner could not isolate, bound or keep, from the outcome's details."""
    out: list[Finding] = []
    d, seed = outcome.details, outcome.seed
    iso = d.get("isolation") or {}
    f = lambda rule, msg, **kw: out.append(finding(rule, msg, log_path=log_path, **kw))  # noqa: E731
    if iso and not iso.get("isolated", True):
        f(NOT_ISOLATED, f"seed {seed}: {iso.get('warning') or NOT_ISOLATED.rationale}")
    if iso.get("process_warning"):
        f(SWEEP_ONLY, f"seed {seed}: {iso['process_warning']}")
    if d.get("work_bound_missing"):
        f(WORK_UNBOUNDED, f"seed {seed}: the work folder had no size bound ({d['work_bound_missing']})")
    o = d.get("output") or {}
    if o.get("dropped_lines") or o.get("cut_lines"):
        parts = []
        if o.get("dropped_lines"):
            parts.append(f"{o['dropped_lines']:,} line(s), {o['dropped_bytes']:,} bytes, after line {o['lines']:,} "
                         f"were not kept (caps: {o['max_lines']:,} lines, {o['max_bytes']:,} bytes)")
        if o.get("cut_lines"):
            parts.append(f"{o['cut_lines']:,} line(s) cut to {o['max_line_bytes']:,} bytes ({o['cut_bytes']:,} bytes dropped)")
        f(OUTPUT_CAPPED, f"seed {seed}: output over the harness's caps: " + "; ".join(parts), **o)
    links = d.get("links_not_copied") or []
    for link in links[:20]:
        what = f"a link to {link['target']!r}" if link["kind"] == "link" else "a special file (not a regular file)"
        f(LINK_SKIPPED, f"seed {seed}: {link['path']} in the record is {what}: not copied into the work folder",
          path=link["path"], kind=link["kind"])
    if len(links) > 20:
        f(LINK_SKIPPED, f"seed {seed}: {len(links) - 20} more links or special files not copied")
    left = max(d.get("leftovers_count") or 0, len(d.get("leftovers_killed") or []))  # the pid list may be capped
    if left:
        f(LEFTOVERS, f"seed {seed}: {left} process(es) still running when the run's main process exited were killed",
          count=left)
    return out


def judge_bytes(obs: Observation, log: RunLog, seed: int, budgets: Budgets, log_path: str) -> list[Finding]:
    out: list[Finding] = []
    total_line = log.artifact.total.line if log.artifact.total else None
    if obs.artifact_path is None:
        if log.artifact.sizes:
            out.append(finding(NO_ARTIFACT, f"seed {seed}: the log prints sizes but the run wrote no artifact-like "
                               f"file (wrote: {', '.join(obs.artifact_candidates) or 'nothing'})",
                               log_path=log_path, line=total_line, undecided=True))
        return out
    measured = obs.measured_total or 0
    ev = (EvidenceStep(f"artifact {obs.artifact_path}: {obs.artifact_bytes:,} bytes on disk"),
          EvidenceStep(f"code: {obs.code_bytes:,} bytes in {len(obs.code_files)} file(s): {', '.join(obs.code_files)}"))
    if measured > budgets.byte_cap:
        out.append(finding(BYTES_OVER, f"seed {seed}: measured {measured:,} bytes (artifact {obs.artifact_bytes:,} + "
                           f"code) > cap {budgets.byte_cap:,}", log_path=log_path, line=total_line, evidence=ev,
                           measured=measured, cap=budgets.byte_cap, artifact=obs.artifact_path))
    if obs.printed_total is not None and obs.printed_total < measured:
        out.append(finding(BYTES_UNDERSTATED, f"seed {seed}: printed total {obs.printed_total:,} bytes < measured "
                           f"{measured:,}", log_path=log_path, line=total_line, evidence=ev,
                           printed=obs.printed_total, measured=measured))
    if obs.printed_code is not None and obs.printed_code != obs.code_bytes:
        out.append(finding(CODE_MISMATCH, f"seed {seed}: printed code size {obs.printed_code:,} bytes, measured "
                           f"{obs.code_bytes:,} bytes of code in the record folder", log_path=log_path,
                           line=log.artifact.code.line, printed=obs.printed_code, measured=obs.code_bytes,
                           files=obs.code_files))
    return out

