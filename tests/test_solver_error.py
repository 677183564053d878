"""The solver-error penalty (``reg="solver_error"``, Pal et al. 2021): R_E = Σ_j E_j |h_j| of the
accepted DP5 steps, its gradient on the frozen step grid, and its training option."""
import numpy as np
import pytest

from odejac import discrete, solver_error
from odejac.io import read_json
from odejac.model import NeuralODE
from odejac.tableau import DOPRI5
from odejac.train import TrainConfig, train
from test_discrete import CONTROLLERS, _fd5, _field, _tya, _ty
from test_train import _cli

TOL = dict(rtol=1e-6, atol=1e-6)
FD_STEP = 3e-4    # 5-point stencil; 1e-3 (test_discrete's) leaves ε⁴ truncation ~1e-7 here
FD_RTOL = 1e-7


def _taped(field, controller, t_span=(0.0, 1.5), seed=0):
    y0 = np.random.default_rng(seed).normal(size=(4, 3))
    tape = discrete.forward(_ty(field), y0, t_span, controller=controller,
                            keep_derivatives=True, **TOL)
    return y0, tape


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_estimates_are_the_controllers_error_ratios(controller):
    """E_j is the step log's error_ratio of each accepted step, and the taped K_js = f(T, Y)."""
    field = _field()
    _, tape = _taped(field, controller)
    assert tape.n_rejected > 0 and len(tape.steps) > 3
    value, E, _, _ = solver_error.penalty(tape.stage_k, tape.stage_y, tape.steps, **TOL)
    accepted = tape.log[tape.log[:, 3] == 1.0]
    np.testing.assert_allclose(E, accepted[:, 2], rtol=1e-9)   # Σ e_s K_s cancels
    assert np.all(E <= 1.0) and value == pytest.approx(np.sum(E * np.abs(tape.steps.h)))
    for j in (0, len(tape.steps) - 1):
        for s in range(7):
            np.testing.assert_array_equal(tape.stage_k[j, s],
                                          field._f(tape.stage_y[j, s], tape.stage_t[j, s]))


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_linear_scalar_penalty_matches_the_closed_form_stages(controller):
    """y' = a y: K = a y_j (I − a h A)⁻¹ 1, y_{j+1} = y_j + h bᵀK, E_j = |h eᵀK| / s_j."""
    a, y0 = -3.0, np.array([[1.5]])
    tape = discrete.forward(lambda t, y: a * y, y0, (0.0, 2.0), controller=controller,
                            keep_derivatives=True, **TOL)
    value, E, _, _ = solver_error.penalty(tape.stage_k, tape.stage_y, tape.steps, **TOL)
    e = DOPRI5.e_scipy if controller == "scipy" else DOPRI5.e_shampine
    y, expected = 1.5, []
    for h in tape.steps.h:
        K = a * y * np.linalg.solve(np.eye(7) - a * h * DOPRI5.A, np.ones(7))
        y_next = y + h * DOPRI5.b @ K
        scale = TOL["atol"] + TOL["rtol"] * max(abs(y), abs(y_next))
        expected.append(abs(h * e @ K) / scale)
        y = y_next
    assert len(expected) > 5
    np.testing.assert_allclose(E, expected, rtol=1e-9, atol=1e-12)   # eᵀK cancels (Σ e = 0)
    np.testing.assert_allclose(value, np.sum(np.array(expected) * np.abs(tape.steps.h)),
                               rtol=1e-9)


@pytest.mark.parametrize("time_dependent", [False, True])
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_gradient_matches_frozen_finite_differences(controller, time_dependent):
    """∂(cᵀy1 + λ R_E)/∂(θ, h0) by backprop's extra cotangents, against FD of the replay."""
    field, lam = _field(time_dependent), 0.7
    y0, tape = _taped(field, controller)
    cot = np.random.default_rng(5).normal(size=y0.shape)
    _, bars = solver_error.taped_penalty(tape, lam, True, **TOL)
    res = discrete.backprop(tape, _tya(field), cot, field.n_params, **bars)
    only_penalty = discrete.backprop(tape, _tya(field), 0.0 * cot, field.n_params, **bars)
    theta = field.theta

    def loss(th, y):
        field.theta = th
        try:
            y1, value = solver_error.replay_penalty(_ty(field), y, tape.steps, **TOL)
            return np.sum(cot * y1) + lam * value
        finally:
            field.theta = theta

    def penalty_only(th):
        field.theta = th
        try:
            return lam * solver_error.replay_penalty(_ty(field), y0, tape.steps, **TOL)[1]
        finally:
            field.theta = theta

    rng, worst = np.random.default_rng(1), 0.0
    for _ in range(3):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v)
        fd = _fd5(lambda th: loss(th, y0), theta, v, FD_STEP)
        worst = max(worst, abs(res.dL_dtheta @ v - fd) / abs(fd))
        fd = _fd5(penalty_only, theta, v, FD_STEP)
        worst = max(worst, abs(only_penalty.dL_dtheta @ v - fd) / abs(fd))
        w = rng.normal(size=y0.shape)
        w /= np.linalg.norm(w)
        fd = _fd5(lambda y: loss(theta, y), y0, w, FD_STEP)
        worst = max(worst, abs(np.sum(res.dL_dh0 * w) - fd) / abs(fd))
        fd = _fd5(lambda y: lam * solver_error.replay_penalty(_ty(field), y, tape.steps,
                                                              **TOL)[1], y0, w, FD_STEP)
        worst = max(worst, abs(np.sum(only_penalty.dL_dh0 * w) - fd) / abs(fd))
    assert worst <= FD_RTOL, f"max relative error {worst:.2e} against frozen-grid differences"


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_model_gradient_is_exact_for_the_frozen_grid(controller):
    model = NeuralODE(2, n_classes=3, augment_dim=1, hidden=(6, 5), time_dependent=True,
                      reg="solver_error", lam=0.5, seed=3, controller=controller, **TOL)
    model.theta = 3.0 * model.theta              # enough steps for the penalty to matter
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), np.arange(6) % 3
    loss, grad, stats = model.loss_and_grad(X, y)
    assert model.gradient == "discrete" and len(stats["steps"]) > 3
    assert stats["loss_reg"] > 1e-3 * loss
    assert loss == pytest.approx(model.loss(X, y), rel=1e-13)
    theta = model.theta

    def frozen(th):
        model.theta = th
        try:
            return model.loss(X, y, steps=stats["steps"])
        finally:
            model.theta = theta

    worst = 0.0
    for _ in range(3):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v)
        fd = _fd5(frozen, theta, v, 1e-4)
        worst = max(worst, abs(grad @ v - fd) / abs(fd))
    assert worst <= FD_RTOL, f"max relative error {worst:.2e}"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lam"):
        NeuralODE(2, reg="solver_error", lam=-1.0)
    with pytest.raises(ValueError, match="lam"):
        TrainConfig(reg="solver_error", lam=-0.1)
    with pytest.raises(ValueError, match="reg_at"):
        NeuralODE(2, reg="solver_error", lam=1.0, reg_at="trajectory")
    with pytest.raises(ValueError, match="lam2"):
        TrainConfig(reg="solver_error", lam=1.0, lam2=0.5)
    field = _field()
    y0 = np.zeros((4, 3))
    plain = discrete.forward(_ty(field), y0, (0.0, 1.0), **TOL)
    with pytest.raises(ValueError, match="keep_derivatives"):
        solver_error.taped_penalty(plain, 1.0, True, **TOL)
    with pytest.raises(ValueError, match="stage_bar"):
        discrete.backprop(plain, _tya(field), y0, field.n_params,
                          stage_bar=np.zeros((len(plain.steps), 6, 4, 3)))
    with pytest.raises(ValueError, match="state_bar"):
        discrete.backprop(plain, _tya(field), y0, field.n_params,
                          state_bar=np.zeros((len(plain.steps), 4, 3)))


def test_training_records_the_penalty_and_differs_from_none(tmp_path):
    small = TrainConfig(epochs=2, n_train=60, n_test=50, batch_size=30, hidden=(6,),
                        reg="solver_error", lam=1.0)
    state, summary = train(small, tmp_path / "se")
    assert summary["status"] == "finished" and np.isfinite(summary["test_accuracy"])
    history = read_json(tmp_path / "se" / "history.json")
    assert all(row["loss_reg"] > 0 for row in history)
    assert all(row["nfe_backward"] > 0 for row in history)     # the discrete sweep's VJPs
    plain, _ = train(small.replace(reg="none", lam=0.0), tmp_path / "none")
    assert not np.array_equal(plain.model.theta, state.model.theta)


@pytest.mark.slow
def test_cli_trains_with_solver_error(tmp_path):
    result = _cli("train", "--reg", "solver_error", "--lam", "0.1", "--epochs", "2",
                  "--n-train", "100", "--n-test", "100", "--hidden", "8", "--out",
                  str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_json(tmp_path / "summary.json")["status"] == "finished"
    assert read_json(tmp_path / "history.json")[-1]["loss_reg"] > 0


@pytest.mark.slow
def test_cli_refuses_solver_error_on_the_trajectory(tmp_path):
    result = _cli("train", "--reg", "solver_error", "--reg-at", "trajectory", "--out",
                  str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "reg_at must be 't0'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
