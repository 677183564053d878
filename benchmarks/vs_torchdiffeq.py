#!/usr/bin/env python
"""odejac against torchdiffeq on the reference workload, epoch by epoch, A B A B.

Two moons (1000 points, noise 0.1), state D = 4 (2 inputs + 2 zeros), field 4 -> 32 -> 32 -> 4
(tanh, no time input), dopri5 with rtol = atol = 1e-3 on [0, 1], adjoint gradients (odejac's
"mixed" norm = torchdiffeq's default adjoint norm), Adam lr 1e-2, batch 256. Both sides start
from the same weights (odejac's, copied into torch in float64), see the same batches in the same
order, and take the same steps (NFE per batch is reported and compared). Epochs alternate
(odejac, torch), (torch, odejac), ...; the first ``--warmup`` epochs are not counted (the
issue's figures are "after 20 epochs"). Reported: median seconds per epoch of each side,
median of the per-epoch ratios torch / odejac, NFE per batch.

    python benchmarks/vs_torchdiffeq.py                      # reg none
    python benchmarks/vs_torchdiffeq.py --reg condition      # λ mean κ(J(h(t0))), λ = 1e-3
    python benchmarks/vs_torchdiffeq.py --batch-size 32

torch runs in its own interpreter (``--peer-python``); without it odejac runs alone and says so.
"""
import argparse
import time

import numpy as np

from common import (Peer, DEFAULT_PEER_PYTHON, command_line, machine, median,
                    peek_permutation, save_json)

from odejac.train import TrainConfig, _epoch, load_data, new_state


def _recording(model, log):
    """Wrap ``model.loss_and_grad`` to keep each batch's NFE and loss (instance attribute)."""
    inner = model.loss_and_grad

    def loss_and_grad(X, y):
        loss, grad, stats = inner(X, y)
        log.append((stats["nfe_forward"], stats["nfe_backward"], loss))
        return loss, grad, stats

    model.loss_and_grad = loss_and_grad


def run(args):
    config = TrainConfig(reg=args.reg, lam=args.lam if args.reg != "none" else 0.0,
                         batch_size=args.batch_size, hidden=tuple(args.hidden), lr=args.lr,
                         rtol=args.tol, atol=args.tol, adjoint_rtol=args.tol,
                         adjoint_atol=args.tol, n_train=args.n_train,
                         epochs=args.warmup + args.epochs)
    data = load_data(config)
    X, y = data.X_train, data.y_train
    state = new_state(config, X.shape[1], data.n_classes)
    odejac_log = []
    _recording(state.model, odejac_log)

    peer, why = (None, "--no-peer given") if args.no_peer else Peer.start(args.peer_python)
    if peer is not None:
        peer.setup(state.model, X, y, batch_size=config.batch_size, lr=config.lr,
                   reg=config.reg, lam=config.lam, rtol=config.rtol, atol=config.atol)
    else:
        print(f"torchdiffeq not available ({why}): timing odejac alone")

    epochs = []
    for e in range(config.epochs):
        order = peek_permutation(state.rng, len(X))
        record = {"epoch": e + 1}
        sides = ("odejac", "torch") if e % 2 == 0 else ("torch", "odejac")
        for side in sides:
            if side == "odejac":
                start = len(odejac_log)
                rec = _epoch(state, config, X, y)
                state.history.append(rec)
                batches = odejac_log[start:]
                record["odejac"] = {"time": rec["time"],
                                    "nfe_forward": [b[0] for b in batches],
                                    "nfe_backward": [b[1] for b in batches],
                                    "loss": [b[2] for b in batches]}
            elif peer is not None:
                record["torch"] = peer.call({"cmd": "epoch", "order": order.tolist()})
        epochs.append(record)
        if args.verbose:
            line = f"epoch {e + 1:3d}  odejac {record['odejac']['time']:.4f} s"
            if "torch" in record:
                line += f"  torch {record['torch']['time']:.4f} s"
            print(line, flush=True)
    if peer is not None:
        info = peer.info
        peer.close()
    else:
        info = None
    return summarise(args, config, epochs, info, why)


def _nfe(side, measured):
    f = [n for r in measured for n in r[side]["nfe_forward"]]
    b = [n for r in measured for n in r[side]["nfe_backward"]]
    return float(np.mean(f)), float(np.mean(b)), f, b


def summarise(args, config, epochs, peer_info, why):
    measured = epochs[args.warmup:]
    out = {"command": command_line(), "machine": machine(), "peer": peer_info,
           "peer_missing": None if peer_info else why,
           "config": {"reg": config.reg, "lam": config.lam, "batch_size": config.batch_size,
                      "hidden": list(config.hidden), "tol": config.rtol, "lr": config.lr,
                      "n_train": config.n_train, "warmup": args.warmup, "epochs": args.epochs},
           "epochs": epochs}
    t_o = [r["odejac"]["time"] for r in measured]
    f_o, b_o, fo, bo = _nfe("odejac", measured)
    out["odejac"] = {"median_s_per_epoch": median(t_o), "nfe_forward_per_batch": f_o,
                     "nfe_backward_per_batch": b_o}
    if peer_info:
        t_t = [r["torch"]["time"] for r in measured]
        ratios = [t / o for t, o in zip(t_t, t_o)]
        f_t, b_t, ft, bt = _nfe("torch", measured)
        first_o, first_t = epochs[0]["odejac"]["loss"][0], epochs[0]["torch"]["loss"][0]
        out["torch"] = {"median_s_per_epoch": median(t_t), "nfe_forward_per_batch": f_t,
                        "nfe_backward_per_batch": b_t}
        out["ratio"] = {"median_of_epoch_ratios": median(ratios),
                        "ratio_of_medians": median(t_t) / median(t_o),
                        "q25": float(np.percentile(ratios, 25)),
                        "q75": float(np.percentile(ratios, 75))}
        out["parity"] = {"first_batch_loss_odejac": first_o, "first_batch_loss_torch": first_t,
                         "first_batch_loss_rel_diff": abs(first_o - first_t) / abs(first_t),
                         "same_nfe_forward_fraction": float(np.mean(np.equal(fo, ft))),
                         "same_nfe_backward_fraction": float(np.mean(np.equal(bo, bt)))}
    return out


def report(out):
    c = out["config"]
    m = out["machine"]
    print(f"\nworkload: reg={c['reg']} lam={c['lam']:g} batch={c['batch_size']} "
          f"hidden={c['hidden']} tol={c['tol']:g}; {c['epochs']} epochs measured after "
          f"{c['warmup']} warm-up, alternating")
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['date']}, load {m['load_avg_1min']:.2f}")
    o = out["odejac"]
    print(f"{'':8s} {'s/epoch (median)':>18s} {'NFE fwd/batch':>14s} {'NFE bwd/batch':>14s}")
    print(f"{'odejac':8s} {o['median_s_per_epoch']:18.4f} {o['nfe_forward_per_batch']:14.2f} "
          f"{o['nfe_backward_per_batch']:14.2f}")
    if "torch" not in out:
        print(f"(torchdiffeq not run: {out['peer_missing']})")
        return
    t, r, p = out["torch"], out["ratio"], out["parity"]
    print(f"{'torch':8s} {t['median_s_per_epoch']:18.4f} {t['nfe_forward_per_batch']:14.2f} "
          f"{t['nfe_backward_per_batch']:14.2f}")
    print(f"speed-up torch/odejac: median of epoch ratios {r['median_of_epoch_ratios']:.2f} "
          f"(IQR {r['q25']:.2f}-{r['q75']:.2f}), ratio of medians {r['ratio_of_medians']:.2f}")
    print(f"parity: first-batch loss {p['first_batch_loss_odejac']:.12f} vs "
          f"{p['first_batch_loss_torch']:.12f} (rel {p['first_batch_loss_rel_diff']:.1e}); "
          f"same NFE in {100 * p['same_nfe_forward_fraction']:.0f}% (fwd) / "
          f"{100 * p['same_nfe_backward_fraction']:.0f}% (bwd) of batches")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reg", choices=("none", "condition"), default="none")
    parser.add_argument("--lam", type=float, default=1e-3, help="penalty weight (condition)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--tol", type=float, default=1e-3, help="rtol = atol, both solves")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20, help="measured epochs")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON,
                        help="interpreter with torch + torchdiffeq")
    parser.add_argument("--no-peer", action="store_true", help="time odejac alone")
    parser.add_argument("--json", default=None, help="write the full record here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = run(args)
    out["wall_seconds"] = time.perf_counter() - start
    report(out)
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
