"""Validate, lock and dispatch the runs of a study; verify every record came back.

Shared by :func:`odejac.study.experiments.run_experiments` and
:func:`odejac.study.sweep.run_sweep`. Everything that can refuse a command is
checked before anything is written: the backend, every run directory's config,
and (Dask) the scheduler, its workers, their odejac version and that they see
the output directory. Only then is ``OUT`` locked (a second command on the same
directory is refused) and written. After the runs, every expected record is
read back; runs without a result are listed in ``missing``.
"""
import contextlib
import os
import socket
import time
from dataclasses import dataclass, field

from ..io import DirectoryLock, remove_stale_temporaries, write_json
from .records import load_records, run_dir
from .runner import check_backend, check_dask, check_jobs, run_parallel


@dataclass
class Dispatched:
    """What :func:`dispatched` yields: the records and how the runs went."""

    out: str
    records: list
    trained: int
    missing: list = field(default_factory=list)
    executed_by: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def result(self, n_runs, outputs):
        """What the ``run_*`` functions of the study commands return: ``{"runs", "trained",
        "missing", "executed_by", "seconds" (since :func:`dispatched` began), "outputs"}``."""
        return {"runs": n_runs, "trained": self.trained, "missing": self.missing,
                "executed_by": self.executed_by,
                "seconds": time.perf_counter() - self.started, "outputs": outputs}


def plan(out, study, evaluation):
    """``(tasks, skipped)``: the runs that need work (reads only; ValueError on a clash)."""
    from .experiments import check_config, is_done, run_one

    tasks, skipped = [], 0
    for arm, seed, config in study.runs():
        directory = run_dir(out, arm, seed)
        check_config(directory, config)
        if is_done(directory, config, evaluation):
            skipped += 1
        else:
            tasks.append((f"{arm.name} seed {seed}", run_one, (config, directory, evaluation)))
    return tasks, skipped


@contextlib.contextmanager
def dispatched(out, study, evaluation, *, jobs=-1, backend="loky", scheduler=None, log=None,
               inputs=None):
    """Run the study's unfinished runs into ``out``; yield a :class:`Dispatched`.

    ``inputs(out)`` writes the study's shared input files (after validation).
    The body (tables, figures) runs while ``out`` is still locked.
    """
    started = time.perf_counter()
    check_backend(backend, scheduler)
    if backend == "dask":   # workers must write where the client reads
        out = os.path.abspath(out)
    tasks, skipped = plan(out, study, evaluation)
    check_jobs(jobs, max(1, len(tasks)), backend)
    if backend == "dask" and tasks:
        check_dask(scheduler, out)
    os.makedirs(out, exist_ok=True)
    with DirectoryLock(out):
        remove_stale_temporaries(out)
        tasks, skipped = plan(out, study, evaluation)   # again, now that it is ours
        write_json(os.path.join(out, "study.json"), study.to_dict())
        if inputs is not None:
            inputs(out)
        results = run_parallel(tasks, jobs=jobs, backend=backend, scheduler=scheduler,
                               skipped=skipped, log=log)
        records = load_records(out, study)
        missing = [f"{r['arm']} seed {r['seed']}" for r in records if r["summary"] is None]
        here = f"{socket.gethostname()}:{os.getpid()}"
        executed_by = sorted({r.get("worker", here) for r in results.values()
                              if isinstance(r, dict)})
        yield Dispatched(out=out, records=records, trained=len(tasks), missing=missing,
                         executed_by=executed_by, started=started)
