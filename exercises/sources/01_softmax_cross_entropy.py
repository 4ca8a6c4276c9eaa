# %% [markdown]
# # Exercise 01 — softmax and cross-entropy, forward and backward
#
# *Follows lesson 01 (`lessons/01_next_token_loss.ipynb`).*
#
# A language model ends in a vector of **logits**, one score per word of the vocabulary. The softmax turns
# them into probabilities, and the loss at one position is $-\log p(\text{the word that actually came
# next})$: the cross-entropy. Training lowers it by pushing $p(\text{actual next word})$ towards 1. Every
# gradient in the model starts here, so this is the first piece you build.
#
# You will write three functions, one part each:
#
# | function | input | output |
# |---|---|---|
# | `softmax(logits)` | `logits` `(..., V)` | `probs`, same shape, each row sums to 1 |
# | `cross_entropy(logits, targets)` | `logits` `(B, T, V)`, `targets` `(B, T)` ints | the mean of $-\log p(\text{target})$ over the $B \cdot T$ positions, a float |
# | `cross_entropy_backward(logits, targets)` | same | `dlogits` `(B, T, V)`, the gradient of that mean |
#
# **Two things that bite.**
# 1. `exp(1000)` overflows to `inf`, and real logits can be that large.
# 2. `-log(softmax(...)[target])` fails when the target's probability underflows to 0.
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Use `xp = xp_of(logits)` instead of `np` inside your functions if you
# want them to run on a GPU too (optional here). When you are done, run the whole notebook, or grade it from
# a terminal: `python -m minilm grade exercises/01_softmax_cross_entropy.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("01_softmax_cross_entropy", globals())

# %% [markdown]
# ## Part 1: softmax
#
# $\text{softmax}(z)_i = e^{z_i} / \sum_j e^{z_j}$ over the last axis, for every row at once, and finite
# for logits like 1000.

# %%
def softmax(logits):
    """logits: (..., V) -> probs: (..., V), softmax over the last axis, stable for large logits."""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(axis=-1, keepdims=True)  # the largest entry of each row is now 0
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)
    ### END SOLUTION


# %%
check("softmax")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Softmax does not change when you add the same number to every logit of a row: the factor $e^c$ cancels
# between the numerator and the sum.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Subtract each row's maximum before `np.exp`: the largest exponent is then `exp(0) = 1`, so nothing
# overflows. `logits.max(axis=-1, keepdims=True)` keeps the axis, so the subtraction broadcasts per row.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `e = np.exp(logits - logits.max(axis=-1, keepdims=True))`, then divide `e` by its sum over the same
# axis, again with `keepdims=True`.
#
# </details>
#
# Still stuck? `solutions/01_softmax_cross_entropy.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: cross-entropy
#
# The mean over the $B \cdot T$ positions of $-\log p(\text{target})$, finite even when $p(\text{target})$
# is too small for a float.

# %%
def cross_entropy(logits, targets):
    """logits: (B, T, V), targets: (B, T) ints -> mean over positions of -log p(target), a float."""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V)
    log_sum_exp = np.log(np.exp(shifted).sum(axis=-1))  # (B, T)
    target_logit = np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]  # (B, T)
    return float((log_sum_exp - target_logit).mean())
    ### END SOLUTION


# %%
check("cross_entropy")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Take the log analytically instead of computing $p$ first: $-\log p_t = \log \sum_j e^{z_j} - z_t$.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Compute it after the same max-subtraction as the softmax (the **log-sum-exp** trick): with
# `shifted = logits - max`, $-\log p_t$ = `log(exp(shifted).sum(-1)) - shifted[target]`.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]` picks each position's target entry,
# shape `(B, T)`. Return `float(...mean())` of the `(B, T)` losses.
#
# </details>
#
# Still stuck? `solutions/01_softmax_cross_entropy.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 3: the gradient
#
# Lesson 01 derives it: for one position, $\partial(-\log p_t)/\partial z = p - \text{onehot}(t)$.

# %%
def cross_entropy_backward(logits, targets):
    """logits: (B, T, V), targets: (B, T) ints -> dlogits: (B, T, V), the gradient of cross_entropy."""
    ### BEGIN SOLUTION
    B, T, V = logits.shape
    dlogits = softmax(logits)  # p
    b, t = np.meshgrid(np.arange(B), np.arange(T), indexing="ij")
    dlogits[b, t, targets] -= 1.0  # p - onehot(target)
    return dlogits / (B * T)  # the loss is a mean over B*T positions
    ### END SOLUTION


# %%
check("cross_entropy_backward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The loss is a *mean* over $B \cdot T$ positions, so each position's gradient is divided by $B \cdot T$.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Start from `p = softmax(logits)`; never build a one-hot matrix, subtract 1 at the target entries instead.
#
# </details>
# <details><summary>Hint 3</summary>
#
# With `b, t = np.meshgrid(np.arange(B), np.arange(T), indexing="ij")`, `p[b, t, targets] -= 1` subtracts 1
# at every position's target; then divide by `B * T`.
#
# </details>
#
# Still stuck? `solutions/01_softmax_cross_entropy.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: softmax gives rows of probabilities that match the reference
check.graded("softmax_rows")

# %% tags=["graded"]
# Check 2: softmax stays finite on large logits
check.graded("softmax_large_logits")

# %% tags=["graded"]
# Check 3: cross-entropy is the mean of -log p(target)
check.graded("cross_entropy_value")

# %% tags=["graded"]
# Check 4: cross-entropy stays finite on large logits (log-sum-exp)
check.graded("cross_entropy_large_logits")

# %% tags=["graded"]
# Check 5: the gradient is (p - onehot) / (B*T)
check.graded("gradient")
