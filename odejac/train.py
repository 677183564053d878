"""Mini-batch training with Adam, an atomic run state, resume and a run summary.

One loop (:func:`fit`) serves the CLI (:func:`train`, which adds data
loading, the run directory and a summary on disk) and the scikit-learn
estimator. The run directory (:mod:`odejac.runstate`) holds ``state.npz``,
committed in one atomic write after every epoch (θ, Adam, RNG, history,
config), and files derived from it: ``config.json``, ``history.json``,
``params.npz``, ``summary.json`` (test accuracy, NFE, κ, time, status
"finished" | "diverged") and ``preprocess.json`` (input columns, scaler and class
labels, :class:`odejac.data.Preprocessing`). A killed run resumes from its last committed epoch
bit-identically; a second process on the same directory is refused. The run's config,
:class:`TrainConfig`, and its NFE budget are defined in :mod:`odejac._train_config`.
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ._threads import blas_threads
# The run's config lives in odejac._train_config; odejac.train.TrainConfig stays its public path.
from ._train_config import (AUTO_NFE_BUDGET, DATASET_NAMES, TrainConfig,  # noqa: F401
                            nfe_budget)
from .data import PREPROCESS_FILE, get_dataset
from .integrate import SolverError
from . import runstate
from .io import DirectoryLock, remove_stale_temporaries, write_json
from .runstate import check_run_dir, read_summary  # noqa: F401 (the study reads runs so)
from .model import T_SPAN, NeuralODE
from .optim import Adam, clip_global_norm
from ._interrupt import shielded
from .userdata import load_dataset

#: Second seed word of STEER's end-time draws (the shuffling stream is ``[seed, 2]``).
_STEER_STREAM = 3


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient, or the solver failed."""


def load_data(config):
    """The :class:`~odejac.data.Dataset` a config asks for (the user's file if ``data``)."""
    with blas_threads():  # as when odejac limited BLAS at import: the data do not move
        if config.data:
            return load_dataset(config.data, target=config.target or None,
                                test_fraction=config.test_fraction,
                                test_data=config.test_data or None, seed=config.data_seed)
        if config.dataset == "digits":
            return get_dataset("digits", seed=config.data_seed)
        kwargs = dict(n_train=config.n_train, n_test=config.n_test, noise=config.noise,
                      seed=config.data_seed)
        if config.dataset == "embedded_moons":
            kwargs["embed_dim"] = config.embed_dim
        return get_dataset(config.dataset, **kwargs)


def build_model(config, in_dim, n_classes):
    return NeuralODE(in_dim, n_classes=n_classes, augment_dim=config.augment_dim,
                     hidden=config.hidden, time_dependent=config.time_dependent, reg=config.reg,
                     lam=config.lam, rtol=config.rtol, atol=config.atol, seed=config.seed,
                     adjoint_rtol=config.adjoint_rtol, adjoint_atol=config.adjoint_atol,
                     controller=config.controller, adjoint_norm=config.adjoint_norm,
                     reg_at=config.reg_at, activation=config.activation,
                     kappa_method=config.kappa, cond_eps=config.cond_eps,
                     lam2=None if config.lam2 == -1.0 else config.lam2,
                     max_steps=max(1, (nfe_budget(config) - 2) // 6))  # 6 NFE a step, 2 to start


@dataclass
class TrainState:
    """What a checkpoint holds: enough to continue bit-identically."""

    model: NeuralODE
    optimizer: Adam
    rng: np.random.Generator
    history: list = field(default_factory=list)

    @property
    def epoch(self):
        return len(self.history)


def new_state(config, in_dim, n_classes):
    return TrainState(model=build_model(config, in_dim, n_classes), optimizer=Adam(lr=config.lr),
                      rng=np.random.default_rng([config.seed, 2]))


def steer_end_time(config, epoch, batch):
    """STEER's end time of mini-batch ``batch`` (0-based) of epoch ``epoch`` (1-based).

    ``T ~ U(t1 − B, t1 + B)`` with ``B = config.steer`` (Ghosh et al. 2020), or None (the
    model's ``t1``) for ``B = 0``. Each draw comes from its own generator
    ``default_rng([seed, 3, epoch, batch])``: a function of the run's seed and the batch's
    position alone, so a resumed run draws the same times without extra checkpointed state,
    and the shuffling stream ``default_rng([seed, 2])`` is untouched.
    """
    if not config.steer:
        return None
    draw = np.random.default_rng([config.seed, _STEER_STREAM, int(epoch), int(batch)]).random()
    return T_SPAN[1] + config.steer * (2.0 * draw - 1.0)


def _epoch(state, config, X, y):
    """One pass over shuffled mini-batches; returns the epoch's record."""
    model, optimizer = state.model, state.optimizer
    if config.lam_warmup:
        model.lam = config.lam * min(1.0, (state.epoch + 1) / config.lam_warmup)
    start = time.perf_counter()
    order = state.rng.permutation(len(X))
    sums = dict(loss=0.0, loss_data=0.0, loss_reg=0.0, kappa=0.0, nfe_forward=0, nfe_backward=0)
    correct = 0
    batches = range(0, len(X), config.batch_size)
    theta = model.theta
    for number, first in enumerate(batches):
        idx = order[first:first + config.batch_size]
        t1 = steer_end_time(config, state.epoch + 1, number)
        with shielded():   # a Ctrl-C waits for the batch (never unwinds the jitted solver)
            # B = 0 calls exactly as before STEER existed (callers wrap loss_and_grad so)
            loss, grad, stats = (model.loss_and_grad(X[idx], y[idx]) if t1 is None
                                 else model.loss_and_grad(X[idx], y[idx], t1=t1))
        if not (np.isfinite(loss) and np.all(np.isfinite(grad))):
            raise DivergenceError(f"non-finite loss or gradient in epoch {state.epoch + 1}")
        if config.grad_clip:  # 0: off, and the gradient is passed on untouched
            grad, was_clipped = clip_global_norm(grad, config.grad_clip)
            sums["clipped"] = sums.get("clipped", 0) + was_clipped
        theta = optimizer.step(theta, grad)
        model.theta = theta
        correct += stats["n_correct"]
        sums["loss"] += loss
        for key in ("loss_data", "loss_reg", "kappa", "nfe_forward", "nfe_backward"):
            sums[key] += stats[key]
        for key in ("kappa_products", "kappa_unconverged"):   # matrix-free κ only
            if key in stats:
                sums[key] = sums.get(key, 0) + stats[key]
    n_batches = len(batches)
    record = {"epoch": state.epoch + 1}
    record.update({key: value / n_batches for key, value in sums.items()})
    record.update(train_accuracy=correct / len(X), lam=model.lam,
                  time=time.perf_counter() - start)
    return record


def fit(state, config, X, y, *, on_epoch=None, progress=False):
    """Train ``state`` in place until ``config.epochs`` epochs are done.

    ``on_epoch(state)`` runs after every finished epoch (checkpointing).
    Raises :class:`DivergenceError` (with the solver's message when the
    solver failed); the state then holds the last finished epoch's parameters.
    """
    from tqdm import tqdm

    epochs = range(state.epoch, config.epochs)
    bar = tqdm(epochs, total=config.epochs, initial=state.epoch, disable=not progress,
               desc=f"train reg={config.reg}", unit="epoch", dynamic_ncols=True)
    with blas_threads():
        for _ in bar:
            good = (state.model.theta, state.optimizer.state_dict(), state.rng.bit_generator.state)
            try:
                record = _epoch(state, config, X, y)
            except (DivergenceError, SolverError) as exc:
                state.model.theta, _, rng_state = good
                state.optimizer.load_state_dict(good[1])
                state.rng.bit_generator.state = rng_state
                budget = (f"; a solve may spend {nfe_budget(config)} evaluations (--max-nfe)"
                          if "max_steps" in str(exc) else "")
                raise DivergenceError(f"{exc}{budget}") from exc
            state.history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['train_accuracy']:.3f}",
                            nfe=f"{record['nfe_forward']:.0f}/{record['nfe_backward']:.0f}")
            if on_epoch is not None:
                on_epoch(state)
    return state


def evaluate(model, data):
    """Test accuracy, forward NFE of one solve of the whole test set, κ over train."""
    with blas_threads(), shielded():
        _, logits, nfe = model.forward(data.X_test)
        kappa = model.condition_numbers(data.X_train)
        train_pred = model.predict(data.X_train)
    return {"test_accuracy": float(np.mean(np.argmax(logits, axis=1) == data.y_test)),
            "train_accuracy": float(np.mean(train_pred == data.y_train)),
            "nfe": int(nfe), "kappa_mean": float(np.mean(kappa)),
            "kappa_median": float(np.median(kappa))}


# -- runs on disk ------------------------------------------------------------------------

def train(config, out_dir=None, *, progress=False, resume=True):
    """Train one model as ``config`` says; save and summarise it in ``out_dir``.

    With ``resume`` (default) a directory holding a finished run of the same
    config is returned as is (derived files rebuilt where missing or stale),
    and an unfinished one continues from its last committed epoch. Without
    it training starts afresh, but the directory's old run is only replaced
    when the new run commits its first epoch. Returns ``(state, summary)``.

    Raises
    ------
    ValueError
        ``out_dir`` holds another config's run or is not a directory;
        :class:`~odejac.io.FileFormatError` (a ValueError) names an unusable file.
    odejac.io.DirectoryLockedError
        Another live process is writing ``out_dir``.
    """
    data = load_data(config)
    state = new_state(config, data.X_train.shape[1], data.n_classes)
    if out_dir is None:
        return _run(state, config, data, None, progress)
    check_run_dir(out_dir, config, strict=resume)
    os.makedirs(out_dir, exist_ok=True)
    with DirectoryLock(out_dir):
        check_run_dir(out_dir, config, strict=resume)   # again, now that no one else writes it
        has_state = os.path.exists(os.path.join(out_dir, runstate.STATE))
        remove_stale_temporaries(out_dir)   # writes cut short by SIGKILL; the lock is ours
        # Derived from the config alone (the same bytes on every call): needed to predict.
        write_json(os.path.join(out_dir, PREPROCESS_FILE), data.preprocessing.to_dict())
        if resume:
            n_batches = -(-len(data.X_train) // config.batch_size)
            saved = runstate.read_state(out_dir)
            legacy = saved is None and runstate.read_legacy(out_dir, n_batches)
            if saved is not None or legacy:
                runstate.apply(saved or legacy, state)
            if legacy:   # adopt it: from now on the state file is the checkpoint
                runstate.commit(out_dir, state, config)
                has_state = True
            if saved is not None or legacy:
                summary = runstate.saved_summary(out_dir, state)
                if summary is not None and summary["status"] == "finished":
                    runstate.rebuild_derived(out_dir, state, config)
                    return state, summary
        if not os.path.exists(os.path.join(out_dir, "config.json")) or not has_state:
            write_json(os.path.join(out_dir, "config.json"), config.to_dict())
        if state.epoch == 0 and not has_state:
            runstate.commit(out_dir, state, config)  # a diverging first epoch still has a state
        return _run(state, config, data, out_dir, progress,
                    replace_old=has_state and not resume)


def _run(state, config, data, out_dir, progress, replace_old=False):
    """Fit, evaluate and (with ``out_dir``) commit every epoch and write the summary.

    ``replace_old``: ``out_dir`` holds an older run that ``--no-resume`` replaces;
    nothing of it is touched until this run commits its first epoch.
    """
    committed = [not replace_old]

    def on_epoch(s):
        runstate.commit(out_dir, s, config)
        committed[0] = True

    start = time.perf_counter()
    status, error = "finished", None
    try:
        fit(state, config, data.X_train, data.y_train,
            on_epoch=None if out_dir is None else on_epoch, progress=progress)
    except DivergenceError as exc:
        status, error = "diverged", str(exc)
    summary = {"status": status, "error": error, "epochs_done": state.epoch,
               "wall_seconds": time.perf_counter() - start}
    try:
        summary.update(evaluate(state.model, data))
    except SolverError as exc:
        summary.update(status="diverged", error=f"evaluation failed: {exc}")
    summary["epoch_seconds_total"] = float(sum(r["time"] for r in state.history))
    summary["theta_sha256"] = runstate.theta_hash(state.model.theta)
    if out_dir is not None and committed[0]:
        # Every derived file, not only params: a kill between the last state commit and
        # its history.json leaves nothing to train on resume, so no commit rewrites it.
        runstate.rebuild_derived(out_dir, state, config)
        write_json(os.path.join(out_dir, "summary.json"), summary)
    return state, summary
