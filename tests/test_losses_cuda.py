"""focal_loss on a GPU: values and gradients against F.cross_entropy and AutoMM's FocalLoss, ignore_index,
all-ignored batches, no host-device synchronisation, memory. Skipped without a CUDA GPU; `pytest -m cuda` runs
only these."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import focal_tutorial.engine as engine
from focal_tutorial.losses import FocalLoss, focal_loss
from test_losses import _automm_focal_loss_class

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}
SHAPES = [((64, 10), ()), ((4, 10), (5, 6))]  # (N, C) and (N, C, d1, d2)


@pytest.fixture(params=[True, False], ids=["fused", "pytorch"])
def path(request, monkeypatch):
    "Run a test with the fused Triton kernel and with the PyTorch path."
    monkeypatch.setattr(engine, "USE_FUSED", request.param)
    if request.param:
        pytest.importorskip("triton")
    return request.param


def data(N, C, extra=(), dtype=torch.float32, seed=0, ignored=0.0):
    g = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(N, C, *extra, generator=g)).to("cuda", dtype)
    y = torch.randint(0, C, (N, *extra), generator=g)
    y[torch.rand(y.shape, generator=g) < ignored] = -100
    return x.requires_grad_(), y.cuda()


def grad(loss, x):
    g, = torch.autograd.grad(loss.sum(), x)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCd1d2"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma0_is_cross_entropy(path, dtype, shape, reduction):
    x, y = data(*shape[0], extra=shape[1], dtype=dtype)
    ours = focal_loss(x, y, gamma=0, reduction=reduction)
    ce = F.cross_entropy(x.float(), y, reduction=reduction)
    torch.testing.assert_close(ours, ce, **TOL[dtype])
    g = grad(ours, x)
    assert g.dtype == dtype
    torch.testing.assert_close(g.float(), grad(ce, x).float(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCd1d2"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_equals_automm(path, dtype, shape, gamma):
    AutoMMFocalLoss = _automm_focal_loss_class()
    x, y = data(*shape[0], extra=shape[1], dtype=dtype, seed=1)
    alpha = torch.rand(shape[0][1], generator=torch.Generator().manual_seed(2)) + 0.1
    ours = FocalLoss(alpha, gamma=gamma).cuda()(x, y)
    theirs = AutoMMFocalLoss(alpha, gamma=gamma).cuda()(x.float(), y)
    torch.testing.assert_close(ours, theirs, **TOL[dtype])
    torch.testing.assert_close(grad(ours, x).float(), grad(theirs, x).float(), **TOL[dtype])


@pytest.mark.parametrize("C", [3, 1000, 32000])
def test_fused_equals_pytorch_path(monkeypatch, C):
    pytest.importorskip("triton")
    x, y = data(8 if C > 1000 else 256, C, seed=C, ignored=0.2)
    alpha = torch.rand(C, device="cuda") + 0.1
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(engine, "USE_FUSED", fused)
        loss = focal_loss(x, y, alpha, 1.5)
        out[fused] = loss, grad(loss, x)
    torch.testing.assert_close(out[True], out[False], rtol=1e-5, atol=1e-6)


def test_fused_path_is_taken():
    pytest.importorskip("triton")
    x, y = data(16, 5)
    assert "Fused" in type(focal_loss(x, y).grad_fn).__name__


@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_ignore_index(path, ignore_index):
    x, y = data(128, 7, seed=3, ignored=0.3)
    y[y == -100] = ignore_index
    with torch.no_grad():
        x[y == ignore_index] = float("nan")  # ignored rows may hold anything
    x64, keep = x.detach().double(), y != ignore_index
    for reduction in ("mean", "sum", "none"):
        loss = focal_loss(x, y, gamma=0, reduction=reduction, ignore_index=ignore_index)
        ce = F.cross_entropy(x64[keep], y[keep], reduction=reduction)
        torch.testing.assert_close(loss[keep].double() if reduction == "none" else loss.double(), ce, rtol=1e-5, atol=1e-6)
        g = grad(loss, x)
        assert torch.isfinite(g).all() and (g[~keep] == 0).all()


def test_all_ignored_batch(path):
    x, y = data(32, 6, extra=(3,))
    y[:] = -100
    loss = focal_loss(x, y, torch.rand(6, device="cuda") + 0.1, 2.0)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(x, y))
    assert torch.equal(grad(loss, x), torch.zeros_like(x))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_no_host_device_sync(path, reduction):
    x, y = data(512, 100, seed=4, ignored=0.1)
    crit = FocalLoss(torch.rand(100) + 0.1, gamma=2.0, reduction=reduction).cuda()
    alpha = torch.rand(100, device="cuda") + 0.1
    calls = (lambda: crit(x, y), lambda: focal_loss(x, y, alpha, 0.5, reduction),
             lambda: focal_loss(x.half(), y, None, 2.0, reduction))
    for call in calls:  # warm up: kernels compiled and loaded
        loss = call()
        loss.backward(torch.ones_like(loss))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for call in calls:
            loss = call()
            loss.backward(torch.ones_like(loss))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x.grad).all()


def test_double_backward(path):
    x, y = data(16, 5, dtype=torch.float32, seed=5, ignored=0.2)
    g, = torch.autograd.grad(focal_loss(x, y, gamma=1.5), x, create_graph=True)
    gg, = torch.autograd.grad(g.square().sum(), x)
    xr = x.detach().cpu().double().requires_grad_()
    gr, = torch.autograd.grad(focal_loss(xr, y.cpu(), gamma=1.5), xr, create_graph=True)
    torch.testing.assert_close(gg.cpu().double(), torch.autograd.grad(gr.square().sum(), xr)[0], rtol=1e-4, atol=1e-6)


def test_fused_peak_memory_at_most_cross_entropys():
    "The fused kernel keeps two floats per row for the backward, not a tensor of the logits' size."
    pytest.importorskip("triton")
    x, y = data(4096, 1000, seed=6)
    peaks = {}
    for name, fn in (("ce", lambda: F.cross_entropy(x, y)), ("focal", lambda: focal_loss(x, y, gamma=2.0))):
        fn().backward()  # warm up (and allocate x.grad once)
        x.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn().backward()
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - base
        x.grad = None
    assert peaks["focal"] <= 1.1 * peaks["ce"], peaks


def _fails_on_the_device(script: str, message: str) -> None:
    "`script` (which prints 'no error' if it gets through) stops with a device-side assert or `message`."
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "no error" not in out
    assert "device-side assert" in out or message in out, out[-2000:]


def test_bad_target_fails_with_a_device_side_assert():
    "A target outside [0, C) on a GPU fails as in F.cross_entropy: a device-side assert (in a separate process)."
    script = ("import torch; from focal_tutorial.losses import focal_loss\n"
              "x = torch.randn(4, 3, device='cuda', requires_grad=True)\n"
              "loss = focal_loss(x, torch.tensor([0, 1, 5, 2], device='cuda'))\n"
              "loss.backward(); torch.cuda.synchronize(); print('no error')\n")
    _fails_on_the_device(script, "outside [0, 3)")


# ---------------------------------------------------------------- issue 17 on a GPU

def test_in_place_edit_of_a_gpu_alpha_buffer_fails_on_the_device():
    "An edited buffer is checked again without reading it back: a device-side assert (in a separate process)."
    script = ("import torch; from focal_tutorial.losses import FocalLoss\n"
              "crit = FocalLoss([0.1, 0.2, 0.3, 0.4]).cuda()\n"
              "x = torch.randn(8, 4, device='cuda', requires_grad=True); y = torch.randint(0, 4, (8,), device='cuda')\n"
              "crit(x, y).backward(); torch.cuda.synchronize()\n"
              "with torch.no_grad(): crit.alpha[1] = -5.0\n"
              "crit(x, y).backward(); torch.cuda.synchronize(); print('no error')\n")
    _fails_on_the_device(script, "alpha must hold finite weights")


@pytest.mark.parametrize("big", [3e38, 1e4])
def test_huge_logits_keep_log_p_exact(path, big):
    x = torch.full((2, 4), -big, device="cuda")
    x[:, :2] = big
    x.requires_grad_()
    y = torch.tensor([0, 1], device="cuda")
    loss = focal_loss(x, y, gamma=0.0)
    assert loss.item() == pytest.approx(0.6931472, rel=1e-6)
    g, = torch.autograd.grad(loss, x)
    expected = torch.tensor([[-0.25, 0.25, 0.0, 0.0], [0.25, -0.25, 0.0, 0.0]], device="cuda")
    torch.testing.assert_close(g, expected, rtol=1e-6, atol=1e-7)


def test_double_backward_is_zero_on_ignored_nan_rows(path):
    x, y = data(6, 4, seed=7)
    y[2] = -100
    with torch.no_grad():
        x[2] = float("nan")
    g, = torch.autograd.grad(focal_loss(x, y, gamma=1.5), x, create_graph=True)
    assert torch.isfinite(g).all() and (g[2] == 0).all()
    gg, = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all() and (gg[2] == 0).all()
