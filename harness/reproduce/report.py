"""The reproduction report: per-seed results + checks on the reproduced logs -> Report, text,
markdown (for the PR), JSON, and PNG plots, written atomically into the output folder.

The Report's findings are the observation and reproduction findings of every seed plus the
aggregate ones; the checks run on the reproduced logs are its child report (kind "check"), so
the verdict rolls up over both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import atomic
from harness.findings import Finding
from harness.report import Report, make_stamp, render
from harness.report import plots
from harness.reproduce.seeds import (ReproConfig, aggregate, assemble_reproduced_record, finding_from_dict,
                               rules_table)
from harness.reproduce.claims import Claims, load_claims


# Claims compared by the reproduction itself, within --tolerance or by measurement: the exact
# comparisons of `pgolf check` would fail any run that reproduces to 0.0001 bpb.
COMPARED_BY_REPRODUCTION = {
    "PG-CLAIMS-001": "the reproduction compares the mean with val_bpb within --tolerance (PG-REPRO-003)",
    "PG-CLAIMS-002": "the reproduction measures the artifact and code on disk (PG-BYTES-101/102)",
    "PG-CLAIMS-003": "the reproduction compares each seed with its claim within --tolerance (PG-REPRO-002)",
}


def check_reproduced(cfg: ReproConfig, folder: Path, claims: Claims, seeds: list[int]) -> Report:
    """`pgolf check` on the reproduced logs: every rule of the record's rule set, except the claim
    comparisons the reproduction makes itself; on a subset of the claimed seeds the record-level
    rules (seed count, listing, significance) are reported as not evaluated."""
    from harness.checks import baseline_from_record, check_record
    from harness.records import load_record
    from harness.rulesets import ruleset_for_track

    against = baseline_from_record(cfg.against) if cfg.against else None
    return check_record(load_record(folder), cfg.ruleset or ruleset_for_track(claims.track), against,
                        subset=claims.subset(seeds), not_evaluated=COMPARED_BY_REPRODUCTION)


def seed_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        o, rep, cl = r["observed"], r["reproduced"], r["claimed"]
        rows.append({
            "seed": r["seed"], "status": r["status"], "claimed_bpb": cl.get("val_bpb"),
            "claim_source": cl.get("source"), "reproduced_bpb": rep.get("val_bpb"),
            "reproduced_loss": rep.get("val_loss"), "scored_phase": rep.get("phase"), "delta_bpb": r.get("delta_bpb"),
            "printed_train_s": o.get("printed_train_s"), "observed_train_s": o.get("observed_train_s"),
            "observed_eval_s": o.get("observed_eval_s"), "artifact": o.get("artifact_path"),
            "artifact_bytes": o.get("artifact_bytes"), "measured_total": o.get("measured_total"),
            "printed_total": o.get("printed_total"), "wall_s": r["wall_seconds"], "log": r["log"],
            "first_line_s": o.get("first_line_s"),
            # by the harness clock: training clock start, last training-data read, end of the
            # training budget, and when the artifact file appeared (PG-TIME-108)
            "train_start_s": o.get("train_start_s"), "train_data_last_s": o.get("train_data_last_s"),
            "train_data_deadline_s": o.get("train_data_deadline_s"), "artifact_appeared_s": o.get("artifact_appeared_s"),
        })
    return rows


def make_plots(cfg: ReproConfig, results: list[dict[str, Any]], claims: Claims) -> list[str]:
    out = Path(cfg.out_dir) / "plots"
    name = Path(cfg.record_dir).name
    seeds = [r["seed"] for r in results]
    curves = plots.validation_curves(
        out / "validation_curves.png", {r["seed"]: r["curve"] for r in results},
        {s: claims.curves[s] for s in seeds if s in claims.curves},
        {r["seed"]: r["reproduced"].get("val_bpb") for r in results},
        {r["seed"]: r["claimed"].get("val_bpb") for r in results},
        f"{name}: val_bpb by step, claimed vs reproduced")
    scores = plots.seed_scores(out / "seed_scores.png", seeds, [r["reproduced"].get("val_bpb") for r in results],
                               [r["claimed"].get("val_bpb") for r in results], cfg.tolerance,
                               f"{name}: scored val_bpb per seed (tolerance ±{cfg.tolerance})")
    return [str(p.relative_to(cfg.out_dir)) for p in (curves, scores)]


def significance(cfg: ReproConfig, check: Report | None, not_reproduced: str | None) -> dict[str, Any]:
    """The significance of the reproduced seeds against --against, for the report: the figures of
    the PG-STATS-001 finding of `pgolf check` on the reproduced logs (the rule set's margin, alpha
    and validation bytes, the unit of harness.checks.compare), flattened; never computed twice.
    Skipped, with why, when there is no baseline, no check ran, or the rule was not evaluated."""
    if cfg.against is None:
        return {"skipped": "no --against record given"}
    if not_reproduced:
        return {"skipped": f"not evaluated: {not_reproduced}"}
    f = next((f for f in check.findings if f.rule_id == "PG-STATS-001"), None) if check is not None else None
    if f is None:
        return {"skipped": "no checks ran on the reproduced logs (no seed printed a score)"}
    if f.data.get("not_evaluated"):
        return {"skipped": f"not evaluated: {f.data['not_evaluated']}"}
    out: dict[str, Any] = {"against": str(cfg.against)}
    for key, value in f.data.items():  # the comparison's own fields (unit, why, margin) sit beside the test's
        out.update(value if isinstance(value, dict) else {key: value})
    if out.get("refused"):
        return {**out, "skipped": f"not tested: {out['refused']}"}
    if not out.get("decided"):
        return {**out, "skipped": f"not tested: {out.get('reason') or f.message}"}
    return out


def not_reproduced_text(missing: dict[int, str] | None) -> str | None:
    if not missing:
        return None
    return "seed(s) " + ", ".join(f"{seed} ({status})" for seed, status in missing.items()) + " not reproduced"


def build_report(cfg: ReproConfig, results: list[dict[str, Any]], with_plots: bool = True,
                 missing: dict[int, str] | None = None) -> Report:
    """`missing`: seeds that never ran to a result of their own (a Slurm job cancelled, lost, or
    ended outside the run), seed -> status. Then the record-level judgements (the mean against the
    claim, significance, the checks on the reproduced logs) are not made at all: made on the seeds
    that happened to finish, they would blame the cluster's gap on the submission."""
    claims = load_claims(Path(cfg.record_dir))
    seeds = [r["seed"] for r in results]
    not_reproduced = not_reproduced_text(missing)
    findings: list[Finding] = []
    agg, agg_findings = aggregate(cfg, results, claims, not_reproduced)  # sets each result's claimed and delta
    for r in results:
        findings.extend(finding_from_dict(d) for d in r["findings"])
    findings.extend(agg_findings)
    folder = assemble_reproduced_record(cfg, results)
    children = []
    if not not_reproduced and any(r["status"] != "timeout" or r["reproduced"].get("val_bpb") is not None
                                  for r in results):
        children.append(check_reproduced(cfg, folder, claims, seeds))
    budgets = cfg.resolved_budgets()
    data = {
        "record": str(cfg.record_dir), "out": str(cfg.out_dir), "reproduced_record": str(folder),
        "runner": results[0]["runner"] if results else None, "nproc": cfg.nproc, "launcher": cfg.launcher,
        "command": results[0]["command"] if results else None,
        "env_set": {k: v for k, v in (results[0]["env_set"] or {}).items() if k not in ("SEED", "RUN_ID")} if results else {},
        "env_added": results[0]["env_added"] if results else {},
        "budgets": {"train_s": budgets.train_s, "eval_s": budgets.eval_s, "grace_s": budgets.grace_s,
                    "kill_after_s": cfg.timeout_s or budgets.kill_after_s, "byte_cap": budgets.byte_cap,
                    "track": budgets.track},
        "seeds": seed_rows(results), "aggregate": agg,
        "significance": significance(cfg, children[0] if children else None, not_reproduced),
        "subset": claims.subset(seeds), "not_reproduced": not_reproduced, "inputs": cfg.inputs,
        "observation_rules": rules_table(), "plots": make_plots(cfg, results, claims) if with_plots else [],
    }
    stamp = make_stamp(ruleset=children[0].stamp.get("ruleset") if children else None)
    return Report("reproduce", str(cfg.record_dir), findings, data, stamp, children)


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def seed_table_lines(report: Report, md: bool) -> list[str]:
    head = ["seed", "status", "claimed bpb", "reproduced bpb", "Δ", "train s (printed/observed)",
            "eval s (observed)", "artifact bytes", "total (measured/printed)",
            "train data last read / budget end / artifact at (s)"]
    rows = []
    for s in report.data["seeds"]:
        rows.append([str(s["seed"]), s["status"], _fmt(s["claimed_bpb"]), _fmt(s["reproduced_bpb"]),
                     _fmt(s["delta_bpb"], "+.4f"),
                     f"{_fmt(s['printed_train_s'], '.1f')} / {_fmt(s['observed_train_s'], '.1f')}",
                     _fmt(s["observed_eval_s"], ".1f"), _fmt(s["artifact_bytes"], ","),
                     f"{_fmt(s['measured_total'], ',')} / {_fmt(s['printed_total'], ',')}",
                     " / ".join(_fmt(s.get(k), ".1f") for k in ("train_data_last_s", "train_data_deadline_s",
                                                               "artifact_appeared_s"))])
    if md:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    return ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in [head] + rows]


def summary_lines(report: Report) -> list[str]:
    a, d = report.data["aggregate"], report.data
    lines = [f"reproduced mean val_bpb {_fmt(a['mean_bpb'])} (std {_fmt(a['std_bpb'])}, {a['n_scored']}/{a['n']} seeds scored); "
             f"claimed {_fmt(a['claimed_mean_bpb'])}; tolerance ±{a['tolerance']}"]
    if d.get("subset"):
        lines.append(f"subset of seeds ({d['subset']}): each seed is compared with its own claim; the mean, the seed "
                     "count and significance are not evaluated, and the verdict is about the seeds that ran")
    if d.get("not_reproduced"):
        lines.append(f"{d['not_reproduced']}: the mean, significance and the checks on the reproduced logs are not "
                     "judged on the seeds that finished")
    if (d.get("inputs") or {}).get("skipped"):
        lines.append(f"inputs: {d['inputs']['skipped']}")
    sig = d["significance"]
    if "skipped" in sig:
        lines.append(f"significance: skipped ({sig['skipped']})")
    else:
        lines.append(f"significance vs {sig['against']} ({sig['unit']}): improvement {sig['improvement']:.5f} {sig['unit']}, "
                     f"p = {sig['p']:.3g} (need > {sig['margin']:.5f} at p < {sig['alpha']}; {sig['why']}): "
                     f"{'significant' if sig['significant'] else 'NOT significant'}")
    b = d["budgets"]
    lines.append(f"limits ({b['track']}): train {b['train_s']:.0f} s, eval {b['eval_s']:.0f} s, killed at "
                 f"{b['kill_after_s']:.0f} s, {b['byte_cap']:,} bytes; runner {d['runner']}"
                 + (f" ({d['runner_chosen']['why']})" if d.get("runner_chosen") else "") + f", nproc {d['nproc']}; "
                 f"environment added: {', '.join(f'{k}={v}' for k, v in (d['env_added'] or {}).items())}")
    return lines


def finding_lines(findings: list[Finding], md: bool) -> list[str]:
    out = []
    for f in findings:
        loc = f" ({f.location})" if f.location else ""
        out.append(f"- **{f.rule_id}** {f.severity.value}: {f.message}{loc}" if md
                   else f"  {f.severity.value:7s} {f.rule_id}  {f.message}{loc}")
    return out or (["- none"] if md else ["  none"])


def render_text(report: Report) -> str:
    lines = [f"pgolf reproduce {report.subject}: {report.verdict.value}", ""]
    lines += seed_table_lines(report, md=False) + [""] + summary_lines(report) + ["", "findings (observation, reproduction):"]
    lines += finding_lines(report.findings, md=False)
    for child in report.children:
        lines += ["", f"checks on the reproduced logs ({child.stamp.get('ruleset')}): {child.verdict.value}"]
        lines += finding_lines(child.findings, md=False)
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    name = Path(report.subject).name
    lines = [f"## Reproduction of `{name}`: **{report.verdict.value}**", ""]
    lines += seed_table_lines(report, md=True) + [""] + [f"- {s}" for s in summary_lines(report)] + [""]
    lines += [f"![{p}]({p})" for p in report.data.get("plots", [])] + [""]
    lines += ["### Findings from observation and reproduction", ""] + finding_lines(report.findings, md=True)
    for child in report.children:
        lines += ["", f"### `pgolf check` on the reproduced logs ({child.stamp.get('ruleset')}): "
                      f"**{child.verdict.value}**", ""] + finding_lines(child.findings, md=True)
    st = report.stamp
    lines += ["", f"<sub>pgolf {st.get('pgolf')} · {st.get('utc')} · `{st.get('command')}` · {st.get('platform')}</sub>"]
    return "\n".join(lines) + "\n"


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    paths = {"text": Path(out_dir) / "report.txt", "markdown": Path(out_dir) / "report.md",
             "json": Path(out_dir) / "report.json"}
    atomic.write_text(paths["text"], render_text(report))
    atomic.write_text(paths["markdown"], render_markdown(report))
    atomic.write_text(paths["json"], render("json", report))
    return paths
