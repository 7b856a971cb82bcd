"""focal_tutorial.sigmoid: the sigmoid (binary, multi-label) focal loss against a float64 reference written from the
formula, torchvision's and kornia's losses on the cases they share, the two-class softmax focal loss, gradcheck, large
logits, and its argument checks."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from focal_tutorial.losses import focal_loss
from focal_tutorial.sigmoid import SigmoidFocalLoss, sigmoid_focal_loss, sigmoid_focal_loss_reference

F64 = torch.float64
torchvision = pytest.importorskip("torchvision")
kornia = pytest.importorskip("kornia")


def formula(x, t, alpha, gamma):
    "The loss element by element in Python floats (math.log1p/exp), alpha a number, a list per class (dim 1) or None."
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        xi, ti = float(x[idx]), float(t[idx])
        a = 1.0 if alpha is None else alpha if isinstance(alpha, float) else alpha[idx[1]]
        b = 1.0 if alpha is None else 1 - a
        log_p = -math.log1p(math.exp(-xi)) if xi > 0 else xi - math.log1p(math.exp(xi))  # log sigma(x)
        log_q = log_p - xi  # log(1 - sigma(x))
        out[idx] = -a * ti * math.exp(gamma * log_q) * log_p - b * (1 - ti) * math.exp(gamma * log_p) * log_q
    return torch.tensor(out, dtype=F64)


@st.composite
def cases(draw):
    shape = draw(st.sampled_from([(5,), (4, 3), (2, 3, 2)]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = draw(st.sampled_from([0.5, 4.0, 40.0])) * torch.randn(shape, dtype=F64, generator=g)
    soft = draw(st.booleans())
    t = torch.rand(shape, dtype=F64, generator=g)
    t = t if soft else (t < 0.3).to(F64)
    kind = draw(st.sampled_from(["scalar", "none"] + (["per-class"] if len(shape) > 1 else [])))
    alpha = (None if kind == "none" else draw(st.floats(0, 1)) if kind == "scalar"
             else [draw(st.floats(0, 1)) for _ in range(shape[1])])
    return x, t, alpha, draw(st.sampled_from([0.0, 0.3, 1.0, 2.0, 4.5]))


@given(cases())
@settings(max_examples=60, deadline=None)
def test_values_match_the_formula_in_float64(case):
    x, t, alpha, gamma = case
    got = sigmoid_focal_loss(x, t, alpha, gamma, "none")
    torch.testing.assert_close(got, formula(x, t, alpha, gamma), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha, gamma, "sum"), got.sum())
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha, gamma, "mean"), got.mean())
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha, gamma, "mean_positive"), got.sum() / max(t.sum(), 1))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9, 0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_agrees_with_torchvision_and_kornia_on_hard_targets(reduction, alpha, gamma, dtype):
    "0/1 targets, a scalar alpha: torchvision's sigmoid_focal_loss and kornia's binary focal loss give the same, to 1e-6."
    g = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(32, 5, 2, generator=g, dtype=dtype)
    t = (torch.rand(32, 5, 2, generator=g) < 0.25).to(dtype)
    ours = sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    tv = torchvision.ops.sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    ko = kornia.losses.binary_focal_loss_with_logits(x, t, alpha=alpha, gamma=gamma, reduction=reduction)
    torch.testing.assert_close(ours, tv, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours, ko, rtol=1e-6, atol=1e-6)


def test_soft_targets_mix_the_two_terms_as_kornia_does():
    "Soft targets: linear in t (kornia's form), which torchvision's form (mixing p) is not."
    g = torch.Generator().manual_seed(2)
    x, t = 3 * torch.randn(40, 3, generator=g, dtype=F64), torch.rand(40, 3, generator=g, dtype=F64)
    ours = sigmoid_focal_loss(x, t, 0.3, 1.5, "none")
    torch.testing.assert_close(ours, kornia.losses.binary_focal_loss_with_logits(x, t, alpha=0.3, gamma=1.5))
    one, zero = (sigmoid_focal_loss(x, torch.full_like(t, v), 0.3, 1.5, "none") for v in (1.0, 0.0))
    torch.testing.assert_close(ours, t * one + (1 - t) * zero)
    assert (ours - torchvision.ops.sigmoid_focal_loss(x, t, 0.3, 1.5)).abs().max() > 1e-3


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_is_the_two_class_softmax_focal_loss(gamma):
    "sigmoid(x) with alpha a on positives == softmax focal loss of logits (0, x) with alpha [1 - a, a]."
    g = torch.Generator().manual_seed(3)
    x = (5 * torch.randn(64, generator=g, dtype=F64)).requires_grad_()
    y = (torch.rand(64, generator=g) < 0.2).long()
    s = sigmoid_focal_loss(x, y.to(F64), 0.25, gamma, "sum")
    f = focal_loss(torch.stack([torch.zeros_like(x), x], 1), y, [0.75, 0.25], gamma, "sum")
    torch.testing.assert_close(s, f)
    gs, = torch.autograd.grad(s, x)
    gf, = torch.autograd.grad(f, x)
    torch.testing.assert_close(gs, gf)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "mean_positive"])
def test_gradcheck_and_gradgradcheck(reduction):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, 2, generator=g, dtype=F64, requires_grad=True)
    t = torch.rand(5, 3, 2, generator=g, dtype=F64)
    f = lambda z: sigmoid_focal_loss(z, t, [0.2, 0.5, 0.9], 0.7, reduction)  # noqa: E731
    assert torch.autograd.gradcheck(f, x) and torch.autograd.gradgradcheck(f, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_large_logits_stay_exact_with_finite_gradients(dtype):
    "log sigma(x) = x for x << 0: float32's sigmoid would round to 0 and its log to -inf; gamma < 1 keeps finite grads."
    x = torch.tensor([-200.0, -30.0, 30.0, 200.0], dtype=dtype, requires_grad=True)
    t = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=dtype)
    loss = sigmoid_focal_loss(x, t, None, 0.5, "none")
    loss.sum().backward()
    assert loss.dtype == torch.float32  # half inputs are computed in float32
    assert loss[0].item() == pytest.approx(200.0) and loss[1].item() == pytest.approx(30.0, rel=1e-6)
    assert loss[3].item() == pytest.approx(200.0) and loss[2].item() < 1e-6
    assert torch.isfinite(x.grad).all() and x.grad.dtype == dtype


def test_mean_positive_divides_by_the_positives_at_least_one():
    x, t = torch.zeros(4, 3), torch.zeros(4, 3)
    total = sigmoid_focal_loss(x, t, 0.25, 2.0, "sum")
    assert sigmoid_focal_loss(x, t, 0.25, 2.0, "mean_positive") == total  # no positive: divided by 1
    t[0, 0] = t[1, 2] = 1
    assert sigmoid_focal_loss(x, t, 0.25, 2.0, "mean_positive") == pytest.approx(
        sigmoid_focal_loss(x, t, 0.25, 2.0, "sum").item() / 2)


def test_module_twin_matches_and_follows_its_dtype():
    x, t = torch.randn(6, 3, dtype=F64), (torch.rand(6, 3) < 0.5).to(F64)
    crit = SigmoidFocalLoss([0.2, 0.5, 0.9], gamma=1.0, reduction="sum")
    torch.testing.assert_close(crit(x, t), sigmoid_focal_loss(x, t, [0.2, 0.5, 0.9], 1.0, "sum"))  # alpha in float32
    assert crit.alpha.dtype == torch.float32 and crit.double().alpha.dtype == F64
    assert "alpha=[0.2, 0.5, 0.9], gamma=1, reduction='sum'" in repr(crit)
    assert torch.equal(SigmoidFocalLoss(0.25)(x, t), sigmoid_focal_loss(x, t))
    assert torch.equal(SigmoidFocalLoss(None, 0.0)(x, t), sigmoid_focal_loss(x, t, None, 0.0))


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(alpha=1.5), ValueError, r"alpha must be a finite number in \[0, 1\], got 1.5"),
    (dict(alpha=-0.1), ValueError, r"alpha must be a finite number in \[0, 1\]"),
    (dict(alpha=float("nan")), ValueError, r"alpha must be a finite number"),
    (dict(alpha="0.25"), TypeError, r"alpha must be a finite number"),
    (dict(alpha=[0.2, 0.3]), ValueError, r"one number per class \(3, dim 1 of logits\)"),
    (dict(alpha=[0.2, 0.3, 1.2]), ValueError, r"alpha\[2\] must be a finite number in \[0, 1\]"),
    (dict(gamma=-1), ValueError, "gamma must be a finite number >= 0"),
    (dict(reduction="avg"), ValueError, "unknown reduction 'avg'.*mean_positive"),
])
def test_bad_arguments_are_refused(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        sigmoid_focal_loss(torch.randn(4, 3), torch.ones(4, 3), **kwargs)


@pytest.mark.parametrize("target, exc, message", [
    (torch.ones(4), ValueError, r"target shape \(4,\) does not match logits shape \(4, 3\)"),
    (torch.full((4, 3), 2.0), ValueError, r"0/1 labels or soft targets in \[0, 1\], got 2 at position \(0, 0\)"),
    (torch.tensor([[0.0, 0.5, float("nan")]] * 4), ValueError, r"got nan at position \(0, 2\)"),
    ([[1, 0, 0]] * 4, TypeError, "target must be a torch tensor"),
])
def test_bad_targets_are_refused(target, exc, message):
    with pytest.raises(exc, match=message):
        sigmoid_focal_loss(torch.randn(4, 3), target)


def test_bad_logits_are_refused():
    with pytest.raises(TypeError, match="logits must be a floating-point torch tensor"):
        sigmoid_focal_loss(torch.ones(4, dtype=torch.long), torch.ones(4))
    with pytest.raises(ValueError, match="have no class dimension"):
        sigmoid_focal_loss(torch.randn(4), torch.ones(4), alpha=[0.5])


def test_integer_and_bool_targets_are_read_as_zero_and_one():
    x = torch.randn(8, 2)
    t = torch.rand(8, 2) < 0.5
    expected = sigmoid_focal_loss(x, t.float())
    assert torch.equal(sigmoid_focal_loss(x, t), expected) and torch.equal(sigmoid_focal_loss(x, t.long()), expected)


def test_reference_is_the_formula():
    x, t = 4 * torch.randn(10, 2, dtype=F64), (torch.rand(10, 2) < 0.5).to(F64)
    torch.testing.assert_close(sigmoid_focal_loss_reference(x, t, 0.25, 2.0), formula(x, t, 0.25, 2.0))
