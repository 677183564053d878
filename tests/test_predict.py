"""A trained run, used: odejac.load, the predict command, pickle/joblib, input validation."""
import csv
import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_moons

import odejac
from odejac import NeuralODEClassifier
from odejac.cli import main
from odejac.data import make_moons_data
from odejac.saved import RunError, predict_table
from odejac.train import TrainConfig, train

TINY = dict(epochs=3, batch_size=64, hidden=(8, 8))


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A 3-epoch run trained on a CSV file with string labels, and that file's rows."""
    root = tmp_path_factory.mktemp("run")
    X, y = make_moons(n_samples=120, noise=0.1, random_state=2)
    X = (X * [2.0, 5.0] + [1.0, -3.0]).tolist()  # floats written by repr: read back exactly
    labels = np.array(["cat", "dog"])[y]
    path = root / "pets.csv"
    path.write_text("size,weight,animal\n" + "".join(
        f"{a!r},{b!r},{c}\n" for (a, b), c in zip(X, labels)))
    config = TrainConfig(data=str(path), **TINY)
    state, summary = train(config, str(root / "run"))
    assert summary["status"] == "finished"
    return root, state, np.array(X), labels


def test_load_predicts_like_the_in_memory_model(csv_run):
    root, state, X, _ = csv_run
    pipeline = odejac.load(str(root / "run"))
    assert pipeline.feature_names == ("size", "weight")
    assert list(pipeline.classes_) == ["cat", "dog"]
    inputs = pipeline.preprocessing.scaler.transform(X)
    np.testing.assert_array_equal(pipeline.predict_proba(X), state.model.predict_proba(inputs))
    np.testing.assert_array_equal(pipeline.predict(X),
                                  np.array(["cat", "dog"])[state.model.predict(inputs)])
    assert isinstance(pipeline[-1].model_, odejac.NeuralODE)
    table = predict_table(pipeline, X, kappa=True)
    np.testing.assert_array_equal(table["proba"], pipeline.predict_proba(X))
    assert table["nfe"] == state.model.forward(inputs)[2]
    np.testing.assert_array_equal(table["kappa"], state.model.condition_numbers(inputs))
    twin = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(twin.predict_proba(X), pipeline.predict_proba(X))


def test_cli_predict_writes_labels_probabilities_nfe_and_kappa(csv_run, tmp_path, capsys):
    root, state, X, _ = csv_run
    new = tmp_path / "new.csv"  # columns in another order, plus one the model does not read
    new.write_text("note,weight,size\n" + "".join(
        f"x,{b!r},{a!r}\n" for a, b in X[:7].tolist()))
    out = tmp_path / "pred.csv"
    assert main(["predict", "--from", str(root / "run"), "--input", str(new),
                 "--output", str(out), "--kappa"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["class", "p_cat", "p_dog", "nfe", "kappa"]
    pipeline = odejac.load(str(root / "run"))
    table = predict_table(pipeline, X[:7], kappa=True)
    assert [r["class"] for r in rows] == list(table["labels"])
    got = np.array([[float(r["p_cat"]), float(r["p_dog"])] for r in rows])
    np.testing.assert_array_equal(got, table["proba"])  # written in shortest exact form
    assert {int(r["nfe"]) for r in rows} == {table["nfe"]}
    np.testing.assert_array_equal([float(r["kappa"]) for r in rows], table["kappa"])
    capsys.readouterr()
    assert main(["predict", "--from", str(root / "run"), "--input", str(new)]) == 0
    printed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert printed[0] == ["class", "p_cat", "p_dog", "nfe"] and len(printed) == 8


@pytest.mark.parametrize("case", ["no run", "missing column", "NaN input", "bad format"])
def test_cli_predict_bad_input_one_line_exit_2(csv_run, tmp_path, capsys, case):
    root = csv_run[0]
    bad = tmp_path / "in.csv"
    bad.write_text({"missing column": "size,height\n1,2\n", "NaN input": "size,weight\n1,nan\n"}
                   .get(case, "size,weight\n1,2\n"))
    run = str(tmp_path) if case == "no run" else str(root / "run")
    path = str(tmp_path / "in.txt") if case == "bad format" else str(bad)
    with pytest.raises(SystemExit) as info:
        main(["predict", "--from", run, "--input", path])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert {"no run": "no config.json", "missing column": "no column 'weight'",
            "NaN input": "row 1 (line 2), column 'weight'",
            "bad format": "unknown data format"}[case] in err
    with pytest.raises(RunError):
        odejac.load(str(tmp_path))


def test_cli_train_data_flags(tmp_path, capsys):
    X, y = make_moons(n_samples=80, noise=0.1, random_state=0)
    np.savez(tmp_path / "d.npz", X=X, y=y + 10)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--test-fraction", "0.5",
                 "--epochs", "2", "--hidden", "4", "--quiet", "--out", str(tmp_path / "r")]) == 0
    pipeline = odejac.load(str(tmp_path / "r"))
    assert pipeline.classes_.tolist() == [10, 11] and pipeline.feature_names == ("x0", "x1")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,u\n1,,v\n")
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", str(bad), "--out", str(tmp_path / "b")])
    assert info.value.code == 2
    assert "bad.csv: row 2 (line 3), column 'b' is empty" in capsys.readouterr().err


def test_old_builtin_run_without_preprocess_file_loads(tmp_path):
    config = TrainConfig(n_train=60, n_test=30, **TINY)
    state, _ = train(config, str(tmp_path))
    (tmp_path / "preprocess.json").unlink()
    data = make_moons_data(n_train=60, n_test=30)
    pipeline = odejac.load(str(tmp_path))
    np.testing.assert_array_equal(pipeline.predict(data.X_test), state.model.predict(data.X_test))


# -- the estimator: pickle/joblib, validation by scikit-learn -----------------------------

@pytest.fixture(scope="module")
def fitted():
    data = make_moons_data(n_train=100, n_test=40)
    return NeuralODEClassifier(**TINY).fit(data.X_train, np.array(["a", "b"])[data.y_train]), data


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_estimator_round_trip_predicts_identically(fitted, tmp_path, how):
    clf, data = fitted
    if how == "pickle":
        twin = pickle.loads(pickle.dumps(clf))
    else:
        joblib.dump(clf, tmp_path / "clf.joblib")
        twin = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(twin.predict_proba(data.X_test), clf.predict_proba(data.X_test))
    np.testing.assert_array_equal(twin.predict(data.X_test), clf.predict(data.X_test))


def test_estimator_rejects_nan_labels_and_non_finite_inputs(fitted):
    _, data = fitted
    y = data.y_train.astype(float)
    y[5] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        NeuralODEClassifier(**TINY).fit(data.X_train, y)
    labels = np.array(["a", "b"], dtype=object)[data.y_train]
    labels[3] = None
    with pytest.raises(ValueError, match="cannot be compared"):
        NeuralODEClassifier(**TINY).fit(data.X_train, labels)
    X = data.X_train.copy()
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        NeuralODEClassifier(**TINY).fit(X, data.y_train)
    with pytest.raises(ValueError, match="continuous"):
        NeuralODEClassifier(**TINY).fit(data.X_train, data.X_train[:, 0])


def test_estimator_checks_feature_count(fitted):
    clf, data = fitted
    assert clf.n_features_in_ == 2 and not hasattr(clf, "feature_names_in_")
    with pytest.raises(ValueError, match="X has 3 features, but NeuralODEClassifier is "
                                         "expecting 2"):
        clf.predict(np.hstack([data.X_test, data.X_test[:, :1]]))
    X = data.X_test.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(X)


def test_estimator_records_and_checks_feature_names(fitted):
    pd = pytest.importorskip("pandas")  # data frames are where feature names come from
    _, data = fitted
    frame = pd.DataFrame(data.X_train, columns=["u", "v"])
    clf = NeuralODEClassifier(**TINY).fit(frame, data.y_train)
    assert list(clf.feature_names_in_) == ["u", "v"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(pd.DataFrame(data.X_test, columns=["v", "u"]))
