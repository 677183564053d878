"""Regularisation along the trajectory (odejac/trajectory.py): the quadrature, its place outside
the error norm, and the full gradient against finite differences."""
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from odejac import trajectory
from odejac.model import NeuralODE, T_SPAN

TIGHT = dict(rtol=1e-10, atol=1e-10)
FD_STEP = 1e-5   # 5-point stencil: truncation ~h⁴, solver noise ~tol/h, both ≪ 1e-5
FD_RTOL = 1e-5


def _data(n=6, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), np.arange(n) % 3


def _model(reg, method="exact", time_dependent=False, **kw):
    return NeuralODE(2, n_classes=3, augment_dim=1, hidden=(6, 5), time_dependent=time_dependent,
                     reg=reg, lam=0.3, seed=3, reg_at="trajectory", kappa_method=method,
                     **{**TIGHT, **kw})


def _worst_fd_error(model, X, y, n_random=3, n_coords=6, seed=1):
    """Max relative error of ``grad · v`` against a 5-point central difference of the loss."""
    loss, grad, _ = model.loss_and_grad(X, y)
    assert np.isclose(loss, model.loss(X, y), rtol=1e-9)
    rng = np.random.default_rng(seed)
    directions = [rng.normal(size=grad.size) for _ in range(n_random)]
    for i in rng.choice(model.field.n_params, size=n_coords, replace=False):  # field coordinates
        directions.append(np.eye(grad.size)[i])
    theta, worst = model.theta, 0.0
    for v in directions:
        values = []
        for k in (2, 1, -1, -2):
            model.theta = theta + k * FD_STEP * v
            values.append(model.loss(X, y))
        model.theta = theta
        fd = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * FD_STEP)
        scale = max(abs(fd), 1e-3 * np.linalg.norm(grad) * np.linalg.norm(v))
        worst = max(worst, abs(fd - grad @ v) / scale)
    return worst


@pytest.mark.parametrize("reg,method,td", [
    ("kinetic", "exact", False), ("frobenius", "exact", True), ("spectral", "exact", False),
    ("condition", "exact", True), ("log_condition", "exact", False),
    ("condition", "matrix-free", False), ("taynode", "exact", False), ("taynode", "exact", True),
])
def test_trajectory_gradient_matches_finite_differences(reg, method, td):
    model = _model(reg, method, td)
    if method == "matrix-free":
        model.matfree_options = dict(tol=1e-12)
    X, y = _data()
    worst = _worst_fd_error(model, X, y)
    assert worst <= FD_RTOL, f"reg={reg} ({method}): max relative error {worst:.2e}"


@pytest.mark.parametrize("reg", ["kinetic", "frobenius", "condition", "taynode"])
def test_quadrature_matches_scipy_and_stays_out_of_the_error_norm(reg):
    model = _model(reg, rtol=1e-6, atol=1e-6)
    X, _ = _data()
    h0 = model.initial_state(X)
    h1, integral, nfe = trajectory.forward(model.field, h0, reg, T_SPAN, rtol=1e-6, atol=1e-6,
                                           controller="torchdiffeq", max_steps=10_000)
    plain, plain_nfe = model._solve(h0, rtol=1e-6, atol=1e-6)
    # Q outside the norm: the same steps, hence bit-identical h(t1) and the same NFE.
    np.testing.assert_array_equal(h1, plain)
    assert nfe == plain_nfe
    field, shape = model.field, h0.shape
    ref = solve_ivp(lambda t, y: field._f(y.reshape(shape), t).ravel(), T_SPAN, h0.ravel(),
                    rtol=1e-12, atol=1e-12, dense_output=True)
    value = quad(lambda t: trajectory.integrand(field, reg, ref.sol(t).reshape(shape), t)[0].mean(),
                 *T_SPAN, epsabs=1e-12, epsrel=1e-12)[0]
    assert abs(integral - value) <= 1e-4 * abs(value), (integral, value)


def test_frobenius_on_the_path_is_the_squared_norm():
    model = _model("frobenius")
    h = _data()[0]
    h = model.initial_state(h)
    J = model.field._jacobian(h, 0.3)
    values = trajectory.integrand(model.field, "frobenius", h, 0.3)[0]
    np.testing.assert_allclose(values, np.einsum("bij,bij->b", J, J), rtol=1e-14)


def test_kinetic_is_always_on_the_path_and_discrete_is_refused():
    assert NeuralODE(2, reg="kinetic").reg_at == "trajectory"
    assert NeuralODE(2, reg="taynode").reg_at == "trajectory"
    with pytest.raises(ValueError, match="trajectory"):
        NeuralODE(2, reg="taynode", gradient="discrete")
    with pytest.raises(ValueError, match="trajectory"):
        NeuralODE(2, reg="condition", reg_at="trajectory", gradient="discrete")


def test_cli_trains_with_taynode(tmp_path):
    import json
    from odejac.cli import main
    code = main(["train", "--reg", "taynode", "--lam", "1e-2", "--epochs", "2", "--n-train", "40",
                 "--n-test", "10", "--hidden", "5", "5", "--batch-size", "16", "--time-dependent",
                 "--quiet", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["status"] == "finished" and summary["epochs_done"] == 2
    assert json.loads((tmp_path / "config.json").read_text())["reg"] == "taynode"
