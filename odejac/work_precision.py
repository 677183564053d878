"""Work-precision: the error reached against the NFE paid, for each step-size controller.

Two problems with known answers:

* **Arenstorf's orbit** (restricted three-body problem; Hairer, Nørsett & Wanner I, §II.0),
  periodic with period ``T``, so the exact ``y(T)`` is ``y(0)``: the classic test of DOPRI5,
  with steps that shrink by orders of magnitude near the close approaches;
* a **linear oscillator** ``y' = A y`` with a damped rotation, exact by ``scipy.linalg.expm``.

For every tolerance ``rtol = atol = tol`` it solves with both controllers of :func:`odeint`
(SciPy's and torchdiffeq's I controllers) and with Hairer's PI controller of
:mod:`odejac.reference`, and records the NFE and the max-norm error at ``t1``. The figure (error
against NFE, log-log) is drawn from the saved file; ``docs/dormand_prince.md`` §3 explains it.
"""

import numpy as np
import scipy.linalg

from . import reference
from .integrate import odeint
from .io import save_and_plot, write_figure

DEFAULT_TOLS = tuple(10.0 ** -k for k in range(3, 12))
#: Controllers of the figure: the two of odeint, and the PI one of the reference solver.
CONTROLLERS = ("scipy", "torchdiffeq", "pi")

_MU = 0.012277471                                   # Arenstorf's mass ratio
_ARENSTORF_Y0 = np.array([0.994, 0.0, 0.0, -2.00158510637908252240537862224])
_ARENSTORF_T = 17.0652165601579625588917206249
_LINEAR_A = np.array([[-0.1, -2.0], [2.0, -0.1]])


def _arenstorf(t, y):
    x1, x2, v1, v2 = y
    d1 = ((x1 + _MU) ** 2 + x2 ** 2) ** 1.5
    d2 = ((x1 - 1 + _MU) ** 2 + x2 ** 2) ** 1.5
    return np.array([v1, v2,
                     x1 + 2 * v2 - (1 - _MU) * (x1 + _MU) / d1 - _MU * (x1 - 1 + _MU) / d2,
                     x2 - 2 * v1 - (1 - _MU) * x2 / d1 - _MU * x2 / d2])


def problems():
    """``{name: (f, y0, t_span, exact y(t1))}``."""
    y0_lin = np.array([1.0, 0.0])
    return {
        "arenstorf": (_arenstorf, _ARENSTORF_Y0, (0.0, _ARENSTORF_T), _ARENSTORF_Y0),
        "linear": (lambda t, y: _LINEAR_A @ y, y0_lin, (0.0, 10.0),
                   scipy.linalg.expm(_LINEAR_A * 10.0) @ y0_lin),
    }


def run(tols=DEFAULT_TOLS):
    """``{"tols": [...], "problems": {name: {controller: {"nfe": [...], "error": [...]}}}}``."""
    out = {"tols": [float(t) for t in tols], "problems": {}}
    for name, (f, y0, t_span, exact) in problems().items():
        rows = out["problems"][name] = {}
        for controller in CONTROLLERS:
            nfe, error = [], []
            for tol in tols:
                if controller == "pi":
                    y1, n, _ = reference.solve(f, y0, t_span, tol, tol, "pi")
                else:
                    sol = odeint(f, y0, t_span, rtol=tol, atol=tol, controller=controller)
                    y1, n = sol.y, sol.nfe
                nfe.append(int(n))
                error.append(float(np.abs(y1 - exact).max()))
            rows[controller] = {"nfe": nfe, "error": error}
    return out


def plot(results, path):
    """Error against NFE, one panel per problem, from saved results."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = list(results["problems"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2))
    style = {"scipy": ("o-", "SciPy RK45 (I controller)"),
             "torchdiffeq": ("s-", "torchdiffeq dopri5 (I controller)"),
             "pi": ("^--", "Hairer's DOPRI5 PI controller (reference.py)")}
    for ax, name in zip(np.atleast_1d(axes), names):
        for controller, curve in results["problems"][name].items():
            marker, label = style[controller]
            ax.loglog(curve["nfe"], curve["error"], marker, ms=4, label=label)
        first = results["problems"][name]["scipy"]
        for tol, n, e in zip(results["tols"], first["nfe"], first["error"]):
            ax.annotate(f"{tol:.0e}", (n, e), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels overlap on short axes
        ax.set_xlabel("NFE (function evaluations)")
        ax.set_ylabel("max |y(t1) − exact|")
        ax.set_title(f"{name} (labels: tol = rtol = atol)")
        ax.legend(fontsize=7)
    fig.suptitle("work-precision of Dormand–Prince 5(4) under three step-size controllers")
    fig.tight_layout()
    write_figure(path, fig, dpi=110)     # rendered first, then written atomically


def save(results, json_path, figure_path=None):
    """Write the results as JSON and (optionally) draw the figure from the saved file."""
    save_and_plot(results, json_path, figure_path, plot)


def format_table(results):
    """NFE and error per problem, tolerance and controller, as text."""
    lines = []
    for name, curves in results["problems"].items():
        lines.append(f"{name}:    tol  " + "  ".join(f"{c:>20s}" for c in curves))
        for i, tol in enumerate(results["tols"]):
            cells = "  ".join(f"{curves[c]['nfe'][i]:6d} NFE {curves[c]['error'][i]:9.2e}"
                              for c in curves)
            lines.append(f"         {tol:6.0e}  {cells}")
    return "\n".join(lines)
