"""Batched SVD of many small square matrices (the Jacobians ``(B, D, D)`` of the penalties).

``np.linalg.svd`` on a stack calls LAPACK once per matrix and pays ~2.7-3 µs of fixed cost per
4 × 4 matrix (0.45 ms for singular values only, 0.8 ms with vectors, for B = 256). One-sided
Jacobi (Hestenes 1958; Demmel & Veselić 1992, "Jacobi's method is more accurate than QR") in
one jitted loop over the stack does the same in ~0.29 ms. It rotates pairs of columns of
``A = J V`` until every pair is orthogonal to ``|a_pᵀa_q| ≤ D·eps·‖a_p‖‖a_q‖``; then
``σ_j = ‖a_j‖``, ``u_j = a_j / σ_j``, and ``V`` is the product of the rotations. Singular
values agree with LAPACK's to ``~eps·σ₁`` (both are backward stable); ``U``, ``V`` may differ
by signs and, within a cluster of equal σ, by a rotation, as any two SVDs may.

Used for ``D ≤ MAX_JACOBI_DIM`` with the JIT on; otherwise ``np.linalg.svd`` (and under
``NUMBA_DISABLE_JIT=1``, where the loops would crawl).
"""
import numpy as np
from numba import config, njit

#: Largest D handled by Jacobi; beyond it LAPACK's O(D³) with a small constant wins.
MAX_JACOBI_DIM = 8
#: Sweeps over all column pairs before giving up (convergence is quadratic: 4-6 suffice).
MAX_SWEEPS = 30
_EPS = np.finfo(np.float64).eps


@njit(cache=True)
def _jacobi(J, want_uv):
    B, D, _ = J.shape
    s = np.empty((B, D))
    n_uv = B if want_uv else 0
    U = np.zeros((n_uv, D, D))
    Vh = np.zeros((n_uv, D, D))
    A = np.empty((D, D))
    V = np.empty((D, D))
    norms = np.empty(D)
    order = np.empty(D, dtype=np.int64)
    tol = D * _EPS
    for b in range(B):
        big = 0.0
        for i in range(D):
            for j in range(D):
                big = max(big, abs(J[b, i, j]))
        scale = big if big > 0.0 else 1.0        # keeps the column sums clear of over/underflow
        for i in range(D):
            for j in range(D):
                A[i, j] = J[b, i, j] / scale
                V[i, j] = 1.0 if i == j else 0.0
        for _ in range(MAX_SWEEPS):
            rotated = False
            for p in range(D - 1):
                for q in range(p + 1, D):
                    alpha = 0.0
                    beta = 0.0
                    gamma = 0.0
                    for i in range(D):
                        alpha += A[i, p] * A[i, p]
                        beta += A[i, q] * A[i, q]
                        gamma += A[i, p] * A[i, q]
                    if gamma == 0.0 or abs(gamma) <= tol * np.sqrt(alpha * beta):
                        continue
                    rotated = True
                    # The rotation that zeroes the (p, q) entry of AᵀA (Rutishauser's form).
                    zeta = (beta - alpha) / (2.0 * gamma)
                    t = (1.0 if zeta >= 0.0 else -1.0) / (abs(zeta) + np.sqrt(1.0 + zeta * zeta))
                    c = 1.0 / np.sqrt(1.0 + t * t)
                    sn = c * t
                    for i in range(D):
                        ap = A[i, p]
                        aq = A[i, q]
                        A[i, p] = c * ap - sn * aq
                        A[i, q] = sn * ap + c * aq
                        vp = V[i, p]
                        vq = V[i, q]
                        V[i, p] = c * vp - sn * vq
                        V[i, q] = sn * vp + c * vq
            if not rotated:
                break
        for j in range(D):
            acc = 0.0
            for i in range(D):
                acc += A[i, j] * A[i, j]
            norms[j] = np.sqrt(acc)
        for j in range(D):                       # insertion sort, descending σ (D is small;
            order[j] = j                         # np.argsort would add ~1 s of compile)
            k = j
            while k > 0 and norms[order[k - 1]] < norms[order[k]]:
                order[k - 1], order[k] = order[k], order[k - 1]
                k -= 1
        for k in range(D):
            j = order[k]
            s[b, k] = norms[j] * scale
            if want_uv:
                inv = 1.0 / norms[j] if norms[j] > 0.0 else 0.0
                for i in range(D):
                    U[b, i, k] = A[i, j] * inv
                    Vh[b, k, i] = V[i, j]
    return U, s, Vh


def svd(J, compute_uv=True):
    """``np.linalg.svd(J)`` for a stack ``J : (B, D, D)`` of small square float64 matrices.

    Returns ``(U, s, Vh)`` with ``J_b = U_b diag(s_b) Vh_b`` and ``s`` descending, or ``s``
    alone when ``compute_uv`` is False. Difference from LAPACK: with Jacobi, the column of
    ``U`` that belongs to an exactly zero singular value is 0 instead of a unit vector
    completing the basis (callers here weight it by 0).
    """
    J = np.ascontiguousarray(J, dtype=np.float64)
    if config.DISABLE_JIT or J.ndim != 3 or J.shape[1] != J.shape[2] \
            or J.shape[1] > MAX_JACOBI_DIM:
        return np.linalg.svd(J, compute_uv=compute_uv)
    U, s, Vh = _jacobi(J, compute_uv)
    return (U, s, Vh) if compute_uv else s
