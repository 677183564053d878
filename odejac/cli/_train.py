"""The library's subcommands: ``train``, ``gradcheck`` and ``trace``."""
import os
import sys
import time

from ._args import config_from_args

def _cmd_train(parser, args):
    from ..train import train

    config = config_from_args(parser, args)
    out = args.out or os.path.join("results", "train", f"{config.reg}-seed{config.seed}")
    print(f"training reg={config.reg} lam={config.lam:g} for {config.epochs} epochs "
          f"on {config.data or config.dataset}; results in {out}", flush=True)
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
    from .. import gradcheck

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
    print(gradcheck._HEADER, gradcheck.RULE, sep="\n", flush=True)
    # The rows are printed as they finish; the footer explains them once at the end.
    results = gradcheck.gradcheck(config, options, epochs=epochs, run_dir=args.run_dir,
                                  progress=lambda line: print(line, flush=True))
    gradcheck.save(results, os.path.join(args.out, "gradcheck.json"), args.figure)
    print(gradcheck.format_footer(results))
    print(f"results in {os.path.join(args.out, 'gradcheck.json')}, figure {args.figure}")
    return 0


def _cmd_trace(parser, args):
    from .. import trace

    config = config_from_args(parser, args)
    if args.run_dir is None:
        print(f"training reg={config.reg} for {config.epochs} epochs (in memory) ...",
              flush=True)
    results = trace.trace(config, run_dir=args.run_dir)
    trace.save(results, os.path.join(args.out, "trace.json"), args.figure)
    print(trace.format_trace(results))
    print(f"\nresults in {os.path.join(args.out, 'trace.json')}, figure {args.figure}")
    return 0


