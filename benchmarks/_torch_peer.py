"""The torchdiffeq side of the benchmarks; runs ONLY in the peer interpreter (torch + torchdiffeq).

Started by ``benchmarks/common.py:Peer``; reads one JSON command per line on stdin and answers
one JSON line on stdout:

* ``hello`` -> versions and thread count;
* ``setup`` -> builds the same model as odejac's (weights copied across, float64): field
  ``D -> hidden (tanh) -> D`` without time input, readout ``D -> C``, Adam;
* ``epoch`` with ``order`` (the batch permutation odejac uses) -> one epoch of
  ``odeint_adjoint(method="dopri5")`` training; wall time of the batch loop (IPC excluded),
  forward/backward NFE and loss per batch;
* ``field_setup`` (dim, hidden, batch, seed) and ``field_time`` (kind ``f`` or ``vjp``,
  ``inner`` calls) -> process CPU seconds per bare evaluation of the field at
  :func:`common.random_field`'s weights and :func:`common.field_inputs`' state: ``f`` under
  ``no_grad`` (as ``odeint_adjoint``'s forward solve runs it), ``vjp`` as its backward solve
  does (``enable_grad``, forward, ``autograd.grad`` w.r.t. the state and every parameter);
  ``gemm`` -> best ``torch.mm`` rate on n × n (scaling.py);
* ``quit``.

Epoch replies carry the process CPU time of the batch loop beside its wall time.

``python _torch_peer.py --memory T --batch-size B`` instead prints the peak-RSS growth of one
forward + adjoint solve on ``[0, T]`` (fresh process per call, like odejac's side).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
import torchdiffeq
from torchdiffeq import odeint_adjoint

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)


class Field(nn.Module):
    """``f(t, h) = net(h)``, counting its evaluations (the adjoint's included)."""

    def __init__(self, layers):
        super().__init__()
        mods = []
        for k, (W, b) in enumerate(layers):
            W = torch.tensor(W, dtype=torch.float64)
            lin = nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                lin.weight.copy_(W)
                lin.bias.copy_(torch.tensor(b, dtype=torch.float64))
            mods.append(lin)
            if k < len(layers) - 1:
                mods.append(nn.Tanh())
        self.net = nn.Sequential(*mods)
        self.nfe = 0

    def forward(self, t, h):
        self.nfe += 1
        return self.net(h)


class Peer:
    def setup(self, msg):
        data = np.load(msg["data"])
        self.X = torch.tensor(data["X"], dtype=torch.float64)
        self.y = torch.tensor(data["y"], dtype=torch.long)
        self.field = Field(msg["layers"])
        W, b = msg["readout"]
        self.readout = nn.Linear(len(W[0]), len(W))
        with torch.no_grad():
            self.readout.weight.copy_(torch.tensor(W))
            self.readout.bias.copy_(torch.tensor(b))
        self.augment_dim = msg["augment_dim"]
        self.batch_size = msg["batch_size"]
        self.reg, self.lam = msg["reg"], msg["lam"]
        self.rtol, self.atol = msg["rtol"], msg["atol"]
        self.t = torch.tensor([0.0, 1.0])
        self.opt = torch.optim.Adam(list(self.field.parameters()) + list(self.readout.parameters()),
                                    lr=msg["lr"])
        n_params = sum(p.numel() for p in self.field.parameters())
        return {"ok": True, "n_params_field": n_params}

    def initial_state(self, x):
        return torch.cat([x, torch.zeros(x.shape[0], self.augment_dim)], dim=1)

    def loss(self, h0, y):
        self.field.nfe = 0
        h1 = odeint_adjoint(self.field, h0, self.t, rtol=self.rtol, atol=self.atol,
                            method="dopri5")[-1]
        nfe_forward = self.field.nfe
        loss = F.cross_entropy(self.readout(h1), y)
        if self.reg == "condition":
            # J(h(t0)) per sample; σ via svdvals; the penalty is λ · mean κ.
            J = torch.func.vmap(torch.func.jacrev(self.field.net))(h0)
            s = torch.linalg.svdvals(J)
            loss = loss + self.lam * (s[:, 0] / s[:, -1]).mean()
        elif self.reg != "none":
            raise ValueError(f"reg {self.reg!r} not supported by the peer")
        return loss, nfe_forward

    def epoch(self, msg):
        order = torch.tensor(msg["order"], dtype=torch.long)
        nfe_f, nfe_b, losses = [], [], []
        start, cpu_start = time.perf_counter(), time.process_time()
        for first in range(0, len(order), self.batch_size):
            idx = order[first:first + self.batch_size]
            loss, nfe_forward = self.loss(self.initial_state(self.X[idx]), self.y[idx])
            self.opt.zero_grad()
            self.field.nfe = 0
            loss.backward()
            self.opt.step()
            nfe_f.append(nfe_forward)
            nfe_b.append(self.field.nfe)
            losses.append(float(loss))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return {"time": elapsed, "cpu": cpu, "nfe_forward": nfe_f, "nfe_backward": nfe_b, "loss": losses}


class Fields:
    """Bare evaluations of the field for ``scaling.py``."""

    def setup(self, msg):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from common import field_inputs, random_field   # numpy only

        field = Field([(W.tolist(), b.tolist())
                       for W, b in random_field(msg["dim"], msg["hidden"], msg["seed"])])
        h, a = (torch.tensor(v) for v in field_inputs(msg["dim"], msg["batch"], msg["seed"]))
        params = tuple(field.parameters())

        def f():
            with torch.no_grad():
                return field.net(h)

        def vjp():
            with torch.enable_grad():
                x = h.detach().requires_grad_(True)
                out = field.net(x)
                return out, torch.autograd.grad(out, (x,) + params, a)

        self.calls = {"f": f, "vjp": vjp}
        return {"ok": True}

    def time(self, msg):
        call, inner = self.calls[msg["kind"]], int(msg["inner"])
        call()
        start = time.process_time()
        for _ in range(inner):
            call()
        return {"cpu": (time.process_time() - start) / inner}


def gemm(n, repeats=15, inner=20):
    """Best one-thread ``torch.mm`` rate on n × n × n (best block of ``inner``), GFLOP/s."""
    P, Q = torch.randn(n, n), torch.randn(n, n)
    torch.mm(P, Q)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            torch.mm(P, Q)
        best = min(best, (time.process_time() - start) / inner)
    return {"gflops": 2.0 * n ** 3 / best / 1e9}


def memory(T, batch_size, hidden, seed=0, adjoint=True):
    """Peak-RSS growth (MiB) of one forward + backward solve on [0, T] in this fresh process.

    ``adjoint=False`` backpropagates through the solver's operations instead (torchdiffeq's
    ``odeint``), the memory-hungry alternative the adjoint avoids.
    """
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import random_field   # numpy only

    D = 4
    field = Field([(W.tolist(), b.tolist()) for W, b in random_field(D, hidden, seed)])
    h0 = torch.tensor(np.random.default_rng(seed + 1).standard_normal((batch_size, D)))
    t = torch.tensor([0.0, float(T)])
    # Warm-up on a short interval so that lazily built state is not counted.
    odeint_adjoint(field, h0, torch.tensor([0.0, 1e-3]), rtol=1e-3, atol=1e-3,
                   method="dopri5")[-1].sum().backward()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    field.nfe = 0
    solver = odeint_adjoint if adjoint else torchdiffeq.odeint
    h1 = solver(field, h0, t, rtol=1e-3, atol=1e-3, method="dopri5")[-1]
    nfe_forward = field.nfe
    field.nfe = 0
    h1.pow(2).sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"T": T, "peak_rss_growth_mib": (peak - base) / 1024, "base_rss_mib": base / 1024,
            "nfe_forward": nfe_forward, "nfe_backward": field.nfe}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--backprop", action="store_true",
                        help="with --memory: backpropagate through odeint instead of the adjoint")
    args = parser.parse_args()
    if args.memory is not None:
        print(json.dumps(memory(args.memory, args.batch_size, args.hidden,
                                adjoint=not args.backprop)))
        return
    peer, fields = Peer(), Fields()
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "hello":
                reply = {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__,
                         "threads": torch.get_num_threads()}
            elif msg["cmd"] == "setup":
                reply = peer.setup(msg)
            elif msg["cmd"] == "epoch":
                reply = peer.epoch(msg)
            elif msg["cmd"] == "field_setup":
                reply = fields.setup(msg)
            elif msg["cmd"] == "field_time":
                reply = fields.time(msg)
            elif msg["cmd"] == "gemm":
                reply = gemm(int(msg.get("n", 256)))
            elif msg["cmd"] == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return
            else:
                reply = {"error": f"unknown command {msg['cmd']!r}"}
        except Exception as exc:  # report to the driver instead of dying silently
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
