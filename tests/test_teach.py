"""``python cli.py adjoint-picture`` and ``work-precision`` (odejac/adjoint_picture.py,
odejac/work_precision.py) on tiny problems."""
import pathlib
import sys

import numpy as np
import pytest

from odejac.io import read_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cli  # noqa: E402

TINY = ["--n-train", "40", "--n-test", "10", "--hidden", "5", "5", "--batch-size", "16"]


def test_adjoint_picture_cli(tmp_path, capsys):
    out, fig = tmp_path / "ap", tmp_path / "ap.png"
    assert cli.main(["adjoint-picture", *TINY, "--epochs", "2", "--batch", "16",
                     "--out", str(out), "--figure", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "reconstruction error max|h̃(t0) − h(t0)|" in text
    r = read_json(out / "adjoint_picture.json")
    assert fig.stat().st_size > 20_000
    # The reference solver took the fast path's steps: same NFE, same reconstruction error.
    assert r["nfe_forward"] == r["nfe_forward_fast"]
    assert r["nfe_backward"] == r["nfe_backward_fast"]
    assert abs(r["reconstruction_error"] - r["reconstruction_error_fast"]) < 1e-12
    t_f, t_b = np.array(r["t_forward"]), np.array(r["t_backward"])
    assert t_f[0] == 0.0 and t_b[0] == 1.0 and t_b[-1] == 0.0 and np.all(np.diff(t_b) <= 0)
    h, h_r, a = (np.array(r[k]) for k in ("h", "h_retraced", "a"))
    np.testing.assert_allclose(h_r[0], h[np.argmin(abs(t_f - 1.0))], atol=1e-2)
    np.testing.assert_allclose(h_r[-1], h[0], atol=10 * r["reconstruction_error"] + 1e-12)
    assert r["g_norm"][0] == 0.0 and r["g_norm"][-1] > 0       # g fills up from g(t1) = 0
    assert a.shape == h_r.shape


def test_work_precision_cli(tmp_path, capsys):
    out, fig = tmp_path / "wp", tmp_path / "wp.png"
    assert cli.main(["work-precision", "--tols", "1e-4", "1e-8", "--out", str(out),
                     "--figure", str(fig)]) == 0
    assert "arenstorf" in capsys.readouterr().out
    r = read_json(out / "work_precision.json")
    assert fig.stat().st_size > 20_000
    for name, curves in r["problems"].items():
        assert set(curves) == {"scipy", "torchdiffeq", "pi"}
        for controller, c in curves.items():
            assert c["nfe"][1] > c["nfe"][0], (name, controller)
            assert c["error"][1] < 1e-2 * c["error"][0], (name, controller)
            assert c["error"][1] < 1e-3


def test_work_precision_bad_tolerance_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["work-precision", "--tols", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--tols must be positive" in err and err.count("\n") == 1
