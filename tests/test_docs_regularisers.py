"""Every numbered formula of docs/regularisers.md checked against the code (``reg_<section>``),
but §9 (the solver-error penalty), which tests/test_docs_regularisers_solver_error.py checks.

Part of the docs-formula checks (see tests/test_docs_dormand_prince.py,
tests/test_docs_adjoint.py with tests/test_docs_adjoint_discrete.py (§6), and
tests/test_docs_regularisers.py with tests/test_docs_regularisers_solver_error.py (§9)):
formulas are written out again here, independently of the code, and compared with what the
code computes.
"""

import numpy as np
import pytest

from odejac import odeint
from odejac.mlp import MLP
from odejac.model import NeuralODE
from odejac.regularisers import (DEFAULT_COND_EPS, PENALTIES, condition, frobenius,
                                 log_condition, spectral)
from reference import docs_fd, docs_with_theta

FD_STEP = 1e-6


def _fd(fun, x, v, step=FD_STEP):
    return docs_fd(fun, x, v, step)


_with_theta = docs_with_theta


# ============================================================ docs/regularisers.md

def _jacobians(seed=0, B=3, D=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, D, D))


def _fd_matrix(penalty, J, step=FD_STEP):
    G = np.zeros_like(J)
    for i in range(J.shape[1]):
        for j in range(J.shape[2]):
            E = np.zeros_like(J)
            E[:, i, j] = step
            G[:, i, j] = (penalty(J + E)[0] - penalty(J - E)[0]) / (2 * step)
    return G


def test_reg_1_frobenius_gradient():
    """§1 (1.1): ∂‖J‖_F/∂J = J/‖J‖_F, ∂‖J‖_F²/∂J = 2J; 0 at J = 0."""
    J = _jacobians()
    norm = np.sqrt((J**2).sum(axis=(1, 2)))
    values, grads = frobenius(J)
    np.testing.assert_allclose(values, norm, rtol=1e-14)
    np.testing.assert_allclose(grads, J / norm[:, None, None], rtol=1e-14)
    np.testing.assert_allclose(frobenius(J, squared=True)[1], 2 * J, rtol=1e-15)
    np.testing.assert_allclose(grads, _fd_matrix(frobenius, J), rtol=1e-7)
    assert np.all(frobenius(np.zeros((1, 3, 3)))[1] == 0)


def test_reg_2_singular_value_gradient_is_u_v_transpose():
    """§2 (2.1): ∂σ_i/∂J = u_i v_iᵀ, for σ₁ (spectral) and σ_D (by finite differences)."""
    J = _jacobians(1)
    U, s, Vh = np.linalg.svd(J)
    values, grads = spectral(J)
    np.testing.assert_allclose(values, s[:, 0], rtol=1e-14)
    np.testing.assert_allclose(grads, np.einsum("bi,bj->bij", U[:, :, 0], Vh[:, 0]), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(grads, _fd_matrix(spectral, J), rtol=1e-6, atol=1e-9)
    sigma_min = lambda M: (np.linalg.svd(M, compute_uv=False)[:, -1], None)
    np.testing.assert_allclose(np.einsum("bi,bj->bij", U[:, :, -1], Vh[:, -1]),
                               _fd_matrix(sigma_min, J), rtol=1e-6, atol=1e-9)


def test_reg_3_condition_number_formulas():
    """§3 (3.1)–(3.3): κ_ε = (r² + ε²)^{-1/2} and ∂κ_ε/∂J = κ³ r (r G₁ − G_D)/σ₁ → (3.1)."""
    J = _jacobians(2)
    U, s, Vh = np.linalg.svd(J)
    G1 = np.einsum("bi,bj->bij", U[:, :, 0], Vh[:, 0])
    GD = np.einsum("bi,bj->bij", U[:, :, -1], Vh[:, -1])
    s1, sD = s[:, 0], s[:, -1]
    r, eps = sD / s1, DEFAULT_COND_EPS
    kappa = (r**2 + eps**2) ** -0.5
    values, grads = condition(J)
    np.testing.assert_allclose(values, kappa, rtol=1e-13)
    expected = (kappa**3 * r / s1)[:, None, None] * (r[:, None, None] * G1 - GD)
    np.testing.assert_allclose(grads, expected, rtol=1e-10, atol=1e-12)
    limit = G1 / sD[:, None, None] - (s1 / sD**2)[:, None, None] * GD      # (3.1), ε → 0
    np.testing.assert_allclose(grads, limit, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grads, _fd_matrix(condition, J), rtol=1e-6, atol=1e-8)


def test_reg_3_log_condition_gradient():
    """§3 (3.4): ∂ log κ_ε/∂J = (∂κ_ε/∂J)/κ_ε."""
    J = _jacobians(3)
    kappa, dkappa = condition(J)
    values, grads = log_condition(J)
    np.testing.assert_allclose(values, np.log(kappa), rtol=1e-14)
    np.testing.assert_allclose(grads, dkappa / kappa[:, None, None], rtol=1e-14)
    np.testing.assert_allclose(grads, _fd_matrix(log_condition, J), rtol=1e-6, atol=1e-9)


def test_reg_4_ties_take_the_subspace_average():
    """§4 (4.1): a tied σ gets (1/|S|) Σ_S u_i v_iᵀ = J V_S V_Sᵀ/(|S| σ), basis-free."""
    rng = np.random.default_rng(4)
    Q1, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Q2, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    J = Q1 @ np.diag([2.0, 2.0, 1.0, 0.5]) @ Q2.T
    V_S = Q2[:, :2]
    _, g = spectral(J[None])
    np.testing.assert_allclose(g[0], J @ V_S @ V_S.T / (2 * 2.0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g[0], Q1[:, :2] @ Q2[:, :2].T / 2, rtol=1e-10, atol=1e-12)


def test_reg_4_zero_cases():
    """§4: σ_D = 0 simple → ∂κ_ε/∂J = 0; J = 0 → gradients 0 and κ_ε = (1 + ε²)^{-1/2}."""
    singular = np.diag([2.0, 1.0, 0.0])[None]
    assert np.all(condition(singular)[1] == 0.0)
    zero = np.zeros((1, 3, 3))
    for penalty in (frobenius, spectral, condition, log_condition):
        assert np.all(penalty(zero)[1] == 0.0)
    assert condition(zero)[0][0] == pytest.approx((1 + DEFAULT_COND_EPS**2) ** -0.5, rel=1e-15)


def test_reg_5_activation_curvature():
    """§5 (5.3): σ'' = −2σσ' (tanh), σ'(1 − σ') (softplus), against FD of σ'."""
    z = np.linspace(-3, 3, 13)
    for activation, sigma, dsigma in (
            ("tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2),
            ("softplus", lambda x: np.log1p(np.exp(x)), lambda x: 1 / (1 + np.exp(-x)))):
        field = MLP(2, hidden=(3,), activation=activation)
        curv = field._curvature(sigma(z), dsigma(z))
        np.testing.assert_allclose(curv, _fd(dsigma, z, np.ones_like(z)), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_reg_5_chain_rule_into_theta_and_h(activation):
    """§5 (5.1), (5.4): jacobian_vjp = ∂⟨G, J(h; θ)⟩/∂(θ, h), second-order terms included."""
    rng = np.random.default_rng(6)
    field = MLP(3, hidden=(6, 5), activation=activation, time_dependent=True, seed=2)
    h, G = rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 3))
    g_theta, g_h = field._jacobian_vjp(h, 0.4, G)
    pairing = lambda th: _with_theta(field, th, lambda: np.sum(G * field._jacobian(h, 0.4)))
    for _ in range(3):
        v = rng.normal(size=field.n_params)
        assert g_theta @ v == pytest.approx(_fd(pairing, field.theta, v), rel=1e-7)
        w = rng.normal(size=h.shape)
        fd_h = _fd(lambda x: np.sum(G * field._jacobian(x, 0.4)), h, w)
        assert np.sum(g_h * w) == pytest.approx(fd_h, rel=1e-7)


@pytest.mark.parametrize("gradient", ["adjoint", "discrete"])
@pytest.mark.parametrize("reg", ["frobenius", "spectral", "condition"])
def test_reg_5_model_penalty_gradient(reg, gradient):
    """§5 (5.5): the model adds jacobian_vjp(h(t0), t0, λ/B ∂R/∂J), in both gradient modes."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(5, 2)), np.arange(5) % 2
    kwargs = dict(augment_dim=1, hidden=(6, 5), seed=3, gradient=gradient)
    plain = NeuralODE(2, **kwargs)
    penalised = NeuralODE(2, reg=reg, lam=0.4, **kwargs)
    g_plain = plain.loss_and_grad(X, y)[1]
    g_pen = penalised.loss_and_grad(X, y)[1]
    h0 = penalised.initial_state(X)
    field = penalised.field
    _, dR = PENALTIES[reg](field._jacobian(h0, 0.0))
    expected = field._jacobian_vjp(h0, 0.0, 0.4 / len(X) * dR)[0]
    n = field.n_params
    np.testing.assert_allclose(g_pen[:n] - g_plain[:n], expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())
    penalty = lambda th: _with_theta(field, th, lambda: 0.4 * PENALTIES[reg](
        field._jacobian(h0, 0.0))[0].mean())
    v = rng.normal(size=n)
    assert expected @ v == pytest.approx(_fd(penalty, field.theta, v), rel=1e-6)



def _flow_field(activation="tanh", time_dependent=True, seed=4):
    return MLP(3, hidden=(6, 5), activation=activation, time_dependent=time_dependent, seed=seed)


@pytest.mark.parametrize("time_dependent", [False, True])
def test_reg_6_second_derivative_along_the_flow(time_dependent):
    """§6 (6.1), (6.2): d²h/dt² of an actual solution = J f + ∂f/∂t from one tangent sweep."""
    field = _flow_field(time_dependent=time_dependent)
    h, t, dt = np.random.default_rng(8).normal(size=(4, 3)), 0.3, 1e-3
    rhs = lambda s, y: field._f(y, s)
    ends = [odeint(rhs, h, (t, t + k * dt), rtol=1e-12, atol=1e-12).y for k in (1, -1)]
    hdd_fd = (field._f(ends[0], t + dt) - field._f(ends[1], t - dt)) / (2 * dt)
    f, hdd = field.second_derivative(h, t)
    np.testing.assert_allclose(hdd, hdd_fd, rtol=1e-5, atol=1e-8)
    if not time_dependent:
        np.testing.assert_allclose(hdd, field.jvp(h, t, f), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_reg_6_tangent_vjp(activation):
    """§6 (6.3): tangent_vjp = ∂ψ/∂(θ, h, v) of ψ = Σ_b w_bᵀ (J_b v_b + ∂f_b/∂t)."""
    rng = np.random.default_rng(9)
    field = _flow_field(activation)
    h, v, w, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), 0.4
    g_theta, g_h, jt_w = field.tangent_vjp(h, t, v, w)

    def psi(hh, vv):   # (6.2) by a central difference of f along the input tangent [v; 1]
        dt = 1e-4 if field.time_dependent else 0.0
        e = 1e-4
        return np.sum(w * (field._f(hh + e * vv, t + dt) - field._f(hh - e * vv, t - dt)) / (2 * e))
    exact = lambda th, hh, vv: _with_theta(field, th, lambda: np.sum(
        w * field._tangent_sweep(hh, t, vv)[5][-1].T))
    assert exact(field.theta, h, v) == pytest.approx(psi(h, v), rel=1e-6)
    for _ in range(2):
        d = rng.normal(size=field.n_params)
        assert g_theta @ d == pytest.approx(_fd(lambda th: exact(th, h, v), field.theta, d), rel=1e-7)
        d = rng.normal(size=h.shape)
        assert np.sum(g_h * d) == pytest.approx(_fd(lambda x: exact(field.theta, x, v), h, d), rel=1e-7)
        assert np.sum(jt_w * d) == pytest.approx(_fd(lambda x: exact(field.theta, h, x), v, d), rel=1e-7)
    np.testing.assert_allclose(jt_w, np.einsum("bij,bi->bj", field._jacobian(h, t), w), rtol=1e-12)


def test_reg_6_penalty_gradient():
    """§6 (6.4): the taynode integrand's gradient = ψ at v = f plus the f-VJP with Jᵀw."""
    from odejac import trajectory
    rng = np.random.default_rng(10)
    field, c, t = _flow_field("softplus"), 0.7, 0.2
    h = rng.normal(size=(4, 3))
    values, g_theta, g_h = trajectory.integrand(field, "taynode", h, t, c)
    R = lambda th, hh: _with_theta(field, th, lambda: c * np.sum(
        field._second_derivative(hh, t)[1] ** 2))
    assert c * values.sum() == pytest.approx(R(field.theta, h), rel=1e-14)
    for _ in range(2):
        d = rng.normal(size=field.n_params)
        assert g_theta @ d == pytest.approx(_fd(lambda th: R(th, h), field.theta, d), rel=1e-7)
        d = rng.normal(size=h.shape)
        assert np.sum(g_h * d) == pytest.approx(_fd(lambda x: R(field.theta, x), h, d), rel=1e-7)


def _path_field(seed=3):
    field = MLP(3, hidden=(6, 5), time_dependent=True, seed=seed)
    h = np.random.default_rng(seed).normal(size=(4, 3))
    return field, h


def _fd_jacobian(field, h, t, step=1e-6):
    """∂f/∂h by central differences, independent of the MLP's own Jacobian."""
    J = np.zeros((h.shape[0], h.shape[1], h.shape[1]))
    for j in range(h.shape[1]):
        e = np.zeros_like(h)
        e[:, j] = step
        J[:, :, j] = (field._f(h + e, t) - field._f(h - e, t)) / (2 * step)
    return J


def test_reg_7_rnode_integrand_and_its_gradient():
    """§7 (7.1)-(7.2): R_b = ‖f_b‖² + ρ‖J_b‖_F²; its θ- and h-gradients against FD."""
    from odejac.trajectory import integrand
    field, h = _path_field()
    t, rho, c = 0.4, 0.3, 0.7
    f, J = field._f(h, t), _fd_jacobian(field, h, t)
    values, g_theta, g_h = integrand(field, "rnode", h, t, c, jac_weight=rho)
    np.testing.assert_allclose(values, (f**2).sum(1) + rho * (J**2).sum((1, 2)), rtol=1e-8)
    total = lambda th: _with_theta(field, th, lambda: c * integrand(
        field, "rnode", h, t, jac_weight=rho)[0].sum())
    v = np.random.default_rng(1).normal(size=field.n_params)
    assert g_theta @ v == pytest.approx(_fd(total, field.theta, v), rel=1e-6)
    w = np.random.default_rng(2).normal(size=h.shape)
    of_h = lambda x: c * integrand(field, "rnode", x, t, jac_weight=rho)[0].sum()
    assert np.sum(g_h * w) == pytest.approx(_fd(of_h, h, w), rel=1e-6)


def test_reg_7_kinetic_part_folds_into_the_cotangent():
    """§7 (7.3): aᵀ∂f + c·2fᵀ∂f = (a + 2cf)ᵀ∂f, the fold trajectory.backward uses."""
    field, h = _path_field()
    t, c = 0.4, 0.7
    a = np.random.default_rng(4).normal(size=h.shape)
    f, vh, vth = field._f_and_vjp(h, t, a + 2 * c * field._f(h, t))
    vh_a, vth_a = field._vjp(h, t, a)
    vh_k, vth_k = field._vjp(h, t, 2 * c * f)
    np.testing.assert_allclose(vh, vh_a + vh_k, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vth, vth_a + vth_k, rtol=1e-12, atol=1e-14)


def _steer_model(reg):
    return NeuralODE(2, augment_dim=1, hidden=(6, 5), time_dependent=True, reg=reg, lam=0.3,
                     seed=3, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("reg", ["condition", "rnode"])
def test_reg_8_end_time_derivative(reg):
    """§8 (8.2): ∂L/∂T = ∂CE/∂h(T)·f(h(T), T) + λ mean_b R_b(T) (path penalties only)."""
    from odejac.model import softmax
    from odejac.trajectory import integrand
    model = _steer_model(reg)
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(5, 2)), np.arange(5) % 2
    T = 1.2
    h0 = model.initial_state(X)
    hT = model._solve(h0, (0.0, T))[0]
    dCE = softmax(hT @ model.W_out + model.b_out)
    dCE[np.arange(5), y] -= 1.0
    dCE = dCE / 5 @ model.W_out.T
    expected = np.sum(dCE * model.field._f(hT, T))
    if reg == "rnode":
        expected += 0.3 * integrand(model.field, reg, hT, T)[0].mean()
    step = 1e-4
    fd = (model.loss(X, y, t1=T + step) - model.loss(X, y, t1=T - step)) / (2 * step)
    assert fd == pytest.approx(expected, rel=1e-6)


def test_reg_8_expected_loss_expansion():
    """§8 (8.3): E_T L = L(t1) + B²/6 ∂²L/∂T² + O(B⁴), T ~ U(t1 − B, t1 + B)."""
    model = _steer_model("none")
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(5, 2)), np.arange(5) % 2
    L = lambda T: model.loss(X, y, t1=T)
    step = 1e-3
    second = (L(1 + step) - 2 * L(1.0) + L(1 - step)) / step**2
    nodes, weights = np.polynomial.legendre.leggauss(6)
    for B in (0.1, 0.2):
        mean = 0.5 * sum(w * L(1 + B * x) for x, w in zip(nodes, weights))
        correction = B**2 / 6 * second
        assert abs(correction) > 1e-5
        assert abs(mean - L(1.0) - correction) <= 0.05 * abs(correction)
