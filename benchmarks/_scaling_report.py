"""Tables (CSV, markdown) and the figure of ``scaling.py``, from its saved JSON only."""
import csv
import json
import os

PEERS = (("torchdiffeq", "torchdiffeq"), ("diffrax", "diffrax (XLA loop)"),
         ("jax_call", "jax.jit call"))


def _cell(entry, odejac=False):
    if entry is None:
        return "—"
    return f"{entry['us']:.1f}" if odejac else f"{entry['us']:.1f} ({entry['ratio']:.2f}×)"


def _sweep(rows, key):
    """The rows of one sweep: width 32 for the batch sweep, batch 256 for the width sweep."""
    if key == "batch":
        return sorted((r for r in rows if r["width"] == 32), key=lambda r: r["batch"])
    return sorted((r for r in rows if r["batch"] == 256), key=lambda r: r["width"])


def markdown(res):
    m = res["machine"]
    lines = [f"Measured {m['date']} on {m['nproc']} × {m['cpu']} (load {m['load_avg_1min']:.1f} "
             f"at the start; process CPU time, one thread per side); `{res['command']}`.", ""]
    if "gemm_gflops" in res:
        lines += ["256³ GEMM, one thread, best block: " + ", ".join(
            f"{k} **{v:.1f}** GFLOP/s" for k, v in res["gemm_gflops"].items()) + ".", ""]
    if "odejac_call_us_at_batch_1" in res:
        c = res["odejac_call_us_at_batch_1"]
        lines += [f"odejac's fixed cost per call (batch 1): `f` **{c['f']:.1f}** µs, "
                  f"`f_and_vjp` **{c['vjp']:.1f}** µs.", ""]
    if "tanh_ns_per_value" in res:
        lines += ["tanh on 256 × 256 values, best: " + ", ".join(
            f"{k} **{v:.2f}** ns/value" for k, v in res["tanh_ns_per_value"].items()) + ".", ""]
    for key, label in (("batch", "batch (width 32)"), ("width", "width (batch 256)")):
        for quantity in ("f", "f_and_vjp"):
            lines += [f"**{quantity}, CPU µs per evaluation, by {label}**; in brackets peer / "
                      "odejac, the median of paired block ratios (> 1: odejac faster)", "",
                      f"| {key} | odejac | " + " | ".join(n for _, n in PEERS) + " |",
                      "|---|---|" + "---|" * len(PEERS)]
            for row in _sweep(res["evals"], key):
                cells = row[quantity]
                lines.append(f"| {row[key]} | {_cell(cells['odejac'], True)} | " + " | ".join(
                    _cell(cells.get(name)) for name, _ in PEERS) + " |")
            lines.append("")
    if res.get("train"):
        lines += ["**Training, CPU µs per field evaluation (forward + backward NFE)**, no "
                  "penalty, median of epochs; in brackets the median of paired epoch ratios "
                  "peer / odejac", "",
                  "| batch | width | odejac | torchdiffeq | diffrax | NFE per batch: odejac "
                  "fwd/bwd; torchdiffeq fwd/bwd; diffrax fwd+bwd |", "|---|---|---|---|---|---|"]
        for row in res["train"]:
            peers = [f"{row[s]['us_per_nfe']:.1f} ({row[s]['ratio']:.2f}×)" if s in row else "—"
                     for s in ("torchdiffeq", "diffrax")]
            nfe = "; ".join("/".join(f"{v:.1f}" for v in row[s]["nfe_per_batch"])
                            if s != "diffrax" else f"{sum(row[s]['nfe_per_batch']):.1f}"
                            for s in ("odejac", "torchdiffeq", "diffrax") if s in row)
            lines.append(f"| {row['batch']} | {row['width']} | {row['odejac']['us_per_nfe']:.1f}"
                         f" | {peers[0]} | {peers[1]} | {nfe} |")
        lines.append("")
    return "\n".join(lines)


def write_tables(res, folder, stem="scaling"):
    """``stem.csv`` (one row per point, quantity and side) and ``stem.md`` in ``folder``."""
    path = os.path.join(folder, f"{stem}.csv")
    with open(path + ".tmp", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["part", "batch", "width", "quantity", "side", "cpu_us",
                      "ratio_side_over_odejac"])
        for row in res.get("evals", []):
            for quantity in ("f", "f_and_vjp"):
                for side, entry in row[quantity].items():
                    out.writerow(["eval", row["batch"], row["width"], quantity, side,
                                  f"{entry['us']:.3f}", f"{entry['ratio']:.4f}"])
        for row in res.get("train", []):
            for side in ("odejac", "torchdiffeq", "diffrax"):
                if side in row:
                    out.writerow(["train", row["batch"], row["width"], "per_nfe", side,
                                  f"{row[side]['us_per_nfe']:.3f}", f"{row[side]['ratio']:.4f}"])
    os.replace(path + ".tmp", path)
    md = os.path.join(folder, f"{stem}.md")
    with open(md + ".tmp", "w") as fh:
        fh.write(markdown(res) + "\n")
    os.replace(md + ".tmp", md)
    return path, md


def plot(path, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as fh:
        res = json.load(fh)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    styles = {("torchdiffeq", "f"): "s--", ("torchdiffeq", "f_and_vjp"): "s-",
              ("diffrax", "f"): "o--", ("diffrax", "f_and_vjp"): "o-"}
    for ax, key in ((axes[0], "batch"), (axes[1], "width")):
        rows = _sweep(res["evals"], key)
        x = [r[key] for r in rows]
        for (side, quantity), style in styles.items():
            if rows and side in rows[0][quantity]:
                ax.loglog(x, [r[quantity][side]["ratio"] for r in rows], style,
                          label=f"{side} {quantity}")
        for row in res.get("train", []):
            if row["width" if key == "batch" else "batch"] == (32 if key == "batch" else 256):
                for side, marker in (("torchdiffeq", "s"), ("diffrax", "o")):
                    if side in row:
                        ax.loglog(row[key], row[side]["ratio"], marker, ms=11, mfc="none",
                                  color="k")
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_xlabel("batch size (width 32)" if key == "batch" else "hidden width (batch 256)")
        ax.set_ylabel("peer CPU time / odejac CPU time")
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in x], fontsize=7)
        ax.minorticks_off()
        ax.legend(fontsize=7, title="bare evaluations; ○□ = training per NFE",
                  title_fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    ax = axes[2]
    if res.get("memory"):
        T = [r["T"] for r in res["memory"]]
        ax.semilogx(T, [r["odejac"]["peak_rss_growth_mib"] for r in res["memory"]], "o-",
                    label="odejac adjoint")
        if "torch_adjoint" in res["memory"][0]:
            ax.semilogx(T, [r["torch_adjoint"]["peak_rss_growth_mib"] for r in res["memory"]],
                        "s-", label="torchdiffeq odeint_adjoint")
            ax.semilogx(T, [r["torch_backprop"]["peak_rss_growth_mib"] for r in res["memory"]],
                        "^--", label="torchdiffeq odeint (backprop)")
        ax.set_xlabel("T (integration interval [0, T])")
        ax.set_ylabel("peak RSS growth, MiB")
        ax.set_title("one forward + backward solve, batch 256 (fresh process each;\n"
                     "growth over a warmed-up baseline: 0 = nothing kept per step)", fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    m = res["machine"]
    fig.suptitle(f"{m['nproc']} × {m['cpu']}, {m['date']}; process CPU time, one thread, "
                 f"alternating; > 1: odejac faster", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"figure: {png}")
