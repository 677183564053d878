"""Small input checks shared by the public, validating functions."""
import numpy as np


def as_real_array(name, x):
    """``x`` as a float64 C-contiguous array, or ValueError if it is not real and finite."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def as_time(t):
    """``t`` as a finite Python float, or ValueError."""
    arr = np.asarray(t)
    if arr.ndim != 0 or arr.dtype.kind not in "biuf":
        raise ValueError(f"t must be a real scalar; got {t!r}")
    t = float(arr)
    if not np.isfinite(t):
        raise ValueError(f"t must be finite; got {t}")
    return t
