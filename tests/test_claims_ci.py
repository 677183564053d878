"""Confidence intervals, Holm's correction and the kept-share test of odejac.study.inference,
against hand computations, and Holm's effect on the claims' verdicts."""
import math

import numpy as np
import pytest
from scipy import stats

from odejac.study import claims
from odejac.study.inference import compare, compare_paired, holm, kept_share_test


def test_welch_interval_matches_the_hand_formula():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 5.0, 6.0, 9.0])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size  # 5/12 and 25/12
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite degrees of freedom
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = stats.t.ppf(0.975, dof) * se
    result = compare(a, b)
    assert result["diff"] == pytest.approx(-3.0)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(-3.0 - half),
                                                     pytest.approx(-3.0 + half))
    assert result["welch_p"] == pytest.approx(2 * stats.t.sf(3.0 / se, dof))
    assert result["ci_low"] < 0 < result["ci_high"] and result["welch_p"] > 0.05


def test_paired_interval_and_constant_samples():
    after, before = np.array([20.0, 21.0, 23.0]), np.array([14.0, 14.0, 14.0])
    delta = after - before  # 6, 7, 9: mean 22/3, sd sqrt(7/3)
    half = stats.t.ppf(0.975, 2) * math.sqrt(7 / 3) / math.sqrt(3)
    result = compare_paired(after, before)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(delta.mean() - half),
                                                     pytest.approx(delta.mean() + half))
    flat = compare([14, 14], [20, 20])
    assert flat["ci_low"] == flat["ci_high"] == -6.0
    assert compare([1.0], [2.0, 3.0])["ci_low"] is None


def test_holm_on_a_hand_worked_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.02]), [0.02])  # one test: unchanged
    assert holm([]).size == 0
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_kept_share_test_is_fishers_one_sided_p():
    # 5 of 10 kept against 10 of 10: P(X <= 5), X ~ Hypergeom(20, 15, 10) = C(15,5)/C(20,10)
    assert kept_share_test(5, 10, 10, 10) == pytest.approx(math.comb(15, 5) / math.comb(20, 10))
    assert kept_share_test(10, 10, 5, 10) == pytest.approx(1.0)
    assert kept_share_test(0, 0, 5, 10) is None


def _one_row_claim(key, p):
    row = claims._row(key, "NFE", {"n_a": 5, "n_b": 5, "mean_a": 1.0, "mean_b": 2.0,
                                   "diff": -1.0, "ci_low": -2.0, "ci_high": -0.1,
                                   "welch_p": p, "mannwhitney_p": p}, "lower")
    return claims._claim(key, "a claim", [row],
                         [("lower", lambda k, t=row: claims.holds(t, -1, k))])


def test_holm_can_overturn_a_verdict():
    # m = 2: 0.03·2 = 0.06 and max(0.06, 0.04) = 0.06, so neither survives the correction
    decided = claims._decide([_one_row_claim("A", 0.03), _one_row_claim("B", 0.04)])
    assert [c["verdict"] for c in decided] == ["reproduced"] * 2
    assert [c["verdict_holm"] for c in decided] == ["not reproduced"] * 2
    assert [c["comparisons"][0]["holm_p"] for c in decided] == pytest.approx([0.06, 0.06])
    # 0.01·2 = 0.02 and 0.03: both survive
    decided = claims._decide([_one_row_claim("A", 0.01), _one_row_claim("B", 0.03)])
    assert [c["verdict_holm"] for c in decided] == ["reproduced"] * 2
    text = claims.claims_markdown(claims._decide([_one_row_claim("A", 0.03),
                                                  _one_row_claim("B", 0.04)]))
    assert "(after Holm's correction: not reproduced)" in text and "[-2, -0.1]" in text
