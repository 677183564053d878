"""Every numbered formula of docs/dormand_prince.md checked against the code (``dp_<section>``).

Part of the docs-formula checks (see tests/test_docs_dormand_prince.py,
tests/test_docs_adjoint.py with tests/test_docs_adjoint_discrete.py (§6), and
tests/test_docs_regularisers.py with tests/test_docs_regularisers_solver_error.py (§9)):
formulas are written out again here, independently of the code, and compared with what the
code computes.
"""
import math

import numpy as np
import pytest

from odejac import _dp5, discrete, odeint, reference
from odejac.discrete import StepSequence
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


# Dormand & Prince (1980), Table 2: the embedded 4th-order weights, written out here.
B_HAT = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100,
                  1 / 40])


def test_dp_2_scipy_error_weights_are_bhat_minus_b():
    """§2: SciPy's E is b̂ − b (not b − b̂), and with it (2.2) has the factor −2/3."""
    from scipy.integrate._ivp.rk import RK45
    np.testing.assert_allclose(DOPRI5.e_scipy, B_HAT - b, rtol=1e-13, atol=1e-17)
    np.testing.assert_allclose(RK45.E[:7], B_HAT - b, rtol=1e-13, atol=1e-17)
    assert B_HAT.sum() == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(DOPRI5.e_shampine, -2 / 3 * (B_HAT - b), rtol=1e-12, atol=1e-17)
    # The old wording, e = b − b̂, would make the factor +2/3, contradicting the tableau.
    assert not np.allclose(DOPRI5.e_shampine, -2 / 3 * (b - B_HAT))


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
    """§3 (3.2)–(3.3): every next step from the previous attempt's ratio and the mode's rules."""
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
    """§3 (3.3): SciPy accepts r < 1, torchdiffeq r ≤ 1."""
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


def _first_attempt(fun, y0, h, rtol=1e-6, atol=1e-6):
    """One DP5 attempt from (0, y0): (5th-order y, 4th-order ŷ, SciPy error ratio r)."""
    y_new, K = reference.step(fun, 0.0, y0, fun(0.0, y0), h, True)
    y_hat = y0 + h * (B_HAT @ K)
    err = h * (DOPRI5.e_scipy @ K)
    ratio = _rms(err / (atol + rtol * np.maximum(np.abs(y0), np.abs(y_new))))
    return y_new, y_hat, ratio


def test_dp_3_error_estimate_scales_as_h_to_the_fifth():
    """§3 (3.1): r ≈ C h^{q+1} with q + 1 = 5; one I-controller step targets r ≈ 0.9⁵."""
    p = PROBLEMS["vdp"]
    hs = np.array([0.02, 0.01, 0.005])
    ratios = np.array([_first_attempt(p.fun, p.y0, h)[2] for h in hs])
    slopes = np.diff(np.log(ratios)) / np.diff(np.log(hs))
    np.testing.assert_allclose(slopes, 5.0, atol=0.1)
    # At a tight tolerance the chosen step is small enough for (3.1) to hold up to it.
    tight = dict(rtol=1e-12, atol=1e-12)
    r = _first_attempt(p.fun, p.y0, 0.01, **tight)[2]
    h_new = 0.01 * 0.9 * r ** -0.2
    # 0.570 here: the next terms of (3.1) are O(h) relative.
    assert _first_attempt(p.fun, p.y0, h_new, **tight)[2] == pytest.approx(0.9 ** 5, rel=0.05)


def test_dp_3_local_extrapolation():
    """§3: the estimate is the 4th-order solution's error; the 5th-order one is far smaller."""
    lam = np.array([-1.0, 0.5, -2.0])
    fun = lambda t, y: lam * y
    y0 = np.ones(3)
    for h in (0.05, 0.02):
        y5, y4, _ = _first_attempt(fun, y0, h)
        exact = np.exp(lam * h)
        err_estimate = y4 - y5                      # = h Σ (b̂ − b) K = h Σ e K
        np.testing.assert_allclose(err_estimate, y4 - exact, rtol=0.1)
        assert np.all(np.abs(y5 - exact) < 0.1 * np.abs(err_estimate))


def test_dp_3_pi_controller():
    """§3 (3.4): Hairer's PI rule as written, β = 0 gives the I rule, and it solves to tol."""
    alpha, beta = 0.2 - 0.75 * 0.04, 0.04
    for r, r_prev in ((0.3, 0.5), (0.01, 1e-4), (0.9, 0.2)):
        expected = min(10.0, max(0.2, 0.9 * r ** -alpha * r_prev ** beta))
        assert reference.pi_factor(r, r_prev, False) == (pytest.approx(expected, rel=1e-15),
                                                         True)
        assert reference.pi_factor(r, r_prev, True)[0] == pytest.approx(min(1.0, expected))
    assert reference.pi_factor(2.0, 0.5, False) == (pytest.approx(0.9 * 2.0 ** -alpha), False)
    assert reference.PI_ALPHA == pytest.approx(alpha) and reference.PI_BETA == beta
    p = PROBLEMS["linear"]
    for tol in (1e-4, 1e-8):
        y1, nfe, steps = reference.solve(p.fun, p.y0, p.t_span, tol, tol, "pi")
        assert steps[-1][0] + steps[-1][1] == p.t_span[1]          # last step clipped
        assert np.abs(y1 - p.exact(p.t_span[1])).max() < 10 * tol


def test_dp_5_dense_output_order():
    """§5: the quartic's local error max_x |p(x) − y(t_n + xh)| is O(h⁵): order 4."""
    lam = np.array([-1.0, 0.7])
    fun = lambda t, y: lam * y
    y0 = np.ones(2)
    errors = []
    hs = np.array([0.2, 0.1, 0.05])
    for h in hs:
        y1, K = reference.step(fun, 0.0, y0, fun(0.0, y0), h, False)
        y_mid = y0 + h * (DOPRI5.c_mid @ K)
        xs = np.linspace(0, 1, 41)
        errors.append(max(np.abs(reference.dense_output(y0, y1, y_mid, K[0], K[6], h, x)
                                 - np.exp(lam * x * h)).max() for x in xs))
    slopes = np.diff(np.log(errors)) / np.diff(np.log(hs))
    np.testing.assert_allclose(slopes, 5.0, atol=0.2)
