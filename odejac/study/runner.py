"""Run independent tasks in parallel with joblib (loky or Dask) and report progress.

A task is ``(label, function, args)`` with a module-level ``function`` of
plain, picklable arguments that writes its own results to disk; the runner
only dispatches, collects the small dict each returns, and prints one line per
finished task with the count, the rate and an ETA.

Backends
--------
``loky`` (default) runs worker processes on this machine; they exit within
a second when the process that started them dies (even by SIGKILL), and
never more of them than tasks. ``dask`` sends the same tasks through joblib's
Dask backend to the scheduler at ``scheduler`` (``tcp://host:8786``); it
needs the ``odejac[dask]`` extra. :func:`check_dask` checks, before anything
is written or sent, that the scheduler answers, has workers, that every
worker runs this version of odejac and sees the output directory (a shared
path); a scheduler lost mid-run is a :class:`DaskError`, finished runs stay
on disk for a resume.
"""
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
import time
import uuid

BACKENDS = ("loky", "dask")


#: Seconds to wait for the scheduler to answer, and for a first worker to join.
DASK_TIMEOUT = 10
_WATCHDOG_PERIOD = 0.5
_watched = []


class DaskError(RuntimeError):
    """The Dask cluster cannot run the study (unreachable, no workers, wrong odejac, lost)."""


def _exit_with_parent(parent):
    """In a loky worker: exit as soon as ``parent`` (the process that started it) is gone."""
    if _watched or os.getpid() == parent:
        return
    _watched.append(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(_WATCHDOG_PERIOD)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="odejac-parent-watch").start()


def _labelled(label, function, args, parent=None):
    """Run one task in a worker; the label comes back so unordered results are known."""
    if parent is not None:
        _exit_with_parent(parent)
    return label, function(*args)


# The worker probe is built from source in a module of its own so that it is
# pickled by value: a worker without odejac (or with another one) can still
# run it and say so. The identity of an odejac is its version and a hash of
# its source files, so two checkouts of one version are told apart too.
_PROBE_SOURCE = """
def identity():
    import hashlib, os
    from importlib import metadata
    import odejac
    try:
        version = metadata.version("odejac")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = os.path.dirname(os.path.abspath(odejac.__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return version, digest.hexdigest()[:12]


def probe(out, token):
    import os, socket
    found = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        found["identity"] = list(identity())
    except Exception as exc:
        found["error"] = "cannot import odejac (" + type(exc).__name__ + ": " + str(exc) + ")"
    if out is None:
        return found
    marker = os.path.join(out, ".probe-" + token)
    try:
        with open(marker) as handle:
            seen = handle.read() == token
        writable = os.access(out, os.W_OK | os.X_OK)
    except OSError:
        seen = writable = False
    if not seen:
        found["out_error"] = "does not see " + out + " (not a shared filesystem path?)"
    elif not writable:
        found["out_error"] = "cannot write to " + out
    return found
"""


def _probe_namespace():
    namespace = {"__name__": "odejac_worker_probe"}
    exec(compile(_PROBE_SOURCE, "<odejac worker probe>", "exec"), namespace)
    return namespace


def odejac_identity():
    """``(version, source hash)`` of the odejac this process runs."""
    return tuple(_probe_namespace()["identity"]())


@contextlib.contextmanager
def _quiet_dask():
    """Keep distributed's own tracebacks (lost connections) off the terminal: the
    failure reaches the caller as a DaskError, one line."""
    import distributed  # noqa: F401 (creates its loggers, which have levels of their own)

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.split(".")[0] == "distributed"]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def connect_dask(scheduler):
    """A distributed Client of ``scheduler`` with at least one worker, or DaskError."""
    import distributed

    try:
        with _quiet_dask():
            client = distributed.Client(scheduler, timeout=DASK_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskError(f"cannot reach the Dask scheduler at {scheduler} within "
                        f"{DASK_TIMEOUT} s ({type(exc).__name__}); is `dask scheduler` "
                        f"running there?") from None
    try:
        client.wait_for_workers(1, timeout=DASK_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise DaskError(f"the Dask scheduler at {scheduler} has no workers (waited "
                        f"{DASK_TIMEOUT} s, {type(exc).__name__}); start some with "
                        f"`dask worker {scheduler}`") from None
    return client


def check_dask(scheduler, out):
    """Check the cluster before any work is sent; returns the workers' ``{addr: probe}``.

    ``out`` must be absolute; it is created here (only after the scheduler,
    the workers and their odejac versions passed) with one marker file that
    every worker must read back, which proves the path is shared.
    """
    client = connect_dask(scheduler)
    try:
        probe = _probe_namespace()["probe"]
        token = uuid.uuid4().hex
        try:
            found = client.run(probe, None, token, wait=True)
        except (OSError, TimeoutError) as exc:
            raise DaskError(f"lost the Dask scheduler at {scheduler} ({exc})") from None
        mine = odejac_identity()
        for address, info in sorted(found.items()):
            if "error" in info:
                raise DaskError(f"Dask worker {address} {info['error']}; install odejac "
                                f"{mine[0]} there")
            theirs = tuple(info["identity"])
            if theirs != mine:
                raise DaskError(f"Dask worker {address} runs odejac {theirs[0]} (source "
                                f"{theirs[1]}), this client odejac {mine[0]} (source {mine[1]}); "
                                f"install the same odejac on every worker")
        os.makedirs(out, exist_ok=True)
        marker = os.path.join(out, ".probe-" + token)
        with open(marker, "w") as handle:
            handle.write(token)
        try:
            found = client.run(probe, out, token, wait=True)
        finally:
            os.unlink(marker)
        for address, info in sorted(found.items()):
            if "out_error" in info:
                raise DaskError(f"Dask worker {address} on {info['host']} {info['out_error']}; "
                                f"--out must be a path every worker can write")
        return found
    finally:
        client.close()


def format_seconds(seconds):
    """``75.3 -> '1m15s'``; ``None`` (unknown) -> ``'?'``."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def describe(result):
    """One short line of a training summary (status, accuracy, NFE, κ, time)."""
    if not isinstance(result, dict) or "status" not in result:
        return ""
    parts = [result["status"]]
    if result.get("test_accuracy") is not None:
        parts.append(f"acc {result['test_accuracy']:.3f}")
    if result.get("nfe") is not None:
        parts.append(f"NFE {result['nfe']}")
    if result.get("kappa_mean") is not None:
        parts.append(f"κ {result['kappa_mean']:.3g}")
    if result.get("seconds") is not None:
        parts.append(f"{result['seconds']:.1f} s")
    return ", ".join(parts)


class Progress:
    """Counts finished tasks and prints ``[done/total] label: result; ETA``.

    Tasks found finished on disk (``skipped``) count as done but not in the
    rate, so the ETA follows the work actually left.
    """

    def __init__(self, total, skipped=0, log=None):
        self.total, self.done, self.skipped = total, skipped, skipped
        self.start = time.perf_counter()
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def eta(self):
        new = self.done - self.skipped
        if new == 0:
            return None
        return (time.perf_counter() - self.start) / new * (self.total - self.done)

    def update(self, label, result):
        self.done += 1
        width = len(str(self.total))
        self.log(f"[{self.done:>{width}}/{self.total}] {label}: {describe(result)}; "
                 f"elapsed {format_seconds(time.perf_counter() - self.start)}, "
                 f"ETA {format_seconds(self.eta())}")


def check_backend(backend, scheduler):
    """Raise ValueError unless ``backend`` can run here (call before any work starts)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "dask":
        if not scheduler:
            raise ValueError("backend 'dask' needs the scheduler's address (--scheduler)")
        try:
            import distributed  # noqa: F401 (joblib's Dask backend needs it)
        except ImportError as exc:
            raise ValueError("backend 'dask' needs the odejac[dask] extra "
                             "(pip install 'dask[distributed]')") from exc


def run_parallel(tasks, *, jobs=-1, backend="loky", scheduler=None, skipped=0, log=None):
    """Run ``tasks`` (list of ``(label, function, args)``) and return ``{label: result}``.

    Parameters
    ----------
    jobs : int
        joblib ``n_jobs`` (-1: all cores; with Dask, the cluster's workers).
    backend : {"loky", "dask"}
    scheduler : str, optional
        Address of the Dask scheduler (``backend="dask"`` only; required).
    skipped : int
        Tasks already finished on disk, shown in the count.
    """
    from joblib import Parallel, delayed, parallel_config

    check_backend(backend, scheduler)
    jobs = check_jobs(jobs, len(tasks), backend)
    progress = Progress(len(tasks) + skipped, skipped, log)
    progress.log(f"{len(tasks)} runs to do, {skipped} already finished; "
                 f"backend {backend}, jobs {jobs}")
    results = {}
    if not tasks:
        return results
    options = {"backend": backend}
    parent = os.getpid() if backend == "loky" else None
    if backend == "loky":   # every worker, busy or idle, exits when this process dies
        options.update(initializer=_exit_with_parent, initargs=(parent,))
    client = None
    if backend == "dask":
        client = connect_dask(scheduler)
        options["client"] = client
    # batch_size=1: every task is seconds long, so batching buys nothing and
    # would delay the progress lines.
    quiet = _quiet_dask() if backend == "dask" else contextlib.nullcontext()
    with quiet:
        try:
            with parallel_config(**options):
                parallel = Parallel(n_jobs=jobs, batch_size=1,
                                    return_as="generator_unordered")
                for label, result in parallel(delayed(_labelled)(label, function, args, parent)
                                              for label, function, args in tasks):
                    results[label] = result
                    progress.update(label, result)
        except (OSError, TimeoutError, concurrent.futures.CancelledError) as exc:
            if backend != "dask":
                raise
            raise DaskError(f"lost the Dask cluster at {scheduler} after {len(results)} of "
                            f"{len(tasks)} runs ({type(exc).__name__}); finished runs are on "
                            f"disk: run the same command to resume") from None
        finally:
            if client is not None:
                client.close()
    return results


def check_jobs(jobs, n_tasks, backend="loky"):
    """joblib's ``n_jobs`` for ``n_tasks`` tasks: never more workers than tasks."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0 or jobs < -1:
        raise ValueError(f"jobs must be a positive number of workers or -1 (all); "
                         f"got {jobs!r}")
    if backend == "dask" and jobs == -1:
        return -1   # the cluster's size
    available = (os.cpu_count() or 1) if jobs == -1 else jobs
    return max(1, min(available, n_tasks))
