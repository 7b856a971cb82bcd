"focal_tutorial.calibration: ECE against torchmetrics, the metrics' properties, reliability diagrams, every bad input refused, and the rule every function of calibration and posthoc follows: a DataFrame's columns are its classes."
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from torchmetrics.classification import MulticlassCalibrationError

from focal_tutorial.calibration import (
    brier, calibration_metrics, check_proba, ece, nll, plot_reliability, reliability_table)
from focal_tutorial.posthoc import adjust_proba, calibration_report, fit_temperature, logit_adjust


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
    assert abs(ece(y, p, n_bins=bins) - expected) < 1e-6


def test_nll_and_brier_are_their_formulas():
    p, y = random_case(5, 400, 4)
    rows = np.arange(len(y))
    assert nll(y, p) == pytest.approx(-np.log(p[rows, y]).mean(), rel=1e-12)
    assert brier(y, p) == pytest.approx(((p - np.eye(4)[y]) ** 2).sum(axis=1).mean(), rel=1e-12)


def test_reliability_table_counts_and_edges():
    p = np.array([[0.5, 0.5], [0.65, 0.35], [1.0, 0.0], [0.0, 1.0]])  # confidences 0.5, 0.65, 1, 1
    t = reliability_table([0, 1, 0, 0], p, n_bins=2)  # bins [0, 0.5) and [0.5, 1]
    assert t["count"].tolist() == [0, 4]
    t = reliability_table([0, 1, 0, 0], p, n_bins=10)
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
    m = calibration_metrics(y, p, n_bins=bins)
    assert 0 <= m["ece"] <= 1 and m["nll"] >= 0 and 0 <= m["brier"] <= 2
    t = reliability_table(y, p, n_bins=bins)
    assert t["count"].sum() == len(p)
    full = t[t["count"] > 0]
    assert m["ece"] == pytest.approx((full["count"] * full["gap"].abs()).sum() / len(p), abs=1e-12)
    # one bin: the ECE is |accuracy - mean confidence|
    assert ece(y, p, n_bins=1) == pytest.approx(abs((p.argmax(1) == y).mean() - p.max(1).mean()), abs=1e-12)


def test_plot_reliability_draws_one_line_per_model():
    p, y = random_case(1, 200, 3)
    ax = plot_reliability({"a": (y, p), "b": (y, p ** 0.5 / (p ** 0.5).sum(1, keepdims=True))})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "calibrated" and labels[1] == f"a (ECE {ece(y, p):.3f})" and labels[2].startswith("b (ECE ")
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


GOOD_P, GOOD_Y = np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 1])


@pytest.mark.parametrize("call, error, match", [
    (lambda: ece(GOOD_Y, [[0.6, 0.3], [0.5, 0.5]]), ValueError, r"each row of proba must sum to 1.*row 0 sums to 0\.9"),
    (lambda: ece(GOOD_Y, [[1.2, -0.2], [0.5, 0.5]]), ValueError, r"probabilities in \[0, 1\].*softmax_scores"),
    (lambda: ece(GOOD_Y, [[np.nan, 0.5], [0.5, 0.5]]), ValueError, "proba has NaN values, first in row 0"),
    (lambda: ece([0], [0.7, 0.3]), ValueError, r"2-D with at least one row and two columns.*got shape \(2,\)"),
    (lambda: ece(GOOD_Y, np.ones((2, 1))), ValueError, r"np.c_\[1 - p, p\]"),
    (lambda: ece([], np.empty((0, 2))), ValueError, "at least one row"),
    (lambda: ece(GOOD_Y, "0.5"), TypeError, "proba must be a 2-D array"),
    (lambda: ece([0], [["a", "b"]]), TypeError, "proba must hold numbers"),
    (lambda: ece(GOOD_Y, GOOD_P, n_bins=0), ValueError, "n_bins must be a positive int, got 0"),
    (lambda: ece(GOOD_Y, GOOD_P, n_bins=2.5), TypeError, "n_bins must be a positive int"),
    (lambda: reliability_table(GOOD_Y, GOOD_P, n_bins=-1), ValueError, "n_bins must be a positive int"),
    (lambda: ece([0, 1, 1], GOOD_P), ValueError, "proba has 2 rows but y_true has 3 labels"),
    (lambda: ece([0, 2], GOOD_P), ValueError, r"class positions 0\.\.1.*pass `classes=`"),
    (lambda: ece([0, -1], GOOD_P), ValueError, r"class positions 0\.\.1"),
    (lambda: ece(["a", "b"], GOOD_P), ValueError, r"class positions 0\.\.1"),
    (lambda: ece(["a", "c"], GOOD_P, classes=["a", "b"]), ValueError, r"labels \['c'\] that are not among the classes"),
    (lambda: ece(["a", "b"], GOOD_P, classes=["a", "b", "c"]), ValueError, "classes has 3 labels but there are 2 columns"),
    (lambda: ece([0, None], GOOD_P), ValueError, "y_true has 1 missing labels"),
    (lambda: nll(GOOD_Y, [[0.5, 0.4], [0.5, 0.5]]), ValueError, "must sum to 1"),
    (lambda: brier(GOOD_Y, [[0.5, 0.4], [0.5, 0.5]]), ValueError, "must sum to 1"),
    (lambda: calibration_metrics(GOOD_Y, GOOD_P, n_bins=0), ValueError, "n_bins must be a positive int"),
    (lambda: plot_reliability({}), ValueError, "curves must be a non-empty dict"),
    (lambda: plot_reliability([(GOOD_Y, GOOD_P)]), ValueError, "curves must be a non-empty dict"),
    (lambda: plot_reliability({"a": GOOD_P}), TypeError, r"curves\['a'\] must be a pair"),
    (lambda: plot_reliability({"a": (GOOD_Y, GOOD_P)}, n_bins=0), ValueError, "n_bins must be a positive int"),
])
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


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
        got = calibration_metrics(y, p32)
    p, _ = check_proba(p32)
    assert np.abs(p.sum(axis=1) - 1).max() < 1e-12
    want = calibration_metrics(y, exact)
    assert all(abs(got[k] - want[k]) < 1e-4 for k in want)


CAT_DOG = pd.DataFrame([[0.9, 0.1]] * 10, columns=["cat", "dog"])


CAT_DOG_Y = ["cat"] * 9 + ["dog"]


@pytest.mark.parametrize("call", [
    lambda c: ece(CAT_DOG_Y, CAT_DOG, classes=c),
    lambda c: nll(CAT_DOG_Y, CAT_DOG, classes=c),
    lambda c: brier(CAT_DOG_Y, CAT_DOG, classes=c),
    lambda c: reliability_table(CAT_DOG_Y, CAT_DOG, classes=c),
    lambda c: calibration_metrics(CAT_DOG_Y, CAT_DOG, classes=c),
    lambda c: calibration_report(CAT_DOG_Y, CAT_DOG, [0.5, 0.5], classes=c),
    lambda c: fit_temperature(np.log(CAT_DOG), CAT_DOG_Y, classes=c),
    lambda c: logit_adjust(np.log(CAT_DOG), [0.5, 0.5], classes=c),
    lambda c: adjust_proba(CAT_DOG, [0.5, 0.5], classes=c),
])
def test_classes_that_disagree_with_the_columns_are_refused(call):
    """classes= in another order than a DataFrame's columns is refused, naming both orders and the fix."""
    with pytest.raises(ValueError, match=r"classes=\['dog', 'cat'\].*columns of \w+, \['cat', 'dog'\].*"
                                         r"drop classes=.*\[classes\]"):
        call(["dog", "cat"])
    call(["cat", "dog"])  # the same order: accepted


def test_classes_equal_to_the_columns_change_nothing():
    """classes= equal to a DataFrame's columns gives the numbers the columns alone give."""
    assert ece(CAT_DOG_Y, CAT_DOG, classes=["cat", "dog"]) == ece(CAT_DOG_Y, CAT_DOG) == pytest.approx(0.0, abs=1e-12)
    pd.testing.assert_frame_equal(calibration_report(CAT_DOG_Y, CAT_DOG, [0.9, 0.1], classes=["cat", "dog"]),
                                  calibration_report(CAT_DOG_Y, CAT_DOG, [0.9, 0.1]))


def test_plot_reliability_takes_classes_for_label_arrays():
    """plot_reliability(classes=) lets array curves use class labels; DataFrame curves keep their columns."""
    import matplotlib.pyplot as plt
    p, y = random_case(1, 200, 3)
    names = np.array(["x", "y", "z"])
    df = pd.DataFrame(p[:, ::-1], columns=["z", "y", "x"])
    ax = plot_reliability({"array": (names[y], p), "frame": (names[y], df)}, classes=["x", "y", "z"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1:] == [f"array (ECE {ece(y, p):.3f})", f"frame (ECE {ece(y, p):.3f})"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="pass `classes=`"):  # the advice of the error is now a real parameter
        plot_reliability({"array": (names[y], p)})


def test_binary_brier_is_twice_sklearns_and_the_docstring_says_so():
    """For two classes brier is the multiclass form, 2 * sklearn's brier_score_loss, and its docstring says so."""
    from sklearn.metrics import brier_score_loss
    p, y = random_case(13, 300, 2)
    assert brier(y, p) == pytest.approx(2 * brier_score_loss(y, p[:, 1]), rel=1e-12)
    assert "twice" in brier.__doc__ and "brier_score_loss" in brier.__doc__


@pytest.mark.parametrize("call", [
    lambda p, y: ece(p, y), lambda p, y: nll(p, y), lambda p, y: brier(p, y), lambda p, y: reliability_table(p, y),
    lambda p, y: calibration_metrics(p, y), lambda p, y: plot_reliability({"model": (p, y)})],
    ids=["ece", "nll", "brier", "reliability_table", "calibration_metrics", "plot_reliability"])
def test_probabilities_first_are_refused_with_the_order_to_use(call):
    "y_true comes first, as in scikit-learn; the old order (proba, y_true) is named, not misread."
    with pytest.raises(TypeError, match=r"y_true is 2-D and proba 1-D: the arguments look swapped.*y_test, proba"):
        call(GOOD_P, GOOD_Y)
