"""The DP5 computation replayed on a frozen step sequence: the discrete gradient's reference.

One of the three pieces of :mod:`odejac.discrete` (``forward`` tapes, ``backprop`` reverses,
this replays), kept apart so that ``discrete.py`` stays one readable file and because it is a
separate path: plain NumPy that re-does the adaptive solve's accepted steps with fixed sizes,
operation for operation as the driver (:mod:`odejac._dp5`) does, so the result is bit-identical
to the solve that recorded the steps and finite differences of it differentiate the discrete
computation with the steps held fixed (``tests/test_discrete.py``, ``docs/adjoint.md`` §6).
:mod:`odejac.discrete` re-exports :func:`replay`.
"""
import numpy as np

from . import _dp5_loops
from .tableau import DOPRI5

_N_STAGES = 7
#: The driver's dense output, array-at-a-time (its twin in the driver gives the same bits).
_dense_output = _dp5_loops._interpolate_arrays


def _stage_times(t, h, controller, direction):
    """The 7 evaluation times of a step from ``t`` of size ``h``, as the driver forms them."""
    times = t + DOPRI5.c * h
    if controller == "torchdiffeq":
        # torchdiffeq evaluates c = 1 stages one ulp before the step's end (towards t0).
        last = DOPRI5.c == 1.0
        times[last] = np.nextafter(times[last], -direction * np.inf)
    return times


def _stage_state(y, K, s, h, controller):
    """``Y_s = y + h Σ_{j<s} A_sj K_j`` in the driver's order of operations."""
    A = DOPRI5.A
    if controller == "scipy":          # sum the stages, then scale by h
        acc = A[s, 0] * K[0]
        for j in range(1, s):
            acc = acc + A[s, j] * K[j]
        return y + acc * h
    acc = (A[s, 0] * h) * K[0]         # torchdiffeq scales the coefficients first
    for j in range(1, s):
        acc = acc + (A[s, j] * h) * K[j]
    return y + acc


def _midpoint(y, K, h):
    """torchdiffeq's half-step solution ``y + h Σ_j c_mid_j K_j`` (driver's order)."""
    y_mid = y
    for j in range(_N_STAGES):
        y_mid = y_mid + (DOPRI5.c_mid[j] * h) * K[j]
    return y_mid


def replay(f, y0, steps, *, keep_stages=False):
    """The DP5 computation on a frozen step sequence, operation for operation.

    Reproduces the adaptive solve that recorded ``steps`` bit for bit (the same additions in
    the same order) but takes ``f``'s parameters from wherever ``f`` reads them, so
    differentiating it by finite differences differentiates the discrete computation with the
    steps held fixed. Plain NumPy: a reference path, not a fast one.

    Parameters
    ----------
    f : callable
        ``f(t, y) -> dy/dt``.
    y0 : ndarray, shape (B, D)
    steps : odejac.discrete.StepSequence
    keep_stages : bool
        Also return the stage times and states (the :class:`~odejac.discrete.Tape` arrays).

    Returns
    -------
    y1 : ndarray, shape (B, D)
        ``y_N`` (SciPy) or the dense output at ``t1`` on the last step (torchdiffeq).
    stage_t, stage_y : ndarray, shapes (N, 7) and (N, 7, B, D)
        Only with ``keep_stages``.
    """
    t0, t1 = steps.t_span
    direction = 1.0 if t1 > t0 else -1.0
    mode = steps.controller
    y = np.array(y0, dtype=np.float64)
    K = np.empty((_N_STAGES,) + y.shape)
    K[0] = f(t0, y)
    stage_t = np.empty((len(steps), _N_STAGES))
    stage_y = np.empty((len(steps), _N_STAGES) + y.shape) if keep_stages else None
    for k, (t, h) in enumerate(zip(steps.t, steps.h)):
        stage_t[k] = _stage_times(t, h, mode, direction)
        stage_t[k, 0] = t0 if k == 0 else stage_t[k - 1, -1]
        if keep_stages:
            stage_y[k, 0] = y
        y_start = y
        for s in range(1, _N_STAGES):
            Y = _stage_state(y_start, K, s, h, mode)
            if keep_stages:
                stage_y[k, s] = Y
            K[s] = f(stage_t[k, s], Y)
        y = Y                                      # FSAL: the last stage point is y_{k+1}
        if mode == "torchdiffeq" and k == len(steps) - 1:
            step = (t + h) - t                     # the driver's rounded step length
            x = (t1 - t) / step
            y = _dense_output(y_start, y, _midpoint(y_start, K, h), K[0], K[-1], step, x)
        K[0] = K[-1]
    return (y, stage_t, stage_y) if keep_stages else y
