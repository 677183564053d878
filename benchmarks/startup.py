#!/usr/bin/env python
"""Start-up: ``python cli.py train --epochs 1`` with a cold Numba cache (JIT compile) and warm.

Each pair runs the command once right after emptying the cache (as a fresh install: compile
and write the cache) and once more (cache warm). Pairs repeat ``--pairs`` times and the
medians of the whole-process wall times are reported.

By default the cache goes to a fresh private directory through ``NUMBA_CACHE_DIR``, which is
exactly a cold cache without deleting the files other processes in this checkout may be
using; ``--in-place`` instead deletes the cache next to the sources, literally
``find odejac -name '*.nbi' -o -name '*.nbc' | xargs rm``.

    python benchmarks/startup.py [--pairs 3] [--in-place] [--json out.json]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import ROOT, command_line, machine, median, save_json


def clear_in_place():
    for pattern in ("*.nbi", "*.nbc"):
        for path in glob.glob(os.path.join(ROOT, "odejac", "**", pattern), recursive=True):
            os.remove(path)


def run_once(env, out_dir):
    cmd = [sys.executable, "cli.py", "train", "--epochs", "1", "--out", out_dir, "--no-resume",
           "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--in-place", action="store_true",
                        help="delete odejac/__pycache__/*.nb[ic] instead of a private cache dir")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="odejac-startup-")
    cold, warm = [], []
    try:
        for k in range(args.pairs):
            env = dict(os.environ, PYTHONPATH=ROOT)
            if args.in_place:
                clear_in_place()
            else:
                env["NUMBA_CACHE_DIR"] = os.path.join(work, f"cache{k}")
            cold.append(run_once(env, os.path.join(work, f"run{k}a")))
            warm.append(run_once(env, os.path.join(work, f"run{k}b")))
            print(f"pair {k + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"command": command_line(), "machine": machine(), "cold_s": cold, "warm_s": warm,
           "cold_median_s": median(cold), "warm_median_s": median(warm),
           "compile_s": median(cold) - median(warm),
           "cache": "in place" if args.in_place else "private NUMBA_CACHE_DIR"}
    print(f"cli.py train --epochs 1: cold cache {out['cold_median_s']:.2f} s, warm "
          f"{out['warm_median_s']:.2f} s (medians of {args.pairs}); JIT compile ≈ "
          f"{out['compile_s']:.2f} s")
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
