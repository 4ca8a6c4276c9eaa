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
# You will write three functions:
#
# | function | input | output |
# |---|---|---|
# | `softmax(logits)` | `logits` `(..., V)` | `probs`, same shape, each row sums to 1 |
# | `cross_entropy(logits, targets)` | `logits` `(B, T, V)`, `targets` `(B, T)` ints | the mean of $-\log p(\text{target})$ over the $B \cdot T$ positions, a float |
# | `cross_entropy_backward(logits, targets)` | same | `dlogits` `(B, T, V)`, the gradient of that mean |
#
# **Two things that bite.**
# 1. `exp(1000)` overflows to `inf`, and real logits can be that large. Softmax does not change when you
#    subtract the same number from every logit of a row, so subtract the row's maximum first: the largest
#    exponent is then `exp(0) = 1`.
# 2. `-log(softmax(...)[target])` fails when the target's probability underflows to 0. Take the log
#    analytically instead: $-\log p_t = \log \sum_j e^{z_j} - z_t$, computed after the same max-subtraction
#    (the **log-sum-exp** trick).
#
# **The gradient** (lesson 01 derives it): for one position, $\partial(-\log p_t)/\partial z = p - \text{onehot}(t)$.
# The loss is a *mean* over $B \cdot T$ positions, so each position's gradient is divided by $B \cdot T$.
#
# *Hint:* `np.take_along_axis(x, targets[..., None], axis=-1)` picks each position's target entry; never
# build a one-hot matrix, subtract 1 at the target entries instead. Use `xp = xp_of(logits)` instead of `np`
# inside your functions if you want them to run on a GPU too (optional here).
#
# When you are done, run the whole notebook, or grade it from a terminal:
# `python -m minilm grade exercises/01_softmax_cross_entropy.ipynb`.

# %%
import numpy as np

from minilm import layers
from minilm.grading import gradient_problems

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs

# %%
def softmax(logits):
    """logits: (..., V) -> probs: (..., V), softmax over the last axis, stable for large logits."""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(axis=-1, keepdims=True)  # the largest entry of each row is now 0
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)
    ### END SOLUTION


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
def cross_entropy_backward(logits, targets):
    """logits: (B, T, V), targets: (B, T) ints -> dlogits: (B, T, V), the gradient of cross_entropy."""
    ### BEGIN SOLUTION
    B, T, V = logits.shape
    dlogits = softmax(logits)  # p
    b, t = np.meshgrid(np.arange(B), np.arange(T), indexing="ij")
    dlogits[b, t, targets] -= 1.0  # p - onehot(target)
    return dlogits / (B * T)  # the loss is a mean over B*T positions
    ### END SOLUTION


# %% [markdown]
# ## Graded checks
#
# Each cell below checks one property with fresh random inputs. Run them; a failing one says what is wrong.

# %% tags=["graded"]
# Check 1: softmax gives rows of probabilities that match the reference
logits = rng.normal(size=(3, 4, 7))
probs = softmax(logits)
assert np.shape(probs) == logits.shape, f"softmax must keep the shape {logits.shape}, got {np.shape(probs)}"
assert np.all(probs >= 0), "probabilities must be non-negative"
assert np.allclose(probs.sum(axis=-1), 1.0), f"rows of softmax must sum to 1, got row sums {probs.sum(axis=-1).ravel()[:4].round(4)} ..."
np.testing.assert_allclose(probs, layers.softmax(logits), rtol=1e-10, atol=1e-12,
                           err_msg="softmax differs from the reference minilm.layers.softmax")

# %% tags=["graded"]
# Check 2: softmax stays finite on large logits
p = softmax(np.array([1000.0, 1000.0]))
assert np.all(np.isfinite(p)), f"softmax([1000, 1000]) must be [0.5, 0.5], got {p}: exp(1000) overflows, subtract each row's max first"
logits = rng.normal(size=(4, 9)) * 50 + rng.uniform(500, 2000)
np.testing.assert_allclose(softmax(logits), layers.softmax(logits), rtol=1e-10, atol=1e-12,
                           err_msg="softmax of large logits differs from the reference")

# %% tags=["graded"]
# Check 3: cross-entropy is the mean of -log p(target)
B, T, V = 2, 5, 11
logits = rng.normal(size=(B, T, V)) * 2
targets = rng.integers(0, V, size=(B, T))
expected = float(layers.softmax_cross_entropy_forward(logits, targets)[0])
got = cross_entropy(logits, targets)
assert np.ndim(got) == 0, f"cross_entropy must return one number (the mean over positions), got shape {np.shape(got)}"
assert np.isclose(got, expected, rtol=1e-10), f"cross-entropy must be {expected:.6f} (the mean of -log p(target) over B*T positions), got {float(got):.6f}"

# %% tags=["graded"]
# Check 4: cross-entropy stays finite on large logits (log-sum-exp)
got = cross_entropy(np.array([[[0.0, 1000.0]]]), np.array([[0]]))
assert np.isfinite(got) and np.isclose(got, 1000.0), (
    f"logits [0, 1000] with target 0 must give loss 1000 (log-sum-exp: log(e^0 + e^1000) - 0), got {got}: "
    "p(target) underflows to 0, so compute -log p as logsumexp(z) - z_target")
logits = rng.normal(size=(2, 3, 6)) * 300
targets = rng.integers(0, 6, size=(2, 3))
expected = float(layers.softmax_cross_entropy_forward(logits, targets)[0])
assert np.isclose(cross_entropy(logits, targets), expected, rtol=1e-10), (
    f"cross-entropy of logits spread over ±1000 must be {expected:.4f}, got {cross_entropy(logits, targets)}")

# %% tags=["graded"]
# Check 5: the gradient is (p - onehot) / (B*T), as finite differences confirm
B, T, V = 2, 3, 5
logits = rng.normal(size=(B, T, V))
targets = rng.integers(0, V, size=(B, T))
dlogits = cross_entropy_backward(logits, targets)
assert np.shape(dlogits) == logits.shape, f"dlogits must have the shape of logits {logits.shape}, got {np.shape(dlogits)}"
assert np.allclose(dlogits.sum(axis=-1), 0.0), "each position's gradient must sum to 0 over the vocabulary (p and onehot both sum to 1)"
problems = gradient_problems(lambda: cross_entropy(logits, targets), {"logits": logits}, {"logits": dlogits})
assert not problems, "; ".join(problems)
