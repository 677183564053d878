"""Every numbered formula of docs/adjoint.md checked against the code (``adjoint_<section>``),
but §6 (discretise-then-optimise), which tests/test_docs_adjoint_discrete.py checks.

Part of the docs-formula checks (see tests/test_docs_dormand_prince.py,
tests/test_docs_adjoint.py with tests/test_docs_adjoint_discrete.py (§6), and
tests/test_docs_regularisers.py with tests/test_docs_regularisers_solver_error.py (§9)):
formulas are written out again here, independently of the code, and compared with what the
code computes.
"""

import numpy as np
import pytest
import scipy.linalg

from odejac import discrete, odeint
from odejac.adjoint import adjoint_solve
from odejac.mlp import MLP
from odejac.model import NeuralODE, _softmax_xent
from reference import docs_fd, docs_with_theta


def _ty(field):
    """The field's ``_f(h, t)`` in the solvers' order ``f(t, y)``."""
    return lambda t, y: field._f(y, t)


def _tya(field):
    """The field's ``_vjp(h, t, a)`` as ``vjp(t, y, a)``."""
    return lambda t, y, a: field._vjp(y, t, a)


def _fv(field):
    """The field's ``_f_and_vjp(h, t, a)`` as ``f_and_vjp(t, y, a)``."""
    return lambda t, y, a: field._f_and_vjp(y, t, a)


FD_STEP = 1e-6


# ============================================================ docs/adjoint.md

def _fd(fun, x, v, step=FD_STEP):
    return docs_fd(fun, x, v, step)


_with_theta = docs_with_theta


def test_adjoint_1_vjps_are_jacobian_transposes():
    """§1 (1.1): vjp_h = aᵀJ, vjp_θ = ∂(Σ a·f)/∂θ, from one forward pass."""
    rng = np.random.default_rng(0)
    field = MLP(3, hidden=(5, 4), time_dependent=True, seed=1)
    h, a = rng.normal(size=(2, 4, 3))
    f, g_h, g_theta = field._f_and_vjp(h, 0.3, a)
    np.testing.assert_array_equal(f, field._f(h, 0.3))
    np.testing.assert_allclose(g_h, np.einsum("bij,bi->bj", field._jacobian(h, 0.3), a),
                               rtol=1e-13, atol=1e-15)
    v = rng.normal(size=field.n_params)
    fd = _fd(lambda th: _with_theta(field, th, lambda: np.sum(a * field._f(h, 0.3))),
             field.theta, v)
    assert g_theta @ v == pytest.approx(fd, rel=1e-8)


def _linear_field(seed=0, dim=3):
    """``f = h W`` (affine MLP with the bias zeroed); returns (field, A = Wᵀ)."""
    field = MLP(dim, hidden=(), seed=seed)
    theta = field.theta
    field.param_views(theta)[0][1][:] = 0.0
    field.theta = theta
    return field, field.layers[0][0].T.copy()


T_LIN = 1.3


def _linear_adjoint(norm="mixed", tol=1e-11):
    rng = np.random.default_rng(5)
    field, Amat = _linear_field()
    h0, cvec = rng.normal(size=(2, 3))
    h1 = scipy.linalg.expm(Amat * T_LIN) @ h0
    adj = adjoint_solve(_fv(field), h1[None], cvec[None], (0.0, T_LIN), param_sizes=[9, 3],
                        rtol=tol, atol=tol, norm=norm)
    return field, Amat, h0, cvec, adj


def test_adjoint_2_linear_field_adjoint_is_a_matrix_exponential():
    """§2 (2.1), (2.3): a(t0) = e^{Aᵀ T} a(t1) for f = hW, A = Wᵀ."""
    _, Amat, _, cvec, adj = _linear_adjoint()
    np.testing.assert_allclose(adj.dL_dh0[0], scipy.linalg.expm(Amat.T * T_LIN) @ cvec,
                               rtol=1e-9)


def _van_loan(X, Y, Z, T):
    """∫_0^T e^{X(T−s)} Y e^{Zs} ds as the upper-right block of one expm (Van Loan, 1978)."""
    n, m = Y.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n], M[:n, n:], M[n:, n:] = X, Y, Z
    return scipy.linalg.expm(M * T)[:n, n:]


@pytest.mark.parametrize("norm", ["mixed", "seminorm", "rms"])
def test_adjoint_2_parameter_integral_van_loan(norm):
    """§2 (2.2)–(2.3): dL/db = ∫ e^{Aᵀs} c ds and dL/dA = ∫ a hᵀ dt, via Van Loan; §3 norms."""
    field, Amat, h0, cvec, adj = _linear_adjoint(norm)
    (gW, gb), = field.param_views(adj.dL_dtheta)
    dL_db = _van_loan(Amat.T, cvec[:, None], np.zeros((1, 1)), T_LIN)[:, 0]
    dL_dA = _van_loan(Amat.T, np.outer(cvec, h0), Amat.T, T_LIN)
    np.testing.assert_allclose(gb, dL_db, rtol=1e-9)
    np.testing.assert_allclose(gW, dL_dA.T, rtol=1e-9, atol=1e-12)   # W = Aᵀ


def _nonlinear_case(seed=2):
    rng = np.random.default_rng(seed)
    field = MLP(3, hidden=(8, 6), time_dependent=True, seed=seed)
    return field, rng.normal(size=(5, 3)), rng.normal(size=(5, 3))


@pytest.mark.parametrize("norm", ["mixed", "seminorm", "rms"])
def test_adjoint_3_augmented_solve_equals_the_integrals(norm):
    """§3 (3.1): the augmented backward solve agrees with the discrete gradient as tol → 0."""
    field, h0, cvec = _nonlinear_case()
    tol = 1e-11
    tape = discrete.forward(_ty(field), h0, (0.0, 1.0), rtol=tol, atol=tol)
    ref = discrete.backprop(tape, _tya(field), cvec, field.n_params)
    adj = adjoint_solve(_fv(field), tape.y1, cvec, (0.0, 1.0), param_sizes=[field.n_params],
                        rtol=tol, atol=tol, norm=norm)
    np.testing.assert_allclose(adj.dL_dtheta, ref.dL_dtheta, rtol=0,
                               atol=1e-8 * np.abs(ref.dL_dtheta).max())
    np.testing.assert_allclose(adj.dL_dh0, ref.dL_dh0, rtol=0, atol=1e-8)


def test_adjoint_4_retraced_state_converges_with_the_tolerance():
    """§4: the backward-retraced h(t0) differs from h0 by ≲ the tolerance, falling with it."""
    field, h0, cvec = _nonlinear_case()
    tols, errors = (1e-3, 1e-6, 1e-9), []
    for tol in tols:
        sol = odeint(lambda t, h: field._f(h, t), h0, (0.0, 1.0), rtol=tol, atol=tol)
        adj = adjoint_solve(_fv(field), sol.y, cvec, (0.0, 1.0), param_sizes=[field.n_params],
                            rtol=tol, atol=tol)
        errors.append(np.abs(adj.h0 - h0).max())
    assert all(e <= 100 * tol for e, tol in zip(errors, tols)), errors
    assert errors[-1] < 1e-3 * errors[0], errors
    # The discrete gradient retraces nothing: its h0 is the true one.
    tape = discrete.forward(_ty(field), h0, (0.0, 1.0), rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(discrete.backprop(tape, _tya(field), cvec, field.n_params).h0,
                                  h0)


def test_adjoint_5_readout_gradient():
    """§5 (5.1): ∂CE/∂ℓ = (softmax − onehot)/N; ∂L/∂W_out = h(t1)ᵀ ∂L/∂ℓ."""
    rng = np.random.default_rng(3)
    logits, y = rng.normal(size=(6, 3)), np.array([0, 1, 2, 2, 1, 0])
    _, grad = _softmax_xent(logits, y)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grad, (p - np.eye(3)[y]) / 6, rtol=1e-12, atol=1e-15)
    model = NeuralODE(2, n_classes=3, hidden=(5,), seed=1)
    X = rng.normal(size=(6, 2))
    for mode in ("adjoint", "discrete"):
        model.gradient = mode
        _, g, _ = model.loss_and_grad(X, y)
        n_field = model.field.n_params
        v = np.zeros(model.n_params)
        v[n_field + 4] = 1.0                  # one entry of W_out: the solve does not move
        fd = _fd(lambda th: _with_model_theta(model, th, X, y), model.theta, v)
        assert g[n_field + 4] == pytest.approx(fd, rel=1e-7)


def _with_model_theta(model, theta, X, y, steps=None):
    saved = model.theta
    model.theta = theta
    try:
        return model.loss(X, y, steps=steps)
    finally:
        model.theta = saved


def test_adjoint_4_reconstruction_error_in_the_stats():
    """§4: loss_and_grad reports max|h̃(t0) − h(t0)|; 0 for the discrete gradient."""
    rng = np.random.default_rng(3)
    model = NeuralODE(2, hidden=(8,), seed=1)
    model.theta = 3.0 * model.theta
    X, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)
    errors = []
    for tol in (1e-3, 1e-7):
        model.rtol = model.atol = model.adjoint_rtol = model.adjoint_atol = tol
        stats = model.loss_and_grad(X, y)[2]
        h1 = model._solve(model.initial_state(X))[0]
        dlogits = _softmax_xent(h1 @ model.W_out + model.b_out, y)[1]
        adj = adjoint_solve(_fv(model.field), h1, dlogits @ model.W_out.T, (0.0, 1.0),
                            param_sizes=model._param_sizes, rtol=tol, atol=tol)
        assert stats["reconstruction_error"] == np.max(np.abs(adj.h0 - model.initial_state(X)))
        errors.append(stats["reconstruction_error"])
    assert 0 < errors[1] < 1e-2 * errors[0]
    model.gradient = "discrete"
    assert model.loss_and_grad(X, y)[2]["reconstruction_error"] == 0.0


def test_adjoint_8_own_field_calling_convention():
    """§8: f(t, y), f_and_vjp(t, y, a); param_sizes optional off "mixed", checked on it."""
    Amat = np.array([[-0.5, 1.0], [-1.0, -0.2]])
    theta = Amat.ravel()
    f = lambda t, y: y @ Amat.T
    f_and_vjp = lambda t, y, a: (y @ Amat.T, a @ Amat, (a.T @ y).ravel())
    y0, c = np.array([[1.0, 0.5]]), np.array([[0.3, -1.0]])
    y1 = odeint(f, y0, (0.0, 1.0), rtol=1e-10, atol=1e-10).y
    adj = adjoint_solve(f_and_vjp, y1, c, (0.0, 1.0), rtol=1e-10, atol=1e-10, norm="rms")
    np.testing.assert_allclose(adj.dL_dh0[0], scipy.linalg.expm(Amat.T) @ c[0], rtol=1e-8)
    assert adj.dL_dtheta.shape == theta.shape
    with pytest.raises(ValueError, match="param_sizes is needed"):
        adjoint_solve(f_and_vjp, y1, c, (0.0, 1.0), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="sum to 3"):
        adjoint_solve(f_and_vjp, y1, c, (0.0, 1.0), param_sizes=[2, 1], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="is t first"):      # (y, t, a) by mistake
        adjoint_solve(lambda y, t, a: f_and_vjp(t, y, a), y1, c, (0.0, 1.0),
                      param_sizes=[4], rtol=1e-6, atol=1e-6)
    tape = discrete.forward(f, y0, (0.0, 1.0), rtol=1e-10, atol=1e-10)
    res = discrete.backprop(tape, lambda t, y, a: f_and_vjp(t, y, a)[1:], c)
    np.testing.assert_allclose(res.dL_dtheta, adj.dL_dtheta, rtol=1e-7)
    with pytest.raises(ValueError, match="n_params"):
        discrete.backprop(tape, lambda t, y, a: f_and_vjp(t, y, a)[1:], c, n_params=3)


def test_adjoint_9_quadrature_is_the_penalty():
    """§9 (9.1): with reg="taynode" the loss is CE + λ ∫ mean_b ‖J f + ∂f/∂t‖² dt."""
    from scipy.integrate import quad, solve_ivp
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(4, 2)), np.arange(4) % 2
    model = NeuralODE(2, augment_dim=1, hidden=(5,), time_dependent=True, reg="taynode",
                      lam=0.3, seed=1, rtol=1e-10, atol=1e-10)
    field, h0 = model.field, model.initial_state(X)
    ref = solve_ivp(lambda t, z: field._f(z.reshape(h0.shape), t).ravel(), (0.0, 1.0),
                    h0.ravel(), rtol=1e-12, atol=1e-12, dense_output=True)

    def mean_r(t):   # ḧ by a central difference in time along the reference solution
        dt = 1e-4
        hdd = (field._f(ref.sol(t + dt).reshape(h0.shape), t + dt)
               - field._f(ref.sol(t - dt).reshape(h0.shape), t - dt)) / (2 * dt)
        return np.mean(np.sum(hdd**2, axis=1))
    integral = quad(mean_r, 0.0, 1.0, epsabs=1e-10)[0]   # dense output extends past the ends
    logits = ref.sol(1.0).reshape(h0.shape) @ model.W_out + model.b_out
    ce = _softmax_xent(logits, y)[0]
    assert model.loss(X, y) == pytest.approx(ce + 0.3 * integral, rel=1e-5)


def test_adjoint_9_taynode_fused_backward_field(monkeypatch):
    """§9 (9.2), (9.3): the backward field's source terms are c ∂Σ_b R_b/∂(h, θ)."""
    from odejac import trajectory
    captured = {}
    monkeypatch.setattr(trajectory, "adjoint_solve",
                        lambda fv, *a, **k: captured.setdefault("fv", fv))
    field, c, t = MLP(3, hidden=(6, 5), time_dependent=True, seed=5), 0.6, 0.35
    rng = np.random.default_rng(12)
    h, a = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    trajectory.backward(field, h, a, "taynode", c, (0.0, 1.0), None, rtol=1e-6, atol=1e-6,
                        controller="torchdiffeq", norm="rms", max_steps=100)
    f, vjp_h, vjp_theta = captured["fv"](t, h, a)
    plain_h, plain_theta = field._vjp(h, t, a)
    np.testing.assert_array_equal(f, field._f(h, t))
    R = lambda th, x: docs_with_theta(field, th, lambda: c * np.sum(
        field._second_derivative(x, t)[1] ** 2))
    d = rng.normal(size=field.n_params)
    assert (vjp_theta - plain_theta) @ d == pytest.approx(
        docs_fd(lambda th: R(th, h), field.theta, d, 1e-6), rel=1e-7)
    d = rng.normal(size=h.shape)
    assert np.sum((vjp_h - plain_h) * d) == pytest.approx(
        docs_fd(lambda x: R(field.theta, x), h, d, 1e-6), rel=1e-7)
