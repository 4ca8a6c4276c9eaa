# %% [markdown]
# # Exercise 05 — a full training step of a tiny GPT, from the pieces
#
# *Follows lesson 01 (`lessons/01_next_token_loss.ipynb`) and exercises 01–04.*
#
# You have built the pieces: the softmax cross-entropy (01), the masks (02), layernorm (03) and attention (04).
# `minilm.layers` holds the same pieces as forward/backward pairs. Now chain them into a whole model and
# train it: a forward pass that keeps every layer's cache, a backward pass that walks the caches in
# reverse, and a gradient step. This is all that "training a language model" means; lesson 01 showed why
# lowering this loss teaches the model grammar, facts and arithmetic at once.
#
# The model is a one-block GPT (minilm's `GPT` with `n_layer=1`), its parameters in a dict:
#
# ```
# x      = wte[idx] + wpe[:T]                                  embedding_forward       (B, T, C)
# x      = x + self_attention(layernorm(x; ln_1), causal)      layernorm, self_attention (B, T, C)
# x      = x + mlp(layernorm(x; ln_2))                         layernorm, mlp           (B, T, C)
# logits = layernorm(x; ln_f) @ wte.T                          layernorm, linear (no bias)  (B, T, V)
# loss   = mean cross-entropy(logits, targets)                 softmax_cross_entropy
# ```
#
# Parameter names: `wte` `(V, C)`, `wpe` `(block_size, C)`, `h.0.ln_1.w`/`.b`, `h.0.attn.w_qkv` `(C, 3C)`,
# `h.0.attn.b_qkv`, `h.0.attn.w_proj` `(C, C)`, `h.0.attn.b_proj`, `h.0.ln_2.w`/`.b`, `h.0.mlp.w_fc` `(C, 4C)`,
# `h.0.mlp.b_fc`, `h.0.mlp.w_proj` `(4C, C)`, `h.0.mlp.b_proj`, `ln_f.w`/`.b`.
#
# You write, one part each:
# - `loss_and_grads(params, idx, targets)` → `(loss, grads)`, `grads` a dict with the keys of `params`;
# - `train_step(params, idx, targets, lr)`: one step of gradient descent, `params[name] -= lr * grads[name]`
#   in place; returns the loss *before* the step.
#
# The checks compare with minilm's `GPT` holding the same parameters; its own gradients are checked
# against finite differences in minilm's test suite. After each part, run its `check(...)` cell: it prints
# `pass` for each check, or what is wrong. Stuck? Open the hints under it one at a time.
#
# Grade it: `python -m minilm grade exercises/05_training_step.ipynb`.

# %%
import numpy as np

from minilm import layers, masks
from minilm.course.checks import ExerciseChecks
from minilm.model import sub_params

N_HEAD = 2
check = ExerciseChecks("05_training_step", globals())

# %% [markdown]
# ## Part 1: the loss and every gradient

# %%
def loss_and_grads(params, idx, targets):
    """params: dict name -> array, idx, targets: (B, T) ints -> (loss: float, grads: dict like params)"""
    ### BEGIN SOLUTION
    T = idx.shape[1]
    mask = masks.causal_mask(T)
    # forward, keeping each layer's cache
    x, emb = layers.embedding_forward(idx, params["wte"], params["wpe"])  # (B, T, C)
    h, ln1 = layers.layernorm_forward(x, params["h.0.ln_1.w"], params["h.0.ln_1.b"])
    a, attn = layers.self_attention_forward(h, sub_params(params, "h.0.attn."), mask, N_HEAD)
    x = x + a
    h, ln2 = layers.layernorm_forward(x, params["h.0.ln_2.w"], params["h.0.ln_2.b"])
    m, mlp = layers.mlp_forward(h, sub_params(params, "h.0.mlp."))
    x = x + m
    h, ln_f = layers.layernorm_forward(x, params["ln_f.w"], params["ln_f.b"])
    logits, head = layers.linear_forward(h, params["wte"].T)  # (B, T, V)
    loss, xent = layers.softmax_cross_entropy_forward(logits, targets)
    # backward, in reverse
    grads = {}
    dh, dwte_head, _ = layers.linear_backward(layers.softmax_cross_entropy_backward(xent), head)
    dx, grads["ln_f.w"], grads["ln_f.b"] = layers.layernorm_backward(dh, ln_f)
    dh, g_mlp = layers.mlp_backward(dx, mlp)
    dh, grads["h.0.ln_2.w"], grads["h.0.ln_2.b"] = layers.layernorm_backward(dh, ln2)
    dx = dx + dh  # the residual: both paths add up
    dh, g_attn = layers.self_attention_backward(dx, attn)
    dh, grads["h.0.ln_1.w"], grads["h.0.ln_1.b"] = layers.layernorm_backward(dh, ln1)
    dx = dx + dh
    dwte, grads["wpe"] = layers.embedding_backward(dx, emb)
    grads["wte"] = dwte + dwte_head.T  # wte is used twice: sum both gradients
    grads.update({"h.0.mlp." + name: g for name, g in g_mlp.items()})
    grads.update({"h.0.attn." + name: g for name, g in g_attn.items()})
    return float(loss), grads
    ### END SOLUTION


# %%
check("loss_and_grads")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Forward, call each layer's `*_forward` in the order of the diagram and keep every cache it returns;
# backward, call the matching `*_backward` on those caches in reverse order. The causal mask is
# `masks.causal_mask(T)`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `layers.self_attention_forward(x, p, mask, n_head)` wants `p` with keys `w_qkv, b_qkv, w_proj, b_proj`;
# `sub_params(params, "h.0.attn.")` cuts them out of the big dict. Its backward returns `dx` and a dict
# with the same short keys; `mlp_forward`/`mlp_backward` work the same way. Put the prefix back on the keys
# of `grads`.
#
# </details>
# <details><summary>Hint 3</summary>
#
# A residual `x = x + f(x)` sends the gradient down both paths: `dx = dx + (what came back through f)`.
# `wte` is used twice (the embedding and the output head), so its gradient is the *sum* of both uses;
# `linear_backward` gives the head's gradient w.r.t. `wte.T`: transpose it back.
#
# </details>
#
# Still stuck? `solutions/05_training_step.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: one step of gradient descent

# %%
def train_step(params, idx, targets, lr):
    """One step of gradient descent on params, in place. Returns the loss before the step."""
    ### BEGIN SOLUTION
    loss, grads = loss_and_grads(params, idx, targets)
    for name in params:
        params[name] -= lr * grads[name]
    return loss
    ### END SOLUTION


# %%
check("train_step")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Gradient descent moves *against* the gradient: the loss falls fastest in the direction of `-grads`.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Change the arrays in `params` in place (`-=`), so that the caller's dict holds the new values; return the
# loss that `loss_and_grads` gave, computed before the step.
#
# </details>
#
# Still stuck? `solutions/05_training_step.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: the loss matches the reference model's
check.graded("loss")

# %% tags=["graded"]
# Check 2: there is a gradient of the right shape for every parameter, and each matches the reference
check.graded("gradients")

# %% tags=["graded"]
# Check 3: 200 steps of train_step on one fixed batch drive the loss far down
check.graded("training")
