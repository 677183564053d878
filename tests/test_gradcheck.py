"""``python cli.py gradcheck`` and ``python cli.py trace`` on tiny models (odejac/gradcheck.py,
odejac/trace.py)."""
import pathlib
import sys

import numpy as np
import pytest

from odejac import gradcheck
from odejac.io import read_json
from odejac.train import TrainConfig, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cli  # noqa: E402

TINY = ["--n-train", "40", "--n-test", "10", "--hidden", "5", "5", "--batch-size", "16"]


def test_probes_and_stencil():
    V = gradcheck.probe_vectors(10, 3, 4, seed=0)
    assert V.shape == (7, 10)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0)
    assert np.all((V[3:] == 1).sum(axis=1) == 1)
    # The 5-point stencil is exact for quartics.
    quartic = lambda x: float(x @ x) ** 2 + 3 * x[0] ** 3
    x = np.array([0.3, -0.2])
    d = gradcheck.fd_directional(quartic, x, np.eye(2), 0.1)
    exact = 4 * float(x @ x) * x + np.array([9 * x[0] ** 2, 0.0])
    np.testing.assert_allclose(d, exact, rtol=1e-12)


def test_gradcheck_cli_table_json_and_figure(tmp_path, capsys):
    out, fig = tmp_path / "gc", tmp_path / "gradcheck.png"
    code = cli.main(["gradcheck", *TINY, "--tols", "1e-3", "1e-7", "--fd-tol", "1e-10",
                     "--repeats", "1", "--directions", "2", "--coords", "2",
                     "--out", str(out), "--figure", str(fig)])
    assert code == 0
    text = capsys.readouterr().out
    assert "adjoint" in text and "vs frozen FD" in text and "untrained" in text
    # The table once (it used to be streamed and then printed again), the legend once.
    assert text.count("vs frozen FD") == 2 and text.count(" 1e-07 ") == 1
    assert text.count("rel.err = ") == 1 and "reconstruction error" in text
    results = read_json(out / "gradcheck.json")
    assert fig.stat().st_size > 10_000
    assert results["epochs_trained"] == 0 and results["n_probes"] == 4
    rows = results["rows"]
    assert [r["tol"] for r in rows] == [1e-3, 1e-7]
    for row in rows:
        assert row["discrete"]["rel_error_frozen"] < 1e-8      # exact for its own steps
        assert row["discrete"]["nfe_backward"] == 6 * row["n_steps"] + 1
        assert row["nfe_forward"] >= 2 + 6 * row["n_steps"]
        assert 0 < row["adjoint"]["reconstruction_error"] < 1e-1
        assert 0 <= row["discrete"]["frozen_self_error"] < 1e-6
    tight = rows[-1]
    assert tight["adjoint"]["rel_error"] < 1e-5 and tight["discrete"]["rel_error"] < 1e-5


def test_gradcheck_after_training_and_from_a_run(tmp_path):
    config = TrainConfig(epochs=2, n_train=40, n_test=10, hidden=(5, 5), batch_size=16)
    options = gradcheck.GradcheckOptions(tols=(1e-8,), fd_tol=1e-10, n_directions=1,
                                         n_coords=1, repeats=1)
    trained = gradcheck.gradcheck(config, options, epochs=2)
    assert trained["epochs_trained"] == 2
    train(config, tmp_path)
    loaded = gradcheck.gradcheck(TrainConfig(), options, run_dir=str(tmp_path))
    assert loaded["config"] == config.to_dict()
    # The same parameters: the same gradient check to round-off.
    for key in ("adjoint", "discrete"):
        assert loaded["rows"][0][key]["rel_error"] == pytest.approx(
            trained["rows"][0][key]["rel_error"], rel=1e-3, abs=1e-12)


def test_trace_cli_prints_logs_and_plots(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    out, fig = tmp_path / "tr", tmp_path / "trace.png"
    assert cli.main(["trace", "--from", str(run), "--out", str(out), "--figure", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "forward solve" in text and "adjoint solve" in text and "accept" in text
    assert text.count("reconstruction error max|h̃(t0) − h(t0)| = ") == 2
    results = read_json(out / "trace.json")
    assert fig.stat().st_size > 10_000
    assert len(results["history"]) == 3
    for name in ("initial", "trained"):
        forward = np.array(results[name]["forward"])
        adjoint = np.array(results[name]["adjoint"])
        assert forward[-1, 4] == results[name]["nfe_forward"] == 2 + 6 * len(forward)
        assert adjoint[-1, 4] == results[name]["nfe_backward"] == 2 + 6 * len(adjoint)
        assert np.all(forward[:, 1] > 0) and np.all(adjoint[:, 1] < 0)
        assert adjoint[0, 0] == 1.0 and forward[0, 0] == 0.0
        assert 0 < results[name]["reconstruction_error"] < 1e-1


def test_check_vjp_passes_a_right_vjp_and_fails_a_transposed_one():
    """gradcheck.check_vjp: central differences of f against a hand-written VJP."""
    theta = np.array([[-0.5, 2.0], [-0.3, -0.2]]).ravel()
    f = lambda t, y: y @ theta.reshape(2, 2).T                 # y' = A y, rows = samples
    right = lambda t, y, a: (f(t, y), a @ theta.reshape(2, 2), (a.T @ y).ravel())
    wrong = lambda t, y, a: (f(t, y), a @ theta.reshape(2, 2).T, (y.T @ a).ravel())
    y = np.array([[1.0, -0.5], [0.2, 0.7]])
    good = gradcheck.check_vjp(f, right, 0.0, y, theta)
    assert good["ok"] and good["vjp_y"] < 1e-8 and good["vjp_theta"] < 1e-8
    bad = gradcheck.check_vjp(f, wrong, 0.0, y, theta)
    assert not bad["ok"] and bad["vjp_y"] > 0.1 and bad["vjp_theta"] > 0.1
    np.testing.assert_array_equal(theta, [-0.5, 2.0, -0.3, -0.2])     # restored


def test_trace_trains_in_memory(tmp_path, capsys):
    out = tmp_path / "tr"
    assert cli.main(["trace", *TINY, "--epochs", "1", "--out", str(out),
                     "--figure", str(tmp_path / "t.png")]) == 0
    assert "training reg=none for 1 epochs" in capsys.readouterr().out
    assert read_json(out / "trace.json")["run_dir"] is None


@pytest.mark.parametrize("args,match", [
    (["gradcheck", "--epochs", "-1"], "--epochs must be >= 0"),
    (["gradcheck", "--tols", "0"], "tols must be positive"),
    (["gradcheck", "--repeats", "0"], "repeats must be"),
    (["trace", "--epochs", "0"], "epochs must be"),
])
def test_bad_options_exit_2_with_one_line(args, match, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
