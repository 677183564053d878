"""Figures 1–6 of the study, the λ-sweep and landscape figures, drawn only from saved files.

Every function takes a results directory, reads ``study.json``, ``data.npz``
and the run files (``history.json``, ``robustness.json``, ``regions.npz``),
and writes one PNG; no model is rebuilt. Figures are drawn on bare
:class:`matplotlib.figure.Figure` objects with the Agg canvas, so nothing
touches pyplot's global state or needs a display.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import read_json, read_npz, write_figure
from .records import by_arm, evaluated, finished, load_records, load_study
from .tables import LABELS

#: One colour per regulariser, the same in every figure.
COLOURS = {"none": "black", "frobenius": "tab:blue", "spectral": "tab:orange",
           "condition": "tab:green", "log_condition": "tab:red",
           "condition_capped": "tab:purple", "robust": "tab:brown"}
#: Frobenius and spectral often coincide; a dashed spectral line keeps both visible.
LINESTYLES = {"spectral": "--"}
#: The paper's Figure 1 colours the two moons red and blue.
CLASS_COLOURS = ("tab:red", "tab:blue")
DPI = 120
#: Figure 6 wraps its panels (one per arm) after this many columns.
REGION_COLUMNS = 4
FIGURES = ("fig1_moons.png", "fig2_noise.png", "fig3_margin.png", "fig4_nfe.png",
           "fig5_attacks.png", "fig6_regions.png")


def _save(fig, path):
    """Write ``fig`` as PNG atomically (temporary file in the same directory, then rename)."""
    FigureCanvasAgg(fig)
    write_figure(path, fig, DPI)
    return path


def _label(group):
    reg, ours = group[0]["reg"], group[0]["ours"]
    text = LABELS.get(reg, reg)
    if ours and group[0]["arm"] != reg:  # several of our arms share a regulariser
        text = f"{group[0]['arm']}: {text}"
    if reg != "none":
        text += f" (λ={group[0]['lam']:g})"
    if group[0].get("cond_eps", 1e-8) != 1e-8:
        text += f", κ capped at {1 / group[0]['cond_eps']:g}"
    return text + (" [ours]" if ours else "")


def _colour(group):
    return COLOURS.get(group[0]["arm"], COLOURS.get(group[0]["reg"], "tab:gray"))


def _band(ax, x, curves, group):
    """Mean over seeds as a thick line, every seed as a faint thin one.

    Per-seed lines instead of a min–max band: a seed that failed shows as
    the outlier it is rather than stretching a band over everything.
    """
    curves = np.asarray(curves, dtype=float)
    ax.plot(x, curves.mean(axis=0), color=_colour(group), label=_label(group), lw=1.8,
            ls=LINESTYLES.get(group[0]["reg"], "-"))
    for curve in curves:
        ax.plot(x, curve, color=_colour(group), lw=0.6, alpha=0.25)


def plot_moons(out):
    """Figure 1: the training data, coloured by class."""
    data = read_npz(os.path.join(out, "data.npz"), ("X_train", "y_train", "X_test", "y_test"))
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    X, y = data["X_train"], data["y_train"]
    for label, colour in enumerate(CLASS_COLOURS):
        ax.scatter(*X[y == label, :2].T, s=6, color=colour, label=f"class {label}")
    ax.set(title="Figure 1: two moons (training data)", xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, os.path.join(out, FIGURES[0]))


def _curves(group, key):
    runs = [r["robustness"][key] for r in group if evaluated(r)]
    if not runs:
        return None, None
    levels = runs[0].get("stds", runs[0].get("epsilons"))
    return np.asarray(levels), [run["accuracy"] for run in runs]


def plot_noise(out, records):
    """Figure 2: test accuracy against the std of Gaussian input noise."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for group in by_arm(records).values():
        levels, curves = _curves(group, "noise")
        if curves:
            _band(ax, levels, curves, group)
    ax.set(title="Figure 2: accuracy under Gaussian input noise (thick: mean; thin: each "
           "seed)", xlabel="noise standard deviation σ", ylabel="test accuracy")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return _save(fig, os.path.join(out, FIGURES[1]))


def plot_margins(out, records):
    """Figure 3: box plot of the distance to the decision boundary, pooled over seeds."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    data, names, colours, censored, cap = [], [], [], 0, None
    for group in by_arm(records).values():
        runs = [r["robustness"] for r in group if evaluated(r)]
        if not runs:
            continue
        data.append(np.concatenate([run["margin"]["distances"] for run in runs]))
        names.append(_label(group).replace(" (", "\n("))
        colours.append(_colour(group))
        censored += sum(run["margin"]["censored"] for run in runs)
        cap = runs[0]["settings"]["max_radius"]
    if data:
        box = ax.boxplot(data, patch_artist=True)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=7)
        for patch, colour in zip(box["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.35)
    note = f"; {censored} points censored at {cap:g}" if censored else ""
    ax.set(title=f"Figure 3: distance to the decision boundary over training points "
           f"(all seeds{note})", ylabel="distance")
    ax.title.set_fontsize(9)
    return _save(fig, os.path.join(out, FIGURES[2]))


def plot_nfe(out, records):
    """Figure 4: forward and backward NFE per batch over the training epochs."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for group in by_arm(records).values():
        histories = [r["history"] for r in group if finished(r) and r["history"]]
        if not histories:
            continue
        epochs = min(len(h) for h in histories)
        x = np.arange(1, epochs + 1)
        for ax, key in zip(axes, ("nfe_forward", "nfe_backward")):
            _band(ax, x, [[rec[key] for rec in h[:epochs]] for h in histories], group)
    for ax, which in zip(axes, ("forward", "backward (adjoint)")):
        ax.set(title=f"{which} NFE per batch", xlabel="epoch")
    axes[0].set_ylabel("NFE (thick: mean; thin: each seed)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Figure 4: NFE during training")
    return _save(fig, os.path.join(out, FIGURES[3]))


def plot_attacks(out, records):
    """Figure 5: accuracy under FGSM and PGD against the L∞ budget ε."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key in zip(axes, ("fgsm", "pgd")):
        for group in by_arm(records).values():
            levels, curves = _curves(group, key)
            if curves:
                _band(ax, levels, curves, group)
        ax.set(title=key.upper(), xlabel="ε (L∞)")
    axes[0].set_ylabel("accuracy on attacked test points")
    axes[0].legend(fontsize=8)
    fig.suptitle("Figure 5: adversarial accuracy (input gradients from the adjoint; thick: mean, "
                 "thin: each seed)")
    return _save(fig, os.path.join(out, FIGURES[4]))


def _readout_line(ax, arrays):
    """Dashed: where the readout of ``h(1)`` changes class (D = 2, two classes only)."""
    W, b = arrays.get("readout_W"), arrays.get("readout_b")
    if W is None or W.shape != (2, 2):
        return
    w, c = W[:, 1] - W[:, 0], b[1] - b[0]  # class 1 iff w·h + c > 0
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    if abs(w[1]) > abs(w[0]):
        xs = np.array([x0, x1])
        ax.plot(xs, -(c + w[0] * xs) / w[1], "k--", lw=0.8)
    else:
        ys = np.array([y0, y1])
        ax.plot(-(c + w[1] * ys) / w[0], ys, "k--", lw=0.8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def plot_regions(out, records):
    """Figure 6: decision regions and state trajectories of one model per regulariser."""
    data = read_npz(os.path.join(out, "data.npz"), ("X_train", "y_train", "X_test", "y_test"))
    picks = []
    for group in by_arm(records).values():
        ready = [r for r in group if evaluated(r)
                 and os.path.exists(os.path.join(r["dir"], "regions.npz"))]
        if ready:  # the median seed by test accuracy: typical, neither best nor a failure
            ready.sort(key=lambda r: (r["summary"]["test_accuracy"], r["seed"]))
            record = ready[(len(ready) - 1) // 2]
            picks.append((group, record, read_npz(os.path.join(record["dir"], "regions.npz"))))
    cols = min(max(len(picks), 1), REGION_COLUMNS)
    rows = -(-max(len(picks), 1) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(picks):]:
        ax.set_axis_off()
    for ax, (group, record, arrays) in zip(axes, picks):
        ax.contourf(arrays["grid_x"], arrays["grid_y"], arrays["proba"], levels=20,
                    cmap="RdBu", vmin=0, vmax=1, alpha=0.6)
        ax.contour(arrays["grid_x"], arrays["grid_y"], arrays["proba"], levels=[0.5],
                   colors="k", linewidths=1)
        X, y = data["X_train"], data["y_train"]
        ax.scatter(*X[:, :2].T, c=[CLASS_COLOURS[k % 2] for k in y], s=2, alpha=0.4)
        states, labels = arrays["states"], arrays["labels"]
        for i in range(states.shape[1]):
            ax.plot(states[:, i, 0], states[:, i, 1], color=CLASS_COLOURS[labels[i] % 2], lw=1)
            ax.plot(*states[-1, i, :2], "o", color="k", ms=2)
        _readout_line(ax, arrays)
        ax.set_title(f"{_label(group)}\nmedian seed ({record['seed']}): test accuracy "
                     f"{record['summary']['test_accuracy']:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Figure 6: decision regions over the inputs (P(class 1), solid: 0.5) and "
                 "trajectories h(t) from inputs to h(1) (dots); dashed: the readout's boundary "
                 "in h(1)-space", fontsize=9)
    return _save(fig, os.path.join(out, FIGURES[5]))


def plot_all(out):
    """Every figure of the study in ``out``; returns their paths."""
    records = load_records(out, load_study(out))
    return [plot_moons(out), plot_noise(out, records), plot_margins(out, records),
            plot_nfe(out, records), plot_attacks(out, records), plot_regions(out, records)]


def plot_sweep(out):
    """NFE, test accuracy and κ against λ per regulariser, from ``out/sweep.json``.

    Every seed is a dot and the median over seeds a line: a bimodal outcome
    (some seeds fail) would hide behind a mean ± std bar.
    """
    sweep = read_json(os.path.join(out, "sweep.json"))
    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    keys = (("nfe", "NFE (test solve)"), ("test_accuracy", "test accuracy"),
            ("kappa_mean", "mean κ(J) over training data"))
    regs = list(dict.fromkeys(row["reg"] for row in sweep["rows"]))
    for k, reg in enumerate(regs):
        rows = sorted((r for r in sweep["rows"] if r["reg"] == reg), key=lambda r: r["lam"])
        colour = COLOURS.get(reg, "tab:gray")
        for ax, (key, _) in zip(axes, keys):
            seeds = [np.asarray(r[f"{key}_per_seed"], dtype=float) for r in rows]
            median = [np.median(v) if v.size else np.nan for v in seeds]
            if reg == "none":
                ax.axhline(median[0], color=colour, ls="--", lw=1, label="none (median)")
                if seeds[0].size:
                    ax.axhspan(seeds[0].min(), seeds[0].max(), color=colour, alpha=0.08)
                continue
            lams = np.array([r["lam"] for r in rows])
            ax.plot(lams, median, color=colour, marker="o", ms=3, label=LABELS.get(reg, reg))
            nudge = 1.0 + 0.06 * (k - len(regs) / 2)  # side by side, not on top of each other
            for lam, values in zip(lams, seeds):
                ax.plot(np.full(values.size, lam * nudge), values, ".", color=colour,
                        alpha=0.5, ms=4)
    for ax, (key, title) in zip(axes, keys):
        ax.set_xscale("log")
        ax.set(xlabel="λ", title=title)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"λ sweep: every seed (dots) and the median over {len(sweep['seeds'])} seeds "
                 f"(lines), {sweep['epochs']} epochs; grey band: none, min–max")
    return _save(fig, os.path.join(out, "fig_sweep.png"))


#: Cell colours of the landscape figure, by verdict (odejac.study.landscape.VERDICTS).
VERDICT_COLOURS = {"holds": "#7fc97f", "NFE not cut": "#d9d9d9", "costs accuracy": "#fdc086",
                   "both fail": "#f28e8e", "not tested": "white"}


def plot_landscape(out):
    """``fig_landscape.png``: settings (rows) × arms (columns), coloured by C1's verdict.

    Each cell shows the NFE change against none (% of none's mean NFE) and the share
    of the arm's runs that kept their accuracy; read from ``landscape.json``.
    """
    from matplotlib.patches import Patch, Rectangle

    data = read_json(os.path.join(out, "landscape.json"))
    settings = [s["setting"] for s in data["settings"]]
    arms = list(dict.fromkeys(row["arm"] for row in data["rows"]))
    cells = {(row["setting"], row["arm"]): row for row in data["rows"]}
    fig = Figure(figsize=(2.2 * len(arms) + 3.2, 0.45 * len(settings) + 1.6))
    ax = fig.add_subplot()
    for i, setting in enumerate(settings):
        for j, arm in enumerate(arms):
            row = cells.get((setting, arm))
            verdict = row["verdict"] if row else "not tested"
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=VERDICT_COLOURS[verdict],
                                   edgecolor="white"))
            if row and row["nfe_change_pct"] is not None:
                ax.text(j + 0.5, i + 0.5, f"NFE {row['nfe_change_pct']:+.0f} %, kept "
                        f"{row['kept_arm']:.0%} (none {row['kept_none']:.0%})", ha="center",
                        va="center", fontsize=8)
    ax.set(xlim=(0, len(arms)), ylim=(len(settings), 0))
    ax.set_xticks(np.arange(len(arms)) + 0.5, arms)
    ax.set_yticks(np.arange(len(settings)) + 0.5, settings, fontsize=8)
    ax.tick_params(length=0)
    ax.legend(handles=[Patch(facecolor=VERDICT_COLOURS[v], edgecolor="gray", label=v)
                       for v in data["verdicts"]], loc="upper left", bbox_to_anchor=(1.02, 1),
              fontsize=8, title="C1 against none")
    fig.suptitle(f"Where C1 holds: {len(data['seeds'])} seeds, {data['epochs']} epochs",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, os.path.join(out, "fig_landscape.png"))


def plot_results(out):
    """Redraw whatever ``out`` holds: the study's figures, the sweep's, landscape's or Pareto's."""
    paths = []
    if os.path.exists(os.path.join(out, "pareto.json")):   # before study.json: it has one too
        from .pareto_plot import plot_pareto

        paths.append(plot_pareto(out))
    elif os.path.exists(os.path.join(out, "landscape.json")):
        paths.append(plot_landscape(out))
    elif os.path.exists(os.path.join(out, "sweep.json")):
        paths.append(plot_sweep(out))
    elif os.path.exists(os.path.join(out, "study.json")):
        paths += plot_all(out)
    else:
        raise ValueError(f"{out} holds none of study.json, sweep.json, landscape.json, "
                         f"pareto.json")
    return paths
