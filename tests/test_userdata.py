"""Reading the user's own CSV and NPZ files (odejac.userdata): good files and each bad one."""
import numpy as np
import pytest
from sklearn.datasets import make_moons

from odejac.data import Dataset, Preprocessing, load_digits_data
from odejac.train import TrainConfig, load_data
from odejac.userdata import DataFileError, load_dataset, read_table

KINDS = np.array(["iris", "rose"])


def write_csv(path, header, rows):
    lines = [",".join(map(str, row)) + "\n" for row in [header] + list(rows)]
    path.write_text("".join(lines))
    return str(path)


@pytest.fixture
def flowers(tmp_path):
    """60 rows: two numeric features and a string label column (last)."""
    X, y = make_moons(n_samples=60, noise=0.1, random_state=3)
    X = X * [3.0, 10.0] + [5.0, -2.0]  # far from standardised, so scaling is visible
    rows = [[a, b, KINDS[c]] for (a, b), c in zip(X, y)]
    return write_csv(tmp_path / "flowers.csv", ["width", "height", "kind"], rows), X, y


def test_csv_string_labels_split_and_scaler(flowers):
    path, X, y = flowers
    data = load_dataset(path, test_fraction=0.25, seed=7)
    prep = data.preprocessing
    assert prep.feature_names == ("width", "height") and prep.target == "kind"
    assert list(prep.classes) == ["iris", "rose"] and data.n_classes == 2
    assert len(data.X_train) == 45 and len(data.X_test) == 15
    # stratified: each class keeps its share in both parts
    assert sorted(np.bincount(data.y_test).tolist()) == [7, 8]
    # the scaler saw the training part only: those rows have mean 0 and std 1, the test rows not
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, rtol=1e-12)
    assert prep.scaler.n_samples_seen_ == 45
    assert np.abs(data.X_test.mean(axis=0)).max() > 1e-6
    # every stored row is a file row, scaled, with its own label
    raw = prep.scaler.inverse_transform(data.X_test)
    for row, label in zip(raw, data.y_test):
        i = int(np.argmin(np.abs(X - row).sum(axis=1)))
        np.testing.assert_allclose(X[i], row, rtol=1e-12)
        assert label == y[i]
    again = load_dataset(path, test_fraction=0.25, seed=7)
    np.testing.assert_array_equal(again.X_test, data.X_test)
    other = load_dataset(path, test_fraction=0.25, seed=8)
    assert not np.array_equal(other.X_test, data.X_test)


def test_csv_target_column_integer_labels_quotes_and_blank_lines(tmp_path):
    text = 'label,"a, quoted",b\n3,1.5,2\n7, -0.5 ,1e-3\n3,2,2\n7,0,1\n\n'
    (tmp_path / "d.csv").write_text(text)
    X, y, names, target = read_table(str(tmp_path / "d.csv"), target="label")
    assert names == ("a, quoted", "b") and target == "label"
    assert y.dtype == np.int64 and y.tolist() == [3, 7, 3, 7]
    np.testing.assert_array_equal(X, [[1.5, 2], [-0.5, 1e-3], [2, 2], [0, 1]])


def test_npz_and_separate_test_file(tmp_path, flowers):
    path, X, y = flowers
    np.savez(tmp_path / "train.npz", X=X[:40], y=KINDS[y[:40]])
    np.savez(tmp_path / "test.npz", X=X[40:], y=KINDS[y[40:]])
    data = load_dataset(str(tmp_path / "train.npz"), test_data=str(tmp_path / "test.npz"))
    assert data.preprocessing.feature_names == ("x0", "x1")
    assert len(data.X_train) == 40 and len(data.X_test) == 20
    np.testing.assert_array_equal(data.y_test, y[40:])
    np.testing.assert_array_equal(data.X_test, data.preprocessing.scaler.transform(X[40:]))


def test_config_data_fields_and_old_configs(flowers):
    path, _, _ = flowers
    data = load_data(TrainConfig(data=path, test_fraction=0.5))
    assert len(data.X_test) == 30 and data.name == "flowers.csv"
    old = {k: v for k, v in TrainConfig().to_dict().items()
           if k not in ("data", "target", "test_fraction", "test_data")}
    assert TrainConfig.from_dict(old) == TrainConfig()  # runs saved before these fields resume
    with pytest.raises(ValueError, match="test_fraction"):
        TrainConfig(data=path, test_fraction=1.0)
    with pytest.raises(ValueError, match="need data"):
        TrainConfig(target="kind")


def test_digits_standardisation_is_saved_as_its_scaler():
    data = load_digits_data(seed=0)
    raw = load_digits_data(seed=0, standardise=False)
    np.testing.assert_array_equal(data.preprocessing.transform(raw.X_test), data.X_test)
    back = Preprocessing.from_dict(data.preprocessing.to_dict())
    np.testing.assert_array_equal(back.transform(raw.X_train), data.X_train)


GOOD = [["a", "b", "y"], [1, 2, "u"], [2, 3, "v"], [3, 4, "u"], [4, 5, "v"]]

BAD_CSV = {  # name: (file lines or raw text, read_table kwargs, pattern of the message)
    "missing target column": (GOOD, dict(target="label"), r"no column 'label'.*a, b, y"),
    "missing feature column": (GOOD, dict(feature_names=("a", "c"), need_labels=False),
                               r"no column 'c'"),
    "NaN feature": ([GOOD[0], GOOD[1], [2, "nan", "v"]] + GOOD[3:], {},
                    r"row 2 \(line 3\), column 'b' is 'nan'"),
    "empty feature": ([GOOD[0], GOOD[1], GOOD[2], ["", 4, "u"]], {},
                      r"row 3 \(line 4\), column 'a' is empty"),
    "non-numeric feature": (GOOD[:4] + [[4, "five", "v"]], {},
                            r"row 4 \(line 5\), column 'b' is not a number \('five'\)"),
    "ragged row": (GOOD[:2] + [[2, 3]] + GOOD[3:], {},
                   r"row 2 \(line 3\) has 2 fields but the header has 3"),
    "missing label": (GOOD[:3] + [[3, 4, " "]], {}, r"row 3 \(line 4\), column 'y' has no label"),
    "no header": ([[1, 2, 0]] + GOOD[1:], {}, r"line 1 holds numbers"),
    "repeated column": ([["a", "a", "y"]] + GOOD[1:], {}, r"repeated column name \('a'\)"),
    "header only": (GOOD[:1], {}, r"no data rows"),
    "only target": ([["y"], ["u"], ["v"]], {}, r"no features"),
    "empty file": ("", {}, r"empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_names_file_row_and_column(tmp_path, case):
    content, kwargs, pattern = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    if isinstance(content, str):
        path.write_text(content)
    else:
        write_csv(path, content[0], content[1:])
    with pytest.raises(DataFileError, match=pattern) as info:
        read_table(str(path), **kwargs)
    message = str(info.value)
    assert message.startswith(str(path) + ":") and "\n" not in message


def test_bad_datasets(tmp_path):
    single = write_csv(tmp_path / "one.csv", ["a", "y"], [[1, "u"], [2, "u"]])
    with pytest.raises(DataFileError, match=r"one.csv: column 'y' holds a single class \('u'\)"):
        load_dataset(single)
    lonely = write_csv(tmp_path / "lonely.csv", ["a", "y"],
                       [[i, "u"] for i in range(6)] + [[9, "v"]])
    with pytest.raises(DataFileError, match=r"lonely.csv: cannot hold out a stratified"):
        load_dataset(lonely)
    test = write_csv(tmp_path / "test.csv", ["b", "a", "y"], [[0, 1, "u"], [0, 2, "w"]])
    with pytest.raises(DataFileError, match=r"test.csv: row 2, label 'w' is not a class"):
        load_dataset(write_csv(tmp_path / "train.csv", GOOD[0], GOOD[1:]), test_data=test)
    with pytest.raises(DataFileError, match=r"data.txt: unknown data format '.txt'"):
        read_table(str(tmp_path / "data.txt"))
    with pytest.raises(DataFileError, match=r"nothere.csv: no such file"):
        read_table(str(tmp_path / "nothere.csv"))


@pytest.mark.parametrize("case", ["no y", "NaN in X", "NaN in y", "y too short", "X 1-D",
                                  "text X"])
def test_bad_npz(tmp_path, case):
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    arrays, pattern = {
        "no y": (dict(X=X), r"no array 'y' \(has: X\)"),
        "NaN in X": (dict(X=np.where(X == 5, np.nan, X), y=y), r"row 2, column 1 of X is nan"),
        "NaN in y": (dict(X=X, y=np.array([0, 1, np.nan, 1])), r"row 2 of y is nan"),
        "y too short": (dict(X=X, y=y[:3]), r"y has shape \(3,\); expected \(4,\)"),
        "X 1-D": (dict(X=X.ravel(), y=y), r"X has shape \(8,\)"),
        "text X": (dict(X=X.astype(str), y=y), r"features must be numbers"),
    }[case]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFileError, match=pattern) as info:
        read_table(str(tmp_path / "bad.npz"))
    assert str(info.value).startswith(str(tmp_path / "bad.npz") + ":")


def test_dataset_refuses_preprocessing_of_other_shape():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="preprocessing has 3 features and 2 classes"):
        Dataset(X, y, X, y, 2, "d", preprocessing=Preprocessing.identity(3, 2))
    assert Dataset(X, y, X, y, 2, "d").preprocessing.feature_names == ("x0", "x1")
