"""The incremental history encoding of a commit gives the bytes of encoding it whole."""
import json

import numpy as np

from odejac import runstate
from odejac.io import read_json


def _records(n):
    rng = np.random.default_rng(0)
    out = []
    for epoch in range(1, n + 1):
        out.append({"epoch": epoch, "loss": float(rng.random()), "nfe_forward": 26.5,
                    "kappa": np.float64(rng.random() * 100), "clipped": np.int64(epoch % 3),
                    "lam": 0.0, "nested": {"a": [1.0, float("nan"), float("inf")], "b": []},
                    "time": float("-inf") if epoch == 2 else 0.01})
    return out


def test_texts_equal_whole_encodings_as_the_history_grows_and_changes():
    encoded, history = runstate._EncodedHistory(), []
    for n in range(5):
        compact, indented = encoded.texts(history)
        assert compact == str(runstate._json_array(history))
        assert indented == json.dumps(runstate._to_jsonable(history), indent=2, allow_nan=False)
        history.append(_records(n + 1)[-1])
    replaced = _records(3)             # a resume loads another list: encoded afresh
    assert encoded.texts(replaced)[0] == str(runstate._json_array(replaced))
    shorter = replaced[:2]
    assert encoded.texts(shorter)[1] == json.dumps(runstate._to_jsonable(shorter), indent=2)


def test_committed_history_files_read_back(tmp_path):
    from odejac.train import TrainConfig, new_state
    config = TrainConfig(epochs=3)
    state = new_state(config, 2, 2)
    for record in _records(3):
        state.history.append(record)
        runstate.commit(str(tmp_path), state, config)
        saved = runstate.read_state(str(tmp_path))
        assert [r["epoch"] for r in saved["history"]] == list(range(1, record["epoch"] + 1))
        assert read_json(str(tmp_path / "history.json"))[-1]["epoch"] == record["epoch"]
        text = (tmp_path / "history.json").read_text()
        assert text == json.dumps(runstate._to_jsonable(state.history), indent=2) + "\n"
