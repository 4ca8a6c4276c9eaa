"""Every layer's backward pass against finite differences, in float64."""
import numpy as np
import pytest

from minilm import layers, masks
from minilm.finite_differences import layer_gradient_errors, relative_error

TOL = 1e-6
B, T, C, NH = 2, 5, 8, 2


def randn(rng, *shape):
    return rng.standard_normal(shape)


def assert_all_close(errors):
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"


def test_linear(rng):
    inputs = {"x": randn(rng, B, T, C), "w": randn(rng, C, 3), "b": randn(rng, 3)}
    assert_all_close(layer_gradient_errors(layers.linear_forward, layers.linear_backward, inputs, ["x", "w", "b"]))


def test_linear_with_a_transposed_weight_like_the_tied_head(rng):
    """The head multiplies by wte.T, a transposed view: its weight gradient is made in wte's own layout."""
    wte = randn(rng, 3, C)  # (V, C)
    inputs = {"x": randn(rng, B, T, C), "w": wte.T}
    assert_all_close(layer_gradient_errors(layers.linear_forward, layers.linear_backward, inputs, ["x", "w"]))
    dout = randn(rng, B, T, 3)
    _, dw, _ = layers.linear_backward(dout, layers.linear_forward(inputs["x"], wte.T)[1])
    _, dw_plain, _ = layers.linear_backward(dout, layers.linear_forward(inputs["x"], wte.T.copy())[1])
    assert dw.T.flags.c_contiguous and dw_plain.flags.c_contiguous
    assert relative_error(dw, dw_plain) < 1e-14


def test_layernorm(rng):
    inputs = {"x": randn(rng, B, T, C) * 3 + 1, "w": randn(rng, C), "b": randn(rng, C)}
    assert_all_close(layer_gradient_errors(layers.layernorm_forward, layers.layernorm_backward, inputs, ["x", "w", "b"]))


def test_gelu(rng):
    inputs = {"x": randn(rng, B, T, C) * 2}
    assert_all_close(layer_gradient_errors(layers.gelu_forward, layers.gelu_backward, inputs, ["x"]))


def test_embedding_with_repeated_tokens(rng):
    idx = np.array([[1, 3, 1, 0, 3], [2, 2, 2, 1, 0]])  # repeats: gradients must accumulate
    wte, wpe = randn(rng, 4, C), randn(rng, 7, C)

    def forward(wte, wpe):
        return layers.embedding_forward(idx, wte, wpe, pos0=1)

    assert_all_close(layer_gradient_errors(forward, layers.embedding_backward, {"wte": wte, "wpe": wpe}, ["wte", "wpe"]))


@pytest.mark.parametrize("mask_name", ["causal", "bidirectional", "prefix", "cache"])
def test_attention_under_every_mask(rng, mask_name):
    Tk = T + 3 if mask_name == "cache" else T
    mask = {"causal": masks.causal_mask(T), "bidirectional": masks.bidirectional_mask(T),
            "prefix": masks.prefix_lm_mask(T, 2), "cache": masks.causal_mask(T, Tk)}[mask_name]
    inputs = {"q": randn(rng, B, NH, T, 4), "k": randn(rng, B, NH, Tk, 4), "v": randn(rng, B, NH, Tk, 4)}
    errors = layer_gradient_errors(layers.attention_forward, layers.attention_backward, inputs, ["q", "k", "v"], mask=mask)
    assert_all_close(errors)


def composite_check(forward, backward, x, p, **kwargs):
    """Gradient check of a layer whose parameters come in a dict and whose backward returns (dx, grads)."""
    arrays = {"x": x, **p}

    def fwd(**arrays):
        return forward(arrays["x"], {k: arrays[k] for k in p}, **kwargs)

    def bwd(dout, cache):
        dx, grads = backward(dout, cache)
        return (dx, *(grads[k] for k in p))

    return layer_gradient_errors(fwd, bwd, arrays, list(arrays))


@pytest.mark.parametrize("mask_name", ["causal", "bidirectional", "prefix"])
def test_self_attention_layer(rng, mask_name):
    mask = {"causal": masks.causal_mask(T), "bidirectional": masks.bidirectional_mask(T),
            "prefix": masks.prefix_lm_mask(T, 3)}[mask_name]
    p = {"w_qkv": randn(rng, C, 3 * C) * 0.3, "b_qkv": randn(rng, 3 * C) * 0.1,
         "w_proj": randn(rng, C, C) * 0.3, "b_proj": randn(rng, C) * 0.1}
    errors = composite_check(layers.self_attention_forward, layers.self_attention_backward,
                             randn(rng, B, T, C), p, mask=mask, n_head=NH)
    assert_all_close(errors)


def test_mlp(rng):
    p = {"w_fc": randn(rng, C, 4 * C) * 0.3, "b_fc": randn(rng, 4 * C) * 0.1,
         "w_proj": randn(rng, 4 * C, C) * 0.3, "b_proj": randn(rng, C) * 0.1}
    assert_all_close(composite_check(layers.mlp_forward, layers.mlp_backward, randn(rng, B, T, C), p))


@pytest.mark.parametrize("with_mask", [False, True])
def test_softmax_cross_entropy(rng, with_mask):
    logits = randn(rng, B, T, 7) * 3
    targets = rng.integers(0, 7, (B, T))
    loss_mask = rng.random((B, T)) < 0.5 if with_mask else None

    def forward(logits):
        return layers.softmax_cross_entropy_forward(logits, targets, loss_mask)

    out, cache = forward(logits)
    analytic = layers.softmax_cross_entropy_backward(cache)
    from minilm.finite_differences import gradient_errors
    errors = gradient_errors(lambda: forward(logits)[0], {"logits": logits}, {"logits": analytic})
    assert_all_close(errors)


def test_cross_entropy_is_mean_negative_log_prob_on_kept_positions(rng):
    logits = randn(rng, B, T, 7)
    targets = rng.integers(0, 7, (B, T))
    keep = np.zeros((B, T), bool)
    keep[0, 2] = keep[1, 4] = True
    loss, _ = layers.softmax_cross_entropy_forward(logits, targets, keep)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -(np.log(p[0, 2, targets[0, 2]]) + np.log(p[1, 4, targets[1, 4]])) / 2
    assert abs(loss - expected) < 1e-12


def test_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 1001.0, 1002.0]])
    p = layers.softmax(x)
    assert np.all(np.isfinite(p)) and abs(p.sum() - 1) < 1e-12
    loss, _ = layers.softmax_cross_entropy_forward(np.array([[[1e4, 0.0, -1e4]]]), np.array([[2]]))
    assert np.isfinite(loss) and abs(loss - 2e4) < 1e-6


def test_attention_rows_sum_to_one_and_masked_keys_get_zero_weight(rng):
    q = k = v = randn(rng, 1, 1, 4, 3)
    _, cache = layers.attention_forward(q, k, v, masks.causal_mask(4))
    att = cache[3][0, 0]
    assert np.allclose(att.sum(-1), 1)
    assert np.all(att[np.triu_indices(4, 1)] == 0)


def test_float32_layers_keep_float32(rng):
    x = randn(rng, B, T, C).astype(np.float32)
    out, _ = layers.gelu_forward(x)
    out2, _ = layers.layernorm_forward(x, np.ones(C, np.float32), np.zeros(C, np.float32))
    assert out.dtype == out2.dtype == np.float32


def test_relative_error_detects_a_wrong_gradient():
    assert relative_error(np.ones(3), np.ones(3) * 1.01) > 1e-3


# ---- LoRA: a frozen linear layer plus a trainable low-rank correction

def lora_inputs(rng, rank=3):
    return {"x": randn(rng, B, T, C), "w": randn(rng, C, 6), "lora_a": randn(rng, C, rank),
            "lora_b": randn(rng, rank, 6), "b": randn(rng, 6)}


def test_lora_trains_its_adapters_and_leaves_the_frozen_weight_alone(rng):
    inputs = lora_inputs(rng)
    backward = lambda dout, cache: tuple(g for g in layers.lora_backward(dout, cache) if g is not None)
    assert_all_close(layer_gradient_errors(layers.lora_forward, backward, inputs, ["x", "lora_a", "lora_b"], scale=0.7))
    dx, dw, da, db_lora, db = layers.lora_backward(randn(rng, B, T, 6), layers.lora_forward(**inputs, scale=0.7)[1])
    assert dw is None and db is None and da.shape == (C, 3) and db_lora.shape == (3, 6)


def test_lora_unfrozen_trains_every_weight(rng):
    backward = lambda dout, cache: layers.lora_backward(dout, cache, frozen=False)
    assert_all_close(layer_gradient_errors(layers.lora_forward, backward, lora_inputs(rng, rank=1),
                                 ["x", "w", "lora_a", "lora_b", "b"], scale=2.0))


def test_lora_is_the_linear_layer_of_the_merged_weight(rng):
    """x W + b + s (x A) B = x (W + s A B) + b, and the adapters' gradients are the merged weight's gradient
    carried through the product; with B = 0 (its start) the layer is the frozen one."""
    inputs, dout, scale = lora_inputs(rng), randn(rng, B, T, 6), 0.5
    out, cache = layers.lora_forward(**inputs, scale=scale)
    merged = layers.lora_merge(inputs["w"], inputs["lora_a"], inputs["lora_b"], scale)
    plain, plain_cache = layers.linear_forward(inputs["x"], merged, inputs["b"])
    assert relative_error(out, plain) < 1e-12
    _, dw_merged, _ = layers.linear_backward(dout, plain_cache)
    _, _, da, db_lora, _ = layers.lora_backward(dout, cache)
    da_merged, db_merged = layers.lora_grads_from_merged(dw_merged, inputs["lora_a"], inputs["lora_b"], scale)
    assert relative_error(da, da_merged) < 1e-12 and relative_error(db_lora, db_merged) < 1e-12
    start = layers.lora_forward(**{**inputs, "lora_b": np.zeros((3, 6))}, scale=scale)[0]
    assert np.array_equal(start, layers.linear_forward(inputs["x"], inputs["w"], inputs["b"])[0])


def test_a_frozen_linear_layer_gives_only_its_input_gradient(rng):
    inputs = {"x": randn(rng, B, T, C), "w": randn(rng, C, 3), "b": randn(rng, 3)}
    cache = layers.linear_forward(**inputs)[1]
    dout = randn(rng, B, T, 3)
    dx, dw, db = layers.linear_backward(dout, cache, weight_grads=False)
    assert dw is None and db is None and np.array_equal(dx, layers.linear_backward(dout, cache)[0])
