#!/usr/bin/env python
"""Can float64 reach 2× diffrax per training NFE? The budget, from saved results only.

Reads ``kernels.json`` (``kernels.py``: the bare kernels at B = 256 and this machine's floor
for them) and ``vs_diffrax.json`` (``vs_diffrax.py``: CPU µs per training NFE of both sides and
odejac's forward / backward NFE split), optionally ``vs_diffrax_float32.json`` (diffrax in
float32), and prints, per workload:

* ``field``: the kernels' cost per NFE at the measured mix,
  ``w_f · f + w_b · augmented`` (``w_f``, ``w_b``: odejac's forward and backward fractions of
  the training NFE; the adjoint's backward stages evaluate the augmented field);
* ``rest``: odejac's measured CPU µs per NFE minus ``field``: solver, trampolines, statistics,
  penalty, loss and Adam, the part no field kernel touches;
* ``floor``: ``w_f · floor(f) + w_b · floor(f_and_vjp)`` (+ ``rest`` for the whole NFE);
* the best ratio diffrax / odejac that float64 could reach with the kernels AT their floor and
  ``rest`` unchanged, and with ``rest`` = 0 as well (the field floor alone);
* with the float32 record: what a float32 odejac would need per NFE for 2× diffrax in float32.

    python benchmarks/floor_budget.py [--results benchmarks/results] [--json out.json]
"""
import argparse
import json
import os

from common import HERE, save_json

TARGET = 2.0   # issue #11: per-NFE training cost ≥ 2× lower than diffrax's


def _load(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def budget(kernels, runs, runs32=None):
    fl, k = kernels["floor"], kernels["kernels"]
    out = {"floor_f_us": fl["floor_f_us"], "floor_f_and_vjp_us": fl["floor_f_and_vjp_us"],
           "f_us": k["f"]["new_us"], "augmented_us": k["augmented"]["new_us"], "workloads": {}}
    for reg, run in runs.items():
        w_f = run["odejac_forward_fraction"]
        w_b = 1.0 - w_f
        field = w_f * out["f_us"] + w_b * out["augmented_us"]
        field_floor = w_f * out["floor_f_us"] + w_b * out["floor_f_and_vjp_us"]
        odejac, diffrax = run["odejac_cpu_us_per_nfe"], run["diffrax_cpu_us_per_nfe"]
        rest = odejac - field
        row = {"forward_fraction": w_f, "odejac_us_per_nfe": odejac,
               "diffrax_us_per_nfe": diffrax, "measured_ratio":
                   run["median_cpu_ratio_diffrax_over_odejac"],
               "field_us_per_nfe": field, "rest_us_per_nfe": rest,
               "field_floor_us_per_nfe": field_floor, "floor_us_per_nfe": field_floor + rest,
               "best_ratio_at_floor": diffrax / (field_floor + rest),
               "best_ratio_field_floor_only": diffrax / field_floor,
               "needed_us_per_nfe": diffrax / TARGET}
        if runs32 and reg in runs32:
            d32 = runs32[reg]["diffrax_cpu_us_per_nfe"]
            row.update(diffrax_float32_us_per_nfe=d32, needed_float32_us_per_nfe=d32 / TARGET)
        out["workloads"][reg] = row
    return out


def report(out):
    print(f"floor f {out['floor_f_us']:.1f} µs, f_and_vjp {out['floor_f_and_vjp_us']:.1f} µs;"
          f" measured f {out['f_us']:.1f} µs, augmented field {out['augmented_us']:.1f} µs "
          f"(B = 256)")
    print("| workload | fwd share | odejac µs/NFE (field + rest) | floor µs/NFE (field floor + "
          "rest) | diffrax µs/NFE | needed for 2× | best ratio at the floor (rest = 0) "
          "| diffrax float32 µs/NFE | float32 odejac needs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for reg, r in out["workloads"].items():
        f32 = (f"{r['diffrax_float32_us_per_nfe']:.1f} | ≤ {r['needed_float32_us_per_nfe']:.1f}"
               if "diffrax_float32_us_per_nfe" in r else "— | —")
        print(f"| {reg} | {100 * r['forward_fraction']:.0f} % | {r['odejac_us_per_nfe']:.1f} "
              f"({r['field_us_per_nfe']:.1f} + {r['rest_us_per_nfe']:.1f}) | "
              f"{r['floor_us_per_nfe']:.1f} ({r['field_floor_us_per_nfe']:.1f} + "
              f"{r['rest_us_per_nfe']:.1f}) | {r['diffrax_us_per_nfe']:.1f} | "
              f"≤ {r['needed_us_per_nfe']:.1f} | {r['best_ratio_at_floor']:.2f} "
              f"({r['best_ratio_field_floor_only']:.2f}) | {f32} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    kernels = _load(args.results, "kernels.json")
    vs = _load(args.results, "vs_diffrax.json")
    if kernels is None or vs is None:
        raise SystemExit(f"floor_budget: needs kernels.json and vs_diffrax.json in "
                         f"{args.results} (run kernels.py and vs_diffrax.py first)")
    vs32 = _load(args.results, "vs_diffrax_float32.json")
    out = budget(kernels, vs["runs"], vs32["runs"] if vs32 else None)
    report(out)
    save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
