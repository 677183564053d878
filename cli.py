#!/usr/bin/env python
"""odejac command line: train, run the study, sweep λ, plot, check gradients, trace.

    python cli.py train --reg condition --lam 1e-3
    python cli.py experiments            # every table and figure of the study
    python cli.py --help

Bad options exit with status 2 and a one-line message; no traceback.
"""
import argparse
import dataclasses
import os
import sys
import time

from odejac.train import TrainConfig

_HELP = {
    "reg": "penalty (log_condition is ours, not the paper's; kinetic is ∫‖f‖² dt)",
    "lam": "penalty weight λ >= 0",
    "epochs": "training epochs",
    "batch_size": "mini-batch size",
    "lr": "Adam learning rate",
    "augment_dim": "zero dimensions appended to the input",
    "hidden": "hidden widths of the vector field",
    "time_dependent": "feed t to the vector field",
    "activation": "hidden activation",
    "rtol": "relative tolerance of the forward solve",
    "atol": "absolute tolerance of the forward solve",
    "adjoint_rtol": "relative tolerance of the adjoint solve",
    "adjoint_atol": "absolute tolerance of the adjoint solve",
    "controller": "step-size control reproducing torchdiffeq's dopri5 or SciPy's RK45",
    "adjoint_norm": "error norm of the adjoint solve",
    "reg_at": "where the penalty is evaluated: at h(t0) or integrated along the solve",
    "kappa": "σ_max, σ_min of J by the SVD of the formed J (exact) or matrix-free Lanczos",
    "cond_eps": "relative floor ε of the condition-number penalties: κ_ε <= 1/ε (ours if not 1e-8)",
    "lam_warmup": "epochs of linear warm-up of λ (0: none; ours)",
    "seed": "seed of the initial weights and of the shuffling",
    "dataset": "data set",
    "n_train": "training points (moons)",
    "n_test": "test points (moons)",
    "noise": "noise of make_moons",
    "embed_dim": "dimension of the embedded moons",
    "data_seed": "seed of the data",
}
_CHOICES = {
    "reg": ("none", "frobenius", "spectral", "condition", "log_condition", "kinetic"),
    "controller": ("torchdiffeq", "scipy"),
    "adjoint_norm": ("mixed", "seminorm", "rms"),
    "reg_at": ("t0", "trajectory"),
    "kappa": ("exact", "matrix-free"),
    "dataset": ("moons", "digits", "embedded_moons"),
    "activation": ("tanh", "softplus"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_config_arguments(parser, defaults=TrainConfig()):
    """One flag per TrainConfig field, with the field's default."""
    group = parser.add_argument_group("run configuration")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kwargs = dict(dest=f.name, default=default, help=f"{_HELP[f.name]} (default: {default})")
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=int, nargs="+", metavar="WIDTH", **kwargs)
        else:
            group.add_argument(flag, type=type(default), choices=_CHOICES.get(f.name), **kwargs)


def config_from_args(parser, args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**values)
    except ValueError as exc:
        parser.error(str(exc))


def _cmd_train(parser, args):
    from odejac.train import train

    config = config_from_args(parser, args)
    out = args.out or os.path.join("results", "train", f"{config.reg}-seed{config.seed}")
    print(f"training reg={config.reg} lam={config.lam:g} for {config.epochs} epochs "
          f"on {config.dataset}; results in {out}", flush=True)
    start = time.perf_counter()
    try:
        state, summary = train(config, out, progress=not args.quiet, resume=not args.no_resume)
    except ValueError as exc:
        parser.error(str(exc))
    elapsed = time.perf_counter() - start
    if summary["status"] != "finished":
        print(f"run stopped: {summary['error']} (kept the checkpoint of epoch "
              f"{summary['epochs_done']})", file=sys.stderr)
    print(f"test accuracy      {summary.get('test_accuracy', float('nan')):.4f}")
    print(f"NFE (test solve)   {summary.get('nfe', 'n/a')}")
    print(f"mean κ(J) (train)  {summary.get('kappa_mean', float('nan')):.2f}  "
          f"(median {summary.get('kappa_median', float('nan')):.2f})")
    print(f"time               {elapsed:.1f} s ({summary['epochs_done']} epochs)")
    return 0 if summary["status"] == "finished" else 1


def _epochs_flag(parser, default, help_text):
    """Let ``--epochs`` (from add_config_arguments) default to ``default``, 0 allowed."""
    parser.set_defaults(epochs=default)
    for action in parser._actions:
        if action.dest == "epochs":
            action.help = f"{help_text} (default: {default})"


def _config_with_epochs(parser, args):
    """``(config, epochs)``; TrainConfig needs epochs >= 1, so 0 is carried separately."""
    epochs = args.epochs
    if epochs < 0:
        parser.error(f"--epochs must be >= 0; got {epochs}")
    args.epochs = max(1, epochs)
    return config_from_args(parser, args), epochs


def _cmd_gradcheck(parser, args):
    from odejac import gradcheck

    config, epochs = _config_with_epochs(parser, args)
    try:
        options = gradcheck.GradcheckOptions(
            tols=args.tols, fd_tol=args.fd_tol, fd_step=args.fd_step,
            n_directions=args.directions, n_coords=args.coords, repeats=args.repeats,
            seed=args.probe_seed)
    except ValueError as exc:
        parser.error(str(exc))
    source = args.run_dir or (f"{epochs} epochs of training" if epochs else "untrained model")
    print(f"gradient check of {source} ({config.dataset}, reg={config.reg}, "
          f"controller={config.controller})", flush=True)
    print(gradcheck._HEADER, flush=True)
    results = gradcheck.gradcheck(config, options, epochs=epochs, run_dir=args.run_dir,
                                  progress=lambda line: print(line, flush=True))
    gradcheck.save(results, os.path.join(args.out, "gradcheck.json"), args.figure)
    print()
    print(gradcheck.format_table(results))
    print(f"results in {os.path.join(args.out, 'gradcheck.json')}, figure {args.figure}")
    return 0


def _cmd_trace(parser, args):
    from odejac import trace

    config = config_from_args(parser, args)
    if args.run_dir is None:
        print(f"training reg={config.reg} for {config.epochs} epochs (in memory) ...",
              flush=True)
    results = trace.trace(config, run_dir=args.run_dir)
    trace.save(results, os.path.join(args.out, "trace.json"), args.figure)
    print(trace.format_trace(results))
    print(f"\nresults in {os.path.join(args.out, 'trace.json')}, figure {args.figure}")
    return 0


def _at_least_one(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _add_runner_options(parser, out, seeds):
    """Options shared by ``experiments`` and ``sweep``: where, how many, how in parallel."""
    parser.add_argument("--out", default=out, help=f"results directory (default: {out})")
    parser.add_argument("--seeds", type=_at_least_one, default=None,
                        help=f"seeds per regulariser (default: {seeds}; 2 with --quick)")
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
    parser.add_argument("--dataset", choices=_CHOICES["dataset"], default=None,
                        help="data set (default: moons)")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="skip the figures")


def _run_study(parser, args, run, study):
    print(f"{len(study.runs())} runs ({len(study.arms)} arms × {len(study.seeds)} seeds, "
          f"{study.base.epochs} epochs) into {args.out}", flush=True)
    try:
        result = run(args.out, study, jobs=args.jobs, backend=args.backend,
                     scheduler=args.scheduler, plots=args.plots)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(result["outputs"]))
    print(f"done: {result['trained']} of {result['runs']} runs needed work; wall time "
          f"{result['seconds']:.1f} s")
    return 0


def _cmd_experiments(parser, args):
    from odejac import experiments
    from odejac.robustness import EvalConfig

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
            seeds=args.seeds, quick=args.quick, epochs=args.epochs, dataset=args.dataset,
            lams={k: v for k, v in lams.items() if v is not None}, evaluation=evaluation,
            overrides=overrides)
    except ValueError as exc:
        parser.error(str(exc))
    return _run_study(parser, args, experiments.run_experiments, study)


def _cmd_sweep(parser, args):
    from odejac import sweep

    try:
        study = sweep.make_sweep(regs=args.regs, lams=args.lams, seeds=args.seeds,
                                 quick=args.quick, epochs=args.epochs, dataset=args.dataset)
    except ValueError as exc:
        parser.error(str(exc))
    return _run_study(parser, args, sweep.run_sweep, study)


def _cmd_plot(parser, args):
    from odejac import plots

    try:
        paths = plots.plot_results(args.run_dir)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(paths))
    return 0


def _add_study_commands(sub):
    """The subcommands of the study (#4): experiments, sweep, plot."""
    from odejac.experiments import DEFAULT_SEEDS, PAPER_LAMBDAS, VARIANT_LAMBDA
    from odejac.robustness import EvalConfig
    from odejac.sweep import SWEEP_LAMBDAS, SWEEP_REGS, SWEEP_SEEDS

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
                        description="Redraw the figures of an experiments or sweep directory "
                        "from its saved files.")
    pl.add_argument("--from", dest="run_dir", required=True, metavar="DIR",
                    help="directory written by experiments or sweep")
    pl.set_defaults(handler=_cmd_plot, subparser=pl)


def build_parser():
    parser = Parser(
        prog="cli.py", description="odejac: neural ODEs, adjoint gradients and Jacobian "
        "conditioning on the CPU")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser("train", help="train one neural ODE classifier",
                           description="Train one neural ODE classifier on two moons.")
    add_config_arguments(train)
    train.add_argument("--out", default=None,
                       help="run directory (default: results/train/REG-seedSEED)")
    train.add_argument("--no-resume", action="store_true",
                       help="start afresh instead of resuming from the checkpoint in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train, subparser=train)

    gc = sub.add_parser(
        "gradcheck", help="adjoint and discrete gradients against finite differences",
        description="A table across tolerances of the relative error of the adjoint and of "
        "the discrete (backpropagated DP5) gradient against 5-point central differences, with "
        "their costs; saved as JSON and plotted. See docs/adjoint.md.")
    add_config_arguments(gc)
    _epochs_flag(gc, 0, "train this many epochs first; 0 checks the untrained model")
    gc.add_argument("--from", dest="run_dir", default=None, metavar="RUN_DIR",
                    help="check the trained model of a run directory written by train (its "
                    "config.json replaces the configuration flags)")
    gc.add_argument("--tols", type=float, nargs="+", metavar="TOL",
                    default=[1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10],
                    help="tolerances (rtol = atol) of the rows (default: 1e-3 ... 1e-10)")
    gc.add_argument("--fd-tol", type=float, default=1e-12,
                    help="tolerance of the reference finite differences (default: 1e-12)")
    gc.add_argument("--fd-step", type=float, default=1e-3,
                    help="step of the 5-point stencil along unit probes (default: 1e-3)")
    gc.add_argument("--directions", type=int, default=4,
                    help="random unit directions probed (default: 4)")
    gc.add_argument("--coords", type=int, default=4,
                    help="random coordinates probed (default: 4)")
    gc.add_argument("--repeats", type=int, default=3,
                    help="time each gradient this many times, keep the best (default: 3)")
    gc.add_argument("--probe-seed", type=int, default=0, help="seed of the probes (default: 0)")
    gc.add_argument("--out", default=os.path.join("results", "gradcheck"),
                    help="directory of gradcheck.json (default: results/gradcheck)")
    gc.add_argument("--figure", default=os.path.join("figures", "gradcheck.png"),
                    help="figure path (default: figures/gradcheck.png)")
    gc.set_defaults(handler=_cmd_gradcheck, subparser=gc)

    tr = sub.add_parser(
        "trace", help="step logs of one forward and one adjoint solve",
        description="Print every step attempt (t, h, error ratio, accepted/rejected, NFE so "
        "far) of one forward and one adjoint solve, before and after training, and plot step "
        "sizes over t. Trains in memory first unless --from is given.")
    add_config_arguments(tr)
    tr.add_argument("--from", dest="run_dir", default=None, metavar="RUN_DIR",
                    help="trace the trained model of a run directory written by train (its "
                    "config.json replaces the configuration flags)")
    tr.add_argument("--out", default=os.path.join("results", "trace"),
                    help="directory of trace.json (default: results/trace)")
    tr.add_argument("--figure", default=os.path.join("figures", "trace.png"),
                    help="figure path (default: figures/trace.png)")
    tr.set_defaults(handler=_cmd_trace, subparser=tr)
    _add_study_commands(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args.subparser, args)


if __name__ == "__main__":
    sys.exit(main())
