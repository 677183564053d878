"""Tests for odejac.data: generators, determinism, embedding isometry, check_Xy validation."""
import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from odejac.data import (
    DATASETS,
    EMBED_NOISE_FRACTION,
    Dataset,
    check_Xy,
    get_dataset,
    load_digits_data,
    make_embedded_moons,
    make_moons_data,
)

SMALL = {"n_train": 60, "n_test": 40}


def assert_well_formed(ds, d, n_classes):
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        assert X.dtype == np.float64 and X.flags.c_contiguous and X.shape[1] == d
        assert y.dtype == np.int64 and y.shape == (X.shape[0],)
        assert set(np.unique(y)) <= set(range(n_classes))
    assert ds.n_classes == n_classes


def same(a, b):
    fields = ("X_train", "y_train", "X_test", "y_test")
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


# ---- generators -------------------------------------------------------------------------------

@pytest.mark.nojit
def test_moons_shapes_dtypes_and_raw_scale():
    ds = make_moons_data(n_train=101, n_test=37, noise=0.1, seed=3)
    assert_well_formed(ds, 2, 2)
    assert ds.X_train.shape == (101, 2) and ds.X_test.shape == (37, 2)
    assert ds.name == "moons"
    # unstandardised: sklearn's moons span x ∈ [-1, 2], y ∈ [-0.5, 1]
    assert ds.X_train[:, 0].min() < -0.5 and ds.X_train[:, 0].max() > 1.5
    assert abs(ds.y_train.mean() - 0.5) < 0.01  # 50/51 split between the moons


@pytest.mark.parametrize("make", [make_moons_data, lambda **kw: make_embedded_moons(5, **kw)])
def test_seeding(make):
    a, b, c = make(seed=1, **SMALL), make(seed=1, **SMALL), make(seed=2, **SMALL)
    assert same(a, b)
    assert not np.allclose(a.X_train, c.X_train)
    assert not np.allclose(a.X_train[:40], a.X_test)  # train and test are independent draws


def test_digits_split_and_standardisation():
    ds = load_digits_data(test_fraction=0.3, seed=0)
    assert_well_formed(ds, 64, 10)
    n = len(ds.y_train) + len(ds.y_test)
    assert n == 1797 and len(ds.y_test) == pytest.approx(0.3 * n, abs=1)
    # stratified: class proportions agree between the two parts
    p_tr = np.bincount(ds.y_train, minlength=10) / len(ds.y_train)
    p_te = np.bincount(ds.y_test, minlength=10) / len(ds.y_test)
    assert np.max(np.abs(p_tr - p_te)) < 0.01
    # train statistics: mean 0, std 1 except constant pixels, which stay constant (0)
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-12)
    std = ds.X_train.std(axis=0)
    const = std == 0
    assert const.any()  # e.g. pixel 0 is blank in every image
    np.testing.assert_allclose(std[~const], 1.0, rtol=1e-12)
    assert np.all(np.isfinite(ds.X_test))
    raw = load_digits_data(seed=0, standardise=False)
    assert raw.X_train.max() == 16.0 and np.array_equal(raw.y_train, ds.y_train)
    assert same(ds, load_digits_data(seed=0)) and not same(ds, load_digits_data(seed=1))


@pytest.mark.parametrize("dim", [2, 3, 10])
def test_embedded_moons_is_an_isometry_without_noise(dim):
    flat = make_moons_data(noise=0.0, seed=4, **SMALL)
    emb = make_embedded_moons(dim, noise=0.0, seed=4, **SMALL)
    assert_well_formed(emb, dim, 2)
    assert emb.name == "embedded_moons"
    assert np.array_equal(emb.y_train, flat.y_train) and np.array_equal(emb.y_test, flat.y_test)
    for X2, XD in ((flat.X_train, emb.X_train), (flat.X_test, emb.X_test)):
        np.testing.assert_allclose(pdist(XD), pdist(X2), rtol=1e-12, atol=1e-13)
        norms = np.linalg.norm(X2, axis=1)
        np.testing.assert_allclose(np.linalg.norm(XD, axis=1), norms, rtol=1e-12)
    if dim > 2:
        assert np.linalg.matrix_rank(emb.X_train, tol=1e-10) == 2  # a 2-plane, not the first axes
        assert np.abs(emb.X_train[:, 2:]).max() > 0.1


def test_embedded_moons_noise_level():
    dim, noise = 8, 0.2
    emb = make_embedded_moons(dim, n_train=4000, n_test=10, noise=noise, seed=0)
    # Off the moons' plane only the isotropic noise remains: the 6 smallest principal stds.
    sv = np.linalg.svd(emb.X_train - emb.X_train.mean(axis=0), compute_uv=False)
    off_plane = sv[2:] / np.sqrt(len(emb.X_train))
    np.testing.assert_allclose(off_plane, EMBED_NOISE_FRACTION * noise, rtol=0.1)


@pytest.mark.nojit
def test_get_dataset():
    assert set(DATASETS) == {"moons", "digits", "embedded_moons"}
    assert same(get_dataset("moons", seed=2, **SMALL), make_moons_data(seed=2, **SMALL))
    assert get_dataset("embedded_moons", embed_dim=4, **SMALL).X_train.shape == (60, 4)
    with pytest.raises(ValueError, match="valid names: moons, digits, embedded_moons"):
        get_dataset("mnist")


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (make_moons_data, {"n_train": 0}, "n_train"),
        (make_moons_data, {"n_test": 2.0}, "n_test"),
        (make_moons_data, {"noise": -0.1}, "noise"),
        (make_moons_data, {"noise": float("nan")}, "noise"),
        (make_moons_data, {"seed": -1}, "seed"),
        (make_embedded_moons, {"embed_dim": 1}, "embed_dim"),
        (load_digits_data, {"test_fraction": 1.0}, "test_fraction"),
        (load_digits_data, {"test_fraction": 0}, "test_fraction"),
    ],
)
def test_generator_arguments_validated(make, kwargs, match):
    if make is make_embedded_moons:
        kwargs = {"embed_dim": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


# ---- check_Xy and Dataset validation ----------------------------------------------------------

@pytest.mark.nojit
def test_check_Xy_converts():
    X, y = check_Xy([[1, 2], [3, 4], [5, 6]], [0.0, 1.0, 2.0])
    assert X.dtype == np.float64 and X.flags.c_contiguous and y.dtype == np.int64
    assert y.tolist() == [0, 1, 2]
    Xf = np.asfortranarray(np.ones((3, 2)))
    assert check_Xy(Xf)[0].flags.c_contiguous
    assert check_Xy(np.ones((2, 2)), np.array([True, False]))[1].tolist() == [1, 0]
    assert check_Xy(np.ones((2, 2)), np.array([1, 0], dtype=np.uint8))[1].dtype == np.int64
    assert check_Xy(np.ones((2, 3)), n_features=3)[1] is None


@pytest.mark.nojit
@pytest.mark.parametrize(
    "X, y, kw, match",
    [
        (np.where(np.arange(20).reshape(10, 2) % 7 == 4, np.nan, 1.0), None, {},
         r"X has 3 non-finite entries \(first at row 2, column 0\)"),
        (np.array([[0.0, np.inf]]), None, {}, r"1 non-finite entries \(first at row 0, column 1\)"),
        (np.ones(4), None, {}, r"X has shape \(4,\); expected \(N, d\)"),
        (np.ones((0, 2)), None, {}, "N, d >= 1"),
        (np.ones((2, 2), dtype=complex), None, {}, "real numeric"),
        (np.array([["a", "b"]]), None, {}, "real numeric"),
        (np.ones((4, 3)), None, {"n_features": 2}, "X has 3 features; expected 2"),
        (np.ones((4, 2)), np.zeros((4, 2)), {}, r"y has shape \(4, 2\); expected \(N,\)"),
        (np.ones((4, 2)), np.zeros(5), {}, "y has 5 labels but X has 4 rows"),
        (np.ones((2, 2)), np.array([0.0, 0.5]), {}, "y holds non-integer labels, e.g. 0.5"),
        (np.ones((2, 2)), np.array([0.0, np.nan]), {}, "non-integer labels, e.g. nan"),
        (np.ones((2, 2)), np.array([0, -1]), {}, "y holds negative labels, e.g. -1"),
        (np.ones((2, 2)), np.array(["0", "1"]), {}, "integer labels; got dtype"),
    ],
)
def test_check_Xy_errors(X, y, kw, match):
    with pytest.raises(ValueError, match=match):
        check_Xy(X, y, **kw)


def test_dataset_validates_on_construction():
    X, y = np.ones((3, 2)), np.array([0, 1, 1])
    ds = Dataset(X.astype(np.float32), y.astype(float), X, y, n_classes=2, name="toy")
    assert ds.X_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    with pytest.raises(ValueError, match="label 1 but n_classes = 1"):
        Dataset(X, y, X, y, n_classes=1, name="toy")
    with pytest.raises(ValueError, match="X has 3 features; expected 2"):
        Dataset(X, y, np.ones((3, 3)), y, n_classes=2, name="toy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.n_classes = 3


@pytest.mark.parametrize("n, noise, state", [(1000, 0.1, 0), (7, 0.3, 12345), (1, 0.0, 2 ** 32 - 1),
                                             (4096, 0.05, 987654321)])
def test_numpy_moons_are_sklearns_bit_for_bit(n, noise, state):
    """``data._make_moons`` avoids importing sklearn; it must give make_moons' exact bits."""
    from sklearn.datasets import make_moons

    from odejac.data import _make_moons
    X, y = _make_moons(n, noise, state)
    X_ref, y_ref = make_moons(n_samples=n, noise=noise, random_state=state)
    np.testing.assert_array_equal(X.view(np.int64), X_ref.view(np.int64))
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == y_ref.dtype
