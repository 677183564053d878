"""Tests for odejac.optim.Adam: hand-computed steps, checkpoint round-trip, validation."""
import math

import numpy as np
import pytest

from odejac.optim import Adam, clip_global_norm


def adam_by_hand(theta0, grads, lr, b1, b2, eps):
    """Scalar-by-scalar Adam with the ``math`` module: the list of θ after each step."""
    theta, m, v = list(theta0), [0.0] * len(theta0), [0.0] * len(theta0)
    out = []
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(np.array(theta))
    return out


@pytest.mark.nojit
def test_matches_hand_computation_over_several_steps():
    lr, betas, eps = 0.05, (0.8, 0.95), 1e-6
    theta0 = [1.0, -2.0, 0.5, 0.0]
    grads = [
        [0.3, -1.0, 0.0, 2.0], [0.1, 0.5, -0.2, 2.0], [-0.4, 0.25, 1e-3, -1.0], [1.0, 1.0, 1.0, 1.0]
    ]
    expected = adam_by_hand(theta0, grads, lr, *betas, eps)
    opt = Adam(lr=lr, betas=betas, eps=eps)
    theta = np.array(theta0)
    for k, g in enumerate(grads):
        theta = opt.step(theta, np.array(g))
        assert opt.t == k + 1
        np.testing.assert_allclose(
            theta, expected[k], rtol=1e-15, atol=1e-15, err_msg=f"step {k + 1}"
        )


@pytest.mark.nojit
def test_first_step_moves_each_entry_by_lr():
    # m̂ = g, v̂ = g² at t = 1, so the step is lr·g/(|g| + eps) ≈ lr·sign(g).
    opt = Adam(lr=0.1, eps=1e-12)
    theta = opt.step(np.zeros(3), np.array([5.0, -1e-3, 2.0]))
    np.testing.assert_allclose(theta, [-0.1, 0.1, -0.1], rtol=1e-8)


def test_step_does_not_mutate_inputs():
    opt = Adam()
    theta, grad = np.ones(3), np.full(3, 0.5)
    new = opt.step(theta, grad)
    assert np.all(theta == 1.0) and np.all(grad == 0.5)
    assert new is not theta and not np.shares_memory(new, theta)


def test_state_round_trip_is_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((8, 5))
    ref = Adam(lr=0.01)
    theta_ref = np.zeros(5)
    for g in grads:
        theta_ref = ref.step(theta_ref, g)

    opt = Adam(lr=0.01)
    theta = np.zeros(5)
    for g in grads[:3]:
        theta = opt.step(theta, g)
    np.savez(tmp_path / "ckpt.npz", theta=theta, **opt.state_dict())
    with np.load(tmp_path / "ckpt.npz") as f:
        loaded = {k: f[k] for k in f.files}
    resumed = Adam(lr=123.0, betas=(0.1, 0.2))  # overwritten by the checkpoint
    resumed.load_state_dict(loaded)
    theta = loaded["theta"]
    for g in grads[3:]:
        theta = resumed.step(theta, g)
    assert resumed.t == ref.t == 8
    assert np.array_equal(theta, theta_ref)


def test_state_dict_is_a_copy_and_fresh_state_round_trips():
    opt = Adam()
    fresh = Adam(lr=0.5)
    fresh.load_state_dict(opt.state_dict())  # t = 0: no moments yet
    assert fresh.t == 0 and fresh.m is None and fresh.lr == opt.lr
    opt.step(np.zeros(2), np.ones(2))
    state = opt.state_dict()
    state["m"][:] = 99.0
    assert np.all(opt.m != 99.0)
    assert set(state) == {"lr", "beta1", "beta2", "eps", "t", "m", "v"}
    assert isinstance(state["t"], int) and isinstance(state["lr"], float)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"betas": (1.0, 0.999)}, "beta1"),
        ({"betas": (0.9, -0.1)}, "beta2"),
        ({"betas": (0.9,)}, "pair"),
        ({"eps": 0.0}, "eps"),
        ({"eps": float("inf")}, "eps"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


@pytest.mark.nojit
def test_bad_gradients_raise_and_leave_state_alone():
    opt = Adam()
    theta = opt.step(np.zeros(4), np.ones(4))
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but theta has shape \(4,\)"):
        opt.step(theta, np.ones(3))
    bad = r"grad has 2 non-finite entries \(first at flat index 1\) at step 2"
    with pytest.raises(ValueError, match=bad):
        opt.step(theta, np.array([0.0, np.nan, 0.0, np.inf]))
    with pytest.raises(ValueError, match=r"optimizer state is for \(4,\)"):
        opt.step(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="theta has 1 non-finite"):
        opt.step(np.array([0.0, 0.0, np.inf, 0.0]), np.ones(4))
    after = opt.state_dict()
    assert after["t"] == before["t"] and np.array_equal(after["m"], before["m"])


def test_bad_state_raises():
    opt = Adam()
    state = Adam().state_dict()
    del state["v"]
    with pytest.raises(ValueError, match="missing keys"):
        opt.load_state_dict(state)
    state = Adam().state_dict() | {"t": 2, "m": np.zeros(3), "v": np.zeros(2)}
    with pytest.raises(ValueError, match="m has shape"):
        opt.load_state_dict(state)
    with pytest.raises(ValueError, match="t must be"):
        opt.load_state_dict(Adam().state_dict() | {"t": 1.5})


def test_converges_on_an_ill_scaled_quadratic():
    # L(θ) = ½ Σ a_i (θ_i − c_i)²: Adam's per-coordinate scaling handles the 1e4 spread in a_i.
    a = np.array([1e-2, 1.0, 1e2])
    c = np.array([3.0, -1.0, 0.5])
    opt = Adam(lr=0.05)
    theta = np.zeros(3)
    for _ in range(3000):
        theta = opt.step(theta, a * (theta - c))
    np.testing.assert_allclose(theta, c, atol=1e-3)


def test_clip_global_norm_bounds_the_norm_and_keeps_the_direction():
    rng = np.random.default_rng(3)
    grad = rng.normal(size=50) * 10.0
    clipped, was = clip_global_norm(grad, 0.5)
    assert was
    assert np.linalg.norm(clipped) == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(clipped / np.linalg.norm(clipped), grad / np.linalg.norm(grad),
                               rtol=1e-12)
    small = grad * (0.4 / np.linalg.norm(grad))
    same, was = clip_global_norm(small, 0.5)
    assert not was
    np.testing.assert_array_equal(same, small)  # untouched below the bound


@pytest.mark.parametrize("max_norm", [0.0, -1.0, float("nan"), float("inf")])
def test_clip_global_norm_refuses_bad_bounds(max_norm):
    with pytest.raises(ValueError, match="max_norm"):
        clip_global_norm(np.ones(3), max_norm)


def test_clip_global_norm_refuses_a_non_finite_gradient():
    with pytest.raises(ValueError, match="non-finite"):
        clip_global_norm(np.array([1.0, np.inf]), 1.0)


# -- found by mutation testing (tests/README.md) ---------------------------------------------

def test_zero_betas_are_allowed_and_give_normalised_gradient_steps():
    """β = 0 is in [0, 1): no averaging, so each step moves θ by lr · g / (|g| + eps)."""
    opt = Adam(lr=0.1, betas=(0.0, 0.0), eps=1e-8)
    g = np.array([2.0, -0.5])
    np.testing.assert_allclose(opt.step(np.zeros(2), g), -0.1 * g / (np.abs(g) + 1e-8),
                               rtol=1e-15)


def test_single_precision_inputs_are_computed_in_double():
    grads = np.random.default_rng(1).standard_normal((3, 4))
    ref, low = Adam(lr=0.01), Adam(lr=0.01)
    theta_ref = theta_low = np.zeros(4)
    for g in grads.astype(np.float32):
        theta_ref = ref.step(theta_ref, g.astype(np.float64))
        theta_low = low.step(np.asarray(theta_low, dtype=np.float32), g)
    assert low.m.dtype == low.v.dtype == np.float64
    # float32 θ is rounded on input only: the update itself is double
    assert theta_low.dtype == np.float64
    np.testing.assert_allclose(theta_low, theta_ref, rtol=0, atol=1e-7)


def test_fresh_state_dict_holds_empty_moment_arrays():
    state = Adam().state_dict()
    assert state["m"].shape == state["v"].shape == (0,) and state["t"] == 0


def test_loaded_moments_are_double_and_resume_after_one_step():
    """A checkpoint after the FIRST step resumes bit-identically, from float32 moments too."""
    grads = np.random.default_rng(2).standard_normal((3, 4))
    ref = Adam(lr=0.01)
    theta_ref = np.zeros(4)
    for g in grads:
        theta_ref = ref.step(theta_ref, g)
    first = Adam(lr=0.01)
    theta = first.step(np.zeros(4), grads[0])
    resumed = Adam()
    resumed.load_state_dict(first.state_dict())
    for g in grads[1:]:
        theta = resumed.step(theta, g)
    assert np.array_equal(theta, theta_ref)
    state = first.state_dict()
    state.update(m=state["m"].astype(np.float32), v=state["v"].astype(np.float32))
    resumed.load_state_dict(state)
    assert resumed.m.dtype == resumed.v.dtype == np.float64


def test_moments_are_validated_from_the_first_step_on():
    good = Adam()
    good.step(np.zeros(3), np.ones(3))
    state = good.state_dict()                         # t = 1
    for m, v in [([0.0, np.nan, 0.0], [1.0, 1.0, 1.0]), ([0.0, 0.0, 0.0], [1.0, np.inf, 1.0]),
                 ([0.0, 0.0, 0.0], [1.0, -1e-30, 1.0])]:
        with pytest.raises(ValueError, match="m and v must be finite and v >= 0"):
            Adam().load_state_dict(state | {"m": np.array(m), "v": np.array(v)})
    # a zero second moment (a parameter whose gradient was always 0) is valid
    opt = Adam()
    opt.load_state_dict(state | {"v": np.array([0.0, 1.0, 1.0])})
    assert opt.t == 1 and opt.v[0] == 0.0
