"""Single operations of config d's training step on a GPU, each timed alone: fused kernel against readable
code, and the candidates for the next speed-up (column sums, strided attention inputs, launch cost).

    python benchmarks/gpu_micro.py
"""
import numpy as np
from common import CONFIGS, median_time, sync_for

from minilm import layers, masks
from minilm.backend import get_xp


def main():
    cp = get_xp("cuda")
    sync = sync_for(cp)
    c = CONFIGS["d"]
    B, T, C, nh = c["batch"], c["block_size"], c["d_model"], c["n_head"]
    rng = np.random.default_rng(0)

    def randn(*shape):
        return cp.asarray(rng.standard_normal(shape), dtype=cp.float32)

    x, x4, w, b = randn(B, T, C), randn(B, T, 4 * C), randn(C), randn(C)
    scores, datt = randn(B, nh, T, T), randn(B, nh, T, T)
    att = layers.softmax(randn(B, nh, T, T))
    row_dot = (att * datt).sum(axis=-1, keepdims=True)
    causal = masks.causal_mask(T)
    qkv = randn(B, T, 3 * C)
    q, k, _ = (layers.split_heads(part, nh) for part in layers._thirds(qkv))  # strided views, as in the model
    q_c, k_c = cp.ascontiguousarray(q), cp.ascontiguousarray(k)
    ones = cp.ones(B * T, dtype=cp.float32)
    _, ln_cache = layers.layernorm_forward(x, w, b)
    tiny = cp.ones(1, dtype=cp.float32)
    ops = {
        "layernorm forward, fused": lambda: layers.layernorm_forward(x, w, b),
        "layernorm forward, readable": lambda: layers.layernorm_forward.plain(x, w, b),
        "layernorm backward, fused": lambda: layers.layernorm_backward(x, ln_cache),
        "layernorm backward, readable": lambda: layers.layernorm_backward.plain(x, ln_cache),
        "gelu forward (B,T,4C), fused": lambda: layers.gelu_forward(x4),
        "gelu forward (B,T,4C), readable": lambda: layers.gelu_forward.plain(x4),
        "masked softmax (B,nh,T,T), fused": lambda: layers.masked_softmax(scores, causal),
        "masked softmax (B,nh,T,T), readable": lambda: layers.masked_softmax.plain(scores, cp.asarray(causal)),
        "softmax backward, fused": lambda: layers.softmax_backward(datt, att, row_dot),
        "softmax backward, readable": lambda: layers.softmax_backward.plain(datt, att, row_dot),
        "column sum (B*T,4C) .sum(axis=0)": lambda: x4.reshape(-1, 4 * C).sum(axis=0),
        "column sum (B*T,4C) ones @": lambda: ones @ x4.reshape(-1, 4 * C),
        "scores q @ k^T, strided views": lambda: q @ k.swapaxes(-1, -2),
        "scores q @ k^T, contiguous": lambda: q_c @ k_c.swapaxes(-1, -2),
        "one tiny elementwise launch": lambda: tiny + tiny,
    }
    print(f"{'operation (config d shapes, float32)':<42} {'ms':>8}")
    for name, op in ops.items():
        print(f"{name:<42} {median_time(op, repeats=20, warmup=3, sync=sync) * 1e3:8.3f}")


if __name__ == "__main__":
    main()
