"""The study end to end (--quick), its resume after SIGKILL, and the tables and claims.

The aggregation and claims tests run on synthetic records whose right answers
are known by construction, so they can fail when the arithmetic or a verdict
is wrong; the end-to-end tests use the real (tiny) pipeline.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from odejac.study import claims, experiments, tables
from odejac.study import Arm, StudyConfig, load_records, load_study, run_dir
from odejac.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("table1.md", "table1.csv", "table1.json", "per_seed.csv", "claims.md",
           "claims.json", "study.json", "data.npz")


def _cli(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "cli.py"), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _sigkill_part_way(proc, summaries, what):
    """SIGKILL ``proc``'s process group once one of ``summaries`` exists; ``{path: (mtime,
    bytes)}`` of those written by then (some, not all: the kill lands part-way)."""
    deadline = time.monotonic() + 120
    while not any(os.path.exists(path) for path in summaries):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its loky workers: one process group
    proc.wait()
    done = {}
    for path in summaries:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                done[path] = (os.stat(path).st_mtime_ns, handle.read())
    assert 0 < len(done) < len(summaries), f"the kill must land part-way through the {what}"
    return done


def _assert_not_redone(done):
    """Every summary in ``done`` (from :func:`_sigkill_part_way`) is untouched by the rerun."""
    for path, (mtime, content) in done.items():
        with open(path, "rb") as handle:
            assert handle.read() == content, f"{path} was trained again"
        assert os.stat(path).st_mtime_ns == mtime, f"{path} was rewritten"


def _check_outputs(out):
    for name in OUTPUTS:
        path = os.path.join(out, name)
        assert os.path.getsize(path) > 0, f"{name} is empty"
    from odejac.study.plots import FIGURES

    for name in FIGURES:
        with open(os.path.join(out, name), "rb") as handle:
            assert handle.read(8) == PNG_MAGIC, f"{name} is not a PNG"


# -- end to end ------------------------------------------------------------------------------

@pytest.mark.slow
def test_quick_study_writes_every_output(tmp_path):
    out = str(tmp_path / "study")
    study = experiments.make_study(quick=True, first_seed=99)  # seeds 99 and 100
    assert study.seeds == (99, 100)
    result = experiments.run_experiments(out, study, jobs=1, log=lambda line: None)
    assert result["trained"] == result["runs"] == len(study.arms) * 2
    _check_outputs(out)
    assert sorted(os.listdir(os.path.join(out, "runs", "robust"))) == ["seed-100", "seed-99"]
    for record in load_records(out, study):
        assert record["summary"]["status"] == "finished"
        assert {"noise", "fgsm", "pgd", "margin", "settings"} <= set(record["robustness"])
        assert os.path.exists(os.path.join(record["dir"], "regions.npz"))
        assert json.load(open(os.path.join(record["dir"], "config.json")))["seed"] == \
            record["seed"]
    table = json.load(open(os.path.join(out, "table1.json")))
    assert [row["arm"] for row in table["rows"]] == [arm.name for arm in study.arms]
    assert table["rows"][-1]["arm"] == "robust"
    assert [row["ours"] for row in table["rows"]] == [False] * 4 + [True] * 3
    assert all(row["paper_nfe_mean"] is None for row in table["rows"] if row["ours"])
    with open(os.path.join(out, "per_seed.csv")) as handle:
        header = handle.readline().strip().split(",")
        lines = handle.read().splitlines()
    assert header[:5] == ["arm", "seed", "status", "test_accuracy", "nfe"]
    assert len(lines) == len(study.runs()) and lines[-1].startswith("robust,100,finished,")
    assert "| robust: condition number (**ours**) |" in open(os.path.join(out, "table1.md")).read()
    verdicts = json.load(open(os.path.join(out, "claims.json")))["claims"]
    assert [c["claim"] for c in verdicts] == ["C0", "C1", "C1 (ours: log_condition)",
                                              "C1 (ours: condition_capped)",
                                              "C1 (ours: robust)", "C2", "C3", "C4", "C5"]
    assert load_study(out) == study
    again = experiments.run_experiments(out, study, jobs=1, log=lambda line: None)
    assert again["trained"] == 0, "a finished study must not train anything again"


@pytest.mark.slow
def test_cli_sweep_and_plot(tmp_path):
    out = str(tmp_path / "sweep")
    proc = _cli("sweep", "--quick", "--regs", "condition", "--out", out, "--jobs", "1",
                "--first-seed", "7")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert sorted(os.listdir(os.path.join(out, "runs", "none"))) == ["seed-07", "seed-08"]
    assert load_study(out).seeds == (7, 8)
    rows = json.load(open(os.path.join(out, "sweep.json")))["rows"]
    assert [(r["reg"], r["lam"]) for r in rows] == [("none", 0.0), ("condition", 1e-3),
                                                    ("condition", 1.0)]
    os.unlink(os.path.join(out, "fig_sweep.png"))
    proc = _cli("plot", "--from", out)
    assert proc.wait(timeout=60) == 0
    assert os.path.exists(os.path.join(out, "fig_sweep.png"))


def test_cli_rejects_bad_options(tmp_path, capsys):
    proc = _cli("experiments", "--seeds", "0")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and stderr.decode().count("\n") == 1
    from odejac.cli import build_parser

    for command in ("experiments", "sweep", "landscape"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--first-seed", "-1"])
        assert exit_info.value.code == 2 and "--first-seed" in capsys.readouterr().err
    out = str(tmp_path / "never")
    proc = _cli("experiments", "--backend", "dask", "--quick", "--out", out)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "dask" in stderr.decode()
    assert not os.path.exists(out), "nothing may be written before the options are checked"


@pytest.mark.slow
def test_sigkill_then_resume_redoes_nothing_finished(tmp_path):
    out = str(tmp_path / "killed")
    # 30 epochs make each run take ~1 s, so the kill lands part-way through the study.
    args = ("experiments", "--quick", "--epochs", "30", "--out", out, "--jobs", "2")
    proc = _cli(*args, start_new_session=True)
    study = experiments.make_study(quick=True, epochs=30)
    summaries = [os.path.join(run_dir(out, arm, seed), "summary.json")
                 for arm, seed, _ in study.runs()]
    done = _sigkill_part_way(proc, summaries, "study")

    proc = _cli(*args)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    _assert_not_redone(done)
    assert "already finished" in stderr.decode()
    _check_outputs(out)
    assert all(r["summary"]["status"] == "finished" for r in load_records(out, study))


# -- aggregation on synthetic records -----------------------------------------------------------

def _record(arm, seed, *, acc, nfe, kappa, status="finished", margin=None, noisy=None,
            reg=None, ours=False, nfe_first=14):
    summary = {"status": status, "test_accuracy": acc, "nfe": nfe, "kappa_mean": kappa,
               "kappa_median": kappa}
    robustness = None
    if margin is not None:
        robustness = {"margin": {"median": margin},
                      "noise": {"stds": [0.0, 0.1, 0.2], "accuracy": [acc, noisy, noisy]}}
    history = [{"nfe_forward": nfe_first}, {"nfe_forward": nfe}]
    return dict(arm=arm, reg=reg or arm, lam=0.1, lam_warmup=0, ours=ours, seed=seed, dir="",
                summary=summary, history=history, robustness=robustness)


def test_table1_rows_means_stds_and_success_counts():
    records = [_record("none", s, acc=a, nfe=n, kappa=k) for s, (a, n, k) in
               enumerate([(0.99, 30, 4.0), (1.0, 34, 6.0), (0.97, 38, 8.0)])]
    records.append(_record("none", 3, acc=0.5, nfe=99, kappa=1e3, status="diverged"))
    records += [_record("variant", s, acc=0.99, nfe=26, kappa=2.0, reg="log_condition",
                        ours=True) for s in range(2)]
    none, variant = tables.table1_rows(records)
    assert (none["n_runs"], none["n_finished"], none["n_success"]) == (4, 3, 2)
    assert none["nfe_mean"] == pytest.approx(34.0) and none["nfe_std"] == pytest.approx(4.0)
    assert none["test_accuracy_std"] == pytest.approx(np.std([0.99, 1.0, 0.97], ddof=1))
    assert none["kappa_mean_mean"] == pytest.approx(6.0)
    assert (none["paper_nfe_mean"], none["paper_nfe_std"]) == (34.98, 2.98)
    assert variant["paper_nfe_mean"] is None and variant["nfe_std"] == 0.0
    text = tables.table1_markdown([none, variant], tables.per_seed_rows(records))
    assert "34.00 ± 4.00" in text and "34.98 ± 2.98" in text and "(**ours**)" in text
    assert "| 2/4 |" in text and "diverged" in text


def test_records_round_trip_through_disk(tmp_path):
    study = StudyConfig(base=TrainConfig(), arms=(Arm("none", "none", 0.0),
                                                 Arm("a b/c", "frobenius", 1.0)), seeds=(0, 3))
    from odejac.io import write_json

    for arm, seed, config in study.runs():
        d = run_dir(str(tmp_path), arm, seed)
        write_json(os.path.join(d, "config.json"), config.to_dict())
        write_json(os.path.join(d, "summary.json"), {"status": "finished", "nfe": seed})
    assert run_dir("", study.arms[1], 3) == os.path.join("runs", "a_b_c", "seed-03")
    records = load_records(str(tmp_path), study)
    assert [(r["arm"], r["seed"], r["summary"]["nfe"]) for r in records] == [
        ("none", 0, 0), ("none", 3, 3), ("a b/c", 0, 0), ("a b/c", 3, 3)]
    assert all(r["robustness"] is None for r in records)
    config = study.config(study.arms[1], 3)
    assert experiments.is_done(run_dir(str(tmp_path), study.arms[1], 3), config, None)
    assert not experiments.is_done(run_dir(str(tmp_path), study.arms[1], 3), config,
                                   experiments.QUICK_EVAL)
    with pytest.raises(ValueError, match="different config"):
        experiments.check_config(run_dir(str(tmp_path), study.arms[1], 3),
                                 config.replace(epochs=7))


def test_seed_directories_stay_unambiguous():
    arm = Arm("none", "none", 0.0)
    names = [os.path.basename(run_dir("", arm, s)) for s in (0, 5, 10, 99, 100, 101, 1000)]
    assert names == ["seed-00", "seed-05", "seed-10", "seed-99", "seed-100", "seed-101",
                     "seed-1000"]
    with pytest.raises(ValueError, match="seeds must be >= 0"):
        run_dir("", arm, -1)
    assert experiments.seed_range(3, 100) == (100, 101, 102)
    with pytest.raises(ValueError, match="first seed"):
        experiments.make_study(first_seed=-2)


def test_arm_overrides_round_trip_and_reach_the_config():
    arm = Arm("traj", "condition", 1e-2, ours=True, reg_at="trajectory", adjoint_rtol=1e-6,
              hidden=[16, 16], overrides={"lam_warmup": 20})
    assert arm.overrides == (("adjoint_rtol", 1e-6), ("hidden", (16, 16)),
                             ("lam_warmup", 20), ("reg_at", "trajectory"))
    assert hash(arm) == hash(Arm.from_dict(json.loads(json.dumps(arm.to_dict()))))
    study = StudyConfig(base=TrainConfig(), arms=(arm,), seeds=(4,))
    assert StudyConfig.from_dict(json.loads(json.dumps(study.to_dict()))) == study
    config = study.config(arm, 4)
    assert (config.reg_at, config.adjoint_rtol, config.hidden, config.lam_warmup,
            config.seed, config.adjoint_atol) == ("trajectory", 1e-6, (16, 16), 20, 4, 1e-3)
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        Arm("bad", "none", 0.0, clip_norm=1.0)
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        Arm("bad", "none", 0.0, seed=3)
    with pytest.raises(ValueError, match="reg_at"):  # a bad value fails when the study is built
        StudyConfig(base=TrainConfig(), arms=(Arm("x", "none", 0.0, reg_at="nowhere"),),
                    seeds=(0,))


def test_old_study_json_still_loads(tmp_path):
    """A study.json written before arms carried overrides (flat lam_warmup and cond_eps)."""
    from odejac.io import write_json

    old_arms = [{"name": "none", "reg": "none", "lam": 0.0, "lam_warmup": 0, "ours": False,
                 "cond_eps": 1e-8},
                {"name": "condition_capped", "reg": "condition", "lam": 1e-3, "lam_warmup": 0,
                 "ours": True, "cond_eps": 1e-2},
                {"name": "warm", "reg": "condition", "lam": 1e-3, "lam_warmup": 20,
                 "ours": True, "cond_eps": 1e-8}]
    write_json(str(tmp_path / "study.json"), {"base": TrainConfig(augment_dim=0).to_dict(),
                                              "arms": old_arms, "seeds": [0, 1],
                                              "evaluation": None})
    study = load_study(str(tmp_path))
    assert study.arms == (Arm("none", "none", 0.0),
                          Arm("condition_capped", "condition", 1e-3, ours=True, cond_eps=1e-2),
                          Arm("warm", "condition", 1e-3, ours=True, lam_warmup=20))
    assert [study.config(arm, 1).cond_eps for arm in study.arms] == [1e-8, 1e-2, 1e-8]
    assert study.config(study.arms[2], 1).lam_warmup == 20


# -- claims on synthetic data -------------------------------------------------------------------

def _paper_like(condition_acc=0.997, norm_margin=0.6, norm_noisy=0.85, n=8, nfe_first=14):
    """Records shaped like the paper's Table 1 (spread by seed so the tests have variance)."""
    rng = np.random.default_rng(0)
    arms = {  # accuracy, NFE, κ, boundary distance, accuracy under noise
        "none": (0.9975, 35, 5.0, 0.3, 0.95),
        "frobenius": (0.886, 14, 30.0, norm_margin, norm_noisy),
        "spectral": (0.885, 16, 45.0, norm_margin, norm_noisy),
        "condition": (condition_acc, 27, 6.0, 0.3, 0.95)}
    records = []
    for arm, (acc, nfe, kappa, margin, noisy) in arms.items():
        for s in range(n):
            records.append(_record(arm, s, acc=acc + 0.001 * rng.standard_normal(),
                                   nfe=nfe + rng.integers(-1, 2),
                                   kappa=kappa * rng.uniform(0.8, 1.25),
                                   margin=margin + 0.01 * rng.standard_normal(),
                                   noisy=noisy + 0.005 * rng.standard_normal(),
                                   nfe_first=nfe_first))
    return records


def test_claims_reproduced_on_paper_like_data():
    evaluated = claims.evaluate_claims(_paper_like())
    verdicts = {c["claim"]: c["verdict"] for c in evaluated}
    assert verdicts == dict.fromkeys(["C0", "C1", "C2", "C3", "C4", "C5"], "reproduced")
    assert {c["claim"]: c["verdict_holm"] for c in evaluated} == verdicts
    nfe, acc = next(c for c in evaluated if c["claim"] == "C1")["comparisons"]
    assert nfe["welch_p"] <= nfe["holm_p"] <= 1 and nfe["ci_high"] < 0 < -nfe["ci_low"]
    assert acc["holm_p"] is None  # decided by the accuracy margin, not by its p-value


def test_claims_not_reproduced_when_the_data_say_otherwise():
    records = _paper_like(condition_acc=0.90, norm_margin=0.1, norm_noisy=0.99, nfe_first=50)
    verdicts = {c["claim"]: c["verdict"] for c in claims.evaluate_claims(records)}
    assert verdicts["C0"] == "not reproduced"  # NFE fell from 50 to ≈ 35
    assert verdicts["C1"] == "partly reproduced"  # NFE still lower, accuracy not kept
    assert verdicts["C4"] == verdicts["C5"] == "not reproduced"
    assert verdicts["C3"] == "reproduced"
    text = claims.claims_markdown(claims.evaluate_claims(records))
    assert "**Verdict: not reproduced** (after Holm's correction: not reproduced)." in text


def test_claims_need_two_runs_per_group():
    records = [r for r in _paper_like() if r["seed"] == 0]
    verdicts = {c["verdict"] for c in claims.evaluate_claims(records)}
    assert verdicts == {"not tested (too few finished runs)"}


def test_compare_handles_constant_samples():
    rise = claims.compare_paired([20, 21, 22], [14, 14, 14])  # t = 7 / (1 / √3), 2 dof
    assert rise["diff"] == 7.0 and rise["welch_p"] == pytest.approx(0.006734, abs=1e-6)
    assert claims.compare_paired([20, 20], [14, 14])["welch_p"] == 0.0
    same = claims.compare([14, 14, 14], [14, 14])
    assert same["welch_p"] == 1.0 and same["mannwhitney_p"] == 1.0
    differ = claims.compare([14, 14], [20, 20])
    assert differ["welch_p"] == 0.0 and differ["diff"] == -6.0


def test_study_overrides_reach_every_run():
    study = experiments.make_study(quick=True, dataset="digits",
                                   overrides={"hidden": (64, 64), "kappa": "matrix-free"})
    configs = [config for _, _, config in study.runs()]
    assert all(c.hidden == (64, 64) and c.kappa == "matrix-free" and c.dataset == "digits"
               for c in configs)
    capped = [c for arm, _, c in study.runs() if arm.name == "condition_capped"]
    assert capped and all(c.cond_eps == 1e-2 and c.reg == "condition" for c in capped)
    robust = [c for arm, _, c in study.runs() if arm.name == "robust"]
    assert robust and all(c.replace(**dict(experiments.ROBUST.overrides)) == c for c in robust)
    with pytest.raises(ValueError, match="kappa"):
        experiments.make_study(quick=True, overrides={"kappa": "approximate"})
