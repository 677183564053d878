"""The user's own data: a CSV file (header row) or an NPZ file (arrays ``X``, ``y``).

:func:`load_dataset` turns one file (or a training and a test file) into a
:class:`~odejac.data.Dataset` ready for training: labels of any kind mapped to class indices
``0 … C-1`` (``np.unique`` order), a stratified, seeded held-out split
(``sklearn.model_selection.train_test_split``) unless a test file is given, and a
``StandardScaler`` fitted on the training part only. The mapping and the scaler travel with
the dataset as its :class:`~odejac.data.Preprocessing`, which a run saves next to its model.

A file that cannot be used raises :class:`DataFileError`, whose one-line message names the
file and, where there is one, the row and the column: rows of a CSV file are counted from 1
after the header (the file's line number is given too); rows and columns of an NPZ file's
``X`` are array indices from 0.
"""
import csv
import os

import numpy as np

from .data import Dataset, Preprocessing

FORMATS = (".csv", ".npz")
"""File name endings understood (case-insensitive)."""

_MISSING_LABELS = ("", "nan", "na", "n/a", "null", "none")
"""Label cells (lower-cased, stripped) that mean "no label" rather than a class."""


class DataFileError(ValueError):
    """A data file that cannot be used; the message names the file, row and column."""


def _format(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataFileError(f"{path}: unknown data format {ext or '(no extension)'!r}; "
                            f"use a .csv file with a header row or a .npz file with X and y")
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: no such file")
    return ext


# -- CSV ----------------------------------------------------------------------------------

def _read_csv_cells(path):
    """``(header, cells (N, K) str, lines (N,))`` with ragged rows and a missing header refused."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = None
        rows, lines = [], []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (e.g. a trailing one) carry nothing
            if header is None:
                header = [cell.strip() for cell in row]
                continue
            if len(row) != len(header):
                raise DataFileError(
                    f"{path}: row {len(rows) + 1} (line {reader.line_num}) has {len(row)} "
                    f"fields but the header has {len(header)}")
            rows.append(row)
            lines.append(reader.line_num)
    if header is None:
        raise DataFileError(f"{path}: the file is empty")
    if all(_is_number(name) for name in header):
        raise DataFileError(f"{path}: line 1 holds numbers, not column names; the first row "
                            f"of a CSV file must be a header")
    names, counts = np.unique(header, return_counts=True)
    if counts.max() > 1 or "" in header:
        bad = "''" if "" in header else repr(str(names[counts > 1][0]))
        raise DataFileError(f"{path}: the header has an empty or repeated column name ({bad})")
    if not rows:
        raise DataFileError(f"{path}: the file has a header but no data rows")
    return header, np.array(rows, dtype=str), np.array(lines)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column(path, header, name, role):
    if name not in header:
        raise DataFileError(f"{path}: no column {name!r} ({role}); the columns are "
                            f"{', '.join(header)}")
    return header.index(name)


def _csv_floats(path, cells, names, lines):
    """The feature cells as float64 ``(N, d)``; the first bad cell named on failure."""
    try:
        X = cells.astype(np.float64)
    except ValueError:
        X = None
    if X is None:  # find the first cell numpy refused, for the message
        for i, j in np.ndindex(cells.shape):
            if not _is_number(cells[i, j]):
                cell = str(cells[i, j])
                what = f"is not a number ({cell!r})" if cell.strip() else "is empty"
                raise DataFileError(f"{path}: row {i + 1} (line {lines[i]}), column "
                                    f"{names[j]!r} {what}")
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = bad[0]
        raise DataFileError(f"{path}: row {i + 1} (line {lines[i]}), column {names[j]!r} is "
                            f"{str(cells[i, j]).strip()!r}; features must be finite numbers "
                            f"({len(bad)} such cells)")
    return X


def _csv_labels(path, cells, name, lines):
    """Label cells as int64 if every one is an integer, else as stripped strings."""
    labels = np.char.strip(cells)
    missing = np.isin(np.char.lower(labels), _MISSING_LABELS)
    if missing.any():
        i = int(np.argmax(missing))
        raise DataFileError(f"{path}: row {i + 1} (line {lines[i]}), column {name!r} has no "
                            f"label ({str(cells[i])!r}; {int(missing.sum())} such rows)")
    try:
        return labels.astype(np.int64)
    except (ValueError, OverflowError):
        return labels


def _read_csv(path, target, feature_names, need_labels):
    header, cells, lines = _read_csv_cells(path)
    if feature_names is None:  # training: every column but the target is a feature
        target = header[-1] if target is None else target
        t = _column(path, header, target, "the target, --target")
        names = tuple(name for name in header if name != target)
        if not names:
            raise DataFileError(f"{path}: only the target column {target!r}; no features")
    else:
        names = tuple(feature_names)
        t = None if target is None or target not in header else header.index(target)
        if need_labels and t is None:
            _column(path, header, target, "the target")
    cols = [_column(path, header, name, "a feature of the trained model") for name in names]
    X = _csv_floats(path, cells[:, cols], names, lines)
    y = None if t is None or not need_labels else _csv_labels(path, cells[:, t], target, lines)
    return X, y, names, target


# -- NPZ ----------------------------------------------------------------------------------

def _read_npz(path, n_features, need_labels):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path}: not a readable .npz file ({exc})") from None
    wanted = ("X", "y") if need_labels else ("X",)
    for key in wanted:
        if key not in arrays:
            raise DataFileError(f"{path}: no array {key!r} (has: {', '.join(arrays) or 'none'})")
    X = arrays["X"]
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataFileError(f"{path}: X has shape {X.shape}; expected (rows, features)")
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: X holds {X.dtype} values; features must be numbers")
    if n_features is not None and X.shape[1] != n_features:
        raise DataFileError(f"{path}: X has {X.shape[1]} columns; the model reads {n_features}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise DataFileError(f"{path}: row {bad[0, 0]}, column {bad[0, 1]} of X is "
                            f"{X[tuple(bad[0])]}; features must be finite ({len(bad)} such)")
    if not need_labels:
        return X, None
    y = arrays["y"]
    if y.shape != (X.shape[0],):
        raise DataFileError(f"{path}: y has shape {y.shape}; expected ({X.shape[0]},), one "
                            f"label per row of X")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        i = int(np.argmax(~np.isfinite(y)))
        raise DataFileError(f"{path}: row {i} of y is {y[i]}, not a label")
    if y.dtype.kind not in "biufU":
        raise DataFileError(f"{path}: y holds {y.dtype} values; labels must be numbers or text")
    return X, y


# -- public -------------------------------------------------------------------------------

def read_table(path, *, target=None, feature_names=None, need_labels=True):
    """Raw features and labels of one data file.

    Parameters
    ----------
    path : str
        ``.csv`` (header row; one column per feature plus the label column) or ``.npz``
        (``X (N, d)``, ``y (N,)``).
    target : str, optional
        The label column of a CSV file (default: the last column).
    feature_names : sequence of str, optional
        Read these columns, in this order (a trained model's inputs; other columns are
        ignored). Default: every column but the target.
    need_labels : bool
        False for inputs to predict on: no label column is needed.

    Returns
    -------
    X : ndarray, shape (N, d)
        float64, finite.
    y : ndarray, shape (N,), or None
        The labels as written (int64 or str).
    feature_names : tuple of str
        ``x0 … x{d-1}`` for an NPZ file.
    target : str or None

    Raises
    ------
    DataFileError
        One line naming the file, row and column of the first problem.
    """
    if _format(path) == ".csv":
        return _read_csv(path, target, feature_names, need_labels)
    width = None if feature_names is None else len(feature_names)
    X, y = _read_npz(path, width, need_labels)
    names = tuple(feature_names) if feature_names is not None else \
        tuple(f"x{j}" for j in range(X.shape[1]))
    return X, y, names, None


def load_dataset(path, *, target=None, test_fraction=0.25, test_data=None, seed=0):
    """A :class:`~odejac.data.Dataset` from the user's file(s), standardised on its train part.

    Parameters
    ----------
    path : str
        The training file (see :func:`read_table`).
    target : str, optional
        Label column of CSV files (default: the last column).
    test_fraction : float
        Held-out fraction in (0, 1), split stratified by class with ``random_state=seed``;
        unused when ``test_data`` is given.
    test_data : str, optional
        A test file with the same feature columns (by name, for CSV) and known labels.
    seed : int
        Seed of the split.

    Returns
    -------
    Dataset
        ``name`` is the file's base name; ``preprocessing`` holds the feature names, the
        class labels (``classes[i]`` for index ``i``) and the fitted ``StandardScaler``.
    """
    X, labels, names, target = read_table(path, target=target)
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        where = f"column {target!r}" if target is not None else "y"
        raise DataFileError(f"{path}: {where} holds a single class ({classes[0].item()!r}); a "
                            f"classifier needs at least two")
    # sklearn is imported here, not at the top: `cli.py train` on the built-in data never
    # needs it, and importing it (with scipy.stats) costs ~0.7 s of start-up (issue #11).
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    if test_data:
        X_te, labels_te, _, _ = read_table(test_data, target=target, feature_names=names)
        known = np.isin(labels_te, classes) if labels_te.dtype.kind == labels.dtype.kind \
            else np.zeros(len(labels_te), dtype=bool)
        if not known.all():
            i = int(np.argmin(known))
            raise DataFileError(f"{test_data}: row {i + 1}, label {labels_te[i].item()!r} is "
                                f"not a class of the training file {path}")
        X_tr, y_tr, y_te = X, y, np.searchsorted(classes, labels_te)
    else:
        try:
            X_tr, X_te, y_tr, y_te = train_test_split(
                X, y, test_size=test_fraction, stratify=y, random_state=seed)
        except ValueError as exc:
            raise DataFileError(f"{path}: cannot hold out a stratified test fraction of "
                                f"{test_fraction} ({exc})") from None
    scaler = StandardScaler().fit(X_tr)
    prep = Preprocessing(names, classes, scaler, target, os.path.abspath(path))
    return Dataset(scaler.transform(X_tr), y_tr, scaler.transform(X_te), y_te,
                   n_classes=len(classes), name=os.path.basename(path), preprocessing=prep)
