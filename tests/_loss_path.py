"""A pytest plugin for tests/test_losses_paths.py: the loss tests again, on the CPU path that FOCAL_TUTORIAL_LOSS_PATH
names ("numpy": no compiled loop; "numpy-threads": no compiled loop, target entries written by PyTorch's index_put_)."""
import os

import pytest


@pytest.fixture(autouse=True)
def _loss_path(monkeypatch):
    import focal_tutorial.losses as losses
    path = os.environ.get("FOCAL_TUTORIAL_LOSS_PATH", "")
    if path.startswith("numpy"):
        monkeypatch.setattr(losses, "KERNEL_MAX", 0)
    if path == "numpy-threads":
        monkeypatch.setattr(losses, "PUT_THREADS", 0)
