"""The neural ODE classifier: augment, integrate, read out, with adjoint gradients.

``x (N, d)`` is zero-augmented to the state ``h(t0) = [x, 0] (N, D)``,
``D = d + augment_dim``, integrated to ``h(t1)`` through the MLP field, and
read out linearly: ``logits = h(t1) W + b``. The loss is the mean softmax
cross-entropy plus, optionally, ``λ · mean_b R(J(h_b(t0)))`` with
``J = ∂f/∂h`` evaluated at each sample's initial (augmented) state, as the
paper's ``∇_{h(t0)} f`` reads; with ``reg_at="trajectory"`` (and always for
``reg="kinetic"`` and ``reg="taynode"``) the penalty is integrated along the solve instead
(:mod:`odejac.trajectory`), and ``kappa_method="matrix-free"`` finds σ_max, σ_min
without forming J (:mod:`odejac.matfree`).
"""
import numpy as np

from . import discrete, matfree, solver_error, trajectory
from ._model_terms import (GRADIENTS, KAPPA_METHODS, PATH_ONLY, REG_POINTS,  # noqa: F401
                           REGULARISERS, STEP_ONLY, T_SPAN, PenaltyTerms, _kappa_values)
from .adjoint import ADJOINT_NORMS, adjoint_solve
from .data import check_Xy
from .integrate import CONTROLLERS, DEFAULT_MAX_STEPS, SolverError, error_groups, solve_flat
from .mlp import MLP
from .regularisers import DEFAULT_COND_EPS

def softmax(logits):
    """Row-wise ``exp(z) / Σ exp(z)`` of ``logits (N, C)``, shifted by the row max."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _softmax_xent(logits, y):
    """Mean cross-entropy and its gradient w.r.t. the logits, ``(N, C)``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = float(np.mean(np.log(total[:, 0]) - shifted[np.arange(n), y]))
    grad = exp / total
    grad[np.arange(n), y] -= 1.0
    return loss, grad / n


def _check_positive(name, value):
    value = float(value)
    if not (np.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


class NeuralODE(PenaltyTerms):
    """Neural ODE classifier with hand-written adjoint gradients.

    Parameters
    ----------
    in_dim : int
        Input features ``d``.
    n_classes : int
        Classes ``C ≥ 2``.
    augment_dim : int
        Zero dimensions appended to the input; the state has ``D = d + augment_dim``.
    hidden : tuple of int
        Hidden widths of the field's MLP.
    time_dependent : bool
        Feed ``t`` to the field's first layer.
    reg : {"none", "frobenius", "spectral", "condition", "log_condition", "kinetic", "taynode",
           "rnode", "solver_error"}
        Jacobian penalty (``log_condition`` is ours, not the paper's); ``kinetic`` (∫‖f‖² dt),
        ``taynode`` (∫‖J f + ∂f/∂t‖² dt) and ``rnode`` (∫‖f‖² + ‖J‖_F² dt) are always
        integrated along the solve; ``solver_error`` (Σ_j E_j |h_j|, the accepted steps' local
        error estimates) always trains with ``gradient="discrete"`` on the frozen step grid.
    lam : float
        Penalty weight ``λ ≥ 0``.
    rtol, atol : float
        Tolerances of the forward solve.
    seed : int
        Seeds the field (``MLP(seed=seed)``) and the readout
        (``default_rng([seed, 1])``, PyTorch ``nn.Linear`` initialisation).
    adjoint_rtol, adjoint_atol : float, optional
        Tolerances of the backward solve (default: the forward ones).
    controller : {"torchdiffeq", "scipy"}
        Step-size controller of both solves.
    adjoint_norm : {"mixed", "seminorm", "rms"}
        Error norm of the backward solve (see :mod:`odejac.adjoint`).
    reg_at : {"t0"}
        Where the penalty's Jacobian is evaluated.
    activation : {"tanh", "softplus"}
    max_steps : int
        Bound on step attempts of each solve.
    cond_eps : float
        Relative floor ε of the condition-number penalties,
        ``κ_ε = σ_max / sqrt(σ_min² + ε² σ_max²) ≤ 1/ε`` (see :mod:`odejac.regularisers`).
        The default 1e-8 is κ itself for κ ≪ 1e8; a larger ε (e.g. 1e-2, κ_ε ≤ 100) caps the
        penalty's gradient where J is nearly singular (our robust variant; ``reg_at="t0"``).
        The reported κ statistic is always the unfloored one.
    kappa_method : {"exact", "matrix-free"}
        For the κ penalties (spectral, condition, log_condition) and the κ statistic:
        the SVD of the formed ``J``, or warm-started matrix-free extreme singular triplets
        (:mod:`odejac.matfree`, options in the attribute ``matfree_options``).
    gradient : {"adjoint", "discrete"}
        ``"adjoint"``: solve the adjoint ODE backwards (optimise-then-discretise);
        ``"discrete"``: backpropagate exactly through the forward solve's accepted steps
        (discretise-then-optimise, :mod:`odejac.discrete`). See ``docs/adjoint.md``.
    lam2 : float or None
        ``reg="rnode"`` only: the weight ``λ_J`` of ``∫‖J‖_F² dt`` (``lam`` weighs ``∫‖f‖² dt``);
        None means ``λ_J = λ``. Needs ``lam > 0`` when it differs from ``lam``.

    Attributes
    ----------
    field : MLP
        The vector field.
    theta : ndarray, shape (P_field + D·C + C,)
        All parameters (field, then readout ``W (D, C)`` in C order, then
        ``b (C,)``); assignable.
    """

    def __init__(self, in_dim, n_classes=2, augment_dim=2, hidden=(32, 32), time_dependent=False,
                 reg="none", lam=0.0, rtol=1e-3, atol=1e-3, seed=0, *, adjoint_rtol=None,
                 adjoint_atol=None, controller="torchdiffeq", adjoint_norm="mixed", reg_at="t0",
                 activation="tanh", max_steps=DEFAULT_MAX_STEPS, gradient="adjoint",
                 kappa_method="exact", cond_eps=DEFAULT_COND_EPS, lam2=None):
        if int(in_dim) < 1 or int(n_classes) < 2 or int(augment_dim) < 0:
            raise ValueError(f"need in_dim >= 1, n_classes >= 2, augment_dim >= 0; got "
                             f"{in_dim}, {n_classes}, {augment_dim}")
        if reg not in REGULARISERS:
            raise ValueError(f"reg must be one of {REGULARISERS}; got {reg!r}")
        lam = float(lam)
        if not (np.isfinite(lam) and lam >= 0.0):
            raise ValueError(f"lam must be a finite number >= 0; got {lam!r}")
        if controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {sorted(CONTROLLERS)}; got {controller!r}")
        if adjoint_norm not in ADJOINT_NORMS:
            raise ValueError(f"adjoint_norm must be one of {ADJOINT_NORMS}; got {adjoint_norm!r}")
        if reg_at not in REG_POINTS:
            raise ValueError(f"reg_at must be one of {REG_POINTS}; got {reg_at!r}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}; got {gradient!r}")
        if kappa_method not in KAPPA_METHODS:
            raise ValueError(f"kappa_method must be one of {KAPPA_METHODS}; got {kappa_method!r}")
        if reg in PATH_ONLY:     # ∫‖f‖² dt, ∫‖ḧ‖² dt and RNODE have no t0 form
            reg_at = "trajectory"
        if reg in STEP_ONLY:
            if reg_at != "t0":
                raise ValueError(f"reg={reg!r} penalises the solver's steps; reg_at must be 't0'")
            gradient = "discrete"
        self.jac_weight = trajectory.rnode_weight(reg, lam, lam2)
        if gradient == "discrete" and reg != "none" and reg_at == "trajectory":
            raise ValueError("reg_at='trajectory' needs gradient='adjoint'")
        self.kappa_method, self.matfree_options = kappa_method, {}
        cond_eps = float(cond_eps)
        if not (np.isfinite(cond_eps) and 0.0 < cond_eps < 1.0):
            raise ValueError(f"cond_eps must be in (0, 1); got {cond_eps!r}")
        if cond_eps != DEFAULT_COND_EPS and reg_at == "trajectory":
            raise ValueError("cond_eps other than the default is only offered with reg_at='t0'")
        self.cond_eps = cond_eps
        # Warm starts of the matrix-free triplets: per h(t0) row, and along the path.
        self._kappa_state, self._path_state = matfree.WarmStart(keyed=True), matfree.WarmStart()
        self.gradient = gradient
        self.in_dim, self.n_classes, self.augment_dim = int(in_dim), int(n_classes), int(augment_dim)
        self.dim = self.in_dim + self.augment_dim
        self.reg, self.lam, self.reg_at = reg, lam, reg_at
        self.rtol, self.atol = _check_positive("rtol", rtol), _check_positive("atol", atol)
        self.adjoint_rtol = self.rtol if adjoint_rtol is None else _check_positive(
            "adjoint_rtol", adjoint_rtol)
        self.adjoint_atol = self.atol if adjoint_atol is None else _check_positive(
            "adjoint_atol", adjoint_atol)
        self.controller, self.adjoint_norm = controller, adjoint_norm
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
                or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1; got {max_steps!r}")
        self.max_steps = int(max_steps)
        self.field = MLP(self.dim, hidden=hidden, activation=activation,
                         time_dependent=time_dependent, seed=seed)
        rng = np.random.default_rng([seed, 1])
        bound = 1.0 / np.sqrt(self.dim)
        self.W_out = rng.uniform(-bound, bound, size=(self.dim, self.n_classes))
        self.b_out = rng.uniform(-bound, bound, size=self.n_classes)
        self._param_sizes = [v.size for W, b in self.field.layers for v in (W, b)]

    # -- parameters ---------------------------------------------------------------
    @property
    def n_params(self):
        return self.field.n_params + self.W_out.size + self.b_out.size

    @property
    def theta(self):
        """All parameters as one flat float64 vector (a copy)."""
        return np.concatenate([self.field.theta, self.W_out.ravel(), self.b_out])

    @theta.setter
    def theta(self, value):
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (self.n_params,):
            raise ValueError(f"theta has shape {value.shape}; expected ({self.n_params},)")
        if not np.all(np.isfinite(value)):
            raise ValueError("theta has non-finite entries")
        p = self.field.n_params
        self.field.theta = value[:p]
        self.W_out = value[p:p + self.W_out.size].reshape(self.W_out.shape).copy()
        self.b_out = value[p + self.W_out.size:].copy()

    # -- forward ------------------------------------------------------------------
    def _check_X(self, X, y=None):
        X, y = check_Xy(X, y, n_features=self.in_dim)
        if y is not None and y.max() >= self.n_classes:
            raise ValueError(f"y has label {y.max()} but n_classes = {self.n_classes}")
        return X, y

    def initial_state(self, X):
        """``h(t0) = [X, 0]``, shape ``(N, D)``."""
        return np.hstack([X, np.zeros((X.shape[0], self.augment_dim))])

    def _solve(self, h0, t_span=T_SPAN, rtol=None, atol=None):
        """Forward solve of the field from ``h0``; returns ``(h1, nfe)``."""
        shape = h0.shape
        field = self.field

        def rhs(t, y):
            return field._f(y.reshape(shape), t).reshape(-1)

        h1, nfe, _, _, _ = solve_flat(
            rhs, h0.reshape(-1).copy(), t_span, self.rtol if rtol is None else rtol,
            self.atol if atol is None else atol, self.controller, self.max_steps,
            error_groups([h0.size]), False)
        return h1.reshape(shape), nfe

    # The field's kernels keep the layer order (h, t); the solvers take time first.
    def _f_ty(self, t, h):
        return self.field._f(h, t)

    def _vjp_tya(self, t, h, a):
        return self.field._vjp(h, t, a)

    def _f_and_vjp_tya(self, t, h, a):
        return self.field._f_and_vjp(h, t, a)

    def forward(self, X):
        """Final states and logits: ``(h1 (N, D), logits (N, C), nfe)``."""
        X, _ = self._check_X(X)
        h1, nfe = self._solve(self.initial_state(X))
        return h1, h1 @ self.W_out + self.b_out, nfe

    def predict_proba(self, X):
        """Class probabilities ``(N, C)``."""
        return softmax(self.forward(X)[1])

    def predict(self, X):
        """Class labels ``(N,)``."""
        return np.argmax(self.forward(X)[1], axis=1)

    def jacobian_at_inputs(self, X):
        """``J = ∂f/∂h`` at ``h(t0) = [X, 0]``, shape ``(N, D, D)``."""
        X, _ = self._check_X(X)
        return self.field._jacobian(self.initial_state(X), T_SPAN[0])

    def condition_numbers(self, X):
        """``κ_ε(J(h(t0)))`` per sample ``(N,)`` (the paper's Table 1 column).

        One definition (:func:`_kappa_values`) with the ``kappa`` statistic of
        :meth:`loss_and_grad`: κ_ε = σ₁ / sqrt(σ_D² + ε²σ₁²), ε = 1e-8, finite (≤ 1/ε)
        for a singular J and 1 for J = 0 (a saturated field), where σ₁/σ_D is 0/0.
        """
        J = self.jacobian_at_inputs(X)
        if not np.all(np.isfinite(J)):
            raise SolverError("non-finite Jacobian of the field at the inputs", T_SPAN[0], 0.0)
        return _kappa_values(J)

    # -- gradients ----------------------------------------------------------------
    def loss_and_grad(self, X, y, t1=None):
        """Loss, its gradient w.r.t. ``theta`` and solver statistics.

        ``t1`` (default ``T_SPAN[1]``) is the end time of the solve; STEER training (Ghosh et
        al. 2020, ``docs/regularisers.md`` §8) draws it per batch.

        Returns
        -------
        loss : float
            ``CE + λ · mean_b R(J_b)``.
        grad : ndarray, shape (P,)
        stats : dict
            ``nfe_forward``, ``nfe_backward`` (VJP evaluations with ``gradient="discrete"``),
            ``loss_data``, ``loss_reg``,
            ``kappa`` (mean κ(J(h(t0))) over the batch), ``n_correct``
            (argmax hits before the update), ``dL_dx`` (N, d), the gradient of
            the data loss with respect to the inputs, ``reconstruction_error``
            ``max|h̃(t0) − h(t0)|``, how far the adjoint's backward retrace of the state
            lands from where the forward solve started (0 for ``gradient="discrete"``, which
            retraces nothing; ``docs/adjoint.md`` §4); with ``gradient="discrete"`` also
            ``steps``, the :class:`~odejac.discrete.StepSequence` the gradient is exact for.
        """
        X, y = self._check_X(X, y)
        h0, t_span = self.initial_state(X), self._t_span(t1)
        if self.gradient == "discrete":   # the same solve, with its accepted stages taped
            tape = discrete.forward(self._f_ty, h0, t_span, keep_derivatives=self.reg in STEP_ONLY,
                                    **self._tols())
            h1, nfe_forward = tape.y1, tape.nfe
            step_penalty, step_bars = solver_error.taped_penalty(
                tape, self.lam, self.reg in STEP_ONLY, self.rtol, self.atol)
        elif self._on_path:               # [h, ∫ mean R dt] in one solve
            h1, path_integral, nfe_forward = trajectory.forward(
                self.field, h0, self.reg, t_span, rtol=self.rtol, atol=self.atol,
                controller=self.controller, max_steps=self.max_steps, **self._path_options())
        else:
            h1, nfe_forward = self._solve(h0, t_span)
        logits = h1 @ self.W_out + self.b_out
        loss_data, dlogits = _softmax_xent(logits, y)
        grad_W = h1.T @ dlogits
        grad_b = dlogits.sum(axis=0)
        if self.gradient == "discrete":
            adj = discrete.backprop(tape, self._vjp_tya, dlogits @ self.W_out.T,
                                    self.field.n_params, **step_bars)
        elif self._on_path:
            adj = trajectory.backward(
                self.field, h1, dlogits @ self.W_out.T, self.reg, self.lam / len(X), t_span,
                param_sizes=self._param_sizes, rtol=self.adjoint_rtol, atol=self.adjoint_atol,
                controller=self.controller, norm=self.adjoint_norm, max_steps=self.max_steps,
                **self._path_options())
        else:
            adj = adjoint_solve(self._f_and_vjp_tya, h1, dlogits @ self.W_out.T, t_span,
                                param_sizes=self._param_sizes, rtol=self.adjoint_rtol,
                                atol=self.adjoint_atol, controller=self.controller,
                                norm=self.adjoint_norm, max_steps=self.max_steps,
                                augmented_rhs=self.field._augmented_rhs(h1.shape))
        grad_field = adj.dL_dtheta
        loss_reg, g_theta, kappa, extra = self._t0_terms(h0, need_grad=True)
        if g_theta is not None:
            grad_field = grad_field + g_theta
        if self._on_path:
            loss_reg = self.lam * path_integral
        if self.reg in STEP_ONLY:
            loss_reg = self.lam * step_penalty
        stats = {"nfe_forward": nfe_forward, "nfe_backward": adj.nfe, "loss_data": loss_data,
                 "loss_reg": loss_reg, "kappa": float(kappa.mean()),
                 "n_correct": int(np.sum(np.argmax(logits, axis=1) == y)),
                 "dL_dx": adj.dL_dh0[:, :self.in_dim],
                 "reconstruction_error": float(np.max(np.abs(adj.h0 - h0))), **extra}
        if self.gradient == "discrete":
            stats["steps"] = tape.steps   # the frozen discretisation the gradient is exact for
        grad = np.concatenate([grad_field, grad_W.ravel(), grad_b])
        return loss_data + loss_reg, grad, stats

    def loss(self, X, y, *, steps=None, t1=None):
        """The loss of :meth:`loss_and_grad` without gradients (forward solve only).

        With ``steps`` (a :class:`odejac.discrete.StepSequence`) the solve replays those steps
        instead of adapting: finite differences then see the discrete computation.
        """
        X, y = self._check_X(X, y)
        h0, t_span = self.initial_state(X), self._t_span(t1)
        if self._on_path:
            h1, path_integral, _ = trajectory.forward(
                self.field, h0, self.reg, t_span, rtol=self.rtol, atol=self.atol,
                controller=self.controller, max_steps=self.max_steps, **self._path_options())
            return _softmax_xent(h1 @ self.W_out + self.b_out, y)[0] + self.lam * path_integral
        if self.reg in STEP_ONLY:   # the adaptive grid (or ``steps``) replayed with its R_E
            h1, step_penalty = solver_error.solve(self._f_ty, h0, t_span, steps, **self._tols())
            return _softmax_xent(h1 @ self.W_out + self.b_out, y)[0] + self.lam * step_penalty
        h1 = self._solve(h0, t_span)[0] if steps is None else discrete.replay(self._f_ty, h0, steps)
        loss, _ = _softmax_xent(h1 @ self.W_out + self.b_out, y)
        if self.reg != "none":
            loss += self._t0_terms(h0, need_grad=False, need_kappa=False)[0]
        return loss

    def _tols(self):
        return dict(rtol=self.rtol, atol=self.atol, controller=self.controller,
                    max_steps=self.max_steps)

    @staticmethod
    def _t_span(t1):
        """``(t0, t1)``: the classifier's interval, or one ending at a finite ``t1 > t0``."""
        if t1 is None:
            return T_SPAN
        t1 = float(t1)
        if not (np.isfinite(t1) and t1 > T_SPAN[0]):
            raise ValueError(f"end time t1 must be a finite number > {T_SPAN[0]}; got {t1!r}")
        return (T_SPAN[0], t1)
