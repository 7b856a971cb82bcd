"""Forward+backward time and peak memory of focal_tutorial's focal loss, F.cross_entropy and AutoMM's FocalLoss.

    python bench/focal_bench.py                       # the default grid, on CPU, at torch's default thread count
    python bench/focal_bench.py --threads 1 --repeats 31 --sizes 64x10 4096x4
    python bench/focal_bench.py --preset gpu --save   # nine sizes up to 8192x32000 and 1024x128000 on a GPU
    python bench/focal_bench.py --save                # the CPU grid, written to bench/results_cpu.json

`--save` writes the table to bench/results_cpu.json or bench/results_cuda.json, which the engine page shows.

Time: the three losses run interleaved (in a shuffled order each round) on the same logits; each round times
`inner` back-to-back calls of loss(logits, target).backward() (inner is chosen per size so a round lasts ~2 ms
for F.cross_entropy) and the table reports the median over rounds, in microseconds per call.
Threads: torch's default thread count unless `--threads` says otherwise; the first line says which.
Clock: on CPU with one thread, by default the process's CPU time (time.process_time), which other processes
competing for the cores do not inflate; with more threads the wall time (time.perf_counter), since the process's
CPU time would add up the threads' time (`--clock` chooses either).
On CUDA the time of each round comes from CUDA events (the GPU's own clock), and "host us" is the CPU time the
launching thread spends per call (time.thread_time over the round, before waiting for the GPU): the Python and
launch cost, which decides the speed when the kernels are short. On CUDA the focal loss is timed twice, with the
fused Triton kernel (`focal`) and with the PyTorch path (`focal_torch`, USE_FUSED = False).
Allocator, CPU: PyTorch's CPU tensors come from the C library's malloc, which hands buffers of a few MiB and more
back to the operating system on free and maps them afresh on the next allocation, paying a page fault per 4 KiB
page. Whether that happens to a given buffer depends on the allocation history (glibc adapts its thresholds), so
which loss pays it changes from run to run. By default the script asks glibc (mallopt) to keep freed memory in
the process, so every loss is timed in the steady state a training loop reaches; `--allocator default` leaves
malloc as it is.
Peak memory, CPU: one extra call under torch.profiler(profile_memory=True); the peak of the running sum of the
allocator's alloc/free events during forward+backward, i.e. bytes the op kernels allocated beyond the inputs
(the logits' .grad included; kernel-internal scratch that bypasses torch's allocator is not seen).
Peak memory, CUDA: torch.cuda.max_memory_allocated() above the memory allocated before the call.
On CPU with numba installed, the focal loss is timed twice: as it runs (`focal`: small batches in the compiled loop
of focal_tutorial.cpu_kernel) and as on a machine without numba
(`no-numba`: the module's cache of the compiled code set to [None], what a failed `import numba` leaves).
The summary line sums the grid up: the median and the largest focal/CE time ratio, the geometric mean of the
AutoMM/focal time ratios and the largest focal/CE peak-memory ratio.
A second table times the sigmoid focal loss (focal_tutorial.sigmoid) on multi-label logits with 0/1 targets against
F.binary_cross_entropy_with_logits and torchvision's sigmoid_focal_loss, the same way (`--no-sigmoid` leaves it out).
A third table, on CPU, times each CPU path of the focal loss against the next simpler one, forced by the engine's
settings (`--no-paths` leaves it out): `torch` (the GPU path's PyTorch code, run on CPU), `softmax` (PyTorch's softmax
kernel, the per-sample part in NumPy), `lse` (amax/exp/sum, which the engine takes below SMALL_C classes) and `loop`
(numba's compiled loop, up to CPU_KERNEL_MAX logits). A path stays in the engine only if it is at least 10% faster
than the next simpler one (gain >= 1.10) at some size of the grid.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

DEFAULT_SIZES = ((64, 10), (256, 100), (4096, 4), (4096, 100), (8192, 1000), (256, 32000))
PRESETS = {"cpu": DEFAULT_SIZES,
           "gpu": ((4096, 4), (4096, 100), (8192, 1000), (256, 32000), (65536, 4), (65536, 100), (65536, 1000),
                   (8192, 32000), (1024, 128000))}
HERE = os.path.dirname(os.path.abspath(__file__))


def _with_setting(fn, module, name: str, value):
    "fn(x, y) with `module.name` set to `value` for the call, and set back after it."
    def call(x, y):
        saved = getattr(module, name)
        setattr(module, name, value)
        try:
            return fn(x, y)
        finally:
            setattr(module, name, saved)
    return call


def _losses(N: int, C: int, gamma: float, device):
    """The losses as fn(logits, target); focal and AutoMM get the same alpha. On CUDA also the unfused focal loss, on
    CPU with numba also the focal loss as it runs without numba."""
    import focal_tutorial.engine as engine
    import focal_tutorial.losses as losses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AutoMM's import warns about pkg_resources
        from autogluon.multimodal.optim.losses.focal_loss import FocalLoss as AutoMMFocalLoss
    alpha = torch.rand(C, generator=torch.Generator().manual_seed(1)) + 0.1
    focal = losses.FocalLoss(alpha, gamma=gamma).to(device)
    fns = {"focal": focal, "ce": F.cross_entropy, "automm": AutoMMFocalLoss(alpha, gamma=gamma).to(device)}
    if torch.device(device).type == "cpu" and engine._cpu_kernel() is not None:
        fns["focal_numpy"] = _with_setting(focal, engine, "_CPU_KERNEL", [None])  # as a CPU without numba runs it
    if torch.device(device).type == "cuda":
        fns["focal_torch"] = _with_setting(focal, engine, "USE_FUSED", False)  # the PyTorch path, not the kernel
    return fns


def steady_allocator() -> bool:
    "Ask glibc's malloc to serve every size from its heap and never return memory to the OS; False if not glibc."
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn, x, y):
    fn(x, y).backward()
    x.grad = None


@contextlib.contextmanager
def _quiet_stderr():
    "Silence file descriptor 2 (the profiler's C++ start/stop chatter) for the duration of the block."
    import sys
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_bytes(fn, x, y) -> int:
    "Peak bytes allocated during one forward+backward, beyond what was allocated before it."
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        base = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        fn(x, y).backward()
        torch.cuda.synchronize(x.device)
        peak = torch.cuda.max_memory_allocated(x.device) - base
        x.grad = None
        return peak
    from torch.profiler import ProfilerActivity, profile
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x, y).backward()
    x.grad = None
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    cur = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def bench_size(N: int, C: int, repeats: int = 15, gamma: float = 2.0, device="cpu", round_s: float = 2e-3, seed: int = 0,
               clock: str = "cpu"):
    "Median microseconds per forward+backward (and host time on CUDA) and peak bytes, per loss at one N x C."
    device = torch.device(device)
    now = time.process_time if clock == "cpu" and device.type == "cpu" else time.perf_counter
    g = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(N, C, generator=g)).to(device).requires_grad_()
    y = torch.randint(0, C, (N,), generator=g).to(device)
    fns = _losses(N, C, gamma, device)
    with torch.no_grad():  # never time a wrong loss: ours and AutoMM's must agree
        ours, theirs = fns["focal"](x, y).item(), fns["automm"](x, y).item()
    assert math.isclose(ours, theirs, rel_tol=1e-4), f"focal {ours} != AutoMM {theirs} at {N}x{C}"
    times, host, inner = _time(fns, x, y, repeats, device, now, round_s, seed, base="ce")
    return [{"N": N, "C": C, "loss": m, "us": 1e6 * statistics.median(times[m]),
             "host_us": 1e6 * statistics.median(host[m]) if host[m] else float("nan"),
             "peak_MiB": peak_bytes(fns[m], x, y) / 2**20, "inner": inner, "rounds": repeats} for m in fns]


def _time(fns, x, y, repeats, device, now, round_s, seed, base):
    """Seconds per forward+backward of each loss in `fns` on (x, y), per round ({loss: [...]}), host seconds on CUDA,
    and the number of calls per round (a round lasts about `round_s` for the loss `base`): the losses interleaved in a
    shuffled order each round."""
    for fn in fns.values():  # warm up
        for _ in range(2):
            _step(fn, x, y)
    _sync(device)
    t0 = now()
    _step(fns[base], x, y)
    _sync(device)
    inner = max(1, min(200, math.ceil(round_s / max(now() - t0, 1e-7))))
    times = {m: [] for m in fns}
    host = {m: [] for m in fns}
    order = list(fns)
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for m in order:
            fn = fns[m]
            _sync(device)
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                h0 = time.thread_time()
                for _ in range(inner):
                    _step(fn, x, y)
                host[m].append((time.thread_time() - h0) / inner)
                end.record()
                end.synchronize()
                times[m].append(start.elapsed_time(end) / 1e3 / inner)
                continue
            t0 = now()
            for _ in range(inner):
                _step(fn, x, y)
            _sync(device)
            times[m].append((now() - t0) / inner)
    return times, host, inner


SIGMOID_SIZES = ((4096, 20), (8192, 80))  # (N, C) multi-label: one binary target per logit


def bench_sigmoid(sizes=SIGMOID_SIZES, repeats: int = 15, gamma: float = 2.0, device="cpu", clock: str = "cpu",
                  round_s: float = 2e-3, seed: int = 0):
    """The sigmoid focal loss against F.binary_cross_entropy_with_logits and torchvision's sigmoid_focal_loss on 0/1
    targets (20% positives): a pandas DataFrame, one row per size, microseconds per forward+backward and the ratios."""
    import pandas as pd
    import torch.nn.functional as F
    from torchvision.ops import sigmoid_focal_loss as tv_focal

    from focal_tutorial.sigmoid import sigmoid_focal_loss
    device = torch.device(device)
    now = time.process_time if clock == "cpu" and device.type == "cpu" else time.perf_counter
    rows = []
    for N, C in sizes:
        g = torch.Generator().manual_seed(seed)
        x = (3 * torch.randn(N, C, generator=g)).to(device).requires_grad_()
        y = (torch.rand(N, C, generator=g) < 0.2).float().to(device)
        fns = {"BCE": F.binary_cross_entropy_with_logits,
               "sigmoid focal": lambda x, y: sigmoid_focal_loss(x, y, 0.25, gamma),
               "torchvision": lambda x, y: tv_focal(x, y, 0.25, gamma, "mean")}
        with torch.no_grad():  # never time a wrong loss: ours and torchvision's must agree
            ours, theirs = fns["sigmoid focal"](x, y).item(), fns["torchvision"](x, y).item()
        assert math.isclose(ours, theirs, rel_tol=1e-4), f"sigmoid focal {ours} != torchvision {theirs} at {N}x{C}"
        us = {m: 1e6 * statistics.median(t) for m, t in _time(fns, x, y, repeats, device, now, round_s, seed, "BCE")[0].items()}
        rows.append({"N": N, "C": C, "BCE us": us["BCE"], "sigmoid focal us": us["sigmoid focal"],
                     "torchvision us": us["torchvision"], "sigmoid focal/BCE": us["sigmoid focal"] / us["BCE"],
                     "torchvision/sigmoid focal": us["torchvision"] / us["sigmoid focal"]})
    return pd.DataFrame(rows).set_index(["N", "C"])


def _cpu_paths(N: int, C: int, gamma: float) -> dict:
    """The CPU paths that apply at N x C, as fn(logits, target), from the simplest: `torch`, `softmax`, `lse` (fewer
    than SMALL_C classes), `loop` (at most CPU_KERNEL_MAX logits, with numba)."""
    import focal_tutorial.engine as engine
    import focal_tutorial.losses as losses
    alpha = torch.rand(C, generator=torch.Generator().manual_seed(1)) + 0.1
    focal = losses.FocalLoss(alpha, gamma=gamma)

    def device_path(logits, target, alpha, gamma, reduction, ignore_index, need_grad):
        t, ignored, n = engine._targets(target, logits.shape[1], ignore_index)
        return engine._forward(logits, t, alpha, gamma, ignored, reduction, n, need_grad)

    def forced(**settings):
        fn = focal
        for name, value in settings.items():
            fn = _with_setting(fn, engine, name, value)
        return fn

    fns = {"torch": forced(_loss_and_grad=device_path, CPU_KERNEL_MAX=0),
           "softmax": forced(CPU_KERNEL_MAX=0, SMALL_C=0)}
    if C < engine.SMALL_C:
        fns["lse"] = forced(CPU_KERNEL_MAX=0, SMALL_C=10**9)
    if N * C <= engine.CPU_KERNEL_MAX and engine._cpu_kernel() is not None:
        fns["loop"] = forced(CPU_KERNEL_MAX=10**9)
    return fns


def bench_paths(sizes=DEFAULT_SIZES, repeats: int = 15, gamma: float = 2.0, clock: str = "wall", round_s: float = 2e-3,
                seed: int = 0):
    """Microseconds per forward+backward of each CPU path that applies at each size (NaN where one does not) and its
    gain: the next simpler path's time over its own."""
    import pandas as pd
    now = time.process_time if clock == "cpu" else time.perf_counter
    rows = []
    for N, C in sizes:
        g = torch.Generator().manual_seed(seed)
        x = (3 * torch.randn(N, C, generator=g)).requires_grad_()
        y = torch.randint(0, C, (N,), generator=g)
        fns = _cpu_paths(N, C, gamma)
        with torch.no_grad():  # every path computes the same loss
            want = fns["torch"](x, y).item()
            for m, fn in fns.items():
                assert math.isclose(fn(x, y).item(), want, rel_tol=1e-4), f"path {m} disagrees at {N}x{C}"
        us = {m: 1e6 * statistics.median(t) for m, t in _time(fns, x, y, repeats, torch.device("cpu"), now, round_s,
                                                               seed, "torch")[0].items()}
        row = {"N": N, "C": C, **{f"{m} us": us.get(m, float("nan")) for m in ("torch", "softmax", "lse", "loop")}}
        simpler = "torch"
        for m in ("softmax", "lse", "loop"):
            row[f"{m} gain"] = us[simpler] / us[m] if m in us else float("nan")
            simpler = m if m in us else simpler
        rows.append(row)
    return pd.DataFrame(rows).set_index(["N", "C"])


def default_clock(threads: int) -> str:
    "Process CPU time at one thread; wall time with more (the process's CPU time would add the threads up)."
    return "cpu" if threads == 1 else "wall"


def run(sizes=DEFAULT_SIZES, repeats: int = 15, threads: int | None = None, gamma: float = 2.0, device: str = "cpu",
        clock: str | None = None):
    "The whole grid: a pandas DataFrame (one row per size) with times, peak memory and the ratios."
    import pandas as pd
    if threads:
        torch.set_num_threads(threads)
    clock = clock or default_clock(torch.get_num_threads())
    rows = [r for N, C in sizes for r in bench_size(N, C, repeats, gamma, device, clock=clock)]
    df = pd.DataFrame(rows).pivot(index=["N", "C"], columns="loss", values=["us", "host_us", "peak_MiB"])
    us = df["us"]
    out = pd.DataFrame({
        "CE us": us["ce"], "focal us": us["focal"], "AutoMM us": us["automm"],
        "focal/CE": us["focal"] / us["ce"], "AutoMM/focal": us["automm"] / us["focal"],
        "CE MiB": df["peak_MiB"]["ce"], "focal MiB": df["peak_MiB"]["focal"], "AutoMM MiB": df["peak_MiB"]["automm"],
        "focal/CE mem": df["peak_MiB"]["focal"] / df["peak_MiB"]["ce"]})
    if "focal_numpy" in us:  # on CPU with numba: the loss as it runs without numba
        out.insert(2, "no-numba us", us["focal_numpy"])
        out.insert(5, "no-numba/CE", us["focal_numpy"] / us["ce"])
    if "focal_torch" in us:  # on CUDA: the PyTorch path, for comparison with the fused kernel, and host time
        out.insert(3, "unfused us", us["focal_torch"])
        for i, m in enumerate(("ce", "focal", "focal_torch", "automm")):
            out.insert(4 + i, f"{'unfused' if m == 'focal_torch' else 'CE' if m == 'ce' else 'AutoMM' if m == 'automm' else m} host us",
                       df["host_us"][m])
    return out.reindex(pd.MultiIndex.from_tuples([tuple(s) for s in sizes], names=["N", "C"]))


def summary(table) -> str:
    "The last line: median and largest focal/CE over the grid, geometric mean AutoMM/focal, worst memory ratio."
    gm = math.exp(statistics.fmean(math.log(r) for r in table["AutoMM/focal"]))
    return (f"median focal/CE = {statistics.median(table['focal/CE']):.3f}   max focal/CE = {table['focal/CE'].max():.3f}   "
            f"geomean AutoMM/focal = {gm:.2f}   max focal/CE peak memory = {table['focal/CE mem'].max():.3f}")


def machine(device: str = "cpu", threads: int | None = None, clock: str | None = None, allocator: str = "",
            load: bool = True) -> str:
    "One line saying where the numbers come from (`load`: with the load average, to see whether it was idle)."
    cuda = device.startswith("cuda")
    if cuda:
        dev = torch.cuda.get_device_name()
    else:
        from focal_tutorial._machine import machine_info  # the CPU model, as the study reports it
        dev = machine_info()["cpu"]
    threads = threads or torch.get_num_threads()
    clock = clock or default_clock(threads)
    clock = "CUDA events" if cuda else "wall time" if clock == "wall" else "process CPU time"
    clock += f", {allocator} allocator" if allocator and not cuda else ""
    load = "; load avg %.2f %.2f %.2f" % os.getloadavg() if load and hasattr(os, "getloadavg") else ""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, device {device} ({dev}), "
            f"torch {torch.__version__}, {threads} torch thread(s), {clock}{load}")


def _records(table) -> list:
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
            for r in table.reset_index().to_dict("records")]


def save(table, machine_line: str, device: str, path: str | None = None, sigmoid=None, paths=None) -> str:
    """Write the table, the machine line, the summary, the sigmoid table and the CPU paths' table (if any) to
    bench/results_<cpu|cuda>.json (the engine page reads it)."""
    path = path or os.path.join(HERE, f"results_{'cuda' if device.startswith('cuda') else 'cpu'}.json")
    out = {"machine": machine_line, "summary": summary(table), "rows": _records(table)}
    if sigmoid is not None:
        out["sigmoid_rows"] = _records(sigmoid)
    if paths is not None:
        out["paths_rows"] = _records(paths)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    return path


def _size(s: str):
    N, C = s.lower().split("x")
    return int(N), int(C)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=_size, default=None, metavar="NxC",
                   help="logits shapes (default: the preset's; cpu: 64x10 256x100 4096x4 4096x100 8192x1000 256x32000)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="cpu (the default grid) or gpu (nine sizes up to 1024x128000; implies --device cuda)")
    p.add_argument("--save", action="store_true", help="write bench/results_<cpu|cuda>.json for the engine page")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per size (default 15)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"torch.set_num_threads (default: torch's default, here {torch.get_num_threads()})")
    p.add_argument("--gamma", type=float, default=2.0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda for --preset gpu, else cpu)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="on CPU: process CPU time (default at one thread; robust to other processes) or wall time "
                        "(default with more threads)")
    p.add_argument("--allocator", choices=("steady", "default"), default="steady",
                   help="on CPU: keep freed memory in the process (default) or leave malloc as it is")
    p.add_argument("--no-sigmoid", action="store_true",
                   help="leave out the sigmoid focal loss's table (against BCE-with-logits and torchvision's)")
    p.add_argument("--no-paths", action="store_true", help="on CPU, leave out the table of the focal loss's CPU paths")
    a = p.parse_args(argv)
    a.device = a.device or ("cuda" if a.preset == "gpu" else "cpu")
    a.sizes = a.sizes or PRESETS[a.preset or ("gpu" if a.device.startswith("cuda") else "cpu")]
    import pandas as pd
    allocator = "default"
    if a.allocator == "steady" and not a.device.startswith("cuda"):
        allocator = "steady" if steady_allocator() else "default (mallopt unavailable)"
    if a.threads:
        torch.set_num_threads(a.threads)
    print(machine(a.device, None, a.clock, allocator), flush=True)
    table = run(a.sizes, a.repeats, None, a.gamma, a.device, a.clock)
    line = machine(a.device, None, a.clock, allocator, load=False)
    with pd.option_context("display.width", 220, "display.max_columns", 24, "display.precision", 3):
        print(table)
    print(summary(table))
    sigmoid = None
    if not a.no_sigmoid:
        sigmoid = bench_sigmoid(repeats=a.repeats, gamma=a.gamma, device=a.device,
                                clock=a.clock or default_clock(torch.get_num_threads()))
        with pd.option_context("display.width", 220, "display.max_columns", 24, "display.precision", 3):
            print(sigmoid)
    paths = None
    if not a.no_paths and not a.device.startswith("cuda"):
        paths = bench_paths(a.sizes, a.repeats, a.gamma, clock=a.clock or default_clock(torch.get_num_threads()))
        with pd.option_context("display.width", 220, "display.max_columns", 24, "display.precision", 3):
            print(paths)
    if a.save:
        print("saved", os.path.relpath(save(table, line, a.device, sigmoid=sigmoid, paths=paths)))


if __name__ == "__main__":
    main()
