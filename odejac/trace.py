"""Where does the solver work hard? Step logs of one forward and one adjoint solve.

For a model before and after training, on the first ``batch_size`` training points, this
records every step attempt of the forward solve ``h(0) → h(1)`` and of the adjoint solve
``[h, a, g](1) → [h, a, g](0)``: the time, the step tried, the error ratio
``‖err / (atol + rtol·max(|y|, |y_new|))‖`` (a step is accepted when it is ≤ 1 for
torchdiffeq, < 1 for SciPy), accepted or rejected, and the NFE so far (``2 + 6·attempts``; see
``docs/dormand_prince.md``). Small steps mark where the field changes fast along the
trajectories; training bends the trajectories to separate the classes, so the field grows
stiffer and the step count — the NFE — rises from epoch to epoch (the third panel of the
figure, drawn from the training history).
"""
import os

import numpy as np
from ._threads import blas_threads

from .adjoint import adjoint_solve
from .gradcheck import load_run
from .integrate import LOG_COLUMNS, odeint
from .io import read_json, save_and_plot, write_figure
from .model import T_SPAN, _softmax_xent
from .train import build_model, fit, load_data, new_state


def solve_logs(model, X, y):
    """Step logs of one forward and one adjoint solve of ``model`` on ``(X, y)``.

    Returns
    -------
    dict
        ``forward`` and ``adjoint``: ``(attempts, 5)`` logs (:data:`odejac.LOG_COLUMNS`; the
        adjoint's ``t`` decreases and its ``h`` is negative), ``nfe_forward``,
        ``nfe_backward``, the loss and ``reconstruction_error`` ``max|h̃(t0) − h(t0)|``.
    """
    field = model.field
    h0 = model.initial_state(X)
    with blas_threads():
        sol = odeint(lambda t, h: field._f(h, t), h0, T_SPAN, rtol=model.rtol, atol=model.atol,
                     controller=model.controller, max_steps=model.max_steps, record=True)
        loss, dlogits = _softmax_xent(sol.y @ model.W_out + model.b_out, y)
        adj = adjoint_solve(model._f_and_vjp_tya, sol.y, dlogits @ model.W_out.T, T_SPAN,
                            param_sizes=model._param_sizes, rtol=model.adjoint_rtol,
                            atol=model.adjoint_atol, controller=model.controller,
                            norm=model.adjoint_norm, max_steps=model.max_steps, record=True)
    return {"forward": sol.log, "adjoint": adj.log, "nfe_forward": sol.nfe,
            "nfe_backward": adj.nfe, "loss_data": loss,
            "reconstruction_error": float(np.max(np.abs(adj.h0 - h0)))}


def trace(config, *, run_dir=None):
    """Logs of the initial and the trained model of ``config`` (or of a saved run).

    Without ``run_dir`` the model is trained for ``config.epochs`` epochs in memory first.
    Returns a JSON-ready dict with ``initial``, ``trained`` (see :func:`solve_logs`), the
    per-epoch training ``history`` (NFE and loss; empty if a run directory has none) and
    the config.
    """
    if run_dir is not None:
        config, trained = load_run(run_dir)
        data = load_data(config)
        history_path = os.path.join(run_dir, "history.json")
        history = read_json(history_path) if os.path.exists(history_path) else []
    else:
        data = load_data(config)
        state = new_state(config, data.X_train.shape[1], data.n_classes)
        fit(state, config, data.X_train, data.y_train)
        trained, history = state.model, state.history
    initial = build_model(config, data.X_train.shape[1], data.n_classes)
    n = min(config.batch_size, len(data.X_train))
    X, y = data.X_train[:n], data.y_train[:n]
    keep = ("epoch", "loss", "train_accuracy", "nfe_forward", "nfe_backward")
    return {"config": config.to_dict(), "run_dir": run_dir, "batch": n,
            "columns": list(LOG_COLUMNS),
            "initial": solve_logs(initial, X, y), "trained": solve_logs(trained, X, y),
            "history": [{k: r[k] for k in keep if k in r} for r in history]}


# ----------------------------------------------------------------------- text and figure

def format_log(log, title):
    """A step log as a table: one line per attempt."""
    log = np.asarray(log, dtype=np.float64).reshape(-1, len(LOG_COLUMNS))
    accepted = int(log[:, 3].sum())
    lines = [f"{title}: {len(log)} attempts, {accepted} accepted, {len(log) - accepted} "
             f"rejected, NFE {int(log[-1, 4]) if len(log) else 0}",
             "     #          t           h   err.ratio   step       NFE"]
    for i, (t, h, ratio, ok, nfe) in enumerate(log):
        lines.append(f"  {i:4d}  {t:9.6f}  {h:+10.3e}  {ratio:10.3e}   "
                     f"{'accept' if ok else 'REJECT'}  {int(nfe):8d}")
    return "\n".join(lines)


def format_trace(results):
    """Every log of :func:`trace`'s results, with a summary line per model."""
    parts = []
    for name in ("initial", "trained"):
        r = results[name]
        parts.append(f"== {name} model: loss {r['loss_data']:.4f}, NFE forward "
                     f"{r['nfe_forward']}, backward {r['nfe_backward']}, reconstruction error "
                     f"max|h̃(t0) − h(t0)| = {r.get('reconstruction_error', float('nan')):.1e} ==")
        parts.append(format_log(r["forward"], "forward solve h(0) → h(1)"))
        parts.append(format_log(r["adjoint"], "adjoint solve [h, a, g](1) → (0)"))
    if results["history"]:
        first, last = results["history"][0], results["history"][-1]
        parts.append(f"training: NFE forward/backward per batch {first['nfe_forward']:.0f}/"
                     f"{first['nfe_backward']:.0f} in epoch {first['epoch']} → "
                     f"{last['nfe_forward']:.0f}/{last['nfe_backward']:.0f} in epoch "
                     f"{last['epoch']}")
    return "\n\n".join(parts)


def plot(results, path):
    """Step sizes over t (forward, adjoint) and NFE over epochs, from saved results."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if results["history"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8))
    for ax, solve in zip(axes, ("forward", "adjoint")):
        for colour, name in (("C0", "initial"), ("C3", "trained")):
            log = np.asarray(results[name][solve], dtype=np.float64)
            ok = log[:, 3] == 1
            # Each accepted attempt drawn over the interval it covers, at height |h|.
            for t, h in log[ok, :2]:
                ax.plot([t, t + h], [abs(h)] * 2, color=colour, lw=2)
            ax.plot(log[ok, 0], np.abs(log[ok, 1]), "o", color=colour, ms=3,
                    label=f"{name}: {int(ok.sum())} steps, NFE {int(log[-1, 4])}")
            if (~ok).any():
                ax.plot(log[~ok, 0], np.abs(log[~ok, 1]), "x", color=colour, ms=6,
                        label=f"{name}: rejected")
        # torchdiffeq steps past the end and reads y at the end off the dense output.
        lo, hi = ax.get_xlim()
        ax.axvspan(lo, min(T_SPAN), color="grey", alpha=0.12, lw=0)
        ax.axvspan(max(T_SPAN), hi, color="grey", alpha=0.12, lw=0)
        ax.set_xlim(lo, hi)
        ax.set_yscale("log")
        ax.set_xlabel("t (grey: overshoot past the interval)")
        ax.set_ylabel("|h| (step size)")
        ax.set_title(f"{solve} solve" + (" (runs from t=1 to 0)" if solve == "adjoint" else ""))
        ax.legend(fontsize=7)
    if results["history"]:
        ax = axes[2]
        epochs = [r["epoch"] for r in results["history"]]
        ax.plot(epochs, [r["nfe_forward"] for r in results["history"]], label="forward")
        ax.plot(epochs, [r["nfe_backward"] for r in results["history"]], label="adjoint")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NFE per batch (mean)")
        ax.set_title("NFE during training")
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure(path, fig, dpi=120)     # rendered first, then written atomically


def save(results, json_path, figure_path=None):
    """Write the results as JSON and (optionally) draw the figure from the saved file."""
    save_and_plot(results, json_path, figure_path, plot)
