"""The Llama family: RMSNorm, RoPE, SwiGLU and grouped key/value heads against finite differences (float64),
and the whole model: gradients under every mask, causality, the KV cache, checkpoints, and GPT unchanged."""
import numpy as np
import pytest

from minilm import layers, masks
from minilm.checkpoint import load_model, save_checkpoint
from minilm.errors import MinilmError
from minilm.generate import generate
from minilm.finite_differences import gradient_errors, layer_gradient_errors
from minilm.model import KVCache, Llama, LlamaConfig
from tests.helpers import roughen
from tests.test_layers import assert_all_close, composite_check, randn

B, T, C = 2, 5, 8


def test_rmsnorm(rng):
    inputs = {"x": randn(rng, B, T, C) * 3 + 1, "w": randn(rng, C)}
    assert_all_close(layer_gradient_errors(layers.rmsnorm_forward, layers.rmsnorm_backward, inputs, ["x", "w"]))


def test_rmsnorm_gives_unit_root_mean_square(rng):
    out, _ = layers.rmsnorm_forward(randn(rng, B, T, C) * 7, np.ones(C), eps=0.0)
    assert np.allclose((out * out).mean(-1), 1)


def test_rope(rng):
    cos, sin = layers.rope_tables(6, np.arange(3, 3 + T), base=100.0, dtype="float64")
    inputs = {"x": randn(rng, B, 3, T, 6)}
    assert_all_close(layer_gradient_errors(layers.rope_forward, layers.rope_backward, inputs, ["x"], cos=cos, sin=sin))


def test_rope_scores_depend_on_relative_position_only(rng):
    """q at m and k at n meet through m - n: shifting both positions leaves q . k unchanged."""
    q, k = randn(rng, 1, 8), randn(rng, 1, 8)

    def score(m, n):
        qm = layers.rope_forward(q, *layers.rope_tables(8, [m], dtype="float64"))[0]
        kn = layers.rope_forward(k, *layers.rope_tables(8, [n], dtype="float64"))[0]
        return float((qm * kn).sum())

    assert abs(score(7, 3) - score(104, 100)) < 1e-10
    assert abs(score(7, 3) - score(7, 4)) > 1e-3
    assert abs(score(0, 0) - float((q * k).sum())) < 1e-12  # position 0 is no rotation


def test_silu(rng):
    inputs = {"x": randn(rng, B, T, C) * 3}
    assert_all_close(layer_gradient_errors(layers.silu_forward, layers.silu_backward, inputs, ["x"]))
    big, _ = layers.silu_forward(np.array([-1000.0, 1000.0], dtype=np.float32))
    assert np.array_equal(big, [0.0, 1000.0])  # no overflow warning, no NaN


def test_swiglu(rng):
    p = {"w_fc": randn(rng, C, 2 * 12) * 0.3, "w_proj": randn(rng, 12, C) * 0.3}
    assert_all_close(composite_check(layers.swiglu_forward, layers.swiglu_backward, randn(rng, B, T, C), p))


def gqa_mask(name, Tk=T):
    if name == "padding":  # (B, 1, Tq, Tk): causal, and row 1's last key is padding
        keys = np.ones((B, 1, 1, Tk), bool)
        keys[1, ..., -1] = False
        return masks.causal_mask(T) & keys
    if name == "per-head":  # (B, nh, Tq, Tk): every query head its own mask
        mask = np.random.default_rng(5).random((B, 4, T, Tk)) < 0.7
        mask[..., 0] = True  # no query without a key
        return mask
    return {"causal": masks.causal_mask(T), "bidirectional": masks.bidirectional_mask(T),
            "prefix": masks.prefix_lm_mask(T, 2)}[name]


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
@pytest.mark.parametrize("mask_name", ["causal", "bidirectional", "prefix", "padding", "per-head"])
def test_grouped_attention(rng, n_kv_head, mask_name):
    nh, hs = 4, 4
    C_ = nh * hs
    p = {"w_qkv": randn(rng, C_, C_ + 2 * n_kv_head * hs) * 0.3, "w_proj": randn(rng, C_, C_) * 0.3}
    rope = layers.rope_tables(hs, np.arange(T), base=50.0, dtype="float64")
    errors = composite_check(layers.grouped_attention_forward, layers.grouped_attention_backward,
                             randn(rng, B, T, C_), p, mask=gqa_mask(mask_name), n_head=nh, n_kv_head=n_kv_head, rope=rope)
    assert_all_close(errors)


def test_grouped_attention_equals_multi_head_attention_with_repeated_keys(rng):
    """GQA is multi-head attention whose key/value projections repeat each kv head for its group."""
    nh, nkv, hs = 4, 2, 4
    C_ = nh * hs
    x = randn(rng, B, T, C_)
    wq, wk, wv = randn(rng, C_, C_), randn(rng, C_, nkv * hs), randn(rng, C_, nkv * hs)
    w_proj = randn(rng, C_, C_)
    rope = layers.rope_tables(hs, np.arange(T), dtype="float64")
    gqa, _ = layers.grouped_attention_forward(x, {"w_qkv": np.concatenate([wq, wk, wv], 1), "w_proj": w_proj},
                                              masks.causal_mask(T), nh, nkv, rope)
    repeat = lambda w: np.repeat(w.reshape(C_, nkv, hs), nh // nkv, axis=1).reshape(C_, C_)  # head h reads kv head h // 2
    mha, _ = layers.grouped_attention_forward(x, {"w_qkv": np.concatenate([wq, repeat(wk), repeat(wv)], 1), "w_proj": w_proj},
                                              masks.causal_mask(T), nh, nh, rope)
    assert np.allclose(gqa, mha, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# The whole model

V, TT = 13, 6


def tiny_llama(dtype="float64", **kw):
    config = dict(vocab_size=V, block_size=10, n_layer=2, n_head=4, n_kv_head=2, d_model=8, d_ff=12,
                  rope_base=30.0, dtype=dtype) | kw
    return Llama(LlamaConfig(**config), seed=0)


MASKS = {"causal": None, "bidirectional": masks.bidirectional_mask(TT), "prefix": masks.prefix_lm_mask(TT, 3)}


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("tied", [True, False])
def test_whole_model_gradients_match_finite_differences(rng, mask_name, tied):
    """Every parameter, tied head or a head of its own, with a loss mask, under every mask (float64)."""
    model = roughen(tiny_llama(tie_embeddings=tied), rng, 0.1)
    batch = (rng.integers(0, V, (2, TT)), rng.integers(0, V, (2, TT)), rng.random((2, TT)) < 0.6, MASKS[mask_name])
    grads = model.loss_and_grads(*batch)[1]
    errors = gradient_errors(lambda: model.loss_and_grads(*batch)[0], model.params, grads)
    assert list(grads) == list(model.params) and all(np.abs(g).max() > 0 for g in grads.values())
    assert max(errors.values()) <= 1e-6, {k: e for k, e in errors.items() if e > 1e-6}


def test_causal(rng):
    """Changing token t changes the logits at t and after, never before."""
    model = roughen(tiny_llama(), rng, 0.1)
    idx = rng.integers(0, V, (1, TT))
    logits = model.forward(idx)
    for t in range(TT):
        moved = model.forward(np.where(np.arange(TT) == t, (idx + 1) % V, idx)) != logits  # (1, TT, V)
        assert np.array_equal(moved.any(axis=-1)[0], np.arange(TT) >= t), f"token {t}"


@pytest.mark.parametrize("window", [None, 3])
def test_kv_cache_equals_recompute(rng, window):
    model = roughen(tiny_llama(dtype="float32", attention_window=window), rng, 0.3)
    idx = rng.integers(0, V, (1, 10))
    full = model.forward(idx)
    cache = KVCache(model)
    assert cache.layers[0].k.shape[1] == 2  # n_kv_head heads cached, not n_head
    pieces = [model.forward(idx[:, a:b], kv_cache=cache) for a, b in [(0, 4), (4, 5), (5, 9), (9, 10)]]
    assert np.allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)
    assert generate(model, [1, 2, 3], 7, temperature=0) == generate(model, [1, 2, 3], 7, temperature=0, use_cache=False)


def test_rope_makes_the_order_matter(rng):
    """Without position vectors the model still tells "a b" from "b a": RoPE is its only source of order."""
    model = roughen(tiny_llama(), rng, 0.3)
    assert not np.allclose(model.forward(np.array([[1, 2]]))[0, -1], model.forward(np.array([[2, 1]]))[0, -1])


def test_overfits_one_batch(rng):
    from minilm.optim import AdamW
    model = Llama(LlamaConfig(vocab_size=32, block_size=16, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=64), seed=0)
    opt = AdamW(model.params, lr=1e-2, weight_decay=0.0)
    x, y = rng.integers(0, 32, (4, 16)), rng.integers(0, 32, (4, 16))
    for _ in range(150):
        loss, grads = model.loss_and_grads(x, y)
        opt.step(grads)
    assert loss < 0.05


def test_trains_through_the_trainer_on_a_token_array(tmp_path, rng):
    from minilm.train import TrainConfig, Trainer
    model = tiny_llama(dtype="float32")
    tokens = rng.integers(0, V, 400)
    trainer = Trainer(model, tokens, tokens[:100], TrainConfig(steps=5, batch_size=4, eval_every=5), str(tmp_path / "m.npz"))
    history = trainer.run(progress=False)
    assert len(history.losses) == 5 and all(np.isfinite(history.losses))


def test_checkpoint_rebuilds_a_llama(tmp_path, rng):
    model = roughen(tiny_llama(dtype="float32", tie_embeddings=False), rng, 0.1)
    path = str(tmp_path / "llama.npz")
    save_checkpoint(path, model.params, model.checkpoint_meta())
    loaded, _, meta = load_model(path)
    assert type(loaded) is Llama and meta["model"] == "Llama" and loaded.config == model.config
    idx = rng.integers(0, V, (1, TT))
    assert np.array_equal(loaded.forward(idx), model.forward(idx))


@pytest.mark.parametrize("kw, message", [
    ({"n_head": 4, "n_kv_head": 3}, "multiple of n_kv_head"),
    ({"d_model": 12, "n_head": 4}, "even"),
    ({"n_kv_head": 0}, "positive integer"),
    ({"d_ff": 0}, "positive integer"),
    ({"rope_base": 1.0}, "rope_base"),
])
def test_bad_config_is_one_clear_error(kw, message):
    with pytest.raises(MinilmError, match=message):
        LlamaConfig(**({"vocab_size": V, "block_size": 8} | kw))
