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
    assert "profile: offline" in text and "whole run" in text
    after = _repo_entries()
    if before is not None:  # no AutogluonModels/, lightning_logs/, checkpoints or images in the repository
        assert [p for p in after - before if not p.endswith(NOT_ARTIFACTS)] == []
