"""The paper's claims C1–C5 tested across seeds, with verdicts written either way.

Each claim compares per-seed values of two arms with two-sided tests from
``scipy.stats``: Welch's t-test (unequal variances; its verdict counts, since
the paper reports means) and the Mann–Whitney U test (no normality assumed; a
disagreement between the two is pointed out). κ is compared on a log scale,
where its spread over seeds is roughly symmetric. A difference "holds" when
it has the claimed sign and ``p < ALPHA``; no correction for the dozen tests
is made, and the p-values are all printed so the reader can apply one.

Claims (Josias & Brink, 2022; C0 is the issue's observation):

C0  the NFE of dopri5 rises as unregularised training goes on;
C1  condition-number regularisation lowers NFE without a cost in test accuracy;
C2  Frobenius and spectral regularisation lower NFE more, but cost accuracy;
C3  Frobenius and spectral regularisation make J more ill-conditioned;
C4  norm regularisation increases the distance to the decision boundary;
C5  norm regularisation does not improve accuracy under Gaussian input noise.
"""
import os
import warnings

import numpy as np
from scipy import stats

from ..io import write_json, write_text
from .records import by_arm, finished, margin_medians, metric, noisy_accuracy
from .tables import SUCCESS_ACCURACY, succeeded

#: Significance level of every two-sided test.
ALPHA = 0.05
#: "Without a cost in accuracy": the mean test accuracy drops by at most this much. The
#: paper's own drop is 0.0002 (condition) against 0.11 (Frobenius, spectral); half a
#: percentage point is five test points in a thousand, well inside that gap.
ACCURACY_MARGIN = 0.005
NORMS = ("frobenius", "spectral")


def compare(a, b):
    """Two-sided Welch t and Mann–Whitney U tests of ``a`` against ``b`` (1-D arrays).

    Returns a dict with the sample sizes, means, ``diff = mean(a) − mean(b)``
    and both p-values (``None`` when a group has fewer than 2 values). Two
    constant samples get ``p = 0`` if they differ and ``p = 1`` if not, the
    limit of the t statistic, where SciPy would return NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    result = {"n_a": int(a.size), "n_b": int(b.size),
              "mean_a": float(a.mean()) if a.size else None,
              "mean_b": float(b.mean()) if b.size else None,
              "diff": None, "welch_p": None, "mannwhitney_p": None}
    if a.size < 2 or b.size < 2:
        return result
    result["diff"] = result["mean_a"] - result["mean_b"]
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        result["welch_p"] = 0.0 if a[0] != b[0] else 1.0
    else:
        with warnings.catch_warnings():  # nearly constant samples: the p-value is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            result["welch_p"] = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    if np.ptp(np.concatenate([a, b])) == 0:
        result["mannwhitney_p"] = 1.0  # all values tied: no evidence of a shift
    else:
        result["mannwhitney_p"] = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return result


def compare_paired(after, before):
    """Two-sided paired t and Wilcoxon signed-rank tests of ``after`` against ``before``.

    Same keys as :func:`compare` (``diff`` is the mean of ``after − before``);
    identical differences get ``p = 0`` (or 1 if all zero), where SciPy gives NaN.
    """
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    result = compare(after, before)
    if result["diff"] is None:
        return result
    delta = after - before
    if np.ptp(delta) == 0:
        result["welch_p"] = result["mannwhitney_p"] = 0.0 if delta[0] != 0 else 1.0
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result["welch_p"] = float(stats.ttest_rel(after, before).pvalue)
        result["mannwhitney_p"] = float(stats.wilcoxon(delta).pvalue) if np.any(delta) else 1.0
    return result


def holds(test, sign):
    """Whether ``test`` shows ``mean_a − mean_b`` of sign ``sign`` (±1) at ``p < ALPHA``."""
    if test["welch_p"] is None:
        return None
    return bool(np.sign(test["diff"]) == sign and test["welch_p"] < ALPHA)


def _arm_of(groups, reg):
    """Records of the paper's arm for ``reg`` (never our variant)."""
    for name, group in groups.items():
        if group[0]["reg"] == reg and not group[0]["ours"]:
            return group
    return []


def _verdict(checks):
    """``reproduced`` if all checks hold, ``not reproduced`` if none, else ``partly``."""
    checks = [ok for _, ok in checks]
    if not checks or any(c is None for c in checks):
        return "not tested (too few finished runs)"
    if all(checks):
        return "reproduced"
    return "not reproduced" if not any(checks) else "partly reproduced"


def _claim(key, statement, comparisons, checks, note=""):
    """One claim; ``checks`` is a list of ``(what must hold, True/False/None)``."""
    return {"claim": key, "statement": statement, "comparisons": comparisons,
            "checks": [{"check": text, "holds": ok} for text, ok in checks],
            "verdict": _verdict(checks), "note": note}


def _row(label, quantity, test, expect):
    return dict(test, label=label, quantity=quantity, expect=expect)


def evaluate_claims(records):
    """Test C0–C5 (and C1 for our variant) on the study's records; a list of claim dicts."""
    groups = by_arm(records)
    none, cond = _arm_of(groups, "none"), _arm_of(groups, "condition")
    acc = {reg: metric(_arm_of(groups, reg), "test_accuracy") for reg in ("none", "condition",
                                                                          *NORMS)}
    nfe = {reg: metric(_arm_of(groups, reg), "nfe") for reg in acc}
    log_kappa = {reg: np.log(metric(_arm_of(groups, reg), "kappa_mean")) for reg in acc}
    claims = []

    claims.append(_nfe_rise(none))
    claims.append(_no_cost_claim("C1", "Condition-number regularisation lowers NFE without a "
                                 "cost in test accuracy.", "condition", cond, none))
    for group in (g for g in groups.values() if g[0]["ours"]):
        name = group[0]["arm"]
        claims.append(_no_cost_claim(
            f"C1 (ours: {name})", f"Our variant ({name}, not the paper's) lowers NFE without a "
            "cost in test accuracy.", name, group, none))

    rows, checks = [], []
    for reg in NORMS:
        t_n = compare(nfe[reg], nfe["condition"])
        t_a = compare(acc[reg], acc["none"])
        rows += [_row(f"{reg} vs condition", "NFE", t_n, "lower"),
                 _row(f"{reg} vs none", "test accuracy", t_a, "lower")]
        costs = holds(t_a, -1)
        if costs:  # significant, and beyond the "no cost" margin of C1
            costs = -t_a["diff"] > ACCURACY_MARGIN
        checks += [(f"{reg} has lower NFE than condition", holds(t_n, -1)),
                   (f"{reg} has lower accuracy than none, by more than {ACCURACY_MARGIN}",
                    costs)]
    claims.append(_claim("C2", "Frobenius and spectral regularisation lower NFE more than the "
                         "condition number, but cost test accuracy.", rows, checks))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(log_kappa[reg], log_kappa["none"])
        rows.append(_row(f"{reg} vs none", "log κ(J)", t, "higher"))
        checks.append((f"{reg} has higher κ than none", holds(t, +1)))
    claims.append(_claim("C3", "Frobenius and spectral regularisation make the Jacobian more "
                         "ill-conditioned (higher κ) than no regularisation.", rows, checks))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(margin_medians(_arm_of(groups, reg)), margin_medians(none))
        rows.append(_row(f"{reg} vs none", "median boundary distance", t, "higher"))
        checks.append((f"{reg} has a larger boundary distance than none", holds(t, +1)))
    claims.append(_claim("C4", "Norm regularisation increases the distance to the decision "
                         "boundary.", rows, checks,
                         note="Per run: the median distance over the evaluated training "
                              "points; compared across seeds."))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(noisy_accuracy(_arm_of(groups, reg)), noisy_accuracy(none))
        rows.append(_row(f"{reg} vs none", "mean accuracy over σ > 0", t, "not higher"))
        improved = holds(t, +1)
        checks.append((f"{reg} is not more accurate under noise than none",
                       None if improved is None else not improved))
    claims.append(_claim("C5", "Norm regularisation does not improve accuracy under Gaussian "
                         "input noise.", rows, checks,
                         note="Reproduced unless a norm regulariser is significantly *more* "
                              "accurate under noise than no regularisation."))
    return claims


def _no_cost_claim(key, statement, name, group, none):
    """C1's checks for ``group`` against ``none``: lower NFE, accuracy within the margin."""
    t_nfe = compare(metric(group, "nfe"), metric(none, "nfe"))
    t_acc = compare(metric(group, "test_accuracy"), metric(none, "test_accuracy"))
    no_cost = None if t_acc["diff"] is None else bool(-t_acc["diff"] <= ACCURACY_MARGIN)
    return _claim(key, statement,
                  [_row(f"{name} vs none", "NFE", t_nfe, "lower"),
                   _row(f"{name} vs none", "test accuracy", t_acc, f"drop ≤ {ACCURACY_MARGIN}")],
                  [(f"{name} has lower NFE than none", holds(t_nfe, -1)),
                   (f"{name}'s mean accuracy is at most {ACCURACY_MARGIN} below none's", no_cost)],
                  note=_seed_note(name, group))


def _nfe_rise(none):
    """C0: forward NFE per batch in the last epoch against the first, paired by seed."""
    pairs = [(r["history"][-1]["nfe_forward"], r["history"][0]["nfe_forward"])
             for r in none if finished(r) and r["history"]]
    last, first = (np.array(v, dtype=float) for v in zip(*pairs)) if pairs else ([], [])
    test = compare_paired(last, first)
    return _claim("C0", "The NFE of dopri5 rises as unregularised training goes on.",
                  [_row("none: last epoch vs first", "forward NFE per batch", test, "higher")],
                  [("NFE in the last epoch is higher than in the first", holds(test, +1))],
                  note="Paired across seeds: paired t-test (decides) and Wilcoxon signed-rank "
                       "test in place of Welch and Mann–Whitney.")


def _seed_note(name, group):
    if not group:
        return ""
    kept = sum(succeeded(r) for r in group)
    return (f"Per seed, {name} kept its accuracy (≥ {SUCCESS_ACCURACY}) in {kept} of "
            f"{len(group)} runs.")


def _fmt(value, digits=4):
    return "—" if value is None else f"{value:.{digits}g}"


def claims_markdown(claims):
    """claims.md: per claim, the comparisons, both tests and the verdict."""
    lines = ["# The paper's claims, tested across seeds", "",
             f"Two-sided tests across seeds: Welch's t (decides) and Mann–Whitney U; a "
             f"difference holds at p < {ALPHA} with the claimed sign. \"No cost in accuracy\" "
             f"means a mean drop of at most {ACCURACY_MARGIN}. No multiple-comparison "
             f"correction; every p-value is shown.", ""]
    for c in claims:
        lines += [f"## {c['claim']}: {c['statement']}", "",
                  f"**Verdict: {c['verdict']}.**", "",
                  "| comparison | quantity | expected | mean A | mean B | A − B | Welch p "
                  "| Mann–Whitney p |", "|---|---|---|---|---|---|---|---|"]
        for r in c["comparisons"]:
            lines.append(f"| {r['label']} (n = {r['n_a']}, {r['n_b']}) | {r['quantity']} "
                         f"| {r['expect']} | {_fmt(r['mean_a'])} | {_fmt(r['mean_b'])} "
                         f"| {_fmt(r['diff'], 3)} | {_fmt(r['welch_p'], 3)} "
                         f"| {_fmt(r['mannwhitney_p'], 3)} |")
        disagree = [r["label"] + " " + r["quantity"] for r in c["comparisons"]
                    if r["welch_p"] is not None
                    and (r["welch_p"] < ALPHA) != (r["mannwhitney_p"] < ALPHA)]
        if disagree:
            lines += ["", "Welch and Mann–Whitney disagree at α = "
                      f"{ALPHA} on: {'; '.join(disagree)}."]
        lines.append("")
        for check in c["checks"]:
            mark = {True: "yes", False: "**no**", None: "not tested"}[check["holds"]]
            lines.append(f"- {check['check']}: {mark}")
        if c["note"]:
            lines += ["", c["note"]]
        lines.append("")
    return "\n".join(lines)


def write_claims(out, records, study=None):
    """Write ``claims.md`` and ``claims.json`` into ``out``; return their paths."""
    claims = evaluate_claims(records)
    paths = [os.path.join(out, "claims.md"), os.path.join(out, "claims.json")]
    write_text(paths[0], claims_markdown(claims))
    write_json(paths[1], {"alpha": ALPHA, "accuracy_margin": ACCURACY_MARGIN, "claims": claims})
    return paths
