"""Inside a Slurm job: run one seed as `pgolf reproduce` would, observed on the node.

    python -m harness.runners.slurm_job OUT/slurm/seed_<S>/spec.json

The batch script written by `harness.runners.slurm` ends with this command (after `exec`, so
this process receives Slurm's signals). It:

1. notes that it started (`started-<job id>.json`: node, restart count, time);
2. refuses to run a seed that was already retried once (a Slurm requeue of a resubmission);
3. checks that the frozen record copy it reads hashes to the fingerprint the queue computed
   (a results directory that is not really shared, or a changed copy, fails here, loudly);
4. runs the seed with `harness.reproduce.seeds.run_seed` and the runner named in the spec
   (local; docker; or local with the command wrapped by pyxis `srun --container-image` or
   `apptainer exec`): the same stamping by the harness clock, the same kill at the rule set's
   deadline, the same artifact and code measurement, the same result.json, written atomically;
   each stamped line also goes to the journal as it arrives (`slurm_journal.JournalRunner`).

Signals: USR1 (sent by `--signal=B:USR1@N` before the time limit) stops the run and the seed
reads TIMEOUT; TERM (scancel, preemption, node failure, the time limit itself) stops the run and
writes nothing: the queue reads Slurm's state for the reason. A job that finds its seed was
resubmitted after it (its node had been declared dead) stops and writes nothing either.

Exit status: 0 a result was written (whatever the seed's status), 1 an error before one could be,
3 not run (retried already, or superseded), 143 stopped by SIGTERM.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import atomic
from harness.runners.base import RunSpec, Runner
from harness.runners.slurm_journal import JournalRunner, Superseded, utc_iso
from harness.runners.workdir import read_only_inputs

EXIT_NOT_RUN = 3


# --- container mechanisms that wrap the command (the observer stays on the node) -------------
def node_read_only(spec: RunSpec, mounts: list[str]) -> list[str]:
    """The read-only mounts of a wrapped run: the data the Docker runner would mount
    (`workdir.read_only_inputs`, paths of the node, so not checked for existence here) and the
    configured `mounts`, each once."""
    ro = [str(p) for p in read_only_inputs(spec, Path(spec.workdir), must_exist=False)]
    return list(dict.fromkeys(ro + list(mounts)))


def pyxis_prefix(spec: RunSpec, image: str, mounts: list[str], gpus: bool) -> list[str]:
    """srun launches the run as a job step inside the image (pyxis/enroot). Mounted at their
    host paths: the seed's work directory read-write, the data and `mounts` read-only."""
    m = [f"{spec.workdir}:{spec.workdir}"] + [f"{p}:{p}:ro" for p in node_read_only(spec, mounts)]
    return ["srun", "--ntasks=1", "--overlap", f"--container-image={image}", f"--container-mounts={','.join(m)}",
            f"--container-workdir={spec.workdir}", "--no-container-mount-home", "--no-container-remap-root",
            "--export=ALL", "--kill-on-bad-exit=1"]


def apptainer_prefix(spec: RunSpec, image: str, mounts: list[str], gpus: bool) -> list[str]:
    """apptainer exec with a clean environment (only what the harness sets is passed in with
    --env), no home, the seed's work directory writable and the data read-only."""
    argv = ["apptainer", "exec", "--containall", "--cleanenv", "--no-home", "--pwd", str(spec.workdir),
            "--bind", f"{spec.workdir}:{spec.workdir}:rw"]
    for p in node_read_only(spec, mounts):
        argv += ["--bind", f"{p}:{p}:ro"]
    if gpus:
        argv.append("--nv")
    for k, v in sorted({**spec.env, "PYTHONUNBUFFERED": "1"}.items()):
        argv += ["--env", f"{k}={v}"]
    return argv + [image]


PREFIXES = {"pyxis": pyxis_prefix, "apptainer": apptainer_prefix}


class WrappedCommandRunner(Runner):
    """The local runner, with the seed's command run through a container launcher. The local
    runner still stamps, kills at the deadline and measures: this only changes the argv."""

    def __init__(self, inner: Runner, mechanism: str, image: str, mounts: list[str], gpus: bool):
        self.inner, self.mechanism, self.image, self.mounts, self.gpus = inner, mechanism, image, mounts, gpus
        self.name = inner.name

    def prepare(self, spec: RunSpec) -> Any:
        prefix = PREFIXES[self.mechanism](spec, self.image, self.mounts, self.gpus)
        return self.inner.prepare(replace(spec, argv=tuple(prefix + spec.command())))

    def start(self, prepared: Any) -> Any:
        return self.inner.start(prepared)

    def stream(self, handle: Any):
        return self.inner.stream(handle)

    def stop(self, handle: Any, reason: str) -> None:
        self.inner.stop(handle, reason)

    def collect(self, handle: Any):
        out = self.inner.collect(handle)
        out.details = {**out.details, "container": {"mechanism": self.mechanism, "image": self.image}}
        return out


def inner_runner(opts: dict[str, Any]) -> Runner:
    """The runner the job uses on the node, from the spec's `runner` entry."""
    from harness.runners import make_runner

    mechanism = opts.get("name", "local")
    gpus = bool(opts.get("gpus"))
    if mechanism in ("none", "local"):
        return make_runner("local")
    if mechanism == "docker":
        return make_runner("docker", image=opts.get("image") or None, gpus="all" if gpus else None)
    if mechanism in PREFIXES:
        if not opts.get("image"):
            raise ValueError(f"container mechanism {mechanism} needs an image (container.image in pgolf.toml)")
        return WrappedCommandRunner(make_runner("local"), mechanism, opts["image"], list(opts.get("mounts", [])), gpus)
    raise ValueError(f"unknown container mechanism {mechanism!r}")


# --- the job --------------------------------------------------------------------------------
def superseded(slurm_dir: Path, job_id: str) -> bool:
    """True when jobs.json lists a later submission of this seed than this job (an unreadable
    list says nothing: the job runs)."""
    from harness.errors import InputError
    from harness.runners.slurm import load_attempts

    try:
        attempts = load_attempts(slurm_dir)
    except InputError:
        return False
    ids = [str(a.get("job_id")) for a in attempts if isinstance(a, dict) and a.get("job_id")]
    return job_id in ids and ids[-1] != job_id


def _term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from harness.progress import Progress
    from harness.reproduce.claims import load_claims
    from harness.reproduce.seeds import record_fingerprint, run_seed
    from harness.runners.slurm import MAX_RETRIES, cfg_from_json

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.runners.slurm_job SPEC.json", file=sys.stderr)
        return 2
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    sdir = Path(spec["slurm_dir"])
    job_id = os.environ.get("SLURM_JOB_ID") or f"local{os.getpid()}"
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    now = time.time()
    info = {"job_id": job_id, "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(), "restart_count": restarts,
            "attempt": spec["attempt"], "started_unix": now, "started_utc": utc_iso(now), "pid": os.getpid()}
    atomic.write_json(sdir / f"started-{job_id}.json", info)
    print(f"pgolf slurm job {job_id}: seed {spec['seed']} of {spec['name']}, attempt {spec['attempt']}, "
          f"restart {restarts}, on {info['node']}", file=sys.stderr, flush=True)
    if spec["attempt"] - 1 + restarts > MAX_RETRIES:
        print(f"not run: this seed was already retried {MAX_RETRIES} time(s) after a cluster failure", file=sys.stderr)
        return EXIT_NOT_RUN
    if superseded(sdir, job_id):
        print("not run: the seed was resubmitted as a later job", file=sys.stderr)
        return EXIT_NOT_RUN

    near_limit = threading.Event()
    signal.signal(signal.SIGUSR1, lambda signum, frame: near_limit.set())
    signal.signal(signal.SIGTERM, _term)
    try:
        cfg = cfg_from_json(spec["repro"])
        fingerprint = record_fingerprint(cfg)
        if fingerprint != spec["fingerprint"]:
            print(f"error: the record at {cfg.record_dir} hashes to {fingerprint[:12]}, the queue submitted "
                  f"{spec['fingerprint'][:12]}: is the results directory on storage this node shares?", file=sys.stderr)
            return 1
        runner = JournalRunner(inner_runner(spec["runner"]), sdir / f"journal-{job_id}.tsv", job_id, info,
                               superseded=lambda: superseded(sdir, job_id), time_limit_near=near_limit)
        result = run_seed(cfg, runner, int(spec["seed"]), load_claims(Path(cfg.record_dir)), fingerprint,
                          Progress(sys.stderr, every_s=60.0), 1, 1)
    except Superseded as e:
        print(f"not written: {e}", file=sys.stderr)
        return EXIT_NOT_RUN
    except KeyboardInterrupt:
        print("stopped by SIGTERM (scancel, preemption, node failure or the time limit): no result written",
              file=sys.stderr)
        return 143
    except Exception:  # noqa: BLE001 - the queue reads this job's output file for the reason
        traceback.print_exc()
        return 1
    print(f"pgolf slurm job {job_id}: seed {spec['seed']} {result['status']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
