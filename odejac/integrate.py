"""Adaptive Dormand–Prince 5(4) integration with exact peer step counts.

:func:`odeint` is the checked public entry point; the jitted driver lives in
:mod:`odejac._dp5`. One jitted, cached driver serves every right-hand side: a plain
Python/NumPy ``f`` or a Numba-jitted one is reached from it through a
``numba.objmode`` trampoline (1–2 µs a call, against tens of µs for one
NumPy evaluation of a small MLP; see ``benchmarks/README.md``).

Two step-size controllers reproduce the peers' counts (NFE, accepted and
rejected steps) exactly; see ``docs/dormand_prince.md`` for the differences.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from . import _dp5

CONTROLLERS = {"scipy": _dp5.MODE_SCIPY, "torchdiffeq": _dp5.MODE_TORCHDIFFEQ}
#: Default bound on step attempts (accepted + rejected) of one solve.
DEFAULT_MAX_STEPS = 100_000

_REASONS = {
    _dp5.STATUS_UNDERFLOW: "step size underflow (the step fell below 10 ulp of t)",
    _dp5.STATUS_MAX_STEPS: "too many steps (max_steps reached)",
    _dp5.STATUS_NONFINITE: "non-finite state or derivative",
    _dp5.STATUS_BAD_RHS: "f returned an array of the wrong size",
    _dp5.STATUS_OVERFLOW: "overflow: the derivative is too large for float64, so the first "
                          "step size is zero",
}


class SolverError(RuntimeError):
    """The integrator could not reach the end of the interval.

    Attributes
    ----------
    t : float
        Time reached when the solver gave up.
    h : float
        Last step size tried.
    reason : str
        What went wrong: step-size underflow, too many steps, or a
        non-finite state/derivative.
    nfe : int
        Function evaluations spent.
    """

    def __init__(self, reason, t, h, nfe=0):
        self.reason = reason
        self.t = float(t)
        self.h = float(h)
        self.nfe = int(nfe)
        super().__init__(f"{reason} at t={self.t:.6g} (last step h={self.h:.3g}, "
                         f"{self.nfe} evaluations)")


@dataclass(frozen=True)
class Solution:
    """Result of :func:`odeint`.

    Attributes
    ----------
    y : ndarray
        State at ``t``, same shape as ``y0``.
    t : float
        End time (``t_span[1]``).
    nfe : int
        Every evaluation of ``f``, the two of the initial-step selection
        included: ``nfe == 2 + 6 * (n_accepted + n_rejected)``.
    n_accepted, n_rejected : int
        Accepted and rejected step attempts.
    log : ndarray or None
        With ``record=True``, one row per attempt with columns
        ``t, h, error_ratio, accepted, nfe`` (:data:`LOG_COLUMNS`).
    """

    y: np.ndarray
    t: float
    nfe: int
    n_accepted: int
    n_rejected: int
    log: np.ndarray = field(default=None, repr=False)


LOG_COLUMNS = _dp5.LOG_COLUMNS

def _flat_rhs(fun, shape):
    """Wrap ``fun(t, y)`` of state shape ``shape`` as a flat, checked field."""
    def flat(t, y):
        out = np.asarray(fun(t, y.reshape(shape)))
        if out.dtype.kind not in "biuf":
            raise ValueError(f"f(t, y) must return real numbers; got dtype {out.dtype}")
        out = out.astype(np.float64, copy=False)
        if out.shape != shape:
            raise ValueError(f"f(t, y) returned shape {out.shape}; expected {shape}")
        return np.ascontiguousarray(out).reshape(-1)
    return flat


def _check_tolerance(name, value):
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


def _check_t_span(t_span):
    try:
        t0, t1 = (float(t) for t in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair of numbers (t0, t1); got {t_span!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t_span must be finite; got ({t0}, {t1})")
    if t0 == t1:
        raise ValueError(f"t_span must have t0 != t1; got ({t0}, {t1})")
    return t0, t1


def _check_state(y0):
    if np.asarray(y0).dtype.kind not in "biuf":
        raise ValueError(f"y0 must be real numbers; got dtype {np.asarray(y0).dtype}")
    y0 = np.array(y0, dtype=np.float64, copy=True)
    if y0.ndim not in (1, 2) or y0.size == 0:
        raise ValueError(f"y0 must be a non-empty 1-D (D,) or 2-D (B, D) array; "
                         f"got shape {y0.shape}")
    bad = ~np.isfinite(y0)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"y0 has {int(bad.sum())} non-finite entries (first at index {first})")
    return y0


def error_groups(sizes):
    """Boundaries for a mixed error norm: the max of RMS norms over parts.

    Parameters
    ----------
    sizes : sequence of int
        Lengths of consecutive parts of the flat state that enter the norm;
        components after the last part are left out of the norm entirely.
    """
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def solve_flat(fun, y0, t_span, rtol, atol, controller, max_steps, groups, record):
    """Run the jitted driver on a flat state and raise on failure.

    Internal entry point shared by :func:`odeint` and the adjoint; arguments
    are assumed checked and ``fun(t, y)`` maps a flat float64 state to a flat
    C-contiguous float64 derivative. The driver copies each derivative before it
    calls ``fun`` again, so ``fun`` may return the same buffer every time; the
    driver never writes to a ``y`` it has passed to ``fun``. Returns ``(y, nfe, n_accepted,
    n_rejected, log)``.
    """
    log = np.zeros((max_steps if record else 0, len(LOG_COLUMNS)))
    with _dp5.registered(fun) as fid:
        y, t, h, nfe, n_acc, n_rej, status, n_log = _dp5.solve(
            fid, y0, t_span[0], t_span[1], rtol, atol, CONTROLLERS[controller],
            max_steps, groups, log)
    if status != _dp5.STATUS_OK:
        raise SolverError(_REASONS[status], t, h, nfe)
    return y, int(nfe), int(n_acc), int(n_rej), (log[:n_log] if record else None)


def odeint(f, y0, t_span, *, rtol=1e-3, atol=1e-6, controller="torchdiffeq",
           max_steps=DEFAULT_MAX_STEPS, record=False):
    """Integrate ``dy/dt = f(t, y)`` over ``t_span`` with Dormand–Prince 5(4).

    Parameters
    ----------
    f : callable
        ``f(t, y) -> dy/dt`` with ``y``'s shape; a plain Python/NumPy
        function or a Numba ``@njit`` function. A batch ``(B, D)`` is
        integrated as one system with one step size (as torchdiffeq does).
    y0 : array_like, shape (D,) or (B, D)
        Initial state; must be finite.
    t_span : (float, float)
        ``(t0, t1)``, finite and distinct; ``t1 < t0`` integrates backwards.
    rtol, atol : float
        Positive tolerances of the RMS error norm over all components,
        ``‖err / (atol + rtol·max(|y|, |y_new|))‖_rms ≤ 1`` (< 1 for SciPy).
    controller : {"torchdiffeq", "scipy"}
        Step-size control reproducing torchdiffeq 0.2.5 ``dopri5`` (steps
        past ``t1`` and returns the 4th-order dense output there) or SciPy
        1.17 ``solve_ivp(method="RK45")`` (clips the last step to ``t1``).
    max_steps : int
        Bound on step attempts, accepted and rejected.
    record : bool
        Keep a log of every attempt in ``Solution.log``.

    Returns
    -------
    Solution

    Raises
    ------
    ValueError
        Non-positive tolerances, non-finite ``y0``, bad ``t_span`` or
        ``controller``, or ``f`` returning the wrong shape.
    SolverError
        Step-size underflow, ``max_steps`` exceeded or a non-finite state.
    """
    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {sorted(CONTROLLERS)}; got {controller!r}")
    rtol = _check_tolerance("rtol", rtol)
    atol = _check_tolerance("atol", atol)
    t_span = _check_t_span(t_span)
    y0 = _check_state(y0)
    if isinstance(max_steps, bool) or not float(max_steps).is_integer() or int(max_steps) < 1:
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}")
    shape = y0.shape
    flat = y0.reshape(-1)
    groups = error_groups([flat.size])
    y, nfe, n_acc, n_rej, log = solve_flat(
        _flat_rhs(f, shape), flat, t_span, rtol, atol, controller, int(max_steps), groups,
        record)
    return Solution(y=y.reshape(shape), t=t_span[1], nfe=nfe, n_accepted=n_acc,
                    n_rejected=n_rej, log=log)

