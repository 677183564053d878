"""The solver-heuristic penalty of Pal et al. (2021): the local error estimates of the solve.

``reg="solver_error"`` penalises what the step-size controller itself measures: the embedded
error estimate ``E_j`` of every accepted step ``j`` of the forward DP5 solve, weighted by the
step's length,

    R_E = Σ_j E_j |h_j|,   E_j = RMS_i( a_ji / s_ji ),   a_j = h_j Σ_s e_s K_js,
    s_ji = atol + rtol · max(|y_j,i|, |y_{j+1},i|),

in exactly the controller's scaled RMS norm and with the controller's own error weights ``e``
(SciPy's ``E`` or torchdiffeq's Shampine weights, :mod:`odejac.tableau`), so ``E_j`` is the
``error_ratio`` column of the step log (≤ 1 for an accepted step). The accepted step grid is
held fixed, as Pal et al. do: ``R_E`` is then a smooth function (almost everywhere: ``|·|``
and ``max`` have kinks) of θ and ``h(t0)`` through the taped stages ``K_js = f(T_js, Y_js)``
and the states ``y_j``. Its gradient is carried by :func:`odejac.discrete.backprop` as extra
cotangents on the stages and states. Derivation: ``docs/regularisers.md`` §9.

Reference: A. Pal, Y. Ma, V. Shah, C. Rackauckas, "Opening the blackbox: accelerating neural
differential equations by regularizing internal solver heuristics", ICML 2021.
"""
import numpy as np

from . import discrete
from .tableau import DOPRI5


def _weights(controller):
    """The controller's error weights ``e`` (7,): SciPy's ``b̂ − b`` or Shampine's."""
    return DOPRI5.e_scipy if controller == "scipy" else DOPRI5.e_shampine


def penalty(stage_k, stage_y, steps, rtol, atol):
    """``R_E``, the per-step estimates ``E_j`` and ``∂R_E`` w.r.t. the stages and states.

    Parameters
    ----------
    stage_k : ndarray, shape (N, 7, *state_shape)
        ``K_js``, the field at the taped stages of the ``N`` accepted steps.
    stage_y : ndarray, shape (N, 7, *state_shape)
        The stage states; ``stage_y[j, 0] = y_j`` and ``stage_y[j, 6] = y_{j+1}``.
    steps : odejac.discrete.StepSequence
        The frozen grid (its ``controller`` picks the error weights).
    rtol, atol : float
        The tolerances of the forward solve (they set the norm's scale).

    Returns
    -------
    value : float
        ``R_E = Σ_j E_j |h_j|``.
    E : ndarray, shape (N,)
    stage_bar : ndarray, shape (N, 7, *state_shape)
        ``∂R_E/∂K_js``.
    state_bar : ndarray, shape (N + 1, *state_shape)
        ``∂R_E/∂y_j`` through the scale ``s_j`` (``y_N`` the last step's end point).
    """
    n_steps = len(steps)
    shape = stage_k.shape[2:]
    if stage_k.shape != stage_y.shape or stage_k.shape[:2] != (n_steps, 7):
        raise ValueError(f"stage_k and stage_y must have shape ({n_steps}, 7, ...); got "
                         f"{stage_k.shape} and {stage_y.shape}")
    K = stage_k.reshape(n_steps, 7, -1)
    y, y_new = stage_y[:, 0].reshape(n_steps, -1), stage_y[:, -1].reshape(n_steps, -1)
    n = K.shape[2]
    e, h = _weights(steps.controller), steps.h
    a = h[:, None] * np.einsum("s,jsi->ji", e, K)
    take_start = np.abs(y) >= np.abs(y_new)
    scale = atol + rtol * np.where(take_start, np.abs(y), np.abs(y_new))
    r = a / scale
    E = np.sqrt(np.sum(r * r, axis=1) / n)
    value = float(np.sum(E * np.abs(h)))
    # dR/dr_ji = |h_j| r_ji / (n E_j); a step whose estimate is exactly 0 contributes 0.
    safe = np.where(E > 0.0, E, 1.0)
    r_bar = np.where(E[:, None] > 0.0, (np.abs(h) / (n * safe))[:, None] * r, 0.0)
    a_bar = r_bar / scale                                   # r = a / s
    stage_bar = (h[:, None, None] * e[None, :, None]) * a_bar[:, None, :]
    s_bar = -r_bar * r / scale                              # ∂r/∂s = −r/s
    state_bar = np.zeros((n_steps + 1, n))
    state_bar[:-1] += np.where(take_start, rtol * np.sign(y) * s_bar, 0.0)
    state_bar[1:] += np.where(take_start, 0.0, rtol * np.sign(y_new) * s_bar)
    return (value, E, stage_bar.reshape(stage_k.shape),
            state_bar.reshape((n_steps + 1,) + shape))


def taped_penalty(tape, weight, active, rtol, atol):
    """``R_E`` of a taped solve and the cotangents of ``weight · R_E`` for ``backprop``.

    ``tape`` must come from :func:`odejac.discrete.forward` with ``keep_derivatives=True``.
    Returns ``(R_E, {"stage_bar": ..., "state_bar": ...})``, or ``(0.0, {})`` if not
    ``active`` (another penalty, or none, is trained).
    """
    if not active:
        return 0.0, {}
    if tape.stage_k is None:
        raise ValueError("the tape has no stage derivatives; run discrete.forward with "
                         "keep_derivatives=True")
    value, _, stage_bar, state_bar = penalty(tape.stage_k, tape.stage_y, tape.steps, rtol, atol)
    return value, {"stage_bar": weight * stage_bar, "state_bar": weight * state_bar}


def replay_penalty(f, y0, steps, rtol, atol):
    """``(y1, R_E)`` of the frozen grid ``steps`` replayed from ``y0`` (finite differences).

    The stage derivatives are re-evaluated at the replayed stages, independently of any tape.
    """
    y1, stage_t, stage_y = discrete.replay(f, y0, steps, keep_stages=True)
    stage_k = np.empty_like(stage_y)
    for j in range(len(steps)):
        for s in range(stage_y.shape[1]):
            stage_k[j, s] = f(stage_t[j, s], stage_y[j, s])
    return y1, penalty(stage_k, stage_y, steps, rtol, atol)[0]


def solve(f, y0, t_span, steps, *, rtol, atol, controller, max_steps):
    """``(y1, R_E)`` on ``steps``, or on the grid an adaptive solve from ``y0`` accepts if None.

    Without gradients (:meth:`odejac.model.NeuralODE.loss`); with ``steps`` given, finite
    differences of the result see the discrete computation on that frozen grid.
    """
    if steps is None:   # the adaptive solve's own tape: no replay, no second pass over f
        tape = discrete.forward(f, y0, t_span, rtol=rtol, atol=atol, controller=controller,
                                max_steps=max_steps, keep_derivatives=True)
        return tape.y1, penalty(tape.stage_k, tape.stage_y, tape.steps, rtol, atol)[0]
    return replay_penalty(f, y0, steps, rtol, atol)
