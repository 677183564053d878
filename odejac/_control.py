"""Step-size controllers of the Dormand–Prince driver: SciPy's and torchdiffeq's.

Each takes the error ratio of an attempt (``‖err / tol‖``, accepted at ≤ 1 or
< 1) and returns ``(factor, accepted)``; the driver (:mod:`odejac._dp5`)
multiplies the step by ``factor``. The differences between the two peers are
exactly what ``docs/dormand_prince.md`` lists.
"""
from numba import njit

from .tableau import DOPRI5

# Step-size control, as named in scipy/integrate/_ivp/rk.py and torchdiffeq.
SAFETY = 0.9       # multiply the asymptotically optimal step by this
MIN_FACTOR = 0.2   # largest allowed decrease of the step in one go
MAX_FACTOR = 10.0  # largest allowed increase of the step in one go
# The error of a p-th order estimator scales as h**(p + 1): SciPy uses the
# estimator's order 4, torchdiffeq the method's order 5 in the exponent
# 1/order; both give 1/5 for Dormand–Prince.
ERROR_EXPONENT = 1.0 / (DOPRI5.error_order + 1)


@njit(cache=True, inline="always")
def _scipy_factor(ratio, after_rejection):
    """SciPy's step factor; returns (factor, accepted)."""
    if ratio < 1.0:
        if ratio == 0.0:
            factor = MAX_FACTOR
        else:
            factor = min(MAX_FACTOR, SAFETY * ratio ** -ERROR_EXPONENT)
        if after_rejection:
            factor = min(1.0, factor)  # no growth right after a rejection
        return factor, True
    factor = SAFETY * ratio ** -ERROR_EXPONENT
    if not factor > MIN_FACTOR:  # also catches NaN ratios
        factor = MIN_FACTOR
    return factor, False


@njit(cache=True, inline="always")
def _torchdiffeq_factor(ratio):
    """torchdiffeq's ``_optimal_step_size``; returns (factor, accepted)."""
    accepted = ratio <= 1.0
    if ratio == 0.0:
        return MAX_FACTOR, accepted
    lower = 1.0 if ratio < 1.0 else MIN_FACTOR  # never shrink after a good step
    factor = SAFETY / ratio ** ERROR_EXPONENT
    if not factor > lower:
        factor = lower
    return min(MAX_FACTOR, factor), accepted
