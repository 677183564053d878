"""Matrix-free extreme singular values of ``J = ∂f/∂h`` and the κ penalties built on them.

The exact path (:mod:`odejac.regularisers`) forms ``J : (B, D, D)`` (``D`` tangent passes),
takes an ``O(D³)`` SVD per sample and back-propagates through the whole chain (``MLP.
_jacobian_vjp``, ``O(D)`` passes). Here ``J`` is only applied, to one vector per sample at a
time, at the slopes of ONE forward pass (``MLP._jvp_block`` / ``_vjp_block``), and the
gradients use the rank-2 kernel ``MLP._jacobian_vjp_lowrank`` (``dσ/dθ = uᵀ(∂J/∂θ)v``,
``dσ/dh = uᵀ(∂J/∂h)v``): ``O(k)`` passes for ``k`` products instead of ``O(D)`` plus ``O(D³)``.

σ_max: thick-restart Lanczos on ``JᵀJ`` with Rayleigh–Ritz on ``J``
-------------------------------------------------------------------
Per sample (all samples advance together): an orthonormal basis ``Q`` grows by
``q ← (JᵀJ q_last) ⟂ Q`` (full reorthogonalisation, two Gram–Schmidt passes); the products
``JQ`` and ``JᵀJQ`` are kept, so the Ritz values are the singular values of the small
``(D, k)`` matrix ``JQ = Ũ Σ Yᵀ`` (no squaring: ``σ`` to ``machine-ε · σ_max``), the pair
``(σ, Qy)`` satisfies ``J(Qy) = σu`` exactly, and its residual ``‖Jᵀu − σ(Qy)‖`` costs no
product. At ``max_basis`` vectors the basis restarts from ``keep`` Ritz vectors per end plus
the next Lanczos vector (Wu & Simon, 2000, "Thick-restart Lanczos"). Every method built on
``J``/``Jᵀ`` products from one start vector (power iteration, shifted power iteration for the
bottom, inverse iteration with an inner CG solve) stays in this Krylov space, and Rayleigh–
Ritz on it is at least as good per product. The top end converges fast (power-like).

σ_min: the top of ``J⁻¹`` when the architecture allows, else the bottom of the same Lanczos
-------------------------------------------------------------------------------------------
Lanczos is shift invariant, so the bottom pair converges at a rate set by the gap ratio
``(σ_{D-1}² − σ_D²)/(σ_1² − σ_{D-1}²)``. At initialisation these Jacobians have a hard edge
(``σ_i`` roughly linear in ``i`` near 0): gap ratios of 1e-5 … 1e-8 were measured (digits,
``D = 64``), and the restarted bottom run did not converge in thousands of products; no
polynomial in ``JᵀJ`` — shifted power, Chebyshev, CG-based inverse iteration (rate
``(κ−1)/(κ+1)``) — escapes this. The reliable fix is a genuine inverse: when every hidden
width equals ``D``, ``J_b = W_Lᵀ S_{L-1} ⋯ S_1 W_hᵀ`` is a product of square factors and
``J_b⁻¹ = W_h⁻ᵀ S_1⁻¹ ⋯ W_L⁻ᵀ`` costs, per sample, what a ``J`` product does, after ONE LU per
weight matrix shared by the batch (``MLP._square_factors``). The top pair of ``J⁻¹`` is
``(1/σ_D, v_D, u_D)``, and at the hard edge it is well separated
(``σ_{D-1}²/σ_D² − 1 = O(1)``), so the same Lanczos converges in a few dozen products at any
κ (measured up to κ ≈ 4e6, ``D = 1024``; ``docs/scalable.md``). For other widths the bottom
Ritz pair of the ``J`` run is used: exact once the basis reaches ``D`` (``D ≤ max_basis``:
no restart, so at most ``D`` steps), otherwise an upper bound of ``σ_min`` that the warm start
refines from step to step, with ``Extremes.n_unconverged`` saying how many samples are not
converged yet.

Warm start (:class:`WarmStart`)
-------------------------------
A state object kept by the model holds the last ``(v_max, v_min, u_min)`` per sample and
starts the next call from them when the batch has the same shape (successive evaluations
along a trajectory solve, where ``J(h(t))`` moves little), and with ``keyed=True`` also per
state row, so the same ``h(t0)`` in a later epoch restarts from its own vectors. A start only
changes the number of products, never the answer (to the tolerance).

Ties: at ``σ_1 = σ_2`` the exact path returns the tie-averaged min-norm subgradient; this one
returns ``u vᵀ`` of one Ritz pair, another element of the same subdifferential.
"""
from dataclasses import dataclass

import numpy as np

from .regularisers import DEFAULT_COND_EPS, floored_condition_parts

DEFAULT_TOL = 1e-4
"""Relative residual ``‖Aᵀu − σv‖ ≤ tol · σ`` at which an extreme Ritz pair of ``A`` counts as
converged (``σ_min`` of J without the inverse: ``tol · sqrt(σ_min² + ε²σ_max²)``, the κ_ε floor)."""

DEFAULT_MAX_BASIS = 32
"""Krylov basis size at which the process restarts (memory ``3 · B · D · max_basis`` floats);
a basis of ``D`` vectors is the whole space, so for ``D ≤ max_basis`` there is no restart and
at most ``D`` steps give the exact answer."""

DEFAULT_KEEP = 4
"""Ritz vectors kept from EACH end at a thick restart."""

DEFAULT_MAX_CYCLES = 20
"""Restart cycles per call; training calls are warm-started, so an unconverged sample keeps
improving at the next step (like the one power iteration per step of spectral normalisation,
Miyato et al., 2018). The unconverged count is reported, never raised."""

_ROUNDING = 64 * np.finfo(float).eps   # attainable relative accuracy of a product
_BREAKDOWN = 1e-10   # a new direction this small relative to its pre-projection norm is noise
_KEY_LIMIT = 200_000  # keyed warm-start entries kept before the cache is cleared
METHODS = ("exact", "matrix-free")
KAPPA_PENALTIES = ("spectral", "condition", "log_condition")


@dataclass(frozen=True)
class Extremes:
    """Extreme singular triplets per sample, ``J v = σ u`` at both ends.

    Attributes
    ----------
    sigma_max, sigma_min : (B,)
    u_max, v_max, u_min, v_min : (B, D)
        Unit vectors (``u = 0`` where ``σ = 0``).
    cycles : int
        Restart cycles run (both runs together).
    products : int
        Products with ``J``, ``Jᵀ``, ``J⁻¹`` or ``J⁻ᵀ`` per sample.
    n_unconverged : int
        Samples with a residual still above the tolerance.
    inverse : bool
        ``σ_min`` came from the top end of ``J⁻¹`` (every width equals D).
    """

    sigma_max: np.ndarray
    u_max: np.ndarray
    v_max: np.ndarray
    sigma_min: np.ndarray
    u_min: np.ndarray
    v_min: np.ndarray
    cycles: int
    products: int
    n_unconverged: int
    inverse: bool


class WarmStart:
    """Singular vectors kept between calls (see the module notes).

    Parameters
    ----------
    keyed : bool
        Also remember vectors per state row (``h_b.tobytes()``), so a sample seen before (the
        same ``h(t0)`` in a later epoch) restarts from its own vectors.
    seed : int
        Seeds random starts and breakdown directions.

    Attributes
    ----------
    last : Extremes or None
        The last result (statistics).
    """

    def __init__(self, keyed=False, seed=0):
        self.keyed = keyed
        self.rng = np.random.default_rng([seed, 6])
        self.last = None
        self._vectors = None          # (B, D, 3): v_max, v_min, u_min of the last call
        self._by_row = {}

    def start(self, h):
        """``(B, D, 3)`` start vectors ``[v_max, v_min, u_min]``: remembered or random."""
        B, D = h.shape
        if self._vectors is not None and self._vectors.shape[:2] == (B, D):
            out = self._vectors.copy()
        else:
            out = self.rng.standard_normal((B, D, 3))
        if self.keyed and self._by_row:
            for b, row in enumerate(h):
                hit = self._by_row.get(row.tobytes())
                if hit is not None:
                    out[b] = hit
        return out

    def update(self, h, ext):
        self.last = ext
        self._vectors = np.stack([ext.v_max, ext.v_min, ext.u_min], axis=2)
        if self.keyed:
            if len(self._by_row) > _KEY_LIMIT:
                self._by_row.clear()
            for row, vec in zip(h, self._vectors):
                self._by_row[row.tobytes()] = vec


def _orthogonalise(Q, z):
    """``z − Q Qᵀz`` per sample (``Q : (B, D, k)``, ``z : (B, D)``), two passes (CGS2)."""
    for _ in range(2):
        z = z - np.einsum("bdk,bk->bd", Q, np.einsum("bdk,bd->bk", Q, z))
    return z


def _extend(Q, z, rng):
    """Unit ``(B, D)`` direction of ``z`` orthogonal to ``span Q``; where ``z`` lies in it (an
    invariant subspace, e.g. an exact warm start) a random direction continues the basis."""
    before = np.linalg.norm(z, axis=1)
    z = _orthogonalise(Q, z)
    norm = np.linalg.norm(z, axis=1)
    tiny = norm <= _BREAKDOWN * np.maximum(before, 1e-300)
    if tiny.any():
        z[tiny] = _orthogonalise(Q[tiny], rng.standard_normal((int(tiny.sum()), z.shape[1])))
        norm = np.linalg.norm(z, axis=1)
    return z / norm[:, None]


def _unit(W, sigma):
    """``W / σ`` row-wise, 0 where ``σ = 0``."""
    inv = np.divide(1.0, sigma, out=np.zeros_like(sigma), where=sigma > 0)
    return W * inv[:, None]


def _krylov(apply, apply_t, q, rng, *, want_min, tol, max_basis, keep, max_cycles, eps):
    """Thick-restart Lanczos on ``AᵀA`` with Rayleigh–Ritz on ``A`` (full reorthogonalisation).

    Parameters
    ----------
    apply, apply_t : callable
        ``(B, D, 1) -> (B, D, 1)`` products with ``A_b`` and ``A_bᵀ``.
    q : (B, D)
        Unit start vectors.
    want_min : bool
        Test the bottom pair for convergence too (else only the top).

    Returns
    -------
    sig : (B, 2);  W, V : (B, D, 2)
        Top (column 0) and bottom (column 1) Ritz pairs with ``A V = W = σ U``.
    cycles, products, n_unconverged : int
    """
    B, D = q.shape
    k_max = min(max_basis, D)
    n_keep = max(1, min(keep, (k_max - 1) // 2))
    Q, AQ, ZQ = (np.empty((B, D, k_max)) for _ in range(3))   # basis, A·basis, AᵀA·basis
    size, cycle, products = 0, 0, 0
    while True:
        w = apply(q[:, :, None])
        z = apply_t(w)
        products += 2
        Q[:, :, size], AQ[:, :, size], ZQ[:, :, size] = q, w[:, :, 0], z[:, :, 0]
        size += 1
        # Test the Ritz pairs at sizes 1, 2, 4, 8, ..., at every full basis and at D.
        if size == k_max or size == D or size & (size - 1) == 0:
            _, sig, Yh = np.linalg.svd(AQ[:, :, :size], full_matrices=False)
            if size > 2 * n_keep:
                cols = [0, size - 1] + list(range(1, n_keep)) + list(range(size - n_keep, size - 1))
            else:
                cols = [0] + list(range(size - 1, 0, -1))
            Y = Yh.transpose(0, 2, 1)[:, :, cols]
            V, W, Z = Q[:, :, :size] @ Y, AQ[:, :, :size] @ Y, ZQ[:, :, :size] @ Y
            sig = sig[:, cols]
            ends = [0, min(1, size - 1)]
            # Residual ‖Aᵀu − σv‖ with u = Av/σ: AᵀA(Qy) = ZQ y is already known.
            safe = np.maximum(sig[:, ends], 1e-300)
            res = np.linalg.norm(Z[:, :, ends] / safe[:, None] - sig[:, None, ends] * V[:, :, ends],
                                 axis=1)
            bottom = np.sqrt(sig[:, ends[1]] ** 2 + (eps * sig[:, 0]) ** 2)
            bad = res[:, 0] > tol * sig[:, 0]
            if want_min:   # rounding in JᵀJ q is ~ε σ_max², i.e. ~ε σ_max²/σ in the residual
                floor = _ROUNDING * sig[:, 0] ** 2 / np.maximum(bottom, 1e-300)
                bad |= res[:, 1] > tol * bottom + floor
            unconverged = 0 if size == D else int(bad.sum())   # size D: Ritz = exact
            if unconverged == 0 or (size == k_max and cycle == max_cycles):
                break
            if size == k_max:                 # thick restart: keep n_keep Ritz vectors per end
                q = _extend(Q, ZQ[:, :, size - 1], rng)
                m = 2 * n_keep
                Q[:, :, :m], AQ[:, :, :m], ZQ[:, :, :m] = V[:, :, :m], W[:, :, :m], Z[:, :, :m]
                size, cycle = m, cycle + 1
                continue
        q = _extend(Q[:, :, :size], ZQ[:, :, size - 1], rng)
    return sig[:, ends], W[:, :, ends], V[:, :, ends], cycle, products, unconverged


def _normalised(v, rng):
    """Rows of ``v`` scaled to unit length; random rows where ``v`` is (nearly) zero."""
    norm = np.linalg.norm(v, axis=1)
    bad = ~(norm > 1e-8)
    if bad.any():
        v = v.copy()
        v[bad] = rng.standard_normal((int(bad.sum()), v.shape[1]))
        norm = np.linalg.norm(v, axis=1)
    return v / norm[:, None]


def extreme_singular(field, h, t, state=None, *, tol=DEFAULT_TOL, max_basis=DEFAULT_MAX_BASIS,
                     keep=DEFAULT_KEEP, max_cycles=DEFAULT_MAX_CYCLES, eps=DEFAULT_COND_EPS,
                     inverse=True):
    """``σ_max``, ``σ_min`` and their singular vectors of ``J_b = ∂f/∂h(h_b, t)``, matrix-free.

    Parameters
    ----------
    field : MLP
        Provides ``_slopes``, ``_jvp_block``, ``_vjp_block`` (and ``_square_factors``,
        ``_jinv_block``, ``_jinv_t_block`` for the inverse).
    h : ndarray, shape (B, D)
    t : float
    state : WarmStart, optional
        Start vectors in, converged vectors out; random starts if None.
    tol, max_basis, keep, max_cycles, eps
        See the module constants; ``eps`` only scales the ``σ_min`` test of the J run.
    inverse : bool
        Take ``σ_min = 1/σ_max(J⁻¹)`` when every width equals D (see the module notes).

    Returns
    -------
    Extremes
    """
    if state is None:
        state = WarmStart()
    S = field._slopes(h, t)
    lus = field._square_factors() if inverse else None
    start = state.start(h)
    opts = dict(tol=tol, max_basis=max_basis, keep=keep, max_cycles=max_cycles, eps=eps)
    q = start[:, :, 0] if lus is not None else start[:, :, 0] + start[:, :, 1]
    sig, W, V, cycles, products, unconverged = _krylov(
        lambda x: field._jvp_block(S, x), lambda x: field._vjp_block(S, x),
        _normalised(q, state.rng), state.rng, want_min=lus is None, **opts)
    s_max, u_max, v_max = sig[:, 0], _unit(W[:, :, 0], sig[:, 0]), V[:, :, 0]
    s_min, u_min, v_min = sig[:, 1], _unit(W[:, :, 1], sig[:, 1]), V[:, :, 1]
    if lus is not None:
        # J⁻¹ = V Σ⁻¹ Uᵀ: its top pair (1/σ_min, v_min, u_min) is its best separated one.
        with np.errstate(over="ignore", invalid="ignore"):
            isig, iW, iV, c2, p2, u2 = _krylov(
                lambda x: field._jinv_block(S, lus, x), lambda x: field._jinv_t_block(S, lus, x),
                _normalised(start[:, :, 2], state.rng), state.rng, want_min=False, **opts)
        ok = np.isfinite(isig[:, 0]) & (isig[:, 0] > 0) & np.isfinite(iW[:, :, 0]).all(axis=1)
        okc = ok[:, None]
        s_min = np.where(ok, 1.0 / np.where(ok, isig[:, 0], 1.0), 0.0)
        u_min = np.where(okc, iV[:, :, 0], u_min)
        v_min = np.where(okc, _unit(np.where(okc, iW[:, :, 0], 0.0), np.where(ok, isig[:, 0], 0)),
                         v_min)
        cycles, products, unconverged = cycles + c2, products + p2, max(unconverged, u2)
    ext = Extremes(sigma_max=s_max.copy(), u_max=u_max, v_max=v_max.copy(), sigma_min=s_min,
                   u_min=u_min, v_min=v_min.copy(), cycles=cycles, products=products,
                   n_unconverged=unconverged, inverse=lus is not None)
    state.update(h, ext)
    return ext


def kappa_penalty(name, ext, eps=DEFAULT_COND_EPS):
    """Penalty values and ``dR/dJ_b = Σ_r U[b,:,r] V[b,:,r]ᵀ`` from extreme triplets.

    Same formulas and floor as :func:`odejac.regularisers.condition`:
    ``κ_ε = (r² + ε²)^(-1/2)``, ``r = σ_min/σ_max``,
    ``dκ_ε/dJ = κ_ε³ r (r u₁v₁ᵀ − u_D v_Dᵀ)/σ_max``;
    ``log_condition`` divides that by ``κ_ε``; ``spectral`` is ``σ_max`` with ``u₁v₁ᵀ``.

    Returns
    -------
    values : (B,);  U, V : (B, D, r) with r = 1 (spectral) or 2
    """
    if name not in KAPPA_PENALTIES:
        raise ValueError(f"no matrix-free form of penalty {name!r}; valid: {KAPPA_PENALTIES}")
    if name == "spectral":
        return ext.sigma_max.copy(), ext.u_max[:, :, None], ext.v_max[:, :, None]
    kappa, r, coef = floored_condition_parts(ext.sigma_max, ext.sigma_min, eps)
    values = kappa
    if name == "log_condition":
        values, coef = np.log(kappa), coef / kappa
    U = np.stack([(coef * r)[:, None] * ext.u_max, -coef[:, None] * ext.u_min], axis=2)
    V = np.stack([ext.v_max, ext.v_min], axis=2)
    return values, U, V


def kappa(ext, eps=DEFAULT_COND_EPS):
    """Floored condition numbers ``κ_ε`` (B,) of the triplets (the ``stats["kappa"]`` column)."""
    return kappa_penalty("condition", ext, eps)[0]


def penalty_and_grad(field, name, h, t, scale, state=None, **options):
    """``R_b`` and the gradient of ``scale · Σ_b R_b`` w.r.t. θ and h, never forming J.

    Parameters
    ----------
    field : MLP
    name : {"spectral", "condition", "log_condition"}
    h : (B, D);  t : float;  scale : float (e.g. ``λ / B``)
    state : WarmStart, optional
    **options
        Passed to :func:`extreme_singular`.

    Returns
    -------
    values : (B,);  g_theta : (P,);  g_h : (B, D);  ext : Extremes
    """
    ext = extreme_singular(field, h, t, state, **options)
    values, U, V = kappa_penalty(name, ext)
    g_theta, g_h = field._jacobian_vjp_lowrank(h, t, scale * U, V)
    return values, g_theta, g_h, ext
