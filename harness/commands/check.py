"""`pgolf check`: a record folder's limits and claims, judged from its own files.

One folder gives one report (text, json or markdown); `--all TREE` checks every record folder
under a records tree and prints one row per record. Exit codes (design.md): 0 nothing failed,
1 a rule failed (for --all: any record failed), 2 unusable input (missing folder, no logs, bad
JSON, unknown rule set) — with the file and line in the message.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from harness.atomic import write_text
from harness.errors import InputError
from harness.findings import Finding, Location, Severity, Verdict, exit_code

EPILOG = """\
examples:
  pgolf check records/track_10min_16mb/2026-04-09_A2_Muon097_3Seed
  pgolf check MY_RECORD --against records/track_10min_16mb/2026-04-09_A2_Muon097_3Seed
  pgolf check MY_RECORD --against-losses 2.7879,2.7901,2.7885 --format json
  pgolf check repro_out/ --ruleset track_10min_16mb          # a plain folder of logs + submission.json
  pgolf check --all ../shared/corpus/records                  # one row per record
  pgolf check --all ../shared/corpus/records --format json --output all.json

what is checked (rule set chosen from the folder's track, or --ruleset NAME|FILE.yaml):
  bytes  total <= 16,000,000 per seed; printed total = code + model
  time   train_time at stop <= 600 s (+ one step), GPTQ calibration on training data included;
         scored eval phase <= 600 s; all phases (warning)
  seeds  at least 3 distinct seeds with logs (record track); extra runs over a limit (warning)
  claims submission.json val_bpb = mean of per-seed scores; bytes_total = max; seed_results match
  score  val_loss * val_tokens / (val_bpb * ln 2) = the FineWeb validation bytes (151,080,000)
  stats  with --against/--against-losses: one-sided Welch t-test, >= 0.005 nats at p < 0.01,
         per token on a shared tokenizer, else per byte (val_bpb * ln 2); the output names the unit
Severity (harness/rulesets/README.md): a broken limit or a misreported score is an error; a
misreported figure that still meets every limit (bytes_total the mean, seed_results steps) a warning.
The `logs` table gives every file of the folder its role (scored, extra run, other file).
The scored phase of each seed is the one whose val_bpb matches the claim (else the phase the other
seeds matched, else the last _exact phase); the output says which and why.

exit codes: 0 nothing failed, 1 a rule failed, 2 unusable input.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check", help="check a record folder's limits and claims against its own logs",
        description="Check a record folder (or a whole records tree with --all) against a rule set.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("record", nargs="?", metavar="RECORD_DIR", help="a record folder (logs + submission.json)")
    p.add_argument("--all", metavar="RECORDS_TREE", dest="all_tree", help="check every record folder under this tree")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--against", metavar="DIR", help="record to beat: its per-seed scored val_loss is the baseline")
    g.add_argument("--against-losses", metavar="A,B,C", help="baseline per-seed val_loss values (nats)")
    p.add_argument("--ruleset", metavar="NAME|FILE", help="rule set name or YAML path (default: from the track)")
    p.add_argument("--format", default="text", choices=["text", "json", "markdown"], help="output format")
    p.add_argument("--output", metavar="FILE", help="also write the output to FILE (atomically)")
    p.set_defaults(func=run)


def _baseline(args: argparse.Namespace):
    from harness.checks import baseline_from_losses, baseline_from_record

    if args.against:
        return baseline_from_record(args.against)
    if args.against_losses:
        return baseline_from_losses(args.against_losses)
    return None


def _file_policy(args: argparse.Namespace):
    """The `files:` block of --ruleset when one is named (else the record's track decides)."""
    if not args.ruleset:
        return None
    from harness.records import FilePolicy
    from harness.rulesets import load_ruleset

    rs = load_ruleset(args.ruleset)
    return FilePolicy.from_dict(rs.extra.get("files"), rs.path)


def _emit(text: str, args: argparse.Namespace) -> None:
    sys.stdout.write(text)
    if args.output:
        write_text(args.output, text)


def _renderers() -> None:
    """Import every renderer this command offers. `harness.report.render` loads the built-in
    ones only while its registry is empty, so importing one directly (as --all does for its
    table helper) would otherwise hide the rest."""
    import harness.report.json_report  # noqa: F401
    import harness.report.markdown  # noqa: F401
    import harness.report.text  # noqa: F401


def run(args: argparse.Namespace) -> int:
    from harness.checks import check_record
    from harness.records import load_record
    from harness.report import render

    _renderers()
    if bool(args.record) == bool(args.all_tree):
        raise InputError("give either RECORD_DIR or --all RECORDS_TREE (see pgolf check --help)")
    against = _baseline(args)
    if args.all_tree:
        return run_all(Path(args.all_tree), args, against)
    try:
        record = load_record(args.record, policy=_file_policy(args))
    except InputError as e:
        if args.format != "text" and e.path is not None:
            # machine-read formats always get a complete report, here one saying why it is unusable
            _emit(render(args.format, _unusable(Path(args.record), e)), args)
        raise
    report = check_record(record, args.ruleset, against)
    _emit(render(args.format, report), args)
    return exit_code(report.verdict)


# --- --all ------------------------------------------------------------------------------------
def record_entries(tree: Path) -> list[tuple[Path, str]]:
    """(path, kind) of every entry that stands where a record folder would under a records tree:
    `tree/track_*/<record>/`, or `tree/records/...`, or the sub-folders of `tree` itself. Kinds
    come from `lstat`: a link (`track_x -> /`, `<record> -> /etc`) is returned as `link`, never
    entered, so the caller can report it."""
    from audit.safe_read import lkind

    if lkind(tree) != "dir" and not tree.is_dir():
        raise InputError("no such records tree", str(tree))

    def children(d: Path) -> list[tuple[Path, str]]:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            return []
        return [(d / n, lkind(d / n) or "other") for n in names if not n.startswith(".")]

    top = children(tree)
    if lkind(tree / "records") == "dir" and not any(p.name.startswith("track_") for p, _ in top):
        tree = tree / "records"
        top = children(tree)
    tracks = [(p, k) for p, k in top if p.name.startswith("track_")]
    out: list[tuple[Path, str]] = [(p, k) for p, k in tracks if k != "dir"]
    parents = [p for p, k in tracks if k == "dir"] or ([tree] if not tracks else [])
    for parent in parents:
        out.extend((p, k) for p, k in children(parent) if k in ("dir", "link"))
    if not out:
        raise InputError("no record folders found (expected track_*/<record>/ or <record>/)", str(tree))
    return out


def record_dirs(tree: Path) -> list[Path]:
    """Record folders under a records tree (links excluded: see `record_entries`)."""
    return [p for p, kind in record_entries(tree) if kind == "dir"]


def _unusable(folder: Path, err: InputError):
    from harness.report import Report

    f = Finding("PG-INPUT-001", Severity.ERROR, f"record unusable: {err.bare_message}", "PARSE",
                Location(err.path or str(folder), err.line))
    return Report("check", str(folder), [f], {"record": folder.name, "seeds": []})


def _linked(folder: Path):
    from harness.records import LINK
    from harness.report import Report

    return Report("check", str(folder), [LINK.finding(f"{folder.name} (a record folder that is a link: not read)", str(folder))],
                  {"record": folder.name, "seeds": []})


def summary_row(report) -> dict[str, Any]:
    """One row of the --all table from a check report."""
    d = report.data
    scored = [s for s in d.get("seeds", []) if s.get("val_bpb") is not None]
    seeds = [s for s in scored if s.get("seed") is not None] or scored  # a lone seedless log still shows

    def worst(key: str) -> Any:
        vals = [s[key] for s in d.get("seeds", []) if s.get(key) is not None]
        return max(vals) if vals else None

    errors = sorted({f.rule_id for f in report.findings if f.severity is Severity.ERROR})
    return {
        "record": d.get("record", Path(report.subject).name),
        "track": (d.get("track") or "?").replace("track_", ""),
        "seeds": len({s["seed"] for s in seeds if s.get("seed") is not None}),
        "val_bpb": round(sum(s["val_bpb"] for s in seeds) / len(seeds), 5) if seeds else None,
        "claimed": d.get("claimed_val_bpb"),
        "max_bytes": worst("bytes_total"),
        "max_train_s": worst("train_s"),
        "max_eval_s": worst("scored_eval_s"),
        "verdict": report.verdict.value,
        "errors": " ".join(errors),
    }


def run_all(tree: Path, args: argparse.Namespace, against) -> int:
    from harness.checks import check_record
    from harness.records import load_record
    from harness.report import Report, make_stamp, render
    from harness.report.text import rich_table

    policy = _file_policy(args)  # one --ruleset for every record: read once
    children = []
    for folder, kind in record_entries(tree):
        if kind != "dir":
            children.append(_linked(folder))
            continue
        try:
            children.append(check_record(load_record(folder, policy=policy), args.ruleset, against))
        except InputError as e:
            children.append(_unusable(folder, e))
    rows = [summary_row(c) for c in children]
    failed = sum(1 for c in children if c.verdict is Verdict.FAIL)
    review = sum(1 for c in children if c.verdict is Verdict.REVIEW)
    verdict_counts = {"PASS": len(children) - failed - review, "FAIL": failed, "REVIEW": review}
    report = Report("check-all", str(tree), [], {"table": rows, "counts": verdict_counts},
                    make_stamp(ruleset=args.ruleset or "per track"), children)
    if args.format in ("json", "markdown"):
        text = render(args.format, report)
    else:
        from harness.escape import guard_output
        from harness.report.tables import cell

        cols = list(rows[0]) if rows else []
        text = rich_table(cols, [[cell(r[c], c) for c in cols] for r in rows], width=320)
        text += f"\n{len(children)} records: " + ", ".join(f"{n} {k}" for k, n in verdict_counts.items()) + "\n"
        text = guard_output(text, "text")
    _emit(text, args)
    return 1 if failed else 0
