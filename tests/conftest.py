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


# The CPU paths of the loss's engine, each forced by the engine's settings: numba's compiled loop (float32/float64
# logits; half precision takes the next path), log-sum-exp (amax/exp/sum) and PyTorch's softmax kernel.
CPU_PATHS = {"loop": {"CPU_KERNEL_MAX": 10**9}, "lse": {"CPU_KERNEL_MAX": 0, "SMALL_C": 10**9},
             "softmax": {"CPU_KERNEL_MAX": 0, "SMALL_C": 0}}


def _cpu_path_names():
    import focal_tutorial.engine as engine
    return [p for p in CPU_PATHS if p != "loop" or engine._cpu_kernel() is not None]  # no loop without numba


@pytest.fixture(params=_cpu_path_names())
def cpu_path(request, monkeypatch):
    """Runs a test once on each CPU path of the loss (a module opts in with `pytestmark =
    pytest.mark.usefixtures("cpu_path")`); the path's name."""
    import focal_tutorial.engine as engine
    for name, value in CPU_PATHS[request.param].items():
        monkeypatch.setattr(engine, name, value)
    return request.param
