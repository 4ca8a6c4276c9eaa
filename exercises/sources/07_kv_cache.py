# %% [markdown]
# # Exercise 07 — the KV cache: decode one token at a time without recomputing the past
#
# *Follows lesson 02 (`lessons/02_attention_masks.ipynb`), its section on the cache in a chat, and uses the
# cache-shaped causal mask from exercise 02.*
#
# Generating text means running the model once per new token. Recomputing the whole sequence every time
# costs work that grows with its length, every step. Under a **causal** mask the past never looks at the
# future, so the keys and values of earlier positions never change once computed: keep them (the *KV
# cache*) and compute only the new token's query, key and value. The lecture's point about chat is exactly
# this: a causal model reuses its cache turn after turn, a bidirectional encoder must re-encode the history.
#
# You write three pieces, one part each:
#
# | piece | input | output |
# |---|---|---|
# | `LayerKVCache.append(k_new, v_new)` | `(B, nh, T_new, hs)` each | all keys and all values so far, `(B, nh, T_past + T_new, hs)` each |
# | `cached_attention(q_new, k_new, v_new, cache)` | `(B, nh, T_new, hs)` each, a `LayerKVCache` | `out` `(B, nh, T_new, hs)`: the new positions attend over the past and themselves |
# | `greedy_decode(model, prompt, n_new)` | a `GPT`, `prompt` `(B, T0)` ids | `(B, T0 + n_new)`: the prompt and `n_new` greedily chosen tokens |
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/07_kv_cache.ipynb`.

# %%
import numpy as np

from minilm import layers, masks
from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("07_kv_cache", globals())

# %% [markdown]
# ## Part 1: the cache of one layer
#
# `GPT.forward(idx, kv_cache=cache)` reads a `ModelKVCache` (given below): one `LayerKVCache` per layer,
# and the number of positions held so far. In every layer it calls `append` on your `LayerKVCache` with
# the new positions' keys and values, and attends over what `append` returns.

# %%
class LayerKVCache:
    """The keys and values one attention layer has seen so far."""

    def __init__(self):
        self.k = None  # (B, nh, T_so_far, hs), None until the first append
        self.v = None

    def append(self, k_new, v_new):
        """k_new, v_new: (B, nh, T_new, hs) -> all keys, all values so far: (B, nh, T_so_far, hs) each"""
        ### BEGIN SOLUTION
        if self.k is None:
            self.k, self.v = k_new, v_new
        else:
            self.k = np.concatenate([self.k, k_new], axis=2)
            self.v = np.concatenate([self.v, v_new], axis=2)
        return self.k, self.v
        ### END SOLUTION


# %%
class ModelKVCache:
    """What GPT.forward(idx, kv_cache=...) reads: one LayerKVCache per layer, and the positions held so far."""

    def __init__(self, model):
        self.layers = [LayerKVCache() for _ in range(model.config.n_layer)]
        self.length = 0  # GPT.forward advances it by the number of tokens it is fed


# %%
check("LayerKVCache")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The time axis of `(B, nh, T, hs)` is axis 2: the cache grows along it, earlier positions first.
#
# </details>
# <details><summary>Hint 2</summary>
#
# The first append has nothing to join: keep `k_new` and `v_new` as they are. After that,
# `np.concatenate([self.k, k_new], axis=2)`, and the same for the values.
#
# </details>
#
# Still stuck? `solutions/07_kv_cache.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: attention over the cache
#
# The checks feed several new positions at a time after a cached prefix, as a chat does with each new message.

# %%
def cached_attention(q_new, k_new, v_new, cache):
    """q_new, k_new, v_new: (B, nh, T_new, hs) -> out: (B, nh, T_new, hs), over all positions cached so far"""
    ### BEGIN SOLUTION
    k, v = cache.append(k_new, v_new)  # (B, nh, T_past + T_new, hs)
    mask = masks.causal_mask(q_new.shape[2], k.shape[2])  # the new queries are the last positions
    return layers.attention_forward(q_new, k, v, mask)[0]
    ### END SOLUTION


# %%
check("cached_attention")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Append the new keys and values first: the new positions attend over the past *and* themselves.
# Attention itself is `layers.attention_forward(q, k, v, mask)`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# The mask has one row per new query and one column per key held, `(T_new, T_past + T_new)`. The new
# queries are the *last* `T_new` positions, so new query `i` sits at position `T_past + i`.
#
# </details>
# <details><summary>Hint 3</summary>
#
# That is the cache-shaped causal mask of exercise 02: `masks.causal_mask(T_new, T_past + T_new)`, where
# `T_past + T_new` is the length of the keys that `append` returned.
#
# </details>
#
# Still stuck? `solutions/07_kv_cache.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 3: greedy decoding that feeds each token once

# %%
def greedy_decode(model, prompt, n_new):
    """prompt: (B, T0) ids -> (B, T0 + n_new) ids, feeding the model each token only once."""
    ### BEGIN SOLUTION
    cache = ModelKVCache(model)
    tokens = [prompt]
    logits = model.forward(prompt, kv_cache=cache)  # (B, T0, V): the whole prompt, once
    for _ in range(n_new):
        next_token = logits[:, -1].argmax(axis=-1)[:, None]  # (B, 1)
        tokens.append(next_token)
        logits = model.forward(next_token, kv_cache=cache)  # (B, 1, V): only the new token
    return np.concatenate(tokens, axis=1)
    ### END SOLUTION


# %%
check("greedy_decode")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Greedy means the next token is the `argmax` of the last position's logits, `logits[:, -1]`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Build **one** `ModelKVCache(model)` before the loop and pass that same cache to every call: with a
# cache holding `cache.length` positions, `GPT.forward(idx, kv_cache=cache)` numbers the new tokens from
# there. A new cache at every step forgets the past.
#
# </details>
# <details><summary>Hint 3</summary>
#
# Feed the whole prompt once, `model.forward(prompt, kv_cache=cache)`; then at each step only the newest
# token, shape `(B, 1)`: `next_token = logits[:, -1].argmax(axis=-1)[:, None]`.
#
# </details>
#
# Still stuck? `solutions/07_kv_cache.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: the cache grows along the time axis and keeps everything in order
check.graded("cache_grows")

# %% tags=["graded"]
# Check 2: inside a real GPT, your cache gives the same logits as running the whole sequence
check.graded("cache_in_gpt")

# %% tags=["graded"]
# Check 3: attention over the cache, fed in chunks of 3, 2, 1 and 2 positions, equals full recomputation
check.graded("cached_attention_chunks")

# %% tags=["graded"]
# Check 4: greedy decoding with the cache gives the tokens that recomputing everything gives
check.graded("greedy_tokens")

# %% tags=["graded"]
# Check 5: greedy decoding builds one cache and feeds the model each token once
check.graded("decoding_feeds_each_token_once")
