"""Robustness evaluations against a linear classifier whose answers are known exactly."""
import numpy as np
import pytest

from odejac.model import NeuralODE
from odejac.study.robustness import (EvalConfig, boundary_distances, fgsm_accuracy, noise_accuracy,
                               pgd_accuracy, trajectories)


class HalfPlane:
    """Class 1 iff ``x_0 > 0``; logistic loss ``log(1 + exp(-(2y-1) x_0))`` for the gradient."""

    def predict(self, X):
        return (X[:, 0] > 0).astype(np.int64)

    def loss_and_grad(self, X, y):
        sign = 2.0 * y - 1.0
        slope = -sign / (1.0 + np.exp(sign * X[:, 0])) / len(X)
        dL_dx = np.zeros_like(X)
        dL_dx[:, 0] = slope
        return 0.0, None, {"dL_dx": dL_dx}


MARGINS = np.array([0.33, 0.71, 0.12, 0.48])


def _points():
    """Correctly classified points at distances ``MARGINS`` from the boundary, both sides."""
    x0 = MARGINS * np.array([1, -1, 1, -1])
    X = np.column_stack([x0, np.linspace(-1, 1, len(x0))])
    return X, (x0 > 0).astype(np.int64)


def test_boundary_distance_is_the_margin_floored_to_the_grid():
    X, _ = _points()
    X = np.vstack([X, [[2.0, 0.0]]])  # beyond max_radius: censored
    dist, censored = boundary_distances(HalfPlane(), X, radius_step=0.1, max_radius=1.0,
                                        sphere_points=400, rng=0)
    expected = np.append(np.floor(MARGINS * 10) / 10, 1.0)
    np.testing.assert_allclose(dist, expected, atol=1e-12,
                               err_msg=f"distances {dist} != floored margins {expected}")
    assert censored.tolist() == [False] * len(MARGINS) + [True]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attacks_flip_exactly_the_points_within_epsilon(attack):
    X, y = _points()
    eps = np.array([0.0, 0.1, 0.2, 0.4, 0.6, 0.8])
    if attack == "fgsm":
        acc = fgsm_accuracy(HalfPlane(), X, y, eps)
    else:
        acc = pgd_accuracy(HalfPlane(), X, y, eps, steps=5)
    expected = [(MARGINS > e).mean() for e in eps]
    np.testing.assert_allclose(acc, expected, err_msg=f"{attack}: {acc} != {expected}")


def test_noise_accuracy_is_clean_at_zero_and_chance_at_huge_noise():
    X, y = _points()
    X, y = np.repeat(X, 500, axis=0), np.repeat(y, 500)
    acc = noise_accuracy(HalfPlane(), X, y, [0.0, 1e6], repeats=2, rng=0)
    assert acc[0] == 1.0
    assert abs(acc[1] - 0.5) < 0.02, f"accuracy under huge noise {acc[1]} is not chance"


def test_trajectories_start_at_the_input_and_end_near_the_solve():
    model = NeuralODE(2, augment_dim=1, hidden=(8,), seed=3, rtol=1e-8, atol=1e-8)
    X = np.random.default_rng(0).normal(size=(5, 2))
    times, states = trajectories(model, X, 6)
    assert states.shape == (6, 5, 3) and np.allclose(times, np.linspace(0, 1, 6))
    np.testing.assert_array_equal(states[0], model.initial_state(X))
    np.testing.assert_allclose(states[-1], model.forward(X)[0], atol=1e-6)


@pytest.mark.parametrize("bad", [dict(noise_stds=(-0.1,)), dict(sphere_points=0),
                                 dict(radius_step=2.0, max_radius=1.0), dict(epsilons=())])
def test_eval_config_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        EvalConfig(**bad)


def test_eval_config_round_trips():
    config = EvalConfig(noise_stds=[0, 0.5], sphere_points=3)
    assert EvalConfig.from_dict(config.to_dict()) == config
    assert config.noise_stds == (0.0, 0.5)
