"""The adjoint's backward solve takes the same steps as torchdiffeq 0.2.5's ``odeint_adjoint``.

``tests/data/torchdiffeq_adjoint_counts.json`` holds torchdiffeq's backward solves of a few MLP
fields (written by ``tests/data/make_torchdiffeq_adjoint_counts.py`` in the peer venv; torch
is not a dependency of odejac). Each case stores θ, the forward end state ``h1`` and the
cotangent ``dL/dh1``, so odejac's :func:`~odejac.adjoint.adjoint_solve` starts from the very
same point. Gradients agree at tight tolerance whatever norm steers the steps, so only the
counts tell the norms apart: ``"mixed"`` (torchdiffeq's default: max of the RMS norms of h, of
a and of each parameter tensor), ``"seminorm"`` (h and a, each its own RMS) and ``"rms"`` (one
RMS over everything).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from odejac.adjoint import adjoint_solve
from odejac.mlp import MLP

DATA = Path(__file__).parent / "data" / "torchdiffeq_adjoint_counts.json"
CASES = json.loads(DATA.read_text())["cases"]
#: Same steps, same arithmetic up to the order of floating-point sums: the gradients agree to
#: round-off amplified by the solve (measured ≤ 1e-13 relative).
GRAD_RTOL = 1e-9


def _solve(case):
    field = MLP(case["dim"], hidden=case["hidden"], time_dependent=case["time_dependent"])
    field.theta = np.array(case["theta"])
    param_sizes = [v.size for W, b in field.layers for v in (W, b)]
    return adjoint_solve(lambda t, h, a: field._f_and_vjp(h, t, a), np.array(case["h1"]), np.array(case["dL_dh1"]),
                         tuple(case["t_span"]), param_sizes=param_sizes, rtol=case["rtol"],
                         atol=case["atol"], norm=case["norm"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['case']}-{c['norm']}-{c['rtol']:g}")
def test_backward_counts_equal_torchdiffeq(case):
    adj = _solve(case)
    ours = (adj.nfe, adj.n_accepted, adj.n_rejected)
    peer = (case["nfe"], case["n_accepted"], case["n_rejected"])
    assert ours == peer, f"(nfe, accepted, rejected): odejac {ours}, torchdiffeq {peer}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['case']}-{c['norm']}-{c['rtol']:g}")
def test_backward_gradients_equal_torchdiffeq(case):
    adj = _solve(case)
    for ours, name in ((adj.dL_dh0, "dL_dh0"), (adj.dL_dtheta, "dL_dtheta")):
        peer = np.array(case[name])
        err = np.linalg.norm(ours - peer) / np.linalg.norm(peer)
        assert err < GRAD_RTOL, f"{name}: relative difference {err:.1e}"


def test_the_norms_are_told_apart_by_the_stored_cases():
    """Guard on the data: each pair of norms differs in NFE in at least one stored case."""
    nfe = {(c["case"], c["rtol"], c["norm"]): c["nfe"] for c in CASES}
    keys = {(name, rtol) for name, rtol, _ in nfe}
    for a, b in (("mixed", "seminorm"), ("mixed", "rms"), ("seminorm", "rms")):
        assert any(nfe[k + (a,)] != nfe[k + (b,)] for k in keys), (a, b)
