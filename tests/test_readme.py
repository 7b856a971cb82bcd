"""README.md is generated from nbs/index.ipynb (tools/build_site.py --readme), never edited by hand."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = "run `python tools/build_site.py --readme` and commit README.md"


def test_readme_is_what_index_gives():
    r = subprocess.run([sys.executable, "tools/build_site.py", "--readme", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md drifted from nbs/index.ipynb: {FIX}\n{r.stdout}\n{r.stderr}"


def test_check_catches_a_hand_edit(tmp_path, monkeypatch, capsys, build_site):
    "The check above can fail: a README edited by hand is reported with a diff."
    bs = build_site
    monkeypatch.chdir(ROOT)                   # nbdev reads settings.ini from here
    monkeypatch.setattr(bs, "ROOT", tmp_path)  # ... and the README it compares lies in tmp_path
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text(encoding="utf-8") + "\nedited by hand\n",
                                        encoding="utf-8")
    with pytest.raises(SystemExit, match="README.md differs"):
        bs.build_readme(check=True)
    assert "-edited by hand" in capsys.readouterr().out
    bs.build_readme()                         # writing makes it agree again
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == (ROOT / "README.md").read_text(encoding="utf-8")
