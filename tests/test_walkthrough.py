"""The walkthrough notebook end to end with real AutoMM, at smoke size (1 seed, 1 epoch), offline, on the CPU.

Everything it writes goes to temporary folders: the cache (FOCAL_TUTORIAL_CACHE), the working directory, AutoMM's
model folders (temporary directories inside the notebook) and the JSON report (FOCAL_TUTORIAL_REPORT)."""
import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "nbs" / "05_walkthrough.ipynb"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "rare_class_recall")
LOSSES = ("cross-entropy", "focal")


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


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("walkthrough")
    work, report = tmp / "work", tmp / "report.json"
    work.mkdir()
    env = {"FOCAL_TUTORIAL_SMOKE": "1", "FOCAL_TUTORIAL_PROFILE": "offline", "FOCAL_TUTORIAL_CACHE": str(tmp / "cache"),
           "FOCAL_TUTORIAL_REPORT": str(report), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg"}
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


def test_report_holds_every_metric_for_both_losses(smoke_run):
    _, rep, _, _ = smoke_run
    assert rep["smoke"] is True and rep["seeds"] == [0]
    assert rep["profile"]["name"] == "offline" and rep["profile"]["device"].startswith("cpu")
    runs = rep["runs"]
    assert sorted(r["loss"] for r in runs) == sorted(LOSSES)
    for r in runs:
        for m in METRICS:
            assert 0 <= r[m] <= 1, (r["loss"], m, r[m])
        assert r["fit_seconds"] > 0
    summary = {(s["loss"], s["metric"]): s for s in rep["summary"]}
    assert set(summary) == {(loss, m) for loss in LOSSES for m in METRICS}
    assert all(s["n"] == 1 for s in summary.values())
    assert set(rep["verdict"]) == set(METRICS)


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
    from focal_tutorial.automm import check_alpha
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
    assert check_alpha(hp, train) == [0, 1, 2, 3]  # count and order are AutoMM's
    cfg = get_config(problem_type="multiclass", overrides=dict(hp))  # every key is a current AutoMM key
    assert cfg.model.timm_image.checkpoint_name == "swin_tiny_patch4_window7_224"
    assert cfg.optim.loss_func == "focal_loss" and cfg.optim.focal_loss.gamma == 1.0


def test_install_cell_is_plain_python():
    "No IPython magic (nbdev drops indented ones from the page): the cell is valid Python as shown."
    import ast
    cell = next(c for c in _cells() if c.cell_type == "code" and "pip" in c.source)
    ast.parse(cell.source)
    assert "%" not in cell.source and "!" not in cell.source
    assert '"google.colab" in sys.modules' in cell.source


def test_legacy_block_is_marked_do_not_copy():
    cell = next(c for c in _cells() if c.cell_type == "markdown" and "optimization.loss_function" in c.source)
    assert "do not copy" in cell.source.lower() and "# DO NOT COPY" in cell.source
