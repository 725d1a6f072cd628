"""The runner interface: how one seed of a submission is run, observed and collected.

A runner knows *where* code runs (a local process group, a Docker container, later a Slurm or
Kubernetes job); it knows nothing of rules. Reproduction drives every runner the same way:

    prepared = runner.prepare(spec)        # work dir, environment, command; nothing runs yet
    handle = runner.start(prepared)        # the child starts in its own process group / container
    for line in runner.stream(handle):     # every output line, stamped by the harness clock
        ...                                # (the caller may call runner.stop(handle, reason))
    outcome = runner.collect(handle)       # exit status, files written, the stamped lines

Stamps are taken by the harness on arrival (`time.monotonic()` relative to the start), never
parsed from what the submission printed: observation beats self-report (design.md).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to run one seed. `env` holds only what the harness sets on purpose
    (SEED, DATA_PATH, TOKENIZER_PATH, VOCAB_SIZE, RUN_ID); nothing else of the record changes."""

    record_dir: Path  # the record folder as submitted (never modified)
    workdir: Path  # a fresh copy of record_dir for this seed
    seed: int
    env: dict[str, str]
    nproc: int = 1
    entry: str = "train_gpt.py"
    timeout_s: float = 1230.0  # train budget + eval budget + grace, from the ruleset
    data_dir: Path | None = None  # mounted read-only by isolating runners
    extra: dict[str, Any] = field(default_factory=dict)
    # The exact command, when not the standard torchrun launch: e.g. ("python", "train_gpt.py")
    # for a record that is not distributed, or for the harness's own test scripts.
    argv: tuple[str, ...] = ()

    def command(self) -> list[str]:
        if self.argv:
            return list(self.argv)
        return ["torchrun", "--standalone", f"--nproc_per_node={self.nproc}", self.entry]


@dataclass(frozen=True)
class StampedLine:
    """One output line and when the harness saw it (seconds since the child started)."""

    t: float
    text: str
    stream: str = "stdout"  # "stdout" or "stderr"


@dataclass
class RunOutcome:
    seed: int
    exit_code: int | None
    timed_out: bool
    stop_reason: str | None  # why the harness stopped the run, if it did ("timeout", "interrupt")
    started_utc: str
    wall_seconds: float
    # Every line the run printed, in arrival order: a list, or (local and docker runners) a
    # `capture.OutputLog`, a sequence kept on disk so a flood of output costs no memory.
    lines: Sequence[StampedLine]
    files: dict[str, int]  # path relative to workdir -> size in bytes, after the run
    runner: str = "local"
    details: dict[str, Any] = field(default_factory=dict)


class Runner(abc.ABC):
    """Base class of runners; see the module docstring for the protocol."""

    name: str = "abstract"

    @abc.abstractmethod
    def prepare(self, spec: RunSpec) -> Any: ...

    @abc.abstractmethod
    def start(self, prepared: Any) -> Any: ...

    @abc.abstractmethod
    def stream(self, handle: Any) -> Iterator[StampedLine]: ...

    @abc.abstractmethod
    def stop(self, handle: Any, reason: str) -> None: ...

    @abc.abstractmethod
    def collect(self, handle: Any) -> RunOutcome: ...
