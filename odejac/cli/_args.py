"""Shared pieces of the command line: the one-line-error parser and one flag per
``TrainConfig`` field."""
import argparse
import dataclasses
import os

from ..train import TrainConfig

_HELP = {
    "reg": ("penalty (log_condition is ours, not the paper's; kinetic is ∫‖f‖² dt; "
            "taynode is ∫‖d²h/dt²‖² dt; rnode is ∫‖f‖² + ‖J‖_F² dt, Finlay et al. 2020; "
            "solver_error is Σ_j E_j |h_j|, the DP5 steps' error estimates, Pal et al. 2021, "
            "trained with the discrete gradient)"),
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
    "data_seed": "seed of the data (and of the --test-fraction split)",
    "data": "train on your own data: a .csv file with a header row or a .npz file with "
            "X, y (replaces --dataset)",
    "target": "label column of the CSV file (default: the last column)",
    "test_fraction": "held-out fraction of --data, split stratified by class",
    "test_data": "a test file like --data instead of --test-fraction",
    "grad_clip": "rescale each mini-batch gradient to at most this global norm before Adam "
                 "(0: off; ours)",
    "max_nfe": "function evaluations one solve may spend before training counts as diverged "
               "(0: 10000 at tolerance 1e-3, growing as tol^(-1/5))",
    "lam2": "--reg rnode: weight of ∫‖J‖_F² dt, --lam weighing ∫‖f‖² dt (-1: the same as --lam)",
    "steer": "STEER (Ghosh et al. 2020): train each mini-batch to an end time drawn from "
             "U(1-B, 1+B), 0 <= B < 1; evaluate at t = 1 (0: off)",
}
_METAVARS = {"data": "FILE", "target": "COLUMN", "test_data": "FILE"}

_CHOICES = {
    "reg": ("none", "frobenius", "spectral", "condition", "log_condition", "kinetic",
            "taynode", "rnode", "solver_error"),
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
        shown = f" (default: {default})" if default != "" else ""
        kwargs = dict(dest=f.name, default=default, help=_HELP[f.name] + shown)
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=int, nargs="+", metavar="WIDTH", **kwargs)
        else:
            group.add_argument(flag, type=type(default), choices=_CHOICES.get(f.name),
                               metavar=_METAVARS.get(f.name), **kwargs)


def config_from_args(parser, args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**values)
    except ValueError as exc:
        parser.error(str(exc))


def add_output_arguments(parser, name):
    """``--out results/NAME`` (the directory of ``NAME.json``) and ``--figure figures/NAME.png``,
    the two outputs of the single-figure commands (gradcheck, trace, adjoint-picture, ...)."""
    out, figure = os.path.join("results", name), os.path.join("figures", f"{name}.png")
    parser.add_argument("--out", default=out,
                        help=f"directory of {name}.json (default: {out})")
    parser.add_argument("--figure", default=figure, help=f"figure path (default: {figure})")
