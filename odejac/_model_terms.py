"""The names of the classifier's regularisers and its penalty terms at ``h(t0)``.

Kept apart from :mod:`odejac.model` so that it stays one readable file: the constants that name
the regularisers, where they are evaluated and how, and a mixin of
:class:`odejac.model.NeuralODE` with the penalty ``λ · mean_b R(J(h_b(t0)))``, its θ-gradient
and the κ statistic (formed J and its SVD, or :mod:`odejac.matfree`'s extreme singular values).
"""
import numpy as np

from . import _small_svd, matfree
from .regularisers import DEFAULT_COND_EPS, PENALTIES, floored_condition_parts

#: Regularisers: the paper's four settings plus ``log_condition`` (ours).
REGULARISERS = ("none", "frobenius", "spectral", "condition", "log_condition", "kinetic",
                "taynode", "rnode", "solver_error")
#: Penalties that exist only integrated along the solve: ∫‖f‖² dt, TayNODE's ∫‖ḧ‖² dt and
#: RNODE's ∫ ‖f‖² + ρ‖J‖_F² dt (Finlay et al. 2020, ``docs/regularisers.md`` §7).
PATH_ONLY = ("kinetic", "taynode", "rnode")
#: Penalties of the solve's own steps (always through ``gradient="discrete"``).
STEP_ONLY = ("solver_error",)
#: Where the penalty is evaluated: at ``h(t0)``, or integrated along the solve
#: (:mod:`odejac.trajectory`; those in ``PATH_ONLY`` are always integrated).
REG_POINTS = ("t0", "trajectory")
#: How σ_max, σ_min of J are found: SVD of the formed J, or :mod:`odejac.matfree`.
KAPPA_METHODS = matfree.METHODS
#: Gradient modes: the continuous adjoint, or the exact gradient of the discrete DP5 steps.
GRADIENTS = ("adjoint", "discrete")
#: Integration interval of the classifier.
T_SPAN = (0.0, 1.0)


def _kappa_values(J):
    """``κ_ε(J_b)`` (B,) as :func:`odejac.regularisers.condition` defines it, from the singular
    values alone (batched Jacobi, :mod:`odejac._small_svd`): the statistics need no gradient,
    and LAPACK's full SVD plus the gradient took ~1.2 ms per batch of 256, ~15 % of a reference
    epoch; this takes ~0.3 ms (``benchmarks/README.md``)."""
    s = _small_svd.svd(J, compute_uv=False)
    return floored_condition_parts(s[:, 0], s[:, -1])[0]


class PenaltyTerms:
    """The penalty at ``h(t0)`` and the options of the one integrated along the path (mixin of
    :class:`odejac.model.NeuralODE`, which sets ``reg``, ``lam``, ``reg_at``, ``field`` ...)."""

    @property
    def _on_path(self):
        return self.reg != "none" and self.reg_at == "trajectory"

    def _path_options(self):
        return dict(method=self.kappa_method, state=self._path_state,
                    options=self.matfree_options, jac_weight=self.jac_weight)

    def _penalty(self, J):
        """``R(J)`` and ``dR/dJ`` of the chosen penalty, with this model's κ floor."""
        if self.reg in ("condition", "log_condition"):
            return PENALTIES[self.reg](J, eps=self.cond_eps)
        return PENALTIES[self.reg](J)

    def _t0_terms(self, h0, need_grad, need_kappa=True):
        """``λ · mean_b R(J(h0_b))`` (0 on the path), its θ-gradient (or None), the κ_ε(J(h0))
        statistic ``(B,)`` (None unless ``need_kappa``) and extra statistics (dict)."""
        t0, scale = T_SPAN[0], self.lam / len(h0)
        penalise = self.reg not in ("none",) + STEP_ONLY and not self._on_path
        kappa, extra = None, {}
        if self.kappa_method == "matrix-free" and (
                need_kappa or (penalise and self.reg in matfree.KAPPA_PENALTIES)):
            ext = matfree.extreme_singular(self.field, h0, t0, self._kappa_state,
                                           **self.matfree_options)
            kappa = matfree.kappa(ext)
            extra = {"kappa_products": ext.products, "kappa_unconverged": ext.n_unconverged}
            if penalise and self.reg in matfree.KAPPA_PENALTIES:
                values, U, V = matfree.kappa_penalty(self.reg, ext, eps=self.cond_eps)
                g_theta = (self.field._jacobian_vjp_lowrank(h0, t0, scale * U, V)[0]
                           if need_grad else None)
                return self.lam * float(values.mean()), g_theta, kappa, extra
        if not penalise and not (need_kappa and kappa is None):
            return 0.0, None, kappa, extra
        J = self.field._jacobian(h0, t0)
        loss_reg, g_theta = 0.0, None
        if penalise:
            values, dR_dJ = self._penalty(J)
            loss_reg = self.lam * float(values.mean())
            if need_grad:
                g_theta = self.field._jacobian_vjp(h0, t0, scale * dR_dJ)[0]
        if need_kappa and kappa is None:   # same κ_ε, no gradient needed
            same = penalise and self.reg == "condition" and self.cond_eps == DEFAULT_COND_EPS
            kappa = values if same else _kappa_values(J)
        return loss_reg, g_theta, kappa, extra
