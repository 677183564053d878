#!/usr/bin/env python
"""odejac against diffrax (JAX) on the reference workload: cost per field evaluation.

The workload of ``vs_torchdiffeq.py``: two moons (1000 points), state D = 4, field
4 -> 32 -> 32 -> 4 (tanh), dopri5 with rtol = atol = 1e-3 on [0, 1], adjoint gradients, Adam
lr 1e-2, batch 256, float64, one thread. diffrax runs in its own interpreter (``--peer-python``,
a venv with ``jax[cpu] diffrax equinox optax``; never an odejac dependency) through
``_diffrax_peer.py``: ``diffeqsolve(Dopri5, PIDController, BacksolveAdjoint)``, the whole
training step under one ``jax.jit``, XLA on one thread.

Both sides start from odejac's initial weights and see the same batches. Their step-size
controllers differ (diffrax's PID controller and error norm are not torchdiffeq's), so they
do not take the same steps: the fair figure is the **cost per field evaluation**, epoch time
divided by the forward + backward evaluations of that epoch (diffrax's counted by a host
callback in a second, untimed run of the same epochs). Rounds alternate odejac, diffrax,
odejac, ...; each round trains ``--epochs`` epochs from the same start, the first epoch of
each round is left out (diffrax compiles in it), and the figure quoted is the median over
rounds of the ratio diffrax / odejac of the rounds' median per-NFE cost. The first epoch of a
new process is timed too: diffrax's from interpreter start (import + XLA compile), odejac's
from a fresh ``python cli.py train --epochs 1`` process (import + Numba cache load).
Process CPU time per NFE is recorded beside wall time: on a shared machine it keeps the other
processes' time slices out (both sides run one compute thread).

Several ``--reg`` values run in ONE alternating run: round r trains every workload, odejac
and diffrax in turn (diffrax first in odd rounds), so both penalties see the same load.
``--dtype float32`` runs the diffrax side in float32 (odejac stays float64): what a float32
mode of odejac would have to beat.

    python benchmarks/vs_diffrax.py --peer-python /work/venvs/jax/bin/python
    python benchmarks/vs_diffrax.py --reg none condition   # λ mean κ, λ = 1e-3; one run
    python benchmarks/vs_diffrax.py --dtype float32        # diffrax in float32
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

from odejac._threads import blas_threads
from odejac.train import TrainConfig, _epoch, load_data, new_state

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JAX_PYTHON = os.environ.get("ODEJAC_JAX_PYTHON", "/work/venvs/jax/bin/python")


def _orders(rng, n, epochs):
    """The permutations odejac's training will draw, from a copy of its generator."""
    copy = np.random.Generator(type(rng.bit_generator)())
    copy.bit_generator.state = rng.bit_generator.state
    return np.stack([copy.permutation(n) for _ in range(epochs)])


def _odejac_round(config, data):
    """One round of odejac: per-epoch seconds and forward + backward NFE per epoch.

    BLAS at one thread, as ``train.fit`` runs it: ``_epoch`` called directly would leave
    OpenBLAS at ``nproc`` threads, whose spinning counts in the process CPU time.
    """
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    seconds, cpu, nfe, split = [], [], [], []
    for _ in range(config.epochs):
        cpu_start = time.process_time()
        with blas_threads():
            record = _epoch(state, config, data.X_train, data.y_train)
        cpu.append(time.process_time() - cpu_start)
        state.history.append(record)
        n_batches = -(-len(data.X_train) // config.batch_size)
        seconds.append(record["time"])
        nfe.append((record["nfe_forward"] + record["nfe_backward"]) * n_batches)
        split.append((record["nfe_forward"] * n_batches, record["nfe_backward"] * n_batches))
    return seconds, cpu, nfe, split


def _write_setup(path, config, data):
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    arrays = {"X": data.X_train, "y": data.y_train,
              "orders": _orders(state.rng, len(data.X_train), config.epochs),
              "W_out": state.model.W_out, "b_out": state.model.b_out,
              "n_layers": len(state.model.field.layers), "augment_dim": config.augment_dim,
              "batch_size": config.batch_size, "lr": config.lr, "rtol": config.rtol,
              "atol": config.atol, "lam": config.lam, "reg": config.reg}
    for k, (W, b) in enumerate(state.model.field.layers):
        arrays[f"W{k}"], arrays[f"b{k}"] = np.asarray(W), np.asarray(b)
    np.savez(path, **arrays)


def _diffrax_round(python, setup_path, folder, dtype):
    result = os.path.join(folder, "result.json")
    subprocess.run([python, os.path.join(HERE, "_diffrax_peer.py"), "--dtype", dtype,
                    setup_path, result], check=True)
    with open(result) as fh:
        return json.load(fh)


def _odejac_first_epoch(folder):
    """Seconds from a new ``python cli.py train --epochs 1`` process's start to its exit."""
    root = os.path.dirname(HERE)
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(root, "cli.py"), "train", "--epochs", "1",
                    "--quiet", "--augment-dim", "2", "--out", os.path.join(folder, "first")],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _per_nfe(seconds, nfe):
    """Median per-evaluation cost in µs over the epochs after the first."""
    return median([1e6 * s / n for s, n in zip(seconds[1:], nfe[1:])])


def _config(args, reg):
    return TrainConfig(reg=reg, lam=args.lam if reg != "none" else 0.0, augment_dim=2,
                       rtol=args.tol, atol=args.tol, adjoint_rtol=args.tol, adjoint_atol=args.tol,
                       epochs=args.epochs, batch_size=args.batch_size)


def _round(args, config, data, setup_path, folder, diffrax_first):
    """One paired round: odejac and diffrax train the same epochs, in the given order."""
    if diffrax_first:
        peer = _diffrax_round(args.peer_python, setup_path, folder, args.dtype)
    o_seconds, o_cpu, o_nfe, o_split = _odejac_round(config, data)
    if not diffrax_first:
        peer = _diffrax_round(args.peer_python, setup_path, folder, args.dtype)
    d_nfe = [sum(batches) for batches in peer["nfe_per_batch"]]
    o_cost, d_cost = _per_nfe(o_seconds, o_nfe), _per_nfe(peer["epoch_seconds"], d_nfe)
    o_cpu_cost = _per_nfe(o_cpu, o_nfe)
    d_cpu_cost = _per_nfe(peer["epoch_cpu_seconds"], d_nfe)
    return {"odejac": {"epoch_seconds": o_seconds, "epoch_cpu_seconds": o_cpu,
                       "nfe": o_nfe, "nfe_forward_backward": o_split, "us_per_nfe": o_cost,
                       "cpu_us_per_nfe": o_cpu_cost},
            "diffrax": {"epoch_seconds": peer["epoch_seconds"],
                        "epoch_cpu_seconds": peer["epoch_cpu_seconds"],
                        "nfe": d_nfe, "us_per_nfe": d_cost, "cpu_us_per_nfe": d_cpu_cost,
                        "first_epoch_process_s": peer["process_seconds_to_first_epoch_end"]},
            "ratio": d_cost / o_cost, "cpu_ratio": d_cpu_cost / o_cpu_cost,
            "diffrax_first": diffrax_first, "versions": peer["versions"]}


def _summary(config, rounds, first):
    o_split = np.array([r["odejac"]["nfe_forward_backward"][1:] for r in rounds], dtype=float)
    return {"config": {"reg": config.reg, "lam": config.lam, "batch_size": config.batch_size,
                       "tol": config.rtol, "epochs": config.epochs, "D": 4},
            "rounds": rounds,
            "median_ratio_diffrax_over_odejac": median([r["ratio"] for r in rounds]),
            "median_cpu_ratio_diffrax_over_odejac": median([r["cpu_ratio"] for r in rounds]),
            "odejac_cpu_us_per_nfe": median([r["odejac"]["cpu_us_per_nfe"] for r in rounds]),
            "diffrax_cpu_us_per_nfe": median([r["diffrax"]["cpu_us_per_nfe"] for r in rounds]),
            "odejac_us_per_nfe": median([r["odejac"]["us_per_nfe"] for r in rounds]),
            "diffrax_us_per_nfe": median([r["diffrax"]["us_per_nfe"] for r in rounds]),
            "odejac_epoch_s": median([median(r["odejac"]["epoch_seconds"][1:]) for r in rounds]),
            "diffrax_epoch_s": median([median(r["diffrax"]["epoch_seconds"][1:])
                                       for r in rounds]),
            "odejac_cpu_epoch_s": median([median(r["odejac"]["epoch_cpu_seconds"][1:])
                                          for r in rounds]),
            "diffrax_cpu_epoch_s": median([median(r["diffrax"]["epoch_cpu_seconds"][1:])
                                           for r in rounds]),
            "odejac_nfe_per_epoch": median([median(r["odejac"]["nfe"][1:]) for r in rounds]),
            "odejac_forward_fraction": float(o_split[..., 0].sum() / o_split.sum()),
            "diffrax_nfe_per_epoch": median([median(r["diffrax"]["nfe"][1:]) for r in rounds]),
            "odejac_first_epoch_process_s": median(first) if first else None,
            "diffrax_first_epoch_process_s": median([r["diffrax"]["first_epoch_process_s"]
                                                     for r in rounds])}


def run(args):
    workloads = {}
    rounds = {reg: [] for reg in args.reg}
    with tempfile.TemporaryDirectory() as folder:
        for reg in args.reg:
            config = _config(args, reg)
            data = load_data(config)
            setup_path = os.path.join(folder, f"setup_{reg}.npz")
            _write_setup(setup_path, config, data)
            workloads[reg] = (config, data, setup_path)
        for r in range(args.rounds):
            for reg, (config, data, setup_path) in workloads.items():
                row = _round(args, config, data, setup_path, folder, diffrax_first=r % 2 == 1)
                rounds[reg].append(row)
                print(f"round {r + 1} {reg}: odejac {row['odejac']['us_per_nfe']:.1f} µs/NFE, "
                      f"diffrax {row['diffrax']['us_per_nfe']:.1f} µs/NFE, ratio "
                      f"{row['ratio']:.2f}; CPU time: odejac "
                      f"{row['odejac']['cpu_us_per_nfe']:.1f}, diffrax "
                      f"{row['diffrax']['cpu_us_per_nfe']:.1f} µs/NFE, ratio "
                      f"{row['cpu_ratio']:.2f}", flush=True)
        first = [_odejac_first_epoch(folder) for _ in range(args.first_epochs)]
    return {"command": command_line(), "machine": machine(), "diffrax_dtype": args.dtype,
            "runs": {reg: _summary(workloads[reg][0], rounds[reg], first) for reg in args.reg}}


def report(out):
    m = out["machine"]
    print(f"\nmachine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}; "
          f"diffrax in {out['diffrax_dtype']}, odejac in float64")
    for reg, run_ in out["runs"].items():
        c = run_["config"]
        print(f"\nworkload: reg={reg} lam={c['lam']:g} batch={c['batch_size']} tol={c['tol']:g}"
              f" D=4 32-32 tanh; {len(run_['rounds'])} alternating rounds of {c['epochs']} "
              f"epochs; odejac's NFE {100 * run_['odejac_forward_fraction']:.0f} % forward")
        print(f"{'':8s} {'CPU µs/NFE':>11s} {'wall µs/NFE':>12s} {'CPU s/epoch':>12s} "
              f"{'NFE/epoch':>10s} {'first epoch, new process':>26s}")
        for side in ("odejac", "diffrax"):
            first = run_[side + "_first_epoch_process_s"]
            print(f"{side:8s} {run_[side + '_cpu_us_per_nfe']:11.1f} "
                  f"{run_[side + '_us_per_nfe']:12.1f} {run_[side + '_cpu_epoch_s']:12.4f} "
                  f"{run_[side + '_nfe_per_epoch']:10.0f} "
                  + (f"{first:24.1f} s" if first is not None else f"{'—':>26s}"))
        print(f"per-NFE cost diffrax / odejac, median of paired round ratios: "
              f"{run_['median_cpu_ratio_diffrax_over_odejac']:.2f} (process CPU time; rounds "
              + ", ".join(f"{r['cpu_ratio']:.2f}" for r in run_["rounds"])
              + f"), {run_['median_ratio_diffrax_over_odejac']:.2f} (wall, under load)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reg", choices=("none", "condition"), nargs="+", default=["none"],
                        help="one or more workloads, alternating in one run")
    parser.add_argument("--lam", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=8, help="epochs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-epochs", type=int, default=1,
                        help="fresh `cli.py train --epochs 1` processes timed (0: none)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="the diffrax side's precision (odejac: float64)")
    parser.add_argument("--peer-python", default=DEFAULT_JAX_PYTHON,
                        help="interpreter with jax, diffrax and optax")
    parser.add_argument("--json", default=None, help="write the full record here")
    args = parser.parse_args(argv)
    out = run(args)
    report(out)
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
