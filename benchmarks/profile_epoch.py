#!/usr/bin/env python
"""Where an epoch of the reference workload goes: solver, field, penalty, statistics.

Wraps the pieces of ``NeuralODE.loss_and_grad`` with ``perf_counter`` timers (cProfile's
per-call cost would distort the ~50 µs field calls) and trains ``--warmup`` + ``--epochs``
epochs; the shares are summed over the measured epochs. "driver" is a solve's time outside
the field calls: the jitted DP5 driver, the objmode trampoline and the Python closure.

``--clock cpu`` times every piece and the epoch with the thread's CPU clock instead (a shared
machine's other processes then do not count); ``--n-train`` sets the number of points.

    python benchmarks/profile_epoch.py [--reg condition] [--batch-size 32] [--clock cpu]
    python benchmarks/profile_epoch.py --clock cpu --batch-size 4096 --n-train 8192
    python benchmarks/profile_epoch.py --clock cpu --width 256
"""
import argparse
import json
import time

from common import command_line, machine

import odejac.model as model_module
from odejac.regularisers import PENALTIES

try:
    import odejac._model_terms as model_terms
except ImportError:   # commits before the PenaltyTerms mixin
    model_terms = None
from odejac.train import TrainConfig, _epoch, load_data, new_state

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


class Timers:
    def __init__(self, clock=time.perf_counter):
        self.total, self.clock = {}, clock

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] = self.total.get(name, 0.0) + self.clock() - start
        return timed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reg", choices=("none", "condition"), default="none")
    parser.add_argument("--lam", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--width", type=int, default=32, help="both hidden layers")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    config = TrainConfig(reg=args.reg, lam=args.lam if args.reg != "none" else 0.0,
                         batch_size=args.batch_size, epochs=args.warmup + args.epochs,
                         n_train=args.n_train, hidden=(args.width, args.width))
    data = load_data(config)
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    for _ in range(args.warmup):
        state.history.append(_epoch(state, config, data.X_train, data.y_train))

    timers = Timers(clock)
    model, field = state.model, state.model.field
    # Instance attributes shadow the methods; module attributes are what loss_and_grad calls.
    field._f = timers.wrap("field f (forward stages)", field._f)
    field._f_and_vjp = timers.wrap("field f_and_vjp (adjoint stages)", field._f_and_vjp)
    make_rhs = field._augmented_rhs

    def timed_augmented_rhs(shape):   # the fused adjoint stage the model uses
        rhs = make_rhs(shape)
        return None if rhs is None else timers.wrap("field f_and_vjp (adjoint stages)", rhs)
    field._augmented_rhs = timed_augmented_rhs
    field._jacobian = timers.wrap("J at h(t0)", field._jacobian)
    field._jacobian_vjp = timers.wrap("penalty: jacobian_vjp", field._jacobian_vjp)
    model._solve = timers.wrap("forward solve", model._solve)
    model_module.adjoint_solve = timers.wrap("adjoint solve", model_module.adjoint_solve)
    for name in list(PENALTIES):   # one dict, shared by every module that looks penalties up
        PENALTIES[name] = timers.wrap("penalty: SVD + dR/dJ", PENALTIES[name])
    # _kappa_values is called from odejac.model and from its PenaltyTerms mixin's module
    for module in (model_module, model_terms):
        if module is not None and hasattr(module, "_kappa_values"):
            module._kappa_values = timers.wrap("κ statistics (σ only)", module._kappa_values)
    epoch_time = 0.0
    nfe = [0.0, 0.0]
    for _ in range(args.epochs):
        start = clock()
        rec = _epoch(state, config, data.X_train, data.y_train)
        epoch_time += clock() - start
        state.history.append(rec)
        nfe[0] += rec["nfe_forward"] / args.epochs
        nfe[1] += rec["nfe_backward"] / args.epochs
    t = timers.total
    rows = [
        ("forward solve: field", t.get("field f (forward stages)", 0.0)),
        ("forward solve: driver + trampoline + closure",
         t.get("forward solve", 0.0) - t.get("field f (forward stages)", 0.0)),
        ("adjoint solve: field f_and_vjp", t.get("field f_and_vjp (adjoint stages)", 0.0)),
        ("adjoint solve: driver + trampoline + closure",
         t.get("adjoint solve", 0.0) - t.get("field f_and_vjp (adjoint stages)", 0.0)),
        ("J at h(t0)", t.get("J at h(t0)", 0.0)),
        ("penalty: SVD + dR/dJ", t.get("penalty: SVD + dR/dJ", 0.0)),
        ("penalty: jacobian_vjp", t.get("penalty: jacobian_vjp", 0.0)),
        ("κ statistics (σ only)", t.get("κ statistics (σ only)", 0.0)),
    ]
    rows.append(("rest (loss, readout, Adam, batching, Python)",
                 epoch_time - sum(v for _, v in rows)))
    m = machine()
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}")
    print(f"reg={args.reg} batch={args.batch_size} width={args.width} n_train={args.n_train}: "
          f"{epoch_time / args.epochs * 1e3:.1f} ms per epoch ({args.clock} clock, mean of "
          f"{args.epochs}), NFE per batch {nfe[0]:.1f} fwd / {nfe[1]:.1f} bwd")
    for name, value in rows:
        print(f"  {name:46s} {value / args.epochs * 1e3:7.2f} ms  {100 * value / epoch_time:5.1f} %")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": command_line(), "machine": m, "epoch_s": epoch_time / args.epochs,
                       "nfe": nfe, "rows_s_per_epoch": {k: v / args.epochs for k, v in rows}},
                      fh, indent=1)


if __name__ == "__main__":
    main()
