"""Tests for odejac/mlp.py: every analytic derivative against finite differences and against
the slow references in tests/reference.py, plus parameter handling and input validation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from odejac.mlp import MLP
from reference import (mlp_f, mlp_jacobian, mlp_jacobian_vjp, mlp_unpack, mlp_vjp)

FD_STEP = 1e-3        # Richardson-extrapolated central differences: error O(step⁴) + O(eps/step)
FD_TOL = 1e-9         # measured max ≈ 1e-11 (B=3, D=3, hidden (5, 4)); real slips are ≫ 1e-6
REF_TOL = 1e-12       # vectorised vs per-sample reference: only rounding differs
T0 = 0.7              # a non-zero time so the time column matters

CONFIGS = [(act, td) for act in ("tanh", "softplus") for td in (False, True)]
CONFIG_IDS = [f"{act}-{'t' if td else 'not'}" for act, td in CONFIGS]


def rel_err(got, want):
    return np.linalg.norm(np.ravel(got - want)) / max(np.linalg.norm(np.ravel(want)), 1e-300)


def fd_derivative(fun, x):
    """``∂fun/∂x`` with shape ``x.shape + fun(x).shape`` by Richardson-extrapolated central FD."""
    x = np.asarray(x, dtype=float)
    out = []
    for idx in np.ndindex(x.shape):
        step = FD_STEP * max(1.0, abs(x[idx]))

        def central(hh):
            xp, xm = x.copy(), x.copy()
            xp[idx] += hh
            xm[idx] -= hh
            return (np.asarray(fun(xp)) - np.asarray(fun(xm))) / (2 * hh)

        out.append((4 * central(step / 2) - central(step)) / 3)
    return np.array(out).reshape(x.shape + np.shape(fun(x)))


def with_theta(model, theta, fun):
    """Evaluate ``fun()`` with ``model.theta = theta``, restoring the old parameters after."""
    old = model.theta
    model.theta = theta
    try:
        return fun()
    finally:
        model.theta = old


@pytest.fixture(params=CONFIGS, ids=CONFIG_IDS)
def small(request):
    act, td = request.param
    rng = np.random.default_rng(1)
    model = MLP(3, hidden=(5, 4), activation=act, time_dependent=td, seed=3)
    B, D = 3, 3
    return (model, rng.normal(size=(B, D)), rng.normal(size=(B, D)),
            rng.normal(size=(B, D, D)))


# ------------------------------------------------------------------ finite differences
def test_jacobian_fd(small):
    model, h, _, _ = small
    J = model.jacobian(h, T0)
    # d f[b, i] / d h[c, j]: keep the diagonal c == b
    full = fd_derivative(lambda x: model.f(x, T0), h)          # (B, D, B, D)
    fd = np.array([full[b, :, b, :].T for b in range(h.shape[0])])
    err = rel_err(J, fd)
    assert err < FD_TOL, f"jacobian vs FD: rel err {err:.2e}"


def test_vjp_fd(small):
    model, h, a, _ = small
    g_h, g_theta = model.vjp(h, T0, a)
    fd_h = fd_derivative(lambda x: np.sum(a * model.f(x, T0)), h)
    fd_theta = fd_derivative(
        lambda th: with_theta(model, th, lambda: np.sum(a * model.f(h, T0))), model.theta)
    err_h, err_theta = rel_err(g_h, fd_h), rel_err(g_theta, fd_theta)
    assert err_h < FD_TOL, f"vjp_h vs FD: rel err {err_h:.2e}"
    assert err_theta < FD_TOL, f"vjp_theta vs FD: rel err {err_theta:.2e}"


def test_f_and_vjp_fd_and_consistency(small):
    model, h, a, _ = small
    f, g_h, g_theta = model.f_and_vjp(h, T0, a)
    np.testing.assert_array_equal(f, model.f(h, T0))
    vh, vth = model.vjp(h, T0, a)
    np.testing.assert_array_equal(g_h, vh)
    np.testing.assert_array_equal(g_theta, vth)
    fd_h = fd_derivative(lambda x: np.sum(a * model.f(x, T0)), h)
    fd_theta = fd_derivative(
        lambda th: with_theta(model, th, lambda: np.sum(a * model.f(h, T0))), model.theta)
    err_h, err_theta = rel_err(g_h, fd_h), rel_err(g_theta, fd_theta)
    assert err_h < FD_TOL, f"f_and_vjp h-part vs FD: rel err {err_h:.2e}"
    assert err_theta < FD_TOL, f"f_and_vjp theta-part vs FD: rel err {err_theta:.2e}"


def test_jvp_fd(small):
    model, h, v, _ = small
    fd = fd_derivative(lambda eps: model.f(h + eps[0] * v, T0), np.zeros(1))[0]
    err = rel_err(model.jvp(h, T0, v), fd)
    assert err < FD_TOL, f"jvp vs FD: rel err {err:.2e}"


def test_jacobian_vjp_fd(small):
    model, h, _, G = small
    g_theta, g_h = model.jacobian_vjp(h, T0, G)
    fd_h = fd_derivative(lambda x: np.sum(G * model.jacobian(x, T0)), h)
    fd_theta = fd_derivative(
        lambda th: with_theta(model, th, lambda: np.sum(G * model.jacobian(h, T0))), model.theta)
    err_h, err_theta = rel_err(g_h, fd_h), rel_err(g_theta, fd_theta)
    assert err_h < FD_TOL, f"jacobian_vjp g_h vs FD: rel err {err_h:.2e}"
    assert err_theta < FD_TOL, f"jacobian_vjp g_theta vs FD: rel err {err_theta:.2e}"


# ------------------------------------------------------------------ slow references
@pytest.fixture(params=CONFIGS, ids=CONFIG_IDS)
def default(request):
    act, td = request.param
    rng = np.random.default_rng(2)
    model = MLP(4, activation=act, time_dependent=td, seed=5)
    B, D = 5, 4
    return (model, rng.normal(size=(B, D)), rng.normal(size=(B, D)),
            rng.normal(size=(B, D, D)))


def test_first_order_against_reference(default):
    model, h, a, _ = default
    checks = {"f": (model.f(h, T0), mlp_f(model, h, T0))}
    J_ref = mlp_jacobian(model, h, T0)
    checks["jacobian"] = (model.jacobian(h, T0), J_ref)
    checks["jvp"] = (model.jvp(h, T0, a), np.einsum("bij,bj->bi", J_ref, a))
    ref_h, ref_theta = mlp_vjp(model, h, T0, a)
    f, g_h, g_theta = model.f_and_vjp(h, T0, a)
    checks["vjp_h"] = (g_h, ref_h)
    checks["vjp_theta"] = (g_theta, ref_theta)
    for name, (got, want) in checks.items():
        err = rel_err(got, want)
        assert err < REF_TOL, f"{name} vs reference: rel err {err:.2e}"


def test_jacobian_vjp_against_complex_step_reference(default):
    model, h, _, G = default
    g_theta, g_h = model.jacobian_vjp(h[:3], T0, G[:3])
    ref_theta, ref_h = mlp_jacobian_vjp(model, h[:3], T0, G[:3])
    err_theta, err_h = rel_err(g_theta, ref_theta), rel_err(g_h, ref_h)
    assert err_theta < REF_TOL, f"jacobian_vjp g_theta vs complex step: rel err {err_theta:.2e}"
    assert err_h < REF_TOL, f"jacobian_vjp g_h vs complex step: rel err {err_h:.2e}"


@settings(max_examples=30, deadline=None)
@given(dim=st.integers(1, 4), hidden=st.lists(st.integers(1, 6), max_size=3),
       act=st.sampled_from(["tanh", "softplus"]), td=st.booleans(),
       batch=st.integers(1, 4), seed=st.integers(0, 2**16), t=st.floats(-3, 3))
def test_derivative_identities_any_shape(dim, hidden, act, td, batch, seed, t):
    """``jvp = J v``, ``vjp_h = Jᵀ a`` and ``jacobian_vjp`` agrees with the Jacobian's FD."""
    model = MLP(dim, hidden=hidden, activation=act, time_dependent=td, seed=seed)
    rng = np.random.default_rng(seed)
    h, v = rng.normal(size=(2, batch, dim))
    J = model.jacobian(h, t)
    assert J.shape == (batch, dim, dim)
    np.testing.assert_allclose(model.jvp(h, t, v), np.einsum("bij,bj->bi", J, v),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.vjp(h, t, v)[0], np.einsum("bij,bi->bj", J, v),
                               rtol=1e-12, atol=1e-13)
    G = rng.normal(size=(batch, dim, dim))
    _, g_h = model.jacobian_vjp(h, t, G)
    fd_h = fd_derivative(lambda x: np.sum(G * model.jacobian(x, t)), h)
    assert rel_err(g_h, fd_h) < FD_TOL or np.abs(g_h - fd_h).max() < 1e-10


# ------------------------------------------------------------------ special cases
def test_affine_field_without_hidden_layers():
    model = MLP(3, hidden=(), time_dependent=True)
    W, b = model.layers[0]
    h = np.random.default_rng(0).normal(size=(2, 3))
    np.testing.assert_allclose(model.f(h, T0), h @ W[:3] + T0 * W[3] + b, rtol=1e-14)
    np.testing.assert_array_equal(model.jacobian(h, T0), np.broadcast_to(W[:3].T, (2, 3, 3)))
    g_theta, g_h = model.jacobian_vjp(h, T0, np.ones((2, 3, 3)))
    assert not g_h.any()
    np.testing.assert_array_equal(model.param_views(g_theta)[0][0][:3], 2.0)
    a = np.random.default_rng(1).normal(size=(2, 3))
    for got, want in zip(model.vjp(h, T0, a), mlp_vjp(model, h, T0, a)):
        assert rel_err(got, want) < REF_TOL


def test_softplus_is_stable_for_large_inputs():
    model = MLP(2, hidden=(3,), activation="softplus")
    h = np.array([[1e4, -1e4], [-800.0, 800.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        outs = [model.f(h), model.jacobian(h), *model.jacobian_vjp(h, 0.0, np.ones((2, 2, 2)))]
    assert all(np.isfinite(o).all() for o in outs)


@pytest.mark.nojit
def test_single_state_drops_batch_axis():
    model = MLP(3, hidden=(4,), time_dependent=True)
    rng = np.random.default_rng(0)
    h, a, G = rng.normal(size=3), rng.normal(size=3), rng.normal(size=(3, 3))
    assert model.f(h, T0).shape == (3,)
    np.testing.assert_array_equal(model.f(h, T0), model.f(h[None], T0)[0])
    np.testing.assert_array_equal(model.jacobian(h, T0), model.jacobian(h[None], T0)[0])
    np.testing.assert_array_equal(model.jvp(h, T0, a), model.jvp(h[None], T0, a[None])[0])
    f, g_h, g_theta = model.f_and_vjp(h, T0, a)
    assert f.shape == g_h.shape == (3,) and g_theta.shape == (model.n_params,)
    gt, gh = model.jacobian_vjp(h, T0, G)
    assert gh.shape == (3,) and gt.shape == (model.n_params,)


# ------------------------------------------------------------------ parameters
@pytest.mark.nojit
def test_theta_round_trip_and_views():
    model = MLP(3, hidden=(5, 4), time_dependent=True)
    assert model.n_params == (4 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
    new = np.arange(model.n_params, dtype=float) / 100
    model.theta = new
    np.testing.assert_array_equal(model.theta, new)
    for (W, b), (W_ref, b_ref) in zip(model.layers, mlp_unpack(model, new)):
        np.testing.assert_array_equal(W, W_ref)
        np.testing.assert_array_equal(b, b_ref)
    got = model.theta
    got[0] = 123.0                                  # reading gives a copy
    assert model.theta[0] == new[0]
    model.theta -= 1.0                              # in-place arithmetic goes via the setter
    np.testing.assert_allclose(model.layers[0][1], mlp_unpack(model, new)[0][1] - 1.0)
    with pytest.raises(ValueError):
        model.layers[0][0][0, 0] = 1.0              # views are read-only


@pytest.mark.nojit
def test_init_like_torch_linear_and_seeded():
    a, b = MLP(4, seed=7), MLP(4, seed=7)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, MLP(4, seed=8).theta)
    for (W, bias), n_in in zip(a.layers, a.sizes[:-1]):
        bound = 1 / np.sqrt(n_in)
        assert np.abs(W).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(W).max() > 0.8 * bound        # actually spread over the interval
    rng = np.random.default_rng(7)                   # documented draw order: W then b per layer
    W0 = rng.uniform(-0.5, 0.5, size=(4, 32))
    np.testing.assert_array_equal(a.layers[0][0], W0)
    np.testing.assert_array_equal(a.layers[0][1], rng.uniform(-0.5, 0.5, size=32))


@pytest.mark.nojit
@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=0), "dim"), (dict(dim=2.5), "dim"), (dict(dim=2, hidden=(3, 0)), "hidden"),
    (dict(dim=2, hidden=(3.5,)), "hidden"), (dict(dim=2, activation="relu"), "tanh"),
    (dict(dim=2, seed=-1), "seed"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


@pytest.mark.nojit
def test_bad_inputs_raise_with_context():
    model = MLP(4, hidden=(3,))
    h = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"h has shape \(3, 5\); expected \(B, 4\)"):
        model.f(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="h has shape"):
        model.f(np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="h contains non-finite"):
        model.f(np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="real numeric"):
        model.f(h.astype(complex))
    for bad_t in (np.inf, np.nan, [0.0, 1.0], "1"):
        with pytest.raises(ValueError, match="t must be"):
            model.f(h, bad_t)
    with pytest.raises(ValueError, match=r"a has shape \(2, 3\); expected \(2, 4\)"):
        model.vjp(h, 0.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="a contains non-finite"):
        model.f_and_vjp(h, 0.0, np.full((2, 4), np.inf))
    with pytest.raises(ValueError, match="v has shape"):
        model.jvp(h, 0.0, np.zeros(4))
    with pytest.raises(ValueError, match=r"G has shape \(2, 4\); expected \(2, 4, 4\)"):
        model.jacobian_vjp(h, 0.0, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=rf"theta has shape \(3,\); expected \({model.n_params},\)"):
        model.theta = np.zeros(3)
    with pytest.raises(ValueError, match="theta contains non-finite"):
        model.theta = np.full(model.n_params, np.nan)


@pytest.mark.nojit
def test_pickled_mlp_stays_trainable():
    """After a pickle round trip, assigning theta still changes f (views are rebuilt)."""
    import pickle

    mlp = MLP(3, hidden=(5, 4), seed=0)
    twin = pickle.loads(pickle.dumps(mlp))
    h = np.random.default_rng(0).normal(size=(2, 3))
    np.testing.assert_array_equal(twin.f(h), mlp.f(h))
    twin.theta = twin.theta * 0.5
    assert not np.allclose(twin.f(h), mlp.f(h))
    assert np.shares_memory(twin.layers[0][0], twin._theta)
