"""Numerical faults and API edge cases, each caused on purpose (issue #12; the kills, corrupted
files and refused commands are in ``test_faults.py``): a runaway solve ends as a divergence,
overflow is a SolverError naming the reason and t, complex and malformed inputs are refused."""
import json

import numpy as np
import pytest

from test_faults import main


def test_runaway_solve_is_a_clean_divergence(tmp_path, capsys):
    """``--lr 100`` blows the field up; the NFE budget ends it as a divergence."""
    code = main(["train", "--lr", "100", "--epochs", "3", "--n-train", "200", "--quiet",
                 "--max-nfe", "2000", "--out", str(tmp_path)])
    assert code == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "max_steps" in summary["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_jobs_are_capped_at_the_number_of_runs():
    from odejac.study.runner import check_jobs

    assert check_jobs(1000, 3) == 3
    assert check_jobs(-1, 1) == 1
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="jobs"):
            check_jobs(bad, 3)


@pytest.mark.parametrize("field", [lambda t, y: np.full_like(y, 1e300),
                                   lambda t, y: y * 1e200])
def test_overflowing_field_is_a_solver_error_with_reason_and_t(field):
    from odejac import SolverError, odeint

    with pytest.raises(SolverError, match="overflow") as info:
        odeint(field, np.ones(3), (0.0, 1.0))
    assert info.value.t == 0.0


def test_huge_kinetic_penalty_is_a_divergence_not_a_crash(tmp_path, capsys):
    code = main(["train", "--reg", "kinetic", "--lam", "1e200", "--epochs", "2", "--n-train",
                 "100", "--quiet", "--out", str(tmp_path)])
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("y0,field", [(np.ones(3) + 1j, lambda t, y: y),
                                      (np.ones(3), lambda t, y: y + 1j)])
def test_complex_input_is_refused(y0, field):
    from odejac import odeint

    with pytest.raises(ValueError, match="real"):
        odeint(field, y0, (0.0, 1.0))


@pytest.mark.parametrize("max_steps", [0, -1, 2.5, True, "10"])
def test_max_steps_is_validated(max_steps):
    from odejac import NeuralODE

    with pytest.raises(ValueError, match="max_steps"):
        NeuralODE(2, max_steps=max_steps)


@pytest.mark.parametrize("scale", [1.0, 1e6])
def test_one_kappa_in_condition_numbers_and_loss_and_grad(scale):
    """A saturated field (inputs × 1e6) has J = 0: κ is 1 in both, not NaN in one."""
    from odejac import NeuralODE

    model = NeuralODE(2, augment_dim=0, reg="condition", lam=1e-3)
    X = np.random.default_rng(0).normal(size=(64, 2)) * scale
    kappa = model.condition_numbers(X)
    assert np.all(np.isfinite(kappa)) and np.all(kappa >= 1.0)
    stats = model.loss_and_grad(X, np.arange(64) % 2)[2]
    np.testing.assert_allclose(stats["kappa"], kappa.mean(), rtol=1e-12)


def test_file_errors_cross_process_boundaries():
    import pickle

    from odejac.io import FileFormatError

    error = pickle.loads(pickle.dumps(FileFormatError("/x/state.npz", "empty file")))
    assert isinstance(error, FileFormatError) and "/x/state.npz" in str(error)
