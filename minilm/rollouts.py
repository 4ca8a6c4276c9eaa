"""Rollouts: the batches of policy gradient, answers sampled from the policy being trained and scored by a reward
model (minilm/reward.py).

    batches = Rollouts(reward_model, prompt_rows, group_size=4, max_new_tokens=16, eos_id=tokenizer.eos_id)
    PolicyGradient(policy, reference, batches)                    # binds them to the policy, which they sample from
    idx, targets, loss_mask, rewards = batches(rng, batch_size)   # batch_size prompts x group_size answers

A step draws batch_size prompts and samples group_size answers to each from the policy as it is now, at
temperature 1: the policy gradient is an expectation over the policy's own answers, so they must be drawn from
it, not from a sharpened copy. Each prompt + answer is laid out as an instruction row (minilm/data/instructions.py:
the loss mask on the answer's tokens), a prompt's group in consecutive rows, the layout
minilm.objectives.PolicyGradient reads. The reward model scores each row at its last answer position, as it
scored the pairs it learned from. Every draw comes from the rng given (the Trainer's, which its checkpoint
keeps), so a resumed run samples what the uninterrupted one would have.
"""
import numpy as np

from .backend import to_numpy
from .data.instructions import Rows, batch_of
from .generate import generate


class Rollouts:
    """The Trainer's batch function of policy gradient: batches(rng, batch_size) -> (idx, targets, loss_mask:
    (N, T), rewards: (N,)), N = batch_size x group_size. prompts: Rows of prompt tokens (encode_prompts)."""

    def __init__(self, reward_model, prompts, group_size, max_new_tokens, eos_id=None, pad_id=0):
        self.reward_model, self.prompts, self.group_size = reward_model, prompts, group_size
        self.max_new_tokens, self.eos_id, self.pad_id = max_new_tokens, eos_id, pad_id
        self.policy = None  # the model being trained: minilm.objectives.PolicyGradient binds it

    def __call__(self, rng, batch_size):
        rows = Rows([], [], 0)
        for i in rng.integers(len(self.prompts.ids), size=batch_size):
            prompt = self.prompts.ids[i]
            for _ in range(self.group_size):
                answer = generate(self.policy, prompt, self.max_new_tokens, temperature=1.0, eos_id=self.eos_id,
                                  seed=int(rng.integers(2 ** 32)))
                rows.ids.append(np.concatenate([prompt, np.array(answer, dtype=np.int64)]))
                rows.response_starts.append(len(prompt))
        idx, targets, loss_mask = batch_of(rows, range(len(rows.ids)), self.pad_id)  # (N, T) each
        return idx, targets, loss_mask, to_numpy(self.reward_model.rewards(idx, loss_mask))
