#!/usr/bin/env python
"""Scaling: seconds per epoch against batch size and hidden width, odejac vs torchdiffeq;
peak memory of one forward + adjoint solve for T = 1, 10, 100.

* Batch size 32 ... 4096 on 4096 two-moons points (so every size is one epoch of the same
  data), hidden (32, 32); hidden width 16 ... 256 (two layers) at batch 256 on the 1000 points
  of the reference workload. Each configuration starts from the same seed on both sides,
  runs ``--warmup`` epochs, then ``--epochs`` measured epochs, alternating odejac and torch
  epoch by epoch; the medians and the median of the per-epoch ratios are recorded.
* Memory: each point in a FRESH process (odejac here, torch through the peer interpreter):
  peak-RSS growth over a warmed-up baseline during one forward + adjoint solve of a random
  field (the same weights on both sides) on [0, T], 256 samples. torchdiffeq's plain ``odeint``
  (backprop through the solver) is recorded beside it: that memory grows with the steps.

Results go to ``--json`` (default ``benchmarks/results/scaling.json``) and the figure is drawn
from that file only (``--plot-from FILE`` redraws it without measuring).

    python benchmarks/scaling.py                 # ~3-5 min on 2 shared cores
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

from common import (DEFAULT_PEER_PYTHON, HERE, Peer, command_line, machine, median,
                    peek_permutation, random_field, save_json)

from odejac.train import TrainConfig, _epoch, load_data, new_state

BATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (16, 32, 64, 128, 256)
HORIZONS = (1.0, 10.0, 100.0)
RESULTS = os.path.join(HERE, "results")


def epoch_times(config, peer, warmup, epochs):
    """Alternate odejac and torch epochs from the same start; return the measured records."""
    data = load_data(config)
    X, y = data.X_train, data.y_train
    state = new_state(config, X.shape[1], data.n_classes)
    if peer is not None:
        peer.setup(state.model, X, y, batch_size=config.batch_size, lr=config.lr,
                   reg=config.reg, lam=config.lam, rtol=config.rtol, atol=config.atol)
    rows = []
    for e in range(warmup + epochs):
        order = peek_permutation(state.rng, len(X))
        row = {}
        for side in (("odejac", "torch") if e % 2 == 0 else ("torch", "odejac")):
            if side == "odejac":
                rec = _epoch(state, config, X, y)
                state.history.append(rec)
                row["odejac"] = rec["time"]
                row["nfe_odejac"] = (rec["nfe_forward"], rec["nfe_backward"])
            elif peer is not None:
                rep = peer.call({"cmd": "epoch", "order": order.tolist()})
                row["torch"] = rep["time"]
                row["nfe_torch"] = (float(np.mean(rep["nfe_forward"])),
                                    float(np.mean(rep["nfe_backward"])))
        if e >= warmup:
            rows.append(row)
    out = {"odejac_s": median([r["odejac"] for r in rows]),
           "nfe_odejac": np.mean([r["nfe_odejac"] for r in rows], axis=0).tolist()}
    if peer is not None:
        out.update(torch_s=median([r["torch"] for r in rows]),
                   ratio=median([r["torch"] / r["odejac"] for r in rows]),
                   nfe_torch=np.mean([r["nfe_torch"] for r in rows], axis=0).tolist())
    return out


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


def measure(args):
    peer, why = (None, "--no-peer given") if args.no_peer else Peer.start(args.peer_python)
    if peer is None:
        print(f"torchdiffeq not available ({why}): timing odejac alone")
    out = {"command": command_line(), "machine": machine(),
           "peer": peer.info if peer else None, "peer_missing": why,
           "warmup": args.warmup, "epochs": args.epochs, "batch": [], "width": []}
    batch_sizes = BATCH_SIZES[::3] if args.quick else BATCH_SIZES
    widths = WIDTHS[::2] if args.quick else WIDTHS
    for bs in batch_sizes:
        config = TrainConfig(batch_size=bs, n_train=max(BATCH_SIZES))
        row = {"batch_size": bs, **epoch_times(config, peer, args.warmup, args.epochs)}
        out["batch"].append(row)
        print(f"batch {bs:5d}: {_line(row)}", flush=True)
    for width in widths:
        config = TrainConfig(hidden=(width, width))
        row = {"width": width, **epoch_times(config, peer, args.warmup, args.epochs)}
        out["width"].append(row)
        print(f"width {width:5d}: {_line(row)}", flush=True)
    if peer is not None:
        peer.close()
    out["memory"] = memory(args, peer is not None)
    for row in out["memory"]:
        line = (f"T = {row['T']:5g}: odejac +{row['odejac']['peak_rss_growth_mib']:.2f} MiB "
                f"(NFE {row['odejac']['nfe_forward']}/{row['odejac']['nfe_backward']})")
        if "torch_adjoint" in row:
            line += (f"; torch adjoint +{row['torch_adjoint']['peak_rss_growth_mib']:.2f} MiB "
                     f"(NFE {row['torch_adjoint']['nfe_forward']}/"
                     f"{row['torch_adjoint']['nfe_backward']}), torch backprop "
                     f"+{row['torch_backprop']['peak_rss_growth_mib']:.2f} MiB")
        print(line, flush=True)
    return out


def _line(row):
    text = f"odejac {row['odejac_s']:.4f} s/epoch (NFE {row['nfe_odejac'][0]:.1f}/{row['nfe_odejac'][1]:.1f})"
    if "torch_s" in row:
        text += f"  torch {row['torch_s']:.4f}  ratio {row['ratio']:.2f}"
    return text


def plot(path, png):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as fh:
        res = json.load(fh)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, key, label in ((axes[0], "batch", "batch_size"), (axes[1], "width", "width")):
        rows = res[key]
        x = [r[label] for r in rows]
        ax.loglog(x, [r["odejac_s"] for r in rows], "o-", label="odejac")
        if rows and "torch_s" in rows[0]:
            ax.loglog(x, [r["torch_s"] for r in rows], "s-", label="torchdiffeq")
            for xi, r in zip(x, rows):
                ax.annotate(f"{r['ratio']:.1f}×", (xi, r["odejac_s"]), textcoords="offset points",
                            xytext=(0, -12), ha="center", fontsize=7)
        ax.set_xlabel("batch size (4096 points per epoch)" if key == "batch"
                      else "hidden width (2 layers; batch 256, 1000 points)")
        ax.set_ylabel("seconds per epoch (median)")
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in x], fontsize=7)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    ax = axes[2]
    T = [r["T"] for r in res["memory"]]
    ax.semilogx(T, [r["odejac"]["peak_rss_growth_mib"] for r in res["memory"]], "o-",
                label="odejac adjoint")
    if res["memory"] and "torch_adjoint" in res["memory"][0]:
        ax.semilogx(T, [r["torch_adjoint"]["peak_rss_growth_mib"] for r in res["memory"]], "s-",
                    label="torchdiffeq odeint_adjoint")
        ax.semilogx(T, [r["torch_backprop"]["peak_rss_growth_mib"] for r in res["memory"]], "^--",
                    label="torchdiffeq odeint (backprop)")
    ax.set_xlabel("T (integration interval [0, T])")
    ax.set_ylabel("peak RSS growth, MiB")
    ax.set_title("one forward + backward solve, batch 256 (fresh process each;\n"
                 "growth over a warmed-up baseline: 0 = nothing kept per step)", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    m = res["machine"]
    fig.suptitle(f"{m['nproc']} × {m['cpu']}, {m['date']}; medians of {res['epochs']} epochs, "
                 f"alternating", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"figure: {png}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer sizes (smoke run)")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--json", default=os.path.join(RESULTS, "scaling.json"))
    parser.add_argument("--png", default=os.path.join(RESULTS, "scaling.png"))
    parser.add_argument("--plot-from", default=None, help="redraw the figure from this JSON")
    parser.add_argument("--memory-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, 256, (32, 32))))
        return
    if args.plot_from:
        plot(args.plot_from, args.png)
        return
    start = time.perf_counter()
    out = measure(args)
    out["wall_seconds"] = time.perf_counter() - start
    save_json(args.json, out)
    plot(args.json, args.png)


if __name__ == "__main__":
    main()
