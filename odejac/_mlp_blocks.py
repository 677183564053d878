"""Products with the MLP's Jacobian for blocks of vectors, without forming J (issue #6).

A mixin of :class:`odejac.mlp.MLP`, kept apart so that ``mlp.py`` stays one
readable file: products with ``J`` and ``Jᵀ`` at fixed slopes, products with
``J⁻¹`` and ``J⁻ᵀ`` through LU factors of square weights, and the low-rank
second-order term that the matrix-free condition number needs. Used by
:mod:`odejac.matfree`, which applies them many times at the same ``h``.
"""
import warnings

import numpy as np
from scipy.linalg import LinAlgWarning, lu_factor, lu_solve

_MIN_SLOPE = 1e-100  # σ'(z) floor in J⁻¹ products (tanh's slope underflows to 0 for |z| > 19)
_SINGULAR_RTOL = 1e-13  # LU pivot ratio below which a square weight counts as singular


class MatrixFreeBlocks:
    """Block products with J, Jᵀ, J⁻¹, J⁻ᵀ and ``Σ_b u_bᵀ (∂J/∂(θ, h)) v_b`` (mixin)."""

    # ------------------------------------------------------------------ matrix-free blocks (#6)
    # Products with J and Jᵀ at FIXED slopes S = _slopes(h, t), for blocks of p vectors per
    # sample, V : (B, D, p) -> (B, D, p); one GEMM per layer over B·p columns. Used by
    # odejac.matfree, which applies them many times at the same h.
    def _slopes(self, h, t):
        """Slopes ``S_k = σ'(z_k) : (n_k, B)`` at ``h``, the linearisation ``_*_block`` reuse."""
        return self._forward(h, t, need_slopes=True)[2]

    def _jvp_block(self, S, V):
        """``J_b V_b``: ``u_1 = W_hᵀ v``, ``u_{k+1} = W_{k+1}ᵀ (s_k ⊙ u_k)``, result ``u_L``."""
        B, D, p = V.shape
        U = self._W_h.T @ V.transpose(1, 0, 2).reshape(D, B * p)
        for k, s in enumerate(S, start=1):
            Uv = U.reshape(-1, B, p)
            Uv *= s[:, :, None]
            U = self._Wb[k][:-1].T @ U
        return U.reshape(D, B, p).transpose(1, 0, 2)

    def _vjp_block(self, S, U):
        """``J_bᵀ U_b``: ``δ_L = u``, ``δ_k = s_k ⊙ (W_{k+1} δ_{k+1})``, result ``W_h δ_1``."""
        B, D, p = U.shape
        delta = U.transpose(1, 0, 2).reshape(D, B * p)
        for k in range(len(S), 0, -1):
            delta = self._Wb[k][:-1] @ delta
            dv = delta.reshape(-1, B, p)
            dv *= S[k - 1][:, :, None]
        return (self._W_h @ delta).reshape(D, B, p).transpose(1, 0, 2)

    def _square_factors(self):
        """LU factors of ``W_h, W_2, ..., W_L`` if every width equals ``D``, else None.

        Then ``J_b = W_Lᵀ S_{L-1} ⋯ S_1 W_hᵀ`` is a product of square factors and
        ``J_b⁻¹ = W_h⁻ᵀ S_1⁻¹ ⋯ S_{L-1}⁻¹ W_L⁻ᵀ``: the LU factorisations are shared by the whole
        batch, so one ``J⁻¹`` product costs per sample what a ``J`` product does (``O(n²)``).
        """
        if any(n != self.dim for n in self.hidden):
            return None
        with warnings.catch_warnings():               # singular weights are handled below
            warnings.simplefilter("ignore", LinAlgWarning)
            lus = [lu_factor(W, check_finite=False)
                   for W in [self._W_h] + [Wb[:-1] for Wb in self._Wb[1:]]]
        pivots = [np.abs(np.diag(lu)) for lu, _ in lus]
        if any(not (p.min() > _SINGULAR_RTOL * p.max()) for p in pivots):
            return None                               # a (numerically) singular weight matrix
        return lus

    def _jinv_block(self, S, lus, Y):
        """``J_b⁻¹ Y_b`` (``Y : (B, D, p)``): solve ``W_Lᵀ x = y``, divide by ``s_{L-1}``, ...,
        solve ``W_hᵀ x = ·``; ``lus`` from ``_square_factors``. Slopes below ``_MIN_SLOPE`` are
        clipped (J is then numerically singular; the result is huge but finite)."""
        B, D, p = Y.shape
        x = Y.transpose(1, 0, 2).reshape(D, B * p)
        for k in range(len(S), 0, -1):
            x = lu_solve(lus[k], x, trans=1).reshape(-1, B, p)
            x /= np.maximum(S[k - 1], _MIN_SLOPE)[:, :, None]
            x = x.reshape(-1, B * p)
        return lu_solve(lus[0], x, trans=1).reshape(D, B, p).transpose(1, 0, 2)

    def _jinv_t_block(self, S, lus, Y):
        """``J_b⁻ᵀ Y_b``: solve ``W_h x = y``, divide by ``s_1``, ..., solve ``W_L x = ·``."""
        B, D, p = Y.shape
        x = lu_solve(lus[0], Y.transpose(1, 0, 2).reshape(D, B * p))
        for k in range(1, len(S) + 1):
            x = x.reshape(-1, B, p)
            x /= np.maximum(S[k - 1], _MIN_SLOPE)[:, :, None]
            x = lu_solve(lus[k], x.reshape(-1, B * p))
        return x.reshape(D, B, p).transpose(1, 0, 2)

    def _jacobian_vjp_lowrank(self, h, t, U, V):
        """Gradients of ``R = Σ_b Σ_r U[b,:,r]ᵀ J_b V[b,:,r]`` w.r.t. θ and h, without forming J.

        Equals ``_jacobian_vjp(h, t, G)`` for ``G_b = Σ_r u_r v_rᵀ`` (e.g. ``dσ/dJ = u vᵀ``,
        so ``dσ/dθ = uᵀ (∂J/∂θ) v``), at the cost of ``r`` tangent passes instead of ``D``.
        ``R = uᵀ ḟ`` where ``ḟ = J v`` is the forward tangent ``ż_1 = W_hᵀ v``,
        ``ȧ_k = s_k ⊙ ż_k``, ``ż_{k+1} = W_{k+1}ᵀ ȧ_k``. Reverse mode over primal and tangent
        together: tangent cotangents ``ž_k = s_k ⊙ ǎ_k`` (``ǎ_{L-1} = W_L u``,
        ``ǎ_{k-1} = W_k ž_k``) give ``∂R/∂W_{k} ∋ ȧ_{k-1} ž_kᵀ``; the slopes give the primal
        cotangent ``z̄_k = σ''(z_k) Σ_r (ż_k ⊙ ǎ_k) + s_k ⊙ (W_{k+1} z̄_{k+1})``, backpropagated
        as in ``vjp`` to ``[W_k; b_k]`` and to ``h = W_h z̄_1``.

        Parameters
        ----------
        h : (B, D) float64;  t : float;  U, V : (B, D, r) float64

        Returns
        -------
        g_theta : (P,), summed over the batch;  g_h : (B, D)
        """
        X, A, S, _ = self._forward(h, t, need_slopes=True)
        B, D, r = V.shape
        g_theta = np.zeros(self.n_params)
        grads = self._blocks(g_theta)
        Vt = V.transpose(1, 0, 2).reshape(D, B * r)   # tangent of h, feature-major (D, B·r)
        Ut = U.transpose(1, 0, 2).reshape(D, B * r)
        if not S:                                     # affine field: J = W_hᵀ
            grads[0][:D] += Vt @ Ut.T
            return g_theta, np.zeros((B, D))
        zdot, adot = [], []
        for k, s in enumerate(S):
            zdot.append((self._W_h.T if k == 0 else self._Wb[k][:-1].T) @
                        (Vt if k == 0 else adot[-1]))
            adot.append((zdot[-1].reshape(-1, B, r) * s[:, :, None]).reshape(-1, B * r))
        n_hidden = len(S)
        grads[n_hidden][:-1] += adot[-1] @ Ut.T
        abar_dot = self._Wb[n_hidden][:-1] @ Ut       # cotangent of ȧ_{L-1}, (n, B·r)
        zbar = None
        inputs = [X, *A]
        for k in range(n_hidden - 1, -1, -1):
            s = S[k]
            prod = (zdot[k] * abar_dot).reshape(-1, B, r).sum(axis=2)   # ∂R/∂s_k, (n_k, B)
            zbar_new = prod * self._curvature(A[k][:-1], s)
            if zbar is not None:
                zbar_new += (self._Wb[k + 1][:-1] @ zbar) * s
            zbar = zbar_new
            zdot_bar = (abar_dot.reshape(-1, B, r) * s[:, :, None]).reshape(-1, B * r)
            if k == 0:
                grads[0][:D] += Vt @ zdot_bar.T
            else:
                grads[k][:-1] += adot[k - 1] @ zdot_bar.T
                abar_dot = self._Wb[k][:-1] @ zdot_bar
            grads[k] += inputs[k] @ zbar.T
        return g_theta, (self._W_h @ zbar).T

