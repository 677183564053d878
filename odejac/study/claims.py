"""The paper's claims C1–C5 tested across seeds, with verdicts written either way.

Each claim compares per-seed values of two arms with two-sided tests from
``scipy.stats``: Welch's t-test (unequal variances; its verdict counts, since
the paper reports means) and the Mann–Whitney U test (no normality assumed; a
disagreement between the two is pointed out). κ is compared on a log scale,
where its spread over seeds is roughly symmetric. A difference "holds" when
it has the claimed sign and ``p < ALPHA``. Every difference is reported with
Welch's 95 % confidence interval (the paired t interval for C0), and every
verdict a second time after Holm's correction over the family of p-values that
decide a check (:func:`odejac.study.inference.holm`).

Claims (Josias & Brink, 2022; C0 is the issue's observation):

C0  the NFE of dopri5 rises as unregularised training goes on;
C1  condition-number regularisation lowers NFE without a cost in test accuracy;
C2  Frobenius and spectral regularisation lower NFE more, but cost accuracy;
C3  Frobenius and spectral regularisation make J more ill-conditioned;
C4  norm regularisation increases the distance to the decision boundary;
C5  norm regularisation does not improve accuracy under Gaussian input noise.
"""
import os

import numpy as np

from ..io import write_json, write_text
from .inference import ALPHA, compare, compare_paired, holm
from .records import by_arm, finished, margin_medians, metric, noisy_accuracy
from .tables import SUCCESS_ACCURACY, succeeded

#: "Without a cost in accuracy": the mean test accuracy drops by at most this much. The
#: paper's own drop is 0.0002 (condition) against 0.11 (Frobenius, spectral); half a
#: percentage point is five test points in a thousand, well inside that gap.
ACCURACY_MARGIN = 0.005
NORMS = ("frobenius", "spectral")


def holds(test, sign, key="welch_p"):
    """Whether ``test`` shows ``mean_a − mean_b`` of sign ``sign`` (±1) at ``p < ALPHA``.

    ``key`` names the p-value that decides: ``welch_p``, or ``holm_p`` once
    :func:`evaluate_claims` has corrected the family.
    """
    if test[key] is None:
        return None
    return bool(np.sign(test["diff"]) == sign and test[key] < ALPHA)


def _arm_of(groups, reg):
    """Records of the paper's arm for ``reg`` (never our variant)."""
    for name, group in groups.items():
        if group[0]["reg"] == reg and not group[0]["ours"]:
            return group
    return []


def _verdict(checks):
    """``reproduced`` if all checks hold, ``not reproduced`` if none, else ``partly``."""
    if not checks or any(c is None for c in checks):
        return "not tested (too few finished runs)"
    if all(checks):
        return "reproduced"
    return "not reproduced" if not any(checks) else "partly reproduced"


def _claim(key, statement, comparisons, checks, note=""):
    """One claim; ``checks`` is a list of ``(what must hold, rule)``.

    ``rule(key)`` returns True/False/None deciding with the p-value ``key``; it is
    called by :func:`_decide` once the Holm-adjusted p-values exist.
    """
    return {"claim": key, "statement": statement, "comparisons": comparisons,
            "checks": checks, "note": note}


def _row(label, quantity, test, expect, decides=True):
    """``test`` labelled, in place (the checks hold it too and must see its Holm p).

    ``decides``: its p-value decides a check, so it joins Holm's family.
    """
    test.update(label=label, quantity=quantity, expect=expect, decides=decides, holm_p=None)
    return test


def _decide(claims):
    """Holm-adjust the deciding p-values of all claims, then evaluate every check twice."""
    rows = [r for c in claims for r in c["comparisons"]
            if r["decides"] and r["welch_p"] is not None]
    for row, adjusted in zip(rows, holm([r["welch_p"] for r in rows]) if rows else []):
        row["holm_p"] = float(adjusted)
    for c in claims:
        checks = [{"check": text, "holds": rule("welch_p"), "holds_holm": rule("holm_p")}
                  for text, rule in c["checks"]]
        c["checks"] = checks
        c["verdict"] = _verdict([ch["holds"] for ch in checks])
        c["verdict_holm"] = _verdict([ch["holds_holm"] for ch in checks])
    return claims


def evaluate_claims(records):
    """Test C0–C5 (and C1 for our variants) on the study's records; a list of claim dicts.

    Each claim has its comparisons (with 95 % intervals, Welch and Holm p-values),
    its checks and two verdicts: ``verdict`` (uncorrected) and ``verdict_holm``.
    """
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
        checks += [(f"{reg} has lower NFE than condition",
                    lambda key, t=t_n: holds(t, -1, key)),
                   (f"{reg} has lower accuracy than none, by more than {ACCURACY_MARGIN}",
                    lambda key, t=t_a: _costs(t, key))]
    claims.append(_claim("C2", "Frobenius and spectral regularisation lower NFE more than the "
                         "condition number, but cost test accuracy.", rows, checks))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(log_kappa[reg], log_kappa["none"])
        rows.append(_row(f"{reg} vs none", "log κ(J)", t, "higher"))
        checks.append((f"{reg} has higher κ than none", lambda key, t=t: holds(t, +1, key)))
    claims.append(_claim("C3", "Frobenius and spectral regularisation make the Jacobian more "
                         "ill-conditioned (higher κ) than no regularisation.", rows, checks))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(margin_medians(_arm_of(groups, reg)), margin_medians(none))
        rows.append(_row(f"{reg} vs none", "median boundary distance", t, "higher"))
        checks.append((f"{reg} has a larger boundary distance than none",
                       lambda key, t=t: holds(t, +1, key)))
    claims.append(_claim("C4", "Norm regularisation increases the distance to the decision "
                         "boundary.", rows, checks,
                         note="Per run: the median distance over the evaluated training "
                              "points; compared across seeds."))

    rows, checks = [], []
    for reg in NORMS:
        t = compare(noisy_accuracy(_arm_of(groups, reg)), noisy_accuracy(none))
        rows.append(_row(f"{reg} vs none", "mean accuracy over σ > 0", t, "not higher"))
        checks.append((f"{reg} is not more accurate under noise than none",
                       lambda key, t=t: _negate(holds(t, +1, key))))
    claims.append(_claim("C5", "Norm regularisation does not improve accuracy under Gaussian "
                         "input noise.", rows, checks,
                         note="Reproduced unless a norm regulariser is significantly *more* "
                              "accurate under noise than no regularisation."))
    return _decide(claims)


def _costs(test, key):
    """Significantly less accurate, and by more than C1's "no cost" margin."""
    lower = holds(test, -1, key)
    return lower and -test["diff"] > ACCURACY_MARGIN if lower is not None else None


def _negate(value):
    return None if value is None else not value


def _no_cost_claim(key, statement, name, group, none):
    """C1's checks for ``group`` against ``none``: lower NFE, accuracy within the margin."""
    t_nfe = compare(metric(group, "nfe"), metric(none, "nfe"))
    t_acc = compare(metric(group, "test_accuracy"), metric(none, "test_accuracy"))
    no_cost = None if t_acc["diff"] is None else bool(-t_acc["diff"] <= ACCURACY_MARGIN)
    return _claim(key, statement,
                  [_row(f"{name} vs none", "NFE", t_nfe, "lower"),
                   _row(f"{name} vs none", "test accuracy", t_acc, f"drop ≤ {ACCURACY_MARGIN}",
                        decides=False)],  # decided by the margin, not by a p-value
                  [(f"{name} has lower NFE than none", lambda key: holds(t_nfe, -1, key)),
                   (f"{name}'s mean accuracy is at most {ACCURACY_MARGIN} below none's",
                    lambda key: no_cost)],
                  note=_seed_note(name, group))


def _nfe_rise(none):
    """C0: forward NFE per batch in the last epoch against the first, paired by seed."""
    pairs = [(r["history"][-1]["nfe_forward"], r["history"][0]["nfe_forward"])
             for r in none if finished(r) and r["history"]]
    last, first = (np.array(v, dtype=float) for v in zip(*pairs)) if pairs else ([], [])
    test = compare_paired(last, first)
    return _claim("C0", "The NFE of dopri5 rises as unregularised training goes on.",
                  [_row("none: last epoch vs first", "forward NFE per batch", test, "higher")],
                  [("NFE in the last epoch is higher than in the first",
                    lambda key: holds(test, +1, key))],
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


def _interval(row):
    if row["ci_low"] is None:
        return "—"
    return f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def claims_markdown(claims):
    """claims.md: per claim, the comparisons with 95 % intervals, the tests and both verdicts."""
    lines = ["# The paper's claims, tested across seeds", "",
             f"Two-sided tests across seeds: Welch's t (decides) and Mann–Whitney U; a "
             f"difference holds at p < {ALPHA} with the claimed sign. A − B is given with "
             f"Welch's {1 - ALPHA:.0%} confidence interval (C0: the paired t interval). "
             f"\"No cost in accuracy\" means a mean drop of at most {ACCURACY_MARGIN}. Each "
             f"verdict is given twice: uncorrected, and after Holm's correction over every "
             f"p-value that decides a check (Holm p; — where a comparison decides nothing).",
             ""]
    for c in claims:
        lines += [f"## {c['claim']}: {c['statement']}", "",
                  f"**Verdict: {c['verdict']}** (after Holm's correction: "
                  f"{c['verdict_holm']}).", "",
                  "| comparison | quantity | expected | mean A | mean B | A − B "
                  f"| {1 - ALPHA:.0%} CI of A − B | Welch p | Holm p | Mann–Whitney p |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in c["comparisons"]:
            lines.append(f"| {r['label']} (n = {r['n_a']}, {r['n_b']}) | {r['quantity']} "
                         f"| {r['expect']} | {_fmt(r['mean_a'])} | {_fmt(r['mean_b'])} "
                         f"| {_fmt(r['diff'], 3)} | {_interval(r)} | {_fmt(r['welch_p'], 3)} "
                         f"| {_fmt(r['holm_p'], 3)} | {_fmt(r['mannwhitney_p'], 3)} |")
        disagree = [r["label"] + " " + r["quantity"] for r in c["comparisons"]
                    if r["welch_p"] is not None
                    and (r["welch_p"] < ALPHA) != (r["mannwhitney_p"] < ALPHA)]
        if disagree:
            lines += ["", "Welch and Mann–Whitney disagree at α = "
                      f"{ALPHA} on: {'; '.join(disagree)}."]
        lines.append("")
        marks = {True: "yes", False: "**no**", None: "not tested"}
        for check in c["checks"]:
            text = f"- {check['check']}: {marks[check['holds']]}"
            if check["holds_holm"] != check["holds"]:
                text += f" (after Holm: {marks[check['holds_holm']]})"
            lines.append(text)
        if c["note"]:
            lines += ["", c["note"]]
        lines.append("")
    return "\n".join(lines)


def write_claims(out, records, study=None):
    """Write ``claims.md`` and ``claims.json`` into ``out``; return their paths."""
    claims = evaluate_claims(records)
    paths = [os.path.join(out, "claims.md"), os.path.join(out, "claims.json")]
    write_text(paths[0], claims_markdown(claims))
    write_json(paths[1], {"alpha": ALPHA, "accuracy_margin": ACCURACY_MARGIN,
                          "correction": "holm", "claims": claims})
    return paths
