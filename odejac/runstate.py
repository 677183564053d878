"""The run directory of :func:`odejac.train.train`: one atomic state and files derived from it.

Everything a resume depends on — θ, Adam's moments and step count, the
shuffling RNG, the history and the config — is committed after every epoch
in ONE atomic write of ``state.npz``, so no kill (even SIGKILL) and no
interleaving can leave them out of step. The other files are derived::

    state.npz      the commit point (written atomically after every epoch)
    config.json    the config, for people and tools (rebuilt from state.npz)
    history.json   the history (rebuilt from state.npz when missing or stale)
    params.npz     θ of a finished or diverged run (rebuilt when missing or stale)
    summary.json   status, test accuracy, NFE, κ, … and the epoch count and a hash
                   of the θ it describes; a summary whose θ is not the state's
                   is stale and is recomputed
    lock           the PID of the process writing the directory (io.DirectoryLock)

A run directory written before ``state.npz`` existed (``checkpoint.npz`` +
``history.json``) is adopted when the two agree (Adam's step count equals
epochs × batches), and refused with a one-line error naming them when not.
"""
import hashlib
import json
import os
import weakref

import numpy as np

from .io import (FileFormatError, _to_jsonable, read_json, read_npz, write_json, write_npz,
                 write_text)

STATE = "state.npz"
LEGACY_CHECKPOINT = "checkpoint.npz"
_STATE_KEYS = ("theta", "adam_m", "adam_v", "adam_t", "rng_state", "history", "config")
_ADVICE = "delete the run directory (or run with --no-resume) to start over"


def theta_hash(theta):
    """SHA-256 of θ's bytes: ties a summary or params file to the state it came from."""
    return hashlib.sha256(np.ascontiguousarray(theta, dtype=np.float64).tobytes()).hexdigest()


def _json_array(value):
    return np.array(json.dumps(value, default=lambda o: o.item()))   # NumPy scalars too


class _EncodedHistory:
    """The two JSON texts of a history that only grows, each record encoded once.

    A commit after every epoch used to encode the whole history twice (``state.npz``'s compact
    field and the indented ``history.json``): O(epochs²) work, ~0.4 s of a 100-epoch
    ``cli.py train`` and minutes over thousands of epochs. The texts are the bytes
    :func:`_json_array` and :func:`odejac.io.write_json` give for the whole list
    (``tests/test_runstate_encoding.py``): a list's JSON is its items' JSON joined, and
    indentation only adds two spaces per nesting level.
    """

    def __init__(self):
        self.records, self.compact, self.indented = [], [], []

    def texts(self, history):
        """``(compact, indented)`` JSON of ``history`` (a list of dicts)."""
        known = len(self.records)
        if known > len(history) or any(a is not b for a, b in zip(self.records, history)):
            self.__init__()                    # another history (a resume, a new run)
            known = 0
        for record in history[known:]:
            self.records.append(record)
            self.compact.append(json.dumps(record, default=lambda o: o.item()))
            text = json.dumps(_to_jsonable(record), indent=2, allow_nan=False)
            self.indented.append("  " + text.replace("\n", "\n  "))
        if not history:
            return "[]", "[]"
        return "[" + ", ".join(self.compact) + "]", "[\n" + ",\n".join(self.indented) + "\n]"


_ENCODED = {}   # id(state) -> _EncodedHistory (one per live TrainState)


def commit(out_dir, state, config):
    """Write the whole training state in one atomic file, then the derived history."""
    opt = state.optimizer.state_dict()
    encoded = _ENCODED.get(id(state))
    if encoded is None or encoded.owner() is not state:
        encoded = _ENCODED[id(state)] = _EncodedHistory()
        encoded.owner = weakref.ref(state, lambda _, key=id(state): _ENCODED.pop(key, None))
    compact, indented = encoded.texts(state.history)
    write_npz(os.path.join(out_dir, STATE), theta=state.model.theta, adam_m=opt["m"],
              adam_v=opt["v"], adam_t=np.array(opt["t"]),
              rng_state=_json_array(state.rng.bit_generator.state),
              history=np.array(compact), config=_json_array(config.to_dict()))
    write_text(os.path.join(out_dir, "history.json"), indented + "\n")
    legacy = os.path.join(out_dir, LEGACY_CHECKPOINT)
    if os.path.exists(legacy):   # superseded: the state file is the only checkpoint now
        os.unlink(legacy)


def _decode(path, arrays, key, expect):
    try:
        value = json.loads(str(arrays[key][()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise FileFormatError(path, f"field {key!r} is not valid JSON: {exc}", _ADVICE) from None
    if not isinstance(value, expect):
        raise FileFormatError(path, f"field {key!r} is not a JSON {expect.__name__}", _ADVICE)
    return value


def read_state(out_dir):
    """The raw contents of ``state.npz`` (``None`` if there is none), checked.

    Returns a dict with ``theta``, ``m``, ``v``, ``t``, ``rng``, ``history``,
    ``config`` (dict), or raises :class:`FileFormatError` naming the file.
    """
    path = os.path.join(out_dir, STATE)
    if not os.path.exists(path):
        return None
    try:
        arrays = read_npz(path, _STATE_KEYS)
    except FileFormatError as exc:
        raise FileFormatError(path, exc.problem, _ADVICE) from None
    for key in ("theta", "adam_m", "adam_v"):
        if arrays[key].dtype != np.float64 or arrays[key].ndim != 1:
            raise FileFormatError(path, f"array {key!r} is not a float64 vector", _ADVICE)
    if arrays["adam_t"].shape != () or arrays["adam_t"].dtype.kind not in "iu":
        raise FileFormatError(path, "array 'adam_t' is not an integer", _ADVICE)
    history = _decode(path, arrays, "history", list)
    if not all(isinstance(r, dict) and r.get("epoch") == i + 1 for i, r in enumerate(history)):
        raise FileFormatError(path, "its history is not one record per epoch", _ADVICE)
    return dict(path=path, theta=arrays["theta"], m=arrays["adam_m"], v=arrays["adam_v"],
                t=int(arrays["adam_t"]), rng=_decode(path, arrays, "rng_state", dict),
                history=history, config=_decode(path, arrays, "config", dict))


def read_legacy(out_dir, n_batches):
    """A pre-``state.npz`` checkpoint in the same form as :func:`read_state`, or ``None``."""
    ckpt_path = os.path.join(out_dir, LEGACY_CHECKPOINT)
    if not os.path.exists(ckpt_path):
        return None
    arrays = read_npz(ckpt_path, ("theta", "adam_m", "adam_v", "adam_t", "rng_state"))
    history_path = os.path.join(out_dir, "history.json")
    history = read_json(history_path, expect=list)
    steps = int(arrays["adam_t"])
    if steps != len(history) * n_batches:
        raise FileFormatError(
            ckpt_path, f"its {steps} Adam steps do not match the {len(history)} epochs of "
            f"{history_path} ({n_batches} batches each): they were written at different "
            f"times", _ADVICE)
    try:
        rng = json.loads(str(arrays["rng_state"]))
    except ValueError as exc:
        raise FileFormatError(ckpt_path, f"bad RNG state: {exc}", _ADVICE) from None
    return dict(path=ckpt_path, theta=arrays["theta"], m=arrays["adam_m"], v=arrays["adam_v"],
                t=steps, rng=rng, history=history, config=None)


def apply(saved, state):
    """Load ``saved`` (from :func:`read_state`) into a fresh TrainState, checking shapes."""
    n = state.model.theta.size
    moments = 0 if saved["t"] == 0 else n   # Adam has no moments before its first step
    if saved["theta"].size != n or saved["m"].size != moments or saved["v"].size != moments:
        raise FileFormatError(saved["path"], f"its parameters and Adam moments have "
                              f"{saved['theta'].size}, {saved['m'].size}, {saved['v'].size} "
                              f"entries after {saved['t']} steps, the model {n}", _ADVICE)
    if not np.all(np.isfinite(saved["theta"])):
        raise FileFormatError(saved["path"], "non-finite parameters", _ADVICE)
    state.model.theta = saved["theta"]
    opt = state.optimizer.state_dict()
    opt.update(m=saved["m"], v=saved["v"], t=saved["t"])
    state.optimizer.load_state_dict(opt)
    try:
        state.rng.bit_generator.state = saved["rng"]
    except (TypeError, ValueError, KeyError) as exc:
        raise FileFormatError(saved["path"], f"bad RNG state: {exc}", _ADVICE) from None
    state.history = saved["history"]


def saved_summary(out_dir, state):
    """``summary.json`` if it describes exactly ``state`` (epoch count and θ), else ``None``.

    A summary that is unreadable or describes another θ (a kill between the
    state commit and the summary, ``--no-resume`` over an old run) is stale:
    it is recomputed from the state, never trusted.
    """
    try:
        summary = read_json(os.path.join(out_dir, "summary.json"), expect=dict)
    except (OSError, FileFormatError):
        return None
    if summary.get("epochs_done") != state.epoch \
            or summary.get("theta_sha256") != theta_hash(state.model.theta) \
            or summary.get("status") not in ("finished", "diverged"):
        return None
    return summary


def rebuild_derived(out_dir, state, config):
    """Rewrite ``config.json``, ``history.json`` and ``params.npz`` where missing or stale."""
    _write_json_if_changed(os.path.join(out_dir, "config.json"), config.to_dict(), dict)
    _write_json_if_changed(os.path.join(out_dir, "history.json"), state.history, list)
    write_params(out_dir, state)


def _write_json_if_changed(path, value, expect):
    """Write ``value`` to ``path`` unless the file already holds it (compared as JSON, since
    tuples read back as lists); a missing or unreadable file is rewritten."""
    try:
        current = read_json(path, expect=expect)
    except (OSError, FileFormatError):
        current = None
    if current != json.loads(json.dumps(value)):
        write_json(path, value)


def write_params(out_dir, state):
    """``params.npz`` (θ) unless the file on disk already holds exactly this θ."""
    path = os.path.join(out_dir, "params.npz")
    try:
        if np.array_equal(read_npz(path, ("theta",))["theta"], state.model.theta):
            return
    except (OSError, FileFormatError):
        pass
    write_npz(path, theta=state.model.theta)


def _saved_config(out_dir, config_class):
    """The config a run directory belongs to (state first, config.json else), or None."""
    saved = read_state(out_dir)
    if saved is not None:
        try:
            return config_class.from_dict(saved["config"]), saved
        except (TypeError, ValueError) as exc:
            raise FileFormatError(saved["path"], f"bad config: {exc}") from None
    path = os.path.join(out_dir, "config.json")
    if not os.path.exists(path):
        return None, None
    try:
        return config_class.from_dict(read_json(path, expect=dict)), None
    except FileFormatError:
        raise
    except (TypeError, ValueError) as exc:
        raise FileFormatError(path, f"not a run config: {exc}") from None


def check_run_dir(out_dir, config, strict=True):
    """Raise ValueError if ``out_dir`` holds another config's run (reads, never writes).

    ``strict=False`` (``--no-resume``) lets an unusable state file pass: it is replaced.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir} exists and is not a directory; choose another --out")
    if os.path.isdir(out_dir):
        try:
            saved, _ = _saved_config(out_dir, type(config))
        except FileFormatError:
            if strict:
                raise
            return
        if saved is not None and saved != config:
            raise ValueError(f"{out_dir} holds a run with a different config; "
                             f"choose another --out or delete it")


def read_summary(out_dir, config):
    """The summary of a finished or diverged run of ``config`` in ``out_dir`` that is
    consistent with its state, else ``None`` (missing, stale or another config)."""
    try:
        saved_config, saved = _saved_config(out_dir, type(config))
    except (OSError, ValueError):
        return None
    if saved_config != config:
        return None
    if saved is None:   # written before state.npz existed: its summary as it stands
        try:
            summary = read_json(os.path.join(out_dir, "summary.json"), expect=dict)
        except (OSError, FileFormatError):
            return None
        return summary if summary.get("status") in ("finished", "diverged") else None
    return saved_summary(out_dir, _StateView(saved))


class _StateView:
    """What :func:`saved_summary` needs of a state: epoch and θ."""

    def __init__(self, saved):
        self.epoch = len(saved["history"])
        self.model = type("M", (), {"theta": saved["theta"]})()


def load_trained(out_dir):
    """``(config dict, θ)`` of a trained run directory, from its state when it has one."""
    saved = read_state(out_dir)
    if saved is not None:
        return saved["config"], saved["theta"]
    config = read_json(os.path.join(out_dir, "config.json"), expect=dict)
    return config, read_npz(os.path.join(out_dir, "params.npz"), ("theta",))["theta"]
