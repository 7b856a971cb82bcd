"""focal_tutorial.losses on CPU has three paths: the compiled loop (numba, small float batches), log-sum-exp (fewer
than SMALL_C classes) and softmax; the last two do their per-position part in compiled helpers with numba and in
NumPy without it. Every loss test runs on each of them too, and the paths agree."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import focal_tutorial.engine as engine
from focal_tutorial.losses import focal_loss

HERE = Path(__file__).parent
F64 = torch.float64
needs_numba = pytest.mark.skipif(engine._cpu_kernel() is None, reason="numba is not installed (the `fast` extra)")


@pytest.mark.parametrize("path", ["passes", "numpy", "numpy-threads"])
def test_every_loss_test_passes_on_the_other_paths(path):
    "tests/test_losses.py runs its small batches through the compiled loop; here, once more, through the others."
    env = {**os.environ, "FOCAL_TUTORIAL_LOSS_PATH": path, "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "_loss_path", "-p", "no:cacheprovider",
                        str(HERE / "test_losses.py")], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout


def _run(path, x, y, alpha, gamma, reduction, numba=True):
    """Loss and gradient of focal_loss on one CPU path: 'kernel', 'lse' (log-sum-exp) or 'softmax'; the last two with
    the compiled per-position helpers, or (`numba` False) in NumPy as without numba."""
    with pytest.MonkeyPatch.context() as m:
        if not numba:
            m.setattr(engine, "_CPU_KERNEL", [None])
        m.setattr(engine, "CPU_KERNEL_MAX", 10**9 if path == "kernel" else 0)
        m.setattr(engine, "SMALL_C", 10**9 if path == "lse" else 0)
        if path == "lse":  # for more than 16 classes, small tensors take log-sum-exp only from PUT_THREADS logits
            m.setattr(engine, "PUT_THREADS", 0)
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
    kernel = _run("kernel", x, y, alpha, gamma, reduction)
    for path in ("lse", "softmax"):
        for numba in (True, False):
            got = _run(path, x, y, alpha, gamma, reduction, numba)
            torch.testing.assert_close(got, kernel, equal_nan=True, **tol)


def test_non_contiguous_logits_on_every_path():
    x = (3 * torch.randn(7, 5, dtype=F64)).t()  # (5, 7), not contiguous
    y = torch.tensor([0, 6, 3, -100, 2])
    ref = _run("softmax", x.contiguous(), y, torch.linspace(0.1, 1, 7), 2.0, "none")
    paths = ("kernel", "lse", "softmax") if engine._cpu_kernel() is not None else ("lse", "softmax")
    for path in paths:
        for numba in (True, False) if path != "kernel" else (True,):
            torch.testing.assert_close(_run(path, x, y, torch.linspace(0.1, 1, 7), 2.0, "none", numba), ref,
                                       rtol=1e-12, atol=1e-14)


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


@needs_numba
def test_larger_batches_take_the_compiled_helpers(monkeypatch):
    "Above CPU_KERNEL_MAX, one compiled call gathers the targets and one computes the per-position terms; none without numba."
    kernel, calls = engine._cpu_kernel(), []
    for name in ("_gather_targets", "_sample_terms", "_focal_rows"):
        real = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    x = torch.randn(64, 100, requires_grad=True)  # 6400 logits > CPU_KERNEL_MAX
    focal_loss(x, torch.randint(0, 100, (64,))).backward()
    assert calls == ["_gather_targets", "_sample_terms"]
    monkeypatch.setattr(engine, "_CPU_KERNEL", [None])
    focal_loss(x, torch.randint(0, 100, (64,))).backward()
    assert calls == ["_gather_targets", "_sample_terms"]


def test_without_numba_the_loss_is_the_same(monkeypatch):
    x, y = 3 * torch.randn(16, 5), torch.randint(0, 5, (16,))
    with_kernel = _run("kernel", x, y, [0.1, 0.2, 0.3, 0.2, 0.2], 2.0, "mean")
    monkeypatch.setattr(engine, "_CPU_KERNEL", [None])  # what `import numba` failing leaves
    assert engine._cpu_kernel() is None
    torch.testing.assert_close(_run("kernel", x, y, [0.1, 0.2, 0.3, 0.2, 0.2], 2.0, "mean"), with_kernel,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape,bad_at", [((6,), (4,)), ((3, 2), (2, 1))])
def test_a_bad_target_gives_the_same_error_on_every_path(monkeypatch, shape, bad_at):
    x = torch.randn(shape[0], 4, *shape[1:])
    y = torch.zeros(shape, dtype=torch.long)
    y[bad_at] = 9
    messages = set()
    for kernel_max, numba in ((10**9, True), (0, True), (0, False)):  # the compiled loop, the helpers, NumPy
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
    for path, numba in (("lse", True), ("softmax", True), ("lse", False), ("softmax", False)):
        mean, g = _run(path, x, y, torch.ones(shape[1]), 2.0, "mean", numba)
        total, _ = _run(path, x, y, None, 2.0, "sum", numba)
        assert mean.isnan() and total == 0 and g.shape == x.shape
