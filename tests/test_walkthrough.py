"""The walkthrough notebook end to end with real AutoMM, at smoke size (1 seed, 1 epoch), on the CPU: in the offline
profile, and in the shopee profile that Colab users run, with nothing downloaded (a shopee archive in AutoGluon's
layout built by the test, in the cache where the page looks for it, and a small untrained local backbone through
FOCAL_TUTORIAL_CHECKPOINT instead of Swin-T, whose weights would be downloaded).

Everything it writes goes to temporary folders: the cache (FOCAL_TUTORIAL_CACHE), the working directory, AutoMM's
model folders (temporary directories inside the notebook) and the JSON report (FOCAL_TUTORIAL_REPORT)."""
import hashlib
import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "nbs" / "05_walkthrough.ipynb"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "rare_class_recall")
LOSSES = ("cross-entropy", "focal loss")  # the recipes the page compares
JUDGED = METRICS[1:]  # the verdict leaves out accuracy, which the balanced test set makes balanced accuracy


# What other tools (pytest, Python, hypothesis) or other people editing sources may add while the test runs.
NOT_ARTIFACTS = ("__pycache__/", ".pytest_cache/", ".hypothesis/", ".py", ".ipynb", ".md", ".yml")


def _repo_entries():
    "Untracked and ignored entries of the working tree, as git lists them (None outside a git checkout)."
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--ignored=matching"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {line[3:] for line in out.splitlines() if line[:2] in ("??", "!!")}


def _execute(tmp: Path, **env) -> tuple:
    "Run the walkthrough at smoke size on the CPU with `env` (and a cache, a working dir and a report under `tmp`)."
    work, report = tmp / "work", tmp / "report.json"
    work.mkdir()
    env = {"FOCAL_TUTORIAL_SMOKE": "1", "FOCAL_TUTORIAL_CACHE": str(tmp / "cache"),
           "FOCAL_TUTORIAL_REPORT": str(report), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", **env}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)  # the kernel inherits this process's environment
    before = _repo_entries()
    try:
        nb = nbformat.read(NB, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        mp.undo()
    return nb, json.loads(report.read_text()), before, work


def _outputs(nb) -> str:
    "Everything the page shows below its cells: printed text, Markdown, and tables as text."
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            out.append(o.get("text", ""))
            out += [o.get("data", {}).get(k, "") for k in ("text/markdown", "text/plain")]
    return "\n".join(out)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return _execute(tmp_path_factory.mktemp("walkthrough"), FOCAL_TUTORIAL_PROFILE="offline")


def test_report_holds_every_metric_for_both_losses(smoke_run):
    _, rep, _, _ = smoke_run
    assert rep["smoke"] is True and rep["seeds"] == [0]
    assert rep["profile"]["name"] == "offline" and rep["profile"]["device"].startswith("cpu")
    runs = rep["runs"]
    assert sorted(r["recipe"] for r in runs) == sorted(LOSSES)
    for r in runs:
        for m in METRICS + ("ece", "nll", "la_balanced_accuracy"):
            assert 0 <= r[m] <= (1 if m != "nll" else 50), (r["recipe"], m, r[m])
        assert r["fit_seconds"] > 0
    summary = {(s["recipe"], s["metric"]): s for s in rep["summary"]}
    assert set(summary) == {(loss, m) for loss in LOSSES for m in METRICS}
    assert all(s["n"] == 1 for s in summary.values())
    assert set(rep["verdict"]) == set(JUDGED)
    assert {(c["recipe"], c["probabilities"]) for c in rep["calibration"]} == {
        (loss, p) for loss in LOSSES for p in ("as predicted", "logit-adjusted")}


def test_notebook_outputs_and_no_artifacts_in_the_repo(smoke_run):
    nb, _, before, _ = smoke_run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert images >= 2  # the per-class recall and the confusion matrices
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "profile: offline" in text and "precision: 32" in text
    assert not any(o.output_type == "stream" and o.name == "stderr"
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))  # no warnings shown
    after = _repo_entries()
    if before is not None:  # no AutogluonModels/, lightning_logs/, checkpoints or images in the repository
        assert [p for p in after - before if not p.endswith(NOT_ARTIFACTS)] == []


def test_offline_prose_is_computed_from_the_run(smoke_run):
    "One seed, a balanced test set of 40 per class: the words say so, with no '1 seeds' and no NaN."
    text = _outputs(smoke_run[0])
    assert "40 test images per class: one test image is 0.025 of a class's recall" in text
    assert "The test set is balanced" in text and "1 seed and 40 test images" in text
    assert "**A smoke run** (one seed, one epoch)" in text
    assert "With 1 paired seed, too few to judge focal loss against cross-entropy" in text
    assert "This is not shopee" in text
    assert not re.search(r"\b1 seeds\b|\bnan\b", text)
    assert "No GPU here, so AutoMM trains on the CPU" in text
    assert "In Colab: Runtime → Change runtime type → T4 GPU, then run the page again from the top." in text


# ---- the shopee profile, as Colab users run it, with nothing downloaded ------------------------------------------

SHOPEE_TEST = (5, 4, 4, 3)  # an imbalanced test set: the prose must not assume a balanced one


@pytest.fixture(scope="module")
def shopee_run(tmp_path_factory):
    from shopee_archive import write_shopee_zip
    from focal_tutorial.backbone import offline_backbone
    tmp = tmp_path_factory.mktemp("walkthrough_shopee")
    archive = tmp / "cache" / "shopee" / "file.zip"  # where the page's shopee_dataset() looks: the cache
    archive.parent.mkdir(parents=True)
    counts = write_shopee_zip(archive, train_per_class=28, test_per_class=SHOPEE_TEST, size=64)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    # resnet10t, untrained: nothing to download. At 64 pixels its last feature map is 2x2, so a last batch of one
    # image still gives batch norm more than one value per channel (Swin-T has no batch norm).
    backbone = offline_backbone(cache_dir=tmp / "backbone", epochs=0, image_size=64)
    dead = "http://127.0.0.1:9"  # any download attempt fails at once instead of reaching the network
    nb, rep, before, work = _execute(tmp, FOCAL_TUTORIAL_PROFILE="shopee", FOCAL_TUTORIAL_CHECKPOINT=backbone,
                                     http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest  # the archive was read, not fetched again
    return nb, rep, before, work, counts, Path(backbone).name


def test_shopee_profile_runs_both_fits(shopee_run):
    nb, rep, _, _, counts, backbone = shopee_run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert rep["profile"]["name"] == "shopee" and rep["smoke"] is True and rep["seeds"] == [0]
    assert sorted(r["recipe"] for r in rep["runs"]) == sorted(LOSSES)
    assert all(0 <= r[m] <= 1 for r in rep["runs"] for m in METRICS)
    assert set(rep["verdict"]) == set(JUDGED)
    text = _outputs(nb)
    assert "profile: shopee (chosen by force= or $FOCAL_TUTORIAL_PROFILE)" in text
    assert "No GPU here, so AutoMM trains on the CPU" in text
    assert "In Colab: Runtime → Change runtime type → T4 GPU, then run the page again from the top." in text
    # the class counts: make_imbalanced(factor=1/3) of 27 per class, and the archive's test set
    assert ("training images per class: {0: 28, 1: 9, 2: 3, 3: 1} | test images per class: "
            f"{dict(zip(range(4), SHOPEE_TEST))}") in text
    from focal_tutorial.core import class_weights
    alpha = [round(a, 3) for a in class_weights([k for k, n in enumerate((28, 9, 3, 1)) for _ in range(n)])]
    assert f"alpha = class_weights(train labels): {alpha}" in text
    for loss in LOSSES:  # both fits, one line each
        assert re.search(rf"seed 0 {loss}: balanced accuracy \d\.\d{{3}}, recall of 3 \(rarest\) \d\.\d{{3}}, ECE "
                         r"\d\.\d{3}\n", text), loss
    assert f"'model.timm_image.checkpoint_name': '.../{backbone}'" in text  # the backbone that trained, shown


def test_shopee_profile_tables_and_verdict(shopee_run):
    nb, rep, _, _, _, backbone = shopee_run
    tables = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "text/html" in o.get("data", {})]
    assert len(tables) == 4  # the runs, mean ± std, the verdicts, calibration
    assert all(loss in tables[0] for loss in LOSSES) and "(1 run)" in tables[1]
    assert all(m in tables[2] for m in METRICS) and "verdict" in tables[2]
    assert all(w in tables[3] for w in ("as predicted", "logit-adjusted", "ece", "nll", "brier", *LOSSES))
    text = _outputs(nb)
    # calibration and logit adjustment, in words computed from the run (1 seed here)
    assert re.search(r"\*\*Calibration\.\*\* The ECE of focal loss's probabilities was \d\.\d{3} against \d\.\d{3} for "
                     r"cross-entropy \(mean over 1 seed; lower with focal loss in [01] of 1\)", text)
    assert re.search(r"\*\*Logit adjustment\.\*\* It moved the rarest class's recall from \d\.\d{3} to \d\.\d{3}", text)
    assert "Cross-entropy with logit adjustment, which needs no retraining," in text
    assert "**A smoke run** (one seed, one epoch)" in text
    assert "With 1 paired seed, too few to judge focal loss against cross-entropy" in text
    assert f"This run trained `{backbone}` (set by `FOCAL_TUTORIAL_CHECKPOINT`)" in text
    # what the run measured, in words: its own test set, not the offline profile's
    assert "3 to 5 test images per class: one test image is 0.2 to 0.333 of a class's recall" in text
    assert "The test set is not balanced (class 0: 5, class 1: 4, class 2: 4, class 3: 3)" in text
    assert "Not the backbone of AutoGluon's tutorial" in text and "This is not shopee" not in text
    assert "40 test images" not in text and not re.search(r"\b1 seeds\b|\bnan\b", text)
    assert not any(o.output_type == "stream" and o.name == "stderr"
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))  # no warnings shown


def test_shopee_profile_leaves_nothing_behind(shopee_run):
    _, _, before, work, _, _ = shopee_run
    assert list(work.iterdir()) == []  # no download, no AutogluonModels/ in the working directory
    after = _repo_entries()
    if before is not None:
        assert [p for p in after - before if not p.endswith(NOT_ARTIFACTS)] == []


# ---- the page's plain code: the recipe to copy and the install cell ----------------------------------------------

def _cells():
    return nbformat.read(NB, as_version=4).cells


def _recipe() -> str:
    "The code block under '## The recipe, to copy'."
    import re
    cell = next(c for c in _cells() if c.cell_type == "markdown" and c.source.startswith("## The recipe, to copy"))
    return re.search(r"```python\n(.*?)```", cell.source, re.S)[1]


def test_recipe_runs_with_current_keys_and_checked_alpha(monkeypatch, tmp_path):
    "The copyable recipe, run against stand-ins for the shopee download and the predictor: what AutoMM would get."
    import ast
    import pandas as pd
    import autogluon.multimodal as mm
    import autogluon.multimodal.utils.misc as misc
    from autogluon.multimodal.utils.config import get_config
    from focal_tutorial.automm import check_hyperparameters
    from focal_tutorial.core import class_weights

    ast.parse(_recipe())
    frame = lambda n: pd.DataFrame({"image": [f"{k}_{i}.jpg" for k in range(4) for i in range(n)],
                                    "label": [k for k in range(4) for _ in range(n)]})
    monkeypatch.setattr(misc, "shopee_dataset", lambda download_dir: (frame(200), frame(20)))
    fits = []

    class Predictor:
        def __init__(self, **kwargs):
            assert kwargs == {"label": "label", "problem_type": "multiclass"}

        def fit(self, train_data, **kwargs):
            fits.append((train_data, kwargs))

        def predict(self, data):
            return pd.Series([int(p.split("_")[0]) for p in data["image"]])
    monkeypatch.setattr(mm, "MultiModalPredictor", Predictor)
    monkeypatch.chdir(tmp_path)
    exec(compile(_recipe(), "recipe", "exec"), {})
    (train, kwargs), = fits
    hp = kwargs["hyperparameters"]
    assert train["label"].value_counts().sort_index().tolist() == [200, 66, 22, 7]
    assert hp["optim.focal_loss.alpha"] == class_weights(train["label"])
    assert check_hyperparameters(hp, train) == [0, 1, 2, 3]  # count and order are AutoMM's
    cfg = get_config(problem_type="multiclass", overrides=dict(hp))  # every key is a current AutoMM key
    assert cfg.model.timm_image.checkpoint_name == "swin_tiny_patch4_window7_224"
    assert cfg.optim.loss_func == "focal_loss" and cfg.optim.focal_loss.gamma == 1.0


def test_install_cell_is_plain_python():
    "No IPython magic (nbdev drops indented ones from the page): the cell is valid Python as shown."
    import ast
    cell = next(c for c in _cells() if c.cell_type == "code" and "pip" in c.source)
    ast.parse(cell.source)
    assert not re.search(r"^\s*[%!]", cell.source, re.M)
    assert '"google.colab" in sys.modules' in cell.source


def test_colab_opens_a_gpu_runtime():
    "Colab reads the accelerator from the notebook's metadata (and nbdev_clean keeps it: settings.ini)."
    import configparser
    meta = nbformat.read(NB, as_version=4).metadata
    assert meta["accelerator"] == "GPU" and meta["colab"]["gpuType"] == "T4"
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    assert {"accelerator", "colab"} <= set(cfg["DEFAULT"]["allowed_metadata_keys"].split())


def test_legacy_keys_are_told_once_on_the_automm_page():
    "No legacy recipe to copy here: one sentence names the legacy keys and the mmdet slip and links the AutoMM page."
    walk = "\n".join(c.source for c in _cells())
    assert "optimization.loss_function" not in walk and "`optimization.*` keys" in walk
    assert "multimodal.html#the-mmdet_image-slip" in walk
    automm = nbformat.read(ROOT / "nbs" / "03_multimodal.ipynb", as_version=4).cells
    assert any(c.cell_type == "markdown" and c.source.startswith("## The mmdet_image slip") for c in automm)
    assert any(c.cell_type == "code" and "optimization.loss_function" in c.source and "test_fail" in c.source
               for c in automm)  # the legacy recipe is shown failing there
