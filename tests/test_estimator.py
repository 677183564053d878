"""The scikit-learn estimator follows scikit-learn's conventions."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from odejac import NeuralODEClassifier
from odejac.data import make_moons_data

FAST = dict(epochs=3, batch_size=50, hidden=(8, 8))


@pytest.fixture(scope="module")
def moons():
    return make_moons_data(n_train=150, n_test=60, seed=0)


def test_fit_predict_score(moons):
    clf = NeuralODEClassifier(**FAST).fit(moons.X_train, moons.y_train)
    assert clf.predict(moons.X_test).shape == (60,)
    proba = clf.predict_proba(moons.X_test)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1)
    assert 0.5 < clf.score(moons.X_test, moons.y_test) <= 1.0
    assert len(clf.history_) == 3 and clf.n_features_in_ == 2
    np.testing.assert_array_equal(clf.classes_, [0, 1])


def test_string_labels_map_back(moons):
    labels = np.array(["blue", "red"])[moons.y_train]
    clf = NeuralODEClassifier(**FAST).fit(moons.X_train, labels)
    assert set(clf.predict(moons.X_test)) <= {"blue", "red"}


def test_params_clone_and_set_params():
    clf = NeuralODEClassifier(reg="condition", lam=1e-3, **FAST)
    params = clf.get_params()
    assert params["reg"] == "condition" and params["lam"] == 1e-3
    twin = clone(clf)
    assert twin.get_params() == params and not hasattr(twin, "model_")
    twin.set_params(lam=0.5)
    assert twin.lam == 0.5 and clf.lam == 1e-3


def test_cross_val_score_and_grid_search(moons):
    scores = cross_val_score(NeuralODEClassifier(**FAST), moons.X_train, moons.y_train, cv=2)
    assert scores.shape == (2,) and np.all(scores > 0.4)
    search = GridSearchCV(NeuralODEClassifier(reg="frobenius", **FAST),
                          {"lam": [0.0, 0.1]}, cv=2)
    search.fit(moons.X_train, moons.y_train)
    assert search.best_params_["lam"] in (0.0, 0.1)


def test_errors(moons):
    with pytest.raises(ValueError, match="single class"):
        NeuralODEClassifier(**FAST).fit(moons.X_train, np.zeros(len(moons.X_train)))
    with pytest.raises(ValueError, match="reg"):
        NeuralODEClassifier(reg="nope", **FAST).fit(moons.X_train, moons.y_train)
    with pytest.raises(Exception, match="not fitted"):
        NeuralODEClassifier().predict(moons.X_test)
