"""The ``landscape`` subcommand: where C1 holds over a grid of settings (odejac.study)."""
import os

from ._study import _add_runner_options, _run_study


def _cmd_landscape(parser, args):
    from ..study import landscape

    try:
        grid = landscape.make_landscape(seeds=args.seeds, first_seed=args.first_seed,
                                        quick=args.quick, epochs=args.epochs)
    except ValueError as exc:
        parser.error(str(exc))
    study = next(iter(grid.values()))
    header = (f"{sum(len(s.runs()) for s in grid.values())} runs ({len(grid)} settings × "
              f"{len(study.arms)} arms × {len(study.seeds)} seeds, {study.base.epochs} epochs)")
    return _run_study(parser, args, landscape.run_landscape, grid, header=header)


def _add_landscape_command(sub):
    """``landscape``: none, condition and robust over D, tolerance, field and lr."""
    from ..study.landscape import LANDSCAPE_SEEDS

    la = sub.add_parser(
        "landscape", help="where C1 holds: none, condition and robust over a grid of settings",
        description="Train none, condition (λ = 1e-3) and robust over D in {2, 4}, tolerance "
        "in {1e-3, 1e-5}, autonomous or time-dependent field and lr in {1e-2, 1e-3}; write "
        "landscape.{csv,md,json} and fig_landscape.png with C1's verdict per setting. See "
        "docs/study.md.")
    _add_runner_options(la, os.path.join("results", "landscape"), LANDSCAPE_SEEDS,
                        dataset=False)
    la.set_defaults(handler=_cmd_landscape, subparser=la)
