#!/usr/bin/env python
"""A/B of odejac against an earlier commit of itself, in one process, epoch by epoch.

The ``odejac`` package of ``--base`` (a git commit) is extracted into a temporary directory as
``odejac_base`` (its imports are relative, so it runs unchanged beside the working tree's
``odejac``). Both train the reference workload from the same seed, alternating epochs
(base, new), (new, base), ...; after ``--warmup`` epochs the median of the per-epoch ratios
new / base is reported, plus forward/backward solve and bare-evaluation ratios, and whether
the two trained the same parameters bit for bit.

``--clock cpu`` times the CPU time of the (single-threaded) training thread instead of wall
time, which keeps the other processes of a shared machine out of the figure.

    python benchmarks/ab_commits.py --base HEAD [--reg condition] [--clock cpu]
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import ROOT, command_line, machine, median


def extract(commit):
    folder = tempfile.mkdtemp(prefix="odejac-base-")
    archive = subprocess.run(["git", "archive", commit, "odejac"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    os.rename(os.path.join(folder, "odejac"), os.path.join(folder, "odejac_base"))
    sys.path.insert(0, folder)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD", help="git commit to compare against")
    parser.add_argument("--reg", choices=("none", "condition"), default="none")
    parser.add_argument("--lam", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    folder = extract(args.base)
    try:
        sides = {}
        for name, package in (("base", "odejac_base"), ("new", "odejac")):
            train = importlib.import_module(f"{package}.train")
            config = train.TrainConfig(reg=args.reg, lam=args.lam if args.reg != "none" else 0.0,
                                       epochs=args.warmup + args.epochs)
            data = train.load_data(config)
            state = train.new_state(config, data.X_train.shape[1], data.n_classes)
            sides[name] = (train, config, data, state)
        times = {"base": [], "new": []}
        for e in range(args.warmup + args.epochs):
            for name in (("base", "new") if e % 2 == 0 else ("new", "base")):
                train, config, data, state = sides[name]
                start = clock()
                state.history.append(train._epoch(state, config, data.X_train, data.y_train))
                times[name].append(clock() - start)
        b = np.array(times["base"][args.warmup:])
        n = np.array(times["new"][args.warmup:])
        theta_b, theta_n = sides["base"][3].model.theta, sides["new"][3].model.theta
        diff = float(np.max(np.abs(theta_n - theta_b)) / np.max(np.abs(theta_b)))
        m = machine()
        print(f"machine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}")
        print(f"{command_line()}")
        print(f"reg={args.reg} ({args.clock} clock): base {median(b):.4f} s/epoch, "
              f"new {median(n):.4f} s/epoch; "
              f"new/base median of epoch ratios {median(n / b):.3f} "
              f"(IQR {np.percentile(n / b, 25):.3f}-{np.percentile(n / b, 75):.3f}); "
              f"parameters after {args.warmup + args.epochs} epochs: "
              f"{'bit-identical' if diff == 0 else f'max rel. difference {diff:.1e}'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
