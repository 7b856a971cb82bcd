"focal_tutorial.study_analysis: the tables, paired comparisons and plots of a sweep's runs, on small sweeps."
import numpy as np
import pandas as pd
import pytest

from focal_tutorial.calibration import ece
from focal_tutorial.study import METRICS, sweep
from focal_tutorial.study_analysis import (
    ALTERNATIVES, alternatives, compare_alternatives, plot_heatmaps, plot_reliability_grid, summary_table, verdict_grid,
    vs_baseline)

SMALL = dict(gammas=[0, 2], alphas=["none", "inverse"], ratios=[1 / 10], epochs=3, progress=False)


@pytest.fixture(scope="module")
def small():
    return sweep(seeds=[0, 1], **SMALL)


@pytest.fixture(scope="module")
def kept(small):
    return sweep(seeds=[0, 1], keep_proba=True, **SMALL)


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


def test_vs_baseline_is_paired_diff(small):
    from focal_tutorial.evaluate import paired_diff
    d = vs_baseline(small, "balanced_accuracy", baseline=(0.0, "inverse"))
    e = paired_diff(small, "balanced_accuracy", by=["ratio", "alpha", "gamma"], baseline={"gamma": 0.0, "alpha": "inverse"},
                    pair_on=["ratio", "seed"])
    pd.testing.assert_frame_equal(d, e)
    assert d.loc[(0.1, "inverse", 0.0), "equal"] == 2


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


@pytest.mark.parametrize("baseline, error, match", [
    ("ce", TypeError, r"baseline must be a pair \(gamma, alpha\)"),
    ((0.0,), TypeError, r"baseline must be a pair"),
    ((-1, "none"), ValueError, r"baseline\[0\] must be a finite number >= 0"),
    ((0.0, "balanced"), ValueError, r"unknown baseline\[1\] 'balanced'"),
])
def test_vs_baseline_checks_its_baseline(small, baseline, error, match):
    with pytest.raises(error, match=match):
        vs_baseline(small, baseline=baseline)


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
    pooled = ece(np.concatenate(list(sel["y_test"])), np.concatenate(list(sel["proba"])))
    assert legend[1] == f"cross-entropy (ECE {pooled:.3f})" and legend[2].startswith("focal, γ=2 (ECE ")
    plt.close("all")
    with pytest.raises(ValueError, match="keep_proba=True"):
        plot_reliability_grid(small)
    with pytest.raises(ValueError, match="no run with ratio 1/10, alpha 'none' and gamma in \\[3.0\\]"):
        plot_reliability_grid(kept, gammas=[3])
