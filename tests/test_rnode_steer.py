"""RNODE (``reg="rnode"``: ∫‖f‖² + ρ‖J‖_F² dt) and STEER (random end time per batch) against
finite differences, their validation, and STEER's seeded end-time stream."""
import numpy as np
import pytest

from odejac import trajectory
from odejac.model import NeuralODE
from odejac.train import TrainConfig, steer_end_time, train
from interrupts import dies_after_commit
from test_trajectory import FD_RTOL, TIGHT, _data, _worst_fd_error


def _model(reg="rnode", time_dependent=True, **kw):
    return NeuralODE(2, n_classes=3, augment_dim=1, hidden=(6, 5), time_dependent=time_dependent,
                     reg=reg, lam=kw.pop("lam", 0.3), seed=3, **{**TIGHT, **kw})


@pytest.mark.parametrize("lam2", [None, 0.05])
def test_rnode_gradient_matches_finite_differences(lam2):
    model = _model(lam2=lam2)
    assert model.reg_at == "trajectory"
    X, y = _data()
    worst = _worst_fd_error(model, X, y, n_random=2, n_coords=4)
    assert worst <= FD_RTOL, f"rnode lam2={lam2}: max relative error {worst:.2e}"


def test_rnode_is_kinetic_plus_squared_frobenius_on_the_path():
    """One λ: λ(∫‖f‖² + ∫‖J‖_F²); two: λ∫‖f‖² + λ₂∫‖J‖_F² — both halves measured apart."""
    X, y = _data()
    kinetic = _model("kinetic", reg_at="trajectory").loss(X, y)
    frob = _model("frobenius", reg_at="trajectory").loss(X, y)
    plain = _model("none").loss(X, y)
    both = _model().loss(X, y)
    np.testing.assert_allclose(both - plain, (kinetic - plain) + (frob - plain), rtol=1e-8)
    two = _model(lam2=0.05).loss(X, y)
    np.testing.assert_allclose(two - plain, (kinetic - plain) + (frob - plain) * 0.05 / 0.3,
                               rtol=1e-8)
    assert frob - plain > 1e-3 and kinetic - plain > 1e-3   # neither half is negligible


def test_rnode_options_are_checked():
    with pytest.raises(ValueError, match="trajectory"):
        NeuralODE(2, reg="rnode", gradient="discrete")
    with pytest.raises(ValueError, match="rnode"):
        NeuralODE(2, reg="kinetic", lam=1.0, lam2=0.5)
    with pytest.raises(ValueError, match="lam > 0"):
        NeuralODE(2, reg="rnode", lam=0.0, lam2=0.5)
    with pytest.raises(ValueError, match="lam2"):
        NeuralODE(2, reg="rnode", lam=1.0, lam2=float("nan"))
    assert trajectory.rnode_weight("rnode", 0.2, 0.2) == 1.0
    with pytest.raises(ValueError, match="rnode"):
        TrainConfig(reg="condition", lam2=0.1)
    with pytest.raises(ValueError, match="lam2"):
        TrainConfig(reg="rnode", lam=0.1, lam2=-0.5)
    with pytest.raises(ValueError, match="lam > 0"):
        TrainConfig(reg="rnode", lam=0.0, lam2=0.5)


@pytest.mark.parametrize("reg,t1", [("none", 1.4), ("rnode", 0.6)])
def test_gradient_at_a_fixed_end_time_matches_finite_differences(reg, t1):
    model = _model(reg)
    X, y = _data()
    loss_T, grad_T, _ = model.loss_and_grad(X, y, t1=t1)
    assert abs(loss_T - model.loss(X, y)) > 1e-3          # the end time is really used
    assert not np.allclose(grad_T, model.loss_and_grad(X, y)[1])

    class AtT:   # the model's loss at end time t1, for the shared FD helper
        theta = property(lambda s: model.theta, lambda s, v: setattr(model, "theta", v))
        field = model.field
        loss_and_grad = staticmethod(lambda X, y: model.loss_and_grad(X, y, t1=t1))
        loss = staticmethod(lambda X, y: model.loss(X, y, t1=t1))

    worst = _worst_fd_error(AtT(), X, y, n_random=2, n_coords=4)
    assert worst <= FD_RTOL, f"reg={reg}, t1={t1}: max relative error {worst:.2e}"


def test_bad_end_time_is_refused():
    model, (X, y) = _model("none"), _data()
    for t1 in (0.0, -0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="end time"):
            model.loss(X, y, t1=t1)


def test_steer_end_times_lie_in_the_interval_differ_and_are_reproducible():
    config = TrainConfig(steer=0.5)
    times = np.array([[steer_end_time(config, e, b) for b in range(8)] for e in range(1, 6)])
    assert np.all((times >= 0.5) & (times <= 1.5))
    assert len(np.unique(times)) == times.size              # every batch its own T
    assert times.min() < 0.8 and times.max() > 1.2          # spread over the interval
    again = [[steer_end_time(config, e, b) for b in range(8)] for e in range(1, 6)]
    np.testing.assert_array_equal(times, again)
    other = [steer_end_time(config.replace(seed=1), e, 0) for e in range(1, 6)]
    assert not np.array_equal(times[:, 0], other)
    assert steer_end_time(TrainConfig(), 1, 0) is None      # B = 0: the model's t1 = 1
    for bad in (1.0, -0.1, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="steer"):
            TrainConfig(steer=bad)


def test_steer_training_resumes_bit_identically_and_moves_the_result(tmp_path, monkeypatch):
    small = TrainConfig(epochs=2, n_train=60, n_test=50, batch_size=30, hidden=(6,), steer=0.5)
    full, summary = train(small, tmp_path / "full")
    assert summary["status"] == "finished" and np.isfinite(summary["test_accuracy"])
    with dies_after_commit(monkeypatch, epoch=1), pytest.raises(KeyboardInterrupt):
        train(small, tmp_path / "part")
    resumed, _ = train(small, tmp_path / "part")
    np.testing.assert_array_equal(resumed.model.theta, full.model.theta)
    plain, _ = train(small.replace(steer=0.0), tmp_path / "plain")
    assert not np.array_equal(plain.model.theta, full.model.theta)
