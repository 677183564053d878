"""Element-loop kernels of the Dormand–Prince driver (:mod:`odejac._dp5`) and their array twins.

Every whole-array operation of the driver is written here twice, with the same floating-point
operations in the same order, so both give the same bits (``tests/test_fused_kernels.py``):

* ``*_loops``: Numba element loops, inlined ("always") into the driver. In the hot stage sums
  LLVM then sees constant stage counts, unrolls and vectorises: 6 stage points of n = 3396 take
  8.7 µs against 39 µs array-at-a-time (the same loop NOT inlined took 23 µs at n = 1024: a
  runtime trip count blocks vectorisation). In the cold parts (initial step, dense output) a
  loop is cheaper to COMPILE than a Numba array expression, each of which Numba builds and
  compiles as a kernel of its own (~0.1 s apiece on a fresh install; benchmarks/startup.py).
* ``*_arrays``: whole-array NumPy, for the interpreter (``NUMBA_DISABLE_JIT=1``), where
  element loops would crawl.

The names without a suffix are the twins the driver uses in this process.
"""
import math

import numpy as np
from numba import config, njit

N_STAGES = 7


@njit(cache=True, inline="always")
def _combine_loops(out, y, K, w, n_terms, post):
    """``out = y + (Σ_{j<n_terms} w[j] K[j]) · post``, the sum taken left to right."""
    for i in range(y.shape[0]):
        acc = w[0] * K[0, i]
        for j in range(1, n_terms):
            acc = acc + w[j] * K[j, i]
        out[i] = y[i] + acc * post


def _combine_arrays(out, y, K, w, n_terms, post):
    acc = w[0] * K[0]
    for j in range(1, n_terms):
        acc = acc + w[j] * K[j]
    out[:] = y + acc * post


@njit(cache=True, inline="always")
def _accumulate_loops(out, y, K, w):
    """``out = (((y + w[0] K[0]) + w[1] K[1]) + ...)`` over all rows of ``K``."""
    for i in range(y.shape[0]):
        acc = y[i]
        for j in range(N_STAGES):
            acc = acc + w[j] * K[j, i]
        out[i] = acc


def _accumulate_arrays(out, y, K, w):
    acc = y
    for j in range(N_STAGES):
        acc = acc + w[j] * K[j]
    out[:] = acc


@njit(cache=True, inline="always")
def _scaled_error_loops(out, y, y_new, K, w, post, rtol, atol):
    """``out = (Σ_j w[j] K[j]) · post / (atol + max(|y|, |y_new|) · rtol)``."""
    for i in range(y.shape[0]):
        acc = w[0] * K[0, i]
        for j in range(1, N_STAGES):
            acc = acc + w[j] * K[j, i]
        scale = atol + np.maximum(np.abs(y[i]), np.abs(y_new[i])) * rtol
        out[i] = (acc * post) / scale


def _scaled_error_arrays(out, y, y_new, K, w, post, rtol, atol):
    acc = w[0] * K[0]
    for j in range(1, N_STAGES):
        acc = acc + w[j] * K[j]
    scale = atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol
    out[:] = (acc * post) / scale


@njit(cache=True, inline="always")
def _copy_loops(dst, src, negate):
    """``dst = src`` (or ``-src``). A loop, because Numba 0.68 takes ~2 s to compile a slice
    assignment ``dst[:] = src`` (a third of the driver's cold start)."""
    if negate:
        for i in range(dst.shape[0]):
            dst[i] = -src[i]   # bit-identical to (-1.0) * src
    else:
        for i in range(dst.shape[0]):
            dst[i] = src[i]


def _copy_arrays(dst, src, negate):
    if negate:
        np.negative(src, dst)
    else:
        dst[:] = src


@njit(cache=True, inline="always")
def _initial_scaled_loops(scale, d_y, d_f, y, f, rtol, atol):
    """The initial step's ``scale = atol + |y| rtol``, ``d_y = y / scale``, ``d_f = f / scale``."""
    for i in range(y.shape[0]):
        s = atol + np.abs(y[i]) * rtol
        scale[i] = s
        d_y[i] = y[i] / s
        d_f[i] = f[i] / s


def _initial_scaled_arrays(scale, d_y, d_f, y, f, rtol, atol):
    scale[:] = atol + np.abs(y) * rtol
    d_y[:] = y / scale
    d_f[:] = f / scale


@njit(cache=True, inline="always")
def _euler_loops(out, y, h, f):
    """``out = y + h f``."""
    for i in range(y.shape[0]):
        out[i] = y[i] + h * f[i]


def _euler_arrays(out, y, h, f):
    out[:] = y + h * f


@njit(cache=True, inline="always")
def _scaled_difference_loops(out, a, b, scale):
    """``out = (a − b) / scale``."""
    for i in range(a.shape[0]):
        out[i] = (a[i] - b[i]) / scale[i]


def _scaled_difference_arrays(out, a, b, scale):
    out[:] = (a - b) / scale


@njit(cache=True, inline="always")
def _all_finite_loops(x):
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return False
    return True


def _all_finite_arrays(x):
    return bool(np.all(np.isfinite(x)))


@njit(cache=True, inline="always")
def _interpolate_loops(y0, y1, y_mid, f0, f1, h, x):
    """torchdiffeq's 4th-order dense output on a step, at fraction ``x`` (a new array)."""
    x2 = x * x
    x3 = x2 * x
    x4 = x3 * x
    out = np.empty(y0.shape[0])
    for i in range(y0.shape[0]):
        a = 2.0 * h * (f1[i] - f0[i]) - 8.0 * (y1[i] + y0[i]) + 16.0 * y_mid[i]
        b = h * (5.0 * f0[i] - 3.0 * f1[i]) + 18.0 * y0[i] + 14.0 * y1[i] - 32.0 * y_mid[i]
        c = h * (f1[i] - 4.0 * f0[i]) - 11.0 * y0[i] - 5.0 * y1[i] + 16.0 * y_mid[i]
        out[i] = y0[i] + x * (h * f0[i]) + x2 * c + x3 * b + x4 * a
    return out


def _interpolate_arrays(y0, y1, y_mid, f0, f1, h, x):
    a = 2.0 * h * (f1 - f0) - 8.0 * (y1 + y0) + 16.0 * y_mid
    b = h * (5.0 * f0 - 3.0 * f1) + 18.0 * y0 + 14.0 * y1 - 32.0 * y_mid
    c = h * (f1 - 4.0 * f0) - 11.0 * y0 - 5.0 * y1 + 16.0 * y_mid
    d = h * f0
    x2 = x * x
    x3 = x2 * x
    return y0 + x * d + x2 * c + x3 * b + (x3 * x) * a


if config.DISABLE_JIT:
    combine, accumulate, scaled_error, copy = (
        _combine_arrays, _accumulate_arrays, _scaled_error_arrays, _copy_arrays)
    initial_scaled, euler, scaled_difference, all_finite, interpolate = (
        _initial_scaled_arrays, _euler_arrays, _scaled_difference_arrays, _all_finite_arrays,
        _interpolate_arrays)
else:
    combine, accumulate, scaled_error, copy = (
        _combine_loops, _accumulate_loops, _scaled_error_loops, _copy_loops)
    initial_scaled, euler, scaled_difference, all_finite, interpolate = (
        _initial_scaled_loops, _euler_loops, _scaled_difference_loops, _all_finite_loops,
        _interpolate_loops)
