"""focal_tutorial.losses on CPU has three paths: the compiled loop (numba, small float batches), log-sum-exp (fewer
than SMALL_C classes) and softmax (tests/test_losses.py runs every loss test on each). Here: the paths agree, and
each batch takes the path it should."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import focal_tutorial.engine as engine
from conftest import CPU_PATHS
from focal_tutorial.losses import focal_loss

F64 = torch.float64
needs_numba = pytest.mark.skipif(engine._cpu_kernel() is None, reason="numba is not installed (the `fast` extra)")


def _run(path, x, y, alpha, gamma, reduction):
    "Loss and gradient of focal_loss on one CPU path: 'loop' (numba), 'lse' (log-sum-exp) or 'softmax'."
    with pytest.MonkeyPatch.context() as m:
        for name, value in CPU_PATHS[path].items():
            m.setattr(engine, name, value)
        xg = x.clone().requires_grad_()
        loss = focal_loss(xg, y, alpha, gamma, reduction)
        g, = torch.autograd.grad(loss.sum(), xg)
    return loss.detach(), g


@st.composite
def batches(draw):
    "Random (N, C) or (N, C, d) batches with ignored positions (some with NaN logits), any alpha, gamma, reduction."
    N, C, d = draw(st.integers(1, 6)), draw(st.integers(1, 12)), draw(st.sampled_from([(), (2,), (3, 2)]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = draw(st.sampled_from([0.1, 3.0, 30.0])) * torch.randn(N, C, *d, dtype=F64, generator=g)
    y = torch.randint(0, C, (N, *d), generator=g)
    if draw(st.booleans()):
        y.view(-1)[0] = -100
        if draw(st.booleans()):
            x[0] = float("nan") if not d else x[0]
    alpha = draw(st.none() | st.just(torch.rand(C, dtype=F64, generator=g) + 0.05))
    gamma = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]) | st.floats(0, 5))
    return x, y, alpha, gamma, draw(st.sampled_from(["mean", "sum", "none"])), draw(st.sampled_from([F64, torch.float32]))


@needs_numba
@settings(max_examples=60, deadline=None)
@given(batches())
def test_the_cpu_paths_agree(b):
    x, y, alpha, gamma, reduction, dtype = b
    x = x.to(dtype)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == F64 else dict(rtol=2e-5, atol=1e-6)
    loop = _run("loop", x, y, alpha, gamma, reduction)
    for path in ("lse", "softmax"):
        torch.testing.assert_close(_run(path, x, y, alpha, gamma, reduction), loop, equal_nan=True, **tol)


def test_non_contiguous_logits_on_every_path():
    x = (3 * torch.randn(7, 5, dtype=F64)).t()  # (5, 7), not contiguous
    y = torch.tensor([0, 6, 3, -100, 2])
    ref = _run("softmax", x.contiguous(), y, torch.linspace(0.1, 1, 7), 2.0, "none")
    paths = ("loop", "lse", "softmax") if engine._cpu_kernel() is not None else ("lse", "softmax")
    for path in paths:
        torch.testing.assert_close(_run(path, x, y, torch.linspace(0.1, 1, 7), 2.0, "none"), ref, rtol=1e-12,
                                   atol=1e-14)


def test_the_device_path_on_cpu_tensors():
    "The GPU path's arithmetic (PyTorch operations, used when the fused kernel is off) checked here on CPU tensors."
    g = torch.Generator().manual_seed(3)
    x = 3 * torch.randn(9, 6, 2, dtype=F64, generator=g)
    y = torch.randint(0, 6, (9, 2), generator=g)
    y[2, 1] = -100
    x[2, :, 1] = float("nan")
    alpha = torch.rand(6, dtype=F64, generator=g) + 0.1
    for gamma in (0.0, 0.5, 1.0, 2.0, 3.7):
        for reduction in ("mean", "sum", "none"):
            t, ignored, n = engine._targets(y, 6, -100)
            loss, G = engine._forward(x, t, alpha, gamma, ignored, reduction, n, True)
            want_loss, want_G = _run("lse", x, y, alpha, gamma, reduction)
            torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(G, want_G, rtol=1e-12, atol=1e-14)  # "none": G is the gradient of the sum


@needs_numba
def test_small_float_batches_take_the_compiled_loop(monkeypatch):
    calls = []
    real = engine._forward_cpu_kernel
    monkeypatch.setattr(engine, "_forward_cpu_kernel", lambda *a: calls.append(a[0].shape) or real(*a))
    focal_loss(torch.randn(64, 10, requires_grad=True), torch.randint(0, 10, (64,))).backward()
    focal_loss(torch.randn(64, 10, dtype=torch.float16), torch.randint(0, 10, (64,)))  # half: the PyTorch path
    focal_loss(torch.randn(64, 100), torch.randint(0, 100, (64,)))  # 6400 logits > CPU_KERNEL_MAX
    assert calls == [torch.Size([64, 10])]


def test_without_numba_the_loss_is_the_same(monkeypatch):
    x, y = 3 * torch.randn(16, 5), torch.randint(0, 5, (16,))
    with_kernel = _run("loop", x, y, [0.1, 0.2, 0.3, 0.2, 0.2], 2.0, "mean")
    monkeypatch.setattr(engine, "_CPU_KERNEL", [None])  # what `import numba` failing leaves
    assert engine._cpu_kernel() is None
    torch.testing.assert_close(_run("loop", x, y, [0.1, 0.2, 0.3, 0.2, 0.2], 2.0, "mean"), with_kernel,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape,bad_at", [((6,), (4,)), ((3, 2), (2, 1))])
def test_a_bad_target_gives_the_same_error_on_every_path(monkeypatch, shape, bad_at):
    x = torch.randn(shape[0], 4, *shape[1:])
    y = torch.zeros(shape, dtype=torch.long)
    y[bad_at] = 9
    messages = set()
    for kernel_max, numba in ((10**9, True), (0, True), (10**9, False)):  # the compiled loop, NumPy, no numba
        monkeypatch.setattr(engine, "CPU_KERNEL_MAX", kernel_max)
        if not numba:
            monkeypatch.setattr(engine, "_CPU_KERNEL", [None])
        with pytest.raises(ValueError) as e:
            focal_loss(x, y)
        messages.add(str(e.value))
    where = bad_at if len(bad_at) > 1 else bad_at[0]
    assert messages == {f"target holds class index 9 at position {where}, outside [0, 4) for logits with 4 classes, "
                        "and it is not ignore_index=-100; targets must be class indices 0..C-1 (check the label "
                        "encoding)."}


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0), (0, 600)])
def test_empty_batches_on_every_path(shape):
    "No position: the loss is NaN for 'mean' (as cross-entropy) and 0 for 'sum', the gradient empty, on each path."
    x, y = torch.randn(*shape), torch.zeros((shape[0], *shape[2:]), dtype=torch.long)
    for path in ("lse", "softmax"):
        mean, g = _run(path, x, y, torch.ones(shape[1]), 2.0, "mean")
        total, _ = _run(path, x, y, None, 2.0, "sum")
        assert mean.isnan() and total == 0 and g.shape == x.shape
