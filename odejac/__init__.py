"""odejac: neural ODEs with hand-written adjoint gradients, on the CPU.

Public names: :func:`odeint` (Dormand–Prince 5(4) with SciPy/torchdiffeq step
control), :class:`SolverError`, :class:`MLP` (vector field with analytic
derivatives), :class:`NeuralODE` (classifier with adjoint gradients),
:class:`NeuralODEClassifier` (scikit-learn estimator) and :func:`load` (a trained run,
ready to predict). Submodules: ``regularisers``, ``optim``, ``data``, ``userdata``, ``train``.

Importing odejac changes no global state: BLAS threads are limited only inside odejac's
own hot loops (:mod:`odejac._threads`).
"""
from .integrate import LOG_COLUMNS, Solution, SolverError, odeint
from .mlp import MLP
from .model import NeuralODE
from .estimator import NeuralODEClassifier
from .saved import load

__all__ = ["odeint", "Solution", "SolverError", "LOG_COLUMNS", "MLP", "NeuralODE",
           "NeuralODEClassifier", "load"]
