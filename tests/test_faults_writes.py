"""Kills between two particular writes of a run, caused on purpose (issue #12; the random
kills are in ``test_faults.py``). A random kill lands between two writes only by luck; here
each test stops the command right after a chosen write, which on disk is what a SIGKILL
there leaves (every file is written atomically), and the rerun must give the uninterrupted
run's results."""
import os

import pytest

import odejac.io as odejac_io
from interrupts import dies_after_commit
from test_faults import TRAIN, _differing, _file_prints, main


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``{file: digest}`` of an uninterrupted TRAIN run."""
    out = tmp_path_factory.mktemp("reference") / "train"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return _file_prints(out)


def test_kill_right_after_the_first_commit_resumes(tmp_path, reference, monkeypatch):
    """The state of epoch 0 (Adam without moments yet) is a valid state to resume from."""
    with dies_after_commit(monkeypatch):
        assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 130
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 0
    assert not _differing(tmp_path / "run", reference)


def _writes_of(argv, monkeypatch):
    """The file names ``main(argv)`` writes atomically, in order (run to the end)."""
    real, names = odejac_io._atomic, []

    def recording(path, write):
        real(path, write)
        names.append(os.path.basename(path))

    monkeypatch.setattr(odejac_io, "_atomic", recording)
    assert main(argv) == 0
    monkeypatch.setattr(odejac_io, "_atomic", real)
    return names


@pytest.mark.parametrize("name", ["state.npz", "history.json", "params.npz", "summary.json"])
def test_killed_after_one_of_the_last_writes_resumes(tmp_path, reference, monkeypatch, name):
    """Killed right after the last write of ``name`` (the final epoch's state, its history,
    θ, the summary): the rerun repairs every derived file. A kill between the final state
    commit and its history.json once left history.json an epoch short for good: the
    resume found no epoch left to train, so no commit rewrote it."""
    names = _writes_of([*TRAIN, "--out", str(tmp_path / "count")], monkeypatch)
    stop = len(names) - names[::-1].index(name)   # die after this many writes
    real, done = odejac_io._atomic, []

    def die_after(path, write):
        real(path, write)
        done.append(os.path.basename(path))
        if len(done) == stop:
            raise KeyboardInterrupt   # on disk the same as a SIGKILL right here

    out = tmp_path / "run"
    monkeypatch.setattr(odejac_io, "_atomic", die_after)
    assert main([*TRAIN, "--out", str(out)]) == 130
    monkeypatch.setattr(odejac_io, "_atomic", real)
    assert done[-1] == name
    assert main([*TRAIN, "--out", str(out)]) == 0
    differing = _differing(out, reference)
    assert not differing, f"after a kill following {name}: {differing} differ"
