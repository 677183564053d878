"""Tests of the Dormand–Prince driver against exact solutions and the peers."""
import json
import pathlib

import numpy as np
import pytest
import scipy.linalg
from numba import njit
from scipy.integrate import solve_ivp

from odejac import SolverError, odeint
from odejac.tableau import DOPRI5, ButcherTableau
from problems import PROBLEMS, TOLERANCES

DATA = pathlib.Path(__file__).parent / "data"
TORCHDIFFEQ_CASES = json.loads((DATA / "torchdiffeq_counts.json").read_text())["cases"]


def _scipy_counts(problem, rtol, atol):
    shape = problem.y0.shape
    sol = solve_ivp(lambda t, y: problem.fun(t, y.reshape(shape)).ravel(), problem.t_span,
                    problem.y0.ravel(), method="RK45", rtol=rtol, atol=atol)
    assert sol.success
    accepted = len(sol.t) - 1
    rejected = (sol.nfev - 2) // 6 - accepted
    return sol.nfev, accepted, rejected, sol.y[:, -1].reshape(shape)


# --- the tableau --------------------------------------------------------------------

@pytest.mark.nojit
def test_tableau_is_consistent():
    assert np.allclose(DOPRI5.A.sum(axis=1), DOPRI5.c, atol=1e-15)
    assert abs(DOPRI5.b.sum() - 1.0) < 1e-15
    assert abs(DOPRI5.e_scipy.sum()) < 1e-15 and abs(DOPRI5.e_shampine.sum()) < 1e-15
    # Shampine's estimate is exactly -2/3 of the classic one.
    np.testing.assert_allclose(DOPRI5.e_shampine, -2 / 3 * DOPRI5.e_scipy, rtol=1e-12,
                               atol=1e-17)
    # The half-step weights integrate to t + h/2.
    assert abs(DOPRI5.c_mid.sum() - 0.5) < 1e-15


@pytest.mark.nojit
def test_tableau_rejects_inconsistent_data():
    A = DOPRI5.A.copy()
    A[3, 0] += 1e-3
    with pytest.raises(ValueError, match="sum to c"):
        ButcherTableau(c=DOPRI5.c.copy(), A=A, b=DOPRI5.b.copy(), e_scipy=DOPRI5.e_scipy.copy(),
                       e_shampine=DOPRI5.e_shampine.copy(), c_mid=DOPRI5.c_mid.copy(),
                       order=5, error_order=4)


# --- accuracy ----------------------------------------------------------------------

def test_convergence_order_is_five_on_linear_system():
    """The tableau's fixed-step global error against expm scales as h^5."""
    A = np.array([[-0.1, 2.0, 0.0], [-2.0, -0.1, 0.0], [0.0, 0.0, -1.0]])
    y0 = np.array([1.0, 0.0, 1.0])
    exact = scipy.linalg.expm(A * 1.0) @ y0
    errors = []
    for n_steps in (8, 16, 32, 64):
        # A classical fixed-step DP5 with the library's tableau as the reference.
        h = 1.0 / n_steps
        y = y0.copy()
        for _ in range(n_steps):
            K = np.zeros((7, 3))
            for s in range(7):
                K[s] = A @ (y + h * DOPRI5.A[s, :s] @ K[:s])
            y = y + h * DOPRI5.b @ K
        errors.append(np.abs(y - exact).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 5.0) < 0.3), f"measured orders {orders}"


@pytest.mark.parametrize("controller", ["scipy", "torchdiffeq"])
def test_adaptive_error_follows_tolerance(controller):
    """Global error against expm falls as the tolerance falls (order ≈ 5 in h)."""
    problem = PROBLEMS["linear"]
    exact = problem.exact(problem.t_span[1])
    errors, nfes = [], []
    for tol in (1e-4, 1e-6, 1e-8, 1e-10):
        sol = odeint(problem.fun, problem.y0, problem.t_span, rtol=tol, atol=tol,
                     controller=controller)
        errors.append(np.abs(sol.y - exact).max())
        nfes.append(sol.nfe)
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-8, errors
    # Work grows like tol^(-1/5): measured order of convergence in steps.
    slope = -np.polyfit(np.log(nfes), np.log(errors), 1)[0]
    assert 3.5 < slope < 7.0, f"error ~ nfe^-{slope:.2f}, expected ~5"


@pytest.mark.parametrize("name", ["decay_backward", "linear"])
def test_matches_exact_solution(name):
    problem = PROBLEMS[name]
    sol = odeint(problem.fun, problem.y0, problem.t_span, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.y, problem.exact(problem.t_span[1]), rtol=1e-8, atol=1e-10)


# --- parity with the peers ------------------------------------------------------------

@pytest.mark.parametrize("rtol,atol", TOLERANCES)
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_scipy_mode_reproduces_solve_ivp(name, rtol, atol):
    problem = PROBLEMS[name]
    nfev, accepted, rejected, y_end = _scipy_counts(problem, rtol, atol)
    sol = odeint(problem.fun, problem.y0, problem.t_span, rtol=rtol, atol=atol,
                 controller="scipy")
    assert (sol.nfe, sol.n_accepted, sol.n_rejected) == (nfev, accepted, rejected)
    np.testing.assert_allclose(sol.y, y_end, rtol=1e-10, atol=1e-12)
    assert sol.nfe == 2 + 6 * (sol.n_accepted + sol.n_rejected)


@pytest.mark.parametrize("case", TORCHDIFFEQ_CASES,
                         ids=[f"{c['problem']}-{c['rtol']}-{c['atol']}" for c in TORCHDIFFEQ_CASES])
def test_torchdiffeq_mode_reproduces_dopri5(case):
    problem = PROBLEMS[case["problem"]]
    sol = odeint(problem.fun, problem.y0, problem.t_span, rtol=case["rtol"], atol=case["atol"],
                 controller="torchdiffeq", record=True)
    assert (sol.nfe, sol.n_accepted, sol.n_rejected) == \
        (case["nfe"], case["n_accepted"], case["n_rejected"])
    # Dense output at t1 agrees with torchdiffeq's to round-off of the steps.
    np.testing.assert_allclose(sol.y, np.reshape(case["y1"], problem.y0.shape),
                               rtol=1e-8, atol=1e-10)
    accepted_ends = sol.log[sol.log[:, 3] == 1, 0] + sol.log[sol.log[:, 3] == 1, 1]
    # Step ends agree to the round-off that the error ratios amplify (≤ 3e-8 measured).
    np.testing.assert_allclose(accepted_ends, case["t_steps"], rtol=1e-6, atol=1e-12)


def test_jitted_and_python_fields_take_identical_steps():
    @njit
    def jitted(t, y):
        return -0.5 * y + np.sin(4.0 * t) * np.cos(y)

    def plain(t, y):
        return -0.5 * y + np.sin(4.0 * t) * np.cos(y)

    y0 = np.array([[1.0, -1.0], [0.5, 2.0]])
    a = odeint(jitted, y0, (0.0, 4.0), rtol=1e-6, atol=1e-9)
    b = odeint(plain, y0, (0.0, 4.0), rtol=1e-6, atol=1e-9)
    assert (a.nfe, a.n_accepted, a.n_rejected) == (b.nfe, b.n_accepted, b.n_rejected)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.shape == y0.shape


def test_step_log_is_consistent():
    problem = PROBLEMS["vdp"]
    sol = odeint(problem.fun, problem.y0, problem.t_span, rtol=1e-6, atol=1e-9, record=True)
    assert sol.log.shape == (sol.n_accepted + sol.n_rejected, 5)
    assert sol.log[:, 3].sum() == sol.n_accepted
    assert sol.log[-1, 4] == sol.nfe
    assert np.all(sol.log[sol.log[:, 3] == 0, 2] > 1.0)  # rejected ⇔ error ratio > 1


# --- failures -----------------------------------------------------------------------

@pytest.mark.parametrize("controller", ["scipy", "torchdiffeq"])
def test_finite_time_blow_up_raises_solver_error(controller):
    with pytest.raises(SolverError) as info:
        odeint(lambda t, y: y * y, np.array([1.0]), (0.0, 2.0), controller=controller)
    err = info.value
    assert 0.99 < err.t < 1.0 and err.h < 1e-10
    assert "underflow" in err.reason


def test_max_steps_raises_solver_error():
    with pytest.raises(SolverError, match="too many steps") as info:
        odeint(lambda t, y: np.cos(50 * t) * y, np.array([1.0]), (0.0, 10.0), rtol=1e-10,
               atol=1e-12, max_steps=20)
    assert info.value.t < 10.0


def test_nan_field_raises_solver_error():
    with pytest.raises(SolverError, match="non-finite"):
        odeint(lambda t, y: y + (np.nan if t > 0.5 else 0.0), np.array([1.0]), (0.0, 1.0))


@pytest.mark.nojit
@pytest.mark.parametrize("kwargs,match", [
    (dict(rtol=-1e-3), "rtol"), (dict(atol=0.0), "atol"), (dict(rtol=np.nan), "rtol"),
    (dict(controller="rk4"), "controller"), (dict(max_steps=0), "max_steps"),
])
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odeint(lambda t, y: -y, np.ones(2), (0.0, 1.0), **kwargs)


@pytest.mark.nojit
@pytest.mark.parametrize("y0,t_span,match", [
    (np.array([1.0, np.nan]), (0.0, 1.0), "non-finite"),
    (np.array([np.inf]), (0.0, 1.0), "non-finite"),
    (np.ones((2, 2, 2)), (0.0, 1.0), "shape"),
    (np.ones(2), (0.0, 0.0), "t0 != t1"),
    (np.ones(2), (0.0, np.inf), "finite"),
    (np.ones(2), (0.0,), "pair"),
])
def test_bad_inputs_raise_value_error(y0, t_span, match):
    with pytest.raises(ValueError, match=match):
        odeint(lambda t, y: -y, y0, t_span)


@pytest.mark.nojit
def test_wrong_output_shape_of_f_is_reported():
    with pytest.raises(ValueError, match="returned shape"):
        odeint(lambda t, y: np.ones(3), np.ones(2), (0.0, 1.0))


@pytest.mark.nojit
def test_exception_in_f_propagates():
    def broken(t, y):
        raise KeyError("inside f")
    with pytest.raises(KeyError, match="inside f"):
        odeint(broken, np.ones(2), (0.0, 1.0))
