#!/usr/bin/env python
"""Solver overhead: solve time over ``NFE × (one bare evaluation)``, forward and adjoint.

The model of the reference workload (see ``vs_torchdiffeq.py``) is trained ``--pretrain``
epochs (NFE ≈ 26 forward, ≈ 30 backward, as in the issue), then on one batch of 256:

* forward: ``NeuralODE._solve`` (DP5 driver + trampoline + ``MLP._f``) against the bare field
  evaluation, the fastest of ``MLP._f`` and a plain row-major NumPy version;
* adjoint: ``adjoint_solve`` of ``[h, a, g]`` (with the fused ``MLP._augmented_rhs``, as the
  model calls it) against the bare ``f_and_vjp``, the fastest of ``MLP._f_and_vjp`` and a plain
  row-major NumPy backprop.

Solves and bare evaluations alternate in one process; each repeat gives a ratio
``solve / (NFE · bare)`` and the median over repeats is reported (1.0 is the limit). A split of
the solve time into "inside the field" (timed within the right-hand side) and "driver +
trampoline + closure" (the rest) shows where the overhead is.

The ratio moves by ±0.1 from one process to the next (the bare evaluation's speed depends on
where its arrays land), so ``--processes N`` repeats the whole measurement in N fresh processes
and reports the median and the range of their medians.

    python benchmarks/overhead.py [--processes 5] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import command_line, machine, median, save_json

from odejac.adjoint import adjoint_solve
from odejac.integrate import error_groups, solve_flat
from odejac.model import T_SPAN, _softmax_xent
from odejac.train import TrainConfig, _epoch, load_data, new_state

pc = time.perf_counter


def plain_numpy(field):
    """Row-major NumPy ``f`` and ``f_and_vjp`` of the same tanh MLP (the obvious version)."""
    layers = [(np.ascontiguousarray(W), b.copy()) for W, b in field.layers]
    (W1, b1), (W2, b2), (W3, b3) = layers

    def f(h):
        return np.tanh(np.tanh(h @ W1 + b1) @ W2 + b2) @ W3 + b3

    def f_and_vjp(h, a):
        a1 = np.tanh(h @ W1 + b1)
        a2 = np.tanh(a1 @ W2 + b2)
        out = a2 @ W3 + b3
        d2 = (a @ W3.T) * (1.0 - a2 * a2)
        d1 = (d2 @ W2.T) * (1.0 - a1 * a1)
        g = np.concatenate([(h.T @ d1).ravel(), d1.sum(0), (a1.T @ d2).ravel(), d2.sum(0),
                            (a2.T @ a).ravel(), a.sum(0)])
        return out, d1 @ W1.T, g

    return f, f_and_vjp


def _time(fn, number):
    start = pc()
    for _ in range(number):
        fn()
    return (pc() - start) / number


def setup(args):
    config = TrainConfig(epochs=args.pretrain)
    data = load_data(config)
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    for _ in range(args.pretrain):
        state.history.append(_epoch(state, config, data.X_train, data.y_train))
    model = state.model
    X, y = data.X_train[:args.batch_size], data.y_train[:args.batch_size]
    h0 = model.initial_state(X)
    h1, _ = model._solve(h0)
    _, dlogits = _softmax_xent(h1 @ model.W_out + model.b_out, y)
    return config, model, h0, h1, dlogits @ model.W_out.T


def measure(args):
    config, model, h0, h1, a1 = setup(args)
    field = model.field
    f_np, fv_np = plain_numpy(field)
    # Same numbers from both bare versions (else the comparison would be meaningless).
    assert np.allclose(f_np(h1), field._f(h1, 0.0), rtol=1e-12, atol=1e-14)
    ref = field._f_and_vjp(h1, 0.0, a1)
    assert all(np.allclose(p, q, rtol=1e-10, atol=1e-13) for p, q in zip(fv_np(h1, a1), ref))

    def forward():
        return model._solve(h0)

    def adjoint():   # as NeuralODE.loss_and_grad calls it
        return adjoint_solve(model._f_and_vjp_tya, h1, a1, T_SPAN,
                             param_sizes=model._param_sizes, rtol=config.adjoint_rtol,
                             atol=config.adjoint_atol,
                             augmented_rhs=field._augmented_rhs(h1.shape))

    nfe_f = forward()[1]
    nfe_b = adjoint().nfe
    cases = {
        "forward": (forward, nfe_f, {"MLP._f": lambda: field._f(h1, 0.0),
                                     "plain NumPy f": lambda: f_np(h1)}),
        "adjoint": (adjoint, nfe_b, {"MLP._f_and_vjp": lambda: field._f_and_vjp(h1, 0.0, a1),
                                     "plain NumPy f_and_vjp": lambda: fv_np(h1, a1)}),
    }
    out = {}
    for name, (solve, nfe, bares) in cases.items():
        rows = {"solve": [], **{b: [] for b in bares}}
        for rep in range(args.repeats):
            order = [("solve", solve, args.solves)] + [(b, fn, args.evals) for b, fn in bares.items()]
            if rep % 2:
                order.reverse()
            for key, fn, number in order:
                rows[key].append(_time(fn, number))
        bare_best = np.min([rows[b] for b in bares], axis=0)   # fastest bare, per repeat
        ratios = np.array(rows["solve"]) / (nfe * bare_best)
        out[name] = {"nfe": int(nfe), "solve_s": median(rows["solve"]),
                     **{f"bare_s[{b}]": median(rows[b]) for b in bares},
                     "bare_best_s": median(bare_best),
                     "ratio_median": median(ratios),
                     # Preemption on a loaded machine only ever adds time; the ratio of the
                     # 10th percentiles is the least disturbed estimate.
                     "ratio_p10": float(np.percentile(rows["solve"], 10)
                                        / (nfe * np.percentile(bare_best, 10))),
                     "ratio_q25": float(np.percentile(ratios, 25)),
                     "ratio_q75": float(np.percentile(ratios, 75)),
                     "overhead_per_eval_s": median((np.array(rows["solve"]) - nfe * bare_best)
                                                   / nfe)}
    out.update(split(args, model, h0, h1, a1, config))
    return out


def split(args, model, h0, h1, a1, config):
    """Time spent inside the field vs the rest of the solve, by timing within the RHS."""
    field = model.field
    shape = h0.shape
    inside = [0.0]

    def rhs(t, y):
        start = pc()
        out = field._f(y.reshape(shape), t)
        inside[0] += pc() - start
        return out.reshape(-1)

    fused = field._augmented_rhs(h1.shape)

    def augmented(t, z):
        start = pc()
        out = fused(t, z)
        inside[0] += pc() - start
        return out

    groups = error_groups([h0.size])
    result = {}
    for name in ("forward", "adjoint"):
        totals, insides = [], []
        for _ in range(args.repeats):
            inside[0] = 0.0
            start = pc()
            for _ in range(args.solves):
                if name == "forward":
                    solve_flat(rhs, h0.reshape(-1).copy(), T_SPAN, config.rtol, config.atol,
                               config.controller, 100_000, groups, False)
                else:
                    adjoint_solve(model._f_and_vjp_tya, h1, a1, T_SPAN,
                                  param_sizes=model._param_sizes, rtol=config.adjoint_rtol,
                                  atol=config.adjoint_atol,
                                  augmented_rhs=augmented)
            totals.append(pc() - start)
            insides.append(inside[0])
        fraction = np.array(insides) / np.array(totals)
        result[f"{name}_split"] = {"inside_field_fraction": median(fraction),
                                   "driver_trampoline_closure_fraction": 1 - median(fraction)}
    return result


def report(out):
    m = out["machine"]
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}")
    print(f"{'':8s} {'NFE':>4s} {'solve':>10s} {'bare (best)':>12s} {'ratio':>6s} {'IQR':>11s} "
          f"{'p10 ratio':>9s} {'overhead/eval':>14s} {'in field':>9s}")
    for name in ("forward", "adjoint"):
        r = out[name]
        s = out[f"{name}_split"]
        print(f"{name:8s} {r['nfe']:4d} {r['solve_s'] * 1e3:8.3f}ms {r['bare_best_s'] * 1e6:10.1f}µs "
              f"{r['ratio_median']:6.3f} {r['ratio_q25']:5.3f}-{r['ratio_q75']:5.3f} "
              f"{r['ratio_p10']:9.3f} "
              f"{r['overhead_per_eval_s'] * 1e6:12.1f}µs {100 * s['inside_field_fraction']:8.1f}%")
        for key, value in r.items():
            if key.startswith("bare_s["):
                print(f"{'':13s}{key[7:-1]:>26s}: {value * 1e6:.1f} µs")


def across_processes(args):
    """Run this script ``args.processes`` times in fresh processes; median and range."""
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.processes):
            path = os.path.join(folder, f"run{k}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--processes", "1", "--json", path,
                   "--repeats", str(args.repeats), "--pretrain", str(args.pretrain)]
            subprocess.run(cmd, check=True, capture_output=True)
            with open(path) as fh:
                runs.append(json.load(fh))
    out = {"command": command_line(), "machine": machine(), "processes": runs}
    print(f"machine: {out['machine']['nproc']} x {out['machine']['cpu']}, {out['machine']['date']}")
    for name in ("forward", "adjoint"):
        ratios = [r[name]["ratio_median"] for r in runs]
        over = [r[name]["overhead_per_eval_s"] * 1e6 for r in runs]
        out[name] = {"ratio_median_of_processes": median(ratios), "ratio_min": min(ratios),
                     "ratio_max": max(ratios), "overhead_per_eval_us_median": median(over),
                     "nfe": runs[0][name]["nfe"]}
        print(f"{name:8s} NFE {runs[0][name]['nfe']}: solve / (NFE x bare) median over "
              f"{len(runs)} processes {median(ratios):.3f} (range {min(ratios):.3f}-"
              f"{max(ratios):.3f}); overhead {median(over):.1f} µs per evaluation")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrain", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=150)
    parser.add_argument("--solves", type=int, default=1, help="solves per timing")
    parser.add_argument("--evals", type=int, default=20, help="bare evaluations per timing")
    parser.add_argument("--json", default=None)
    parser.add_argument("--processes", type=int, default=1,
                        help="repeat in this many fresh processes and summarise")
    args = parser.parse_args(argv)
    if args.processes > 1:
        out = across_processes(args)
        save_json(args.json, out)
        return out
    start = pc()
    out = {"command": command_line(), "machine": machine(), **measure(args)}
    out["wall_seconds"] = pc() - start
    report(out)
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
