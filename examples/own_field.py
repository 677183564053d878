"""Your own vector field: ``y' = A y`` with a hand-written VJP, checked three ways.

    python examples/own_field.py

The parameters are the four entries of ``A``. A batch of states is stored as rows,
``y : (B, 2)``, so the field is ``f(t, y) = y Aᵀ`` and, for a cotangent ``a : (B, 2)``,

* ``Jᵀ a`` per sample is ``Aᵀ a_b``, i.e. the rows ``a A``;
* ``(∂f/∂A)ᵀ a`` summed over the batch is ``Σ_b a_b y_bᵀ = aᵀ y`` (entry ``ij``: ``Σ_b a_bi y_bj``).

The gradient of ``L = Σ_b c_b · y_b(T)`` comes from :func:`odejac.adjoint_solve` (backwards
ODE) and from :mod:`odejac.discrete` (backprop through the DP5 steps), and both are compared
with the exact answer from ``scipy.linalg.expm`` (``docs/adjoint.md`` (2.3)). Then the same with
the VJP transposed by mistake: :func:`odejac.gradcheck.check_vjp` fails loudly, and the
gradients are wrong by O(1).
"""
import os
import sys

import numpy as np
import scipy.linalg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:      # runnable from a clone without installing
    sys.path.insert(0, ROOT)

from odejac import adjoint_solve, discrete, odeint  # noqa: E402
from odejac.gradcheck import check_vjp  # noqa: E402

T = 1.5
A_TRUE = np.array([[-0.4, 1.2], [-1.0, -0.3]])
Y0 = np.array([[1.0, 0.0], [0.3, -0.8], [-0.5, 0.5]])
C = np.array([[0.2, -1.0], [1.0, 0.4], [0.0, 0.7]])     # L = Σ_b c_b · y_b(T)


def make_field(theta, transposed=False):
    """``(f, f_and_vjp)`` of ``y' = A y`` with ``A = theta.reshape(2, 2)`` (read live)."""
    A = theta.reshape(2, 2)                  # a view: perturbing theta perturbs the field

    def f(t, y):
        return y @ A.T

    def f_and_vjp(t, y, a):
        if transposed:                       # the classic slip: A instead of Aᵀ, and yᵀa
            return f(t, y), a @ A.T, (y.T @ a).ravel()
        return f(t, y), a @ A, (a.T @ y).ravel()

    return f, f_and_vjp


def exact_gradients(A, y0=Y0, c=C, T=T):
    """``(dL/dy0 (B, 2), dL/dA (2, 2))`` by matrix exponentials (Van Loan, 1978)."""
    dL_dy0 = c @ scipy.linalg.expm(A * T)           # rows: (e^{AᵀT} c_b)ᵀ = c_b e^{AT}
    n = A.shape[0]
    M = np.zeros((2 * n, 2 * n))
    M[:n, :n], M[:n, n:], M[n:, n:] = A.T, c.T @ y0, A.T
    dL_dA = scipy.linalg.expm(M * T)[:n, n:]        # ∫ e^{Aᵀ(T−s)} Cᵀ Y0 e^{Aᵀ s} ds
    return dL_dy0, dL_dA


def gradients(theta, tol=1e-10, transposed=False):
    """Adjoint and discrete gradients ``{"adjoint": (dL/dy0, dL/dA), "discrete": ...}``."""
    f, f_and_vjp = make_field(theta, transposed)
    y1 = odeint(f, Y0, (0.0, T), rtol=tol, atol=tol).y
    adj = adjoint_solve(f_and_vjp, y1, C, (0.0, T), rtol=tol, atol=tol, norm="rms")
    tape = discrete.forward(f, Y0, (0.0, T), rtol=tol, atol=tol)
    res = discrete.backprop(tape, lambda t, y, a: f_and_vjp(t, y, a)[1:], C)
    return {"adjoint": (adj.dL_dh0, adj.dL_dtheta.reshape(2, 2)),
            "discrete": (res.dL_dh0, res.dL_dtheta.reshape(2, 2)),
            "reconstruction_error": float(np.abs(adj.h0 - Y0).max())}


def report(transposed=False, tol=1e-10):
    """Check the VJP and both gradients; returns the relative errors (and prints them)."""
    theta = A_TRUE.ravel().copy()
    f, f_and_vjp = make_field(theta, transposed)
    check = check_vjp(f, f_and_vjp, 0.0, Y0, theta)
    exact = exact_gradients(A_TRUE)
    grads = gradients(theta, tol, transposed)
    errors = {"check_vjp": check}
    for method in ("adjoint", "discrete"):
        errors[method] = [float(np.abs(g - e).max() / np.abs(e).max())
                          for g, e in zip(grads[method], exact)]
    label = "TRANSPOSED VJP" if transposed else "correct VJP"
    print(f"{label}: check_vjp {'ok' if check['ok'] else 'FAIL'} "
          f"(rel. error Jᵀa {check['vjp_y']:.1e}, (∂f/∂θ)ᵀa {check['vjp_theta']:.1e})")
    for method in ("adjoint", "discrete"):
        print(f"  {method:8s} vs expm at tol {tol:g}: dL/dy0 {errors[method][0]:.1e}, "
              f"dL/dA {errors[method][1]:.1e}")
    return errors


if __name__ == "__main__":
    report()
    report(transposed=True)
