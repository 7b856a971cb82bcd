"""focal_tutorial.search_space: alpha strings and choices in AutoMM's class order, focal_search_space, and
check_search_space's errors. Nothing here starts Ray: a tune.choice is a plain object, and every check runs before Ray."""
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("autogluon.multimodal")
pytest.importorskip("ray")
from ray import tune  # noqa: E402

from focal_tutorial.core import class_weights  # noqa: E402
from focal_tutorial.core import ALPHA_METHODS  # noqa: E402
from focal_tutorial.search_space import (ALPHA_KEY, GAMMA_KEY, REDUCTION_KEY, _grid,  # noqa: E402
                                         _tag_of, alpha_choices, alpha_string, check_search_space, focal_search_space,
                                         parse_alpha)


@pytest.fixture
def df():
    "Four classes, 8/4/2/1 rows: the rarest is class 3."
    labels = [0] * 8 + [1] * 4 + [2] * 2 + [3]
    return pd.DataFrame({"image": [f"{i}.png" for i in range(len(labels))], "label": labels})


# ---------------------------------------------------------------- alpha strings and choices, in AutoMM's order

def test_alpha_string_of_none_says_what_to_do():
    with pytest.raises(TypeError, match="got None.*alpha=None itself"):
        alpha_string(None)


def test_alpha_string_is_what_automms_focal_loss_reads():
    from autogluon.multimodal.optim.losses.focal_loss import FocalLoss
    w = [0.1, 0.2, 0.3, 0.4]
    s = alpha_string(w)
    assert parse_alpha(s) == w == parse_alpha("(" + s + ")")
    assert FocalLoss(alpha=s).nll_loss.weight.tolist() == pytest.approx(w)


@pytest.mark.parametrize("labels", [[3, 1, 2, 1, 0, 0, 0, 2], ["owl", "cat", "fox", "cat", "owl"]])
def test_alpha_choices_follow_automms_class_order(labels):
    choices = alpha_choices(labels)
    assert list(choices) == list(ALPHA_METHODS)
    for method in ("inverse", "sqrt", "effective"):
        assert parse_alpha(choices[method]) == pytest.approx(class_weights(labels, method=method), rel=1e-5)
    inverse = parse_alpha(choices["inverse"])
    counts = pd.Series(labels).value_counts()
    rarest = sorted(counts.index).index(counts.idxmin())  # its position in sorted order
    assert np.argmax(inverse) == rarest
    assert parse_alpha(choices["none"]) == pytest.approx([1 / len(counts)] * len(counts))


def test_alpha_choices_with_pos_label_order():
    labels = ["a", "b", "b", "b"]
    choices = alpha_choices(labels, ["inverse"], classes=["b", "a"])  # data.pos_label="a" moves "a" last
    assert parse_alpha(choices["inverse"]) == pytest.approx([0.25, 0.75])


def test_focal_search_space_and_its_check(df):
    space = focal_search_space(df, gammas=[0, 2], alpha_methods=["none", "inverse"], hyperparameters={"optim.max_epochs": 1})
    assert space["optim.loss_func"] == "focal_loss" and space["optim.max_epochs"] == 1
    assert space[GAMMA_KEY].categories == [0.0, 2.0]
    assert space[ALPHA_KEY].categories == list(alpha_choices(df["label"], ["none", "inverse"]).values())
    checked, n = check_search_space(space, df)
    assert n == 4 and checked[ALPHA_KEY].categories == space[ALPHA_KEY].categories


def test_check_search_space_writes_list_choices_as_strings(df):
    w = class_weights(df["label"])
    hp = {"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice([w, None]), GAMMA_KEY: tune.uniform(0, 3)}
    checked, n = check_search_space(hp, df)
    assert checked[ALPHA_KEY].categories == [alpha_string(w), None] and n is None


def test_balanced_data_tries_equal_weights_once():
    balanced = pd.DataFrame({"image": ["a", "b", "c", "d"], "label": [0, 0, 1, 1]})
    space = focal_search_space(balanced, gammas=[1])
    assert space[ALPHA_KEY].categories == ["0.5,0.5"]



# ---------------------------------------------------------------- bad input: clear errors before any trial

W4 = "0.25,0.25,0.25,0.25"


@pytest.mark.parametrize("hp, exc, message", [
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: 1.0}, ValueError, "searches nothing"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([])}, ValueError, "no values"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([1, "two"])}, TypeError, r"choices\[1\]"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([1, -0.5])}, ValueError, ">= 0"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.uniform(-1, 2)}, ValueError, "lower bound"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice(["0.5,0.5"])}, ValueError, "4 classes"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice(["0.5;0.5"])}, ValueError, "AutoMM can read"),
    # issue 19: each of these passed the checks, then failed or misled inside Ray
    ({GAMMA_KEY: tune.choice([0, 2])}, ValueError, "searches.*gamma.*optim.loss_func is not set"),
    ({"optim.loss_func": "ce", GAMMA_KEY: tune.choice([0, 2])}, ValueError, "optim.loss_func is 'ce'"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.uniform(0, -3)}, ValueError, "upper bound"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.uniform(3, 1)}, ValueError, "below the upper"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.randn(2, 1)}, TypeError, "two finite bounds"),
    ({"optim.loss_func": "focal_loss", REDUCTION_KEY: tune.choice(["none", "sum"])}, ValueError, "reduction='none'"),
    ({"optim.loss_func": "focal_loss", REDUCTION_KEY: tune.choice(["sum", "avg"])}, ValueError, "'avg'"),
    ({"optim.loss_func": "focal_loss", "optim.focal_loss.beta": tune.choice([0.9, 0.99])}, ValueError,
     "unknown focal-loss settings"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([1, 1.0])}, ValueError, "more than once"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice([W4, "(0.25,0.25,0.250,0.25)"])}, ValueError,
     "more than once.*AutoMM's string"),
    ({"optim.loss_func": "focal_loss", "optim.lr": tune.choice([1e-3, 0.001]), GAMMA_KEY: 1}, ValueError,
     "optim.lr choices list the same value"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice([{0: 1, 1: 1, 2: 1, 3: 1}])}, TypeError, "class order"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice([pd.Series([1.0] * 4)])}, TypeError, "class order"),
    ({"optim.loss_func": "focal_loss", ALPHA_KEY: tune.uniform(0, 1)}, TypeError, "tune.choice"),
    ({ALPHA_KEY: tune.choice([W4])}, ValueError, "optim.loss_func"),
    ({"optim.loss_func": tune.choice(["focal_loss", "ce"]), GAMMA_KEY: 1.0}, ValueError, "searches optim.loss_func"),
    ([1, 2], TypeError, "dict"),
    # issue 26: tune.grid_search is a plain dict, and was called "an empty search space"
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.grid_search([0, 2])}, ValueError,
     f"sets '{GAMMA_KEY}' to tune.grid_search.*use tune.choice"),
    ({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.grid_search([0, 2]), ALPHA_KEY: tune.choice([W4])}, ValueError,
     "tune.grid_search"),
])
def test_check_search_space_errors(df, hp, exc, message):
    with pytest.raises(exc, match=message):
        check_search_space(hp, df)


def test_alpha_in_another_class_order_is_refused(df):
    wrong = alpha_string(class_weights(df["label"], classes=[3, 2, 1, 0]))
    hp = {"optim.loss_func": "focal_loss", ALPHA_KEY: tune.choice([wrong])}
    with pytest.raises(ValueError, match="wrong classes"):
        check_search_space(hp, df, classes=[3, 2, 1, 0])


def test_a_fixed_alpha_string_is_read_as_automm_reads_it(df):
    hp = {"optim.loss_func": "focal_loss", ALPHA_KEY: W4, GAMMA_KEY: tune.choice([0, 1])}
    assert check_search_space(hp, df)[1] == 2
    with pytest.raises(ValueError, match="4 classes"):
        check_search_space({**hp, ALPHA_KEY: "0.5,0.5"}, df)


def test_a_single_class_is_refused_before_ray(df):
    one = df.assign(label=0)
    with pytest.raises(ValueError, match="single class"):
        focal_search_space(one, gammas=[0, 1])
    with pytest.raises(ValueError, match="single class"):
        check_search_space({"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([0, 1])}, one)


def test_duplicates_leave_the_combinations_right(df):
    hp = {"optim.loss_func": "focal_loss", GAMMA_KEY: tune.choice([0, 1, 2]), REDUCTION_KEY: tune.choice(["sum", "mean"])}
    assert check_search_space(hp, df)[1] == 6



def test_pos_label_needs_the_class_order(df):
    hp = {"optim.loss_func": "focal_loss", "data.pos_label": 1, ALPHA_KEY: tune.choice([W4])}
    with pytest.raises(ValueError, match="pos_label"):
        check_search_space(hp, df)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"gammas": []}, ValueError, "empty search space"),
    ({"gammas": "0,1"}, TypeError, "gammas must be a list"),
    ({"gammas": [0, "x"]}, TypeError, r"gammas\[1\]"),
    ({"gammas": [0, -1]}, ValueError, r"gammas\[1\]"),
    ({"gammas": [1, 1]}, ValueError, "duplicates"),
    ({"alpha_methods": []}, ValueError, "empty search space"),
    ({"alpha_methods": ["inverse", "log"]}, ValueError, "log"),
    ({"hyperparameters": {"optim.loss_func": "focal_loss"}}, ValueError, "loss settings"),
    ({"label": "y"}, ValueError, "no label column"),
])
def test_focal_search_space_errors(df, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        focal_search_space(df, **kwargs)


def test_focal_search_space_tags_its_alpha_choice_with_the_methods(df):
    space = focal_search_space(df, gammas=[1], alpha_methods=["none", "inverse"])
    tag = _tag_of(space[ALPHA_KEY])
    assert tag["names"] == {s: m for m, s in alpha_choices(df["label"], ["none", "inverse"]).items()}
    assert tag["classes"] == [0, 1, 2, 3] and tag["beta"] == 0.999


def test_grid_lists_each_combination_once(df):
    hp = {"optim.loss_func": "focal_loss", "optim.max_epochs": 1, GAMMA_KEY: tune.choice([0, 1, 2]),
          REDUCTION_KEY: tune.choice(["sum", "mean"])}
    checked, n = check_search_space(hp, df)
    grid = _grid(checked)
    assert len(grid) == n == 6 and len({tuple(sorted(g.items())) for g in grid}) == 6
    assert all(set(g) == {GAMMA_KEY, REDUCTION_KEY} for g in grid)  # the fixed keys left out
