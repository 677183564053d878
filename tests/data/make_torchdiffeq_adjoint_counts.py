"""Regenerate ``tests/data/torchdiffeq_adjoint_counts.json``: torchdiffeq's backward solves.

Like ``make_torchdiffeq_counts.py`` (read its docstring for the peer venv), this is NOT run
by the test-suite; run it by hand in the peer virtual environment, from the repository root::

    /work/venvs/torch/bin/python tests/data/make_torchdiffeq_adjoint_counts.py

(the venv holds torch==2.13.0 (the CPU wheel on local disk), torchdiffeq==0.2.5, numpy,
scipy; never install torch into odejac's environment). ``--check`` compares with the stored
file instead of writing it (exit status 1 on any difference in a count).

What it measures. For each case of :data:`CASES` (an MLP field ``f(h, t)`` with tanh hidden
layers, the layout of ``odejac.mlp.MLP``: layer ``k`` is ``z = x W_k + b_k`` with
``W_k : (n_in, n_out)``, ``x = [h, t]`` when time-dependent) and each backward error norm it
builds the field as a ``torch.nn.Module`` (``nn.Linear`` weight ``= W_kᵀ``) in float64, calls

    y1 = torchdiffeq.odeint_adjoint(field, h0, tensor([t0, t1]), method="dopri5",
                                    rtol=rtol, atol=atol, adjoint_options=OPTIONS[norm])[-1]
    y1.backward(cotangent)

and records the forward end state ``h1`` (the backward solve's starting point), the cotangent
``dL/dh1``, the gradients ``dL/dh0`` and ``dL/dθ`` (odejac's flat layout) and, of the backward
solve only, ``nfe`` (calls of the field during ``backward``), ``n_accepted``/``n_rejected``
(the ``_Recorder`` of ``make_torchdiffeq_counts.py``) and ``first_step``. The norms, as
odejac's ``adjoint_norm`` names them:

* ``"mixed"``: ``adjoint_options=None``, torchdiffeq's default: the max of the RMS norms of
  the state, of the state adjoint and of each parameter tensor (weights and biases apart);
* ``"seminorm"``: ``adjoint_options={"norm": "seminorm"}`` (state and state adjoint only);
* ``"rms"``: a user norm, one RMS over the concatenated state, state adjoint and parameter
  adjoints (torchdiffeq hands a user norm the time adjoint first; it is left out here, and it
  is identically zero anyway because the field's time input is not differentiated).

The test (``tests/test_adjoint_counts.py``) feeds the stored ``h1`` and cotangent to
``odejac.adjoint.adjoint_solve`` with the same θ and compares the counts and gradients.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys

import numpy as np
import torch
import torchdiffeq

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "torchdiffeq_adjoint_counts.json")
NORMS = ("mixed", "seminorm", "rms")

#: name: (batch B, state dim D, hidden widths, time-dependent, weight scale, t_span, seed,
#: [(rtol, atol), ...]). Weights and biases are U(-s/√n_in, s/√n_in); the scale s > 1 makes
#: the dynamics stiff enough for a few dozen steps, rejections included.
CASES = {
    "mlp_small": (8, 2, (16, 16), False, 2.0, (0.0, 1.0), 0, [(1e-3, 1e-3), (1e-5, 1e-7)]),
    "mlp_timedep": (16, 3, (12,), True, 3.0, (0.0, 2.0), 1, [(1e-4, 1e-6)]),
}


def _load_sibling(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def make_theta(D, hidden, time_dependent, scale, seed):
    """Flat θ in odejac's layout (per layer ``W_k.ravel()`` then ``b_k``) and the layers."""
    rng = np.random.default_rng(seed)
    sizes = (D + int(time_dependent), *hidden, D)
    layers, flat = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = scale / np.sqrt(n_in)
        W = rng.uniform(-bound, bound, size=(n_in, n_out))
        b = rng.uniform(-bound, bound, size=n_out)
        layers.append((W, b))
        flat += [W.ravel(), b]
    return np.concatenate(flat), layers


class Field(torch.nn.Module):
    """tanh MLP ``f(h, t)``; counts its calls in ``nfe``."""

    def __init__(self, layers, time_dependent):
        super().__init__()
        self.time_dependent = time_dependent
        self.linears = torch.nn.ModuleList()
        for W, b in layers:
            lin = torch.nn.Linear(W.shape[0], W.shape[1]).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            self.linears.append(lin)
        self.nfe = 0

    def forward(self, t, h):
        self.nfe += 1
        x = h
        if self.time_dependent:
            x = torch.cat([h, t.detach().expand(h.shape[0], 1).to(h.dtype)], dim=1)
        for lin in self.linears[:-1]:
            x = torch.tanh(lin(x))
        return self.linears[-1](x)


def _merged_rms(tensor_tuple):
    """One RMS over [state, state adjoint, parameter adjoints] (the time adjoint left out)."""
    return torch.cat([v.reshape(-1) for v in tensor_tuple[1:]]).pow(2).mean().sqrt()


def adjoint_options(norm):
    return {"mixed": None, "seminorm": {"norm": "seminorm"}, "rms": {"norm": _merged_rms}}[norm]


def run_case(name, rtol, atol, norm, recorder):
    B, D, hidden, td, scale, t_span, seed, _ = CASES[name]
    theta, layers = make_theta(D, hidden, td, scale, seed)
    rng = np.random.default_rng([seed, 1])
    h0 = rng.normal(size=(B, D))
    cotangent = rng.normal(size=(B, D)) / B
    field = Field(layers, td)
    h0_t = torch.tensor(h0, requires_grad=True)
    t = torch.tensor(t_span, dtype=torch.float64)
    y = torchdiffeq.odeint_adjoint(field, h0_t, t, method="dopri5", rtol=rtol, atol=atol,
                                   adjoint_options=adjoint_options(norm))
    h1 = y[-1].detach().numpy().copy()
    field.nfe = 0
    recorder.reset()
    y[-1].backward(torch.from_numpy(cotangent))
    n_acc, n_rej = recorder.n_accepted, recorder.n_rejected
    if field.nfe != 2 + 6 * (n_acc + n_rej):
        raise AssertionError(f"{name} {norm}: nfe={field.nfe}, accepted={n_acc}, rejected={n_rej}")
    grad_theta = np.concatenate([np.concatenate([lin.weight.grad.numpy().T.ravel(),
                                                 lin.bias.grad.numpy()])
                                 for lin in field.linears])
    return {"case": name, "norm": norm, "rtol": rtol, "atol": atol,
            "batch": B, "dim": D, "hidden": list(hidden), "time_dependent": td,
            "t_span": list(t_span), "theta": theta.tolist(), "h0": h0.tolist(),
            "h1": h1.tolist(), "dL_dh1": cotangent.tolist(),
            "nfe": field.nfe, "n_accepted": n_acc, "n_rejected": n_rej,
            "first_step": recorder.first_step,
            "dL_dh0": h0_t.grad.numpy().tolist(), "dL_dtheta": grad_theta.tolist()}


def generate():
    torch.set_num_threads(1)
    recorder_cls = _load_sibling("make_torchdiffeq_counts")._Recorder
    cases = []
    with recorder_cls() as rec:
        for name, spec in CASES.items():
            for rtol, atol in spec[-1]:
                for norm in NORMS:
                    cases.append(run_case(name, rtol, atol, norm, rec))
    header = {
        "description": "torchdiffeq odeint_adjoint(method='dopri5') backward-solve counts; "
                       "regenerate with tests/data/make_torchdiffeq_adjoint_counts.py",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "torchdiffeq": getattr(torchdiffeq, "__version__", "unknown"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "fields": {
            "nfe": "field calls during backward(); == 2 + 6*(n_accepted + n_rejected)",
            "n_accepted, n_rejected, first_step": "of the backward solve (|step|)",
            "h1, dL_dh1": "the backward solve's start: forward end state and cotangent",
            "dL_dh0, dL_dtheta": "torchdiffeq's gradients (theta in odejac's flat layout)",
        },
    }
    return {"header": header, "cases": cases}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=DEFAULT_OUTPUT)
    ap.add_argument("--check", action="store_true",
                    help="compare with the stored file instead of writing it")
    args = ap.parse_args(argv)
    data = generate()
    for c in data["cases"]:
        print(f"{c['case']:12s} {c['norm']:9s} rtol={c['rtol']:<6g} atol={c['atol']:<6g} "
              f"nfe={c['nfe']:4d} acc={c['n_accepted']:3d} rej={c['n_rejected']:3d}")
    if args.check:
        with open(args.output) as fh:
            old = {(c["case"], c["norm"], c["rtol"], c["atol"]): c for c in json.load(fh)["cases"]}
        diffs = [f"{c['case']} {c['norm']} {c['rtol']}: {f} differs"
                 for c in data["cases"] for f in ("nfe", "n_accepted", "n_rejected")
                 if old.get((c["case"], c["norm"], c["rtol"], c["atol"]), {}).get(f) != c[f]]
        print("\n".join(diffs) if diffs else "stored file matches")
        return 1 if diffs else 0
    with open(args.output, "w") as fh:
        json.dump(data, fh)
        fh.write("\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
