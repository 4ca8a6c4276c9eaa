# %% [markdown]
# # Exercise 02 — attention masks as boolean arrays
#
# *Follows lesson 02 (`lessons/02_attention_masks.ipynb`).*
#
# Lesson 02 showed that the encoder, the decoder and the prefix-LM run **one** attention function and differ
# only in which positions each query may look at. That pattern is a boolean array `mask` of shape
# `(T_q, T_k)`: `mask[i, j]` is `True` when query position `i` may attend to key position `j`.
# Here you build the four patterns the lecture draws, one part each:
#
# | function | shape | who sees whom |
# |---|---|---|
# | `bidirectional_mask(T_q, T_k=None)` | `(T_q, T_k)` | everyone sees everyone (the encoder) |
# | `causal_mask(T_q, T_k=None)` | `(T_q, T_k)` | position `i` sees `0..i`, never the future (the decoder) |
# | `prefix_lm_mask(T, n_prefix)` | `(T, T)` | the first `n_prefix` positions (the input) see each other both ways; the rest is causal |
# | `cross_mask(T_target, T_input)` | `(T_target, T_input)` | every target position sees every input position (encoder–decoder cross-attention) |
#
# `T_k=None` means `T_k = T_q`. Return `dtype=bool` arrays: attention uses the mask to choose, not to multiply.
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or the smallest size where
# your mask is wrong and the first position that sees too much or too little. Stuck? Open the hints under
# it one at a time. Grade it: `python -m minilm grade exercises/02_attention_masks.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("02_attention_masks", globals())

# %% [markdown]
# ## Part 1: the bidirectional mask

# %%
def bidirectional_mask(T_q, T_k=None):
    """Every query sees every key: all True, (T_q, T_k)."""
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    return np.ones((T_q, T_k), dtype=bool)
    ### END SOLUTION


# %%
check("bidirectional_mask")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Every entry is `True`; only the shape needs thought: `T_k=None` means the same number of keys as queries.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `T_k = T_q if T_k is None else T_k`, then `np.ones((T_q, T_k), dtype=bool)`.
#
# </details>
#
# Still stuck? `solutions/02_attention_masks.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the causal mask, also with a KV cache
#
# Query `i` sees keys `0..i`. **The KV-cache case:** when a cache already holds `T_k - T_q` earlier
# positions, the `T_q` queries are the *last* `T_q` positions, so query row `i` sits at absolute position
# `i + (T_k - T_q)` and may see keys `0 .. i + (T_k - T_q)`. Exercise 07 needs this.

# %%
def causal_mask(T_q, T_k=None):
    """Query i (at absolute position i + T_k - T_q) sees keys 0 .. i + T_k - T_q. (T_q, T_k)"""
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    return np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q)
    ### END SOLUTION


# %%
check("causal_mask")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The square case is a lower triangle: row `i` is `True` in columns `0..i`, the diagonal included.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `np.tril(a, k)` keeps the entries on and below the `k`-th diagonal (`k=0` the main one, `k=1` one above it).
#
# </details>
# <details><summary>Hint 3</summary>
#
# With a cache, row `i` must reach column `i + (T_k - T_q)`: that is the diagonal `k = T_k - T_q`, so
# `np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q)`.
#
# </details>
#
# Still stuck? `solutions/02_attention_masks.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 3: the prefix-LM mask

# %%
def prefix_lm_mask(T, n_prefix):
    """The first n_prefix positions see each other both ways; every later position is causal. (T, T)"""
    ### BEGIN SOLUTION
    mask = causal_mask(T)
    mask[:, :n_prefix] = True  # every position may read the whole prefix
    return mask
    ### END SOLUTION


# %%
check("prefix_lm_mask")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Start from the causal mask: what changes is only which *keys* of the prefix each position may see.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Every position, in the prefix or after it, may read every prefix position: the first `n_prefix` columns
# are all `True`. The prefix still must not see the positions after it.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `mask = causal_mask(T)`, then `mask[:, :n_prefix] = True`.
#
# </details>
#
# Still stuck? `solutions/02_attention_masks.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 4: the cross-attention mask

# %%
def cross_mask(T_target, T_input):
    """Every target position (query) sees every input position (key). (T_target, T_input)"""
    ### BEGIN SOLUTION
    return bidirectional_mask(T_target, T_input)
    ### END SOLUTION


# %%
check("cross_mask")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# In cross-attention the queries come from the target (the decoder) and the keys from the input (the encoder).
#
# </details>
# <details><summary>Hint 2</summary>
#
# Every target position may read the whole input, so it is all `True`, of shape `(T_target, T_input)`:
# you already wrote that function in part 1.
#
# </details>
#
# Still stuck? `solutions/02_attention_masks.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: the bidirectional mask lets everyone see everyone
check.graded("bidirectional")

# %% tags=["graded"]
# Check 2: the causal mask lets each position see itself and the past, never the future
check.graded("causal")

# %% tags=["graded"]
# Check 3: with a KV cache, the queries are the last T_q of T_k positions
check.graded("causal_with_cache")

# %% tags=["graded"]
# Check 4: in real attention, your causal mask keeps every output blind to the future
check.graded("causal_in_attention")

# %% tags=["graded"]
# Check 5: the prefix-LM mask is bidirectional over the prefix and causal after it
check.graded("prefix_lm")

# %% tags=["graded"]
# Check 6: cross-attention lets every target position see every input position
check.graded("cross")
