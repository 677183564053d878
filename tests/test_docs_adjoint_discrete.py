"""docs/adjoint.md §6, discretise-then-optimise, checked against the code (``adjoint_6``).

Split off ``test_docs_adjoint.py`` (which checks the page's other sections, and whose helpers
these tests share) because §6 is an idea of its own: :mod:`odejac.discrete`'s exact gradient
of the DP5 steps with the step sizes frozen, against finite differences of the replay, the
stability polynomial and the product formulas (6.5)–(6.7). Formulas are written out again
here, independently of the code, and compared with what the code computes.
"""
import math

import numpy as np
import pytest
import scipy.linalg

from odejac import discrete, odeint
from odejac.tableau import DOPRI5
from test_docs_adjoint import _linear_field, _nonlinear_case, _ty, _tya, _with_theta

A, b = DOPRI5.A, DOPRI5.b
CONTROLLERS = ("scipy", "torchdiffeq")


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


def _steps_and_y1(field, h0, theta, tol, controller):
    saved = field.theta
    field.theta = theta
    try:
        sol = odeint(_ty(field), h0, (0.0, 1.0), rtol=tol, atol=tol, controller=controller,
                     record=True)
    finally:
        field.theta = saved
    return sol.log[sol.log[:, 3] == 1, 1], sol.y


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_adjoint_6_step_sizes_move_with_theta(controller):
    """§6: the accepted steps are smooth (not piecewise constant) functions of θ."""
    field, h0, _ = _nonlinear_case()
    field.theta = 3.0 * field.theta
    theta = field.theta
    v = np.random.default_rng(0).normal(size=theta.size)
    v /= np.linalg.norm(v)
    base, _ = _steps_and_y1(field, h0, theta, 1e-3, controller)
    moved = [_steps_and_y1(field, h0, theta + eps * v, 1e-3, controller)[0]
             for eps in (1e-6, 2e-6)]
    assert all(len(m) == len(base) >= 3 for m in moved)      # no accept/reject switch
    d1, d2 = moved[0] - base, moved[1] - base
    assert np.all(np.abs(d1[1:]) > 1e-12)                     # every step after the first moved
    np.testing.assert_allclose(d2[1:], 2 * d1[1:], rtol=1e-3)  # ... linearly in ε: smoothly


@pytest.mark.parametrize("controller", CONTROLLERS)
@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_adjoint_6_discrete_gradient_is_not_the_adaptive_gradient(controller, tol):
    """§6–7: exact with the steps frozen, off by ~tol from FD of the adaptive loss, for any ε."""
    field, h0, cvec = _nonlinear_case()
    field.theta = 3.0 * field.theta
    theta = field.theta
    v = np.random.default_rng(0).normal(size=theta.size)
    v /= np.linalg.norm(v)
    tape = discrete.forward(_ty(field), h0, (0.0, 1.0), rtol=tol, atol=tol,
                            controller=controller)
    g = discrete.backprop(tape, _tya(field), cvec).dL_dtheta @ v
    adaptive = lambda e: np.sum(cvec * _steps_and_y1(field, h0, theta + e * v, tol,
                                                     controller)[1])
    frozen = lambda e: _with_theta(field, theta + e * v, lambda: np.sum(
        cvec * discrete.replay(_ty(field), h0, tape.steps)))
    gaps = []
    for eps in (1e-4, 1e-5):
        gaps.append((adaptive(eps) - adaptive(-eps)) / (2 * eps) - g)
        assert abs((frozen(eps) - frozen(-eps)) / (2 * eps) - g) < 1e-8 * abs(g)
    assert abs(gaps[0]) > 1e-7 * abs(g)     # 10x the frozen check: not the adaptive gradient,
    assert gaps[1] == pytest.approx(gaps[0], rel=1e-2)   # and no artefact of the FD step


def _stage_matrices(Z):
    """Stage states of one DP5 step of y' = Ay as matrices of Z = ΔA: Y_s = S_s(Z) y."""
    D = Z.shape[0]
    S = [np.eye(D)]
    for s in range(1, 7):
        S.append(np.eye(D) + sum(A[s, j] * Z @ S[j] for j in range(s)))
    return S


def _poly(weights, Z):
    """1 + Σ_{k≥1} Z^k wᵀ A_RK^{k−1} 𝟙 (weights b: P of (6.5); c_mid: M)."""
    out = np.eye(Z.shape[0])
    for k in range(1, 8):
        coef = weights @ np.linalg.matrix_power(A, k - 1) @ np.ones(7)
        out = out + coef * np.linalg.matrix_power(Z, k)
    return out


def test_adjoint_6_stability_polynomial_starts_at_one():
    """§6 (6.5): P(z) = 1 + Σ_{k≥1} z^k bᵀA^{k−1}𝟙 — no k = 0 term, A_RK has no inverse."""
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.matrix_power(A, -1)                   # the old "Σ_{k≥0} ... A^{k−1}"
    coeffs = [b @ np.linalg.matrix_power(A, k - 1) @ np.ones(7) for k in range(1, 8)]
    np.testing.assert_allclose(coeffs[:5], [1 / math.factorial(k) for k in range(1, 6)],
                               rtol=1e-14)
    for z in (-0.7, 0.3, 1.1):
        resolvent = 1 + z * b @ np.linalg.solve(np.eye(7) - z * A, np.ones(7))
        series = _poly(b, np.array([[z]]))[0, 0]
        assert series == pytest.approx(resolvent, rel=1e-14)
        # ... and it is the step the solver takes on y' = z y with Δ = 1
        assert _stage_matrices(np.array([[z]]))[6][0, 0] == pytest.approx(series, rel=1e-14)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_adjoint_6_product_formula_scipy_only_dense_output_for_torchdiffeq(controller):
    """§6 (6.6) holds in SciPy mode only; torchdiffeq's overshooting last step needs (6.7)."""
    field, Amat = _linear_field(seed=4)
    rng = np.random.default_rng(2)
    h0, cvec = rng.normal(size=(2, 1, 3))
    tape = discrete.forward(_ty(field), h0, (0.0, 2.0), rtol=1e-5, atol=1e-5,
                            controller=controller)
    res = discrete.backprop(tape, _tya(field), cvec, field.n_params)
    steps = tape.steps
    product = cvec[0]
    for h in steps.h[::-1]:
        product = _poly(b, h * Amat).T @ product          # (6.6)
    if controller == "scipy":
        np.testing.assert_allclose(res.dL_dh0[0], product, rtol=1e-12)
        return
    assert np.abs(res.dL_dh0[0] - product).max() > 1e-6   # (6.6) fails in torchdiffeq mode
    t_last, h_last = steps.t[-1], steps.h[-1]
    step = (t_last + h_last) - t_last
    w = discrete.dense_output_weights((2.0 - t_last) / step)
    Z = step * Amat
    P, M = _poly(b, Z), _poly(DOPRI5.c_mid, Z)
    Q = w["y0"] * np.eye(3) + w["y1"] * P + w["y_mid"] * M + w["f0"] * Z + w["f1"] * Z @ P
    grad = Q.T @ cvec[0]
    for h in steps.h[-2::-1]:
        grad = _poly(b, h * Amat).T @ grad                # (6.7)
    np.testing.assert_allclose(res.dL_dh0[0], grad, rtol=1e-12)
    exact = scipy.linalg.expm(Amat.T * 2.0) @ cvec[0]
    assert 1e-8 < np.abs(grad - exact).max() < 1e-3       # the global error, not round-off
