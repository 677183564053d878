"""``fig_pareto.png``: held-out test NFE against test accuracy, one colour per method.

Drawn from ``pareto.json`` only (:mod:`odejac.study.pareto_tables`), in the conventions of
:mod:`odejac.study.plots`: every grid point is its held-out mean with 95 % t intervals on
both axes, and each method's non-dominated points (no other point of the method has
higher accuracy and lower NFE) are joined by a line — the method's front. The right panel
repeats the left, zoomed on the accuracies that matter (≥ :data:`ZOOM_ACCURACY`).
"""
import os

import numpy as np
from matplotlib.figure import Figure

from ..io import read_json
from .plots import COLOURS, _save

#: Colours of the methods that are not in the study's palette.
PARETO_COLOURS = {**COLOURS, "rnode": "tab:pink", "taynode": "tab:olive", "steer": "tab:cyan",
                  "solver_error": "tab:gray"}
#: Lower accuracy limit of the zoomed panel (just below the lower matched threshold).
ZOOM_ACCURACY = 0.97


def front(points):
    """Indices of the non-dominated ``(accuracy, nfe)`` points, by increasing accuracy.

    A point is dominated if another has accuracy ≥ and NFE ≤ it, one of them strictly.
    """
    keep = []
    for i, (acc, nfe) in enumerate(points):
        dominated = any(a >= acc and n <= nfe and (a > acc or n < nfe)
                        for j, (a, n) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (points[i][0], -points[i][1]))


def _error(row, key):
    """``[[below], [above]]`` error-bar lengths of ``row``'s mean (zero without an interval)."""
    mean, low, high = row[f"{key}_mean"], row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    if low is None:
        return [[0.0], [0.0]]
    return [[mean - low], [high - mean]]


def _draw(ax, data):
    rows = [r for r in data["rows"] if r["stage"] == "heldout" and r["nfe_mean"] is not None]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        group = [r for r in rows if r["method"] == method]
        colour = PARETO_COLOURS.get(method, "tab:gray")
        for k, row in enumerate(group):
            ax.errorbar(row["acc_mean"], row["nfe_mean"], xerr=_error(row, "acc"),
                        yerr=_error(row, "nfe"), fmt="*" if method == "none" else "o",
                        ms=9 if method == "none" else 4, color=colour, capsize=2, lw=0.8,
                        label=method if k == 0 else None)
        points = [(r["acc_mean"], r["nfe_mean"]) for r in group]
        chosen = front(points)
        if len(chosen) > 1:
            ax.plot([points[i][0] for i in chosen], [points[i][1] for i in chosen], "-",
                    color=colour, lw=1.5, alpha=0.8)
    for threshold in data["thresholds"]:
        ax.axvline(threshold, color="gray", ls=":", lw=1)
    ax.set(xlabel="test accuracy (held-out seeds)", ylabel="NFE of the test solve")


def plot_pareto(out):
    """Draw ``out/fig_pareto.png`` from ``out/pareto.json``; return its path."""
    data = read_json(os.path.join(out, "pareto.json"))
    fig = Figure(figsize=(12, 5), layout="constrained")
    full, zoom = fig.subplots(1, 2)
    _draw(full, data)
    _draw(zoom, data)
    accuracies = [r["acc_mean"] for r in data["rows"]
                  if r["stage"] == "heldout" and r["acc_mean"] is not None]
    if accuracies and max(accuracies) > ZOOM_ACCURACY:
        zoom.set_xlim(ZOOM_ACCURACY, min(1.0, max(accuracies)) + 0.002)
        visible = [r["nfe_mean"] for r in data["rows"] if r["stage"] == "heldout"
                   and r["acc_mean"] is not None and r["acc_mean"] >= ZOOM_ACCURACY]
        if visible:
            zoom.set_ylim(0.8 * np.min(visible), 1.2 * np.max(visible))
    zoom.set_title(f"zoom: accuracy ≥ {ZOOM_ACCURACY:g}", fontsize=9)
    full.legend(fontsize=8)
    seeds = data["heldout_seeds"]
    fig.suptitle(f"NFE against accuracy: mean ± 95 % CI over {len(seeds)} held-out seeds "
                 f"({seeds[0]}–{seeds[-1]}), {data['epochs']} epochs; lines: each method's "
                 f"non-dominated front; dotted: matched accuracies", fontsize=10)
    return _save(fig, os.path.join(out, "fig_pareto.png"))
