"""Run independent tasks in parallel with joblib (loky or Dask) and report progress.

A task is ``(label, function, args)`` with a module-level ``function`` of
plain, picklable arguments that writes its own results to disk; the runner
only dispatches, collects the small dict each returns, and prints one line per
finished task with the count, the rate and an ETA.

Backends
--------
``loky`` (default) runs worker processes on this machine. ``dask`` sends the
same tasks through joblib's Dask backend to the scheduler at ``scheduler``
(``tcp://host:8786``); it needs the ``odejac[dask]`` extra and workers that
can import odejac and write to the output directory.
"""
import sys
import time

BACKENDS = ("loky", "dask")


def _labelled(label, function, args):
    """Run one task in a worker; the label comes back so unordered results are known."""
    return label, function(*args)


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
    progress = Progress(len(tasks) + skipped, skipped, log)
    progress.log(f"{len(tasks)} runs to do, {skipped} already finished; "
                 f"backend {backend}, jobs {jobs}")
    results = {}
    if not tasks:
        return results
    options = {"backend": backend}
    if backend == "dask":
        options["scheduler_host"] = scheduler
    # batch_size=1: every task is seconds long, so batching buys nothing and
    # would delay the progress lines.
    with parallel_config(**options):
        parallel = Parallel(n_jobs=jobs, batch_size=1, return_as="generator_unordered")
        for label, result in parallel(delayed(_labelled)(label, function, args)
                                      for label, function, args in tasks):
            results[label] = result
            progress.update(label, result)
    return results
