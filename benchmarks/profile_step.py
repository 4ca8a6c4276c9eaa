"""Where a training step's time goes, by category (matmuls, attention, elementwise, optimizer, ...).

    python benchmarks/profile_step.py [--config b] [--steps 5] [--device cpu|cuda] [--shards N]

Each leaf layer function in minilm.layers (and the optimizer step) is wrapped with a timer; whatever is
left of the step's wall time is glue: residual adds, head splitting, the cross-entropy's bookkeeping.
On a GPU each timer waits for the device before it starts and stops (work is asynchronous there), which
costs a little overlap but puts every kernel's time in its own category.

By default the step runs unsplit (one thread calls every layer, so each category is wall time). With
--shards N it runs the way the Trainer does on N cores (minilm/parallel.py): the layers' times are summed
over the shard threads and divided by N, the time of one shard on its own core, and what is left of
the wall time (glue) includes waiting for the shards and combining their gradients.
"""
import argparse
import collections
import functools
import threading
import time

import numpy as np
from common import CONFIGS, model_config, sync_for

from minilm import GPT, layers, optim, parallel
from minilm.backend import get_xp

CATEGORIES = {
    "linear_forward": "matmul (linear layers, head)", "linear_backward": "matmul (linear layers, head)",
    "attention_forward": "attention core", "attention_backward": "attention core",
    "layernorm_forward": "layernorm", "layernorm_backward": "layernorm",
    "gelu_forward": "gelu", "gelu_backward": "gelu",
    "softmax_cross_entropy_forward": "softmax cross-entropy", "softmax_cross_entropy_backward": "softmax cross-entropy",
    "embedding_forward": "embedding", "embedding_backward": "embedding",
}


def instrument(totals, sync):
    lock = threading.Lock()  # shard threads add to the same totals

    def timed(fn, category):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync()
                with lock:
                    totals[category] += time.perf_counter() - start
        return wrapper

    for name, category in CATEGORIES.items():
        setattr(layers, name, timed(getattr(layers, name), category))
    optim.AdamW.step = timed(optim.AdamW.step, "AdamW")
    optim_clip = timed(optim.clip_grad_norm, "gradient clipping")
    return optim_clip


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="b", choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--shards", type=int, default=1, help="cut each batch as the Trainer does on this many cores")
    args = parser.parse_args()
    sync = sync_for(get_xp(args.device))
    totals = collections.Counter()
    clip = instrument(totals, sync)
    config = model_config(args.config)
    c = CONFIGS[args.config]
    model = GPT(config, seed=0, device=args.device)
    optimizer = optim.AdamW(model.params, lr=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))
    y = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))

    def step():
        _, grads = parallel.loss_and_grads(model, x, y, shards=args.shards)
        clip(grads, 1.0)
        optimizer.step(grads)

    step()  # warm-up
    sync()
    totals.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    wall = (time.perf_counter() - start) / args.steps
    per_step = {category: seconds / args.steps / (args.shards if category in CATEGORIES.values() else 1)
                for category, seconds in totals.items()}  # a layer's time: one shard's, on its own core
    split = f", split into {args.shards} shards (layer times: one shard's)" if args.shards > 1 else ""
    print(f"config {args.config} on {args.device}{split}: {wall * 1e3:.1f} ms per training step")
    print(f"{'category':<32} {'ms/step':>8} {'share':>6}")
    for category, seconds in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"{category:<32} {seconds * 1e3:8.1f} {seconds / wall:6.1%}")
    glue = wall - sum(per_step.values())
    print(f"{'glue (everything else)':<32} {glue * 1e3:8.1f} {glue / wall:6.1%}")


if __name__ == "__main__":
    main()
