"""Two-sample comparisons across seeds: p-values, 95 % confidence intervals, Holm's correction.

Shared by the claims (:mod:`odejac.study.claims`), the landscape
(:mod:`odejac.study.landscape`) and the Pareto benchmark (:mod:`odejac.study.pareto`).
Every test is two-sided and comes from ``scipy.stats``; Welch's t-test
(``equal_var=False``) decides, since the paper reports means, and its interval for the
difference of means is the one reported.
"""
import warnings

import numpy as np

#: Significance level of every two-sided test, and 1 − the confidence of every interval.
ALPHA = 0.05


def _ci(result, confidence):
    """``(low, high)`` of a SciPy t-test result, as floats."""
    interval = result.confidence_interval(confidence_level=confidence)
    return float(interval.low), float(interval.high)


def compare(a, b, alpha=ALPHA):
    """Two-sided Welch t and Mann–Whitney U tests of ``a`` against ``b`` (1-D arrays).

    Returns a dict with the sample sizes, means, ``diff = mean(a) − mean(b)``,
    Welch's ``1 − alpha`` confidence interval of ``diff`` (``ci_low``, ``ci_high``)
    and both p-values (``None`` when a group has fewer than 2 values). Two
    constant samples get ``p = 0`` if they differ and ``p = 1`` if not, and the
    interval ``[diff, diff]``: the limits of the t statistic, where SciPy gives NaN.
    """
    from scipy import stats   # here, not at the top: building the CLI's parser imports this
    #                           module, and scipy.stats costs ~0.5 s of every start (issue #11)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    result = {"n_a": int(a.size), "n_b": int(b.size),
              "mean_a": float(a.mean()) if a.size else None,
              "mean_b": float(b.mean()) if b.size else None,
              "diff": None, "ci_low": None, "ci_high": None,
              "welch_p": None, "mannwhitney_p": None}
    if a.size < 2 or b.size < 2:
        return result
    result["diff"] = result["mean_a"] - result["mean_b"]
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        result["welch_p"] = 0.0 if a[0] != b[0] else 1.0
        result["ci_low"] = result["ci_high"] = result["diff"]
    else:
        with warnings.catch_warnings():  # nearly constant samples: the p-value is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ttest_ind(a, b, equal_var=False)
            result["welch_p"] = float(test.pvalue)
            result["ci_low"], result["ci_high"] = _ci(test, 1 - alpha)
    if np.ptp(np.concatenate([a, b])) == 0:
        result["mannwhitney_p"] = 1.0  # all values tied: no evidence of a shift
    else:
        result["mannwhitney_p"] = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return result


def mean_ci(values, alpha=ALPHA):
    """Mean of ``values`` (1-D) and its two-sided ``1 − alpha`` Student-t interval.

    Returns ``{"n", "mean", "ci_low", "ci_high"}``: ``mean`` is ``None`` for no values,
    the interval ``None`` for fewer than two; a constant sample gets ``[mean, mean]``
    (the limit of the interval, where SciPy gives NaN).
    """
    from scipy import stats   # lazily: see compare
    values = np.asarray(values, dtype=float)
    result = {"n": int(values.size), "mean": float(values.mean()) if values.size else None,
              "ci_low": None, "ci_high": None}
    if values.size < 2:
        return result
    if np.ptp(values) == 0:
        result["ci_low"] = result["ci_high"] = result["mean"]
        return result
    result["ci_low"], result["ci_high"] = _ci(stats.ttest_1samp(values, 0.0), 1 - alpha)
    return result


def compare_paired(after, before, alpha=ALPHA):
    """Two-sided paired t and Wilcoxon signed-rank tests of ``after`` against ``before``.

    Same keys as :func:`compare` (``diff`` is the mean of ``after − before``, its
    interval the paired t interval); identical differences get ``p = 0`` (or 1 if
    all zero) and the interval ``[diff, diff]``, where SciPy gives NaN.
    """
    from scipy import stats   # lazily: see compare
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    result = compare(after, before, alpha)
    if result["diff"] is None:
        return result
    delta = after - before
    if np.ptp(delta) == 0:
        result["welch_p"] = result["mannwhitney_p"] = 0.0 if delta[0] != 0 else 1.0
        result["ci_low"] = result["ci_high"] = float(delta[0])
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_rel(after, before)
        result["welch_p"] = float(test.pvalue)
        result["ci_low"], result["ci_high"] = _ci(test, 1 - alpha)
        result["mannwhitney_p"] = float(stats.wilcoxon(delta).pvalue) if np.any(delta) else 1.0
    return result


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the order given.

    With the ``m`` p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of
    ``p_(i)`` is ``max_{j ≤ i} min(1, (m − j + 1) p_(j))``; rejecting where it is
    below α controls the family-wise error rate at α (Holm, 1979) without assuming
    the tests independent.

    Parameters
    ----------
    pvalues : sequence of float, shape (m,)

    Returns
    -------
    numpy.ndarray, shape (m,)
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be a 1-D sequence in [0, 1]; got {pvalues!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def kept_share_test(kept_a, n_a, kept_b, n_b):
    """One-sided Fisher exact p that group a keeps accuracy in a *smaller* share than b.

    ``kept_*`` of ``n_*`` runs kept their accuracy. Small p: a's share is
    significantly below b's. ``None`` when a group is empty.
    """
    from scipy import stats   # lazily: see compare
    if n_a < 1 or n_b < 1:
        return None
    table = [[kept_a, n_a - kept_a], [kept_b, n_b - kept_b]]
    return float(stats.fisher_exact(table, alternative="less").pvalue)
