"Values, gradients, properties and errors of focal_tutorial.losses (focal_loss, FocalLoss)."
import importlib.metadata
import importlib.util
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import focal_tutorial.engine as engine
from focal_tutorial.core import class_weights
from focal_tutorial.engine import SMALL_C
from focal_tutorial.losses import FocalLoss, focal_loss, focal_loss_reference

F64 = torch.float64
SMALL, LARGE = 4, 2 * SMALL_C  # the engine picks its CPU path by C: fewer classes than SMALL_C, and more
pytestmark = pytest.mark.usefixtures("cpu_path")  # every test runs on each CPU path (tests/conftest.py)


def _automm_focal_loss_class():
    """AutoMM's FocalLoss. Its source file is loaded directly: importing autogluon.multimodal takes ~10 s, the
    file itself needs only torch. Falls back to the regular import if the file is not where 1.6.x keeps it."""
    try:
        dist = importlib.metadata.distribution("autogluon.multimodal")
    except importlib.metadata.PackageNotFoundError:
        try:  # e.g. only that file on PYTHONPATH, as bench/gpu_check.sh provides on a GPU machine
            from autogluon.multimodal.optim.losses.focal_loss import FocalLoss
            return FocalLoss
        except ImportError:
            pytest.skip("autogluon.multimodal is not installed (the `automm` extra)")
    path = dist.locate_file("autogluon/multimodal/optim/losses/focal_loss.py")
    if not path.exists():
        from autogluon.multimodal.optim.losses import FocalLoss
        return FocalLoss
    spec = importlib.util.spec_from_file_location("_automm_focal_loss", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FocalLoss


@pytest.fixture(scope="module")
def AutoMMFocalLoss():
    return _automm_focal_loss_class()


def data(N=16, C=5, extra=(), dtype=F64, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(N, C, *extra, generator=g)).to(dtype).requires_grad_()
    y = torch.randint(0, C, (N, *extra), generator=g)
    return x, y


def grad(loss, x):
    g, = torch.autograd.grad(loss.sum(), x)
    return g


# ---------------------------------------------------------------- exactness

@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (torch.float32, 1e-6)])
def test_gamma0_is_cross_entropy(C, reduction, dtype, tol):
    x, y = data(32, C, dtype=dtype)
    ours, ce = focal_loss(x, y, gamma=0, reduction=reduction), F.cross_entropy(x, y, reduction=reduction)
    assert ours.dtype == ce.dtype
    torch.testing.assert_close(ours, ce, rtol=tol, atol=tol)
    torch.testing.assert_close(grad(ours, x), grad(ce, x), rtol=tol, atol=tol)


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("with_alpha", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_equals_automm(AutoMMFocalLoss, C, gamma, with_alpha, reduction):
    x, y = data(24, C, seed=int(10 * gamma) + C)
    alpha = torch.rand(C, generator=torch.Generator().manual_seed(C)) + 0.05 if with_alpha else None
    theirs_fn = AutoMMFocalLoss(alpha=alpha, gamma=gamma, reduction=reduction).to(F64)
    ours, theirs = focal_loss(x, y, alpha, gamma, reduction), theirs_fn(x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad(ours, x), grad(theirs, x), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_equals_automm_float32_with_extra_dims(AutoMMFocalLoss, reduction):
    x, y = data(4, 3, extra=(5, 2), dtype=torch.float32)
    alpha = [0.2, 0.3, 0.5]
    ours = FocalLoss(alpha, gamma=2.0, reduction=reduction)(x, y)
    theirs = AutoMMFocalLoss(torch.tensor(alpha), gamma=2.0, reduction=reduction)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad(ours, x), grad(theirs, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(C, reduction):
    x, y = data(3, C, extra=(2,), seed=C)
    y[0, 0] = -100
    alpha = torch.rand(C, dtype=F64, generator=torch.Generator().manual_seed(1))
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda t: focal_loss(t, y, alpha, gamma, reduction), (x,), fast_mode=C > SMALL_C)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_double_backward(reduction):
    x, y = data(3, SMALL, extra=(2,))
    y[0, 0] = -100
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradgradcheck(lambda t: focal_loss(t, y, [0.2, 0.3, 0.1, 0.4], gamma, reduction), (x,),
                                            fast_mode=True)


@pytest.mark.parametrize("C", [SMALL, LARGE])
def test_backward_twice_with_retained_graph(C):
    x, y = data(8, C)
    loss = focal_loss(x, y, alpha=torch.linspace(1, 4, C), gamma=2.0)
    g1, = torch.autograd.grad(loss, x, retain_graph=True)
    g2, = torch.autograd.grad(loss, x)
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("C", [1, 3, 15, 16, 40])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_both_code_paths_agree(monkeypatch, C, reduction):
    "The log-sum-exp path (few classes) and the (log_)softmax-kernel path give the same loss and gradient."
    x, y = data(16, C, extra=(3,), seed=C)
    y[1, 2] = -100
    results = []
    for threshold in (0, 10**9):  # never / always the log-sum-exp path
        monkeypatch.setattr(engine, "SMALL_C", threshold)
        loss = focal_loss(x, y, alpha=torch.linspace(0.1, 1, C), gamma=1.5, reduction=reduction)
        results.append((loss, grad(loss, x)))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-14)


def test_no_grad_forward():
    x, y = data(8, SMALL)
    with torch.no_grad():
        a = focal_loss(x, y, gamma=2.0)
    torch.testing.assert_close(a, focal_loss(x, y, gamma=2.0).detach())


# ---------------------------------------------------------------- properties

@st.composite
def batches(draw):
    N, C = draw(st.integers(1, 10)), draw(st.integers(1, 2 * SMALL_C + 2))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.1, 3.0, 30.0]))
    x = scale * torch.randn(N, C, dtype=F64, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    ignored = torch.rand(N, generator=g) < draw(st.sampled_from([0.0, 0.3]))
    ignored[0] = False  # at least one sample counts
    y[ignored] = -100
    alpha = draw(st.none() | st.just(torch.rand(C, dtype=F64, generator=g) * 2))
    gamma = draw(st.sampled_from([0.0, 0.25, 1.0, 2.0, 5.0]) | st.floats(0, 6))
    return x, y, alpha, gamma


@settings(max_examples=60, deadline=None)
@given(batches())
def test_bounded_by_weighted_cross_entropy(b):
    x, y, alpha, gamma = b
    per = focal_loss(x, y, alpha, gamma, reduction="none")
    ce = F.cross_entropy(x, y, reduction="none")  # 0 at ignored positions
    w = torch.ones_like(ce) if alpha is None else alpha[y.clamp_min(0)] * (y != -100)
    assert (per >= 0).all()
    # equal at gamma = 0, up to rounding: log p = x_y - logsumexp(x) is exact to about eps * max|x|
    assert (per <= w * (ce + 1e-13 * (1 + x.abs().amax()))).all()
    assert (per[y == -100] == 0).all()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_reductions_consistent(b):
    x, y, alpha, gamma = b
    per = focal_loss(x, y, alpha, gamma, reduction="none")
    n = int((y != -100).sum())
    torch.testing.assert_close(focal_loss(x, y, alpha, gamma, reduction="sum"), per.sum(), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(focal_loss(x, y, alpha, gamma, reduction="mean"), per.sum() / n, rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(batches(), st.integers(1, 5))
def test_mean_ignores_padding(b, k):
    x, y, alpha, gamma = b
    x_pad = torch.cat([x, torch.randn(k, x.shape[1], dtype=F64)])
    y_pad = torch.cat([y, torch.full((k,), -100)])
    torch.testing.assert_close(focal_loss(x_pad, y_pad, alpha, gamma), focal_loss(x, y, alpha, gamma), rtol=1e-12, atol=0)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_non_increasing_in_gamma(b):
    x, y, alpha, gamma = b
    lo, hi = focal_loss(x, y, alpha, gamma, reduction="none"), focal_loss(x, y, alpha, gamma + 1, reduction="none")
    assert (hi <= lo * (1 + 1e-12) + 1e-300).all()


# ---------------------------------------------------------------- precision, shapes, ignore_index

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_half_precision_extreme_logits(dtype, C, gamma):
    x = torch.zeros(4, C)
    x[0, 0], x[0, 1] = 1e4, -1e4  # right, confidently
    x[1, 0], x[1, 1] = -1e4, 1e4  # wrong by 2e4
    x[2, 1] = 1e4                 # wrong by 1e4
    x[3] = torch.linspace(-1e4, 1e4, C)
    x = x.to(dtype).requires_grad_()
    y = torch.tensor([0, 0, 0, 0])
    for reduction in ("mean", "sum", "none"):
        loss = focal_loss(x, y, alpha=torch.rand(C) + 0.5, gamma=gamma, reduction=reduction)
        g, = torch.autograd.grad(loss.sum(), x)
        assert loss.dtype == torch.float32 and g.dtype == dtype
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    per = focal_loss(x, y, gamma=gamma, reduction="none")
    torch.testing.assert_close(per[:3], torch.tensor([0.0, 2e4, 1e4]), rtol=1e-2, atol=1e-3)


def test_half_matches_float32():
    x, y = data(32, 7, dtype=torch.float32, scale=2.0)
    xh = x.detach().half().requires_grad_()
    ref = focal_loss(xh.detach().float().requires_grad_(), y, gamma=2.0)
    torch.testing.assert_close(focal_loss(xh, y, gamma=2.0), ref.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_extra_dims_equal_flattened(C, reduction):
    x, y = data(3, C, extra=(4, 5), seed=C)
    y[0, 1, 2] = -100
    alpha = torch.linspace(0.2, 1.0, C)
    xf = x.movedim(1, -1).reshape(-1, C)
    ours = focal_loss(x, y, alpha, 2.0, reduction)
    flat = focal_loss(xf, y.reshape(-1), alpha, 2.0, reduction)
    assert ours.shape == ((3, 4, 5) if reduction == "none" else ())
    torch.testing.assert_close(ours.reshape(-1) if reduction == "none" else ours, flat, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad(ours, x), grad(flat, x), rtol=1e-12, atol=1e-14)


def test_unbatched_like_cross_entropy():
    x = torch.randn(6, dtype=F64, requires_grad=True)
    y = torch.tensor(2)
    torch.testing.assert_close(focal_loss(x, y, gamma=0), F.cross_entropy(x, y))
    assert focal_loss(x, y, reduction="none").shape == ()
    torch.testing.assert_close(focal_loss(x, y, gamma=2), focal_loss(x[None], y[None], gamma=2))


@pytest.mark.parametrize("ignore_index", [-100, 255, 0])
@pytest.mark.parametrize("C", [SMALL, LARGE])
def test_ignore_index(ignore_index, C):
    x, y = data(20, C, seed=3)
    y[::3] = ignore_index
    keep = y != ignore_index
    for reduction in ("mean", "sum", "none"):
        ours = focal_loss(x, y, gamma=0, reduction=reduction, ignore_index=ignore_index)
        ce = F.cross_entropy(x, y, reduction=reduction, ignore_index=ignore_index)
        torch.testing.assert_close(ours, ce, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad(ours, x), grad(ce, x), rtol=1e-12, atol=1e-14)
    alpha = torch.rand(C, dtype=F64) + 0.1
    per = focal_loss(x, y, alpha, 2.0, reduction="none", ignore_index=ignore_index)
    assert (per[~keep] == 0).all() and (per[keep] > 0).all()
    mean = focal_loss(x, y, alpha, 2.0, ignore_index=ignore_index)
    torch.testing.assert_close(mean, per.sum() / keep.sum())
    assert (grad(mean, x)[~keep] == 0).all()


def test_all_ignored_mean_is_nan_like_cross_entropy():
    x, y = data(4, SMALL)
    y[:] = -100
    assert torch.isnan(focal_loss(x, y)) and torch.isnan(F.cross_entropy(x, y))
    assert focal_loss(x, y, reduction="sum") == 0


def test_mean_divides_by_n_not_by_sum_of_alpha():
    x, y = data(32, 5)
    alpha = torch.tensor([0.05, 0.15, 0.3, 0.2, 0.3], dtype=F64)
    per = alpha[y] * F.cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(focal_loss(x, y, alpha, gamma=0), per.sum() / len(y))
    torch.testing.assert_close(F.cross_entropy(x, y, weight=alpha), per.sum() / alpha[y].sum())


def test_integer_targets_of_any_width():
    x, y = data(8, SMALL)
    for dt in (torch.int32, torch.int16, torch.uint8):
        torch.testing.assert_close(focal_loss(x, y.to(dt)), focal_loss(x, y))


# ---------------------------------------------------------------- errors

X, Y = data(6, 4)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: focal_loss(X, Y, alpha=[1, 2, 3]), ValueError, "alpha has 3 weights but there are 4 classes"),
    (lambda: focal_loss(X, Y, alpha=torch.ones(3)), ValueError, "alpha has 3 weights but there are 4 classes"),
    (lambda: FocalLoss(alpha=[1, 2, 3, 4, 5])(X, Y), ValueError, "alpha has 5 weights but there are 4 classes"),
    (lambda: focal_loss(X, Y, gamma=-0.1), ValueError, "gamma must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, gamma=float("nan")), ValueError, "gamma must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, gamma=True), TypeError, "gamma must be a finite number >= 0"),
    (lambda: FocalLoss(gamma=-1), ValueError, "gamma must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, reduction="avg"), ValueError, "unknown reduction 'avg'; choose one of 'mean', 'sum', 'none'"),
    (lambda: FocalLoss(reduction=None), TypeError, "reduction must be one of 'mean', 'sum', 'none'"),
    (lambda: focal_loss(X, torch.tensor([0, 1, 2, 4, 0, 0])), ValueError, "class index 4 at position 3, outside [0, 4)"),
    (lambda: focal_loss(X, torch.tensor([0, 1, -1, 3, 0, 0])), ValueError, "class index -1 at position 2"),
    (lambda: focal_loss(X, torch.tensor([0, 1, -100, 3, 0, 0]), ignore_index=0), ValueError, "not ignore_index=0"),
    (lambda: focal_loss(X, torch.tensor([0, 1, 156, 3, 0, 0], dtype=torch.uint8)), ValueError,
     "class index 156 at position 2, outside [0, 4)"),  # 156 is -100 in uint8 arithmetic: never ignored
    (lambda: focal_loss(X, torch.tensor([0, 1, 200, 3, 0, 0], dtype=torch.uint8), ignore_index=-56), ValueError,
     "class index 200 at position 2"),
    (lambda: focal_loss(X, Y.to(torch.uint64)), TypeError, "integer dtype of at most 32 bits"),
    (lambda: focal_loss(X, Y[:5]), ValueError, "target shape (5,) does not match logits shape (6, 4)"),
    (lambda: focal_loss(X[:, :, None], Y), ValueError, "expected target of shape (6, 1)"),
    (lambda: focal_loss(X, Y[:, None]), ValueError, "does not match logits shape"),
    (lambda: focal_loss(torch.tensor(1.0), torch.tensor(0)), ValueError, "class dimension"),
    (lambda: focal_loss(X, Y.float()), TypeError, "integer class indices"),
    (lambda: focal_loss(X, Y.bool()), TypeError, "integer class indices"),
    (lambda: focal_loss(X.detach().long(), Y), TypeError, "floating-point"),
    (lambda: focal_loss(X.tolist(), Y), TypeError, "must be torch tensors"),
    (lambda: focal_loss(X, Y, alpha="0.1,0.2,x,0.4"), ValueError, "is not a list of numbers AutoMM can read"),
    (lambda: focal_loss(X, Y, alpha=b"0.1,0.2,0.3,0.4"), TypeError, "alpha must be None or a list with one weight per class"),
    (lambda: focal_loss(X, Y, alpha=0.25), TypeError, "alpha must be None or a list with one weight per class"),
    (lambda: focal_loss(X, Y, alpha=["a", "b", "c", "d"]), TypeError, "alpha[0] must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, alpha=torch.ones(1, 4)), ValueError, "alpha must be 1-D"),
    (lambda: focal_loss(X, Y, alpha=[]), ValueError, "alpha is empty"),
    (lambda: focal_loss(X, Y, alpha=[0.5, -0.5, 0.5, 0.5]), ValueError, "alpha[1] must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, alpha=torch.tensor([0.5, -0.5, 0.5, 0.5])), ValueError, "alpha[1] must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, alpha=[0.5, float("inf"), 0.5, 0.5]), ValueError, "alpha[1] must be a finite number >= 0"),
    (lambda: focal_loss(X, Y, alpha=torch.tensor([0.5, float("nan"), 0.5, 0.5])), ValueError, "alpha[1] must be a finite"),
    (lambda: focal_loss(X, Y, alpha=torch.zeros(4)), ValueError, "alpha is all zeros"),
    (lambda: focal_loss(X, Y, alpha={0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}), TypeError, "not a dict"),
    (lambda: focal_loss(X, Y, alpha=pd.Series([0.1, 0.2, 0.3, 0.4], index=list("abcd"))), ValueError,
     "alpha is a Series indexed by ['a', 'b', 'c', 'd']"),
    (lambda: focal_loss(X, Y, ignore_index=None), TypeError, "ignore_index must be an int"),
    (lambda: focal_loss(X, Y, ignore_index=2**70), ValueError, "ignore_index must be an int"),
    (lambda: FocalLoss(ignore_index=1.5), TypeError, "ignore_index must be an int"),
])
def test_errors(call, exc, msg):
    with pytest.raises(exc) as e:
        call()
    assert msg in str(e.value)


# ---------------------------------------------------------------- FocalLoss

def test_module_alpha_forms_and_buffer():
    labels = [0] * 200 + [1] * 66 + [2] * 22 + [3] * 7
    w = class_weights(labels)
    x, y = data(16, 4, dtype=torch.float32)
    ref = focal_loss(x, y, torch.tensor(w), gamma=1.0)
    for form in (w, tuple(w), np.array(w), torch.tensor(w, dtype=F64)):
        crit = FocalLoss(form, gamma=1.0)
        assert crit.alpha.dtype == torch.float32 and crit.alpha.shape == (4,)
        torch.testing.assert_close(crit(x, y), ref)
    crit = FocalLoss(w, gamma=1.0)
    assert set(crit.state_dict()) == {"alpha"}
    other = FocalLoss([1.0] * 4, gamma=1.0)
    other.load_state_dict(crit.state_dict())
    assert torch.equal(other.alpha, crit.alpha)
    crit.to(F64)
    assert crit.alpha.dtype == F64
    out = crit(x.detach().double(), y)
    assert out.dtype == F64 and math.isclose(out.item(), ref.item(), rel_tol=1e-6)
    assert "gamma=1" in repr(crit) and "alpha=[0.02399" in repr(crit)


def test_module_without_alpha():
    crit = FocalLoss(gamma=0.0, reduction="sum", ignore_index=7)
    assert crit.alpha is None and "alpha" not in crit.state_dict()
    x, y = data(9, 8)
    y[0] = 7
    torch.testing.assert_close(crit(x, y), F.cross_entropy(x, y, reduction="sum", ignore_index=7))


def test_alpha_is_not_trained():
    x, y = data(6, 4)
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64, requires_grad=True)
    loss = focal_loss(x, y, alpha)
    assert loss.requires_grad
    loss.backward()
    assert alpha.grad is None


# ---------------------------------------------------------------- regressions: nothing lost silently

@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("alpha", [None, "rand"])
def test_all_ignored_mean_has_zero_gradient_like_cross_entropy(C, alpha):
    x, y = data(4, C)
    y[:] = -100
    a = torch.rand(C, dtype=F64) if alpha else None
    for gamma in (0.0, 2.0):
        loss, ce = focal_loss(x, y, a, gamma), F.cross_entropy(x, y)
        assert torch.isnan(loss) and torch.isnan(ce)
        assert torch.equal(grad(loss, x), torch.zeros_like(x)) and torch.equal(grad(ce, x), torch.zeros_like(x))


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("bad", [float("nan"), -float("inf"), float("inf")])
def test_ignored_rows_with_nan_or_inf_logits_do_not_matter(C, bad):
    x, y = data(6, C)
    x.data[[1, 4]] = bad
    y[[1, 4]] = -100
    keep = torch.tensor([0, 2, 3, 5])
    for gamma in (0.0, 0.5, 2.0):
        for reduction in ("mean", "sum", "none"):
            loss = focal_loss(x, y, torch.linspace(0.5, 1, C), gamma, reduction)
            ref = focal_loss(x.detach()[keep], y[keep], torch.linspace(0.5, 1, C), gamma, reduction)
            torch.testing.assert_close(loss[keep] if reduction == "none" else loss, ref, rtol=1e-12, atol=0)
            g = grad(loss, x)
            assert torch.isfinite(g).all() and (g[[1, 4]] == 0).all()


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_minus_inf_target_logit_gives_cross_entropys_finite_gradient(C, gamma):
    x, y = data(3, C)
    x.data[0, y[0]] = -float("inf")
    loss, ce = focal_loss(x, y, gamma=gamma, reduction="none"), F.cross_entropy(x, y, reduction="none")
    assert loss[0] == ce[0] == float("inf")
    g, g_ce = grad(loss, x), grad(ce, x)
    assert torch.isfinite(g_ce).all() and torch.isfinite(g).all()
    torch.testing.assert_close(g[0], g_ce[0])  # p = 0: (1-p)^gamma = 1 and w = 1, cross-entropy's gradient


def test_small_integer_targets_never_wrap_onto_ignore_index():
    x, y = data(8, 200, seed=1)
    y[0] = 156  # 156 == -100 in uint8 arithmetic: a class here, not ignored
    for dt in (torch.uint8, torch.int16, torch.int32):
        torch.testing.assert_close(focal_loss(x, y.to(dt), gamma=0), F.cross_entropy(x, y))
    y8 = y.to(torch.uint8)
    y8[1] = 255
    torch.testing.assert_close(focal_loss(x, y8, ignore_index=255), focal_loss(x, y8.long(), ignore_index=255))


def test_alpha_series_is_used_by_its_class_index():
    x, y = data(16, 4)
    w = [0.1, 0.2, 0.3, 0.4]
    shuffled = pd.Series([0.4, 0.1, 0.3, 0.2], index=[3, 0, 2, 1])
    torch.testing.assert_close(focal_loss(x, y, shuffled), focal_loss(x, y, w))
    assert FocalLoss(shuffled).alpha.tolist() == pytest.approx(w)


@pytest.mark.parametrize("setting,value,exc,msg", [
    ("reduction", "avg", ValueError, "unknown reduction 'avg'"),
    ("gamma", -1.0, ValueError, "gamma must be a finite number >= 0"),
    ("gamma", "2", TypeError, "gamma must be a finite number >= 0"),
    ("alpha", [0.5, -0.5, 0.5, 0.5], ValueError, "alpha[1] must be a finite number >= 0"),
    ("alpha", {0: 1.0}, TypeError, "not a dict"),
    ("ignore_index", 1.5, TypeError, "ignore_index must be an int"),
])
def test_module_settings_are_checked_when_set_later(setting, value, exc, msg):
    crit = FocalLoss([0.25] * 4, gamma=1.0, reduction="sum")
    before = {k: getattr(crit, k) for k in ("gamma", "reduction", "ignore_index")}
    with pytest.raises(exc) as e:
        setattr(crit, setting, value)
    assert msg in str(e.value)
    assert {k: getattr(crit, k) for k in before} == before and crit.alpha.tolist() == [0.25] * 4


def test_module_settings_set_later_take_effect():
    x, y = data(8, 4, dtype=torch.float32)
    crit = FocalLoss([1.0] * 4, gamma=1.0).to(F64)
    crit.gamma, crit.reduction, crit.alpha = 0.0, "sum", [0.1, 0.2, 0.3, 0.4]
    assert crit.alpha.dtype == F64  # keeps the buffer's dtype after .to(...)
    torch.testing.assert_close(crit(x.double(), y), focal_loss(x.double(), y, [0.1, 0.2, 0.3, 0.4], 0.0, "sum"))
    crit.alpha = None
    assert crit.alpha is None and "alpha" not in crit.state_dict()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("gamma", [0.3, 0.5, 1.5, 1.9])
def test_double_backward_finite_for_confident_samples(dtype, gamma):
    x = torch.zeros(3, 4, dtype=dtype)
    x[:, 0] = torch.tensor([17.0, 40.0, 800.0])  # 1 - p rounds to 0 in float32 from a margin of about 17
    x.requires_grad_()
    y = torch.zeros(3, dtype=torch.long)
    g, = torch.autograd.grad(focal_loss(x, y, gamma=gamma), x, create_graph=True)
    gg, = torch.autograd.grad(g.square().sum() + g.sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    ref, = torch.autograd.grad(focal_loss_reference(x, y, gamma=gamma).mean(), x, create_graph=True)
    assert torch.isfinite(torch.autograd.grad(ref.sum(), x)[0]).all()


def test_private_backward_kernel_has_a_public_fallback(monkeypatch):
    x, y = data(8, LARGE)
    expected = grad(focal_loss(x, y, torch.linspace(0.1, 1, LARGE), 2.0), x)
    monkeypatch.delattr(torch, "_log_softmax_backward_data")
    torch.testing.assert_close(grad(focal_loss(x, y, torch.linspace(0.1, 1, LARGE), 2.0), x), expected,
                               rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- against a float64 reference

def _reference64(x, y, alpha, gamma, ignore_index=-100):
    "Per-sample focal loss in float64 by the textbook formula on log-softmax, 0 where ignored."
    keep = y != ignore_index
    logp = torch.log_softmax(x.double(), 1).gather(1, (y * keep).unsqueeze(1)).squeeze(1)
    p = logp.exp()
    loss = -(1 - p).clamp_min(0) ** gamma * logp * (1.0 if alpha is None else torch.as_tensor(alpha, dtype=F64)[y * keep])
    return torch.where(keep, loss, 0.0), keep


@st.composite
def hostile_batches(draw):
    "Batches with ignored rows (some with NaN or -inf logits), very confident and very wrong rows, any dtype."
    N, C = draw(st.integers(1, 8)), draw(st.integers(2, 2 * SMALL_C + 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = draw(st.sampled_from([0.1, 3.0, 30.0])) * torch.randn(N, C, dtype=F64, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    for i in range(N):
        kind = draw(st.sampled_from(["plain", "plain", "ignored", "ignored_nan", "ignored_ninf", "confident", "wrong"]))
        if kind.startswith("ignored"):
            y[i] = -100
            x[i] = {"ignored": x[i], "ignored_nan": float("nan"), "ignored_ninf": -float("inf")}[kind]
        elif kind == "confident":
            x[i, y[i]] += draw(st.sampled_from([20.0, 60.0, 200.0]))
        elif kind == "wrong":
            x[i, y[i]] -= draw(st.sampled_from([20.0, 60.0, 200.0]))
    alpha = draw(st.none() | st.just(torch.rand(C, dtype=F64, generator=g) + 0.01))
    gamma = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0, 5))
    dtype = draw(st.sampled_from([F64, torch.float32]))
    return x.to(dtype), y, alpha, gamma


@settings(max_examples=80, deadline=None)
@given(hostile_batches())
def test_matches_float64_reference_on_hostile_batches(b):
    x, y, alpha, gamma = b
    ref, keep = _reference64(x, y, alpha, gamma)
    tol = dict(rtol=1e-10, atol=1e-12) if x.dtype == F64 else dict(rtol=2e-5, atol=2e-5)
    per = focal_loss(x, y, alpha, gamma, reduction="none")
    torch.testing.assert_close(per.double(), ref, **tol)
    xg = x.clone().requires_grad_()
    loss = focal_loss(xg, y, alpha, gamma)
    if keep.any():
        torch.testing.assert_close(loss.double(), ref.sum() / keep.sum(), **tol)
    else:
        assert torch.isnan(loss)
    g, = torch.autograd.grad(loss, xg)
    assert torch.isfinite(g).all() and (g[~keep] == 0).all()
    xr = x.double().clone().requires_grad_()
    r = focal_loss_reference(xr, y * keep, alpha, gamma)
    gr, = torch.autograd.grad(torch.where(keep, r, 0.0).sum() / keep.sum().clamp_min(1), xr)
    torch.testing.assert_close(g.double(), gr.nan_to_num(0.0), **tol)


# ---------------------------------------------------------------- torch.compile

def test_compiles_with_fullgraph():
    torch._dynamo.reset()
    x, y = data(6, 5, dtype=torch.float32)
    y[2] = -100
    alpha = torch.linspace(0.2, 1.0, 5)
    compiled = torch.compile(focal_loss, fullgraph=True)
    for reduction in ("mean", "none"):
        out, ref = compiled(x, y, alpha, 2.0, reduction), focal_loss(x, y, alpha, 2.0, reduction)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad(out, x), grad(ref, x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- issue 17: alpha checks that cannot be skipped

F32 = torch.float32


def test_load_state_dict_refuses_bad_alpha_and_keeps_the_buffer():
    crit = FocalLoss([0.1, 0.2, 0.3, 0.4])
    for bad, msg in ((torch.tensor([0.1, -5.0, 0.3, 0.4]), r"state_dict\['alpha'\]\[1\] must be a finite number >= 0"),
                     (torch.tensor([0.1, float("nan"), 0.3, 0.4]), r"state_dict\['alpha'\]\[1\] must be a finite"),
                     (torch.zeros(4), r"state_dict\['alpha'\] is all zeros"),
                     (torch.ones(5), r"state_dict\['alpha'\] has 5 weights but there are 4 classes"),
                     (torch.tensor([1e300, 1, 1, 1], dtype=F64), r"state_dict\['alpha'\]\[0\] = 1e\+300 is outside float32")):
        with pytest.raises((ValueError, TypeError), match=msg):
            crit.load_state_dict({"alpha": bad})
        assert crit.alpha.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    crit.load_state_dict({"alpha": torch.tensor([0.4, 0.3, 0.2, 0.1])})
    x, y = data(8, 4, dtype=F32)
    torch.testing.assert_close(crit(x, y), focal_loss(x, y, [0.4, 0.3, 0.2, 0.1]))


@pytest.mark.parametrize("edit,msg", [
    (lambda a: a.__setitem__(1, -5.0), r"alpha\[1\] must be a finite number >= 0"),
    (lambda a: a.__setitem__(2, float("nan")), r"alpha\[2\] must be a finite number >= 0"),
    (lambda a: a.__setitem__(0, float("inf")), r"alpha\[0\] must be a finite number >= 0"),
    (lambda a: a.zero_(), "alpha is all zeros"),
])
def test_in_place_edit_of_alpha_is_checked_at_the_next_call(edit, msg):
    x, y = data(6, 4, dtype=F32)
    crit = FocalLoss([0.1, 0.2, 0.3, 0.4])
    crit(x, y)  # the buffer's values are checked (once)
    with torch.no_grad():
        edit(crit.alpha)
    with pytest.raises(ValueError, match=msg):
        crit(x, y)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])  # the same for a tensor passed to focal_loss
    focal_loss(x, y, w)
    edit(w)
    with pytest.raises(ValueError, match=msg):
        focal_loss(x, y, w)


def test_valid_in_place_edit_of_alpha_takes_effect():
    x, y = data(6, 4, dtype=F32)
    crit = FocalLoss([0.1, 0.2, 0.3, 0.4])
    crit(x, y)
    with torch.no_grad():
        crit.alpha[0] = 2.0
    torch.testing.assert_close(crit(x, y), focal_loss(x, y, [2.0, 0.2, 0.3, 0.4]))


def test_module_made_in_inference_mode_works():
    x, y = data(6, 4, dtype=F32)
    with torch.inference_mode():
        crit = FocalLoss([0.1, 0.2, 0.3, 0.4])
        out = crit(x.detach(), y)
    torch.testing.assert_close(out, focal_loss(x.detach(), y, [0.1, 0.2, 0.3, 0.4]))


@pytest.mark.parametrize("to_half", [lambda m: m.half(), lambda m: m.to(torch.bfloat16), lambda m: m.to(torch.float16)])
def test_half_module_keeps_alpha_in_float32(to_half):
    x, y = data(6, 4, dtype=F32)
    crit = to_half(FocalLoss([1e5, 1.0, 1.0, 1e-8]))
    assert crit.alpha.dtype == F32 and crit.alpha.tolist() == pytest.approx([1e5, 1.0, 1.0, 1e-8])
    crit.alpha = [1e-8, 1.0, 1.0, 1e5]  # set later: stays float32 too
    assert crit.alpha.dtype == F32 and crit.alpha.tolist() == pytest.approx([1e-8, 1.0, 1.0, 1e5])
    out = crit(x.half(), y)
    assert torch.isfinite(out)
    torch.testing.assert_close(out, focal_loss(x.half().float(), y, [1e-8, 1.0, 1.0, 1e5]))
    assert crit.to(F64).alpha.dtype == F64  # float64 stays available


@pytest.mark.parametrize("alpha,msg", [
    ([1e300, 1, 1, 1], r"alpha\[0\] = 1e\+300 is outside float32's range"),
    ([1, 1, 1e-50, 1], r"alpha\[2\] = 1e-50 is outside float32's range"),
    (torch.tensor([1, 1e39, 1, 1], dtype=F64), r"alpha\[1\] = 1e\+39 is outside float32's range"),
])
def test_alpha_outside_float32_is_refused(alpha, msg):
    x, y = data(6, 4, dtype=F32)
    with pytest.raises(ValueError, match=msg):
        focal_loss(x, y, alpha)
    with pytest.raises(ValueError, match=msg):
        FocalLoss(alpha)
    crit = FocalLoss([0.25] * 4).to(F64)
    with pytest.raises(ValueError, match=msg):
        crit.alpha = alpha


@pytest.mark.parametrize("alpha", [{0.1, 0.2, 0.3, 0.4}, frozenset([0.1, 0.2, 0.3, 0.4])])
def test_set_alpha_is_refused(alpha):
    "A set has no order of its own: it cannot say which weight is which class's (issue 17, item 2)."
    with pytest.raises(TypeError, match="not a (set|frozenset)"):
        focal_loss(X, Y, alpha)
    with pytest.raises(TypeError, match="not a (set|frozenset)"):
        FocalLoss(alpha)
    crit = FocalLoss([0.25] * 4)
    with pytest.raises(TypeError, match="not a (set|frozenset)"):
        crit.alpha = alpha


@pytest.mark.parametrize("alpha", [torch.tensor([1 + 1j, 1, 1, 1]), np.array([1 + 0j] * 4), [1 + 1j, 1, 1, 1],
                                   torch.ones(4, dtype=torch.bool), np.ones(4, dtype=bool), [True] * 4])
def test_complex_and_bool_alpha_are_refused(alpha):
    with pytest.raises(TypeError, match="alpha"):
        focal_loss(X, Y, alpha)
    with pytest.raises(TypeError, match="alpha"):
        FocalLoss(alpha)


def test_alpha_strings_as_automm_reads_them():
    x, y = data(6, 4)
    ref = focal_loss(x, y, [0.0667, 0.1333, 0.2667, 0.5333])
    for text in ("0.0667,0.1333,0.2667,0.5333", "(0.0667,0.1333,0.2667,0.5333)"):
        torch.testing.assert_close(focal_loss(x, y, text), ref)
        torch.testing.assert_close(FocalLoss(text).to(F64)(x, y), ref)


# ---------------------------------------------------------------- issue 17: gradients of ignored rows, precision

def _nan_batch():
    x = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    x[2] = float("nan")
    return x.requires_grad_(), torch.tensor([0, 1, -100, 3, 0, 1])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_create_graph_gives_zero_gradient_on_ignored_nan_rows(reduction):
    x, y = _nan_batch()
    g, = torch.autograd.grad(focal_loss(x, y, [0.1, 0.2, 0.3, 0.4], 1.5, reduction).sum(), x, create_graph=True)
    assert torch.isfinite(g).all() and (g[2] == 0).all()
    keep = [0, 1, 3, 4, 5]
    g_ref, = torch.autograd.grad(focal_loss(x, y, [0.1, 0.2, 0.3, 0.4], 1.5, reduction).sum(), x)
    torch.testing.assert_close(g[keep], g_ref[keep], rtol=1e-10, atol=1e-14)
    gg, = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all() and (gg[2] == 0).all()


def test_compiled_gives_zero_gradient_on_ignored_nan_rows():
    torch._dynamo.reset()
    x, y = _nan_batch()
    g, = torch.autograd.grad(torch.compile(focal_loss, backend="aot_eager")(x, y), x)
    assert torch.isfinite(g).all() and (g[2] == 0).all()
    torch.testing.assert_close(g, torch.autograd.grad(focal_loss(x, y), x)[0], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("C", [SMALL, LARGE])
@pytest.mark.parametrize("big", [3e38, 1e4])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_huge_logits_keep_log_p_exact(C, big, gamma):
    "Two classes tie at +big, the others sit at -big: p = 1/2 exactly, whatever big is (issue 17, item 8)."
    x = torch.full((2, C), -big)
    x[:, :2] = big
    x.requires_grad_()
    y = torch.tensor([0, 1])
    loss = focal_loss(x, y, gamma=gamma)
    expected = 0.5**gamma * math.log(2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    if gamma == 0:
        torch.testing.assert_close(loss, F.cross_entropy(x, y))
    g, = torch.autograd.grad(loss, x)
    w = 0.5**gamma * (1 + gamma * math.log(2))  # the gradient weight at p = 1/2
    expected_g = torch.zeros(2, C)
    expected_g[0, :2] = torch.tensor([-0.5, 0.5]) * w / 2
    expected_g[1, :2] = torch.tensor([0.5, -0.5]) * w / 2
    torch.testing.assert_close(g, expected_g, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- issue 17: checks under torch.compile

@pytest.mark.parametrize("alpha", [torch.tensor([-1.0, 1, 1, 1]), torch.zeros(4), torch.tensor([1.0, float("nan"), 1, 1]),
                                   torch.tensor([1.0, 1e300, 1, 1], dtype=F64)])
def test_compiled_checks_alpha_values(alpha):
    torch._dynamo.reset()
    x, y = data(6, 4, dtype=F32)
    with pytest.raises(RuntimeError, match="alpha must hold finite weights >= 0 within float32's range, not all 0"):
        torch.compile(focal_loss, backend="aot_eager")(x, y, alpha, 2.0, "mean", -100)


def test_compiled_bad_target_gives_the_packages_message():
    "Inductor's own indexing check used to fire first, with 'index out of bounds: 0 <= tmp23 < 4L'."
    torch._dynamo.reset()
    with pytest.raises(RuntimeError, match=r"focal_loss: a target is outside \[0, 4\) and is not ignore_index=-100"):
        torch.compile(focal_loss)(torch.randn(5, 4), torch.tensor([0, 1, 2, 7, 0]))


# ---------------------------------------------------------------- issue 26: saved targets and alpha, alpha read every call

def _edited_after_forward(alpha_too: bool):
    "A loss, then an in-place edit of the target (or alpha) it was computed for."
    x, y = data(8, 4)
    y, a = y.clone(), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    loss = focal_loss(x, y, a, 2.0)
    (a if alpha_too else y).fill_(3)
    return x, loss


@pytest.mark.parametrize("alpha_too", [False, True])
def test_edit_after_forward_fails_under_create_graph(alpha_too):
    "As in F.cross_entropy, the backward refuses a target or alpha edited in place since the forward (item 5)."
    x, loss = _edited_after_forward(alpha_too)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x, create_graph=True)


@pytest.mark.parametrize("alpha_too", [False, True])
def test_edit_between_two_retained_backwards_fails(alpha_too):
    "The second backward of a retained graph recomputes the gradient: not for an edited target or alpha (item 5)."
    x, y = data(8, 4)
    y, a = y.clone(), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    loss = focal_loss(x, y, a, 2.0)
    torch.autograd.grad(loss, x, retain_graph=True)
    (a if alpha_too else y).fill_(3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x)


def test_cross_entropy_refuses_the_same_target_edit():
    "The behaviour copied: F.cross_entropy's backward after an in-place edit of the target."
    x, y = data(8, 4)
    y = y.clone()
    loss = F.cross_entropy(x, y)
    y.fill_(3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_inference_mode_target_and_alpha_still_train():
    "Tensors made under inference_mode cannot be saved for backward: the loss keeps a copy of them instead."
    x, y = data(8, 4)
    with torch.inference_mode():
        yi, ai = y.clone(), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    torch.testing.assert_close(grad(focal_loss(x, yi, ai), x), grad(focal_loss(x, y, ai.clone()), x), rtol=0, atol=0)


def _edit_data(a, value):
    a.data[1] = value


def _edit_numpy(a, value):
    a.numpy()[1] = value


@pytest.mark.parametrize("C", [4, 40])  # few classes: the weights are read as a list; more: by aminmax
@pytest.mark.parametrize("value", [-5.0, float("nan")])
@pytest.mark.parametrize("edit", [_edit_data, _edit_numpy], ids=["data", "numpy"])
def test_alpha_edit_without_a_version_bump_is_checked(edit, value, C):
    "Edits through .data or .numpy() leave the version counter alone; the values are read at every call (item 6)."
    x, y = data(6, C, dtype=F32)
    w = torch.linspace(0.1, 1.0, C)
    focal_loss(x, y, w)
    edit(w, value)
    with pytest.raises(ValueError, match=r"alpha\[1\] must be a finite number >= 0"):
        focal_loss(x, y, w)


def test_alpha_from_numpy_edited_through_its_array_is_checked():
    "torch.from_numpy shares the array's memory: a write to the array changes alpha without a version bump (item 6)."
    x, y = data(6, 4, dtype=F32)
    array = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    w = torch.from_numpy(array)
    focal_loss(x, y, w)
    array[1] = -5.0
    with pytest.raises(ValueError, match=r"alpha\[1\] must be a finite number >= 0"):
        focal_loss(x, y, w)


def test_module_buffer_edited_through_data_is_checked():
    "FocalLoss's buffer changed by crit.alpha.data.copy_(...) is refused at the next call (item 6)."
    x, y = data(6, 4, dtype=F32)
    crit = FocalLoss([0.1, 0.2, 0.3, 0.4])
    crit(x, y)
    crit.alpha.data.copy_(torch.tensor([0.1, -5.0, 0.3, 0.4]))
    with pytest.raises(ValueError, match=r"alpha\[1\] must be a finite number >= 0"):
        crit(x, y)


# ---------------------------------------------------------------- issue 26: shapes without numba, half alpha

@pytest.mark.parametrize("shapes", [((2, 3, 2, 3), (2, 3, 3, 2)), ((5, 3), (5, 3, 1)), ((5, 3, 1), (5, 3))],
                         ids=["2x3-3x2", "NC-NC1", "NC1-NC"])
@pytest.mark.parametrize("C_path", ["lse", "softmax"])
def test_another_spatial_shape_with_the_same_size_without_numba(monkeypatch, shapes, C_path):
    "The NumPy path's target offsets follow the target's shape, not only N, C and the number of positions (item 12)."
    monkeypatch.setattr(engine, "_CPU_KERNEL", [None])  # what `import numba` failing leaves
    monkeypatch.setattr(engine, "CPU_KERNEL_MAX", 0)
    monkeypatch.setattr(engine, "SMALL_C", 10**9 if C_path == "lse" else 0)
    monkeypatch.setattr(engine, "_BASES", {})
    for i, (N, C, *extra) in enumerate(shapes):
        x, y = data(N, C, extra=tuple(extra), seed=i)
        loss = focal_loss(x, y, reduction="none")
        ref = focal_loss_reference(x, y)
        torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad(loss, x), grad(ref, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("C", [SMALL, LARGE])
def test_half_alpha_tensor_is_computed_in_float32(half, dtype, C):
    "A float16/bfloat16 alpha gives exactly what its float32 copy gives, as FocalLoss keeps it (item 13)."
    x, y = data(8, C, dtype=dtype)
    a = torch.linspace(0.1, 1.0, C).to(half)
    ours, ref = focal_loss(x, y, a, 2.0, "none"), focal_loss(x, y, a.float(), 2.0, "none")
    assert torch.equal(ours, ref)
    assert torch.equal(grad(ours, x), grad(ref, x))
    assert torch.equal(FocalLoss(a, reduction="none")(x, y), ref)


# ---------------------------------------------------------------- issue 26: torch.func

def _func_batch(C=5, ignore=True):
    x, y = data(6, C, seed=7)
    if ignore:
        y[2] = -100
    return x.detach(), y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_func_grad_is_cross_entropys_at_gamma_0(reduction):
    "torch.func.grad takes the reference path: at gamma = 0 it is F.cross_entropy's gradient, ignored row included (item 18)."
    x, y = _func_batch()
    ours = torch.func.grad(lambda t: focal_loss(t, y, gamma=0, reduction=reduction))(x)
    ce = torch.func.grad(lambda t: F.cross_entropy(t, y, reduction=reduction))(x)
    torch.testing.assert_close(ours, ce, rtol=1e-12, atol=1e-14)


def test_func_grad_equals_autograd():
    "With alpha and gamma = 2, torch.func.grad equals the autograd gradient of the same loss (item 18)."
    x, y = _func_batch()
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2], dtype=F64)
    ours = torch.func.grad(lambda t: focal_loss(t, y, alpha, 2.0))(x)
    xr = x.clone().requires_grad_()
    torch.testing.assert_close(ours, grad(focal_loss(xr, y, alpha, 2.0), xr), rtol=1e-12, atol=1e-14)


def test_func_vmap_per_sample_gradients():
    "vmap(grad(...)) over samples gives each sample's gradient; an ignored one gives 0 (item 18)."
    x, y = _func_batch()
    per_sample = torch.func.vmap(torch.func.grad(lambda xi, yi: focal_loss(xi, yi, gamma=2.0, reduction="sum")))(x, y)
    for i in range(len(y)):
        xi = x[i:i + 1].clone().requires_grad_()
        torch.testing.assert_close(per_sample[i], grad(focal_loss(xi, y[i:i + 1], gamma=2.0, reduction="sum"), xi)[0],
                                   rtol=1e-12, atol=1e-14)
    assert (per_sample[2] == 0).all()


def test_func_vmap_over_batches_equals_the_loop():
    "vmap over a leading dimension of batches: one loss per batch, as a loop over them gives (item 18)."
    xs = torch.stack([_func_batch()[0], 2 * _func_batch()[0]])
    ys = torch.stack([_func_batch()[1], _func_batch(ignore=False)[1]])
    out = torch.func.vmap(lambda xb, yb: focal_loss(xb, yb, [0.1, 0.2, 0.3, 0.2, 0.2], 1.5))(xs, ys)
    torch.testing.assert_close(out, torch.stack([focal_loss(xs[i], ys[i], [0.1, 0.2, 0.3, 0.2, 0.2], 1.5)
                                                 for i in range(2)]), rtol=1e-12, atol=1e-14)


def test_func_jacrev_is_cross_entropys_at_gamma_0():
    "jacrev of the per-sample losses equals F.cross_entropy's at gamma = 0, the ignored row's 0 included (item 18)."
    x, y = _func_batch()
    ours = torch.func.jacrev(lambda t: focal_loss(t, y, gamma=0, reduction="none"))(x)
    ce = torch.func.jacrev(lambda t: F.cross_entropy(t, y, reduction="none"))(x)
    torch.testing.assert_close(ours, ce, rtol=1e-12, atol=1e-14)


def test_func_jvp_is_cross_entropys_at_gamma_0():
    "Forward mode (jvp) equals F.cross_entropy's at gamma = 0 with an ignored row (item 18)."
    x, y = _func_batch()
    v = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    ours = torch.func.jvp(lambda t: focal_loss(t, y, gamma=0), (x,), (v,))
    ce = torch.func.jvp(lambda t: F.cross_entropy(t, y), (x,), (v,))
    torch.testing.assert_close(ours, ce, rtol=1e-12, atol=1e-14)


def test_func_jvp_equals_the_reference():
    "jvp with alpha and gamma = 2 equals the directional derivative of focal_loss_reference (item 18)."
    x, y = _func_batch(ignore=False)
    alpha, v = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2], dtype=F64), torch.ones_like(x)
    ours = torch.func.jvp(lambda t: focal_loss(t, y, alpha, 2.0, "none"), (x,), (v,))
    ref = torch.func.jvp(lambda t: focal_loss_reference(t, y, alpha, 2.0), (x,), (v,))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)


def test_func_grad_refuses_a_bad_target_with_the_usual_message():
    "Under torch.func.grad the target's values can be read: the eager ValueError, position and all (item 18)."
    x, y = _func_batch()
    y[4] = 9
    with pytest.raises(ValueError, match=r"class index 9 at position 4, outside \[0, 5\)"):
        torch.func.grad(lambda t: focal_loss(t, y))(x)


def test_func_vmap_over_targets_refuses_a_bad_target():
    "Under vmap a batched target cannot be read: a bad one still fails (gather's index check), never a number (item 18)."
    x, y = _func_batch(ignore=False)
    y[4] = 9
    with pytest.raises(RuntimeError, match="index 9 is out of bounds"):
        torch.func.vmap(lambda xi, yi: focal_loss(xi, yi, gamma=2.0))(x, y)


def test_func_vmap_over_alpha_is_refused():
    "alpha batched by vmap cannot have its values checked: refused with the package's message (item 18)."
    x, y = _func_batch()
    alphas = torch.rand(3, 5, dtype=F64) + 0.1
    with pytest.raises(TypeError, match="focal_loss: alpha cannot be batched by torch.func.vmap"):
        torch.func.vmap(lambda a: focal_loss(x, y, a))(alphas)


# ---------------------------------------------------------------- issue 26: gamma as a tensor

@pytest.mark.parametrize("gamma", [torch.tensor(2.0), torch.tensor([2.0]), np.array(2.0), np.float32(2.0)],
                         ids=["tensor0d", "tensor1", "array0d", "np-scalar"])
def test_one_element_gamma_is_read_as_its_value(gamma):
    "focal_loss and FocalLoss read a one-element tensor or array without grad as its number (item 19)."
    x, y = data(6, 4)
    ref = focal_loss(x, y, gamma=2.0)
    torch.testing.assert_close(focal_loss(x, y, gamma=gamma), ref, rtol=0, atol=0)
    crit = FocalLoss(gamma=gamma)
    assert type(crit.gamma) is float and crit.gamma == 2.0


def test_gamma_that_requires_grad_is_refused():
    "gamma is not differentiated: a tensor that requires grad is refused, not silently detached (item 19)."
    x, y = data(6, 4)
    g = torch.tensor(2.0, requires_grad=True)
    msg = r"gamma is a fixed hyperparameter that the loss does not differentiate.*float\(gamma\)"
    with pytest.raises(TypeError, match=msg):
        focal_loss(x, y, gamma=g)
    with pytest.raises(TypeError, match=msg):
        FocalLoss(gamma=g)
    crit = FocalLoss(gamma=1.0)
    with pytest.raises(TypeError, match=msg):
        crit.gamma = g
    assert crit.gamma == 1.0
