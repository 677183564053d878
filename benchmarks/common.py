"""Shared pieces of the benchmarks: the machine, the workload, the torchdiffeq peer process.

The peer (torch + torchdiffeq) is never imported here: it runs in its own interpreter
(``--peer-python``, default ``/root/peer-venv/bin/python`` or ``$ODEJAC_PEER_PYTHON``) as
``benchmarks/_torch_peer.py``, driven over stdin/stdout one JSON line per command, so that
odejac's environment never needs torch and the two sides can alternate epoch by epoch.
"""
import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

# One BLAS thread in every benchmark, for every OpenBLAS loaded by now (NumPy's and SciPy's,
# the latter what odejac's jitted kernels call): the scripts call ``train._epoch`` and the
# kernels directly, outside ``train.fit``'s ``blas_threads()``, where OpenBLAS would be left at
# ``nproc`` threads. Children inherit the variable. The peers' interpreters import this module
# for its NumPy helpers only and may lack SciPy or threadpoolctl: nothing to limit there.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
try:
    importlib.import_module("scipy.linalg.cython_blas")   # the OpenBLAS Numba's np.dot calls
    from threadpoolctl import threadpool_limits
except ImportError:
    pass
else:
    threadpool_limits(1, user_api="blas")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_PEER_CANDIDATES = ("/root/peer-venv/bin/python", "/work/venvs/torch/bin/python")
DEFAULT_PEER_PYTHON = os.environ.get(
    "ODEJAC_PEER_PYTHON",
    next((p for p in _PEER_CANDIDATES if os.path.exists(p)), _PEER_CANDIDATES[0]))


def machine():
    """``nproc``, CPU model, date and library versions, for the record of every figure."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    import scipy
    return {"nproc": os.cpu_count(), "cpu": model,
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__,
            "load_avg_1min": os.getloadavg()[0]}


def command_line():
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def save_json(path, data):
    """Write a benchmark's record to ``path`` (nothing when ``path`` is None or empty)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)


def median(values):
    return float(np.median(np.asarray(values, dtype=float)))


class Peer:
    """A torchdiffeq process driven line by line; ``None``-like if it cannot start.

    ``Peer.start(python)`` returns the peer, or ``(None, reason)`` when torch or
    torchdiffeq is not importable there.
    """

    def __init__(self, proc, info):
        self.proc, self.info = proc, info
        self.folder = tempfile.mkdtemp(prefix="odejac-peer-")   # data handed to the peer

    @classmethod
    def start(cls, python, script="_torch_peer.py", options=()):
        """Start ``script`` (``_torch_peer.py``; ``_diffrax_peer.py`` with ``--serve``)."""
        if not python or not os.path.exists(python):
            return None, f"no peer interpreter at {python!r}"
        proc = subprocess.Popen([python, os.path.join(HERE, script), *options],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)
        peer = cls(proc, None)
        try:
            peer.info = peer.call({"cmd": "hello"})
        except RuntimeError as exc:
            shutil.rmtree(peer.folder, ignore_errors=True)
            return None, str(exc)
        return peer, None

    def call(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"peer exited: {err.strip().splitlines()[-1] if err else '?'}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"peer error: {reply['error']}")
        return reply

    def setup(self, model, X, y, **options):
        """Make the peer's model identical to ``model`` (see :func:`peer_setup`)."""
        return self.call(peer_setup(model, X, y, folder=self.folder, **options))

    def close(self):
        try:
            self.call({"cmd": "quit"})
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def field_layers(model):
    """The field's ``(W, b)`` in PyTorch layout (``weight = W.T``) as nested lists."""
    return [[np.asarray(W).T.tolist(), np.asarray(b).tolist()] for W, b in model.field.layers]


def peer_setup(model, X, y, *, folder, batch_size, lr, reg, lam, rtol, atol):
    """The ``setup`` message that makes the peer's model identical to ``model``."""
    path = os.path.join(folder, "data.npz")
    np.savez(path, X=X, y=y)
    return {"cmd": "setup", "data": path, "layers": field_layers(model),
            "readout": [model.W_out.T.tolist(), model.b_out.tolist()],
            "augment_dim": model.augment_dim, "batch_size": batch_size, "lr": lr,
            "reg": reg, "lam": lam, "rtol": rtol, "atol": atol}


def random_field(dim, hidden, seed=0):
    """Field weights for the memory runs, PyTorch layout ``[(weight (n_out, n_in), bias)]``,
    drawn like ``nn.Linear``'s default; both sides build the same field from them."""
    rng = np.random.default_rng(seed)
    sizes = [dim, *hidden, dim]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        layers.append((rng.uniform(-bound, bound, (n_out, n_in)), rng.uniform(-bound, bound, n_out)))
    return layers


def field_inputs(dim, batch, seed=0):
    """The state ``h`` and cotangent ``a`` (both ``(batch, dim)``) of the bare-evaluation
    timings in ``scaling.py``; every side evaluates its field at these."""
    rng = np.random.default_rng([seed, 11])
    return rng.standard_normal((batch, dim)), rng.standard_normal((batch, dim))


def peek_permutation(rng, n):
    """The permutation ``rng.permutation(n)`` will return next, without consuming it."""
    state = rng.bit_generator.state
    order = rng.permutation(n)
    rng.bit_generator.state = state
    return order
