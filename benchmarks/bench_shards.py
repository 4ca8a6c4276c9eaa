"""How well the shards of a split training step share the CPU, and what the step spends beside them.

    python benchmarks/bench_shards.py [--configs b c] [--repeats 5]

The Trainer cuts a batch into one shard per core and runs each shard's forward and backward in a thread
of its own (minilm/parallel.py). If the threads got in each other's way (Python's lock, the memory bus),
all shards together would take longer than one shard alone. This times, alternated, with pauses:
- one shard alone, in a worker thread, the other cores idle;
- all shards together, one per core: the ratio together/alone is the cost of sharing the machine;
- the whole split gradient (parallel.loss_and_grads): the shards plus combining their gradients;
- the optimizer's part of a Trainer step: the gradient norm for clipping and AdamW's update (the norm is
  under the limit after the first call, so the rescale, one more pass when clipping bites, is left out).
"""
import argparse
import time

import numpy as np
from common import CONFIGS, machine, median_time, model_config

from minilm import GPT, optim, parallel


def measure(name, repeats):
    config, batch = model_config(name), CONFIGS[name]["batch"]
    model = GPT(config, seed=0)
    rng = np.random.default_rng(0)
    idx, targets = (rng.integers(0, config.vocab_size, (batch, config.block_size)) for _ in range(2))
    pieces = parallel.shard_slices(batch, parallel.cpu_cores())
    opt = optim.AdamW(model.params)

    def shards(which):
        return list(parallel._threads().map(lambda s: model.loss_and_grads(idx[s], targets[s]), which))

    _, grads = parallel.loss_and_grads(model, idx, targets, shards=len(pieces))
    timed = {
        "one shard alone": lambda: shards(pieces[:1]),
        "all shards together": lambda: shards(pieces),
        "split gradient (+ combining)": lambda: parallel.loss_and_grads(model, idx, targets, shards=len(pieces)),
        "clipping norm + AdamW": lambda: (optim.clip_grad_norm(grads, 1.0), opt.step(grads)),
    }
    times = {label: [] for label in timed}
    with parallel.one_blas_thread():
        for _ in range(3):  # alternated rounds, each a median of `repeats`
            for label, fn in timed.items():
                time.sleep(0.3)  # let the other runs' threads go quiet
                times[label].append(median_time(fn, repeats=repeats, warmup=1))
    return {label: float(np.median(t)) for label, t in times.items()}, len(pieces)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}, {parallel.cpu_cores()} cores usable")
    for name in args.configs:
        result, n = measure(name, args.repeats)
        print(f"\nconfig {name}, {n} shards (ms, medians of three alternated rounds)")
        for label, seconds in result.items():
            print(f"  {label:30s} {seconds * 1e3:8.1f}")
        sharing = result["all shards together"] / result["one shard alone"]
        print(f"config {name}: shards together/alone = {sharing:.2f}x")


if __name__ == "__main__":
    main()
