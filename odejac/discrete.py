"""The exact gradient of the discrete Dormand–Prince computation (discretise-then-optimise).

The adjoint method (:mod:`odejac.adjoint`) differentiates the ODE and then solves the adjoint
ODE numerically ("optimise-then-discretise"): its gradient is accurate to the tolerance of two
solves, but it is not the gradient of any quantity the computer evaluated. This module does the
other thing: it takes the loss *as computed* by one adaptive solve and backpropagates exactly
through the arithmetic of its accepted steps, stage by stage, in reverse, with the step sizes
held fixed. The result is the gradient of the discrete map ``θ ↦ y_N(θ)`` on that frozen step
sequence, exact to round-off. It is *not* the gradient of the adaptive solve's loss: the step
sizes move smoothly with θ between accept/reject switches, and that dependence is dropped (as
diffrax does by stopping gradients through the controller). ``tests/test_discrete.py`` checks it
against central differences of :func:`replay`; see ``docs/adjoint.md`` §6, "Discretise-then-
optimise".

Three pieces:

* :func:`forward` runs the usual adaptive solve with the step log on and *tapes* the input
  ``(t, y)`` of every evaluation of ``f``; the log tells which attempts were accepted, and the
  driver's fixed evaluation order (2 start-up evaluations, then 6 per attempt, the NFE formula
  of ``docs/dormand_prince.md``) says which evaluations belong to them.
* :func:`backprop` is the reverse sweep: through the torchdiffeq dense output at ``t1`` (or
  nothing for SciPy's clipped last step), then through each accepted step's seven stages with
  the field's vector-Jacobian product ``vjp(t, y, a)`` (for an MLP, ``MLP._vjp``, the same
  kernel the adjoint uses).
* :func:`replay` re-runs the frozen step sequence with fixed steps, operation for operation as
  the driver does (plain NumPy, a reference path), so finite differences of the discrete
  computation can be taken with the steps frozen (:mod:`odejac._discrete_replay`).

Every callable takes time first, ``f(t, y)`` and ``vjp(t, y, a)``, as :func:`odejac.odeint`
and :func:`odejac.adjoint_solve` do.

Cost: ``6 N + 1`` VJP evaluations for ``N`` accepted steps (no backward solve, no step
rejections) and memory for the ``7 N`` taped stage states — the price the adjoint method avoids.
"""
from dataclasses import dataclass

import numpy as np

# replay and its dense output live in odejac._discrete_replay (re-exported here).
from ._discrete_replay import _N_STAGES, _dense_output, replay  # noqa: F401
from .adjoint import AdjointResult
from .integrate import CONTROLLERS, error_groups, solve_flat
from .tableau import DOPRI5

#: Evaluations before the first attempt: f(t0, y0) and the initial-step trial.
_STARTUP_EVALS = 2
#: New evaluations per attempt (stages 1..6; stage 0 is the previous FSAL stage).
_EVALS_PER_ATTEMPT = _N_STAGES - 1


@dataclass(frozen=True)
class StepSequence:
    """The accepted steps of one adaptive solve: the discretisation to hold fixed.

    Attributes
    ----------
    t_span : (float, float)
        ``(t0, t1)`` of the solve.
    controller : {"torchdiffeq", "scipy"}
        Whose arithmetic to replay (order of operations, perturbed stage times, and the dense
        output at ``t1`` for torchdiffeq, whose last step overshoots ``t1``).
    t : ndarray, shape (N,)
        Start time of each accepted step.
    h : ndarray, shape (N,)
        Its signed size (negative when integrating backwards); SciPy's last step is clipped.
    """

    t_span: tuple
    controller: str
    t: np.ndarray
    h: np.ndarray

    def __post_init__(self):
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {sorted(CONTROLLERS)}; "
                             f"got {self.controller!r}")
        t, h = np.asarray(self.t, dtype=np.float64), np.asarray(self.h, dtype=np.float64)
        if t.ndim != 1 or t.shape != h.shape or t.size == 0:
            raise ValueError(f"t and h must be non-empty 1-D arrays of one length; "
                             f"got shapes {t.shape} and {h.shape}")
        if t[0] != self.t_span[0]:
            raise ValueError(f"the first step must start at t0 = {self.t_span[0]}; got {t[0]}")
        if not np.all(h * (self.t_span[1] - self.t_span[0]) > 0):
            raise ValueError("every step must point from t0 towards t1")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "h", h)

    @classmethod
    def from_log(cls, log, t_span, controller):
        """The accepted rows of a step log (columns :data:`odejac.LOG_COLUMNS`)."""
        accepted = log[:, 3] == 1.0
        return cls(tuple(float(t) for t in t_span), controller, log[accepted, 0].copy(),
                   log[accepted, 1].copy())

    def __len__(self):
        return self.t.size


@dataclass(frozen=True)
class Tape:
    """What the reverse sweep needs from one forward solve.

    Attributes
    ----------
    steps : StepSequence
    stage_t : ndarray, shape (N, 7)
        Times at which the field was evaluated in each accepted step (stage 0 is the previous
        step's FSAL stage, or ``t0``).
    stage_y : ndarray, shape (N, 7, *state_shape)
        The states it was evaluated at: ``Y_s = y + h Σ_{j<s} A_sj K_j``.
    y1 : ndarray, state_shape
        The computed ``y(t1)``.
    nfe, n_accepted, n_rejected : int
        Cost of the forward solve.
    log : ndarray, shape (attempts, 5)
        Its step log.
    stage_k : ndarray, shape (N, 7, *state_shape) or None
        ``K_s = f(T_s, Y_s)`` at those stages, if taped (``keep_derivatives``).
    """

    steps: StepSequence
    stage_t: np.ndarray
    stage_y: np.ndarray
    y1: np.ndarray
    nfe: int
    n_accepted: int
    n_rejected: int
    log: np.ndarray
    stage_k: np.ndarray = None


def forward(f, y0, t_span, *, rtol, atol, controller="torchdiffeq",
            max_steps=100_000, keep_derivatives=False):
    """Adaptive solve of ``dy/dt = f(t, y)`` that tapes the accepted steps' stages.

    Parameters
    ----------
    f : callable
        ``f(t, y) -> dy/dt`` for ``y`` of shape ``y0.shape``.
    y0 : ndarray, shape (B, D)
    t_span : (float, float)
    rtol, atol : float
    controller : {"torchdiffeq", "scipy"}
    max_steps : int
    keep_derivatives : bool
        Also tape the field's values at the stages (``tape.stage_k``; the solver-error
        penalty of :mod:`odejac.solver_error` reads them).

    Returns
    -------
    Tape
        ``tape.y1`` is bit-identical to the plain solve's result (same driver, same field).
    """
    shape = y0.shape
    evals_t, evals_y, evals_k = [], [], []

    def rhs(t, y):
        evals_t.append(t)
        evals_y.append(y.copy())
        out = np.ascontiguousarray(f(t, y.reshape(shape))).reshape(-1)
        if keep_derivatives:
            evals_k.append(out.copy())
        return out

    y1, nfe, n_acc, n_rej, log = solve_flat(
        rhs, np.ascontiguousarray(y0, dtype=np.float64).reshape(-1).copy(), t_span, rtol, atol,
        controller, max_steps, error_groups([y0.size]), True)
    steps = StepSequence.from_log(log, t_span, controller)
    # Evaluation index of stage s (1..6) of attempt i: 2 + 6 i + (s - 1).
    attempts = np.flatnonzero(log[:, 3] == 1.0)
    index = np.empty((attempts.size, _N_STAGES), dtype=np.int64)
    index[:, 1:] = (_STARTUP_EVALS + _EVALS_PER_ATTEMPT * attempts[:, None]
                    + np.arange(_EVALS_PER_ATTEMPT))
    index[0, 0] = 0                   # f(t0, y0)
    index[1:, 0] = index[:-1, -1]     # FSAL: stage 0 is the previous accepted stage 6
    stage_t = np.asarray(evals_t)[index]
    stage_y = np.stack([evals_y[i] for i in index.ravel()]).reshape(index.shape + shape)
    stage_k = (np.stack([evals_k[i] for i in index.ravel()]).reshape(index.shape + shape)
               if keep_derivatives else None)
    return Tape(steps=steps, stage_t=stage_t, stage_y=stage_y, y1=y1.reshape(shape), nfe=nfe,
                n_accepted=n_acc, n_rejected=n_rej, log=log, stage_k=stage_k)


# ----------------------------------------------------------------------- reverse sweep

def dense_output_weights(x):
    """Weights of torchdiffeq's 4th-order dense output at fraction ``x`` of the last step.

    ``y(x) = w_0 y_0 + w_1 y_1 + w_m y_mid + h (w_f0 f_0 + w_f1 f_1)`` (``_dp5_loops.interpolate``
    is linear in its five inputs); these are also the factors of the reverse sweep
    (``docs/dormand_prince.md`` (5.3)).

    Returns
    -------
    dict
        ``{"y0", "y1", "y_mid", "f0", "f1"}`` → float (``f`` weights without the ``h``).
    """
    x2, x3, x4 = x * x, x ** 3, x ** 4
    return {"y0": 1.0 - 11.0 * x2 + 18.0 * x3 - 8.0 * x4,
            "y1": -5.0 * x2 + 14.0 * x3 - 8.0 * x4,
            "y_mid": 16.0 * x2 - 32.0 * x3 + 16.0 * x4,
            "f0": x - 4.0 * x2 + 5.0 * x3 - 2.0 * x4,
            "f1": x2 - 3.0 * x3 + 2.0 * x4}


def _step_backward(vjp, times, states, h, ybar_end, kbar, g_theta):
    """Reverse one accepted step ``y_{k+1} = Y_6``, ``Y_s = y_k + h Σ_{j<s} A_sj K_j``.

    ``kbar : (7, ...)`` holds the cotangents the rest of the computation sends to the step's
    stages ``K_s = f(Y_s, T_s)``; it is completed in place (``kbar[0]`` ends as the full
    cotangent of ``K_0``, owed to the previous step's FSAL stage). Stages are visited 6 → 1,
    so ``kbar[s]`` is complete when stage ``s`` is reached (only later stages use ``K_s``).
    Returns ``ȳ_k`` and adds ``Σ_s K̄_sᵀ ∂f/∂θ (Y_s)`` into ``g_theta``.
    """
    A = DOPRI5.A
    ybar_start = np.zeros_like(ybar_end)
    for s in range(_N_STAGES - 1, 0, -1):
        g_h, g_th = vjp(times[s], states[s], kbar[s])      # K̄_sᵀ ∂f/∂(Y_s, θ)
        g_theta += g_th
        Ybar = g_h + ybar_end if s == _N_STAGES - 1 else g_h
        ybar_start += Ybar                                   # Y_s = y_k + ...
        for j in range(s):
            if A[s, j] != 0.0:
                kbar[j] += (A[s, j] * h) * Ybar              # ... + h A_sj K_j
    return ybar_start


def _checked_once(vjp, shape, n_params):
    """``vjp`` whose first call's output shapes are checked (a clear error, not a broadcast)."""
    state = {"checked": False}

    def checked(t, y, a):
        out = vjp(t, y, a)
        if not state["checked"]:
            g_h, g_theta = out
            if np.shape(g_h) != shape or np.shape(g_theta) != (n_params,):
                raise ValueError(f"vjp(t, y, a) returned shapes {np.shape(g_h)} and "
                                 f"{np.shape(g_theta)}; expected {shape} and ({n_params},) "
                                 f"(n_params)")
            state["checked"] = True
        return out
    return checked


def backprop(tape, vjp, dL_dy1, n_params=None, *, stage_bar=None, state_bar=None):
    """Reverse-mode derivative of the taped DP5 computation, step sizes held fixed.

    Parameters
    ----------
    tape : Tape
        From :func:`forward` (or built from :func:`replay` with ``keep_stages``).
    vjp : callable
        ``vjp(t, y, a) -> (aᵀ ∂f/∂y (B, D), Σ_b aᵀ ∂f/∂θ (P,))``.
    dL_dy1 : ndarray, shape (B, D)
        ``∂L/∂y(t1)``.
    n_params : int, optional
        ``P``; read off the first VJP if not given, checked against it if given.
    stage_bar, state_bar : ndarray, shapes (N, 7, B, D) and (N + 1, B, D), optional
        Further cotangents of a loss that also reads the stage derivatives ``K_js`` and the
        step end points ``y_j`` (``y_N`` the last step's end, not the dense output), such as
        the solver-error penalty (:mod:`odejac.solver_error`).

    Returns
    -------
    AdjointResult
        ``dL_dh0`` and ``dL_dtheta`` of the discrete computation; ``h0`` is the taped
        ``y(t0)`` (exact: nothing is retraced); ``nfe`` counts the ``6 N + 1`` VJPs.
    """
    steps = tape.steps
    n_steps = len(steps)
    dL_dy1 = np.asarray(dL_dy1, dtype=np.float64)
    if dL_dy1.shape != tape.y1.shape:
        raise ValueError(f"dL_dy1 has shape {dL_dy1.shape}; expected {tape.y1.shape}")
    for name, extra, lead in (("stage_bar", stage_bar, (n_steps, _N_STAGES)),
                              ("state_bar", state_bar, (n_steps + 1,))):
        if extra is not None and np.shape(extra) != lead + dL_dy1.shape:
            raise ValueError(f"{name} has shape {np.shape(extra)}; expected "
                             f"{lead + dL_dy1.shape}")
    if n_params is None:     # one probe VJP (not counted) tells P
        n_params = np.size(vjp(tape.stage_t[0, 0], tape.stage_y[0, 0], np.zeros_like(dL_dy1))[1])
    vjp = _checked_once(vjp, dL_dy1.shape, int(n_params))
    g_theta = np.zeros(int(n_params))
    kbar = np.zeros((_N_STAGES,) + dL_dy1.shape)
    ybar_end = np.array(dL_dy1, dtype=np.float64)
    ybar_extra = np.zeros_like(ybar_end)     # cotangents sent straight to y_k (dense output)
    last_t, last_h = steps.t[-1], steps.h[-1]
    if steps.controller == "torchdiffeq":
        # y(t1) = w_0 y_{N-1} + w_1 y_N + w_m y_mid + step (w_f0 K_0 + w_f1 K_6), on step N-1,
        # with y_mid = y_{N-1} + h Σ_j c_mid_j K_j.
        step = (last_t + last_h) - last_t
        w = dense_output_weights((steps.t_span[1] - last_t) / step)
        ybar = ybar_end
        ybar_end = w["y1"] * ybar
        mid_bar = w["y_mid"] * ybar
        ybar_extra = w["y0"] * ybar + mid_bar
        kbar += (DOPRI5.c_mid * last_h).reshape((-1,) + (1,) * mid_bar.ndim) * mid_bar
        kbar[0] += (w["f0"] * step) * ybar
        kbar[-1] += (w["f1"] * step) * ybar
    for k in range(n_steps - 1, -1, -1):
        if stage_bar is not None:
            kbar += stage_bar[k]
        if state_bar is not None:
            ybar_end = ybar_end + state_bar[k + 1]
        ybar_start = _step_backward(vjp, tape.stage_t[k], tape.stage_y[k], steps.h[k],
                                    ybar_end, kbar, g_theta) + ybar_extra
        fsal_bar = kbar[0].copy()            # K_0 of step k is K_6 of step k - 1
        kbar[:] = 0.0
        kbar[-1] = fsal_bar
        ybar_end, ybar_extra = ybar_start, 0.0
    g_h, g_th = vjp(tape.stage_t[0, 0], tape.stage_y[0, 0], kbar[-1])   # K_0 = f(t0, y0)
    g_theta += g_th
    if state_bar is not None:
        ybar_end = ybar_end + state_bar[0]
    return AdjointResult(dL_dh0=ybar_end + g_h, dL_dtheta=g_theta,
                         h0=tape.stage_y[0, 0].copy(), nfe=_EVALS_PER_ATTEMPT * n_steps + 1,
                         n_accepted=n_steps, n_rejected=0)
