"""Print SciPy RK45 and torchdiffeq dopri5 step counts side by side (for humans).

The test-suite calls SciPy live; this script only shows how the two peers'
controllers differ on ``tests/problems.py``. It needs only numpy + scipy (the
torchdiffeq side is read from ``tests/data/torchdiffeq_counts.json``), so
either interpreter works, from the repository root::

    python tests/data/scipy_counts_preview.py
    /root/peer-venv/bin/python tests/data/scipy_counts_preview.py

SciPy does not report rejected steps; with ``t_eval=None`` ``sol.t`` holds t0
and the end of every accepted step, and every step attempt costs 6
evaluations after the 2 of the start, so::

    accepted = len(sol.t) - 1
    rejected = (nfev - 2) / 6 - accepted
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import scipy
from scipy.integrate import solve_ivp

HERE = os.path.dirname(os.path.abspath(__file__))
PROBLEMS_PATH = os.path.normpath(os.path.join(HERE, "..", "problems.py"))
TORCH_COUNTS = os.path.join(HERE, "torchdiffeq_counts.json")


def load_problems():
    spec = importlib.util.spec_from_file_location("odejac_test_problems", PROBLEMS_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def scipy_counts(problem, rtol, atol):
    shape = problem.y0.shape

    def fun(t, y):
        return np.asarray(problem.fun(t, y.reshape(shape)), dtype=np.float64).ravel()

    sol = solve_ivp(fun, problem.t_span, np.asarray(problem.y0, dtype=np.float64).ravel(),
                    method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"{problem.name}: {sol.message}")
    accepted = len(sol.t) - 1
    attempts, rem = divmod(sol.nfev - 2, 6)
    assert rem == 0, sol.nfev
    return sol.nfev, accepted, attempts - accepted


def main():
    problems = load_problems()
    try:
        with open(TORCH_COUNTS) as fh:
            tdata = json.load(fh)
        tcases = {(c["problem"], c["rtol"], c["atol"]): c for c in tdata["cases"]}
        tver = f"torchdiffeq {tdata['header']['torchdiffeq']}"
    except FileNotFoundError:
        tcases, tver = {}, "torchdiffeq (no table)"
    print(f"SciPy {scipy.__version__} RK45  vs  {tver} dopri5   (nfe / accepted / rejected)")
    print(f"{'problem':15s} {'rtol':>6s} {'atol':>6s} | {'scipy':>15s} | {'torchdiffeq':>15s}")
    for problem in problems.PROBLEMS.values():
        for rtol, atol in problems.TOLERANCES:
            s = "%4d/%4d/%3d" % scipy_counts(problem, rtol, atol)
            c = tcases.get((problem.name, rtol, atol))
            t = "%4d/%4d/%3d" % (c["nfe"], c["n_accepted"], c["n_rejected"]) if c else "-"
            print(f"{problem.name:15s} {rtol:6.0e} {atol:6.0e} | {s:>15s} | {t:>15s}")


if __name__ == "__main__":
    main()
