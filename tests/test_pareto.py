"""The Pareto benchmark: its grids, the validation-only selection rule on hand-made records
with a known answer, its statistics, bad input, and `pareto --quick` end to end (a second
command skips what the first finished)."""
import csv
import json
import os

import numpy as np
import pytest
from scipy import stats

from odejac.study import experiments, pareto
from odejac.study.inference import compare, holm, mean_ci
from odejac.study.pareto_plot import front
from odejac.study.pareto_tables import matched_rows, point_rows, select

from test_experiments import PNG_MAGIC, _cli


def test_grids_give_the_intended_runs():
    bench = pareto.make_pareto()
    names = [arm.name for arm in bench.study.arms]
    assert names[0] == "none" and len(names) == 1 + 3 * (len(pareto.METHODS) - 1)
    assert bench.validation_seeds == tuple(range(100, 110))
    assert bench.heldout_seeds == tuple(range(3000, 3010))
    assert bench.study.seeds == bench.validation_seeds + bench.heldout_seeds
    arms = {arm.name: arm for arm in bench.study.arms}
    robust = bench.study.config(arms["robust-0.03"], 3000)
    assert (robust.reg, robust.lam, robust.cond_eps) == ("condition", 3e-2, 1e-2)
    assert (robust.reg, robust.lam, robust.cond_eps) == (
        experiments.ROBUST.reg, experiments.ROBUST.lam, dict(experiments.ROBUST.overrides)[
            "cond_eps"])
    steer = bench.study.config(arms["steer-0.5"], 100)
    assert (steer.reg, steer.lam, steer.steer, steer.seed) == ("none", 0.0, 0.5, 100)
    assert bench.study.config(arms["rnode-0.01"], 101).reg == "rnode"
    assert experiments.PAPER_LAMBDAS["condition"] in pareto.CONDITION_LAMBDAS
    for method in pareto.METHODS[1:]:   # three log-spaced values (STEER: B, evenly; robust's
        grid = np.asarray(method.grid)   # 3e-2 halves the decade 1e-2 ... 1e-1 within 10 %)
        steps = np.diff(grid) if method.knob == "steer" else np.diff(np.log(grid))
        assert grid.size == 3 and np.all(steps > 0) and np.allclose(steps, steps[0], rtol=0.1)
    # the default setting is the study's base, untouched; a harder one overrides every run
    assert bench.study.base == experiments.STUDY_BASE
    harder = pareto.make_pareto(overrides=dict(time_dependent=True, rtol=1e-5))
    assert all(c.time_dependent and c.rtol == 1e-5 for _, _, c in harder.runs())
    quick = pareto.make_pareto(quick=True, methods=["taynode"])
    assert [a.name for a in quick.study.arms] == ["none", "taynode-0.001", "taynode-10"]
    assert quick.thresholds == pareto.QUICK_ACCURACIES and quick.study.base.epochs == 8


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        pareto.make_pareto(seeds=10, first_seed=105)
    with pytest.raises(ValueError, match="unknown methods"):
        pareto.make_pareto(methods=["rnode", "magic"])
    for bad in ([], [0.99, 0.99], [1.5], [0.0]):
        with pytest.raises(ValueError, match="matched accuracies"):
            pareto.make_pareto(thresholds=bad)


def test_cli_rejects_bad_input_in_one_line_before_writing(tmp_path):
    out = str(tmp_path / "never")
    for args in (("--val-first-seed", "3001"), ("--accuracies", "1.2"),
                 ("--methods", "magic"), ("--tol", "-1")):
        proc = _cli("pareto", "--quick", "--out", out, *args)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, stderr.decode()
        assert stderr.decode().count("\n") == 1, stderr.decode()
    assert not os.path.exists(out), "nothing may be written before the options are checked"


def _run(arm, seed, nfe, acc, status="finished"):
    summary = {"status": status, "nfe": nfe, "test_accuracy": acc, "epochs_done": 10,
               "epoch_seconds_total": 0.1 * nfe}
    return dict(arm=arm, seed=seed, summary=summary)


def _point(method, index):
    """Arm name of the ``index``-th point of ``method``'s grid."""
    entry = next(m for m in pareto.METHODS if m.name == method)
    return pareto.arm_name(entry, entry.grid[index])


def _fixture():
    """Three validation and three held-out seeds; the known answers are in the test."""
    bench = pareto.make_pareto(seeds=3, val_seeds=3, methods=["rnode", "taynode", "frobenius"])
    val, held = bench.validation_seeds, bench.heldout_seeds
    plan = {   # arm: (validation [(nfe, acc)], held-out [(nfe, acc)]); None: diverged
        "none": ([(32, .995), (34, .995), (36, .995)], [(30, .998), (32, .997), (34, .996)]),
        _point("rnode", 0): ([(28, .995)] * 3, [(26, .97), (24, .97), (28, .97)]),
        _point("rnode", 1): ([(20, .985)] * 3, [(18, .99), (20, .985), None]),
        # lowest NFE and the best accuracy, but one validation run diverged: never eligible;
        # its held-out runs are the best of all, which must not matter
        _point("rnode", 2): ([(14, .999), (14, .999), None], [(10, 1.0)] * 3),
        _point("taynode", 0): ([(20, .995)] * 3, [(22, .995)] * 3),
        _point("taynode", 1): ([(20, .997)] * 3, [(21, .996), (20, .996), (22, .996)]),
        _point("taynode", 2): ([(14, .9)] * 3, [(14, .9)] * 3),
    }
    records = []
    for arm in (a.name for a in bench.study.arms):
        runs = plan.get(arm, ([(20, .9)] * 3, [(20, .9)] * 3))   # frobenius: never eligible
        for seeds, values in zip((val, held), runs):
            for seed, value in zip(seeds, values):
                records.append(_run(arm, seed, 0, 0.5, "diverged") if value is None
                               else _run(arm, seed, *value))
    return bench, records, plan


def test_selection_uses_validation_only_and_reports_held_out():
    bench, records, plan = _fixture()
    rows = point_rows(records, bench, bench.thresholds)
    assert len(rows) == 2 * len(bench.points)
    chosen = {t: {m: r and r["arm"] for m, r in select(rows, t).items()} for t in (0.99, 0.98)}
    assert chosen[0.99] == {"none": "none", "rnode": _point("rnode", 0),
                            "taynode": _point("taynode", 1),   # tie on NFE: higher accuracy
                            "frobenius": None}
    assert chosen[0.98] == {"none": "none", "rnode": _point("rnode", 1),
                            "taynode": _point("taynode", 1), "frobenius": None}
    table = {r["method"]: r for r in matched_rows(records, rows, bench, 0.98)}
    rnode = table["rnode"]
    assert (rnode["val_nfe"], rnode["val_acc"]) == (20.0, pytest.approx(0.985))
    assert rnode["n"] == 2 and rnode["nfe_mean"] == 19.0   # the diverged held-out run has none
    assert rnode["reliability"] == pytest.approx(2 / 3)    # ... and counts as a miss
    test = compare([18, 20], [30, 32, 34])
    assert (rnode["nfe_diff"], rnode["welch_p"]) == (test["diff"], test["welch_p"])
    assert rnode["nfe_change_pct"] == pytest.approx(100 * test["diff"] / 32)
    tay = compare([21, 20, 22], [30, 32, 34])
    assert [table["rnode"]["p_holm"], table["taynode"]["p_holm"]] == pytest.approx(
        list(holm([test["welch_p"], tay["welch_p"]])))
    assert table["none"]["welch_p"] is None and table["none"]["nfe_mean"] == 32.0
    assert table["frobenius"]["arm"] is None and table["frobenius"]["nfe_mean"] is None
    assert table["taynode"]["sec_per_epoch"] == pytest.approx(0.21)   # median of 2.1, 2.0, 2.2
    # held-out results never move the choice: rnode's first point is chosen at 0.99 although
    # its held-out accuracy is 0.97; make its second point perfect on held-out seeds
    for record in records:
        if record["arm"] == _point("rnode", 1) and record["seed"] in bench.heldout_seeds:
            record["summary"].update(status="finished", nfe=5, test_accuracy=1.0)
    rows = point_rows(records, bench, bench.thresholds)
    assert select(rows, 0.99)["rnode"]["arm"] == _point("rnode", 0)


def test_mean_ci_is_the_t_interval():
    values = [1.0, 2.0, 3.0, 6.0]
    result = mean_ci(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2.0
    assert result["mean"] == 3.0
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((3.0 - half, 3.0 + half))
    assert mean_ci([4.0, 4.0]) == {"n": 2, "mean": 4.0, "ci_low": 4.0, "ci_high": 4.0}
    assert mean_ci([4.0])["ci_low"] is None and mean_ci([])["mean"] is None


def test_front_keeps_the_non_dominated_points():
    points = [(0.99, 30), (0.98, 20), (0.97, 25), (0.999, 40), (0.98, 20.5), (0.9, 14)]
    assert front(points) == [5, 1, 0, 3]


@pytest.mark.slow
def test_quick_pareto_writes_every_output_and_skips_finished_runs(tmp_path):
    out = str(tmp_path / "pareto")
    base = ("pareto", "--quick", "--epochs", "3", "--out", out, "--jobs", "2")
    proc = _cli(*base, "--methods", "rnode")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    first = {}
    for root, _, files in os.walk(os.path.join(out, "runs")):
        if "summary.json" in files:
            path = os.path.join(root, "summary.json")
            first[path] = os.stat(path).st_mtime_ns
    assert len(first) == 3 * 4   # none and rnode's two ends × (2 + 2 seeds)

    proc = _cli(*base, "--methods", "rnode", "steer")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    assert "8 runs to do, 12 already finished" in stderr.decode()
    for path, mtime in first.items():
        assert os.stat(path).st_mtime_ns == mtime, f"{path} was trained again"
    with open(os.path.join(out, "pareto.csv")) as handle:
        rows = list(csv.DictReader(handle))
    arms = ["none", _point("rnode", 0), _point("rnode", 2), "steer-0.25", "steer-0.75"]
    assert [(r["stage"], r["arm"]) for r in rows] == [
        (stage, arm) for stage in ("validation", "heldout") for arm in arms]
    assert all(r["n_finished"] == "2" and r["sec_per_epoch"] for r in rows)
    saved = json.load(open(os.path.join(out, "pareto.json")))
    assert saved["heldout_seeds"] == [3000, 3001] and saved["validation_seeds"] == [100, 101]
    assert set(saved["matched"]) == {"0.8", "0.6"}
    text = open(os.path.join(out, "pareto.md")).read()
    assert "### Test accuracy ≥ 0.8" in text and "## Every grid point" in text
    figure = os.path.join(out, "fig_pareto.png")
    with open(figure, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    os.unlink(figure)
    proc = _cli("plot", "--from", out)   # redrawn from the saved files alone
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and stdout.decode().split() == [figure], stderr.decode()
