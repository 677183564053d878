"""``fig_pareto.png``: held-out test NFE against test accuracy, one colour per method.

Drawn from ``pareto.json`` only (:mod:`odejac.study.pareto_tables`), in the conventions of
:mod:`odejac.study.plots`: every grid point is its held-out mean with 95 % t intervals on
both axes, and each method's non-dominated points (no other point of the method has
higher accuracy and lower NFE) are joined by a line — the method's front. Accuracy
intervals are drawn clipped to [0, 1]. The right panel repeats the left, zoomed on the
accuracies that matter (from :data:`ZOOM_MARGIN` below the lowest matched accuracy).
"""
import os

import numpy as np
from matplotlib.figure import Figure

from ..io import read_json
from .plots import COLOURS, _save

#: Colours of the methods that are not in the study's palette.
PARETO_COLOURS = {**COLOURS, "rnode": "tab:pink", "taynode": "tab:olive", "steer": "tab:cyan",
                  "solver_error": "tab:gray"}
#: The zoomed panel starts this far below the lowest matched accuracy.
ZOOM_MARGIN = 0.01
#: Room around the points on the accuracy axis.
ACCURACY_PAD = 0.005


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


def _error(row, key, bounds=(-np.inf, np.inf)):
    """``[[below], [above]]`` error-bar lengths of ``row``'s mean, the interval clipped to
    ``bounds`` (zero without an interval)."""
    mean, low, high = row[f"{key}_mean"], row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    if low is None:
        return [[0.0], [0.0]]
    return [[mean - max(low, bounds[0])], [min(high, bounds[1]) - mean]]


def _draw(ax, data):
    rows = [r for r in data["rows"] if r["stage"] == "heldout" and r["nfe_mean"] is not None]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        group = [r for r in rows if r["method"] == method]
        colour = PARETO_COLOURS.get(method, "tab:gray")
        for k, row in enumerate(group):
            ax.errorbar(row["acc_mean"], row["nfe_mean"], xerr=_error(row, "acc", (0.0, 1.0)),
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
    shown = [r for r in data["rows"] if r["stage"] == "heldout" and r["acc_mean"] is not None]
    if shown:
        top = max(r["acc_mean"] for r in shown) + ACCURACY_PAD
        lowest = min([r["acc_mean"] for r in shown] + list(data["thresholds"]))
        full.set_xlim(lowest - 4 * ACCURACY_PAD, 1.0 + ACCURACY_PAD)
        start = min(data["thresholds"]) - ZOOM_MARGIN
        visible = [r["nfe_mean"] for r in shown if r["acc_mean"] >= start]
        if visible and top > start:
            zoom.set_xlim(start, top)
            zoom.set_ylim(0.8 * min(visible), 1.2 * max(visible))
            zoom.set_title(f"zoom: accuracy ≥ {start:g}", fontsize=9)
    full.legend(fontsize=8)
    seeds = data["heldout_seeds"]
    fig.suptitle(f"NFE against accuracy: mean ± 95 % CI over {len(seeds)} held-out seeds "
                 f"({seeds[0]}–{seeds[-1]}), {data['epochs']} epochs; lines: each method's "
                 f"non-dominated front; dotted: matched accuracies", fontsize=10)
    return _save(fig, os.path.join(out, "fig_pareto.png"))
