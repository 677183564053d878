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
    "reg": "Jacobian penalty (log_condition is ours, not the paper's)",
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
    "reg_at": "where J is evaluated for the penalty",
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
    "reg": ("none", "frobenius", "spectral", "condition", "log_condition"),
    "controller": ("torchdiffeq", "scipy"),
    "adjoint_norm": ("mixed", "seminorm", "rms"),
    "reg_at": ("t0",),
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
