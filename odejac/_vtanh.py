"""A branch-free float64 ``tanh`` that LLVM vectorises over a loop (issue #11).

``np.tanh`` is a SIMD routine but reachable from Numba only through ``objmode``, and Numba's
own ``math.tanh`` is a scalar libm call that does not vectorise. This one is straight-line
arithmetic, so a loop over the batch of a jitted kernel becomes SIMD code:

* ``y = 2 min(|x|, 20)`` (``tanh`` rounds to ±1 beyond |x| ≈ 19.06, so clamping saturates it
  and keeps every intermediate finite, ±inf included);
* ``expm1(y) = 2^k (expm1(r) + 1) − 1`` with ``k = round(y / ln 2)``,
  ``r = y − k ln2_hi − k ln2_lo`` (Cody–Waite: ``k ln2_hi`` is exact, |r| ≤ ln 2 / 2),
  ``expm1(r) = r + r² P(r)`` with ``P`` a degree-9 near-minimax polynomial for
  ``(eʳ − 1 − r) / r²`` (error < 2⁻⁵⁴ relative on the reduced range), and ``2^k`` built
  from exponent bits;
* ``tanh |x| = e / (e + 2)`` with ``e = expm1(2|x|)``, which keeps full relative accuracy
  for tiny and denormal ``x`` (``e = 2x`` exactly, then ``2x / 2``), and the sign copied from
  ``x`` (so ``tanh(−0) = −0``); NaN is passed through by a select.

Its error against ``np.tanh`` is measured over the whole range in ``tests/test_vtanh.py``
(a few ulp). No fastmath: the operations run in the order written.
"""
import math
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.extending import intrinsic

#: Beyond this |x| the result is ±1 in float64 (tanh(19.07) > 1 − 2⁻⁵⁴).
SATURATE = 20.0
_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01     # ln 2 to 32 bits: k · _LN2_HI is exact for |k| < 2²⁰
_LN2_LO = 1.90821492927058770002e-10     # ln 2 − _LN2_HI
_ROUND = 6755399441055744.0              # 1.5 · 2⁵²: (v + _ROUND) − _ROUND rounds v to an integer
_EXP_BIAS = 1023
_MANTISSA_BITS = 52
# P(r) ≈ (eʳ − 1 − r) / r² on |r| ≤ ln 2 / 2: Chebyshev-economised fit of degree 9
# (mpmath.chebyfit, 40 digits), |error| < 1.1e-16, i.e. < 2⁻⁵⁴ relative in expm1(r)
# (the Taylor polynomial needs degree 11 for that).
_P = (0.5000000000000001, 0.16666666666666669, 0.041666666666624164,
      0.008333333333330065, 0.0013888888917196719, 0.00019841269863040545,
      2.4801521322368692e-05, 2.7557268480310024e-06, 2.7620075879983367e-07,
      2.5100375832561234e-08)


def _fma_python(a, b, c):
    """``a · b + c`` rounded once, for ``NUMBA_DISABLE_JIT=1`` (exact rational arithmetic)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    return float(Fraction(a) * Fraction(b) + Fraction(c))


@intrinsic
def _int_bits_as_float(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (one ``bitcast``; vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a · b + c`` with one rounding (``llvm.fma``; a vector FMA in a vectorised loop)."""
    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double],
                                              ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorise the calling jitted function with 512-bit registers where the CPU has
    them: the function attribute ``"prefer-vector-width"="512"`` on the caller.

    LLVM's x86 targets that *have* AVX-512 but tune for 256-bit vectors (Intel's Skylake-SP to
    Emerald Rapids: "prefer-256-bit") otherwise split every vector loop into 4-lane halves;
    on the reference kernels that cost ~25 % (``_vtanh`` 1.18 → 0.89 ns a value on an
    Emerald Rapids core; benchmarks/README.md). Elementwise loops give the same bits at any
    width (no fastmath: LLVM may not reassociate), so this changes speed only; on CPUs
    without 512-bit registers the attribute is ignored. Call it once, anywhere in the body.
    """
    def codegen(context, builder, signature, args):
        # llvmlite checks attribute names against a fixed list without key-value string
        # attributes; the set's own add writes it verbatim into the function's header.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


if config.DISABLE_JIT:       # the kernels' sources then run as Python: plain twins
    def _int_bits_as_float(bits):  # noqa: F811
        return np.int64(bits).view(np.float64)

    _fma = _fma_python  # noqa: F811

    def wide_vectors():  # noqa: F811
        return None


@njit(cache=True, inline="always", error_model="numpy")
def _pow2(k):
    """``2^k`` for an integral float ``0 <= k <= 1023`` from its exponent bits."""
    return _int_bits_as_float((np.int64(k) + _EXP_BIAS) << _MANTISSA_BITS)


@njit(cache=True, inline="always", error_model="numpy")
def vtanh(x):
    """``tanh(x)`` for one float64, branch-free (inlined into the caller's loop)."""
    ax = abs(x)
    ax = ax if ax <= SATURATE else SATURATE          # also maps NaN to 20 (fixed below)
    y = ax + ax
    k = (y * _INV_LN2 + _ROUND) - _ROUND
    r = _fma(-k, _LN2_LO, y - k * _LN2_HI)
    p = _fma(r, _P[9], _P[8])
    p = _fma(r, p, _P[7])
    p = _fma(r, p, _P[6])
    p = _fma(r, p, _P[5])
    p = _fma(r, p, _P[4])
    p = _fma(r, p, _P[3])
    p = _fma(r, p, _P[2])
    p = _fma(r, p, _P[1])
    p = _fma(r, p, _P[0])
    em = _fma(r * r, p, r)                            # expm1(r)
    scale = _pow2(k)
    e = _fma(scale, em, scale - 1.0)                  # expm1(y); 2^k − 1 is exact here
    t = math.copysign(e / (e + 2.0), x)
    return t if x == x else x


@njit(cache=True, error_model="numpy")
def vtanh_inplace(x):
    """``x ← tanh(x)`` elementwise for a C-contiguous float64 array of any shape."""
    wide_vectors()
    flat = x.reshape(-1)
    for i in range(flat.size):
        flat[i] = vtanh(flat[i])
