"""The vectorised ``tanh`` of the fused kernels (``odejac._vtanh``) against ``np.tanh``.

Its error is measured in units in the last place of ``np.tanh``'s result over the whole
float64 range: uniform samples where ``tanh`` bends, log-uniform magnitudes from the smallest
denormal to 10³⁰⁸ with both signs, every binade's edges, the saturation threshold, and the
special values (±0 keep their sign, ±inf give ±1, NaN stays NaN).
"""
import numpy as np
import pytest

from odejac._vtanh import SATURATE, vtanh_inplace

MAX_ULP = 4          # measured: 3 on the reference machine


def _ulp_error(x):
    got = x.copy()
    vtanh_inplace(got)
    want = np.tanh(x)
    ulp = np.spacing(np.abs(want))          # spacing(0) is the smallest denormal
    return np.abs(got - want) / ulp, got, want


def _samples(rng, n):
    tiny = np.finfo(float).smallest_subnormal
    magnitudes = np.exp(rng.uniform(np.log(tiny), np.log(np.finfo(float).max), n))
    binades = np.ldexp(1.0, np.arange(-1074, 1024)).astype(float)
    edges = np.concatenate([binades, np.nextafter(binades, 0), np.nextafter(binades, np.inf)])
    near_saturation = np.linspace(15.0, 25.0, 10_001)
    parts = [rng.uniform(-1.0, 1.0, n), rng.uniform(-SATURATE - 2, SATURATE + 2, n),
             magnitudes, edges[np.isfinite(edges)], near_saturation,
             np.linspace(-0.36, 0.36, 20_001), np.log(2.0) / 2 * np.arange(-60, 61)]
    x = np.concatenate(parts)
    return np.concatenate([x, -x])


def test_error_in_ulp_over_the_whole_range():
    err, _, _ = _ulp_error(_samples(np.random.default_rng(0), 1_000_000))
    assert np.all(np.isfinite(err))
    assert err.max() <= MAX_ULP, f"max error {err.max()} ulp"


@pytest.mark.nojit
def test_special_values_and_tiny_inputs():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, 2.0 ** -30,
                  19.0, 19.1, SATURATE, 1e300, -1e300, 0.5493061443340549, -3.0])
    err, got, want = _ulp_error(x)
    finite = ~np.isnan(want)
    assert np.all(err[finite] <= MAX_ULP)
    assert np.isnan(got[4])
    np.testing.assert_array_equal(np.signbit(got[:2]), [False, True])
    np.testing.assert_array_equal(got[2:4], [1.0, -1.0])
    np.testing.assert_array_equal(got[5:8], x[5:8])          # tanh x = x below ~1e-8


def test_any_shape_in_place():
    x = np.random.default_rng(1).standard_normal((3, 5, 7)) * 4
    want = np.tanh(x)
    vtanh_inplace(x)
    np.testing.assert_allclose(x, want, rtol=4e-16, atol=0)


def test_wide_vectors_sets_the_attribute_and_keeps_the_bits():
    """``wide_vectors()`` puts ``"prefer-vector-width"="512"`` on the calling function, so an
    AVX-512 CPU gets zmm code even where LLVM tunes for 256-bit vectors, with the same bits."""
    import llvmlite.binding as ll
    from numba import njit

    from odejac import _dp5, _mlp_jit
    from odejac._vtanh import vtanh_inplace as cached

    fresh = njit(error_model="numpy")(cached.py_func)   # not cached: its IR can be inspected
    x = np.random.default_rng(1).normal(size=4099) * 3.0
    got, want = x.copy(), x.copy()
    fresh(got)
    cached(want)
    assert np.array_equal(got, want)
    signature = fresh.signatures[0]
    assert '"prefer-vector-width"="512"' in fresh.inspect_llvm(signature)
    if ll.get_host_cpu_features().get("avx512f"):
        assert "zmm" in fresh.inspect_asm(signature)
    # ... and the hot kernels ask for it (the attribute is per function, not inherited).
    for kernel in (_mlp_jit.field, _mlp_jit.jacobian, _mlp_jit._affine_row, _dp5.solve,
                   _dp5._rk_step, _dp5._error_ratio):
        assert "wide_vectors" in kernel.py_func.__code__.co_names, kernel.py_func.__name__
