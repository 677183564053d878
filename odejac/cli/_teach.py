"""Teaching subcommands: ``adjoint-picture`` and ``work-precision`` (``docs/adjoint.md``,
``docs/dormand_prince.md``). Results are saved as JSON; the figures are drawn from the saved
files."""
import os

from ._args import add_config_arguments, add_output_arguments
from ._train import _config_with_epochs, _epochs_flag


def _cmd_adjoint_picture(parser, args):
    from .. import adjoint_picture, gradcheck

    config, epochs = _config_with_epochs(parser, args)
    source = args.run_dir or (f"{epochs} epochs of training" if epochs else "untrained model")
    print(f"adjoint solve of the {source} ({config.dataset}, reg={config.reg}) ...", flush=True)
    config, data, model, _ = gradcheck.prepare(config, epochs, args.run_dir)
    n = min(args.batch, len(data.X_train))
    results = adjoint_picture.record(model, data.X_train[:n], data.y_train[:n])
    results.update(config=config.to_dict(), run_dir=args.run_dir, epochs_trained=epochs)
    json_path = os.path.join(args.out, "adjoint_picture.json")
    adjoint_picture.save(results, json_path, args.figure)
    print(f"NFE forward {results['nfe_forward']} (fast path {results['nfe_forward_fast']}), "
          f"backward {results['nfe_backward']} (fast path {results['nfe_backward_fast']})")
    print(f"reconstruction error max|h̃(t0) − h(t0)| = {results['reconstruction_error']:.2e} "
          f"(fast path {results['reconstruction_error_fast']:.2e})")
    print(f"results in {json_path}, figure {args.figure}")
    return 0


def _cmd_work_precision(parser, args):
    from .. import work_precision

    if not all(t > 0 for t in args.tols):
        parser.error(f"--tols must be positive; got {args.tols}")
    results = work_precision.run(args.tols)
    json_path = os.path.join(args.out, "work_precision.json")
    work_precision.save(results, json_path, args.figure)
    print(work_precision.format_table(results))
    print(f"results in {json_path}, figure {args.figure}")
    return 0


def _add_teach_commands(sub):
    """Register ``adjoint-picture`` and ``work-precision`` on the subparsers ``sub``."""
    ap = sub.add_parser(
        "adjoint-picture", help="draw h(t), the retraced h̃(t), a(t) and g(t) of one adjoint solve",
        description="Solve forwards and backwards once with the plain-NumPy reference solver "
        "(same steps as the fast path) and draw the forward h(t), the retraced h̃(t), the "
        "reconstruction error, the adjoint a(t) and the parameter integral g(t), the adjoint "
        "panels with time running right to left. See docs/adjoint.md.")
    add_config_arguments(ap)
    _epochs_flag(ap, 20, "train this many epochs first (in memory); 0 draws the untrained model")
    ap.add_argument("--from", dest="run_dir", default=None, metavar="RUN_DIR",
                    help="draw the trained model of a run directory written by train")
    ap.add_argument("--batch", type=int, default=32,
                    help="training points in the batch (default: 32)")
    add_output_arguments(ap, "adjoint_picture")
    ap.set_defaults(handler=_cmd_adjoint_picture, subparser=ap)

    wp = sub.add_parser(
        "work-precision", help="error against NFE for the SciPy, torchdiffeq and PI controllers",
        description="Solve Arenstorf's orbit and a linear oscillator at a range of tolerances "
        "with each step-size controller and plot the error reached against the NFE paid. See "
        "docs/dormand_prince.md.")
    wp.add_argument("--tols", type=float, nargs="+", metavar="TOL",
                    default=[10.0 ** -k for k in range(3, 12)],
                    help="tolerances rtol = atol (default: 1e-3 ... 1e-11)")
    add_output_arguments(wp, "work_precision")
    wp.set_defaults(handler=_cmd_work_precision, subparser=wp)
