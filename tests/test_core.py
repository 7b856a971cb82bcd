"Properties and errors of focal_tutorial.core (class weights, make_imbalanced)."
import subprocess
import sys

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
    out = make_imbalanced(df, ratio=1 / 3, seed=0)
    assert out["label"].value_counts()[["a", "b", "c", "d"]].tolist() == [200, 66, 22, 7]
    assert out.index.is_monotonic_increasing and out.index.isin(df.index).all()
    pd.testing.assert_frame_equal(out, df.loc[out.index])


@given(st.integers(0, 2**32 - 1), st.floats(0.3, 1.0), st.integers(20, 60))
@settings(max_examples=30, deadline=None)
def test_make_imbalanced_deterministic_and_geometric(seed, ratio, per_class):
    df = balanced(per_class, classes="abc")
    out = make_imbalanced(df, ratio=ratio, seed=seed)
    assert out.index.equals(make_imbalanced(df, ratio=ratio, seed=seed).index)
    got = out["label"].value_counts().reindex(list("abc")).tolist()
    assert got == [int(per_class * ratio**k) for k in range(3)]
    assert not out.index.duplicated().any()


def test_make_imbalanced_seeds_differ_and_ratio_one_keeps_all():
    df = balanced(50)
    assert not make_imbalanced(df, seed=0).index.equals(make_imbalanced(df, seed=1).index)
    assert make_imbalanced(df, ratio=1).index.equals(df.index)


@pytest.mark.parametrize("kwargs, message", [
    ({"label": "class"}, "no label column 'class'"),
    ({"ratio": 0}, "ratio must be"),
    ({"ratio": 1.5}, "ratio must be"),
    ({"ratio": 0.01}, "class 'c' (number 2 in sorted order, 200 rows) would keep 0 rows"),
])
def test_make_imbalanced_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        make_imbalanced(balanced(), **kwargs)
    assert message in str(e.value)


@given(st.lists(st.integers(1, 500), min_size=2, max_size=6), st.floats(0.001, 1.0))
def test_make_imbalanced_suggested_ratio_works(sizes, ratio):
    df = pd.DataFrame({"label": [k for k, n in enumerate(sizes) for _ in range(n)]})
    try:
        make_imbalanced(df, ratio=ratio)
    except ValueError as e:
        suggested = float(str(e).split("use ratio >= ")[1].split(",")[0])
        assert suggested > ratio
        assert (make_imbalanced(df, ratio=suggested)["label"].value_counts() > 0).all()


@pytest.mark.parametrize("labels, ratio, message", [
    # class 0 keeps all its rows whatever the ratio: a single row of it must not push the hint to 1
    ([0] + [1] * 50, 0.01, "class 1 (number 1 in sorted order, 50 rows) would keep 0 rows with ratio=0.01; "
                           "use ratio >= 0.02,"),
    ([0] * 3 + [1] * 100 + [2] * 100, 0.05, "class 2 (number 2 in sorted order, 100 rows) would keep 0 rows with "
                                            "ratio=0.05; use ratio >= 0.1,"),
    (["a"] * 2 + ["b"] * 10, 0.05, "class 'b' (number 1 in sorted order, 10 rows)"),
])
def test_make_imbalanced_hint_is_the_smallest_working_ratio_and_plain(labels, ratio, message):
    df = pd.DataFrame({"label": labels})
    with pytest.raises(ValueError) as e:
        make_imbalanced(df, ratio=ratio)
    assert message in str(e.value) and "np." not in str(e.value)
    suggested = float(str(e.value).split("use ratio >= ")[1].split(",")[0])
    assert (make_imbalanced(df, ratio=suggested)["label"].value_counts() > 0).all()
    with pytest.raises(ValueError, match="would keep 0 rows"):
        make_imbalanced(df, ratio=suggested - 0.001)


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
