"""Child of ``benchmarks/startup.py``: run the CLI once and say where its time went.

    python benchmarks/_startup_child.py OUT.json cli-arguments...

Runs ``odejac.cli.main(cli-arguments)`` in this process and writes to ``OUT.json`` the
process-CPU and wall seconds spent, each exclusively (a phase nested in another counts only
for the inner one), in

* ``import``: outermost ``import`` statements, the CLI's lazy imports during the command too;
* ``compile``: Numba compiling (its ``numba:compile`` events: our kernels and the NumPy
  overloads they call), plus writing the results to the on-disk cache;
* ``cache_load``: Numba finding and loading compiled functions from the on-disk cache;
* ``run``: everything else from the first line of this script to the end of ``main``:
  training, evaluation, writing the run directory;

and, per compiled function, its exclusive compile CPU time (``compiled``). Everything runs on
one thread, so CPU time is what the wall time would be on an idle machine. The interpreter's
own start-up (before this script's first line; ``cpu_before_script``) and shut-down (after
``main``) are measured by the parent.
"""
import builtins
import json
import os
import sys
import time

_T0 = (time.process_time(), time.perf_counter())


class _Phases:
    """Exclusive CPU and wall time per phase; phases nest (a stack)."""

    def __init__(self):
        self.stack = []          # [kind, name, cpu0, wall0, child_cpu, child_wall]
        self.cpu, self.wall, self.compiled = {}, {}, {}

    def enter(self, kind, name=None):
        self.stack.append([kind, name, time.process_time(), time.perf_counter(), 0.0, 0.0])

    def leave(self):
        kind, name, cpu0, wall0, child_cpu, child_wall = self.stack.pop()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        self.cpu[kind] = self.cpu.get(kind, 0.0) + cpu - child_cpu
        self.wall[kind] = self.wall.get(kind, 0.0) + wall - child_wall
        if name is not None:
            self.compiled[name] = self.compiled.get(name, 0.0) + cpu - child_cpu
        if self.stack:
            self.stack[-1][4] += cpu
            self.stack[-1][5] += wall


PHASES = _Phases()


def _timed(kind, function):
    def wrapper(*args, **kwargs):
        PHASES.enter(kind)
        try:
            return function(*args, **kwargs)
        finally:
            PHASES.leave()
    return wrapper


_plain_import = builtins.__import__


def _import(name, *args, **kwargs):
    if PHASES.stack and PHASES.stack[-1][0] == "import":
        return _plain_import(name, *args, **kwargs)      # nested: the outer one counts it
    PHASES.enter("import")
    try:
        return _plain_import(name, *args, **kwargs)
    finally:
        PHASES.leave()


def _on_compile(event):
    """Open a ``compile`` phase on Numba's ``numba:compile`` events."""
    class Listener(event.Listener):
        def on_start(self, ev):
            func = ev.data["dispatcher"].py_func
            types = ", ".join(str(t) for t in ev.data["args"])
            PHASES.enter("compile", f"{func.__module__}.{func.__qualname__}({types})")

        def on_end(self, ev):
            PHASES.leave()
    event.register("numba:compile", Listener())


def main(out_path, argv):
    builtins.__import__ = _import
    PHASES.enter("import")
    from numba.core import caching, event
    PHASES.leave()
    _on_compile(event)
    caching.Cache.load_overload = _timed("cache_load", caching.Cache.load_overload)
    caching.Cache.save_overload = _timed("compile", caching.Cache.save_overload)
    PHASES.enter("import")
    from odejac.cli import main as cli_main
    PHASES.leave()
    status = cli_main(argv)
    total_cpu, total_wall = time.process_time() - _T0[0], time.perf_counter() - _T0[1]
    builtins.__import__ = _plain_import
    known_cpu, known_wall = sum(PHASES.cpu.values()), sum(PHASES.wall.values())
    record = {"status": status, "total_cpu": total_cpu, "total_wall": total_wall,
              "cpu": dict(PHASES.cpu, run=total_cpu - known_cpu),
              "wall": dict(PHASES.wall, run=total_wall - known_wall),
              "compiled": dict(sorted(PHASES.compiled.items(), key=lambda kv: -kv[1])),
              "cpu_before_script": _T0[0], "pid": os.getpid()}
    with open(out_path, "w") as fh:
        json.dump(record, fh)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
