#!/usr/bin/python3
"""PyTorch's side of bench/distributed.mjs: the seed model with DDP (gloo) on N ranks of one thread
each, global batch 64, MNIST-shaped random data (the speed does not depend on the values).
Usage: python3 bench/ddp_torch.py RANKS STEPS; prints samples/s."""
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def worker(rank, world, steps, init_file, result):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    model = nn.Sequential(nn.Linear(784, 500), nn.BatchNorm1d(500), nn.ReLU(), nn.Linear(500, 10))
    ddp = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(64 // world, 784), torch.randint(0, 10, (64 // world,))
    for i in range(10 + steps):
        if i == 10:
            dist.barrier()
            start = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
    dist.barrier()
    if rank == 0:
        with open(result, 'w') as f:
            f.write(str(steps * 64 / (time.perf_counter() - start)))
    dist.destroy_process_group()


if __name__ == '__main__':
    world, steps = int(sys.argv[1]), int(sys.argv[2])
    tmp = tempfile.mkdtemp()
    result = os.path.join(tmp, 'result')
    mp.spawn(worker, args=(world, steps, os.path.join(tmp, 'init'), result), nprocs=world)
    print(open(result).read())
