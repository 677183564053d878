"""The ``pareto`` subcommand: NFE against accuracy per regulariser, chosen on validation
seeds and reported on held-out seeds (odejac.study.pareto)."""
import os

from ._study import _add_runner_options, _at_least_one, _non_negative, _run_study

def _overrides(args):
    """The setting flags given (like the landscape's axes), as TrainConfig overrides; none
    given: the study's base. ``--tol`` sets every tolerance, as the landscape does."""
    from ..study.landscape import TOLERANCE_FIELDS

    fields = {"augment_dim": ("augment_dim",), "lr": ("lr",),
              "time_dependent": ("time_dependent",), "tol": TOLERANCE_FIELDS}
    changes = {}
    for flag, names in fields.items():
        value = getattr(args, flag)
        if value is not None:
            changes.update(dict.fromkeys(names, value))
    return changes


def _cmd_pareto(parser, args):
    from ..study import pareto

    try:
        bench = pareto.make_pareto(
            seeds=args.seeds, first_seed=args.first_seed, val_seeds=args.val_seeds,
            val_first_seed=args.val_first_seed, quick=args.quick, epochs=args.epochs,
            dataset=args.dataset, overrides=_overrides(args), methods=args.methods,
            thresholds=args.accuracies)
    except ValueError as exc:
        parser.error(str(exc))
    study = bench.study
    header = (f"{len(study.runs())} runs ({len(study.arms)} grid points × "
              f"({len(bench.validation_seeds)} validation + {len(bench.heldout_seeds)} "
              f"held-out seeds), {study.base.epochs} epochs)")
    return _run_study(parser, args, pareto.run_pareto, bench, header=header)


def _add_pareto_command(sub):
    """``pareto``: every method's λ grid, chosen on validation, reported on held-out seeds."""
    from ..study.pareto import (HELDOUT_FIRST_SEED, HELDOUT_SEEDS, METHOD_NAMES,
                                VALIDATION_FIRST_SEED, VALIDATION_SEEDS)

    pa = sub.add_parser(
        "pareto", help="NFE against accuracy per regulariser (none, paper's, robust, RNODE, "
        "TayNODE, STEER, solver error) over λ grids",
        description="Train every method at every point of its grid on validation seeds and "
        "on held-out seeds; choose each method's point at matched accuracy (>= 0.99, >= 0.98) "
        "on validation only and report it on held-out seeds against none. Writes "
        "pareto.{csv,md,json} and fig_pareto.png. See docs/study.md.")
    _add_runner_options(pa, os.path.join("results", "pareto"), HELDOUT_SEEDS,
                        first_seed=HELDOUT_FIRST_SEED,
                        first_seed_note="the held-out seeds; never used for a choice")
    pa.add_argument("--val-seeds", type=_at_least_one, default=None, metavar="N",
                    help=f"validation seeds per grid point (default: {VALIDATION_SEEDS}; 2 "
                    "with --quick)")
    pa.add_argument("--val-first-seed", type=_non_negative, default=VALIDATION_FIRST_SEED,
                    metavar="N", help=f"first validation seed (default: {VALIDATION_FIRST_SEED})")
    pa.add_argument("--methods", nargs="+", choices=METHOD_NAMES[1:], default=None,
                    metavar="METHOD", help=f"methods to train besides none (default: all of "
                    f"{', '.join(METHOD_NAMES[1:])})")
    pa.add_argument("--accuracies", nargs="+", type=float, default=None, metavar="A",
                    help="matched test accuracies (default: 0.99 0.98; 0.8 0.6 with --quick)")
    setting = pa.add_argument_group("training setting (default: the study's; e.g. a harder "
                                    "setting of the landscape, into another --out)")
    setting.add_argument("--augment-dim", type=_non_negative, default=None,
                         help="zero dimensions appended to the input (default: 0)")
    setting.add_argument("--tol", type=float, default=None,
                         help="rtol = atol of the forward and adjoint solves (default: 1e-3)")
    setting.add_argument("--lr", type=float, default=None,
                         help="Adam's learning rate (default: 1e-2)")
    setting.add_argument("--time-dependent", action="store_true", default=None,
                         help="feed t to the vector field")
    pa.set_defaults(handler=_cmd_pareto, subparser=pa)
