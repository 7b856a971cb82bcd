"Determinism, shape and argument checks of focal_tutorial.study, on small sweeps (seconds, not minutes)."
import itertools

import numpy as np
import pandas as pd
import pytest

import focal_tutorial.study as study
from focal_tutorial.calibration import ece
from focal_tutorial.posthoc import cross_fit_temperature, logit_adjust, softmax_scores
from focal_tutorial.study import ADJUSTED, CALIBRATION, METRICS, SCALED, run_config, step_factor, sweep


SMALL = dict(gammas=[0, 2], alphas=["none", "inverse"], ratios=[1 / 10], epochs=3, progress=False)


COLUMNS = ["ratio", "gamma", "alpha", "sampling", "seed", "factor", "n_train", "n_rarest", *METRICS, *CALIBRATION,
           *SCALED, *ADJUSTED]


@pytest.fixture(scope="module")
def small():
    return sweep(seeds=[0, 1], **SMALL)


def numbers(df):
    return df.reset_index(drop=True)


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
    (dict(alphas=["balanced"]), ValueError, r"unknown alphas\[0\] 'balanced'; choose one of 'none', 'inverse'"),
    (dict(alphas=[["none"]]), TypeError, r"alphas\[0\] must be one of 'none'"),
    (dict(alphas="inverse"), TypeError, "alphas must be a list"),
    (dict(gammas=[2, -0.5]), ValueError, r"gammas\[1\] must be a finite number >= 0, got -0.5"),
    (dict(gammas=[float("nan")]), ValueError, r"gammas\[0\] must be a finite number >= 0"),
    (dict(gammas=2), TypeError, "gammas must be a list"),
    (dict(ratios=[0]), ValueError, r"ratios\[0\] must be a finite number in \(0, 1\], got 0; the imbalance ratio"),
    (dict(ratios=[1, 1.5]), ValueError, r"ratios\[1\] must be a finite number in \(0, 1\]"),
    (dict(ratios=["1/3"]), TypeError, r"ratios\[0\] must be a finite number"),
    (dict(ratios=[1e-4]), ValueError, r"too extreme for classes \(0, 1, 2, 3\): a class would keep no training image; use ratio >= 0\.007\."),
    (dict(seeds=[]), ValueError, "seeds is empty"),
    (dict(gammas=[]), ValueError, "gammas is empty"),
    (dict(seeds=[-1]), ValueError, r"seeds\[0\] must be an int in \[0, 4294967295\], got -1"),
    (dict(seeds=[0, 2**64]), ValueError, r"seeds\[1\] must be an int in \[0, 4294967295\], got (18446744073709551616|1\.844e\+19)"),
    (dict(seeds=[0.5]), TypeError, r"seeds\[0\] must be an int"),
    (dict(seeds=[[0]]), TypeError, r"seeds\[0\] must be an int"),
    (dict(gammas=[[0]]), TypeError, r"gammas\[0\] must be a finite number"),
    (dict(gammas=[2, 2.0]), ValueError, r"gammas has duplicates \[2.0\]"),
    (dict(epochs=0), ValueError, "epochs must be a positive int"),
    (dict(lr=-1), ValueError, "lr must be a finite number > 0"),
    (dict(lr=float("inf")), ValueError, "lr must be a finite number > 0"),
    (dict(lr=True), TypeError, "lr must be a finite number > 0"),
    (dict(batch_size=1.5), TypeError, "batch_size must be a positive int"),
    (dict(n_jobs=0), ValueError, "n_jobs must be a positive int"),
    (dict(progress=0), ValueError, "progress must be a finite number > 0, got 0; True, False, or the seconds"),
    (dict(progress="yes"), TypeError, "progress must be a finite number > 0"),
    (dict(sampling="balanced"), ValueError, "unknown sampling 'balanced'; choose one of 'shuffle', 'oversample'"),
    (dict(sampling=None), TypeError, "sampling must be one of"),
    (dict(keep_proba="yes"), TypeError, "keep_proba must be True or False"),
])
def test_bad_arguments_fail_before_training(kwargs, error, match, monkeypatch):
    def no_training(*args, **kw):
        raise AssertionError("training started despite a bad argument")
    monkeypatch.setattr(study, "_run", no_training)
    with pytest.raises(error, match=match):
        sweep(**{**SMALL, "seeds": [0], **kwargs})


def test_step_factor():
    assert step_factor(1) == 1 and step_factor(1 / 27) == 1 / 3 and step_factor(0.25, n_classes=2) == 0.25
    assert step_factor(1 / 10) ** 3 == pytest.approx(0.1, rel=1e-9)
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        step_factor(0.5, n_classes=1)
    with pytest.raises(ValueError, match=r"ratio must be a finite number in \(0, 1\]"):
        step_factor(0)


def test_smallest_ratio_is_the_bound():
    for classes in [(0, 1, 2, 3), (0, 1), (2, 5, 9)]:
        need = study._smallest_ratio(classes, seed=0)
        study._split(need, 0, classes)  # works at the bound
        with pytest.raises(ValueError, match=f"use ratio >= {need:g}"):
            study._split(need * 0.98, 0, classes)  # and fails just below, with the bound in the same units


@pytest.fixture(scope="module")
def kept(small):
    return sweep(seeds=[0, 1], keep_proba=True, **SMALL)


def test_keeping_the_probabilities_changes_no_number(small, kept):
    pd.testing.assert_frame_equal(numbers(kept.drop(columns=["proba", "y_test"])), numbers(small))
    assert all(p.shape == (160, 4) for p in kept["proba"]) and all(len(y) == 160 for y in kept["y_test"])


def test_calibration_columns_are_the_calibration_modules_numbers(kept):
    for _, row in kept.iterrows():
        p, y = row["proba"], row["y_test"]
        assert row["ece"] == pytest.approx(ece(y, p), abs=1e-12)
        assert (p.argmax(1) == y).mean() == pytest.approx(row["balanced_accuracy"], abs=1e-12)  # balanced test set
        _, ytr, _, _, _ = study._split(row["ratio"], row["seed"], (0, 1, 2, 3))
        adjusted = logit_adjust(np.log(p), np.bincount(ytr, minlength=4))  # log-probabilities: the same adjustment
        assert row["la_rare_class_recall"] == pytest.approx((adjusted.argmax(1)[y == 3] == 3).mean(), abs=1e-12)
        assert row["la_ece"] == pytest.approx(ece(y, softmax_scores(adjusted)), abs=1e-6)
        scaled, temps = cross_fit_temperature(np.log(p), y, seed=row["seed"])
        assert row["ece_ts"] == pytest.approx(ece(y, scaled), abs=1e-4)
        assert row["temperature"] == pytest.approx(np.exp(np.mean(np.log(temps))), rel=1e-3)
