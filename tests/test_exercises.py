"""docs/exercises.md: every worked solution in examples/ runs, and every claim the page makes."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import exercises  # noqa: E402
import own_field  # noqa: E402


def test_exercise_1_own_field_against_expm():
    errors = exercises.ex1_linear_field_against_expm()
    assert errors["check_vjp"]["ok"]
    for method in ("adjoint", "discrete"):
        assert max(errors[method]) < 1e-8, (method, errors[method])


def test_own_field_transposed_vjp_fails_clearly(capsys):
    errors = own_field.report(transposed=True)
    assert not errors["check_vjp"]["ok"]
    assert min(errors["check_vjp"]["vjp_y"], errors["check_vjp"]["vjp_theta"]) > 0.1
    assert min(errors["adjoint"]) > 0.1 and min(errors["discrete"]) > 0.1
    assert "TRANSPOSED VJP: check_vjp FAIL" in capsys.readouterr().out


def test_exercise_2_both_gradients_converge():
    rows = exercises.ex2_adjoint_discrete_fd()
    adjoint, discrete = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    assert adjoint[-1] < 1e-6 and discrete[-1] < 1e-6
    assert adjoint[-1] < 1e-3 * adjoint[0] and discrete[-1] < 1e-3 * discrete[0]
    assert (adjoint < discrete).any() and (discrete < adjoint).any()   # neither always wins


def test_exercise_3_retrace_fails_then_recovers(tmp_path):
    rows = exercises.ex3_contracting_retrace(figure=tmp_path / "retrace.png")
    recon, err_y0, err_A = (np.array([r[k] for r in rows]) for k in (1, 2, 3))
    assert recon[0] > 100 and err_A[0] > 10          # useless at tol 1e-3 ...
    assert err_y0[0] < 1e-3                          # ... except a, which ignores h
    assert np.all(np.diff(np.log(recon)) < 0) and recon[-1] < 1e-5 and err_A[-1] < 1e-6
    assert (tmp_path / "retrace.png").stat().st_size > 5_000


def test_exercise_4_finds_the_wrong_vjps():
    results = exercises.ex4_find_the_transposed_vjp()
    assert results["A"]["ok"]
    assert not results["B"]["ok"] and results["B"]["vjp_y"] > 0.1
    assert results["B"]["vjp_theta"] < 1e-6           # B's parameter part is right
    assert not results["C"]["ok"] and results["C"]["vjp_theta"] > 0.1
    assert results["C"]["vjp_y"] < 1e-6


def test_exercise_5_rk4_backprop_is_exact():
    fd_y, fd_theta, poly = exercises.ex5_rk4_backprop()
    assert fd_y < 1e-8 and fd_theta < 1e-7 and poly < 1e-13


def test_exercise_6_adjoint_jumps_at_observation_times():
    err_y, err_A, jumps = exercises.ex6_several_observation_times()
    assert err_y < 1e-8 and err_A < 1e-8
    np.testing.assert_allclose(np.vstack(jumps), [[1.0, 0.0], [0.0, -1.0], [0.5, 0.5]],
                               atol=1e-15)


@pytest.mark.slow
def test_examples_run_as_scripts():
    """The README's command: a clean interpreter, only the clone on the path."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "own_field.py")],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "correct VJP: check_vjp ok" in out and "TRANSPOSED VJP: check_vjp FAIL" in out
