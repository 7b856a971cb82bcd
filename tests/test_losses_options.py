"""focal_loss's options (label smoothing, sample weights, a mean over all ranks): values and gradients against float64
references written from the formulas, gradcheck, F.cross_entropy where they coincide, and bad arguments refused."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from focal_tutorial.losses import FocalLoss, focal_loss

F64 = torch.float64


def reference(x, y, alpha, gamma, eps=0.0, w=None, ignore_index=-100):
    "Per-target losses from the formula in NumPy float64: alpha_y (1 - p_y)^gamma [(1 - eps)(-log p_y) + eps mean_c(-log p_c)]."
    x = x.detach().double().numpy()
    x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])  # one row per target
    yy = y.reshape(-1).numpy()
    out = np.zeros(len(yy))
    for i, (row, c) in enumerate(zip(x, yy)):
        if c == ignore_index:
            continue
        logp = row - row.max() - np.log(np.exp(row - row.max()).sum())
        a = 1.0 if alpha is None else alpha[c]
        ce = -(1 - eps) * logp[c] - eps * logp.mean()
        out[i] = a * (-np.expm1(logp[c])) ** gamma * ce * (1.0 if w is None else float(w.reshape(-1)[i]))  # 1 - p, exact as p -> 1
    return torch.tensor(out.reshape(y.shape), dtype=F64)


@st.composite
def batches(draw):
    N, C, d = draw(st.integers(1, 6)), draw(st.integers(2, 6)), draw(st.sampled_from([(), (3,), (2, 2)]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = draw(st.sampled_from([0.3, 3.0, 20.0])) * torch.randn(N, C, *d, dtype=F64, generator=g)
    y = torch.randint(0, C, (N, *d), generator=g)
    if draw(st.booleans()):
        y.view(-1)[0] = -100
    alpha = draw(st.none() | st.just((torch.rand(C, generator=g, dtype=F64) + 0.05).tolist()))
    w = draw(st.none() | st.just(2 * torch.rand(N, *d, generator=g, dtype=F64)))
    return x, y, alpha, draw(st.sampled_from([0.0, 0.5, 2.0])), draw(st.sampled_from([0.0, 0.1, 0.7])), w


@given(batches())
@settings(max_examples=80, deadline=None)
def test_values_and_gradients_match_the_formula(batch):
    x, y, alpha, gamma, eps, w = batch
    ref = reference(x, y, alpha, gamma, eps, w)
    kept = int((y != -100).sum())
    for reduction, expected in (("none", ref), ("sum", ref.sum()), ("mean", ref.sum() / kept)):
        if reduction == "mean" and not kept:
            assert focal_loss(x, y, alpha, gamma, reduction, label_smoothing=eps, sample_weight=w).isnan()  # 0 / 0
            continue
        xg = x.clone().requires_grad_()
        got = focal_loss(xg, y, alpha, gamma, reduction, label_smoothing=eps, sample_weight=w)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
        xr = x.clone().requires_grad_()  # the gradient of the formula, by autograd on float64 operations
        lp = torch.log_softmax(xr, 1)
        t = y.clamp_min(0).unsqueeze(1)
        lpy = lp.gather(1, t).squeeze(1)
        a = 1.0 if alpha is None else torch.tensor(alpha, dtype=F64)[y.clamp_min(0)]
        q = -torch.expm1(lpy)  # 1 - p; (1 - p)^gamma with 0 where q is 0 (its derivative there: 0, not 0 * inf)
        mod = torch.where(q > 0, torch.where(q > 0, q, 1.0) ** gamma, 0.0) if gamma else 1.0
        per = a * mod * (-(1 - eps) * lpy - eps * lp.mean(1))
        per = (per * (1.0 if w is None else w)).masked_fill(y == -100, 0.0)
        total = per if reduction == "none" else per.sum() / (kept if reduction == "mean" else 1)
        g1, = torch.autograd.grad(got.sum(), xg)
        g2, = torch.autograd.grad(total.sum(), xr)
        torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_at_gamma_0_is_cross_entropys(eps, reduction):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(12, 4, 3, dtype=F64, generator=g)).requires_grad_()
    y = torch.randint(0, 4, (12, 3), generator=g)
    y[0, 0] = -100
    ours = focal_loss(x, y, gamma=0, reduction=reduction, label_smoothing=eps)
    ce = F.cross_entropy(x, y, reduction=reduction, label_smoothing=eps)
    torch.testing.assert_close(ours, ce)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ce.sum(), x)[0])


def test_label_smoothing_keeps_the_hard_labels_factor_and_alpha():
    "p_t and alpha_t from the hard label: a confident right sample keeps a small loss (keras-cv #672's trap)."
    x = torch.tensor([[8.0, 0.0, 0.0]], dtype=F64)
    y = torch.tensor([0])
    eps = 0.1
    lp = torch.log_softmax(x, 1)[0]
    expected = 0.2 * (1 - lp[0].exp()) ** 2 * (-(1 - eps) * lp[0] - eps * lp.mean())
    torch.testing.assert_close(focal_loss(x, y, [0.2, 0.5, 0.3], 2.0, label_smoothing=eps), expected)


@pytest.mark.parametrize("opts", [dict(label_smoothing=0.2), dict(sample_weight=True), dict(label_smoothing=0.3, sample_weight=True)])
def test_gradcheck_with_options(opts):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 2, dtype=F64, generator=g, requires_grad=True)
    y = torch.randint(0, 3, (4, 2), generator=g)
    if opts.get("sample_weight"):
        opts = {**opts, "sample_weight": torch.rand(4, 2, dtype=F64, generator=g)}
    f = lambda z: focal_loss(z, y, [0.2, 0.5, 0.3], 0.7, **opts)  # noqa: E731
    assert torch.autograd.gradcheck(f, x) and torch.autograd.gradgradcheck(f, x)


def test_sample_weight_mean_divides_by_the_kept_targets():
    x = torch.randn(6, 3, dtype=F64)
    y = torch.tensor([0, 1, 2, -100, 1, 0])
    per = focal_loss(x, y, reduction="none")
    torch.testing.assert_close(focal_loss(x, y, sample_weight=torch.ones(6, dtype=F64)), focal_loss(x, y))  # readable vs fast path
    w = torch.tensor([2.0, 0.0, 1.0, 5.0, 1.0, 3.0], dtype=F64)
    torch.testing.assert_close(focal_loss(x, y, sample_weight=w), (w * per).sum() / 5)  # 5 kept, not w.sum()
    torch.testing.assert_close(focal_loss(x, y, sample_weight=w, reduction="none"), w * per)


def test_sample_weight_flows_gradients_and_takes_half_logits():
    x = torch.randn(5, 4).half().requires_grad_()
    y = torch.randint(0, 4, (5,))
    w = torch.rand(5, requires_grad=True)
    loss = focal_loss(x, y, sample_weight=w)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float16 and w.grad is not None
    torch.testing.assert_close(w.grad, focal_loss(x.detach(), y, reduction="none") / 5)


def test_unbatched_sample_with_options():
    x, y = torch.randn(4, dtype=F64), torch.tensor(2)
    torch.testing.assert_close(focal_loss(x, y, sample_weight=torch.tensor(3.0, dtype=F64), label_smoothing=0.1),
                               3 * focal_loss(x[None], y[None], label_smoothing=0.1))


def test_module_options_match_the_function():
    x, y = torch.randn(8, 3, dtype=F64), torch.randint(0, 3, (8,))
    w = torch.rand(8, dtype=F64)
    crit = FocalLoss([0.2, 0.5, 0.3], gamma=1.0, label_smoothing=0.1).double()
    torch.testing.assert_close(crit(x, y, w), focal_loss(x, y, [0.2, 0.5, 0.3], 1.0, label_smoothing=0.1, sample_weight=w))
    assert "label_smoothing=0.1" in repr(crit)
    crit.label_smoothing = 0.0
    torch.testing.assert_close(crit(x, y), focal_loss(x, y, [0.2, 0.5, 0.3], 1.0))


def test_sync_count_outside_torch_distributed_is_the_plain_mean():
    x, y = torch.randn(8, 3, dtype=F64), torch.tensor([0, 1, -100, 2, 2, 1, 0, -100])
    torch.testing.assert_close(focal_loss(x, y, sync_count=True), focal_loss(x, y))
    torch.testing.assert_close(FocalLoss(sync_count=True)(x, y), focal_loss(x, y))


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(label_smoothing=-0.1), ValueError, r"label_smoothing must be a finite number in \[0, 1\]"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be a finite number in \[0, 1\]"),
    (dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a finite number"),
    (dict(sync_count=1), TypeError, "sync_count must be True or False"),
    (dict(sync_count=True, reduction="sum"), ValueError, "sync_count=True changes what reduction='mean' divides by"),
    (dict(sample_weight=[1.0] * 6), TypeError, "sample_weight must be a tensor shaped like target"),
    (dict(sample_weight=torch.ones(5)), ValueError, r"sample_weight has shape \(5,\), target \(6,\)"),
    (dict(sample_weight=torch.ones(6, dtype=torch.bool)), TypeError, "real weights"),
    (dict(sample_weight=torch.tensor([1.0, -1.0, 1, 1, 1, 1])), ValueError, r"finite weights >= 0, got -1 at position 1"),
    (dict(sample_weight=torch.tensor([1.0, 1, 1, 1, float("nan"), 1])), ValueError, r"got nan at position 4"),
])
def test_bad_options_are_refused(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        focal_loss(torch.randn(6, 3), torch.randint(0, 3, (6,)), **kwargs)


def test_module_refuses_bad_settings():
    with pytest.raises(ValueError, match="label_smoothing"):
        FocalLoss(label_smoothing=2)
    with pytest.raises(TypeError, match="sync_count must be True or False"):
        FocalLoss(sync_count="yes")
    with pytest.raises(ValueError, match="sync_count=True changes"):
        FocalLoss(reduction="sum", sync_count=True)(torch.randn(3, 2), torch.tensor([0, 1, 0]))
