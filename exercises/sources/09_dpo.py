# %% [markdown]
# # Exercise 09 — DPO: a preference loss against a frozen reference, and its gradient
#
# *Follows lesson 08 (`lessons/08_the_objective.ipynb`), where a model is tuned by which of two answers is
# better rather than by one right answer; this is the loss behind `python -m minilm finetune --objective dpo`
# (`minilm/objectives.py`).*
#
# Maximum likelihood says: for this prompt, this response is the target. DPO (Rafailov et al., 2023) learns from
# **pairs** instead: a prompt, a **chosen** response and a **rejected** one. Each response is scored by its
# **sequence log-probability** `log π(y | x)`, the sum of its tokens' log-probabilities (the prompt's tokens are
# given, not scored). The policy π is the model being tuned; the **reference** π_ref is a frozen copy of the
# model it started as. A response's **implicit reward** is how much more likely the policy makes it than the
# reference does, times β; the loss is Bradley–Terry's on the two rewards, averaged over the N pairs:
#
# $$m_i = \beta\,\Big[\big(\log\pi(y^c_i) - \log\pi_{\rm ref}(y^c_i)\big) - \big(\log\pi(y^r_i) - \log\pi_{\rm ref}(y^r_i)\big)\Big],
# \qquad L = -\frac{1}{N}\sum_i \log\sigma(m_i)$$
#
# Only the policy trains: the reference's log-probabilities are numbers, computed once, with no gradient.
#
# | function | input | output |
# |---|---|---|
# | `sequence_logprob(logits, targets, loss_mask)` | `logits` `(B, T, V)`, `targets` `(B, T)` ints, `loss_mask` `(B, T)` bool, True where the target is a response token | `(B,)`: each row's `log π(response)` |
# | `dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)` | four `(N,)` arrays of sequence log-probabilities, a number β > 0 | the loss `L`, a float |
# | `dpo_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)` | the same | `(d_chosen, d_rejected)`, each `(N,)`: `∂L/∂ log π(y^c_i)` and `∂L/∂ log π(y^r_i)` |
# | `sequence_logprob_backward(dseq, logits, targets, loss_mask)` | `dseq` `(B,)`: the loss's gradient w.r.t. each row's `log π(response)`, and the forward's inputs | `dlogits` `(B, T, V)` |
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/09_dpo.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("09_dpo", globals())

# Two rows of one pair: a 3-token prompt, then a 2-token chosen answer (row 0) and a 1-token rejected one
# (row 1, padded). loss_mask marks the positions whose *target* is a response token.
targets = np.array([[5, 2, 7, 1, 0],
                    [5, 2, 4, 0, 0]])
loss_mask = np.array([[False, False, True, True, False],
                      [False, False, True, False, False]])
logits = np.random.default_rng(0).normal(size=(2, 5, 8))
print(loss_mask.astype(int))

# %% [markdown]
# ## Part 1: a response's log-probability
#
# At each position, `log p(target) = logit[target] − log Σ_v exp(logit[v])` (a log-softmax: subtract the max
# first, so that no `exp` overflows and no `log` meets 0). Sum it over the response's positions only.

# %%
def sequence_logprob(logits, targets, loss_mask):
    """logits: (B, T, V), targets: (B, T) ints, loss_mask: (B, T) bool -> (B,), log p(response) of each row"""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V), each position's largest logit now 0
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # log softmax, never log 0
    logp = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (B, T): log p(target)
    return (logp * loss_mask).sum(axis=1)  # the response's positions only
    ### END SOLUTION


# %%
check("sequence_logprob")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Three steps: a log-softmax over the last axis, `(B, T, V)`; pick each position's target entry, `(B, T)`;
# add up the positions where `loss_mask` is True, `(B,)`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `np.log(softmax(logits))` gives `log 0 = -inf` once a probability underflows (logits 1000 apart). Instead:
# `shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))` with `shifted` the logits minus their max.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]` picks the targets; then
# `(logp * loss_mask).sum(axis=1)`. Not the mean: a sequence's probability is the product of its tokens'.
#
# </details>
#
# Still stuck? `solutions/09_dpo.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the DPO loss
#
# Form each pair's margin `m` as above and average `−log σ(m)`. Write `−log σ(m) = log(1 + e^{−m})` with
# `np.logaddexp(0, -m)`: for a pair far in the wrong order (`m = −500`) the loss is 500, not `inf`.

# %%
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """Sequence log-probabilities (N,) under the policy and the reference -> the DPO loss, a float"""
    ### BEGIN SOLUTION
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))  # (N,) implicit rewards
    return float(np.logaddexp(0, -margin).mean())  # -log sigmoid(m) = log(1 + exp(-m)), never overflows
    ### END SOLUTION


# %%
check("dpo_loss")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The reward of a response is `beta * (policy - ref)`, the chosen one's and the rejected one's; the margin is the
# chosen reward minus the rejected one. The loss is small when the margin is large and positive.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `-np.log(1 / (1 + np.exp(-m)))` is right on paper, but `np.exp(500)` is `inf`. `np.logaddexp(0, -m)` is
# `log(e^0 + e^{-m})`, computed without overflow.
#
# </details>
#
# Still stuck? `solutions/09_dpo.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 3: its gradient
#
# With `d/dm [−log σ(m)] = −σ(−m)` and the chain rule through `m`, find `∂L/∂ log π(y^c_i)` and
# `∂L/∂ log π(y^r_i)`. The reference gets none: it is frozen.

# %%
def dpo_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """-> (d_chosen, d_rejected), each (N,): the DPO loss's gradient w.r.t. the policy's log-probabilities"""
    ### BEGIN SOLUTION
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    weight = np.exp(-np.logaddexp(0, margin))  # sigmoid(-m): how far the pair still is from the right order
    d_chosen = -beta * weight / len(margin)  # the mean over the N pairs
    return d_chosen, -d_chosen
    ### END SOLUTION


# %%
check("dpo_grads")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `∂m_i/∂ log π(y^c_i) = β` and `∂m_i/∂ log π(y^r_i) = −β`; the mean gives each pair a factor `1/N`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# So `d_chosen = −β σ(−m) / N` (negative: lowering the loss raises the chosen response) and
# `d_rejected = −d_chosen`. `σ(−m) = exp(−logaddexp(0, m))` stays finite for any m.
#
# </details>
#
# Still stuck? `solutions/09_dpo.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 4: back to the logits
#
# The model's backward pass starts from `dlogits`. Each row's `log π(response)` is a sum over its response
# positions of `log p(target)`, whose gradient w.r.t. that position's logits is `onehot(target) − softmax`.

# %%
def sequence_logprob_backward(dseq, logits, targets, loss_mask):
    """dseq: (B,) the loss's gradient w.r.t. each row's log p(response) -> dlogits: (B, T, V)"""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)  # (B, T, V)
    onehot = np.zeros_like(probs)
    np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
    weight = dseq[:, None] * loss_mask  # (B, T): each response position gets its row's gradient, the prompt none
    return weight[..., None] * (onehot - probs)  # d log p(target) / d logits = onehot - softmax
    ### END SOLUTION


# %%
check("sequence_logprob_backward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# A position outside the response is not in the sum, so its logits get no gradient at all.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Cross-entropy's gradient is `softmax − onehot`; `log p` is minus the cross-entropy, so its gradient is
# `onehot − softmax`, times `dseq[b]` at every response position of row b.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `weight = dseq[:, None] * loss_mask`, shape `(B, T)`; return `weight[..., None] * (onehot - probs)`, with
# `onehot` built by `np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)`.
#
# </details>
#
# Still stuck? `solutions/09_dpo.ipynb` holds a worked solution.

# %% [markdown]
# **Question 1.** At the first step the policy *is* the reference. What are the loss and the gradients then?
#
# <details><summary>Answer</summary>
#
# Every margin is 0, so the loss is `log 2 ≈ 0.693` and every pair's weight is `σ(0) = 1/2`:
# `d_chosen = −β/(2N)`, `d_rejected = +β/(2N)` for every pair alike. As training goes on, the weight `σ(−m)`
# shrinks for the pairs already in the right order, and the gradient goes to the pairs the policy still gets
# wrong. Without the reference (the margin `β (log π(y^c) − log π(y^r))`), a pair the base model already
# ranks right would start with a small weight and teach little, and nothing would hold the policy near where
# it started.
#
# </details>
#
# **Question 2.** Suppose `sequence_logprob` also counted the prompt's positions. Would the DPO loss of a
# causal decoder change?
#
# <details><summary>Answer</summary>
#
# Not through the prompt itself: the chosen and the rejected row share the prompt, and a causal model's
# logits at the prompt's positions cannot see the response, so the prompt adds the same number to both rows
# and cancels in the margin (its gradients cancel too). It still changes two things: the log-probability is
# no longer the response's (the `score` command and any length comparison read it), and the two rows are
# padded to one length, so "every position" includes padding targets that differ between the rows and do
# not cancel. The loss mask is what makes the number mean "the response".
#
# </details>

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: sequence_logprob sums log p(target) over the response's positions only
check.graded("response_only")

# %% tags=["graded"]
# Check 2: sequence_logprob stays exact on logits 1000 apart
check.graded("large_logits")

# %% tags=["graded"]
# Check 3: dpo_loss matches minilm's DPO loss
check.graded("loss_value")

# %% tags=["graded"]
# Check 4: dpo_loss is log 2 when the policy is the reference, and finite for a pair far in the wrong order
check.graded("loss_limits")

# %% tags=["graded"]
# Check 5: dpo_grads matches finite differences of the DPO loss
check.graded("gradient")

# %% tags=["graded"]
# Check 6: dpo_grads gives -beta/(2N) and +beta/(2N) when the policy is the reference
check.graded("gradient_at_the_start")

# %% tags=["graded"]
# Check 7: sequence_logprob_backward matches finite differences, and gives the prompt no gradient
check.graded("backward")
