"""odejac command line: train, predict, run the study, sweep λ, plot, check gradients, trace,
and the teaching pictures (adjoint-picture, work-precision).

    odejac train --reg condition --lam 1e-3      # or: python -m odejac, python cli.py
    odejac train --data my.csv --out run         # your own data (header row; label last)
    odejac predict --from run --input new.csv    # class, probabilities, NFE as CSV
    odejac experiments                           # every table and figure of the study
    odejac --help

Every failure is one line on stderr, never a traceback: bad options or unusable
input files exit with status 2, a failed run with 1, Ctrl-C with 130 ("interrupted;
run the same command to resume"; what was committed stays on disk).
"""
import os
import signal
import sys
import threading

from .._threads import blas_threads
from ._args import Parser, add_config_arguments, add_output_arguments
from ._landscape import _add_landscape_command
from ._pareto import _add_pareto_command
from ._predict import add_predict_command
from ._study import _add_study_commands
from ._teach import _add_teach_commands
from ._train import _cmd_gradcheck, _cmd_trace, _cmd_train, _epochs_flag


def _prog():
    """``python cli.py`` from a clone, ``odejac`` for the console script and ``-m``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "cli.py" if name == "cli.py" else "odejac"


def build_parser():
    parser = Parser(
        prog=_prog(), description="odejac: neural ODEs, adjoint gradients and Jacobian "
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
    add_output_arguments(gc, "gradcheck")
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
    add_output_arguments(tr, "trace")
    tr.set_defaults(handler=_cmd_trace, subparser=tr)
    add_predict_command(sub)
    _add_study_commands(sub)
    _add_landscape_command(sub)
    _add_pareto_command(sub)
    _add_teach_commands(sub)
    return parser


#: Exit status of a command ended by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _one_line(exc):
    """``(exit status, message)`` of an exception that ends a command."""
    from ..io import DirectoryLockedError

    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                        PermissionError)) and exc.filename:
        return 2, f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return 1, f"{exc.strerror or exc}{where}"
    if isinstance(exc, MemoryError):
        return 1, "out of memory (are the sizes, e.g. --hidden or --n-train, too large?)"
    if isinstance(exc, OverflowError):
        return 2, f"a setting is out of range ({exc}); use smaller values"
    if isinstance(exc, ValueError):
        return 2, str(exc)
    if isinstance(exc, DirectoryLockedError):
        return 1, str(exc)
    if isinstance(exc, RuntimeError):
        return 1, str(exc)
    return 1, f"internal error: {type(exc).__name__}: {exc} (set ODEJAC_DEBUG=1 for the traceback)"


def main(argv=None):
    """Run one command; returns its exit status (see the module notes)."""
    from .. import _interrupt
    from ..io import check_out_dir

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        threads = blas_threads()
    except ValueError as exc:  # a bad ODEJAC_BLAS_THREADS
        parser.error(str(exc))
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if in_main else None
    if in_main:
        _interrupt.install()
    try:
        if getattr(args, "out", None):
            check_out_dir(args.out)
        with threads:  # odejac's tiny matrix products run fastest on one BLAS thread
            return args.handler(args.subparser, args)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: B902 -- every way out is one line
        if isinstance(exc, KeyboardInterrupt) or _interrupt.requested():
            print(f"{parser.prog}: interrupted; run the same command to resume",
                  file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        if os.environ.get("ODEJAC_DEBUG"):
            raise
        status, message = _one_line(exc)
        print(f"{parser.prog} {args.command}: error: {' '.join(str(message).split())}",
              file=sys.stderr, flush=True)
        return status
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
