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

The vector field is any callable ``f_and_vjp(t, y, a) -> (f, aᵀ∂f/∂y, Σ_b a_bᵀ ∂f/∂θ)``
— time first, as :func:`odejac.odeint`'s ``f(t, y)`` and :mod:`odejac.discrete` take it. For
:class:`odejac.MLP` (whose own methods keep the layer order ``(h, t)``) that is
``lambda t, y, a: field.f_and_vjp(y, t, a)``; ``docs/exercises.md`` builds one by hand for
``y' = A y``. The plain-NumPy reading version of this solve is :mod:`odejac.reference`.
"""
from dataclasses import dataclass, field

import numpy as np

from ._checks import as_real_array
from .integrate import CONTROLLERS, _check_t_span, _check_tolerance, error_groups, solve_flat

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
        ``h̃(t0)``, the state retraced back to ``t0``; ``‖h̃(t0) − h(t0)‖`` is the
        reconstruction error (``docs/adjoint.md`` §4).
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


def _check_param_sizes(param_sizes):
    """``param_sizes`` as a list of positive ints, or ValueError."""
    try:
        sizes = [int(s) for s in np.atleast_1d(param_sizes)]
    except (TypeError, ValueError):
        raise ValueError(f"param_sizes must be a sequence of positive integers; "
                         f"got {param_sizes!r}") from None
    if not sizes or any(s < 1 for s in sizes) or np.ndim(param_sizes) > 1:
        raise ValueError(f"param_sizes must be a non-empty sequence of positive integers; "
                         f"got {param_sizes!r}")
    return sizes


def _probe(f_and_vjp, t1, h1, a1):
    """One call of ``f_and_vjp`` at ``t1``, its outputs' shapes checked; returns ``P``."""
    try:
        out = f_and_vjp(t1, h1, a1)
    except (TypeError, ValueError, IndexError) as exc:   # the usual signs of swapped arguments
        raise ValueError(f"f_and_vjp(t, y, a) failed on a first call with t = {t1} and y, a of "
                         f"shape {h1.shape}: {exc} (is t first: (t, y, a)?)") from exc
    if not (isinstance(out, tuple) and len(out) == 3):
        raise ValueError("f_and_vjp(t, y, a) must return a tuple (f, aᵀ∂f/∂y, Σ aᵀ∂f/∂θ); "
                         f"got {type(out).__name__}")
    for name, value in zip(("f", "aᵀ∂f/∂y"), out[:2]):
        if np.shape(value) != h1.shape:
            raise ValueError(f"f_and_vjp returned {name} of shape {np.shape(value)}; "
                             f"expected {h1.shape}, the shape of y (is t first: (t, y, a)?)")
    if np.ndim(out[2]) != 1:
        raise ValueError(f"f_and_vjp returned Σ aᵀ∂f/∂θ of shape {np.shape(out[2])}; "
                         f"expected a flat (P,) vector")
    return int(np.size(out[2]))


def adjoint_solve(f_and_vjp, h1, dL_dh1, t_span, *, param_sizes=None, rtol, atol,
                  controller="torchdiffeq", norm="mixed", max_steps=100_000, record=False,
                  augmented_rhs=None):
    """Integrate ``[h, a, g]`` backwards from ``t1`` to ``t0``.

    Parameters
    ----------
    f_and_vjp : callable
        ``f_and_vjp(t, y, a) -> (f (B, D), aᵀ∂f/∂y (B, D), Σ_b a_bᵀ∂f/∂θ (P,))``; the same
        argument order as :func:`odejac.odeint`'s ``f(t, y)``.
    h1 : ndarray, shape (B, D)
        State at ``t1`` from the forward solve.
    dL_dh1 : ndarray, shape (B, D)
        ``∂L/∂h(t1)``.
    t_span : (float, float)
        The forward interval ``(t0, t1)``; the solve runs from t1 to t0.
    param_sizes : sequence of int, optional
        Sizes of the parameter blocks, in ``theta`` order (they sum to P). Needed by the
        ``"mixed"`` norm (one RMS norm per block) and with ``augmented_rhs``; otherwise ``P``
        is read off one probe call of ``f_and_vjp`` (not counted in ``nfe``), against which a
        given ``param_sizes`` is also checked.
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
        per stage); it may return the same buffer every call. Trusted: no probe call.

    Returns
    -------
    AdjointResult

    Raises
    ------
    ValueError
        Unknown ``norm`` or ``controller``, bad tolerances or ``t_span``, non-finite or
        mismatched ``h1``/``dL_dh1``, ``f_and_vjp`` returning wrong shapes, ``param_sizes``
        missing where needed or not summing to ``P``.
    odejac.SolverError
        If the backward solve fails.
    """
    if norm not in ADJOINT_NORMS:
        raise ValueError(f"norm must be one of {ADJOINT_NORMS}; got {norm!r}")
    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {sorted(CONTROLLERS)}; got {controller!r}")
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    t_span = _check_t_span(t_span)
    h1, dL_dh1 = as_real_array("h1", h1), as_real_array("dL_dh1", dL_dh1)
    if h1.shape != dL_dh1.shape:
        raise ValueError(f"dL_dh1 has shape {dL_dh1.shape}; expected {h1.shape}, that of h1")
    if param_sizes is None and (norm == "mixed" or augmented_rhs is not None):
        raise ValueError("param_sizes is needed: norm='mixed' takes one RMS norm per "
                         "parameter block (pass param_sizes=[P] for one block, or use "
                         "norm='seminorm' or 'rms')" if augmented_rhs is None else
                         "param_sizes is needed with augmented_rhs")
    sizes = None if param_sizes is None else _check_param_sizes(param_sizes)
    if augmented_rhs is None:
        n_probe = _probe(f_and_vjp, t_span[1], h1, dL_dh1)
        if sizes is None:
            sizes = [n_probe]
        elif sum(sizes) != n_probe:
            raise ValueError(f"param_sizes {sizes} sum to {sum(sizes)}, but f_and_vjp returns "
                             f"Σ aᵀ∂f/∂θ of length {n_probe}")
    shape = h1.shape
    n = h1.size
    n_params = sum(sizes)
    total = 2 * n + n_params

    # One output buffer for every evaluation: the driver copies what ``augmented`` returns
    # before it calls it again (``solve_flat``), and a fresh 27 KB array per call cost ~5 µs
    # of page faults after glibc trimmed the heap (B = 256; benchmarks/README.md).
    out = np.empty(total)

    def augmented(t, z):
        f, vjp_h, vjp_theta = f_and_vjp(t, z[:n].reshape(shape), z[n:2 * n].reshape(shape))
        out[:n] = np.reshape(f, -1)
        np.negative(np.reshape(vjp_h, -1), out=out[n:2 * n])
        np.negative(vjp_theta, out=out[2 * n:])
        return out

    z1 = np.concatenate([h1.reshape(-1), dL_dh1.reshape(-1), np.zeros(n_params)])
    groups = _backward_groups(norm, n, sizes)
    rhs = augmented if augmented_rhs is None else augmented_rhs
    z0, nfe, n_acc, n_rej, log = solve_flat(rhs, z1, (t_span[1], t_span[0]), rtol, atol,
                                            controller, int(max_steps), groups, record)
    return AdjointResult(dL_dh0=z0[n:2 * n].reshape(shape), dL_dtheta=z0[2 * n:].copy(),
                         h0=z0[:n].reshape(shape), nfe=nfe, n_accepted=n_acc,
                         n_rejected=n_rej, log=log)
