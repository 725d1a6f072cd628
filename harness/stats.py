"""Statistics for record claims, in one pure module (no I/O, no harness imports).

The challenge's bar (rules.md): a new record must beat the current one by at least 0.005 nats
of `val_loss` and show it at p < 0.01; organizers quote one-sided Welch t-tests between the two
seed sets. `welch_one_sided` is that test, with the margin folded into the null hypothesis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def mean(xs: Sequence[float]) -> float:
    """Arithmetic mean  m = (1/n) * sum(x_i).  Raises ValueError on an empty sequence."""
    if not xs:
        raise ValueError("mean of no values")
    return math.fsum(xs) / len(xs)


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation  s = sqrt( sum((x_i - m)^2) / (n - 1) ).

    With fewer than two values the sample variance is undefined: returns NaN.
    """
    n = len(xs)
    if n < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))


@dataclass(frozen=True)
class WelchResult:
    """Outcome of `welch_one_sided`. `p` is NaN when the test could not be run (`decided` False,
    `reason` says why)."""

    improvement: float  # mean(baseline) - mean(candidate), nats; positive = candidate better
    margin: float
    t: float
    df: float
    p: float
    alpha: float
    n_baseline: int
    n_candidate: int
    decided: bool
    reason: str = ""

    @property
    def significant(self) -> bool:
        return self.decided and self.p < self.alpha

    def to_dict(self) -> dict[str, float | int | bool | str]:
        return {
            "improvement": self.improvement, "margin": self.margin, "t": self.t, "df": self.df,
            "p": self.p, "alpha": self.alpha, "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate, "decided": self.decided, "significant": self.significant,
            "reason": self.reason,
        }


def welch_one_sided(
    baseline: Sequence[float], candidate: Sequence[float], margin: float = 0.005, alpha: float = 0.01
) -> WelchResult:
    """One-sided Welch t-test that `candidate` (lower is better) beats `baseline` by > `margin`.

    H0: mean(b) - mean(c) <= margin;  H1: mean(b) - mean(c) > margin.
        d  = mean(b) - mean(c) - margin
        se = sqrt( s_b^2 / n_b + s_c^2 / n_c )           (s: sample std, n - 1 denominator)
        t  = d / se
        df = se^4 / ( (s_b^2/n_b)^2/(n_b-1) + (s_c^2/n_c)^2/(n_c-1) )   (Welch–Satterthwaite)
        p  = P(T_df >= t)  (scipy.stats.t.sf)
    Equivalent to `scipy.stats.ttest_ind(b - margin, c, equal_var=False, alternative="greater")`.

    Fewer than two values on either side: the variance is undefined, so the test is not run —
    `decided` is False, `p` NaN, and `reason` says so. Both variances zero: t is +inf (p = 0)
    when d > 0, else -inf (p = 1); df is reported as NaN.
    """
    nb, nc = len(baseline), len(candidate)
    improvement = (mean(baseline) - mean(candidate)) if nb and nc else math.nan
    if nb < 2 or nc < 2:
        return WelchResult(improvement, margin, math.nan, math.nan, math.nan, alpha, nb, nc, False,
                           f"need at least 2 values on each side (baseline {nb}, candidate {nc})")
    vb, vc = std(baseline) ** 2 / nb, std(candidate) ** 2 / nc
    d = improvement - margin
    se2 = vb + vc
    if se2 == 0.0:
        t = math.inf if d > 0 else -math.inf
        return WelchResult(improvement, margin, t, math.nan, 0.0 if d > 0 else 1.0, alpha, nb, nc, True,
                           "both samples have zero variance")
    from scipy import stats as _sp  # imported here: scipy.stats costs ~1.5 s at CLI start-up

    se = math.sqrt(se2)
    t = d / se
    df = se2 ** 2 / ((vb ** 2) / (nb - 1) + (vc ** 2) / (nc - 1))
    p = float(_sp.t.sf(t, df))
    return WelchResult(improvement, margin, t, df, p, alpha, nb, nc, True)
