# %% [markdown]
# # Exercise 02 — attention masks as boolean arrays
#
# *Follows lesson 02 (`lessons/02_attention_masks.ipynb`).*
#
# Lesson 02 showed that the encoder, the decoder and the prefix-LM run **one** attention function and differ
# only in which positions each query may look at. That pattern is a boolean array `mask` of shape
# `(T_q, T_k)`: `mask[i, j]` is `True` when query position `i` may attend to key position `j`.
# Here you build the four patterns the lecture draws:
#
# | function | shape | who sees whom |
# |---|---|---|
# | `bidirectional_mask(T_q, T_k=None)` | `(T_q, T_k)` | everyone sees everyone (the encoder) |
# | `causal_mask(T_q, T_k=None)` | `(T_q, T_k)` | position `i` sees `0..i`, never the future (the decoder) |
# | `prefix_lm_mask(T, n_prefix)` | `(T, T)` | the first `n_prefix` positions (the input) see each other both ways; the rest is causal |
# | `cross_mask(T_target, T_input)` | `(T_target, T_input)` | every target position sees every input position (encoder–decoder cross-attention) |
#
# `T_k=None` means `T_k = T_q`. **The KV-cache case:** when a cache already holds `T_k - T_q` earlier
# positions, the `T_q` queries are the *last* `T_q` positions, so query row `i` sits at absolute position
# `i + (T_k - T_q)` and may see keys `0 .. i + (T_k - T_q)`. Exercise 07 needs this.
#
# *Hint:* `np.tril(a, k)` keeps the entries on and below the `k`-th diagonal. Return `dtype=bool` arrays:
# attention uses the mask to choose, not to multiply.
#
# Grade it: `python -m minilm grade exercises/02_attention_masks.ipynb`.

# %%
import numpy as np

from minilm import layers, masks
from minilm.grading import attention_problem, mask_problem

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs

# %%
def bidirectional_mask(T_q, T_k=None):
    """Every query sees every key: all True, (T_q, T_k)."""
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    return np.ones((T_q, T_k), dtype=bool)
    ### END SOLUTION


# %%
def causal_mask(T_q, T_k=None):
    """Query i (at absolute position i + T_k - T_q) sees keys 0 .. i + T_k - T_q. (T_q, T_k)"""
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    return np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q)
    ### END SOLUTION


# %%
def prefix_lm_mask(T, n_prefix):
    """The first n_prefix positions see each other both ways; every later position is causal. (T, T)"""
    ### BEGIN SOLUTION
    mask = causal_mask(T)
    mask[:, :n_prefix] = True  # every position may read the whole prefix
    return mask
    ### END SOLUTION


# %%
def cross_mask(T_target, T_input):
    """Every target position (query) sees every input position (key). (T_target, T_input)"""
    ### BEGIN SOLUTION
    return bidirectional_mask(T_target, T_input)
    ### END SOLUTION


# %% [markdown]
# ## Graded checks
#
# Each check tries many sizes and reports the **smallest** one where your mask is wrong, with the first
# position that sees too much or too little.

# %% tags=["graded"]
# Check 1: the causal mask lets each position see itself and the past, never the future
for T in range(1, 9):
    problem = mask_problem(causal_mask(T), masks.causal_mask(T), f"causal_mask({T})")
    assert not problem, problem

# %% tags=["graded"]
# Check 2: with a KV cache, the queries are the last T_q of T_k positions
for T_k in range(1, 8):
    for T_q in range(1, T_k + 1):
        problem = mask_problem(causal_mask(T_q, T_k), masks.causal_mask(T_q, T_k), f"causal_mask({T_q}, {T_k})")
        assert not problem, problem

# %% tags=["graded"]
# Check 3: the bidirectional mask lets everyone see everyone
for T_q, T_k in [(1, 1), (3, 3), (2, 5), (5, 2)] + [tuple(rng.integers(1, 12, size=2))]:
    problem = mask_problem(bidirectional_mask(T_q, T_k), masks.bidirectional_mask(T_q, T_k), f"bidirectional_mask({T_q}, {T_k})")
    assert not problem, problem
problem = mask_problem(bidirectional_mask(4), masks.bidirectional_mask(4), "bidirectional_mask(4)")
assert not problem, problem

# %% tags=["graded"]
# Check 4: the prefix-LM mask is bidirectional over the prefix and causal after it
for T in range(1, 8):
    for n_prefix in range(T + 1):
        problem = mask_problem(prefix_lm_mask(T, n_prefix), masks.prefix_lm_mask(T, n_prefix), f"prefix_lm_mask({T}, n_prefix={n_prefix})")
        assert not problem, problem

# %% tags=["graded"]
# Check 5: cross-attention lets every target position see every input position
for T_target, T_input in [(1, 1), (2, 3), (4, 2)] + [tuple(rng.integers(1, 12, size=2))]:
    got = cross_mask(T_target, T_input)
    problem = mask_problem(got, np.ones((T_target, T_input), dtype=bool), f"cross_mask({T_target}, {T_input})")
    assert not problem, problem + " (queries come from the target, keys from the input)"

# %% tags=["graded"]
# Check 6: in real attention, your causal mask keeps every output blind to the future
B, nh, T, hs = 1, 2, 6, 4
q, k, v = (rng.normal(size=(B, nh, T, hs)) for _ in range(3))
mask = causal_mask(T)
out = layers.attention_forward(q, k, v, mask)[0]
sees = np.zeros((T, T), dtype=bool)  # sees[i, j]: changing key/value j changes the output at i
for j in range(T):
    k2, v2 = k.copy(), v.copy()
    k2[:, :, j] += 1.0
    v2[:, :, j] += 1.0
    changed = np.abs(layers.attention_forward(q, k2, v2, mask)[0] - out).max(axis=(0, 1, 3)) > 1e-12  # (T,)
    sees[:, j] = changed
problem = attention_problem(sees, masks.causal_mask(T), "causal attention")
assert not problem, problem
