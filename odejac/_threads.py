"""BLAS threads inside odejac's own hot loops only (never for the importing process).

odejac multiplies tiny matrices (e.g. 256 × 32 @ 32 × 32) many thousands of times. On the
2 shared cores OpenBLAS threading once made such a product take 8 ms instead of 55 µs, so
odejac's entry points (training, prediction, the CLI) run their work inside
:func:`blas_threads`, a ``threadpoolctl.threadpool_limits`` context that restores the caller's
setting on exit. ``import odejac`` itself changes nothing.
"""
import os

from threadpoolctl import threadpool_limits

BLAS_THREADS_ENV = "ODEJAC_BLAS_THREADS"
"""Environment variable overriding the BLAS threads of odejac's hot loops (default 1)."""

DEFAULT_BLAS_THREADS = 1


def blas_threads():
    """A context limiting BLAS to ``$ODEJAC_BLAS_THREADS`` (default 1) threads.

    Raises
    ------
    ValueError
        If the variable is set but is not an integer ≥ 1.
    """
    raw = os.environ.get(BLAS_THREADS_ENV, str(DEFAULT_BLAS_THREADS))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{BLAS_THREADS_ENV} must be an integer >= 1; got {raw!r}")
    return threadpool_limits(limits=limit, user_api="blas")
