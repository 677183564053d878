#!/usr/bin/env python
"""Digits (64 inputs, 10 classes) with the exact and the matrix-free κ: the study runner's
Table 1 for each method, plus regularisation along the trajectory from single ``train`` runs.

Why not plain ``python cli.py experiments --dataset digits``: its base configuration keeps the
moons width ``hidden=(32, 32)``, and with ``D = 64 > 32`` every Jacobian has rank ≤ 32, so
``σ_min = 0`` and κ is infinite (the quick run reports κ ≈ 1e19 for every arm and the κ penalty
has nothing to act on). Here the study runner (:func:`odejac.study.experiments.run_experiments`) is
driven with the same arms and quick evaluation but ``hidden=(64, 64)`` (square layers, so
``J_b`` is invertible and the matrix-free ``σ_min`` comes from ``J⁻¹``) and ``--kappa`` set.

    python benchmarks/digits_kappa.py --out results/digits_kappa     # ~25 min on 2 cores
"""
import argparse
import json
import os
import sys
import time

from common import ROOT, command_line, machine  # noqa: F401  (puts the repo on sys.path)

from odejac.study import experiments
from odejac.study import Arm, StudyConfig
from odejac.train import train

METHODS = ("exact", "matrix-free")
#: Trajectory runs (single seed): (name, reg, λ, reg_at, kappa method).
PATH_RUNS = (("frobenius2-path", "frobenius", 1e-2, "trajectory", "exact"),
             ("condition-path-exact", "condition", 1e-3, "trajectory", "exact"),
             ("condition-path-matfree", "condition", 1e-3, "trajectory", "matrix-free"))


def base_config(epochs, method):
    return experiments.STUDY_BASE.replace(dataset="digits", hidden=(64, 64), epochs=epochs,
                                          kappa=method)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "digits_kappa"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-path", action="store_true", help="skip the trajectory runs")
    args = parser.parse_args(argv)
    arms = experiments.default_arms() + (Arm("kinetic", "kinetic", 1e-2, ours=True),)
    record = {"command": command_line(), "machine": machine(), "studies": {}, "path_runs": {}}
    for method in METHODS:
        study = StudyConfig(base=base_config(args.epochs, method), arms=arms,
                            seeds=tuple(range(args.seeds)), evaluation=experiments.QUICK_EVAL)
        out = os.path.join(args.out, method)
        result = experiments.run_experiments(out, study, jobs=args.jobs, plots=False,
                                             log=lambda line: print(line, flush=True))
        record["studies"][method] = {"dir": os.path.relpath(out, ROOT), **result}
    if not args.no_path:
        for name, reg, lam, reg_at, method in PATH_RUNS:
            config = base_config(args.epochs, method).replace(reg=reg, lam=lam, reg_at=reg_at)
            start = time.perf_counter()
            _, summary = train(config, os.path.join(args.out, "path", name))
            summary["seconds"] = time.perf_counter() - start
            record["path_runs"][name] = summary
            print(name, json.dumps({k: summary.get(k) for k in (
                "status", "test_accuracy", "nfe", "kappa_mean", "kappa_median",
                "epoch_seconds_total")}), flush=True)
    with open(os.path.join(args.out, "digits_kappa.json"), "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
