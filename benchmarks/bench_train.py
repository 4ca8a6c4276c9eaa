"""Training speed of the NumPy engine: tokens/s and model FLOPs utilisation (MFU).

    python benchmarks/bench_train.py [--configs a b c] [--device cpu|cuda]

MFU = model FLOPs per second (6 N + attention, per token) / the float32 GEMM peak measured here, now.
"""
import argparse

import numpy as np
from common import CONFIGS, gemm_peak, machine, median_time, model_config, train_flops_per_token

from minilm import GPT
from minilm.backend import get_xp
from minilm.optim import AdamW, clip_grad_norm


def sync_for(xp):
    return (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)


def training_step_time(name, device, repeats):
    config = model_config(name)
    model = GPT(config, seed=0, device=device)
    optimizer = AdamW(model.params, lr=1e-4)
    c = CONFIGS[name]
    rng = np.random.default_rng(0)
    x = model.xp.asarray(rng.integers(0, config.vocab_size, (c["batch"], config.block_size)))
    y = model.xp.asarray(rng.integers(0, config.vocab_size, (c["batch"], config.block_size)))

    def step():
        _, grads = model.loss_and_grads(x, y)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)

    return config, median_time(step, repeats=repeats, sync=sync_for(model.xp)), c["batch"] * config.block_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b", "c"], choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    xp = get_xp(args.device)
    peak = gemm_peak(xp, sync=sync_for(xp))
    print(f"machine: {machine()}, device {args.device}")
    print(f"float32 GEMM peak (2048^3 matmul): {peak / 1e9:.0f} GFLOP/s")
    print(f"{'config':>6} {'tok/step':>10} {'step ms':>9} {'tokens/s':>10} {'MFU':>6}")
    for name in args.configs:
        config, seconds, tokens = training_step_time(name, args.device, args.repeats)
        flops = train_flops_per_token(config) * tokens / seconds
        print(f"{name:>6} {tokens:>10} {seconds * 1e3:9.1f} {tokens / seconds:10.0f} {flops / peak:6.1%}")


if __name__ == "__main__":
    main()
