"""The cluster settings of `pgolf queue` and `pgolf reproduce --runner slurm`: one small TOML file.

Found at `--config FILE`, else `$PGOLF_CONFIG`, else `./pgolf.toml`; every key is optional and
command-line options override it. A wrong key or value is unusable input: the error names the
file and the line (exit 2), and nothing is submitted.

    [slurm]
    partition = "h100"            # sbatch --partition
    account = "pgolf-review"      # sbatch --account
    qos = ""                      # sbatch --qos
    gpus_per_node = 8             # GPUs on each node; 0 = CPU nodes (no --gres)
    gres = "gpu"                  # gres name: "gpu:h100" gives --gres=gpu:h100:8
    exclusive = true              # the whole node for each seed (--exclusive)
    cpus_per_task = 0             # --cpus-per-task (0: not asked; --exclusive gets them all)
    mem = ""                      # --mem ("0": all of the node's memory)
    time_margin_s = 300           # --time = the rule set's kill deadline + this margin
    signal_before_s = 120         # --signal=B:USR1@N: the job stops its run cleanly, reads TIMEOUT
    max_time = ""                 # --time for a track without a deadline (e.g. "4:00:00"; "" = partition default)
    extra_args = []               # more sbatch options, e.g. ["--constraint=h100", "--reservation=pgolf"]
    poll_s = 1.0                  # how often result files and journals are read
    state_poll_s = 5.0            # how often squeue/sacct are asked (one call for all jobs)
    settle_grace_s = 20.0         # a job ended without a result: wait this long for one (NFS caches)

    [container]
    mechanism = "none"            # none | docker | pyxis | apptainer
    image = ""                    # docker: tag (default: the pinned image); pyxis: .sqsh or ref; apptainer: .sif

    [paths]
    results = ""                  # default --out of `pgolf queue`: on storage every node mounts
    python = ""                   # the Python on the nodes (default: the one running pgolf)
    pgolf = ""                    # the pgolf checkout on the nodes (default: this one)
    path = ""                     # PATH in the job (default: this shell's PATH)
    mounts = []                   # pyxis/apptainer: more host paths to mount, e.g. the dataset folder
"""
from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from audit.safe_read import UnsafeRead, read_capped
from harness.errors import InputError

MECHANISMS = ("none", "docker", "pyxis", "apptainer")
DEFAULT_FILE = "pgolf.toml"


@dataclass
class SlurmSettings:
    partition: str = ""
    account: str = ""
    qos: str = ""
    gpus_per_node: int = 0
    gres: str = "gpu"
    exclusive: bool = True
    cpus_per_task: int = 0
    mem: str = ""
    time_margin_s: float = 300.0
    signal_before_s: int = 120
    max_time: str = ""
    extra_args: list[str] = field(default_factory=list)
    poll_s: float = 1.0
    state_poll_s: float = 5.0
    settle_grace_s: float = 20.0


@dataclass
class ContainerSettings:
    mechanism: str = "none"
    image: str = ""


@dataclass
class PathSettings:
    results: str = ""
    python: str = ""
    pgolf: str = ""
    path: str = ""
    mounts: list[str] = field(default_factory=list)


@dataclass
class ClusterConfig:
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    container: ContainerSettings = field(default_factory=ContainerSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    source: str | None = None  # the file it was read from

    # -- what the job needs, with defaults filled -------------------------------------------
    def python(self) -> str:
        return self.paths.python or sys.executable

    def pgolf_root(self) -> str:
        if self.paths.pgolf:
            return self.paths.pgolf
        import harness

        return str(Path(harness.__file__).resolve().parent.parent)

    def job_path(self) -> str:
        return self.paths.path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")

    def to_dict(self) -> dict[str, Any]:
        return {s: {f.name: getattr(getattr(self, s), f.name) for f in fields(getattr(self, s))}
                for s in ("slurm", "container", "paths")}


SECTIONS = {"slurm": SlurmSettings, "container": ContainerSettings, "paths": PathSettings}


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """The line of `[section]` (key None) or of `key = ...` inside it: tomllib keeps no positions."""
    current = None
    for i, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        m = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", s)
        if m:
            current = m.group(1)
            if key is None and current == section:
                return i
            continue
        if key is not None and current == section and re.match(rf"^{re.escape(key)}\s*=", s):
            return i
    return None


def _coerce(value: Any, default: Any, where: tuple[str, int | None], name: str) -> Any:
    path, line = where
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{name}: expected true or false, got {value!r}", path, line)
        return value
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InputError(f"{name}: must be >= 0, got {value}", path, line)
        return value
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise InputError(f"{name}: must be >= 0, got {value}", path, line)
        return float(value)
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, list) and isinstance(value, list) and all(isinstance(x, str) for x in value):
        return list(value)
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list of strings"}[type(default)]
    raise InputError(f"{name}: expected {kind}, got {value!r}", path, line)


def load_config(path: str | os.PathLike | None = None) -> ClusterConfig:
    """Read the config file (see the module docstring), or the defaults when there is none."""
    explicit = path is not None or bool(os.environ.get("PGOLF_CONFIG"))
    p = Path(path or os.environ.get("PGOLF_CONFIG") or DEFAULT_FILE)
    if not p.is_file():
        if explicit:
            raise InputError("no such config file", str(p))
        return ClusterConfig()
    try:
        raw = read_capped(p, 1 << 20)
    except UnsafeRead as e:
        raise InputError(f"config file not readable ({e.reason})", str(p)) from None
    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", str(p)) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise InputError(f"not valid TOML: {e}", str(p), int(m.group(1)) if m else None) from None
    cfg = ClusterConfig(source=str(p))
    for section, value in doc.items():
        if section not in SECTIONS:
            raise InputError(f"unknown section [{section}] (known: {', '.join(SECTIONS)})", str(p),
                             _line_of(text, section, None))
        if not isinstance(value, dict):
            raise InputError(f"{section} must be a [section]", str(p), _line_of(text, section, None))
        target = getattr(cfg, section)
        known = {f.name: f for f in fields(target)}
        for key, v in value.items():
            line = _line_of(text, section, key)
            if key not in known:
                raise InputError(f"unknown key {section}.{key} (known: {', '.join(known)})", str(p), line)
            setattr(target, key, _coerce(v, getattr(target, key), (str(p), line), f"{section}.{key}"))
    if cfg.container.mechanism not in MECHANISMS:
        raise InputError(f"container.mechanism: {cfg.container.mechanism!r} is not one of {', '.join(MECHANISMS)}",
                         str(p), _line_of(text, "container", "mechanism"))
    return cfg
