"""The queue's summary table: one row per record (seeds by state, resubmissions, reproduced mean
against the claim, the verdict of its report), as text, markdown and JSON, written atomically
beside queue.json. Each record's own report is the one `pgolf reproduce` writes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import atomic
from harness.queue.view import COLUMNS, bucket
from harness.runners.slurm import load_attempts

SUMMARY_SCHEMA = "pgolf.queue-summary/1"


def rows(entries: list[Any], tracks: list[Any], reports: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        mine = [t for t in tracks if t.entry is e]
        rep = reports.get(e.out)
        agg = rep.data["aggregate"] if rep is not None else {}
        row: dict[str, Any] = {"record": e.name, "path": e.record, "seeds": len(mine)}
        for k in COLUMNS:
            row[k] = sum(1 for t in mine if bucket(t.status) == k)
        row["statuses"] = {str(t.job.seed): t.status for t in mine}
        row["resubmitted"] = sum(max(0, len([a for a in load_attempts(t.job.slurm_dir) if a.get("job_id")]) - 1)
                                 for t in mine)
        row.update(mean_bpb=agg.get("mean_bpb"), claimed_bpb=agg.get("claimed_mean_bpb"),
                   delta_bpb=agg.get("delta_mean_bpb"), verdict=rep.verdict.value if rep is not None else None,
                   report=str(Path(e.out) / "report.md") if rep is not None else None)
        out.append(row)
    return out


def _f(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec) if isinstance(v, float) else str(v)


HEAD = ("record", "seeds", *COLUMNS, "resubmitted", "mean bpb", "claimed", "Δ", "verdict")


def cells(r: dict[str, Any]) -> list[str]:
    return [r["record"], str(r["seeds"]), *(str(r[k]) for k in COLUMNS), str(r["resubmitted"]), _f(r["mean_bpb"]),
            _f(r["claimed_bpb"]), _f(r["delta_bpb"], "+.4f"), r["verdict"] or "(running)"]


def render_text(table: list[dict[str, Any]]) -> str:
    body = [list(HEAD)] + [cells(r) for r in table]
    widths = [max(len(row[i]) for row in body) for i in range(len(HEAD))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body) + "\n"


def render_markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in table:
        c = cells(r)
        if r["report"]:
            c[0] = f"[{c[0]}]({r['report']})"
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join(lines) + "\n"


def render_json(table: list[dict[str, Any]]) -> str:
    return json.dumps({"schema": SUMMARY_SCHEMA, "records": table}, indent=2) + "\n"


RENDER = {"text": render_text, "markdown": render_markdown, "json": render_json}


def write_summary(qdir: Path, table: list[dict[str, Any]]) -> dict[str, Path]:
    paths = {"text": Path(qdir) / "summary.txt", "markdown": Path(qdir) / "summary.md",
             "json": Path(qdir) / "summary.json"}
    for kind, p in paths.items():
        atomic.write_text(p, RENDER[kind](table))
    return paths
