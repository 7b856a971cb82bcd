"Properties and errors of focal_tutorial.core (class weights, make_imbalanced)."
import math
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from focal_tutorial.core import WEIGHT_METHODS, class_weights, make_imbalanced

# A label multiset: class name -> count (at least one sample each).
counts_st = st.dictionaries(st.sampled_from(list("abcdefgh")), st.integers(1, 300), min_size=1, max_size=8)
method_st = st.sampled_from(WEIGHT_METHODS)
beta_st = st.floats(0, 0.9999)


def expand(counts):
    return [c for c, n in counts.items() for _ in range(n)]


@given(counts_st, method_st, beta_st)
def test_weights_sum_to_one_and_follow_sorted_class_order(counts, method, beta):
    w = class_weights(expand(counts), method=method, beta=beta)
    assert len(w) == len(counts)
    assert all(isinstance(x, float) and x > 0 for x in w)
    assert sum(w) == pytest.approx(1, abs=1e-12)
    # Position i belongs to the i-th sorted class: same as passing the sorted classes explicitly.
    assert w == class_weights(expand(counts), classes=sorted(counts), method=method, beta=beta)


@given(counts_st, method_st, beta_st, st.randoms(use_true_random=False))
def test_invariant_to_shuffling(counts, method, beta, rnd):
    labels = expand(counts)
    shuffled = labels.copy()
    rnd.shuffle(shuffled)
    assert class_weights(shuffled, method=method, beta=beta) == pytest.approx(
        class_weights(labels, method=method, beta=beta), rel=1e-12)


@given(counts_st, method_st, beta_st)
def test_rarer_class_never_gets_smaller_weight(counts, method, beta):
    classes = sorted(counts)
    w = dict(zip(classes, class_weights(expand(counts), method=method, beta=beta)))
    for a in classes:
        for b in classes:
            if counts[a] < counts[b]:
                assert w[a] >= w[b]
            if counts[a] == counts[b]:
                assert w[a] == pytest.approx(w[b], rel=1e-12)


@given(counts_st, st.permutations(list("abcdefgh")))
def test_explicit_classes_reorder(counts, perm):
    order = [c for c in perm if c in counts]
    w = dict(zip(sorted(counts), class_weights(expand(counts))))
    assert class_weights(expand(counts), classes=order) == pytest.approx([w[c] for c in order], rel=1e-12)


@given(counts_st)
def test_methods_match_their_formulas(counts):
    n = np.array([counts[c] for c in sorted(counts)], dtype=float)
    labels = expand(counts)
    assert class_weights(labels, method="inverse") == pytest.approx(list((1 / n) / (1 / n).sum()), rel=1e-9)
    assert class_weights(labels, method="sqrt") == pytest.approx(list(n**-0.5 / (n**-0.5).sum()), rel=1e-9)
    eff = (1 - 0.99) / (1 - 0.99**n)
    assert class_weights(labels, method="effective", beta=0.99) == pytest.approx(list(eff / eff.sum()), rel=1e-9)


def test_seed_weights_for_the_seed_counts():
    n = np.array([200, 66, 22, 7])
    labels = np.repeat(np.array(["w", "x", "y", "z"]), n)
    seed = (1 / (n / n.sum())) / (1 / (n / n.sum())).sum()
    np.testing.assert_allclose(class_weights(labels), seed, rtol=0, atol=1e-12)


def test_accepts_series_arrays_ints_and_strings():
    ints = [3, 1, 1, 2, 2, 2]
    ref = class_weights(ints)
    assert class_weights(np.array(ints)) == ref
    assert class_weights(pd.Series(ints)) == ref
    assert class_weights(pd.Series(ints).astype("category")) == ref
    assert class_weights([str(i) for i in ints]) == ref  # '1' < '2' < '3' sorts like 1 < 2 < 3


@pytest.mark.parametrize("labels, kwargs, message", [
    ([], {}, "no labels"),
    (np.array([]), {}, "no labels"),
    (["a", None, "b"], {}, "missing labels"),
    ([1.0, float("nan")], {}, "missing labels"),
    (pd.Series(["a", None]), {}, "missing labels"),
    (["a", "b"], {"classes": ["a", "b", "c"]}, "'c'] have no sample"),
    (["a", "z"], {"classes": ["a"]}, "['z'] are not in classes"),
    (["a", "b"], {"classes": ["a", "b", "a"]}, "duplicates"),
    (["a"], {"beta": 1.0}, "beta must be"),
    (["a"], {"beta": -0.1}, "beta must be"),
    (["a"], {"method": "log"}, "'inverse', 'sqrt', 'effective'"),
    (np.zeros((2, 2)), {}, "must be 1-D"),
])
def test_value_errors(labels, kwargs, message):
    with pytest.raises(ValueError, match=None) as e:
        class_weights(labels, **kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("labels", ["abc", 5, pd.DataFrame({"label": [1, 2]})])
def test_type_errors(labels):
    with pytest.raises(TypeError, match="1-D"):
        class_weights(labels)


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": "0.9"}, "beta must be a finite number in [0, 1), got '0.9'"),
    ({"beta": True}, "beta must be a finite number in [0, 1), got True"),
    ({"method": None}, "method must be one of 'inverse', 'sqrt', 'effective', got None"),
])
def test_setting_type_errors(kwargs, message):
    with pytest.raises(TypeError) as e:
        class_weights(["a"], **kwargs)
    assert message in str(e.value)


def test_mixed_types_need_explicit_classes():
    with pytest.raises(TypeError, match="classes="):
        class_weights([1, "a"])
    assert class_weights([1, "a", "a"], classes=[1, "a"]) == pytest.approx([2 / 3, 1 / 3])


def balanced(per_class=200, classes="dcba"):
    return pd.DataFrame({"image": [f"{c}_{i}.png" for c in classes for i in range(per_class)],
                         "label": [c for c in classes for _ in range(per_class)]})


def test_make_imbalanced_seed_counts_and_order():
    df = balanced()
    out = make_imbalanced(df, factor=1 / 3, seed=0)
    assert out["label"].value_counts()[["a", "b", "c", "d"]].tolist() == [200, 66, 22, 7]
    assert out.index.is_monotonic_increasing and out.index.isin(df.index).all()
    pd.testing.assert_frame_equal(out, df.loc[out.index])


@given(st.integers(0, 2**32 - 1), st.floats(0.3, 1.0), st.integers(20, 60))
@settings(max_examples=30, deadline=None)
def test_make_imbalanced_deterministic_and_geometric(seed, factor, per_class):
    df = balanced(per_class, classes="abc")
    out = make_imbalanced(df, factor=factor, seed=seed)
    assert out.index.equals(make_imbalanced(df, factor=factor, seed=seed).index)
    got = out["label"].value_counts().reindex(list("abc")).tolist()
    assert got == [math.floor(round(per_class * factor**k, 9)) for k in range(3)]  # round: 27 * (1/3)**3 is 1
    assert not out.index.duplicated().any()


def test_make_imbalanced_seeds_differ_and_factor_one_keeps_all():
    df = balanced(50)
    assert not make_imbalanced(df, seed=0).index.equals(make_imbalanced(df, seed=1).index)
    assert make_imbalanced(df, factor=1).index.equals(df.index)


@pytest.mark.parametrize("kwargs, message", [
    ({"label": "class"}, "no label column 'class'"),
    ({"factor": 0}, "factor must be a finite number in (0, 1], got 0"),
    ({"factor": 1.5}, "factor must be a finite number in (0, 1], got 1.5"),
    ({"factor": float("nan")}, "factor must be a finite number in (0, 1], got nan"),
    ({"seed": -1}, "seed must be an int in [0, 4294967295], got -1"),
    ({"seed": 2**32}, "seed must be an int in [0, 4294967295], got 4294967296"),
    ({"factor": 0.01}, "class 'c' (number 2 in sorted order, 200 rows) would keep 0 rows"),
])
def test_make_imbalanced_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        make_imbalanced(balanced(), **kwargs)
    assert message in str(e.value)


@given(st.lists(st.integers(1, 500), min_size=2, max_size=6), st.floats(0.001, 1.0))
def test_make_imbalanced_suggested_factor_works(sizes, factor):
    df = pd.DataFrame({"label": [k for k, n in enumerate(sizes) for _ in range(n)]})
    try:
        make_imbalanced(df, factor=factor)
    except ValueError as e:
        suggested = float(str(e).split("use factor >= ")[1].split(",")[0])
        assert suggested > factor
        assert (make_imbalanced(df, factor=suggested)["label"].value_counts() > 0).all()


@pytest.mark.parametrize("labels, factor, message", [
    # class 0 keeps all its rows whatever the factor: a single row of it must not push the hint to 1
    ([0] + [1] * 50, 0.01, "class 1 (number 1 in sorted order, 50 rows) would keep 0 rows with factor=0.01; "
                           "use factor >= 0.02,"),
    ([0] * 3 + [1] * 100 + [2] * 100, 0.05, "class 2 (number 2 in sorted order, 100 rows) would keep 0 rows with "
                                            "factor=0.05; use factor >= 0.1,"),
    (["a"] * 2 + ["b"] * 10, 0.05, "class 'b' (number 1 in sorted order, 10 rows)"),
])
def test_make_imbalanced_hint_is_the_smallest_working_factor_and_plain(labels, factor, message):
    df = pd.DataFrame({"label": labels})
    with pytest.raises(ValueError) as e:
        make_imbalanced(df, factor=factor)
    assert message in str(e.value) and "np." not in str(e.value)
    suggested = float(str(e.value).split("use factor >= ")[1].split(",")[0])
    assert (make_imbalanced(df, factor=suggested)["label"].value_counts() > 0).all()
    with pytest.raises(ValueError, match="would keep 0 rows"):
        make_imbalanced(df, factor=suggested - 0.001)


def test_make_imbalanced_type_and_missing_labels():
    with pytest.raises(TypeError, match="DataFrame"):
        make_imbalanced([1, 2, 3])
    with pytest.raises(ValueError, match="missing labels"):
        make_imbalanced(pd.DataFrame({"label": ["a", None]}))


def test_core_imports_neither_torch_nor_autogluon():
    code = ("import sys, focal_tutorial.core; "
            "bad = [m for m in ('torch', 'autogluon', 'lightning') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- issue 10, item 2: unused categories of a categorical label column --------------------------------------------

def filtered_categorical():
    "A categorical column after filtering: category 'c' has no row left."
    return pd.Series(pd.Categorical(["a", "a", "b"], categories=["a", "b", "c"]))


def test_unused_categories_are_not_classes():
    assert class_weights(filtered_categorical()) == pytest.approx([1 / 3, 2 / 3])
    assert class_weights(filtered_categorical(), classes=["b", "a"]) == pytest.approx([2 / 3, 1 / 3])


def test_a_listed_class_without_rows_is_the_no_sample_error_even_if_it_is_a_category():
    with pytest.raises(ValueError, match=r"classes \['c'\] have no sample in labels"):
        class_weights(filtered_categorical(), classes=["a", "b", "c"])


def test_an_unused_category_is_not_blamed_as_an_unknown_label():
    assert class_weights(filtered_categorical(), classes=["a", "b"]) == pytest.approx([1 / 3, 2 / 3])


def test_make_imbalanced_ignores_unused_categories():
    df = pd.DataFrame({"label": pd.Categorical(["x"] * 9 + ["y"] * 9, categories=["w", "x", "y"])})
    assert make_imbalanced(df, factor=1 / 3)["label"].value_counts().to_dict() == {"x": 9, "y": 3, "w": 0}


# --- item 13: many classes in linear time -----------------------------------------------------------------------------

def test_twenty_thousand_classes_take_well_under_a_second():
    classes = list(range(20_000))
    t0 = time.perf_counter()
    w = class_weights(classes * 2, classes=classes)
    assert time.perf_counter() - t0 < 1.0  # the quadratic version took 4 to 7 s
    assert w == pytest.approx([1 / 20_000] * 20_000)


# --- item 16: tuple labels, unhashable labels and classes -------------------------------------------------------------

def test_tuple_labels():
    labels = [(0, "x"), (0, "x"), (1, "y")]
    assert class_weights(labels) == pytest.approx([1 / 3, 2 / 3])
    assert class_weights(labels, classes=[(1, "y"), (0, "x")]) == pytest.approx([2 / 3, 1 / 3])
    df = pd.DataFrame({"label": [(0, "x")] * 9 + [(1, "y")] * 9, "v": range(18)})
    out = make_imbalanced(df, factor=1 / 3)
    assert out["label"].value_counts().to_dict() == {(0, "x"): 9, (1, "y"): 3}


@pytest.mark.parametrize("call, message", [
    (lambda: class_weights([[1, 2], [3, 4]]), "labels must hold hashable labels (ints, strings or tuples), got [1, 2] (list) at position 0"),
    (lambda: class_weights([1, 2], classes=[[1], [2]]), "classes must hold hashable labels"),
    (lambda: class_weights([1, 2], classes="12"), "classes must be a list of class labels"),
    (lambda: make_imbalanced(pd.DataFrame({"label": [[1], [2]]})), "df['label'] must hold hashable labels"),
])
def test_unhashable_labels_get_our_messages(call, message):
    with pytest.raises(TypeError) as e:
        call()
    assert message in str(e.value)


# --- item 17: messages that name the argument, plain numbers, a copy ----------------------------------------------------

@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (2**64, ValueError)])
def test_make_imbalanced_seed_is_checked_by_name(seed, error):
    with pytest.raises(error, match=r"^seed must be an int in \[0, 4294967295\]"):
        make_imbalanced(balanced(), seed=seed)


def test_duplicate_label_columns_are_named():
    df = pd.concat([balanced(5), balanced(5)[["label"]]], axis=1)
    with pytest.raises(ValueError, match="df has 2 columns named 'label'"):
        make_imbalanced(df)


def test_missing_label_positions_are_plain_ints():
    with pytest.raises(ValueError) as e:
        class_weights(np.array([1.0, np.nan, 2.0, np.nan]))
    assert "first at positions [1, 3];" in str(e.value)


def test_make_imbalanced_returns_a_copy():
    df = balanced(30)
    out = make_imbalanced(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SettingWithCopyWarning would fail here
        out["new"] = 1
    assert "new" not in df.columns


@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.floats(0.05, 1.0), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_make_imbalanced_same_counts_for_ints_strings_and_tuples(sizes, factor, seed):
    ints = pd.DataFrame({"label": [k for k, n in enumerate(sizes) for _ in range(n)]})
    try:
        a = make_imbalanced(ints, factor=factor, seed=seed)
    except ValueError:
        return
    as_str = make_imbalanced(ints.assign(label=ints["label"].map("c{}".format)), factor=factor, seed=seed)
    as_tuple = make_imbalanced(ints.assign(label=[(k, "t") for k in ints["label"]]), factor=factor, seed=seed)
    assert a.index.equals(as_str.index) and a.index.equals(as_tuple.index)  # same classes order, same rows


# issue 17, item 2: a set of classes has no order of its own (for strings it changes between processes): refused
@pytest.mark.parametrize("classes", [{"a", "b", "c"}, frozenset({"a", "b", "c"}), dict.fromkeys("abc").keys()])
def test_class_weights_refuses_a_set_of_classes(classes):
    labels = ["a"] * 10 + ["b"] * 90 + ["c"] * 5
    with pytest.raises(TypeError, match=r"classes must be a list in a fixed order, not a .*classes=sorted"):
        class_weights(labels, classes=classes)
    assert class_weights(labels, classes=sorted(classes)) == class_weights(labels)  # the fix the message names


def test_make_imbalanced_label_column_checks_are_the_shared_ones():
    with pytest.raises(ValueError, match=r"no label column 'class' in df; its columns are \["):
        make_imbalanced(balanced(5), label="class")
    with pytest.raises(TypeError, match="label must be a column name"):
        make_imbalanced(balanced(5), label=["label"])


@pytest.mark.parametrize("n, factor, k", [(27, 1 / 3, 3), (1000, 0.1, 3), (100, 0.1, 2), (8, 0.5, 3)])
def test_make_imbalanced_exact_products_are_not_rounded_down(n, factor, k):
    # 27 * (1/3)**3 is 0.99999... in floating point: class k must keep n * factor**k rows, exactly 1 (10, 1, 1) here
    df = pd.DataFrame({"label": np.repeat(np.arange(k + 1), n)})
    kept = make_imbalanced(df, factor=factor).label.value_counts().sort_index()
    assert kept[k] == round(n * factor**k)
