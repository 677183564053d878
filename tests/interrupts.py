"""Stop a training run right after it commits a chosen epoch, as a kill there would.

``runstate.commit`` writes one epoch's state atomically; a kill right after it leaves exactly
that state on disk. Used by the resume tests of ``test_train.py``, ``test_rnode_steer.py`` and
``test_faults_writes.py``.
"""
import contextlib

import odejac.runstate as runstate


@contextlib.contextmanager
def dies_after_commit(monkeypatch, epoch=None, error=KeyboardInterrupt):
    """Inside the block, raise ``error`` right after the commit of ``epoch`` (None: after the
    first commit, whatever its epoch); on leaving it, commits are plain again."""
    real = runstate.commit

    def commit_then_die(out_dir, state, config):
        real(out_dir, state, config)
        if epoch is None or state.epoch == epoch:
            raise error

    monkeypatch.setattr(runstate, "commit", commit_then_die)
    try:
        yield
    finally:
        monkeypatch.setattr(runstate, "commit", real)
