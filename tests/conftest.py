import importlib.util
import os
from pathlib import Path

import pytest

# No test may wait on a model hub: this machine (and CI) has no internet beyond package registries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def build_site():
    "tools/build_site.py as a module (it is a script, not part of the package)."
    path = Path(__file__).resolve().parents[1] / "tools" / "build_site.py"
    spec = importlib.util.spec_from_file_location("build_site", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
