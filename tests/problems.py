"""Named ODE test problems shared by the test-suite and the peer-count scripts.

Pure NumPy (SciPy only lazily, for the exact solution of ``"linear"``); this
module must NOT import odejac, because ``tests/data/make_torchdiffeq_counts.py``
loads it by path inside a separate virtual environment that only has torch,
torchdiffeq, numpy and scipy.

Every problem is a :class:`Problem` with

* ``fun(t, y) -> dy/dt`` taking a float ``t`` and a float64 array ``y`` and
  returning a float64 array of ``y``'s shape (``mlp_batch`` has 2-d states of
  shape ``(B, D)``; peers that need 1-d states flatten them);
* ``y0``: float64 array;
* ``t_span = (t0, t1)``, possibly decreasing (``decay_backward``);
* ``exact``: ``None`` or a callable ``exact(t) -> y(t)``.

Any change to a problem (constants, seeds, spans) invalidates
``tests/data/torchdiffeq_counts.json``: regenerate it (see the docstring of
``tests/data/make_torchdiffeq_counts.py``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["Problem", "PROBLEMS", "TOLERANCES"]


class Problem(NamedTuple):
    name: str
    fun: Callable[[float, np.ndarray], np.ndarray]
    y0: np.ndarray
    t_span: Tuple[float, float]
    exact: Optional[Callable[[float], np.ndarray]] = None


# (rtol, atol) pairs, in this order.
TOLERANCES = [(1e-3, 1e-6), (1e-6, 1e-9), (1e-3, 1e-3), (1e-8, 1e-10)]


# --------------------------------------------------------------------------
# Van der Pol, mu = 5: nonlinear and mildly stiff, so both controllers reject
# steps at every tolerance in TOLERANCES.
VDP_MU = 5.0


def _vdp(t, y):
    return np.array([y[1], VDP_MU * (1.0 - y[0] * y[0]) * y[1] - y[0]])


# --------------------------------------------------------------------------
# Lotka-Volterra: x' = a x - b x y,  y' = -c y + d x y.
LV_A, LV_B, LV_C, LV_D = 1.5, 1.0, 3.0, 1.0


def _lotka(t, y):
    x, z = y[0], y[1]
    return np.array([LV_A * x - LV_B * x * z, -LV_C * z + LV_D * x * z])


# --------------------------------------------------------------------------
# Batched tanh MLP vector field, y of shape (B, D) integrated as one system.
MLP_B, MLP_D, MLP_H1, MLP_H2 = 16, 4, 32, 32
MLP_GAIN = 2.0


def _make_mlp():
    rng = np.random.default_rng(0)

    def layer(n_in, n_out):
        w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in) * MLP_GAIN
        b = rng.standard_normal(n_out) * 0.5
        return w, b

    w1, b1 = layer(MLP_D, MLP_H1)
    w2, b2 = layer(MLP_H1, MLP_H2)
    w3, b3 = layer(MLP_H2, MLP_D)
    y0 = rng.standard_normal((MLP_B, MLP_D))
    return (w1, b1, w2, b2, w3, b3), y0


MLP_PARAMS, _MLP_Y0 = _make_mlp()


def _mlp_batch(t, y):
    w1, b1, w2, b2, w3, b3 = MLP_PARAMS
    h = np.tanh(y @ w1 + b1)
    h = np.tanh(h @ w2 + b2)
    return h @ w3 + b3


# --------------------------------------------------------------------------
# Time-dependent 3-d field: y' = -0.5 y + sin(4 t) cos(y) + [t, 0, 0].
def _time_dep(t, y):
    out = -0.5 * y + np.sin(4.0 * t) * np.cos(y)
    out[0] += t
    return out


# --------------------------------------------------------------------------
# Linear system with complex eigenvalues -0.1 +- 2i and -1.
LINEAR_A = np.array([[-0.1, 2.0, 0.0],
                     [-2.0, -0.1, 0.0],
                     [0.0, 0.0, -1.0]])
_LINEAR_Y0 = np.array([1.0, 0.0, 1.0])


def _linear(t, y):
    return LINEAR_A @ y


def _linear_exact(t):
    import scipy.linalg

    return scipy.linalg.expm(LINEAR_A * t) @ _LINEAR_Y0


# --------------------------------------------------------------------------
# Exponential decay integrated backwards in time, from t=2 to t=0.
_DECAY_Y0 = np.array([1.0, 2.0])
_DECAY_T0 = 2.0


def _decay(t, y):
    return -y


def _decay_exact(t):
    return _DECAY_Y0 * np.exp(-(t - _DECAY_T0))


PROBLEMS = {
    p.name: p
    for p in [
        Problem("vdp", _vdp, np.array([2.0, 0.0]), (0.0, 3.0)),
        Problem("lotka", _lotka, np.array([1.0, 1.0]), (0.0, 5.0)),
        Problem("mlp_batch", _mlp_batch, _MLP_Y0, (0.0, 1.0)),
        Problem("time_dep", _time_dep, np.array([1.0, -1.0, 0.5]), (0.0, 4.0)),
        Problem("linear", _linear, _LINEAR_Y0, (0.0, 5.0), _linear_exact),
        Problem("decay_backward", _decay, _DECAY_Y0, (_DECAY_T0, 0.0), _decay_exact),
    ]
}
