"""Tests for odejac.regularisers: finite-difference gradients, degenerate cases, references."""
import numpy as np
import pytest

from odejac.regularisers import (
    DEFAULT_COND_EPS,
    PENALTIES,
    REG_CHOICES,
    TIE_RTOL,
    condition,
    frobenius,
    get_penalty,
    log_condition,
    spectral,
)

FD_STEP = 1e-6  # central-difference step for O(1) Jacobians: truncation ~1e-12, rounding ~1e-10
FD_RTOL = 1e-6  # the brief's bound on the relative error ‖g_fd − g‖ / ‖g‖
B = 4

# Every differentiable penalty, as name -> callable J -> (values, grads).
SMOOTH = {
    "frobenius": frobenius,
    "frobenius_squared": lambda J: frobenius(J, squared=True),
    "spectral": spectral,
    "condition": condition,
    "log_condition": log_condition,
}


def random_orthogonal(rng, D):
    """Haar-random ``(D, D)`` orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    Q, R = np.linalg.qr(rng.standard_normal((D, D)))
    return Q * np.sign(np.diag(R))


def with_singular_values(rng, s):
    """``(J, U, V)`` with ``J = U diag(s) Vᵀ`` for random orthogonal U, V."""
    U, V = random_orthogonal(rng, len(s)), random_orthogonal(rng, len(s))
    return U @ np.diag(s) @ V.T, U, V


def well_conditioned(rng, D):
    """``(B, D, D)`` stack with singular values spread over [1, 3], gaps ≥ 0.2 (no ties)."""
    out = []
    for _ in range(B):
        s = np.sort(1.0 + 2.0 * (np.arange(D) + 0.5 * rng.random(D)) / D)[::-1]
        out.append(with_singular_values(rng, s)[0])
    return np.array(out)


def fd_gradient(penalty, J, h=FD_STEP):
    """Central differences of ``penalty(J)[0]`` w.r.t. each entry of every sample at once."""
    G = np.zeros_like(J)
    for i in range(J.shape[1]):
        for j in range(J.shape[2]):
            Jp, Jm = J.copy(), J.copy()
            Jp[:, i, j] += h
            Jm[:, i, j] -= h
            G[:, i, j] = (penalty(Jp)[0] - penalty(Jm)[0]) / (2 * h)
    return G


def rel_err(g, g_ref):
    """Largest per-sample ``‖g − g_ref‖_F / ‖g_ref‖_F``."""
    num = np.linalg.norm(g - g_ref, axis=(1, 2))
    return float(np.max(num / np.linalg.norm(g_ref, axis=(1, 2))))


@pytest.mark.parametrize("D", [2, 3, 4])
@pytest.mark.parametrize("name", list(SMOOTH))
def test_gradient_matches_finite_differences(name, D):
    rng = np.random.default_rng(100 + D)
    J = well_conditioned(rng, D)
    _, g = SMOOTH[name](J)
    g_fd = fd_gradient(SMOOTH[name], J)
    err = rel_err(g, g_fd)
    assert err <= FD_RTOL, f"{name} D={D}: FD relative error {err:.2e} > {FD_RTOL:.0e}"


# Floored κ near σ_D ≈ 0. A larger ε than the default keeps the floor's curvature (scale ε·σ₁)
# resolvable by a step that stays above the SVD's rounding (~1e-16·σ₁); the formula is the same.
NEAR_EPS = 1e-3
NEAR_STEP = 1e-7


@pytest.mark.parametrize("ratio", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("name", ["condition", "log_condition"])
def test_floored_condition_gradient_near_singular(name, ratio):
    rng = np.random.default_rng(7)
    s1 = 2.0
    s = [s1, 1.3, 0.9, ratio * NEAR_EPS * s1]
    J = np.array([with_singular_values(rng, s)[0] for _ in range(B)])
    pen = lambda M: PENALTIES[name](M, eps=NEAR_EPS)
    _, g = pen(J)
    g_fd = fd_gradient(pen, J, h=NEAR_STEP)
    err = rel_err(g, g_fd)
    assert err <= FD_RTOL, f"{name}, σ_D = {ratio}·ε·σ₁: FD relative error {err:.2e}"


@pytest.mark.parametrize("name", ["condition", "log_condition"])
def test_floored_condition_smooth_at_exactly_singular(name):
    # κ_ε depends on σ_D², so at a simple σ_D = 0 it is smooth with gradient exactly 0.
    J = np.array([np.diag([2.0, 1.3, 0.0]), np.diag([1.0, 0.0, 0.5])])
    pen = lambda M: PENALTIES[name](M, eps=NEAR_EPS)
    v, g = pen(J)
    assert np.all(g == 0.0)
    g_fd = fd_gradient(pen, J, h=NEAR_STEP)
    scale = np.exp(v) / 2.0 if name == "log_condition" else v / 2.0  # ~ κ_ε/σ₁
    assert np.max(np.abs(g_fd)) <= FD_RTOL * scale.min(), f"max |FD| = {np.abs(g_fd).max():.2e}"


@pytest.mark.nojit
def test_default_floor_keeps_singular_and_nearly_singular_finite():
    J = np.array([
        np.diag([2.0, 1.0, 0.0]), np.diag([1.0, 0.0, 0.0]), np.diag([1.0, 1.0, 1e-12])])
    for pen in (condition, log_condition):
        v, g = pen(J)
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    v, g = condition(J)
    np.testing.assert_allclose(v[:2], 1.0 / DEFAULT_COND_EPS, rtol=1e-15)
    assert np.all(g[:2] == 0.0)
    np.testing.assert_allclose(v[2], (1e-24 + DEFAULT_COND_EPS**2) ** -0.5, rtol=1e-12)
    assert v.max() <= 1.0 / DEFAULT_COND_EPS


def test_values_match_numpy():
    rng = np.random.default_rng(3)
    J = rng.standard_normal((16, 5, 5))
    np.testing.assert_allclose(frobenius(J)[0], np.linalg.norm(J, "fro", axis=(1, 2)), rtol=1e-14)
    frob = np.linalg.norm(J, "fro", axis=(1, 2))
    np.testing.assert_allclose(frobenius(J, squared=True)[0], frob**2, rtol=1e-14)
    np.testing.assert_allclose(spectral(J)[0], np.linalg.norm(J, 2, axis=(1, 2)), rtol=1e-14)
    cond = np.linalg.cond(J)
    assert cond.max() < 1e4  # where the floor's relative bias ε²κ²/2 is < 5e-9
    np.testing.assert_allclose(condition(J)[0], cond, rtol=1e-8)
    np.testing.assert_allclose(log_condition(J)[0], np.log(cond), rtol=1e-8)


# ---- degenerate cases -------------------------------------------------------------------------

@pytest.mark.nojit
def test_identity_gives_symmetric_gradients():
    J = np.eye(3)[None]
    np.testing.assert_allclose(spectral(J)[1][0], np.eye(3) / 3, atol=1e-15)
    np.testing.assert_allclose(frobenius(J)[1][0], np.eye(3) / np.sqrt(3), atol=1e-15)
    # κ has its minimum at I: the min-norm subgradient is 0.
    for pen in (condition, log_condition):
        v, g = pen(J)
        np.testing.assert_allclose(g, 0.0, atol=1e-15)
    np.testing.assert_allclose(condition(J)[0], 1.0, rtol=1e-15)


@pytest.mark.nojit
def test_tied_top_and_bottom_diagonal():
    e = np.eye(3)
    v, g = spectral(np.diag([3.0, 3.0, 1.0])[None])
    assert v[0] == 3.0
    np.testing.assert_allclose(g[0], np.diag([0.5, 0.5, 0.0]), atol=1e-15)
    # tied top: G₁/σ_D − σ₁ G_D/σ_D² = diag(.5, .5, 0) − 3 e₃e₃ᵀ
    _, g = condition(np.diag([3.0, 3.0, 1.0])[None])
    np.testing.assert_allclose(g[0], np.diag([0.5, 0.5, -3.0]), rtol=1e-12, atol=1e-12)
    # tied bottom: e₁e₁ᵀ/1 − 2·diag(0, .5, .5)/1
    _, g = condition(np.diag([2.0, 1.0, 1.0])[None])
    np.testing.assert_allclose(g[0], np.diag([1.0, -1.0, -1.0]), rtol=1e-12, atol=1e-12)
    _, g = spectral(np.diag([2.0, 1.0, 1.0])[None])
    np.testing.assert_allclose(g[0], np.outer(e[0], e[0]), atol=1e-15)


@pytest.mark.parametrize(
    "s", [[3.0, 3.0, 1.0], [2.0, 1.0, 1.0], [2.0, 2.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
)
def test_tied_gradient_independent_of_svd_basis(s):
    """Expected gradients from the construction basis; LAPACK's basis of the tie is arbitrary."""
    rng = np.random.default_rng(11)
    J, U, V = with_singular_values(rng, np.array(s))
    top = np.isclose(s, s[0])
    bot = np.isclose(s, s[-1])
    G1 = (U[:, top] @ V[:, top].T) / top.sum()
    GD = (U[:, bot] @ V[:, bot].T) / bot.sum()
    np.testing.assert_allclose(spectral(J[None])[1][0], G1, atol=1e-12)
    expected = G1 / s[-1] - s[0] * GD / s[-1] ** 2
    np.testing.assert_allclose(condition(J[None])[1][0], expected, atol=1e-10)


@pytest.mark.parametrize("name", ["spectral", "condition", "log_condition", "frobenius"])
def test_gradients_equivariant_under_rotations(name):
    """R(P J Qᵀ) = R(J) and dR(P J Qᵀ) = P dR(J) Qᵀ, also for tied spectra (J = I, diag(3,3,1))."""
    rng = np.random.default_rng(5)
    tied = [np.eye(3), np.diag([3.0, 3.0, 1.0]), np.diag([2.0, 1.0, 1.0])]
    base = np.array(tied + [well_conditioned(rng, 3)[0]])
    P, Q = random_orthogonal(rng, 3), random_orthogonal(rng, 3)
    v, g = PENALTIES[name](base)
    v_rot, g_rot = PENALTIES[name](P @ base @ Q.T)
    np.testing.assert_allclose(v_rot, v, rtol=1e-12, atol=1e-14)  # log κ(I) = 0
    np.testing.assert_allclose(g_rot, P @ g @ Q.T, atol=1e-10)
    v_sym, g_sym = PENALTIES[name](P @ base @ P.T)  # the "Q J Qᵀ" similarity
    np.testing.assert_allclose(g_sym, P @ g @ P.T, atol=1e-10)


@pytest.mark.nojit
def test_tie_tolerance_is_relative_to_sigma_max():
    inside = np.diag([3.0, 3.0 * (1 - 0.1 * TIE_RTOL), 1.0])[None]
    outside = np.diag([3.0, 3.0 * (1 - 1e3 * TIE_RTOL), 1.0])[None]
    np.testing.assert_allclose(spectral(inside)[1][0], np.diag([0.5, 0.5, 0.0]), atol=1e-15)
    np.testing.assert_allclose(spectral(outside)[1][0], np.diag([1.0, 0.0, 0.0]), atol=1e-15)


def test_tie_at_the_small_end_is_judged_against_sigma_max():
    """σ_{D-1} and σ_D apart by 1e-12 σ₁ are tied (rounding scale), though 1e-9 apart relative
    to σ_D: the gradient of σ_D is the average over both, a function of their subspace only."""
    rng = np.random.default_rng(4)
    small = 1e-3
    s = np.array([1.0, small + 0.01 * TIE_RTOL, small])
    J, U, V = with_singular_values(rng, s)
    G1 = np.outer(U[:, 0], V[:, 0])
    GD = U[:, 1:] @ V[:, 1:].T / 2
    kappa = s[0] / s[-1]
    expected = G1 / s[-1] - s[0] * GD / s[-1] ** 2     # ε-floor effect ~ ε²κ² = 1e-10
    got = condition(J[None])[1][0]
    err = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert err < 1e-6, f"relative error {err:.1e} (κ = {kappa:g})"


@pytest.mark.nojit
def test_zero_jacobian():
    J = np.zeros((2, 3, 3))
    for pen in (frobenius, spectral):
        v, g = pen(J)
        assert np.all(v == 0.0) and np.all(g == 0.0)
    v, g = condition(J)
    np.testing.assert_allclose(v, 1.0, rtol=1e-15)
    assert np.all(g == 0.0)
    v, g = log_condition(J)
    np.testing.assert_allclose(v, 0.0, atol=1e-15)
    assert np.all(g == 0.0)


# ---- errors and registry ----------------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("name", list(PENALTIES))
def test_non_finite_jacobian_raises_with_indices(name):
    J = np.tile(np.eye(2), (5, 1, 1))
    J[1, 0, 0] = np.nan
    J[3, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 of 5 samples \(indices \[1, 3\]\)"):
        PENALTIES[name](J)


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 4), (2, 0, 0), (1, 2, 2, 2)])
def test_bad_shape_raises(shape):
    with pytest.raises(ValueError, match=r"shape \(B, D, D\)"):
        spectral(np.zeros(shape))


def test_bad_dtype_and_eps_raise():
    with pytest.raises(ValueError, match="real numeric"):
        condition(np.eye(2)[None] * 1j)
    for eps in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="eps"):
            condition(np.eye(2)[None], eps=eps)


@pytest.mark.nojit
def test_registry():
    assert set(PENALTIES) == {"frobenius", "spectral", "condition", "log_condition"}
    assert REG_CHOICES == ("none", "frobenius", "spectral", "condition")
    assert get_penalty("spectral") is spectral
    valid = "valid names: frobenius, spectral, condition, log_condition"
    with pytest.raises(ValueError, match=valid):
        get_penalty("nuclear")
    with pytest.raises(ValueError, match="handled by the caller"):
        get_penalty("none")


# -- found by mutation testing (tests/README.md) ---------------------------------------------

def test_frobenius_gradient_of_a_small_matrix_is_its_direction():
    """‖J‖_F < 1 is not special: the gradient is J / ‖J‖_F for every nonzero J."""
    J = np.array([[[0.3, 0.0], [0.0, -0.4]]])            # ‖J‖_F = 0.5
    values, grads = frobenius(J)
    np.testing.assert_allclose(values, [0.5], rtol=1e-15)
    np.testing.assert_allclose(grads[0], J[0] / 0.5, rtol=1e-15)


@pytest.mark.parametrize("name", list(PENALTIES))
def test_zero_jacobian_raises_no_floating_point_warnings(name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values, grads = PENALTIES[name](np.zeros((2, 3, 3)))
    assert np.all(np.isfinite(values)) and np.all(grads == 0.0)


def test_unknown_penalty_hint_only_for_none():
    with pytest.raises(ValueError, match="handled by the caller"):
        get_penalty("none")
    with pytest.raises(ValueError) as info:
        get_penalty("frobenious")
    assert "handled by the caller" not in str(info.value) and "frobenius" in str(info.value)


def test_one_by_one_jacobians_are_valid():
    J = np.array([[[-3.0]], [[0.5]]])
    np.testing.assert_array_equal(spectral(J)[0], [3.0, 0.5])
    np.testing.assert_array_equal(spectral(J)[1][:, 0, 0], [-1.0, 1.0])
    np.testing.assert_allclose(condition(J)[0], 1.0, rtol=1e-15)  # σ₁ = σ_D: κ = 1


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_values_and_gradients_are_double_whatever_the_input_dtype(dtype):
    J64 = np.array([[[2.0, 1.0], [0.0, 3.0]]])
    for name, pen in PENALTIES.items():
        v, g = pen(J64.astype(dtype))
        v_ref, g_ref = pen(J64)
        assert v.dtype == g.dtype == np.float64, name
        np.testing.assert_array_equal(v, v_ref)
        np.testing.assert_array_equal(g, g_ref)


def test_bad_sample_list_is_elided_after_ten():
    J = np.zeros((12, 2, 2))
    J[:10, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"indices \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]\)"):
        frobenius(J)
    J[10, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"indices \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\]\)"):
        frobenius(J)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_tie_decision_is_scale_invariant(scale):
    """Ties are judged relative to σ₁, so c·J has the tie structure of J for any c > 0."""
    rng = np.random.default_rng(8)
    J, U, V = with_singular_values(rng, np.array([1.0, 1.0 - 0.5 * TIE_RTOL, 0.5]))
    for name in ("spectral", "condition", "log_condition"):
        g = PENALTIES[name](J[None])[1][0]
        g_scaled = PENALTIES[name](scale * J[None])[1][0]
        homogeneity = {"spectral": 1.0, "condition": 1 / scale, "log_condition": 1 / scale}[name]
        np.testing.assert_allclose(g_scaled, homogeneity * g, rtol=1e-6, err_msg=name)
    G1 = U[:, :2] @ V[:, :2].T / 2
    np.testing.assert_allclose(spectral(scale * J[None])[1][0], G1, atol=1e-9)


def test_floor_eps_and_the_zero_matrix_parts():
    from odejac.regularisers import floored_condition_parts

    kappa, r, coef = floored_condition_parts(np.array([0.0, 2.0]), np.array([0.0, 0.0]), 0.1)
    np.testing.assert_allclose(kappa, [1 / np.sqrt(1.01), 10.0], rtol=1e-15)
    assert coef[0] == 0.0 and r[0] == 1.0
    # the floor ε given to the penalty is the one used: κ_ε(diag(1, 0)) = 1/ε
    np.testing.assert_allclose(condition(np.diag([1.0, 0.0])[None], eps=0.1)[0], [10.0],
                               rtol=1e-15)
    np.testing.assert_allclose(log_condition(np.diag([1.0, 0.0])[None], eps=0.1)[0],
                               [np.log(10.0)], rtol=1e-15)
