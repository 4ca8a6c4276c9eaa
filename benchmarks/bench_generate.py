"""Generation speed: the KV cache against recomputing the whole prefix, and against PyTorch eager.

    python benchmarks/bench_generate.py [--config b] [--new-tokens 256] [--prompt 64] [--device cpu|cuda]

Greedy decoding of --new-tokens tokens after a --prompt-token prompt, at config b's width and depth
(its block size raised to fit prompt + new tokens). All three ways must produce the same tokens.
"""
import argparse
import dataclasses
import time

import numpy as np
from common import machine, model_config

from minilm import GPT
from minilm.backend import to_numpy
from minilm.generate import generate


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="b")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    config = dataclasses.replace(model_config(args.config), block_size=args.prompt + args.new_tokens)
    model = GPT(config, seed=0, device=args.device)
    prompt = list(np.random.default_rng(0).integers(0, config.vocab_size, args.prompt))

    def ours(use_cache):
        return generate(model, prompt, args.new_tokens, temperature=0, use_cache=use_cache)

    runs = {"minilm, KV cache": lambda: ours(True), "minilm, recompute": lambda: ours(False)}
    try:
        import torch
        from torch_gpt import TorchGPT
        torch_model = TorchGPT({k: to_numpy(v) for k, v in model.params.items()}, config.n_layer, config.n_head)
        torch_model.to(args.device)
        runs["pytorch eager, KV cache"] = lambda: torch_model.generate_greedy(prompt, args.new_tokens)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print("PyTorch is not installed: timing minilm alone")
    print(f"machine: {machine()}, device {args.device}")
    print(f"config {args.config} (d {config.d_model}, {config.n_layer} layers, vocab {config.vocab_size}), "
          f"prompt {args.prompt}, {args.new_tokens} new tokens, greedy")
    seconds, tokens = {}, {}
    for name, fn in runs.items():
        tokens[name], _ = timed(fn)  # warm-up, and the tokens to compare
    for _ in range(args.repeats):  # alternate the ways, pausing so BLAS threads settle
        for name, fn in runs.items():
            time.sleep(0.5)
            seconds.setdefault(name, []).append(timed(fn)[1])
    reference = tokens["minilm, KV cache"]
    print(f"\n{'way':<26} {'seconds':>8} {'tokens/s':>9}  same tokens")
    for name in runs:
        s = float(np.median(seconds[name]))
        seconds[name] = s
        print(f"{name:<26} {s:8.3f} {args.new_tokens / s:9.0f}  {tokens[name] == reference}")
    print(f"\nKV cache speed-up over recomputing: {seconds['minilm, recompute'] / seconds['minilm, KV cache']:.1f}x")
    if "pytorch eager, KV cache" in seconds:
        print(f"config {args.config} generation: minilm/pytorch = "
              f"{seconds['pytorch eager, KV cache'] / seconds['minilm, KV cache']:.2f}x (both with a KV cache)")


if __name__ == "__main__":
    main()
