"""The walkthrough's install cell, run as Colab runs it, with stand-ins for what only Colab has.

Each run is a fresh interpreter (a Colab runtime after a restart is one) of a bare virtual environment made for the
test (no pip, no system packages), so that it sees no installed distributions but those of its own site-packages,
which holds:

* a stand-in `google.colab` module (Colab imports the real one into every runtime; the child imports it first);
* a stand-in installer: a `pip` package that `python -m pip` finds. It logs its arguments and "installs"
  focal_tutorial[automm] by writing the distributions' metadata: focal_tutorial with the requirements it really
  declares, and each requirement at the version installed in this test's environment (or as a test's plan says);
* the real `packaging`, which the cell uses to compare versions (Colab ships it).

The cell is run from a file, as IPython runs a cell (so that `inspect.getsource` finds its functions). It restarts
the runtime with `os.kill(os.getpid(), 9)`, so a restart shows as the child dying of SIGKILL."""
import json
import re
import shutil
import signal
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import nbformat
import packaging
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "nbs" / "05_walkthrough.ipynb"

STAND_IN_PIP = '''"Stand-in installer: logs its arguments, writes the metadata of what `pip install focal_tutorial[automm]` installs."
import json, os, shutil, sys
from pathlib import Path
with open(os.environ["STAND_IN_PIP_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
site, plan = Path(os.environ["STAND_IN_SITE"]), json.loads(Path(os.environ["STAND_IN_PLAN"]).read_text())
if "__fail__" in plan:  # pip's own failure: its reason on stderr, a non-zero exit code
    code, text = plan.pop("__fail__")
    sys.stderr.write(text)
    sys.exit(code)
for name, (ver, reqs) in plan.items():
    for old in site.glob(name.replace("-", "_").replace(".", "_") + "-*.dist-info"):
        shutil.rmtree(old)  # an upgrade replaces the old version
    d = site / f"{name.replace('-', '_').replace('.', '_')}-{ver}.dist-info"
    d.mkdir()
    (d / "METADATA").write_text("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, ver)
                                + "".join("Requires-Dist: %s\\n" % r for r in reqs))
'''


def install_cell() -> str:
    (cell,) = [c for c in nbformat.read(NB, as_version=4).cells if c.cell_type == "code" and "google.colab" in c.source]
    return cell.source


def _plan() -> dict:
    "What the real install puts there: focal_tutorial with its declared requirements, each at this environment's version."
    reqs = requires("focal_tutorial")
    plan = {"focal_tutorial": [version("focal_tutorial"), reqs]}
    for r in map(Requirement, reqs):
        if r.marker is None or r.marker.evaluate({"extra": "automm"}):
            plan[r.name] = [version(r.name), []]
    return plan


def _dist(site: Path, name: str, ver: str, reqs=()) -> None:
    d = site / f"{name.replace('-', '_').replace('.', '_')}-{ver}.dist-info"
    d.mkdir()
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n"
                                + "".join(f"Requires-Dist: {r}\n" for r in reqs))


@pytest.fixture
def runtime(tmp_path):
    """A fresh 'runtime': run(colab=True) executes the install cell in a new interpreter; returns (exit code, stdout).
    `run.plan(...)` changes what the stand-in pip installs; `run.stderr` is the last run's standard error."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "__init__.py").write_text("")
    (site / "google" / "colab" / "__init__.py").write_text('"Stand-in for Colab\'s module."\n')
    (site / "pip").mkdir()
    (site / "pip" / "__init__.py").write_text("")
    (site / "pip" / "__main__.py").write_text(STAND_IN_PIP)
    shutil.copytree(Path(packaging.__file__).parent, site / "packaging")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan()))
    log = tmp_path / "pip.log"
    env = {"STAND_IN_SITE": str(site), "STAND_IN_PLAN": str(plan), "STAND_IN_PIP_LOG": str(log), "PATH": "/usr/bin:/bin"}

    def run(colab: bool = True):
        cell = tmp_path / "cell.py"
        cell.write_text(("import google.colab\n" if colab else "") + install_cell())
        p = subprocess.run([python, str(cell)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        run.stderr = p.stderr
        if p.returncode in (0, -signal.SIGKILL):
            assert p.stderr == "", p.stderr
        return p.returncode, p.stdout

    run.site = site
    run.plan = lambda content: plan.write_text(json.dumps(content))
    run.installs = lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return run


def _git_url() -> str:
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]["git_url"]


def test_first_run_installs_then_restarts(runtime):
    code, out = runtime()
    assert code == -signal.SIGKILL  # the runtime restarts
    assert runtime.installs() == [["install", "-q", f"focal_tutorial[automm] @ git+{_git_url()}"]]
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "The runtime then restarts" in lines[0] and "run the page again" in lines[0]


def test_after_the_restart_it_does_nothing(runtime):
    assert runtime()[0] == -signal.SIGKILL
    assert runtime() == (0, "")  # installed at the right versions: no install, no restart, no output
    assert len(runtime.installs()) == 1


def test_outside_colab_it_does_nothing(runtime):
    assert runtime(colab=False) == (0, "")  # nothing installed, yet no install: this is not Colab
    assert runtime.installs() == []


def test_a_requirement_at_a_wrong_version_is_installed_again(runtime):
    "Colab's own autogluon.multimodal (or timm) at a version the extra does not accept: install and restart."
    plan = _plan()
    for name, (ver, reqs) in plan.items():
        _dist(runtime.site, name, "1.5.0" if name == "autogluon.multimodal" else ver, reqs)
    assert runtime()[0] == -signal.SIGKILL and len(runtime.installs()) == 1
    assert runtime() == (0, "")


def test_the_check_reads_this_environment():
    """In this environment (focal_tutorial installed with every extra), the cell's check finds nothing missing: with a
    name it could not look up, every Colab run would install and restart again, for ever."""
    ns = {}
    exec(compile(install_cell(), "install cell", "exec"), ns)  # not Colab here: it only defines unmet
    assert ns["unmet"]() is None
    assert ns["unmet"]("no-such-package") == "no-such-package (not installed)"
    assert any(re.match(r"autogluon[._-]multimodal", r) for r in requires("focal_tutorial"))


# --- issue 26: pip's reason shown; no restart (and so no loop) while a requirement stays unmet ---------------------

def test_a_failed_install_shows_pips_reason(runtime):
    "pip's output went to the child's stderr, which Colab does not show: the cell showed only CalledProcessError."
    reason = "".join(f"line {i}\n" for i in range(40)) + "ERROR: No matching distribution found for autogluon.multimodal\n"
    runtime.plan({"__fail__": [1, reason]})
    code, _ = runtime()
    assert code == 1 and "pip install failed (exit code 1)" in runtime.stderr
    assert "No matching distribution found for autogluon.multimodal" in runtime.stderr  # the tail, in the error
    assert "line 5\n" not in runtime.stderr  # only the tail, not 40 lines of it


def test_a_requirement_still_unmet_after_the_install_is_named_and_not_restarted(runtime):
    "pip leaves autogluon.multimodal outside the extra's range: every run installed and restarted again, for ever."
    plan = _plan()
    plan["autogluon.multimodal"][0] = "1.5.0"
    runtime.plan(plan)
    for _ in range(2):  # each run installs again, but none restarts
        code, out = runtime()
        assert code == 0 and "still unmet: autogluon.multimodal" in out and "(installed: 1.5.0)" in out
        assert "not restarted" in out
    assert len(runtime.installs()) == 2
