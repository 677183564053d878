#!/usr/bin/env python
"""Start-up: ``python cli.py train`` (default config) after a fresh install, and again.

Each pair runs the command once with an empty Numba cache (a fresh install: everything
compiles and goes to the on-disk cache) and once more (cache warm). Pairs repeat ``--pairs``
times; reported are the medians of the whole process's wall and CPU (user + system) times,
and of where the time went inside it (``benchmarks/_startup_child.py``): interpreter start-up,
imports, Numba compiling (with writing its cache), loading from the cache, the run itself
(training, evaluation, the run directory) and interpreter shut-down. Everything runs on one
thread, so on a shared machine CPU time is what the wall time would be on an idle one; the
1-minute load average is recorded before and after. A cold run also lists the compiled
functions, most expensive first, and a warm run the functions it compiled anyway (cache
misses: there should be none but Numba's object-mode trampoline, which it never caches).

By default the cache goes to a fresh private directory through ``NUMBA_CACHE_DIR``, exactly a
cold cache without deleting files other processes of this checkout may use; ``--in-place``
instead deletes ``odejac/**/__pycache__/*.nbi, *.nbc`` (the cache of a plain install).
``--root`` measures another checkout (e.g. an older commit unpacked with ``git archive``).

    python benchmarks/startup.py [--pairs 3] [--epochs N] [--in-place] [--root DIR] [--json F]
"""
import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from common import HERE, ROOT, command_line, machine, median, save_json

PHASES = ("startup", "import", "compile", "cache_load", "run", "exit")
#: Functions a warm start may compile: Numba never caches the object-mode block of the
#: right-hand-side trampoline (odejac._dp5._call_rhs), ~0.05 s.
WARM_EXPECTED = "_call_rhs(ffi_forced_object"


def clear_in_place(root):
    for pattern in ("*.nbi", "*.nbc"):
        for path in glob.glob(os.path.join(root, "odejac", "**", pattern), recursive=True):
            os.remove(path)


def run_once(root, env, out_dir, epochs, record_path):
    cmd = [sys.executable, os.path.join(HERE, "_startup_child.py"), record_path, "train",
           "--out", out_dir, "--no-resume", "--quiet"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(record_path) as fh:
        inside = json.load(fh)
    # The interpreter's own start-up and shut-down: the process's time outside the child's
    # clock (start-up is known in CPU time only: the rest of it is shut-down).
    inside["cpu"]["startup"] = inside["cpu_before_script"]
    inside["cpu"]["exit"] = cpu - inside["total_cpu"] - inside["cpu_before_script"]
    inside["wall"]["startup_and_exit"] = wall - inside["total_wall"]
    inside.update(process_wall=wall, process_cpu=cpu)
    return inside


def summarise(runs):
    """Medians over runs: whole process (wall, CPU) and each phase (CPU, wall)."""
    out = {"wall_s": median([r["process_wall"] for r in runs]),
           "cpu_s": median([r["process_cpu"] for r in runs])}
    for phase in PHASES:
        out[f"{phase}_cpu_s"] = median([r["cpu"].get(phase, 0.0) for r in runs])
    for phase in PHASES[1:-1] + ("startup_and_exit",):
        out[f"{phase}_wall_s"] = median([r["wall"].get(phase, 0.0) for r in runs])
    return out


def describe(name, s):
    parts = ", ".join(f"{p} {s[f'{p}_cpu_s']:.2f}" for p in PHASES)
    return (f"{name}: wall {s['wall_s']:.2f} s, CPU {s['cpu_s']:.2f} s  (CPU by phase: {parts})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None,
                        help="pass --epochs to train (default: the config's default)")
    parser.add_argument("--in-place", action="store_true",
                        help="delete odejac/**/__pycache__/*.nb[ic] instead of a private cache dir")
    parser.add_argument("--root", default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    work = tempfile.mkdtemp(prefix="odejac-startup-")
    load_before = os.getloadavg()[0]
    cold, warm = [], []
    try:
        for k in range(args.pairs):
            env = dict(os.environ, PYTHONPATH=root)
            if args.in_place:
                clear_in_place(root)
            else:
                env["NUMBA_CACHE_DIR"] = os.path.join(work, f"cache{k}")
            for runs, name in ((cold, "cold"), (warm, "warm")):
                runs.append(run_once(root, env, os.path.join(work, f"run{k}{name}"), args.epochs,
                                     os.path.join(work, f"record{k}{name}.json")))
            print(f"pair {k + 1}: cold wall {cold[-1]['process_wall']:.2f} s (CPU "
                  f"{cold[-1]['process_cpu']:.2f} s), warm wall {warm[-1]['process_wall']:.2f} s "
                  f"(CPU {warm[-1]['process_cpu']:.2f} s), load {os.getloadavg()[0]:.1f}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    compiled = {}
    for r in cold:
        for fn, seconds in r["compiled"].items():
            compiled.setdefault(fn, []).append(seconds)
    compiled = dict(sorted(((fn, median(v)) for fn, v in compiled.items()), key=lambda kv: -kv[1]))
    warm_compiled = sorted({fn for r in warm for fn in r["compiled"]})
    out = {"command": command_line(), "machine": machine(), "root": root,
           "train_args": [] if args.epochs is None else ["--epochs", str(args.epochs)],
           "cache": "in place" if args.in_place else "private NUMBA_CACHE_DIR",
           "load_avg_1min_before": load_before, "load_avg_1min_after": os.getloadavg()[0],
           "cold": summarise(cold), "warm": summarise(warm),
           "cold_compiled_cpu_s": compiled, "warm_compiled": warm_compiled,
           "runs": {"cold": cold, "warm": warm}}
    what = "cli.py train" + ("" if args.epochs is None else f" --epochs {args.epochs}")
    print(f"{what}, medians of {args.pairs} (load {load_before:.1f} -> "
          f"{out['load_avg_1min_after']:.1f}):")
    print("  " + describe("cold cache", out["cold"]))
    print("  " + describe("warm cache", out["warm"]))
    print("  cold compile by function (CPU s, exclusive, >= 0.05 s):")
    for fn, seconds in compiled.items():
        if seconds >= 0.05:
            print(f"    {seconds:5.2f}  {fn if len(fn) < 100 else fn[:97] + '...'}")
    unexpected = [fn for fn in warm_compiled if WARM_EXPECTED not in fn]
    print(f"  warm start compiled: {warm_compiled or 'nothing'}"
          + (f"  <-- CACHE MISSES: {unexpected}" if unexpected else ""))
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
