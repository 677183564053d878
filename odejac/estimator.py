"""scikit-learn estimator around the neural ODE classifier.

``NeuralODEClassifier`` follows scikit-learn's conventions: ``__init__``
stores its parameters unchanged, learned state ends in an underscore, and
``clone``, ``cross_val_score`` and ``GridSearchCV`` work. Inputs are validated by
scikit-learn's own ``validate_data`` (finite X and y, ``n_features_in_`` and, for data frames,
``feature_names_in_`` recorded in ``fit`` and checked in ``predict``). A fitted estimator
survives ``pickle`` and ``joblib.dump`` and predicts identically after loading. It trains with
the same loop as ``python cli.py train`` (:func:`odejac.train.fit`).
"""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._threads import blas_threads
from .train import TrainConfig, fit, new_state


class NeuralODEClassifier(ClassifierMixin, BaseEstimator):
    """Neural ODE classifier with optional Jacobian regularisation.

    Parameters
    ----------
    reg : {"none", "frobenius", "spectral", "condition", "log_condition", "kinetic", "taynode",
           "rnode", "solver_error"}
    lam : float
        Penalty weight λ ≥ 0.
    epochs, batch_size : int
    lr : float
        Adam learning rate.
    augment_dim : int
        Zero dimensions appended to the inputs.
    hidden : tuple of int
        Hidden widths of the vector field.
    time_dependent : bool
    rtol, atol : float
        Tolerances of the forward and adjoint solves.
    controller : {"torchdiffeq", "scipy"}
    lam_warmup : int
        Epochs of linear λ warm-up (0: none).
    seed : int
        Seeds the initial weights and the shuffling.

    Attributes
    ----------
    model_ : NeuralODE
        The trained model.
    history_ : list of dict
        Per-epoch records (loss, accuracy, NFE, κ, time).
    classes_ : ndarray
        Class labels seen in ``fit``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names, only when ``fit`` got a data frame with string column names.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from odejac import NeuralODEClassifier
    >>> from odejac.data import make_moons_data
    >>> data = make_moons_data(n_train=200, n_test=200)
    >>> clf = NeuralODEClassifier(reg="condition", lam=1e-3, epochs=20)
    >>> scores = cross_val_score(clf, data.X_train, data.y_train, cv=3)  # doctest: +SKIP
    """

    def __init__(self, reg="none", lam=0.0, epochs=100, batch_size=256, lr=1e-2, augment_dim=2,
                 hidden=(32, 32), time_dependent=False, rtol=1e-3, atol=1e-3,
                 controller="torchdiffeq", lam_warmup=0, seed=0):
        self.reg = reg
        self.lam = lam
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.augment_dim = augment_dim
        self.hidden = hidden
        self.time_dependent = time_dependent
        self.rtol = rtol
        self.atol = atol
        self.controller = controller
        self.lam_warmup = lam_warmup
        self.seed = seed

    def _config(self):
        return TrainConfig(reg=self.reg, lam=float(self.lam), epochs=int(self.epochs),
                           batch_size=int(self.batch_size), lr=float(self.lr),
                           augment_dim=int(self.augment_dim), hidden=tuple(self.hidden),
                           time_dependent=bool(self.time_dependent), rtol=float(self.rtol),
                           atol=float(self.atol), adjoint_rtol=float(self.rtol),
                           adjoint_atol=float(self.atol), controller=self.controller,
                           lam_warmup=int(self.lam_warmup), seed=int(self.seed))

    def fit(self, X, y):
        """Train on ``X (N, d)``, labels ``y (N,)`` (any values; at least two classes).

        Raises
        ------
        ValueError
            Bad parameters or data.
        odejac.train.DivergenceError
            Non-finite loss or solver failure during training.
        """
        config = self._config()
        # ensure_all_finite (the default) refuses NaN/inf in X; y is checked finite as well.
        X, y = validate_data(self, X, y, dtype=np.float64, order="C")
        try:
            check_classification_targets(y)
            self.classes_, y_index = np.unique(y, return_inverse=True)
        except TypeError as exc:  # e.g. None among str labels: no order exists
            raise ValueError(f"y holds labels that cannot be compared ({exc})") from None
        if len(self.classes_) < 2:
            raise ValueError("y holds a single class; a classifier needs at least two")
        state = new_state(config, X.shape[1], len(self.classes_))
        with blas_threads():
            fit(state, config, X, y_index)
        self.model_ = state.model
        self.history_ = state.history
        return self

    def predict_proba(self, X):
        """Class probabilities ``(N, n_classes)``, columns in ``classes_`` order.

        Raises
        ------
        ValueError
            NaN/inf in ``X``, another number of features, or (for data frames) other
            feature names than in ``fit``.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        with blas_threads():
            return self.model_.predict_proba(X)

    def predict(self, X):
        """Predicted labels ``(N,)`` from ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
