"""Atomic writes of results: a file is either the old one or the new one.

Every result file goes to a temporary file in the same directory, is flushed
to disk and then renamed over the target (``os.replace`` is atomic on POSIX),
so a run killed at any moment — even by SIGKILL — never leaves a half-written
file behind.
"""
import json
import os
import tempfile

import numpy as np


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    # mkstemp creates the file 0600; give results the usual mode under the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_jsonable(value):
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically (NaN becomes null)."""
    text = json.dumps(_to_jsonable(data), indent=2, sort_keys=False, allow_nan=False)
    _atomic(path, lambda handle: handle.write(text.encode() + b"\n"))


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_npz(path, **arrays):
    """Write arrays to ``path`` (``.npz``), atomically."""
    _atomic(path, lambda handle: np.savez(handle, **arrays))


def read_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_bytes(path, data):
    """Write ``data`` (bytes) to ``path``, atomically."""
    _atomic(path, lambda handle: handle.write(data))


def write_text(path, text):
    """Write a text file atomically."""
    _atomic(path, lambda handle: handle.write(text.encode()))
