"""Regularisation along the trajectory: ``λ ∫_{t0}^{t1} mean_b R(h_b(t), t) dt`` and its adjoint.

The paper evaluates its Jacobian penalty at ``h(t0)`` only; Finlay et al. (2020, "How to train
your neural ODE") integrate theirs over the whole solve. With ``reg_at="trajectory"`` the loss
is ``L = CE(h(t1)) + λ Q(t1)`` with the quadrature state

    dQ/dt = mean_b R_b(t),   Q(t0) = 0,

integrated together with ``h`` in ONE forward solve, ``y = [h, Q]``, ``Q`` left out of the
step-size error norm (it must not shrink the steps of ``h``; ``error_groups([B·D])``). The
integrand ``R_b(t)`` is exactly (no Hutchinson estimate at these sizes):

=================  ==========================================================================
``reg``            ``R_b(t)``
=================  ==========================================================================
kinetic            ``‖f(h_b, t)‖²`` (kinetic energy, Finlay et al.)
taynode            ``‖J_b f_b + ∂f_b/∂t‖² = ‖d²h_b/dt²‖²`` (TayNODE with K = 2, Kelly et al.)
frobenius          ``‖J_b‖_F²`` — SQUARED along the path, as Finlay et al. (at ``t0`` the
                   paper's ``‖J‖_F`` stays)
spectral           ``σ_max(J_b)``
condition          ``κ_ε(J_b)``, the floored condition number of :mod:`odejac.regularisers`
log_condition      ``log κ_ε(J_b)``
rnode              ``‖f(h_b, t)‖² + ρ ‖J_b‖_F²`` (RNODE, Finlay et al.: kinetic energy plus the
                   squared Frobenius norm, ``ρ = λ_J/λ_K``, ``jac_weight``; 1 by default)
=================  ==========================================================================

with ``J_b = ∂f/∂h(h_b(t), t)``. The κ penalties use the exact SVD or, with
``method="matrix-free"``, :mod:`odejac.matfree` (warm-started from one evaluation to the next).

Adjoint. ``∂L/∂Q(t1) = λ`` is constant, so the quadrature's adjoint needs no state, and the
backward augmented field for ``[h, a, g]`` from ``t1`` to ``t0`` is (``c = λ/B``)

    dh/dt = f,
    da/dt = −aᵀ ∂f/∂h − c Σ_b ∂R_b/∂h,
    dg/dt = −aᵀ ∂f/∂θ − c Σ_b ∂R_b/∂θ,

``a(t1) = ∂CE/∂h(t1)``, ``g(t1) = 0``; then ``a(t0) = dL/dh(t0)`` and ``g(t0) = dL/dθ``
(the continuous adjoint of the augmented system ``[h, Q]``). :func:`backward` runs it with
:func:`odejac.adjoint.adjoint_solve` by handing it this field as its ``f_and_vjp``.
"""
import numpy as np

from . import matfree
from .adjoint import adjoint_solve
from .integrate import error_groups, solve_flat
from .regularisers import PENALTIES, frobenius

PATH_REGULARISERS = ("kinetic", "taynode", "frobenius", "spectral", "condition",
                     "log_condition", "rnode")


def _taynode(field, h, t, scale):
    """``R_b = ‖ḧ_b‖²``, ``ḧ = J f + ∂f/∂t``, and the pieces of its gradient (docs/adjoint.md).

    ``∂(c Σ_b R_b)`` with ``w = 2c ḧ``: at fixed ``v = f`` the VJP of ``wᵀ(J v + ∂f/∂t)``
    (``g_theta``, ``g_h``), plus the dependence of ``v = f`` on ``(h, θ)``, which is the ordinary
    VJP of ``f`` with cotangent ``Jᵀ w`` (returned as ``jt_w`` for the caller to fold into its
    own ``f`` VJP).
    """
    f, hdd = field._second_derivative(h, t)
    values = np.einsum("bi,bi->b", hdd, hdd)
    if scale is None:
        return values, None, None, None
    g_theta, g_h, jt_w = field._tangent_vjp(h, t, f, (2.0 * scale) * hdd)
    return values, g_theta, g_h, jt_w


def rnode_weight(reg, lam, lam2):
    """``ρ = λ_J / λ_K`` of RNODE's integrand ``‖f‖² + ρ‖J‖_F²``: 1 unless ``lam2`` differs.

    ``lam2 = None`` (or equal to ``lam``) means one weight for both terms; otherwise ``reg``
    must be ``"rnode"``, ``lam2 ≥ 0`` finite and ``lam > 0`` (ValueError).
    """
    if lam2 is None or float(lam2) == float(lam):
        return 1.0
    lam2 = float(lam2)
    if reg != "rnode":
        raise ValueError(f"lam2 is a weight of reg='rnode' only; got reg={reg!r}")
    if not (np.isfinite(lam2) and lam2 >= 0.0):
        raise ValueError(f"lam2 must be a finite number >= 0; got {lam2!r}")
    if not float(lam) > 0.0:
        raise ValueError(f"lam2 = {lam2!r} differs from lam = 0; RNODE needs lam > 0 to weigh "
                         "its kinetic term")
    return lam2 / float(lam)


def integrand(field, reg, h, t, scale=None, *, method="exact", state=None, options=None,
              jac_weight=1.0):
    """``R_b(h_b, t)`` and, if ``scale`` is given, the gradient of ``scale · Σ_b R_b``.

    Parameters
    ----------
    field : MLP
    reg : str
        One of :data:`PATH_REGULARISERS`.
    h : (B, D);  t : float;  scale : float or None
    method : {"exact", "matrix-free"}
        For the κ penalties (spectral, condition, log_condition).
    state : matfree.WarmStart, optional
    options : dict, optional
        Keyword arguments of :func:`odejac.matfree.extreme_singular`.
    jac_weight : float
        ``ρ ≥ 0``, the weight of ``‖J‖_F²`` relative to ``‖f‖²`` in ``rnode`` (ignored otherwise).

    Returns
    -------
    values : (B,);  g_theta : (P,) or None;  g_h : (B, D) or None
    """
    if reg == "rnode":   # ‖f‖² + ρ‖J‖_F²: the two gradients add (docs/regularisers.md §7)
        f, J = field._f(h, t), field._jacobian(h, t)
        values = np.einsum("bi,bi->b", f, f) + jac_weight * np.einsum("bij,bij->b", J, J)
        if scale is None:
            return values, None, None
        g_h, g_theta = field._vjp(h, t, (2.0 * scale) * f)
        jg_theta, jg_h = field._jacobian_vjp(h, t, (2.0 * scale * jac_weight) * J)
        return values, g_theta + jg_theta, g_h + jg_h
    if reg == "kinetic":
        f = field._f(h, t)
        values = np.einsum("bi,bi->b", f, f)
        if scale is None:
            return values, None, None
        g_h, g_theta = field._vjp(h, t, (2.0 * scale) * f)    # ∂‖f‖²/∂· = 2 fᵀ ∂f/∂·
        return values, g_theta, g_h
    if reg == "taynode":
        values, g_theta, g_h, jt_w = _taynode(field, h, t, scale)
        if scale is None:
            return values, None, None
        d_h, d_theta = field._vjp(h, t, jt_w)
        return values, g_theta + d_theta, g_h + d_h
    if method == "matrix-free" and reg in matfree.KAPPA_PENALTIES:
        ext = matfree.extreme_singular(field, h, t, state, **(options or {}))
        values, U, V = matfree.kappa_penalty(reg, ext)
        if scale is None:
            return values, None, None
        g_theta, g_h = field._jacobian_vjp_lowrank(h, t, scale * U, V)
        return values, g_theta, g_h
    J = field._jacobian(h, t)
    values, dR_dJ = frobenius(J, squared=True) if reg == "frobenius" else PENALTIES[reg](J)
    if scale is None:
        return values, None, None
    g_theta, g_h = field._jacobian_vjp(h, t, scale * dR_dJ)
    return values, g_theta, g_h


def forward(field, h0, reg, t_span, *, rtol, atol, controller, max_steps, method="exact",
            state=None, options=None, jac_weight=1.0):
    """Solve ``[h, Q]`` from ``t0`` to ``t1``; ``Q`` is outside the error norm.

    Returns
    -------
    h1 : (B, D)
    integral : float
        ``Q(t1) = ∫ mean_b R_b dt`` (without λ).
    nfe : int
    """
    shape, n = h0.shape, h0.size

    def rhs(t, y):
        h = y[:n].reshape(shape)
        out = np.empty(n + 1)
        f = field._f(h, t)
        out[:n] = f.reshape(-1)
        if reg == "kinetic":                      # R = ‖f‖² reuses this evaluation's f
            out[n] = np.einsum("bi,bi->", f, f) / shape[0]
        else:
            out[n] = integrand(field, reg, h, t, method=method, state=state,
                               options=options, jac_weight=jac_weight)[0].mean()
        return out

    y0 = np.concatenate([h0.reshape(-1), [0.0]])
    y1, nfe, _, _, _ = solve_flat(rhs, y0, t_span, rtol, atol, controller, max_steps,
                                  error_groups([n]), False)
    return y1[:n].reshape(shape), float(y1[n]), nfe


def backward(field, h1, dL_dh1, reg, scale, t_span, param_sizes, *, rtol, atol, controller,
             norm, max_steps, method="exact", state=None, options=None, jac_weight=1.0):
    """Backward solve of ``[h, a, g]`` with the penalty terms in the adjoint (module notes).

    Parameters
    ----------
    scale : float
        ``c = λ / B``, the weight of ``Σ_b R_b`` in the loss.
    Other parameters as :func:`odejac.adjoint.adjoint_solve`.

    Returns
    -------
    odejac.adjoint.AdjointResult
        ``dL_dtheta`` includes the penalty's ``∫ c Σ_b ∂R_b/∂θ dt``.
    """
    def f_and_vjp(t, h, a):
        if reg == "kinetic":                      # one backward pass for a and the penalty
            return field._f_and_vjp(h, t, a + (2.0 * scale) * field._f(h, t))
        if reg == "taynode":                      # the v = f part shares the pass for a
            _, g_theta, g_h, jt_w = _taynode(field, h, t, scale)
            f, vjp_h, vjp_theta = field._f_and_vjp(h, t, a + jt_w)
            return f, vjp_h + g_h, vjp_theta + g_theta
        f, vjp_h, vjp_theta = field._f_and_vjp(h, t, a)
        _, g_theta, g_h = integrand(field, reg, h, t, scale, method=method, state=state,
                                    options=options, jac_weight=jac_weight)
        return f, vjp_h + g_h, vjp_theta + g_theta

    return adjoint_solve(f_and_vjp, h1, dL_dh1, t_span, param_sizes=param_sizes, rtol=rtol,
                         atol=atol, controller=controller, norm=norm, max_steps=max_steps)
