"""The exact gradient of the discrete DP5 computation (odejac/discrete.py, gradient="discrete")."""
import numpy as np
import pytest

from odejac import discrete, odeint
from odejac.discrete import StepSequence
from odejac.mlp import MLP
from odejac.model import NeuralODE


def _ty(field):
    """The field's ``_f(h, t)`` in the solvers' order ``f(t, y)``."""
    return lambda t, y: field._f(y, t)


def _tya(field):
    """The field's ``_vjp(h, t, a)`` as ``vjp(t, y, a)``."""
    return lambda t, y, a: field._vjp(y, t, a)


CONTROLLERS = ("torchdiffeq", "scipy")
FROZEN_STEP = 1e-3   # 5-point stencil on the frozen computation: truncation ~ε⁴, rounding ~1e-13/ε
ADAPTIVE_STEP = 1e-5
STENCIL = ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))


def _field(time_dependent=True, scale=4.0, seed=1):
    field = MLP(3, hidden=(7, 5), time_dependent=time_dependent, seed=seed)
    field.theta = scale * field.theta          # stiff enough for several steps and rejections
    return field


def _fd5(fun, x, v, step):
    return sum(w * fun(x + k * step * v) for k, w in STENCIL) / step


@pytest.mark.parametrize("t_span", [(0.0, 1.5), (1.0, -0.5)])
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_replay_and_tape_reproduce_the_adaptive_solve_bit_for_bit(controller, t_span):
    field = _field()
    y0 = np.random.default_rng(0).normal(size=(4, 3))
    sol = odeint(lambda t, y: field._f(y, t), y0, t_span, rtol=1e-6, atol=1e-6,
                 controller=controller)
    tape = discrete.forward(_ty(field), y0, t_span, rtol=1e-6, atol=1e-6, controller=controller)
    assert tape.n_rejected > 0 and len(tape.steps) == sol.n_accepted
    assert tape.nfe == sol.nfe
    np.testing.assert_array_equal(tape.y1, sol.y)
    y1, stage_t, stage_y = discrete.replay(_ty(field), y0, tape.steps, keep_stages=True)
    np.testing.assert_array_equal(y1, sol.y)
    np.testing.assert_array_equal(stage_t, tape.stage_t)
    np.testing.assert_array_equal(stage_y, tape.stage_y)


@pytest.mark.parametrize("time_dependent", [False, True])
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_gradient_matches_frozen_finite_differences_to_round_off(controller, time_dependent):
    field = _field(time_dependent)
    rng = np.random.default_rng(1)
    y0, cot = rng.normal(size=(2, 4, 3))
    tape = discrete.forward(_ty(field), y0, (0.0, 1.5), rtol=1e-6, atol=1e-6,
                            controller=controller)
    res = discrete.backprop(tape, _tya(field), cot, field.n_params)
    assert res.nfe == 6 * len(tape.steps) + 1 and res.n_rejected == 0
    theta = field.theta

    def loss_theta(th):
        field.theta = th
        try:
            return np.sum(cot * discrete.replay(_ty(field), y0, tape.steps))
        finally:
            field.theta = theta

    worst = 0.0
    for _ in range(4):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v)
        fd = _fd5(loss_theta, theta, v, FROZEN_STEP)
        worst = max(worst, abs(res.dL_dtheta @ v - fd) / abs(fd))
        w = rng.normal(size=y0.shape)
        w /= np.linalg.norm(w)
        fd_h = _fd5(lambda y: np.sum(cot * discrete.replay(_ty(field), y, tape.steps)), y0, w,
                    FROZEN_STEP)
        worst = max(worst, abs(np.sum(res.dL_dh0 * w) - fd_h) / abs(fd_h))
    assert worst <= 1e-8, f"max relative error {worst:.2e} against frozen-step differences"


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), np.arange(n) % 2


@pytest.mark.parametrize("reg", ["none", "condition"])
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_model_discrete_gradient_is_exact_for_the_computed_loss(controller, reg):
    model = NeuralODE(2, augment_dim=1, hidden=(6, 5), time_dependent=True, reg=reg,
                      lam=0.3 if reg != "none" else 0.0, seed=3, rtol=1e-4, atol=1e-4,
                      controller=controller, gradient="discrete")
    X, y = _data()
    loss, grad, stats = model.loss_and_grad(X, y)
    steps = stats["steps"]
    assert loss == model.loss(X, y) == model.loss(X, y, steps=steps)
    assert stats["nfe_backward"] == 6 * len(steps) + 1
    theta = model.theta

    def frozen(th):
        model.theta = th
        try:
            return model.loss(X, y, steps=steps)
        finally:
            model.theta = theta

    rng = np.random.default_rng(2)
    # The condition penalty is strongly curved: a smaller stencil step keeps ε⁴ small.
    step = FROZEN_STEP if reg == "none" else 1e-5
    worst = 0.0
    for _ in range(4):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v)
        fd = _fd5(frozen, theta, v, step)
        worst = max(worst, abs(grad @ v - fd) / abs(fd))
    assert worst <= 1e-8, f"max relative error {worst:.2e}"


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_model_discrete_gradient_matches_adaptive_differences_at_tight_tolerance(controller):
    model = NeuralODE(2, augment_dim=1, hidden=(6, 5), seed=3, rtol=1e-10, atol=1e-10,
                      controller=controller, gradient="discrete")
    X, y = _data()
    _, grad, stats = model.loss_and_grad(X, y)
    theta = model.theta

    def adaptive(th):
        model.theta = th
        try:
            return model.loss(X, y)
        finally:
            model.theta = theta

    rng = np.random.default_rng(3)
    for _ in range(4):
        v = rng.normal(size=theta.size)
        fd = _fd5(adaptive, theta, v, ADAPTIVE_STEP)
        assert grad @ v == pytest.approx(fd, rel=1e-6)
    model.gradient = "adjoint"
    g_adj, s_adj = model.loss_and_grad(X, y)[1:]
    np.testing.assert_allclose(grad, g_adj, rtol=0, atol=1e-7 * np.abs(grad).max())
    np.testing.assert_allclose(stats["dL_dx"], s_adj["dL_dx"], rtol=0, atol=1e-8)


@pytest.mark.nojit
def test_bad_gradient_option_and_step_sequences_are_refused():
    with pytest.raises(ValueError, match="gradient"):
        NeuralODE(2, gradient="autograd")
    with pytest.raises(ValueError, match="controller"):
        StepSequence((0.0, 1.0), "rk4", np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="t0"):
        StepSequence((0.0, 1.0), "scipy", np.array([0.5]), np.array([0.5]))
    with pytest.raises(ValueError, match="towards t1"):
        StepSequence((0.0, 1.0), "scipy", np.array([0.0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        StepSequence((0.0, 1.0), "scipy", np.array([]), np.array([]))
