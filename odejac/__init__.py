"""odejac: neural ODEs with hand-written adjoint gradients, on the CPU.

Public names: :func:`odeint` (Dormand–Prince 5(4) with SciPy/torchdiffeq step
control), :class:`SolverError`, :func:`adjoint_solve` (the adjoint gradient of your own
field), :mod:`discrete` (``forward``/``backprop``/``replay``: the exact gradient of the
DP5 steps), :class:`MLP` (vector field with analytic derivatives), :class:`NeuralODE`
(classifier with adjoint gradients) and :class:`NeuralODEClassifier` (scikit-learn
estimator). All callables take time first: ``f(t, y)``, ``f_and_vjp(t, y, a)``,
``vjp(t, y, a)``. Submodules: ``reference`` (plain-NumPy DP5 and adjoint to read),
``regularisers``, ``optim``, ``data``, ``train``.
"""
from threadpoolctl import threadpool_limits as _threadpool_limits

from .integrate import LOG_COLUMNS, Solution, SolverError, odeint
from .adjoint import AdjointResult, adjoint_solve
from . import discrete
from .mlp import MLP
from .model import NeuralODE
from .estimator import NeuralODEClassifier

# The matrices here are tiny (256 x 32 @ 32 x 32): OpenBLAS threading on the
# shared cores once made such a product take 8 ms instead of 55 us, so BLAS
# runs single-threaded (set ODEJAC_BLAS_THREADS to change it).
import os as _os

_threadpool_limits(limits=int(_os.environ.get("ODEJAC_BLAS_THREADS", "1")), user_api="blas")

__all__ = ["odeint", "Solution", "SolverError", "LOG_COLUMNS", "adjoint_solve",
           "AdjointResult", "discrete", "MLP", "NeuralODE", "NeuralODEClassifier"]
