#!/usr/bin/env python
"""Bare field kernels against this machine's floor, and against an earlier commit.

For the reference field (D = 4, hidden (32, 32), tanh) at batch ``--batch``, one thread:

* **new vs base**: ``MLP._f``, ``MLP._f_and_vjp`` and the adjoint's augmented field of the
  working tree against those of ``--base`` (a git commit, extracted as ``odejac_base`` as in
  ``ab_commits.py``), alternating calls in one process; the medians of ``--repeats`` timed
  blocks and the median of the paired ratios new / base.
* **floor**: what the arithmetic alone costs here (measured once, best of many blocks, and again
  beside every timed block of the kernels: the "paired" ratio kernel / floor of each block). ``peak`` is the best one-thread DGEMM rate
  measured on 256 × 256 × 256 (the machine's practical FMA peak); ``tanh`` the best ns per
  value of the vectorised :func:`odejac._vtanh.vtanh_inplace` over 8192 values; ``call`` the
  dispatch of a jitted no-op taking the same arguments as the kernel. Then
  ``floor = 2 · (multiply-adds of every layer) / peak + (tanh values) · tanh + call``, with
  ``f``: the three layers' products and two tanh blocks; ``f_and_vjp``: those plus the
  backward products (the gradient of every block, the cotangents of both hidden layers and
  ``vjp_h``). Passes over memory (the transposes of h, a, f and v, the ``1 − a²`` factors)
  are left out, so the floor is a little optimistic.

Times are CPU time of the calling thread (``time.thread_time``), so that the other
processes of a shared machine do not count; they still slow it through shared caches.

    python benchmarks/kernels.py [--base HEAD] [--batch 256] [--json out.json]
"""
import argparse
import importlib
import shutil
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from ab_commits import extract
from common import command_line, machine, median, save_json
from odejac._vtanh import vtanh_inplace

# CPU time of this thread: on a shared machine wall time counts other processes' slices too,
# and one-thread kernels cost the same CPU time whether or not they were preempted.
_clock = time.thread_time


@njit(cache=True)
def _noop(t, z, out, B, D, theta, sizes, time_dependent, work):
    return out


def _best_rate(fn, flops, repeats=30, inner=20):
    best = np.inf
    for _ in range(repeats):
        start = _clock()
        for _ in range(inner):
            fn()
        best = min(best, (_clock() - start) / inner)
    return flops / best, best


class Floor:
    """This machine's floor for the reference kernels, from three measured primitives.

    ``measure(repeats, ...)`` times the primitives (best of ``repeats`` blocks each); ``us(name)``
    is then the floor of ``"f"`` or ``"f_and_vjp"``. The primitives are re-measured beside every
    timed block of the kernels in :func:`compare` as well, so that a machine whose speed drifts
    (a shared VM: the same kernel measured 31–54 µs within an hour) gives ratios of a kernel
    and its floor measured in the same few milliseconds.
    """

    def __init__(self, sizes, B):
        rng = np.random.default_rng(0)
        n = 256
        self._P, self._Q, self._R = (rng.standard_normal((n, n)) for _ in range(3))
        self._gemm_flops = 2.0 * n ** 3
        self._work = rng.standard_normal((sizes[1], B)) * 2.0
        vtanh_inplace(self._work)
        self._z, self._out, self._theta = np.zeros(8 * B), np.zeros(8 * B), np.zeros(1000)
        self._sizes, self._B = np.array(sizes, dtype=np.int64), B
        self._noop()
        layers = list(zip(sizes[:-1], sizes[1:]))
        fwd = sum((n_in + 1) * n_out for n_in, n_out in layers) * B
        # backward: every block's gradient, cotangents of the hidden layers (W_k δ) and vjp_h
        bwd = fwd + sum(n_in * n_out for n_in, n_out in layers[1:]) * B + sizes[0] * sizes[1] * B
        self.flops = {"f": 2 * fwd, "f_and_vjp": 2 * (fwd + bwd)}
        self.n_tanh = sum(sizes[1:-1]) * B

    def _noop(self):
        _noop(0.0, self._z, self._out, self._B, 4, self._theta, self._sizes, False, self._work)

    def measure(self, gemm=(300, 2), tanh=(300, 5), call=(30, 200)):
        self.peak, _ = _best_rate(lambda: np.dot(self._P, self._Q, out=self._R),
                                  self._gemm_flops, *gemm)
        _, seconds = _best_rate(lambda: vtanh_inplace(self._work), 0.0, *tanh)
        self.tanh_ns = seconds / self._work.size * 1e9
        _, self.call = _best_rate(self._noop, 0.0, *call)
        return self

    def us(self, name):
        name = "f_and_vjp" if name == "augmented" else name
        return (self.flops[name] / self.peak + self.n_tanh * self.tanh_ns * 1e-9
                + self.call) * 1e6

    def record(self):
        return {"peak_gflops": self.peak / 1e9, "tanh_ns_per_value": self.tanh_ns,
                "call_us": self.call * 1e6, "flops_f": self.flops["f"],
                "flops_f_and_vjp": self.flops["f_and_vjp"], "tanh_values": self.n_tanh,
                "floor_f_us": self.us("f"), "floor_f_and_vjp_us": self.us("f_and_vjp")}


def floor(sizes, B):
    """Measured peak, tanh cost and call overhead, and the floors of f and f_and_vjp (µs)."""
    return Floor(sizes, B).measure().record()


def _callables(package, B, seed=0):
    mlp = importlib.import_module(f"{package}.mlp")
    field = mlp.MLP(4, (32, 32), seed=seed)
    rng = np.random.default_rng(seed)
    h, a = rng.standard_normal((B, 4)), rng.standard_normal((B, 4))
    z = np.concatenate([h.ravel(), a.ravel(), np.zeros(field.n_params)])
    rhs = field._augmented_rhs(h.shape)
    return {"f": lambda: field._f(h, 0.0), "f_and_vjp": lambda: field._f_and_vjp(h, 0.0, a),
            "augmented": lambda: rhs(0.0, z)}


def compare(base, B, repeats, inner):
    sides = {"new": _callables("odejac", B)}
    beside = Floor((4, 32, 32, 4), B)
    folder = None
    if base:
        folder = extract(base)
        sides["base"] = _callables("odejac_base", B)
    try:
        out = {}
        for name in sides["new"]:
            times = {side: [] for side in sides}
            paired = []      # kernel / floor, both measured in the same block
            for r in range(repeats):
                beside.measure(gemm=(3, 1), tanh=(5, 2), call=(5, 50))
                order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                for side in order:
                    fn = sides[side][name]
                    fn()
                    start = _clock()
                    for _ in range(inner):
                        fn()
                    times[side].append((_clock() - start) / inner * 1e6)
                    if side == "new":
                        paired.append(times[side][-1] / beside.us(name))
            row = {f"{side}_us": median(v) for side, v in times.items()}
            row.update({f"{side}_best_us": float(min(v)) for side, v in times.items()})
            row.update(paired_floor_ratio=median(paired),
                       paired_floor_ratio_iqr=[float(np.percentile(paired, q)) for q in (25, 75)])
            if base:
                row["ratio_new_base"] = median(np.array(times["new"]) / np.array(times["base"]))
            out[name] = row
        return out
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=None, help="git commit to compare against")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--inner", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    threadpool_limits(1)
    res = {"command": command_line(), "machine": machine(), "batch": args.batch,
           "floor": floor((4, 32, 32, 4), args.batch),
           "kernels": compare(args.base, args.batch, args.repeats, args.inner)}
    m, fl = res["machine"], res["floor"]
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}")
    print(res["command"])
    print(f"floor: peak {fl['peak_gflops']:.1f} GFLOP/s, tanh {fl['tanh_ns_per_value']:.2f} "
          f"ns/value, call {fl['call_us']:.2f} µs -> f {fl['floor_f_us']:.1f} µs, f_and_vjp "
          f"{fl['floor_f_and_vjp_us']:.1f} µs (B = {args.batch})")
    for name, row in res["kernels"].items():
        line = f"{name:10s} new {row['new_us']:7.1f} µs (best {row['new_best_us']:.1f})"
        if "base_us" in row:
            line += (f"  base {row['base_us']:7.1f} µs (best {row['base_best_us']:.1f})  "
                     f"new/base {row['ratio_new_base']:.3f}")
        key = {"f": "floor_f_us", "f_and_vjp": "floor_f_and_vjp_us",
               "augmented": "floor_f_and_vjp_us"}[name]
        lo, hi = row["paired_floor_ratio_iqr"]
        line += (f"  best/floor {row['new_best_us'] / fl[key]:.2f}; paired with the floor in each"
                 f" block: {row['paired_floor_ratio']:.2f} (IQR {lo:.2f}-{hi:.2f})")
        print(line)
    save_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
