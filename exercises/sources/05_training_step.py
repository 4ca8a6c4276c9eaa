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
# You write:
# - `loss_and_grads(params, idx, targets)` → `(loss, grads)`, `grads` a dict with the keys of `params`;
# - `train_step(params, idx, targets, lr)`: one step of gradient descent, `params[name] -= lr * grads[name]`
#   in place; returns the loss *before* the step.
#
# **Hints.**
# - `layers.self_attention_forward(x, p, mask, n_head)` wants `p` with keys `w_qkv, b_qkv, w_proj, b_proj`;
#   `sub_params(params, "h.0.attn.")` cuts them out of the big dict. Its backward returns `dx` and a dict
#   with the same short keys; `mlp_forward`/`mlp_backward` work the same way.
# - A residual `x = x + f(x)` sends the gradient down both paths: `dx = dx + (what came back through f)`.
# - `wte` is used twice (the embedding and the output head), so its gradient is the *sum* of both uses.
#   `linear_backward` gives the head's gradient w.r.t. `wte.T`: transpose it back.
#
# Grade it: `python -m minilm grade exercises/05_training_step.ipynb`.

# %%
import numpy as np

from minilm import GPT, GPTConfig, layers, masks
from minilm.grading import gradient_problem
from minilm.model import sub_params

N_HEAD = 2
rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs


def tiny_model(V=8, T=8, C=16):
    """A freshly initialised one-block GPT (float64) to train: the reference model and its params dict."""
    config = GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=N_HEAD, d_model=C, dtype="float64")
    return GPT(config, seed=int(rng.integers(2**31)))


def counting_batch(V=8, T=8, B=4):
    """B sequences that count up modulo V from random starts: idx (B, T), targets = the next numbers."""
    seq = (rng.integers(0, V, size=(B, 1)) + np.arange(T + 1)) % V  # (B, T + 1)
    return seq[:, :-1], seq[:, 1:]


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
def train_step(params, idx, targets, lr):
    """One step of gradient descent on params, in place. Returns the loss before the step."""
    ### BEGIN SOLUTION
    loss, grads = loss_and_grads(params, idx, targets)
    for name in params:
        params[name] -= lr * grads[name]
    return loss
    ### END SOLUTION


# %% [markdown]
# ## Graded checks
#
# The reference is minilm's `GPT` with the same parameters; its own gradients are checked against finite
# differences in minilm's test suite.

# %% tags=["graded"]
# Check 1: the loss matches the reference model's
model = tiny_model()
for p in model.params.values():  # move away from the initial values, so that no part is trivially 1 or 0
    p += rng.normal(size=p.shape) * 0.1
idx, targets = counting_batch()
expected, _ = model.loss_and_grads(idx, targets)
loss, grads = loss_and_grads(model.params, idx, targets)
assert np.ndim(loss) == 0, f"loss must be one number, got shape {np.shape(loss)}"
assert np.isclose(loss, expected, rtol=1e-10), f"your loss {float(loss):.8f} differs from the reference model's {expected:.8f}: check the forward pass layer by layer"

# %% tags=["graded"]
# Check 2: there is a gradient of the right shape for every parameter, and each matches the reference
model = tiny_model()
for p in model.params.values():
    p += rng.normal(size=p.shape) * 0.1
idx, targets = counting_batch()
_, expected = model.loss_and_grads(idx, targets)
_, grads = loss_and_grads(model.params, idx, targets)
missing = sorted(set(model.params) - set(grads))
assert not missing, f"grads has no entry for {', '.join(missing)}"
problems = [gradient_problem(name, expected[name], grads[name], reference="the reference model") for name in model.params]
problems = [p for p in problems if p]
assert not problems, "; ".join(problems)

# %% tags=["graded"]
# Check 3: 200 steps of train_step on one fixed batch drive the loss far down
model = tiny_model()
idx, targets = counting_batch()
params = model.params
before = {name: p.copy() for name, p in params.items()}
first = train_step(params, idx, targets, lr=0.5)
expected_first = GPT(model.config, params=before).loss_and_grads(idx, targets)[0]
assert np.isclose(first, expected_first, rtol=1e-10), f"train_step must return the loss before the step, {expected_first:.6f}; got {first}"
assert any(not np.array_equal(before[n], params[n]) for n in params), "train_step must update params in place (params[name] -= lr * grads[name])"
losses = [first] + [train_step(params, idx, targets, lr=0.5) for _ in range(199)]
went_up = not losses[-1] < losses[0]  # (a NaN counts as up)
hint = "step against the gradient: params -= lr * grads" if went_up else "are the gradients right (check 2)?"
assert losses[-1] < 0.1 * losses[0], f"after 200 steps at lr=0.5 the loss went from {losses[0]:.3f} to {losses[-1]:.3f}; it must fall below a tenth ({hint})"
