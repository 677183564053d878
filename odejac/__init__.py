"""odejac: neural ODEs with hand-written adjoint gradients, on the CPU."""
from .integrate import LOG_COLUMNS, Solution, SolverError, odeint

__all__ = ["odeint", "Solution", "SolverError", "LOG_COLUMNS"]
