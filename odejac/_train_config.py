"""What defines one training run: :class:`TrainConfig`, its validation and its NFE budget.

Kept apart from :mod:`odejac.train` so that it stays one readable file: this is the run's one
frozen config object (saved as ``config.json`` next to its results, mapped one-to-one onto the
CLI's flags by :mod:`odejac.cli._args`) with every check of its fields, and the function
evaluations one solve may spend, which the model's step cap and the divergence message share.
:mod:`odejac.train` re-exports every name, so ``odejac.train.TrainConfig`` stays the public path.
"""
import dataclasses
import math
import os
from dataclasses import dataclass

from .adjoint import ADJOINT_NORMS
from .integrate import CONTROLLERS
from .model import KAPPA_METHODS, REG_POINTS, REGULARISERS, T_SPAN

#: The built-in datasets (:func:`odejac.data.get_dataset`); ``data`` names the user's own file.
DATASET_NAMES = ("moons", "digits", "embedded_moons")
#: Function evaluations one solve may spend at rtol = atol = 1e-3 when ``max_nfe`` is 0
#: (auto). Healthy runs of the study spend tens to a few hundred; a field blown up by a
#: huge step size spends 10⁵ and more per batch (minutes), which this turns into a
#: divergence in seconds.
AUTO_NFE_BUDGET = 10_000
#: DP5's step count grows like tol^(-1/5) (5th order), so the auto budget does too.
_BUDGET_REFERENCE_TOL = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (saved next to its results).

    The defaults train the paper's unregularised two-moons model in a few
    seconds on two cores. ``seed`` drives the initial weights and the
    shuffling; ``data_seed`` the data, so that runs over seeds share data.
    Epoch ``e`` (1-based) visits the training set in the order of the ``e``-th permutation
    drawn from ``np.random.default_rng([seed, 2])``. ``lam_warmup = W > 0`` ramps λ
    linearly: epoch ``e`` trains with ``lam · min(1, e / W)``, the full λ from epoch ``W`` on.
    ``grad_clip > 0`` rescales each mini-batch gradient (all parameters
    together) to at most that Euclidean norm before Adam sees it; 0 is off.
    ``lam2 ≥ 0`` is RNODE's weight of ``∫‖J‖_F² dt`` (``reg="rnode"``; -1: the same as ``lam``).
    ``steer = B`` in ``[0, 1)`` trains each mini-batch to the end time ``T ~ U(1 − B, 1 + B)``
    (STEER), drawn by :func:`steer_end_time`; evaluation always integrates to ``t1 = 1``.
    """

    reg: str = "none"
    lam: float = 0.0
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-2
    augment_dim: int = 2
    hidden: tuple = (32, 32)
    time_dependent: bool = False
    activation: str = "tanh"
    rtol: float = 1e-3
    atol: float = 1e-3
    adjoint_rtol: float = 1e-3
    adjoint_atol: float = 1e-3
    controller: str = "torchdiffeq"
    adjoint_norm: str = "mixed"
    reg_at: str = "t0"
    kappa: str = "exact"
    cond_eps: float = 1e-8
    lam_warmup: int = 0
    seed: int = 0
    dataset: str = "moons"
    n_train: int = 1000
    n_test: int = 1000
    noise: float = 0.1
    embed_dim: int = 4
    data_seed: int = 0
    # The user's own data (odejac.userdata; paths are made absolute); "" trains on `dataset`
    # instead. Added last, so an older run's config.json reads back equal with these defaults.
    data: str = ""
    target: str = ""
    test_fraction: float = 0.25
    test_data: str = ""
    grad_clip: float = 0.0
    max_nfe: int = 0
    lam2: float = -1.0
    steer: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        _choice("reg", self.reg, REGULARISERS)
        _choice("controller", self.controller, tuple(CONTROLLERS))
        _choice("adjoint_norm", self.adjoint_norm, ADJOINT_NORMS)
        _choice("reg_at", self.reg_at, REG_POINTS)
        _choice("kappa", self.kappa, KAPPA_METHODS)
        _choice("dataset", self.dataset, DATASET_NAMES)
        if not (isinstance(self.cond_eps, float) and 0.0 < self.cond_eps < 1.0):
            raise ValueError(f"cond_eps must be a number in (0, 1); got {self.cond_eps!r}")
        for name in ("rtol", "atol", "adjoint_rtol", "adjoint_atol", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number; got {value!r}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0; got {self.lam!r}")
        if not (isinstance(self.grad_clip, (int, float)) and math.isfinite(self.grad_clip)
                and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be a finite number >= 0; got {self.grad_clip!r}")
        if not (isinstance(self.lam2, (int, float)) and math.isfinite(self.lam2)
                and (self.lam2 >= 0 or self.lam2 == -1.0)):
            raise ValueError(f"lam2 must be a finite number >= 0 or -1 (same as lam); got "
                             f"{self.lam2!r}")
        if self.lam2 != -1.0 and self.reg != "rnode":
            raise ValueError(f"lam2 weighs reg='rnode' only; got reg={self.reg!r}")
        if self.lam2 not in (-1.0, self.lam) and self.lam == 0:
            raise ValueError(f"lam2 = {self.lam2!r} needs lam > 0 (RNODE's kinetic weight)")
        if not (isinstance(self.steer, (int, float)) and 0.0 <= self.steer < T_SPAN[1] - T_SPAN[0]):
            raise ValueError(f"steer must be a number in [0, {T_SPAN[1] - T_SPAN[0]}); got "
                             f"{self.steer!r}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")
        for name, low in (("epochs", 1), ("batch_size", 1), ("augment_dim", 0), ("lam_warmup", 0),
                          ("seed", 0), ("n_train", 1), ("n_test", 1), ("embed_dim", 2),
                          ("data_seed", 0), ("max_nfe", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        if not (isinstance(self.test_fraction, (int, float))
                and 0.0 < self.test_fraction < 1.0):
            raise ValueError(f"test_fraction must be a number in (0, 1); got "
                             f"{self.test_fraction!r}")
        for name in ("data", "target", "test_data"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a str; got {getattr(self, name)!r}")
            if name != "target" and getattr(self, name):  # absolute: resumable from anywhere
                object.__setattr__(self, name, os.path.abspath(getattr(self, name)))
        if (self.target or self.test_data) and not self.data:
            raise ValueError("target and test_data need data (a CSV or NPZ file)")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be positive widths; got {self.hidden!r}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def nfe_budget(config):
    """Function evaluations one solve may spend: ``max_nfe``, or sized from the tolerances."""
    if config.max_nfe:
        return config.max_nfe
    tol = min(config.rtol, config.atol, config.adjoint_rtol, config.adjoint_atol)
    return int(AUTO_NFE_BUDGET * max(1.0, (_BUDGET_REFERENCE_TOL / tol) ** 0.2))


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
