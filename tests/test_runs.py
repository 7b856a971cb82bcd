"quiet() and run_settings() of focal_tutorial.runs: what a page that trains runs first."
import logging
import warnings

import pytest

from focal_tutorial.runs import RunSettings, quiet, run_settings


@pytest.mark.parametrize("value,smoke", [("", False), ("0", False), ("1", True), ("true", True), ("False", False)])
def test_smoke_flag(monkeypatch, value, smoke):
    monkeypatch.setenv("FOCAL_TUTORIAL_SMOKE", value)
    s = run_settings(seeds=[3, 4])
    assert s.smoke is smoke and s.seeds == ((3,) if smoke else (3, 4))


def test_a_flag_that_is_not_on_or_off_is_refused(monkeypatch):
    monkeypatch.setenv("FOCAL_TUTORIAL_SMOKE", "yes")
    with pytest.raises(ValueError, match=r"FOCAL_TUTORIAL_SMOKE='yes': set it to 1"):
        run_settings()


def test_report_and_checkpoint_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("FOCAL_TUTORIAL_SMOKE", raising=False)
    monkeypatch.setenv("FOCAL_TUTORIAL_REPORT", "/tmp/r.json")
    monkeypatch.setenv("FOCAL_TUTORIAL_CHECKPOINT", "")
    assert run_settings() == RunSettings(False, (0, 1, 2), "/tmp/r.json", None)


def test_quiet_drops_the_notices_and_keeps_other_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet()
        warnings.warn("Only CPU is detected, training will be slow")
        warnings.warn("pkg_resources is deprecated as an API")
        warnings.warn("a warning a reader should see")
    assert [str(w.message) for w in caught] == ["a warning a reader should see"]
    assert logging.getLogger("lightning.pytorch").level == logging.ERROR
    assert logging.getLogger("autogluon").level == logging.ERROR
