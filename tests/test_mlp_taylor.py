"""Tests for odejac/_mlp_taylor.py (TayNODE's second-order terms): ``ḟ = J v + ∂f/∂t`` and the
VJP of ``Σ_b w_bᵀ ḟ_b`` against central finite differences in float64."""
import numpy as np
import pytest

from odejac.mlp import MLP
from test_mlp import CONFIGS, CONFIG_IDS, FD_TOL, T0, fd_derivative, rel_err, with_theta


@pytest.fixture(params=CONFIGS + [("tanh-affine", True)], ids=CONFIG_IDS + ["affine-t"])
def case(request):
    act, td = request.param
    hidden = () if act == "tanh-affine" else (5, 4)
    model = MLP(3, hidden=hidden, activation=act.split("-")[0], time_dependent=td, seed=3)
    rng = np.random.default_rng(2)
    return model, rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3))


def _fdot(model, h, t, v):
    """``J v + ∂f/∂t`` from the VJP's own tangent sweep (checked against FD below)."""
    return model._tangent_sweep(h, t, v)[5][-1].T


def test_second_derivative_is_the_derivative_along_the_flow(case):
    model, h, _, _ = case
    f, hdd = model.second_derivative(h, T0)
    # The fused tanh kernel and the NumPy sweep agree to round-off, not bit for bit.
    np.testing.assert_allclose(f, model.f(h, T0), rtol=1e-13, atol=1e-16)
    dt = 1.0 if model.time_dependent else 0.0   # the time input moves with the flow
    fd = fd_derivative(lambda e: model.f(h + e[0] * f, T0 + e[0] * dt), np.zeros(1))[0]
    assert rel_err(hdd, fd) < FD_TOL
    # Autonomous field: J f exactly the existing jvp (no ∂f/∂t term).
    if not model.time_dependent:
        np.testing.assert_allclose(hdd, model.jvp(h, T0, f), rtol=1e-13, atol=1e-15)


def test_tangent_vjp_fd(case):
    model, h, v, w = case
    g_theta, g_h, jt_w = model.tangent_vjp(h, T0, v, w)

    def phi(hh, vv):
        return np.sum(w * _fdot(model, hh, T0, vv))
    fd_h = fd_derivative(lambda x: phi(x, v), h)
    fd_v = fd_derivative(lambda x: phi(h, x), v)
    fd_theta = fd_derivative(lambda th: with_theta(model, th, lambda: phi(h, v)), model.theta)
    for name, got, want in (("g_h", g_h, fd_h), ("jt_w", jt_w, fd_v), ("g_theta", g_theta, fd_theta)):
        err = rel_err(got, want)
        if np.linalg.norm(want) == 0.0:              # affine field: ∂φ/∂h is exactly zero
            assert np.all(got == 0.0), name
        else:
            assert err < FD_TOL, f"tangent_vjp {name} vs FD: rel err {err:.2e}"


def test_single_state_and_bad_shapes():
    model = MLP(2, hidden=(4,), seed=0)
    h, v, w = np.array([0.1, -0.2]), np.array([1.0, 0.5]), np.array([0.3, 0.7])
    g_theta, g_h, jt_w = model.tangent_vjp(h, 0.0, v, w)
    G_theta, G_h, Jt_w = model.tangent_vjp(h[None], 0.0, v[None], w[None])
    np.testing.assert_array_equal(g_theta, G_theta)
    np.testing.assert_array_equal(g_h, G_h[0])
    assert model.second_derivative(h)[1].shape == (2,)
    with pytest.raises(ValueError, match="w has shape"):
        model.tangent_vjp(h, 0.0, v, np.ones(3))
    with pytest.raises(ValueError, match="finite|NaN|nan"):
        model.tangent_vjp(h, 0.0, np.array([np.nan, 0.0]), w)
