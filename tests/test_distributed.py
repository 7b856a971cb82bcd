"""sync_count=True under DistributedDataParallel: two processes started here (gloo backend, loopback), each with an
uneven shard of one batch, give the gradients of that whole batch on one process; without it they do not."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _ddp_data import LOSSES, batch, model  # noqa: E402

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    "Run the two ranks; their results, {(loss name, sync): {'loss', 'grad'}} per rank."
    out = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_PORT": str(port), "MASTER_ADDR": "127.0.0.1",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(HERE / "_ddp_worker.py"), str(out / f"rank{r}.pt")],
                              env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    try:
        logs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def one_batch_gradients(name):
    "The gradients of the loss on the whole batch, in one process: what the ranks must agree with."
    features, target = batch()
    net = model()
    LOSSES[name](net(features), target, False).backward()
    return [p.grad for p in net.parameters()]


@pytest.mark.parametrize("name", list(LOSSES))
def test_sync_count_gives_the_whole_batchs_gradients(ranks, name):
    expected = one_batch_gradients(name)
    for r in ranks:
        for got, want in zip(r[name, True]["grad"], expected):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_the_ranks_losses_average_to_the_whole_batchs_mean(ranks, name):
    features, target = batch()
    whole = LOSSES[name](model()(features), target, False).detach()
    torch.testing.assert_close((ranks[0][name, True]["loss"] + ranks[1][name, True]["loss"]) / 2, whole)


@pytest.mark.parametrize("name", list(LOSSES))
def test_without_sync_count_the_gradients_differ(ranks, name):
    "The shards keep 2 and 9 targets: each rank's own mean weighs rank 0's targets 4.5 times as much."
    expected = one_batch_gradients(name)
    assert max((got - want).abs().max() for got, want in zip(ranks[0][name, False]["grad"], expected)) > 1e-3
