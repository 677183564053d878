"""A trained run, ready to predict: :func:`load` (exported as ``odejac.load``).

A run directory written by :func:`odejac.train.train` holds ``config.json``, ``params.npz``
and ``preprocess.json`` (:class:`~odejac.data.Preprocessing`: input columns, the scaler
fitted on the training part, class labels). :func:`load` rebuilds them as a scikit-learn
``Pipeline`` — the scaler, then a fitted :class:`~odejac.estimator.NeuralODEClassifier` — so
``predict`` takes raw rows and returns the training file's own labels. :func:`predict_table`
adds what the ``predict`` command writes: probabilities, the NFE of the solve and κ(J).
"""
import os

import numpy as np
from sklearn.pipeline import Pipeline

from ._threads import blas_threads
from .data import PREPROCESS_FILE, Preprocessing
from .estimator import NeuralODEClassifier
from .io import read_json, read_npz
from .model import softmax
from .train import TrainConfig, build_model, load_data

PARAMS_FILE = "params.npz"
CONFIG_FILE = "config.json"


class RunError(ValueError):
    """A directory that does not hold a finished run."""


def read_preprocessing(run_dir, config):
    """The run's :class:`~odejac.data.Preprocessing`; runs made before it was saved get
    the built-in data set's own (regenerated from the config)."""
    path = os.path.join(run_dir, PREPROCESS_FILE)
    if os.path.exists(path):
        return Preprocessing.from_dict(read_json(path))
    return load_data(config).preprocessing


def load(run_dir):
    """The trained model of ``run_dir`` with its preprocessing and class labels.

    Parameters
    ----------
    run_dir : str
        A directory written by ``odejac train`` / :func:`odejac.train.train`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``"scale"`` (the saved ``StandardScaler``, or ``"passthrough"``) and
        ``"classify"`` (a fitted ``NeuralODEClassifier``; its ``model_`` is the
        :class:`~odejac.model.NeuralODE`). ``predict(X_raw (N, d))`` returns labels from
        ``classes_``; columns of ``X_raw`` are ``feature_names`` (an extra attribute of the
        pipeline), in that order.

    Raises
    ------
    RunError
        No run there, or the run has no final parameters (unfinished).
    """
    for name in (CONFIG_FILE, PARAMS_FILE):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise RunError(f"{run_dir}: no {name}; not a finished run of odejac train")
    config = TrainConfig.from_dict(read_json(os.path.join(run_dir, CONFIG_FILE)))
    prep = read_preprocessing(run_dir, config)
    n_features, classes = len(prep.feature_names), prep.classes
    clf = NeuralODEClassifier(
        reg=config.reg, lam=config.lam, epochs=config.epochs, batch_size=config.batch_size,
        lr=config.lr, augment_dim=config.augment_dim, hidden=config.hidden,
        time_dependent=config.time_dependent, rtol=config.rtol, atol=config.atol,
        controller=config.controller, lam_warmup=config.lam_warmup, seed=config.seed)
    clf.model_ = build_model(config, n_features, len(classes))
    clf.model_.theta = read_npz(os.path.join(run_dir, PARAMS_FILE))["theta"]
    clf.classes_, clf.n_features_in_ = classes, n_features
    history = os.path.join(run_dir, "history.json")
    clf.history_ = read_json(history) if os.path.exists(history) else []
    pipeline = Pipeline([("scale", prep.scaler or "passthrough"), ("classify", clf)])
    pipeline.feature_names = prep.feature_names
    pipeline.preprocessing = prep
    return pipeline


def predict_table(pipeline, X, kappa=False):
    """Everything the ``predict`` command writes, from one batched solve.

    Parameters
    ----------
    pipeline : Pipeline
        From :func:`load`.
    X : array_like, shape (N, d)
        Raw inputs, columns in ``pipeline.feature_names`` order.
    kappa : bool
        Also compute ``κ(J(h(t0)))`` per row.

    Returns
    -------
    dict
        ``labels (N,)`` (from ``classes_``), ``proba (N, C)``, ``nfe`` (int, of the one
        forward solve of all N rows together, as in training) and ``kappa (N,)`` or None.
        ``labels`` and ``proba`` equal ``pipeline.predict(X)`` / ``predict_proba(X)``.
    """
    clf = pipeline[-1]
    inputs = pipeline[:-1].transform(np.asarray(X, dtype=np.float64))
    with blas_threads():
        _, logits, nfe = clf.model_.forward(inputs)
        kappas = clf.model_.condition_numbers(inputs) if kappa else None
    proba = softmax(logits)
    return {"labels": clf.classes_[np.argmax(proba, axis=1)], "proba": proba, "nfe": int(nfe),
            "kappa": kappas}
