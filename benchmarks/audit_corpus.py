"""Time `pgolf audit` over a folder of records against a bare libcst parse of the same files.

    python benchmarks/audit_corpus.py /tmp/upstream_records/records [--jobs 2] [--pattern train_gpt.py]

Prints the number of files and lines, the bare `libcst.parse_module` time (sequential), the
stdlib `ast.parse` time for scale, and the audit's wall time with --jobs workers, its per-file
mean and the ratios. The target (issue 9): on the 50 merged-record train_gpt.py files, audit CPU at
most 2.5x the CPU of a bare libcst parse (`ratio cpu/parse`, which other load on the machine
does not inflate the way it inflates wall time). Each file is audited in a forked worker
(audit.static.isolate); their CPU is counted through RUSAGE_CHILDREN. On a shared machine the
worker figure still moves with other jobs (1.99-2.91x seen on one tree within an hour), so
`ratio interleaved` also times parse and audit file by file in one process.
"""
from __future__ import annotations

import argparse
import ast
import os
import resource
import sys
import time
from pathlib import Path

import libcst as cst

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.static import audit_paths  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pattern", default="train_gpt.py", help="file name to collect recursively (default train_gpt.py)")
    ap.add_argument("--no-interleaved", dest="interleaved", action="store_false",
                    help="skip the in-process, file-by-file CPU comparison (it doubles the run time)")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.dir.rglob(args.pattern) if p.is_file())
    if not files:
        print(f"no {args.pattern} under {args.dir}", file=sys.stderr)
        return 2
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    lines = sum(t.count("\n") + 1 for t in texts)

    t0 = time.perf_counter()
    for t in texts:
        ast.parse(t)
    t_ast = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    for t in texts:
        cst.parse_module(t)
    t_cst, c_cst = time.perf_counter() - t0, time.process_time() - c0

    load = os.getloadavg()[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = time.process_time()
    t0 = time.perf_counter()
    results = audit_paths(files, jobs=args.jobs)
    t_audit = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the audit itself (workers, or this process with --jobs 1): unlike wall
    # time, it does not grow when other processes share the cores
    c_audit = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) + (time.process_time() - c0)
    cpu = sum(r.seconds for r in results)
    verdicts = {}
    for r in results:
        verdicts[r.verdict.value] = verdicts.get(r.verdict.value, 0) + 1

    print(f"files              {len(files)}")
    print(f"lines              {lines}")
    print(f"stdlib ast parse   {t_ast:7.2f} s")
    print(f"bare libcst parse  {t_cst:7.2f} s  (sequential; {c_cst:.2f} s cpu)")
    print(f"audit wall         {t_audit:7.2f} s  (--jobs {args.jobs}; load average {load:.2f} before it)")
    print(f"audit cpu          {c_audit:7.2f} s  (all workers; /{args.jobs} = {c_audit / args.jobs:.2f} s wall on {args.jobs} idle cores)")
    print(f"audit per file     {t_audit / len(files) * 1000:7.1f} ms wall, {cpu / len(files) * 1000:.1f} ms cpu in workers")
    print(f"ratio wall/parse   {t_audit / t_cst:7.2f}x")
    print(f"ratio cpu/parse    {c_audit / c_cst:7.2f}x  (audit cpu over bare-parse cpu: less load-sensitive than wall)")
    print(f"ratio worker/parse {cpu / t_cst:7.2f}x  (sum of per-file wall times in workers incl. their own parse)")
    if args.interleaved:
        c_parse, c_file = interleaved(files, texts)
        print(f"ratio interleaved  {c_file / c_parse:7.2f}x  (one process, each file parsed then audited in turn: "
              f"{c_file:.2f} s / {c_parse:.2f} s cpu; the least load-sensitive figure)")
    print(f"verdicts           {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}")
    return 0


def interleaved(files, texts) -> tuple[float, float]:
    """CPU of a bare parse and of the audit, file by file in this process, one right after the
    other: both meet the same load on the machine, so their ratio moves least when other jobs
    share the cores (the worker figures above are measured minutes apart from the parse)."""
    from audit.static.engine import audit_file

    c_parse = c_file = 0.0
    for path, text in zip(files, texts):
        c0 = time.process_time()
        cst.parse_module(text)
        c1 = time.process_time()
        audit_file(path)
        c_parse, c_file = c_parse + c1 - c0, c_file + time.process_time() - c1
    return c_parse, c_file


if __name__ == "__main__":
    sys.exit(main())
