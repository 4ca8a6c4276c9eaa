# %% [markdown]
# # Exercise 04 — multi-head attention under a mask, forward and backward
#
# *Follows lesson 02 (`lessons/02_attention_masks.ipynb`) and exercise 02.*
#
# Attention is how positions talk to each other: each query position takes a weighted average of the
# value vectors of the key positions its mask lets it see, weighted by how well its query matches their keys.
#
# $$S = \frac{Q K^\top}{\sqrt{hs}},\qquad S_{ij} \leftarrow -\infty \text{ where } \text{mask}_{ij} = \text{False},\qquad
#   A = \text{softmax}_j(S),\qquad \text{out} = A V$$
#
# **Multi-head** means the channels are split into `nh` heads of size `hs` that attend independently; the
# arrays already carry a head axis, and one batched matrix product (`@` on 4-D arrays) does every batch
# element and every head at once, with no Python loop.
#
# | function | input | output |
# |---|---|---|
# | `attention_forward(q, k, v, mask)` | `q` `(B, nh, Tq, hs)`, `k`, `v` `(B, nh, Tk, hs)`, `mask` bool `(Tq, Tk)` | `out` `(B, nh, Tq, hs)`, `cache` |
# | `attention_backward(dout, cache)` | `dout` `(B, nh, Tq, hs)` | `dq` `(B, nh, Tq, hs)`, `dk`, `dv` `(B, nh, Tk, hs)` |
#
# You may use `softmax` from `minilm.layers` (you built it in exercise 01). After each part, run its
# `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open the hints under it one at
# a time. Grade it: `python -m minilm grade exercises/04_attention.ipynb`.

# %%
import numpy as np

from minilm import layers
from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("04_attention", globals())

# %% [markdown]
# ## Part 1: the forward pass

# %%
def attention_forward(q, k, v, mask):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), mask: bool (Tq, Tk) -> out: (B, nh, Tq, hs), cache"""
    ### BEGIN SOLUTION
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = (q @ k.swapaxes(-1, -2)) * scale  # (B, nh, Tq, Tk)
    scores = np.where(mask, scores, -1e30)  # a masked key gets weight exp(-1e30) = 0
    att = layers.softmax(scores)  # (B, nh, Tq, Tk)
    return att @ v, (q, k, v, att, scale)
    ### END SOLUTION


# %%
check("attention_forward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `k.swapaxes(-1, -2)` transposes the last two axes of a 4-D array, so `q @ k.swapaxes(-1, -2)` is
# `(B, nh, Tq, Tk)`: one score per query and key. Divide by $\sqrt{hs}$, the size of one head.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Mask the *scores*, before the softmax, with `np.where(mask, S, -1e30)`: a huge negative number, so `exp`
# gives exactly 0 (unlike `-inf` it cannot make a NaN). Multiplying the scores by the mask is *not* the
# same: a score of 0 still gets weight.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `att = layers.softmax(scores)` over the last axis (the keys), then `out = att @ v`. Keep what the
# backward needs in the cache: `q`, `k`, `v`, `att` and the scale.
#
# </details>
#
# Still stuck? `solutions/04_attention.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the backward pass

# %%
def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq: (B, nh, Tq, hs), dk, dv: (B, nh, Tk, hs)"""
    ### BEGIN SOLUTION
    q, k, v, att, scale = cache
    dv = att.swapaxes(-1, -2) @ dout  # (B, nh, Tk, hs)
    datt = dout @ v.swapaxes(-1, -2)  # (B, nh, Tq, Tk)
    dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True)) * scale  # softmax backward, then the scale
    dq = dscores @ k  # (B, nh, Tq, hs)
    dk = dscores.swapaxes(-1, -2) @ q  # (B, nh, Tk, hs)
    return dq, dk, dv
    ### END SOLUTION


# %%
check("attention_backward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Walk the forward pass in reverse: `out = A V`, then the softmax, then the scaled product `Q Kᵀ`. Check
# every shape: with `Tq ≠ Tk` a missing transpose cannot hide.
#
# </details>
# <details><summary>Hint 2</summary>
#
# From `out = A V`: `dV = Aᵀ dout` and `dA = dout Vᵀ`. A masked entry of `A` is 0, so no gradient flows
# through it without any extra step.
#
# </details>
# <details><summary>Hint 3</summary>
#
# The softmax backward, row by row: `dS = A ⊙ (dA − Σ_j A_j dA_j)`; then `dQ = dS K / √hs` and
# `dK = dSᵀ Q / √hs`.
#
# </details>
#
# Still stuck? `solutions/04_attention.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: the forward pass matches the reference under every mask
check.graded("forward")

# %% tags=["graded"]
# Check 2: a masked key has no influence at all, and a visible one does
check.graded("masked_keys")

# %% tags=["graded"]
# Check 3: the backward pass matches finite differences under the causal mask
check.graded("backward_causal")

# %% tags=["graded"]
# Check 4: ... and with fewer queries than keys (2 new positions over 5), where shapes expose a missing transpose
check.graded("backward_cached")
