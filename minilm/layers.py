"""The layers of a transformer, each as a forward/backward pair.

Every forward returns `(out, cache)`; its backward takes the gradient of the loss with respect to `out`
(written `dout`) and the cache, and returns the gradients with respect to the inputs and parameters.
A cache is a tuple; one that code outside its layer reads (attention's probabilities, say) is a NamedTuple,
read there by name.

A layer tuned for the CPU (in-place passes, a scratch buffer, a layout branch) comes after the textbook formula it
is the tuned form of, `<name>_reference`, the way llm.c writes matmul_forward_naive before matmul_forward:
read the reference first; tests/test_reference_layers.py checks that each computes the same as its reference.
Shapes use B = batch, T = time (sequence length), C = channels (d_model), V = vocabulary,
nh = number of heads, hs = head size (C // nh).

All array work goes through `xp`, the module that holds the inputs (NumPy or CuPy).
"""
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import kernels
from .backend import xp_of

# A masked attention score is set to this before the softmax, so that exp() of it is exactly 0.
# It is finite (unlike -inf) so a row with every key masked gives a harmless uniform row, not NaN.
MASKED_SCORE = -1e30


# --------------------------------------------------------------------------------------------------
# Embeddings: a token's vector plus its position's vector.

def embedding_forward(idx, wte, wpe, pos0=0):
    """idx: (B, T) ints, wte: (V, C), wpe: (block_size, C) -> x: (B, T, C)

    pos0 is the position of idx[:, 0] (non-zero when a KV cache already holds earlier tokens).
    """
    T = idx.shape[1]
    x = wte[idx] + wpe[pos0:pos0 + T]  # (B, T, C) + (T, C)
    return x, (idx, wte.shape, wpe.shape, pos0)


def embedding_backward(dx, cache):
    """dx: (B, T, C) -> dwte: (V, C), dwpe: (block_size, C)"""
    idx, wte_shape, wpe_shape, pos0 = cache
    xp = xp_of(dx)
    C = dx.shape[-1]
    dwte = xp.zeros(wte_shape, dtype=dx.dtype)
    # A token that appears twice gets both gradients: add.at accumulates repeated rows.
    xp.add.at(dwte, idx.reshape(-1), dx.reshape(-1, C))
    dwpe = xp.zeros(wpe_shape, dtype=dx.dtype)
    dwpe[pos0:pos0 + dx.shape[1]] = dx.sum(axis=0)
    return dwte, dwpe


# --------------------------------------------------------------------------------------------------
# Linear: out = x @ w + b, applied to the last axis.

def linear_forward(x, w, b=None):
    """x: (..., C_in), w: (C_in, C_out), b: (C_out,) or None -> out: (..., C_out)"""
    out = x.reshape(-1, w.shape[0]) @ w  # one 2-D GEMM over every row of x
    if b is not None:
        out += b
    return out.reshape(*x.shape[:-1], w.shape[1]), (x, w, b is not None)


def linear_backward_reference(dout, cache):
    """linear_backward as the formulas read: dx = dout w^T, dw = x^T dout, db = sum of dout over the rows."""
    x, w, has_bias = cache
    dout2, x2 = dout.reshape(-1, w.shape[1]), x.reshape(-1, w.shape[0])  # (N, C_out), (N, C_in)
    return (dout2 @ w.T).reshape(x.shape), x2.T @ dout2, dout2.sum(axis=0) if has_bias else None


def linear_backward(dout, cache, weight_grads=True):
    """dout: (..., C_out) -> dx: (..., C_in), dw: (C_in, C_out), db: (C_out,) or None
    (weight_grads=False: only dx, the weights being frozen; dw and db are None)

    The tuned form of linear_backward_reference."""
    x, w, has_bias = cache
    C_in, C_out = w.shape
    dout2, x2 = dout.reshape(-1, C_out), x.reshape(-1, C_in)  # (N, C_out), (N, C_in)
    dx = (dout2 @ w.T).reshape(x.shape)  # w.T is a view: no copy
    if not weight_grads:
        return dx, None, None
    if w.flags.c_contiguous:
        dw = x2.T @ dout2  # (C_in, N) @ (N, C_out)
    else:  # w is a transposed view (the output head, w = wte.T): make dw in wte's own layout, so that
        dw = (dout2.T @ x2).T  # adding it to wte's other gradient reads both arrays in order
    db = dout2.sum(axis=0) if has_bias else None
    return dx, dw, db


# --------------------------------------------------------------------------------------------------
# LoRA (Hu et al., 2021): a frozen linear layer plus a trainable low-rank correction. W stays as it was
# trained; the layer learns A (C_in, r) and B (r, C_out) with r much smaller than C_in and C_out, so
#   out = x W + bias + scale * (x A) B,   scale = alpha / r,
# which is the linear layer of W + scale * A B. B starts at zero: at the first step the adapted model is
# exactly the model it adapts.

def lora_forward(x, w, lora_a, lora_b, scale, b=None):
    """x: (..., C_in), w: (C_in, C_out) frozen, lora_a: (C_in, r), lora_b: (r, C_out), b: (C_out,) or None
    -> out: (..., C_out)"""
    out, base_cache = linear_forward(x, w, b)
    down, down_cache = linear_forward(x, lora_a)  # (..., r): the input, squeezed through rank r
    up, up_cache = linear_forward(down, lora_b)  # (..., C_out)
    return out + scale * up, (base_cache, down_cache, up_cache, scale)


def lora_backward(dout, cache, frozen=True):
    """dout: (..., C_out) -> dx: (..., C_in), dw: (C_in, C_out), d_lora_a: (C_in, r), d_lora_b: (r, C_out),
    db: (C_out,) or None. frozen (LoRA's usual setting): W and its bias are not trained, dw and db are None."""
    base_cache, down_cache, up_cache, scale = cache
    dx, dw, db = linear_backward(dout, base_cache, weight_grads=not frozen)
    ddown, d_lora_b, _ = linear_backward(scale * dout, up_cache)  # (..., r), (r, C_out)
    dx_low, d_lora_a, _ = linear_backward(ddown, down_cache)  # (..., C_in), (C_in, r)
    return dx + dx_low, dw, d_lora_a, d_lora_b, db


def lora_merge(w, lora_a, lora_b, scale, out=None):
    """The plain linear layer a LoRA layer computes: W + scale * A B, (C_in, C_out). out: a (C_in, C_out)
    array to write it into, instead of two new ones (A B, then the sum)."""
    if out is None:
        return w + scale * (lora_a @ lora_b)
    xp_of(w).matmul(lora_a, lora_b, out=out)
    out *= scale
    out += w
    return out


def lora_grads_from_merged(dw_merged, lora_a, lora_b, scale):
    """The adapters' gradients from the gradient of the merged weight W' = W + scale * A B (the chain rule
    through the product: dA = scale dW' B^T, dB = scale A^T dW'). -> d_lora_a, d_lora_b"""
    return scale * dw_merged @ lora_b.T, scale * lora_a.T @ dw_merged


# --------------------------------------------------------------------------------------------------
# Which gradient a weight gets. By default its own, dW = x^T dout. Fine-tuning asks for less (a model's
# grad_rules, which minilm.lora sets): FROZEN, a weight that is not trained, gets none, and Adapters, a merged
# weight W' = W + scale A B whose A and B train, gets theirs. Their gradients come from dW' by the chain rule
# (from_gradient), or, where the linear layer's x and dout are at hand, from two thin products that never
# make the (C_in, C_out) matrix dW' (from_inputs):
#   dA = scale dW' B^T = scale x^T (dout B^T),   dB = scale A^T dW' = scale (x A)^T dout.
# A rule's gradients are named under its weight's name: "w_qkv" -> "w_qkv.lora_a", "w_qkv.lora_b".

class Frozen:
    """A weight that is not trained: no gradient."""

    def from_inputs(self, x2, dout2):
        return {}

    def from_gradient(self, dw):
        return {}


FROZEN = Frozen()


@dataclass
class Adapters:
    """A weight merged from its adapters, W' = W + scale * lora_a @ lora_b: the gradients of lora_a and lora_b."""
    lora_a: Any  # (C_in, r)
    lora_b: Any  # (r, C_out)
    scale: float

    def from_inputs(self, x2, dout2):
        """x2: (N, C_in), dout2: (N, C_out): the layer's input and output gradient, one row per position."""
        return {"lora_a": self.scale * (x2.T @ (dout2 @ self.lora_b.T)),  # (C_in, N) @ (N, r)
                "lora_b": self.scale * ((x2 @ self.lora_a).T @ dout2)}  # (r, N) @ (N, C_out)

    def from_gradient(self, dw):
        d_a, d_b = lora_grads_from_merged(dw, self.lora_a, self.lora_b, self.scale)
        return {"lora_a": d_a, "lora_b": d_b}


def linear_grads(dout, cache, w_name, b_name=None, rules=None):
    """linear_backward with its gradients named: -> dx, {w_name: dw, b_name: db} (db where the layer has a
    bias). Where rules (weight name ->
    rule) has a rule for w_name, the weight and its bias are not trained: the gradients are the rule's, made
    from the layer's x and dout (from_inputs), under w_name + "." (none for FROZEN)."""
    rule = (rules or {}).get(w_name)
    if rule is None:
        dx, dw, db = linear_backward(dout, cache)
        return dx, {w_name: dw} if db is None else {w_name: dw, b_name: db}
    dx, _, _ = linear_backward(dout, cache, weight_grads=False)
    x, w, _ = cache
    grads = rule.from_inputs(x.reshape(-1, w.shape[0]), dout.reshape(-1, w.shape[1]))  # (N, C_in), (N, C_out)
    return dx, {f"{w_name}.{name}": g for name, g in grads.items()}


# --------------------------------------------------------------------------------------------------
# LayerNorm: normalise each position's vector to zero mean and unit variance, then scale and shift.

def layernorm_forward_reference(x, w, b, eps=1e-5):
    """layernorm_forward as the formula reads: out = (x - mean) / sqrt(var + eps) * w + b."""
    mean = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1)
    rstd = 1.0 / (var + eps) ** 0.5
    xhat = (x - mean) * rstd  # (B, T, C)
    return xhat * w + b, (xhat, rstd, w)


def layernorm_backward_reference(dout, cache):
    """layernorm_backward as the formula reads, one new array per operation."""
    xhat, rstd, w = cache
    sum_axes = tuple(range(dout.ndim - 1))
    dxhat = dout * w  # (B, T, C)
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, (dout * xhat).sum(axis=sum_axes), dout.sum(axis=sum_axes)


@kernels.fused(kernels.layernorm_forward)
def layernorm_forward(x, w, b, eps=1e-5):
    """x: (B, T, C), w, b: (C,) -> out: (B, T, C)

    The tuned form of layernorm_forward_reference."""
    xhat = x - x.mean(axis=-1, keepdims=True)  # centred, normalised in place below
    var = (xhat * xhat).mean(axis=-1, keepdims=True)  # (B, T, 1)
    rstd = 1.0 / (var + eps) ** 0.5  # reciprocal standard deviation
    xhat *= rstd  # (B, T, C), zero mean and unit variance
    out = xhat * w
    out += b
    return out, (xhat, rstd, w)


@kernels.fused(kernels.layernorm_backward)
def layernorm_backward(dout, cache):
    """dout: (B, T, C) -> dx: (B, T, C), dw, db: (C,)

    The tuned form of layernorm_backward_reference."""
    xhat, rstd, w = cache
    xp = xp_of(dout)
    sum_axes = tuple(range(dout.ndim - 1))
    db = dout.sum(axis=sum_axes)
    scratch = dout * xhat  # (B, T, C), one buffer reused below
    dw = scratch.sum(axis=sum_axes)
    dxhat = dout * w
    # xhat depends on x through the mean and the variance too; two mean terms remove those paths:
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    proj = xp.multiply(dxhat, xhat, out=scratch).mean(axis=-1, keepdims=True)  # (B, T, 1)
    dx = xp.multiply(xhat, proj, out=scratch)
    dx -= dxhat
    dx += dxhat.mean(axis=-1, keepdims=True)  # dx = -(dxhat - mean(dxhat) - xhat * proj)
    dx *= -rstd
    return dx, dw, db


# --------------------------------------------------------------------------------------------------
# GELU, the tanh approximation used by GPT-2: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

GELU_SCALE = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


def gelu_forward_reference(x):
    """gelu_forward as the formula reads: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    t = xp_of(x).tanh(GELU_SCALE * (x + GELU_CUBIC * x ** 3))
    return 0.5 * x * (1 + t), (x, t)


def gelu_backward_reference(dout, cache):
    """dout * dGELU/dx, as the formula in gelu_backward reads."""
    x, t = cache
    slope = GELU_SCALE * (1 + 3 * GELU_CUBIC * x ** 2)
    return dout * 0.5 * ((1 + t) + x * (1 - t ** 2) * slope)


@kernels.fused(kernels.gelu_forward, scale=GELU_SCALE, cubic=GELU_CUBIC)
def gelu_forward(x):
    """x: any shape -> out: same shape

    Written as a few in-place passes over one buffer: on the CPU each pass over a large array costs
    about as much as the arithmetic, so fewer temporaries means a faster layer.

    The tuned form of gelu_forward_reference."""
    xp = xp_of(x)
    t = x * x
    t *= GELU_CUBIC * GELU_SCALE
    t += GELU_SCALE
    t *= x  # the inner term sqrt(2/pi) (x + 0.044715 x^3); x*x*x, never x**3 (far slower on float32)
    xp.tanh(t, out=t)
    out = t + 1.0
    out *= x
    out *= 0.5
    return out, (x, t)


@kernels.fused(kernels.gelu_backward, scale=GELU_SCALE, cubic=GELU_CUBIC)
def gelu_backward(dout, cache):
    """The tuned form of gelu_backward_reference."""
    x, t = cache
    # d/dx [0.5 x (1 + t)] = 0.5 [(1 + t) + x (1 - t^2) slope], slope = d(inner)/dx = sqrt(2/pi) (1 + 3 0.044715 x^2)
    slope = x * x
    slope *= 3 * GELU_CUBIC * GELU_SCALE
    slope += GELU_SCALE
    g = t * t
    xp_of(x).subtract(1.0, g, out=g)  # 1 - t^2
    g *= x
    g *= slope
    g += t
    g += 1.0
    g *= 0.5  # dGELU/dx
    g *= dout
    return g


# --------------------------------------------------------------------------------------------------
# Softmax and its logarithm, stable: subtracting the row maximum changes nothing mathematically
# and keeps exp() from overflowing (the log-sum-exp trick).

@kernels.fused(kernels.softmax)
def softmax(x, axis=-1, out=None):
    """out=x computes it in place (no new array)."""
    xp = xp_of(x)
    out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


@kernels.fused(kernels.masked_softmax, masked_score=MASKED_SCORE)
def masked_softmax(scores, mask):
    """scores: (..., Tq, Tk), mask: bool broadcastable to it, True where a query may attend
    -> the softmax over the visible keys of each row, in place (returns scores)."""
    xp = xp_of(scores)
    xp.copyto(scores, MASKED_SCORE, where=~xp.asarray(mask))  # a mask built on the host moves to the device
    return softmax(scores, out=scores)


@kernels.fused(kernels.softmax_backward)
def softmax_backward(datt, att, row_dot):
    """The gradient of the softmax's input from that of its output, in place on datt (returned):
    dscores = att * (datt - row_dot), row_dot = sum_j att_j datt_j per row, shape (..., 1)."""
    datt -= row_dot
    datt *= att
    return datt


def log_softmax(x, axis=-1):
    xp = xp_of(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


# --------------------------------------------------------------------------------------------------
# Attention: every query position takes a weighted average of the value vectors of the key positions
# its mask lets it see, weighted by softmax(q . k / sqrt(hs)).

class AttentionCache(NamedTuple):
    q: Any  # (B, nh, Tq, hs), the queries scaled by 1/sqrt(hs)
    k: Any  # (B, nh, Tk, hs)
    v: Any  # (B, nh, Tk, hs)
    att: Any  # (B, nh, Tq, Tk), the attention probabilities: each row sums to 1 over the keys it may see
    out: Any  # (B, nh, Tq, hs)


def attention_forward_reference(q, k, v, mask):
    """attention_forward as the formula reads: softmax(q k^T / sqrt(hs)) v, the hidden scores masked."""
    xp = xp_of(q)
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])  # (B, nh, Tq, Tk)
    scores = xp.where(xp.asarray(mask), scores, MASKED_SCORE)
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    att = e / e.sum(axis=-1, keepdims=True)  # (B, nh, Tq, Tk)
    return att @ v, (q, k, v, att)


def attention_backward_reference(dout, cache):
    """Through the softmax's Jacobian, row by row: dscores = att * (datt - sum_j att_j datt_j)."""
    q, k, v, att = cache
    scale = 1.0 / math.sqrt(q.shape[-1])
    datt = dout @ v.swapaxes(-1, -2)  # (B, nh, Tq, Tk)
    dscores = att * (datt - (att * datt).sum(axis=-1, keepdims=True))  # (B, nh, Tq, Tk)
    return dscores @ k * scale, dscores.swapaxes(-1, -2) @ q * scale, att.swapaxes(-1, -2) @ dout


def attention_forward(q, k, v, mask):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), mask: bool, broadcastable to (B, nh, Tq, Tk),
    True where a query may attend -> out: (B, nh, Tq, hs)

    The score matrix (B, nh, Tq, Tk) is the largest array of the layer, so every step on it is done
    in place, and the 1/sqrt(hs) scale goes on the (smaller) queries instead.

    The tuned form of attention_forward_reference."""
    q = q * (1.0 / math.sqrt(q.shape[-1]))  # (B, nh, Tq, hs), scaled
    att = q @ k.swapaxes(-1, -2)  # (B, nh, Tq, Tk), the scores
    masked_softmax(att, mask)  # in place: each row now sums to 1 over the visible keys
    out = att @ v  # (B, nh, Tq, hs)
    return out, AttentionCache(q, k, v, att, out)


def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq: (B, nh, Tq, hs), dk, dv: (B, nh, Tk, hs)

    The tuned form of attention_backward_reference."""
    q, k, v, att, out = cache
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = att.swapaxes(-1, -2) @ dout  # (B, nh, Tk, hs)
    # softmax backward: dscores = att * (datt - sum_j att_j datt_j). Since datt = dout @ v^T, the sum
    # is sum_j att_j (dout . v_j) = dout . out, a dot product per row of the small output (the trick
    # FlashAttention uses). Masked keys have att = 0, so they get no gradient, as if never there.
    row_dot = (dout * out).sum(axis=-1, keepdims=True)  # (B, nh, Tq, 1)
    dscores = softmax_backward(dout @ v.swapaxes(-1, -2), att, row_dot)  # (B, nh, Tq, Tk)
    dq = dscores @ k  # (B, nh, Tq, hs), the gradient of the scaled queries...
    dq *= scale  # ...and of the queries themselves
    dk = dscores.swapaxes(-1, -2) @ q  # (B, nh, Tk, hs)
    return dq, dk, dv


def split_heads(x, n_head):
    """(B, T, C) -> (B, nh, T, hs), a view"""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merge_heads(*parts):
    """(B, nh, T, hs) -> (B, T, C), the inverse of split_heads. Given several parts (the gradients of
    queries, keys and values, split off one fused projection), they come back side by side along the last
    axis, (B, T, len(parts) * C): the inverse of _thirds or _halves followed by split_heads."""
    B, nh, T, hs = parts[0].shape
    merged = xp_of(parts[0]).empty((B, T, len(parts), nh, hs), dtype=parts[0].dtype)
    for i, x in enumerate(parts):
        merged[:, :, i] = x.transpose(0, 2, 1, 3)  # (B, T, nh, hs): each head straight into its place
    return merged.reshape(B, T, len(parts) * nh * hs)  # a view: merged is contiguous


# --------------------------------------------------------------------------------------------------
# Multi-head attention as a layer: project to queries, keys and values, attend, project back.
# Self-attention takes q, k and v from one sequence with one fused (C, 3C) projection;
# cross-attention (encoder-decoder) takes queries from one sequence and keys/values from another.

class SelfAttentionCache(NamedTuple):
    qkv: Any  # the (C, 3C) projection's linear cache
    attention: AttentionCache
    proj: Any  # the output projection's linear cache


def self_attention_forward(x, p, mask, n_head, kv_cache=None):
    """x: (B, T, C); p: dict with w_qkv (C, 3C), b_qkv, w_proj (C, C), b_proj (the biases may be left out)
    -> out: (B, T, C)

    kv_cache (generation only): a KVLayerCache that holds the keys and values of earlier positions;
    the new ones are appended and the queries attend over all of them.
    """
    qkv, qkv_cache = linear_forward(x, p["w_qkv"], p.get("b_qkv"))  # (B, T, 3C)
    q, k, v = (split_heads(part, n_head) for part in _thirds(qkv))  # each (B, nh, T, hs)
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # (B, nh, T_past + T, hs)
    y, att_cache = attention_forward(q, k, v, mask)
    out, proj_cache = linear_forward(merge_heads(y), p["w_proj"], p.get("b_proj"))
    return out, SelfAttentionCache(qkv_cache, att_cache, proj_cache)


def self_attention_backward(dout, cache, rules=None):
    """dout: (B, T, C) -> dx: (B, T, C), grads: dict with the keys of p (or as rules say: linear_grads)"""
    qkv_cache, att_cache, proj_cache = cache
    n_head = att_cache.q.shape[1]
    dy, g_proj = linear_grads(dout, proj_cache, "w_proj", "b_proj", rules)
    dq, dk, dv = attention_backward(split_heads(dy, n_head), att_cache)
    dx, g_qkv = linear_grads(merge_heads(dq, dk, dv), qkv_cache, "w_qkv", "b_qkv", rules)  # the (B, T, 3C) projection
    return dx, {**g_qkv, **g_proj}


def cross_attention_forward(x, mem, p, mask, n_head):
    """Queries from x, keys and values from another sequence mem (the encoder's states).

    x: (B, T, C), mem: (B, S, C); p: dict with w_q (C, C), b_q, w_kv (C, 2C), b_kv, w_proj (C, C), b_proj;
    mask: bool, broadcastable to (B, nh, T, S) -> out: (B, T, C)
    It has as many parameters as self-attention: the same four C x C projections, fused differently.
    """
    q, q_cache = linear_forward(x, p["w_q"], p["b_q"])  # (B, T, C)
    kv, kv_cache = linear_forward(mem, p["w_kv"], p["b_kv"])  # (B, S, 2C)
    k, v = (split_heads(part, n_head) for part in _halves(kv))  # each (B, nh, S, hs)
    y, att_cache = attention_forward(split_heads(q, n_head), k, v, mask)  # (B, nh, T, hs)
    out, proj_cache = linear_forward(merge_heads(y), p["w_proj"], p["b_proj"])
    return out, (q_cache, kv_cache, att_cache, proj_cache)


def cross_attention_backward(dout, cache):
    """dout: (B, T, C) -> dx: (B, T, C), dmem: (B, S, C), grads: dict with the keys of p"""
    q_cache, kv_cache, att_cache, proj_cache = cache
    n_head = att_cache.q.shape[1]
    dy, dw_proj, db_proj = linear_backward(dout, proj_cache)
    dq, dk, dv = attention_backward(split_heads(dy, n_head), att_cache)
    dmem, dw_kv, db_kv = linear_backward(merge_heads(dk, dv), kv_cache)  # through the (B, S, 2C) projection
    dx, dw_q, db_q = linear_backward(merge_heads(dq), q_cache)
    grads = {"w_q": dw_q, "b_q": db_q, "w_kv": dw_kv, "b_kv": db_kv, "w_proj": dw_proj, "b_proj": db_proj}
    return dx, dmem, grads


def _halves(kv):
    """(B, S, 2C) -> two (B, S, C) views: keys, values"""
    C = kv.shape[-1] // 2
    return kv[..., :C], kv[..., C:]


def _thirds(qkv):
    """(B, T, 3C) -> three (B, T, C) views: queries, keys, values"""
    C = qkv.shape[-1] // 3
    return qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]


# --------------------------------------------------------------------------------------------------
# The MLP: expand to 4C, GELU, project back to C.

def mlp_forward(x, p):
    """x: (B, T, C); p: dict with w_fc (C, 4C), b_fc, w_proj (4C, C), b_proj (the biases may be left out)
    -> out: (B, T, C)"""
    h, fc_cache = linear_forward(x, p["w_fc"], p.get("b_fc"))  # (B, T, 4C)
    a, gelu_cache = gelu_forward(h)
    out, proj_cache = linear_forward(a, p["w_proj"], p.get("b_proj"))
    return out, (fc_cache, gelu_cache, proj_cache)


def mlp_backward(dout, cache, rules=None):
    """dout: (B, T, C) -> dx: (B, T, C), grads: dict with the keys of p (or as rules say: linear_grads)"""
    fc_cache, gelu_cache, proj_cache = cache
    da, g_proj = linear_grads(dout, proj_cache, "w_proj", "b_proj", rules)
    dh = gelu_backward(da, gelu_cache)
    dx, g_fc = linear_grads(dh, fc_cache, "w_fc", "b_fc", rules)
    return dx, {**g_fc, **g_proj}


# --------------------------------------------------------------------------------------------------
# Softmax cross-entropy: the loss is -log p(the actual next token), averaged over the positions
# the loss mask keeps. Its gradient with respect to the logits is p - onehot(target), and we never
# build the one-hot matrix: we subtract 1 at the target entries.

def token_losses(logits, targets):
    """logits: (B, T, V), targets: (B, T) -> nll: (B, T), -log p(target) at every position"""
    return nll_and_probs(logits, targets)[0]


def softmax_cross_entropy_forward_reference(logits, targets, loss_mask=None):
    """softmax_cross_entropy_forward as the formula reads: the kept positions' mean of -log_softmax[target]."""
    xp = xp_of(logits)
    logp = log_softmax(logits)  # (B, T, V)
    nll = -xp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (B, T)
    weights = _position_weights(loss_mask, targets.shape, logits.dtype, xp)  # (B, T), sums to 1
    return (nll * weights).sum(), (xp.exp(logp), targets, weights)


def softmax_cross_entropy_backward_reference(cache):
    """dlogits = weights * (probs - onehot(targets)), the one-hot matrix built."""
    probs, targets, weights = cache
    onehot = xp_of(probs).eye(probs.shape[-1], dtype=probs.dtype)[targets]  # (B, T, V)
    return (probs - onehot) * weights[..., None]


def softmax_cross_entropy_forward(logits, targets, loss_mask=None):
    """logits: (B, T, V), targets: (B, T) ints, loss_mask: (B, T) bool/float or None -> loss (scalar)

    The loss is the mean of -log p(target) over the positions where loss_mask is true (all if None).

    The tuned form of softmax_cross_entropy_forward_reference.
    """
    xp = xp_of(logits)
    nll, probs = nll_and_probs(logits, targets)  # (B, T), (B, T, V)
    weights = _position_weights(loss_mask, targets.shape, probs.dtype, xp)  # (B, T), sums to 1
    loss = (nll * weights).sum()
    return loss, (probs, targets, weights)


def nll_and_probs(logits, targets):
    """-log p(target) = log sum_j exp(logit_j) - logit_target, computed after subtracting the max."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V), largest entry is 0
    shifted_target = xp.take_along_axis(shifted, targets[..., None], axis=-1)  # (B, T, 1)
    probs = xp.exp(shifted, out=shifted)  # in place: shifted is not needed any more
    sumexp = probs.sum(axis=-1, keepdims=True)  # (B, T, 1), at least 1
    probs /= sumexp
    nll = (xp.log(sumexp) - shifted_target)[..., 0]  # (B, T)
    return nll, probs


def softmax_cross_entropy_backward(cache):
    """-> dlogits: (B, T, V) = weights * (probs - onehot(targets))

    The tuned form of softmax_cross_entropy_backward_reference."""
    probs, targets, weights = cache
    xp = xp_of(probs)
    dlogits = probs * weights[..., None]
    B, T = targets.shape
    b, t = xp.meshgrid(xp.arange(B), xp.arange(T), indexing="ij")
    dlogits[b, t, targets] -= weights
    return dlogits


def _position_weights(loss_mask, shape, dtype, xp):
    """Each kept position's share of the mean: 1 / (number kept), 0 elsewhere."""
    if loss_mask is None:
        return xp.full(shape, 1.0 / (shape[0] * shape[1]), dtype=dtype)
    keep = xp.asarray(loss_mask).astype(dtype)
    return keep / max(float(keep.sum()), 1.0)


# ==================================================================================================
# The layers a modern decoder (Llama, SmolLM2, Mistral, Qwen) adds. GPT-2's layers above are unchanged;
# these take their place in minilm.model.Llama:
#
#   LayerNorm  -> RMSNorm   no centring and no shift: only the scale of each vector is normalised
#   learned position embeddings -> RoPE   positions enter as rotations of the queries and keys
#   GELU MLP   -> SwiGLU    a gate: silu(x Wg) * (x Wu), then down to C
#   one key/value per head -> grouped key/value heads (GQA): several query heads share one key/value head


# --------------------------------------------------------------------------------------------------
# RMSNorm: out = x / sqrt(mean(x^2) + eps) * w. LayerNorm without the mean and the bias.

def rmsnorm_forward(x, w, eps=1e-5):
    """x: (B, T, C), w: (C,) -> out: (B, T, C)"""
    rstd = 1.0 / ((x * x).mean(axis=-1, keepdims=True) + eps) ** 0.5  # (B, T, 1), 1 / root mean square
    xhat = x * rstd  # (B, T, C), each vector scaled to a root mean square of 1
    return xhat * w, (xhat, rstd, w)


def rmsnorm_backward(dout, cache):
    """dout: (B, T, C) -> dx: (B, T, C), dw: (C,)"""
    xhat, rstd, w = cache
    dw = (dout * xhat).sum(axis=tuple(range(dout.ndim - 1)))
    dxhat = dout * w
    # xhat depends on x through the root mean square too; one mean term removes that path (LayerNorm's
    # formula without its mean(dxhat) term): dx = rstd * (dxhat - xhat * mean(dxhat * xhat))
    dx = dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    dx *= rstd
    return dx, dw


# --------------------------------------------------------------------------------------------------
# Rotary position embeddings (RoPE): no position vectors are added to the input. Instead each head's
# query and key vectors are cut into pairs (x[2i], x[2i+1]), and the pair at position m is rotated by the
# angle m * theta_i, theta_i = base^(-2i / hs). A query at m and a key at n then meet in q . k through the
# angle (m - n) theta_i only: attention sees relative positions. The pairs are adjacent channels, as in
# the paper, Meta's original checkpoints and GGUF files (Hugging Face's checkpoints pair channel i with
# i + hs/2 instead, and permute the rows of Wq and Wk to match; minilm.pretrained says more).

def rope_tables(head_size, positions, base=10000.0, xp=None, dtype="float32"):
    """positions: (T,) ints -> cos, sin: (T, hs/2), the rotation of each pair at each position.
    Computed on the host in float64 (an angle m * theta_i of a few thousand radians keeps its digits), then
    cast and moved to xp's device: a model makes them once."""
    theta = base ** (-np.arange(0, head_size, 2, dtype=np.float64) / head_size)  # (hs/2,)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * theta  # (T, hs/2)
    xp = xp or np
    return xp.asarray(np.cos(angles), dtype=dtype), xp.asarray(np.sin(angles), dtype=dtype)


def rope_forward(x, cos, sin):
    """x: (..., T, hs), cos, sin: (T, hs/2) -> out: (..., T, hs), each pair rotated:
    out[2i] = x[2i] cos - x[2i+1] sin,  out[2i+1] = x[2i] sin + x[2i+1] cos"""
    xp = xp_of(x)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # (..., T, hs/2) each: the pairs' first and second channels
    out = xp.empty(x.shape, dtype=x.dtype)  # C order, whatever x's layout
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out, (cos, sin)


def rope_backward(dout, cache):
    """dout: (..., T, hs) -> dx. A rotation's transpose is the rotation back (the angle negated)."""
    cos, sin = cache
    return rope_forward(dout, cos, -sin)[0]


# --------------------------------------------------------------------------------------------------
# SiLU (swish): x * sigmoid(x), and the SwiGLU MLP built from it.

def silu_forward_reference(x):
    """silu_forward as the formula reads: x sigmoid(x), sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    s = 0.5 * (1 + xp_of(x).tanh(x / 2))
    return x * s, (x, s)


def silu_backward_reference(dout, cache):
    x, s = cache
    return dout * s * (1 + x * (1 - s))


def silu_forward(x):
    """x: any shape -> out: same shape. sigmoid(x) = (1 + tanh(x / 2)) / 2, which never overflows.

    The tuned form of silu_forward_reference."""
    xp = xp_of(x)
    s = xp.tanh(x * 0.5)
    s += 1.0
    s *= 0.5  # sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    """d/dx [x s(x)] = s + x s (1 - s) = s (1 + x (1 - s))

    The tuned form of silu_backward_reference."""
    x, s = cache
    g = 1.0 - s
    g *= x
    g += 1.0
    g *= s
    g *= dout
    return g


def swiglu_forward(x, p):
    """x: (B, T, C); p: dict with w_fc (C, 2F): the gate's and the up projection's weights side by side
    (one GEMM), w_proj (F, C), and biases b_fc, b_proj where the model has them (Llama's has none)
    -> out = (silu(x Wg) * (x Wu)) Wd: (B, T, C)."""
    h, fc_cache = linear_forward(x, p["w_fc"], p.get("b_fc"))  # (B, T, 2F)
    gate, up = _halves(h)  # (B, T, F) each
    a, silu_cache = silu_forward(gate)
    # the gate decides, channel by channel, how much of up passes
    out, proj_cache = linear_forward(a * up, p["w_proj"], p.get("b_proj"))
    return out, (fc_cache, silu_cache, a, up, proj_cache)


def swiglu_backward(dout, cache, rules=None):
    """dout: (B, T, C) -> dx: (B, T, C), grads: dict with the keys of p (or as rules say: linear_grads)"""
    fc_cache, silu_cache, a, up, proj_cache = cache
    dg, g_proj = linear_grads(dout, proj_cache, "w_proj", "b_proj", rules)  # (B, T, F)
    dh = xp_of(dout).concatenate([silu_backward(dg * up, silu_cache), dg * a], axis=-1)  # (B, T, 2F): dgate, dup
    dx, g_fc = linear_grads(dh, fc_cache, "w_fc", "b_fc", rules)
    return dx, {**g_fc, **g_proj}


# --------------------------------------------------------------------------------------------------
# Grouped-query attention (GQA) with RoPE: n_head query heads, n_kv_head key/value heads (n_kv_head divides
# n_head); query head h reads key/value head h // (n_head / n_kv_head). The KV cache shrinks by that factor.
# n_kv_head == n_head is ordinary multi-head attention; n_kv_head == 1 is multi-query attention.
# The group shares its keys without copying them: queries are viewed as (B, n_kv, group, T, hs) and the keys
# as (B, n_kv, 1, T, hs), and attention_forward's batched matmuls broadcast over the group axis.

class GroupedAttentionCache(NamedTuple):
    qkv: Any  # the fused projection's linear cache
    rope: Any  # (cos, sin) of the T positions, or None (no rotation)
    attention: AttentionCache  # of the grouped view: att is (B, nkv, group, Tq, Tk)
    proj: Any  # the output projection's linear cache


def grouped_attention_forward(x, p, mask, n_head, n_kv_head, rope, kv_cache=None):
    """x: (B, T, C); p: dict with w_qkv (C, (nh + 2 nkv) hs) (queries, keys, values side by side) and
    w_proj (nh hs, C), and biases b_qkv, b_proj where the model has them (Llama's has none); mask: bool,
    broadcastable to (B, nh, T, T_k); rope: (cos, sin) of these T positions, or None (positions enter
    elsewhere); kv_cache: a KVLayerCache of n_kv_head heads (generation only) -> out: (B, T, C)"""
    B, T, _ = x.shape
    hs = p["w_proj"].shape[0] // n_head
    group = n_head // n_kv_head
    qkv, qkv_cache = linear_forward(x, p["w_qkv"], p.get("b_qkv"))  # (B, T, (nh + 2 nkv) hs)
    q, k, v = _split_sizes(qkv, [n_head * hs, n_kv_head * hs, n_kv_head * hs])
    q, k, v = split_heads(q, n_head), split_heads(k, n_kv_head), split_heads(v, n_kv_head)  # (B, nh|nkv, T, hs)
    if rope is not None:  # queries and keys rotated by position
        q, k = rope_forward(q, *rope)[0], rope_forward(k, *rope)[0]
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # (B, nkv, T_past + T, hs): keys are cached already rotated
    y, att_cache = attention_forward(q.reshape(B, n_kv_head, group, T, hs), k[:, :, None], v[:, :, None],
                                     _group_mask(mask, n_kv_head, group))  # (B, nkv, group, T, hs)
    out, proj_cache = linear_forward(merge_heads(y.reshape(B, n_head, T, hs)), p["w_proj"], p.get("b_proj"))
    return out, GroupedAttentionCache(qkv_cache, rope, att_cache, proj_cache)


def grouped_attention_backward(dout, cache, rules=None):
    """dout: (B, T, C) -> dx: (B, T, C), grads: dict with the keys of p (or as rules say: linear_grads)"""
    qkv_cache, rope, att_cache, proj_cache = cache
    B, n_kv_head, group, T, hs = att_cache.q.shape
    dy, g_proj = linear_grads(dout, proj_cache, "w_proj", "b_proj", rules)
    dy = split_heads(dy, n_kv_head * group).reshape(B, n_kv_head, group, T, hs)
    dq, dk, dv = attention_backward(dy, att_cache)  # dk, dv: (B, nkv, group, T, hs), one per query head
    dk, dv = dk.sum(axis=2), dv.sum(axis=2)  # a shared key gets the gradients of every query head that read it
    dq = dq.reshape(B, n_kv_head * group, T, hs)
    if rope is not None:
        dq, dk = rope_backward(dq, rope), rope_backward(dk, rope)
    dqkv = xp_of(dout).concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
    dx, g_qkv = linear_grads(dqkv, qkv_cache, "w_qkv", "b_qkv", rules)
    return dx, {**g_qkv, **g_proj}


def _split_sizes(x, sizes):
    """(..., sum(sizes)) -> views of the given widths along the last axis"""
    bounds = [0]
    for s in sizes:
        bounds.append(bounds[-1] + s)
    return [x[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _group_mask(mask, n_kv_head, group):
    """A mask broadcastable to (B, nh, Tq, Tk) -> one broadcastable to (B, nkv, group, Tq, Tk)."""
    if mask.ndim < 4:
        return mask  # (Tq, Tk) or (1, Tq, Tk): the same for every head
    B, heads, Tq, Tk = mask.shape
    if heads == 1:
        return mask[:, :, None]  # (B, 1, 1, Tq, Tk), a padding mask
    return mask.reshape(B, n_kv_head, group, Tq, Tk)  # one mask per query head
