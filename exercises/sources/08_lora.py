# %% [markdown]
# # Exercise 08 — LoRA: a frozen layer and a trainable low-rank correction, forward and backward
#
# *Follows lesson 06 (`lessons/06_a_real_model.ipynb`), where a trained model runs in your engine; this is
# how `minilm/lora.py` and `python -m minilm finetune --lora-rank R` teach it without changing its weights.*
#
# A trained model's linear layer computes `x @ W`. Fine-tuning every entry of `W` (`C_in × C_out` numbers,
# in every layer) needs a gradient and two Adam moments for each. LoRA (Hu et al., 2021) freezes `W` and
# learns a correction of rank `r`, much smaller than `C_in` and `C_out`: two thin matrices `A` `(C_in, r)`
# and `B` `(r, C_out)`, scaled by `scale = alpha / r`:
#
# $$\text{out} = x W + \text{scale}\cdot (x A) B \;=\; x\,(W + \text{scale}\cdot A B)$$
#
# `B` starts at zero, so the adapted model starts as exactly the model it adapts.
#
# | function | input | output |
# |---|---|---|
# | `lora_forward(x, W, A, B, scale)` | `x` `(N, C_in)`, `W` `(C_in, C_out)`, `A` `(C_in, r)`, `B` `(r, C_out)`, a number | `out` `(N, C_out)`, `cache` (anything the backward needs) |
# | `lora_backward(dout, cache)` | `dout` `(N, C_out)` | `dx` `(N, C_in)`, `dA` `(C_in, r)`, `dB` `(r, C_out)` (no `dW`: `W` is frozen) |
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/08_lora.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("08_lora", globals())

# %% [markdown]
# ## Part 1: the forward pass
#
# The checks compare your output with `x @ (W + scale * A @ B)` and with the frozen layer when `B` is zero.

# %%
def lora_forward(x, W, A, B, scale):
    """x: (N, C_in), W: (C_in, C_out), A: (C_in, r), B: (r, C_out) -> out: (N, C_out), cache"""
    ### BEGIN SOLUTION
    down = x @ A  # (N, r): the input, squeezed through rank r
    out = x @ W + scale * (down @ B)  # (N, C_out)
    return out, (x, W, A, B, down, scale)
    ### END SOLUTION


# %%
check("lora_forward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Two paths add up: the frozen one, `x @ W`, and the low-rank one, `x @ A` (shape `(N, r)`) then `@ B`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `scale` multiplies only the low-rank path: the frozen layer stays exactly as it was trained.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `down = x @ A`, `out = x @ W + scale * (down @ B)`; keep `x`, `W`, `A`, `B`, `down` and `scale` in the
# cache for the backward pass.
#
# </details>
#
# Still stuck? `solutions/08_lora.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the backward pass
#
# Go backwards through each path: `out = x W + scale * down B` with `down = x A`.

# %%
def lora_backward(dout, cache):
    """dout: (N, C_out) -> dx: (N, C_in), dA: (C_in, r), dB: (r, C_out)"""
    ### BEGIN SOLUTION
    x, W, A, B, down, scale = cache
    ddown = scale * dout @ B.T  # (N, r)
    dB = scale * down.T @ dout  # (r, C_out)
    dA = x.T @ ddown  # (C_in, r)
    dx = dout @ W.T + ddown @ A.T  # (N, C_in): through the frozen weight and through the adapters
    return dx, dA, dB
    ### END SOLUTION


# %%
check("lora_backward")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Each matrix product `y = u @ v` sends the gradient back as `du = dy @ v.T` and `dv = u.T @ dy`. Apply it
# to `down @ B` (with `dy = scale * dout`), then to `x @ A`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `x` reaches the output along two paths, so `dx` has two terms: one through `W`, one through `A` and `B`.
#
# </details>
# <details><summary>Hint 3</summary>
#
# `ddown = scale * dout @ B.T`, `dB = scale * down.T @ dout`, `dA = x.T @ ddown`,
# `dx = dout @ W.T + ddown @ A.T`.
#
# </details>
#
# Still stuck? `solutions/08_lora.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: with B = 0 the adapted layer is the frozen one, exactly
check.graded("starts_as_the_base")

# %% tags=["graded"]
# Check 2: the forward pass is the linear layer of the merged weight W + scale A B
check.graded("merged_weight")

# %% tags=["graded"]
# Check 3: the backward pass matches finite differences for x, A and B
check.graded("backward")

# %% tags=["graded"]
# Check 4: the adapters' gradients are the merged weight's gradient carried through A B
check.graded("chain_through_the_product")
