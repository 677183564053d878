"""Classification datasets (two moons, digits, embedded moons) and the library's ``check_Xy``.

Every generator returns a frozen :class:`Dataset` of float64 inputs ``X : (N, d)`` and int64
labels ``y : (N,)`` in ``0..n_classes-1``, reproducible from its integer ``seed``. Seeds are
expanded with ``np.random.SeedSequence(seed)``: ``generate_state(2)`` gives the two independent
32-bit ``random_state`` values of the train and test draws, and ``spawn(1)[0]`` the stream of
the embedding (rotation and extra noise), so no stream is shared between two purposes.
"""
import numbers
from dataclasses import dataclass

import numpy as np

EMBED_NOISE_FRACTION = 0.1
"""Std of the isotropic noise of ``make_embedded_moons``, as a fraction of ``noise``."""

PREPROCESS_FILE = "preprocess.json"
"""Where a run directory keeps its :class:`Preprocessing` (see :mod:`odejac.saved`)."""

_INT64_LIMIT = 2.0**63  # float labels at or above this do not fit in int64


@dataclass(frozen=True)
class Dataset:
    """A train/test split for classification (validated on construction).

    Attributes
    ----------
    X_train, X_test : ndarray, shape (N_train, d), (N_test, d)
        float64 inputs, finite.
    y_train, y_test : ndarray, shape (N_train,), (N_test,)
        int64 labels in ``0..n_classes-1``.
    n_classes : int
        Number of classes.
    name : str
        Key of the generator in ``get_dataset`` (or the file name of the user's data).
    preprocessing : Preprocessing, optional
        How raw inputs became ``X`` and labels became ``y`` (``None``: unchanged, with
        ``y`` the class index itself).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    preprocessing: "Preprocessing | None" = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a str; got {self.name!r}")
        n_classes = _check_int("n_classes", self.n_classes, 1)
        X_train, y_train = check_Xy(self.X_train, self.y_train)
        X_test, y_test = check_Xy(self.X_test, self.y_test, n_features=X_train.shape[1])
        for part, y in (("train", y_train), ("test", y_test)):
            if y.max() >= n_classes:
                raise ValueError(f"y_{part} has label {y.max()} but n_classes = {n_classes}")
        for field, value in (("X_train", X_train), ("y_train", y_train), ("X_test", X_test),
                             ("y_test", y_test), ("n_classes", n_classes)):
            object.__setattr__(self, field, value)  # frozen: store the validated versions
        prep = self.preprocessing
        if prep is None:
            object.__setattr__(self, "preprocessing",
                               Preprocessing.identity(X_train.shape[1], n_classes))
        elif len(prep.feature_names) != X_train.shape[1] or len(prep.classes) != n_classes:
            raise ValueError(f"preprocessing has {len(prep.feature_names)} features and "
                             f"{len(prep.classes)} classes; the data {X_train.shape[1]} and "
                             f"{n_classes}")


@dataclass(frozen=True)
class Preprocessing:
    """Raw rows → model inputs, and class index → the user's label (saved with a run).

    Attributes
    ----------
    feature_names : tuple of str, length d
        Input columns, in the order the model reads them.
    classes : ndarray, shape (n_classes,)
        ``classes[i]`` is the label (int or str) of class index ``i``.
    scaler : sklearn.preprocessing.StandardScaler or None
        Fitted on the training part only; ``None`` when inputs are used as they are.
    target : str or None
        The label column of a CSV file.
    source : str or None
        The data file the run was trained on.
    """

    feature_names: tuple
    classes: np.ndarray
    scaler: object = None           # sklearn StandardScaler (imported where one is built)
    target: str = None
    source: str = None

    @classmethod
    def identity(cls, n_features, n_classes, scaler=None):
        """Columns ``x0 … x{d-1}``, labels ``0 … C-1``."""
        return cls(tuple(f"x{j}" for j in range(n_features)), np.arange(n_classes), scaler)

    def transform(self, X):
        """``X (N, d)`` as the model sees it (the scaler applied, if any)."""
        X = np.asarray(X, dtype=np.float64)
        return X if self.scaler is None else self.scaler.transform(X)

    def to_dict(self):
        scaler = None if self.scaler is None else {
            "mean": self.scaler.mean_.tolist(), "scale": self.scaler.scale_.tolist(),
            "n_samples_seen": int(self.scaler.n_samples_seen_)}
        return {"feature_names": list(self.feature_names), "classes": self.classes.tolist(),
                "scaler": scaler, "target": self.target, "source": self.source}

    @classmethod
    def from_dict(cls, data):
        s = data["scaler"]
        scaler = None if s is None else fitted_scaler(s["mean"], s["scale"], s["n_samples_seen"])
        return cls(tuple(data["feature_names"]), np.asarray(data["classes"]), scaler,
                   data.get("target"), data.get("source"))


def fitted_scaler(mean, scale, n_samples_seen):
    """A fitted ``StandardScaler`` whose ``transform`` is ``(X - mean) / scale``.

    For a standardisation computed elsewhere (digits) or read back from a run directory;
    JSON keeps float64 exactly, so the rebuilt scaler transforms bit-identically.
    """
    from sklearn.preprocessing import StandardScaler   # lazily: see _make_moons
    scaler = StandardScaler()
    scaler.mean_ = np.asarray(mean, dtype=np.float64)
    scaler.scale_ = np.asarray(scale, dtype=np.float64)
    scaler.var_ = scaler.scale_ ** 2
    scaler.n_features_in_ = scaler.mean_.shape[0]
    scaler.n_samples_seen_ = int(n_samples_seen)
    return scaler


def _check_int(name, value, minimum):
    """``value`` as an int ≥ ``minimum`` (bools and floats rejected), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_noise(noise):
    if not (isinstance(noise, numbers.Real) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite real >= 0; got {noise!r}")
    return float(noise)


def check_Xy(X, y=None, n_features=None):
    """Validate a design matrix and (optionally) its labels.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Real, finite, ``N, d ≥ 1``.
    y : array_like, shape (N,), optional
        Non-negative integral labels: integers, bools, or floats that are exactly integral.
    n_features : int, optional
        Required ``d``.

    Returns
    -------
    X : ndarray, shape (N, d)
        float64, C-contiguous (the input itself if it already is).
    y : ndarray, shape (N,) or None
        int64.

    Raises
    ------
    ValueError
        With context, e.g. "X has 3 non-finite entries (first at row 5, column 0)".
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must be real numeric; got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; expected (N, d) with N, d >= 1")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features; expected {n_features}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise ValueError(
            f"X has {len(bad)} non-finite entries (first at row {bad[0, 0]}, column {bad[0, 1]})"
        )
    if y is None:
        return X, None
    return X, _check_labels(y, X.shape[0])


def _check_labels(y, n_rows):
    """``y`` as int64 ``(n_rows,)`` non-negative labels, or ValueError (see ``check_Xy``)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y has shape {y.shape}; expected (N,) with N = {n_rows}")
    if y.shape[0] != n_rows:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n_rows} rows")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(f"y holds non-integer labels, e.g. {y[bad][0].item()}")
        if (np.abs(y) >= _INT64_LIMIT).any():
            raise ValueError(f"y holds labels too large for int64, e.g. {np.abs(y).max()}")
    elif y.dtype.kind not in "biu":
        raise ValueError(f"y must hold integer labels; got dtype {y.dtype}")
    elif y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"y holds labels too large for int64, e.g. {y.max()}")
    y = y.astype(np.int64)
    if (y < 0).any():
        raise ValueError(f"y holds negative labels, e.g. {y[y < 0][0]}")
    return y


def _seeds(seed):
    """Two independent 32-bit ``random_state`` values (train, test) derived from ``seed``."""
    seed = _check_int("seed", seed, 0)
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(2)]


def _make_moons(n_samples, noise, random_state):
    """``sklearn.datasets.make_moons(n_samples, noise=noise, random_state=random_state)``,
    the same bits in NumPy alone (``tests/test_data.py`` compares them): importing sklearn
    pulls in ``scipy.stats`` and costs ~0.7 s of every ``cli.py train`` start (issue #11).
    The outer moon gets ``n // 2`` points; the rows are shuffled by
    ``RandomState(random_state).shuffle`` of the indices, then Gaussian noise is added."""
    rng = np.random.RandomState(random_state)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)),
                   np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    X, y = X[order], y[order]
    X += rng.normal(scale=noise, size=X.shape)
    return X, y


def make_moons_data(n_train=1000, n_test=1000, noise=0.1, seed=0):
    """Two interleaving half-circles (``sklearn.datasets.make_moons``), unstandardised.

    Parameters
    ----------
    n_train, n_test : int
        Sample counts, ≥ 1 (split as evenly as possible between the two moons).
    noise : float
        Std of the isotropic Gaussian noise added by sklearn, ≥ 0.
    seed : int
        ≥ 0; train and test are independent draws (see the module docstring).

    Returns
    -------
    Dataset
        ``X : (N, 2)`` raw coordinates (as plotted in the paper), ``n_classes = 2``, "moons".
    """
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 1)
    noise = _check_noise(noise)
    train_seed, test_seed = _seeds(seed)
    X_tr, y_tr = _make_moons(n_train, noise, train_seed)
    X_te, y_te = _make_moons(n_test, noise, test_seed)
    return Dataset(X_tr, y_tr, X_te, y_te, n_classes=2, name="moons")


def load_digits_data(test_fraction=0.3, seed=0, standardise=True):
    """sklearn's 8×8 handwritten digits (1797 samples, 64 pixels, 10 classes), split stratified.

    Parameters
    ----------
    test_fraction : float
        Fraction of samples in the test set, in (0, 1).
    seed : int
        ``random_state`` of ``train_test_split`` (≥ 0).
    standardise : bool
        If True, ``X ← (X − μ) / s`` with the TRAIN mean and std per pixel; a pixel that is
        constant on the training set gets ``s = 1`` (it carries no information, and dividing
        by 0 would blow up test pixels that differ).

    Returns
    -------
    Dataset
        ``X : (N, 64)``, ``n_classes = 10``, "digits".
    """
    if not (isinstance(test_fraction, numbers.Real) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a real in (0, 1); got {test_fraction!r}")
    seed = _check_int("seed", seed, 0)
    from sklearn.datasets import load_digits          # imported here: see _make_moons
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(
        digits.data, digits.target,
        test_size=test_fraction, stratify=digits.target, random_state=seed,
    )
    scaler = None
    if standardise:
        mean = X_tr.mean(axis=0)
        std = X_tr.std(axis=0)
        std[np.ptp(X_tr, axis=0) == 0] = 1.0  # constant on train (exactly, not "std ≈ 0")
        X_tr, X_te = (X_tr - mean) / std, (X_te - mean) / std
        scaler = fitted_scaler(mean, std, len(X_tr))  # saved with a run: predict takes raw pixels
    return Dataset(X_tr, y_tr, X_te, y_te, n_classes=10, name="digits",
                   preprocessing=Preprocessing.identity(X_tr.shape[1], 10, scaler))


def make_embedded_moons(embed_dim, n_train=1000, n_test=1000, noise=0.1, seed=0):
    """Two moons isometrically embedded in ``R^embed_dim``, plus small isotropic noise.

    ``X = [x_moons, 0, …, 0] Qᵀ + η`` with ``x_moons`` exactly ``make_moons_data(n_train,
    n_test, noise, seed)``, ``Q`` a Haar-random orthogonal matrix (QR of a Gaussian, column signs
    fixed by ``diag(R)``) and ``η ~ N(0, (EMBED_NOISE_FRACTION · noise)² I)`` in all dimensions
    (std 0.01 at the default ``noise = 0.1``), so the data lie close to a random 2-plane. With
    ``noise = 0`` the map from the moons is an exact isometry.

    Parameters
    ----------
    embed_dim : int
        Ambient dimension, ≥ 2.
    n_train, n_test, noise, seed
        As in ``make_moons_data``; ``Q`` and ``η`` come from ``SeedSequence(seed).spawn(1)[0]``.

    Returns
    -------
    Dataset
        ``X : (N, embed_dim)``, ``n_classes = 2``, "embedded_moons".
    """
    embed_dim = _check_int("embed_dim", embed_dim, 2)
    moons = make_moons_data(n_train=n_train, n_test=n_test, noise=noise, seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    Q, R = np.linalg.qr(rng.standard_normal((embed_dim, embed_dim)))
    Q *= np.sign(np.diag(R))  # makes Q Haar-distributed and unique
    level = EMBED_NOISE_FRACTION * float(noise)

    def embed(X2):
        # Padding with zeros then multiplying by Qᵀ uses only the first two columns of Q.
        X = X2 @ Q[:, :2].T
        return X + level * rng.standard_normal(X.shape)

    return Dataset(embed(moons.X_train), moons.y_train, embed(moons.X_test), moons.y_test,
                   n_classes=2, name="embedded_moons")


DATASETS = {
    "moons": make_moons_data,
    "digits": load_digits_data,
    "embedded_moons": make_embedded_moons,
}


def get_dataset(name, **kw):
    """``DATASETS[name](**kw)``; ValueError listing the valid names for an unknown ``name``."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name](**kw)
