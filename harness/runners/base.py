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


def tsv_row(t: float, stream: str, text: str) -> str:
    r"""One stamped line as a row of `stamps_seed<S>.tsv` (and of a run's capture file and a
    Slurm journal): `<seconds, 6 decimals>\t<stream>\t<text>\n`. The text holds no line break
    (`capture.clean_text`); a tab in it is kept, the split stops at the second."""
    return f"{t:.6f}\t{stream}\t{text}\n"


@dataclass(frozen=True)
class StampedLine:
    """One output line and when the harness saw it (seconds since the child started)."""

    t: float
    text: str
    stream: str = "stdout"  # "stdout" or "stderr"

    def tsv(self) -> str:
        r"""This line as a stamps row (`tsv_row`).

        >>> StampedLine(1.5, "step:1\tok").tsv()
        '1.500000\tstdout\tstep:1\tok\n'
        """
        return tsv_row(self.t, self.stream, self.text)

    @classmethod
    def from_tsv(cls, row: str) -> "StampedLine":
        r"""The line a stamps row holds (the inverse of `tsv`, to the microsecond); ValueError
        when the row is not one.

        >>> StampedLine.from_tsv("1.500000\tstderr\tstep:1\tok\n")
        StampedLine(t=1.5, text='step:1\tok', stream='stderr')
        """
        parts = row.rstrip("\n").split("\t", 2)
        if len(parts) != 3:
            raise ValueError(f"not a stamped line (<seconds>\\t<stream>\\t<text>): {row[:80]!r}")
        return cls(float(parts[0]), parts[2], parts[1])


def env_added(final: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """The variables of a run's environment `final` that the runner set beyond `base` (what the
    run would have had anyway: the spec's `env`, plus what a local run inherits), or changed:
    the outcome's `env_added`, so a report says every variable the harness put there.

    >>> env_added({"SEED": "1", "PYTHONPATH": "/hook:/x", "A": "1"}, {"SEED": "1", "PYTHONPATH": "/x"})
    {'PYTHONPATH': '/hook:/x', 'A': '1'}
    """
    return {k: v for k, v in final.items() if base.get(k) != v}


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
