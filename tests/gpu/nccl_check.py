"""Two processes, one GPU each, an NCCL all-reduce through torch.distributed
under the shim (NCCL needs pinned staging: run with VRAMGUARD_ALLOW=pinned).
Each rank checks the shim saw its own device's memory and nothing on the
other device. Prints PASS/FAIL and a ROW line per rank."""
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import vramguard


def rank_main(rank, world):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29533"
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    with vramguard.purpose("weights"):
        t = torch.full((64 << 20,), float(rank + 1), device=f"cuda:{rank}")
    dist.all_reduce(t)
    torch.cuda.synchronize()
    ok_sum = bool((t == sum(range(1, world + 1))).all().item())
    u = vramguard.usage()
    mine = u["charged_bytes"].get(rank, 0)
    other = sum(v for d, v in u["charged_bytes"].items() if d != rank)
    reserved = torch.cuda.memory_reserved(rank)
    print(f"{'PASS' if ok_sum else 'FAIL'} rank {rank}: all_reduce result", flush=True)
    print(f"{'PASS' if mine >= reserved and other == 0 else 'FAIL'} rank {rank}: charged on cuda:{rank} "
          f"{mine} >= torch reserved {reserved}, other devices {other}", flush=True)
    print(f"ROW nccl rank {rank}|torch.cuda.memory_reserved({rank})={reserved}|shim charged on device {rank}={mine}|"
          f"diff={mine - reserved} (NCCL buffers are outside PyTorch's allocator)", flush=True)
    dist.destroy_process_group()
    if not (ok_sum and mine >= reserved and other == 0):
        sys.exit(1)


if __name__ == "__main__":
    n = torch.cuda.device_count()
    if n < 2:
        print(f"SKIP nccl: {n} GPU(s)")
        sys.exit(0)
    mp.spawn(rank_main, args=(2,), nprocs=2, join=True)
