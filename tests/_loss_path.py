"""A pytest plugin for tests/test_losses_paths.py: the loss tests again, on the CPU path that FOCAL_TUTORIAL_LOSS_PATH
names ("passes": no compiled loop, every batch through PyTorch's passes and the compiled per-position helpers;
"numpy": no numba at all, as without the `fast` extra; "numpy-threads": no numba, and the gradient's target entries
written by PyTorch's index_put_)."""
import os

import pytest


@pytest.fixture(autouse=True)
def _loss_path(monkeypatch):
    import focal_tutorial.engine as engine
    path = os.environ.get("FOCAL_TUTORIAL_LOSS_PATH", "")
    if path == "passes":
        monkeypatch.setattr(engine, "CPU_KERNEL_MAX", 0)
    if path.startswith("numpy"):
        monkeypatch.setattr(engine, "_CPU_KERNEL", [None])  # what `import numba` failing leaves
    if path == "numpy-threads":
        monkeypatch.setattr(engine, "PUT_THREADS", 0)
