"""Plots for reproduction reports (matplotlib, Agg backend, PNG): what a reviewer looks at first.

- `validation_curves`: val_bpb against step for every seed, the record's own logs (claimed,
  dashed) against the reproduction (solid), one colour per seed, scored values as markers at
  the end; the legend names the colours and, once each, the styles;
- `seed_scores`: per seed, claimed and reproduced scored val_bpb, with the tolerance band
  around each claim and the reproduced mean.

Both take plain data (no harness objects), so they can be tested and reused by other reports.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Curve = Sequence[Sequence[float | None]]  # rows of [step, val_bpb, ...]


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)  # atomic, like every result file
    return path


CLAIMED_STYLE = dict(linestyle=(0, (5, 3)), linewidth=2.2, alpha=0.55)  # dashed, visible in a legend handle
REPRODUCED_STYLE = dict(linestyle="-", linewidth=1.5, marker=".")


def validation_curves(path: Path, reproduced: dict[int, Curve], claimed: dict[int, Curve],
                      scored_reproduced: dict[int, float | None], scored_claimed: dict[int, float | None],
                      title: str) -> Path:
    """val_bpb by step, saved as PNG (see `validation_figure`)."""
    return _save(validation_figure(reproduced, claimed, scored_reproduced, scored_claimed, title), path)


def validation_figure(reproduced: dict[int, Curve], claimed: dict[int, Curve],
                      scored_reproduced: dict[int, float | None], scored_claimed: dict[int, float | None],
                      title: str):
    """val_bpb by step: one colour per seed; the record's own logs dashed, the reproduction solid;
    final scores as x (claimed) and o (reproduced). The legend says the same with its own handles:
    a colour per seed, then one entry per line style and marker (drawn in black), so the legend
    and the title cannot disagree."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seeds = sorted(set(reproduced) | set(claimed))
    handles = []
    for i, seed in enumerate(seeds):
        c = colours[i % len(colours)]
        drawn = False
        for data, kw in ((claimed.get(seed), CLAIMED_STYLE), (reproduced.get(seed), REPRODUCED_STYLE)):
            pts = [(r[0], r[1]) for r in (data or []) if r[1] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, **kw)
                drawn = True
        last_step = max([r[0] for r in (reproduced.get(seed) or []) + (claimed.get(seed) or [])] or [0])
        for val, marker in ((scored_claimed.get(seed), "x"), (scored_reproduced.get(seed), "o")):
            if val is not None:
                ax.plot([last_step], [val], marker, color=c, markersize=8, fillstyle="none")
                drawn = True
        if drawn:
            handles.append(Line2D([], [], color=c, linewidth=6, label=f"seed {seed}"))
    handles += [Line2D([], [], color="black", label="claimed (the record's logs): dashed", **CLAIMED_STYLE),
                Line2D([], [], color="black", label="reproduced: solid", **REPRODUCED_STYLE),
                Line2D([], [], color="black", marker="x", linestyle="none", label="claimed score"),
                Line2D([], [], color="black", marker="o", fillstyle="none", linestyle="none", label="reproduced score")]
    ax.set_xlabel("step")
    ax.set_ylabel("val_bpb (bits per byte, lower is better)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.has_data():
        ax.legend(handles=handles, fontsize=7, handlelength=3.5, bbox_to_anchor=(1.02, 1), loc="upper left")
    else:
        ax.text(0.5, 0.5, "no validation lines were printed", ha="center", va="center", transform=ax.transAxes)
    return fig


def seed_scores(path: Path, seeds: Sequence[int], reproduced: Sequence[float | None],
                claimed: Sequence[float | None], tolerance: float, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    xs = list(range(len(seeds)))
    for x, c in zip(xs, claimed):
        if c is not None:
            ax.fill_between([x - 0.3, x + 0.3], c - tolerance, c + tolerance, color="tab:gray", alpha=0.25,
                            label="claimed ± tolerance" if x == 0 else None)
    ax.plot([x - 0.1 for x, c in zip(xs, claimed) if c is not None], [c for c in claimed if c is not None],
            "x", color="tab:gray", markersize=9, label="claimed")
    rep = [(x, r) for x, r in zip(xs, reproduced) if r is not None]
    ax.plot([x + 0.1 for x, _ in rep], [r for _, r in rep], "o", color="tab:blue", label="reproduced")
    if rep:
        m = sum(r for _, r in rep) / len(rep)
        ax.axhline(m, color="tab:blue", linestyle=":", linewidth=1, label=f"reproduced mean {m:.4f}")
    ax.set_xticks(xs, [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("scored val_bpb")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    finite = [v for v in list(reproduced) + list(claimed) if v is not None and math.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max(tolerance * 2, (hi - lo) * 0.3, 1e-4)
        ax.set_ylim(lo - pad, hi + pad)
        ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(fig, path)
