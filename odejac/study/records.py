"""What a study is and where it lives on disk: arms × seeds, run directories, records.

A study (the experiments of :mod:`odejac.study.experiments` or the λ sweep of
:mod:`odejac.study.sweep`) trains one run per (arm, seed) into::

    OUT/study.json          this StudyConfig
    OUT/runs/ARM/seed-KK/   one run (odejac.train files, + robustness.json, regions.npz)

Tables, claims and figures read the runs back through :func:`load_records`,
so they depend on files only, never on a live model.
"""
import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from ..io import read_json
from .robustness import EvalConfig
from ..train import TrainConfig


#: Fields an arm may not override: they are the arm's own (``reg``, ``lam``) or the study's
#: (``seed``).
_NOT_OVERRIDABLE = ("reg", "lam", "seed")
#: Keys of study.json files written before arms carried any override: kept loadable.
_LEGACY_KEYS = ("lam_warmup", "cond_eps")


def _hashable(value):
    """Lists (from JSON) as tuples, so an override can live in a frozen, hashable Arm."""
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True, init=False)
class Arm:
    """One row of a table: a regulariser, its single λ, and any other TrainConfig changes.

    Parameters
    ----------
    name : str
        Row name (unique in a study; also its directory name, made safe).
    reg : str
        Regulariser (``TrainConfig.reg``).
    lam : float
        Its weight λ, the same for every seed.
    ours : bool
        The row is not the paper's (one of our variants).
    overrides : dict or tuple of (field, value), optional
        Other ``TrainConfig`` fields of this arm's runs (e.g. ``cond_eps``, ``lam_warmup``,
        ``reg_at``, ``adjoint_rtol``); stored as a tuple of sorted ``(field, value)`` pairs
        so the arm stays hashable.
    **fields
        More overrides by keyword: ``Arm("capped", "condition", 1e-3, cond_eps=1e-2)``.
    """

    name: str
    reg: str
    lam: float
    ours: bool
    overrides: tuple

    def __init__(self, name, reg, lam, *, ours=False, overrides=(), **fields):
        changes = dict(overrides)
        changes.update(fields)
        known = {f.name for f in dataclasses.fields(TrainConfig)} - set(_NOT_OVERRIDABLE)
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"arm {name!r}: {unknown} are not TrainConfig fields an arm can "
                             f"override (allowed: {sorted(known)})")
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "reg", str(reg))
        object.__setattr__(self, "lam", float(lam))
        object.__setattr__(self, "ours", bool(ours))
        object.__setattr__(self, "overrides",
                           tuple(sorted((k, _hashable(v)) for k, v in changes.items())))

    def to_dict(self):
        return {"name": self.name, "reg": self.reg, "lam": self.lam, "ours": self.ours,
                "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, data):
        """An Arm from :meth:`to_dict`, or from an older study.json's flat fields.

        Older files store ``lam_warmup`` and ``cond_eps`` on every arm; values equal to
        TrainConfig's defaults are dropped (the runs they describe are the same).
        """
        data = dict(data)
        overrides = dict(data.pop("overrides", None) or {})
        defaults = TrainConfig()
        for key in _LEGACY_KEYS:
            if key in data:
                value = data.pop(key)
                if value != getattr(defaults, key):
                    overrides[key] = value
        return cls(**data, overrides=overrides)


@dataclass(frozen=True)
class StudyConfig:
    """Arms × seeds on a base config; ``evaluation=None`` trains without evaluating."""

    base: TrainConfig
    arms: tuple
    seeds: tuple
    evaluation: EvalConfig = None

    def __post_init__(self):
        names = [arm.name for arm in self.arms]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique and non-empty; got {names}")
        if len({run_dir("", arm, 0) for arm in self.arms}) != len(names):
            raise ValueError(f"arm names {names} clash once made safe for directory names")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be unique and non-empty; got {self.seeds}")
        for arm in self.arms:  # a bad λ or regulariser fails here, not in a worker
            self.config(arm, self.seeds[0])

    def config(self, arm, seed):
        """The TrainConfig of one run."""
        return self.base.replace(reg=arm.reg, lam=arm.lam, seed=int(seed), **dict(arm.overrides))

    def runs(self):
        """``(arm, seed, config)`` of every run, seeds inner."""
        return [(arm, seed, self.config(arm, seed)) for arm in self.arms for seed in self.seeds]

    def to_dict(self):
        return {"base": self.base.to_dict(), "arms": [a.to_dict() for a in self.arms],
                "seeds": list(self.seeds),
                "evaluation": None if self.evaluation is None else self.evaluation.to_dict()}

    @classmethod
    def from_dict(cls, data):
        evaluation = data.get("evaluation")
        return cls(base=TrainConfig.from_dict(data["base"]),
                   arms=tuple(Arm.from_dict(a) for a in data["arms"]), seeds=tuple(data["seeds"]),
                   evaluation=None if evaluation is None else EvalConfig.from_dict(evaluation))


def run_dir(out, arm, seed):
    """Directory of one run, ``out/runs/ARM/seed-KK`` (ARM made safe: ``[A-Za-z0-9_.-]``).

    Seeds print with at least two digits (``seed-07``, ``seed-100``, ``seed-1000``): a
    non-negative integer has one such name, so seeds ≥ 100 never collide with smaller ones.
    """
    if int(seed) < 0:
        raise ValueError(f"seeds must be >= 0; got {seed}")
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "_" for c in arm.name)
    return os.path.join(out, "runs", safe.strip("_"), f"seed-{int(seed):02d}")


def load_study(out):
    """The StudyConfig saved in ``out/study.json``."""
    path = os.path.join(out, "study.json")
    if not os.path.exists(path):
        raise ValueError(f"{out} holds no study.json: not a results directory")
    return StudyConfig.from_dict(read_json(path))


def _read(path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def load_records(out, study):
    """One dict per run of ``study`` in ``out``, study order (missing files give ``None``).

    Keys: ``arm``, ``reg``, ``lam``, ``lam_warmup``, ``cond_eps`` (of the run's config),
    ``overrides`` (the arm's, a dict), ``ours``, ``seed``, ``dir``, ``summary``,
    ``history``, ``robustness``.
    """
    records = []
    for arm, seed, config in study.runs():
        directory = run_dir(out, arm, seed)
        records.append(dict(arm=arm.name, reg=arm.reg, lam=arm.lam, lam_warmup=config.lam_warmup,
                            ours=arm.ours, cond_eps=config.cond_eps,
                            overrides=dict(arm.overrides), seed=seed, dir=directory,
                            summary=_read(os.path.join(directory, "summary.json")),
                            history=_read(os.path.join(directory, "history.json")),
                            robustness=_read(os.path.join(directory, "robustness.json"))))
    return records


# -- reading records -----------------------------------------------------------------------

def finished(record):
    """Trained to the last epoch (not diverged, not missing)."""
    return record["summary"] is not None and record["summary"].get("status") == "finished"


def evaluated(record):
    """Finished, and its robustness evaluation is on disk without error."""
    rob = record["robustness"]
    return finished(record) and rob is not None and "error" not in rob


def by_arm(records):
    """``{arm name: [records]}`` in study order."""
    groups = {}
    for record in records:
        groups.setdefault(record["arm"], []).append(record)
    return groups


def metric(records, key):
    """``summary[key]`` of each finished record, as a float array over seeds."""
    return np.array([r["summary"][key] for r in records if finished(r)], dtype=float)


def margin_medians(records):
    """Per-run median distance to the decision boundary (evaluated runs)."""
    return np.array([r["robustness"]["margin"]["median"] for r in records if evaluated(r)])


def noisy_accuracy(records):
    """Per-run mean test accuracy over the noise levels σ > 0 (evaluated runs)."""
    values = []
    for r in records:
        if evaluated(r):
            stds = np.asarray(r["robustness"]["noise"]["stds"])
            acc = np.asarray(r["robustness"]["noise"]["accuracy"])
            if np.any(stds > 0):
                values.append(acc[stds > 0].mean())
    return np.array(values)
