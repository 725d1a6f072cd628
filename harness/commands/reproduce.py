"""`pgolf reproduce RECORD_DIR`: run a record's seeds, observe the limits, compare with its claims."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.findings import exit_code

EPILOG = """\
examples:
  pgolf reproduce records/track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon \\
      --data /data/fineweb10B_sp1024 --tokenizer /data/tokenizers/fineweb_1024_bpe.model --vocab-size 1024
  pgolf reproduce RECORD --seeds 1337 --data D --tokenizer T.model   # spot-check one seed of three
  pgolf reproduce RECORD --seeds 1337,42 --out repro/       # rerun the same command to resume
  pgolf reproduce RECORD --force --against records/track_10min_16mb/<current record>
  pgolf reproduce RECORD --nproc 2 --timeout 120 --format markdown > repro.md
  pgolf reproduce RECORD --runner docker           # no network, read-only data, pinned image
  pgolf reproduce RECORD --runner local            # trusted code only: no isolation at all
  pgolf reproduce RECORD --runner slurm --partition h100 --account review   # each seed a Slurm job (see pgolf queue -h)

Each seed runs in a fresh copy of the record (OUT/seed_<S>/work) as
  torchrun --standalone --nproc_per_node=N train_gpt.py
with only SEED, DATA_PATH, TOKENIZER_PATH, VOCAB_SIZE, RUN_ID set (and PYTHONUNBUFFERED=1), in its
own PID namespace and cgroup, killed at train + eval budget + grace of the record's rule set.
The runner is Docker (no network, read-only data and root, bounded pids, memory and work folder)
whenever an engine answers and the pinned image is built; otherwise, or with --runner local, the
local runner, which isolates nothing (trusted code only). Every line is
stamped by the harness on arrival; times and bytes are measured, not read from the log.
Finished seeds are kept (OUT/seed_<S>/result.json) and skipped when the command is rerun;
Ctrl-C stops the running seed cleanly. The report goes to OUT/report.{txt,md,json} and OUT/plots/.

Before any seed runs, the inputs are checked (exit 2 naming what is wrong): --data holds
fineweb_val_*.bin and fineweb_train_*.bin shards, --tokenizer is a SentencePiece model, and its
vocabulary agrees with --vocab-size, the record's logs (vocab_size, tokenizer name, validation
token count) and a data folder named *_sp<N>. VOCAB_SIZE defaults to the tokenizer's piece count.
--skip-input-check runs a record that reads another layout (the report says so).

A subset of the claimed seeds (--seeds 1337 of 1337,42,2025) compares each seed with its own
claim; the mean, the seed count and significance are reported "not evaluated: subset of seeds",
and the verdict is about the seeds that ran.

exit codes: 0 nothing failed, 1 a rule failed, 2 unusable input, 130 interrupted.
"""


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds: need distinct seeds, got {text!r}")
    return seeds


def default_seeds(record_dir: Path) -> list[int]:
    """The seeds the record claims (submission.json or its logs), else the usual three."""
    from harness.reproduce.claims import load_claims

    seeds = sorted(load_claims(record_dir).per_seed_bpb)
    return seeds or [1337, 42, 2025]


def check_run_args(args: argparse.Namespace) -> None:
    """The options `pgolf reproduce` and `pgolf queue` share, checked before anything runs."""
    if args.tolerance < 0:
        raise InputError("--tolerance must be >= 0")
    if args.against is not None and not args.against.is_dir():
        raise InputError("no such record folder (--against)", str(args.against))


def checked_inputs(args: argparse.Namespace, record: Path) -> tuple[int | None, dict[str, Any]]:
    """--data, --tokenizer and --vocab-size checked against each other and the record before any
    seed runs or is queued (harness.reproduce.inputs; exit 2 naming what is wrong): the VOCAB_SIZE
    to run with and what was established, or, with --skip-input-check, that nothing was."""
    if args.skip_input_check:
        return args.vocab_size, {"skipped": "--skip-input-check: data and tokenizer not checked"}
    from harness.reproduce.claims import load_claims
    from harness.reproduce.inputs import check_inputs

    checked = check_inputs(args.data, args.tokenizer, args.vocab_size, load_claims(record).tokenizer)
    for note in checked.notes:
        print(f"pgolf: note: {record}: {note}", file=sys.stderr)
    return checked.vocab_size_env, checked.to_dict()


def _has_gpus() -> bool:
    import shutil

    return shutil.which("nvidia-smi") is not None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run a record's seeds and compare with its claims",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record", type=Path, help="the record folder (with train_gpt.py)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the record's claimed seeds, else 1337,42,2025)")
    p.add_argument("--out", type=Path, help="output folder (default ./pgolf-reproduce-<record name>)")
    p.add_argument("--data", help="DATA_PATH for the runs (the dataset folder)")
    p.add_argument("--tokenizer", help="TOKENIZER_PATH for the runs")
    p.add_argument("--vocab-size", type=int, help="VOCAB_SIZE for the runs (default: the tokenizer's piece count)")
    p.add_argument("--skip-input-check", action="store_true",
                   help="do not check --data/--tokenizer before running (a record with its own data layout)")
    p.add_argument("--nproc", type=int, help="processes per node (default: all GPUs, 1 on CPU)")
    p.add_argument("--runner", choices=("auto", "local", "docker", "slurm"), default="auto",
                   help="auto (default): docker when an engine answers and the pinned image is present, else local; "
                        "docker: a locked-down container of the pinned image; local: this machine, no isolation; "
                        "slurm: one Slurm job per seed (see `pgolf queue --help`)")
    p.add_argument("--image", help="docker runner: the image (default: the one this checkout pins)")
    p.add_argument("--launcher", choices=("torchrun", "python"), default="torchrun",
                   help="torchrun (default) or plain `python train_gpt.py` for a record that is not distributed")
    p.add_argument("--tolerance", type=float, default=0.003, help="allowed |reproduced - claimed| val_bpb (default 0.003)")
    p.add_argument("--against", type=Path, help="record folder to beat (significance on reproduced val_loss)")
    p.add_argument("--ruleset", help="rule set name or path (default: from the record's track)")
    p.add_argument("--timeout", type=float, help="kill each seed after this many seconds (default: ruleset budgets + grace)")
    p.add_argument("--force", action="store_true", help="redo seeds that already have a result")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="what to print at the end")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    from harness.commands.queue import add_cluster_options

    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.progress import make_progress
    from harness.reproduce.seeds import ReproConfig, run_seeds
    from harness.reproduce.report import build_report, render_markdown, render_text, write_report
    from harness.report import render
    from harness.runners import make_runner
    from harness.runners.local import default_nproc

    t_start = time.monotonic()
    record = args.record
    if not record.is_dir():
        raise InputError("no such record folder", str(record))
    check_run_args(args)
    from harness.runners import choose_runner

    gpus = "all" if _has_gpus() else None
    if args.runner == "slurm":
        runner_name, runner_why = "slurm", "asked for (--runner slurm)"
    else:
        runner_name, runner_why = choose_runner(args.runner, args.image, gpus)
    seeds = parse_seeds(args.seeds) if args.seeds else default_seeds(record)
    vocab_size, inputs = checked_inputs(args, record)
    out = args.out or Path.cwd() / f"pgolf-reproduce-{record.resolve().name}"
    cfg = ReproConfig(record_dir=record, out_dir=out, seeds=seeds, data_path=args.data,
                      tokenizer_path=args.tokenizer, vocab_size=vocab_size,
                      nproc=args.nproc or default_nproc(), launcher=args.launcher, tolerance=args.tolerance,
                      force=args.force, against=args.against, ruleset=args.ruleset, timeout_s=args.timeout,
                      runner=runner_name, inputs=inputs)
    if runner_name == "slurm":
        from harness.commands.queue import reproduce_on_slurm

        return reproduce_on_slurm(args, cfg)
    runner = make_runner("local") if runner_name == "local" else make_runner("docker", image=args.image, gpus=gpus)
    progress = make_progress(sys.stderr, quiet=args.quiet)
    progress.write(f"pgolf reproduce: {record} seeds {','.join(map(str, seeds))} -> {out} "
                   f"(setup {time.monotonic() - t_start:.2f} s)")
    progress.write(f"runner: {runner_name}: {runner_why}")
    try:
        results = run_seeds(cfg, runner=runner, progress=progress)
    finally:
        progress.close()
    report = build_report(cfg, results)
    report.data["runner_chosen"] = {"runner": runner_name, "why": runner_why}
    paths = write_report(report, out)
    text = {"text": render_text, "markdown": render_markdown}.get(args.format)
    sys.stdout.write(text(report) if text else render("json", report))
    print(f"report: {paths['markdown']} (also {paths['json'].name}, {paths['text'].name}, plots/)", file=sys.stderr)
    return exit_code(report.verdict)
