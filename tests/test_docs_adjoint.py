"""Every numbered formula of docs/adjoint.md checked against the code (``adjoint_<section>``).

Part of the docs-formula checks (see tests/test_docs_dormand_prince.py,
tests/test_docs_adjoint.py, tests/test_docs_regularisers.py): formulas are written
out again here, independently of the code, and compared with what the code computes.
"""
import math

import numpy as np
import pytest
import scipy.linalg

from odejac import discrete, odeint
from odejac.adjoint import adjoint_solve
from odejac.mlp import MLP
from odejac.model import NeuralODE, _softmax_xent
from odejac.tableau import DOPRI5
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


A, b, c = DOPRI5.A, DOPRI5.b, DOPRI5.c
CONTROLLERS = ("scipy", "torchdiffeq")
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


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_adjoint_6_reverse_sweep_matches_frozen_finite_differences(controller):
    """§6 (6.1)–(6.4): backprop through the frozen steps = FD of the replay, to round-off."""
    field, h0, cvec = _nonlinear_case(4)
    field.theta = 3.0 * field.theta                      # a stiffer field: more steps
    tape = discrete.forward(_ty(field), h0, (0.0, 1.0), rtol=1e-6, atol=1e-6,
                            controller=controller)
    assert len(tape.steps) >= 5 and tape.n_rejected >= 1
    res = discrete.backprop(tape, _tya(field), cvec, field.n_params)
    assert res.nfe == 6 * len(tape.steps) + 1
    loss = lambda th: _with_theta(field, th, lambda: np.sum(
        cvec * discrete.replay(_ty(field), h0, tape.steps)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.normal(size=field.n_params)
        v /= np.linalg.norm(v)
        fd = sum(w * loss(field.theta + k * 1e-3 * v)
                 for k, w in ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))) / 1e-3
        assert res.dL_dtheta @ v == pytest.approx(fd, rel=1e-8)


def test_adjoint_6_dense_output_reverse():
    """§6 (6.4): for a linear field y(t1) = M y0 exactly; the sweep must return Mᵀ c."""
    field, _ = _linear_field(seed=3, dim=4)
    rng = np.random.default_rng(1)
    h0, cvec = rng.normal(size=(2, 1, 4))
    tape = discrete.forward(_ty(field), h0, (0.0, 1.0), rtol=1e-4, atol=1e-4)
    last = tape.steps
    assert last.t[-1] + last.h[-1] > 1.0                   # the dense output is used
    M = np.column_stack([discrete.replay(_ty(field), e[None], tape.steps)[0]
                         for e in np.eye(4)])
    res = discrete.backprop(tape, _tya(field), cvec, field.n_params)
    np.testing.assert_allclose(res.dL_dh0[0], M.T @ cvec[0], rtol=1e-13, atol=1e-15)


def test_adjoint_6_linear_discrete_gradient_is_the_stability_polynomial():
    """§6 (6.5): dL/dy0 = P(h_0 A)ᵀ ⋯ P(h_{N−1} A)ᵀ c, P(z) = Σ_k z^k bᵀA_RK^{k−1}𝟙."""
    beta = [1.0] + [b @ np.linalg.matrix_power(A, k - 1) @ np.ones(7) for k in range(1, 8)]
    np.testing.assert_allclose(beta[:6], [1 / math.factorial(k) for k in range(6)], rtol=1e-14)
    field, Amat = _linear_field(seed=4)
    rng = np.random.default_rng(2)
    h0, cvec = rng.normal(size=(2, 1, 3))
    tape = discrete.forward(_ty(field), h0, (0.0, 2.0), rtol=1e-5, atol=1e-5, controller="scipy")
    grad = cvec[0]
    for h in tape.steps.h[::-1]:
        P = sum(beta[k] * np.linalg.matrix_power(h * Amat, k) for k in range(8))
        grad = P.T @ grad
    res = discrete.backprop(tape, _tya(field), cvec, field.n_params)
    np.testing.assert_allclose(res.dL_dh0[0], grad, rtol=1e-12)
    exact = scipy.linalg.expm(Amat.T * 2.0) @ cvec[0]
    assert 1e-8 < np.abs(grad - exact).max() < 1e-3          # the global error, not round-off


