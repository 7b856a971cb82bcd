"""The home page's short path (nbs/index.ipynb, '## Did focal loss help on your data?'), run as written on the
offline digits at smoke size: the reader's `train_data`, `test_data` and `base` are given in its namespace, one seed
instead of three, one epoch, the CPU, nothing downloaded."""
import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Did focal loss help on your data?"
SEEDS = "seeds=(0, 1, 2)"


def short_path() -> str:
    "The one Python block of the home page's short-path cell."
    cells = [c for c in nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4).cells
             if c.cell_type == "markdown" and c.source.startswith(HEADING)]
    assert len(cells) == 1, f"nbs/index.ipynb needs exactly one markdown cell starting with {HEADING!r}"
    blocks = re.findall(r"```python\n(.*?)```", cells[0].source, re.S)
    assert len(blocks) == 1, "the short-path cell holds one ```python block"
    return blocks[0]


def test_short_path_is_at_most_ten_lines_and_only_needs_the_readers_data():
    code = short_path()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10, f"the short path has {len(lines)} lines of code; the page promises at most 10"
    assert code.count(SEEDS) == 1  # what the run below replaces
    compile(code, "short path", "exec")
    assigned = set(re.findall(r"^(\w+) = ", code, re.M))
    used = {"train_data", "test_data", "base"}
    assert not used & assigned and all(re.search(rf"\b{name}\b", code) for name in used)


def test_short_path_runs_offline_at_smoke_size(monkeypatch):
    "The block as the page shows it, with 1 seed: two real AutoMM fits of one epoch, then the sentence it prints."
    pytest.importorskip("autogluon.multimodal")
    from focal_tutorial.automm import profile_hyperparameters
    from focal_tutorial.backbone import offline_backbone
    from focal_tutorial.data import offline_dataset
    monkeypatch.setenv("FOCAL_TUTORIAL_SMOKE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    train_data, test_data = offline_dataset(test_per_class=10)
    base = {**profile_hyperparameters("offline", gpu=False), "optim.max_epochs": 1,
            "model.timm_image.checkpoint_name": offline_backbone(epochs=0)}  # untrained: the quickest to build
    namespace = {"train_data": train_data, "test_data": test_data, "base": base}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(short_path().replace(SEEDS, "seeds=(0,)"), "short path", "exec"), namespace)
    runs, printed = namespace["runs"], out.getvalue().strip().splitlines()
    assert sorted(runs["recipe"]) == ["cross-entropy", "focal loss"] and runs["seed"].tolist() == [0, 0]
    assert printed[-1].startswith("With 1 paired seed, too few to judge focal loss against cross-entropy (2 needed): "
                                  "balanced accuracy (cross-entropy ")
    assert f"{runs.loc[runs['recipe'] == 'focal loss', 'balanced_accuracy'].iloc[0]:.3f}" in printed[-1]
