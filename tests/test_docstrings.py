"""`help()` teaches: the docstrings of focal_loss, FocalLoss and class_weights name every parameter, give the formula
in plain text (no LaTeX, which `help()` in Colab shows raw), and carry an example that runs and prints what it says.
The site's show_doc shows only their summary and formula (numpydoc's Summary and Extended), never the whole text."""
import doctest
import inspect
import re

import pytest
from fastcore.docments import _docstring

from focal_tutorial.core import class_weights
from focal_tutorial.losses import FocalLoss, focal_loss

FL = "FL = -alpha_y * (1 - p)**gamma * log(p)"
CASES = {  # object -> (its parameters, the plain-text formula its docstring must contain)
    "focal_loss": (focal_loss, FL),
    "FocalLoss": (FocalLoss, FL),
    "class_weights": (class_weights, 'w_c = 1 / n_c` ("inverse"), `1 / sqrt(n_c)` ("sqrt") or `(1 - beta) / (1 - beta**n_c)`'),
}


def _params(obj):
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return [p for p in sig.parameters if p != "self"]


@pytest.mark.parametrize("name", CASES)
def test_docstring_names_every_parameter_and_gives_the_formula(name):
    obj, formula = CASES[name]
    doc = inspect.getdoc(obj)
    first = doc.splitlines()[0]
    assert first and not re.search(r"[$\\]", first), f"{name}: a plain-text first line, got {first!r}"
    assert "$" not in doc and "\\alpha" not in doc and "\\gamma" not in doc, f"{name}: LaTeX in the docstring"
    assert formula in doc, f"{name}: the plain-text formula {formula!r} is missing"
    section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split(" : ", 1)[0] for line in section.splitlines()]
    assert listed == _params(obj), f"{name}: Parameters lists {listed}, the signature has {_params(obj)}"
    assert all(len(line.split(" : ", 1)) == 2 for line in section.splitlines()), "one line per parameter"


@pytest.mark.parametrize("name", CASES)
def test_docstring_example_runs_and_gives_what_it_says(name):
    obj = CASES[name][0]
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(vars(inspect.getmodule(obj))))
    examples = [e for t in tests for e in t.examples]
    assert len(examples) >= 2 and all(e.want for e in examples[-1:]), f"{name}: an example with its output"
    assert sum(len(e.source.splitlines()) + len(e.want.splitlines()) for e in examples) == 3, "a three-line example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.attempted == len(examples) and result.failed == 0, f"{name}: its example does not give what it says"


@pytest.mark.parametrize("name", CASES)
def test_show_doc_shows_the_summary_and_formula_only(name):
    "nbdev's show_doc renders numpydoc's Summary and Extended: the parameters stay docments, the example stays out."
    obj, formula = CASES[name]
    shown = _docstring(obj)
    assert formula in shown and inspect.getdoc(obj).splitlines()[0] in shown
    assert "Parameters" not in shown and ">>>" not in shown and len(shown.splitlines()) <= 4


def test_compare_recipes_docstring_names_every_parameter_and_shows_the_call():
    "help(compare_recipes): the question it answers, one line per parameter, and the three calls that answer it."
    from focal_tutorial.compare import compare_recipes
    doc = inspect.getdoc(compare_recipes)
    assert "Did focal loss help on my data?" in doc and "$" not in doc
    section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split(" : ", 1)[0].lstrip("*") for line in section.splitlines()]
    assert listed == _params(compare_recipes)
    calls = [line for line in doc.splitlines() if line.lstrip().startswith(">>> ")]
    assert len(calls) == 3 and all(f"{name}(" in call for name, call in
                                   zip(("compare_recipes", "verdicts", "verdict_sentence"), calls))
