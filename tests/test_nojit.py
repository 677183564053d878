"""The numerical core gives the same verdicts with Numba's JIT switched off.

Runs the integrator, MLP, regulariser and model tests, plus every test marked
``nojit``, in a subprocess with ``NUMBA_DISABLE_JIT=1``, so the jitted
kernels' Python sources are checked too.
"""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ["tests/test_integrate.py", "tests/test_mlp.py", "tests/test_regularisers.py",
        "tests/test_model.py"]


def test_core_suite_passes_without_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    core = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CORE],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert core.returncode == 0, core.stdout[-3000:] + core.stderr[-2000:]
    marked = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-m", "nojit", "--deselect", "tests/test_nojit.py"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert marked.returncode == 0, marked.stdout[-3000:] + marked.stderr[-2000:]
