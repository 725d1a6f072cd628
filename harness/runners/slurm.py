"""The Slurm runner: each seed is one Slurm job, submitted with `sbatch`, observed inside the job.

The cluster's own scheduler decides where and when a seed runs; pgolf only submits, watches and
collects. What happens where:

- on the submitting machine (`pgolf queue`, `pgolf reproduce --runner slurm`): `prepare` writes
  the seed's job spec (`spec.json`) and batch script (`job.sh`, runnable by hand with `sbatch`)
  into `OUT/slurm/seed_<S>/`; `start` submits it and records the job id in `jobs.json` before
  anything else (a harness killed at any point finds its jobs again from that file, or by the
  token in the job's comment when it died between `sbatch` and the write);
- on the node (`python -m harness.runners.slurm_job spec.json`): the local or docker runner runs
  the seed exactly as `pgolf reproduce` does on one machine, stamping each line by its own
  clock, killing the run at the rule set's deadline, measuring what it wrote; every line goes to
  a journal on shared storage as it arrives; `harness.reproduce.seeds.run_seed` writes the
  seed's log, stamps and `result.json` atomically into `OUT/seed_<S>/`;
- back on the submitting machine: `stream` follows that journal, `collect` turns a finished job
  into a `RunOutcome` (from the journal when the job died before it could write its result),
  `stop` is `scancel`.

Job options: one whole node (`--nodes=1 --exclusive`, configurable), `--gres=gpu:N` with N the
GPUs of the record's track where the nodes have GPUs, `--time` = the rule set's kill deadline +
a margin, `--signal=B:USR1@N` so the job stops its run cleanly before Slurm kills it,
`--no-requeue` (pgolf decides about the one resubmission after a node failure, and says so in the
report), `--export=NONE` (the job gets only the environment its script sets).
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from harness import atomic
from harness.errors import InputError
from harness.queue.config import ClusterConfig
from harness.runners.base import RunOutcome, Runner, StampedLine
from harness.runners.slurm_journal import Journal, files_written, read_journal, utc_iso

SPEC_SCHEMA = "pgolf.slurm-job/1"
CLI_TIMEOUT_S = 60.0

# --- Slurm job states, as data ----------------------------------------------------------------
# Still going: wait.
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "STAGE_OUT",
                    "SIGNALING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "STOPPED", "SPECIAL_EXIT"})


@dataclass(frozen=True)
class EndRule:
    """What a job that ended in `state` without writing its result means for the seed."""

    state: str
    status: str  # the seed's status: lost (infrastructure), timeout, cancelled, failed
    retry: bool  # resubmit once: the cause was the cluster's, not the submission's
    says: str  # for the report


END_RULES = {r.state: r for r in (
    EndRule("NODE_FAIL", "lost", True, "its node failed"),
    EndRule("PREEMPTED", "lost", True, "it was preempted"),
    EndRule("BOOT_FAIL", "lost", True, "its node failed to boot"),
    EndRule("REVOKED", "lost", True, "it was revoked (federation)"),
    EndRule("LOST", "lost", True, "Slurm no longer knows the job (no accounting) and it left no result"),
    EndRule("TIMEOUT", "timeout", False, "Slurm killed it at its time limit"),
    EndRule("DEADLINE", "timeout", False, "Slurm killed it at its deadline"),
    EndRule("CANCELLED", "cancelled", False, "it was cancelled (scancel)"),
    EndRule("FAILED", "failed", False, "the job failed before its run wrote a result"),
    EndRule("OUT_OF_MEMORY", "failed", False, "the job ran out of memory before its run wrote a result"),
    EndRule("COMPLETED", "failed", False, "the job ended without writing a result"),
)}
MAX_RETRIES = 1  # a seed lost to the cluster is resubmitted once, never more


def end_rule(state: str) -> EndRule:
    return END_RULES.get(state, EndRule(state, "failed", False, f"it ended {state}"))


@dataclass
class JobState:
    job_id: str
    state: str  # base state: "CANCELLED by 0" -> "CANCELLED"
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    source: str = "squeue"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


# --- the Slurm command line -------------------------------------------------------------------
class SlurmCLI:
    """sbatch, squeue, sacct, scancel: each call bounded in time; a missing command or a refused
    submission is unusable input (exit 2), with Slurm's own message."""

    def __init__(self, timeout_s: float = CLI_TIMEOUT_S):
        self.timeout_s = timeout_s

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if shutil.which(argv[0]) is None:
            raise InputError(f"`{argv[0]}` not found: run pgolf on a Slurm login node (or install slurm-client)")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InputError(f"`{' '.join(argv[:2])}` did not answer within {self.timeout_s:.0f} s: is slurmctld up?") from None
        if check and proc.returncode != 0:
            raise InputError(f"`{shlex.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def sbatch(self, script: Path) -> str:
        out = self._run(["sbatch", "--parsable", str(script)]).stdout.strip()
        job_id = out.split(";")[0].strip()
        if not job_id.isdigit():
            raise InputError(f"sbatch printed no job id: {out!r}", str(script))
        return job_id

    def scancel(self, job_ids: list[str]) -> None:
        if job_ids:
            self._run(["scancel", *job_ids], check=False)

    def states(self, job_ids: list[str]) -> dict[str, JobState]:
        """The state of each job Slurm still knows: squeue first (live jobs, and finished ones
        slurmctld keeps for MinJobAge), then sacct for the rest (accounting, or the job
        completion log where accounting is off). A job in neither is absent from the result."""
        found: dict[str, JobState] = {}
        if not job_ids:
            return found
        proc = self._run(["squeue", "-h", "--states=all", "-j", ",".join(job_ids), "-o", "%i|%T|%r|%N"], check=False)
        for line in proc.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4 and parts[0] in job_ids:
                found[parts[0]] = JobState(parts[0], parts[1].split()[0], parts[2], parts[3])
        rest = [j for j in job_ids if j not in found]
        queries = (["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State,ExitCode,NodeList"],
                   ["sacct", "-c", "-n", "-P", "-o", "JobID,State,ExitCode,NodeList"])  # -c: jobcomp log, no slurmdbd
        for argv in queries:
            if not rest:
                break
            proc = self._run(argv + ["-j", ",".join(rest)], check=False)
            for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
                parts = line.strip().split("|")
                if len(parts) == 4 and parts[0] in rest:
                    found[parts[0]] = JobState(parts[0], parts[1].split()[0], "", parts[3], parts[2], "sacct")
            rest = [j for j in rest if j not in found]
        return found

    def find_by_comment(self, comment: str) -> str | None:
        """The job whose comment is `comment` (a submission whose job id was never recorded)."""
        proc = self._run(["squeue", "--me", "-h", "--states=all", "-o", "%i|%k"], check=False)
        for line in proc.stdout.splitlines():
            job_id, _, c = line.strip().partition("|")
            if c == comment:
                return job_id
        return None


# --- one seed as a job -------------------------------------------------------------------------
def cfg_to_json(cfg: Any) -> dict[str, Any]:
    """A ReproConfig as JSON (paths as strings, budgets as a dict), for the job spec."""
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(cfg), default=str))


def cfg_from_json(d: dict[str, Any]) -> Any:
    """The inverse of `cfg_to_json`, by the dataclass's own field types (new fields pass through)."""
    from harness.reproduce.observe import Budgets
    from harness.reproduce.seeds import ReproConfig

    kwargs: dict[str, Any] = {}
    for f in fields(ReproConfig):
        if f.name not in d:
            continue
        v = d[f.name]
        if v is not None and "Path" in str(f.type):
            v = Path(v)
        elif v is not None and f.name == "budgets":
            v = Budgets(**v)
        kwargs[f.name] = v
    return ReproConfig(**kwargs)


_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """A record's name as it may appear in a batch script, a job name and a results folder: the
    folder name comes from a pull request (git allows a newline in it, and `#SBATCH` lines and
    comments cannot be quoted), so anything outside [A-Za-z0-9._-] becomes `_`."""
    return _NOT_LABEL.sub("_", name) or "record"


@dataclass
class SeedJob:
    """One seed of one record as the job runs it. `cfg` is what the job sees: the record folder
    is the frozen copy on shared storage, the output folder the record's results directory."""

    name: str  # the record's display name
    cfg: Any  # ReproConfig
    seed: int
    fingerprint: str
    gpus: int = 0  # --gres=gpu:N; 0 asks for none
    time_limit_s: float | None = None  # --time; None: the partition's default
    inner: dict[str, Any] = field(default_factory=lambda: {"name": "local"})  # the runner inside the job

    @property
    def slurm_dir(self) -> Path:
        return Path(self.cfg.out_dir) / "slurm" / f"seed_{self.seed}"

    @property
    def result_path(self) -> Path:
        from harness.reproduce.seeds import seed_dir

        return seed_dir(self.cfg, self.seed) / "result.json"


@dataclass
class SlurmPrepared:
    job: SeedJob
    script: Path
    spec: Path
    token: str
    attempt: int


@dataclass
class SlurmHandle:
    job: SeedJob
    job_id: str
    attempt: int
    journal: Journal = field(default_factory=Journal)
    state: JobState | None = None

    @property
    def journal_path(self) -> Path:
        return self.job.slurm_dir / f"journal-{self.job_id}.tsv"

    @property
    def out_path(self) -> Path:
        return self.job.slurm_dir / f"slurm-{self.job_id}.out"


def slurm_time(seconds: float) -> str:
    """Seconds as sbatch's D-HH:MM:SS, rounded up to a whole minute (Slurm counts in minutes)."""
    minutes = max(1, math.ceil(seconds / 60))
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:00"


# jobs.json: the seed's submissions, written only by the harness, atomically.
def jobs_file(slurm_dir: Path) -> Path:
    return Path(slurm_dir) / "jobs.json"


def load_attempts(slurm_dir: Path) -> list[dict[str, Any]]:
    p = jobs_file(slurm_dir)
    if not p.is_file():
        return []
    try:
        return list(json.loads(p.read_text())["attempts"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable job list ({e}); remove it to resubmit the seed", str(p)) from None


def save_attempts(slurm_dir: Path, attempts: list[dict[str, Any]]) -> None:
    atomic.write_json(jobs_file(slurm_dir), {"schema": "pgolf.slurm-jobs/1", "attempts": attempts})


class SlurmRunner(Runner):
    """Submits, follows, stops and collects seed jobs (see the module docstring)."""

    name = "slurm"

    def __init__(self, config: ClusterConfig | None = None, cli: SlurmCLI | None = None):
        self.config = config or ClusterConfig()
        self.cli = cli or SlurmCLI()

    # ---- the batch script ---------------------------------------------------------------------
    def sbatch_options(self, job: SeedJob, token: str) -> list[str]:
        s = self.config.slurm
        opts = [f"--job-name=pgolf-{safe_name(job.name)[:40]}-s{job.seed}", f"--comment=pgolf:{token}", "--nodes=1",
                "--ntasks=1", f"--output={job.slurm_dir}/slurm-%j.out", "--open-mode=append", "--no-requeue",
                "--export=NONE", f"--signal=B:USR1@{int(s.signal_before_s)}"]
        if s.exclusive:
            opts.append("--exclusive")
        if job.gpus:
            opts.append(f"--gres={s.gres or 'gpu'}:{job.gpus}")
        if s.cpus_per_task:
            opts.append(f"--cpus-per-task={s.cpus_per_task}")
        if s.mem:
            opts.append(f"--mem={s.mem}")
        if job.time_limit_s is not None:
            opts.append(f"--time={slurm_time(job.time_limit_s)}")
        elif s.max_time:
            opts.append(f"--time={s.max_time}")
        for key in ("partition", "account", "qos"):
            if getattr(s, key):
                opts.append(f"--{key}={getattr(s, key)}")
        return opts + list(s.extra_args)

    def job_script(self, job: SeedJob, spec_path: Path, token: str, attempt: int) -> str:
        c = self.config
        env = {"PATH": c.job_path(), "PYTHONPATH": c.pgolf_root(), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               "HOME": os.environ.get("HOME", "/tmp")}
        lines = ["#!/bin/bash",
                 f"# pgolf: seed {job.seed} of {safe_name(job.name)}, attempt {attempt}. Written by harness/runners/slurm.py;",
                 "# `sbatch job.sh` runs it again by hand (pgolf will not know about that job)."]
        opts = self.sbatch_options(job, token)
        for o in opts:  # a `#SBATCH` line cannot be quoted: white space or a newline would end it
            if any(ch.isspace() or not ch.isprintable() for ch in o):
                raise InputError("a Slurm option may not hold white space or control characters "
                                 "(choose a results folder and settings without them)", repr(o))
        lines += [f"#SBATCH {o}" for o in opts]
        lines += ["set -eu", "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                  f"cd {shlex.quote(str(job.slurm_dir))}",
                  # exec: the job's own process receives Slurm's signals (USR1 before the limit, TERM on scancel)
                  f"exec {shlex.quote(c.python())} -m harness.runners.slurm_job {shlex.quote(str(spec_path))}"]
        return "\n".join(lines) + "\n"

    # ---- the protocol ---------------------------------------------------------------------
    def prepare(self, job: SeedJob) -> SlurmPrepared:
        """Write the spec and the batch script; nothing is submitted yet."""
        from harness.reproduce.seeds import seed_dir

        job.slurm_dir.mkdir(parents=True, exist_ok=True)
        seed_dir(job.cfg, job.seed).mkdir(parents=True, exist_ok=True)
        attempt = len([a for a in load_attempts(job.slurm_dir) if a.get("job_id")]) + 1
        token = uuid.uuid4().hex[:16]
        spec = job.slurm_dir / "spec.json"
        atomic.write_json(spec, {"schema": SPEC_SCHEMA, "seed": job.seed, "name": job.name, "attempt": attempt,
                                 "fingerprint": job.fingerprint, "repro": cfg_to_json(job.cfg), "runner": job.inner,
                                 "slurm_dir": str(job.slurm_dir)})
        script = job.slurm_dir / "job.sh"
        atomic.write_text(script, self.job_script(job, spec, token, attempt))
        return SlurmPrepared(job, script, spec, token, attempt)

    def start(self, prepared: SlurmPrepared) -> SlurmHandle:
        """Submit; the attempt is on disk before `sbatch` runs (with its token) and after (with its id)."""
        sdir = prepared.job.slurm_dir
        attempts = [a for a in load_attempts(sdir) if a.get("job_id")]
        entry: dict[str, Any] = {"attempt": prepared.attempt, "token": prepared.token, "job_id": None,
                                 "submitted_utc": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        save_attempts(sdir, attempts + [entry])
        t0 = time.time()
        job_id = self.cli.sbatch(prepared.script)
        entry.update(job_id=job_id, submitted_unix=t0, sbatch_s=round(time.time() - t0, 4))
        save_attempts(sdir, attempts + [entry])
        return SlurmHandle(prepared.job, job_id, prepared.attempt)

    def reattach(self, job: SeedJob) -> SlurmHandle | None:
        """The seed's latest submission, from jobs.json (and Slurm, for one whose id was never
        written): a restarted harness follows the jobs it had submitted, it does not resubmit."""
        attempts = load_attempts(job.slurm_dir)
        if not attempts:
            return None
        last = attempts[-1]
        if not last.get("job_id"):
            found = self.cli.find_by_comment(f"pgolf:{last.get('token')}")
            if found is None:  # sbatch never ran (or its job is long forgotten): as if never submitted
                save_attempts(job.slurm_dir, attempts[:-1])
                return self.reattach(job) if len(attempts) > 1 else None
            last["job_id"] = found
            save_attempts(job.slurm_dir, attempts)
        return SlurmHandle(job, str(last["job_id"]), int(last.get("attempt", len(attempts))))

    def poll(self, handle: SlurmHandle) -> list[StampedLine]:
        """The lines the job has stamped since the last call (non-blocking)."""
        before = len(handle.journal.lines)
        read_journal(handle.journal_path, handle.journal)
        return handle.journal.lines[before:]

    def refresh(self, handles: list[SlurmHandle]) -> None:
        """One squeue/sacct call for many jobs; a job Slurm no longer knows reads LOST."""
        states = self.cli.states([h.job_id for h in handles])
        for h in handles:
            h.state = states.get(h.job_id, JobState(h.job_id, "LOST", "not in squeue or sacct", "", "", "none"))

    def stream(self, handle: SlurmHandle, poll_s: float = 1.0, state_every_s: float = 5.0) -> Iterator[StampedLine]:
        """Every stamped line of the job, as the journal grows, until the job has ended."""
        last_state = 0.0
        while True:
            yield from self.poll(handle)
            if handle.job.result_path.is_file():
                break
            if time.monotonic() - last_state >= state_every_s:
                last_state = time.monotonic()
                self.refresh([handle])
                if handle.state is not None and not handle.state.active:
                    yield from self.poll(handle)
                    break
            time.sleep(poll_s)

    def stop(self, handle: SlurmHandle, reason: str) -> None:
        self.cancel([handle], reason)

    def cancel(self, handles: list[SlurmHandle], reason: str = "pgolf queue --cancel") -> list[str]:
        """scancel every job among `handles` that has not ended (one call), noting who asked."""
        live = [h for h in handles if h.state is None or h.state.active]
        self.cli.scancel([h.job_id for h in live])
        for h in live:
            attempts = load_attempts(h.job.slurm_dir)
            for a in attempts:
                if str(a.get("job_id")) == h.job_id:
                    a["cancel_requested"] = reason
            save_attempts(h.job.slurm_dir, attempts)
        return [h.job_id for h in live]

    def started_info(self, handle: SlurmHandle) -> dict[str, Any]:
        p = handle.job.slurm_dir / f"started-{handle.job_id}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return {}

    def collect(self, handle: SlurmHandle) -> RunOutcome:
        """The seed's outcome as far as it can be known outside the job: the stamped lines of the
        journal, what is in the work directory, and how Slurm ended the job. For a job that wrote
        its result, the result is the better record; this is for one that could not."""
        self.poll(handle)
        state = handle.state.state if handle.state else "UNKNOWN"
        rule = end_rule(state)
        job, lines = handle.job, handle.journal.lines
        start = handle.journal.start_unix or self.started_info(handle).get("started_unix")
        from harness.reproduce.seeds import seed_dir

        workdir = seed_dir(job.cfg, job.seed) / "work"  # run_seed's work folder
        files, written = files_written(workdir, Path(job.cfg.record_dir)) if workdir.is_dir() else ({}, [])
        exit_code = None  # the run's own exit status ("code:signal"), only when the job ended on its
        # own and no signal ended it (a scancel's "0:15" is not an exit 0; nor is a lost job's)
        if handle.state is not None and handle.state.exit_code and rule.status == "failed":
            code, _, signal = handle.state.exit_code.partition(":")
            exit_code = int(code) if code.isdigit() and signal in ("", "0") else None
        return RunOutcome(
            seed=job.seed, exit_code=exit_code, timed_out=rule.status == "timeout", stop_reason=f"slurm:{state}",
            started_utc=utc_iso(start) if start else "", wall_seconds=lines[-1].t if lines else 0.0,
            lines=list(lines), files=files, runner=self.name,
            details={"written": written, "timeout_s": job.time_limit_s or float("inf"), "inner_runner": job.inner.get("name"),
                     "slurm": {"job_id": handle.job_id, "state": state, "node": handle.state.node if handle.state else "",
                               "attempt": handle.attempt, "output": str(handle.out_path)}})
