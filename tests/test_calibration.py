"focal_tutorial.calibration: ECE against torchmetrics, the metrics' properties, temperature scaling, logit adjustment, and every bad input refused."
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from torchmetrics.classification import MulticlassCalibrationError

from focal_tutorial.calibration import (
    adjust_proba, brier, calibration_metrics, calibration_report, check_proba, class_priors, ece, fit_temperature, logit_adjust,
    nll, plot_reliability, reliability_table, softmax_scores)


def random_case(seed, n=500, k=5, concentration=0.5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, concentration), size=n), rng.integers(0, k, size=n)


@pytest.mark.parametrize("seed, n, k, bins", [(0, 500, 5, 15), (1, 2000, 3, 15), (2, 100, 10, 7), (3, 1000, 2, 1),
                                              (4, 300, 4, 30)])
def test_ece_matches_torchmetrics(seed, n, k, bins):
    p, y = random_case(seed, n, k)
    p = p.astype(np.float32).astype(np.float64)  # torchmetrics bins float32 confidences: the same inputs for both
    p /= p.sum(axis=1, keepdims=True)
    metric = MulticlassCalibrationError(num_classes=k, n_bins=bins, norm="l1")
    expected = float(metric(torch.tensor(p), torch.tensor(y)))
    assert abs(ece(p, y, n_bins=bins) - expected) < 1e-6


def test_nll_and_brier_are_their_formulas():
    p, y = random_case(5, 400, 4)
    rows = np.arange(len(y))
    assert nll(p, y) == pytest.approx(-np.log(p[rows, y]).mean(), rel=1e-12)
    assert brier(p, y) == pytest.approx(((p - np.eye(4)[y]) ** 2).sum(axis=1).mean(), rel=1e-12)


def test_reliability_table_counts_and_edges():
    p = np.array([[0.5, 0.5], [0.65, 0.35], [1.0, 0.0], [0.0, 1.0]])  # confidences 0.5, 0.65, 1, 1
    t = reliability_table(p, [0, 1, 0, 0], n_bins=2)  # bins [0, 0.5) and [0.5, 1]
    assert t["count"].tolist() == [0, 4]
    t = reliability_table(p, [0, 1, 0, 0], n_bins=10)
    assert t["count"].tolist() == [0] * 5 + [1, 1, 0, 0, 2]  # 0.5 opens its bin, 1 lands in the last one
    assert t.loc[9, "accuracy"] == 0.5 and t.loc[6, "accuracy"] == 0.0


def _proba(k):
    return arrays(np.float64, st.tuples(st.integers(1, 40), st.just(k)),
                  elements=st.floats(0.01, 1.0)).map(lambda a: a / a.sum(axis=1, keepdims=True))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(_proba(k), st.just(k))), st.integers(0, 2**32 - 1),
       st.integers(1, 20))
def test_metric_ranges_and_ece_as_the_table_says(case, seed, bins):
    p, k = case
    y = np.random.default_rng(seed).integers(0, k, size=len(p))
    m = calibration_metrics(p, y, n_bins=bins)
    assert 0 <= m["ece"] <= 1 and m["nll"] >= 0 and 0 <= m["brier"] <= 2
    t = reliability_table(p, y, n_bins=bins)
    assert t["count"].sum() == len(p)
    full = t[t["count"] > 0]
    assert m["ece"] == pytest.approx((full["count"] * full["gap"].abs()).sum() / len(p), abs=1e-12)
    # one bin: the ECE is |accuracy - mean confidence|
    assert ece(p, y, n_bins=1) == pytest.approx(abs((p.argmax(1) == y).mean() - p.max(1).mean()), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(_proba(k), _proba(k).map(lambda a: a[0]))),
       st.floats(0, 3))
def test_logit_adjustment_on_logits_log_probabilities_and_probabilities_agree(case, tau):
    p, priors = case
    logits = np.log(p) + np.arange(len(p))[:, None]  # a different constant per row: the same probabilities
    a = softmax_scores(logit_adjust(logits, priors, tau))
    assert np.allclose(a, softmax_scores(logit_adjust(np.log(p), priors, tau)))
    assert np.allclose(a, adjust_proba(p, priors, tau))
    assert np.allclose(adjust_proba(p, 7 * priors, tau), a)  # counts work as priors: only their ratios matter
    assert np.allclose(adjust_proba(p, np.ones(len(priors)), tau), p)  # uniform priors change nothing
    assert np.allclose(adjust_proba(p, priors, 0), p)


def test_logit_adjustment_favours_the_rare_class_and_keeps_zeros():
    p = np.array([[0.6, 0.4, 0.0]])
    q = adjust_proba(p, [0.8, 0.1, 0.1])
    assert q.argmax() == 1 and q[0, 2] == 0 and q.sum() == pytest.approx(1)
    df = pd.DataFrame(p, columns=["x", "y", "z"], index=[7])
    out = adjust_proba(df, [0.8, 0.1, 0.1])
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["x", "y", "z"] and out.index.tolist() == [7]


def test_class_priors_follow_autommm_order_and_align_with_dataframe_columns():
    pri = class_priors(["b", "a", "b", "b"])
    assert pri.index.tolist() == ["a", "b"] and pri.tolist() == [0.25, 0.75]
    proba = pd.DataFrame({"b": [0.5], "a": [0.5]})  # columns in another order: the Series is aligned by label
    rep = calibration_report(proba, ["a"], pri)
    assert rep.columns.name == "rare class: 'a'"
    assert rep.loc["logit-adjusted (τ=1)", "accuracy"] == 1.0  # 'a' (rarer) wins after adjustment
    with pytest.raises(ValueError, match="classes \\['c'\\] have no training label"):
        class_priors(["a", "b"], classes=["a", "b", "c"])


@settings(max_examples=30, deadline=None)
@given(st.floats(0.3, 5.0), st.integers(0, 1000))
def test_temperature_recovers_a_known_sharpening(t, seed):
    p, _ = random_case(seed, 3000, 4, concentration=0.8)
    rng = np.random.default_rng(seed + 1)
    y = (rng.random(len(p))[:, None] > p.cumsum(1)).sum(1)  # labels drawn from p: p is calibrated
    fitted = fit_temperature(t * np.log(p), y)
    assert fitted == pytest.approx(t, rel=0.15)
    assert (softmax_scores(t * np.log(p), fitted).argmax(1) == p.argmax(1)).all()  # decisions unchanged


def test_temperature_lowers_nll_on_its_own_split():
    p, y = random_case(9, 500, 4)
    s = 4 * np.log(p)
    assert nll(softmax_scores(s, fit_temperature(s, y)), y) <= nll(softmax_scores(s), y)


def test_report_rows_and_rare_class():
    p, y = random_case(3, 400, 4)
    rep = calibration_report(p, y, [0.7, 0.2, 0.05, 0.05], rare_class=3)
    assert rep.index.tolist() == ["as predicted", "logit-adjusted (τ=1)"] and rep.columns.name == "rare class: 3"
    assert rep.loc["as predicted", "ece"] == pytest.approx(ece(p, y))
    assert calibration_report(p, y, [0.7, 0.2, 0.04, 0.06]).columns.name == "rare class: 2"


def test_plot_reliability_draws_one_line_per_model():
    p, y = random_case(1, 200, 3)
    ax = plot_reliability({"a": (p, y), "b": (p ** 0.5 / (p ** 0.5).sum(1, keepdims=True), y)})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "calibrated" and labels[1] == f"a (ECE {ece(p, y):.3f})" and labels[2].startswith("b (ECE ")
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


GOOD_P, GOOD_Y = np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 1])


@pytest.mark.parametrize("call, error, match", [
    (lambda: ece([[0.6, 0.3], [0.5, 0.5]], GOOD_Y), ValueError, r"each row of proba must sum to 1.*row 0 sums to 0\.9"),
    (lambda: ece([[1.2, -0.2], [0.5, 0.5]], GOOD_Y), ValueError, r"probabilities in \[0, 1\].*softmax_scores"),
    (lambda: ece([[np.nan, 0.5], [0.5, 0.5]], GOOD_Y), ValueError, "proba has NaN values, first in row 0"),
    (lambda: ece([0.7, 0.3], [0]), ValueError, r"2-D with at least one row and two columns.*got shape \(2,\)"),
    (lambda: ece(np.ones((2, 1)), GOOD_Y), ValueError, r"np.c_\[1 - p, p\]"),
    (lambda: ece(np.empty((0, 2)), []), ValueError, "at least one row"),
    (lambda: ece("0.5", GOOD_Y), TypeError, "proba must be a 2-D array"),
    (lambda: ece([["a", "b"]], [0]), TypeError, "proba must hold numbers"),
    (lambda: ece(GOOD_P, GOOD_Y, n_bins=0), ValueError, "n_bins must be a positive int, got 0"),
    (lambda: ece(GOOD_P, GOOD_Y, n_bins=2.5), TypeError, "n_bins must be a positive int"),
    (lambda: reliability_table(GOOD_P, GOOD_Y, n_bins=-1), ValueError, "n_bins must be a positive int"),
    (lambda: ece(GOOD_P, [0, 1, 1]), ValueError, "proba has 2 rows but y_true has 3 labels"),
    (lambda: ece(GOOD_P, [0, 2]), ValueError, r"class positions 0\.\.1.*pass `classes=`"),
    (lambda: ece(GOOD_P, [0, -1]), ValueError, r"class positions 0\.\.1"),
    (lambda: ece(GOOD_P, ["a", "b"]), ValueError, r"class positions 0\.\.1"),
    (lambda: ece(GOOD_P, ["a", "c"], classes=["a", "b"]), ValueError, r"labels \['c'\] that are not among the classes"),
    (lambda: ece(GOOD_P, ["a", "b"], classes=["a", "b", "c"]), ValueError, "classes has 3 labels but there are 2 columns"),
    (lambda: ece(GOOD_P, [0, None]), ValueError, "y_true has 1 missing labels"),
    (lambda: nll([[0.5, 0.4], [0.5, 0.5]], GOOD_Y), ValueError, "must sum to 1"),
    (lambda: brier([[0.5, 0.4], [0.5, 0.5]], GOOD_Y), ValueError, "must sum to 1"),
    (lambda: calibration_metrics(GOOD_P, GOOD_Y, n_bins=0), ValueError, "n_bins must be a positive int"),
    (lambda: fit_temperature([[np.inf, 0.0]], [0]), ValueError, "scores must be finite"),
    (lambda: fit_temperature([[-np.inf, 0.0]], [0]), ValueError, "scores must be finite"),
    (lambda: fit_temperature(GOOD_P, [0]), ValueError, "scores has 2 rows but y_true has 1 labels"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=(0, 5)), ValueError, r"bounds\[0\] must be a finite number > 0"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=(5, 1)), ValueError, r"bounds\[1\] must be a finite number > 5"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=5), TypeError, "bounds must be a pair"),
    (lambda: softmax_scores(GOOD_P, temperature=0), ValueError, "temperature must be a finite number > 0, got 0"),
    (lambda: softmax_scores(GOOD_P, temperature="1"), TypeError, "temperature must be a finite number > 0"),
    (lambda: softmax_scores([[-np.inf, -np.inf]]), ValueError, "not a whole row of it"),
    (lambda: logit_adjust(GOOD_P, [0.5, 0.0]), ValueError, r"priors must be finite and > 0.*got 0 for class 1"),
    (lambda: logit_adjust(GOOD_P, [0.5, -0.1]), ValueError, "priors must be finite and > 0"),
    (lambda: logit_adjust(GOOD_P, [0.5, np.nan]), ValueError, "priors must be finite and > 0"),
    (lambda: logit_adjust(GOOD_P, [0.2, 0.3, 0.5]), ValueError, r"one number per class \(2\), got shape \(3,\)"),
    (lambda: logit_adjust(GOOD_P, 0.5), TypeError, "priors must be one number per class"),
    (lambda: logit_adjust(GOOD_P, {"a": 1, "b": 1}), TypeError, "priors must be one number per class"),
    (lambda: logit_adjust(GOOD_P, ["x", "y"]), TypeError, "priors must hold numbers"),
    (lambda: logit_adjust(GOOD_P, [0.5, 0.5], tau=-1), ValueError, "tau must be a finite number >= 0"),
    (lambda: logit_adjust(GOOD_P, [0.5, 0.5], tau=float("nan")), ValueError, "tau must be a finite number >= 0"),
    (lambda: adjust_proba([[0.5, 0.6]], [0.5, 0.5]), ValueError, "must sum to 1"),
    (lambda: adjust_proba(pd.DataFrame(GOOD_P, columns=["a", "b"]), pd.Series([1, 1], index=["a", "c"])),
     ValueError, "priors is indexed by"),
    (lambda: class_priors([]), ValueError, "labels is empty"),
    (lambda: class_priors(["a"], classes=["b"]), ValueError, "have no training label"),
    (lambda: calibration_report(GOOD_P, GOOD_Y, [1, 0]), ValueError, "priors must be finite and > 0"),
    (lambda: calibration_report(GOOD_P, GOOD_Y, [1, 1], rare_class=5), ValueError, "rare_class=5 is not one of"),
    (lambda: calibration_report(GOOD_P, GOOD_Y, [1, 1], tau=-2), ValueError, "tau must be"),
    (lambda: calibration_report([[0.5, 0.6], [0.5, 0.5]], GOOD_Y, [1, 1]), ValueError, "must sum to 1"),
    (lambda: calibration_report(GOOD_P, GOOD_Y, [1, 1], n_bins=0), ValueError, "n_bins must be a positive int"),
    (lambda: plot_reliability({}), ValueError, "curves must be a non-empty dict"),
    (lambda: plot_reliability([(GOOD_P, GOOD_Y)]), ValueError, "curves must be a non-empty dict"),
    (lambda: plot_reliability({"a": GOOD_P}), TypeError, r"curves\['a'\] must be a pair"),
    (lambda: plot_reliability({"a": (GOOD_P, GOOD_Y)}, n_bins=0), ValueError, "n_bins must be a positive int"),
])
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_temperature_of_a_split_without_error_is_the_lower_bound():
    p, _ = random_case(2, 200, 3)
    y = p.argmax(1)  # every prediction right: the NLL falls as T -> 0
    assert fit_temperature(np.log(p), y) == 0.05 and fit_temperature(np.log(p), y, bounds=(0.2, 5)) == 0.2
    y[0] = (y[0] + 1) % 3  # one error: a minimum inside the bounds
    assert 0.05 < fit_temperature(np.log(p), y) < 20


def test_float32_probabilities_are_renormalised_without_warnings():
    # AutoMM's predict_proba is float32: rows sum to 1 only within rounding; sklearn warns on those, so check_proba
    # must hand on rows that sum to 1 exactly, and the metrics must equal those of the exactly normalised rows
    import warnings
    rng = np.random.default_rng(0)
    exact = rng.dirichlet(np.ones(4), size=200)
    p32 = (exact * (1 + 3e-6 * rng.standard_normal(exact.shape))).astype(np.float32)
    assert np.abs(p32.astype(np.float64).sum(axis=1) - 1).max() > 1e-7  # off, as float32 output is
    y = rng.integers(0, 4, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = calibration_metrics(p32, y)
    p, _ = check_proba(p32)
    assert np.abs(p.sum(axis=1) - 1).max() < 1e-12
    want = calibration_metrics(exact, y)
    assert all(abs(got[k] - want[k]) < 1e-4 for k in want)
