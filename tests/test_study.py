"Determinism, shape and argument checks of focal_tutorial.study, on small sweeps (seconds, not minutes)."
import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

import focal_tutorial.study as study
from focal_tutorial.calibration import ece, logit_adjust, softmax_scores
from focal_tutorial.study import (
    ADJUSTED, ALTERNATIVES, CALIBRATION, METRICS, SCALED, alternatives, compare_alternatives, cross_fit_temperature,
    fit_cnn, plot_heatmaps, plot_reliability_grid, predict, predict_logits, run_config, step_factor, summary_table,
    sweep, verdict_grid, vs_baseline)

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


# --- issue 10, item 12: no global state --------------------------------------------------------------------------------

def tiny_data():
    Xtr, ytr, _, _, _ = study._split(1.0, 0, (0, 1, 2, 3))
    return Xtr[:64], ytr[:64]


def test_fit_cnn_leaves_the_callers_random_state_alone():
    X, y = tiny_data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_cnn(X, y, seed=0, epochs=1)
    assert torch.equal(torch.rand(3), expected)  # fit_cnn used to reset it to torch.manual_seed(seed)


def test_fit_cnn_weights_are_pytorchs_default_initialisation_seeded():
    "Same initial weights as `torch.manual_seed(seed)` then building the model: the published numbers stay valid."
    X, y = tiny_data()
    torch.manual_seed(5)
    reference = study.SmallCNN(4, 8)
    lr0 = fit_cnn(X, y, seed=5, epochs=1, lr=1e-12)  # a negligible step: the weights are the initial ones
    for a, b in zip(reference.state_dict().values(), lr0.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-9)


def test_concurrent_fits_are_deterministic_and_restore_the_thread_count():
    X, y = tiny_data()
    before = torch.get_num_threads()
    expected = [fit_cnn(X, y, seed=s, epochs=2).state_dict() for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: fit_cnn(X, y, seed=s, epochs=2).state_dict(), range(4)))
    for e, g in zip(expected, got):
        assert all(torch.equal(e[k], g[k]) for k in e)
    assert torch.get_num_threads() == before


def test_overlapping_one_thread_blocks_restore_the_callers_setting():
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        block = study._one_thread
        block.__enter__()  # a first fit starts
        block.__enter__()  # a second one starts while the first runs
        assert torch.get_num_threads() == 1
        block.__exit__(None, None, None)  # the first ends while the second still runs: still one thread
        assert torch.get_num_threads() == 1
        block.__exit__(None, None, None)  # a save-and-restore pair would now leave the process on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


def test_predict_is_deterministic_and_one_thread_free():
    X, y = tiny_data()
    m = fit_cnn(X, y, seed=1, epochs=1)
    assert np.array_equal(predict(m, X), predict(m, X))


def test_plot_heatmaps_panels_and_scales(small):
    import matplotlib.pyplot as plt
    fig = plot_heatmaps(small, "rare_class_recall")
    heat = [ax for ax in fig.axes if ax.get_title().startswith("ratio")]
    assert [ax.get_title() for ax in heat] == ["ratio 1/10"]
    cells = [float(t.get_text()) for t in heat[0].texts]
    d = vs_baseline(small, "rare_class_recall")["mean"]
    assert sorted(cells) == sorted(round(x, 3) for x in d)  # the annotations are the paired differences
    mesh = heat[0].collections[0]
    assert mesh.norm.vmin == -mesh.norm.vmax and mesh.norm.vmax >= 0.05  # centred at 0, at least the floor
    assert all(t.get_fontsize() >= 10 for t in heat[0].texts)
    plt.close("all")


def test_one_thread_state_is_fresh_in_a_worker_process():
    import pickle
    clone = pickle.loads(pickle.dumps(study._one_thread))
    assert isinstance(clone, type(study._one_thread)) and clone is not study._one_thread and clone._users == 0


@pytest.mark.parametrize("baseline, error, match", [
    ("ce", TypeError, r"baseline must be a pair \(gamma, alpha\)"),
    ((0.0,), TypeError, r"baseline must be a pair"),
    ((-1, "none"), ValueError, r"baseline\[0\] must be a finite number >= 0"),
    ((0.0, "balanced"), ValueError, r"unknown baseline\[1\] 'balanced'"),
])
def test_vs_baseline_checks_its_baseline(small, baseline, error, match):
    with pytest.raises(error, match=match):
        vs_baseline(small, baseline=baseline)


# --- issue 20: calibration, temperature scaling, logit adjustment, oversampling, the alternatives -------------------

@pytest.fixture(scope="module")
def kept(small):
    return sweep(seeds=[0, 1], keep_proba=True, **SMALL)


def test_keeping_the_probabilities_changes_no_number(small, kept):
    pd.testing.assert_frame_equal(numbers(kept.drop(columns=["proba", "y_test"])), numbers(small))
    assert all(p.shape == (160, 4) for p in kept["proba"]) and all(len(y) == 160 for y in kept["y_test"])


def test_calibration_columns_are_the_calibration_modules_numbers(kept):
    for _, row in kept.iterrows():
        p, y = row["proba"], row["y_test"]
        assert row["ece"] == pytest.approx(ece(p, y), abs=1e-12)
        assert (p.argmax(1) == y).mean() == pytest.approx(row["balanced_accuracy"], abs=1e-12)  # balanced test set
        _, ytr, _, _, _ = study._split(row["ratio"], row["seed"], (0, 1, 2, 3))
        adjusted = logit_adjust(np.log(p), np.bincount(ytr, minlength=4))  # log-probabilities: the same adjustment
        assert row["la_rare_class_recall"] == pytest.approx((adjusted.argmax(1)[y == 3] == 3).mean(), abs=1e-12)
        assert row["la_ece"] == pytest.approx(ece(softmax_scores(adjusted), y), abs=1e-6)
        scaled, temps = cross_fit_temperature(np.log(p), y, seed=row["seed"])
        assert row["ece_ts"] == pytest.approx(ece(scaled, y), abs=1e-4)
        assert row["temperature"] == pytest.approx(np.exp(np.mean(np.log(temps))), rel=1e-3)


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


def test_oversampling_draws_balanced_minibatches(monkeypatch):
    Xtr, ytr, _, _, _ = study._split(1 / 27, 0, (0, 1, 2, 3))
    drawn = []

    class Recording(study.WeightedRandomSampler):
        def __iter__(self):
            idx = list(super().__iter__())
            drawn.append(idx)
            return iter(idx)

    monkeypatch.setattr(study, "WeightedRandomSampler", Recording)
    a = fit_cnn(Xtr, ytr, seed=0, epochs=3, oversample=True)
    counts = np.bincount(ytr)
    assert len(drawn) == 3 and all(len(d) == 4 * counts.max() for d in drawn)  # an epoch is the balanced set's size
    share = np.bincount(ytr[np.concatenate(drawn)], minlength=4) / len(np.concatenate(drawn))
    assert np.all(np.abs(share - 0.25) < 0.05), share  # the rarest class (5 images) is drawn as often as the others
    b = fit_cnn(Xtr, ytr, seed=0, epochs=3, oversample=True)
    assert all(torch.equal(x, z) for x, z in zip(a.state_dict().values(), b.state_dict().values()))  # seeded
    c = fit_cnn(Xtr, ytr, seed=0, epochs=3)
    assert not torch.equal(a[0].weight, c[0].weight)
    with pytest.raises(TypeError, match="oversample must be True or False"):
        fit_cnn(Xtr, ytr, epochs=1, oversample=1)


def test_predict_is_the_argmax_of_predict_logits():
    Xtr, ytr, Xte, _, _ = study._split(1.0, 0, (0, 1, 2, 3))
    m = fit_cnn(Xtr, ytr, seed=0, epochs=1)
    z = predict_logits(m, Xte)
    assert z.shape == (160, 4) and z.dtype == np.float64 and np.array_equal(predict(m, Xte), z.argmax(1))


@pytest.fixture(scope="module")
def alt_runs(small):
    over = sweep(seeds=[0, 1], **{**SMALL, "gammas": [0], "alphas": ["none"]}, sampling="oversample")
    return pd.concat([small, over], ignore_index=True)


def test_alternatives_takes_each_method_from_the_right_runs(alt_runs):
    t = alternatives(alt_runs, alpha="inverse", gamma=2.0)
    assert list(t["method"].unique()) == list(ALTERNATIVES) and len(t) == 6 * 2

    def col(method, c):
        return t[t["method"] == method].sort_values("seed")[c].tolist()

    def run(g, a, c, sampling="shuffle"):
        return alt_runs.query("gamma == @g and alpha == @a and sampling == @sampling").sort_values("seed")[c].tolist()

    assert col("cross-entropy", "rare_class_recall") == run(0, "none", "rare_class_recall")
    assert col("weighted cross-entropy", "ece") == run(0, "inverse", "ece")
    assert col("oversampling", "macro_f1") == run(0, "none", "macro_f1", "oversample")
    assert col("cross-entropy + logit adjustment", "rare_class_recall") == run(0, "none", "la_rare_class_recall")
    assert col("focal loss", "balanced_accuracy") == run(2, "inverse", "balanced_accuracy")
    assert col("focal loss + logit adjustment", "brier") == run(2, "none", "la_brier")  # gamma without alpha


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(gamma=0), ValueError, "gamma must be a finite number > 0"),
    (dict(alpha="none"), ValueError, "unknown alpha 'none'"),
    (dict(gamma=1.0), ValueError, r"no run for focal loss \(gamma 1, alpha 'inverse', shuffle\)"),
])
def test_alternatives_refuses_what_the_runs_cannot_give(alt_runs, kwargs, error, match):
    with pytest.raises(error, match=match):
        alternatives(alt_runs, **{"alpha": "inverse", "gamma": 2.0, **kwargs})


def test_alternatives_needs_the_oversampled_runs(small):
    with pytest.raises(ValueError, match='no run for oversampling.*sampling="oversample"'):
        alternatives(small, gamma=2.0)


def synthetic_table(n_seeds=5):
    "Cross-entropy and two methods: one ahead in every seed (higher recall, lower ECE), one behind in every seed."
    rows = []
    for s in range(n_seeds):
        for method, shift in (("cross-entropy", 0.0), ("oversampling", 0.05), ("focal loss", -0.05)):
            rows.append({"method": method, "ratio": 0.1, "seed": s, "rare_class_recall": 0.8 + shift + 0.01 * s,
                         "ece": 0.05 - shift / 5 + 0.001 * s})
    return pd.DataFrame(rows)


def test_compare_alternatives_reads_lower_ece_as_better():
    c = compare_alternatives(synthetic_table(), metrics=["rare_class_recall", "ece"])
    assert c.loc[("oversampling", 0.1, "rare_class_recall"), "verdict"] == "better"
    assert c.loc[("oversampling", 0.1, "ece"), "verdict"] == "better"
    assert c.loc[("oversampling", 0.1, "ece"), "difference"] == pytest.approx(-0.01)  # candidate minus baseline
    assert c.loc[("focal loss", 0.1, "ece"), "verdict"] == "worse"
    assert c.loc[("focal loss", 0.1, "rare_class_recall"), "verdict"] == "worse"
    assert c.loc[("oversampling", 0.1, "ece"), "mean"] == pytest.approx(0.04 + 0.002)
    # within the calibration margin, an ECE difference is no difference
    loose = compare_alternatives(synthetic_table(), metrics=["ece"], calibration_margin=0.02)
    assert loose.loc[("oversampling", 0.1, "ece"), "verdict"] == "no clear difference"
    g = verdict_grid(c, "rare_class_recall")
    assert g.index.tolist() == ["oversampling", "focal loss"] and g.columns.tolist() == ["1/10"]
    assert g.loc["oversampling", "1/10"] == "+0.050 better (5↑ 0↓)"
    loose_grid = verdict_grid(loose, "ece")
    assert loose_grid.loc["oversampling", "1/10"] == "-0.010 – (5↑ 0↓)"  # no clear difference


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(margin=-1), ValueError, "margin must be a finite number >= 0"),
    (dict(calibration_margin="x"), TypeError, "calibration_margin must be a finite number"),
    (dict(metrics="ece"), TypeError, "metrics must be a list"),
    (dict(metrics=["accuracy"]), ValueError, "no column 'accuracy'"),
])
def test_compare_alternatives_checks_its_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        compare_alternatives(synthetic_table(), **kwargs)


def test_compare_alternatives_needs_cross_entropy():
    with pytest.raises(ValueError, match="no 'cross-entropy' rows"):
        compare_alternatives(synthetic_table().query("method != 'cross-entropy'"))


def test_plot_reliability_grid_pools_seeds(kept, small):
    import matplotlib.pyplot as plt
    fig = plot_reliability_grid(kept, gammas=[0, 2], ratios=[0.1])
    ax = fig.axes[0]
    assert ax.get_title() == "ratio 1/10 (2 seeds pooled)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    sel = kept.query("gamma == 0 and alpha == 'none'")
    pooled = ece(np.concatenate(list(sel["proba"])), np.concatenate(list(sel["y_test"])))
    assert legend[1] == f"cross-entropy (ECE {pooled:.3f})" and legend[2].startswith("focal, γ=2 (ECE ")
    plt.close("all")
    with pytest.raises(ValueError, match="keep_proba=True"):
        plot_reliability_grid(small)
    with pytest.raises(ValueError, match="no run with ratio 1/10, alpha 'none' and gamma in \\[3.0\\]"):
        plot_reliability_grid(kept, gammas=[3])
