"""``odejac predict --from RUN_DIR --input FILE``: a trained model's predictions as CSV."""
import csv
import io
import sys

from ..integrate import SolverError


def add_predict_command(sub):
    """Register the ``predict`` subcommand on the subparsers ``sub``."""
    p = sub.add_parser(
        "predict", help="predict with a trained run on a CSV or NPZ file",
        description="Predict with the model of a run directory written by train. The input "
        "is a CSV file with a header (the training file's feature columns, found by name; "
        "other columns are ignored; x0, x1, ... for a model trained on an NPZ file or a "
        "built-in data set) or an NPZ file with X. Writes CSV: class (in the "
        "training file's own labels), one probability column per class (p_LABEL), nfe (the "
        "function evaluations of the one forward solve of all rows together, as in "
        "training) and, with --kappa, kappa = κ(J(h(t0))) per row.")
    p.add_argument("--from", dest="run_dir", required=True, metavar="RUN_DIR",
                   help="run directory written by train")
    p.add_argument("--input", required=True, metavar="FILE", help="rows to predict (.csv/.npz)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="CSV file to write (default: standard output)")
    p.add_argument("--kappa", action="store_true",
                   help="add the condition number κ of the field's Jacobian at each input")
    p.set_defaults(handler=_cmd_predict, subparser=p)


def _cmd_predict(parser, args):
    from ..io import write_text
    from ..saved import load, predict_table
    from ..userdata import read_table

    try:
        pipeline = load(args.run_dir)
        prep = pipeline.preprocessing
        X, _, _, _ = read_table(args.input, target=prep.target,
                                feature_names=prep.feature_names, need_labels=False)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    try:
        table = predict_table(pipeline, X, kappa=args.kappa)
    except SolverError as exc:
        print(f"{parser.prog}: prediction failed: {exc}", file=sys.stderr)
        return 1
    text = _to_csv(table, pipeline.classes_)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text(args.output, text)
        print(f"{len(X)} predictions of {args.run_dir} in {args.output}", file=sys.stderr)
    return 0


def _to_csv(table, classes):
    """The CSV text: header, then one row per input (floats in shortest exact form)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    kappa = table["kappa"]
    writer.writerow(["class"] + [f"p_{c}" for c in classes] + ["nfe"]
                    + ([] if kappa is None else ["kappa"]))
    for i, label in enumerate(table["labels"]):
        row = [label.item()] + table["proba"][i].tolist() + [table["nfe"]]
        writer.writerow(row if kappa is None else row + [float(kappa[i])])
    return buffer.getvalue()
