"focal_tutorial.posthoc: temperature scaling (also cross-fitted), logit adjustment and calibration_report, against their formulas and with every bad input refused."
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from focal_tutorial.automm import automm_classes
from focal_tutorial.calibration import ece, nll
from focal_tutorial.posthoc import (
    adjust_proba, calibration_report, class_priors, cross_fit_temperature, fit_temperature, logit_adjust, softmax_scores)


def random_case(seed, n=500, k=5, concentration=0.5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, concentration), size=n), rng.integers(0, k, size=n)


def _proba(k):
    return arrays(np.float64, st.tuples(st.integers(1, 40), st.just(k)),
                  elements=st.floats(0.01, 1.0)).map(lambda a: a / a.sum(axis=1, keepdims=True))


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
    rep = calibration_report(["a"], proba, pri)
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
    p, _ = random_case(9, 500, 4)
    y = (np.random.default_rng(10).random(len(p))[:, None] > p.cumsum(1)).sum(1)  # labels that the scores inform
    s = 4 * np.log(p)
    assert nll(y, softmax_scores(s, fit_temperature(s, y))) <= nll(y, softmax_scores(s))


def test_report_rows_and_rare_class():
    p, y = random_case(3, 400, 4)
    rep = calibration_report(y, p, [0.7, 0.2, 0.05, 0.05], rare_class=3)
    assert rep.index.tolist() == ["as predicted", "logit-adjusted (τ=1)"] and rep.columns.name == "rare class: 3"
    assert rep.loc["as predicted", "ece"] == pytest.approx(ece(y, p))
    assert calibration_report(y, p, [0.7, 0.2, 0.04, 0.06]).columns.name == "rare class: 2"


GOOD_P, GOOD_Y = np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 1])


@pytest.mark.parametrize("call, error, match", [
    (lambda: fit_temperature([[np.inf, 0.0]], [0]), ValueError, "scores must be finite"),
    (lambda: fit_temperature([[-np.inf, 0.0]], [0]), ValueError, "scores must be finite"),
    (lambda: fit_temperature(GOOD_P, [0]), ValueError, "scores has 2 rows but y_true has 1 labels"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=(0, 5)), ValueError, r"bounds\[0\] must be a finite number > 0"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=(5, 1)), ValueError, r"bounds\[1\] must be a finite number > 5"),
    (lambda: fit_temperature(GOOD_P, GOOD_Y, bounds=5), TypeError, r"bounds must be None \(an automatic search\)"),
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
    (lambda: calibration_report(GOOD_Y, GOOD_P, [1, 0]), ValueError, "priors must be finite and > 0"),
    (lambda: calibration_report(GOOD_Y, GOOD_P, [1, 1], rare_class=5), ValueError, "rare_class=5 is not one of"),
    (lambda: calibration_report(GOOD_Y, GOOD_P, [1, 1], tau=-2), ValueError, "tau must be"),
    (lambda: calibration_report(GOOD_Y, [[0.5, 0.6], [0.5, 0.5]], [1, 1]), ValueError, "must sum to 1"),
    (lambda: calibration_report(GOOD_Y, GOOD_P, [1, 1], n_bins=0), ValueError, "n_bins must be a positive int"),
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


def _automm_order_case():
    order = automm_classes(["a"] * 90 + ["b"] * 10, pos_label="a")  # ['b', 'a']: AutoMM's predict_proba order
    proba = pd.DataFrame([[0.3, 0.7], [0.6, 0.4]], columns=order, index=[4, 9])
    return order, proba, class_priors(["a"] * 90 + ["b"] * 10)  # the priors indexed ['a', 'b']


def test_logit_adjust_matches_a_series_of_priors_to_the_dataframes_columns():
    """A Series of priors is applied by class name to a DataFrame's columns, and the DataFrame comes back labelled."""
    order, proba, pri = _automm_order_case()
    out = logit_adjust(np.log(proba), pri)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == order and out.index.tolist() == [4, 9]
    expected = np.log(proba.to_numpy()) - np.log([0.1, 0.9])  # column 'b' has prior 0.1, column 'a' 0.9
    assert np.allclose(out.to_numpy(), expected)
    assert np.allclose(softmax_scores(out), adjust_proba(proba, pri))


def test_softmax_scores_keeps_a_dataframes_labels():
    """softmax_scores of a DataFrame is a DataFrame with the same index and columns."""
    s = pd.DataFrame([[1.0, 2.0], [0.0, -1.0]], columns=["cat", "dog"], index=["x", "y"])
    out = softmax_scores(s, 2.0)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["cat", "dog"] and out.index.tolist() == ["x", "y"]
    assert np.allclose(out.to_numpy(), softmax_scores(s.to_numpy(), 2.0))


def test_adjust_proba_aligns_a_series_of_priors_with_classes():
    """adjust_proba takes classes= for an array, so a Series of priors is matched by name there too."""
    order, proba, pri = _automm_order_case()
    got = adjust_proba(proba.to_numpy(), pri, classes=order)
    assert isinstance(got, np.ndarray) and np.allclose(got, adjust_proba(proba, pri).to_numpy())
    assert np.allclose(adjust_proba(proba.to_numpy(), [0.1, 0.9]), got)  # a plain list stays positional


def test_a_series_of_priors_with_unlabelled_columns_is_refused():
    """A Series of priors indexed by labels cannot be matched to an array's columns without classes=."""
    _, proba, pri = _automm_order_case()
    for call in (lambda: adjust_proba(proba.to_numpy(), pri), lambda: logit_adjust(np.log(proba.to_numpy()), pri)):
        with pytest.raises(ValueError, match=r"priors is indexed by \['a', 'b'\].*pass `classes=`"):
            call()


def test_fit_temperature_reads_a_dataframes_columns_as_its_classes():
    """Integer labels name the columns [1, 0], and string labels work with class-named columns."""
    p, _ = random_case(11, 400, 2, concentration=0.8)
    y = (np.random.default_rng(12).random(400) < p[:, 1]).astype(int)
    s = 2 * np.log(p)
    t = fit_temperature(s, y)
    assert fit_temperature(pd.DataFrame(s[:, ::-1], columns=[1, 0]), y) == pytest.approx(t, rel=1e-6)
    named = np.array(["cat", "dog"])[y]
    assert fit_temperature(pd.DataFrame(s, columns=["cat", "dog"]), named) == pytest.approx(t, rel=1e-6)


def test_calibration_report_takes_a_dataframe_with_string_labels():
    """A DataFrame with string labels: the report equals that of the array with classes=."""
    p, y = random_case(21, 300, 3)
    names = np.array(["x", "y", "z"])
    df = pd.DataFrame(p, columns=list(names))
    pri = class_priors(np.repeat(names, [60, 30, 10]))
    rep = calibration_report(names[y], df, pri)
    pd.testing.assert_frame_equal(rep, calibration_report(names[y], p, pri, classes=list(names)))
    assert rep.columns.name == "rare class: 'z'"


def _nll_at_t(s, y, t):
    return nll(y, softmax_scores(s, t))


def test_fit_temperature_searches_past_the_old_bound():
    """Logits 100 times too sharp: the fitted T is near 100 (not 20, the old bound) and has the lower NLL."""
    p, _ = random_case(7, 2000, 4, concentration=0.8)
    y = (np.random.default_rng(8).random(len(p))[:, None] > p.cumsum(1)).sum(1)  # p is calibrated
    s = 100 * np.log(p)
    t = fit_temperature(s, y)
    assert 80 < t < 120 and _nll_at_t(s, y, t) < _nll_at_t(s, y, 20) - 0.5
    assert _nll_at_t(s, y, t) <= min(_nll_at_t(s, y, t * f) for f in (0.99, 1.01))
    small = fit_temperature(s / 1e4, y)  # 100 times too soft: T near 0.01, below the old lower bound 0.05
    assert small == pytest.approx(t / 1e4, rel=1e-3)


def test_fit_temperature_refuses_an_optimum_at_an_explicit_bound():
    """With explicit bounds, an optimum at either end is an error that says how to widen them."""
    p, _ = random_case(7, 2000, 4, concentration=0.8)
    y = (np.random.default_rng(8).random(len(p))[:, None] > p.cumsum(1)).sum(1)
    with pytest.raises(ValueError, match=r"upper bound T = 20 .*widen.*bounds=\(0\.05, 2000\)"):
        fit_temperature(100 * np.log(p), y, bounds=(0.05, 20))
    with pytest.raises(ValueError, match=r"lower bound T = 0\.05 .*widen.*bounds=\(0\.0005, 20\)"):
        fit_temperature(np.log(p) / 100, y, bounds=(0.05, 20))


def test_fit_temperature_refuses_scores_that_say_nothing_of_the_labels():
    """Scores that rank the true class no higher than the mean class: the NLL falls as T grows; refused, not T = cap."""
    s = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    y = np.array([1, 0, 1, 1])  # three in four wrong
    for bounds in (None, (0.05, 20)):
        with pytest.raises(ValueError, match=r"NLL keeps falling as T grows.*no higher than the average class"):
            fit_temperature(s, y, bounds=bounds)


def test_fit_temperature_docstring_states_the_no_error_case():
    """The no-error special case (the lower bound is returned) is documented where the function is."""
    assert "lower bound" in fit_temperature.__doc__ and "no error" in fit_temperature.__doc__


def test_softmax_scores_of_huge_logits_is_finite_without_warnings():
    """Logits of 1e307 at T = 0.05 give probabilities, not NaN (the row maximum is subtracted first)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert softmax_scores([[1e307, 0.0]], 0.05).tolist() == [[1.0, 0.0]]
        assert softmax_scores([[1e307, -np.inf, -1e307]], 0.05).tolist() == [[1.0, 0.0, 0.0]]


def test_fit_temperature_is_not_upset_by_a_huge_logit():
    """A row of huge, correct logits adds nothing to the NLL, so T is that of the other rows, without warnings."""
    import warnings
    p, _ = random_case(5, 500, 3, concentration=0.8)
    y = (np.random.default_rng(6).random(len(p))[:, None] > p.cumsum(1)).sum(1)
    s = 0.5 * np.log(p)  # T near 0.5: s / T would overflow for the huge row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = fit_temperature(np.vstack([s, [[1.7e308, 0.0, 0.0]]]), np.r_[y, 0])
    assert t == pytest.approx(fit_temperature(s, y), rel=1e-4)


def test_cross_fit_temperature_scales_each_half_with_the_other_halfs_t():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[y]  # errors in both halves: T is not at a bound
    scaled, temps = cross_fit_temperature(logits, y, seed=4)
    assert len(temps) == 2 and (scaled.argmax(1) == logits.argmax(1)).all()
    assert np.allclose(scaled.sum(1), 1)
    # a half's T comes from the other half only: change the logits of the first split's held-out half, and the T
    # scaling it (fitted on the other half) stays, while the other half's T moves
    from sklearn.model_selection import StratifiedKFold
    fit, held = next(StratifiedKFold(2, shuffle=True, random_state=4).split(logits, y))
    changed = logits.copy()
    changed[held] *= 3
    again, temps2 = cross_fit_temperature(changed, y, seed=4)
    assert temps2[0] == temps[0] and temps2[1] != pytest.approx(temps[1], rel=1e-3)
    assert np.allclose(again[held], softmax_scores(changed[held], temps[0]))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(folds=1), ValueError, "folds must be an int >= 2"),
    (dict(seed=-1), ValueError, "seed must be an int"),
    (dict(y=np.array([0, 0, 0, 1])), ValueError, "every class needs at least folds=2 samples"),
    (dict(logits=np.full((4, 2), np.inf)), ValueError, "logits must be finite"),
    (dict(y=np.array([0, 1, 5, 1])), ValueError, r"y must hold class positions 0\.\.1"),
])
def test_cross_fit_temperature_refuses_bad_input(kwargs, error, match):
    args = {"logits": np.zeros((4, 2)), "y": np.array([0, 1, 0, 1]), **kwargs}
    with pytest.raises(error, match=match):
        cross_fit_temperature(**args)


def test_calibration_report_refuses_probabilities_first():
    with pytest.raises(TypeError, match=r"arguments look swapped.*calibration_report\(y_test, proba, priors\)"):
        calibration_report(GOOD_P, GOOD_Y, [1, 1])
