"""The whole model: gradients under every mask, causality, overfitting, input checks."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError, masks
from minilm.finite_differences import gradient_errors
from tests.helpers import roughen

V, T = 11, 6


def tiny_model(dtype="float64", **kw):
    config = dict(vocab_size=V, block_size=8, n_layer=2, n_head=2, d_model=8, dtype=dtype) | kw
    return GPT(GPTConfig(**config), seed=0)


def perturbed(model, rng):
    return roughen(model, rng, 0.1)


MASKS = {"causal": None, "bidirectional": masks.bidirectional_mask(T), "prefix": masks.prefix_lm_mask(T, 3)}
MASKS["windowed"] = masks.windowed_mask(T, 3)  # lesson 05's locality bias: the last 3 positions


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("with_loss_mask", [False, True])
def test_whole_model_gradients_match_finite_differences(rng, mask_name, with_loss_mask):
    model = perturbed(tiny_model(), rng)
    idx, targets = rng.integers(0, V, (2, T)), rng.integers(0, V, (2, T))
    loss_mask = (rng.random((2, T)) < 0.6) if with_loss_mask else None
    mask = MASKS[mask_name]
    loss, grads = model.loss_and_grads(idx, targets, loss_mask, mask)
    assert list(grads) == list(model.params)
    errors = gradient_errors(lambda: model.loss_and_grads(idx, targets, loss_mask, mask)[0], model.params, grads)
    bad = {k: e for k, e in errors.items() if not e <= 1e-6}
    assert not bad, f"under the {mask_name} mask: {bad}"
    assert all(np.abs(g).max() > 0 for g in grads.values())


def test_causal_mask_hides_the_future_and_bidirectional_does_not(rng):
    model = perturbed(tiny_model(), rng)
    idx = rng.integers(0, V, (1, T))
    for t in range(T):
        changed = idx.copy()
        changed[0, t] = (idx[0, t] + 1) % V
        before, after = model.forward(idx), model.forward(changed)
        assert np.array_equal(before[:, :t], after[:, :t]), f"changing token {t} changed an earlier position"
        assert not np.allclose(before[:, t:], after[:, t:])
        both_ways = masks.bidirectional_mask(T)
        if t > 0:
            assert not np.allclose(model.forward(idx, both_ways)[:, :t], model.forward(changed, both_ways)[:, :t])


def test_overfits_one_batch(rng):
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=4, d_model=32), seed=0)
    from minilm.optim import AdamW
    opt = AdamW(model.params, lr=1e-2, weight_decay=0.0)
    x = rng.integers(0, 32, (4, 16))
    y = rng.integers(0, 32, (4, 16))
    for _ in range(150):
        loss, grads = model.loss_and_grads(x, y)
        opt.step(grads)
    assert loss < 0.05


def test_num_params_counts_every_array():
    model = tiny_model()
    total = sum(p.size for p in model.params.values())
    assert model.num_params() == total
    assert model.num_params(non_embedding=True) == total - model.params["wte"].size - model.params["wpe"].size


def test_float32_by_default():
    model = GPT(GPTConfig(vocab_size=V, block_size=8))
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.forward(np.zeros((1, 3), int)).dtype == np.float32


@pytest.mark.parametrize("idx, message", [
    (np.array([[1, 2, V]]), "out of range"),
    (np.array([[-1, 2]]), "out of range"),
    (np.zeros((1, 9), int), "longer than block_size"),
    (np.array([[0.5, 1.0]]), "integer"),
    (np.zeros((2, 2, 2), int), "(batch, time)"),
])
def test_bad_token_input_is_one_clear_error(idx, message):
    with pytest.raises(MinilmError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        tiny_model().forward(idx)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, message", [
    ({"d_model": 10, "n_head": 4}, "divisible"),
    ({"n_layer": 0}, "positive integer"),
    ({"dtype": "float16"}, "dtype"),
])
def test_bad_config_is_one_clear_error(kw, message):
    with pytest.raises(MinilmError, match=message):
        GPTConfig(**({"vocab_size": V, "block_size": 8} | kw))


def test_an_attention_window_is_the_default_mask_and_its_gradients_match(rng):
    """GPTConfig(attention_window=w) trains under the banded causal mask without being handed it."""
    model = perturbed(tiny_model(attention_window=3), rng)
    idx, targets = rng.integers(0, V, (2, T)), rng.integers(0, V, (2, T))
    loss, grads = model.loss_and_grads(idx, targets)
    assert loss == model.loss_and_grads(idx, targets, mask=masks.windowed_mask(T, 3))[0]
    errors = gradient_errors(lambda: model.loss_and_grads(idx, targets)[0], model.params, grads)
    assert all(e <= 1e-6 for e in errors.values()), errors


def test_no_window_is_the_causal_model_bit_for_bit(rng):
    idx = rng.integers(0, V, (2, T))
    plain, windowless = tiny_model(), tiny_model(attention_window=None)
    assert np.array_equal(plain.forward(idx), windowless.forward(idx))
    assert np.array_equal(plain.forward(idx), plain.forward(idx, masks.causal_mask(T)))


def test_a_windowed_model_sees_neither_the_future_nor_beyond_its_reach(rng):
    """With window w and L layers, token t reaches positions t .. t + L (w - 1) and no others."""
    w, n_layer = 2, 2
    model = perturbed(tiny_model(attention_window=w, n_layer=n_layer), rng)
    idx = rng.integers(0, V, (1, 8))
    for t in range(8):
        changed = idx.copy()
        changed[0, t] = (idx[0, t] + 1) % V
        moved = ~np.all(np.isclose(model.forward(idx), model.forward(changed), rtol=0, atol=1e-12), axis=-1)[0]
        reach = np.arange(8)
        assert np.array_equal(moved, (reach >= t) & (reach <= t + n_layer * (w - 1))), f"token {t} moved {moved}"


def test_a_windowed_model_with_a_kv_cache_equals_full_recomputation(rng):
    from minilm.model import KVCache

    model = perturbed(tiny_model(attention_window=3), rng)
    idx = rng.integers(0, V, (1, 8))
    cache = KVCache(model)
    steps = [model.forward(idx[:, :2], kv_cache=cache)] + [model.forward(idx[:, t:t + 1], kv_cache=cache) for t in range(2, 8)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), model.forward(idx), rtol=1e-10, atol=1e-12)
