"""Fused element-loop kernels agree bit for bit with their array-at-a-time twins.

The DP5 driver's stage sums and copies (``odejac._dp5``) run as Numba element loops; under
``NUMBA_DISABLE_JIT=1`` the array twins run instead (the loops would crawl in the
interpreter). Both must give the same bits, so that a run takes the same steps and gives the
same numbers with the JIT on or off. The jitted tanh MLP (``odejac._mlp_jit``) is checked
against the NumPy methods it replaces, to round-off (its tanh is a few ulp from
``np.tanh``; ``tests/test_vtanh.py``).
"""
import numpy as np
import pytest

from odejac import _dp5, _dp5_loops, mlp


def _fv(field):
    """The field's ``_f_and_vjp(h, t, a)`` as ``f_and_vjp(t, y, a)``."""
    return lambda t, y, a: field._f_and_vjp(y, t, a)


N = 37  # odd, so any vectorised remainder loop is exercised too


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(N)
    y_new = rng.standard_normal(N)
    K = rng.standard_normal((_dp5._N_STAGES, N)) * 10.0 ** rng.integers(-8, 8, (_dp5._N_STAGES, N))
    w = rng.standard_normal(_dp5._N_STAGES)
    # Signed zeros, infinities and NaNs must propagate identically.
    K[1, 0], K[2, 1], K[3, 2], y_new[3], y_new[4] = np.inf, np.nan, -0.0, np.nan, -np.inf
    return y, y_new, K, w


@pytest.mark.nojit
@pytest.mark.parametrize("n_terms", range(1, _dp5._N_STAGES + 1))
@pytest.mark.parametrize("post", [1.0, 0.137])
def test_combine_twins_agree(n_terms, post):
    y, _, K, w = _inputs(n_terms)
    a, b = np.empty(N), np.empty(N)
    _dp5_loops._combine_loops(a, y, K, w, n_terms, post)
    _dp5_loops._combine_arrays(b, y, K, w, n_terms, post)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.nojit
def test_accumulate_twins_agree():
    y, _, K, w = _inputs(1)
    a, b = np.empty(N), np.empty(N)
    _dp5_loops._accumulate_loops(a, y, K, w)
    _dp5_loops._accumulate_arrays(b, y, K, w)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.nojit
@pytest.mark.parametrize("post", [1.0, 0.137])
def test_scaled_error_twins_agree(post):
    y, y_new, K, w = _inputs(2)
    a, b = np.empty(N), np.empty(N)
    _dp5_loops._scaled_error_loops(a, y, y_new, K, w, post, 1e-3, 1e-6)
    _dp5_loops._scaled_error_arrays(b, y, y_new, K, w, post, 1e-3, 1e-6)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.nojit
@pytest.mark.parametrize("hidden", [(7,), (6, 5, 4)])
@pytest.mark.parametrize("time_dependent", [False, True])
def test_jitted_mlp_matches_numpy(hidden, time_dependent):
    """``odejac._mlp_jit`` against the NumPy methods: the same mathematics with another tanh
    (a few ulp from ``np.tanh``) and another summation order, so equal to round-off."""
    field = mlp.MLP(3, hidden=hidden, time_dependent=time_dependent, seed=1)
    rng = np.random.default_rng(5)
    h = rng.standard_normal((11, 3)) * 2.0
    a = rng.standard_normal((11, 3))
    sizes, offsets, rows, n_rows = mlp._mlp_jit.layout(field.sizes)
    f_jit, v_jit, g_jit = np.empty((11, 3)), np.empty((11, 3)), np.empty(field.n_params)

    def call(mode):
        mlp._mlp_jit.field(mode, h.ravel(), 0.3, a.ravel(), field._theta, sizes, offsets, rows,
                           time_dependent, np.empty((n_rows, 11)), f_jit.ravel(),
                           v_jit.ravel(), g_jit)
    call(mlp._mlp_jit.MODE_F)
    f_only = f_jit.copy()
    call(mlp._mlp_jit.MODE_F_VJP)
    fv_jit = (f_jit, v_jit, g_jit)
    field._jit_tanh = False                   # the NumPy reference
    f_ref = field._f(h, 0.3)
    fv_ref = field._f_and_vjp(h, 0.3, a)
    np.testing.assert_array_equal(f_only, f_jit)
    np.testing.assert_allclose(f_jit, f_ref, rtol=1e-13, atol=1e-15)
    for got, want in zip(fv_jit, fv_ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_fused_kernels_match_numpy_at_training_size():
    """The reference field at B = 256 (SIMD main loops and remainders), every output,
    the Jacobian (``MODE_JACOBIAN``) included."""
    field = mlp.MLP(4, hidden=(32, 32), seed=0)
    rng = np.random.default_rng(3)
    h, a = rng.standard_normal((256, 4)) * 3.0, rng.standard_normal((256, 4))
    z = np.concatenate([h.ravel(), a.ravel(), np.zeros(field.n_params)])
    got = [field._f(h, 0.0), *field._f_and_vjp(h, 0.0, a), field._jacobian(h, 0.0)]
    aug = field._augmented_rhs(h.shape)
    fused = aug(0.0, z).copy() if aug is not None else None
    field._jit_tanh = False
    want = [field._f(h, 0.0), *field._f_and_vjp(h, 0.0, a), field._jacobian(h, 0.0)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    if fused is not None:
        np.testing.assert_allclose(fused, np.concatenate(
            [want[0].ravel(), -want[2].ravel(), -want[3]]), rtol=1e-12, atol=1e-14)


@pytest.mark.nojit
@pytest.mark.parametrize("negate", [False, True])
def test_copy_twins_agree(negate):
    _, y_new, _, _ = _inputs(4)
    a, b = np.empty(N), np.empty(N)
    _dp5_loops._copy_loops(a, y_new, negate)
    _dp5_loops._copy_arrays(b, y_new, negate)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.nojit
@pytest.mark.parametrize("controller", ["torchdiffeq", "scipy"])
def test_driver_copies_the_derivative_before_the_next_call(controller):
    """``solve_flat``'s contract: ``fun`` may return one buffer every time (the adjoint does)."""
    from odejac.integrate import error_groups, solve_flat

    A = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.1], [0.0, 0.3, -1.0]])
    buffer = np.empty(3)

    def fresh(t, y):
        return A @ y + np.sin(t)

    def reused(t, y):
        buffer[:] = A @ y + np.sin(t)
        return buffer

    y0 = np.array([1.0, -0.5, 0.25])
    args = ((1.0, -2.0), 1e-6, 1e-9, controller, 10_000, error_groups([3]), False)
    a = solve_flat(fresh, y0.copy(), *args)
    b = solve_flat(reused, y0.copy(), *args)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:4] == b[1:4]


@pytest.mark.nojit
@pytest.mark.parametrize("time_dependent", [False, True])
def test_fused_augmented_rhs_matches_the_adjoint_closure(time_dependent):
    """``adjoint_solve(..., augmented_rhs=<the fused kernel>)`` = the closure built from
    f_and_vjp."""
    from odejac.adjoint import adjoint_solve

    field = mlp.MLP(3, hidden=(6, 5), time_dependent=time_dependent, seed=2)
    rng = np.random.default_rng(7)
    h1, a1 = rng.standard_normal((9, 3)), rng.standard_normal((9, 3))
    sizes = [v.size for W, b in field.layers for v in (W, b)]
    n = h1.size
    out = np.empty(2 * n + field.n_params)
    layer_sizes, offsets, rows, n_rows = mlp._mlp_jit.layout(field.sizes)
    work = np.empty((n_rows, 9))

    def fused(t, z):
        mlp._mlp_jit.field(mlp._mlp_jit.MODE_AUGMENTED, z[:n], t, z[n:2 * n], field._theta,
                           layer_sizes, offsets, rows, time_dependent, work, out[:n], out[n:2 * n],
                           out[2 * n:])
        return out

    kw = dict(rtol=1e-6, atol=1e-8)
    ref = adjoint_solve(_fv(field), h1, a1, (0.0, 1.5), param_sizes=sizes, **kw)
    got = adjoint_solve(_fv(field), h1, a1, (0.0, 1.5), param_sizes=sizes, augmented_rhs=fused,
                        **kw)
    assert (got.nfe, got.n_accepted, got.n_rejected) == (ref.nfe, ref.n_accepted, ref.n_rejected)
    for name in ("dL_dh0", "dL_dtheta", "h0"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-11, atol=1e-13)
    if field._jit_tanh:   # the model's own hook gives the same function
        again = adjoint_solve(_fv(field), h1, a1, (0.0, 1.5), param_sizes=sizes,
                              augmented_rhs=field._augmented_rhs(h1.shape), **kw)
        np.testing.assert_array_equal(again.dL_dtheta, got.dL_dtheta)


@pytest.mark.nojit
def test_cold_path_twins_agree():
    """The initial step's and the dense output's loops give their array twins' bits."""
    y, y_new, K, _ = _inputs(5)
    f, scale = K[1].copy(), np.abs(K[2]) + 0.5
    pairs = []
    for suffix in ("loops", "arrays"):
        kernel = {name: getattr(_dp5_loops, f"_{name}_{suffix}")
                  for name in ("initial_scaled", "euler", "scaled_difference", "interpolate")}
        outs = [np.empty(N) for _ in range(5)]
        kernel["initial_scaled"](outs[0], outs[1], outs[2], y, f, 1e-3, 1e-6)
        kernel["euler"](outs[3], y, 0.37, f)
        kernel["scaled_difference"](outs[4], y_new, f, scale)
        with np.errstate(all="ignore"):     # inf − inf from the infinities of _inputs
            outs.append(kernel["interpolate"](y, y_new, K[3], K[4], K[5], 0.21, 0.63))
        pairs.append(outs)
    for a, b in zip(*pairs):
        np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))
    for x in (y, y_new, K[1]):
        assert _dp5_loops._all_finite_loops(x) == _dp5_loops._all_finite_arrays(x)
    assert _dp5_loops._all_finite_loops(np.ones(N)) and _dp5_loops._all_finite_arrays(np.ones(N))


@pytest.mark.nojit
@pytest.mark.parametrize("controller", ["torchdiffeq", "scipy"])
@pytest.mark.parametrize("bad_call", [1, 2, 5])
def test_wrong_size_derivative_is_a_solver_error(controller, bad_call):
    """A field returning the wrong size on its first call, the initial-step trial (2nd) or
    a stage stops the solve with the driver's message instead of a crash."""
    from odejac.integrate import SolverError, error_groups, solve_flat

    calls = []

    def fun(t, y):
        calls.append(t)
        return -y[:-1] if len(calls) == bad_call else -y

    with pytest.raises(SolverError, match="wrong size") as err:
        solve_flat(fun, np.ones(4), (0.0, 1.0), 1e-6, 1e-9, controller, 1000,
                   error_groups([4]), False)
    assert err.value.nfe == bad_call
