"""One rank of tests/test_distributed.py: a linear model under DistributedDataParallel (gloo, loopback), one
backward of the focal loss on this rank's shard; writes the averaged gradients and the loss to argv[1]."""
import datetime
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from _ddp_data import LOSSES, SHARDS, batch, model

rank, world, port = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), os.environ["MASTER_PORT"]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                        timeout=datetime.timedelta(seconds=60))
features, target = batch()
results = {}
for name, loss_fn in LOSSES.items():
    for sync in (True, False):
        net = DDP(model())
        idx = SHARDS[rank]
        loss = loss_fn(net(features[idx]), target[idx], sync)
        loss.backward()  # DDP averages the gradients over the ranks
        results[name, sync] = {"loss": loss.detach(), "grad": [p.grad.clone() for p in net.parameters()]}
torch.save(results, sys.argv[1])
dist.destroy_process_group()
