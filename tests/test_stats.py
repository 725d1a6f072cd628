"""harness.stats against values computed by hand (closed forms), and against scipy's own test."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sp

from harness.stats import mean, std, welch_one_sided


def t2_sf(t: float) -> float:
    """Survival function of Student's t with 2 degrees of freedom, in closed form."""
    return 0.5 - t / (2.0 * math.sqrt(t * t + 2.0))


def test_mean_std():
    assert mean([2.80, 2.81, 2.82]) == pytest.approx(2.81)
    assert std([2.80, 2.81, 2.82]) == pytest.approx(0.01)  # sqrt((1e-4 + 0 + 1e-4) / 2)
    assert math.isnan(std([2.8]))
    with pytest.raises(ValueError):
        mean([])


def test_not_significant_small_margin_by_hand():
    # b: mean 2.81, var 2e-4; c: mean 2.80, var 2e-4; improvement 0.01, d = 0.005
    # se^2 = 1e-4 + 1e-4 = 2e-4; t = 0.005 / sqrt(2e-4) = 0.353553; df = 4e-8 / 2e-8 = 2
    r = welch_one_sided([2.80, 2.82], [2.79, 2.81], margin=0.005, alpha=0.01)
    assert r.improvement == pytest.approx(0.01)
    assert r.t == pytest.approx(0.3535534, rel=1e-6)
    assert r.df == pytest.approx(2.0)
    assert r.p == pytest.approx(t2_sf(0.3535534), rel=1e-6)  # 0.378732
    assert r.p == pytest.approx(0.378732, rel=1e-5)
    assert r.decided and not r.significant


def test_significant_by_hand():
    # improvement 0.1, d = 0.095, se = sqrt(2e-6), t = 67.17514, df = 2
    r = welch_one_sided([2.900, 2.902], [2.800, 2.802])
    assert r.t == pytest.approx(0.095 / math.sqrt(2e-6), rel=1e-6)
    assert r.df == pytest.approx(2.0)
    assert r.p == pytest.approx(t2_sf(r.t), rel=1e-4)
    assert r.p < 0.01 and r.significant


def test_unequal_sizes_match_scipy_welch():
    b = [2.8120, 2.8151, 2.8098, 2.8133]
    c = [2.8011, 2.8032, 2.8005]
    r = welch_one_sided(b, c, margin=0.005)
    # Welch–Satterthwaite by hand
    vb, vc = std(b) ** 2 / 4, std(c) ** 2 / 3
    df = (vb + vc) ** 2 / (vb ** 2 / 3 + vc ** 2 / 2)
    assert r.df == pytest.approx(df)
    ref = sp.ttest_ind([x - 0.005 for x in b], c, equal_var=False, alternative="greater")
    assert r.t == pytest.approx(ref.statistic)
    assert r.p == pytest.approx(ref.pvalue)


def test_fewer_than_two_samples_is_undecided():
    r = welch_one_sided([2.81], [2.79, 2.80])
    assert not r.decided and math.isnan(r.p) and not r.significant
    assert "at least 2" in r.reason
    assert r.improvement == pytest.approx(0.015)


def test_zero_variance():
    assert welch_one_sided([2.81, 2.81], [2.80, 2.80]).p == 0.0  # d = 0.01 - 0.005 > 0, se = 0: t = +inf
    r = welch_one_sided([2.81, 2.81], [2.81, 2.81])
    assert r.p == 1.0 and r.t == -math.inf and not r.significant
