"""What each epoch of :func:`odejac.train.fit` sees: the shuffled batches and the λ schedule.

* Shuffling: epoch ``e`` (1-based) visits the training set in the order of the ``e``-th
  permutation drawn from ``np.random.default_rng([seed, 2])`` (the stream saved in the
  checkpoint, apart from the initial weights' stream), cut into consecutive batches; so the
  same seed gives the same batches and successive epochs differ.
* λ warm-up: with ``lam_warmup = W > 0`` epoch ``e`` trains with ``λ · min(1, e / W)`` (the
  first epoch already penalises, the full λ is reached at epoch ``W``), and its history record
  says which λ it used.
"""
import numpy as np
import pytest

from odejac.train import TrainConfig, fit, new_state

N, BATCH = 12, 5
TINY = TrainConfig(epochs=3, batch_size=BATCH, hidden=(4,), augment_dim=0)


def _data():
    """Rows ``[i, (-1)^i]``: the first column names the sample."""
    X = np.stack([np.arange(N, dtype=float), (-1.0) ** np.arange(N)], axis=1)
    return X, np.arange(N) % 2


def _observed(config):
    """Per loss evaluation: (epoch, sample indices of the batch, λ in force); and the history."""
    X, y = _data()
    state = new_state(config, 2, 2)
    real, seen = state.model.loss_and_grad, []

    def watch(Xb, yb):
        seen.append((state.epoch + 1, Xb[:, 0].astype(int).tolist(), state.model.lam))
        return real(Xb, yb)

    state.model.loss_and_grad = watch
    fit(state, config, X, y)
    return seen, state.history


def _orders(seen):
    orders = {}
    for epoch, idx, _ in seen:
        orders.setdefault(epoch, []).extend(idx)
    return [orders[e] for e in sorted(orders)]


@pytest.mark.parametrize("seed", [0, 7])
def test_epoch_e_uses_the_e_th_seeded_permutation(seed):
    config = TINY.replace(seed=seed)
    seen, _ = _observed(config)
    stream = np.random.default_rng([seed, 2])
    expected = [stream.permutation(N).tolist() for _ in range(config.epochs)]
    assert _orders(seen) == expected
    batches = [idx for _, idx, _ in seen]
    assert [len(b) for b in batches] == [5, 5, 2] * config.epochs


def test_epochs_differ_and_the_same_seed_repeats_them():
    orders = _orders(_observed(TINY)[0])
    assert all(sorted(o) == list(range(N)) for o in orders)          # each a permutation
    assert len({tuple(o) for o in orders}) == len(orders)             # no epoch repeats another
    assert orders[0] != list(range(N))                                # actually shuffled
    assert _orders(_observed(TINY)[0]) == orders                      # seeded
    assert _orders(_observed(TINY.replace(seed=1))[0]) != orders      # and by the seed


@pytest.mark.parametrize("warmup", [1, 3])
def test_lambda_warm_up_schedule(warmup):
    lam = 0.3
    config = TINY.replace(reg="frobenius", lam=lam, lam_warmup=warmup, epochs=4)
    seen, history = _observed(config)
    expected = [lam * min(1.0, e / warmup) for e in range(1, config.epochs + 1)]
    assert [r["lam"] for r in history] == pytest.approx(expected, rel=1e-15)
    for epoch, _, used in seen:                       # and the loss was computed with it
        assert used == pytest.approx(expected[epoch - 1], rel=1e-15)


def test_without_warm_up_lambda_is_constant():
    seen, history = _observed(TINY.replace(reg="frobenius", lam=0.3))
    assert {r["lam"] for r in history} == {0.3} and {u for _, _, u in seen} == {0.3}
