"""compare_recipes and verdict_sentence: refusals before any fit, the rotating order, the metrics of each fit (against
a stand-in predictor with known probabilities, so these run in milliseconds), the sentence for each kind of verdict,
and one real offline AutoMM comparison at smoke size."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import focal_tutorial.automm as automm
from focal_tutorial.calibration import calibration_metrics
from focal_tutorial.compare import compare_recipes, verdict_sentence
from focal_tutorial.core import class_weights
from focal_tutorial.evaluate import SCALAR_METRICS, evaluate, verdicts
from focal_tutorial.posthoc import adjust_proba, class_priors

CLASSES = [0, 1, 2]
TRAIN = pd.DataFrame({"image": [f"tr{i}.png" for i in range(36)], "label": [0] * 24 + [1] * 9 + [2] * 3})
TEST = pd.DataFrame({"image": [f"te{i}.png" for i in range(12)], "label": [0, 1, 2] * 4})
ALPHA = class_weights(TRAIN["label"])
CE = {"optim.max_epochs": 1}
FOCAL = automm.focal_hyperparameters(ALPHA, hyperparameters=CE)


def fake_proba(recipe_is_focal: bool, seed: int, n: int) -> pd.DataFrame:
    "Deterministic probabilities that differ by recipe and seed (rows sum to 1; columns the classes, as AutoMM's)."
    rng = np.random.default_rng(100 * seed + recipe_is_focal)
    p = rng.dirichlet(np.ones(len(CLASSES)), size=n)
    return pd.DataFrame(p, columns=pd.Index(np.array(CLASSES, dtype=np.int64)))  # AutoMM's columns: NumPy ints


class Stub:
    "Stands in for MultiModalPredictor: records each fit, predicts `fake_proba` for its recipe and seed."
    fits = []

    def __init__(self, label, problem_type, path, verbosity, **kwargs):
        self.label, self.problem_type, self.kwargs = label, problem_type, kwargs

    def fit(self, train_data, hyperparameters, seed, **kwargs):
        self.focal, self.seed = hyperparameters.get("optim.loss_func") == "focal_loss", seed
        Stub.fits.append(("focal loss" if self.focal else "cross-entropy", seed, len(train_data), kwargs))
        return self

    def predict_proba(self, data, as_pandas=False):
        assert as_pandas and self.label not in data.columns  # the label is dropped before predicting
        return fake_proba(self.focal, self.seed, len(data))


@pytest.fixture
def stub(monkeypatch):
    Stub.fits = []
    monkeypatch.setattr(automm, "_predictor_class", lambda: Stub)
    return Stub


@pytest.fixture
def no_fit(monkeypatch):
    "Any attempt to fit fails the test: refusals must come before the first fit."
    def fail(*args, **kwargs):
        raise AssertionError("fit_predictor was called although the arguments were refused")
    monkeypatch.setattr(automm, "fit_predictor", fail)


RECIPES = {"cross-entropy": CE, "focal loss": FOCAL}


@pytest.mark.parametrize("args, kwargs, exc, message", [
    ((TRAIN, TEST, {"focal loss": FOCAL}), {}, ValueError, "needs two or more"),
    ((TRAIN, TEST, [CE, FOCAL]), {}, TypeError, "recipes must be a dict"),
    ((TRAIN, TEST, {"cross-entropy": CE, 1: FOCAL}), {}, TypeError, "non-empty strings"),
    ((TRAIN, TEST, {"cross-entropy": CE, "verdict": FOCAL}), {}, ValueError, "column of the verdicts table"),
    ((TRAIN, TEST, RECIPES), {"seeds": (0, 1, 0)}, ValueError, "seeds has duplicates [0]"),
    ((TRAIN, TEST, RECIPES), {"seeds": ()}, ValueError, "seeds is empty"),
    ((TRAIN, TEST, RECIPES), {"seeds": (0, -1)}, ValueError, "seeds[1]"),
    ((TRAIN, TEST, RECIPES), {"seeds": 3}, TypeError, "seeds must be a list"),
    ((TRAIN, TEST, RECIPES), {"label": "digit"}, ValueError, "no label column 'digit' in train_data"),
    ((TRAIN, TEST.drop(columns="label"), RECIPES), {}, ValueError, "no label column 'label' in test_data"),
    ((TRAIN, TEST.assign(label=[0, 1, 7] * 4), RECIPES), {}, ValueError, "test_data has labels [7]"),
    ((TRAIN, "test.csv", RECIPES), {}, TypeError, "test_data must be a pandas DataFrame"),
    ((TRAIN, TEST, {"cross-entropy": CE, "focal loss": automm.focal_hyperparameters(ALPHA[:2])}), {}, ValueError,
     "recipe 'focal loss': optim.focal_loss.alpha has 2 weights"),
    ((TRAIN, TEST, {"cross-entropy": CE, "focal loss": {"optim.focal_loss.gamma": 2}}), {}, ValueError,
     "AutoMM would ignore them"),
    ((TRAIN, TEST, {"a": CE, "b": {"model.mmdet_image.checkpoint_name": "swin"}}), {}, ValueError, "recipe 'b'"),
    ((TRAIN, TEST, RECIPES), {"rare_class": 9}, ValueError, "rare_class=9 is not one of the training classes"),
    ((TRAIN, TEST, RECIPES), {"logit_adjusted": "yes"}, TypeError, "logit_adjusted must be True or False"),
    ((TRAIN, TEST, RECIPES), {"path": "models"}, ValueError, "sets ['path'] itself"),
    ((TRAIN.assign(label=0), TEST.assign(label=0), RECIPES), {}, ValueError, "single class"),
    ((lambda seed: (TRAIN, TEST), TEST, RECIPES), {}, ValueError, "pass test_data=None"),
    ((lambda seed: TRAIN, None, RECIPES), {}, TypeError, "must return a tuple (train_data, test_data)"),
    ((lambda seed: (TRAIN if seed == 0 else TRAIN.iloc[:33], TEST), None, RECIPES), {"seeds": (0, 1)}, ValueError,
     "(the split drawn for seed 1)"),
])
def test_refused_before_any_fit(no_fit, args, kwargs, exc, message):
    with pytest.raises(exc) as e:
        compare_recipes(*args, **kwargs)
    assert message in str(e.value)


def test_a_bad_recipe_later_in_the_dict_is_refused_before_the_first_fit(stub):
    "The typo sits in the last recipe: nothing trains, although the first two recipes are fine."
    with pytest.raises(ValueError, match="recipe 'typo'"):
        compare_recipes(TRAIN, TEST, {"a": CE, "b": FOCAL, "typo": {"optim.focal_loss.alpha": ALPHA}})
    assert stub.fits == []


def test_order_rotates_and_one_row_per_recipe_and_seed(stub):
    runs = compare_recipes(TRAIN, TEST, RECIPES, seeds=(5, 7, 9, 11), verbose=False)
    fitted = [(r, s) for r, s, _, _ in stub.fits]
    assert fitted == [("cross-entropy", 5), ("focal loss", 5), ("focal loss", 7), ("cross-entropy", 7),
                      ("cross-entropy", 9), ("focal loss", 9), ("focal loss", 11), ("cross-entropy", 11)]
    assert list(zip(runs["recipe"], runs["seed"])) == fitted  # rows in fit order
    assert not runs.duplicated(["recipe", "seed"]).any() and len(runs) == 8


def test_three_recipes_rotate_so_each_goes_first_once(stub):
    recipes = {"cross-entropy": CE, "focal loss": FOCAL, "cross-entropy again": CE}
    runs = compare_recipes(TRAIN, TEST, recipes, seeds=(0, 1, 2), verbose=False)
    assert runs.groupby("seed", sort=False)["recipe"].first().tolist() == list(recipes)
    assert len(runs) == 9


def test_metrics_are_those_of_the_predicted_probabilities(stub):
    runs = compare_recipes(TRAIN, TEST, RECIPES, seeds=(0, 1), logit_adjusted=True, keep_proba=True, verbose=False)
    assert list(runs.columns[:2]) == ["recipe", "seed"] and "fit_seconds" in runs.columns
    priors = class_priors(TRAIN["label"])
    for _, row in runs.iterrows():
        proba = fake_proba(row["recipe"] == "focal loss", row["seed"], len(TEST))
        y = TEST["label"]
        pred = proba.to_numpy().argmax(axis=1)  # the columns are the classes 0, 1, 2 in order
        expected = evaluate(y, pred, classes=CLASSES, rare_class=2)  # 2: the fewest training labels
        for m in SCALAR_METRICS:
            assert row[m] == pytest.approx(expected[m])
        for m, v in calibration_metrics(y, proba).items():
            assert row[m] == pytest.approx(v)
        adjusted = adjust_proba(proba, priors)
        la = evaluate(y, adjusted.to_numpy().argmax(axis=1), classes=CLASSES, rare_class=2)
        assert row["la_balanced_accuracy"] == pytest.approx(la["balanced_accuracy"])
        assert row["la_ece"] == pytest.approx(calibration_metrics(y, adjusted)["ece"])
        pd.testing.assert_frame_equal(row["proba"], proba.set_axis(CLASSES, axis=1))
        assert (row["y_test"] == y.to_numpy()).all()
    assert runs["balanced_accuracy"].nunique() > 1  # the stand-in's fits differ, so equal columns would show


def test_what_each_fit_gets(stub, capsys):
    compare_recipes(TRAIN, TEST, RECIPES, seeds=(3,), time_limit=60)
    (_, seed, n, kwargs), _ = stub.fits
    assert seed == 3 and n == len(TRAIN) and kwargs == {"time_limit": 60}
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("seed 3 cross-entropy: balanced accuracy")
    assert "recall of 2 (rarest)" in out[0]  # the class as Python shows it, not np.int64(2)


def test_rare_class_and_drawn_splits(stub):
    draws = []

    def split(seed):
        draws.append(seed)
        return TRAIN.sample(frac=1, random_state=seed), TEST
    runs = compare_recipes(split, None, RECIPES, seeds=(0, 1), rare_class=1, verbose=False)
    assert draws == [0, 1] and len(stub.fits) == 4  # every split drawn (and checked) before the first fit
    proba = fake_proba(False, 0, len(TEST))
    expected = evaluate(TEST["label"], proba.to_numpy().argmax(axis=1), classes=CLASSES, rare_class=1)
    assert runs.loc[0, "rare_class_recall"] == pytest.approx(expected["rare_class_recall"])


def test_import_loads_neither_autogluon_nor_torch():
    code = "import sys, focal_tutorial.compare; print('autogluon' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- verdict_sentence on hand-made runs -------------------------------------------------------------------------

def made(**focal):
    "Three seeds; cross-entropy scores 0.8 (ECE 0.05) in each, focal loss the given per-seed values."
    n = len(next(iter(focal.values())))
    rows = []
    for s in range(n):
        rows.append({"recipe": "cross-entropy", "seed": s, **{m: 0.05 if m == "ece" else 0.8 for m in focal}})
        rows.append({"recipe": "focal loss", "seed": s, **{m: v[s] for m, v in focal.items()}})
    return pd.DataFrame(rows)


def sentence(runs, lower=()):
    table = verdicts(runs, "focal loss", "cross-entropy", [c for c in runs.columns if c not in ("recipe", "seed")],
                     by="recipe", lower_is_better=list(lower))
    return verdict_sentence(table, "focal loss", "cross-entropy")


def test_sentence_better_worse_and_unclear():
    s = sentence(made(rare_class_recall=[0.9, 0.95, 0.85], balanced_accuracy=[0.7, 0.75, 0.7],
                      macro_f1=[0.9, 0.7, 0.81]))
    assert s == ("Against cross-entropy, focal loss helped the rarest class's recall (cross-entropy 0.800 → focal loss "
                 "0.900; ahead in 3, behind in 0 of 3 seeds) but hurt balanced accuracy (0.800 → 0.717; ahead in 0, "
                 "behind in 3 of 3 seeds), without a clear change in macro-F1 (0.800 → 0.803; ahead in 2, behind in 1 "
                 "of 3 seeds).")


def test_sentence_no_clear_difference():
    s = sentence(made(balanced_accuracy=[0.9, 0.7, 0.8]))
    assert s.startswith("Against cross-entropy, focal loss made no clear difference in balanced accuracy "
                        "(cross-entropy 0.800 → focal loss 0.800; ahead in 1, behind in 1, level in 1 of 3 seeds)")


def test_sentence_only_worse():
    assert sentence(made(macro_f1=[0.7, 0.7, 0.7])).startswith("Against cross-entropy, focal loss hurt macro-F1 ")


def test_sentence_too_few_pairs():
    s = sentence(made(balanced_accuracy=[0.9]))
    assert s == ("With 1 paired seed, too few to judge focal loss against cross-entropy (2 needed): balanced accuracy "
                 "(cross-entropy 0.800 → focal loss 0.900; ahead in 1, behind in 0 of 1 seed).")


def test_sentence_lower_is_better():
    s = sentence(made(ece=[0.02, 0.03, 0.01]), lower=["ece"])
    assert s.startswith("Against cross-entropy, focal loss helped ECE (cross-entropy 0.050 → focal loss 0.020; ahead "
                        "in 3, behind in 0 of 3 seeds)")
    with pytest.raises(ValueError, match="lower_is_better"):
        sentence(made(ece=[0.02, 0.03, 0.01]))  # judged as if a higher ECE were better


def test_sentence_logit_adjusted_names_and_undefined():
    runs = made(la_balanced_accuracy=[0.9, 0.95, 0.85], rare_class_recall=[np.nan] * 3)
    runs.loc[runs["recipe"] == "cross-entropy", "rare_class_recall"] = np.nan
    s = sentence(runs)
    assert "helped balanced accuracy after logit adjustment" in s
    assert s.endswith("; the rarest class's recall undefined in every seed.")


def test_sentence_refuses_tables_it_cannot_read():
    table = verdicts(made(balanced_accuracy=[0.9, 0.95, 0.85]), "focal loss", "cross-entropy", "balanced_accuracy",
                     by="recipe")
    with pytest.raises(ValueError, match="look swapped"):
        verdict_sentence(table, "cross-entropy", "focal loss")
    with pytest.raises(ValueError, match="lacks the columns"):
        verdict_sentence(table, "focal loss", "weighted cross-entropy")
    with pytest.raises(TypeError, match="evaluate.verdicts returns"):
        verdict_sentence(table.iloc[:0], "focal loss", "cross-entropy")


# ---- one real comparison, offline, at smoke size --------------------------------------------------------------

def test_real_offline_comparison(tmp_path, monkeypatch):
    "Two real AutoMM fits on the offline digits (one seed, one epoch, CPU): the rows and the verdict sentence."
    pytest.importorskip("autogluon.multimodal")
    from focal_tutorial.backbone import offline_backbone
    from focal_tutorial.data import offline_dataset
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    train, test = offline_dataset(test_per_class=10)
    base = {**automm.profile_hyperparameters("offline", gpu=False), "optim.max_epochs": 1,
            "model.timm_image.checkpoint_name": offline_backbone(epochs=0)}
    recipes = {"cross-entropy": base,
               "focal loss": automm.focal_hyperparameters(class_weights(train["label"]), hyperparameters=base)}
    runs = compare_recipes(train, test, recipes, seeds=(0,), logit_adjusted=True, keep_proba=True, verbose=False)
    assert runs["recipe"].tolist() == ["cross-entropy", "focal loss"] and (runs["fit_seconds"] > 0).all()
    for _, row in runs.iterrows():
        assert row["proba"].shape == (40, 4) and list(row["proba"].columns) == [0, 1, 2, 3]
        assert row["ece"] == pytest.approx(calibration_metrics(row["y_test"], row["proba"])["ece"])
        assert 0 <= row["balanced_accuracy"] <= 1 and row["nll"] > 0 and 0 <= row["la_brier"] <= 2
    table = verdicts(runs, "focal loss", "cross-entropy", by="recipe")
    assert verdict_sentence(table, "focal loss", "cross-entropy").startswith("With 1 paired seed, too few to judge")
