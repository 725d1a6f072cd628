"""`pgolf demo`: the whole product on a built-in record, on CPU, in a few minutes.

Steps, each through the same code a real review uses:
  1. data       `pgolf data synth` machinery: a SentencePiece tokenizer and shards, offline;
  2. record     harness/demo_record (a launcher for reference_impl, tiny configuration) plus a
                copy of reference_impl/, so every byte of code it needs is in the folder;
  3. submit     the "competitor" runs its seeds with the local runner (the same runner path as
                any reproduction) and the demo writes their logs and submission.json into it;
  4. audit      `pgolf audit` (static analysis of the record's code);
  5. check      `pgolf check` (limits and claims from the record's own logs);
  6. reproduce  `pgolf reproduce`: the "organizer" reruns the seeds, observes, compares, plots;
and a report (markdown, JSON, PNG plots) under ./pgolf-demo-<UTC time> or --out.

The data is not FineWeb, so the checks run under `ruleset.yaml`, written into the output folder:
the record track's rule set with PG-SCORE-001's validation byte total set to the UTF-8 bytes of
the synthetic validation text the evaluation scores (decoded with the tokenizer, counted
independently of the evaluation's byte tables). Every path in the reports is relative to the
output folder, and `report.json` follows the README's contract (`pgolf.report/1`, kind `demo`,
the audit, check and reproduction reports as its children).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import atomic, stats
from harness.errors import InputError
from harness.findings import exit_code

EPILOG = """\
examples:
  pgolf demo                          # ./pgolf-demo-<UTC time>/report.md, 3 seeds, CPU, a few minutes
  pgolf demo --out /tmp/demo --seeds 2
  pgolf demo --keep                   # also keep the dataset and every seed's work folder

exit codes: 0 nothing failed, 1 a rule failed (the report says which), 2 unusable call.
"""
DEMO_RECORD = Path(__file__).resolve().parent.parent / "demo_record"
SEEDS = (1337, 42, 2025)
DATA = {"vocab_size": 512, "train_tokens": 200_000, "val_tokens": 16_384}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole product on a built-in tiny record (CPU, minutes)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="output folder (default ./pgolf-demo-<UTC time>)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--nproc", type=int, default=1, help="processes per run (gloo on CPU; default 1)")
    p.add_argument("--keep", action="store_true", help="keep the dataset and the seeds' work folders")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def build_record(dst: Path) -> Path:
    """The demo record: the launcher and README from harness/demo_record, and reference_impl/."""
    import reference_impl

    shutil.copytree(DEMO_RECORD, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    src = Path(reference_impl.__file__).resolve().parent
    (dst / "reference_impl").mkdir()
    for p in sorted(src.glob("*.py")):
        shutil.copyfile(p, dst / "reference_impl" / p.name)
    return dst


def submission_from_runs(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What a competitor would write: the mean of the scored seeds and each seed's figures."""
    scored = [r for r in results if r["reproduced"].get("val_bpb") is not None]
    if not scored:
        raise InputError("the demo record's runs printed no score; see the logs", str(results[0]["log"]) if results else None)
    per_seed: dict[str, dict[str, Any]] = {}
    for r in scored:
        entry = {"val_bpb": r["reproduced"]["val_bpb"], "val_loss": r["reproduced"]["val_loss"]}
        if r["observed"].get("printed_total") is not None:
            entry["bytes_total"] = r["observed"]["printed_total"]
        per_seed[str(r["seed"])] = entry
    totals = [v["bytes_total"] for v in per_seed.values() if "bytes_total" in v]
    sub = {
        "name": "pgolf demo: reference implementation, tiny configuration on CPU",
        "author": "pgolf demo", "github_id": "pgolf", "date": dt.date.today().isoformat(), "track": "10min_16mb",
        "val_bpb": round(stats.mean([r["reproduced"]["val_bpb"] for r in scored]), 8),
        "seeds": [r["seed"] for r in scored], "seed_results": per_seed,
        "blurb": "The reference implementation run by `pgolf demo` on a small synthetic dataset.",
    }
    if totals:
        sub["bytes_total"] = max(totals)
    return sub


def demo_setting(name: str) -> str:
    """A setting of the demo record's TINY configuration, read from its source (never imported:
    importing it would set the harness's own environment)."""
    tree = ast.parse((DEMO_RECORD / "train_gpt.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TINY" for t in node.targets):
            return ast.literal_eval(node.value)[name]
    raise KeyError(name)


def validation_text_bytes(data_path: str, tokenizer_path: str, seq_len: int | None = None) -> int:
    """UTF-8 bytes of the validation text a reference_impl run scores: its validation tokens, cut
    as its evaluation cuts them (a whole number of `seq_len` windows plus one target; default: the
    demo record's TRAIN/EVAL_SEQ_LEN), decoded document by document (BOS separates documents)
    with the tokenizer."""
    import sentencepiece as spm

    from reference_impl.data import load_validation_tokens

    if seq_len is None:
        seq_len = max(int(demo_setting("TRAIN_SEQ_LEN")), int(demo_setting("EVAL_SEQ_LEN")))
    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    ids = load_validation_tokens(str(Path(data_path) / "fineweb_val_*.bin"), seq_len).tolist()
    docs: list[list[int]] = [[]]
    for i in ids:
        if i == sp.bos_id():
            docs.append([])
        else:
            docs[-1].append(i)
    return sum(len(sp.decode(d).encode("utf-8")) for d in docs if d)


def write_ruleset(path: Path, val_bytes: int, track: str = "track_10min_16mb") -> Path:
    """A track's rule set with PG-SCORE-001's total set to a synthetic validation text's bytes
    (a folder: `ruleset.yaml` in it)."""
    import yaml

    from harness.rulesets import HERE

    doc = yaml.safe_load((HERE / f"{track}.yaml").read_text())
    doc["name"] = "pgolf_demo_synthetic" if track == "track_10min_16mb" else f"pgolf_demo_synthetic_{track}"
    doc["checks"]["PG-SCORE-001"]["val_bytes"] = val_bytes
    path = path / "ruleset.yaml" if path.is_dir() else path
    atomic.write_text(path, f"# pgolf demo: the rules of {track}; PG-SCORE-001's total is the synthetic validation "
                      "text's UTF-8 bytes\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


def relative(value: Any, base: Path) -> Any:
    """`value` with every occurrence of the absolute folder `base` made relative to it: strings,
    and the strings inside lists, dicts and findings (for reports that stay valid when the output
    folder is moved or shared)."""
    root = str(base)
    if isinstance(value, str):
        # at a path boundary only: `/tmp/out/x` -> `x`, `--out /tmp/out --seeds` -> `--out . --seeds`,
        # but `/tmp/out2/x` is not inside `/tmp/out`
        return re.sub(re.escape(root) + r"(/|(?![\w-]|\.\w))", lambda m: "" if m.group(1) == "/" else ".", value) \
            if root in value else value
    if isinstance(value, dict):
        return {k: relative(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relative(v, base) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: relative(getattr(value, f.name), base)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def run_cli_json(args: list[str], out: Path, cwd: Path) -> dict[str, Any] | None:
    """Run a pgolf subcommand in a child process (as a user would, from the output folder, so
    the paths it reports are relative to it) and keep its JSON report."""
    import harness

    root = str(Path(harness.__file__).resolve().parent.parent)  # the child imports this very harness
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args, "--format", "json"],
                          capture_output=True, text=True, cwd=cwd, env=env)
    if proc.returncode not in (0, 1):
        atomic.write_text(out.with_suffix(".err.txt"), proc.stdout + proc.stderr)
        return {"error": f"`pgolf {' '.join(args)}` exited {proc.returncode}", "stderr": proc.stderr[-2000:]}
    atomic.write_text(out, proc.stdout)
    return json.loads(proc.stdout)


def prepare_out(out: Path) -> None:
    """Create the output folder; a file, a folder that is not empty or one that cannot be made
    is a usage error (exit 2) naming it, never a traceback."""
    if out.exists() and not out.is_dir():
        raise InputError("--out names a file, not a folder; give a new or empty folder", str(out))
    if out.is_dir() and any(out.iterdir()):
        raise InputError("output folder exists and is not empty; choose another --out", str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder: {e.strerror or e}", str(out)) from None


def run(args: argparse.Namespace) -> int:
    from harness.progress import make_progress

    if args.seeds < 1 or args.nproc < 1:
        raise InputError("--seeds and --nproc must be at least 1")
    t0 = time.monotonic()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = (args.out or Path.cwd() / f"pgolf-demo-{stamp}").resolve()
    prepare_out(out)
    progress = make_progress(sys.stderr, quiet=args.quiet)
    try:
        return _run(args, out, progress, t0)
    finally:
        progress.close()


def _run(args: argparse.Namespace, out: Path, progress, t0: float) -> int:
    from harness.cli import COMMANDS
    from harness.reproduce.seeds import ReproConfig, run_seeds
    from harness.reproduce.report import build_report, write_report
    from reference_impl.synth import synthesize  # what `pgolf data synth` runs

    timings: dict[str, float] = {}

    def step(name: str, t: float) -> None:
        timings[name] = round(time.monotonic() - t, 2)
        progress.write(f"pgolf demo: {name} done in {timings[name]:.1f} s")

    t = time.monotonic()
    progress.write(f"pgolf demo: synthesizing a dataset into {out / 'data'}")
    data = synthesize(out / "data", **DATA)
    ruleset = write_ruleset(out, validation_text_bytes(data.data_path, data.tokenizer_path))
    step("data", t)

    t = time.monotonic()
    record = build_record(out / "record")
    seeds = list(SEEDS[: args.seeds]) + [SEEDS[-1] + i for i in range(1, args.seeds - len(SEEDS) + 1)]
    base = dict(seeds=seeds, data_path=data.data_path, tokenizer_path=data.tokenizer_path,
                vocab_size=data.vocab_size, nproc=args.nproc, tolerance=0.003, ruleset=str(ruleset))
    progress.write(f"pgolf demo: the competitor runs seeds {','.join(map(str, seeds))} of {record}")
    submitted = run_seeds(ReproConfig(record_dir=record, out_dir=out / "submit", **base), progress=progress)
    for r in submitted:
        shutil.copyfile(out / "submit" / r["log"], record / Path(r["log"]).name)
    atomic.write_json(record / "submission.json", submission_from_runs(submitted))
    step("submit", t)

    reports: dict[str, Any] = {}
    available = {c for c in COMMANDS if importlib.util.find_spec(f"harness.commands.{c}") is not None}
    for name, extra in (("audit", []), ("check", ["--ruleset", ruleset.name])):
        t = time.monotonic()
        if name in available:
            reports[name] = run_cli_json([name, record.name, *extra], out / f"{name}.json", cwd=out)
            step(name, t)
        else:
            reports[name] = {"skipped": f"`pgolf {name}` is not part of this build"}

    t = time.monotonic()
    progress.write("pgolf demo: the organizer reproduces the record")
    cfg = ReproConfig(record_dir=record, out_dir=out / "reproduce", **base)
    results = run_seeds(cfg, progress=progress)
    report = relative(build_report(cfg, results), out)
    write_report(report, out / "reproduce")
    step("reproduce", t)

    if not args.keep:
        shutil.rmtree(out / "data", ignore_errors=True)
        for d in list((out / "submit").glob("seed_*/work")) + list((out / "reproduce").glob("seed_*/work")):
            shutil.rmtree(d, ignore_errors=True)
    timings["total"] = round(time.monotonic() - t0, 2)
    summary = write_summary(out, record, reports, report, timings)
    print(summary.read_text())
    print(f"pgolf demo: everything is in {out} (report.md, report.json, reproduce/plots/*.png) "
          f"— {timings['total']:.0f} s", file=sys.stderr)
    verdicts = [report.verdict.value] + [r.get("verdict") for r in reports.values() if isinstance(r, dict)]
    return 1 if "FAIL" in verdicts else exit_code(report.verdict)


def write_summary(out: Path, record: Path, reports: dict[str, Any], repro, timings: dict[str, float]) -> Path:
    from harness.reproduce.report import render_markdown

    lines = ["# pgolf demo", "",
             f"The reference implementation packaged as a record (`{record.relative_to(out)}/`), run by a "
             "competitor, audited, checked, and reproduced by an organizer. Times (s): "
             + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()), ""]
    for name, rep in reports.items():
        if not isinstance(rep, dict) or "verdict" not in rep:
            lines += [f"## `pgolf {name}`: not run", "", f"{(rep or {}).get('skipped') or (rep or {}).get('error')}", ""]
            continue
        lines += [f"## `pgolf {name} record/`: **{rep['verdict']}**", ""]
        fs = rep.get("findings", []) + [f for c in rep.get("children", []) for f in c.get("findings", [])]
        lines += [f"- **{f['id']}** {f['severity']}: {f['message']}" for f in fs] or ["- no findings"]
        lines += ["", f"Full report: `{name}.json`", ""]
    md = render_markdown(repro).replace("](plots/", "](reproduce/plots/")
    lines += [md.replace("## Reproduction", "## `pgolf reproduce record/`: Reproduction", 1)]
    path = out / "report.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    atomic.write_json(out / "report.json", combined_report(out, record, reports, repro, timings))
    return path


def combined_report(out: Path, record: Path, reports: dict[str, Any], repro, timings: dict[str, float]) -> dict[str, Any]:
    """The demo's report.json in the README's contract: kind `demo`, subject the record folder,
    the verdict rolled up over its children (the audit, check and reproduction reports), paths
    relative to the output folder."""
    from harness.report import SCHEMA, make_stamp

    children = [r for r in reports.values() if isinstance(r, dict) and r.get("schema") == SCHEMA] + [repro.to_dict()]
    verdicts = [c.get("verdict") for c in children]
    verdict = "FAIL" if "FAIL" in verdicts else "REVIEW" if "REVIEW" in verdicts else "PASS"
    data = {"record": record.relative_to(out).as_posix(), "timings": timings,
            "not_run": {k: v for k, v in reports.items() if not (isinstance(v, dict) and v.get("schema") == SCHEMA)},
            "files": {"record": "record/", "audit": "audit.json", "check": "check.json", "ruleset": "ruleset.yaml",
                      "reproduce": "reproduce/report.json", "plots": "reproduce/plots/"}}
    return relative({"schema": SCHEMA, "kind": "demo", "subject": record.relative_to(out).as_posix(), "verdict": verdict,
                     "findings": [], "data": data, "stamp": make_stamp(), "children": children}, out)
