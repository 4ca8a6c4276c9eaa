# %% [markdown]
# # Exercise 03 — layer normalisation, forward and backward
#
# *Follows lesson 02 (`lessons/02_attention_masks.ipynb`), where each transformer block is
# `x = x + attention(layernorm(x)); x = x + mlp(layernorm(x))`.*
#
# Every block of the model normalises its input before attention and before the MLP: each position's
# vector of `C` channels is shifted to mean 0 and scaled to variance 1, then scaled by a learned gain `w`
# and shifted by a learned bias `b`. It keeps the residual stream at a steady scale however deep the
# model is, so one learning rate suits every layer.
#
# $$\mu = \tfrac1C \sum_c x_c,\quad \sigma^2 = \tfrac1C \sum_c (x_c - \mu)^2,\quad
#   \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\quad \text{out} = \hat x \cdot w + b$$
#
# | function | input | output |
# |---|---|---|
# | `layernorm_forward(x, w, b, eps=1e-5)` | `x` `(B, T, C)`, `w`, `b` `(C,)` | `out` `(B, T, C)`, `cache` (anything the backward needs) |
# | `layernorm_backward(dout, cache)` | `dout` `(B, T, C)` | `dx` `(B, T, C)`, `dw` `(C,)`, `db` `(C,)` |
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/03_layernorm.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("03_layernorm", globals())

# %% [markdown]
# ## Part 1: the forward pass
#
# The checks feed positions whose variance ranges from about `eps` to 9, so where `eps` goes matters, and
# float32 inputs around 1000, where a careless variance loses every digit.

# %%
def layernorm_forward(x, w, b, eps=1e-5):
    """x: (B, T, C), w, b: (C,) -> out: (B, T, C), cache"""
    ### BEGIN SOLUTION
    xc = x - x.mean(axis=-1, keepdims=True)  # (B, T, C), centred
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (B, T, 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (B, T, 1)
    xhat = xc * rstd  # (B, T, C)
    return xhat * w + b, (xhat, rstd, w)
    ### END SOLUTION


# %%
check("layernorm_forward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Every mean and variance is over the last axis only, one per position: `axis=-1, keepdims=True`, so the
# results broadcast back over the channels.
#
# </details>
# <details><summary>Hint 2</summary>
#
# The variance is the *biased* one (divide by `C`, as `np.var` does by default), and `eps` goes *inside*
# the square root. Compute it as the mean of `(x - mu)**2`, not as `mean(x**2) - mu**2`: the second form
# subtracts two large, nearly equal numbers when the channels share a large offset, and loses every digit
# in float32.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `xc = x - x.mean(axis=-1, keepdims=True)`, `var = (xc * xc).mean(axis=-1, keepdims=True)`,
# `xhat = xc / np.sqrt(var + eps)`; return `xhat * w + b` and a cache holding what the backward needs
# (`xhat`, `1 / np.sqrt(var + eps)` and `w`).
#
# </details>
#
# Still stuck? `solutions/03_layernorm.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the backward pass

# %%
def layernorm_backward(dout, cache):
    """dout: (B, T, C) -> dx: (B, T, C), dw: (C,), db: (C,)"""
    ### BEGIN SOLUTION
    xhat, rstd, w = cache
    dw = (dout * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)
    db = dout.reshape(-1, xhat.shape[-1]).sum(axis=0)
    g = dout * w  # gradient w.r.t. xhat
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db
    ### END SOLUTION


# %%
check("layernorm_backward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `w` and `b` act on every position, so `dw` and `db` sum over every axis but the last: `db` is the sum
# of `dout`, `dw` the sum of `dout * xhat`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# For `dx`, remember that $\mu$ and $\sigma$ depend on every $x_c$: besides the direct path through
# $x_c - \mu$ there is one through the mean and one through the variance. Call $g = \text{dout} \cdot w$,
# the gradient w.r.t. $\hat x$.
#
# </details>
# <details><summary>Hint 3</summary>
#
# $dx = \frac{1}{\sqrt{\sigma^2+\epsilon}}\big(g - \text{mean}(g) - \hat x\, \text{mean}(g \hat x)\big)$,
# means over the channels. Derive it once on paper; it is the classic backward pass.
#
# </details>
#
# Still stuck? `solutions/03_layernorm.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: with w = 1 and b = 0 each position is normalised over its C channels
check.graded("normalises")

# %% tags=["graded"]
# Check 2: the forward pass matches the reference, gain and bias included
check.graded("gain_and_bias")

# %% tags=["graded"]
# Check 3: stable in float32 when the channels share a large offset
check.graded("float32_stable")

# %% tags=["graded"]
# Check 4: the backward pass matches finite differences for x, w and b
check.graded("backward")
