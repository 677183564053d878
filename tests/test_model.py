"""The neural ODE classifier: adjoint gradients against finite differences."""
import numpy as np
import pytest

from odejac.model import REGULARISERS, STEP_ONLY, NeuralODE

TIGHT = dict(rtol=1e-10, atol=1e-10)
FD_STEP = 1e-5  # with the 5-point stencil: truncation ~h⁴, solver noise ~tol/h, both ≪ 1e-5


def _data(n=6, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.arange(n) % 2
    return X, y


def _fd_directional(model, X, y, direction):
    """Fourth-order central difference of the loss along ``direction``.

    The 5-point stencil keeps the truncation error (the condition-number
    penalty is strongly curved) far below the solver noise at this step.
    """
    theta = model.theta
    values = []
    for k in (2, 1, -1, -2):
        model.theta = theta + k * FD_STEP * direction
        values.append(model.loss(X, y))
    model.theta = theta
    return (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * FD_STEP)


def _check_gradient(model, X, y, n_directions=4, n_coords=12, seed=1):
    loss, grad, stats = model.loss_and_grad(X, y)
    assert np.isclose(loss, model.loss(X, y), rtol=1e-9)
    rng = np.random.default_rng(seed)
    directions = [rng.normal(size=grad.size) for _ in range(n_directions)]
    for i in rng.choice(grad.size, size=n_coords, replace=False):
        e = np.zeros(grad.size)
        e[i] = 1.0
        directions.append(e)
    worst = 0.0
    for v in directions:
        fd = _fd_directional(model, X, y, v)
        an = grad @ v
        rel = abs(fd - an) / max(abs(fd), 1e-3 * np.linalg.norm(grad) * np.linalg.norm(v))
        worst = max(worst, rel)
    return worst, stats


@pytest.mark.parametrize("time_dependent", [False, True])
# solver_error's gradient is exact on the frozen step grid only: differences of the adaptive
# solve also move the grid, which R_E feels at O(1) (tests/test_solver_error.py).
@pytest.mark.parametrize("reg", [r for r in REGULARISERS if r not in STEP_ONLY])
def test_loss_and_grad_matches_finite_differences(reg, time_dependent):
    model = NeuralODE(2, augment_dim=1, hidden=(6, 5), time_dependent=time_dependent, reg=reg,
                      lam=0.3 if reg != "none" else 0.0, seed=3, **TIGHT)
    X, y = _data()
    worst, stats = _check_gradient(model, X, y)
    assert worst <= 1e-5, f"reg={reg}: max relative error {worst:.2e}"
    assert stats["nfe_forward"] > 14 and stats["nfe_backward"] > 14


def test_input_gradient_matches_finite_differences():
    model = NeuralODE(2, augment_dim=2, hidden=(8, 8), seed=0, **TIGHT)
    X, y = _data(n=4)
    _, _, stats = model.loss_and_grad(X, y)
    fd = np.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Xp, Xm = X.copy(), X.copy()
            Xp[i, j] += FD_STEP
            Xm[i, j] -= FD_STEP
            fd[i, j] = (model.loss(Xp, y) - model.loss(Xm, y)) / (2 * FD_STEP)
    rel = np.abs(fd - stats["dL_dx"]).max() / np.abs(fd).max()
    assert rel <= 1e-5, f"relative error {rel:.2e}"


@pytest.mark.parametrize("norm", ["mixed", "seminorm", "rms"])
@pytest.mark.parametrize("controller", ["torchdiffeq", "scipy"])
def test_adjoint_options_agree(controller, norm):
    X, y = _data()
    ref = NeuralODE(2, hidden=(6, 6), seed=2, **TIGHT).loss_and_grad(X, y)[1]
    model = NeuralODE(2, hidden=(6, 6), seed=2, controller=controller, adjoint_norm=norm,
                      rtol=1e-8, atol=1e-8)
    grad = model.loss_and_grad(X, y)[1]
    assert np.abs(grad - ref).max() <= 1e-5 * np.abs(ref).max()


def test_seminorm_takes_no_more_backward_steps_than_mixed():
    X, y = _data(n=32)
    counts = {}
    for norm in ("mixed", "seminorm"):
        model = NeuralODE(2, seed=0, adjoint_norm=norm, rtol=1e-5, atol=1e-5)
        counts[norm] = model.loss_and_grad(X, y)[2]["nfe_backward"]
    assert counts["seminorm"] <= counts["mixed"]


def test_theta_round_trip_and_prediction_shapes():
    model = NeuralODE(2, n_classes=3, seed=0)
    theta = model.theta
    model.theta = theta * 2
    np.testing.assert_array_equal(model.theta, theta * 2)
    X, _ = _data(n=5)
    proba = model.predict_proba(X)
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict(X).shape == (5,)
    assert model.condition_numbers(X).shape == (5,)


@pytest.mark.nojit
@pytest.mark.parametrize("kwargs,match", [
    (dict(reg="l2"), "reg"), (dict(lam=-1.0), "lam"), (dict(rtol=0.0), "rtol"),
    (dict(controller="euler"), "controller"), (dict(adjoint_norm="max"), "adjoint_norm"),
    (dict(reg_at="t1"), "reg_at"), (dict(n_classes=1), "n_classes"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuralODE(2, **kwargs)


@pytest.mark.nojit
def test_bad_data_is_refused():
    model = NeuralODE(2)
    X, y = _data()
    with pytest.raises(ValueError, match="non-finite"):
        model.loss_and_grad(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError):
        model.loss_and_grad(X[:, :1], y)
    with pytest.raises(ValueError, match="label"):
        model.loss_and_grad(X, y + 2)
    with pytest.raises(ValueError, match="theta"):
        model.theta = np.zeros(3)


@pytest.mark.parametrize("reg", ["condition", "log_condition"])
def test_capped_condition_penalty_gradient_and_statistic(reg):
    """A raised floor ε (κ_ε ≤ 1/ε) keeps the gradient exact and κ reported unfloored."""
    model = NeuralODE(2, augment_dim=1, hidden=(6, 5), reg=reg, lam=0.3, seed=3,
                      cond_eps=0.2, **TIGHT)
    X, y = _data()
    worst, stats = _check_gradient(model, X, y)
    assert worst <= 1e-5, f"max relative error {worst:.2e}"
    kappa = model.condition_numbers(X)
    assert np.isclose(stats["kappa"], kappa.mean(), rtol=1e-9)
    assert kappa.max() > 1 / 0.2  # the statistic is not capped ...
    loss_reg = stats["loss_reg"] / 0.3
    assert loss_reg < (np.log(5.0) if reg == "log_condition" else 5.0)  # ... the penalty is


def test_cond_eps_is_validated():
    with pytest.raises(ValueError, match="cond_eps"):
        NeuralODE(2, reg="condition", cond_eps=0.0)
