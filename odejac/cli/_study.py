"""The study's subcommands: ``experiments``, ``sweep`` and ``plot`` (odejac.study)."""
import argparse
import os
import sys

from ._args import _CHOICES

def _at_least_one(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {value}")
    return value


def _add_runner_options(parser, out, seeds, quick_seeds=2, dataset=True, first_seed=0,
                        first_seed_note="the robust arm was chosen on 100-119, so report on "
                        "seeds outside that range"):
    """Options shared by every study command: where, which seeds, how in parallel."""
    parser.add_argument("--out", default=out, help=f"results directory (default: {out})")
    parser.add_argument("--seeds", type=_at_least_one, default=None,
                        help=f"seeds per arm (default: {seeds}; {quick_seeds} with --quick)")
    parser.add_argument("--first-seed", type=_non_negative, default=first_seed, metavar="N",
                        help=f"run seeds N ... N+SEEDS-1 (default: {first_seed}; "
                        f"{first_seed_note})")
    parser.add_argument("--jobs", type=int, default=-1,
                        help="parallel runs (default: -1, all cores)")
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky",
                        help="joblib backend; dask needs --scheduler and odejac[dask]")
    parser.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="Dask scheduler address, e.g. tcp://host:8786")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings that exercise every output in seconds")
    parser.add_argument("--epochs", type=_at_least_one, default=None,
                        help="override the epochs of every run")
    if dataset:
        parser.add_argument("--dataset", choices=_CHOICES["dataset"], default=None,
                            help="data set (default: moons)")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="skip the figures")


def _run_study(parser, args, run, study, header=None):
    """Run ``run(args.out, study, ...)``, print its outputs, and exit 1 if runs lack results.

    ``header`` (default: the study's runs, arms, seeds and epochs) is printed first.
    """
    if header is None:
        header = (f"{len(study.runs())} runs ({len(study.arms)} arms × {len(study.seeds)} "
                  f"seeds, {study.base.epochs} epochs)")
    print(f"{header} into {args.out}", flush=True)
    try:
        result = run(args.out, study, jobs=args.jobs, backend=args.backend,
                     scheduler=args.scheduler, plots=args.plots)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(result["outputs"]))
    print(f"done: {result['trained']} of {result['runs']} runs needed work; wall time "
          f"{result['seconds']:.1f} s")
    missing = result.get("missing")
    if missing:
        print(f"{parser.prog}: error: {len(missing)} of {result['runs']} runs have no result "
              f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); run the same "
              f"command to resume them", file=sys.stderr)
        return 1
    return 0


def _cmd_experiments(parser, args):
    from ..study import experiments
    from ..study.robustness import EvalConfig

    lams = {reg: getattr(args, f"lam_{reg}") for reg in
            ("frobenius", "spectral", "condition", "log_condition")}
    margin = {key: getattr(args, key) for key in
              ("margin_points", "sphere_points", "radius_step", "max_radius")}
    try:
        evaluation = (experiments.QUICK_EVAL if args.quick else EvalConfig()).replace(
            **{k: v for k, v in margin.items() if v is not None})
        overrides = {key: getattr(args, key) for key in
                     ("hidden", "augment_dim", "kappa", "embed_dim")
                     if getattr(args, key) is not None}
        study = experiments.make_study(
            seeds=args.seeds, first_seed=args.first_seed, quick=args.quick, epochs=args.epochs,
            dataset=args.dataset,
            lams={k: v for k, v in lams.items() if v is not None}, evaluation=evaluation,
            overrides=overrides)
    except ValueError as exc:
        parser.error(str(exc))
    return _run_study(parser, args, experiments.run_experiments, study)


def _cmd_sweep(parser, args):
    from ..study import sweep

    try:
        study = sweep.make_sweep(regs=args.regs, lams=args.lams, seeds=args.seeds,
                                 first_seed=args.first_seed, quick=args.quick,
                                 epochs=args.epochs, dataset=args.dataset)
    except ValueError as exc:
        parser.error(str(exc))
    return _run_study(parser, args, sweep.run_sweep, study)


def _cmd_plot(parser, args):
    from ..study import plots

    try:
        paths = plots.plot_results(args.run_dir)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(paths))
    return 0


def _add_study_commands(sub):
    """The subcommands of the study (#4): experiments, sweep, plot."""
    from ..study.experiments import DEFAULT_SEEDS, PAPER_LAMBDAS, VARIANT_LAMBDA
    from ..study.robustness import EvalConfig
    from ..study.sweep import SWEEP_LAMBDAS, SWEEP_REGS, SWEEP_SEEDS

    defaults = EvalConfig()

    ex = sub.add_parser(
        "experiments", help="the study: Table 1, figures 1-6 and the claims",
        description="Train every regulariser x seed in parallel (resuming finished runs), "
        "evaluate robustness and margins, and write table1.{md,csv,json}, claims.md and "
        "figures 1-6. See docs/study.md.")
    _add_runner_options(ex, "results", DEFAULT_SEEDS)
    for reg, lam in (*PAPER_LAMBDAS.items(), ("log_condition", VARIANT_LAMBDA)):
        ex.add_argument(f"--lam-{reg.replace('_', '-')}", dest=f"lam_{reg}", type=float,
                        default=None, help=f"λ of {reg} (default: {lam:g})")
    ex.add_argument("--hidden", type=int, nargs="+", metavar="WIDTH", default=None,
                    help="hidden widths of the field (default: 32 32); for digits use widths "
                    ">= D (e.g. 64 64), else J has rank < D and κ is infinite")
    ex.add_argument("--augment-dim", type=int, default=None,
                    help="zero dimensions appended to the input (default: 0)")
    ex.add_argument("--kappa", choices=("exact", "matrix-free"), default=None,
                    help="how κ and its gradient are computed (default: exact)")
    ex.add_argument("--embed-dim", type=int, default=None,
                    help="dimension of --dataset embedded_moons (default: 4)")
    ex.add_argument("--margin-points", type=_at_least_one, default=None,
                    help="training points whose boundary distance is measured "
                    f"(default: {defaults.margin_points})")
    ex.add_argument("--sphere-points", type=_at_least_one, default=None,
                    help=f"random points on each sphere (default: {defaults.sphere_points})")
    ex.add_argument("--radius-step", type=float, default=None,
                    help=f"radius step of the linear search (default: {defaults.radius_step:g})")
    ex.add_argument("--max-radius", type=float, default=None,
                    help=f"largest radius searched (default: {defaults.max_radius:g})")
    ex.set_defaults(handler=_cmd_experiments, subparser=ex)

    sw = sub.add_parser(
        "sweep", help="NFE, accuracy and κ against λ per regulariser",
        description="Train each regulariser at each λ on a few seeds; write sweep.{md,csv,json} "
        "and fig_sweep.png. Shows how the study's λ were chosen.")
    _add_runner_options(sw, os.path.join("results", "sweep"), SWEEP_SEEDS)
    sw.add_argument("--regs", nargs="+", choices=_CHOICES["reg"][1:], default=list(SWEEP_REGS),
                    help="regularisers (default: all)")
    sw.add_argument("--lams", nargs="+", type=float, default=list(SWEEP_LAMBDAS),
                    metavar="LAM", help="λ values (default: 1e-4 ... 1)")
    sw.set_defaults(handler=_cmd_sweep, subparser=sw)

    pl = sub.add_parser("plot", help="redraw the figures of a results directory",
                        description="Redraw the figures of an experiments, sweep, landscape or "
                        "pareto directory from its saved files.")
    pl.add_argument("--from", dest="run_dir", required=True, metavar="DIR",
                    help="directory written by experiments, sweep, landscape or pareto")
    pl.set_defaults(handler=_cmd_plot, subparser=pl)


