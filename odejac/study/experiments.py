"""The study: every regulariser × seed trained, evaluated and summarised on disk.

:func:`run_experiments` trains one model per (arm, seed) in parallel, runs the
robustness and margin evaluations of :mod:`odejac.study.robustness` on each, then
writes Table 1 (:mod:`odejac.study.tables`), the claims (:mod:`odejac.study.claims`) and
the figures (:mod:`odejac.study.plots`). An output directory holds::

    study.json                 the StudyConfig of the last invocation
    data.npz                   the train/test data (Figure 1 reads it)
    runs/ARM/seed-K/           config, history, checkpoint, summary (odejac.train)
                               + robustness.json and regions.npz (odejac.study.robustness)
    table1.{md,csv,json}  per_seed.csv  claims.{md,json}  fig*.png

Every file is written atomically, and a run whose summary and evaluation are
on disk is never dispatched again, so a killed study (even by SIGKILL)
resumes without redoing anything it finished. The settings chosen for the
study, and why, are in ``docs/study.md``.
"""
import os
import socket
import time

from .._threads import blas_threads

from .._interrupt import shielded
from ..integrate import SolverError
from ..io import read_json, write_json, write_npz
from .dispatch import dispatched
from .robustness import EvalConfig, evaluate_robustness
from .records import Arm, StudyConfig
from ..train import TrainConfig, check_run_dir, load_data, read_summary, train


#: The base configuration of every run: the library defaults except where the
#: paper's numbers say otherwise (reasons in docs/study.md). No augmentation,
#: D = 2: the paper's κ ≈ 5 of the unregularised model appears only there (with
#: augment_dim = 2 the same model has κ of 10²–10⁴).
STUDY_BASE = TrainConfig(augment_dim=0)

#: One λ per regulariser for every seed, chosen from `cli.py sweep` (docs/study.md):
#: Frobenius and spectral at the only λ of the sweep where the paper's accuracy ≈ 0.885
#: and NFE ≈ 14–20 appear (at λ ≤ 0.1 they cost no accuracy); the condition number at the
#: λ where its NFE and κ match the paper's (27, 6) and which the issue's PyTorch run used.
PAPER_LAMBDAS = {"frobenius": 1.0, "spectral": 1.0, "condition": 1e-3}
#: Our variant (not the paper's): the penalty on log κ, whose gradient dκ/κ is κ times
#: smaller than κ's where J is nearly singular, so the gradient spikes that break the
#: condition penalty are smaller (they are not removed; see docs/study.md).
VARIANT_REG, VARIANT_LAMBDA = "log_condition", 1e-2
#: Our second variant: the paper's condition penalty and λ with its floor raised to
#: ε = 1e-2, i.e. κ_ε = σ_max / sqrt(σ_min² + ε²σ_max²) ≤ 100. This removes the cause of
#: the failures: κ_ε's gradient is bounded where J is nearly singular (docs/study.md).
CAPPED_NAME, CAPPED_EPS = "condition_capped", 1e-2
#: Our robust variant (row ``robust``), the arm that is meant to meet C1's goal: NFE at
#: least 20 % below none's (Welch p < 0.05) with test accuracy ≥ 0.98 in ≥ 90 % of seeds.
#: Chosen on the validation seeds 100–119 only, never on the seeds the tables report, by
#: ``docs/scripts/choose_robust.py`` (numbers of every candidate in docs/results/validation/):
#: the paper's penalty at λ = 3e-2 with κ capped at 100. On validation: NFE −21.6 % against
#: none (p = 3e-4), accuracy ≥ 0.98 in 19 of 20 seeds.
ROBUST = Arm("robust", "condition", 3e-2, ours=True, cond_eps=1e-2)
#: Seeds per arm: with NFE's spread over seeds (sd ≈ 9 against a mean of 35) 10 seeds
#: detect a 20 % cut too rarely; power of 30 in docs/study.md.
DEFAULT_SEEDS = 30

#: The quick configuration: every output in seconds, for the tests.
QUICK_TRAIN = dict(epochs=8, n_train=200, n_test=200)
QUICK_SEEDS = 2
QUICK_EVAL = EvalConfig(noise_stds=(0.0, 0.2, 0.4), epsilons=(0.0, 0.1, 0.2), attack_points=40,
                        pgd_steps=2, margin_points=20, sphere_points=4, radius_step=0.1,
                        max_radius=0.6, grid_resolution=24, n_trajectories=4,
                        trajectory_times=5)


def default_arms(lams=None, variant=True):
    """The paper's four rows and (``variant``) ours; ``lams`` overrides λ by regulariser.

    ``lams`` changes the paper's arms, log κ and the capped arm (which shares the paper's
    condition λ); :data:`ROBUST` is fixed in code, since its values are chosen on
    validation seeds.
    """
    lams = {**PAPER_LAMBDAS, VARIANT_REG: VARIANT_LAMBDA, **(lams or {})}
    arms = [Arm("none", "none", 0.0)]
    arms += [Arm(reg, reg, float(lams[reg])) for reg in PAPER_LAMBDAS]
    if variant:
        arms.append(Arm(VARIANT_REG, VARIANT_REG, float(lams[VARIANT_REG]), ours=True))
        arms.append(Arm(CAPPED_NAME, "condition", float(lams["condition"]), ours=True,
                        cond_eps=CAPPED_EPS))
        arms.append(ROBUST)
    return tuple(arms)


def study_base(*, quick=False, epochs=None, dataset=None, overrides=None):
    """The TrainConfig every run of a study (or sweep) starts from.

    :data:`STUDY_BASE` (with :data:`QUICK_TRAIN` when ``quick``); ``epochs``,
    ``dataset`` and ``overrides`` (other TrainConfig fields, e.g. hidden,
    kappa) replace its values where given.
    """
    base = STUDY_BASE.replace(**QUICK_TRAIN) if quick else STUDY_BASE
    changes = {key: value for key, value in (("epochs", epochs), ("dataset", dataset))
               if value is not None}
    changes.update(overrides or {})
    return base.replace(**changes) if changes else base


def seed_range(count, first_seed=0):
    """Seeds ``first_seed … first_seed + count − 1`` as a tuple (``ValueError`` if bad)."""
    count, first_seed = int(count), int(first_seed)
    if count < 1 or first_seed < 0:
        raise ValueError(f"need at least one seed and a first seed >= 0; got {count} seeds "
                         f"from {first_seed}")
    return tuple(range(first_seed, first_seed + count))


#: Most radii the boundary-distance search may try (max_radius / radius_step).
MAX_RADII = 100_000


def make_study(*, seeds=None, first_seed=0, quick=False, epochs=None, lams=None,
               dataset=None, evaluation=None, variant=True, overrides=None):
    """The default (or ``quick``) study with the CLI's overrides applied.

    ``None`` leaves a setting at its default (``seeds``: :data:`DEFAULT_SEEDS`, or
    :data:`QUICK_SEEDS` when ``quick``); the seeds run are ``first_seed`` onwards.
    """
    if seeds is None:
        seeds = QUICK_SEEDS if quick else DEFAULT_SEEDS
    base = study_base(quick=quick, epochs=epochs, dataset=dataset, overrides=overrides)
    if evaluation is None:
        evaluation = QUICK_EVAL if quick else EvalConfig()
    radii = evaluation.max_radius / evaluation.radius_step
    if not radii <= MAX_RADII:   # refused here, not after every run has trained
        raise ValueError(f"--max-radius / --radius-step gives {radii:.3g} radii to search; "
                         f"at most {MAX_RADII:,} are allowed")
    return StudyConfig(base=base, arms=default_arms(lams, variant),
                       seeds=seed_range(seeds, first_seed), evaluation=evaluation)


def check_config(directory, config):
    """Refuse a run directory that holds another config (before any work is dispatched)."""
    check_run_dir(directory, config)


def is_done(directory, config, evaluation):
    """Whether a run needs no more work: trained (or diverged) and, if asked, evaluated.

    The summary must describe the run's committed state (:func:`odejac.train.read_summary`).
    """
    summary = read_summary(directory, config)
    if summary is None:
        return False
    if summary.get("status") != "finished" or evaluation is None:
        return True
    try:
        saved = read_json(os.path.join(directory, "robustness.json"), expect=dict)["settings"]
        return EvalConfig.from_dict(saved) == evaluation
    except (OSError, KeyError, TypeError, ValueError):
        return False


def run_one(config, directory, evaluation=None, regions=True):
    """Train one run (resuming) and evaluate it; returns its summary (plus timings).

    ``regions`` also saves the Figure 6 arrays (``regions.npz``, ≈ 0.3 s a run; every
    run has them, so Figure 6 can show each arm's median seed). A module-level function
    of plain arguments, so any joblib backend can ship it.
    """
    start = time.perf_counter()
    state, summary = train(config, directory)
    if summary["status"] == "finished" and evaluation is not None \
            and not is_done(directory, config, evaluation):
        eval_start = time.perf_counter()
        try:
            with blas_threads(), shielded():
                report, arrays = evaluate_robustness(state.model, load_data(config), evaluation,
                                                     regions)
        except SolverError as exc:  # kept on disk, so a resume does not retry it forever
            report, arrays = {"error": f"evaluation failed: {exc}"}, {}
        if arrays:
            write_npz(os.path.join(directory, "regions.npz"), **arrays)
        report.update(settings=evaluation.to_dict(), seconds=time.perf_counter() - eval_start)
        write_json(os.path.join(directory, "robustness.json"), report)
    return dict(summary, seconds=time.perf_counter() - start,
                worker=f"{socket.gethostname()}:{os.getpid()}")


def save_data(out, config):
    """The study's data as ``out/data.npz`` (shared by every seed: ``data_seed`` is fixed)."""
    data = load_data(config)
    write_npz(os.path.join(out, "data.npz"), X_train=data.X_train, y_train=data.y_train,
              X_test=data.X_test, y_test=data.y_test)


def run_experiments(out, study, *, jobs=-1, backend="loky", scheduler=None, plots=True,
                    log=None):
    """Run (or resume) the whole study into ``out``; write tables, claims and figures.

    Parameters
    ----------
    out : str
        Output directory (created).
    study : StudyConfig
    jobs : int
        Parallel workers (joblib's ``n_jobs``; -1: all cores).
    backend : {"loky", "dask"}
        joblib backend; ``dask`` sends the runs to the Dask scheduler at ``scheduler``.
    plots : bool
        Draw the figures (matplotlib) after the tables.
    log : callable, optional
        Receives progress lines (default: stderr).

    Returns
    -------
    dict
        ``{"runs": n, "trained": n_dispatched, "seconds": wall, "outputs": [paths]}``.
    """
    from . import claims, tables

    with dispatched(out, study, study.evaluation, jobs=jobs, backend=backend,
                    scheduler=scheduler, log=log,
                    inputs=lambda where: save_data(where, study.base)) as done:
        out, records = done.out, done.records
        outputs = tables.write_tables(out, records, study)
        outputs += claims.write_claims(out, records, study)
        if plots:
            from . import plots as plotting

            outputs += plotting.plot_all(out)
    return done.result(len(study.runs()), outputs)
