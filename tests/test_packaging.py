"""odejac as an installed package: no global state changed on import, BLAS limited only in
odejac's own hot loops, and the ``odejac`` console script after a non-editable install."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLAS_THREADS_BEFORE = 2  # what the child process's OpenBLAS starts with (2 cores here)

# Runs in a child process: the BLAS setting is process-wide, so the test must own its process.
IMPORT_CHECK = textwrap.dedent("""
    import numpy, scipy.linalg, sklearn, numba, tqdm       # odejac's dependencies first, so
    from threadpoolctl import threadpool_info              # only odejac's own import is measured

    def blas():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    before = blas()
    assert before and min(before.values()) == THREADS, before
    import odejac
    assert blas() == before, ("import odejac changed BLAS threads", before, blas())

    from odejac.data import make_moons_data
    from odejac.model import NeuralODE
    seen = []
    for name in ("loss_and_grad", "forward"):
        def spy(self, *args, _orig=getattr(NeuralODE, name), _name=name, **kwargs):
            seen.append((_name, tuple(blas().values())))
            return _orig(self, *args, **kwargs)
        setattr(NeuralODE, name, spy)
    data = make_moons_data(n_train=40, n_test=20)
    clf = odejac.NeuralODEClassifier(epochs=1, hidden=(4,)).fit(data.X_train, data.y_train)
    clf.predict(data.X_test)
    assert {name for name, _ in seen} == {"loss_and_grad", "forward"}, seen
    assert all(set(threads) == {1} for _, threads in seen), seen
    assert blas() == before, ("odejac left BLAS threads changed", before, blas())
    print("ok", odejac.__file__)
""")


def _child_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "ODEJAC_BLAS_THREADS", "PYTHONPATH")}
    env.update(extra)
    return env


def test_import_leaves_blas_threads_alone_and_hot_loops_run_single_threaded(tmp_path):
    env = _child_env(PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS=str(BLAS_THREADS_BEFORE))
    script = IMPORT_CHECK.replace("THREADS", str(BLAS_THREADS_BEFORE))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"ok {os.path.join(ROOT, 'odejac', '__init__.py')}"


# Runs in a child process: what a built-in `train` run imports (issue #11: sklearn with
# scipy.stats cost ~0.7 s of every start); the lazy public names must still resolve.
LAZY_CHECK = textwrap.dedent("""
    import sys
    import odejac
    from odejac.cli import build_parser
    from odejac.data import make_moons_data
    build_parser().parse_args(["train", "--epochs", "1"])
    make_moons_data(n_train=10, n_test=10)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] == "sklearn"
                   or m.startswith("scipy.stats") or m.startswith("scipy.special"))
    assert not heavy, heavy
    assert callable(odejac.load) and odejac.NeuralODEClassifier.__name__ == "NeuralODEClassifier"
    assert "sklearn" in sys.modules
    try:
        odejac.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc), exc
    else:
        raise AssertionError("odejac.no_such_name resolved")
    print("ok")
""")


def test_cli_and_moons_do_not_import_sklearn_and_lazy_names_resolve(tmp_path):
    result = subprocess.run([sys.executable, "-c", LAZY_CHECK], env=_child_env(PYTHONPATH=ROOT),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"

@pytest.mark.slow
def test_console_script_after_non_editable_install_in_fresh_venv(tmp_path):
    # An offline build of the wheel needs the `wheel` package (setuptools < 70.1).
    wheel = pytest.importorskip("wheel", reason="install the test extra: pip install '.[test]'")
    # Build from a copy: pip builds in the source tree and would leave build/ in the clone.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, "odejac"), src / "odejac",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    venv = tmp_path / "venv"
    env = _child_env()
    # --system-site-packages: the dependencies come from this interpreter (offline, fast);
    # --no-deps --no-build-isolation: pip downloads nothing.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=env, timeout=300)
    build_env = dict(env)
    if not wheel.__file__.startswith(sys.base_prefix):  # `wheel` lives in an outer venv
        build_env["PYTHONPATH"] = os.path.dirname(os.path.dirname(wheel.__file__))
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--no-deps", "--no-build-isolation", str(src)],
                         env=build_env, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*argv):
        result = subprocess.run([str(a) for a in argv], cwd=elsewhere, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (argv, result.stderr[-2000:])
        return result.stdout

    where = run(venv / "bin" / "python", "-c", "import odejac; print(odejac.__file__)").strip()
    # the venv's own copy, not the editable checkout in the system site-packages
    assert where.startswith(str(venv)) and "site-packages" in where, where
    assert "predict" in run(venv / "bin" / "odejac", "--help")
    assert "--data FILE" in run(venv / "bin" / "python", "-m", "odejac", "train", "--help")
    (elsewhere / "d.csv").write_text("a,b,label\n" + "".join(
        f"{i % 5},{(i * 7) % 3},{'yes' if i % 2 else 'no'}\n" for i in range(24)))
    # Train and predict through the installed command. Without the JIT: compiling every
    # kernel afresh for the new install takes over a minute; the pure-Python path is the same code.
    env["NUMBA_DISABLE_JIT"] = "1"
    run(venv / "bin" / "odejac", "train", "--data", "d.csv", "--epochs", "1", "--hidden", "4",
        "--quiet", "--out", "run")
    out = run(venv / "bin" / "odejac", "predict", "--from", "run", "--input", "d.csv")
    assert out.splitlines()[0] == "class,p_no,p_yes,nfe"
    assert len(out.splitlines()) == 25


def test_bad_blas_threads_variable_is_one_line_exit_2(monkeypatch, capsys):
    from odejac.cli import main

    monkeypatch.setenv("ODEJAC_BLAS_THREADS", "many")
    with pytest.raises(SystemExit) as info:
        main(["predict", "--from", "nowhere", "--input", "x.csv"])
    assert info.value.code == 2
    assert "ODEJAC_BLAS_THREADS must be an integer >= 1; got 'many'" in capsys.readouterr().err
