"""Where C1 holds: ``none``, ``condition`` and ``robust`` over a grid of settings.

C1 (the paper's central claim) says condition-number regularisation lowers NFE
without a cost in accuracy. :func:`run_landscape` tests it in every setting of a
grid — dimension D (augmentation), solver tolerance, autonomous or
time-dependent field, learning rate — with the runner and run layout of
:mod:`odejac.study.experiments` (parallel, resumable after SIGKILL, loky or
Dask). Each setting is a sub-study that trains only (no robustness evaluation)::

    OUT/settings/SETTING/study.json          the setting's StudyConfig
    OUT/settings/SETTING/runs/ARM/seed-KK/   one run (odejac.train files)
    OUT/landscape.{csv,md,json}              one row per setting × arm (vs none)
    OUT/fig_landscape.png                    settings × arm, coloured by verdict

The verdict of an arm in a setting (:func:`verdict`), against ``none`` on the
same seeds:

* *NFE cut*: the arm's mean test-set NFE is lower, Welch's two-sided t-test
  p < :data:`ALPHA`;
* *accuracy kept*: at least :data:`KEPT_SHARE` of the arm's runs keep test
  accuracy ≥ :data:`SUCCESS_ACCURACY` (a diverged run keeps nothing), and that
  share is not significantly below none's (one-sided Fisher exact test,
  p ≥ :data:`ALPHA`);
* ``holds`` if both, ``NFE not cut`` or ``costs accuracy`` if one fails,
  ``both fail`` if both do; ``not tested`` with fewer than two finished runs a side.
"""
import itertools
import os
import time
from dataclasses import dataclass

from ..io import write_json, write_text
from .experiments import (PAPER_LAMBDAS, QUICK_SEEDS, ROBUST, check_config, is_done, run_one,
                          seed_range, study_base)
from .inference import ALPHA, compare, kept_share_test
from .records import Arm, StudyConfig, by_arm, load_records, metric, run_dir
from .runner import check_backend, check_dask, run_parallel
from .tables import SUCCESS_ACCURACY, csv_text, succeeded

#: The arms compared: the baseline, the paper's penalty at the paper's λ, our robust arm.
LANDSCAPE_ARMS = (Arm("none", "none", 0.0),
                  Arm("condition", "condition", PAPER_LAMBDAS["condition"]), ROBUST)
#: The grid's axes: augmentation (D = 2 + augment_dim on two moons), tolerance of the
#: forward and adjoint solves (rtol = atol), a time-dependent field, Adam's learning rate.
AUGMENT_DIMS = (0, 2)
TOLERANCES = (1e-3, 1e-5)
TIME_DEPENDENT = (False, True)
LEARNING_RATES = (1e-2, 1e-3)
LANDSCAPE_SEEDS = 10
#: The TrainConfig fields a setting's tolerance sets: forward and adjoint, rtol = atol.
TOLERANCE_FIELDS = ("rtol", "atol", "adjoint_rtol", "adjoint_atol")
#: Accuracy is "kept" in a setting if at least this share of the arm's runs keep it (the
#: issue's goal: accuracy ≥ 0.98 in at least 90 % of seeds).
KEPT_SHARE = 0.9
#: ``--quick``: two opposite corners of the grid, on the study's quick training.
QUICK_CORNERS = 2
#: Verdicts, in the order of the figure's legend.
VERDICTS = ("holds", "NFE not cut", "costs accuracy", "both fail", "not tested")


@dataclass(frozen=True)
class Setting:
    """One point of the grid."""

    augment_dim: int
    tol: float
    time_dependent: bool
    lr: float

    @property
    def name(self):
        """E.g. ``D2-tol0.001-auto-lr0.01`` (also its directory name)."""
        field = "tdep" if self.time_dependent else "auto"
        return f"D{2 + self.augment_dim}-tol{self.tol:g}-{field}-lr{self.lr:g}"

    def overrides(self):
        """The TrainConfig fields this setting changes."""
        return dict(augment_dim=self.augment_dim, **dict.fromkeys(TOLERANCE_FIELDS, self.tol),
                    time_dependent=self.time_dependent, lr=self.lr)

    def describe(self):
        return dict(setting=self.name, D=2 + self.augment_dim, tol=self.tol,
                    time_dependent=self.time_dependent, lr=self.lr)


def grid(quick=False):
    """Every Setting of the grid (``quick``: its first and last corner)."""
    settings = [Setting(*point) for point in itertools.product(
        AUGMENT_DIMS, TOLERANCES, TIME_DEPENDENT, LEARNING_RATES)]
    return (settings[0], settings[-1]) if quick else tuple(settings)


def make_landscape(*, seeds=None, first_seed=0, quick=False, epochs=None):
    """``{setting: StudyConfig}`` of the grid, every setting on the same seeds.

    ``seeds=None``: :data:`LANDSCAPE_SEEDS` (:data:`QUICK_SEEDS` when ``quick``, which
    also trains the study's quick configuration on :data:`QUICK_CORNERS` settings).
    """
    if seeds is None:
        seeds = QUICK_SEEDS if quick else LANDSCAPE_SEEDS
    seeds = seed_range(seeds, first_seed)
    return {setting: StudyConfig(base=study_base(quick=quick, epochs=epochs,
                                                 overrides=setting.overrides()),
                                 arms=LANDSCAPE_ARMS, seeds=seeds)
            for setting in grid(quick)}


def setting_dir(out, setting):
    return os.path.join(out, "settings", setting.name)


def verdict(nfe_test, kept_share, kept_p):
    """The verdict of one arm in one setting (definitions in the module docstring)."""
    if nfe_test["welch_p"] is None or kept_p is None:
        return "not tested"
    cut = nfe_test["diff"] < 0 and nfe_test["welch_p"] < ALPHA
    kept = kept_share >= KEPT_SHARE and kept_p >= ALPHA
    return {(True, True): "holds", (False, True): "NFE not cut",
            (True, False): "costs accuracy", (False, False): "both fail"}[(cut, kept)]


def _percent(value, reference):
    return None if value is None or not reference else 100.0 * value / reference


def landscape_rows(records_by_setting):
    """One row per (setting, arm other than none): the arm against none in that setting."""
    rows = []
    for setting, records in records_by_setting.items():
        groups = by_arm(records)
        none = groups["none"]
        kept_none = sum(succeeded(r) for r in none)
        for name, group in groups.items():
            if name == "none":
                continue
            test = compare(metric(group, "nfe"), metric(none, "nfe"))
            kept = sum(succeeded(r) for r in group)
            kept_p = kept_share_test(kept, len(group), kept_none, len(none))
            base = test["mean_b"]
            acc_arm, acc_none = metric(group, "test_accuracy"), metric(none, "test_accuracy")
            rows.append(dict(
                setting.describe(), arm=name, n_none=len(none), n_arm=len(group),
                nfe_none=base, nfe_arm=test["mean_a"], nfe_diff=test["diff"],
                nfe_ci_low=test["ci_low"], nfe_ci_high=test["ci_high"],
                nfe_change_pct=_percent(test["diff"], base),
                nfe_change_ci_low_pct=_percent(test["ci_low"], base),
                nfe_change_ci_high_pct=_percent(test["ci_high"], base),
                welch_p=test["welch_p"],
                accuracy_none=float(acc_none.mean()) if acc_none.size else None,
                accuracy_arm=float(acc_arm.mean()) if acc_arm.size else None,
                kept_none=kept_none / len(none), kept_arm=kept / len(group), kept_p=kept_p,
                verdict=verdict(test, kept / len(group), kept_p)))
    return rows


def _num(value, digits=3):
    return "—" if value is None else f"{value:.{digits}g}"


def landscape_markdown(rows, seeds, epochs):
    lines = [f"## Where C1 holds ({len(seeds)} seeds, {seeds[0]}–{seeds[-1]}; "
             f"{epochs} epochs)", "",
             f"Each arm against none in the same setting. NFE change: mean test-set NFE, "
             f"with Welch's {1 - ALPHA:.0%} interval, as % of none's. Kept: share of runs "
             f"with test accuracy ≥ {SUCCESS_ACCURACY}. **holds**: NFE lower at Welch "
             f"p < {ALPHA}, and kept ≥ {KEPT_SHARE:g} and not below none's (one-sided Fisher "
             f"exact p ≥ {ALPHA}).", "",
             "| setting | arm | NFE none | NFE arm | NFE change | 95 % CI | Welch p "
             "| kept none | kept arm | Fisher p | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        change = "—" if r["nfe_change_pct"] is None else f"{r['nfe_change_pct']:+.1f} %"
        ci = ("—" if r["nfe_change_ci_low_pct"] is None else
              f"[{r['nfe_change_ci_low_pct']:+.1f}, {r['nfe_change_ci_high_pct']:+.1f}] %")
        lines.append(f"| {r['setting']} | {r['arm']} | {_num(r['nfe_none'])} "
                     f"| {_num(r['nfe_arm'])} | {change} | {ci} | {_num(r['welch_p'])} "
                     f"| {r['kept_none']:.0%} | {r['kept_arm']:.0%} | {_num(r['kept_p'])} "
                     f"| {r['verdict']} |")
    return "\n".join(lines) + "\n"


def write_landscape(out, landscape):
    """Write ``landscape.{csv,md,json}`` from the runs on disk; return their paths."""
    records = {setting: load_records(setting_dir(out, setting), study)
               for setting, study in landscape.items()}
    rows = landscape_rows(records)
    first = next(iter(landscape.values()))
    paths = [os.path.join(out, f"landscape.{ext}") for ext in ("csv", "md", "json")]
    write_text(paths[0], csv_text(rows))
    write_text(paths[1], landscape_markdown(rows, first.seeds, first.base.epochs))
    write_json(paths[2], {"seeds": list(first.seeds), "epochs": first.base.epochs,
                          "arms": [arm.to_dict() for arm in first.arms],
                          "settings": [s.describe() for s in landscape],
                          "alpha": ALPHA, "kept_share": KEPT_SHARE,
                          "success_accuracy": SUCCESS_ACCURACY, "verdicts": list(VERDICTS),
                          "rows": rows})
    return paths


def run_landscape(out, landscape, *, jobs=-1, backend="loky", scheduler=None, plots=True,
                  log=None):
    """Run (or resume) every setting's runs in one parallel pass; write tables and figure.

    Same parameters and result as :func:`odejac.study.experiments.run_experiments`.
    """
    check_backend(backend, scheduler)
    if backend == "dask":   # workers must write where the client reads (issue #12)
        out = os.path.abspath(out)
    start = time.perf_counter()
    tasks, skipped = [], 0
    for setting, study in landscape.items():  # every config checked before any work
        for arm, seed, config in study.runs():
            directory = run_dir(setting_dir(out, setting), arm, seed)
            check_config(directory, config)
            if is_done(directory, config, None):
                skipped += 1
            else:
                tasks.append((f"{setting.name} {arm.name} seed {seed}", run_one,
                              (config, directory, None)))
    if backend == "dask" and tasks:
        check_dask(scheduler, out)
    for setting, study in landscape.items():
        os.makedirs(setting_dir(out, setting), exist_ok=True)
        write_json(os.path.join(setting_dir(out, setting), "study.json"), study.to_dict())
    run_parallel(tasks, jobs=jobs, backend=backend, scheduler=scheduler, skipped=skipped,
                 log=log)
    outputs = write_landscape(out, landscape)
    if plots:
        from .plots import plot_landscape

        outputs.append(plot_landscape(out))
    return {"runs": sum(len(s.runs()) for s in landscape.values()), "trained": len(tasks),
            "seconds": time.perf_counter() - start, "outputs": outputs}
