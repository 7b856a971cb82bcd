"Metrics, the mean ± std summary and the plots of focal_tutorial.evaluate."
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import balanced_accuracy_score, f1_score

from focal_tutorial.evaluate import (SCALAR_METRICS, evaluate, paired_diff, plot_confusions, plot_per_class_recall,
                                     summarize, verdicts)


def test_import_is_light():
    code = "import sys, focal_tutorial.evaluate as e; print(any(m in sys.modules for m in ('torch', 'autogluon')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_hand_computed():
    r = evaluate(["a"] * 6 + ["b"] * 2, ["a"] * 7 + ["b"], rare_class="b")
    assert r["accuracy"] == 7 / 8
    assert r["balanced_accuracy"] == 0.75
    assert r["macro_f1"] == pytest.approx((12 / 13 + 2 / 3) / 2)
    assert r["rare_class_recall"] == 0.5
    pc = r["per_class"].set_index("class")
    assert pc.loc["a", "precision"] == pytest.approx(6 / 7) and pc.loc["a", "recall"] == 1
    assert pc["support"].tolist() == [6, 2]
    assert r["confusion"].to_numpy().tolist() == [[6, 0], [1, 1]]
    assert (r["confusion"].index.name, r["confusion"].columns.name) == ("true", "predicted")
    assert list(r) == ["accuracy", "balanced_accuracy", "macro_f1", "rare_class_recall", "per_class", "confusion"]
    assert all(type(r[k]) is float for k in SCALAR_METRICS)


def test_majority_classifier():
    r = evaluate([0] * 6 + [1] * 2, [0] * 8)
    assert (r["accuracy"], r["balanced_accuracy"]) == (0.75, 0.5)
    assert "rare_class_recall" not in r


labels_st = st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=60)


@given(labels_st, st.randoms(use_true_random=False))
@settings(max_examples=50, deadline=None)
def test_agrees_with_sklearn_and_confusion_adds_up(y_true, rnd):
    y_pred = [rnd.choice([0, 1, 2, 3]) for _ in y_true]
    r = evaluate(y_true, y_pred, classes=[0, 1, 2, 3])
    assert r["accuracy"] == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))
    # scikit-learn's defaults: macro-F1 over the classes true or predicted at least once, balanced accuracy over the
    # classes with a true sample; a class in `classes` that never occurs changes neither
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    cm = r["confusion"]
    assert cm.to_numpy().sum() == len(y_true)
    assert cm.sum(axis=1).tolist() == r["per_class"]["support"].tolist()
    assert np.trace(cm.to_numpy()) == round(r["accuracy"] * len(y_true))


def test_classes_order_and_inputs():
    r = evaluate(pd.Series(["b", "a"]), np.array(["b", "b"]), classes=["b", "a"])
    assert r["per_class"]["class"].tolist() == ["b", "a"] and r["confusion"].index.tolist() == ["b", "a"]
    # default classes: sorted labels of y_true and y_pred, predictions of unseen classes included
    assert evaluate([1, 1], [1, 2])["per_class"]["class"].tolist() == [1, 2]


@pytest.mark.parametrize("args, kwargs, exc, message", [
    (([0, 1, 1], [0, 1]), {}, ValueError, "y_true has 3 labels but y_pred has 2"),
    (([0, 1], [0, 7]), {"classes": [0, 1]}, ValueError, "labels [7] are not in classes [0, 1]"),
    (([5, 1], [0, 1]), {"classes": [0, 1]}, ValueError, "labels [5] are not in classes"),
    (([], []), {}, ValueError, "y_true is empty"),
    (([0], []), {}, ValueError, "y_pred is empty"),
    (([0, None], [0, 1]), {}, ValueError, "missing labels"),
    (([0, 1], [0, float("nan")]), {}, ValueError, "missing labels"),
    (([0, 1], [0, 1]), {"rare_class": 5}, ValueError, "rare_class=5 is not one of"),
    (([0, 1], [0, 1]), {"classes": [0, 1, 1]}, ValueError, "duplicates"),
    ((np.zeros((2, 2)), [0, 1]), {}, ValueError, "must be 1-D"),
    ((pd.DataFrame({"a": [0]}), [0]), {}, TypeError, "DataFrame"),
    (("ab", "ab"), {}, TypeError, "1-D list"),
    (([0, "a"], [0, "a"]), {}, TypeError, "classes="),
])
def test_errors(args, kwargs, exc, message):
    with pytest.raises(exc) as e:
        evaluate(*args, **kwargs)
    assert message in str(e.value)


def runs_frame():
    return pd.DataFrame({"loss": ["ce"] * 3 + ["focal"] * 3, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.8, 0.9, 1.0, 0.7, 0.7, 0.7],
                         "balanced_accuracy": [0.5, 0.6, 0.7, 0.6, 0.7, 0.8],
                         "macro_f1": [0.4, 0.5, 0.6, 0.5, 0.5, 0.5],
                         "rare_class_recall": [0.0, 0.5, 1.0, 1.0, 1.0, 1.0],
                         "fit_seconds": [1.0] * 6})


def test_summarize():
    s = summarize(runs_frame())
    assert s.index.names == ["loss", "metric"]
    assert s.index.get_level_values("metric").unique().tolist() == list(SCALAR_METRICS)  # fit_seconds not included
    assert s.index.get_level_values("loss").unique().tolist() == ["ce", "focal"]  # order of appearance
    assert s.loc[("ce", "accuracy"), "mean"] == pytest.approx(0.9)
    assert s.loc[("ce", "accuracy"), "std"] == pytest.approx(0.1)  # sample std, ddof=1
    assert s.loc[("focal", "accuracy"), "std"] == pytest.approx(0)
    assert s.loc[("ce", "rare_class_recall"), "mean ± std"] == "0.500 ± 0.500"
    assert (s["n"] == 3).all()
    wide = s["mean ± std"].unstack("loss")
    assert wide.shape == (4, 2)
    t = summarize(runs_frame(), metrics=["fit_seconds"], digits=1)
    assert t.loc[("ce", "fit_seconds"), "mean ± std"] == "1.0 ± 0.0"


def test_summarize_single_run():
    s = summarize(runs_frame().iloc[[0, 3]])
    assert s.loc[("ce", "accuracy"), "mean ± std"] == "0.800 (1 run)" and np.isnan(s.loc[("ce", "accuracy"), "std"])


@pytest.mark.parametrize("runs, kwargs, exc, message", [
    (runs_frame(), {"by": "model"}, ValueError, "no column 'model'"),
    (runs_frame()[["loss", "seed"]], {}, ValueError, "none of the metric columns"),
    (runs_frame(), {"metrics": ["auc"]}, ValueError, "no column 'auc' in runs"),
    (runs_frame().assign(accuracy="high"), {}, ValueError, "not numeric"),
    (runs_frame().iloc[:0], {}, ValueError, "empty"),
    ([{"loss": "ce", "accuracy": 1.0}], {}, TypeError, "DataFrame"),
])
def test_summarize_errors(runs, kwargs, exc, message):
    with pytest.raises(exc) as e:
        summarize(runs, **kwargs)
    assert message in str(e.value)


def test_summarize_by_several_columns():
    runs = runs_frame().assign(gamma=[0, 0, 2, 0, 2, 2])
    s = summarize(runs, by=["loss", "gamma"], metrics=["accuracy"])
    assert s.index.names == ["loss", "gamma", "metric"]
    assert s.index.droplevel("metric").tolist() == [("ce", 0), ("ce", 2), ("focal", 0), ("focal", 2)]
    assert s.loc[("ce", 0, "accuracy"), "mean"] == pytest.approx(0.85) and s.loc[("ce", 0, "accuracy"), "n"] == 2
    assert s.loc[("ce", 2, "accuracy"), "mean ± std"] == "1.000 (1 run)"
    assert summarize(runs, by=["loss"]).equals(summarize(runs, by="loss"))
    with pytest.raises(ValueError, match="no column 'model'"):
        summarize(runs, by=["loss", "model"])


def test_paired_diff_hand_computed():
    d = paired_diff(runs_frame(), "rare_class_recall", baseline="ce")
    assert d.index.name == "loss" and d.index.tolist() == ["ce", "focal"]
    focal = d.loc["focal"]  # focal - ce per seed: +1.0, +0.5, 0.0
    assert focal["mean"] == pytest.approx(0.5) and focal["std"] == pytest.approx(0.5)
    assert focal[["n", "better", "worse", "equal"]].tolist() == [3, 2, 0, 1]
    assert d.loc["ce", "mean"] == 0 and d.loc["ce", "equal"] == 3
    acc = paired_diff(runs_frame(), "accuracy", baseline="ce").loc["focal"]  # -0.1, -0.2, -0.3
    assert acc[["better", "worse", "equal"]].tolist() == [0, 3, 0] and acc["mean"] == pytest.approx(-0.2)


def test_paired_diff_pairs_on_seed_not_on_row_order():
    runs = runs_frame()
    shuffled = runs.iloc[[5, 0, 3, 2, 4, 1]]
    pd.testing.assert_frame_equal(paired_diff(shuffled, "macro_f1", baseline="ce").loc[["ce", "focal"]],
                                  paired_diff(runs, "macro_f1", baseline="ce"))


def test_paired_diff_tolerance():
    runs = pd.DataFrame({"loss": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "m": [0.3, 0.3, 0.1 + 0.2, 0.3 + 1e-6]})
    d = paired_diff(runs, "m", baseline="a").loc["b"]  # 0.1 + 0.2 != 0.3 in floating point, but counts as equal
    assert d[["better", "worse", "equal"]].tolist() == [1, 0, 1]


@given(st.lists(st.floats(0, 1), min_size=2, max_size=8), st.lists(st.floats(0, 1), min_size=2, max_size=8))
@settings(max_examples=50, deadline=None)
def test_paired_diff_properties(a, b):
    n = min(len(a), len(b))
    runs = pd.DataFrame({"loss": ["x"] * n + ["y"] * n, "seed": list(range(n)) * 2, "m": a[:n] + b[:n]})
    d = paired_diff(runs, "m", baseline="x").loc["y"]
    assert d["better"] + d["worse"] + d["equal"] == n == d["n"]
    assert d["mean"] == pytest.approx(np.mean(np.array(b[:n]) - np.array(a[:n])), abs=1e-12)
    back = paired_diff(runs, "m", baseline="y").loc["x"]  # swapping the baseline flips the sign and the counts
    assert back["mean"] == pytest.approx(-d["mean"], abs=1e-12) and (back["better"], back["worse"]) == (d["worse"], d["better"])


def test_paired_diff_several_columns():
    grid = pd.DataFrame({"ratio": [1, 1, 0.1, 0.1] * 2, "gamma": [0, 2] * 4, "seed": [0] * 4 + [1] * 4,
                         "m": [1.0, 1.0, 0.5, 0.7, 1.0, 0.9, 0.6, 0.8]})
    g = paired_diff(grid, "m", by=["ratio", "gamma"], baseline={"gamma": 0}, pair_on=["ratio", "seed"])
    assert g.index.names == ["ratio", "gamma"] and len(g) == 4
    assert g.loc[(0.1, 2), "mean"] == pytest.approx(0.2) and g.loc[(1, 2), ["better", "worse", "equal"]].tolist() == [0, 1, 1]


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"metric": "auc", "baseline": "ce"}, ValueError, "metric 'auc' is not a numeric column"),
    ({"metric": "accuracy"}, ValueError, "pass baseline="),
    ({"metric": "accuracy", "baseline": "CE"}, ValueError, "no baseline run"),
    ({"metric": "accuracy", "baseline": "ce", "by": "model"}, ValueError, "no column 'model'"),
    ({"metric": "accuracy", "baseline": "ce", "pair_on": "split"}, ValueError, "no column 'split'"),
    ({"metric": "accuracy", "baseline": "ce", "pair_on": "loss"}, ValueError, "runs has several rows for"),
    ({"metric": "accuracy", "baseline": "ce", "by": ["loss", "seed"]}, ValueError, "as a dict"),
    ({"metric": "accuracy", "baseline": {"model": "ce"}}, ValueError, "no column 'model'"),
])
def test_paired_diff_errors(kwargs, exc, message):
    with pytest.raises(exc) as e:
        paired_diff(runs_frame(), **kwargs)
    assert message in str(e.value)


def test_paired_diff_missing_partner():
    with pytest.raises(ValueError, match=r"no baseline run for \[\{'seed': 2\}\]"):
        paired_diff(runs_frame().drop(index=2), "accuracy", baseline="ce")


def test_plots():
    import matplotlib.pyplot as plt
    a = evaluate([0, 0, 1, 1], [0, 0, 0, 1])
    b = evaluate([0, 0, 1, 1], [0, 1, 1, 1])
    per_class = pd.concat([a["per_class"].assign(loss="ce", seed=0), b["per_class"].assign(loss="focal", seed=0),
                           b["per_class"].assign(loss="focal", seed=1)])
    ax = plot_per_class_recall(per_class, train_counts={0: 10, 1: 3})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(n=10)", "1\n(n=3)"]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches if p.get_height() > 0)
    assert heights == [0.5, 0.5, 1.0, 1.0]  # ce: 1.0, 0.5; focal: 0.5, 1.0
    fig = plot_confusions({"ce": a["confusion"], "focal": [b["confusion"], b["confusion"]]})
    assert [ax.get_title() for ax in fig.axes] == ["ce", "focal"]
    assert [t.get_text() for t in fig.axes[1].texts] == ["2", "2", "0", "4"]  # summed over the two runs
    plt.close("all")


def test_plot_errors():
    a = evaluate([0, 1], [0, 1])
    c = evaluate(["x", "y", "z"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="lacks columns"):
        plot_per_class_recall(a["per_class"])  # no `loss` column
    with pytest.raises(ValueError, match="non-empty"):
        plot_per_class_recall(pd.DataFrame())
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_confusions({})
    with pytest.raises(ValueError, match="different classes"):
        plot_confusions({"mixed": [a["confusion"], c["confusion"]]})
    with pytest.raises(ValueError, match="square DataFrame"):
        plot_confusions({"bad": a["per_class"]})


# --- issue 10, item 14: classes that do not occur, rare classes without a true sample ---------------------------------

def test_a_listed_class_that_never_occurs_changes_no_metric():
    y_true, y_pred = ["a"] * 6 + ["b"] * 2, ["a"] * 7 + ["b"]
    r, listed = evaluate(y_true, y_pred), evaluate(y_true, y_pred, classes=["a", "b", "c"])
    assert {k: listed[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")} == \
        {k: r[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    c = listed["per_class"].set_index("class").loc["c"]
    assert np.isnan(c["precision"]) and np.isnan(c["recall"]) and np.isnan(c["f1"]) and c["support"] == 0


def test_rare_class_without_a_true_sample_has_undefined_recall():
    assert np.isnan(evaluate([0, 0, 1], [0, 1, 1], classes=[0, 1, 2], rare_class=2)["rare_class_recall"])
    assert np.isnan(evaluate([0, 0], [0, 1], rare_class=1)["rare_class_recall"])  # predicted but never true
    assert evaluate([0, 1], [0, 0], rare_class=1)["rare_class_recall"] == 0.0  # true but never found: 0, defined


@given(labels_st, st.randoms(use_true_random=False), st.integers(1, 3))
@settings(max_examples=40, deadline=None)
def test_extra_classes_never_change_the_scalar_metrics(y_true, rnd, extra):
    y_pred = [rnd.choice([0, 1, 2, 3]) for _ in y_true]
    base = evaluate(y_true, y_pred, classes=[0, 1, 2, 3])
    more = evaluate(y_true, y_pred, classes=[0, 1, 2, 3] + [10 + k for k in range(extra)])
    for k in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert more[k] == pytest.approx(base[k], abs=1e-15)


def test_many_classes_in_linear_time():
    import time
    classes = list(range(3000))
    t0 = time.perf_counter()
    r = evaluate(classes, classes[::-1], classes=classes)
    assert time.perf_counter() - t0 < 5.0  # the quadratic check alone took seconds here
    assert r["accuracy"] == 0.0


def test_tuple_and_categorical_labels():
    r = evaluate([(0, "x"), (1, "y")], [(0, "x"), (0, "x")])
    assert r["per_class"]["class"].tolist() == [(0, "x"), (1, "y")] and r["accuracy"] == 0.5
    assert r["confusion"].loc[[(1, "y")], [(0, "x")]].to_numpy().tolist() == [[1]]
    cat = pd.Series(pd.Categorical(["a", "b"], categories=["a", "b", "zz"]))
    assert evaluate(cat, ["a", "a"])["per_class"]["class"].tolist() == ["a", "b"]  # "zz" is no class


@pytest.mark.parametrize("kwargs, error, message", [
    ({"classes": [[0], [1]]}, TypeError, "classes must hold hashable labels"),
    ({"rare_class": [1]}, TypeError, "rare_class must hold hashable labels"),
    ({"classes": 2}, TypeError, "classes must be a list of class labels"),
])
def test_unhashable_classes_get_our_messages(kwargs, error, message):
    with pytest.raises(error) as e:
        evaluate([0, 1], [0, 1], **kwargs)
    assert message in str(e.value)


# --- item 15: nothing dropped or miscounted in summaries ---------------------------------------------------------------

def test_summarize_keeps_runs_whose_group_is_missing():
    runs = pd.DataFrame({"alpha": ["inverse", None, None], "m": [0.5, 0.7, 0.9]})
    s = summarize(runs, by="alpha", metrics=["m"])
    assert s["n"].sum() == 3 and len(s) == 2
    missing = s[s.index.get_level_values("alpha").isna()]
    assert missing["mean"].iloc[0] == pytest.approx(0.8) and missing["n"].iloc[0] == 2


def test_summarize_nan_metric_counts_only_values():
    runs = pd.DataFrame({"loss": ["ce"] * 3, "m": [0.5, np.nan, np.nan]})
    s = summarize(runs, metrics="m").loc[("ce", "m")]
    assert s["n"] == 1 and s["mean ± std"] == "0.500 (1 run)"
    assert summarize(runs.assign(m=np.nan), metrics="m").loc[("ce", "m"), "mean ± std"] == "no value"


@pytest.mark.parametrize("digits, error", [(-1, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_summarize_digits_is_checked_by_name(digits, error):
    with pytest.raises(error, match=r"^digits must be a non-negative int"):
        summarize(runs_frame(), digits=digits)


def test_summarize_duplicate_columns_are_named():
    runs = pd.concat([runs_frame(), runs_frame()[["accuracy"]]], axis=1)
    with pytest.raises(ValueError, match=r"runs has duplicate columns \['accuracy'\]"):
        summarize(runs)


def test_paired_diff_counts_nan_metrics_as_undefined():
    runs = runs_frame()
    runs.loc[4, "rare_class_recall"] = np.nan  # focal, seed 1
    runs.loc[2, "rare_class_recall"] = np.nan  # ce (the baseline), seed 2: a baseline run whose metric is NaN
    d = paired_diff(runs, "rare_class_recall", baseline="ce")
    focal = d.loc["focal"]
    assert focal[["n", "better", "worse", "equal", "undefined"]].tolist() == [3, 1, 0, 0, 2]
    assert focal["mean"] == pytest.approx(1.0)  # seed 0 only: 1.0 - 0.0
    assert (d[["better", "worse", "equal", "undefined"]].sum(axis=1) == d["n"]).all()


def test_paired_diff_column_named_base_and_group_none():
    runs = runs_frame().assign(_base=1.0)
    pd.testing.assert_frame_equal(paired_diff(runs, "accuracy", baseline="ce"),
                                  paired_diff(runs_frame(), "accuracy", baseline="ce"))
    grid = pd.DataFrame({"alpha": [None, None, "w", "w"], "seed": [0, 1, 0, 1], "m": [0.5, 0.5, 0.75, 0.25]})
    d = paired_diff(grid, "m", by="alpha", baseline=np.nan)  # NaN selects the missing group
    assert d.loc["w", ["better", "worse"]].tolist() == [1, 1] and d["n"].sum() == 4


@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=2, max_size=8),
       st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=2, max_size=8))
@settings(max_examples=50, deadline=None)
def test_paired_diff_counts_add_up_with_nans(a, b):
    n = min(len(a), len(b))
    runs = pd.DataFrame({"loss": ["x"] * n + ["y"] * n, "seed": list(range(n)) * 2, "m": a[:n] + b[:n]})
    d = paired_diff(runs, "m", baseline="x").loc["y"]
    assert d["better"] + d["worse"] + d["equal"] + d["undefined"] == n == d["n"]
    assert d["undefined"] == sum(np.isnan(x) or np.isnan(y) for x, y in zip(a[:n], b[:n]))


def test_machine_info_holds_nothing_that_changes_between_runs():
    from focal_tutorial._machine import machine_info
    info = machine_info()
    assert set(info) <= {"cpu", "cores", "python", "torch", "torch_threads"} and info == machine_info()


def test_verdicts_rule():
    from focal_tutorial.evaluate import verdicts
    runs = pd.DataFrame({"loss": ["ce"] * 3 + ["focal"] * 3, "seed": [0, 1, 2] * 2,
                         "a": [0.5, 0.5, 0.5, 0.6, 0.6, 0.5],     # ahead by 0.067 on average, behind in no seed
                         "b": [0.5, 0.5, 0.5, 0.7, 0.7, 0.4],     # ahead on average, behind in one seed
                         "c": [0.5, 0.5, 0.5, 0.495, 0.5, 0.5]})  # behind by less than the margin
    v = verdicts(runs, "focal", "ce", metrics=["a", "b", "c"])
    assert v["verdict"].to_dict() == {"a": "better", "b": "no clear difference", "c": "no clear difference"}
    assert verdicts(runs, "ce", "focal", metrics=["a"]).loc["a", "verdict"] == "worse"
    assert v.loc["b", ["ahead", "behind", "level", "seeds"]].tolist() == [2, 1, 0, 3]
    assert np.isclose(v.loc["a", "focal"], 1.7 / 3) and v.loc["a", "ce"] == 0.5
    with pytest.raises(ValueError, match="margin"):
        verdicts(runs, "focal", "ce", metrics=["a"], margin=-1)


# --- issue 17: verdicts and paired differences over paired seeds only; clear errors -------------------------------

def _two(seeds_ce, seeds_focal, m_ce, m_focal, metric="m"):
    return pd.DataFrame({"loss": ["ce"] * len(seeds_ce) + ["focal"] * len(seeds_focal),
                         "seed": list(seeds_ce) + list(seeds_focal), metric: list(m_ce) + list(m_focal)})


@pytest.mark.parametrize("repeat", [2, 0])  # a focal run repeated, a ce (baseline) run repeated
def test_verdicts_and_paired_diff_refuse_a_repeated_run_on_either_side(repeat):
    from focal_tutorial.evaluate import verdicts
    r = _two([0, 1], [0, 1], [0.5, 0.5], [0.6, 0.6])
    twice = pd.concat([r, r.iloc[[repeat]]])
    who = r.loc[repeat, "loss"]
    with pytest.raises(ValueError, match=rf"runs has several rows for \[\{{'loss': '{who}', 'seed': 0\}}\]"):
        verdicts(twice, "focal", "ce", metrics="m")
    with pytest.raises(ValueError, match=rf"runs has several rows for \[\{{'loss': '{who}', 'seed': 0\}}\]"):
        paired_diff(twice, "m", baseline="ce")


def test_verdicts_refuse_unpaired_seeds_on_either_side():
    from focal_tutorial.evaluate import verdicts
    with pytest.raises(ValueError, match=r"not paired: 'ce' has runs for seed \[1\] that 'focal' lacks"):
        verdicts(_two([0, 1], [0], [0.5, 0.9], [0.6]), "focal", "ce", metrics="m")  # was 'better' with ce's mean 0.7
    with pytest.raises(ValueError, match=r"not paired: 'focal' has runs for seed \[2\] that 'ce' lacks"):
        verdicts(_two([0], [0, 2], [0.5], [0.6, 0.6]), "focal", "ce", metrics="m")


def test_verdicts_leave_undefined_pairs_out_of_every_column():
    from focal_tutorial.evaluate import verdicts
    v = verdicts(_two([0, 1, 2], [0, 1, 2], [0.5, 0.6, 0.1], [0.7, np.nan, 0.3]), "focal", "ce", metrics="m").loc["m"]
    assert v[["seeds", "undefined", "ahead", "behind", "level"]].tolist() == [2, 1, 2, 0, 0]
    assert v["ce"] == pytest.approx(0.3) and v["focal"] == pytest.approx(0.5)  # seeds 0 and 2, both sides
    assert v["difference"] == pytest.approx(v["focal"] - v["ce"])
    none = verdicts(_two([0, 1], [0, 1], [np.nan, 0.5], [0.7, np.nan]), "focal", "ce", metrics="m").loc["m"]
    assert none["verdict"] == "undefined" and none[["seeds", "undefined", "ahead"]].tolist() == [0, 2, 0]


@given(st.lists(st.tuples(st.one_of(st.floats(0, 1), st.just(float("nan"))),
                          st.one_of(st.floats(0, 1), st.just(float("nan")))), min_size=1, max_size=8))
@settings(max_examples=50, deadline=None)
def test_verdicts_columns_agree_on_the_same_pairs(pairs):
    from focal_tutorial.evaluate import verdicts
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    v = verdicts(_two(range(len(a)), range(len(b)), a, b), "focal", "ce", metrics="m").loc["m"]
    both = [(x, y) for x, y in pairs if not (np.isnan(x) or np.isnan(y))]
    assert v["seeds"] == len(both) == v["ahead"] + v["behind"] + v["level"]
    assert v["seeds"] + v["undefined"] == len(pairs)
    if both:
        assert v["ce"] == pytest.approx(np.mean([x for x, _ in both]))
        assert v["focal"] == pytest.approx(np.mean([y for _, y in both]))
        assert v["difference"] == pytest.approx(v["focal"] - v["ce"], abs=1e-12)
    else:
        assert v["verdict"] == "undefined"


def test_verdicts_name_a_missing_recipe_and_take_one_metric_name():
    from focal_tutorial.evaluate import verdicts
    r = _two([0, 1], [0, 1], [0.5, 0.5], [0.6, 0.6], metric="macro_f1")
    assert verdicts(r, "focal", "ce", metrics="macro_f1").index.tolist() == ["macro_f1"]  # not 'm', 'a', 'c', ...
    with pytest.raises(ValueError, match=r"no run has loss='tuned' \(the candidate\); the values of 'loss' are \['ce', 'focal'\]"):
        verdicts(r, "tuned", "ce", metrics="macro_f1")
    with pytest.raises(ValueError, match="candidate and baseline are the same"):
        verdicts(r, "ce", "ce", metrics="macro_f1")
    with pytest.raises(TypeError, match=r"candidate must be one value of the column 'loss'"):
        verdicts(r, ["focal"], "ce", metrics="macro_f1")


@pytest.mark.parametrize("baseline", [["ce"], ["ce", "focal"], {"loss": ["ce"]}, np.array(["ce"])])
def test_paired_diff_refuses_a_list_baseline(baseline):
    with pytest.raises(TypeError, match=r"baseline(\['loss'\])? must be one value of the column 'loss' \(e\.g\. 'ce'\), "
                                        r"got .*call once per baseline"):
        paired_diff(runs_frame(), "accuracy", baseline=baseline)


def test_paired_diff_tuple_values_select_their_runs():
    runs = pd.DataFrame({"cfg": [("a", 1), ("a", 1), ("b", 2), ("b", 2)], "seed": [0, 1, 0, 1], "m": [0.5, 0.5, 0.7, 0.4]})
    d = paired_diff(runs, "m", by="cfg", baseline=("a", 1))
    assert d.loc[[("b", 2)], ["better", "worse"]].iloc[0].tolist() == [1, 1]


def test_paired_diff_several_baseline_runs_per_pair():
    runs = pd.DataFrame({"loss": ["ce", "focal", "ce", "focal"], "lr": [1, 1, 1, 1], "seed": [0, 0, 1, 1], "m": [.1, .2, .3, .4]})
    with pytest.raises(ValueError, match="several baseline runs share the same"):
        paired_diff(runs, "m", baseline={"lr": 1})


@pytest.mark.parametrize("metrics", [[], ()])
def test_summarize_and_verdicts_refuse_no_metrics(metrics):
    from focal_tutorial.evaluate import verdicts
    with pytest.raises(ValueError, match=r"metrics is empty; name at least one column of runs"):
        summarize(runs_frame(), metrics=metrics)
    with pytest.raises(ValueError, match=r"metrics is empty; name at least one column of runs"):
        verdicts(runs_frame(), "focal", "ce", metrics=metrics)


def test_verdicts_lower_is_better_counts_a_lower_value_as_ahead():
    runs = pd.DataFrame({"loss": ["ce"] * 3 + ["focal"] * 3, "seed": [0, 1, 2] * 2,
                         "ece": [0.10, 0.12, 0.11, 0.05, 0.06, 0.04]})
    v = verdicts(runs, "focal", "ce", metrics="ece", lower_is_better="ece").loc["ece"]
    assert (v["ahead"], v["behind"], v["verdict"]) == (3, 0, "better")
    assert np.isclose(v["difference"], -0.06) and np.isclose(v["focal"], 0.05)  # the measured sign and means
    assert verdicts(runs, "focal", "ce", metrics="ece").loc["ece", "verdict"] == "worse"  # higher is better by default
    with pytest.raises(ValueError, match="no column 'nll'"):
        verdicts(runs, "focal", "ce", metrics="ece", lower_is_better=["nll"])


# --- issue 26: a verdict needs two pairs; NaN seeds pair with nothing; result columns cannot be overwritten --------

def test_verdicts_need_two_defined_pairs():
    "Three seeds, one of them defined on both sides: 'too few pairs', not 'better' from one difference."
    from focal_tutorial.evaluate import MIN_PAIRS, verdicts
    one = verdicts(_two([0, 1, 2], [0, 1, 2], [0.5, np.nan, 0.6], [0.9, 0.7, np.nan]), "focal", "ce", metrics="m").loc["m"]
    assert (one["seeds"], one["verdict"]) == (1, "too few pairs") and MIN_PAIRS == 2
    two = verdicts(_two([0, 1, 2], [0, 1, 2], [0.5, 0.4, 0.6], [0.9, 0.7, np.nan]), "focal", "ce", metrics="m").loc["m"]
    assert (two["seeds"], two["verdict"]) == (2, "better")


def test_verdicts_and_paired_diff_refuse_missing_seeds():
    "A NaN seed on each side was paired with the other (pandas matches NaN with NaN); now it is refused, naming the rows."
    from focal_tutorial.evaluate import verdicts
    r = _two([0, 1, np.nan], [0, 1, np.nan], [0.5, 0.5, 0.1], [0.6, 0.6, 0.9])
    with pytest.raises(ValueError, match=r"no \['seed'\] value in the rows \[2, 5\].*dropna"):
        verdicts(r, "focal", "ce", metrics="m")
    with pytest.raises(ValueError, match=r"no \['seed'\] value in the rows \[2, 5\]"):
        paired_diff(r, "m", baseline="ce")


@pytest.mark.parametrize("name", ["difference", "verdict", "seeds"])
@pytest.mark.parametrize("side", ["candidate", "baseline"])
def test_verdicts_refuse_a_recipe_named_like_a_result_column(name, side):
    "A recipe called 'difference' overwrote the difference column with its mean; now refused with the fix."
    from focal_tutorial.evaluate import verdicts
    r = _two([0, 1], [0, 1], [0.5, 0.5], [0.6, 0.6]).replace({"loss": {"focal" if side == "candidate" else "ce": name}})
    args = (name, "ce") if side == "candidate" else ("focal", name)
    with pytest.raises(ValueError, match=rf"loss='{name}' is also the name of a column of the verdicts table.*replace"):
        verdicts(r, *args, metrics="m")
