"""Gradients of a loss on ``h(t1)`` by the adjoint method (Chen et al., 2018).

For ``dh/dt = f(h, t; θ)`` on ``[t0, t1]`` and a loss ``L(h(t1))`` the adjoint
``a(t) = ∂L/∂h(t)`` obeys, backwards in time from ``a(t1) = ∂L/∂h(t1)``,

    da/dt = −aᵀ ∂f/∂h,                         (adjoint ODE)
    dg/dt = −aᵀ ∂f/∂θ,   g(t1) = 0,             (parameter integral)

so that ``a(t0) = ∂L/∂h(t0)`` and ``g(t0) = ∫_{t0}^{t1} aᵀ ∂f/∂θ dt = ∂L/∂θ``.
The trajectory ``h(t)`` is not stored: it is re-integrated backwards together
with ``a`` and ``g`` as one augmented state ``[h, a, g]``, which keeps memory
flat in the number of steps at the price of a second solve (and of the small
error of retracing ``h`` backwards; see ``docs/adjoint.md``).

The vector field is any object with ``f_and_vjp(h, t, a) -> (f, aᵀ∂f/∂h,
Σ_b a_bᵀ ∂f/∂θ)``, e.g. the private ``_f_and_vjp`` of :class:`odejac.mlp.MLP`.
"""
from dataclasses import dataclass, field

import numpy as np

from .integrate import error_groups, solve_flat

#: Error norms of the backward solve.
#: ``"mixed"``: max of the RMS norms of h, a and of each parameter block, as
#: torchdiffeq 0.2.5's default ``odeint_adjoint`` norm; ``"seminorm"``: h and a
#: only, the parameter integral left out of step control (Kidger et al., 2021);
#: ``"rms"``: one RMS norm over the whole augmented state.
ADJOINT_NORMS = ("mixed", "seminorm", "rms")


@dataclass(frozen=True)
class AdjointResult:
    """Output of :func:`adjoint_solve`.

    Attributes
    ----------
    dL_dh0 : ndarray, shape (B, D)
        ``a(t0)``, the gradient of the loss with respect to the initial state.
    dL_dtheta : ndarray, shape (P,)
        ``g(t0)``, the gradient with respect to the field's parameters.
    h0 : ndarray, shape (B, D)
        The state retraced back to ``t0`` (compare with the true ``h(t0)``
        to see the reconstruction error).
    nfe, n_accepted, n_rejected : int
        Cost of the backward solve.
    log : ndarray or None
        With ``record=True``, the backward solve's step log (columns
        :data:`odejac.LOG_COLUMNS`; ``t`` decreasing, ``h`` negative).
    """

    dL_dh0: np.ndarray
    dL_dtheta: np.ndarray
    h0: np.ndarray
    nfe: int
    n_accepted: int
    n_rejected: int
    log: np.ndarray = field(default=None, repr=False)


def _backward_groups(norm, state_size, param_sizes):
    if norm == "mixed":
        return error_groups([state_size, state_size, *param_sizes])
    if norm == "seminorm":
        return error_groups([state_size, state_size])
    return error_groups([2 * state_size + int(np.sum(param_sizes))])


def adjoint_solve(f_and_vjp, h1, dL_dh1, t_span, param_sizes, *, rtol, atol,
                  controller="torchdiffeq", norm="mixed", max_steps=100_000, record=False,
                  augmented_rhs=None):
    """Integrate ``[h, a, g]`` backwards from ``t1`` to ``t0``.

    Parameters
    ----------
    f_and_vjp : callable
        ``f_and_vjp(h, t, a) -> (f (B, D), aᵀ∂f/∂h (B, D), Σ_b aᵀ∂f/∂θ (P,))``.
    h1 : ndarray, shape (B, D)
        State at ``t1`` from the forward solve.
    dL_dh1 : ndarray, shape (B, D)
        ``∂L/∂h(t1)``.
    t_span : (float, float)
        The forward interval ``(t0, t1)``; the solve runs from t1 to t0.
    param_sizes : sequence of int
        Sizes of the parameter blocks, in ``theta`` order (they sum to P);
        used by the ``"mixed"`` error norm.
    rtol, atol : float
        Tolerances of the backward solve.
    controller : {"torchdiffeq", "scipy"}
    norm : {"mixed", "seminorm", "rms"}
        Error norm of the backward solve (:data:`ADJOINT_NORMS`).
    max_steps : int
    record : bool
        Keep the step log of the backward solve in ``AdjointResult.log``.
    augmented_rhs : callable, optional
        ``(t, z) -> dz/dt`` of the augmented state, the same function as the one built here
        from ``f_and_vjp`` but fused (e.g. ``MLP._augmented_rhs(h1.shape)``: one jitted call
        per stage); it may return the same buffer every call.

    Returns
    -------
    AdjointResult

    Raises
    ------
    odejac.SolverError
        If the backward solve fails.
    """
    if norm not in ADJOINT_NORMS:
        raise ValueError(f"norm must be one of {ADJOINT_NORMS}; got {norm!r}")
    shape = h1.shape
    n = h1.size
    n_params = int(np.sum(param_sizes))
    total = 2 * n + n_params

    # One output buffer for every evaluation: the driver copies what ``augmented`` returns
    # before it calls it again (``solve_flat``), and a fresh 27 KB array per call cost ~5 µs
    # of page faults after glibc trimmed the heap (B = 256; benchmarks/README.md).
    out = np.empty(total)

    def augmented(t, z):
        f, vjp_h, vjp_theta = f_and_vjp(z[:n].reshape(shape), t, z[n:2 * n].reshape(shape))
        out[:n] = f.reshape(-1)
        np.negative(vjp_h.reshape(-1), out=out[n:2 * n])
        np.negative(vjp_theta, out=out[2 * n:])
        return out

    z1 = np.concatenate([h1.reshape(-1), dL_dh1.reshape(-1), np.zeros(n_params)])
    groups = _backward_groups(norm, n, param_sizes)
    rhs = augmented if augmented_rhs is None else augmented_rhs
    z0, nfe, n_acc, n_rej, log = solve_flat(rhs, z1, (t_span[1], t_span[0]), rtol, atol,
                                            controller, max_steps, groups, record)
    return AdjointResult(dL_dh0=z0[n:2 * n].reshape(shape), dL_dtheta=z0[2 * n:].copy(),
                         h0=z0[:n].reshape(shape), nfe=nfe, n_accepted=n_acc,
                         n_rejected=n_rej, log=log)
