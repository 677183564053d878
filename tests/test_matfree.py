"""Matrix-free extreme singular values (odejac/matfree.py) and the MLP kernels behind them.

Agreement with the exact SVD path is checked at ``tol = 1e-10`` (relative residual of both
Ritz pairs); the measured errors and product counts are in the assertion messages and in
``docs/scalable.md``. The new MLP kernels are checked against the formed Jacobian, against
``_jacobian_vjp`` and against central finite differences.
"""
import numpy as np
import pytest

from odejac import matfree
from odejac.mlp import MLP
from odejac.model import NeuralODE
from odejac.regularisers import PENALTIES

T0 = 0.4
TIGHT = dict(tol=1e-10, max_cycles=500)
VALUE_RTOL = 1e-9     # σ and κ: the Ritz values at tol 1e-10 are exact to ~1e-12 (measured)
GRAD_RTOL = 1e-7      # gradients: Ritz vectors are accurate to ~tol·σ/gap
FD_STEP = 1e-4        # Richardson-extrapolated central differences, error O(step⁴)
FD_RTOL = 1e-8

CONFIGS = [("tanh", False, (5, 4)), ("softplus", True, (6,)), ("tanh", True, ()),
           ("softplus", False, (4, 4))]


def _rel(a, b):
    return np.linalg.norm(np.ravel(a - b)) / max(np.linalg.norm(np.ravel(b)), 1e-300)


def _setup(act, td, hidden, D=4, B=3, seed=0):
    rng = np.random.default_rng(seed)
    field = MLP(D, hidden=hidden, activation=act, time_dependent=td, seed=seed + 1)
    return field, rng.normal(size=(B, D)), rng


# ---------------------------------------------------------------------------- MLP kernels
@pytest.mark.parametrize("act,td,hidden", CONFIGS)
def test_block_products_match_the_formed_jacobian(act, td, hidden):
    field, h, rng = _setup(act, td, hidden)
    J, S = field._jacobian(h, T0), field._slopes(h, T0)
    V = rng.normal(size=h.shape + (2,))
    assert _rel(field._jvp_block(S, V), J @ V) < 1e-14
    assert _rel(field._vjp_block(S, V), J.transpose(0, 2, 1) @ V) < 1e-14
    lus = field._square_factors()
    if all(w == 4 for w in hidden):
        assert _rel(field._jinv_block(S, lus, V), np.linalg.solve(J, V)) < 1e-11
        assert _rel(field._jinv_t_block(S, lus, V),
                    np.linalg.solve(J.transpose(0, 2, 1), V)) < 1e-11
    else:
        assert lus is None


@pytest.mark.parametrize("act,td,hidden", CONFIGS)
def test_lowrank_jacobian_vjp_matches_full_kernel_and_fd(act, td, hidden):
    field, h, rng = _setup(act, td, hidden)
    U, V = rng.normal(size=h.shape + (2,)), rng.normal(size=h.shape + (2,))
    g_theta, g_h = field._jacobian_vjp_lowrank(h, T0, U, V)
    G = np.einsum("bir,bjr->bij", U, V)
    full_theta, full_h = field._jacobian_vjp(h, T0, G)
    assert _rel(g_theta, full_theta) < 1e-13 and _rel(g_h, full_h) < 1e-13

    def R(theta, hh):
        old = field.theta
        field.theta = theta
        try:
            return np.einsum("bir,bij,bjr->", U, field._jacobian(hh, T0), V)
        finally:
            field.theta = old

    def fd(fun, x):
        out = np.zeros(x.size)
        for i in range(x.size):
            def central(step):
                e = np.zeros(x.size)
                e[i] = step
                return (fun(x + e.reshape(x.shape)) - fun(x - e.reshape(x.shape))) / (2 * step)
            out[i] = (4 * central(FD_STEP / 2) - central(FD_STEP)) / 3
        return out.reshape(x.shape)

    theta = field.theta
    err_theta = _rel(g_theta, fd(lambda th: R(th, h), theta))
    err_h = _rel(g_h, fd(lambda hh: R(theta, hh), h))
    assert err_theta < FD_RTOL, f"d(uᵀJv)/dθ vs FD: rel err {err_theta:.2e}"
    assert err_h < FD_RTOL, f"d(uᵀJv)/dh vs FD: rel err {err_h:.2e}"


# ---------------------------------------------------------------------------- estimates
CASES = {
    # name: (D, hidden, options); the product counts are asserted to stay near the measured ones
    "lanczos-no-restart": (6, (10, 8), dict()),            # k ≤ D = 6: exact after ≤ 6 steps
    "lanczos-restarted": (12, (16, 16), dict(max_basis=8, keep=2)),
    "inverse": (16, (16, 16), dict()),                      # square widths: σ_min from J⁻¹
}


def _agreement(D, hidden, options, B=8, seed=0):
    rng = np.random.default_rng(seed)
    field = MLP(D, hidden=hidden, seed=seed + 2)
    h = rng.normal(size=(B, D))
    U, s, Vh = np.linalg.svd(field._jacobian(h, T0))
    ext = matfree.extreme_singular(field, h, T0, **TIGHT, **options)
    err = {"sigma_max": np.abs(ext.sigma_max / s[:, 0] - 1).max(),
           "sigma_min": np.abs(ext.sigma_min / s[:, -1] - 1).max(),
           # vectors up to sign: 1 - |<v, v_svd>|
           "v_max": np.abs(1 - np.abs(np.einsum("bi,bi->b", ext.v_max, Vh[:, 0]))).max(),
           "u_min": np.abs(1 - np.abs(np.einsum("bi,bi->b", ext.u_min, U[:, :, -1]))).max()}
    return field, h, ext, err, s


@pytest.mark.parametrize("case", list(CASES))
def test_extremes_agree_with_svd(case):
    D, hidden, options = CASES[case]
    _, _, ext, err, s = _agreement(D, hidden, options)
    msg = (f"{case}: errors {', '.join(f'{k} {v:.1e}' for k, v in err.items())}; "
           f"{ext.products} products, {ext.cycles} cycles; "
           f"median κ {np.median(s[:, 0] / s[:, -1]):.3g}")
    assert ext.n_unconverged == 0, msg
    assert err["sigma_max"] < VALUE_RTOL and err["sigma_min"] < VALUE_RTOL, msg
    assert err["v_max"] < 1e-9 and err["u_min"] < 1e-9, msg
    assert ext.inverse == (case == "inverse"), msg


def test_warm_start_reuses_vectors():
    D, hidden, options = CASES["inverse"]
    field, h, ext, _, _ = _agreement(D, hidden, options)
    state = matfree.WarmStart()
    cold = matfree.extreme_singular(field, h, T0, state, **TIGHT)
    warm = matfree.extreme_singular(field, h, T0, state, **TIGHT)
    # converged start vectors: one J product and one Jᵀ product per run, nothing more
    assert warm.products == 4 < cold.products, (cold.products, warm.products)
    keyed = matfree.WarmStart(keyed=True)
    matfree.extreme_singular(field, h, T0, keyed, **TIGHT)
    again = matfree.extreme_singular(field, h[::-1].copy(), T0, keyed, **TIGHT)  # rows reordered
    assert again.products == 4, again.products
    np.testing.assert_allclose(again.sigma_min, ext.sigma_min[::-1], rtol=1e-12)


@pytest.mark.parametrize("name", ["spectral", "condition", "log_condition"])
@pytest.mark.parametrize("case", ["lanczos-no-restart", "inverse"])
def test_penalty_gradients_agree_with_exact_path(name, case):
    D, hidden, options = CASES[case]
    field, h, _, _, _ = _agreement(D, hidden, options)
    scale = 0.3
    values, g_theta, g_h, _ = matfree.penalty_and_grad(field, name, h, T0, scale, **TIGHT,
                                                       **options)
    ref_values, dR_dJ = PENALTIES[name](field._jacobian(h, T0))
    ref_theta, ref_h = field._jacobian_vjp(h, T0, scale * dR_dJ)
    errs = (_rel(values, ref_values), _rel(g_theta, ref_theta), _rel(g_h, ref_h))
    assert errs[0] < VALUE_RTOL and max(errs[1:]) < GRAD_RTOL, f"{name}/{case}: {errs}"


def test_zero_jacobian_follows_the_exact_conventions():
    field = MLP(4, hidden=(4, 4))
    field.theta = np.zeros(field.n_params)
    ext = matfree.extreme_singular(field, np.ones((2, 4)), T0)
    values, U, V = matfree.kappa_penalty("condition", ext)
    ref = PENALTIES["condition"](field._jacobian(np.ones((2, 4)), T0))
    np.testing.assert_allclose(values, ref[0])
    assert not U.any()


@pytest.mark.parametrize("reg", ["condition", "spectral"])
def test_model_matrix_free_matches_exact(reg):
    X = np.random.default_rng(0).normal(size=(8, 2))
    y = np.arange(8) % 2
    out = {}
    for method in ("exact", "matrix-free"):
        model = NeuralODE(2, augment_dim=1, hidden=(6, 5), reg=reg, lam=0.3, seed=3,
                          kappa_method=method, rtol=1e-8, atol=1e-8)
        model.matfree_options = dict(tol=1e-10)
        out[method] = model.loss_and_grad(X, y)
    (l0, g0, s0), (l1, g1, s1) = out["exact"], out["matrix-free"]
    assert abs(l1 - l0) <= 1e-12 * abs(l0) and _rel(g1, g0) < 1e-9
    assert abs(s1["kappa"] - s0["kappa"]) <= 1e-10 * s0["kappa"]
    assert s1["kappa_unconverged"] == 0 and s1["kappa_products"] <= 2 * 3 + 2


def test_bad_kappa_method_is_refused():
    with pytest.raises(ValueError, match="kappa_method"):
        NeuralODE(2, kappa_method="lanczos")
    with pytest.raises(ValueError, match="matrix-free"):
        matfree.kappa_penalty("frobenius", None)


def test_config_and_cli_select_the_kappa_method():
    from odejac.train import TrainConfig, build_model
    model = build_model(TrainConfig(kappa="matrix-free", reg="kinetic"), 2, 2)
    assert model.kappa_method == "matrix-free" and model.reg_at == "trajectory"
    with pytest.raises(ValueError, match="kappa"):
        TrainConfig(kappa="svd")


# Default options: what a user gets without passing any. Square widths (σ_min from J⁻¹) at
# D = 16 and D = 12, and a non-square field answered by the J run alone.
DEFAULT_CASES = {"inverse-16": (16, (16, 16)), "inverse-12": (12, (12,)),
                 "lanczos-16": (16, (32, 32))}
DEFAULT_RTOL = 1e-6


@pytest.mark.parametrize("case", list(DEFAULT_CASES))
def test_default_options_agree_with_svd(case):
    """σ_max, σ_min and κ_ε with the default options agree with the SVD to 1e-6 (relative)."""
    D, hidden = DEFAULT_CASES[case]
    rng = np.random.default_rng(0)
    field = MLP(D, hidden=hidden, seed=3)
    h = rng.normal(size=(16, D))
    J = field._jacobian(h, T0)
    s = np.linalg.svd(J, compute_uv=False)
    ext = matfree.extreme_singular(field, h, T0)
    err = {"sigma_max": np.abs(ext.sigma_max / s[:, 0] - 1).max(),
           "sigma_min": np.abs(ext.sigma_min / s[:, -1] - 1).max(),
           "kappa": np.abs(matfree.kappa(ext) / PENALTIES["condition"](J)[0] - 1).max()}
    assert max(err.values()) < DEFAULT_RTOL, f"{case}: relative errors {err}"
