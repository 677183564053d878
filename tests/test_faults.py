"""Faults caused on purpose (issue #12): kills at random points, corrupted files, two writers.

After each fault, rerunning the same command must give results bit-identical to
an uninterrupted run, or end with ONE line on stderr naming the problem (exit 1
or 2) — never a traceback, never exit 0 with different results. Kills run the
real command line in a subprocess; file faults call :func:`odejac.cli.main`
in-process (the same code path, without a second interpreter start).
"""
import csv
import hashlib
import io
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from odejac.cli import main as _cli_main

ROOT = pathlib.Path(__file__).resolve().parents[1]
INTERRUPTED = "interrupted; run the same command to resume"
TRAIN = ["train", "--epochs", "30", "--n-train", "200", "--n-test", "100", "--quiet"]
SWEEP = ["sweep", "--quick", "--regs", "frobenius", "--lams", "1e-3", "--seeds", "1",
         "--epochs", "6", "--no-plots", "--jobs", "1"]
EXPERIMENTS = ["experiments", "--quick", "--seeds", "1", "--epochs", "2", "--no-plots",
               "--jobs", "1"]
#: Timing fields: the only ones allowed to differ between two runs.
_TIMES = {"time", "wall_seconds", "epoch_seconds_total", "seconds"}


def main(argv):
    """The command line in-process; its exit status (argparse's exits included)."""
    try:
        return _cli_main(argv)
    except SystemExit as exc:
        return exc.code


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _start(args, out):
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _run(args, out):
    proc = _start(args, out)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _file_prints(out):
    """``{relative path: digest}`` of everything a run directory (or a study's runs) says,
    timings left out."""
    prints = {}
    for path in sorted(pathlib.Path(out).rglob("*")):
        rel = str(path.relative_to(out))
        if path.name.startswith(".tmp-"):   # a write cut short by SIGKILL: never read
            continue
        digest = hashlib.sha256()
        if path.name in ("params.npz", "regions.npz"):
            arrays = np.load(path)
            for key in sorted(arrays.files):
                digest.update(f"{rel}:{key}".encode() + arrays[key].tobytes())
        elif path.suffix == ".json" and path.name not in ("study.json",):
            digest.update(rel.encode() + json.dumps(_strip(json.loads(path.read_text())),
                                                    sort_keys=True).encode())
        elif path.suffix == ".csv":   # timing columns left out
            rows = list(csv.reader(io.StringIO(path.read_text())))
            keep = [i for i, head in enumerate(rows[0]) if head not in _TIMES]
            digest.update(rel.encode() + repr([[r[i] for i in keep] for r in rows]).encode())
        elif path.suffix == ".md":
            digest.update(rel.encode() + path.read_bytes())
        else:
            continue
        prints[rel] = digest.hexdigest()
    return prints


def _fingerprint(out):
    """One digest of :func:`_file_prints`."""
    return hashlib.sha256(repr(sorted(_file_prints(out).items())).encode()).hexdigest()


def _differing(out, reference_prints):
    """Files of ``out`` that differ from (or are missing against) the reference."""
    prints = _file_prints(out)
    return sorted(rel for rel in set(prints) | set(reference_prints)
                  if prints.get(rel) != reference_prints.get(rel))


def _one_line_error(stderr, status, expected_status):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert status == expected_status, stderr
    assert "Traceback" not in stderr, stderr
    assert lines and "error:" in lines[-1], stderr
    return lines[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs of the three commands, made in-process once: ``(root,
    {command: fingerprint}, {command: {file: digest}})``."""
    root = tmp_path_factory.mktemp("reference")
    prints, files = {}, {}
    for name, args in (("train", TRAIN), ("sweep", SWEEP), ("experiments", EXPERIMENTS)):
        assert main([*args, "--out", str(root / name)]) == 0
        prints[name] = _fingerprint(root / name)
        files[name] = _file_prints(root / name)
    return root, prints, files


def _kill_chain(args, out, delays, signals):
    """Start ``args`` again and again, killing each after ``delay`` with ``signal``;
    returns each process's exit status and the last line it printed (where it stopped)."""
    outcomes = []
    for delay, sig in zip(delays, signals):
        proc = _start(args, out)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        assert "Traceback" not in stderr, stderr
        if sig == signal.SIGINT:
            # -SIGINT: the signal landed during interpreter shutdown, after the command had
            # finished (Python restores the default handler then); nothing is left to lose.
            assert proc.returncode in (0, 130, -signal.SIGINT), stderr
            if proc.returncode == -signal.SIGINT:
                assert "error" not in stderr, stderr
            if proc.returncode == 130:
                assert stderr.strip().splitlines()[-1].endswith(INTERRUPTED), stderr
        else:
            assert proc.returncode in (0, -signal.SIGKILL), stderr
        lines = stderr.strip().splitlines()
        outcomes.append((proc.returncode, lines[-1] if lines else ""))
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("name,args,n_kills,span", [
    ("train", TRAIN, 8, 4.0), ("sweep", SWEEP, 6, 5.0), ("experiments", EXPERIMENTS, 6, 8.0)])
def test_kills_at_random_points_resume_bit_identically(tmp_path, reference, name, args,
                                                       n_kills, span):
    """SIGKILL and SIGINT alternately at random moments (imports, training inside the
    jitted solver, evaluation, writes); the last rerun matches the uninterrupted run."""
    rng = random.Random(f"faults-{name}")
    delays = [rng.uniform(0.3, span) for _ in range(n_kills)]
    signals = [signal.SIGKILL if i % 2 else signal.SIGINT for i in range(n_kills)]
    out = tmp_path / name
    outcomes = _kill_chain(args, out, delays, signals)
    status, stderr = _run(args, out)
    assert status == 0, stderr
    differing = _differing(out, reference[2][name])
    assert not differing, (f"files differing from the uninterrupted run: {differing}; "
                           f"kills (delay, signal, status, last line): "
                           f"{list(zip(delays, signals, *zip(*outcomes)))}")


@pytest.mark.slow
def test_no_resume_killed_midway_never_leaves_a_mixed_run(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference[0] / "train", out)
    proc = _start([*TRAIN, "--no-resume"], out)
    time.sleep(2.5)
    proc.kill()
    proc.communicate(timeout=60)
    assert _run(TRAIN, out)[0] == 0
    assert _fingerprint(out) == reference[1]["train"]
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == list(range(1, 31))


@pytest.mark.slow
@pytest.mark.parametrize("args", [TRAIN, SWEEP], ids=["train", "sweep"])
def test_two_writers_at_once(tmp_path, reference, args):
    """Two commands on one directory: the second is refused with one line (or finds the
    first one's finished results); either way the results are the uninterrupted ones."""
    name = args[0]
    out = tmp_path / name
    first, second = _start(args, out), _start(args, out)
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    for status, stderr in results:
        assert "Traceback" not in stderr
        if status != 0:
            assert _one_line_error(stderr, status, 1).endswith("then run again")
    assert any(status == 0 for status, _ in results)
    assert _run(args, out)[0] == 0
    assert _fingerprint(out) == reference[1][name]


@pytest.mark.slow
def test_loky_workers_exit_with_their_parent(tmp_path):
    with open(tmp_path / "log", "w") as log:   # files, not pipes: orphans may hold them
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *SWEEP[:-1], "2",
                                 "--seeds", "2", "--out", str(tmp_path / "s")],
                                stdout=log, stderr=log, env=_env())
    children = set()
    deadline = time.time() + 60
    while time.time() < deadline and len(children) < 3:   # 2 workers + loky's tracker
        time.sleep(0.2)
        try:
            text = pathlib.Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        except OSError:
            break
        children = {int(pid) for pid in text.split()}
    assert children, "no worker processes started"
    proc.kill()
    proc.wait(timeout=60)
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{c}") and
                                         "Z" not in _proc_state(c) for c in children):
        time.sleep(0.2)
    alive = [c for c in children if os.path.exists(f"/proc/{c}") and "Z" not in _proc_state(c)]
    assert not alive, f"workers {alive} outlived their parent"


def _proc_state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


# -- corrupted files -------------------------------------------------------------------

def _corrupt(path, how):
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    elif how == "garbage":
        path.write_bytes(os.urandom(64))
    elif how == "wrong_type":
        if path.suffix == ".json":
            path.write_text(json.dumps({"history.json": {"epoch": 1}}.get(path.name, [1, 2])))
        else:
            np.savez(path, theta=np.zeros(3))   # an archive with the wrong arrays


WAYS = ("missing", "empty", "truncated", "garbage", "wrong_type")
RUN_FILES = ("state.npz", "config.json", "history.json", "summary.json", "params.npz")


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize("name", RUN_FILES)
def test_corrupted_run_file(tmp_path, reference, capsys, name, how):
    """Derived files are rebuilt (same results); the state file gives one line naming it."""
    out = tmp_path / "run"
    shutil.copytree(reference[0] / "train", out)
    _corrupt(out / name, how)
    capsys.readouterr()
    status = main([*TRAIN, "--out", str(out)])
    stderr = capsys.readouterr().err
    if status == 0:
        assert _fingerprint(out) == reference[1]["train"], (name, how)
    else:
        assert name == "state.npz" and how != "missing", (name, how, stderr)
        assert str(out / name) in _one_line_error(stderr, status, 2)


@pytest.mark.parametrize("how", WAYS[1:])
def test_no_resume_replaces_an_unusable_state(tmp_path, reference, how):
    out = tmp_path / "run"
    shutil.copytree(reference[0] / "train", out)
    _corrupt(out / "state.npz", how)
    assert main([*TRAIN, "--no-resume", "--out", str(out)]) == 0
    assert _fingerprint(out) == reference[1]["train"]


@pytest.mark.parametrize("how", WAYS[1:])
@pytest.mark.parametrize("name", ("study.json", "data.npz", "robustness.json", "state.npz",
                                  "history.json"))
def test_corrupted_study_file_then_plot(tmp_path, reference, capsys, name, how):
    """``plot --from`` after corrupting a study's file: same figures' inputs or one line."""
    out = tmp_path / "study"
    shutil.copytree(reference[0] / "experiments", out)
    target = out / name if name in ("study.json", "data.npz") else \
        next(out.glob(f"runs/condition/seed-00/{name}"))
    _corrupt(target, how)
    capsys.readouterr()
    status = main(["plot", "--from", str(out)])
    stderr = capsys.readouterr().err
    if name == "history.json":      # derived: the figures read the state
        assert status == 0, stderr
    else:
        assert str(target) in _one_line_error(stderr, status, 2), stderr


def test_rerun_over_corrupted_study_state_names_the_file(tmp_path, reference, capsys):
    out = tmp_path / "sweep"
    shutil.copytree(reference[0] / "sweep", out)
    target = next(out.glob("runs/*/seed-00/state.npz"))
    _corrupt(target, "truncated")
    before = _fingerprint(out)
    status = main([*SWEEP, "--out", str(out)])
    assert str(target) in _one_line_error(capsys.readouterr().err, status, 2)
    assert _fingerprint(out) == before


# -- refused commands write nothing ----------------------------------------------------

def _snapshot(out):
    return {str(p): p.read_bytes() for p in sorted(pathlib.Path(out).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra,status", [
    (["--epochs", "3"], 2),                       # another config in the same directory
    (["--backend", "dask"], 2),                   # no scheduler given
    (["--jobs", "0"], 2),
])
def test_refused_study_leaves_the_directory_as_it_was(tmp_path, reference, capsys, extra,
                                                      status):
    out = tmp_path / "study"
    shutil.copytree(reference[0] / "experiments", out)
    before = _snapshot(out)
    args = [a for a in EXPERIMENTS if a not in ("--epochs", "2")] if "--epochs" in extra \
        else EXPERIMENTS
    code = main([*args, *extra, "--out", str(out)])
    _one_line_error(capsys.readouterr().err, code, status)
    assert _snapshot(out) == before


def test_search_too_fine_is_refused_before_any_work(tmp_path, capsys):
    code = main([*EXPERIMENTS, "--max-radius", "1e300", "--radius-step", "1e-300",
                 "--out", str(tmp_path / "s")])
    assert "radii" in _one_line_error(capsys.readouterr().err, code, 2)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("lams", [["nan"], ["-1"], ["inf"], ["0"]])
def test_sweep_refuses_bad_lambdas(tmp_path, capsys, lams):
    assert main(["sweep", "--quick", "--lams", *lams, "--out", str(tmp_path / "s")]) == 2
    assert "--lams" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_text("x"), "not a directory"),
    (lambda p: None, "too long"),
])
def test_bad_out_paths(tmp_path, capsys, make, match):
    out = tmp_path / "f"
    make(out)
    if match == "too long":
        out = tmp_path / ("x" * 300)
    code = main([*TRAIN, "--out", str(out)])
    assert match in _one_line_error(capsys.readouterr().err, code, 2)


def test_unwritable_out(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    code = main([*TRAIN, "--out", str(locked / "run")])
    assert "not writable" in _one_line_error(capsys.readouterr().err, code, 2)


def test_gradcheck_from_a_missing_run(tmp_path, capsys):
    code = main(["gradcheck", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert "nothing" in _one_line_error(capsys.readouterr().err, code, 2)


def test_huge_sizes_are_one_line(tmp_path, capsys):
    code = main([*TRAIN, "--hidden", "200000", "200000", "--out", str(tmp_path / "h")])
    assert "memory" in _one_line_error(capsys.readouterr().err, code, 1)
    assert not (tmp_path / "h").exists()
