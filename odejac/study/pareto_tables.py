"""The Pareto benchmark's tables: every grid point × stage, and the choice at matched accuracy.

:func:`point_rows` reduces the runs of :mod:`odejac.study.pareto` to one row per grid
point and stage; :func:`select` applies the validation-only selection rule (stated in
:mod:`odejac.study.pareto`'s docstring); :func:`matched_rows` reports each choice on the
held-out seeds against ``none``; :func:`write_pareto` writes ``pareto.{csv,md,json}``.
"""
import numpy as np

from ..io import write_json, write_text
from .inference import ALPHA, compare, holm, mean_ci
from .records import finished, metric
from .tables import csv_text


def _share(group, threshold):
    """Share of the runs with a result whose test accuracy is ≥ ``threshold`` (a diverged
    run never is); ``None`` without runs."""
    ran = [r for r in group if r["summary"] is not None]
    if not ran:
        return None
    return sum(finished(r) and r["summary"]["test_accuracy"] >= threshold for r in ran) / len(ran)


def _seconds_per_epoch(group):
    """Median over finished runs of the training wall time per epoch (from each summary).

    The median, not the mean: the first run of each worker also loads the compiled
    kernels, which would weigh on a mean over a few seeds.
    """
    values = [r["summary"]["epoch_seconds_total"] / r["summary"]["epochs_done"]
              for r in group if finished(r) and r["summary"].get("epochs_done")]
    return float(np.median(values)) if values else None


def _groups(records, pareto):
    """``{(arm, stage): [records]}``."""
    groups = {}
    for record in records:
        groups.setdefault((record["arm"], pareto.stage(record["seed"])), []).append(record)
    return groups


def point_rows(records, pareto, thresholds):
    """One row per grid point × stage (study order, validation first)."""
    groups, rows = _groups(records, pareto), []
    for stage in ("validation", "heldout"):
        for arm, method, knob, value in pareto.points:
            group = groups.get((arm, stage), [])
            nfe, acc = mean_ci(metric(group, "nfe")), mean_ci(metric(group, "test_accuracy"))
            row = dict(method=method, knob=knob, value=value, arm=arm, stage=stage,
                       n_seeds=len(group), n_finished=nfe["n"],
                       n_diverged=sum(r["summary"] is not None and not finished(r)
                                      for r in group),
                       nfe_mean=nfe["mean"], nfe_ci_low=nfe["ci_low"], nfe_ci_high=nfe["ci_high"],
                       acc_mean=acc["mean"], acc_ci_low=acc["ci_low"],
                       acc_ci_high=acc["ci_high"])
            for threshold in thresholds:
                row[f"share_acc_{threshold:g}"] = _share(group, threshold)
            row["sec_per_epoch"] = _seconds_per_epoch(group)
            rows.append(row)
    return rows


def eligible(row, threshold):
    """A validation row is a candidate at ``threshold``: every run finished, mean accuracy ≥ it."""
    return (row["n_seeds"] > 0 and row["n_finished"] == row["n_seeds"]
            and row["acc_mean"] >= threshold)


def select(rows, threshold):
    """``{method: validation row or None}``: the rule of :mod:`odejac.study.pareto` (3.).

    Among a method's eligible validation rows, the lowest mean NFE; ties to the higher
    mean accuracy, then to the earlier grid point. ``None``: no eligible point.
    """
    chosen = {}
    for order, row in enumerate(r for r in rows if r["stage"] == "validation"):
        chosen.setdefault(row["method"], None)
        if not eligible(row, threshold):
            continue
        key = (row["nfe_mean"], -row["acc_mean"], order)
        best = chosen[row["method"]]
        if best is None or key < best[0]:
            chosen[row["method"]] = (key, row)
    return {method: None if best is None else best[1] for method, best in chosen.items()}


def _percent(value, reference):
    return None if value is None or not reference else 100.0 * value / reference


def matched_rows(records, rows, pareto, threshold):
    """One row per method at ``threshold``: its validation choice, reported on held-out."""
    groups = _groups(records, pareto)
    reference = metric(groups.get(("none", "heldout"), []), "nfe")
    heldout = {r["arm"]: r for r in rows if r["stage"] == "heldout"}
    out = []
    for method, choice in select(rows, threshold).items():
        row = dict(threshold=threshold, method=method, arm=None, value=None, val_nfe=None,
                   val_acc=None, n=0, nfe_mean=None, nfe_ci_low=None, nfe_ci_high=None,
                   acc_mean=None, acc_ci_low=None, acc_ci_high=None, reliability=None,
                   sec_per_epoch=None, nfe_diff=None, diff_ci_low=None, diff_ci_high=None,
                   nfe_change_pct=None, welch_p=None, p_holm=None)
        if choice is not None:
            held = heldout[choice["arm"]]
            row.update(arm=choice["arm"], value=choice["value"], val_nfe=choice["nfe_mean"],
                       val_acc=choice["acc_mean"], n=held["n_finished"],
                       reliability=held[f"share_acc_{threshold:g}"],
                       sec_per_epoch=held["sec_per_epoch"],
                       **{k: held[k] for k in ("nfe_mean", "nfe_ci_low", "nfe_ci_high",
                                               "acc_mean", "acc_ci_low", "acc_ci_high")})
            if method != "none":
                test = compare(metric(groups[(choice["arm"], "heldout")], "nfe"), reference)
                row.update(nfe_diff=test["diff"], diff_ci_low=test["ci_low"],
                           diff_ci_high=test["ci_high"], welch_p=test["welch_p"],
                           nfe_change_pct=_percent(test["diff"], test["mean_b"]))
        out.append(row)
    tested = [r for r in out if r["welch_p"] is not None]
    if tested:
        for row, adjusted in zip(tested, holm([r["welch_p"] for r in tested])):
            row["p_holm"] = float(adjusted)
    return out


def _num(value, digits=3):
    return "—" if value is None else f"{value:.{digits}g}"


def _ci(row, key, digits=3):
    """``mean [low, high]`` of ``row[key_mean]`` etc.; ``—`` when missing."""
    mean, low, high = row[f"{key}_mean"], row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    if mean is None:
        return "—"
    interval = "" if low is None else f" [{low:.{digits}g}, {high:.{digits}g}]"
    return f"{mean:.{digits}g}{interval}"


def _share_text(value):
    return "—" if value is None else f"{value:.0%}"


def pareto_markdown(rows, matched, pareto):
    """The two matched-accuracy tables, then every grid point on both stages."""
    val, held = pareto.validation_seeds, pareto.heldout_seeds
    lines = [f"## NFE at matched accuracy (validation seeds {val[0]}–{val[-1]}, held-out seeds "
             f"{held[0]}–{held[-1]}; {pareto.study.base.epochs} epochs)", "",
             "Each method's grid point is chosen on the validation seeds only: every "
             "validation run finished and mean test accuracy ≥ the threshold, then the lowest "
             "mean validation NFE. Its numbers below are on the held-out seeds: mean and "
             f"{1 - ALPHA:.0%} t interval; Δ NFE against none on the held-out seeds (Welch's "
             "interval and p, Holm across methods); reliability: share of held-out seeds "
             "reaching the threshold; s/epoch: training wall time per epoch (median over "
             "seeds).", ""]
    for threshold, table in matched.items():
        lines += [f"### Test accuracy ≥ {threshold:g}", "",
                  "| method | chosen | val NFE | val acc | NFE | accuracy | reliability "
                  "| Δ NFE vs none | 95 % CI | Welch p | Holm p | s/epoch |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in table:
            if r["arm"] is None:
                lines.append(f"| {r['method']} | no grid point reaches {threshold:g} on "
                             f"validation |" + " |" * 10)
                continue
            change = ("—" if r["nfe_change_pct"] is None else
                      f"{r['nfe_diff']:+.3g} ({r['nfe_change_pct']:+.1f} %)")
            interval = ("—" if r["diff_ci_low"] is None else
                        f"[{r['diff_ci_low']:+.3g}, {r['diff_ci_high']:+.3g}]")
            lines.append(f"| {r['method']} | {r['arm']} | {_num(r['val_nfe'])} "
                         f"| {_num(r['val_acc'], 4)} | {_ci(r, 'nfe')} | {_ci(r, 'acc', 4)} "
                         f"| {_share_text(r['reliability'])} | {change} | {interval} "
                         f"| {_num(r['welch_p'])} | {_num(r['p_holm'])} "
                         f"| {_num(r['sec_per_epoch'])} |")
        lines.append("")
    shares = [key for key in rows[0] if key.startswith("share_acc_")]
    lines += ["## Every grid point", "",
              "Mean [95 % t interval] over the finished runs of each stage; n: finished of "
              "seeds (diverged).", "",
              "| method | point | stage | n | NFE | accuracy | "
              + " | ".join(f"acc ≥ {key[len('share_acc_'):]}" for key in shares)
              + " | s/epoch |", "|---" * (6 + len(shares)) + "|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['arm']} | {r['stage']} "
                     f"| {r['n_finished']}/{r['n_seeds']} ({r['n_diverged']}) | {_ci(r, 'nfe')} "
                     f"| {_ci(r, 'acc', 4)} | "
                     + " | ".join(_share_text(r[key]) for key in shares)
                     + f" | {_num(r['sec_per_epoch'])} |")
    return "\n".join(lines) + "\n"


def write_pareto(out, records, pareto):
    """Write ``pareto.{csv,md,json}`` from the runs' records; return their paths."""
    from .pareto import pareto_path

    thresholds = pareto.thresholds
    rows = point_rows(records, pareto, thresholds)
    matched = {threshold: matched_rows(records, rows, pareto, threshold)
               for threshold in thresholds}
    paths = [pareto_path(out, ext) for ext in ("csv", "md", "json")]
    write_text(paths[0], csv_text(rows))
    write_text(paths[1], pareto_markdown(rows, matched, pareto))
    write_json(paths[2], dict(pareto.to_dict(), alpha=ALPHA, rows=rows,
                              matched={f"{t:g}": table for t, table in matched.items()}))
    return paths
