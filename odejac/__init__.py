"""odejac: neural ODEs with hand-written adjoint gradients, on the CPU.

Public names: :func:`odeint` (Dormand–Prince 5(4) with SciPy/torchdiffeq step
control), :class:`SolverError`, :func:`adjoint_solve` (the adjoint gradient of your own
field), :mod:`discrete` (``forward``/``backprop``/``replay``: the exact gradient of the
DP5 steps), :class:`MLP` (vector field with analytic derivatives), :class:`NeuralODE`
(classifier with adjoint gradients), :class:`NeuralODEClassifier` (scikit-learn
estimator) and :func:`load` (a trained run, ready to predict). All callables take time
first: ``f(t, y)``, ``f_and_vjp(t, y, a)``, ``vjp(t, y, a)``. Submodules: ``reference``
(plain-NumPy DP5 and adjoint to read), ``regularisers``, ``optim``, ``data``, ``userdata``
(your own CSV/NPZ files), ``train``.

Importing odejac changes no global state: BLAS threads are limited only inside odejac's
own hot loops (:mod:`odejac._threads`).
"""
from .integrate import LOG_COLUMNS, Solution, SolverError, odeint
from .adjoint import AdjointResult, adjoint_solve
from . import discrete
from .mlp import MLP
from .model import NeuralODE

__all__ = ["odeint", "Solution", "SolverError", "LOG_COLUMNS", "adjoint_solve",
           "AdjointResult", "discrete", "MLP", "NeuralODE", "NeuralODEClassifier", "load"]


def __getattr__(name):
    # The scikit-learn estimator and `load` (which builds an sklearn Pipeline) are imported on
    # first use: importing sklearn (and through it scipy.stats) costs ~0.7 s, a third of a
    # warm `cli.py train` start (issue #11).
    if name == "NeuralODEClassifier":
        from .estimator import NeuralODEClassifier
        return NeuralODEClassifier
    if name == "load":
        from .saved import load
        return load
    raise AttributeError(f"module 'odejac' has no attribute {name!r}")
