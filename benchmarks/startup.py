#!/usr/bin/env python
"""Start-up: ``python cli.py train --epochs 1`` with a cold Numba cache (JIT compile) and warm.

Each pair runs the command once right after emptying the cache (as a fresh install: compile
and write the cache) and once more (cache warm). Pairs repeat ``--pairs`` times and the
medians of the whole-process wall times are reported, with the process's CPU time (user +
system) beside them: everything here runs on one thread, so on a shared machine the CPU time
is what the wall time would be on an idle one.

By default the cache goes to a fresh private directory through ``NUMBA_CACHE_DIR``, which is
exactly a cold cache without deleting the files other processes in this checkout may be
using; ``--in-place`` instead deletes the cache next to the sources, literally
``find odejac -name '*.nbi' -o -name '*.nbc' | xargs rm``.

    python benchmarks/startup.py [--pairs 3] [--in-place] [--json out.json]
"""
import argparse
import glob
import os
import resource
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--in-place", action="store_true",
                        help="delete odejac/__pycache__/*.nb[ic] instead of a private cache dir")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="odejac-startup-")
    cold, warm, cold_cpu, warm_cpu = [], [], [], []
    try:
        for k in range(args.pairs):
            env = dict(os.environ, PYTHONPATH=ROOT)
            if args.in_place:
                clear_in_place()
            else:
                env["NUMBA_CACHE_DIR"] = os.path.join(work, f"cache{k}")
            for wall, cpu, name in ((cold, cold_cpu, "a"), (warm, warm_cpu, "b")):
                seconds, cpu_seconds = run_once(env, os.path.join(work, f"run{k}{name}"))
                wall.append(seconds)
                cpu.append(cpu_seconds)
            print(f"pair {k + 1}: cold {cold[-1]:.2f} s (CPU {cold_cpu[-1]:.2f} s), warm "
                  f"{warm[-1]:.2f} s (CPU {warm_cpu[-1]:.2f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"command": command_line(), "machine": machine(), "cold_s": cold, "warm_s": warm,
           "cold_median_s": median(cold), "warm_median_s": median(warm),
           "cold_cpu_s": cold_cpu, "warm_cpu_s": warm_cpu,
           "cold_cpu_median_s": median(cold_cpu), "warm_cpu_median_s": median(warm_cpu),
           "compile_s": median(cold) - median(warm),
           "cache": "in place" if args.in_place else "private NUMBA_CACHE_DIR"}
    print(f"cli.py train --epochs 1: cold cache {out['cold_median_s']:.2f} s, warm "
          f"{out['warm_median_s']:.2f} s (medians of {args.pairs}); JIT compile ≈ "
          f"{out['compile_s']:.2f} s; process CPU time: cold {out['cold_cpu_median_s']:.2f} s, "
          f"warm {out['warm_cpu_median_s']:.2f} s")
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
