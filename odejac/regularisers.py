"""Jacobian-norm penalties ``R(J)`` and their gradients ``dR/dJ``, batched over samples.

Every penalty takes a stack of state Jacobians ``J : (B, D, D)`` (float64, finite) and returns
``(values : (B,), grads : (B, D, D))`` with ``grads[b] = dR(J_b)/dJ_b`` (so a caller that
averages over the batch scales by ``1/B`` itself). Josias & Brink (2022) compare three
regularisers; a fourth is ours:

===============  ===========================  =========================================
name             value ``R(J)``               gradient ``dR/dJ``
===============  ===========================  =========================================
frobenius        ``‖J‖_F`` (or ``‖J‖_F²``)    ``J / ‖J‖_F`` (or ``2 J``)
spectral         ``σ₁``                       ``u₁ v₁ᵀ``
condition        ``κ_ε = σ₁ / σ_D`` floored   ``dσ₁/σ_D − σ₁ dσ_D/σ_D²`` (floored below)
log_condition    ``log κ_ε`` (ours)           ``dκ_ε / κ_ε``
===============  ===========================  =========================================

with ``J = U diag(σ) Vᵀ``, ``σ₁ ≥ … ≥ σ_D ≥ 0``, ``u_i = U[:, i]``, ``v_i = V[:, i]``; the
singular-value derivatives ``dσ_i/dJ = u_i v_iᵀ`` hold where ``σ_i`` is simple and positive
(first-order perturbation theory, e.g. Stewart & Sun, *Matrix Perturbation Theory*, 1990).
The SVD-based penalties make ONE batched SVD call for the whole stack
(:func:`odejac._small_svd.svd`: one-sided Jacobi in one jitted loop for ``D ≤ 8``, ~2x
LAPACK's per-matrix cost here; ``np.linalg.svd`` otherwise; issue #11); the
Frobenius norm needs no SVD. Both ``‖J‖_F`` (the default) and ``‖J‖_F²`` (smooth everywhere;
the form of Finlay et al., 2020, "How to train your neural ODE") are offered through
``frobenius(J, squared=...)``.

Degenerate cases (defined here, tested in ``tests/test_regularisers.py``)
-------------------------------------------------------------------------
* **Ties.** If σ₁ (or σ_D) is repeated, the gradient is not unique: the Clarke subdifferential
  is ``{U_S W V_Sᵀ : W ⪰ 0, tr W = 1}`` with ``S`` the tied indices. We return its
  minimum-norm element ``(1/|S|) Σ_{i∈S} u_i v_iᵀ`` (``W = I/|S|``). For ``σ > 0`` it equals
  ``J V_S V_Sᵀ / σ``, a function of the singular *subspace* only, so it does not depend on the
  basis LAPACK picks inside it. ``i ∈ S`` iff ``|σ_i − σ_ref| ≤ TIE_RTOL · σ₁``: the tolerance is
  relative to σ₁ because that is the scale of the SVD's rounding error (Weyl: ``|δσ_i| ≤ ‖δJ‖₂``
  ≈ machine-ε · σ₁), so ties blurred by rounding are still caught at the small end.
* **Zero singular value.** At ``σ = 0`` the tied basis is arbitrary in ``U`` and ``V``
  independently and the subdifferential contains 0 (a kink like ``|x|``), so ``dσ/dJ := 0``
  there. In particular ``J = 0`` gives spectral gradient 0 and Frobenius gradient 0 (the
  min-norm subgradient of a norm at the origin).
* **σ_D → 0 (condition number).** ``κ`` is replaced by the relative floor
  ``κ_ε = σ₁ / sqrt(σ_D² + ε² σ₁²) = (r² + ε²)^(-1/2)``, ``r = σ_D/σ₁``, with
  ``ε = DEFAULT_COND_EPS = 1e-8``. It keeps κ's scale invariance (``κ_ε(cJ) = κ_ε(J)``), is
  bounded by ``1/ε``, differs from κ by the relative amount ``≈ ε²κ²/2`` (< 5e-9 for κ ≤ 1e4),
  and is smooth through ``σ_D = 0`` (it depends on ``σ_D²``). ``ε ≈ sqrt(machine ε)`` because
  beyond ``κ ≈ 1/ε`` the computed κ itself has relative error ``≈ machine-ε · κ > ε``. Gradient:
  ``dκ_ε/dJ = κ_ε³ · r · (r G₁ − G_D) / σ₁`` with ``G_i = dσ_i/dJ`` as above (for ``ε = 0`` this
  is ``G₁/σ_D − σ₁ G_D/σ_D²``); the factor ``r`` kills ``G_D`` exactly where it is ambiguous.
* **J = 0** has no condition number (κ is homogeneous of degree 0). We return the value of the
  best-conditioned matrices, ``κ_ε(I) = (1 + ε²)^(-1/2)`` (``log κ_ε ≈ 0``), with gradient 0.
* **Bad input.** ``J`` not of shape ``(B, D, D)`` with ``D ≥ 1``, or not real, or with
  non-finite entries: ``ValueError`` saying which samples are bad.
"""
import numpy as np

from . import _small_svd

TIE_RTOL = 1e-10
"""Singular values within ``TIE_RTOL · σ₁`` of σ₁ (or σ_D) count as tied (see module notes)."""

DEFAULT_COND_EPS = 1e-8
"""Relative floor ε of ``κ_ε = σ₁ / sqrt(σ_D² + ε²σ₁²)``; ≈ sqrt(float64 machine epsilon)."""

_MAX_LISTED = 10  # bad sample indices quoted in an error message before "..."


def _check_jacobians(J):
    """``J`` as a float64 C-contiguous ``(B, D, D)`` array, or ValueError with context."""
    arr = np.asarray(J)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"J must be a real numeric array; got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 1:
        raise ValueError(f"J must have shape (B, D, D) with D >= 1; got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
    if bad.size:
        listed = ", ".join(str(i) for i in bad[:_MAX_LISTED])
        listed += ", ..." if bad.size > _MAX_LISTED else ""
        raise ValueError(
            f"J has non-finite entries in {bad.size} of {arr.shape[0]} samples (indices [{listed}])"
        )
    return arr


def _tied_gradient(U, s, Vh, ref):
    """Min-norm subgradient of the singular value ``s[:, ref]`` (``ref`` = 0 or -1).

    Parameters
    ----------
    U, Vh : ndarray, shape (B, D, D)
        Batched SVD factors, ``J = U diag(s) Vh``.
    s : ndarray, shape (B, D)
        Singular values, descending.
    ref : int
        0 for σ₁, -1 for σ_D.

    Returns
    -------
    G : ndarray, shape (B, D, D)
        ``(1/|S|) Σ_{i∈S} u_i v_iᵀ`` with ``S = {i : |σ_i − σ_ref| ≤ TIE_RTOL·σ₁}``; 0 where
        ``σ_ref = 0``.
    """
    sigma = s[:, [ref]]
    tied = np.abs(s - sigma) <= TIE_RTOL * s[:, :1]
    # Positive σ only: at σ = 0 the tied basis (hence the average) is arbitrary; 0 is a subgradient.
    weights = np.where(tied & (sigma > 0), 1.0, 0.0)
    weights /= np.maximum(tied.sum(axis=1, keepdims=True), 1)
    return (U * weights[:, None, :]) @ Vh


def frobenius(J, squared=False):
    """Frobenius norm ``‖J_b‖_F`` (or its square) and its gradient, per sample.

    Parameters
    ----------
    J : array_like, shape (B, D, D)
        Jacobians.
    squared : bool
        If True return ``‖J‖_F²`` with gradient ``2 J`` (smooth everywhere).

    Returns
    -------
    values : ndarray, shape (B,)
        ``‖J_b‖_F = sqrt(Σ_ij J_bij²)`` (or its square).
    grads : ndarray, shape (B, D, D)
        ``J_b / ‖J_b‖_F``, defined as 0 where ``J_b = 0`` (the min-norm subgradient);
        ``2 J_b`` if ``squared``.
    """
    J = _check_jacobians(J)
    sq = np.einsum("bij,bij->b", J, J)
    if squared:
        return sq, 2.0 * J
    norm = np.sqrt(sq)
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return norm, J * inv[:, None, None]


def spectral(J):
    """Spectral norm ``σ₁(J_b)`` and its gradient ``u₁ v₁ᵀ``, per sample.

    Parameters
    ----------
    J : array_like, shape (B, D, D)
        Jacobians.

    Returns
    -------
    values : ndarray, shape (B,)
        Largest singular value ``σ₁``.
    grads : ndarray, shape (B, D, D)
        ``u₁ v₁ᵀ``; for a tied σ₁ the average over the tie, 0 for ``J = 0`` (module notes).
    """
    J = _check_jacobians(J)
    U, s, Vh = _small_svd.svd(J)
    return s[:, 0].copy(), _tied_gradient(U, s, Vh, 0)


def floored_condition_parts(s1, sD, eps=DEFAULT_COND_EPS):
    """``κ_ε``, ``r = σ_D/σ₁`` and ``c`` from the extreme singular values, each ``(B,)``.

    ``dκ_ε/dJ = c (r G₁ − G_D)`` with ``G_i = dσ_i/dJ``; ``J = 0`` (``σ₁ = 0``) takes the
    identity's value and ``c = 0`` (see the module notes). Shared by the SVD path, the
    matrix-free path (:mod:`odejac.matfree`) and the κ statistic of :mod:`odejac.model`.
    """
    zero = s1 == 0
    safe_s1 = np.where(zero, 1.0, s1)
    r = np.where(zero, 1.0, sD / safe_s1)
    kappa = 1.0 / np.sqrt(r * r + eps * eps)
    coef = np.where(zero, 0.0, kappa**3 * r / safe_s1)
    return kappa, r, coef


def _floored_condition(J, eps):
    """``κ_ε``, ``dκ_ε/dJ`` (shapes (B,), (B, D, D)) after validation; see the module notes."""
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be finite and > 0; got {eps!r}")
    J = _check_jacobians(J)
    U, s, Vh = _small_svd.svd(J)
    kappa, r, coef = floored_condition_parts(s[:, 0], s[:, -1], eps)
    G1 = _tied_gradient(U, s, Vh, 0)
    GD = _tied_gradient(U, s, Vh, -1)
    grads = coef[:, None, None] * (r[:, None, None] * G1 - GD)
    return kappa, grads


def condition(J, eps=DEFAULT_COND_EPS):
    """Floored condition number ``κ_ε = σ₁ / sqrt(σ_D² + ε²σ₁²)`` and its gradient.

    Parameters
    ----------
    J : array_like, shape (B, D, D)
        Jacobians.
    eps : float
        Relative floor ε > 0 (default ``DEFAULT_COND_EPS``); ``κ_ε ≤ 1/ε``.

    Returns
    -------
    values : ndarray, shape (B,)
        ``κ_ε = (r² + ε²)^(-1/2)`` with ``r = σ_D/σ₁``; ≈ ``np.linalg.cond(J_b)`` to a relative
        ``ε²κ²/2``.
    grads : ndarray, shape (B, D, D)
        ``κ_ε³ r (r G₁ − G_D) / σ₁`` with ``G₁ = u₁v₁ᵀ``, ``G_D = u_D v_Dᵀ`` (tie-averaged).
        For ε → 0: ``G₁/σ_D − σ₁ G_D/σ_D²``. Zero where ``σ_D = 0`` is simple or where ``J = 0``.
    """
    return _floored_condition(J, eps)


def log_condition(J, eps=DEFAULT_COND_EPS):
    """``log κ_ε`` (our variant, not the paper's) and its gradient ``dκ_ε / κ_ε``.

    Parameters
    ----------
    J : array_like, shape (B, D, D)
        Jacobians.
    eps : float
        Relative floor ε > 0 of ``κ_ε`` (see ``condition``).

    Returns
    -------
    values : ndarray, shape (B,)
        ``log κ_ε = -½ log(r² + ε²)``, in ``[≈0, log(1/ε)]``.
    grads : ndarray, shape (B, D, D)
        ``κ_ε² r (r G₁ − G_D) / σ₁``.

    Notes
    -----
    The log makes the penalty's gradient scale like ``1/σ_D`` instead of ``κ/σ_D``, so one badly
    conditioned sample does not dominate a batch average.
    """
    kappa, grads = _floored_condition(J, eps)
    return np.log(kappa), grads / kappa[:, None, None]


PENALTIES = {
    "frobenius": frobenius,
    "spectral": spectral,
    "condition": condition,
    "log_condition": log_condition,
}
"""Name → penalty ``R(J) -> (values (B,), grads (B, D, D))`` with default keyword arguments."""

REG_CHOICES = ("none", "frobenius", "spectral", "condition")
"""The paper's settings ("none" = unregularised, handled by callers); ``log_condition`` is ours."""


def get_penalty(name):
    """The penalty function registered as ``name`` in ``PENALTIES``.

    Raises
    ------
    ValueError
        For an unknown name (including "none", which callers handle by not penalising).
    """
    try:
        return PENALTIES[name]
    except (KeyError, TypeError):
        hint = " ('none' means no penalty and is handled by the caller)" if name == "none" else ""
        raise ValueError(
            f"unknown penalty {name!r}{hint}; valid names: {', '.join(PENALTIES)}"
        ) from None
