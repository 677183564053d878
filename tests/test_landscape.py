"""The landscape: its verdicts on synthetic records, and `landscape --quick` end to end,
killed with SIGKILL part-way and resumed."""
import csv
import json
import os

import pytest

from odejac.study import StudyConfig, landscape
from odejac.study.inference import compare, kept_share_test

from test_experiments import PNG_MAGIC, _assert_not_redone, _cli, _sigkill_part_way


def _records(arm, nfes, accs, status="finished"):
    return [dict(arm=arm, reg=arm, lam=0.0, lam_warmup=0, ours=False, seed=s, dir="",
                 summary={"status": status, "nfe": n, "test_accuracy": a}, history=None,
                 robustness=None) for s, (n, a) in enumerate(zip(nfes, accs))]


def test_verdicts_follow_their_definition():
    setting = landscape.grid()[0]
    none = _records("none", [34, 36, 35, 37, 33, 35, 36, 34, 35, 35], [0.99] * 10)
    arms = {
        "holds": _records("holds", [27, 28, 26, 27, 29, 28, 27, 26, 28, 27], [0.99] * 10),
        "same_nfe": _records("same_nfe", [34, 36, 35, 37, 33, 35, 36, 34, 35, 36], [0.99] * 10),
        # NFE cut, but only 8 of 10 runs keep accuracy (< 90 %)
        "lossy": _records("lossy", [27, 28, 26, 27, 29, 28, 27, 26, 28, 27],
                          [0.99] * 8 + [0.5] * 2),
        "worse": _records("worse", [40, 41, 39, 40, 42, 38, 40, 41, 39, 40], [0.5] * 10)}
    records = none + [r for group in arms.values() for r in group]
    rows = {row["arm"]: row for row in landscape.landscape_rows({setting: records})}
    assert {arm: row["verdict"] for arm, row in rows.items()} == {
        "holds": "holds", "same_nfe": "NFE not cut", "lossy": "costs accuracy",
        "worse": "both fail"}
    row = rows["holds"]
    test = compare([27, 28, 26, 27, 29, 28, 27, 26, 28, 27],
                   [34, 36, 35, 37, 33, 35, 36, 34, 35, 35])
    assert row["nfe_change_pct"] == pytest.approx(100 * test["diff"] / 35.0)
    assert row["nfe_change_ci_low_pct"] == pytest.approx(100 * test["ci_low"] / 35.0)
    assert (row["welch_p"], row["kept_arm"], row["kept_none"]) == (test["welch_p"], 1.0, 1.0)
    assert rows["lossy"]["kept_p"] == pytest.approx(kept_share_test(8, 10, 10, 10))
    assert row["setting"] == setting.name and row["D"] == 2 and row["tol"] == 1e-3
    # one finished run a side is not enough for a verdict
    few = _records("none", [30], [0.99]) + _records("x", [20], [0.99])
    assert landscape.landscape_rows({setting: few})[0]["verdict"] == "not tested"


def test_grid_covers_every_axis():
    settings = landscape.grid()
    assert len(settings) == 16 and len({s.name for s in settings}) == 16
    assert {(s.augment_dim, s.tol, s.time_dependent, s.lr) for s in settings} == {
        (d, t, f, lr) for d in (0, 2) for t in (1e-3, 1e-5) for f in (False, True)
        for lr in (1e-2, 1e-3)}
    study = landscape.make_landscape(seeds=3, first_seed=100)[settings[-1]]
    config = study.config(study.arms[2], 101)
    assert (config.augment_dim, config.rtol, config.adjoint_atol, config.time_dependent,
            config.lr, config.seed, config.epochs) == (2, 1e-5, 1e-5, True, 1e-3, 101, 100)
    assert [arm.name for arm in study.arms] == ["none", "condition", "robust"]


@pytest.mark.slow
def test_quick_landscape_survives_sigkill_and_writes_every_output(tmp_path):
    out = str(tmp_path / "map")
    # 10 epochs: runs of ≈ 0.5 s, so the kill lands part-way through the map.
    args = ("landscape", "--quick", "--epochs", "10", "--out", out, "--jobs", "2")
    grid = landscape.make_landscape(quick=True, epochs=10)
    summaries = [os.path.join(landscape.setting_dir(out, setting), "runs", arm.name,
                              f"seed-{seed:02d}", "summary.json")
                 for setting, study in grid.items() for arm, seed, _ in study.runs()]
    proc = _cli(*args, start_new_session=True)
    done = _sigkill_part_way(proc, summaries, "map")

    proc = _cli(*args)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    assert f"{len(done)} already finished" in stderr.decode()
    _assert_not_redone(done)
    with open(os.path.join(out, "landscape.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["setting"], r["arm"]) for r in rows] == [
        (s.name, arm) for s in grid for arm in ("condition", "robust")]
    assert {r["verdict"] for r in rows} <= set(landscape.VERDICTS)
    saved = json.load(open(os.path.join(out, "landscape.json")))
    assert saved["seeds"] == [0, 1] and len(saved["rows"]) == len(rows)
    assert "| verdict |" in open(os.path.join(out, "landscape.md")).read()
    figure = os.path.join(out, "fig_landscape.png")
    with open(figure, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    os.unlink(figure)
    from odejac.study.plots import plot_results

    assert plot_results(out) == [figure] and os.path.exists(figure)  # from the saved files


def test_landscape_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    setting = landscape.grid()[-1]  # D = 4, tolerance 1e-5, time-dependent, lr 1e-3
    study = landscape.make_landscape(seeds=2, quick=True, epochs=2)[setting]
    tiny = {setting: StudyConfig(base=study.base.replace(n_train=64, n_test=64),
                                 arms=study.arms, seeds=study.seeds)}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        result = landscape.run_landscape(str(tmp_path), tiny, backend="dask",
                                         scheduler=cluster.scheduler_address, plots=False,
                                         log=lambda line: None)
    assert result["trained"] == result["runs"] == 6
    rows = json.load(open(tmp_path / "landscape.json"))["rows"]
    assert [(r["setting"], r["arm"]) for r in rows] == [(setting.name, "condition"),
                                                        (setting.name, "robust")]
