"AutoMM glue: hyperparameter construction, legacy keys, the mmdet slip, alpha checks, validation before any fit."
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import focal_tutorial.automm as automm
from focal_tutorial.automm import (LEGACY_KEYS, PROFILE_HPARAMS, PROFILES, automm_classes, check_hyperparameters, choose_profile,
                                   current_key, device_hyperparameters, fit_predictor, focal_hyperparameters,
                                   profile_hyperparameters, translate_hyperparameters)
from focal_tutorial.core import class_weights

LABELS = [0] * 200 + [1] * 66 + [2] * 22 + [3] * 7
W = class_weights(LABELS)


@pytest.fixture
def train_df():
    return pd.DataFrame({"image": [f"img_{i}.png" for i in range(len(LABELS))], "label": LABELS})


def test_import_loads_neither_autogluon_nor_torch():
    code = ("import sys, focal_tutorial.automm; "
            "print([m for m in ('autogluon', 'torch') if any(k == m or k.startswith(m + '.') for k in sys.modules)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("alpha", [W, np.array(W), torch.tensor(W, dtype=torch.float64), tuple(W)])
def test_focal_hyperparameters_current_keys_and_python_floats(alpha):
    hp = focal_hyperparameters(alpha)
    assert hp == {"optim.loss_func": "focal_loss", "optim.focal_loss.alpha": pytest.approx(W, rel=1e-12),
                  "optim.focal_loss.gamma": 1.0, "optim.focal_loss.reduction": "sum"}
    assert all(type(x) is float for x in hp["optim.focal_loss.alpha"])
    assert type(hp["optim.focal_loss.gamma"]) is float


def test_overrides_and_base_hyperparameters_merge_overrides_win():
    hp = focal_hyperparameters(W, gamma=2, reduction="mean", hyperparameters={"optim.max_epochs": 3, "env.num_gpus": 1},
                               **{"optim.max_epochs": 10})
    assert hp["optim.max_epochs"] == 10 and hp["env.num_gpus"] == 1
    assert (hp["optim.focal_loss.gamma"], hp["optim.focal_loss.reduction"]) == (2.0, "mean")


def test_focal_hyperparameters_without_alpha():
    assert focal_hyperparameters(None)["optim.focal_loss.alpha"] is None


def test_legacy_keys_translated_with_one_warning():
    with pytest.warns(FutureWarning, match="'optimization.max_epochs' -> 'optim.max_epochs'") as rec:
        hp = focal_hyperparameters(W, **{"optimization.max_epochs": 10, "optimization.learning_rate": 1e-3})
    assert len(rec) == 1
    assert "'optimization.learning_rate' -> 'optim.lr'" in str(rec[0].message)
    assert hp["optim.max_epochs"] == 10 and hp["optim.lr"] == 1e-3
    assert not any(k.startswith("optimization.") for k in hp)
    assert rec[0].filename == __file__  # the warning points at the caller, not at the package


def test_current_keys_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        focal_hyperparameters(W, hyperparameters=PROFILE_HPARAMS["shopee"], **{"optim.lr": 1e-4})
        translate_hyperparameters({"optim.max_epochs": 1})


def test_legacy_recipe_translates_to_focal_hyperparameters():
    legacy = {"model.timm_image.checkpoint_name": "swin_tiny_patch4_window7_224", "env.num_gpus": 1,
            "optimization.loss_function": "focal_loss", "optimization.focal_loss.alpha": W,
            "optimization.focal_loss.gamma": 1.0, "optimization.focal_loss.reduction": "sum",
            "optimization.max_epochs": 10}
    with pytest.warns(FutureWarning):
        assert translate_hyperparameters(legacy) == focal_hyperparameters(
            W, hyperparameters={**PROFILE_HPARAMS["shopee"], "env.num_gpus": 1})


@pytest.mark.parametrize("key, value, message", [
    ("model.mmdet_image.checkpoint_name", "swin_tiny_patch4_window7_224",
     "'model.timm_image.checkpoint_name': 'swin_tiny_patch4_window7_224'"),
    ("model.mmdet_image.frozen_layers", [], "object-detection"),
])
def test_mmdet_image_refused(key, value, message):
    for call in (lambda: focal_hyperparameters(W, **{key: value}), lambda: translate_hyperparameters({key: value}),
                 lambda: focal_hyperparameters(W, hyperparameters={key: value})):
        with pytest.raises(ValueError, match="object-detection") as e:
            call()
        assert message in str(e.value)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(alpha=W, gamma=-0.5), ValueError, "gamma must be"),
    (dict(alpha=W, gamma=float("inf")), ValueError, "gamma must be"),
    (dict(alpha=W, gamma=True), TypeError, "gamma must be"),
    (dict(alpha=[0.5, float("nan")]), ValueError, "alpha[1] must be a finite number"),
    (dict(alpha={0: 0.5, 1: 0.5}), TypeError, "not a dict"),
    (dict(alpha=pd.Series(W)), ValueError, "classes=automm_classes(train_labels)"),
    (dict(alpha=pd.Series(W, index=[3, 2, 1, 0]), classes=[0, 1, 2, 9]), ValueError, "not the classes"),
    (dict(alpha=W, **{"optim.focal_loss.gamma": -1}), ValueError, "optim.focal_loss.gamma must be a finite number >= 0"),
    (dict(alpha=W, **{"optim.focal_loss.gama": 2.0}), ValueError, "unknown focal-loss settings ['optim.focal_loss.gama']"),
    (dict(alpha=W, max_epochs=10), ValueError, "not an AutoMM config path"),
    (dict(alpha=W, hyperparameters="optim.max_epochs=1"), TypeError, "must be a dict"),
    (dict(alpha=W, **{"optim.focal_loss.reduction": "mean"}), ValueError, "pass reduction='mean' instead"),
    (dict(alpha=W, **{"optim.focal_loss.alpha": W[::-1]}), ValueError, "pass alpha="),
    (dict(alpha=W, **{"optim.focal_loss.alpha": W[:3]}), ValueError, "pass alpha="),
    (dict(alpha=W, **{"optim.loss_func": "cross_entropy"}), ValueError, "conflicts"),
    (dict(alpha=W, **{"optimization.max_epochs": 1, "optim.max_epochs": 2}), ValueError, "both set 'optim.max_epochs'"),
])
def test_focal_hyperparameters_errors(kwargs, exc, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(exc) as e:
            focal_hyperparameters(**kwargs)
    assert message in str(e.value)


def test_agreeing_focal_keys_are_fine():
    with pytest.warns(FutureWarning):
        hp = focal_hyperparameters(W, **{"optimization.loss_function": "Focal_Loss", "optim.focal_loss.gamma": 1.0,
                                         "optim.focal_loss.alpha": np.array(W)})
    assert hp == focal_hyperparameters(W)


def test_legacy_table_is_autogluons():
    "LEGACY_KEYS mirrors AutoGluon's make_overrides_backward_compatible, and fixes what it misses."
    import logging
    from autogluon.multimodal.utils.config import get_config, make_overrides_backward_compatible
    logging.getLogger("autogluon").setLevel(logging.ERROR)
    for old, new in LEGACY_KEYS.items():
        assert make_overrides_backward_compatible({old: 1}) == {new: 1} == {current_key(old): 1}
        if old.startswith("optim."):
            legacy = "optimization." + old[len("optim."):]
            assert make_overrides_backward_compatible({legacy: 1}) == {current_key(legacy): 1}
    # AutoGluon 1.6 leaves optimization.max_epochs as it is, and its config builder rejects it; ours goes through
    legacy = {"optimization.max_epochs": 3, "optimization.focal_loss.gamma": 1.5}
    with pytest.raises(KeyError, match="optimization.max_epochs"):
        get_config(problem_type="multiclass", overrides=dict(legacy))
    with pytest.warns(FutureWarning):
        cfg = get_config(problem_type="multiclass", overrides=translate_hyperparameters(legacy))
    assert cfg.optim.max_epochs == 3 and cfg.optim.focal_loss.gamma == 1.5
    cfg = get_config(problem_type="multiclass", overrides=focal_hyperparameters(W))
    assert cfg.optim.loss_func == "focal_loss" and list(cfg.optim.focal_loss.alpha) == W


@pytest.mark.parametrize("labels, pos", [([3, 1, 2, 1, 0], None), (["owl", "cat", "fox"], None),
                                         (["yes", "no", "no"], "no"), (["b", "a", "c"], "a"), ([2, 10, 1], None), ([1, 0, 2], 0), ([0, 1, 2], 2)])
def test_automm_classes_is_automms_label_encoder(labels, pos):
    from autogluon.multimodal.data.label_encoder import CustomLabelEncoder
    assert automm_classes(labels, pos) == CustomLabelEncoder(positive_class=pos).fit(labels).classes_.tolist()


def test_automm_classes_errors():
    with pytest.raises(ValueError, match="not a training class"):
        automm_classes([0, 1], pos_label=2)
    with pytest.raises(TypeError, match="one type"):
        automm_classes([0, "a"])


def test_check_alpha_ok(train_df):
    assert check_hyperparameters(focal_hyperparameters(W), train_df) == [0, 1, 2, 3]
    assert check_hyperparameters(focal_hyperparameters(W), train_df, classes=(0, 1, 2, 3)) == [0, 1, 2, 3]
    assert check_hyperparameters(None, train_df) == [0, 1, 2, 3]  # cross-entropy: nothing to check
    assert check_hyperparameters({"optim.loss_func": "focal_loss"}, train_df) == [0, 1, 2, 3]  # focal without alpha
    # data.pos_label moves that class last: the weights must follow
    hp = focal_hyperparameters(class_weights(LABELS, classes=[0, 2, 3, 1]), **{"data.pos_label": 1})
    assert check_hyperparameters(hp, train_df, classes=[0, 2, 3, 1]) == [0, 2, 3, 1]
    # ... but AutoMM tests pos_label for truthiness: data.pos_label=0 leaves the sorted order
    hp0 = focal_hyperparameters(W, **{"data.pos_label": 0})
    assert check_hyperparameters(hp0, train_df, classes=[0, 1, 2, 3]) == [0, 1, 2, 3]


@pytest.mark.parametrize("hp, kwargs, exc, message", [
    (focal_hyperparameters(W[:3]), {}, ValueError, "has 3 weights but the training data has 4 classes [0, 1, 2, 3]"),
    (focal_hyperparameters(W + [0.1]), {}, ValueError, "has 5 weights"),
    ({"optimization.loss_function": "focal_loss", "optimization.focal_loss.alpha": [1.0, 1.0]}, {}, ValueError,
     "has 2 weights"),
    (focal_hyperparameters(W), {"classes": [0, 1, 2, 9]}, ValueError, "missing [3], not in the data [9]"),
    (focal_hyperparameters(W), {"classes": ["0", "1", "2", "3"]}, ValueError, "do not match"),
    (focal_hyperparameters(W), {"label": "class"}, ValueError, "no label column 'class'"),
    (focal_hyperparameters(W), {"classes": [0, 1, 2, 3], "label": "image"}, ValueError, "has 4 weights but"),
])
def test_check_alpha_errors(train_df, hp, kwargs, exc, message):
    with pytest.raises(exc) as e:
        check_hyperparameters(hp, train_df, **kwargs)
    assert message in str(e.value)
    assert "class_weights" in str(e.value) or "label" in message


YES_NO = pd.DataFrame({"image": [f"img_{i}.png" for i in range(100)], "label": ["no"] * 90 + ["yes"] * 10})


def test_check_alpha_pos_label_needs_the_order():
    "data.pos_label='no' makes AutoMM's order ['yes', 'no']; class_weights' default (sorted) order is ['no', 'yes']."
    wrong = focal_hyperparameters(class_weights(YES_NO["label"]), **{"data.pos_label": "no"})  # [0.1, 0.9]
    with pytest.raises(ValueError) as e:
        check_hyperparameters(wrong, YES_NO)
    assert "AutoMM numbers the classes ['yes', 'no']" in str(e.value)
    assert "class_weights(train_data['label'], classes=['yes', 'no'])" in str(e.value)
    assert "pass classes=['yes', 'no']" in str(e.value)
    with pytest.raises(ValueError, match=r"\(data.pos_label='no' last\)"):
        check_hyperparameters(wrong, YES_NO, classes=["no", "yes"])
    right = focal_hyperparameters(class_weights(YES_NO["label"], classes=["yes", "no"]), **{"data.pos_label": "no"})
    assert right["optim.focal_loss.alpha"] == pytest.approx([0.9, 0.1])
    assert check_hyperparameters(right, YES_NO, classes=["yes", "no"]) == ["yes", "no"]
    # the count error's advice names the order too
    three = focal_hyperparameters([0.2, 0.3, 0.5], **{"data.pos_label": "no"})
    with pytest.raises(ValueError, match=r"class_weights\(train_data\['label'\], classes=\['yes', 'no'\]\)"):
        check_hyperparameters(three, YES_NO)
    # pos_label that is already last (or falsy) leaves the sorted order: nothing more to confirm
    assert check_hyperparameters(focal_hyperparameters(class_weights(YES_NO["label"]), **{"data.pos_label": "yes"}),
                       YES_NO) == ["no", "yes"]


@pytest.mark.parametrize("hp, now", [
    ({"optim.focal_loss.alpha": W}, "not set (AutoMM's default, cross-entropy)"),
    ({"optim.focal_loss.gamma": 2.0}, "not set"),
    ({"optim.loss_func": "cross_entropy", "optim.focal_loss.alpha": W}, "'cross_entropy'"),
    ({"optimization.loss_function": "auto", "optimization.focal_loss.gamma": 2.0}, "'auto'"),
])
def test_check_alpha_refuses_focal_settings_without_focal_loss(train_df, hp, now):
    with pytest.raises(ValueError) as e:
        check_hyperparameters(hp, train_df)
    assert f"optim.loss_func is {now}" in str(e.value) and "'optim.loss_func': 'focal_loss'" in str(e.value)


def test_check_alpha_bad_data():
    with pytest.raises(TypeError, match="DataFrame"):
        check_hyperparameters(focal_hyperparameters(W), LABELS)
    with pytest.raises(ValueError, match="no label"):
        check_hyperparameters(None, pd.DataFrame({"label": [0, None, 1]}))
    with pytest.raises(ValueError, match="no rows"):
        check_hyperparameters(None, pd.DataFrame({"label": []}))


class Recorder:
    "Stands in for MultiModalPredictor: records what it was asked to do."
    calls = []

    def __init__(self, **kwargs):
        Recorder.calls.append(("init", kwargs))

    def fit(self, train_data, **kwargs):
        Recorder.calls.append(("fit", len(train_data), kwargs))
        return self


@pytest.fixture
def recorder(monkeypatch):
    Recorder.calls = []
    monkeypatch.setattr(automm, "_predictor_class", lambda: Recorder)
    return Recorder


@pytest.mark.parametrize("args, kwargs, message", [
    ((focal_hyperparameters(W[:3]),), {}, "has 3 weights"),
    ((focal_hyperparameters(W[::-1]),), {"label": "missing"}, "no label column 'missing'"),
    (({"model.mmdet_image.checkpoint_name": "swin_tiny_patch4_window7_224"},), {}, "model.timm_image.checkpoint_name"),
    (({"max_epochs": 1},), {}, "not an AutoMM config path"),
    ((None,), {"seed": -1}, "seed must be"),
    ((None,), {"seed": 1.5}, "seed must be"),
    ((None,), {"tuning_data": pd.DataFrame({"image": ["x.png"], "label": [7]})}, "tuning_data has labels [7]"),
    ((None,), {"tuning_data": pd.DataFrame({"image": ["x.png"]})}, "no label column 'label' in tuning_data;"),
    ((None,), {"tuning_data": pd.DataFrame({"image": ["x.png"], "label": [None]})}, "1 rows of tuning_data have no"),
    ((None,), {"tuning_data": pd.DataFrame({"image": [], "label": []})}, "tuning_data has no rows"),
    (({"optim.focal_loss.alpha": W},), {}, "AutoMM would ignore them"),
    ((None,), {"predictor_kwargs": {"path": "x", "enable_progress_bar": False}}, "must not set ['path']"),
])
def test_fit_predictor_validates_before_creating_a_predictor(recorder, train_df, args, kwargs, message):
    with pytest.raises((ValueError, TypeError)) as e:
        fit_predictor(train_df, *args, **kwargs)
    assert message in str(e.value)
    assert recorder.calls == []


def test_fit_predictor_single_class_and_not_a_frame(recorder, train_df):
    with pytest.raises(ValueError, match="single class"):
        fit_predictor(train_df.iloc[:5])
    with pytest.raises(TypeError, match="DataFrame"):
        fit_predictor("train.csv")
    assert recorder.calls == []


def test_fit_predictor_calls_automm(recorder, train_df, tmp_path):
    with pytest.warns(FutureWarning):
        out = fit_predictor(train_df, {"optimization.max_epochs": 2, **focal_hyperparameters(W)}, path=tmp_path,
                            seed=np.int64(4), verbosity=0, predictor_kwargs={"enable_progress_bar": False},
                            time_limit=60)
    assert isinstance(out, Recorder)
    assert recorder.calls == [
        ("init", {"label": "label", "problem_type": "multiclass", "path": str(tmp_path), "verbosity": 0,
                  "enable_progress_bar": False}),
        ("fit", len(train_df), {"hyperparameters": {"optim.max_epochs": 2, **focal_hyperparameters(W)}, "seed": 4,
                                "time_limit": 60})]
    assert type(recorder.calls[1][2]["seed"]) is int


def test_fit_predictor_passes_classes_on(recorder):
    wrong = focal_hyperparameters(class_weights(YES_NO["label"]), **{"data.pos_label": "no"})
    with pytest.raises(ValueError, match=r"pass classes=\['yes', 'no'\]"):
        fit_predictor(YES_NO, wrong)
    with pytest.raises(ValueError, match="wrong classes"):
        fit_predictor(YES_NO, wrong, classes=["no", "yes"])
    assert recorder.calls == []
    right = focal_hyperparameters(class_weights(YES_NO["label"], classes=["yes", "no"]), **{"data.pos_label": "no"})
    fit_predictor(YES_NO, right, classes=["yes", "no"], verbosity=0)
    assert recorder.calls[0][1]["problem_type"] == "binary"
    assert "classes" not in recorder.calls[1][2]  # ours, not MultiModalPredictor.fit's


def test_fit_predictor_binary(recorder):
    df = pd.DataFrame({"image": ["a", "b", "c"], "y": ["no", "yes", "no"]})
    fit_predictor(df, label="y")
    assert recorder.calls[0][1]["problem_type"] == "binary" and recorder.calls[0][1]["label"] == "y"


def test_choose_profile(monkeypatch):
    monkeypatch.delenv("FOCAL_TUTORIAL_PROFILE", raising=False)
    p = choose_profile()
    assert p["name"] in ("shopee", "offline") and p["gpu"] == torch.cuda.is_available()
    assert p["versions"]["autogluon.multimodal"].startswith("1.6")
    if not p["gpu"]:
        assert (p["name"], p["internet"], p["device"].split(":")[0]) == ("offline", None, "cpu")
    assert choose_profile("shopee")["name"] == "shopee"
    monkeypatch.setenv("FOCAL_TUTORIAL_PROFILE", "offline")
    assert choose_profile()["reason"].startswith("chosen by")
    with pytest.raises(ValueError, match="unknown profile"):
        choose_profile("colab")


def test_choose_profile_gpu_without_internet(monkeypatch):
    "With a GPU, the internet decides; has_internet is monkeypatched so nothing goes on the network."
    import focal_tutorial.shopee as shopee
    monkeypatch.delenv("FOCAL_TUTORIAL_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    for online, name in [(False, "offline"), (True, "shopee")]:
        monkeypatch.setattr(shopee, "has_internet", lambda *a, **k: online)
        p = choose_profile()
        assert (p["name"], p["internet"], p["device"]) == (name, online, "cuda: Fake GPU")


# ---- every focal setting is checked, whatever built the dictionary (regressions) ----------------------------------

FOCAL = {"optim.loss_func": "focal_loss"}


@pytest.mark.parametrize("hp, exc, message", [
    ({**FOCAL, "optim.focal_loss.gamma": -1}, ValueError, "optim.focal_loss.gamma must be a finite number >= 0, got -1"),
    ({**FOCAL, "optim.focal_loss.gamma": "abc"}, TypeError, "optim.focal_loss.gamma must be a finite number"),
    ({**FOCAL, "optim.focal_loss.gamma": float("nan")}, ValueError, "optim.focal_loss.gamma must be a finite number"),
    ({**FOCAL, "optim.focal_loss.reduction": "none"}, ValueError, "reduction='none' gives one loss per sample"),
    ({**FOCAL, "optim.focal_loss.reduction": "avg"}, ValueError, "unknown optim.focal_loss.reduction 'avg'"),
    ({**FOCAL, "optim.focal_loss.alpha": [0.5, 0.5, float("inf"), 0.1]}, ValueError, "optim.focal_loss.alpha[2] must be"),
    ({**FOCAL, "optim.focal_loss.alpha": [0.0] * 4}, ValueError, "all zeros"),
    ({"optimization.loss_function": "focal_loss", "optimization.focal_loss.gamma": -1}, ValueError,
     "optim.focal_loss.gamma must be a finite number >= 0"),
    ({"optimization.loss_function": "focal_loss", "optimization.focal_loss.reduction": "none"}, ValueError,
     "reduction='none'"),
    ({"optim.loss_func": 1}, TypeError, "optim.loss_func must be a loss name"),
    ({**FOCAL, "optim.focal_loss.alpha": pd.Series([0.1, 0.2, 0.3, 0.4], index=[0, 1, 2, 7])}, ValueError,
     "not the classes [0, 1, 2, 3]"),
])
def test_fit_predictor_checks_hand_written_focal_settings(recorder, train_df, hp, exc, message):
    "A dict written by hand (or with legacy keys) is checked as focal_hyperparameters' is, before any predictor exists."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(exc) as e:
            fit_predictor(train_df, hp)
    assert message in str(e.value)
    assert recorder.calls == []


def test_fit_predictor_orders_a_series_alpha_by_its_classes(recorder, train_df):
    "alpha as a Series keyed by class reaches AutoMM as a list in AutoMM's class order, whatever the Series' order."
    keyed = pd.Series(W, index=[0, 1, 2, 3]).iloc[::-1]  # rarest class first
    fit_predictor(train_df, {**FOCAL, "optim.focal_loss.alpha": keyed}, verbosity=0)
    sent = recorder.calls[1][2]["hyperparameters"]["optim.focal_loss.alpha"]
    assert sent == pytest.approx(W) and all(type(a) is float for a in sent)
    assert focal_hyperparameters(keyed, classes=[0, 1, 2, 3])["optim.focal_loss.alpha"] == pytest.approx(W)


def test_fit_predictor_checks_verbosity(recorder, train_df):
    with pytest.raises(ValueError, match="verbosity must be an int in"):
        fit_predictor(train_df, verbosity=9)
    assert recorder.calls == []


# ---- profiles and the device ------------------------------------------------------------------------------------------

def test_device_hyperparameters():
    assert device_hyperparameters(True) == {"env.num_gpus": 1, "env.precision": "16-mixed"}
    assert device_hyperparameters(False) == {"env.num_gpus": 0, "env.precision": 32}
    assert device_hyperparameters() == device_hyperparameters(torch.cuda.is_available())
    with pytest.raises(TypeError, match="gpu must be"):
        device_hyperparameters("cuda")


def test_device_hyperparameters_follows_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profile_hyperparameters("offline")["env.precision"] == "16-mixed"
    assert profile_hyperparameters("offline")["env.num_gpus"] == 1


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("gpu", [False, True])
def test_profiles_use_only_automm_keys(name, gpu):
    from omegaconf import OmegaConf
    from autogluon.multimodal.utils import get_default_config
    hp = profile_hyperparameters(name, gpu)
    assert "optim.loss_func" not in hp and not any(k.startswith("optim.focal_loss") for k in hp)
    cfg = get_default_config()
    missing = [k for k in hp if OmegaConf.select(cfg, k, default="__missing__") == "__missing__"]
    assert missing == []
    assert hp is not profile_hyperparameters(name, gpu) and PROFILE_HPARAMS[name].items() <= hp.items()


def test_profile_hyperparameters_unknown():
    with pytest.raises(ValueError, match="unknown profile 'colab'"):
        profile_hyperparameters("colab")


def test_choose_profile_reports_no_kernel_string():
    import platform
    p = choose_profile("offline")
    assert "platform" not in p and platform.release() not in str(p)


def test_automm_classes_refuses_tuple_labels():
    "AutoMM's own encoder splits tuple labels into a 2-D array, so the glue refuses them (they used to fail inside NumPy)."
    from autogluon.multimodal.data.label_encoder import CustomLabelEncoder
    labels = pd.Series([("b", 1), ("a", 2), ("b", 1)])
    assert CustomLabelEncoder().fit(labels).classes_.ndim == 2  # why: AutoMM cannot encode them as classes
    with pytest.raises(TypeError, match="tuple labels .* Join each into one string"):
        automm_classes(labels)


# --- issue 17 ------------------------------------------------------------------------------------------------------

ALPHA_STRING = ",".join(f"{w:.6g}" for w in W)  # what tuning writes and AutoMM's FocalLoss reads


def test_alpha_strings_are_accepted_everywhere_alpha_is_taken(recorder, train_df):  # item 10
    parsed = [float(x) for x in ALPHA_STRING.split(",")]
    assert focal_hyperparameters(ALPHA_STRING)["optim.focal_loss.alpha"] == parsed
    assert focal_hyperparameters("(" + ALPHA_STRING + ")")["optim.focal_loss.alpha"] == parsed
    hand_written = {"optim.loss_func": "focal_loss", "optim.focal_loss.alpha": ALPHA_STRING}
    assert check_hyperparameters(hand_written, train_df) == [0, 1, 2, 3]
    fit_predictor(train_df, hand_written)
    assert recorder.calls[-1][2]["hyperparameters"]["optim.focal_loss.alpha"] == parsed  # AutoMM gets the floats


@pytest.mark.parametrize("alpha, message", [
    ("0.1,0.2,0.3", "has 3 weights but the training data has 4 classes"),
    ("0.1,0.2,nan,0.4", r"optim.focal_loss.alpha[2] must be a finite number >= 0, got nan"),
    ("[0.1,0.2,0.3,0.4]", "is not a list of numbers AutoMM can read"),
])
def test_bad_alpha_strings_are_refused_before_any_fit(recorder, train_df, alpha, message):  # item 10
    with pytest.raises(ValueError) as e:
        fit_predictor(train_df, {"optim.loss_func": "focal_loss", "optim.focal_loss.alpha": alpha})
    assert message in str(e.value)
    assert recorder.calls == []


def test_set_alpha_and_set_classes_are_refused(recorder, train_df):  # item 2
    with pytest.raises(TypeError, match="alpha must be a list in a fixed order, not a set"):
        focal_hyperparameters({0.1, 0.2, 0.3, 0.4})
    with pytest.raises(TypeError, match="not a set"):
        fit_predictor(train_df, {"optim.loss_func": "focal_loss", "optim.focal_loss.alpha": {0.1, 0.2, 0.3, 0.4}})
    with pytest.raises(TypeError, match="classes must be a list in a fixed order, not a set"):
        fit_predictor(train_df, focal_hyperparameters(W), classes={0, 1, 2, 3})
    with pytest.raises(TypeError, match="classes must be a list in a fixed order, not a frozenset"):
        check_hyperparameters(focal_hyperparameters(None), train_df, classes=frozenset({0, 1, 2, 3}))  # even without alpha
    with pytest.raises(TypeError, match="classes must be a list in a fixed order, not a set"):
        focal_hyperparameters(None, classes={"a", "b"})
    assert recorder.calls == []


def test_profile_hyperparameters_returns_copies():  # item 3
    h = profile_hyperparameters("offline", gpu=False)
    h["model.names"] += ["hf_text"]
    assert profile_hyperparameters("offline", gpu=False)["model.names"] == ["timm_image"]
    assert PROFILE_HPARAMS["offline"]["model.names"] == ["timm_image"]


def test_two_label_columns_are_named(recorder, train_df):  # item 12
    twice = pd.concat([train_df, train_df[["label"]]], axis=1)
    for call in (lambda: check_hyperparameters(focal_hyperparameters(W), twice), lambda: fit_predictor(twice),
                 lambda: fit_predictor(train_df, tuning_data=twice)):
        with pytest.raises(ValueError, match=r"has 2 columns named 'label', so the label column is ambiguous; drop "
                                             r"or rename the extra ones"):
            call()
    assert recorder.calls == []


def test_mixed_type_labels_are_refused_without_suggesting_classes(recorder):  # item 15
    mixed = pd.DataFrame({"image": ["a", "b", "c", "d"], "label": [1, "a", 1, "a"]})
    for call in (lambda: fit_predictor(mixed), lambda: fit_predictor(mixed, classes=[1, "a"]),
                 lambda: check_hyperparameters(None, mixed, classes=[1, "a"]), lambda: automm_classes(mixed["label"])):
        with pytest.raises(TypeError) as e:
            call()
        assert "AutoMM's label encoder cannot sort" in str(e.value) and "astype(str)" in str(e.value)
        assert "pass `classes=`" not in str(e.value)
    assert recorder.calls == []


def test_automms_label_encoder_indeed_refuses_mixed_types():  # the reason classes= cannot help
    from autogluon.multimodal.data.label_encoder import CustomLabelEncoder
    with pytest.raises(TypeError):
        CustomLabelEncoder().fit(pd.Series([1, "a", 1, "a"]))


@pytest.mark.parametrize("kwargs", [["x"], "enable_progress_bar", [("enable_progress_bar", False)]])
def test_predictor_kwargs_must_be_a_dict(recorder, train_df, kwargs):  # item 15
    with pytest.raises(TypeError, match=r"predictor_kwargs must be a dict of MultiModalPredictor arguments"):
        fit_predictor(train_df, predictor_kwargs=kwargs)
    assert recorder.calls == []


# --- issue 29: AutoMM drops label smoothing with focal loss; refused, not dropped ------------------------------------

@pytest.mark.parametrize("via", ["focal_hyperparameters", "hyperparameters", "override"])
def test_label_smoothing_with_focal_loss_is_refused(via):
    from focal_tutorial.automm import _check_focal
    with pytest.raises(ValueError, match=r"optim.label_smoothing=0.1 has no effect with optim.loss_func 'focal_loss'"):
        if via == "focal_hyperparameters":
            focal_hyperparameters([0.5, 0.5], hyperparameters={"optim.label_smoothing": 0.1})
        elif via == "override":
            focal_hyperparameters([0.5, 0.5], **{"optim.label_smoothing": 0.1})
        else:
            _check_focal({"optim.loss_func": "focal_loss", "optim.label_smoothing": 0.1})


def test_label_smoothing_without_focal_loss_or_at_zero_is_fine():
    from focal_tutorial.automm import _check_focal
    assert _check_focal({"optim.label_smoothing": 0.1})["optim.label_smoothing"] == 0.1  # cross-entropy smooths
    assert focal_hyperparameters([0.5, 0.5], **{"optim.label_smoothing": 0})["optim.label_smoothing"] == 0
