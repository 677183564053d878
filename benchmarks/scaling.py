#!/usr/bin/env python
"""Scaling: odejac against torchdiffeq and diffrax over batch size and hidden width; memory.

The reference field (state D = 4, two tanh hidden layers, no time input), float64, one
thread on every side, process CPU time (the machine is shared: wall time counts other
processes' slices), the sides alternating in rotation inside one run:

* **Bare evaluations**: batch 32 ... 4096 at width 32, width 16 ... 256 at batch 256; the
  CPU µs of one ``f`` and one ``f_and_vjp`` (f, vjp w.r.t. the state and every parameter) at
  the same weights and inputs (:func:`common.random_field`, :func:`common.field_inputs`).
  odejac: ``MLP._f`` / ``MLP._f_and_vjp`` (the fused kernel, call included); torchdiffeq:
  the field module under ``no_grad`` / ``autograd.grad`` as ``odeint_adjoint`` runs it;
  diffrax: the same equinox-free JAX field evaluated ``--repeats`` times in one jitted
  ``fori_loop`` (as inside ``diffeqsolve``; "diffrax" below) and as one ``jax.jit`` call per
  evaluation (dispatch included; "jax call"). Each figure is the median of ``--repeats``
  blocks of ~50 ms; ratios are medians of the paired block ratios peer / odejac.
* **Training per NFE** at ``TRAIN_POINTS`` (batch, width): whole training epochs, no penalty,
  epoch CPU time over its forward + backward field evaluations, the three sides alternating
  epoch by epoch from the same weights and batch order (``_scaling_sides.train_point``).
* **Memory**: each point in a FRESH process (odejac here, torch through the peer interpreter):
  peak-RSS growth over a warmed-up baseline during one forward + adjoint solve of a random
  field (the same weights on both sides) on [0, T], 256 samples. torchdiffeq's plain ``odeint``
  (backprop through the solver) is recorded beside it: that memory grows with the steps.
* **Primitives**: the best one-thread 256 × 256 × 256 product rate of each side's library
  (NumPy's OpenBLAS, torch's MKL, XLA) and the ns per value of odejac's and XLA's tanh on
  256 × 256 values: the two operations that dominate at width 256; odejac's fixed cost per
  call (``f`` and ``f_and_vjp`` at batch 1), which dominates at small batches.

Results go to ``--json`` (default ``benchmarks/results/scaling.json``), with
``scaling.csv`` and ``scaling.md`` beside it; the figure is drawn from the JSON only
(``--plot-from FILE`` redraws it and the tables without measuring).

    python benchmarks/scaling.py                 # ~6 min CPU (three sides)
    python benchmarks/scaling.py --quick         # a smoke run
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from _scaling_report import plot, write_tables
from _scaling_sides import (OdejacFields, PeerFields, eval_point, gemm_rate, tanh_cost,
                            train_point)
from common import (DEFAULT_PEER_PYTHON, HERE, Peer, command_line, machine, random_field,
                    save_json)
from vs_diffrax import DEFAULT_JAX_PYTHON

BATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (16, 32, 64, 128, 256)
TRAIN_POINTS = ((32, 32), (256, 32), (4096, 32), (256, 128), (256, 256))   # (batch, width)
HORIZONS = (1.0, 10.0, 100.0)
TANH_VALUES = 256 * 256   # one hidden layer's activations at width 256, batch 256
RESULTS = os.path.join(HERE, "results")
# (column name, side, the side's kind for f, for f_and_vjp)
ENTRIES = (("odejac", "odejac", "f", "vjp"), ("torchdiffeq", "torch", "f", "vjp"),
           ("diffrax", "jax", "f_loop", "vjp_loop"), ("jax_call", "jax", "f", "vjp"))


def memory_child(T, batch_size, hidden, seed=0):
    """Run in a fresh process: peak-RSS growth of one odejac forward + adjoint solve on [0, T]."""
    from odejac.adjoint import adjoint_solve
    from odejac.integrate import error_groups, solve_flat
    from odejac.mlp import MLP

    D = 4
    field = MLP(D, hidden=hidden, seed=seed)
    field.theta = np.concatenate([np.concatenate([W.T.ravel(), b])
                                  for W, b in random_field(D, hidden, seed)])
    h0 = np.random.default_rng(seed + 1).standard_normal((batch_size, D))
    sizes = [v.size for W, b in field.layers for v in (W, b)]

    def run(t1):
        def rhs(t, y):
            return field._f(y.reshape(h0.shape), t).reshape(-1)
        h1, nfe, _, _, _ = solve_flat(rhs, h0.reshape(-1).copy(), (0.0, t1), 1e-3, 1e-3,
                                      "torchdiffeq", 1_000_000, error_groups([h0.size]), False)
        h1 = h1.reshape(h0.shape)
        adj = adjoint_solve(lambda t, y, a: field._f_and_vjp(y, t, a), h1, 2.0 * h1, (0.0, t1),
                            param_sizes=sizes, rtol=1e-3, atol=1e-3, max_steps=1_000_000)
        return nfe, adj.nfe

    run(1e-3)   # warm-up: JIT cache loaded, buffers of this size seen once
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nfe_f, nfe_b = run(T)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"T": T, "peak_rss_growth_mib": (peak - base) / 1024, "base_rss_mib": base / 1024,
            "nfe_forward": nfe_f, "nfe_backward": nfe_b}


def _fresh(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(args, have_peer):
    rows = []
    for T in HORIZONS:
        row = {"T": T, "odejac": _fresh([sys.executable, __file__, "--memory-child", str(T)])}
        if have_peer:
            peer = [args.peer_python, os.path.join(HERE, "_torch_peer.py"), "--memory", str(T)]
            row["torch_adjoint"] = _fresh(peer)
            row["torch_backprop"] = _fresh(peer + ["--backprop"])
        rows.append(row)
    return rows


def start_peers(args):
    """The torchdiffeq and diffrax peer processes (``None`` for a missing one, and why)."""
    peers, missing = {}, {}
    if args.no_peer:
        return {"torch": None, "jax": None}, {"torch": "--no-peer", "jax": "--no-peer"}
    peers["torch"], missing["torch"] = Peer.start(args.peer_python)
    peers["jax"], missing["jax"] = Peer.start(args.jax_python, "_diffrax_peer.py", ("--serve",))
    for name, why in missing.items():
        if why:
            print(f"{name} peer not available ({why}): left out")
    return peers, missing


def evals(args, peers):
    sides = {"odejac": OdejacFields(), "torch": peers["torch"] and PeerFields(peers["torch"]),
             "jax": peers["jax"] and PeerFields(peers["jax"])}
    batch_sizes = BATCH_SIZES[::3] if args.quick else BATCH_SIZES
    widths = WIDTHS[::2] if args.quick else WIDTHS
    grid = [(bs, 32) for bs in batch_sizes] + [(256, w) for w in widths if w != 32]
    rows = []
    for batch, width in grid:
        live = [(name, sides[side], kf, kv) for name, side, kf, kv in ENTRIES if sides[side]]
        for _, side, _, _ in live:
            side.setup((width, width), batch)
        row = {"batch": batch, "width": width}
        for quantity, pick in (("f", 2), ("f_and_vjp", 3)):
            row[quantity] = eval_point([(e[0], e[1], e[pick]) for e in live], (width, width),
                                       batch, args.repeats)
        rows.append(row)
        print(f"B {batch:5d} width {width:4d}: " + "; ".join(
            f"{q} " + ", ".join(f"{n} {v['us']:.1f} µs ({v['ratio']:.2f})"
                                for n, v in row[q].items()) for q in ("f", "f_and_vjp")),
            flush=True)
    return rows


def primitives(peers):
    """The two costs that bound a wide field: the 256³ GEMM rate and tanh's ns per value."""
    gemm = {"odejac (NumPy/OpenBLAS)": gemm_rate()}
    tanh = {"odejac (_vtanh)": tanh_cost(TANH_VALUES)}
    if peers["torch"]:
        gemm["torchdiffeq (torch/MKL)"] = peers["torch"].call({"cmd": "gemm"})["gflops"]
    if peers["jax"]:
        gemm["diffrax (XLA)"] = peers["jax"].call({"cmd": "gemm"})["gflops"]
        tanh["diffrax (XLA)"] = peers["jax"].call({"cmd": "tanh", "n": TANH_VALUES})[
            "ns_per_value"]
    print("256^3 GEMM, one thread, GFLOP/s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in gemm.items()), flush=True)
    print(f"tanh on {TANH_VALUES} values, ns/value: "
          + ", ".join(f"{k} {v:.2f}" for k, v in tanh.items()), flush=True)
    return gemm, tanh


def call_cost():
    """odejac's fixed cost per call from Python: ``f`` and ``f_and_vjp`` at batch 1 (µs)."""
    side = OdejacFields()
    side.setup((32, 32), 1)
    out = {kind: min(side.time(kind, 20000) for _ in range(5)) * 1e6 for kind in ("f", "vjp")}
    print(f"odejac per call at B = 1: f {out['f']:.1f} µs, f_and_vjp {out['vjp']:.1f} µs",
          flush=True)
    return out


def measure(args):
    threadpool_limits(1)
    peers, missing = start_peers(args)
    out = {"command": command_line(), "machine": machine(), "repeats": args.repeats,
           "peers": {k: (p.info if p else None) for k, p in peers.items()},
           "peers_missing": missing, "warmup": args.warmup, "epochs": args.epochs}
    try:
        out["gemm_gflops"], out["tanh_ns_per_value"] = primitives(peers)
        out["odejac_call_us_at_batch_1"] = call_cost()
        out["evals"] = evals(args, peers)
        save_json(args.json, out)   # each part saved as it ends: a late failure loses only it
        points = TRAIN_POINTS[1:2] if args.quick else TRAIN_POINTS
        out["train"] = []
        for batch, width in points:
            row = train_point(batch, width, peers["torch"], peers["jax"], args.warmup,
                              args.epochs)
            out["train"].append(row)
            save_json(args.json, out)
            print(f"train B {batch} width {width}: " + ", ".join(
                f"{s} {row[s]['us_per_nfe']:.1f} µs/NFE ({row[s]['ratio']:.2f})"
                for s in ("odejac", "torchdiffeq", "diffrax") if s in row), flush=True)
    finally:
        for p in peers.values():
            if p:
                p.close()
    if not args.no_memory:
        out["memory"] = memory(args, peers["torch"] is not None)
        for row in out["memory"]:
            line = (f"T = {row['T']:5g}: odejac +{row['odejac']['peak_rss_growth_mib']:.2f} MiB "
                    f"(NFE {row['odejac']['nfe_forward']}/{row['odejac']['nfe_backward']})")
            if "torch_adjoint" in row:
                line += (f"; torch adjoint +{row['torch_adjoint']['peak_rss_growth_mib']:.2f} "
                         f"MiB, torch backprop "
                         f"+{row['torch_backprop']['peak_rss_growth_mib']:.2f} MiB")
            print(line, flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per evaluation")
    parser.add_argument("--warmup", type=int, default=1, help="training epochs left out")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs measured")
    parser.add_argument("--quick", action="store_true", help="fewer sizes (smoke run)")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="torchdiffeq's")
    parser.add_argument("--jax-python", default=DEFAULT_JAX_PYTHON, help="diffrax's")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", default=os.path.join(RESULTS, "scaling.json"))
    parser.add_argument("--png", default=None, help="default: the JSON's name, .png")
    parser.add_argument("--plot-from", default=None, help="redraw figure and tables from this")
    parser.add_argument("--memory-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, 256, (32, 32))))
        return
    source = args.plot_from or args.json
    png = args.png or os.path.splitext(source)[0] + ".png"
    if not args.plot_from:
        start = time.perf_counter()
        out = measure(args)
        out["wall_seconds"] = time.perf_counter() - start
        out["cpu_seconds_driver"] = time.process_time()
        save_json(args.json, out)
    with open(source) as fh:
        res = json.load(fh)
    stem = os.path.splitext(os.path.basename(source))[0]
    print("tables: " + ", ".join(write_tables(res, os.path.dirname(os.path.abspath(source)),
                                              stem)))
    plot(source, png)


if __name__ == "__main__":
    main()
