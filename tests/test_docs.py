"""Every numbered formula of ``docs/`` checked against the code, section by section.

Test names start with the page (``dp_`` = docs/dormand_prince.md, ``adjoint_`` =
docs/adjoint.md, ``reg_`` = docs/regularisers.md) and the section number; each docstring
quotes the equation numbers it checks. Formulas are written out again here, independently of
the code, and compared with what the code computes.
"""
import math

import numpy as np
import pytest
import scipy.linalg

from odejac import _dp5, discrete, odeint
from odejac.adjoint import adjoint_solve
from odejac.discrete import StepSequence
from odejac.mlp import MLP
from odejac.model import NeuralODE, _softmax_xent
from odejac.regularisers import (DEFAULT_COND_EPS, PENALTIES, condition, frobenius,
                                 log_condition, spectral)
from odejac.tableau import DOPRI5
from problems import PROBLEMS

A, b, c = DOPRI5.A, DOPRI5.b, DOPRI5.c
CONTROLLERS = ("scipy", "torchdiffeq")
FD_STEP = 1e-6


def _rms(x):
    return math.sqrt(np.mean(np.square(x)))


def _vdp_log(controller, rtol=1e-6, atol=1e-9):
    p = PROBLEMS["vdp"]
    return p, odeint(p.fun, p.y0, p.t_span, rtol=rtol, atol=atol, controller=controller,
                     record=True)


def _textbook_dense_output(y0, y1, y_mid, f0, f1, h, x):
    """docs/dormand_prince.md (5.1), written out."""
    a4 = 2 * h * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b4 = h * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c4 = h * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    return y0 + x * h * f0 + x**2 * c4 + x**3 * b4 + x**4 * a4


# ============================================================ docs/dormand_prince.md

@pytest.mark.parametrize("controller", CONTROLLERS)
def test_dp_1_step_is_the_textbook_formula(controller):
    """§1 (1.1)–(1.2), and §5 (5.1) for torchdiffeq: redo a logged solve by the book."""
    p, sol = _vdp_log(controller)
    steps = StepSequence.from_log(sol.log, p.t_span, controller)
    y = p.y0.copy()
    for t, h in zip(steps.t, steps.h):
        K = np.zeros((7, y.size))
        for s in range(7):
            K[s] = p.fun(t + c[s] * h, y + h * (A[s, :s] @ K[:s]))
        y_prev, y = y, y + h * (b @ K)
    if controller == "torchdiffeq":
        y_mid = y_prev + h * (DOPRI5.c_mid @ K)
        x = (p.t_span[1] - t) / h
        assert 0 < x < 1, "the last step should overshoot t1"
        y = _textbook_dense_output(y_prev, y, y_mid, K[0], K[6], h, x)
    np.testing.assert_allclose(y, sol.y, rtol=1e-12, atol=1e-14)


def test_dp_1_fsal():
    """§1 (1.3): row 6 of A is b, c_6 = 1, so a step costs six new evaluations."""
    np.testing.assert_array_equal(A[6, :6], b[:6])
    assert c[6] == 1.0 and b[6] == 0.0
    np.testing.assert_allclose(A.sum(axis=1), c, atol=1e-15)
    calls = []
    p = PROBLEMS["vdp"]
    sol = odeint(lambda t, y: calls.append(t) or p.fun(t, y), p.y0, p.t_span, rtol=1e-6,
                 atol=1e-9)
    assert len(calls) == sol.nfe == 2 + 6 * (sol.n_accepted + sol.n_rejected)


def test_dp_2_shampine_is_minus_two_thirds_of_scipy():
    """§2 (2.2) on the tableau, and on the error ratio of the same first attempt."""
    np.testing.assert_allclose(DOPRI5.e_shampine, -2 / 3 * DOPRI5.e_scipy, rtol=1e-12,
                               atol=1e-17)
    assert abs(DOPRI5.e_scipy.sum()) < 1e-15
    # A first attempt with a sizeable error (ratio ~0.03), so that rounding in the sum of
    # stages (relative ~1e-16 · h|K| / |err|) stays far below the checked 1e-9.
    (_, scipy_sol), (_, torch_sol) = (_vdp_log(ctrl, 1e-3, 1e-3) for ctrl in CONTROLLERS)
    assert scipy_sol.log[0, 1] == torch_sol.log[0, 1]          # same first step
    assert torch_sol.log[0, 2] / scipy_sol.log[0, 2] == pytest.approx(2 / 3, rel=1e-9)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_dp_2_error_ratio_formula(controller):
    """§2 (2.1), (2.3): the logged error ratio of the first attempt, recomputed."""
    rtol, atol = 1e-3, 1e-3                  # a sizeable error: little cancellation
    p, sol = _vdp_log(controller, rtol, atol)
    t, h = sol.log[0, :2]
    K = np.zeros((7, 2))
    for s in range(7):
        K[s] = p.fun(t + c[s] * h, p.y0 + h * (A[s, :s] @ K[:s]))
    y_new = p.y0 + h * (b @ K)
    e = DOPRI5.e_scipy if controller == "scipy" else DOPRI5.e_shampine
    err = h * (e @ K)
    ratio = _rms(err / (atol + rtol * np.maximum(np.abs(p.y0), np.abs(y_new))))
    assert sol.log[0, 2] == pytest.approx(ratio, rel=1e-9)


def _scipy_rule(ratio, accepted, after_rejection):
    if accepted:
        factor = 10.0 if ratio == 0 else min(10.0, 0.9 * ratio ** -0.2)
        return min(1.0, factor) if after_rejection else factor
    return max(0.2, 0.9 * ratio ** -0.2)


def _torchdiffeq_rule(ratio):
    if ratio == 0:
        return 10.0
    lower = 1.0 if ratio < 1 else 0.2
    return min(10.0, max(lower, 0.9 * ratio ** -0.2))


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_dp_3_next_step_follows_the_controller(controller):
    """§3 (3.1)–(3.2): every next step from the previous attempt's ratio and the mode's rules."""
    p, sol = _vdp_log(controller)
    log = sol.log
    assert sol.n_rejected > 0
    t1 = p.t_span[1]
    after_rejection = False
    for i in range(len(log) - 1):
        ratio, accepted = log[i, 2], log[i, 3] == 1
        if controller == "scipy":
            factor = _scipy_rule(ratio, accepted, after_rejection)
            after_rejection = not accepted
        else:
            factor = _torchdiffeq_rule(ratio)
        expected = log[i, 1] * factor
        if controller == "scipy":
            expected = min(expected, t1 - log[i + 1, 0])   # SciPy clips the last step
        assert log[i + 1, 1] == pytest.approx(expected, rel=1e-12), f"attempt {i + 1}"


def test_dp_3_accept_at_exactly_one():
    """§3 (3.2): SciPy accepts r < 1, torchdiffeq r ≤ 1."""
    assert _dp5._scipy_factor(1.0, False)[1] is False
    assert _dp5._torchdiffeq_factor(1.0)[1] is True
    for controller in CONTROLLERS:
        log = _vdp_log(controller)[1].log
        ok = log[:, 3] == 1
        assert np.all(log[ok, 2] < 1) if controller == "scipy" else np.all(log[ok, 2] <= 1)
        assert np.all(log[~ok, 2] > 1) if controller == "torchdiffeq" else np.all(log[~ok, 2] >= 1)


def _initial_step(fun, t0, y0, rtol, atol, interval=None):
    """docs/dormand_prince.md (4.1), with SciPy's clipping if ``interval`` is given."""
    sc = atol + rtol * np.abs(y0)
    f0 = fun(t0, y0)
    d0, d1 = _rms(y0 / sc), _rms(f0 / sc)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    if interval is not None:
        h0 = min(h0, interval)
    d2 = _rms((fun(t0 + h0, y0 + h0 * f0) - f0) / sc) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    h = min(100 * h0, h1)
    return h if interval is None else min(h, interval)


def test_dp_4_initial_step_formula_and_clipping():
    """§4 (4.1): the first attempted step; SciPy clips it to the interval, torchdiffeq not."""
    for controller in CONTROLLERS:
        p, sol = _vdp_log(controller)
        assert sol.log[0, 1] == pytest.approx(_initial_step(p.fun, 0.0, p.y0, 1e-6, 1e-9),
                                              rel=1e-12)
    decay = lambda t, y: -y
    y0, short = np.array([1.0, 2.0]), 1e-3
    h_free = _initial_step(decay, 0.0, y0, 1e-3, 1e-6)
    assert h_free > short
    scipy_sol = odeint(decay, y0, (0.0, short), controller="scipy", record=True)
    torch_sol = odeint(decay, y0, (0.0, short), controller="torchdiffeq", record=True)
    assert scipy_sol.log[0, 1] == pytest.approx(
        _initial_step(decay, 0.0, y0, 1e-3, 1e-6, interval=short), rel=1e-12)
    assert scipy_sol.log[0, 1] == pytest.approx(short, rel=1e-12)
    assert torch_sol.log[0, 1] == pytest.approx(h_free, rel=1e-12)


def test_dp_5_dense_output_conditions():
    """§5 (5.2): the quartic matches y0, y1, y_mid and the slopes h f0, h f1."""
    rng = np.random.default_rng(0)
    y0, y1, y_mid, f0, f1 = rng.normal(size=(5, 3))
    h = 0.37
    p = lambda x: discrete._dense_output(y0, y1, y_mid, f0, f1, h, x)
    slope = lambda x: p(x + 1e-30j).imag / 1e-30                 # complex step: exact slope
    np.testing.assert_allclose(p(0.0), y0, atol=1e-14)
    np.testing.assert_allclose(p(1.0), y1, atol=1e-13)
    np.testing.assert_allclose(p(0.5), y_mid, atol=1e-13)
    np.testing.assert_allclose(slope(0.0), h * f0, atol=1e-13)
    np.testing.assert_allclose(slope(1.0), h * f1, atol=1e-13)
    np.testing.assert_allclose(p(0.3), _textbook_dense_output(y0, y1, y_mid, f0, f1, h, 0.3),
                               rtol=1e-13)


@pytest.mark.parametrize("x", [0.0, 0.2, 0.5, 0.81, 1.0])
def test_dp_5_dense_output_weights(x):
    """§5 (5.3): the weights reproduce the driver's dense output (it is linear)."""
    rng = np.random.default_rng(1)
    y0, y1, y_mid, f0, f1 = rng.normal(size=(5, 4))
    h = 0.21
    w = discrete.dense_output_weights(x)
    assert w["y_mid"] == pytest.approx(16 * x**2 * (1 - x) ** 2, abs=1e-14)
    linear = (w["y0"] * y0 + w["y1"] * y1 + w["y_mid"] * y_mid
              + h * (w["f0"] * f0 + w["f1"] * f1))
    np.testing.assert_allclose(linear, discrete._dense_output(y0, y1, y_mid, f0, f1, h, x),
                               rtol=1e-12, atol=1e-14)


def test_dp_5_last_step_clipped_or_overshot():
    """§5: SciPy's last step ends at t1; torchdiffeq's passes it."""
    for controller in CONTROLLERS:
        p, sol = _vdp_log(controller)
        last = sol.log[sol.log[:, 3] == 1][-1]
        end = last[0] + last[1]
        if controller == "scipy":
            assert end == pytest.approx(p.t_span[1], rel=1e-15)
        else:
            assert end > p.t_span[1]


@pytest.mark.parametrize("t_span", [(0.0, 2.0), (2.0, 0.0)])
def test_dp_5_perturbed_stage_times(t_span):
    """§5: torchdiffeq evaluates c = 1 stages at nextafter(t + h, towards t0)."""
    towards_t0 = -np.inf if t_span[1] > t_span[0] else np.inf
    for controller in CONTROLLERS:
        times = []

        def f(t, y):
            times.append(t)
            return -y + np.sin(3 * t)

        sol = odeint(f, np.ones(2), t_span, rtol=1e-6, atol=1e-9, controller=controller,
                     record=True)
        for i, (t, h) in enumerate(sol.log[:, :2]):
            stage_times = np.array(times[2 + 6 * i: 8 + 6 * i])      # stages 1..6
            expected = t + c[1:] * h
            if controller == "torchdiffeq":
                expected[4:] = np.nextafter(expected[4:], towards_t0)
            np.testing.assert_array_equal(stage_times, expected)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_dp_6_nfe_formula(name):
    """§6 (6.1): NFE = 2 + 6·(accepted + rejected); the log's NFE after attempt i is 2 + 6(i+1)."""
    p = PROBLEMS[name]
    for controller in CONTROLLERS:
        sol = odeint(p.fun, p.y0, p.t_span, rtol=1e-6, atol=1e-9, controller=controller,
                     record=True)
        assert sol.nfe == 2 + 6 * (sol.n_accepted + sol.n_rejected)
        np.testing.assert_array_equal(sol.log[:, 4], 2 + 6 * np.arange(1, len(sol.log) + 1))


# ============================================================ docs/adjoint.md

def _fd(fun, x, v, step=FD_STEP):
    return (fun(x + step * v) - fun(x - step * v)) / (2 * step)


def _with_theta(field, theta, fun):
    saved = field.theta
    field.theta = theta
    try:
        return fun()
    finally:
        field.theta = saved


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
    adj = adjoint_solve(field._f_and_vjp, h1[None], cvec[None], (0.0, T_LIN), [9, 3],
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
    tape = discrete.forward(field._f, h0, (0.0, 1.0), rtol=tol, atol=tol)
    ref = discrete.backprop(tape, field._vjp, cvec, field.n_params)
    adj = adjoint_solve(field._f_and_vjp, tape.y1, cvec, (0.0, 1.0), [field.n_params],
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
        adj = adjoint_solve(field._f_and_vjp, sol.y, cvec, (0.0, 1.0), [field.n_params],
                            rtol=tol, atol=tol)
        errors.append(np.abs(adj.h0 - h0).max())
    assert all(e <= 100 * tol for e, tol in zip(errors, tols)), errors
    assert errors[-1] < 1e-3 * errors[0], errors
    # The discrete gradient retraces nothing: its h0 is the true one.
    tape = discrete.forward(field._f, h0, (0.0, 1.0), rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(discrete.backprop(tape, field._vjp, cvec, field.n_params).h0,
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
    tape = discrete.forward(field._f, h0, (0.0, 1.0), rtol=1e-6, atol=1e-6,
                            controller=controller)
    assert len(tape.steps) >= 5 and tape.n_rejected >= 1
    res = discrete.backprop(tape, field._vjp, cvec, field.n_params)
    assert res.nfe == 6 * len(tape.steps) + 1
    loss = lambda th: _with_theta(field, th, lambda: np.sum(
        cvec * discrete.replay(field._f, h0, tape.steps)))
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
    tape = discrete.forward(field._f, h0, (0.0, 1.0), rtol=1e-4, atol=1e-4)
    last = tape.steps
    assert last.t[-1] + last.h[-1] > 1.0                   # the dense output is used
    M = np.column_stack([discrete.replay(field._f, e[None], tape.steps)[0]
                         for e in np.eye(4)])
    res = discrete.backprop(tape, field._vjp, cvec, field.n_params)
    np.testing.assert_allclose(res.dL_dh0[0], M.T @ cvec[0], rtol=1e-13, atol=1e-15)


def test_adjoint_6_linear_discrete_gradient_is_the_stability_polynomial():
    """§6 (6.5): dL/dy0 = P(h_0 A)ᵀ ⋯ P(h_{N−1} A)ᵀ c, P(z) = Σ_k z^k bᵀA_RK^{k−1}𝟙."""
    beta = [1.0] + [b @ np.linalg.matrix_power(A, k - 1) @ np.ones(7) for k in range(1, 8)]
    np.testing.assert_allclose(beta[:6], [1 / math.factorial(k) for k in range(6)], rtol=1e-14)
    field, Amat = _linear_field(seed=4)
    rng = np.random.default_rng(2)
    h0, cvec = rng.normal(size=(2, 1, 3))
    tape = discrete.forward(field._f, h0, (0.0, 2.0), rtol=1e-5, atol=1e-5, controller="scipy")
    grad = cvec[0]
    for h in tape.steps.h[::-1]:
        P = sum(beta[k] * np.linalg.matrix_power(h * Amat, k) for k in range(8))
        grad = P.T @ grad
    res = discrete.backprop(tape, field._vjp, cvec, field.n_params)
    np.testing.assert_allclose(res.dL_dh0[0], grad, rtol=1e-12)
    exact = scipy.linalg.expm(Amat.T * 2.0) @ cvec[0]
    assert 1e-8 < np.abs(grad - exact).max() < 1e-3          # the global error, not round-off


# ============================================================ docs/regularisers.md

def _jacobians(seed=0, B=3, D=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, D, D))


def _fd_matrix(penalty, J, step=FD_STEP):
    G = np.zeros_like(J)
    for i in range(J.shape[1]):
        for j in range(J.shape[2]):
            E = np.zeros_like(J)
            E[:, i, j] = step
            G[:, i, j] = (penalty(J + E)[0] - penalty(J - E)[0]) / (2 * step)
    return G


def test_reg_1_frobenius_gradient():
    """§1 (1.1): ∂‖J‖_F/∂J = J/‖J‖_F, ∂‖J‖_F²/∂J = 2J; 0 at J = 0."""
    J = _jacobians()
    norm = np.sqrt((J**2).sum(axis=(1, 2)))
    values, grads = frobenius(J)
    np.testing.assert_allclose(values, norm, rtol=1e-14)
    np.testing.assert_allclose(grads, J / norm[:, None, None], rtol=1e-14)
    np.testing.assert_allclose(frobenius(J, squared=True)[1], 2 * J, rtol=1e-15)
    np.testing.assert_allclose(grads, _fd_matrix(frobenius, J), rtol=1e-7)
    assert np.all(frobenius(np.zeros((1, 3, 3)))[1] == 0)


def test_reg_2_singular_value_gradient_is_u_v_transpose():
    """§2 (2.1): ∂σ_i/∂J = u_i v_iᵀ, for σ₁ (spectral) and σ_D (by finite differences)."""
    J = _jacobians(1)
    U, s, Vh = np.linalg.svd(J)
    values, grads = spectral(J)
    np.testing.assert_allclose(values, s[:, 0], rtol=1e-14)
    np.testing.assert_allclose(grads, np.einsum("bi,bj->bij", U[:, :, 0], Vh[:, 0]), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(grads, _fd_matrix(spectral, J), rtol=1e-6, atol=1e-9)
    sigma_min = lambda M: (np.linalg.svd(M, compute_uv=False)[:, -1], None)
    np.testing.assert_allclose(np.einsum("bi,bj->bij", U[:, :, -1], Vh[:, -1]),
                               _fd_matrix(sigma_min, J), rtol=1e-6, atol=1e-9)


def test_reg_3_condition_number_formulas():
    """§3 (3.1)–(3.3): κ_ε = (r² + ε²)^{-1/2} and ∂κ_ε/∂J = κ³ r (r G₁ − G_D)/σ₁ → (3.1)."""
    J = _jacobians(2)
    U, s, Vh = np.linalg.svd(J)
    G1 = np.einsum("bi,bj->bij", U[:, :, 0], Vh[:, 0])
    GD = np.einsum("bi,bj->bij", U[:, :, -1], Vh[:, -1])
    s1, sD = s[:, 0], s[:, -1]
    r, eps = sD / s1, DEFAULT_COND_EPS
    kappa = (r**2 + eps**2) ** -0.5
    values, grads = condition(J)
    np.testing.assert_allclose(values, kappa, rtol=1e-13)
    expected = (kappa**3 * r / s1)[:, None, None] * (r[:, None, None] * G1 - GD)
    np.testing.assert_allclose(grads, expected, rtol=1e-10, atol=1e-12)
    limit = G1 / sD[:, None, None] - (s1 / sD**2)[:, None, None] * GD      # (3.1), ε → 0
    np.testing.assert_allclose(grads, limit, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grads, _fd_matrix(condition, J), rtol=1e-6, atol=1e-8)


def test_reg_3_log_condition_gradient():
    """§3 (3.4): ∂ log κ_ε/∂J = (∂κ_ε/∂J)/κ_ε."""
    J = _jacobians(3)
    kappa, dkappa = condition(J)
    values, grads = log_condition(J)
    np.testing.assert_allclose(values, np.log(kappa), rtol=1e-14)
    np.testing.assert_allclose(grads, dkappa / kappa[:, None, None], rtol=1e-14)
    np.testing.assert_allclose(grads, _fd_matrix(log_condition, J), rtol=1e-6, atol=1e-9)


def test_reg_4_ties_take_the_subspace_average():
    """§4 (4.1): a tied σ gets (1/|S|) Σ_S u_i v_iᵀ = J V_S V_Sᵀ/(|S| σ), basis-free."""
    rng = np.random.default_rng(4)
    Q1, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Q2, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    J = Q1 @ np.diag([2.0, 2.0, 1.0, 0.5]) @ Q2.T
    V_S = Q2[:, :2]
    _, g = spectral(J[None])
    np.testing.assert_allclose(g[0], J @ V_S @ V_S.T / (2 * 2.0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g[0], Q1[:, :2] @ Q2[:, :2].T / 2, rtol=1e-10, atol=1e-12)


def test_reg_4_zero_cases():
    """§4: σ_D = 0 simple → ∂κ_ε/∂J = 0; J = 0 → gradients 0 and κ_ε = (1 + ε²)^{-1/2}."""
    singular = np.diag([2.0, 1.0, 0.0])[None]
    assert np.all(condition(singular)[1] == 0.0)
    zero = np.zeros((1, 3, 3))
    for penalty in (frobenius, spectral, condition, log_condition):
        assert np.all(penalty(zero)[1] == 0.0)
    assert condition(zero)[0][0] == pytest.approx((1 + DEFAULT_COND_EPS**2) ** -0.5, rel=1e-15)


def test_reg_5_activation_curvature():
    """§5 (5.3): σ'' = −2σσ' (tanh), σ'(1 − σ') (softplus), against FD of σ'."""
    z = np.linspace(-3, 3, 13)
    for activation, sigma, dsigma in (
            ("tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2),
            ("softplus", lambda x: np.log1p(np.exp(x)), lambda x: 1 / (1 + np.exp(-x)))):
        field = MLP(2, hidden=(3,), activation=activation)
        curv = field._curvature(sigma(z), dsigma(z))
        np.testing.assert_allclose(curv, _fd(dsigma, z, np.ones_like(z)), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_reg_5_chain_rule_into_theta_and_h(activation):
    """§5 (5.1), (5.4): jacobian_vjp = ∂⟨G, J(h; θ)⟩/∂(θ, h), second-order terms included."""
    rng = np.random.default_rng(6)
    field = MLP(3, hidden=(6, 5), activation=activation, time_dependent=True, seed=2)
    h, G = rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 3))
    g_theta, g_h = field._jacobian_vjp(h, 0.4, G)
    pairing = lambda th: _with_theta(field, th, lambda: np.sum(G * field._jacobian(h, 0.4)))
    for _ in range(3):
        v = rng.normal(size=field.n_params)
        assert g_theta @ v == pytest.approx(_fd(pairing, field.theta, v), rel=1e-7)
        w = rng.normal(size=h.shape)
        fd_h = _fd(lambda x: np.sum(G * field._jacobian(x, 0.4)), h, w)
        assert np.sum(g_h * w) == pytest.approx(fd_h, rel=1e-7)


@pytest.mark.parametrize("gradient", ["adjoint", "discrete"])
@pytest.mark.parametrize("reg", ["frobenius", "spectral", "condition"])
def test_reg_5_model_penalty_gradient(reg, gradient):
    """§5 (5.5): the model adds jacobian_vjp(h(t0), t0, λ/B ∂R/∂J), in both gradient modes."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(5, 2)), np.arange(5) % 2
    kwargs = dict(augment_dim=1, hidden=(6, 5), seed=3, gradient=gradient)
    plain = NeuralODE(2, **kwargs)
    penalised = NeuralODE(2, reg=reg, lam=0.4, **kwargs)
    g_plain = plain.loss_and_grad(X, y)[1]
    g_pen = penalised.loss_and_grad(X, y)[1]
    h0 = penalised.initial_state(X)
    field = penalised.field
    _, dR = PENALTIES[reg](field._jacobian(h0, 0.0))
    expected = field._jacobian_vjp(h0, 0.0, 0.4 / len(X) * dR)[0]
    n = field.n_params
    np.testing.assert_allclose(g_pen[:n] - g_plain[:n], expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())
    penalty = lambda th: _with_theta(field, th, lambda: 0.4 * PENALTIES[reg](
        field._jacobian(h0, 0.0))[0].mean())
    v = rng.normal(size=n)
    assert expected @ v == pytest.approx(_fd(penalty, field.theta, v), rel=1e-6)
