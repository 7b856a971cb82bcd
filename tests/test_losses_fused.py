"""The fused Triton kernel (focal_tutorial.fused) against the PyTorch path, on CPU in Triton's interpreter.

Triton chooses between compiling and interpreting when it is imported, so these tests run in a fresh Python
process with TRITON_INTERPRET=1 (one test here starts it); the rest of the suite, CUDA tests included, keeps
the compiling Triton."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

if not INTERPRET:
    def test_fused_kernel_in_triton_interpreter():
        "Run this file's tests in a process where Triton interprets kernels on CPU tensors."
        env = dict(os.environ, TRITON_INTERPRET="1")
        run = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x"],
                             env=env, capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        assert " passed" in run.stdout and "failed" not in run.stdout

    @pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
    def test_kernels_compile_for_an_h100_without_a_gpu(dtype):
        "Triton compiles both kernels to PTX for sm_90 on any machine: type errors show here, not on the first GPU."
        import triton
        try:
            from triton.backends.compiler import GPUTarget
            from triton.compiler import ASTSource
        except ImportError:
            pytest.skip("this Triton has no ASTSource/GPUTarget")
        from focal_tutorial.fused import _bwd_kernel, _fwd_kernel
        ints = dict.fromkeys(["R", "C", "S"], "i32") | dict.fromkeys(["sxn", "sxc", "sxs", "sdn", "sdc", "sds", "sg"], "i64")
        for block_n, block_c in ((1024, 4), (1, 4096)):
            fwd = {"X": f"*{dtype}", "T": "*i64", "A": "*fp32", "LOSS": "*fp64", "MAX": "*fp32", "LOGL": "*fp32",
                   "W": "*fp32", "OK": "*i32",
                   **{k: ints[k] for k in ("R", "C", "S", "sxn", "sxc", "sxs")}, "ignore_index": "i32", "gamma": "fp32"}
            cx = {"HAS_ALPHA": True, "GAMMA_ZERO": False, "PARTIAL": True, "BLOCK_N": block_n, "BLOCK_C": block_c}
            bwd = {"X": f"*{dtype}", "T": "*i64", "MAX": "*fp32", "LOGL": "*fp32", "W": "*fp32", "G": "*fp32", "NC": "*fp64",
                   "DX": f"*{dtype}", **ints}
            for fn, sig, const in ((_fwd_kernel, fwd, cx), (_bwd_kernel, bwd, {"MEAN": True, "BLOCK_N": block_n,
                                                                                "BLOCK_C": block_c})):
                sig = sig | dict.fromkeys(const, "constexpr")
                kernel = triton.compile(ASTSource(triton.jit(fn), sig, const), target=GPUTarget("cuda", 90, 32),
                                        options={"num_warps": 8})
                assert ".entry" in kernel.asm["ptx"]
else:
    import focal_tutorial.fused as fused
    import focal_tutorial.engine as engine
    from focal_tutorial.fused import _fused_focal_loss, _tiles
    from focal_tutorial.losses import FocalLoss, _reference_grad, focal_loss

    def fused_focal_loss(logits, target, alpha, gamma, reduction, ignore_index):
        "The kernel's private entry point, as `focal_loss` calls it on a GPU (arguments already checked)."
        return _fused_focal_loss(logits, target, alpha, gamma, reduction, ignore_index, _reference_grad)

F64 = torch.float64


@pytest.fixture(autouse=True)
def quiet_numpy():
    "The interpreter evaluates exp/log of padding lanes with NumPy, whose warnings about them are noise."
    with np.errstate(all="ignore"):
        yield


def data(N, C, extra=(), dtype=torch.float32, seed=0, ignored=0.2, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(N, C, *extra, generator=g)).to(dtype)
    y = torch.randint(0, C, (N, *extra), generator=g)
    y[torch.rand(y.shape, generator=g) < ignored] = -100
    return x, y


def both(x, y, alpha, gamma, reduction, ignore_index=-100):
    "Loss and gradient from the fused kernel and from the PyTorch path in float64 (the reference)."
    xf = x.clone().requires_grad_()
    out = fused_focal_loss(xf, y, alpha, gamma, reduction, ignore_index)
    gf, = torch.autograd.grad(out.sum(), xf)
    xr = x.double().requires_grad_()
    ref = focal_loss(xr, y, alpha, gamma, reduction, ignore_index)
    gr, = torch.autograd.grad(ref.sum(), xr)
    return out, gf, ref, gr


TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float16: dict(rtol=1e-3, atol=1e-3),
       torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.7, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_values_and_gradients_match_the_pytorch_path(dtype, gamma, reduction):
    x, y = data(13, 7, dtype=dtype, seed=int(10 * gamma))
    alpha = torch.linspace(0.1, 1.0, 7)
    out, gf, ref, gr = both(x, y, alpha, gamma, reduction)
    assert out.dtype == torch.float32 and gf.dtype == dtype
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    torch.testing.assert_close(gf.double(), gr, **TOL[dtype])


@pytest.mark.parametrize("C", [2, 3, 100, 4097, 128000])
def test_number_of_classes_from_2_to_128000(C):
    N = 3 if C > 1000 else 9  # the interpreter is slow: few rows for many classes
    x, y = data(N, C, seed=C, ignored=0.0)
    y[-1] = -100
    out, gf, ref, gr = both(x, y, None, 1.5, "mean")
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gf.double(), gr, rtol=1e-5, atol=1e-7)
    assert (gf[-1] == 0).all()


def test_gamma_0_is_cross_entropy():
    x, y = data(11, 6, seed=3)
    for reduction in ("mean", "sum", "none"):
        xf, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ce = fused_focal_loss(xf, y, None, 0.0, reduction, -100), F.cross_entropy(xc, y, reduction=reduction)
        torch.testing.assert_close(out, ce, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.autograd.grad(out.sum(), xf)[0], torch.autograd.grad(ce.sum(), xc)[0],
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("extra", [(3,), (2, 3)])
def test_extra_dimensions_and_non_contiguous_logits(extra):
    x, y = data(4, 5, extra=extra, seed=1)
    out, gf, ref, gr = both(x, y, torch.rand(5, generator=torch.Generator().manual_seed(0)), 2.0, "none")
    assert out.shape == y.shape and gf.shape == x.shape
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gf.double(), gr, rtol=1e-5, atol=1e-7)
    xt = x.movedim(1, -1).contiguous().movedim(-1, 1)  # channels-last: classes are the fastest dimension
    out2, gf2, _, _ = both(xt, y, None, 2.0, "sum")
    torch.testing.assert_close(gf2.double(), both(x, y, None, 2.0, "sum")[3], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ignore_index", [-100, 0, 255])
def test_ignore_index_and_hostile_ignored_rows(ignore_index):
    x, y = data(8, 6, seed=2, ignored=0.0)
    y[[1, 5]] = ignore_index
    x[1], x[5] = float("nan"), -float("inf")
    out, gf, ref, gr = both(x, y, None, 2.0, "mean", ignore_index)
    assert torch.isfinite(out) and torch.isfinite(gf).all() and (gf[[1, 5]] == 0).all()
    keep = [0, 2, 3, 4, 6, 7]
    xk = x[keep].double().requires_grad_()
    rk = focal_loss(xk, y[keep], None, 2.0, "mean", ignore_index)
    torch.testing.assert_close(out.double(), rk, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gf[keep].double(), torch.autograd.grad(rk, xk)[0], rtol=1e-5, atol=1e-7)


def test_all_ignored_mean_is_nan_with_zero_gradient():
    x, y = data(5, 4)
    y[:] = -100
    xf = x.clone().requires_grad_()
    out = fused_focal_loss(xf, y, None, 2.0, "mean", -100)
    assert torch.isnan(out)
    assert torch.equal(torch.autograd.grad(out, xf)[0], torch.zeros_like(x))


def test_extreme_logits_stay_finite():
    x = torch.zeros(4, 3)
    x[0, 0], x[1, 1], x[2, 2], x[3, 0] = 1e4, 1e4, 60.0, -float("inf")
    y = torch.tensor([0, 0, 2, 0])  # confident right, wrong by 1e4, confident right, -inf target logit
    for gamma in (0.5, 2.0):
        out, gf, ref, gr = both(x, y, None, gamma, "none")
        assert torch.isfinite(gf).all()
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gf.double(), gr, rtol=1e-5, atol=1e-6)


def test_bad_target_trips_the_assertion():
    x, y = data(4, 3, ignored=0.0)
    y[2] = 3
    with pytest.raises(RuntimeError, match=r"outside \[0, 3\) and is not ignore_index=-100"):
        fused_focal_loss(x, y, None, 2.0, "mean", -100)


def test_double_backward_goes_through_the_reference():
    x, y = data(3, 4, seed=5)
    x = x.double().float().requires_grad_()
    g, = torch.autograd.grad(fused_focal_loss(x, y, None, 1.5, "mean", -100), x, create_graph=True)
    gg, = torch.autograd.grad(g.square().sum(), x)
    xr = x.detach().double().requires_grad_()
    gr, = torch.autograd.grad(focal_loss(xr, y, None, 1.5), xr, create_graph=True)
    torch.testing.assert_close(gg.double(), torch.autograd.grad(gr.square().sum(), xr)[0], rtol=1e-4, atol=1e-6)


def test_refuses_cpu_tensors_without_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, y = data(2, 3)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        fused_focal_loss(x, y, None, 2.0, "mean", -100)


def test_tiles_cover_small_and_large_rows():
    assert _tiles(4, 4096)[:2] == (1024, 4) and _tiles(128000, 1024)[:2] == (1, 4096)
    for C in (2, 100, 1000, 32000):
        bn, bc, _ = _tiles(C, 10**6)
        assert bc >= min(C, 4096) and bn * bc <= 4096


# ---------------------------------------------------------------- issue 17

def test_double_backward_is_zero_on_ignored_nan_rows():
    x, y = data(6, 4, seed=7, ignored=0.0)
    y[2] = -100
    x[2] = float("nan")
    x = x.requires_grad_()
    g, = torch.autograd.grad(fused_focal_loss(x, y, None, 1.5, "mean", -100), x, create_graph=True)
    assert torch.isfinite(g).all() and (g[2] == 0).all()
    gg, = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all() and (gg[2] == 0).all()


@pytest.mark.parametrize("big", [3e38, 1e4])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_huge_logits_keep_log_p_exact(big, gamma):
    "Two classes tie at +big, two sit at -big: p = 1/2, loss 0.5**gamma log 2, gradient +-w/2 (issue 17, item 8)."
    x = torch.tensor([[big, big, -big, -big]]).requires_grad_()
    out = fused_focal_loss(x, torch.tensor([0]), None, gamma, "sum", -100)
    assert out.item() == pytest.approx(0.5**gamma * np.log(2), rel=1e-6)
    g, = torch.autograd.grad(out, x)
    w = float(0.5**gamma * (1 + gamma * np.log(2)))
    torch.testing.assert_close(g, torch.tensor([[-0.5 * w, 0.5 * w, 0.0, 0.0]]), rtol=1e-6, atol=1e-7)


def test_fused_entry_point_is_private():
    "It checks nothing itself, so it is not offered as API: focal_loss checks, then calls it (issue 17, item 14)."
    assert fused.__all__ == [] and not hasattr(fused, "fused_focal_loss")


@pytest.fixture
def fused_on_cpu(monkeypatch):
    "focal_loss and FocalLoss take the fused path for CPU tensors, as they do for CUDA tensors."
    monkeypatch.setattr(engine, "_FUSED_ON_CPU", True)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x, y: focal_loss(x, y, reduction="avg"), ValueError, "unknown reduction 'avg'"),
    (lambda x, y: focal_loss(x, y, alpha=torch.ones(3)), ValueError, "alpha has 3 weights but there are 4 classes"),
    (lambda x, y: focal_loss(x, y, alpha=torch.tensor([1.0, -1, 1, 1])), ValueError, r"alpha\[1\] must be a finite"),
    (lambda x, y: focal_loss(x, y, gamma=-1), ValueError, "gamma must be a finite number >= 0"),
    (lambda x, y: focal_loss(x, y[:3]), ValueError, "does not match logits shape"),
    (lambda x, y: FocalLoss(ignore_index=None), TypeError, "ignore_index must be an int"),
])
def test_bad_arguments_are_refused_before_the_kernel(fused_on_cpu, call, exc, msg):
    x, y = data(5, 4, ignored=0.0)
    with pytest.raises(exc, match=msg):
        call(x, y)


def test_public_api_takes_the_fused_path_for_any_shape(fused_on_cpu):
    x, y = data(5, 4, ignored=0.2)
    xf = x.clone().requires_grad_()
    loss = FocalLoss(torch.linspace(0.2, 1, 4), gamma=1.5)(xf, y)
    assert "Fused" in type(loss.grad_fn).__name__
    monkey_ref = focal_loss(x.double(), y, torch.linspace(0.2, 1, 4), 1.5)
    torch.testing.assert_close(loss.double(), monkey_ref, rtol=1e-5, atol=1e-6)
    x1 = x[0].clone().requires_grad_()  # one unbatched sample: (C,) logits, a 0-d target
    one = focal_loss(x1, y[0].clamp_min(0), gamma=1.5)
    torch.testing.assert_close(one.double(), focal_loss(x[0].double(), y[0].clamp_min(0), gamma=1.5), rtol=1e-5, atol=1e-6)
    empty = focal_loss(torch.empty(0, 4, requires_grad=True), torch.empty(0, dtype=torch.long))  # N = 0: as cross-entropy
    assert torch.isnan(empty) and torch.isnan(F.cross_entropy(torch.empty(0, 4), torch.empty(0, dtype=torch.long)))


if not INTERPRET:  # here only the test that starts the interpreter process is collected
    keep = ("test_fused_kernel_in_triton_interpreter", "test_kernels_compile_for_an_h100_without_a_gpu")
    for _name in [n for n in globals() if n.startswith("test_") and n not in keep]:
        del globals()[_name]
