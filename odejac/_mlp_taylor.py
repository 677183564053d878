"""The MLP's time derivative along a tangent and its parameter/state VJP (TayNODE, issue #15).

A mixin of :class:`odejac.mlp.MLP`, kept apart so that ``mlp.py`` stays one readable file.
Along a solution ``dh/dt = f(h, t)`` the second derivative is

    d²h/dt² = J f + ∂f/∂t = J_x ẋ,   ẋ = [f; 1]   (the ``1`` only for a time-dependent field),

with ``J_x = ∂f/∂[h, t]``. Forward mode through the layers (notation of :mod:`odejac.mlp`,
feature-major) with the input tangent ``ẋ = [v; 1]``: ``u_1 = W_1ᵀ ẋ`` (no bias),
``ȧ_k = s_k ⊙ u_k``, ``u_{k+1} = W_{k+1}ᵀ ȧ_k``, result ``ḟ(v) = u_L = J v + ∂f/∂t``.

The VJP of ``φ = Σ_b w_bᵀ ḟ_b(v_b)`` at FIXED ``v`` is reverse mode over that forward-mode sweep
(forward-over-reverse): ``ū_L = w`` and, for ``k = L−1 .. 1``,

    ∂φ/∂W_{k+1} ∋ ȧ_k ū_{k+1}ᵀ + a_k z̄_{k+1}ᵀ,   ∂φ/∂b_{k+1} ∋ Σ_b z̄_{k+1},
    ǡ_k = W_{k+1} ū_{k+1},   ū_k = s_k ⊙ ǡ_k,
    z̄_k = s_k ⊙ (W_{k+1} z̄_{k+1}) + σ''(z_k) ⊙ u_k ⊙ ǡ_k,

with ``z̄_L = 0`` (``φ`` does not see ``f`` itself) and finally ``∂φ/∂W_1 ∋ ẋ ū_1ᵀ + x z̄_1ᵀ``,
``∂φ/∂b_1 ∋ Σ_b z̄_1``, ``∂φ/∂h = W_h z̄_1``; ``J_xᵀ w`` restricted to the state rows is
``W_h ū_1``, which the caller needs for the dependence of ``v = f`` on ``(h, θ)``.
"""
import numpy as np

from ._checks import as_time as _as_time


class TaylorTerms:
    """``ḟ = J v + ∂f/∂t`` and the VJP of ``Σ_b w_bᵀ ḟ_b`` w.r.t. θ and h (mixin)."""

    def _input_tangent(self, v):
        """``ẋ = [vᵀ; 1] : (n_0, B)``, the input rows' tangent (time row only if time-dependent)."""
        B, D = v.shape
        Xd = np.empty((self.sizes[0], B))
        Xd[:D] = v.T
        if self.time_dependent:
            Xd[D] = 1.0                               # dt/dt
        return Xd

    def _tangent_sweep(self, h, t, v):
        """Forward pass plus the tangent sweep; ``v=None`` means ``v = f(h, t)``.

        Returns ``X, A, S, f, Xd, U`` with ``U[k-1] = u_k : (n_k, B)`` the tangent of ``z_k``
        and ``U[-1] = ḟᵀ : (D, B)``.
        """
        X, A, S, f = self._forward(h, t, need_slopes=True)
        Xd = self._input_tangent(f if v is None else v)
        U = [self._Wb[0][:-1].T @ Xd]
        for k, s in enumerate(S, start=1):
            U.append(self._Wb[k][:-1].T @ (s * U[-1]))
        return X, A, S, f, Xd, U

    def _second_derivative(self, h, t):
        _, _, _, f, _, U = self._tangent_sweep(h, t, None)
        return f, U[-1].T.copy()

    def _tangent_vjp(self, h, t, v, w):
        X, A, S, _, Xd, U = self._tangent_sweep(h, t, v)
        g_theta = np.zeros(self.n_params)
        grads = self._blocks(g_theta)
        ubar, zbar = w.T, None                        # cotangents of u_{k+1} and z_{k+1}
        for k in range(len(S), 0, -1):
            W = self._Wb[k][:-1]
            grads[k][:-1] += (S[k - 1] * U[k - 1]) @ ubar.T      # ȧ_k ū_{k+1}ᵀ
            abar_dot = W @ ubar
            z_new = abar_dot * U[k - 1] * self._curvature(A[k - 1][:-1], S[k - 1])
            if zbar is not None:
                grads[k] += A[k - 1] @ zbar.T         # [a_k; 1] z̄_{k+1}ᵀ: weights and bias
                z_new += (W @ zbar) * S[k - 1]
            ubar, zbar = abar_dot * S[k - 1], z_new
        grads[0][:-1] += Xd @ ubar.T
        jt_w = (self._W_h @ ubar).T
        if zbar is None:                              # affine field: J does not depend on h
            return g_theta, np.zeros_like(h), jt_w
        grads[0] += X @ zbar.T
        return g_theta, (self._W_h @ zbar).T, jt_w

    # ------------------------------------------------------------------ checked public API
    def second_derivative(self, h, t=0.0):
        """``(f, d²h/dt²)`` along the flow: ``d²h/dt² = J f + ∂f/∂t`` (module notes).

        Parameters
        ----------
        h : ndarray, shape (B, D) or (D,)
        t : float

        Returns
        -------
        f, hdd : ndarray, shape (B, D) or (D,)
        """
        h2, single = self._check_h(h)
        f, hdd = self._second_derivative(h2, _as_time(t))
        return (f[0], hdd[0]) if single else (f, hdd)

    def tangent_vjp(self, h, t, v, w):
        """Gradients of ``φ = Σ_b w_bᵀ (J_b v_b + ∂f_b/∂t)`` at fixed ``v`` (second-order terms).

        Parameters
        ----------
        h, v, w : ndarray, shape (B, D) or (D,)
        t : float

        Returns
        -------
        g_theta : ndarray, shape (P,)
            ``∂φ/∂θ``, summed over the batch, in the ``theta`` layout.
        g_h : ndarray, shape (B, D) or (D,)
            ``∂φ/∂h`` at fixed ``v``.
        jt_w : ndarray, shape (B, D) or (D,)
            ``J_bᵀ w_b`` (``∂φ/∂v``).
        """
        h2, single = self._check_h(h)
        v2 = self._check_like("v", v, h2.shape, single)
        w2 = self._check_like("w", w, h2.shape, single)
        g_theta, g_h, jt_w = self._tangent_vjp(h2, _as_time(t), v2, w2)
        return (g_theta, g_h[0], jt_w[0]) if single else (g_theta, g_h, jt_w)
