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
# **Hints.**
# - `k.swapaxes(-1, -2)` transposes the last two axes of a 4-D array.
# - Mask with `np.where(mask, S, -1e30)` (a huge negative number, so `exp` gives exactly 0; unlike `-inf` it
#   cannot make a NaN). Multiplying the scores by the mask is *not* the same: a score of 0 still gets weight.
# - Backward, in reverse order: `dV = Aᵀ dout`, `dA = dout Vᵀ`, then the softmax backward row by row,
#   `dS = A ⊙ (dA − Σ_j A_j dA_j)`, then `dQ = dS K / √hs` and `dK = dSᵀ Q / √hs`. Check every shape: with
#   `Tq ≠ Tk` a missing transpose cannot hide.
# - You may use `softmax` from `minilm.layers` (you built it in exercise 01).
#
# Grade it: `python -m minilm grade exercises/04_attention.ipynb`.

# %%
import numpy as np

from minilm import layers, masks
from minilm.grading import attention_problem, gradient_problems

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs

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


# %% [markdown]
# ## Graded checks

# %% tags=["graded"]
# Check 1: the forward pass matches the reference under every mask
B, nh, hs = 2, 3, 4
for name, mask in [("causal", masks.causal_mask(5)), ("bidirectional", masks.bidirectional_mask(5)),
                   ("prefix-LM (2 of 5)", masks.prefix_lm_mask(5, 2)), ("causal, 2 queries over 5 cached keys", masks.causal_mask(2, 5))]:
    Tq, Tk = mask.shape
    q, k, v = rng.normal(size=(B, nh, Tq, hs)), rng.normal(size=(B, nh, Tk, hs)), rng.normal(size=(B, nh, Tk, hs))
    out = attention_forward(q, k, v, mask)[0]
    expected = layers.attention_forward(q, k, v, mask)[0]
    assert np.shape(out) == expected.shape, f"under the {name} mask the output must have shape {expected.shape} (B, nh, Tq, hs), got {np.shape(out)}"
    err = np.abs(out - expected).max()
    assert err < 1e-10, f"under the {name} mask your output differs from the reference by up to {err:.3g}"

# %% tags=["graded"]
# Check 2: a masked key has no influence at all, and a visible one does
Tq = Tk = 6
hs = 4
mask = rng.random((Tq, Tk)) < 0.5
mask[np.arange(Tq), rng.integers(0, Tk, size=Tq)] = True  # every query sees at least one key
q, k, v = rng.normal(size=(1, 2, Tq, hs)), rng.normal(size=(1, 2, Tk, hs)), rng.normal(size=(1, 2, Tk, hs))
out = attention_forward(q, k, v, mask)[0]
sees = np.zeros((Tq, Tk), dtype=bool)  # sees[i, j]: changing key/value j changes the output at i
for j in range(Tk):
    k2, v2 = k.copy(), v.copy()
    k2[:, :, j] += 1.0
    v2[:, :, j] += 1.0
    sees[:, j] = np.abs(attention_forward(q, k2, v2, mask)[0] - out).max(axis=(0, 1, 3)) > 1e-12
problem = attention_problem(sees, mask, "attention under a random mask")
assert not problem, problem

# %% tags=["graded"]
# Check 3: the backward pass matches finite differences under the causal mask
B, nh, T, hs = 2, 2, 4, 3
mask = masks.causal_mask(T)
q, k, v = (rng.normal(size=(B, nh, T, hs)) for _ in range(3))
R = rng.normal(size=(B, nh, T, hs))  # loss = sum(out * R), so dout = R
dq, dk, dv = attention_backward(R.copy(), attention_forward(q, k, v, mask)[1])
problems = gradient_problems(lambda: (attention_forward(q, k, v, mask)[0] * R).sum(), {"q": q, "k": k, "v": v}, {"q": dq, "k": dk, "v": dv})
assert not problems, "; ".join(problems)

# %% tags=["graded"]
# Check 4: ... and with fewer queries than keys (2 new positions over 5), where shapes expose a missing transpose
B, nh, Tq, Tk, hs = 2, 2, 2, 5, 3
mask = masks.causal_mask(Tq, Tk)
q, k, v = rng.normal(size=(B, nh, Tq, hs)), rng.normal(size=(B, nh, Tk, hs)), rng.normal(size=(B, nh, Tk, hs))
R = rng.normal(size=(B, nh, Tq, hs))
dq, dk, dv = attention_backward(R.copy(), attention_forward(q, k, v, mask)[1])
problems = gradient_problems(lambda: (attention_forward(q, k, v, mask)[0] * R).sum(), {"q": q, "k": k, "v": v}, {"q": dq, "k": dk, "v": dv})
assert not problems, "; ".join(problems)
