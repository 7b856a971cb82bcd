import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# No test may wait on a model hub: this machine (and CI) has no internet beyond package registries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def build_site():
    "tools/build_site.py as a module (it is a script, not part of the package)."
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    "The site built once per test session without Quarto (as `make site` builds it), in a temporary folder."
    out = tmp_path_factory.mktemp("site") / "_docs"
    r = subprocess.run([sys.executable, "tools/build_site.py", "--no-quarto", "--no-readme", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"site build failed\n{r.stdout}\n{r.stderr}"
    return out
