"""The batched Jacobi SVD against LAPACK (``np.linalg.svd``), including degenerate stacks."""
import numpy as np
import pytest

from odejac._small_svd import MAX_JACOBI_DIM, svd


def _stack(D, seed=0, n=60):
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((n, D, D)) * 10.0 ** rng.integers(-150, 150, (n, 1, 1))
    J[0] = 0.0                                              # J = 0
    J[1] = np.eye(D)                                        # all σ tied
    J[2] = np.diag(np.arange(D, 0, -1.0))                   # already diagonal
    if D > 1:
        J[3, :, -1] = 0.0                                   # rank deficient
        J[4] = np.diag([2.0] * (D - 1) + [1e-12])           # tied σ₁, tiny σ_D
        Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
        J[5] = Q @ np.diag(np.geomspace(1.0, 1e-9, D)) @ Q.T   # κ = 1e9
    return J


@pytest.mark.parametrize("D", [1, 2, 3, 4, 6, MAX_JACOBI_DIM, MAX_JACOBI_DIM + 1])
def test_matches_lapack(D):
    J = _stack(D, seed=D)
    U, s, Vh = svd(J)
    s_ref = np.linalg.svd(J, compute_uv=False)
    scale = np.maximum(s_ref[:, :1], 1e-300)
    err = np.max(np.abs(s - s_ref) / scale)
    assert err < 20 * D * np.finfo(float).eps, f"singular values differ by {err:.2e}·σ₁"
    assert np.all(np.diff(s, axis=1) <= 0), "not descending"
    recon = np.einsum("bij,bj,bjk->bik", U, s, Vh)
    rel = np.max(np.abs(recon - J).max(axis=(1, 2)) / scale[:, 0])
    assert rel < 20 * D * np.finfo(float).eps, f"J ≠ U diag(s) Vh: {rel:.2e}·σ₁"
    eye = np.eye(D)
    assert np.max(np.abs(Vh @ Vh.transpose(0, 2, 1) - eye)) < 1e-13
    # U is orthonormal on the columns of nonzero σ (Jacobi leaves a zero column for σ = 0).
    positive = s > 1e-300
    UtU = U.transpose(0, 2, 1) @ U
    mask = positive[:, :, None] & positive[:, None, :]
    assert np.max(np.abs(np.where(mask, UtU - eye, 0.0))) < 1e-12
    np.testing.assert_allclose(svd(J, compute_uv=False), s)
