"""odejac/reference.py, the plain-NumPy DP5 and adjoint, against the fast path it explains."""
import numpy as np
import pytest

from odejac import adjoint_solve, odeint, reference
from odejac.mlp import MLP
from problems import PROBLEMS

CONTROLLERS = ("scipy", "torchdiffeq")
# Time-independent fields: the reference leaves out torchdiffeq's one-ulp stage-time shift.
AUTONOMOUS = ("vdp", "decay_backward", "linear")


def _flat(p):
    shape = p.y0.shape
    return lambda t, y: np.asarray(p.fun(t, y.reshape(shape)), dtype=float).ravel()


@pytest.mark.parametrize("controller", CONTROLLERS)
@pytest.mark.parametrize("name", [n for n in AUTONOMOUS if n in PROBLEMS])
@pytest.mark.parametrize("tol", [(1e-3, 1e-6), (1e-8, 1e-10)])
def test_reference_solve_matches_odeint(controller, name, tol):
    """Same NFE and accepted steps as the jitted driver, same answer to round-off."""
    p = PROBLEMS[name]
    sol = odeint(p.fun, p.y0, p.t_span, rtol=tol[0], atol=tol[1], controller=controller,
                 record=True)
    y1, nfe, steps = reference.solve(_flat(p), p.y0.ravel(), p.t_span, tol[0], tol[1],
                                     controller)
    assert nfe == sol.nfe
    ok = sol.log[:, 3] == 1
    # err = h Σ e_j K_j cancels to ~tol·|y|: summed in another order the steps would move by
    # ~1e-7 at tol 1e-8; the reference sums as the driver does, so they agree to round-off.
    np.testing.assert_allclose([s[1] for s in steps], sol.log[ok, 1], rtol=1e-13)
    np.testing.assert_allclose(y1, sol.y.ravel(), rtol=1e-12, atol=1e-14)


@pytest.mark.nojit                   # the jitted driver's Python source against the reference too
@pytest.mark.parametrize("controller", CONTROLLERS)
@pytest.mark.parametrize("norm_tol", [1e-3, 1e-7])
def test_reference_adjoint_matches_adjoint_solve(controller, norm_tol):
    """Same backward NFE, same gradients and retraced state as adjoint_solve (mixed norm)."""
    rng = np.random.default_rng(0)
    field = MLP(3, hidden=(8, 8), seed=3)
    field.theta = 2.0 * field.theta                # bent trajectories: several steps
    h0, c = rng.normal(size=(2, 5, 3))
    f = lambda t, y: field._f(y.reshape(5, 3), t).ravel()
    h1 = odeint(lambda t, y: field._f(y, t), h0, (0.0, 1.0), rtol=norm_tol, atol=norm_tol,
                controller=controller).y
    sizes = [v.size for W, b in field.layers for v in (W, b)]
    fv = lambda t, y, a: field._f_and_vjp(y, t, a)
    fast = adjoint_solve(fv, h1, c, (0.0, 1.0), param_sizes=sizes, rtol=norm_tol,
                         atol=norm_tol, controller=controller)
    dh0, dtheta, h0_retraced, nfe, steps = reference.adjoint(
        fv, h1, c, (0.0, 1.0), sizes, norm_tol, norm_tol, controller)
    assert nfe == fast.nfe and len(steps) == fast.n_accepted >= 2
    np.testing.assert_allclose(dtheta, fast.dL_dtheta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(dh0, fast.dL_dh0, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(h0_retraced, fast.h0, rtol=1e-11, atol=1e-13)
    y_ref = reference.solve(f, h0.ravel(), (0.0, 1.0), norm_tol, norm_tol, controller)[0]
    np.testing.assert_allclose(y_ref, h1.ravel(), rtol=1e-12, atol=1e-14)


def test_reference_dense_output_is_the_solvers():
    """The reference's quartic is the one the driver evaluates at t1 (docs (5.1))."""
    from odejac import discrete
    rng = np.random.default_rng(2)
    args = rng.normal(size=(5, 4))
    for x in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(reference.dense_output(*args, 0.7, x),
                                   discrete._dense_output(*args, 0.7, x), rtol=1e-13,
                                   atol=1e-14)
