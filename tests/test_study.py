"Determinism, shape and argument checks of focal_tutorial.study, on small sweeps (seconds, not minutes)."
import itertools

import numpy as np
import pandas as pd
import pytest

import focal_tutorial.study as study
from focal_tutorial.study import METRICS, fit_cnn, run_config, step_ratio, summary_table, sweep, vs_baseline

SMALL = dict(gammas=[0, 2], alphas=["none", "inverse"], ratios=[1 / 10], epochs=3, progress=False)
COLUMNS = ["ratio", "gamma", "alpha", "seed", "step_ratio", "n_train", "n_rarest", *METRICS, "seconds"]


@pytest.fixture(scope="module")
def small():
    return sweep(seeds=[0, 1], **SMALL)


def numbers(df):
    "Everything but the wall-clock time, which is the one column allowed to change between runs."
    return df.drop(columns="seconds").reset_index(drop=True)


def test_rows_and_columns(small):
    assert list(small.columns) == COLUMNS
    assert len(small) == 2 * 2 * 1 * 2
    got = set(small[["ratio", "seed", "alpha", "gamma"]].itertuples(index=False, name=None))
    assert got == set(itertools.product([0.1], [0, 1], ["none", "inverse"], [0.0, 2.0]))
    assert small[list(METRICS)].apply(lambda c: c.between(0, 1)).all().all()
    assert (small["n_rarest"] < small["n_train"] / 4).all()  # ratio 1/10: the last class is the rarest


def test_same_seed_same_numbers(small):
    pd.testing.assert_frame_equal(numbers(small), numbers(sweep(seeds=[0, 1], **SMALL)))


def test_a_run_does_not_depend_on_the_rest_of_the_sweep(small):
    row = run_config(gamma=2, alpha="inverse", ratio=1 / 10, seed=1, epochs=3)
    expected = small.query("gamma == 2 and alpha == 'inverse' and seed == 1").iloc[0].to_dict()
    row.pop("seconds"), expected.pop("seconds")
    assert row == expected


def test_different_seeds_differ(small):
    a, b = (small[small["seed"] == s][list(METRICS)].to_numpy() for s in (0, 1))
    assert not np.array_equal(a, b)


def test_worker_processes_give_the_same_numbers():
    kw = dict(SMALL, alphas=["inverse"], seeds=[3])
    pd.testing.assert_frame_equal(numbers(sweep(**kw, n_jobs=2)), numbers(sweep(**kw, n_jobs=1)))


def test_balanced_cross_entropy_beats_chance():
    row = run_config(gamma=0, alpha="none", ratio=1, seed=0, epochs=10)
    assert row["balanced_accuracy"] > 0.8  # chance is 0.25 with four classes


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(alphas=["balanced"]), ValueError, "unknown alpha 'balanced'"),
    (dict(alphas="inverse"), TypeError, "alphas must be a list"),
    (dict(gammas=[2, -0.5]), ValueError, r"gammas\[1\] must be a finite number >= 0, got -0.5"),
    (dict(gammas=[float("nan")]), ValueError, r"gammas\[0\] must be a finite number >= 0"),
    (dict(gammas=2), TypeError, "gammas must be a list"),
    (dict(ratios=[0]), ValueError, r"ratio must be a number in \(0, 1\]"),
    (dict(ratios=[1.5]), ValueError, r"ratio must be a number in \(0, 1\]"),
    (dict(ratios=[1e-4]), ValueError, r"too extreme for classes \(0, 1, 2, 3\): a class would keep no training image; use ratio >= 0\.007\."),
    (dict(seeds=[]), ValueError, "seeds is empty"),
    (dict(gammas=[]), ValueError, "gammas is empty"),
    (dict(seeds=[-1]), ValueError, "non-negative ints"),
    (dict(gammas=[2, 2]), ValueError, "duplicates"),
    (dict(epochs=0), ValueError, "epochs must be a positive int"),
    (dict(lr=-1), ValueError, "lr must be a finite number > 0"),
    (dict(n_jobs=0), ValueError, "n_jobs must be a positive int"),
    (dict(progress=0), ValueError, "progress must be True, False or a number"),
])
def test_bad_arguments_fail_before_training(kwargs, error, match, monkeypatch):
    def no_training(*args, **kw):
        raise AssertionError("training started despite a bad argument")
    monkeypatch.setattr(study, "_run", no_training)
    with pytest.raises(error, match=match):
        sweep(**{**SMALL, "seeds": [0], **kwargs})


def test_step_ratio():
    assert step_ratio(1) == 1 and step_ratio(1 / 27) == 1 / 3 and step_ratio(0.25, n_classes=2) == 0.25
    assert step_ratio(1 / 10) ** 3 == pytest.approx(0.1, rel=1e-9)
    with pytest.raises(ValueError, match="n_classes"):
        step_ratio(0.5, n_classes=1)


def test_summary_table_and_vs_baseline(small):
    s = summary_table(small)
    assert s.shape == (4, 3) and s.index.names == ["alpha", "gamma"] and s.columns.names == ["metric", "ratio"]
    assert s.columns.tolist() == [(m, "1/10") for m in METRICS]
    m = small.query("alpha == 'inverse' and gamma == 2")["macro_f1"]
    assert s.loc[("inverse", 2.0), ("macro_f1", "1/10")] == f"{m.mean():.3f} ± {m.std():.3f}"
    d = vs_baseline(small, "rare_class_recall")
    assert d.loc[(0.1, "none", 0.0), "mean"] == 0 and d.loc[(0.1, "none", 0.0), "equal"] == 2
    assert (d[["better", "worse", "equal"]].sum(axis=1) == 2).all()
    with pytest.raises(ValueError, match="no baseline run"):
        vs_baseline(small[small["gamma"] > 0])


def test_smallest_ratio_is_the_bound():
    for classes in [(0, 1, 2, 3), (0, 1), (2, 5, 9)]:
        need = study._smallest_ratio(classes, seed=0)
        study._split(need, 0, classes)  # works at the bound
        with pytest.raises(ValueError, match=f"use ratio >= {need:g}"):
            study._split(need * 0.98, 0, classes)  # and fails just below, with the bound in the same units


def test_fit_cnn_needs_8x8_images():
    with pytest.raises(ValueError, match=r"X must be \(n, 1, 8, 8\)"):
        fit_cnn(np.zeros((4, 1, 16, 16), np.float32), np.array([0, 1, 0, 1]), epochs=1)
    with pytest.raises(ValueError, match=r"got X \(4, 3, 8, 8\)"):
        fit_cnn(np.zeros((4, 3, 8, 8), np.float32), np.array([0, 1, 0, 1]), epochs=1)


def test_vs_baseline_is_paired_diff(small):
    from focal_tutorial.evaluate import paired_diff
    d = vs_baseline(small, "balanced_accuracy", baseline=(0.0, "inverse"))
    e = paired_diff(small, "balanced_accuracy", by=["ratio", "alpha", "gamma"], baseline={"gamma": 0.0, "alpha": "inverse"},
                    pair_on=["ratio", "seed"])
    pd.testing.assert_frame_equal(d, e)
    assert d.loc[(0.1, "inverse", 0.0), "equal"] == 2
