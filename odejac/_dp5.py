"""Private Numba kernels of the Dormand–Prince 5(4) driver.

Everything here takes arrays and scalars only; the checked public entry point
is :func:`odejac.integrate.odeint`. Every whole-array operation (the per-step
sums over the stages, the driver's own cost, O(7 n) per step; the initial step;
the dense output) is an element loop under Numba and a whole-array NumPy twin
under ``NUMBA_DISABLE_JIT=1``, with the same operations in the same order, so
both give the same bits (:mod:`odejac._dp5_loops`).

The right-hand side is a Python callable ``fun(t, y) -> dy/dt`` registered
under an integer id (:class:`registered`), reached from the jitted driver
through one ``numba.objmode`` trampoline. Passing jitted functions as
arguments would make every kernel uncacheable (Numba refuses to cache
functions holding first-class function pointers) and cost seconds of
compilation per right-hand side and process; the trampoline costs 1–2 µs a
call and the driver compiles once, into the on-disk cache (≈ 2.9 s of CPU of
the ≈ 8 s a cold ``cli.py train`` spends compiling; benchmarks/startup.py).

Integration always runs forwards in the reversed-if-needed time
``τ = direction · t``, with the field ``direction · f(direction · τ, y)``; this
is exactly how torchdiffeq handles decreasing time, and it is bit-for-bit
equivalent to SciPy's explicit ``direction`` factors (negation is exact).
"""
import itertools

import numpy as np
from numba import njit, objmode

from ._control import (ERROR_EXPONENT, MAX_FACTOR, MIN_FACTOR, SAFETY,  # noqa: F401
                       _scipy_factor, _torchdiffeq_factor)
from ._dp5_loops import (N_STAGES, accumulate, all_finite, combine, copy, euler,
                         initial_scaled, interpolate, scaled_difference, scaled_error)
from ._vtanh import wide_vectors
from .tableau import DOPRI5

# Controller modes.
MODE_SCIPY = 0        # SciPy 1.17 solve_ivp(method="RK45")
MODE_TORCHDIFFEQ = 1  # torchdiffeq 0.2.5 odeint(method="dopri5")

# Exit statuses of the driver.
STATUS_OK = 0
STATUS_UNDERFLOW = 1
STATUS_MAX_STEPS = 2
STATUS_NONFINITE = 3
STATUS_BAD_RHS = 4
STATUS_OVERFLOW = 5

# Hairer, Nørsett & Wanner, Solving ODEs I, II.4: thresholds of the
# initial-step heuristic (both peers use these values).
_INIT_TINY_NORM = 1e-5
_INIT_FALLBACK_STEP = 1e-6
_INIT_FLAT_NORM = 1e-15
_INIT_TARGET = 0.01
_INIT_MAX_GROWTH = 100.0
_INIT_FLAT_SHRINK = 1e-3
# SciPy's smallest step: 10 ulp of the current time.
_MIN_STEP_ULPS = 10.0

# Columns of the optional step log.
LOG_COLUMNS = ("t", "h", "error_ratio", "accepted", "nfe")

# Right-hand sides registered for the length of one solve, by integer id.
_RHS = {}
_NEXT_ID = itertools.count()


class registered:
    """Context manager registering ``fun(t, y_flat) -> flat`` for the driver.

    Yields the integer id to pass to :func:`solve` as ``fid``.
    """

    def __init__(self, fun):
        self.fid = next(_NEXT_ID)
        self.fun = fun

    def __enter__(self):
        _RHS[self.fid] = self.fun
        return self.fid

    def __exit__(self, *exc):
        _RHS.pop(self.fid, None)
        return False


def _invoke(fid, t, y):
    return _RHS[fid](t, y)


@njit(cache=True)
def _call_rhs(fid, t, y):
    with objmode(out="float64[::1]"):
        out = _invoke(fid, t, y)
    return out


_A = np.ascontiguousarray(DOPRI5.A)
_C = np.ascontiguousarray(DOPRI5.c)
_E_SCIPY = np.ascontiguousarray(DOPRI5.e_scipy)
_E_SHAMPINE = np.ascontiguousarray(DOPRI5.e_shampine)
_C_MID = np.ascontiguousarray(DOPRI5.c_mid)
_N_STAGES = N_STAGES


@njit(cache=True)
def _error_norm(x, groups):
    """Max over groups of the RMS norm; NaN if any entry is NaN.

    ``groups`` holds boundaries ``[g0, g1, ..., gk]``; components outside
    ``[g0, gk)`` do not enter the norm. One group gives the plain RMS norm.
    """
    worst = 0.0
    for g in range(groups.shape[0] - 1):
        lo = groups[g]
        hi = groups[g + 1]
        if hi <= lo:
            continue
        part = x[lo:hi]
        rms = np.sqrt(np.dot(part, part) / (hi - lo))
        if rms != rms:
            return np.nan
        if rms > worst:
            worst = rms
    return worst


@njit(cache=True)
def _initial_step(fid, direction, tau0, y0, f0, interval, rtol, atol, mode,
                  groups, nfe):
    """Hairer's initial step (II.4), as SciPy and torchdiffeq implement it.

    SciPy clips the trial and the result to the interval length;
    torchdiffeq does not. Costs one evaluation. Returns ``(h, nfe, ok)``; ``ok`` is
    False if the field gave the wrong size.
    """
    wide_vectors()
    n = y0.shape[0]
    scale, d_y, d_f = np.empty(n), np.empty(n), np.empty(n)
    initial_scaled(scale, d_y, d_f, y0, f0, rtol, atol)
    d0 = _error_norm(d_y, groups)
    d1 = _error_norm(d_f, groups)
    if d0 < _INIT_TINY_NORM or d1 < _INIT_TINY_NORM:
        h0 = _INIT_FALLBACK_STEP
    else:
        h0 = _INIT_TARGET * d0 / d1
    if not (h0 > 0.0 and d1 < np.inf):
        return 0.0, nfe, True   # ‖f0‖ overflowed: the driver reports STATUS_OVERFLOW
    if mode == MODE_SCIPY:
        h0 = min(h0, interval)
    y1 = np.empty(n)
    euler(y1, y0, h0, f0)
    f1 = np.empty(n)
    if not _eval_into(fid, direction, tau0 + h0, y1, f1):
        return 0.0, nfe + 1, False
    scaled_difference(d_f, f1, f0, scale)
    d2 = _error_norm(d_f, groups) / h0
    if d1 <= _INIT_FLAT_NORM and d2 <= _INIT_FLAT_NORM:
        h1 = max(_INIT_FALLBACK_STEP, h0 * _INIT_FLAT_SHRINK)
    else:
        h1 = (_INIT_TARGET / max(d1, d2)) ** ERROR_EXPONENT
    h = min(_INIT_MAX_GROWTH * h0, h1)
    if mode == MODE_SCIPY:
        h = min(h, interval)
    return h, nfe + 1, True


@njit(cache=True)
def _eval_into(fid, direction, tau, y, k_row):
    """One evaluation of the field in reversed-if-needed time, written to ``k_row``.

    Returns False (and leaves ``k_row`` alone) if ``fun`` gave the wrong size.
    """
    wide_vectors()
    out = _call_rhs(fid, direction * tau, y)
    if out.shape[0] != k_row.shape[0]:
        return False
    copy(k_row, out, direction != 1.0)
    return True


@njit(cache=True)
def _rk_step(fid, direction, tau, y, K, h, mode, w):
    """One Dormand–Prince attempt of size ``h`` from ``(tau, y)``.

    ``K[0]`` must hold the field at ``(tau, y)`` (FSAL). Fills ``K[1:7]``
    (six evaluations) and returns ``(y_new, n_evaluated, ok)``; ``ok`` is
    False if the field returned the wrong size. ``w`` is scratch of length 7.
    SciPy sums the stages and then scales by h; torchdiffeq scales the
    coefficients by h first. We keep each peer's order of operations.
    Every stage point is a fresh array, so the field may keep what it is given.
    """
    wide_vectors()
    post = h if mode == MODE_SCIPY else 1.0  # x * 1.0 == x exactly
    y_stage = y
    for s in range(1, _N_STAGES):
        for j in range(s):
            w[j] = _A[s, j] if mode == MODE_SCIPY else _A[s, j] * h
        y_stage = np.empty_like(y)
        combine(y_stage, y, K, w, s, post)
        t_stage = tau + _C[s] * h
        if mode == MODE_TORCHDIFFEQ and _C[s] == 1.0:
            # torchdiffeq evaluates the c = 1 stages one ulp before the step's
            # end ("Perturb.PREV"), so the field sees the left limit at t1.
            t_stage = np.nextafter(t_stage, -np.inf)
        if not _eval_into(fid, direction, t_stage, y_stage, K[s]):
            return y_stage, s, False
    return y_stage, _N_STAGES - 1, True  # FSAL: the last stage point is the solution


@njit(cache=True)
def _error_ratio(y, y_new, K, h, mode, rtol, atol, groups, w, scaled):
    """Norm of the error estimate over ``atol + rtol · max(|y|, |y_new|)``.

    ``w`` (7) and ``scaled`` (y's size) are scratch.
    """
    wide_vectors()
    if mode == MODE_SCIPY:
        scaled_error(scaled, y, y_new, K, _E_SCIPY, h, rtol, atol)
    else:
        for j in range(_N_STAGES):
            w[j] = _E_SHAMPINE[j] * h
        scaled_error(scaled, y, y_new, K, w, 1.0, rtol, atol)
    return _error_norm(scaled, groups)


@njit(cache=True, inline="always")
def _log_attempt(log, n_log, tau, direction, h, ratio, accepted, nfe):
    if n_log < log.shape[0]:
        log[n_log, 0] = direction * tau
        log[n_log, 1] = direction * h
        log[n_log, 2] = ratio
        log[n_log, 3] = 1.0 if accepted else 0.0
        log[n_log, 4] = nfe
    return n_log + 1


@njit(cache=True)
def solve(fid, y0, t0, t1, rtol, atol, mode, max_steps, groups, log):
    """Integrate ``dy/dt = fun(t, y)`` (registered as ``fid``) from ``t0`` to ``t1`` (t0 != t1).

    Returns ``(y, t, h, nfe, n_accepted, n_rejected, status, n_log)`` where
    ``t`` and ``h`` are the time reached and the last step tried (for error
    reports) and ``n_log`` the number of attempts written to ``log``.
    """
    wide_vectors()
    direction = 1.0 if t1 > t0 else -1.0
    tau0 = direction * t0
    tau1 = direction * t1
    interval = tau1 - tau0
    n = y0.shape[0]
    K = np.empty((_N_STAGES, n))
    w = np.empty(_N_STAGES)
    scaled = np.empty(n)
    nfe = 1
    n_acc = 0
    n_rej = 0
    n_log = 0
    if not _eval_into(fid, direction, tau0, y0, K[0]):
        return y0.copy(), t0, 0.0, nfe, 0, 0, STATUS_BAD_RHS, 0
    if not all_finite(K[0]):
        return y0.copy(), t0, 0.0, nfe, 0, 0, STATUS_NONFINITE, 0
    h, nfe, ok = _initial_step(fid, direction, tau0, y0, K[0], interval, rtol, atol,
                               mode, groups, nfe)
    if not ok:
        return y0.copy(), t0, 0.0, nfe, 0, 0, STATUS_BAD_RHS, 0
    if not h > 0.0:   # also NaN: the trial step of the initial-step heuristic overflowed
        return y0.copy(), t0, 0.0, nfe, 0, 0, STATUS_OVERFLOW, 0
    tau = tau0
    y = y0.copy()
    # torchdiffeq keeps the last accepted step for its dense output at t1.
    y_prev = y
    tau_prev = tau
    y_mid = np.empty(n)
    f_prev = K[0].copy()
    last_nonfinite = False
    while tau < tau1:
        rejected_here = False
        accepted = False
        while not accepted:
            min_step = _MIN_STEP_ULPS * np.abs(np.nextafter(tau, np.inf) - tau)
            if n_acc + n_rej >= max_steps:
                return y, direction * tau, direction * h, nfe, n_acc, n_rej, \
                    STATUS_MAX_STEPS, n_log
            if mode == MODE_SCIPY and h < min_step and not rejected_here:
                h = min_step  # SciPy lifts a too-small proposal once per step
            if not h >= min_step:
                status = STATUS_NONFINITE if last_nonfinite else STATUS_UNDERFLOW
                return y, direction * tau, direction * h, nfe, n_acc, n_rej, status, n_log
            tau_new = tau + h
            if mode == MODE_SCIPY:
                if tau_new > tau1:
                    tau_new = tau1  # SciPy clips the last step to the end ...
                h = tau_new - tau   # ... and always steps by the rounded difference
            y_new, n_eval, ok = _rk_step(fid, direction, tau, y, K, h, mode, w)
            nfe += n_eval
            if not ok:
                return y, direction * tau, direction * h, nfe, n_acc, n_rej, STATUS_BAD_RHS, \
                    n_log
            ratio = _error_ratio(y, y_new, K, h, mode, rtol, atol, groups, w, scaled)
            last_nonfinite = not np.isfinite(ratio)
            if mode == MODE_SCIPY:
                factor, accepted = _scipy_factor(ratio, rejected_here)
            else:
                factor, accepted = _torchdiffeq_factor(ratio)
            n_log = _log_attempt(log, n_log, tau, direction, h, ratio, accepted, nfe)
            if accepted:
                n_acc += 1
                if mode == MODE_TORCHDIFFEQ:
                    for j in range(_N_STAGES):
                        w[j] = _C_MID[j] * h
                    accumulate(y_mid, y, K, w)
                    copy(f_prev, K[0], False)
                    y_prev = y
                    tau_prev = tau
                tau = tau_new
                y = y_new
                copy(K[0], K[_N_STAGES - 1], False)
            else:
                n_rej += 1
                rejected_here = True
            h = h * factor
    if mode == MODE_TORCHDIFFEQ:
        step = tau - tau_prev
        x = (tau1 - tau_prev) / step
        y = interpolate(y_prev, y, y_mid, f_prev, K[0], step, x)
    return y, t1, direction * h, nfe, n_acc, n_rej, STATUS_OK, n_log
