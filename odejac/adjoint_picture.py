"""See the adjoint: h(t) forwards, the retraced h̃(t), a(t) and g(t) of one adjoint solve.

For a model and a batch this records the forward solve ``h(0) → h(1)`` and the adjoint solve
``[h, a, g](1) → (0)`` with :mod:`odejac.reference` (the plain-NumPy solver, which keeps every
accepted step; ``tests/test_reference.py`` checks that it takes the same steps as the fast path,
and the NFE of both are saved side by side), samples each step's dense output, and draws four
panels from the saved file:

1. ``h(t)`` forwards (solid) and ``h̃(t)`` retraced backwards (dashed), a few samples;
2. the reconstruction error ``max_i |h̃_i(t) − h_i(t)|``, growing from 0 at ``t1`` towards
   ``t0`` (``docs/adjoint.md`` §4);
3. the adjoint ``a(t)``, and 4. the parameter integral ``g(t)`` filling up — both with time
   running right to left, the way the backward solve runs.
"""

import numpy as np

from . import reference
from .io import save_and_plot, write_figure
from .model import T_SPAN, _softmax_xent

#: Samples of each accepted step's dense output (both ends included).
POINTS_PER_STEP = 9
#: Samples drawn in panels 1 and 3, and entries of g drawn in panel 4.
N_SAMPLES_SHOWN, N_PARAMS_SHOWN = 4, 6


def _sample_steps(steps, t_end, n_state):
    """``(t (M,), z (M, n_state))`` along the dense output of every accepted step."""
    ts, zs = [], []
    for t, h, y, y_new, K in steps:
        step = (t + h) - t
        y_mid = y + sum((reference.C_MID[j] * h) * K[j] for j in range(7))
        x_end = min(1.0, (t_end - t) / step)       # torchdiffeq's last step overshoots
        for x in np.linspace(0.0, x_end, POINTS_PER_STEP):
            ts.append(t + x * step)
            zs.append(reference.dense_output(y, y_new, y_mid, K[0], K[6], step, x)[:n_state])
    return np.array(ts), np.array(zs)


def _interpolate_forward(steps, t_query):
    """The forward dense output at any ``t`` of ``t_query`` (the step holding it)."""
    starts = np.array([s[0] for s in steps])
    out = []
    for tq in t_query:
        t, h, y, y_new, K = steps[max(0, np.searchsorted(starts, tq, side="right") - 1)]
        step = (t + h) - t
        y_mid = y + sum((reference.C_MID[j] * h) * K[j] for j in range(7))
        out.append(reference.dense_output(y, y_new, y_mid, K[0], K[6], step, (tq - t) / step))
    return np.array(out)


def record(model, X, y):
    """Everything the figure needs, JSON-ready, for ``model`` on the batch ``(X, y)``."""
    field = model.field
    h0 = model.initial_state(X)
    shape, n = h0.shape, h0.size
    f = lambda t, z: field._f(z.reshape(shape), t).ravel()
    h1, nfe_forward, fsteps = reference.solve(f, h0.ravel(), T_SPAN, model.rtol, model.atol,
                                              model.controller)
    h1 = h1.reshape(shape)
    loss, dlogits = _softmax_xent(h1 @ model.W_out + model.b_out, y)
    fv = lambda t, h, a: field._f_and_vjp(h, t, a)
    _, dL_dtheta, h0_retraced, nfe_backward, bsteps = reference.adjoint(
        fv, h1, dlogits @ model.W_out.T, T_SPAN, model._param_sizes, model.adjoint_rtol,
        model.adjoint_atol, model.controller, model.adjoint_norm)
    fast = model.loss_and_grad(X, y)[2]          # the fast path, for the same numbers
    t_f, z_f = _sample_steps(fsteps, T_SPAN[1], n)
    t_b, z_b = _sample_steps(bsteps, T_SPAN[0], 2 * n + model.field.n_params)
    h_true = _interpolate_forward(fsteps, t_b)
    show = np.arange(min(N_SAMPLES_SHOWN, shape[0]))
    pick = lambda z: z.reshape(len(z), *shape)[:, show].tolist()
    top = np.argsort(-np.abs(dL_dtheta))[:N_PARAMS_SHOWN]
    g = z_b[:, 2 * n:]
    return {
        "t_forward": t_f.tolist(), "h": pick(z_f[:, :n]),
        "t_backward": t_b.tolist(), "h_retraced": pick(z_b[:, :n]), "a": pick(z_b[:, n:2 * n]),
        "g_entries": g[:, top].tolist(), "g_index": top.tolist(),
        "g_norm": np.linalg.norm(g, axis=1).tolist(),
        "reconstruction_error_t": np.abs(z_b[:, :n] - h_true).max(axis=1).tolist(),
        "steps_forward": [s[0] + s[1] for s in fsteps],
        "steps_backward": [s[0] + s[1] for s in bsteps],
        "reconstruction_error": float(np.abs(h0_retraced - h0).max()),
        "nfe_forward": nfe_forward, "nfe_backward": nfe_backward,
        "nfe_forward_fast": fast["nfe_forward"], "nfe_backward_fast": fast["nfe_backward"],
        "reconstruction_error_fast": fast["reconstruction_error"],
        "loss_data": float(loss), "batch": int(shape[0]),
        "tolerances": [model.rtol, model.atol, model.adjoint_rtol, model.adjoint_atol],
        "controller": model.controller, "adjoint_norm": model.adjoint_norm,
    }


def plot(results, path):
    """The four panels, from saved results, into ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    (ax_h, ax_err), (ax_a, ax_g) = axes
    t_f, t_b = np.array(results["t_forward"]), np.array(results["t_backward"])
    h, h_r, a = (np.array(results[k]) for k in ("h", "h_retraced", "a"))
    for i in range(h.shape[1]):
        for d in range(min(2, h.shape[2])):
            colour = f"C{(2 * i + d) % 10}"
            ax_h.plot(t_f, h[:, i, d], color=colour, lw=1.5)
            ax_h.plot(t_b, h_r[:, i, d], color=colour, lw=1.2, ls="--")
            ax_a.plot(t_b, a[:, i, d], color=colour, lw=1.2)
    ax_h.set_title("h(t) forwards (solid), h̃(t) retraced backwards (dashed)")
    ax_h.set_xlabel("t")
    for t in results["steps_forward"]:
        ax_h.axvline(t, color="grey", lw=0.4)
    ax_h.set_xlim(min(T_SPAN), max(T_SPAN))      # torchdiffeq's last step ends past t1
    err = np.maximum(np.array(results["reconstruction_error_t"]), 1e-17)
    ax_err.semilogy(t_b, err, color="C3")
    ax_err.set_title(f"reconstruction error max|h̃(t) − h(t)| (at t0: "
                     f"{results['reconstruction_error']:.1e})")
    ax_a.set_title("adjoint a(t) = ∂L/∂h(t)")
    ax_g.plot(t_b, np.array(results["g_entries"]), lw=1.0)
    ax_g.plot(t_b, results["g_norm"], "k", lw=2, label="‖g(t)‖")
    ax_g.set_title(f"parameter integral g(t) filling up ({len(results['g_index'])} largest "
                   "entries)")
    ax_g.legend(fontsize=8)
    for ax in (ax_err, ax_a, ax_g):                 # the backward solve runs from t1 to t0
        ax.set_xlim(max(T_SPAN), min(T_SPAN))
        ax.set_xlabel("t  (← the adjoint solve runs right to left)")
        for t in results["steps_backward"]:
            ax.axvline(t, color="grey", lw=0.4)
    tol = results["tolerances"]
    fig.suptitle(f"one adjoint solve: batch {results['batch']}, {results['controller']}, "
                 f"tol {tol[0]:g} / adjoint {tol[2]:g}, NFE {results['nfe_forward']} forward, "
                 f"{results['nfe_backward']} backward (grey: step ends)")
    fig.tight_layout()
    write_figure(path, fig, dpi=110)     # rendered first, then written atomically


def save(results, json_path, figure_path=None):
    """Write the results as JSON and (optionally) draw the figure from the saved file."""
    save_and_plot(results, json_path, figure_path, plot)
