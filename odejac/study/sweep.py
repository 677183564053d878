"""NFE, test accuracy and κ against λ, per regulariser: how the study's λ were chosen.

:func:`run_sweep` trains every (regulariser, λ) on a few seeds with the
study's base configuration (no robustness evaluation) through the same
runner and run layout as :mod:`odejac.study.experiments`, so a sweep resumes the same
way, and writes::

    OUT/sweep.{md,csv,json}   one row per (regulariser, λ): mean ± std over seeds
    OUT/fig_sweep.png         the three quantities against λ (odejac.study.plots)
"""
import csv
import io
import os

import math

from .dispatch import dispatched
from .experiments import QUICK_SEEDS, seed_range, study_base
from ..io import write_json, write_text
from .records import Arm, StudyConfig, by_arm, metric
from .tables import LABELS, SUCCESS_ACCURACY, succeeded

#: Regularisers swept (the paper's three and our log κ).
SWEEP_REGS = ("frobenius", "spectral", "condition", "log_condition")
#: λ from "barely there" to "dominates the data loss" (the cross-entropy starts at ≈ 0.7).
SWEEP_LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
SWEEP_SEEDS = 3
QUICK_LAMBDAS = (1e-3, 1.0)


def make_sweep(*, regs=SWEEP_REGS, lams=SWEEP_LAMBDAS, seeds=None, first_seed=0,
               quick=False, epochs=None, dataset=None):
    """A StudyConfig with one arm per (regulariser, λ) plus the unregularised baseline.

    ``seeds=None``: :data:`SWEEP_SEEDS` (2 when ``quick``, which also keeps two λ); the
    seeds run are ``first_seed`` onwards.
    """
    if seeds is None:
        seeds = QUICK_SEEDS if quick else SWEEP_SEEDS
    base = study_base(quick=quick, epochs=epochs, dataset=dataset)
    if quick and tuple(lams) == tuple(SWEEP_LAMBDAS):   # --quick keeps λ the user gave
        lams = QUICK_LAMBDAS
    bad = [lam for lam in lams if not (math.isfinite(lam) and lam > 0)]
    if bad:
        raise ValueError(f"--lams must be finite numbers > 0; got {bad}")
    arms = [Arm("none", "none", 0.0)]
    arms += [Arm(f"{reg}-lam{lam:g}", reg, float(lam), ours=reg == "log_condition")
             for reg in regs for lam in lams]
    return StudyConfig(base=base, arms=tuple(arms), seeds=seed_range(seeds, first_seed))


def sweep_rows(records):
    """One row per arm: λ, mean ± std of NFE, accuracy and κ, runs kept accurate."""
    rows = []
    for group in by_arm(records).values():
        row = dict(reg=group[0]["reg"], lam=group[0]["lam"], lam_warmup=group[0]["lam_warmup"],
                   ours=group[0]["ours"], n_runs=len(group),
                   n_success=sum(succeeded(r) for r in group))
        for key in ("nfe", "test_accuracy", "kappa_mean"):
            values = metric(group, key)
            row[f"{key}_mean"] = float(values.mean()) if values.size else None
            row[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else None
            row[f"{key}_per_seed"] = values.tolist()
        rows.append(row)
    return rows


def _md(rows, study):
    lines = [f"## λ sweep ({len(study.seeds)} seeds, {study.base.epochs} epochs, "
             f"augment_dim = {study.base.augment_dim})", "",
             "| regulariser | λ | NFE | test accuracy | mean κ | kept accuracy "
             f"(≥ {SUCCESS_ACCURACY}) |", "|---|---|---|---|---|---|"]

    def pm(row, key, digits):
        if row[f"{key}_mean"] is None:
            return "—"
        return f"{row[f'{key}_mean']:.{digits}f} ± {(row[f'{key}_std'] or 0.0):.{digits}f}"

    for row in rows:
        name = LABELS.get(row["reg"], row["reg"]) + (" (ours)" if row["ours"] else "")
        lam = "—" if row["reg"] == "none" else f"{row['lam']:g}"
        if row["lam_warmup"]:
            lam += f" (warm-up {row['lam_warmup']})"
        lines.append(f"| {name} | {lam} | {pm(row, 'nfe', 1)} | {pm(row, 'test_accuracy', 4)} "
                     f"| {pm(row, 'kappa_mean', 2)} | {row['n_success']}/{row['n_runs']} |")
    return "\n".join(lines) + "\n"


def write_sweep(out, records, study):
    """Write ``sweep.{md,csv,json}``; return their paths."""
    rows = sweep_rows(records)
    paths = [os.path.join(out, f"sweep.{ext}") for ext in ("md", "csv", "json")]
    write_text(paths[0], _md(rows, study))
    flat = [{k: v for k, v in row.items() if not k.endswith("_per_seed")} for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in flat)
    write_text(paths[1], buffer.getvalue())
    write_json(paths[2], {"seeds": list(study.seeds), "epochs": study.base.epochs,
                          "base": study.base.to_dict(), "rows": rows})
    return paths


def run_sweep(out, study, *, jobs=-1, backend="loky", scheduler=None, plots=True, log=None):
    """Run (or resume) the sweep into ``out``; write its table and figure."""
    with dispatched(out, study, None, jobs=jobs, backend=backend, scheduler=scheduler,
                    log=log) as done:
        outputs = write_sweep(done.out, done.records, study)
        if plots:
            from .plots import plot_sweep

            outputs.append(plot_sweep(done.out))
    return done.result(len(study.runs()), outputs)
