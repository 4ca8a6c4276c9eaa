"""The architecture study's model (minilm.model.ModifiedGPT): GPT with the Llama family's five changes, one
switch each. All off it is GPT and all on it is Llama, bit for bit; every arm's gradients against finite
differences (float64) under every mask; causality; the KV cache; checkpoints; the layers' optional biases."""
import numpy as np
import pytest

from minilm import layers, masks
from minilm.checkpoint import load_model, save_checkpoint
from minilm.errors import MinilmError
from minilm.finite_differences import gradient_errors
from minilm.model import GPT, GPTConfig, KVCache, Llama, LlamaConfig, ModifiedConfig, ModifiedGPT
from tests.helpers import roughen
from tests.test_layers import assert_all_close, composite_check, randn

V, TT = 13, 6
# each arm of the study: one change alone, and all of them (the Llama recipe)
ARMS = {"plain": {}, "rmsnorm": {"rmsnorm": True}, "swiglu": {"swiglu": True}, "rope": {"rope": True},
        "no_bias": {"bias": False}, "gqa": {"n_kv_head": 1},
        "llama": {"rmsnorm": True, "swiglu": True, "rope": True, "bias": False, "n_kv_head": 2}}
MASKS = {"causal": None, "bidirectional": masks.bidirectional_mask(TT), "prefix": masks.prefix_lm_mask(TT, 3)}


def tiny(dtype="float64", **kw):
    config = dict(vocab_size=V, block_size=10, n_layer=2, n_head=4, d_model=8, dtype=dtype) | kw
    return ModifiedGPT(ModifiedConfig(**config), seed=0)


def batch(rng, mask=None):
    return rng.integers(0, V, (2, TT)), rng.integers(0, V, (2, TT)), rng.random((2, TT)) < 0.6, mask


def test_every_switch_off_is_gpt_bit_for_bit(rng):
    config = dict(vocab_size=V, block_size=10, n_layer=2, n_head=4, d_model=8, dtype="float32")
    gpt, modified = GPT(GPTConfig(**config), seed=3), ModifiedGPT(ModifiedConfig(**config), seed=3)
    assert list(gpt.params) == list(modified.params)
    assert all(np.array_equal(gpt.params[n], modified.params[n]) for n in gpt.params)
    b = batch(rng)
    (loss, grads), (loss_m, grads_m) = gpt.loss_and_grads(*b), modified.loss_and_grads(*b)
    assert loss == loss_m and all(np.array_equal(grads[n], grads_m[n]) for n in grads)


def test_every_switch_on_is_llama_bit_for_bit(rng):
    config = dict(vocab_size=V, block_size=10, n_layer=2, n_head=4, n_kv_head=2, d_model=8, d_ff=12,
                  rope_base=30.0, dtype="float32")
    llama = Llama(LlamaConfig(**config), seed=3)
    modified = ModifiedGPT(ModifiedConfig(**config, rmsnorm=True, swiglu=True, rope=True, bias=False), seed=3)
    assert list(llama.params) == list(modified.params)
    assert all(np.array_equal(llama.params[n], modified.params[n]) for n in llama.params)
    b = batch(rng)
    (loss, grads), (loss_m, grads_m) = llama.loss_and_grads(*b), modified.loss_and_grads(*b)
    assert loss == loss_m and all(np.array_equal(grads[n], grads_m[n]) for n in grads)


@pytest.mark.parametrize("arm", list(ARMS))
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_every_arm_gradients_match_finite_differences(rng, arm, mask_name):
    """Every parameter tensor, 16 of its entries chosen at random (GPT's and Llama's own tests check them all)."""
    model = roughen(tiny(**ARMS[arm]), rng, 0.1)
    b = batch(rng, MASKS[mask_name])
    grads = model.loss_and_grads(*b)[1]
    errors = gradient_errors(lambda: model.loss_and_grads(*b)[0], model.params, grads, max_entries=16)
    assert list(grads) == list(model.params) and all(np.abs(g).max() > 0 for g in grads.values())
    assert max(errors.values()) <= 1e-6, {k: e for k, e in errors.items() if e > 1e-6}


@pytest.mark.parametrize("arm", list(ARMS))
def test_causal(rng, arm):
    """Changing token t changes the logits at t and after, never before."""
    model = roughen(tiny(**ARMS[arm]), rng, 0.1)
    idx = rng.integers(0, V, (1, TT))
    logits = model.forward(idx)
    for t in range(TT):
        moved = model.forward(np.where(np.arange(TT) == t, (idx + 1) % V, idx)) != logits  # (1, TT, V)
        assert np.array_equal(moved.any(axis=-1)[0], np.arange(TT) >= t), f"{arm}: token {t}"


@pytest.mark.parametrize("arm", ["rope", "gqa", "llama"])
def test_kv_cache_equals_recompute(rng, arm):
    model = roughen(tiny(dtype="float32", **ARMS[arm]), rng, 0.3)
    idx = rng.integers(0, V, (1, 10))
    full = model.forward(idx)
    cache = KVCache(model)
    assert cache.layers[0].k.shape[1] == model.config.n_kv_head
    pieces = [model.forward(idx[:, a:b], kv_cache=cache) for a, b in [(0, 4), (4, 5), (5, 9), (9, 10)]]
    assert np.allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)


def test_parameters_of_each_arm(rng):
    """The study compares arms at one width: SwiGLU's hidden width 8C/3 keeps the MLP's parameters, one key/value
    head removes two thirds of the key and value projections, no bias removes every linear layer's bias."""
    plain = tiny(**ARMS["plain"]).num_params(non_embedding=True)
    C = 24
    wide = dict(d_model=C, n_head=2)
    assert ModifiedConfig(V, 10, d_model=C).d_ff == 64  # 8 * 24 / 3
    mlp = lambda m: sum(a.size for n, a in m.params.items() if ".mlp.w" in n)
    assert mlp(tiny(**wide, swiglu=True)) == mlp(tiny(**wide))
    assert tiny(**ARMS["no_bias"]).num_params(non_embedding=True) < plain
    assert not any(".b_" in n for n in tiny(**ARMS["no_bias"]).params)
    assert "wpe" not in tiny(**ARMS["rope"]).params


def test_checkpoint_rebuilds_every_arm(tmp_path, rng):
    for arm, switches in ARMS.items():
        model = roughen(tiny(dtype="float32", **switches), rng, 0.1)
        path = str(tmp_path / f"{arm}.npz")
        save_checkpoint(path, model.params, model.checkpoint_meta())
        loaded = load_model(path)[0]
        idx = rng.integers(0, V, (1, TT))
        assert type(loaded) is ModifiedGPT and loaded.config == model.config, arm
        assert np.array_equal(loaded.forward(idx), model.forward(idx)), arm


@pytest.mark.parametrize("kw, message", [({"n_kv_head": 3}, "multiple of n_kv_head"),
                                         ({"rope": True, "d_model": 12}, "must be even")])
def test_bad_config_is_one_clear_error(kw, message):
    with pytest.raises(MinilmError, match=message):
        ModifiedConfig(**({"vocab_size": V, "block_size": 10, "n_head": 4, "d_model": 8} | kw))


@pytest.mark.parametrize("forward, backward, width", [(layers.mlp_forward, layers.mlp_backward, 4 * 8),
                                                      (layers.swiglu_forward, layers.swiglu_backward, 2 * 12)])
def test_mlps_with_and_without_biases(rng, forward, backward, width):
    hidden = width if forward is layers.mlp_forward else width // 2
    p = {"w_fc": randn(rng, 8, width) * 0.3, "w_proj": randn(rng, hidden, 8) * 0.3}
    assert_all_close(composite_check(forward, backward, randn(rng, 2, 5, 8), p))
    p |= {"b_fc": randn(rng, width), "b_proj": randn(rng, 8)}
    assert_all_close(composite_check(forward, backward, randn(rng, 2, 5, 8), p))


def test_grouped_attention_with_biases_and_without_rope(rng):
    nh, nkv, hs = 4, 2, 4
    C = nh * hs
    p = {"w_qkv": randn(rng, C, C + 2 * nkv * hs) * 0.3, "b_qkv": randn(rng, C + 2 * nkv * hs),
         "w_proj": randn(rng, C, C) * 0.3, "b_proj": randn(rng, C)}
    assert_all_close(composite_check(layers.grouped_attention_forward, layers.grouped_attention_backward,
                                     randn(rng, 2, 5, C), p, mask=masks.causal_mask(5), n_head=nh, n_kv_head=nkv,
                                     rope=None))
