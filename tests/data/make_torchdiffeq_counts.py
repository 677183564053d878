"""Regenerate ``tests/data/torchdiffeq_counts.json``: step counts of torchdiffeq's dopri5.

This is NOT run by the test-suite (torch is not a dependency of odejac). It is
run by hand, in the peer virtual environment, whenever ``tests/problems.py`` or
``TOLERANCES`` change.

How to regenerate (exactly)::

    # once: the peer venv, outside the repository. torch==2.13.0 is the CPU
    # wheel that lies on the machine's disk (/opt/wheels); never install torch
    # into the main environment.
    python -m venv /root/peer-venv
    /root/peer-venv/bin/pip install torch==2.13.0
    /root/peer-venv/bin/pip install torchdiffeq==0.2.5 numpy scipy
    #   (if torchdiffeq's resolver ever wants another torch:
    #    /root/peer-venv/bin/pip install --no-deps torchdiffeq==0.2.5)

    # then, from the repository root:
    cd /work/main
    /root/peer-venv/bin/python tests/data/make_torchdiffeq_counts.py

It overwrites ``tests/data/torchdiffeq_counts.json`` (``--output PATH`` to write
elsewhere, ``--check`` to compare with the stored file instead of writing:
exit status 1 if any count, first step or endpoint differs).

For every problem of ``tests/problems.py`` x every (rtol, atol) of
``TOLERANCES`` it calls, in float64::

    torchdiffeq.odeint(func, torch.tensor(y0, dtype=float64),
                       torch.tensor([t0, t1], dtype=float64),
                       method="dopri5", rtol=rtol, atol=atol)

with no options (so default safety 0.9, ifactor 10, dfactor 0.2, rms norm,
no first_step), where ``func`` wraps the NumPy ``fun`` (tensor -> numpy ->
tensor, no autograd), and records per case:

* ``nfe``: every call of ``func`` (counted inside the wrapper), including the
  two calls of the start (f(t0, y0) and the one inside
  ``_select_initial_step``);
* ``n_accepted`` / ``n_rejected``: from a wrapper around
  ``RKAdaptiveStepsizeODESolver._adaptive_step``; a call is an accepted step
  when the returned state's ``t1`` advanced, a rejected one otherwise. The
  script asserts ``nfe == 2 + 6 * (n_accepted + n_rejected)``;
* ``first_step``: ``solver.rk_state.dt`` right after ``_before_integrate``,
  i.e. the step chosen by ``_select_initial_step`` (a positive magnitude; for
  a decreasing t_span torchdiffeq integrates the negated-time problem, so this
  is the step size in |t|);
* ``y1``: the returned state at t1 (torchdiffeq overshoots t1 with its last
  step and evaluates its quartic interpolant at t1), same shape as y0, as
  nested lists;
* ``t_steps``: the ends of all accepted steps, in the problem's own time (so
  decreasing for ``decay_backward``); ``t_steps[-1]`` is past t1 unless the
  last step landed on t1 exactly;
* ``h_last``: the step size torchdiffeq proposed after its last step.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import os
import platform
import sys

import numpy as np
import torch
import torchdiffeq
from torchdiffeq._impl import rk_common

HERE = os.path.dirname(os.path.abspath(__file__))
PROBLEMS_PATH = os.path.normpath(os.path.join(HERE, "..", "problems.py"))
DEFAULT_OUTPUT = os.path.join(HERE, "torchdiffeq_counts.json")


def load_problems():
    spec = importlib.util.spec_from_file_location("odejac_test_problems", PROBLEMS_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class _Recorder:
    """Patches RKAdaptiveStepsizeODESolver to observe steps and the first step."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n_accepted = 0
        self.n_rejected = 0
        self.first_step = None
        self.t_steps = []  # in the solver's (possibly negated) time
        self.h_last = None

    def __enter__(self):
        cls = rk_common.RKAdaptiveStepsizeODESolver
        self._orig_step = cls._adaptive_step
        self._orig_before = cls._before_integrate
        rec = self

        def _before_integrate(solver, t):
            out = rec._orig_before(solver, t)
            rec.first_step = float(solver.rk_state.dt)
            return out

        def _adaptive_step(solver, rk_state):
            new_state = rec._orig_step(solver, rk_state)
            if new_state.t1 > rk_state.t1:
                rec.n_accepted += 1
                rec.t_steps.append(float(new_state.t1))
            else:
                rec.n_rejected += 1
            rec.h_last = float(new_state.dt)
            return new_state

        cls._before_integrate = _before_integrate
        cls._adaptive_step = _adaptive_step
        return self

    def __exit__(self, *exc):
        cls = rk_common.RKAdaptiveStepsizeODESolver
        cls._adaptive_step = self._orig_step
        cls._before_integrate = self._orig_before
        return False


def run_case(problem, rtol, atol, recorder):
    shape = problem.y0.shape
    nfe = [0]

    def func(t, y):
        nfe[0] += 1
        out = problem.fun(float(t), y.detach().cpu().numpy().reshape(shape))
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float64).reshape(shape))

    t0, t1 = (float(v) for v in problem.t_span)
    y0 = torch.tensor(np.asarray(problem.y0, dtype=np.float64))
    t = torch.tensor([t0, t1], dtype=torch.float64)
    recorder.reset()
    with torch.no_grad():
        sol = torchdiffeq.odeint(func, y0, t, method="dopri5", rtol=rtol, atol=atol)
    n_acc, n_rej = recorder.n_accepted, recorder.n_rejected
    if nfe[0] != 2 + 6 * (n_acc + n_rej):
        raise AssertionError(f"{problem.name} {rtol} {atol}: nfe={nfe[0]} but "
                             f"accepted={n_acc} rejected={n_rej}")
    sign = 1.0 if t1 >= t0 else -1.0  # torchdiffeq negates t for decreasing spans
    return {
        "problem": problem.name,
        "rtol": rtol,
        "atol": atol,
        "nfe": nfe[0],
        "n_accepted": n_acc,
        "n_rejected": n_rej,
        "first_step": recorder.first_step,
        "h_last": recorder.h_last,
        "y1": sol[-1].numpy().tolist(),
        "t_steps": [sign * v for v in recorder.t_steps],
    }


def generate():
    problems = load_problems()
    torch.set_num_threads(1)
    cases = []
    with _Recorder() as rec:
        for problem in problems.PROBLEMS.values():
            for rtol, atol in problems.TOLERANCES:
                cases.append(run_case(problem, rtol, atol, rec))
    with open(PROBLEMS_PATH, "rb") as fh:
        problems_sha = hashlib.sha256(fh.read()).hexdigest()
    header = {
        "description": "torchdiffeq odeint(method='dopri5') step counts on tests/problems.py; "
                       "regenerate with tests/data/make_torchdiffeq_counts.py (see its docstring)",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "torchdiffeq": getattr(torchdiffeq, "__version__", "unknown"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "call": "odeint(func, y0_f64, tensor([t0, t1], float64), method='dopri5', rtol=rtol, atol=atol)",
        "problems_sha256": problems_sha,
        "fields": {
            "nfe": "all func calls, incl. the 2 of the start; == 2 + 6*(n_accepted + n_rejected)",
            "n_accepted": "_adaptive_step calls whose returned t1 advanced",
            "n_rejected": "_adaptive_step calls whose returned t1 did not advance",
            "first_step": "solver.rk_state.dt after _before_integrate (|step|, not clipped to the span)",
            "h_last": "rk_state.dt proposed after the last step (|step|)",
            "y1": "returned state at t1 (interpolated), shape of y0",
            "t_steps": "ends of accepted steps in problem time; last one may overshoot t1",
        },
    }
    return {"header": header, "cases": cases}


def _key(c):
    return (c["problem"], c["rtol"], c["atol"])


def compare(new, old):
    """Return a list of human-readable differences (counts, first step, y1)."""
    diffs = []
    old_cases = {_key(c): c for c in old["cases"]}
    for c in new["cases"]:
        o = old_cases.get(_key(c))
        if o is None:
            diffs.append(f"{_key(c)}: missing from stored file")
            continue
        for f in ("nfe", "n_accepted", "n_rejected"):
            if c[f] != o[f]:
                diffs.append(f"{_key(c)}: {f} {o[f]} -> {c[f]}")
        if not math.isclose(c["first_step"], o["first_step"], rel_tol=1e-12):
            diffs.append(f"{_key(c)}: first_step {o['first_step']} -> {c['first_step']}")
        if not np.allclose(c["y1"], o["y1"], rtol=1e-12, atol=0):
            diffs.append(f"{_key(c)}: y1 differs")
    return diffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=DEFAULT_OUTPUT)
    ap.add_argument("--check", action="store_true",
                    help="compare with the stored file instead of writing it")
    args = ap.parse_args(argv)
    data = generate()
    for c in data["cases"]:
        print(f"{c['problem']:15s} rtol={c['rtol']:<6g} atol={c['atol']:<6g} "
              f"nfe={c['nfe']:4d} acc={c['n_accepted']:4d} rej={c['n_rejected']:3d} "
              f"h0={c['first_step']:.6g}")
    if args.check:
        with open(args.output) as fh:
            diffs = compare(data, json.load(fh))
        print("\n".join(diffs) if diffs else "stored file matches")
        return 1 if diffs else 0
    with open(args.output, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
