"""Atomic writes and checked reads of result files, and the lock of a directory.

Every result file goes to a temporary file in the same directory, is flushed
to disk and then renamed over the target (``os.replace`` is atomic on POSIX),
so a run killed at any moment — even by SIGKILL — never leaves a half-written
file behind. Every read is checked: a truncated, empty, garbled or wrong-typed
file raises :class:`FileFormatError` naming the file, never a raw parser error.
:class:`DirectoryLock` keeps a second process out of a directory being written.
"""
import errno
import fcntl
import json
import os
import sys
import tempfile
import time
import zipfile

import numpy as np


_TMP_PREFIX = ".tmp-"


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=os.path.basename(path))
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


def remove_stale_temporaries(directory):
    """Delete the temporary files of writes cut short (by SIGKILL) in ``directory``.

    Call only while holding the directory's :class:`DirectoryLock`.
    """
    for name in os.listdir(directory):
        if name.startswith(_TMP_PREFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


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
    write_text(path, text + "\n")


class FileFormatError(ValueError):
    """A file exists but cannot be used: truncated, empty, garbled or of the wrong type."""

    def __init__(self, path, problem, advice="delete it (or its directory) to start over"):
        self.path, self.problem, self.advice = os.fspath(path), problem, advice
        super().__init__(f"{self.path} is unusable ({problem}); {advice}")

    def __reduce__(self):   # so that it crosses process boundaries (loky, Dask) intact
        return type(self), (self.path, self.problem, self.advice)


def read_json(path, expect=None):
    """The JSON value in ``path``; ``expect`` (``dict`` or ``list``) checks its type.

    Raises
    ------
    FileNotFoundError
        No such file.
    FileFormatError
        The file is not JSON (truncated, empty, garbage) or not of type ``expect``.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise FileFormatError(path, "empty file")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(path, f"not valid JSON: {exc}") from None
    if expect is not None and not isinstance(value, expect):
        raise FileFormatError(path, f"expected a JSON {expect.__name__}, found "
                                    f"{type(value).__name__}")
    return value


def write_npz(path, **arrays):
    """Write arrays to ``path`` (``.npz``), atomically."""
    _atomic(path, lambda handle: np.savez(handle, **arrays))


def read_npz(path, keys=()):
    """All arrays of the ``.npz`` at ``path`` as a dict; ``keys`` must all be present.

    Raises FileNotFoundError, or :class:`FileFormatError` for anything that is
    not a complete ``.npz`` holding ``keys`` (object arrays are refused).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise FileFormatError(path, "a .npy array, not an .npz archive")
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except FileFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        problem = "empty file" if os.path.exists(path) and os.path.getsize(path) == 0 \
            else f"not a readable .npz archive: {exc}"
        raise FileFormatError(path, problem) from None
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise FileFormatError(path, f"missing arrays {missing}")
    return arrays


def write_bytes(path, data):
    """Write ``data`` (bytes) to ``path``, atomically."""
    _atomic(path, lambda handle: handle.write(data))


def write_figure(path, fig, dpi):
    """Render a matplotlib figure to PNG in memory, close it, and write it atomically."""
    import io as _bytes_io   # the standard library's io; this module is odejac.io

    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot = sys.modules.get("matplotlib.pyplot")   # only figures pyplot made need closing
    if pyplot is not None:
        pyplot.close(fig)
    write_bytes(path, buffer.getvalue())


def save_and_plot(results, json_path, figure_path, plot):
    """Write ``results`` as JSON; if ``figure_path``, draw it with ``plot`` from the saved file."""
    write_json(json_path, results)
    if figure_path is not None:
        plot(read_json(json_path), figure_path)


def write_text(path, text):
    """Write a text file atomically."""
    _atomic(path, lambda handle: handle.write(text.encode()))


def check_out_dir(path):
    """Raise ValueError unless ``path`` is, or can be created as, a writable directory.

    Checks the nearest existing ancestor (so nothing is created), name and path
    length limits, and that its filesystem has some space left.
    """
    absolute = os.path.abspath(path)
    if os.path.exists(absolute) and not os.path.isdir(absolute):
        raise ValueError(f"--out {path} exists and is not a directory")
    existing = absolute
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"--out {path}: {existing} is not a directory")
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    path_max = os.pathconf(existing, "PC_PATH_MAX")
    too_long = [part for part in absolute.split(os.sep) if len(part.encode()) > name_max]
    if too_long or len(absolute.encode()) + _LONGEST_NAME > path_max:
        raise ValueError(f"--out {path}: the path (or a part of it) is too long")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path}: {existing} is not writable")
    stats = os.statvfs(existing)
    if stats.f_bavail * stats.f_frsize < _MIN_FREE_BYTES:
        raise ValueError(f"--out {path}: no space left on the device of {existing}")
    return absolute


#: Longest path a command adds under its --out (runs/ARM/seed-KK/.tmp-...robustness.json).
_LONGEST_NAME = 160
#: Below this much free space a run cannot even write its state.
_MIN_FREE_BYTES = 1 << 20


#: How long a second process waits for a held lock before it is refused: long enough for
#: the workers of a just-killed command to notice and exit (they poll every 0.5 s).
LOCK_WAIT_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.1


class DirectoryLockedError(RuntimeError):
    """Another live process holds the lock of a directory."""


class DirectoryLock:
    """Exclusive use of ``directory`` by one process, for a ``with`` block.

    An advisory ``flock`` on ``directory/lock``, which holds the holder's PID
    and host for the message of a refused second process. The kernel drops the
    lock when its holder dies (even by SIGKILL), so a stale lock file left by
    a dead process is simply taken over. Re-entrant within one process.
    """

    _held = {}

    def __init__(self, directory):
        self.path = os.path.join(os.path.abspath(directory), "lock")
        self.fd = None

    def __enter__(self):
        if self.path in DirectoryLock._held:
            DirectoryLock._held[self.path][1] += 1
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                if busy and time.monotonic() < deadline:
                    time.sleep(_LOCK_POLL_SECONDS)
                    continue
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                if not busy:
                    raise
                raise DirectoryLockedError(
                    f"{os.path.dirname(self.path)} is in use by another process ({holder}); "
                    f"wait for it to finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        DirectoryLock._held[self.path] = [fd, 1]
        return self

    def __exit__(self, *exc):
        entry = DirectoryLock._held[self.path]
        entry[1] -= 1
        if entry[1] == 0:
            del DirectoryLock._held[self.path]
            os.close(entry[0])   # releases the flock
        return False
