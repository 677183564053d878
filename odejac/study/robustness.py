"""Robustness and margin of a trained classifier: noise, FGSM, PGD, boundary distance.

Every evaluation takes a trained :class:`~odejac.model.NeuralODE` and plain
arrays, and stacks all of its perturbed copies into ONE batch, so each costs
one forward solve (or one adjoint solve per PGD step) however many noise
levels or radii it covers. A batch is integrated as one system with one step
size, as torchdiffeq does; the step size is then set by the whole batch, which
moves accuracies by far less than the tolerance-level noise of the solve.

Settings live in one frozen :class:`EvalConfig`, saved beside the results
(``robustness.json``) so that a resumed study re-evaluates a run only when
they change.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

#: Standard deviations of the Gaussian input noise (Figure 2); the moons have unit radius
#: and their gap is ≈ 0.5 wide, so σ = 0.5 mixes the classes thoroughly.
NOISE_STDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
#: L∞ budgets of FGSM and PGD (Figure 5), on the same scale.
EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
#: PGD step size as a multiple of ε / steps (Madry et al., 2018, use 2.5): large enough to
#: reach the corner of the ε-ball from its centre and still move along it afterwards.
PGD_STEP_FACTOR = 2.5


@dataclass(frozen=True)
class EvalConfig:
    """Settings of the evaluations run on every trained model.

    ``margin_points`` training points (a fixed subset) get a decision-boundary
    distance from ``sphere_points`` uniform points on each circle of radius
    ``radius_step, 2·radius_step, …, max_radius``; a point whose label holds
    up to ``max_radius`` is reported at ``max_radius`` (censored) and counted.
    """

    noise_stds: tuple = NOISE_STDS
    noise_repeats: int = 1
    epsilons: tuple = EPSILONS
    attack_points: int = 200
    pgd_steps: int = 5
    margin_points: int = 200
    sphere_points: int = 16
    radius_step: float = 0.025
    max_radius: float = 1.5
    grid_resolution: int = 120
    n_trajectories: int = 24
    trajectory_times: int = 21
    seed: int = 0

    def __post_init__(self):
        for name in ("noise_stds", "epsilons"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or min(values) < 0 or not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be finite numbers >= 0; got {values!r}")
            object.__setattr__(self, name, values)
        for name in ("noise_repeats", "attack_points", "pgd_steps", "margin_points",
                     "sphere_points", "grid_resolution", "n_trajectories", "trajectory_times"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not (0 < self.radius_step <= self.max_radius < np.inf):
            raise ValueError(f"need 0 < radius_step <= max_radius; got {self.radius_step}, "
                             f"{self.max_radius}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _accuracy(model, X, y):
    return float(np.mean(model.predict(X) == y))


def noise_accuracy(model, X, y, stds, repeats=1, rng=None):
    """Accuracy on ``X + N(0, σ² I)`` for each ``σ`` in ``stds``, shape ``(len(stds),)``.

    ``repeats`` noisy copies of ``X (N, d)`` per level, all in one solve.
    """
    rng = np.random.default_rng(rng)
    stds = np.asarray(stds, dtype=float)
    noise = rng.standard_normal((len(stds), repeats) + X.shape)
    X_noisy = X + stds[:, None, None, None] * noise
    hits = model.predict(X_noisy.reshape(-1, X.shape[1])) == np.tile(y, len(stds) * repeats)
    return hits.reshape(len(stds), -1).mean(axis=1)


def input_gradient(model, X, y):
    """``∂L/∂x (N, d)`` of the mean data loss, from the adjoint's ``a(t0)``."""
    return model.loss_and_grad(X, y)[2]["dL_dx"]


def fgsm_accuracy(model, X, y, epsilons):
    """Accuracy under FGSM, ``x + ε sign(∂L/∂x)`` (Goodfellow et al., 2015), per ``ε``."""
    eps = np.asarray(epsilons, dtype=float)
    step = np.sign(input_gradient(model, X, y))
    X_adv = X[None] + eps[:, None, None] * step[None]
    hits = model.predict(X_adv.reshape(-1, X.shape[1])) == np.tile(y, len(eps))
    return hits.reshape(len(eps), -1).mean(axis=1)


def pgd_accuracy(model, X, y, epsilons, steps):
    """Accuracy under L∞ projected gradient ascent (Madry et al., 2018), per ``ε``.

    ``steps`` signed-gradient steps of ``PGD_STEP_FACTOR · ε / steps`` from
    the clean point (no random start, so the result is deterministic), each
    projected back onto the ε-ball; every ε is attacked in the same batch.
    """
    eps = np.asarray(epsilons, dtype=float)[:, None, None]
    n, d = X.shape
    X_adv = np.repeat(X[None], len(eps), axis=0)
    labels = np.tile(y, len(eps))
    alpha = PGD_STEP_FACTOR * eps / steps
    for _ in range(steps):
        grad = input_gradient(model, X_adv.reshape(-1, d), labels).reshape(X_adv.shape)
        X_adv = np.clip(X_adv + alpha * np.sign(grad), X - eps, X + eps)
    hits = model.predict(X_adv.reshape(-1, d)) == labels
    return hits.reshape(len(eps), -1).mean(axis=1)


def boundary_distances(model, X, radius_step, max_radius, sphere_points, rng=None):
    """Distance from each point to the decision boundary, by linear search over spheres.

    For ``r = radius_step, 2·radius_step, …`` draw ``sphere_points`` points
    uniformly on the sphere of radius ``r`` around each point still searching
    (normalised Gaussian directions; Muller, 1959); the distance is the largest
    ``r`` at which all of them keep the centre's predicted label (Josias &
    Brink, 2022, Figure 3). Only points still searching are solved, so the cost
    follows the distances found, not ``max_radius``.

    Returns
    -------
    distances : ndarray, shape (N,)
        In ``[0, max_radius]``; ``max_radius`` means "at least" (censored).
    censored : ndarray of bool, shape (N,)
    """
    rng = np.random.default_rng(rng)
    n, d = X.shape
    centre = model.predict(X)
    n_radii = int(np.floor(max_radius / radius_step + 1e-9))
    distances = np.full(n, n_radii * radius_step)
    alive = np.arange(n)
    for k in range(1, n_radii + 1):
        if alive.size == 0:
            break
        u = rng.standard_normal((alive.size, sphere_points, d))
        u /= np.linalg.norm(u, axis=2, keepdims=True)
        points = X[alive, None, :] + k * radius_step * u
        labels = model.predict(points.reshape(-1, d)).reshape(alive.size, sphere_points)
        flipped = np.any(labels != centre[alive, None], axis=1)
        distances[alive[flipped]] = (k - 1) * radius_step
        alive = alive[~flipped]
    censored = np.zeros(n, dtype=bool)
    censored[alive] = True
    return distances, censored


def trajectories(model, X, n_times):
    """States ``h(t)`` at ``n_times`` equally spaced times in ``[0, 1]``, ``(n_times, N, D)``.

    Consecutive sub-interval solves, each from the previous end state; at the
    same tolerances their steps differ from one ``[0, 1]`` solve, which moves the
    drawn curves by no more than the tolerance.
    """
    times = np.linspace(0.0, 1.0, n_times)
    states = [model.initial_state(X)]
    for t0, t1 in zip(times[:-1], times[1:]):
        states.append(model._solve(states[-1], t_span=(t0, t1))[0])
    return times, np.stack(states)


def decision_grid(model, X, resolution, margin=0.5):
    """Class-1 probability on a ``resolution²`` grid around the 2-D points ``X``."""
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    proba = model.predict_proba(np.column_stack([xx.ravel(), yy.ravel()]))[:, -1]
    return xx, yy, proba.reshape(xx.shape)


def _subset(n, size, rng):
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def evaluate_robustness(model, data, settings, regions=True):
    """Every evaluation of one trained model, as JSON-ready numbers and plot arrays.

    Parameters
    ----------
    model : NeuralODE
    data : Dataset
    settings : EvalConfig
    regions : bool
        Also compute the Figure 6 arrays.

    Returns
    -------
    report : dict
        ``noise``, ``fgsm``, ``pgd`` (levels and accuracies) and ``margin``
        (per-point distances of the subset and their summary).
    arrays : dict of ndarray
        For Figure 6 (2-D inputs only): the class-1 probability on a grid of
        inputs, trajectories ``h(t)`` of a few training points and the linear
        readout ``(W (D, C), b (C,))`` that classifies ``h(1)``.
    """
    rng = np.random.default_rng([settings.seed, 3])
    X_te, y_te, X_tr = data.X_test, data.y_test, data.X_train
    noise = noise_accuracy(model, X_te, y_te, settings.noise_stds, settings.noise_repeats, rng)
    attack = _subset(len(X_te), settings.attack_points, rng)
    fgsm = fgsm_accuracy(model, X_te[attack], y_te[attack], settings.epsilons)
    pgd = pgd_accuracy(model, X_te[attack], y_te[attack], settings.epsilons, settings.pgd_steps)
    margin_idx = _subset(len(X_tr), settings.margin_points, rng)
    dist, censored = boundary_distances(model, X_tr[margin_idx], settings.radius_step,
                                        settings.max_radius, settings.sphere_points, rng)
    correct = model.predict(X_tr[margin_idx]) == data.y_train[margin_idx]
    report = {
        "noise": {"stds": list(settings.noise_stds), "accuracy": noise.tolist()},
        "fgsm": {"epsilons": list(settings.epsilons), "accuracy": fgsm.tolist()},
        "pgd": {"epsilons": list(settings.epsilons), "accuracy": pgd.tolist(),
                "steps": settings.pgd_steps},
        "margin": {"indices": margin_idx.tolist(), "distances": dist.tolist(),
                   "censored": int(censored.sum()), "correct": correct.tolist(),
                   "mean": float(dist.mean()), "median": float(np.median(dist)),
                   "mean_correct": float(dist[correct].mean()) if correct.any() else None},
    }
    arrays = {}
    if regions and X_tr.shape[1] == 2:
        pick = _subset(len(X_tr), settings.n_trajectories, rng)
        times, states = trajectories(model, X_tr[pick], settings.trajectory_times)
        # The grid spans the trajectories too: with D = 2 they live in the input plane.
        extent = np.vstack([X_tr, states[..., :2].reshape(-1, 2)])
        xx, yy, proba = decision_grid(model, extent, settings.grid_resolution)
        arrays = dict(grid_x=xx, grid_y=yy, proba=proba, times=times, states=states,
                      labels=data.y_train[pick], readout_W=model.W_out, readout_b=model.b_out)
    return report, arrays
