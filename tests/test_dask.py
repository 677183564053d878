"""The Dask backend against a real cluster: two worker processes on this machine (issue #12).

Runs must execute in the workers (not the client), give the local backend's
table, and every fault of the cluster (unreachable scheduler, no workers, a
worker with another odejac) must be a one-line error with nothing written.
CI installs the ``dask`` extra through the ``test`` extra, so these run there.
"""
import os
import pathlib

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from odejac.cli import main  # noqa: E402
from odejac.study import runner  # noqa: E402
from odejac.study.records import run_dir  # noqa: E402
from odejac.study.runner import DaskError  # noqa: E402
from odejac.study.sweep import make_sweep, run_sweep  # noqa: E402

STUDY = make_sweep(regs=("frobenius",), lams=(1e-3,), seeds=1, quick=True, epochs=2)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        yield cluster


def _params(out):
    return [np.load(os.path.join(run_dir(str(out), arm, seed), "params.npz"))["theta"]
            for arm, seed, _ in STUDY.runs()]


@pytest.mark.slow
def test_runs_execute_on_worker_processes_and_match_the_local_backend(tmp_path, cluster,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)   # a relative --out must still land here, not in the workers' cwd
    result = run_sweep("relative", STUDY, backend="dask", scheduler=cluster.scheduler_address,
                       plots=False, log=lambda line: None)
    assert result["missing"] == [] and result["trained"] == len(STUDY.runs())
    with distributed.Client(cluster.scheduler_address) as client:
        worker_pids = set(client.run(os.getpid).values())
    ran_in = {int(worker.rsplit(":", 1)[1]) for worker in result["executed_by"]}
    assert ran_in and ran_in <= worker_pids and os.getpid() not in ran_in
    local = run_sweep(str(tmp_path / "local"), STUDY, jobs=1, plots=False, log=lambda line: None)
    assert local["missing"] == []
    for a, b in zip(_params(tmp_path / "relative"), _params(tmp_path / "local")):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "relative" / "sweep.csv").read_text() == \
        (tmp_path / "local" / "sweep.csv").read_text()


@pytest.mark.slow
def test_worker_with_another_odejac_is_refused_before_any_run(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(runner, "odejac_identity", lambda: ("0.0", "not-the-workers"))
    with pytest.raises(DaskError, match="this client odejac 0.0 .source not-the-workers"):
        run_sweep(str(tmp_path / "s"), STUDY, backend="dask",
                  scheduler=cluster.scheduler_address, plots=False, log=lambda line: None)
    assert not (tmp_path / "s").exists()


def test_scheduler_without_workers_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "DASK_TIMEOUT", 1)
    with distributed.LocalCluster(n_workers=0, processes=False,
                                  dashboard_address=":0") as empty:
        status = main(["sweep", "--quick", "--backend", "dask", "--scheduler",
                       empty.scheduler_address, "--out", str(tmp_path / "s")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and "has no workers" in lines[-1] and "dask worker" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "s").exists()


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "DASK_TIMEOUT", 1)
    status = main(["sweep", "--quick", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9",
                   "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert status == 1 and "cannot reach the Dask scheduler" in err and "Traceback" not in err
    assert not pathlib.Path(tmp_path / "s").exists()
