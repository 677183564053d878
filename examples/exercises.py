"""Worked solutions of ``docs/exercises.md`` (run by ``tests/test_exercises.py``).

    python examples/exercises.py          # prints every solution's numbers

Each ``exN_*`` function is one exercise's solution and returns what it measured, so that the
test suite can check the claims the page makes. Everything is float64 and takes well under a
second.
"""
import os
import sys

import numpy as np
import scipy.linalg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:      # runnable from a clone without installing
    sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from odejac import adjoint_solve, discrete, odeint  # noqa: E402
from odejac.gradcheck import check_vjp  # noqa: E402
from odejac.mlp import MLP  # noqa: E402
import own_field  # noqa: E402


def _van_loan(X, Y, Z, T):
    """∫_0^T e^{X(T−s)} Y e^{Zs} ds, the upper-right block of one expm (Van Loan, 1978)."""
    n, m = Y.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n], M[:n, n:], M[n:, n:] = X, Y, Z
    return scipy.linalg.expm(M * T)[:n, n:]


# ------------------------------------------------------------------- 1. linear field, expm

def ex1_linear_field_against_expm(tol=1e-10):
    """Relative errors of both gradients of y' = Ay against the matrix exponential."""
    return own_field.report(tol=tol)


# ------------------------------------------------------------------- 2. three gradients

def ex2_adjoint_discrete_fd(tols=(1e-3, 1e-5, 1e-7, 1e-9), seed=0):
    """Adjoint and discrete gradients of an MLP field against a tight finite difference.

    Returns rows ``(tol, adjoint error, discrete error)``, the relative error of the
    directional derivative along one random unit direction ``v``.
    """
    rng = np.random.default_rng(seed)
    field = MLP(2, hidden=(16,), seed=seed)
    field.theta = 2.0 * field.theta
    h0, c = rng.normal(size=(2, 8, 2))
    v = rng.normal(size=field.n_params)
    v /= np.linalg.norm(v)
    f = lambda t, y: field._f(y, t)
    fv = lambda t, y, a: field._f_and_vjp(y, t, a)
    theta = field.theta

    def loss(th, tol=1e-12):
        field.theta = th
        try:
            return np.sum(c * odeint(f, h0, (0.0, 1.0), rtol=tol, atol=tol).y)
        finally:
            field.theta = theta
    eps = 1e-3                                      # 5-point stencil: truncation O(ε⁴)
    exact = (-loss(theta + 2 * eps * v) + 8 * loss(theta + eps * v)
             - 8 * loss(theta - eps * v) + loss(theta - 2 * eps * v)) / (12 * eps)
    rows = []
    for tol in tols:
        y1 = odeint(f, h0, (0.0, 1.0), rtol=tol, atol=tol).y
        adj = adjoint_solve(fv, y1, c, (0.0, 1.0), rtol=tol, atol=tol, norm="rms")
        tape = discrete.forward(f, h0, (0.0, 1.0), rtol=tol, atol=tol)
        dis = discrete.backprop(tape, lambda t, y, a: field._vjp(y, t, a), c)
        rows.append((tol, abs(adj.dL_dtheta @ v - exact) / abs(exact),
                     abs(dis.dL_dtheta @ v - exact) / abs(exact)))
    return rows


# ------------------------------------------------------------------- 3. failing retrace

def ex3_contracting_retrace(tols=(1e-3, 1e-5, 1e-7, 1e-9, 1e-11), figure=None):
    """y' = Ay with eigenvalues −1 and −15 on [0, 1]: how far the backward retrace lands.

    Returns rows ``(tol, max|h̃(t0) − h(t0)|, relative errors of the adjoint dL/dy0 and
    dL/dA)`` and, with ``figure`` (a path), plots them over the tolerance. For a linear field
    ``a(t)`` does not depend on ``h``, so dL/dy0 survives a bad retrace; dL/dA = ∫ a hᵀ dt
    integrates the retraced h̃ and does not.
    """
    A = np.array([[-1.0, 0.5], [0.0, -15.0]])
    theta = A.ravel().copy()
    f, fv = own_field.make_field(theta)
    y0, c = np.array([[1.0, 1.0]]), np.array([[1.0, 1.0]])
    exact = c @ scipy.linalg.expm(A)
    exact_A = _van_loan(A.T, c.T @ y0, A.T, 1.0)
    rows = []
    for tol in tols:
        y1 = odeint(f, y0, (0.0, 1.0), rtol=tol, atol=tol).y
        adj = adjoint_solve(fv, y1, c, (0.0, 1.0), rtol=tol, atol=tol, norm="rms")
        rows.append((tol, float(np.abs(adj.h0 - y0).max()),
                     float(np.abs(adj.dL_dh0 - exact).max() / np.abs(exact).max()),
                     float(np.abs(adj.dL_dtheta.reshape(2, 2) - exact_A).max()
                           / np.abs(exact_A).max())))
    if figure is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.loglog([r[0] for r in rows], [r[1] for r in rows], "o-",
                  label=r"$\max|\tilde h(t_0) - h(t_0)|$")
        ax.loglog([r[0] for r in rows], [r[2] for r in rows], "s--", label="rel. error of dL/dy0")
        ax.loglog([r[0] for r in rows], [r[3] for r in rows], "^--", label="rel. error of dL/dA")
        ax.loglog([r[0] for r in rows], [r[0] for r in rows], "k:", lw=0.8, label="tol")
        ax.set_xlabel("tolerance (rtol = atol)")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
        ax.set_title("retracing a contracting field (eigenvalues −1, −15)")
        fig.tight_layout()
        fig.savefig(figure, dpi=100)
        plt.close(fig)
    return rows


# ------------------------------------------------------------------- 4. find the bad VJP

def _tanh_field(W):
    """``f(t, y) = tanh(y W)`` and three candidate ``f_and_vjp``; which one is right?"""
    def f(t, y):
        return np.tanh(y @ W)

    def candidate_a(t, y, a):
        s = 1.0 - np.tanh(y @ W) ** 2
        return f(t, y), (a * s) @ W.T, (y.T @ (a * s)).ravel()

    def candidate_b(t, y, a):
        s = 1.0 - np.tanh(y @ W) ** 2
        return f(t, y), (a * s) @ W, (y.T @ (a * s)).ravel()

    def candidate_c(t, y, a):
        s = 1.0 - np.tanh(y @ W) ** 2
        return f(t, y), (a * s) @ W.T, (y.T @ a).ravel()

    return f, {"A": candidate_a, "B": candidate_b, "C": candidate_c}


def ex4_find_the_transposed_vjp(seed=1):
    """Run :func:`odejac.gradcheck.check_vjp` on each candidate; returns name → result."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=9)
    f, candidates = _tanh_field(theta.reshape(3, 3))
    y = rng.normal(size=(4, 3))
    return {name: check_vjp(f, fv, 0.0, y, theta) for name, fv in candidates.items()}


# ------------------------------------------------------------------- 5. backprop through RK4

def rk4(f, y0, t0, h, n_steps, keep=False):
    """Classical RK4 with fixed steps; with ``keep`` also the stage inputs ``[(t, Y)]``."""
    y, t, tape = np.array(y0, dtype=float), t0, []
    for _ in range(n_steps):
        k1 = f(t, y)
        Y2 = y + (h / 2) * k1
        k2 = f(t + h / 2, Y2)
        Y3 = y + (h / 2) * k2
        k3 = f(t + h / 2, Y3)
        Y4 = y + h * k3
        k4 = f(t + h, Y4)
        tape.append(((t, y), (t + h / 2, Y2), (t + h / 2, Y3), (t + h, Y4)))
        y, t = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4), t + h
    return (y, tape) if keep else y


def rk4_backprop(vjp, tape, h, ybar):
    """Reverse sweep of :func:`rk4`: ``(∂L/∂y0, ∂L/∂θ)`` for ``ȳ = ∂L/∂y_N``.

    Per step, ``y⁺ = y + h/6 (k1 + 2k2 + 2k3 + k4)``: the weights seed ``k̄``; stage 4 (input
    ``y + h k3``) sends ``h Ȳ4`` to ``k̄3``, stage 3 sends ``h/2 Ȳ3`` to ``k̄2``, stage 2 sends
    ``h/2 Ȳ2`` to ``k̄1``; every ``Ȳ_s`` also flows to ``ȳ``.
    """
    theta_bar = 0.0
    for stages in reversed(tape):
        kbar = [h / 6 * ybar, h / 3 * ybar, h / 3 * ybar, h / 6 * ybar]
        ynew = ybar.copy()
        for s in (3, 2, 1, 0):
            t, Y = stages[s]
            Ybar, tbar = vjp(t, Y, kbar[s])
            theta_bar = theta_bar + tbar
            ynew += Ybar
            if s > 0:
                kbar[s - 1] = kbar[s - 1] + (h if s == 3 else h / 2) * Ybar
        ybar = ynew
    return ybar, theta_bar


def ex5_rk4_backprop(n_steps=6, seed=2):
    """RK4's reverse sweep against (a) finite differences, (b) the stability polynomial.

    Returns ``(fd_error_y0, fd_error_theta, polynomial_error)``, all relative.
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=9)
    f, candidates = _tanh_field(theta.reshape(3, 3))
    vjp = lambda t, y, a: candidates["A"](t, y, a)[1:]
    y0, c = rng.normal(size=(2, 4, 3))
    h = 1.0 / n_steps
    y1, tape = rk4(f, y0, 0.0, h, n_steps, keep=True)
    g_y, g_th = rk4_backprop(vjp, tape, h, c)
    v, w, eps = rng.normal(size=y0.shape), rng.normal(size=theta.shape), 1e-6
    L = lambda y: np.sum(c * rk4(f, y, 0.0, h, n_steps))
    fd_y = (L(y0 + eps * v) - L(y0 - eps * v)) / (2 * eps)
    saved = theta.copy()
    theta += eps * w
    plus = L(y0)
    theta[:] = saved - eps * w
    minus = L(y0)
    theta[:] = saved
    fd_th = (plus - minus) / (2 * eps)
    # Linear field: one RK4 step is P(hA) = 1 + z + z²/2 + z³/6 + z⁴/24, so ∂L/∂y0 = (Pᵀ)^N c.
    A = np.array([[-0.4, 1.2], [-1.0, -0.3]])
    _, fv = own_field.make_field(A.ravel().copy())
    cl, yl = np.array([[0.3, -0.7]]), np.array([[1.0, 2.0]])
    lin_tape = rk4(lambda t, y: y @ A.T, yl, 0.0, h, n_steps, keep=True)[1]
    g_lin = rk4_backprop(lambda t, y, a: fv(t, y, a)[1:], lin_tape, h, cl)[0]
    Z = h * A
    P = np.eye(2) + Z + Z @ Z / 2 + Z @ Z @ Z / 6 + Z @ Z @ Z @ Z / 24
    poly = cl[0] @ np.linalg.matrix_power(P, n_steps)
    return (abs(np.sum(g_y * v) - fd_y) / abs(fd_y), abs(g_th @ w - fd_th) / abs(fd_th),
            float(np.abs(g_lin[0] - poly).max() / np.abs(poly).max()))


# ------------------------------------------------------------------- 6. several times

def ex6_several_observation_times(times=(0.5, 1.0, 1.5), tol=1e-10):
    """``L = Σ_k c_k · y(t_k)`` for y' = Ay: the adjoint jumps by c_k at every t_k.

    Returns ``(error dL/dy0, error dL/dA, jumps)``: relative errors against expm and the jump
    ``a(t_k⁻) − a(t_k⁺)`` recorded at each interior observation time (it equals ``c_k``).
    """
    A = own_field.A_TRUE
    _, fv = own_field.make_field(A.ravel().copy())
    y0 = own_field.Y0[:1]
    cs = [np.array([[1.0, 0.0]]), np.array([[0.0, -1.0]]), np.array([[0.5, 0.5]])]
    f = lambda t, y: y @ A.T
    states, t_prev, y = [], 0.0, y0          # forward, stopping at each observation time
    for t in times:
        y = odeint(f, y, (t_prev, t), rtol=tol, atol=tol).y
        states.append(y)
        t_prev = t
    a, g, jumps = np.zeros_like(y0), np.zeros(4), []
    ends = [0.0, *times[:-1]]
    for k in range(len(times) - 1, -1, -1):   # backwards, one segment per interval
        before = a.copy()
        a = a + cs[k]                          # the jump: L depends on y(t_k) directly
        jumps.append(a - before)
        adj = adjoint_solve(fv, states[k], a, (ends[k], times[k]), rtol=tol, atol=tol,
                            norm="rms")
        a, g = adj.dL_dh0, g + adj.dL_dtheta
    exact_y0 = sum(c @ scipy.linalg.expm(A * t) for c, t in zip(cs, times))
    exact_A = sum(_van_loan(A.T, c.T @ y0, A.T, t) for c, t in zip(cs, times))
    return (float(np.abs(a - exact_y0).max() / np.abs(exact_y0).max()),
            float(np.abs(g.reshape(2, 2) - exact_A).max() / np.abs(exact_A).max()),
            jumps[::-1])


if __name__ == "__main__":
    print("1.", ex1_linear_field_against_expm())
    print("2. tol, adjoint error, discrete error")
    for row in ex2_adjoint_discrete_fd():
        print(f"   {row[0]:6.0e}  {row[1]:8.1e}  {row[2]:8.1e}")
    print("3. tol, reconstruction error, error of dL/dy0, of dL/dA")
    for row in ex3_contracting_retrace():
        print(f"   {row[0]:6.0e}  {row[1]:8.1e}  {row[2]:8.1e}  {row[3]:8.1e}")
    print("4.", {k: (v["ok"], f"{v['vjp_y']:.1e}", f"{v['vjp_theta']:.1e}")
                 for k, v in ex4_find_the_transposed_vjp().items()})
    print("5. RK4 backprop: FD y0 %.1e, FD θ %.1e, polynomial %.1e" % ex5_rk4_backprop())
    e_y, e_A, jumps = ex6_several_observation_times()
    print(f"6. several times: dL/dy0 {e_y:.1e}, dL/dA {e_A:.1e}, jumps "
          f"{[j.ravel().tolist() for j in jumps]}")
