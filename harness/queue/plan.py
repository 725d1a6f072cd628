"""Records -> queue entries -> queue.json: what the queue will run, decided once and kept on disk.

Each record is copied into its results folder (`OUT/slurm/record/`) before anything is
submitted: the nodes read that frozen copy from shared storage, so a checkout that moves on to
the next pull request while the jobs wait cannot change what they run. Its fingerprint (the
record's files and the run settings, as `pgolf reproduce` computes it) goes into the queue file
and every job spec; a rerun with a changed record refuses to mix results (`--force` redoes it).

Where a record's seeds run:
- `--gres=gpu:N` with N the GPUs of the record's track (`hardware_gpus` in its rule set, 8 for
  the record track) when the nodes have GPUs (`gpus_per_node` > 0), and the run uses all N;
  on CPU nodes no GPU is asked for and the run uses `--nproc` processes;
- `--time` = the seed's kill deadline (train + eval budgets + grace of the rule set, or
  `--timeout`) + `time_margin_s`; a track without a deadline gets `max_time` or the partition's.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import atomic
from harness.errors import InputError
from harness.queue.config import ClusterConfig
from harness.runners.slurm import SeedJob, cfg_from_json, cfg_to_json

QUEUE_SCHEMA = "pgolf.queue/1"
DEFAULT_TRACK_GPUS = 8  # rules.md: a record trains in 10 minutes on 8×H100 SXM


@dataclass
class RecordEntry:
    """One record of the queue: where its results go and how its seeds are submitted."""

    name: str
    record: str  # the folder as given
    out: str  # its results folder (OUT): seed_<S>/, slurm/, report.*
    seeds: list[int]
    repro: dict[str, Any]  # the ReproConfig the job runs (record_dir = the frozen copy)
    fingerprint: str
    gpus: int = 0
    time_limit_s: float | None = None
    inner: dict[str, Any] = field(default_factory=lambda: {"name": "local"})

    def job_cfg(self) -> Any:
        return cfg_from_json(self.repro)

    def report_cfg(self) -> Any:
        """The config reports are built with: the record as given when it still matches what ran,
        else the frozen copy (the report then names the copy)."""
        from harness.reproduce.seeds import record_fingerprint

        cfg = self.job_cfg()
        original = replace(cfg, record_dir=Path(self.record))
        if Path(self.record).is_dir() and record_fingerprint(original) == self.fingerprint:
            return original
        return cfg

    def jobs(self) -> list[SeedJob]:
        cfg = self.job_cfg()
        return [SeedJob(self.name, cfg, s, self.fingerprint, self.gpus, self.time_limit_s, self.inner) for s in self.seeds]


def track_gpus(cfg: Any) -> int:
    """GPUs the record's track runs on (`hardware_gpus` in its rule set, else 8)."""
    from harness.rulesets import load_ruleset, ruleset_for_track

    rs = load_ruleset(cfg.ruleset or ruleset_for_track(cfg.resolved_budgets().track))
    return int(rs.extra.get("hardware_gpus", DEFAULT_TRACK_GPUS))


def inner_runner_opts(cluster: ClusterConfig, gpus: int) -> dict[str, Any]:
    c = cluster.container
    return {"name": c.mechanism, "image": c.image, "gpus": gpus, "mounts": list(cluster.paths.mounts)}


def stage_record(record: Path, out: Path, force: bool) -> Path:
    """Copy the record into OUT/slurm/record (once; again with --force)."""
    from harness.runners.local import copy_record

    staged = out / "slurm" / "record"
    if staged.exists() and not force:
        return staged
    staged.parent.mkdir(parents=True, exist_ok=True)
    tmp = staged.with_name("record.tmp")
    copy_record(record, tmp)
    if staged.exists():
        shutil.rmtree(staged)
    tmp.rename(staged)
    return staged


def plan_record(cfg: Any, name: str, cluster: ClusterConfig) -> RecordEntry:
    """A queue entry for `cfg` (a ReproConfig of the record as given, with its seeds and out)."""
    from harness.reproduce.seeds import check_paths, record_fingerprint

    check_paths(cfg)
    record, out = Path(cfg.record_dir), Path(cfg.out_dir)
    budgets = cfg.resolved_budgets()
    gpus = 0
    nproc = cfg.nproc
    if cluster.slurm.gpus_per_node > 0:
        gpus = track_gpus(cfg)
        if gpus > cluster.slurm.gpus_per_node:
            where = cluster.source or "the cluster config"
            raise InputError(f"{name}: its track runs on {gpus} GPUs but slurm.gpus_per_node is "
                             f"{cluster.slurm.gpus_per_node}: one seed must fit on one node", where)
        nproc = gpus
    kill = cfg.timeout_s if cfg.timeout_s is not None else budgets.kill_after_s
    limit = kill + cluster.slurm.time_margin_s if math.isfinite(kill) else None
    wanted = replace(cfg, nproc=nproc, runner="slurm", budgets=budgets)
    fingerprint = record_fingerprint(wanted)
    staged = stage_record(record, out, cfg.force)
    job_cfg = replace(wanted, record_dir=staged.resolve(), out_dir=out.resolve())
    if record_fingerprint(job_cfg) != fingerprint:
        raise InputError(f"{name}: the record changed since it was queued into {staged} "
                         "(use --force to queue it again, or another --out)", str(record))
    return RecordEntry(name, str(record), str(out.resolve()), list(cfg.seeds), cfg_to_json(job_cfg), fingerprint,
                       gpus, limit, inner_runner_opts(cluster, gpus))


# --- queue.json -------------------------------------------------------------------------------
def queue_file(qdir: Path) -> Path:
    return Path(qdir) / "queue.json"


def load_queue(qdir: Path) -> list[RecordEntry]:
    p = queue_file(qdir)
    if not p.is_file():
        return []
    try:
        doc = json.loads(p.read_text())
        if doc.get("schema") != QUEUE_SCHEMA:
            raise ValueError(f"not a {QUEUE_SCHEMA} file")
        return [RecordEntry(**e) for e in doc["records"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable queue file ({e})", str(p)) from None


def save_queue(qdir: Path, entries: list[RecordEntry], cluster: ClusterConfig) -> None:
    from dataclasses import asdict

    atomic.write_json(queue_file(qdir), {"schema": QUEUE_SCHEMA,
                                         "updated_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "cluster": cluster.to_dict(), "records": [asdict(e) for e in entries]})


def merge(existing: list[RecordEntry], new: list[RecordEntry], force: bool) -> list[RecordEntry]:
    """Add new records (and new seeds of a queued record) to a queue; a record queued with other
    files or settings is refused unless --force replaces it."""
    by_out = {e.out: e for e in existing}
    for e in new:
        old = by_out.get(e.out)
        if old is None or force:
            by_out[e.out] = e
            continue
        if old.fingerprint != e.fingerprint:
            raise InputError(f"{e.name}: queued earlier from a different record or settings; use --force to redo "
                             "it or choose another --out", e.record)
        old.seeds = old.seeds + [s for s in e.seeds if s not in old.seeds]
    return list(by_out.values())
