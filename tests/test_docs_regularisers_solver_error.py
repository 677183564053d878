"""docs/regularisers.md §9, the solver-heuristic penalty, checked against the code (``reg_9``).

Split off ``test_docs_regularisers.py`` (the page's other sections; its helpers are shared)
because §9 is an idea of its own: the local error estimates of the accepted DP5 steps
(:mod:`odejac.solver_error`, Pal et al. 2021), their cotangents and the discrete training
gradient they feed. Formulas are written out again here, independently of the code, and
compared with what the code computes.
"""
import numpy as np
import pytest

from odejac.mlp import MLP
from odejac.model import NeuralODE
from odejac.tableau import DOPRI5
from test_docs_regularisers import _fd

CONTROLLERS = ("scipy", "torchdiffeq")
SE_TOL = dict(rtol=1e-5, atol=1e-5)


def _se_tape(controller, seed=0):
    """A taped solve of a stiff-ish MLP field with several accepted and rejected steps."""
    from odejac import discrete
    field = MLP(3, hidden=(7, 5), time_dependent=True, seed=1)
    field.theta = 4.0 * field.theta
    y0 = np.random.default_rng(seed).normal(size=(4, 3))
    tape = discrete.forward(lambda t, y: field._f(y, t), y0, (0.0, 1.5), controller=controller,
                            keep_derivatives=True, **SE_TOL)
    return field, y0, tape


def _se_by_hand(stage_k, stage_y, h, e, rtol, atol):
    """(9.1)–(9.2) written out step by step: R_E, E, K̄ and ȳ."""
    N, n = len(h), stage_k[0, 0].size
    R, E = 0.0, np.zeros(N)
    K_bar, y_bar = np.zeros_like(stage_k), np.zeros((N + 1,) + stage_k.shape[2:])
    for j in range(N):
        y, y_next = stage_y[j, 0], stage_y[j, 6]
        a = h[j] * sum(e[s] * stage_k[j, s] for s in range(7))
        s_j = atol + rtol * np.maximum(np.abs(y), np.abs(y_next))
        r = a / s_j
        E[j] = np.sqrt(np.sum(r**2) / n)
        R += E[j] * abs(h[j])
        r_bar = abs(h[j]) * r / (n * E[j])
        for s in range(7):
            K_bar[j, s] = h[j] * e[s] * r_bar / s_j
        s_bar = -r_bar * r / s_j
        first = np.abs(y) >= np.abs(y_next)
        y_bar[j] += np.where(first, rtol * np.sign(y) * s_bar, 0.0)
        y_bar[j + 1] += np.where(first, 0.0, rtol * np.sign(y_next) * s_bar)
    return R, E, K_bar, y_bar


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_reg_9_error_estimate_is_the_controllers_ratio(controller):
    """§9 (9.1): E_j (scaled RMS of Δ_j Σ e_s K_js) is the log's error ratio; R_E = Σ E_j|Δ_j|."""
    from odejac import solver_error
    _, _, tape = _se_tape(controller)
    e = DOPRI5.e_scipy if controller == "scipy" else DOPRI5.e_shampine
    R, E, _, _ = _se_by_hand(tape.stage_k, tape.stage_y, tape.steps.h, e, **SE_TOL)
    accepted = tape.log[tape.log[:, 3] == 1.0]
    assert len(E) > 5 and np.all(E <= 1.0)
    np.testing.assert_allclose(E, accepted[:, 2], rtol=1e-9)
    value, E_code, _, _ = solver_error.penalty(tape.stage_k, tape.stage_y, tape.steps, **SE_TOL)
    np.testing.assert_allclose(E_code, E, rtol=1e-12)
    assert value == pytest.approx(R, rel=1e-12)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_reg_9_cotangents(controller):
    """§9 (9.2): ∂R_E/∂K and ∂R_E/∂y_j by hand = the code's = central differences of (9.1)."""
    from odejac import solver_error
    _, _, tape = _se_tape(controller)
    e = DOPRI5.e_scipy if controller == "scipy" else DOPRI5.e_shampine
    _, _, K_bar, y_bar = _se_by_hand(tape.stage_k, tape.stage_y, tape.steps.h, e, **SE_TOL)
    _, _, K_code, y_code = solver_error.penalty(tape.stage_k, tape.stage_y, tape.steps, **SE_TOL)
    np.testing.assert_allclose(K_code, K_bar, rtol=1e-12, atol=1e-14 * np.abs(K_bar).max())
    np.testing.assert_allclose(y_code, y_bar, rtol=1e-12, atol=1e-14 * np.abs(y_bar).max())
    rng = np.random.default_rng(2)
    of_K = lambda K: solver_error.penalty(K, tape.stage_y, tape.steps, **SE_TOL)[0]
    V = rng.normal(size=tape.stage_k.shape)     # (9.1) reads each K_js entry on its own
    expected = np.sum(K_code * V)
    # r = Δ e·K / s with s ~ 1e-5 is steep in K: a short step keeps the ε² truncation small.
    assert _fd(of_K, tape.stage_k, V, step=1e-8) == pytest.approx(expected, rel=1e-6)

    def of_y(U):      # move the step end points y_j (stage 0 of step j, stage 6 of step j-1)
        Y = tape.stage_y.copy()
        Y[:, 0] += U[:-1]
        Y[:, 6] += U[1:]
        return solver_error.penalty(tape.stage_k, Y, tape.steps, **SE_TOL)[0]

    U = rng.normal(size=y_code.shape)
    assert _fd(of_y, np.zeros_like(U), U) == pytest.approx(np.sum(y_code * U), rel=1e-7)


def test_reg_9_training_gradient():
    """§9 (9.3): one discrete sweep seeded by ∂CE/∂y(t1) and λ(K̄, ȳ) is the model's gradient."""
    from odejac import discrete, solver_error
    from odejac.model import softmax
    model = NeuralODE(2, n_classes=3, augment_dim=1, hidden=(6, 5), reg="solver_error", lam=0.4,
                      seed=3, **SE_TOL)
    model.theta = 3.0 * model.theta
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(6, 2)), np.arange(6) % 3
    loss, grad, stats = model.loss_and_grad(X, y)
    h0 = model.initial_state(X)
    tape = discrete.forward(model._f_ty, h0, (0.0, 1.0), keep_derivatives=True, **SE_TOL)
    value, _, K_bar, y_bar = solver_error.penalty(tape.stage_k, tape.stage_y, tape.steps,
                                                  **SE_TOL)
    p = softmax(tape.y1 @ model.W_out + model.b_out)
    p[np.arange(6), y] -= 1.0
    dCE = p / 6 @ model.W_out.T
    sweep = discrete.backprop(tape, model._vjp_tya, dCE, model.field.n_params,
                              stage_bar=0.4 * K_bar, state_bar=0.4 * y_bar)
    P = model.field.n_params
    np.testing.assert_allclose(grad[:P], sweep.dL_dtheta, rtol=1e-12, atol=1e-15)
    assert stats["loss_reg"] == pytest.approx(0.4 * value, rel=1e-12)
    ce_only = discrete.backprop(tape, model._vjp_tya, dCE, P).dL_dtheta
    assert np.linalg.norm(grad[:P] - ce_only) > 1e-3 * np.linalg.norm(ce_only)


def test_reg_9_next_step():
    """§9 (9.4): after an accepted step torchdiffeq tries Δ_j · min(10, max(1, 0.9 E_j^(-1/5)))."""
    _, _, tape = _se_tape("torchdiffeq")
    log = tape.log
    checked = 0
    for i in np.flatnonzero(log[:-1, 3] == 1.0):
        E = log[i, 2]
        if 0.0 < E < 1.0:
            expected = log[i, 1] * min(10.0, max(1.0, 0.9 * E ** -0.2))
            assert log[i + 1, 1] == pytest.approx(expected, rel=1e-12)
            checked += 1
    assert checked > 3
