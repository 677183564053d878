"""Dormand–Prince 5(4) and the adjoint method in plain NumPy: the version to read first.

Everything ``odejac`` computes for an ODE is here in one page, top to bottom: the stages, the
error estimate, the step-size controller, the dense output, the driver that counts function
evaluations, and the adjoint solve of ``[h, a, g]`` backwards. The fast path
(:func:`odejac.odeint` over the jitted kernels of ``odejac/_dp5.py``, and
:func:`odejac.adjoint_solve`) does the same arithmetic with fused loops and fault handling;
``tests/test_reference.py`` checks that both give the same NFE, steps and gradients. Missing
here on purpose: step-size underflow and non-finite checks, and torchdiffeq's one-ulp
perturbation of the ``c = 1`` stage times (it only matters for fields with a jump in ``t``).
Formulas: ``docs/dormand_prince.md`` (solver) and ``docs/adjoint.md`` (gradients).
"""
import numpy as np

from .tableau import DOPRI5

A, B, C, C_MID = DOPRI5.A, DOPRI5.b, DOPRI5.c, DOPRI5.c_mid
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0     # as SciPy's rk.py names them
EXPONENT = 1.0 / (DOPRI5.error_order + 1)           # err ≈ C h^(q+1), q = 4: 1/5
PI_BETA = 0.04                                      # Hairer's DOPRI5: β, and α = 1/5 − 0.75 β
PI_ALPHA = EXPONENT - 0.75 * PI_BETA
PI_FLOOR = 1e-4                                     # r_{n−1} before the first step, and floor


def rms(x, groups):
    """Max over the parts ``x[groups[i]:groups[i+1]]`` of their RMS norms (one part: RMS)."""
    parts = zip(groups[:-1], groups[1:])
    return max(np.sqrt(x[lo:hi] @ x[lo:hi] / (hi - lo)) for lo, hi in parts)


def initial_step(f, t0, y0, f0, rtol, atol, groups, clip, sign=1.0):
    """|h| by Hairer, Nørsett & Wanner II.4 (docs (4.1)); ``clip``: the interval (SciPy)."""
    sc = atol + np.abs(y0) * rtol
    d0, d1 = rms(y0 / sc, groups), rms(f0 / sc, groups)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, clip)
    d2 = rms((f(t0 + sign * h0, y0 + (sign * h0) * f0) - f0) / sc, groups) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** EXPONENT
    return min(100 * h0, h1, clip)


def step(f, t, y, K0, h, scipy):
    """One attempt: the seven stages (docs (1.1)); FSAL: the last stage point is y_new."""
    K = [K0]
    for s in range(1, 7):
        if scipy:                      # SciPy sums the stages, then scales by h ...
            Y = y + sum(A[s, j] * K[j] for j in range(s)) * h
        else:                          # ... torchdiffeq scales each coefficient first
            Y = y + sum((A[s, j] * h) * K[j] for j in range(s))
        K.append(f(t + C[s] * h, Y))
    return Y, np.array(K)


def factor(ratio, scipy, after_rejection):
    """The I controller ``0.9 r^(-1/5)`` with each peer's limits (docs (3.2))."""
    if ratio == 0:
        raw = MAX_FACTOR
    else:                              # the same formula, rounded as each peer writes it
        raw = SAFETY * ratio ** -EXPONENT if scipy else SAFETY / ratio ** EXPONENT
    if scipy and ratio < 1:
        return min(MAX_FACTOR, raw, 1.0 if after_rejection else MAX_FACTOR), True
    if scipy:
        return max(MIN_FACTOR, raw), False
    return min(MAX_FACTOR, max(1.0 if ratio < 1 else MIN_FACTOR, raw)), ratio <= 1


def pi_factor(ratio, prev_ratio, after_rejection):
    """Hairer's DOPRI5 PI controller ``0.9 r_n^(−α) r_{n−1}^β`` (docs (3.4)); (factor, ok)."""
    if ratio == 0:
        return MAX_FACTOR, True
    if ratio <= 1:
        fac = SAFETY * ratio ** -PI_ALPHA * prev_ratio ** PI_BETA
        fac = min(MAX_FACTOR, max(MIN_FACTOR, fac))
        return (min(1.0, fac) if after_rejection else fac), True
    return max(MIN_FACTOR, SAFETY * ratio ** -PI_ALPHA), False


def dense_output(y0, y1, y_mid, f0, f1, h, x):
    """Shampine's quartic through y0, y_mid, y1 with slopes h f0, h f1 (docs (5.1))."""
    a = 2 * h * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b = h * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c = h * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    return y0 + x * h * f0 + x ** 2 * c + x ** 3 * b + x ** 4 * a


def solve(f, y0, t_span, rtol, atol, controller="torchdiffeq", groups=None):
    """Integrate ``y' = f(t, y)`` for a flat ``y0``; returns ``(y1, nfe, steps)``.

    ``steps`` lists every accepted step as ``(t, h, y, y_new, K)``: enough for the dense
    output anywhere on it. Backwards (``t1 < t0``) the step ``h`` is simply negative.
    ``controller="pi"`` is Hairer's DOPRI5: SciPy's arithmetic and clipped last step, the PI
    step-size rule and acceptance at r ≤ 1 (no peer count to match; docs §3).
    """
    pi = controller == "pi"
    scipy = controller in ("scipy", "pi")
    (t0, t1), y = t_span, np.array(y0, dtype=float)
    groups = [0, y.size] if groups is None else groups
    sign = np.sign(t1 - t0)
    K0 = f(t0, y)
    h = sign * initial_step(f, t0, y, K0, rtol, atol, groups,
                            abs(t1 - t0) if scipy else np.inf, sign)
    nfe, t, after_rejection, steps, prev_ratio = 2, t0, False, [], PI_FLOOR
    while sign * (t1 - t) > 0:
        t_new = t + h
        if scipy:                                 # SciPy clips the last step to t1 and
            t_new = t1 if sign * (t_new - t1) > 0 else t_new
            h = t_new - t                         # steps by the rounded difference
        y_new, K = step(f, t, y, K0, h, scipy)
        nfe += 6
        # err = h Σ e_j K_j (docs (2.1)) cancels heavily, so it is summed left to right
        # in each peer's order, as the driver does: the same rounding, the same steps.
        if scipy:
            err = sum(DOPRI5.e_scipy[j] * K[j] for j in range(7)) * h
        else:
            err = sum((DOPRI5.e_shampine[j] * h) * K[j] for j in range(7))
        ratio = rms(err / (atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol), groups)
        if pi:
            fac, accepted = pi_factor(ratio, prev_ratio, after_rejection)
            prev_ratio = max(ratio, PI_FLOOR) if accepted else prev_ratio
        else:
            fac, accepted = factor(ratio, scipy, after_rejection)
        if accepted:
            steps.append((t, h, y, y_new, K))
            t, y, K0, after_rejection = t_new, y_new, K[6], False
        else:
            after_rejection = True
        h = h * fac
    if not scipy:                                 # torchdiffeq stepped past t1: interpolate
        t, h, y0_, y1_, K = steps[-1]
        h_rounded = (t + h) - t
        y_mid = y0_ + sum((C_MID[j] * h) * K[j] for j in range(7))   # the half-step point
        y = dense_output(y0_, y1_, y_mid, K[0], K[6], h_rounded,
                         (t1 - t) / h_rounded)
    return y, nfe, steps


def adjoint(f_and_vjp, h1, dL_dh1, t_span, param_sizes, rtol, atol, controller="torchdiffeq",
            norm="mixed"):
    """``(dL/dh0, dL/dθ, h̃(t0), nfe, steps)`` from ``[h, a, g]`` solved t1 → t0 (docs (3.1)).

    ``f_and_vjp(t, h, a) -> (f, Jᵀa, (∂f/∂θ)ᵀa)``. ``norm``: "mixed" (one RMS norm per part
    and parameter block, the largest counts), "seminorm" (h and a only) or "rms" (all).
    """
    shape, n = h1.shape, h1.size

    def augmented(t, z):                          # d/dt [h, a, g] = [f, −aᵀ∂f/∂h, −aᵀ∂f/∂θ]
        f, vjp_h, vjp_theta = f_and_vjp(t, z[:n].reshape(shape), z[n:2 * n].reshape(shape))
        return np.concatenate([np.ravel(f), -np.ravel(vjp_h), -vjp_theta])

    z1 = np.concatenate([h1.ravel(), dL_dh1.ravel(), np.zeros(sum(param_sizes))])
    groups = {"mixed": np.cumsum([0, n, n, *param_sizes]), "seminorm": [0, n, 2 * n],
              "rms": [0, z1.size]}[norm]
    z0, nfe, steps = solve(augmented, z1, t_span[::-1], rtol, atol, controller, groups)
    return z0[n:2 * n].reshape(shape), z0[2 * n:], z0[:n].reshape(shape), nfe, steps
