"""The three sides of ``scaling.py``: odejac in this process, torchdiffeq and diffrax as peers.

Every timing is process CPU time (``time.process_time``) of the side's own process, over a
block of calls long enough (``BLOCK_SECONDS``) that the clock's tick-level accounting of
XLA's worker thread does not matter; one compute thread everywhere.
"""
import math
import os
import shutil
import tempfile
import time

import numpy as np

from common import field_inputs, median, peek_permutation, random_field
from vs_diffrax import _write_setup

from odejac.mlp import MLP
from odejac.train import TrainConfig, _epoch, load_data, new_state

D = 4                    # the reference workload's state: 2 inputs + 2 zeros
BLOCK_SECONDS = 0.05     # one timed block of bare evaluations
POINTS_PER_EPOCH = 1024  # training points: at least 2 batches, else ~1024 points per epoch


class OdejacFields:
    """odejac's ``MLP._f`` / ``MLP._f_and_vjp`` (the fused kernel) at the shared weights."""

    def setup(self, hidden, batch, seed=0):
        field = MLP(D, hidden=hidden, seed=seed)
        field.theta = np.concatenate([np.concatenate([W.T.ravel(), b])
                                      for W, b in random_field(D, hidden, seed)])
        h, a = field_inputs(D, batch, seed)
        self.calls = {"f": lambda: field._f(h, 0.0),
                      "vjp": lambda: field._f_and_vjp(h, 0.0, a)}

    def time(self, kind, inner):
        call = self.calls[kind]
        call()
        start = time.process_time()
        for _ in range(inner):
            call()
        return (time.process_time() - start) / inner


class PeerFields:
    """The same through a peer process (``field_setup`` / ``field_time`` commands)."""

    def __init__(self, peer):
        self.peer = peer

    def setup(self, hidden, batch, seed=0):
        self.peer.call({"cmd": "field_setup", "dim": D, "hidden": list(hidden), "batch": batch,
                        "seed": seed})

    def time(self, kind, inner):
        return self.peer.call({"cmd": "field_time", "kind": kind, "inner": inner})["cpu"]


def gemm_rate(n=256, repeats=15, inner=20):
    """Best one-thread ``np.dot`` rate on n × n × n in this process (odejac's BLAS), GFLOP/s."""
    rng = np.random.default_rng(0)
    P, Q, R = (rng.standard_normal((n, n)) for _ in range(3))
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            np.dot(P, Q, out=R)
        best = min(best, (time.process_time() - start) / inner)
    return 2.0 * n ** 3 / best / 1e9


def tanh_cost(n_values, repeats=7, inner=50):
    """Best ns per value of odejac's vectorised tanh (``_vtanh.vtanh_inplace``), in place."""
    from odejac._vtanh import vtanh_inplace
    work = np.random.default_rng(0).standard_normal(n_values) * 2.0
    vtanh_inplace(work)
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            vtanh_inplace(work)
        best = min(best, (time.process_time() - start) / inner)
    return best / n_values * 1e9


def eval_point(entries, hidden, batch, repeats):
    """Per-evaluation CPU µs of every entry ``(name, side, kind)``, alternating in rotation.

    Returns ``{name: {"us": median, "ratio": median of (this / odejac) over the repeats}}``;
    each repeat times one block per entry, the order rotating from repeat to repeat.
    """
    inner = {}
    for name, side, kind in entries:
        per_call = side.time(kind, 3)          # also compiles (JAX) or loads (Numba)
        inner[name] = int(min(20000, max(3, math.ceil(BLOCK_SECONDS / max(per_call, 1e-7)))))
    times = {name: [] for name, _, _ in entries}
    for r in range(repeats):
        shift = r % len(entries)
        for name, side, kind in entries[shift:] + entries[:shift]:
            times[name].append(side.time(kind, inner[name]) * 1e6)
    base = np.array(times["odejac"])
    return {name: {"us": median(v), "ratio": median(np.array(v) / base), "inner": inner[name]}
            for name, v in times.items()}


def train_point(batch, width, torch_peer, jax_peer, warmup, epochs, seed=0):
    """Per-NFE training CPU cost of the three sides, alternating epoch by epoch.

    The reference workload (moons, D = 4, tanh, no penalty, dopri5 1e-3, adjoint, Adam) at
    ``batch`` and hidden ``(width, width)``, ``max(2, 1024 // batch)`` batches per epoch, all
    sides from odejac's initial weights and in odejac's batch order. Each epoch's cost is its
    CPU time over its forward + backward field evaluations; the ratios are medians of the
    per-epoch ratios peer / odejac.
    """
    n_batches = max(2, POINTS_PER_EPOCH // batch)
    config = TrainConfig(batch_size=batch, hidden=(width, width), n_train=batch * n_batches,
                         epochs=warmup + epochs, seed=seed)
    data = load_data(config)
    X, y = data.X_train, data.y_train
    state = new_state(config, X.shape[1], data.n_classes)
    sides = ["odejac"]
    if torch_peer is not None:
        torch_peer.setup(state.model, X, y, batch_size=batch, lr=config.lr, reg="none",
                         lam=0.0, rtol=config.rtol, atol=config.atol)
        sides.append("torchdiffeq")
    folder = tempfile.mkdtemp(prefix="odejac-scaling-")
    if jax_peer is not None:
        path = os.path.join(folder, "setup.npz")
        _write_setup(path, config, data)
        jax_peer.call({"cmd": "train_setup", "path": path})
        sides.append("diffrax")
    rows = []
    for e in range(warmup + epochs):
        order = peek_permutation(state.rng, len(X))
        row = {}
        for side in sides[e % len(sides):] + sides[:e % len(sides)]:
            if side == "odejac":
                start = time.process_time()
                rec = _epoch(state, config, X, y)
                cpu = time.process_time() - start
                state.history.append(rec)
                nfe = (rec["nfe_forward"] * n_batches, rec["nfe_backward"] * n_batches)
            elif side == "torchdiffeq":
                rep = torch_peer.call({"cmd": "epoch", "order": order.tolist()})
                cpu, nfe = rep["cpu"], (sum(rep["nfe_forward"]), sum(rep["nfe_backward"]))
            else:
                rep = jax_peer.call({"cmd": "train_epoch", "order": order.tolist()})
                cpu, nfe = rep["cpu"], (sum(rep["nfe_per_batch"]), 0)   # fwd + bwd together
            row[side] = {"cpu_s": cpu, "nfe": nfe, "us_per_nfe": 1e6 * cpu / sum(nfe)}
        if e >= warmup:
            rows.append(row)
    shutil.rmtree(folder, ignore_errors=True)
    out = {"batch": batch, "width": width, "batches_per_epoch": n_batches, "epochs": epochs}
    for side in sides:
        out[side] = {"us_per_nfe": median([r[side]["us_per_nfe"] for r in rows]),
                     "nfe_per_batch": (np.mean([r[side]["nfe"] for r in rows], axis=0)
                                       / n_batches).tolist(),
                     "ratio": median([r[side]["us_per_nfe"] / r["odejac"]["us_per_nfe"]
                                      for r in rows])}
    return out
