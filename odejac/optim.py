"""Adam with bias correction, on one flat float64 parameter array.

Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Algorithm 1, in the form
PyTorch's ``torch.optim.Adam`` uses by default (no weight decay, no AMSGrad), at step ``t``::

    m  = β₁ m + (1 − β₁) g            v  = β₂ v + (1 − β₂) g²
    m̂  = m / (1 − β₁ᵗ)                v̂  = v / (1 − β₂ᵗ)
    θ ← θ − lr · m̂ / (sqrt(v̂) + eps)

``eps`` is added AFTER the square root of the bias-corrected ``v̂`` (PyTorch), not inside it.
"""
import numbers

import numpy as np

DEFAULT_LR = 1e-3
DEFAULT_BETAS = (0.9, 0.999)
DEFAULT_EPS = 1e-8  # keeps the step finite when v̂ = 0 (a parameter that never had gradient)

_STATE_KEYS = ("lr", "beta1", "beta2", "eps", "t", "m", "v")


def _check_hyper(lr, betas, eps):
    """``(lr, β₁, β₂, eps)`` as floats, or ValueError naming the bad one."""
    if not (isinstance(lr, numbers.Real) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite real > 0; got {lr!r}")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}") from None
    for i, beta in enumerate((beta1, beta2), start=1):
        if not (isinstance(beta, numbers.Real) and 0.0 <= beta < 1.0):
            raise ValueError(f"beta{i} must satisfy 0 <= beta{i} < 1; got {beta!r}")
    if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite real > 0; got {eps!r}")
    return float(lr), float(beta1), float(beta2), float(eps)


def _first_bad(name, arr, t):
    """ValueError text for the non-finite entries of ``arr`` (count and first flat index)."""
    bad = np.flatnonzero(~np.isfinite(arr))
    return (f"{name} has {bad.size} non-finite entries (first at flat index {bad[0]})"
            f" at step {t + 1}")


class Adam:
    """Bias-corrected Adam on a single float64 parameter array of any fixed shape.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    betas : tuple of float
        ``(β₁, β₂)``, each in ``[0, 1)``: decay rates of the first and second moment averages.
    eps : float
        Denominator offset, > 0, added after ``sqrt(v̂)``.

    Attributes
    ----------
    t : int
        Number of steps taken (the ``t`` in ``β₁ᵗ``).
    m, v : ndarray or None
        First and second moment averages, shaped like θ; None before the first step (their
        shape is fixed by the first ``theta`` seen).

    Examples
    --------
    >>> opt = Adam(lr=0.1)
    >>> theta = opt.step(np.array([1.0, -2.0]), np.array([0.5, -0.5]))  # each entry moves by lr
    """

    def __init__(self, lr=DEFAULT_LR, betas=DEFAULT_BETAS, eps=DEFAULT_EPS):
        self.lr, self.beta1, self.beta2, self.eps = _check_hyper(lr, betas, eps)
        self.t = 0
        self.m = None
        self.v = None

    def step(self, theta, grad):
        """One Adam update; returns the new θ and leaves ``theta`` untouched.

        Parameters
        ----------
        theta : array_like, shape P
            Current parameters (finite); ``P`` must match earlier steps.
        grad : array_like, shape P
            Gradient ``dL/dθ`` at ``theta`` (finite).

        Returns
        -------
        ndarray, shape P
            ``θ − lr · m̂ / (sqrt(v̂) + eps)``, float64.

        Raises
        ------
        ValueError
            Non-finite or mismatched ``theta``/``grad``; the optimizer state is then unchanged.
        """
        theta = np.asarray(theta, dtype=np.float64)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != theta.shape:
            raise ValueError(f"grad has shape {grad.shape} but theta has shape {theta.shape}")
        if self.m is not None and self.m.shape != theta.shape:
            raise ValueError(
                f"theta has shape {theta.shape} but the optimizer state is for {self.m.shape}"
            )
        if not np.isfinite(theta).all():
            raise ValueError(_first_bad("theta", theta, self.t))
        if not np.isfinite(grad).all():
            raise ValueError(_first_bad("grad", grad, self.t))
        if self.m is None:
            self.m = np.zeros_like(theta)
            self.v = np.zeros_like(theta)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        self.m = b1 * self.m + (1.0 - b1) * grad
        self.v = b2 * self.v + (1.0 - b2) * (grad * grad)
        m_hat = self.m / (1.0 - b1**self.t)
        v_hat = self.v / (1.0 - b2**self.t)
        return theta - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self):
        """Everything needed to continue bit-identically, as plain floats/ints/arrays (copies).

        Returns
        -------
        dict
            Keys ``lr, beta1, beta2, eps`` (float), ``t`` (int), ``m, v`` (float64 arrays; empty
            ``(0,)`` arrays before the first step), e.g. for ``np.savez(path, **state)``.
        """
        empty = np.zeros(0)
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "t": self.t,
            "m": empty if self.m is None else self.m.copy(),
            "v": empty if self.v is None else self.v.copy(),
        }

    def load_state_dict(self, state):
        """Restore hyper-parameters, step count and moments from ``state_dict()`` output.

        Accepts values read back from ``np.load`` (0-d arrays for the scalars). Raises
        ValueError for missing keys, invalid hyper-parameters or inconsistent moments.
        """
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"state is missing keys {missing}; expected {list(_STATE_KEYS)}")
        scalars = {k: np.asarray(state[k]).item() for k in ("lr", "beta1", "beta2", "eps", "t")}
        lr, beta1, beta2, eps = _check_hyper(
            scalars["lr"], (scalars["beta1"], scalars["beta2"]), scalars["eps"]
        )
        t = scalars["t"]
        if not (isinstance(t, numbers.Integral) and t >= 0):
            raise ValueError(f"t must be an integer >= 0; got {t!r}")
        m = np.array(state["m"], dtype=np.float64)  # copies: later steps must not alias `state`
        v = np.array(state["v"], dtype=np.float64)
        if t > 0:
            if m.shape != v.shape:
                raise ValueError(f"m has shape {m.shape} but v has shape {v.shape}")
            if not (np.isfinite(m).all() and np.isfinite(v).all() and (v >= 0).all()):
                raise ValueError("m and v must be finite and v >= 0")
        self.lr, self.beta1, self.beta2, self.eps, self.t = lr, beta1, beta2, eps, int(t)
        self.m, self.v = (m, v) if t > 0 else (None, None)


def clip_global_norm(grad, max_norm):
    """``grad`` rescaled to Euclidean norm at most ``max_norm``, and whether it was.

    Global-norm clipping (Pascanu, Mikolov & Bengio, 2013; ``torch.nn.utils.
    clip_grad_norm_``): every parameter is scaled by the same factor, so the
    direction of the gradient is kept and only its length is bounded.

    Parameters
    ----------
    grad : ndarray, shape P
        Finite gradient of the whole parameter vector.
    max_norm : float
        Largest allowed norm, finite and > 0.

    Returns
    -------
    clipped : ndarray, shape P
        ``grad`` itself when ``‖grad‖ <= max_norm``, else ``grad · max_norm / ‖grad‖``.
    was_clipped : bool
    """
    if not (isinstance(max_norm, numbers.Real) and np.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite real > 0; got {max_norm!r}")
    grad = np.asarray(grad, dtype=np.float64)
    norm = float(np.linalg.norm(grad))
    if not np.isfinite(norm):
        raise ValueError(f"grad has a non-finite norm ({norm}); cannot clip it")
    if norm <= max_norm:
        return grad, False
    return grad * (max_norm / norm), True
