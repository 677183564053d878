"""How good is each gradient? Adjoint and discrete gradients against finite differences.

For one model and one batch, at every tolerance ``tol`` (``rtol = atol = tol`` for the forward
and the backward solve) this measures

* the **adjoint** gradient (:func:`odejac.adjoint.adjoint_solve`, optimise-then-discretise) and
  the **discrete** gradient (:mod:`odejac.discrete`, discretise-then-optimise), each against a
  reference: 5-point central differences of the loss solved at the tight tolerance ``fd_tol``,
  i.e. the gradient of the exact ODE's loss up to the reference's own error;
* the discrete gradient against 5-point differences of the *same discrete computation with
  the step sequence frozen* (:func:`odejac.discrete.replay`): it is exact, so only round-off
  and the stencil's truncation remain;
* their cost: NFE of the forward solve, of the backward solve (adjoint) or of the VJP sweep
  (discrete, ``6 N + 1``), and the wall time of one gradient (best of ``repeats``).

Finite differences of every coordinate would cost ``4 P`` solves, so the gradient is probed
along ``M`` unit vectors ``V`` (random directions and random coordinates) and the error is the
norm-wise ``‖V g − d‖ / ‖d‖`` over the ``M`` directional derivatives ``d``. Each row also
reports the adjoint's reconstruction error ``max|h̃(t0) − h(t0)|`` (``docs/adjoint.md`` §4).

Before any of this, a hand-written field's VJP can be checked on its own: :func:`check_vjp`
compares ``f_and_vjp`` with central differences of ``f`` (``docs/exercises.md``).
"""
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
from ._threads import blas_threads

from .io import read_json, read_npz, save_and_plot, write_figure
from .train import TrainConfig, build_model, fit, load_data, new_state

#: Tolerances of the table, loose to tight.
DEFAULT_TOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
#: Coefficients of the 5-point central difference f'(0) ≈ Σ_k c_k f(k ε) / ε (error O(ε⁴)).
STENCIL = {2: -1.0 / 12.0, 1: 8.0 / 12.0, -1: -8.0 / 12.0, -2: 1.0 / 12.0}


@dataclass(frozen=True)
class GradcheckOptions:
    """Settings of one gradient check (saved with its results).

    Attributes
    ----------
    tols : tuple of float
        Tolerances of the rows.
    fd_tol : float
        Tolerance of the solves inside the reference finite differences.
    fd_step : float
        Stencil step ε along unit probe vectors.
    n_directions, n_coords : int
        Random unit directions and random coordinate axes probed.
    repeats : int
        Each gradient is timed this many times; the best time is kept.
    seed : int
        Seeds the probes.
    """

    tols: tuple = DEFAULT_TOLS
    fd_tol: float = 1e-12
    fd_step: float = 1e-3
    n_directions: int = 4
    n_coords: int = 4
    repeats: int = 3
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "tols", tuple(float(t) for t in self.tols))
        if not self.tols:
            raise ValueError("tols must not be empty")
        for name, values in (("tols", self.tols), ("fd_tol", [self.fd_tol]),
                             ("fd_step", [self.fd_step])):
            if not all(np.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"{name} must be positive finite numbers; got {values!r}")
        for name, low in (("n_directions", 0), ("n_coords", 0), ("repeats", 1), ("seed", 0)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {getattr(self, name)!r}")
        if self.n_directions + self.n_coords < 1:
            raise ValueError("need at least one probe (n_directions + n_coords >= 1)")


def probe_vectors(n_params, n_directions, n_coords, seed):
    """``(M, P)`` unit vectors: random Gaussian directions, then distinct random axes."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(n_directions, n_params))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    axes = np.zeros((min(n_coords, n_params), n_params))
    axes[np.arange(len(axes)), rng.choice(n_params, size=len(axes), replace=False)] = 1.0
    return np.vstack([V, axes])


def fd_directional(loss, theta, V, step):
    """5-point central differences ``d_m ≈ ∂/∂ε loss(θ + ε v_m)`` at ε = 0, shape ``(M,)``."""
    return np.array([sum(c * loss(theta + k * step * v) for k, c in STENCIL.items()) / step
                     for v in V])


def relative_error(grad, V, reference):
    """Norm-wise relative error ``‖V g − d‖ / ‖d‖`` of a gradient's directional derivatives."""
    return float(np.linalg.norm(V @ grad - reference) / np.linalg.norm(reference))


def _set_tolerance(model, tol):
    model.rtol = model.atol = model.adjoint_rtol = model.adjoint_atol = float(tol)


def _loss_at(model, X, y, steps=None):
    theta0 = model.theta

    def loss(theta):
        model.theta = theta
        try:
            return model.loss(X, y, steps=steps)
        finally:
            model.theta = theta0
    return loss


def _timed_gradient(model, X, y, mode, repeats):
    model.gradient = mode
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        _, grad, stats = model.loss_and_grad(X, y)
        best = min(best, time.perf_counter() - start)
    return grad, stats, best


def run(model, X, y, options=GradcheckOptions(), *, progress=None):
    """The gradient check of ``model`` on ``(X, y)``; returns a JSON-ready dict.

    ``model``'s tolerances and gradient mode are changed and restored. ``progress(str)`` is
    called with a line per finished row.
    """
    saved = (model.rtol, model.atol, model.adjoint_rtol, model.adjoint_atol, model.gradient)
    theta = model.theta
    V = probe_vectors(theta.size, options.n_directions, options.n_coords, options.seed)
    rows = []
    try:
        with blas_threads():
            _set_tolerance(model, options.fd_tol)
            model.loss_and_grad(X, y)                        # warm up the jitted driver
            start = time.perf_counter()
            reference = fd_directional(_loss_at(model, X, y), theta, V, options.fd_step)
            # The reference's own accuracy: the same differences with twice the step.
            check = fd_directional(_loss_at(model, X, y), theta, V, 2 * options.fd_step)
            fd_seconds = time.perf_counter() - start
            for tol in options.tols:
                _set_tolerance(model, tol)
                g_adj, s_adj, t_adj = _timed_gradient(model, X, y, "adjoint", options.repeats)
                g_dis, s_dis, t_dis = _timed_gradient(model, X, y, "discrete", options.repeats)
                frozen_loss = _loss_at(model, X, y, steps=s_dis["steps"])
                frozen = fd_directional(frozen_loss, theta, V, options.fd_step)
                # The frozen reference's own error, as for the tight reference above.
                frozen_check = fd_directional(frozen_loss, theta, V, 2 * options.fd_step)
                rows.append({
                    "tol": tol, "nfe_forward": s_adj["nfe_forward"],
                    "n_steps": len(s_dis["steps"]),
                    "adjoint": {"nfe_backward": s_adj["nfe_backward"], "seconds": t_adj,
                                "rel_error": relative_error(g_adj, V, reference),
                                "reconstruction_error": s_adj["reconstruction_error"]},
                    "discrete": {"nfe_backward": s_dis["nfe_backward"], "seconds": t_dis,
                                 "rel_error": relative_error(g_dis, V, reference),
                                 "rel_error_frozen": relative_error(g_dis, V, frozen),
                                 "frozen_self_error": float(np.linalg.norm(frozen - frozen_check)
                                                            / np.linalg.norm(frozen))},
                    "adjoint_vs_discrete": float(np.linalg.norm(g_adj - g_dis)
                                                 / np.linalg.norm(g_dis)),
                })
                if progress is not None:
                    progress(format_row(rows[-1]))
    finally:
        model.rtol, model.atol, model.adjoint_rtol, model.adjoint_atol, model.gradient = saved
    return {"options": asdict(options), "n_params": int(theta.size), "batch": int(len(X)),
            "n_probes": int(len(V)),
            "reference_self_error": float(np.linalg.norm(reference - check)
                                          / np.linalg.norm(reference)),
            "fd_seconds": fd_seconds, "rows": rows}


# ----------------------------------------------------------------------- table and figure

_HEADER = ("   tol   NFE fwd │ adjoint: NFE bwd   ms    rel.err   |h̃0-h0| │ "
           "discrete: NFE bwd   ms    rel.err  vs frozen FD")
RULE = "─" * len(_HEADER)


def format_row(row):
    adj, dis = row["adjoint"], row["discrete"]
    return (f"{row['tol']:6.0e}  {row['nfe_forward']:7d} │ {adj['nfe_backward']:15d} "
            f"{adj['seconds'] * 1e3:6.1f}  {adj['rel_error']:8.1e}  "
            f"{adj.get('reconstruction_error', float('nan')):8.1e} │ "
            f"{dis['nfe_backward']:16d} {dis['seconds'] * 1e3:6.1f}  {dis['rel_error']:8.1e}  "
            f"{dis['rel_error_frozen']:11.1e}")


def format_table(results):
    """The table of :func:`run`'s results as text: header, rows and :func:`format_footer`."""
    return "\n".join([_HEADER, RULE, *(format_row(row) for row in results["rows"]),
                      format_footer(results)])


def format_footer(results):
    """What the columns mean (printed once under the rows, which the CLI streams)."""
    opts = results["options"]
    lines = []
    lines.append(
        f"rel.err = ‖V g − d‖/‖d‖ over {results['n_probes']} unit probes (d: 5-point central "
        f"differences, ε = {opts['fd_step']:g}, solves at tol {opts['fd_tol']:g}; their own "
        f"error ≈ {results['reference_self_error']:.1e}); vs frozen FD: the same with the "
        f"discrete computation's steps frozen. |h̃0-h0|: the adjoint's reconstruction error "
        f"max|h̃(t0) − h(t0)|. {results['n_params']} parameters, batch {results['batch']}.")
    return "\n".join(lines)


def plot(results, path):
    """Errors and costs against the tolerance, from saved results, into ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    tol = np.array([r["tol"] for r in rows])
    fig, (ax_err, ax_cost) = plt.subplots(1, 2, figsize=(11, 5))   # legend below the errors
    ax_err.loglog(tol, [r["adjoint"]["rel_error"] for r in rows], "o-", label="adjoint vs FD")
    ax_err.loglog(tol, [r["discrete"]["rel_error"] for r in rows], "s-", label="discrete vs FD")
    ax_err.loglog(tol, [r["discrete"]["rel_error_frozen"] for r in rows], "^--", color="C2",
                  label="discrete vs FD, steps frozen")
    # Each reference's own error (|d(ε) − d(2ε)|/‖d‖, an upper estimate: the O(ε⁴) truncation
    # at 2ε is 16× that at ε) bounds only the curves measured against that reference.
    ax_err.axhline(results["reference_self_error"], color="grey", lw=0.8, ls=":",
                   label="tight FD reference, ε vs 2ε (bounds the two 'vs FD' curves)")
    if all("frozen_self_error" in r["discrete"] for r in rows):
        ax_err.loglog(tol, [r["discrete"]["frozen_self_error"] for r in rows], ":",
                      color="C2", lw=0.8, label="frozen FD, ε vs 2ε (bounds 'steps frozen')")
    ax_err.set_xlabel("tolerance (rtol = atol)")
    ax_err.set_ylabel("relative error of the gradient")
    ax_err.invert_xaxis()
    ax_err.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax_cost.loglog(tol, [r["nfe_forward"] for r in rows], "k.-", label="NFE forward")
    ax_cost.loglog(tol, [r["adjoint"]["nfe_backward"] for r in rows], "o-",
                   label="NFE backward (adjoint)")
    ax_cost.loglog(tol, [r["discrete"]["nfe_backward"] for r in rows], "s-",
                   label="VJPs (discrete)")
    ax_time = ax_cost.twinx()
    ax_time.loglog(tol, [1e3 * r["adjoint"]["seconds"] for r in rows], "o:", color="C0",
                   alpha=0.5)
    ax_time.loglog(tol, [1e3 * r["discrete"]["seconds"] for r in rows], "s:", color="C1",
                   alpha=0.5)
    ax_time.set_ylabel("time of one gradient [ms] (dotted)")
    ax_cost.set_xlabel("tolerance (rtol = atol)")
    ax_cost.set_ylabel("function evaluations")
    ax_cost.invert_xaxis()
    ax_cost.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"gradient accuracy and cost ({results['n_params']} parameters, "
                 f"batch {results['batch']})")
    fig.tight_layout()
    write_figure(path, fig, dpi=120)     # rendered first, then written atomically


# ----------------------------------------------------------------------- one field's VJP

def check_vjp(f, f_and_vjp, t, y, theta, *, step=1e-6, n_probes=3, seed=0, tol=1e-6):
    """A hand-written VJP against central differences of ``f``, before any solve.

    Parameters
    ----------
    f : callable
        ``f(t, y) -> dy/dt``, reading its parameters from the array ``theta``.
    f_and_vjp : callable
        ``f_and_vjp(t, y, a) -> (f, Jᵀa, (∂f/∂θ)ᵀa summed over the batch)``.
    t : float
    y : ndarray, shape (B, D) or (D,)
    theta : ndarray, shape (P,)
        The array both callables read; it is perturbed in place and restored.
    step : float
        Central-difference step along unit probes.
    n_probes : int
        Random cotangent/direction pairs.
    seed : int
    tol : float
        ``ok`` is ``max(errors) < tol``.

    Returns
    -------
    dict
        ``vjp_y`` and ``vjp_theta``: norm-wise relative errors ``‖an − fd‖ / ‖fd‖`` of
        ``⟨a, J v⟩`` and ``⟨a, ∂f/∂θ w⟩`` over the probes; ``ok``.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.float64)
    fd_y, an_y, fd_th, an_th = [], [], [], []
    saved = theta.copy()
    try:
        for _ in range(n_probes):
            a, v = rng.normal(size=(2,) + y.shape)
            w = rng.normal(size=theta.shape)
            v, w = v / np.linalg.norm(v), w / np.linalg.norm(w)
            _, vjp_y, vjp_theta = f_and_vjp(t, y, a)
            an_y.append(np.sum(vjp_y * v))
            an_th.append(vjp_theta @ w)
            fd_y.append((np.sum(a * f(t, y + step * v)) - np.sum(a * f(t, y - step * v)))
                        / (2 * step))
            pair = []
            for sign in (1.0, -1.0):
                theta[:] = saved + sign * step * w
                pair.append(np.sum(a * f(t, y)))
            theta[:] = saved
            fd_th.append((pair[0] - pair[1]) / (2 * step))
    finally:
        theta[:] = saved
    errors = {name: float(np.linalg.norm(np.subtract(an, fd)) / max(np.linalg.norm(fd), 1e-300))
              for name, an, fd in (("vjp_y", an_y, fd_y), ("vjp_theta", an_th, fd_th))}
    return {**errors, "ok": max(errors.values()) < tol}


# ----------------------------------------------------------------------- models for the CLI

def load_run(run_dir):
    """``(config, model)`` of a run directory written by :func:`odejac.train.train`."""
    config = TrainConfig.from_dict(read_json(os.path.join(run_dir, "config.json")))
    data = load_data(config)
    model = build_model(config, data.X_train.shape[1], data.n_classes)
    model.theta = read_npz(os.path.join(run_dir, "params.npz"))["theta"]
    return config, model


def prepare(config, epochs=0, run_dir=None):
    """``(config, data, model, epochs)``: a saved run, or ``config``'s model after ``epochs``.

    ``epochs = 0`` keeps the freshly initialised model; otherwise it is trained for ``epochs``
    epochs with :func:`odejac.train.fit` (nothing written to disk).
    """
    if run_dir is not None:
        config, model = load_run(run_dir)
        return config, load_data(config), model, None
    data = load_data(config)
    if epochs == 0:
        return config, data, build_model(config, data.X_train.shape[1], data.n_classes), 0
    config = config.replace(epochs=int(epochs))
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    fit(state, config, data.X_train, data.y_train)
    return config, data, state.model, int(epochs)


def gradcheck(config, options=GradcheckOptions(), *, epochs=0, run_dir=None, progress=None):
    """Prepare the model (:func:`prepare`) and check its gradient on the first
    ``config.batch_size`` training points; returns the results with the config attached."""
    config, data, model, trained = prepare(config, epochs, run_dir)
    n = min(config.batch_size, len(data.X_train))
    results = run(model, data.X_train[:n], data.y_train[:n], options, progress=progress)
    results.update(config=config.to_dict(), epochs_trained=trained, run_dir=run_dir)
    return results


def save(results, json_path, figure_path=None):
    """Write the results as JSON and (optionally) draw the figure from the saved file."""
    save_and_plot(results, json_path, figure_path, plot)
