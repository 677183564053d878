"""The NFE-regulariser benchmark (#15): accuracy against NFE, method by method, over λ grids.

Each method of :data:`METHODS` — no penalty, the paper's three penalties at h(t0), our
robust variant of the condition penalty, RNODE, TayNODE and STEER — is trained at every
point of its grid (:func:`make_pareto`) with the study's runner (parallel, resumable
after SIGKILL, loky or Dask; :mod:`odejac.study.dispatch`). Training only, like the
landscape: no robustness evaluation.

Protocol
--------
1. *Validation* (stage ``validation``): every grid point is trained on the validation
   seeds (default :data:`VALIDATION_SEEDS` seeds from :data:`VALIDATION_FIRST_SEED`).
2. *Held out* (stage ``heldout``): every grid point is trained again on the held-out
   seeds (default :data:`HELDOUT_SEEDS` from :data:`HELDOUT_FIRST_SEED`), never used for
   any choice; the two sets must not overlap.
3. *Selection on validation only* (:func:`odejac.study.pareto_tables.select`): per method
   and accuracy threshold a ∈ :data:`MATCHED_ACCURACIES`, a grid point is *eligible* if
   every one of its validation runs finished (none diverged or is missing) and their
   mean test accuracy is ≥ a; the eligible point with the lowest mean validation NFE is
   chosen, ties going to the higher mean validation accuracy, then to the earlier grid
   value. A method with no eligible point has no row at that threshold.
4. *Report on held-out*: the chosen point's held-out mean NFE and test accuracy with
   their 95 % t intervals, its NFE difference against ``none`` on the held-out seeds
   (Welch's interval and p; Holm's correction across the methods of one threshold), the
   share of held-out seeds whose accuracy is ≥ a (reliability) and the training wall
   time per epoch from each run's summary. ``none`` is always the reference, and is
   itself a candidate like any other method.

Layout of ``OUT``::

    OUT/study.json             one StudyConfig: every (method, grid value) × all seeds
    OUT/runs/ARM/seed-KK/      one run (validation and held-out seeds side by side)
    OUT/pareto.{csv,md,json}   every point × stage, and the matched-accuracy tables
    OUT/fig_pareto.png         held-out NFE against accuracy (odejac.study.pareto_plot)
"""
import os
from collections import namedtuple
from dataclasses import dataclass

from .experiments import CAPPED_EPS, QUICK_SEEDS, seed_range, study_base
from .records import Arm, StudyConfig

#: The grids, three log-spaced values each (STEER: evenly spaced B), chosen from single runs
#: at the default setting (two moons, D = 2, 100 epochs, seed 0; none: accuracy 0.992,
#: NFE 32; every number in docs/study.md) to run from "little effect on NFE" to "cuts NFE,
#: starting to cost accuracy". Frobenius, spectral: λ = 1e-2 costs no accuracy (NFE 26,
#: accuracy ≥ 0.994), λ = 1 (the paper's) gives NFE 14 at accuracy 0.88.
FROBENIUS_LAMBDAS = (1e-2, 1e-1, 1.0)
SPECTRAL_LAMBDAS = (1e-2, 1e-1, 1.0)
#: Condition number: the paper's λ = 1e-3 in the middle; 1e-4 and 1e-2 both give NFE 26 here
#: (1e-2 loses accuracy on some seeds in the λ sweep).
CONDITION_LAMBDAS = (1e-4, 1e-3, 1e-2)
#: Robust (κ capped at 1/CAPPED_EPS): its validated λ = 3e-2 (experiments.ROBUST) in the
#: middle; 1e-2 gives NFE 26 (accuracy 0.988), 1e-1 NFE 20 at accuracy 0.91.
ROBUST_LAMBDAS = (1e-2, 3e-2, 1e-1)
#: RNODE (λ on ∫‖f‖² dt and on ∫‖J‖_F² dt): λ = 1e-4 leaves NFE at 32, 1e-3 … 1e-1 all
#: give NFE 20 at accuracy ≥ 0.998, λ = 1 gives NFE 14 at accuracy 0.94; a factor 100 apart
#: so that three points reach both ends.
RNODE_LAMBDAS = (1e-4, 1e-2, 1.0)
#: TayNODE (K = 2): λ = 1e-4 gives NFE 26, 1e-3 … 1 all give NFE 20 (accuracy ≥ 0.99),
#: λ = 10 gives NFE 14 at accuracy 0.985: the grid reaches from the plateau to where
#: accuracy starts to give.
TAYNODE_LAMBDAS = (1e-3, 1e-1, 10.0)
#: STEER's half-width B of the end time's interval (no penalty). At D = 2 it raises NFE
#: (B = 0.25: NFE 44, accuracy 0.963; 0.5: 44, 0.857; 0.75: 56, 0.861); the issue's values.
STEER_BOUNDS = (0.25, 0.5, 0.75)
#: Solver-error regularisation (Pal et al. 2021, Σ_j E_j |Δt_j| on the frozen step grid):
#: λ = 1e-4 leaves NFE at 38, 1e-3 gives NFE 26 (accuracy 0.998), 1e-2 NFE 26 (0.978),
#: 1e-1 NFE 20 at accuracy 0.858 (and 3: 20, 0.857).
SOLVER_ERROR_LAMBDAS = (1e-3, 1e-2, 1e-1)

#: One method: its name, regulariser, the TrainConfig field its grid sets (``lam``, another
#: field such as ``steer``, or None for a single point), the grid, other fixed TrainConfig
#: fields, and whether it is our variant rather than a published method.
Method = namedtuple("Method", "name reg knob grid fixed ours", defaults=((), (), False))

METHODS = (
    Method("none", "none", None),
    Method("frobenius", "frobenius", "lam", FROBENIUS_LAMBDAS),
    Method("spectral", "spectral", "lam", SPECTRAL_LAMBDAS),
    Method("condition", "condition", "lam", CONDITION_LAMBDAS),
    Method("robust", "condition", "lam", ROBUST_LAMBDAS, (("cond_eps", CAPPED_EPS),), True),
    Method("rnode", "rnode", "lam", RNODE_LAMBDAS),
    Method("taynode", "taynode", "lam", TAYNODE_LAMBDAS),
    Method("steer", "none", "steer", STEER_BOUNDS),
    Method("solver_error", "solver_error", "lam", SOLVER_ERROR_LAMBDAS),
)
METHOD_NAMES = tuple(m.name for m in METHODS)

#: Test-accuracy thresholds at which methods are compared ("matched accuracy").
MATCHED_ACCURACIES = (0.99, 0.98)
#: ``--quick``'s thresholds: its 8-epoch models reach 0.5–0.9, so that both outcomes of the
#: selection (a point chosen, none eligible) show in its tables.
QUICK_ACCURACIES = (0.8, 0.6)
VALIDATION_SEEDS, VALIDATION_FIRST_SEED = 10, 100
#: Held-out seeds: far from every seed used to choose anything (the study's validation
#: seeds are 100–119).
HELDOUT_SEEDS, HELDOUT_FIRST_SEED = 10, 3000
STAGES = ("validation", "heldout")


def arm_name(method, value):
    """``rnode-0.01``, ``steer-0.5``; a single-point method is just its name."""
    return method.name if method.knob is None else f"{method.name}-{value:g}"


def method_arms(method, quick=False):
    """``[(Arm, value)]`` of a method's grid (``quick``: its first and last value)."""
    grid = method.grid if method.knob is not None else (None,)
    if quick and len(grid) > 2:
        grid = (grid[0], grid[-1])
    arms = []
    for value in grid:
        fields, lam = dict(method.fixed), 0.0
        if method.knob == "lam":
            lam = value
        elif method.knob is not None:
            fields[method.knob] = value
        arms.append((Arm(arm_name(method, value), method.reg, lam, ours=method.ours,
                         **fields), value))
    return arms


@dataclass(frozen=True)
class ParetoConfig:
    """The benchmark: one StudyConfig over both seed sets, and which point is which.

    ``points``: ``(arm name, method, knob, value)`` of every grid point, study order;
    ``thresholds``: the matched accuracies.
    """

    study: StudyConfig
    validation_seeds: tuple
    heldout_seeds: tuple
    points: tuple
    thresholds: tuple = MATCHED_ACCURACIES

    def stage(self, seed):
        return "validation" if seed in self.validation_seeds else "heldout"

    def runs(self):
        return self.study.runs()

    def to_dict(self):
        return {"validation_seeds": list(self.validation_seeds),
                "heldout_seeds": list(self.heldout_seeds), "thresholds": list(self.thresholds),
                "epochs": self.study.base.epochs,
                "base": self.study.base.to_dict(),
                "points": [dict(arm=a, method=m, knob=k, value=v) for a, m, k, v in self.points],
                "arms": [arm.to_dict() for arm in self.study.arms]}


def make_pareto(*, seeds=None, first_seed=HELDOUT_FIRST_SEED, val_seeds=None,
                val_first_seed=VALIDATION_FIRST_SEED, quick=False, epochs=None, dataset=None,
                overrides=None, methods=None, thresholds=None):
    """The benchmark's :class:`ParetoConfig` (``ValueError`` on a bad choice).

    ``seeds``/``first_seed``: the held-out seeds; ``val_seeds``/``val_first_seed``: the
    validation seeds (``None`` counts: the defaults, :data:`QUICK_SEEDS` with ``quick``,
    which also trains the study's quick configuration on each grid's two ends).
    ``overrides``: TrainConfig fields of the setting (e.g. ``time_dependent``) for every
    run; ``methods``: names from :data:`METHOD_NAMES` (default: all; ``none`` is always
    included, as the reference); ``thresholds``: the matched accuracies, each in (0, 1]
    (default :data:`MATCHED_ACCURACIES`, :data:`QUICK_ACCURACIES` with ``quick``).
    """
    if thresholds is None:
        thresholds = QUICK_ACCURACIES if quick else MATCHED_ACCURACIES
    thresholds = tuple(float(a) for a in thresholds)
    if not thresholds or not all(0.0 < a <= 1.0 for a in thresholds) \
            or len(set(thresholds)) != len(thresholds):
        raise ValueError(f"matched accuracies must be distinct numbers in (0, 1]; got "
                         f"{list(thresholds)}")
    if seeds is None:
        seeds = QUICK_SEEDS if quick else HELDOUT_SEEDS
    if val_seeds is None:
        val_seeds = QUICK_SEEDS if quick else VALIDATION_SEEDS
    heldout, validation = seed_range(seeds, first_seed), seed_range(val_seeds, val_first_seed)
    shared = sorted(set(heldout) & set(validation))
    if shared:
        raise ValueError(f"validation seeds {validation[0]}–{validation[-1]} and held-out seeds "
                         f"{heldout[0]}–{heldout[-1]} overlap (at {shared[0]}); held-out seeds "
                         f"must never be used for a choice")
    chosen = METHOD_NAMES if methods is None else tuple(methods)
    unknown = sorted(set(chosen) - set(METHOD_NAMES))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHOD_NAMES)}")
    arms, points = [], []
    for method in METHODS:
        if method.name == "none" or method.name in chosen:
            for arm, value in method_arms(method, quick):
                arms.append(arm)
                points.append((arm.name, method.name, method.knob, value))
    base = study_base(quick=quick, epochs=epochs, dataset=dataset, overrides=overrides)
    study = StudyConfig(base=base, arms=tuple(arms), seeds=validation + heldout)
    return ParetoConfig(study=study, validation_seeds=validation, heldout_seeds=heldout,
                        points=tuple(points), thresholds=thresholds)


def run_pareto(out, pareto, *, jobs=-1, backend="loky", scheduler=None, plots=True, log=None):
    """Run (or resume) every run of ``pareto`` into ``out``; write its tables and figure.

    Same parameters and result as :func:`odejac.study.experiments.run_experiments`.
    """
    from .dispatch import dispatched
    from .pareto_tables import write_pareto

    with dispatched(out, pareto.study, None, jobs=jobs, backend=backend, scheduler=scheduler,
                    log=log) as done:
        outputs = write_pareto(done.out, done.records, pareto)
        if plots:
            from .pareto_plot import plot_pareto

            outputs.append(plot_pareto(done.out))
    return done.result(len(pareto.runs()), outputs)


def pareto_path(out, ext):
    return os.path.join(out, f"pareto.{ext}")
