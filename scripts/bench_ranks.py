"""Benchmark: the assistant's stage-2 step on a 2-core CPU as one process with two threads, or as
two processes (ranks) with one thread each, DistributedDataParallel over gloo, each on half of
the batch's rows (as `minimllm.train.train` runs under `torchrun`).

    .venv/bin/python scripts/bench_ranks.py [--repeats 4] [--quick]

Both set-ups run the same 8 batches (`bench_mllm.mllm_setup`: the job's batches, its loss with
length buckets, its trainable set, AdamW) one after the other, twice, and print the median ms per
global step of each. `--quick` uses small random models (CI checks the script with it)."""

import argparse
import functools
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mllm import mllm_setup, train_step  # noqa: E402


def rows_of(batch: dict, rows: list[int]) -> dict:
    """The batch's rows `rows` with their images (a row's `<image>` placeholders say how many it
    holds; text rows hold none)."""
    from minimllm.tokenizer import IMAGE_TOKEN_ID

    ids, pixels = batch["input_ids"], batch.get("pixel_values")
    part = {"input_ids": ids[rows], "labels": batch["labels"][rows]}
    if pixels is not None:
        placeholders = (ids == IMAGE_TOKEN_ID).sum(1)                     # (B,)
        per_row = placeholders * len(pixels) // max(int(placeholders.sum()), 1)
        first = torch.cumsum(per_row, 0) - per_row
        images = [int(first[r]) + i for r in rows for i in range(int(per_row[r]))]
        part["pixel_values"] = pixels[torch.tensor(images, dtype=torch.long)] if images else None
    return part


def rank_main(rank: int, world: int, port: int, args, results) -> None:
    """One process: `world` 1 uses both threads on whole batches; otherwise this rank takes
    every `world`-th row of each batch."""
    from minimllm.assistant import AssistantConfig, chat_loss

    torch.set_num_threads(2 // world)
    model, batches = mllm_setup("assistant", args.quick)
    net = model
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        net = torch.nn.parallel.DistributedDataParallel(model)
        batches = [rows_of(b, list(range(rank, len(b["input_ids"]), world))) for b in batches]
    step = train_step(net, functools.partial(chat_loss, buckets=AssistantConfig().length_buckets),
                      batches)
    step()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) / len(batches) * 1e3)
    if rank == 0:
        results.put(times)
    if world > 1:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small random models, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    ctx, medians = mp.get_context("spawn"), {}
    for _ in range(1 if args.quick else 2):  # the set-ups take turns
        for world, name in ((1, "1 process x 2 threads"), (2, "2 ranks x 1 thread")):
            results = ctx.Queue()
            port = free_port()
            procs = [ctx.Process(target=rank_main, args=(r, world, port, args, results))
                     for r in range(world)]
            for p in procs:
                p.start()
            times = results.get(timeout=1800)
            for p in procs:
                p.join()
            medians.setdefault(name, []).extend(times)
    for name, times in medians.items():
        print(f"{name:>24}: {statistics.median(times):7.1f} ms per step "
              f"({', '.join(f'{t:.0f}' for t in times)})")
    return {name: statistics.median(times) for name, times in medians.items()}


if __name__ == "__main__":
    main()
