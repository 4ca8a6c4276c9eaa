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
# **Hints.**
# - The variance is the *biased* one (divide by `C`, as `np.var` does by default).
# - Compute it as the mean of `(x - mu)**2`, not as `mean(x**2) - mu**2`: the second form subtracts two large,
#   nearly equal numbers when the channels share a large offset, and loses every digit in float32.
# - `dw` and `db` sum over every axis but the last. For `dx`, remember that $\mu$ and $\sigma$ depend on
#   every $x_c$: with $g = \text{dout} \cdot w$, the result is
#   $dx = \frac{1}{\sqrt{\sigma^2+\epsilon}}\big(g - \text{mean}(g) - \hat x\, \text{mean}(g \hat x)\big)$,
#   means over the channels. Derive it once on paper; it is the classic backward pass.
#
# Grade it: `python -m minilm grade exercises/03_layernorm.ipynb`.

# %%
import numpy as np

from minilm import layers
from minilm.grading import gradient_problems

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs

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


# %% [markdown]
# ## Graded checks

# %% tags=["graded"]
# Check 1: with w = 1 and b = 0 every position comes out with mean 0 and variance 1
B, T, C = 2, 3, 8
x = rng.normal(size=(B, T, C)) * 3 + 2
out, _ = layernorm_forward(x, np.ones(C), np.zeros(C))
assert np.shape(out) == x.shape, f"the output must have the input's shape {x.shape}, got {np.shape(out)}"
assert np.allclose(out.mean(axis=-1), 0, atol=1e-10), f"each position's output must have mean 0 over the channels, got {out.mean(axis=-1).ravel()[:3]} ..."
assert np.allclose(out.var(axis=-1), 1, atol=1e-3), f"each position's output must have variance 1 (the biased variance, over C), got {out.var(axis=-1).ravel()[:3]} ..."

# %% tags=["graded"]
# Check 2: the forward pass matches the reference, gain and bias included
B, T, C = 2, 3, 8
x, w, b = rng.normal(size=(B, T, C)) * 3 + 2, rng.normal(size=C), rng.normal(size=C)
np.testing.assert_allclose(layernorm_forward(x, w, b)[0], layers.layernorm_forward(x, w, b)[0], rtol=1e-10, atol=1e-12,
                           err_msg="layernorm(x) * w + b differs from the reference minilm.layers.layernorm_forward")

# %% tags=["graded"]
# Check 3: stable in float32 when the channels share a large offset
x32 = (rng.normal(size=(2, 4, 16)) + 1000).astype(np.float32)
w32, b32 = np.ones(16, np.float32), np.zeros(16, np.float32)
out = layernorm_forward(x32, w32, b32)[0]
expected = layers.layernorm_forward(x32.astype(np.float64), w32.astype(np.float64), b32.astype(np.float64))[0]
err = np.abs(out - expected).max()
assert err < 1e-3, (f"on float32 inputs around 1000 your output is off by up to {err:.2g}: compute the variance "
                    "as mean((x - mu)**2), not mean(x**2) - mu**2, which cancels catastrophically")

# %% tags=["graded"]
# Check 4: the backward pass matches finite differences for x, w and b
B, T, C = 2, 3, 5
x, w, b = rng.normal(size=(B, T, C)), rng.normal(size=C), rng.normal(size=C)
R = rng.normal(size=(B, T, C))  # loss = sum(out * R), so dout = R
out, cache = layernorm_forward(x, w, b)
dx, dw, db = layernorm_backward(R.copy(), cache)
problems = gradient_problems(lambda: (layernorm_forward(x, w, b)[0] * R).sum(), {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db})
assert not problems, "; ".join(problems)
