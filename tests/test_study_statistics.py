"""The study's statistics on fixtures where the wrong statistic gives a different number.

Table 1 (:mod:`odejac.study.tables`) and the claims (:mod:`odejac.study.claims`) are checked
on skewed, unequal-sized samples, so that a mean cannot pass for a median, Student's t for
Welch's, raw κ for log κ, and ``>`` for ``≥`` at the "kept accuracy" threshold.
"""
import math
import statistics

import numpy as np
import pytest
from scipy import stats

from odejac.study import claims, tables
from odejac.train import evaluate

# Skewed per-seed values of one arm (one outlier each): mean ≠ median in every column.
NFE = [26, 27, 27, 28, 61]
ACC = [0.995, 0.996, 0.997, 0.98, 0.62]
KAPPA = [3.0, 3.5, 4.0, 5.0, 400.0]
MARGIN = [0.30, 0.31, 0.32, 0.33, 0.90]


def _record(arm, seed, acc, nfe, kappa, *, reg=None, status="finished", margin=None):
    summary = {"status": status, "test_accuracy": acc, "nfe": nfe, "kappa_mean": kappa,
               "kappa_median": kappa}
    robustness = None if margin is None else {
        "margin": {"median": margin}, "noise": {"stds": [0.0, 0.1], "accuracy": [acc, acc]}}
    return dict(arm=arm, reg=reg or arm, lam=0.1, lam_warmup=0, ours=False, seed=seed, dir="",
                summary=summary, history=[{"nfe_forward": nfe}, {"nfe_forward": nfe}],
                robustness=robustness)


def _skewed_arm(arm="none"):
    return [_record(arm, s, a, n, k, margin=m)
            for s, (a, n, k, m) in enumerate(zip(ACC, NFE, KAPPA, MARGIN))]


# -- Table 1 -------------------------------------------------------------------------------------

def test_table1_aggregates_are_means_stds_and_the_kappa_median():
    records = _skewed_arm() + [_record("none", 9, 0.5, 99, 1e4, status="diverged")]
    (row,) = tables.table1_rows(records)
    expected = {
        "nfe_mean": statistics.fmean(NFE), "nfe_std": statistics.stdev(NFE),
        "test_accuracy_mean": statistics.fmean(ACC), "test_accuracy_std": statistics.stdev(ACC),
        "kappa_mean_mean": statistics.fmean(KAPPA), "kappa_mean_std": statistics.stdev(KAPPA),
        "kappa_mean_median": statistics.median(KAPPA),
        "margin_median_mean": statistics.fmean(MARGIN),
    }
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-12), key
    # the fixture can tell the statistics apart
    for values in (NFE, ACC, KAPPA, MARGIN):
        assert abs(statistics.fmean(values) - statistics.median(values)) > 0.01


def test_an_accuracy_of_exactly_the_threshold_is_kept():
    """980 of 1000 test points right is 0.98: it kept its accuracy; 979/1000 did not."""
    assert tables.SUCCESS_ACCURACY == 0.98
    records = [_record("none", 0, 980 / 1000, 30, 4.0), _record("none", 1, 979 / 1000, 30, 4.0),
               _record("none", 2, 1.0, 30, 4.0)]
    assert [tables.succeeded(r) for r in records] == [True, False, True]
    (row,) = tables.table1_rows(records)
    assert row["n_success"] == 2
    assert [r["kept_accuracy"] for r in tables.per_seed_rows(records)] == [True, False, True]
    assert "| 2/3 |" in tables.table1_markdown([row], tables.per_seed_rows(records))


class _FixedModel:
    """Stands in for a trained model: fixed test logits, κ values and train predictions."""

    def __init__(self, kappa):
        self.kappa = np.asarray(kappa)

    def forward(self, X):
        return None, np.column_stack([np.zeros(len(X)), np.ones(len(X))]), 42

    def condition_numbers(self, X):
        return self.kappa

    def predict(self, X):
        return np.ones(len(X), dtype=int)


def test_run_summary_kappa_mean_and_median():
    class Data:
        X_train, y_train = np.zeros((5, 2)), np.array([1, 1, 1, 0, 1])
        X_test, y_test = np.zeros((4, 2)), np.array([1, 1, 0, 1])

    summary = evaluate(_FixedModel(KAPPA), Data)
    assert summary["kappa_mean"] == pytest.approx(statistics.fmean(KAPPA), rel=1e-15)
    assert summary["kappa_median"] == statistics.median(KAPPA)
    assert (summary["test_accuracy"], summary["train_accuracy"], summary["nfe"]) == (0.75, 0.8, 42)


# -- claims --------------------------------------------------------------------------------------

def _welch_p(a, b):
    """Welch's two-sided p-value from its definition (Welch–Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), dof)


def test_compare_uses_welch_t_on_unequal_groups():
    a = [14.0, 15.0, 14.0, 16.0, 15.0, 14.0, 15.0, 14.0]       # n = 8, small spread
    b = [20.0, 31.0, 25.0]                                      # n = 3, large spread
    result = claims.compare(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).pvalue
    student = stats.ttest_ind(a, b, equal_var=True).pvalue
    assert result["welch_p"] == pytest.approx(welch, rel=1e-12)
    assert result["welch_p"] == pytest.approx(_welch_p(a, b), rel=1e-9)
    assert abs(math.log(student / welch)) > 1.0                 # the fixture tells them apart
    assert result["mannwhitney_p"] == pytest.approx(
        stats.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12)
    assert (result["n_a"], result["n_b"]) == (8, 3)
    assert result["diff"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b))


def test_c3_compares_log_kappa():
    """C3's rows hold the means of log κ per arm and Welch's test on log κ."""
    rng = np.random.default_rng(3)
    kappa = {"none": [4.0, 5.0, 6.0, 5.5, 4.5, 9.0],
             "frobenius": [20.0, 25.0, 30.0, 28.0, 40.0],
             "spectral": [35.0, 40.0, 60.0, 45.0, 50.0, 55.0, 2000.0],
             "condition": [5.0, 6.0, 7.0, 6.5]}
    records = []
    for arm, values in kappa.items():
        for s, k in enumerate(values):
            records.append(_record(arm, s, 0.99 + 0.001 * rng.random(), 30 + s, k,
                                   margin=0.3))
    (c3,) = [c for c in claims.evaluate_claims(records) if c["claim"] == "C3"]
    logs = {arm: [math.log(k) for k in values] for arm, values in kappa.items()}
    for reg in ("frobenius", "spectral"):
        (row,) = [r for r in c3["comparisons"] if r["label"] == f"{reg} vs none"]
        assert row["mean_a"] == pytest.approx(statistics.fmean(logs[reg]), rel=1e-12)
        assert row["mean_b"] == pytest.approx(statistics.fmean(logs["none"]), rel=1e-12)
        assert row["welch_p"] == pytest.approx(_welch_p(logs[reg], logs["none"]), rel=1e-9)
    # on raw κ the spectral outlier would drown the difference: here it holds on log κ
    assert c3["verdict"] == "reproduced"
    assert stats.ttest_ind(kappa["spectral"], kappa["none"], equal_var=False).pvalue > 0.05


# -- every field of Table 1's rows (found by mutation testing, tests/README.md) ------------------

def _with(record, **changes):
    return {**record, **changes}


def test_table1_row_fields_for_single_pair_and_failed_arms():
    records = [
        # one finished seed: std 0.0 by definition; the arm's own settings are carried over
        _with(_record("one", 0, 0.99, 30, 4.0), reg="frobenius", lam=0.5, lam_warmup=3,
              cond_eps=1e-6),
        # two seeds: the sample std of two values
        _with(_record("two", 0, 0.99, 20, 2.0), reg="condition", ours=True),
        _with(_record("two", 1, 0.97, 24, 8.0), reg="condition", ours=True),
        # no finished seed at all: no aggregates
        _record("lost", 0, 0.5, 99, 1e3, reg="spectral", status="diverged"),
    ]
    one, two, lost = tables.table1_rows(records)
    assert {k: one[k] for k in ("arm", "reg", "lam", "lam_warmup", "ours", "cond_eps", "n_runs",
                                "n_finished", "n_success")} == dict(
        arm="one", reg="frobenius", lam=0.5, lam_warmup=3, ours=False, cond_eps=1e-6, n_runs=1,
        n_finished=1, n_success=1)
    assert (one["nfe_mean"], one["nfe_std"], one["kappa_mean_median"]) == (30.0, 0.0, 4.0)
    assert (one["paper_nfe_mean"], one["paper_nfe_std"]) == tables.PAPER_TABLE1["frobenius"]["nfe"]
    assert two["cond_eps"] == 1e-8                     # records without the key: the default
    assert two["nfe_std"] == pytest.approx(statistics.stdev([20, 24]), rel=1e-15)
    assert two["paper_nfe_mean"] is None                # ours: never beside the paper's numbers
    assert (lost["n_finished"], lost["nfe_mean"], lost["nfe_std"], lost["kappa_mean_median"],
            lost["margin_median_mean"]) == (0, None, None, None, None)
    plain = tables.table1_rows(records, with_paper=False)[0]
    assert plain["paper_nfe_mean"] is None and plain["paper_kappa_mean_std"] is None


def test_per_seed_rows_carry_every_headline_number():
    finished_run = _with(_record("a", 3, 0.99, 30, 4.0, margin=0.25),
                         summary={"status": "finished", "test_accuracy": 0.99, "nfe": 30,
                                  "kappa_mean": 4.0, "kappa_median": 3.5, "epochs_done": 100,
                                  "wall_seconds": 12.5})
    missing = _with(_record("a", 4, 0.99, 30, 4.0), summary=None, robustness=None)
    rows = tables.per_seed_rows([finished_run, missing])
    assert rows[0] == dict(arm="a", seed=3, status="finished", test_accuracy=0.99, nfe=30,
                           kappa_mean=4.0, kappa_median=3.5, margin_median=0.25,
                           epochs_done=100, wall_seconds=12.5, kept_accuracy=True)
    assert rows[1] == dict(arm="a", seed=4, status="missing", test_accuracy=None, nfe=None,
                           kappa_mean=None, kappa_median=None, margin_median=None,
                           epochs_done=None, wall_seconds=None, kept_accuracy=False)


# -- the claims' tests and what they compare (found by mutation testing) -------------------------

@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
def test_compare_edge_cases():
    keys = {"n_a", "n_b", "mean_a", "mean_b", "diff", "welch_p", "mannwhitney_p"}
    empty = claims.compare([], [1.0, 2.0])
    assert keys <= set(empty) and empty["mean_a"] is None and empty["mean_b"] == 1.5
    assert claims.compare([1.0, 2.0], [])["mean_b"] is None
    one = claims.compare([1.0], [1.0, 2.0, 3.0])                # one group too small: no test
    assert keys <= set(one) and one["welch_p"] is None and one["mannwhitney_p"] is None
    a, b = [14.0, 14.0, 14.0], [13.0, 15.0, 14.5]               # only one group constant
    assert claims.compare(a, b)["welch_p"] == pytest.approx(
        stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    a, b = [0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]  # pooled range exactly 1
    assert claims.compare(a, b)["mannwhitney_p"] == pytest.approx(
        stats.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12)


def test_compare_paired_uses_the_differences():
    after, before = [20.0, 23.0, 21.0, 26.0, 22.0], [14.0, 18.0, 15.0, 19.0, 17.0]
    r = claims.compare_paired(after, before)
    delta = np.subtract(after, before)                           # range exactly 1
    assert r["welch_p"] == pytest.approx(stats.ttest_rel(after, before).pvalue, rel=1e-12)
    assert r["mannwhitney_p"] == pytest.approx(stats.wilcoxon(delta).pvalue, rel=1e-12)
    shifted = claims.compare_paired([20.0, 21.0, 22.0], [14.0, 15.0, 16.0])  # constant Δ = 6
    assert (shifted["welch_p"], shifted["mannwhitney_p"]) == (0.0, 0.0)
    same = claims.compare_paired([20.0, 21.0, 22.0], [20.0, 21.0, 22.0])     # Δ = 0
    assert (same["welch_p"], same["mannwhitney_p"]) == (1.0, 1.0)


def test_holds_needs_p_strictly_below_alpha():
    assert claims.holds({"diff": 1.0, "welch_p": claims.ALPHA}, +1) is False
    assert claims.holds({"diff": 1.0, "welch_p": 0.5 * claims.ALPHA}, +1) is True
    assert claims.holds({"diff": -1.0, "welch_p": 0.0}, +1) is False


def _study_records(n=6):
    rng = np.random.default_rng(5)
    arms = {"none": ("none", False, 0.997, 35), "frobenius": ("frobenius", False, 0.886, 14),
            "spectral": ("spectral", False, 0.885, 16), "condition": ("condition", False, 0.997, 27),
            "logk": ("log_condition", True, 0.997, 25)}
    records = []
    for arm, (reg, ours, acc, nfe) in arms.items():
        for s in range(n):
            r = _with(_record(arm, s, acc + 0.001 * rng.standard_normal(), nfe + s % 3,
                              5.0 * rng.uniform(0.8, 1.25), reg=reg, margin=0.3 + 0.01 * s),
                      ours=ours)
            r["history"] = [{"nfe_forward": 14}, {"nfe_forward": 99}, {"nfe_forward": nfe + s}]
            records.append(r)
    return records


def test_each_claim_compares_what_it_states():
    result = claims.evaluate_claims(_study_records())
    rows = {c["claim"]: [(r["label"], r["quantity"], r["expect"]) for r in c["comparisons"]]
            for c in result}
    drop = f"drop ≤ {claims.ACCURACY_MARGIN}"
    assert rows == {
        "C0": [("none: last epoch vs first", "forward NFE per batch", "higher")],
        "C1": [("condition vs none", "NFE", "lower"), ("condition vs none", "test accuracy", drop)],
        "C1 (ours: logk)": [("logk vs none", "NFE", "lower"), ("logk vs none", "test accuracy",
                                                                drop)],
        "C2": [("frobenius vs condition", "NFE", "lower"), ("frobenius vs none", "test accuracy",
                                                            "lower"),
               ("spectral vs condition", "NFE", "lower"), ("spectral vs none", "test accuracy",
                                                           "lower")],
        "C3": [("frobenius vs none", "log κ(J)", "higher"), ("spectral vs none", "log κ(J)",
                                                             "higher")],
        "C4": [("frobenius vs none", "median boundary distance", "higher"),
               ("spectral vs none", "median boundary distance", "higher")],
        "C5": [("frobenius vs none", "mean accuracy over σ > 0", "not higher"),
               ("spectral vs none", "mean accuracy over σ > 0", "not higher")],
    }
    for c in result:
        assert isinstance(c["statement"], str) and c["statement"], c["claim"]
        assert len(c["checks"]) == {"C0": 1, "C1": 2, "C2": 4, "C3": 2, "C4": 2,
                                    "C5": 2}.get(c["claim"], 2)
    by_key = {c["claim"]: c for c in result}
    assert "logk" in by_key["C1 (ours: logk)"]["statement"]
    assert "logk kept its accuracy" in by_key["C1 (ours: logk)"]["note"]
    assert "condition kept its accuracy" in by_key["C1"]["note"]
    assert all(by_key[k]["note"] for k in ("C0", "C4", "C5"))
    # C0 pairs the LAST epoch with the first (14 → 35..40), not the second (99)
    c0 = by_key["C0"]["comparisons"][0]
    assert c0["mean_a"] == pytest.approx(35 + 2.5) and c0["mean_b"] == 14.0
    assert by_key["C0"]["verdict"] == "reproduced"
    assert [c["verdict"] for c in result if c["claim"].startswith("C1")] == ["reproduced"] * 2


def test_c0_uses_finished_runs_only():
    records = [r for r in _study_records() if r["arm"] == "none"]
    for r in records[:3]:
        r["summary"] = dict(r["summary"], status="diverged")
        r["history"][-1]["nfe_forward"] = 1000
    c0 = {c["claim"]: c for c in claims.evaluate_claims(records)}["C0"]
    assert c0["comparisons"][0]["n_a"] == 3 and c0["comparisons"][0]["mean_a"] < 100
    for r in records:
        r["summary"] = dict(r["summary"], status="diverged")
    c0 = {c["claim"]: c for c in claims.evaluate_claims(records)}["C0"]
    assert c0["verdict"] == "not tested (too few finished runs)"


def test_a_variant_with_one_finished_run_is_not_tested_rather_than_failing():
    records = [r for r in _study_records() if r["arm"] != "logk" or r["seed"] == 0]
    by_key = {c["claim"]: c for c in claims.evaluate_claims(records)}
    assert by_key["C1 (ours: logk)"]["verdict"] == "not tested (too few finished runs)"
