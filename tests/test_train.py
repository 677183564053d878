"""Training loop, checkpoints, resume, divergence and the train CLI."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from odejac.io import read_json, read_npz
from odejac.train import DivergenceError, TrainConfig, fit, new_state, train
from interrupts import dies_after_commit

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = TrainConfig(epochs=4, n_train=120, n_test=100, batch_size=40, hidden=(8, 8))


def test_same_seed_is_bit_identical(tmp_path):
    a_state, a_summary = train(SMALL, tmp_path / "a")
    b_state, b_summary = train(SMALL, tmp_path / "b")
    np.testing.assert_array_equal(a_state.model.theta, b_state.model.theta)
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(a_state.history) == strip(b_state.history)
    c_state, _ = train(SMALL.replace(seed=1), tmp_path / "c")
    assert not np.array_equal(a_state.model.theta, c_state.model.theta)


def test_run_directory_contents(tmp_path):
    state, summary = train(SMALL.replace(reg="condition", lam=1e-3), tmp_path)
    for name in ("config.json", "history.json", "state.npz", "params.npz", "summary.json"):
        assert (tmp_path / name).exists(), name
    assert TrainConfig.from_dict(read_json(tmp_path / "config.json")) == \
        SMALL.replace(reg="condition", lam=1e-3)
    history = read_json(tmp_path / "history.json")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    for key in ("loss", "loss_data", "loss_reg", "train_accuracy", "nfe_forward", "nfe_backward",
                "kappa", "time"):
        assert np.isfinite(history[-1][key]), key
    assert history[-1]["loss_reg"] > 0
    assert summary["status"] == "finished"
    assert 0.5 <= summary["test_accuracy"] <= 1.0
    assert summary["nfe"] >= 14 and summary["kappa_mean"] >= 1.0
    np.testing.assert_array_equal(read_npz(tmp_path / "params.npz")["theta"], state.model.theta)


class _Killed(Exception):
    pass


def test_resume_continues_bit_identically(tmp_path, monkeypatch):
    full, _ = train(SMALL, tmp_path / "full")
    # the run is killed after epoch 2
    with dies_after_commit(monkeypatch, epoch=2, error=_Killed), pytest.raises(_Killed):
        train(SMALL, tmp_path / "part")
    assert not (tmp_path / "part" / "summary.json").exists()
    resumed, summary = train(SMALL, tmp_path / "part")
    assert summary["epochs_done"] == 4
    np.testing.assert_array_equal(resumed.model.theta, full.model.theta)
    assert read_json(tmp_path / "part" / "history.json")[-1]["loss"] == full.history[-1]["loss"]


def test_finished_run_is_skipped(tmp_path):
    train(SMALL, tmp_path)
    before = (tmp_path / "summary.json").stat().st_mtime_ns
    state, summary = train(SMALL, tmp_path)
    assert (tmp_path / "summary.json").stat().st_mtime_ns == before
    assert summary["status"] == "finished" and state.epoch == 4


def test_different_config_in_out_dir_is_refused(tmp_path):
    train(SMALL, tmp_path)
    with pytest.raises(ValueError, match="different config"):
        train(SMALL.replace(lam=0.5, reg="spectral"), tmp_path)


def test_divergence_keeps_last_good_checkpoint(tmp_path):
    """A learning rate that blows the field up stops cleanly and records why."""
    config = SMALL.replace(lr=1e4, epochs=6, rtol=1e-6, atol=1e-6, adjoint_rtol=1e-6,
                           adjoint_atol=1e-6)
    state, summary = train(config, tmp_path)
    assert summary["status"] == "diverged"
    assert summary["error"]
    done = summary["epochs_done"]
    assert done < 6
    assert len(read_json(tmp_path / "history.json")) == done
    assert np.all(np.isfinite(state.model.theta))


@pytest.mark.parametrize("failure", ["nan", "solver"])
def test_fit_raises_divergence_and_restores_parameters(failure):
    """A failure mid-epoch restores the parameters of the last finished epoch."""
    from odejac.integrate import SolverError

    state = new_state(SMALL, 2, 2)
    X = np.random.default_rng(0).normal(size=(80, 2))
    y = np.arange(80) % 2
    fit(state, SMALL.replace(epochs=1), X, y)
    after_one = state.model.theta
    real = state.model.loss_and_grad
    calls = []

    def flaky(Xb, yb):
        calls.append(1)
        if len(calls) == 2:  # second batch of epoch 2
            if failure == "solver":
                raise SolverError("step size underflow", 0.5, 1e-17)
            loss, grad, stats = real(Xb, yb)
            return np.nan, grad, stats
        return real(Xb, yb)

    state.model.loss_and_grad = flaky
    with pytest.raises(DivergenceError, match="underflow" if failure == "solver" else "non-finite"):
        fit(state, SMALL.replace(epochs=3), X, y)
    assert state.epoch == 1
    np.testing.assert_array_equal(state.model.theta, after_one)


def _recorded_fit(config, X, y):
    """Fit ``config`` from scratch; the raw gradients and those Adam received, per step."""
    state = new_state(config, 2, 2)
    raw, seen = [], []
    real_grad, real_step = state.model.loss_and_grad, state.optimizer.step

    def loss_and_grad(Xb, yb):
        loss, grad, stats = real_grad(Xb, yb)
        raw.append(grad.copy())
        return loss, grad, stats

    def step(theta, grad):
        seen.append(np.array(grad, copy=True))
        return real_step(theta, grad)

    state.model.loss_and_grad, state.optimizer.step = loss_and_grad, step
    fit(state, config, X, y)
    return state, raw, seen


def _toy_data():
    X = np.random.default_rng(1).normal(size=(120, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def test_grad_clip_bounds_what_adam_receives():
    X, y = _toy_data()
    bound = 0.05
    state, raw, seen = _recorded_fit(SMALL.replace(grad_clip=bound), X, y)
    raw_norms = np.linalg.norm(raw, axis=1)
    seen_norms = np.linalg.norm(seen, axis=1)
    assert np.any(raw_norms > bound)          # else the bound was never tested
    assert np.all(seen_norms <= bound * (1 + 1e-12))
    for g, s in zip(raw, seen):               # clipping rescales, never turns the direction
        np.testing.assert_allclose(s, g * min(1.0, bound / np.linalg.norm(g)), rtol=1e-12)
    share = np.mean(raw_norms > bound)
    assert np.mean([r["clipped"] for r in state.history]) == pytest.approx(share)


def test_grad_clip_zero_leaves_training_bit_identical():
    X, y = _toy_data()
    off, raw, seen = _recorded_fit(SMALL, X, y)
    assert SMALL.grad_clip == 0.0
    for g, s in zip(raw, seen):
        np.testing.assert_array_equal(s, g)
    assert all("clipped" not in r for r in off.history)
    # A bound no gradient reaches takes the clipping branch and must not move a bit either.
    loose, _, _ = _recorded_fit(SMALL.replace(grad_clip=1e300), X, y)
    np.testing.assert_array_equal(loose.model.theta, off.model.theta)
    assert all(r["clipped"] == 0 for r in loose.history)


@pytest.mark.nojit
@pytest.mark.parametrize("kwargs,match", [
    (dict(reg="l1"), "reg"), (dict(lam=-0.1), "lam"), (dict(epochs=0), "epochs"),
    (dict(rtol=0.0), "rtol"), (dict(batch_size=0), "batch_size"), (dict(hidden=()), "hidden"),
    (dict(dataset="mnist"), "dataset"), (dict(lr=float("nan")), "lr"),
    (dict(grad_clip=-1.0), "grad_clip"), (dict(grad_clip=float("inf")), "grad_clip"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args,match", [
    (["train", "--reg", "bogus"], "invalid choice"),
    (["train", "--lam", "-1"], "lam must be"),
    (["train", "--rtol", "0"], "rtol must be"),
    (["train", "--epochs", "0"], "epochs must be"),
    (["train", "--grad-clip", "-1"], "grad_clip must be"),
    (["nonsense"], "invalid choice"),
])
def test_cli_bad_options_exit_2_with_one_line(args, match):
    result = _cli(*args)
    assert result.returncode == 2
    assert match in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_cli_train_runs_and_saves(tmp_path):
    result = _cli("train", "--epochs", "2", "--n-train", "100", "--n-test", "100", "--hidden",
                  "8", "8", "--reg", "condition", "--lam", "1e-3", "--out", str(tmp_path),
                  "--quiet")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "NFE" in result.stdout
    assert read_json(tmp_path / "summary.json")["status"] == "finished"
