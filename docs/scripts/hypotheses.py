"""Why are the paper's runs so consistent? Issue #10, item 3, as small studies.

Each hypothesis changes one thing of the study's base setting
(:data:`odejac.study.experiments.STUDY_BASE`: two moons, D = 2, dopri5 1e-3
forward and adjoint, Adam lr 1e-2, batch 256, 100 epochs) and trains the arms
``none`` and ``condition`` (λ = 1e-3, the paper's) on the seeds reserved for
these studies, 200–209 (never used to choose anything else). The baseline rows
are shared by every hypothesis. For every setting × arm the script reports mean
± std test accuracy, the seeds that keep accuracy (≥ 0.98), mean ± std NFE,
mean κ, and C1's verdict there: the condition arm's NFE is lower than none's
(two-sided Welch p < 0.05) AND it keeps accuracy in at least 90 % of seeds.

Usage (from the repository root)::

    nice -n 5 python docs/scripts/hypotheses.py                 # all settings, 2 jobs
    python docs/scripts/hypotheses.py --only epochs300 --seeds 5
    python docs/scripts/hypotheses.py --report-only             # tables from disk

Runs live in ``--out`` (default ``results/hypotheses/SETTING/ARM/seed-K``,
gitignored) and are resumed through :func:`odejac.study.experiments.run_one`,
so a killed invocation loses no finished run. Tables go to ``--docs``
(default ``docs/results/hypotheses``): ``hypotheses.csv`` (one row per setting
× arm), ``hypotheses.md`` (one table per hypothesis and a summary) and
``per_seed.csv``. They are made from the runs on disk only.
"""
import argparse
import csv
import io
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from odejac.io import read_json, write_text
from odejac.study.claims import compare, holds
from odejac.study.experiments import STUDY_BASE, check_config, is_done, run_one
from odejac.study.runner import run_parallel
from odejac.study.tables import SUCCESS_ACCURACY

#: The seed block reserved for these hypothesis studies (issue #10).
SEEDS = tuple(range(200, 210))
#: The two arms: unregularised and the paper's condition-number penalty.
ARMS = {"none": dict(reg="none", lam=0.0), "condition": dict(reg="condition", lam=1e-3)}
#: C1 needs the condition arm to keep accuracy in at least this share of seeds (issue #10).
KEPT_SHARE = 0.9
#: The paper's baseline: accuracy std 0.0008; "like the paper's" is a spread at most this
#: large with every seed kept (issue #10).
PAPER_SPREAD = 0.002


@dataclass(frozen=True)
class Setting:
    """One row group: a hypothesis, a short key (directory name) and the changed fields."""

    hypothesis: str
    key: str
    label: str
    changes: tuple  # ((TrainConfig field, value), ...)

    def config(self, arm, seed):
        return STUDY_BASE.replace(**dict(self.changes), **ARMS[arm], seed=seed)


def _tol(forward, adjoint):
    return (("rtol", forward), ("atol", forward), ("adjoint_rtol", adjoint),
            ("adjoint_atol", adjoint))


#: Cheapest first, so that a short budget still covers most hypotheses. Clipping bounds
#: were chosen from the gradient norms of seeds 290–292 (not reported): median 0.01–0.1,
#: 99th percentile 0.6–1.4, first steps up to 1.6; 1.0 cuts only the spikes, 0.1 most steps.
SETTINGS = (
    Setting("baseline", "base", "baseline (lr 1e-2, tol 1e-3, 100 epochs, batch 256, D = 2)",
            ()),
    Setting("learning rate", "lr1e-3", "lr 1e-3", (("lr", 1e-3),)),
    Setting("batch", "fullbatch", "full batch (1000)", (("batch_size", 1000),)),
    Setting("gradient clipping", "clip1", "clip global norm 1.0", (("grad_clip", 1.0),)),
    Setting("gradient clipping", "clip0.1", "clip global norm 0.1", (("grad_clip", 0.1),)),
    Setting("augmentation", "D4", "D = 4 (augment_dim 2)", (("augment_dim", 2),)),
    Setting("tolerance", "tol1e-5", "rtol = atol = 1e-5, forward and adjoint",
            _tol(1e-5, 1e-5)),
    Setting("tolerance", "adj1e-6", "adjoint rtol = atol = 1e-6 (forward 1e-3)",
            _tol(1e-3, 1e-6)),
    Setting("tolerance", "fwd1e-5", "forward rtol = atol = 1e-5 (adjoint 1e-3)",
            _tol(1e-5, 1e-3)),
    Setting("epochs", "epochs300", "300 epochs", (("epochs", 300),)),
    Setting("learning rate", "lr1e-3-ep300", "lr 1e-3, 300 epochs",
            (("lr", 1e-3), ("epochs", 300))),
    Setting("batch", "fullbatch-ep400", "full batch, 400 epochs (the baseline's 400 steps)",
            (("batch_size", 1000), ("epochs", 400))),
)
HYPOTHESES = tuple(dict.fromkeys(s.hypothesis for s in SETTINGS if s.key != "base"))


def run_directory(out, setting, arm, seed):
    return os.path.join(out, setting.key, arm, f"seed-{seed}")


def run(out, settings, seeds, jobs):
    """Train every missing (setting, arm, seed) in parallel; finished runs are skipped."""
    tasks, skipped = [], 0
    for setting in settings:
        for arm in ARMS:
            for seed in seeds:
                config = setting.config(arm, seed)
                directory = run_directory(out, setting, arm, seed)
                check_config(directory, config)
                if is_done(directory, config, None):
                    skipped += 1
                    continue
                tasks.append((f"{setting.key} {arm} seed {seed}", run_one, (config, directory)))
    run_parallel(tasks, jobs=jobs, skipped=skipped)


def load(out, setting, arm):
    """Summaries of the runs of ``setting`` × ``arm`` on disk (seeds in order)."""
    rows = []
    for seed in SEEDS:
        directory = run_directory(out, setting, arm, seed)
        try:
            if is_done(directory, setting.config(arm, seed), None):
                rows.append(dict(read_json(os.path.join(directory, "summary.json")), seed=seed))
        except ValueError:
            continue
    return rows


def _stats(rows):
    """Mean/std (ddof = 1) of accuracy, NFE and κ over finished runs; kept count over all."""
    done = [r for r in rows if r["status"] == "finished"]
    acc = np.array([r["test_accuracy"] for r in done])
    nfe = np.array([r["nfe"] for r in done], dtype=float)
    kappa = np.array([r["kappa_mean"] for r in done])
    std = lambda a: float(a.std(ddof=1)) if a.size > 1 else float("nan")  # noqa: E731
    return dict(n=len(rows), diverged=len(rows) - len(done),
                kept=int(np.sum(acc >= SUCCESS_ACCURACY)),
                acc_mean=float(acc.mean()) if acc.size else float("nan"), acc_std=std(acc),
                nfe_mean=float(nfe.mean()) if nfe.size else float("nan"), nfe_std=std(nfe),
                kappa_mean=float(kappa.mean()) if kappa.size else float("nan"),
                seconds_mean=float(np.mean([r["wall_seconds"] for r in rows])) if rows
                else float("nan"), acc=acc, nfe=nfe)


def c1_verdict(none, cond):
    """C1 at one setting: (verdict text, Welch p of NFE, relative NFE change)."""
    if none["nfe"].size < 2 or cond["nfe"].size < 2:
        return "not tested", None, None
    test = compare(cond["nfe"], none["nfe"])
    change = test["diff"] / test["mean_b"]
    lower = holds(test, -1)
    kept = cond["kept"] / cond["n"] >= KEPT_SHARE
    if lower and kept:
        return "holds", test["welch_p"], change
    why = [] if lower else ["NFE not significantly lower"]
    why += [] if kept else [f"condition keeps {cond['kept']}/{cond['n']}"]
    return "fails: " + "; ".join(why), test["welch_p"], change


def summarise(out):
    """One dict per (setting, arm) with the statistics and C1's verdict at the setting."""
    rows = []
    for setting in SETTINGS:
        stats = {arm: _stats(load(out, setting, arm)) for arm in ARMS}
        if not all(s["n"] for s in stats.values()):
            continue
        verdict, p, change = c1_verdict(stats["none"], stats["condition"])
        for arm, s in stats.items():
            paper_like = s["kept"] == s["n"] and s["acc_std"] <= PAPER_SPREAD
            rows.append(dict(hypothesis=setting.hypothesis, setting=setting.key,
                             label=setting.label, arm=arm,
                             **{k: v for k, v in s.items() if k not in ("acc", "nfe")},
                             paper_like_spread=bool(paper_like), c1_verdict=verdict,
                             c1_nfe_welch_p=p, c1_nfe_change=change))
    return rows


def _fmt(value, digits):
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _table(rows):
    lines = ["| setting | arm | test accuracy | kept | NFE | κ | s/run | C1 (NFE change, p) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c1 = ""
        if r["arm"] == "condition":
            c1 = (f"**{r['c1_verdict']}** ({_fmt(100 * r['c1_nfe_change'], 0)} %, "
                  f"p = {_fmt(r['c1_nfe_welch_p'], 3)})" if r["c1_nfe_change"] is not None
                  else r["c1_verdict"])
        diverged = f" ({r['diverged']} diverged)" if r["diverged"] else ""
        lines.append(
            f"| {r['label']} | {r['arm']} | {_fmt(r['acc_mean'], 4)} ± {_fmt(r['acc_std'], 4)} "
            f"| {r['kept']}/{r['n']}{diverged} | {_fmt(r['nfe_mean'], 1)} ± "
            f"{_fmt(r['nfe_std'], 1)} | {_fmt(r['kappa_mean'], 2)} | "
            f"{_fmt(r['seconds_mean'], 1)} | {c1} |")
    return "\n".join(lines)


def markdown(rows):
    """hypotheses.md: one table per hypothesis (with the baseline) and a summary table."""
    base = [r for r in rows if r["setting"] == "base"]
    parts = ["# Why are the paper's runs so consistent? (issue #10, item 3)", "",
             f"Seeds {SEEDS[0]}–{SEEDS[-1]}; mean ± std (ddof = 1) over finished runs; kept = "
             f"test accuracy ≥ {SUCCESS_ACCURACY}; κ the mean over seeds of κ(J(h(t0))) averaged "
             "over the training data; C1 holds where condition's NFE is lower than none's "
             f"(two-sided Welch p < 0.05) and condition keeps ≥ {KEPT_SHARE:.0%} of seeds. "
             "Made by `docs/scripts/hypotheses.py`.", ""]
    for hypothesis in HYPOTHESES:
        parts += [f"## {hypothesis}", "",
                  _table(base + [r for r in rows if r["hypothesis"] == hypothesis]), ""]
    parts += ["## Summary: the baseline arm's spread and C1 at every setting", "",
              "| setting | none: accuracy | none kept | spread ≤ 0.002 and all kept | "
              "condition: accuracy | condition kept | NFE none → condition | C1 |",
              "|---|---|---|---|---|---|---|---|"]
    for setting in SETTINGS:
        pair = {r["arm"]: r for r in rows if r["setting"] == setting.key}
        if len(pair) < 2:
            continue
        n, c = pair["none"], pair["condition"]
        parts.append(
            f"| {setting.label} | {_fmt(n['acc_mean'], 4)} ± {_fmt(n['acc_std'], 4)} | "
            f"{n['kept']}/{n['n']} | {'yes' if n['paper_like_spread'] else 'no'} | "
            f"{_fmt(c['acc_mean'], 4)} ± {_fmt(c['acc_std'], 4)} | {c['kept']}/{c['n']} | "
            f"{_fmt(n['nfe_mean'], 1)} → {_fmt(c['nfe_mean'], 1)} | {c['c1_verdict']} |")
    return "\n".join(parts) + "\n"


def write_outputs(out, docs):
    """hypotheses.csv, hypotheses.md and per_seed.csv in ``docs``, from the runs in ``out``."""
    rows = summarise(out)
    os.makedirs(docs, exist_ok=True)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(os.path.join(docs, "hypotheses.csv"), buffer.getvalue())
    write_text(os.path.join(docs, "hypotheses.md"), markdown(rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["setting", "arm", "seed", "status", "test_accuracy", "nfe", "kappa_mean",
                     "wall_seconds"])
    for setting in SETTINGS:
        for arm in ARMS:
            for r in load(out, setting, arm):
                writer.writerow([setting.key, arm, r["seed"], r["status"],
                                 r.get("test_accuracy"), r.get("nfe"), r.get("kappa_mean"),
                                 round(r["wall_seconds"], 2)])
    write_text(os.path.join(docs, "per_seed.csv"), buffer.getvalue())
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/hypotheses", help="run directories")
    parser.add_argument("--docs", default="docs/results/hypotheses", help="tables")
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (joblib n_jobs)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS),
                        help=f"train the first N of seeds {SEEDS[0]}–{SEEDS[-1]}")
    parser.add_argument("--only", nargs="+", metavar="KEY",
                        help="settings to train: " + ", ".join(s.key for s in SETTINGS))
    parser.add_argument("--report-only", action="store_true", help="only write the tables")
    args = parser.parse_args(argv)
    keys = {s.key for s in SETTINGS}
    if args.only and not set(args.only) <= keys:
        parser.error(f"unknown settings {sorted(set(args.only) - keys)}; known: {sorted(keys)}")
    if not 1 <= args.seeds <= len(SEEDS):
        parser.error(f"--seeds must be in 1..{len(SEEDS)}")
    if not args.report_only:
        start = time.perf_counter()
        settings = [s for s in SETTINGS if not args.only or s.key in args.only]
        run(args.out, settings, SEEDS[:args.seeds], args.jobs)
        print(f"trained in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    write_outputs(args.out, args.docs)
    print(f"wrote {args.docs}/hypotheses.{{csv,md}} and per_seed.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
