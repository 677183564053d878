"""Dormand–Prince 5(4) Butcher tableau as checked data.

The tableau is a frozen record of float64 arrays that checks its own
consistency when built (rows of ``A`` sum to ``c``, ``Σ b = 1``, ``Σ e = 0``).
Two error vectors are kept because the two peers whose step counts odejac
reproduces estimate the local error differently:

* SciPy's ``RK45`` uses the classic difference ``b̂ − b`` of the embedded
  4th-order weights of Dormand & Prince (1980), written as ``E`` in
  ``scipy/integrate/_ivp/rk.py``.
* torchdiffeq's ``dopri5`` uses Shampine's (1986) weights, whose error
  estimate is exactly −2/3 of SciPy's; it is written as a difference of
  fractions, and we keep that spelling so the rounding matches.

``c_mid`` are torchdiffeq's weights for the solution at the half step, from
which its 4th-order dense output is fitted (Shampine 1986).

References
----------
J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae",
J. Comput. Appl. Math. 6(1), 19-26, 1980.
L. W. Shampine, "Some practical Runge-Kutta formulas", Math. Comp. 46(173),
135-150, 1986.
"""
from dataclasses import dataclass

import numpy as np

#: Absolute tolerance of the self-checks; the fractions are exact to round-off.
_CHECK_ATOL = 1e-14


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit embedded Runge–Kutta method with FSAL.

    Attributes
    ----------
    c : ndarray, shape (S,)
        Stage times as fractions of the step.
    A : ndarray, shape (S, S)
        Stage coefficients, strictly lower triangular.
    b : ndarray, shape (S,)
        Weights of the propagated (5th-order) solution.
    e_scipy : ndarray, shape (S + 1,)
        Error weights (classic), applied to the S stages plus the FSAL stage.
    e_shampine : ndarray, shape (S + 1,)
        Error weights (Shampine), same layout.
    c_mid : ndarray, shape (S + 1,)
        Weights of the half-step solution used by the dense output.
    order : int
        Order of the propagated solution.
    error_order : int
        Order of the embedded error estimator.
    """

    c: np.ndarray
    A: np.ndarray
    b: np.ndarray
    e_scipy: np.ndarray
    e_shampine: np.ndarray
    c_mid: np.ndarray
    order: int
    error_order: int

    def __post_init__(self):
        n_stages = self.c.shape[0]
        if self.A.shape != (n_stages, n_stages) or self.b.shape != (n_stages,):
            raise ValueError("tableau arrays have inconsistent shapes")
        if np.any(np.triu(self.A) != 0.0):
            raise ValueError("A must be strictly lower triangular (explicit method)")
        if not np.allclose(self.A.sum(axis=1), self.c, rtol=0.0, atol=_CHECK_ATOL):
            raise ValueError("rows of A must sum to c")
        if abs(self.b.sum() - 1.0) > _CHECK_ATOL:
            raise ValueError("weights b must sum to 1")
        for name in ("e_scipy", "e_shampine"):
            if abs(getattr(self, name).sum()) > _CHECK_ATOL:
                raise ValueError(f"error weights {name} must sum to 0")
        # FSAL: the last stage is evaluated at the propagated solution.
        if not (self.c[-1] == 1.0 and np.array_equal(self.A[-1, :-1], self.b[:-1])
                and self.b[-1] == 0.0):
            raise ValueError("the last stage must equal the solution (FSAL)")
        for array in (self.c, self.A, self.b, self.e_scipy, self.e_shampine, self.c_mid):
            array.setflags(write=False)


def _dormand_prince() -> ButcherTableau:
    c = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
    A = np.zeros((7, 7))
    A[1, :1] = [1 / 5]
    A[2, :2] = [3 / 40, 9 / 40]
    A[3, :3] = [44 / 45, -56 / 15, 32 / 9]
    A[4, :4] = [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729]
    A[5, :5] = [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]
    A[6, :6] = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
    b = A[6].copy()
    e_scipy = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200,
                        -22 / 525, 1 / 40])
    e_shampine = np.array([35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085,
                           125 / 192 - 451 / 720, -2187 / 6784 - -12231 / 42400,
                           11 / 84 - 649 / 6300, -1.0 / 60.0])
    c_mid = np.array([6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2,
                      -2691868925 / 45128329728 / 2, 187940372067 / 1594534317056 / 2,
                      -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2])
    return ButcherTableau(c=c, A=A, b=b, e_scipy=e_scipy, e_shampine=e_shampine,
                          c_mid=c_mid, order=5, error_order=4)


#: The Dormand–Prince 5(4) pair with 7 stages, the 7th being FSAL.
DOPRI5 = _dormand_prince()
