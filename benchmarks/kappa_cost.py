#!/usr/bin/env python
"""Seconds per regularised batch against the state dimension D: exact SVD vs matrix-free κ.

One "regularised batch" is the work the condition-number penalty adds to a training step at
``h(t0)``: the value ``mean_b κ_ε(J_b)`` and its gradient w.r.t. θ for ``B`` samples.

* exact: ``J = MLP._jacobian`` (formed), ``regularisers.condition`` (batched SVD),
  ``MLP._jacobian_vjp`` (back through the whole chain);
* matrix-free: ``matfree.extreme_singular`` (Lanczos; σ_min from ``J⁻¹`` when every width is
  D), ``matfree.kappa_penalty``, ``MLP._jacobian_vjp_lowrank`` (rank 2). Timed WARM — the call
  after a training-like step (θ perturbed by ``--step`` relative) from the previous call's
  vectors, as in training — and COLD (random start vectors);
* matrix-free without the inverse (Lanczos on JᵀJ only, ``inverse=False``) at the default
  budget, to show what the inverse buys (its unconverged samples are recorded).

Field: ``MLP(D, hidden=(w, w))`` with ``w = max(32, D)`` (the paper's width 32 for small D;
square, hence invertible factors, from D = 32 on), PyTorch-style initialisation, tanh; states
``h ~ N(0, 1)``; BLAS limited to one thread. Results go to ``--json`` (default
``benchmarks/results/kappa_cost.json``); the figure (``figures/kappa_cost.png``) is drawn from
that file only (``--plot-from FILE`` redraws it).

    python benchmarks/kappa_cost.py            # ~5 min on 2 shared cores
    python benchmarks/kappa_cost.py --quick    # D <= 64
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from common import HERE, ROOT, command_line, machine

from odejac import matfree
from odejac.mlp import MLP
from odejac.regularisers import condition

DIMS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RESULTS = os.path.join(HERE, "results")


def _exact(field, h, scale):
    J = field._jacobian(h, 0.0)
    values, G = condition(J)
    g_theta, _ = field._jacobian_vjp(h, 0.0, scale * G)
    return values, g_theta


def _matfree(field, h, scale, state, **options):
    ext = matfree.extreme_singular(field, h, 0.0, state, **options)
    values, U, V = matfree.kappa_penalty("condition", ext)
    g_theta, _ = field._jacobian_vjp_lowrank(h, 0.0, scale * U, V)
    return values, g_theta, ext


def _best(fun, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fun()
        times.append(time.perf_counter() - start)
    return min(times), out


def measure(D, batch, step, repeats, seed=0):
    rng = np.random.default_rng([seed, D])
    width = max(32, D)
    field = MLP(D, hidden=(width, width), seed=seed)
    h = rng.standard_normal((batch, D))
    scale = 1.0 / batch
    theta0 = field.theta
    direction = rng.standard_normal(theta0.size) * np.abs(theta0).mean() * step
    row = {"D": D, "width": width, "batch": batch}

    t_exact, (k_exact, g_exact) = _best(lambda: _exact(field, h, scale), repeats)
    row["exact_s"] = t_exact

    def cold():
        return _matfree(field, h, scale, matfree.WarmStart(seed=seed))
    t_cold, (k_cold, g_cold, ext) = _best(cold, repeats)
    row.update(cold_s=t_cold, cold_products=ext.products, cold_unconverged=ext.n_unconverged)

    # Warm: converge at θ - step, then time the call at θ (one training-like step later).
    warm_times, state = [], matfree.WarmStart(seed=seed)
    for _ in range(repeats):
        field.theta = theta0 - direction
        _matfree(field, h, scale, state)
        field.theta = theta0
        start = time.perf_counter()
        k_warm, g_warm, ext = _matfree(field, h, scale, state)
        warm_times.append(time.perf_counter() - start)
    row.update(warm_s=min(warm_times), warm_products=ext.products,
               warm_unconverged=ext.n_unconverged, inverse=bool(ext.inverse))
    row["kappa_rel_err"] = float(np.max(np.abs(k_warm / k_exact - 1)))
    row["grad_rel_err"] = float(np.linalg.norm(g_warm - g_exact) / np.linalg.norm(g_exact))
    row["kappa_median"] = float(np.median(k_exact))

    t_lz, (k_lz, _, ext) = _best(
        lambda: _matfree(field, h, scale, matfree.WarmStart(seed=seed), inverse=False), 1)
    row.update(lanczos_only_s=t_lz, lanczos_only_products=ext.products,
               lanczos_only_unconverged=ext.n_unconverged,
               lanczos_only_kappa_rel_err=float(np.max(np.abs(k_lz / k_exact - 1))))
    return row


def crossover(rows, key):
    """First D (log-log interpolated) where the matrix-free time drops below the exact one."""
    D = np.array([r["D"] for r in rows], float)
    ratio = np.log(np.array([r[key] for r in rows]) / np.array([r["exact_s"] for r in rows]))
    for i in range(1, len(D)):
        if ratio[i - 1] > 0 >= ratio[i]:
            w = ratio[i - 1] / (ratio[i - 1] - ratio[i])
            return float(np.exp(np.log(D[i - 1]) + w * (np.log(D[i]) - np.log(D[i - 1]))))
    return None


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    D = [r["D"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(D, [r["exact_s"] for r in rows], "o-", label="exact: form J, SVD, chain VJP")
    ax.loglog(D, [r["warm_s"] for r in rows], "s-", label="matrix-free, warm start")
    ax.loglog(D, [r["cold_s"] for r in rows], "s--", alpha=0.6, label="matrix-free, cold start")
    lz = [(r["D"], r["lanczos_only_s"], r["lanczos_only_unconverged"]) for r in rows]
    ax.loglog([d for d, _, _ in lz], [t for _, t, _ in lz], "^:", alpha=0.6,
              label="matrix-free, Lanczos only (no J⁻¹)")
    for d, t, u in lz:
        if u:
            ax.annotate(f"{u}/{results['batch']}\nunconv.", (d, t), fontsize=6,
                        textcoords="offset points", xytext=(-4, 6), ha="center")
    x = results.get("crossover_warm")
    if x:
        ax.axvline(x, color="grey", lw=0.8, ls="--")
        ax.text(x, ax.get_ylim()[1], f" crossover D ≈ {x:.0f}", va="top", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("state dimension D (hidden widths max(32, D))")
    ax.set_ylabel(f"seconds per regularised batch (B = {results['batch']})")
    ax.set_title("Condition-number penalty: value + gradient at h(t0)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--step", type=float, default=1e-3,
                        help="relative size of the θ perturbation between warm calls")
    parser.add_argument("--repeats", type=int, default=3, help="best of, for D <= 256")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=os.path.join(RESULTS, "kappa_cost.json"))
    parser.add_argument("--figure", default=os.path.join(ROOT, "figures", "kappa_cost.png"))
    parser.add_argument("--plot-from", default=None)
    args = parser.parse_args(argv)
    if args.plot_from:
        with open(args.plot_from) as fh:
            plot(json.load(fh), args.figure)
        return 0
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for D in DIMS if not args.quick else DIMS[:6]:
            row = measure(D, args.batch, args.step, args.repeats if D <= 256 else 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    results = {"command": command_line(), "machine": machine(), "batch": args.batch,
               "step": args.step, "rows": rows,
               "crossover_warm": crossover(rows, "warm_s"),
               "crossover_cold": crossover(rows, "cold_s")}
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=1)
    plot(results, args.figure)
    print(f"crossover (warm) D ≈ {results['crossover_warm']}, "
          f"(cold) D ≈ {results['crossover_cold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
