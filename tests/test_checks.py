"Errors and properties of focal_tutorial._checks, the one home of the package's argument checks."
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from focal_tutorial._checks import (SEED_MAX, check_1d, check_alpha, check_choice, check_classes, check_factor,
                                    check_gamma, check_int, check_number, check_seed, label_series, sorted_classes)


# --- numbers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, [0.5], 1j, object()])
def test_check_number_refuses_non_numbers_with_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^lr must be a finite number > 0, got .*; 1e-2 is the default\.$"):
        check_number("lr", value, low=0, low_open=True, hint="1e-2 is the default")


@pytest.mark.parametrize("value, message", [
    (float("nan"), "beta must be a finite number in [0, 1), got nan"),
    (float("inf"), "beta must be a finite number in [0, 1), got inf"),
    (-0.1, "beta must be a finite number in [0, 1), got -0.1"),
    (1.0, "beta must be a finite number in [0, 1), got 1.0"),
    (1, "beta must be a finite number in [0, 1), got 1"),
    (2**2000, "beta must be a finite number in [0, 1), got 1"),  # a huge int: no OverflowError
])
def test_check_number_range_errors(value, message):
    with pytest.raises(ValueError) as e:
        check_number("beta", value, low=0, high=1, high_open=True)
    assert str(e.value).startswith(message)


def test_check_number_open_and_closed_ends_and_huge_ints():
    assert check_number("x", 0, low=0) == 0.0 and type(check_number("x", 0, low=0)) is float
    with pytest.raises(ValueError, match=r"x must be a finite number > 0, got 0"):
        check_number("x", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number <= 1, got 2"):
        check_number("x", 2, high=1)
    with pytest.raises(ValueError, match="too large for a float"):
        check_number("x", 2**2000)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(-1e6, 1e6), st.floats(0, 1e6), st.booleans(),
       st.booleans())
def test_check_number_accepts_exactly_the_range(x, low, width, low_open, high_open):
    high = low + width
    inside = (x > low or (x == low and not low_open)) and (x < high or (x == high and not high_open))
    try:
        assert check_number("x", x, low=low, high=high, low_open=low_open, high_open=high_open) == x
        assert inside
    except ValueError as e:
        assert not inside and str(e).startswith("x must be a finite number in ")


@pytest.mark.parametrize("value, error", [(1.0, TypeError), (True, TypeError), ("3", TypeError), (None, TypeError),
                                          (0, ValueError), (-5, ValueError)])
def test_check_int_errors(value, error):
    with pytest.raises(error, match=r"^epochs must be a positive int, got .*; e\.g\. epochs=20\.$"):
        check_int("epochs", value, low=1, hint="e.g. epochs=20")


def test_check_int_ranges_and_numpy_ints():
    assert check_int("n", np.int64(3)) == 3 and type(check_int("n", np.uint8(3))) is int
    assert check_int("k", 0, low=0) == 0
    with pytest.raises(ValueError, match=r"k must be a non-negative int, got -1"):
        check_int("k", -1, low=0)
    with pytest.raises(ValueError, match=r"k must be an int in \[2, 4\], got 5"):
        check_int("k", 5, low=2, high=4)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError), (2**64, ValueError),
                                         (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_check_seed_names_the_argument(seed, error):
    with pytest.raises(error, match=r"^seeds\[2\] must be an int in \[0, 4294967295\], got .*any int from 0"):
        check_seed(seed, "seeds[2]")


@given(st.integers(0, SEED_MAX))
def test_every_valid_seed_is_accepted_by_numpy(seed):
    assert check_seed(seed) == seed
    np.random.RandomState(seed)  # the strictest consumer: the legacy generator
    np.random.default_rng(seed)


@pytest.mark.parametrize("gamma, error", [(-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                          ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_check_gamma_says_what_the_values_mean(gamma, error):
    with pytest.raises(error) as e:
        check_gamma(gamma)
    assert str(e.value).startswith("gamma must be a finite number >= 0, got ")
    assert "0 is (alpha-weighted) cross-entropy, 2 is Lin et al.'s default" in str(e.value)
    assert "seed" not in str(e.value)


@pytest.mark.parametrize("make", [lambda torch: torch.tensor(0.5), lambda torch: torch.tensor([0.5]),
                                  lambda torch: np.array(0.5), lambda torch: np.array([0.5]), lambda torch: np.float32(0.5)],
                         ids=["tensor0d", "tensor1", "array0d", "array1", "np-scalar"])
def test_check_gamma_reads_a_one_element_tensor_or_array(make):
    "A one-element tensor or array without grad counts as its number (issue 26, item 19)."
    value = check_gamma(make(pytest.importorskip("torch")))
    assert value == 0.5 and type(value) is float


def test_check_gamma_refuses_a_tensor_that_requires_grad():
    "The loss does not differentiate gamma: a tensor with grad is refused, with the way to pass its value (item 19)."
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError) as e:
        check_gamma(torch.tensor(2.0, requires_grad=True), "gammas[1]")
    assert str(e.value).startswith("gammas[1] is a fixed hyperparameter that the loss does not differentiate")
    assert "`float(gammas[1])` (or `gammas[1].item()`)" in str(e.value)


@pytest.mark.parametrize("make, error", [(lambda torch: torch.tensor(-1.0), ValueError),
                                         (lambda torch: torch.tensor([1.0, 2.0]), TypeError),
                                         (lambda torch: np.array([float("nan")]), ValueError),
                                         (lambda torch: torch.tensor(True), TypeError)],
                         ids=["negative", "two-elements", "nan-array", "bool"])
def test_check_gamma_checks_a_tensors_value_as_a_number(make, error):
    "A tensor's or array's value gets the checks and the message a number gets (item 19)."
    with pytest.raises(error) as e:
        check_gamma(make(pytest.importorskip("torch")))
    assert str(e.value).startswith("gamma must be a finite number >= 0, got ")


@pytest.mark.parametrize("factor, error", [(0, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                           (float("nan"), ValueError), ("1/3", TypeError), (True, TypeError)])
def test_check_factor_one_message(factor, error):
    with pytest.raises(error, match=r"^factor must be a finite number in \(0, 1\], got .*class k keeps n_k \* "):
        check_factor(factor)
    assert check_factor(1) == 1.0


def test_check_choice():
    assert check_choice("method", "sqrt", ("inverse", "sqrt")) == "sqrt"
    with pytest.raises(ValueError, match=r"^unknown method 'log'; choose one of 'inverse', 'sqrt'\.$"):
        check_choice("method", "log", ("inverse", "sqrt"))
    with pytest.raises(TypeError, match=r"^method must be one of 'inverse', 'sqrt', got None"):
        check_choice("method", None, ("inverse", "sqrt"))
    with pytest.raises(TypeError, match="method must be one of"):
        check_choice("method", ["inverse"], ("inverse", "sqrt"))


# --- labels and classes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, error, message", [
    ("abc", TypeError, "y_true must be a 1-D list"),
    (5, TypeError, "y_true must be a 1-D list"),
    ({"a": 1}, TypeError, "y_true must be a 1-D list"),
    (pd.DataFrame({"label": [1, 2]}), TypeError, "y_true must be 1-D, got a DataFrame"),
    (np.zeros((2, 2)), ValueError, "y_true must be 1-D, got an array of shape (2, 2)"),
    (np.array(3), ValueError, "y_true must be 1-D, got an array of shape ()"),
])
def test_check_1d(labels, error, message):
    with pytest.raises(error) as e:
        check_1d(labels, "y_true")
    assert message in str(e.value)


@pytest.mark.parametrize("labels, error, message", [
    ([], ValueError, "y_pred is empty"),
    (np.array([]), ValueError, "y_pred is empty"),
    (["a", None, "b", None], ValueError, "y_pred has 2 missing labels (None/NaN), first at positions [1, 3];"),
    (pd.Series([1.0, float("nan")]), ValueError, "first at positions [1];"),
    ([[1, 2], [3, 4]], TypeError, "y_pred must hold hashable labels (ints, strings or tuples), got [1, 2] (list) at position 0"),
    (["a", {"b"}], TypeError, "got {'b'} (set) at position 1"),
])
def test_label_series_errors_are_ours_and_plain(labels, error, message):
    with pytest.raises(error) as e:
        label_series(labels, "y_pred")
    assert message in str(e.value) and "np.int64" not in str(e.value)


def test_label_series_categorical_drops_unused_categories_and_keeps_tuples():
    cat = pd.Series(pd.Categorical(["a", "a", "b"], categories=["a", "b", "c"]), index=[10, 11, 12])
    s = label_series(cat)
    assert s.value_counts().to_dict() == {"a": 2, "b": 1}
    assert list(s.index) == [0, 1, 2]
    assert label_series([(0, "x"), (1, "y"), (0, "x")]).value_counts().to_dict() == {(0, "x"): 2, (1, "y"): 1}
    assert label_series(np.array([3, 1])).tolist() == [3, 1]


def test_label_series_accepts_a_tensor_without_importing_torch_itself():
    torch = pytest.importorskip("torch")
    assert label_series(torch.tensor([2, 0, 2])).tolist() == [2, 0, 2]


def test_sorted_classes():
    assert sorted_classes(np.array([3, 1, 3])) == [1, 3] and type(sorted_classes(np.array([3]))[0]) is int
    assert sorted_classes([(1, "b"), (0, "z"), (1, "b")]) == [(0, "z"), (1, "b")]
    with pytest.raises(TypeError, match="mix types that cannot be sorted"):
        sorted_classes([1, "a"])
    with pytest.raises(TypeError, match="hashable"):
        sorted_classes([[1], [2]])


@pytest.mark.parametrize("classes, error, message", [
    ("abc", TypeError, "classes must be a list of class labels"),
    (3, TypeError, "classes must be a list of class labels"),
    ([], ValueError, "classes is empty"),
    (["a", "b", "a", "b"], ValueError, "classes has duplicates ['a', 'b']; list each class once."),
    ([np.int64(1), 1], ValueError, "classes has duplicates [1];"),
    ([["a"], ["b"]], TypeError, "classes must hold hashable labels (ints, strings or tuples), got ['a'] (list) at position 0"),
])
def test_check_classes_errors(classes, error, message):
    with pytest.raises(error) as e:
        check_classes(classes)
    assert message in str(e.value)


def test_check_classes_is_linear():
    many = list(range(200_000))
    t0 = time.perf_counter()
    assert check_classes(many) == many
    assert time.perf_counter() - t0 < 1.0  # a quadratic check would take minutes here


# --- alpha --------------------------------------------------------------------------------------------------------

def test_check_alpha_accepts_sequences_arrays_and_tensors():
    assert check_alpha(None) is None
    assert check_alpha([1, 3], n_classes=2) == [1.0, 3.0]
    assert check_alpha((0.5, 0.5)) == [0.5, 0.5]
    assert check_alpha(np.array([0.25, 0.75], dtype=np.float32)) == [0.25, 0.75]
    torch = pytest.importorskip("torch")
    assert check_alpha(torch.tensor([0.25, 0.75])) == [0.25, 0.75]


def test_check_alpha_series_is_reordered_by_classes_or_refused():
    s = pd.Series({"dog": 0.75, "cat": 0.25})
    assert check_alpha(s, classes=["cat", "dog"]) == [0.25, 0.75]
    with pytest.raises(ValueError, match="alpha is a Series indexed by .*may not be in class order"):
        check_alpha(s)
    with pytest.raises(ValueError, match="are not the classes"):
        check_alpha(s, classes=["cat", "cow"])


@pytest.mark.parametrize("alpha, kwargs, error, message", [
    ({"a": 1.0}, {}, TypeError, "not a dict"),
    ("0.5", {"n_classes": 2}, ValueError, "alpha has 1 weights but there are 2 classes"),  # a string of one weight
    (b"0.5,0.5", {}, TypeError, "alpha must be None or a list"),
    (0.5, {}, TypeError, "alpha must be None or a list"),
    (np.ones((2, 2)), {}, ValueError, "alpha must be 1-D"),
    ([0.5, -1], {}, ValueError, "alpha[1] must be a finite number >= 0, got -1"),
    ([0.5, float("nan")], {}, ValueError, "alpha[1] must be a finite number >= 0, got nan"),
    ([0.5, "x"], {}, TypeError, "alpha[1] must be a finite number >= 0, got 'x'"),
    ([0.5, True], {}, TypeError, "alpha[1] must be a finite number"),
    ([0, 0], {}, ValueError, "alpha is all zeros"),
    ([], {}, ValueError, "alpha is empty"),
    ([0.5, 0.5], {"n_classes": 3}, ValueError, "alpha has 2 weights but there are 3 classes"),
    ([0.5, 0.5], {"classes": ["a", "b", "c"]}, ValueError, "alpha has 2 weights but there are 3 classes"),
])
def test_check_alpha_errors(alpha, kwargs, error, message):
    with pytest.raises(error) as e:
        check_alpha(alpha, **kwargs)
    assert message in str(e.value)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=20).filter(any))
def test_check_alpha_roundtrip(weights):
    assert check_alpha(weights, n_classes=len(weights)) == weights
    assert check_alpha(np.array(weights)) == weights


# issue 17, item 10: the strings AutoMM's FocalLoss reads (and HPO samples) are accepted, strictly, as AutoMM reads them
@pytest.mark.parametrize("text, weights", [
    ("0.0667,0.1333,0.2667,0.5333", [0.0667, 0.1333, 0.2667, 0.5333]),  # what tuning's alpha_string writes
    ("(0.25,0.75)", [0.25, 0.75]),  # AutoMM strips '(' and ')'
    ("0.25, 0.75", [0.25, 0.75]),  # float() ignores the spaces around a number
    ("1e-3,2", [0.001, 2.0]),
    ("3", [3.0]),
])
def test_check_alpha_reads_automms_alpha_strings(text, weights):
    assert check_alpha(text) == weights
    assert check_alpha(text, n_classes=len(weights), name="optim.focal_loss.alpha") == weights


@pytest.mark.parametrize("text, error, message", [
    ("[0.25,0.75]", ValueError, r"alpha='\[0.25,0.75\]' is not a list of numbers AutoMM can read \(part 0, '\[0.25', "),
    ("", ValueError, r"alpha='' is not a list of numbers AutoMM can read"),
    ("0.25,,0.75", ValueError, r"part 1, '', is not a number"),
    ("0.25,0.75,", ValueError, r"part 2, '', is not a number"),
    ("0.25;0.75", ValueError, r"part 0, '0.25;0.75', is not a number"),
    ("0.25,nan", ValueError, r"alpha\[1\] must be a finite number >= 0, got nan"),  # AutoMM would train on NaN
    ("0.25,inf", ValueError, r"alpha\[1\] must be a finite number >= 0, got inf"),
    ("-0.25,0.75", ValueError, r"alpha\[0\] must be a finite number >= 0, got -0.25"),
    ("0,0", ValueError, "alpha is all zeros"),
])
def test_check_alpha_refuses_bad_alpha_strings(text, error, message):
    with pytest.raises(error, match=message):
        check_alpha(text)


def test_check_alpha_string_count_is_checked_against_the_classes():
    with pytest.raises(ValueError, match="alpha has 3 weights but there are 2 classes"):
        check_alpha("0.2,0.3,0.5", classes=["cat", "dog"])


def test_check_alpha_accepts_what_automms_focal_loss_accepts():
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("autogluon.multimodal.optim.losses.focal_loss")
    for text in ("0.0667,0.1333,0.2667,0.5333", "(0.25,0.75)", "0.25, 0.75", "((1e-3,2))"):
        read = losses.FocalLoss(alpha=text).nll_loss.weight  # AutoMM's own parser
        assert torch.allclose(read, torch.tensor(check_alpha(text), dtype=torch.float32)), text


# issue 17, item 2: a set has no order of its own, so it is refused where an order says which class is which
@pytest.mark.parametrize("value", [{0.1, 0.2, 0.3}, frozenset([0.1, 0.2]), {"a": 0.1, "b": 0.2}.keys()])
def test_check_alpha_refuses_sets(value):
    with pytest.raises(TypeError, match=r"alpha must be a list in a fixed order, not a (set|frozenset|dict_keys): "
                                        r"a set has no order .*e\.g\. \[weight\[c\] for c in classes\]"):
        check_alpha(value)


@pytest.mark.parametrize("value", [{"a", "b", "c"}, frozenset(["a", "b"]), {"a": 1, "b": 2}.keys()])
def test_check_classes_refuses_sets(value):
    with pytest.raises(TypeError, match=r"classes must be a list in a fixed order, not a .*classes=sorted\(\.\.\.\)"):
        check_classes(value)
    with pytest.raises(TypeError, match="not a"):
        check_alpha([0.5, 0.5], classes=value)


# issue 17, item 15: complex and bool weights are refused as a whole, arrays and tensors as lists are
def test_check_alpha_refuses_complex_and_bool_arrays():
    torch = pytest.importorskip("torch")
    for alpha in (np.array([0.5 + 1j, 0.5]), torch.tensor([0.5 + 0j, 0.5]), [0.5 + 0j, 0.5]):
        with pytest.raises(TypeError, match=r"alpha(\[0\])? must"):
            check_alpha(alpha)
    for alpha in (np.array([True, False]), torch.tensor([True, True]), [True, True]):
        with pytest.raises(TypeError, match=r"alpha(\[0\])? must (hold real weights|be a finite number)"):
            check_alpha(alpha)
    with pytest.raises(TypeError, match="got an array of dtype torch.complex64"):
        check_alpha(torch.tensor([1 + 0j, 1]))
    with pytest.raises(TypeError, match="got an array of dtype torch.bool"):
        check_alpha(torch.tensor([True, True]))


# issue 17, item 15: a huge number is shown short in messages
@pytest.mark.parametrize("value, shown", [
    (10**400, "got 1.000e+400, too large for a float"),
    (-10**400, "got -1.000e+400;"),
    (10**5000, "got 1.000e+5000, too large"),  # Python refuses to write ints of more than 4300 digits
    (10**400 - 1, "got 9.999e+399, too large"),
    (123456789 * 10**391, "got 1.234e+399, too large"),
], ids=["1e400", "-1e400", "1e5000", "1e400-1", "1.234e399"])
def test_huge_numbers_are_shown_short(value, shown):
    with pytest.raises(ValueError) as e:
        check_gamma(value)
    assert shown in str(e.value) and len(str(e.value)) < 250
    with pytest.raises(ValueError) as e:
        check_int("epochs", -value if value > 0 else value, low=1)
    assert "e+" in str(e.value) and len(str(e.value)) < 120


def test_checks_import_neither_torch_nor_autogluon():
    code = ("import sys, focal_tutorial._checks; "
            "bad = [m for m in ('torch', 'autogluon', 'lightning') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_list():
    from focal_tutorial._checks import check_list
    gamma = lambda n, g: check_gamma(g, n)
    assert check_list("gammas", range(3), gamma) == [0.0, 1.0, 2.0]
    assert check_list("seeds", [1, 1], unique=False) == [1, 1]
    with pytest.raises(TypeError, match=r"gammas must be a list .* e\.g\. gammas=\[0, 2\]"):
        check_list("gammas", "0,2", gamma, example="[0, 2]")
    with pytest.raises(TypeError, match="must be a list"):
        check_list("gammas", {0: 1}, gamma)  # a dict's keys are not a list of values
    with pytest.raises(ValueError, match=r"gammas is empty \(an empty search space\)"):
        check_list("gammas", [], gamma, empty=" (an empty search space)")
    with pytest.raises(ValueError, match=r"gammas has duplicates \[2\.0\]"):
        check_list("gammas", [2, 0, 2.0], gamma)  # 2 and 2.0 are one value once checked
    with pytest.raises(ValueError, match=r"gammas\[1\]"):
        check_list("gammas", [0, -1], gamma)


def test_huge_values_in_lists_are_shown_short():  # issue 17, item 15: no 5000-digit message, no int-to-str error
    from focal_tutorial._checks import check_list
    with pytest.raises(ValueError, match=r"^classes has duplicates \[1\.000e\+5000\]; list each class once\.$"):
        check_classes([10**5000, 10**5000, 10**5000])
    with pytest.raises(ValueError, match=r"^seeds has duplicates \[1\.000e\+5000\]; list each value once\.$"):
        check_list("seeds", [10**5000, 10**5000])
