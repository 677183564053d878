"""Choose the hyper-parameters of the study's ``robust`` arm on validation seeds only.

Issue #10, item 2: the condition-number penalty should cut the test-set NFE by at
least 20 % against the unregularised arm (Welch p < 0.05) while keeping test
accuracy ≥ 0.98 in at least 90 % of seeds. Every candidate below is a set of
TrainConfig overrides of the study's base config (``STUDY_BASE``: two moons,
D = 2, dopri5 1e-3, Adam 1e-2, batch 256, 100 epochs). The search never looks at
seeds 0–99 or 1000+ (held out for the report); it is staged to save compute:

1. ``screen``: every candidate on seeds 100–109;
2. ``confirm``: the best candidates of the screen (rule in :func:`rank_screen`)
   and the two references (``none``, the paper's ``condition`` λ = 1e-3) on
   seeds 100–119; the chosen variant is the best confirmed one (:func:`choose`).

Usage (from the repository root; runs resume, results under results/choose_robust/)::

    PYTHONPATH=$PWD nice -n 5 python docs/scripts/choose_robust.py            # both stages
    PYTHONPATH=$PWD python docs/scripts/choose_robust.py --stage screen

Writes ``docs/results/validation/choose_robust.{csv,md}``.
"""
import argparse
import csv
import io
import json
import math
import os
import sys

import numpy as np
from scipy import stats

from odejac.io import read_json, write_bytes
from odejac.study.experiments import STUDY_BASE, is_done, run_one
from odejac.study.runner import run_parallel

#: Validation seeds: the screen uses the first ten, the confirmation all twenty.
SCREEN_SEEDS = tuple(range(100, 110))
CONFIRM_SEEDS = tuple(range(100, 120))
#: "Kept accuracy" as in the study: runs that train reach ≥ 0.987, collapsed runs ≤ 0.966.
KEEP_ACCURACY = 0.98
#: The goal of issue #10 on held-out seeds.
GOAL_NFE_CUT, GOAL_P, GOAL_KEPT = 0.20, 0.05, 0.90
#: How many screened candidates go on to the confirmation stage.
N_CONFIRM = 3
#: κ floor that caps κ at 1/ε = 100 (the study's ``condition_capped`` arm).
CAP = 1e-2

#: name -> TrainConfig overrides of STUDY_BASE. ``none`` and ``condition`` are the references.
CANDIDATES = {
    "none": dict(),
    "condition": dict(reg="condition", lam=1e-3),
    "cap_lam1e-3": dict(reg="condition", lam=1e-3, cond_eps=CAP),
    "cap_lam3e-3": dict(reg="condition", lam=3e-3, cond_eps=CAP),
    "cap_lam1e-2": dict(reg="condition", lam=1e-2, cond_eps=CAP),
    "cap_lam3e-2": dict(reg="condition", lam=3e-2, cond_eps=CAP),
    "cap_lam1e-1": dict(reg="condition", lam=1e-1, cond_eps=CAP),
    "cap_lam1e-2_warm20": dict(reg="condition", lam=1e-2, cond_eps=CAP, lam_warmup=20),
    "logcap_lam1e-1": dict(reg="log_condition", lam=1e-1, cond_eps=CAP),
    "cap_lam3e-2_adj1e-5": dict(reg="condition", lam=3e-2, cond_eps=CAP,
                                adjoint_rtol=1e-5, adjoint_atol=1e-5),
    # The path penalty has no κ floor in the library (cond_eps needs reg_at="t0"), so it
    # runs at the paper's λ, uncapped; a run takes ≈ 8× as long, so it is a pilot only.
    "traj_lam1e-3": dict(reg="condition", lam=1e-3, reg_at="trajectory"),
}
#: Candidates too slow for the full screen: name -> the seeds of their pilot.
PILOTS = {"traj_lam1e-3": (100, 101)}
REFERENCES = ("none", "condition")

OUT = os.path.join("results", "choose_robust")
TABLE_DIR = os.path.join("docs", "results", "validation")
COLUMNS = ("candidate", "overrides", "stage", "n_seeds", "nfe_mean", "nfe_std", "nfe_change_pct",
           "welch_p", "acc_mean", "acc_std", "kept", "kept_share", "kappa_mean", "diverged",
           "meets_goal")


def run_path(name, seed):
    return os.path.join(OUT, "runs", name, f"seed-{seed:03d}")


def train_all(names, seeds, jobs):
    """Train (or resume) every (candidate, seed); finished runs are not dispatched again."""
    tasks, skipped = [], 0
    for name in names:
        for seed in seeds:
            config = STUDY_BASE.replace(seed=seed, **CANDIDATES[name])
            directory = run_path(name, seed)
            if is_done(directory, config, None):
                skipped += 1
                continue
            tasks.append((f"{name} seed {seed}", run_one, (config, directory, None)))
    run_parallel(tasks, jobs=jobs, skipped=skipped)


def load(name, seeds):
    """Per-seed summaries (a diverged run counts with whatever it evaluated, acc 0 if none)."""
    rows = []
    for seed in seeds:
        summary = read_json(os.path.join(run_path(name, seed), "summary.json"))
        rows.append(dict(seed=seed, status=summary["status"],
                         acc=summary.get("test_accuracy", 0.0) or 0.0,
                         nfe=summary.get("nfe", math.nan), kappa=summary.get("kappa_mean", math.nan)))
    return rows


def summarise(name, seeds, stage, reference):
    rows = load(name, seeds)
    nfe = np.array([r["nfe"] for r in rows], float)
    acc = np.array([r["acc"] for r in rows], float)
    ref_nfe = np.array([r["nfe"] for r in reference], float)
    kept = int(np.sum(acc >= KEEP_ACCURACY))
    change = (np.nanmean(nfe) / np.nanmean(ref_nfe) - 1.0) * 100.0
    p = (math.nan if name == "none"
         else float(stats.ttest_ind(nfe, ref_nfe, equal_var=False, nan_policy="omit").pvalue))
    meets = (name != "none" and change <= -GOAL_NFE_CUT * 100 and p < GOAL_P
             and kept / len(rows) >= GOAL_KEPT)
    return dict(candidate=name, overrides=json.dumps(CANDIDATES[name], sort_keys=True),
                stage=stage, n_seeds=len(rows), nfe_mean=np.nanmean(nfe),
                nfe_std=np.nanstd(nfe, ddof=1), nfe_change_pct=change, welch_p=p,
                acc_mean=acc.mean(), acc_std=acc.std(ddof=1), kept=kept,
                kept_share=kept / len(rows),
                kappa_mean=float(np.nanmean([r["kappa"] for r in rows])),
                diverged=sum(r["status"] != "finished" for r in rows), meets_goal=bool(meets))


def rank_screen(rows):
    """Candidates for confirmation: kept share ≥ 0.9 on the screen, lowest mean NFE first."""
    pool = [r for r in rows if r["stage"] == "screen" and r["candidate"] not in REFERENCES
            and r["kept_share"] >= GOAL_KEPT]
    return [r["candidate"] for r in sorted(pool, key=lambda r: r["nfe_mean"])][:N_CONFIRM]


#: Overrides that belong to the penalty itself; a candidate changing anything else (e.g. the
#: adjoint tolerance) would differ from ``none`` in two ways, confounding the claim.
PENALTY_KEYS = frozenset({"reg", "lam", "cond_eps", "lam_warmup", "reg_at"})


def penalty_only(name):
    return set(CANDIDATES[name]) <= PENALTY_KEYS


def choose(rows, none_acc):
    """The chosen variant among confirmed rows meeting the goal.

    Prefer, in order: a candidate that changes only the penalty (so the comparison with
    ``none`` isolates it), a mean accuracy within 0.002 of ``none``'s, the largest NFE cut.
    If no row meets the goal: the most kept seeds, then the largest cut (the best found).
    """
    pool = [r for r in rows if r["candidate"] not in REFERENCES]
    meeting = [r for r in pool if r["meets_goal"]]
    if meeting:
        return min(meeting, key=lambda r: (not penalty_only(r["candidate"]),
                                           r["acc_mean"] < none_acc - 0.002,
                                           r["nfe_change_pct"]))
    return max(pool, key=lambda r: (r["kept_share"], -r["nfe_change_pct"]))


def fmt(value, digits):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def pvalue(p):
    return "—" if math.isnan(p) else f"{p:.2g}"


def write_tables(rows, chosen):
    os.makedirs(TABLE_DIR, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]
                         for c in COLUMNS])
    write_bytes(os.path.join(TABLE_DIR, "choose_robust.csv"), buffer.getvalue().encode())
    md = ["| candidate | stage (seeds) | NFE | NFE vs none | Welch p | test accuracy | "
          "acc ≥ 0.98 | κ | goal |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        name = f"**{row['candidate']}** (chosen)" if row["candidate"] == chosen else row["candidate"]
        md.append(f"| {name} | {row['stage']} ({row['n_seeds']}) | "
                  f"{fmt(row['nfe_mean'], 1)} ± {fmt(row['nfe_std'], 1)} | "
                  f"{fmt(row['nfe_change_pct'], 1)} % | {pvalue(row['welch_p'])} | "
                  f"{fmt(row['acc_mean'], 4)} ± {fmt(row['acc_std'], 4)} | "
                  f"{row['kept']}/{row['n_seeds']} | {fmt(row['kappa_mean'], 2)} | "
                  f"{'yes' if row['meets_goal'] else 'no'} |")
    md.append("")
    md.append("Overrides of `STUDY_BASE` per candidate:")
    md.append("")
    for name in dict.fromkeys(row["candidate"] for row in rows):
        md.append(f"- `{name}`: `{json.dumps(CANDIDATES[name], sort_keys=True)}`")
    write_bytes(os.path.join(TABLE_DIR, "choose_robust.md"), ("\n".join(md) + "\n").encode())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("screen", "confirm", "all"), default="all")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    names = [name for name in CANDIDATES if name not in PILOTS]
    train_all(names, SCREEN_SEEDS, args.jobs)
    none = load("none", SCREEN_SEEDS)
    screen = [summarise(n, SCREEN_SEEDS, "screen", none) for n in names]
    for name, seeds in PILOTS.items():
        train_all([name], seeds, args.jobs)
        screen.append(summarise(name, seeds, "pilot", load("none", seeds)))
    rows, chosen = screen, None
    if args.stage != "screen":
        confirm = list(REFERENCES) + rank_screen(screen)
        train_all(confirm, CONFIRM_SEEDS, args.jobs)
        none = load("none", CONFIRM_SEEDS)
        confirmed = [summarise(n, CONFIRM_SEEDS, "confirm", none) for n in confirm]
        chosen = choose(confirmed, confirmed[0]["acc_mean"])["candidate"]
        rows = confirmed + screen
        print(f"chosen: {chosen} {json.dumps(CANDIDATES[chosen], sort_keys=True)}")
    write_tables(rows, chosen)
    for row in rows:
        print(f"{row['stage']:8s} {row['candidate']:22s} NFE {row['nfe_mean']:5.1f} "
              f"({row['nfe_change_pct']:+5.1f} %, p {row['welch_p']:.3g}) acc {row['acc_mean']:.4f}"
              f" kept {row['kept']}/{row['n_seeds']} κ {row['kappa_mean']:.2f}"
              f" goal {row['meets_goal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
