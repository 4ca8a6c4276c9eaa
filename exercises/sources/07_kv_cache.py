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
# You write three pieces:
#
# | piece | input | output |
# |---|---|---|
# | `LayerKVCache.append(k_new, v_new)` | `(B, nh, T_new, hs)` each | all keys and all values so far, `(B, nh, T_past + T_new, hs)` each |
# | `cached_attention(q_new, k_new, v_new, cache)` | `(B, nh, T_new, hs)` each, a `LayerKVCache` | `out` `(B, nh, T_new, hs)`: the new positions attend over the past and themselves |
# | `greedy_decode(model, prompt, n_new)` | a `GPT`, `prompt` `(B, T0)` ids | `(B, T0 + n_new)`: the prompt and `n_new` greedily chosen tokens |
#
# **Hints.**
# - `np.concatenate([old, new], axis=2)` grows the time axis; the first append has nothing to join.
# - The `T_new` new queries are the *last* `T_new` of the `T_past + T_new` positions: that is
#   `masks.causal_mask(T_new, T_past + T_new)` (exercise 02). Attention itself is `layers.attention_forward`.
# - `GPT.forward(idx, kv_cache=cache)` does the same inside the model: with a cache holding `cache.length`
#   positions it numbers the new tokens from there, builds that mask, and calls `append` on your
#   `LayerKVCache` in every layer. So `greedy_decode` feeds the prompt once, then only the newest token.
#   Greedy means the next token is the `argmax` of the last position's logits.
#
# Grade it: `python -m minilm grade exercises/07_kv_cache.ipynb`.

# %%
import numpy as np

from minilm import GPT, GPTConfig, layers, masks

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs

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
def cached_attention(q_new, k_new, v_new, cache):
    """q_new, k_new, v_new: (B, nh, T_new, hs) -> out: (B, nh, T_new, hs), over all positions cached so far"""
    ### BEGIN SOLUTION
    k, v = cache.append(k_new, v_new)  # (B, nh, T_past + T_new, hs)
    mask = masks.causal_mask(q_new.shape[2], k.shape[2])  # the new queries are the last positions
    return layers.attention_forward(q_new, k, v, mask)[0]
    ### END SOLUTION


# %%
class ModelKVCache:
    """What GPT.forward(idx, kv_cache=...) reads: one LayerKVCache per layer, and the positions held so far."""

    def __init__(self, model):
        self.layers = [LayerKVCache() for _ in range(model.config.n_layer)]
        self.length = 0  # GPT.forward advances it by the number of tokens it is fed


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


# %% [markdown]
# ## Graded checks

# %% tags=["graded"]
# Check 1: the cache grows along the time axis and keeps everything in order
B, nh, hs = 2, 3, 4
cache = LayerKVCache()
ks, vs = [], []
for T_new in (3, 1, 2):
    ks.append(rng.normal(size=(B, nh, T_new, hs)))
    vs.append(rng.normal(size=(B, nh, T_new, hs)))
    k, v = cache.append(ks[-1], vs[-1])
    held = sum(x.shape[2] for x in ks)
    assert np.shape(k) == (B, nh, held, hs), f"after appending {[x.shape[2] for x in ks]} positions the keys must have shape {(B, nh, held, hs)}, got {np.shape(k)}"
    assert np.array_equal(k, np.concatenate(ks, axis=2)) and np.array_equal(v, np.concatenate(vs, axis=2)), \
        "the cache must return the earlier keys/values followed by the new ones, in order"

# %% tags=["graded"]
# Check 2: attention over the cache, prompt first and then one token at a time, equals full recomputation
B, nh, T, hs = 2, 2, 7, 4
q, k, v = (rng.normal(size=(B, nh, T, hs)) for _ in range(3))
full = layers.attention_forward(q, k, v, masks.causal_mask(T))[0]
cache, start = LayerKVCache(), 0
for step, T_new in enumerate((4, 1, 1, 1)):
    part = slice(start, start + T_new)
    out = cached_attention(q[:, :, part], k[:, :, part], v[:, :, part], cache)
    assert np.shape(out) == (B, nh, T_new, hs), f"step {step} fed {T_new} new positions: the output must have shape {(B, nh, T_new, hs)}, got {np.shape(out)}"
    bad = np.abs(out - full[:, :, part]).max(axis=(0, 1, 3)) > 1e-10  # (T_new,)
    assert not bad.any(), (f"step {step} (positions {start}..{start + T_new - 1}): the output at position "
                           f"{start + int(np.argmax(bad))} differs from full recomputation with the causal mask")
    start += T_new

# %% tags=["graded"]
# Check 3: inside a real GPT, your cache gives the same logits as running the whole sequence
config = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, d_model=16, dtype="float64")
model = GPT(config, seed=int(rng.integers(2**31)))
seq = rng.integers(0, config.vocab_size, size=(2, 9))
full = model.forward(seq)  # (B, 9, V)
cache = ModelKVCache(model)
steps = [model.forward(seq[:, :4], kv_cache=cache)] + [model.forward(seq[:, t:t + 1], kv_cache=cache) for t in range(4, 9)]
err = np.abs(np.concatenate(steps, axis=1) - full).max(axis=(0, 2))  # (9,)
assert err.max() < 1e-10, f"with your cache the logits at position {int(np.argmax(err > 1e-10))} differ from full recomputation by {err.max():.2g}"

# %% tags=["graded"]
# Check 4: greedy decoding with the cache gives the tokens that recomputing everything gives, feeding each token once
model = GPT(config, seed=int(rng.integers(2**31)))
for p in model.params.values():  # sharpen the random model's preferences, so that no two logits tie
    p += rng.normal(size=p.shape) * 0.3
prompt = rng.integers(0, config.vocab_size, size=(2, 3))
expected = prompt
for _ in range(8):  # the slow way: the whole sequence every step
    expected = np.concatenate([expected, model.forward(expected)[:, -1].argmax(axis=-1)[:, None]], axis=1)
fed = []  # how many tokens each call of model.forward received
forward = model.forward


def counting_forward(idx, **kwargs):
    fed.append(np.shape(idx)[1])
    return forward(idx, **kwargs)


model.forward = counting_forward
got = greedy_decode(model, prompt, 8)
assert np.shape(got) == expected.shape, f"a prompt of 3 tokens plus 8 new ones must give shape {expected.shape}, got {np.shape(got)}"
assert np.array_equal(got, expected), f"greedy decoding must give {expected[0].tolist()} (first row), got {np.asarray(got)[0].tolist()}"
assert fed[1:] and max(fed[1:]) == 1, f"after the prompt, each step must feed the model only the newest token (the cache holds the rest); your calls fed {fed} tokens"
