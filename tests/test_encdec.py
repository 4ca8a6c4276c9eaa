"""Encoder-only and encoder-decoder models: masks, cross-attention, gradients, and the four switches."""
import itertools

import numpy as np
import pytest

from minilm import GPT, GPTConfig, layers, masks
from minilm.backend import to_numpy
from minilm.encdec import (SWITCHES, EncDecConfig, EncoderClassifier, EncoderConfig, EncoderDecoder)
from minilm.errors import MinilmError
from minilm.finite_differences import gradient_errors
from tests import helpers

V, S, T = 11, 5, 4  # vocabulary, input length, target length
TOL = 1e-6


def tiny(**switches):
    return EncDecConfig(vocab_size=V, block_size=S + T, n_layer=2, n_head=2, d_model=8, dtype="float64", **switches)


def roughen(model, seed=0):
    """Away from the tiny initial values every gradient is well above the finite-difference noise
    (at init some are ~1e-5, where float64 differences lose digits)."""
    return helpers.roughen(model, np.random.default_rng(seed), 0.3)


def batch(seed=0, B=2):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, S)), rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def left_padding(B=2, n_pad=2):
    valid = np.ones((B, S), dtype=bool)
    valid[0, :n_pad] = False  # the first sequence is shorter, padded on the left
    return valid


# ---- masks

def test_cross_mask_lets_every_target_see_every_input():
    m = masks.cross_mask(3, 5)
    assert m.shape == (3, 5) and m.dtype == bool and m.all()


@pytest.mark.parametrize("kind", ["bidirectional", "causal", "prefix", "cross"])
def test_padding_composes_with_every_mask(kind):
    base = {"bidirectional": masks.bidirectional_mask(4), "causal": masks.causal_mask(4),
            "prefix": masks.prefix_lm_mask(4, 2), "cross": masks.cross_mask(3, 4)}[kind]
    valid = np.array([[True, True, True, True], [False, True, True, False]])
    mask = base & masks.padding_mask(valid)
    assert mask.shape == (2, 1) + base.shape
    np.testing.assert_array_equal(mask[0, 0], base)
    np.testing.assert_array_equal(mask[1, 0], base & valid[1])
    assert not mask[1, 0][:, [0, 3]].any()  # no query sees a padding key


def test_padding_keys_have_no_influence_on_attention():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, 4, 3)) for _ in range(3))
    valid = np.array([[True] * 4, [False, True, True, True]])
    mask = masks.causal_mask(4) & masks.padding_mask(valid)
    out = layers.attention_forward(q, k, v, mask)[0]
    k2, v2 = k.copy(), v.copy()
    k2[1, :, 0] += 5.0
    v2[1, :, 0] -= 7.0  # change the padding key of the second sequence
    out2 = layers.attention_forward(q, k2, v2, mask)[0]
    np.testing.assert_array_equal(out[:, :, 1:], out2[:, :, 1:])  # every row that has a real key


def test_padding_mask_rejects_bad_input():
    with pytest.raises(MinilmError):
        masks.padding_mask(np.ones((2, 3), dtype=int))


# ---- the cross-attention layer

def test_cross_attention_gradients():
    rng = np.random.default_rng(1)
    C, nh = 8, 2
    inputs = {"x": rng.standard_normal((2, 3, C)), "mem": rng.standard_normal((2, 5, C)),
              "w_q": rng.standard_normal((C, C)) * 0.5, "b_q": rng.standard_normal(C),
              "w_kv": rng.standard_normal((C, 2 * C)) * 0.5, "b_kv": rng.standard_normal(2 * C),
              "w_proj": rng.standard_normal((C, C)) * 0.5, "b_proj": rng.standard_normal(C)}
    mask = masks.cross_mask(3, 5) & masks.padding_mask(np.array([[True] * 5, [False, False, True, True, True]]))
    R = rng.standard_normal((2, 3, C))

    def run():
        p = {name: a for name, a in inputs.items() if name not in ("x", "mem")}
        return layers.cross_attention_forward(inputs["x"], inputs["mem"], p, mask, nh)

    out, cache = run()
    dx, dmem, grads = layers.cross_attention_backward(R.copy(), cache)
    errors = gradient_errors(lambda: (run()[0] * R).sum(), inputs, {"x": dx, "mem": dmem, **grads})
    assert max(errors.values()) <= TOL, errors
    assert np.abs(dmem[1, :2]).max() == 0  # padding positions of the memory get no gradient


# ---- gradient checks of the whole models

@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=4)),
                         ids=lambda f: "".join("1" if x else "0" for x in f))
def test_encoder_decoder_gradients_with_every_switch_setting(flags):
    model = roughen(EncoderDecoder(tiny(**dict(zip(SWITCHES, flags))), seed=1))
    src, tgt, targets = batch()
    valid = left_padding()
    loss_mask = np.ones((2, T))
    loss_mask[1, -1] = 0

    def loss():
        return model.loss_and_grads(src, tgt, targets, loss_mask, src_valid=valid)[0]

    _, grads = model.loss_and_grads(src, tgt, targets, loss_mask, src_valid=valid)
    assert grads.keys() == model.params.keys()
    errors = gradient_errors(loss, model.params, grads, max_entries=8)
    assert max(errors.values()) <= TOL, {k: e for k, e in errors.items() if e > TOL}


@pytest.mark.parametrize("causal", [False, True])
def test_encoder_classifier_gradients(causal):
    cfg = EncoderConfig(vocab_size=V, block_size=S, n_layer=2, n_head=2, d_model=8, dtype="float64",
                        n_classes=3, causal_input=causal)
    model = roughen(EncoderClassifier(cfg, seed=2))
    idx, labels, valid = batch(3, B=3)[0], np.array([0, 2, 1]), np.ones((3, S), dtype=bool)
    valid[1, 3:] = False  # padded on the right

    _, grads = model.loss_and_grads(idx, labels, valid)
    errors = gradient_errors(lambda: model.loss_and_grads(idx, labels, valid)[0], model.params, grads, max_entries=8)
    assert max(errors.values()) <= TOL, {k: e for k, e in errors.items() if e > TOL}


def test_encoder_classifier_ignores_padding_and_pools_to_one_vector():
    cfg = EncoderConfig(vocab_size=V, block_size=S, n_layer=1, n_head=2, d_model=8, dtype="float64", n_classes=2)
    model = roughen(EncoderClassifier(cfg))
    idx = np.array([[1, 2, 3, 0, 0]])
    valid = np.array([[True, True, True, False, False]])
    other = idx.copy()
    other[0, 3:] = [7, 9]  # different padding tokens
    assert model.forward(idx, valid).shape == (1, 2)
    pooled = to_numpy(model.forward(idx, valid))
    np.testing.assert_allclose(pooled, to_numpy(model.forward(other, valid)), atol=1e-12)
    np.testing.assert_allclose(pooled, to_numpy(model.forward(idx[:, :3])), atol=1e-12)


# ---- the four switches

def gpt_with(model):
    """A GPT of the same size that runs on the decoder's parameters (GPT's names)."""
    cfg = model.config
    gpt_cfg = GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, d_model=cfg.d_model, dtype=cfg.dtype)
    return GPT(gpt_cfg, params=model.params)  # GPT takes the names it needs


def test_the_non_embedding_count_leaves_out_the_encoders_embeddings_too():
    model = EncoderDecoder(tiny())
    C = model.config.d_model
    embeddings = 2 * (V * C + (S + T) * C)  # wte and wpe: the decoder's and the encoder's
    assert model.num_params() - model.num_params(non_embedding=True) == embeddings


@pytest.mark.parametrize("padded", [False, True])
def test_all_four_switches_make_the_decoder_only_model(padded):
    cfg = tiny(**dict.fromkeys(SWITCHES, True), targets_after_input=True)
    model = roughen(EncoderDecoder(cfg, seed=3))
    gpt = gpt_with(model)
    assert gpt.params.keys() == model.params.keys()  # no cross-attention, no separate encoder
    src, tgt, _ = batch(4)
    mask, valid = masks.causal_mask(S + T), None
    if padded:
        valid = left_padding()
        mask = mask & masks.padding_mask(np.concatenate([valid, np.ones((2, T), dtype=bool)], axis=1))
    encdec = model.forward(src, tgt, src_valid=valid)
    decoder_only = gpt.forward(np.concatenate([src, tgt], axis=1), mask=mask)[:, S:]
    assert np.abs(encdec - decoder_only).max() <= 1e-10


def test_three_switches_make_a_prefix_lm():
    model = roughen(EncoderDecoder(tiny(shared_attention=True, shared_params=True, layerwise=True,
                                        targets_after_input=True), seed=4))
    src, tgt, _ = batch(5)
    prefix_lm = gpt_with(model).forward(np.concatenate([src, tgt], axis=1), mask=masks.prefix_lm_mask(S + T, S))
    assert np.abs(model.forward(src, tgt) - prefix_lm[:, S:]).max() <= 1e-10
    causal = gpt_with(model).forward(np.concatenate([src, tgt], axis=1))
    assert np.abs(model.forward(src, tgt) - causal[:, S:]).max() > 1e-3  # the bidirectional input matters


@pytest.mark.parametrize("n_on", [0, 1, 2, 3])
def test_fewer_switches_compute_something_else(n_on):
    """Each switch left off changes the computation: the equivalence is not an accident of the test."""
    flags = dict(zip(SWITCHES, [True] * n_on + [False] * (4 - n_on)))
    model = roughen(EncoderDecoder(tiny(**flags, targets_after_input=True), seed=5))
    src, tgt, _ = batch(6)
    decoder_only = gpt_with(model).forward(np.concatenate([src, tgt], axis=1))[:, S:]
    assert np.abs(model.forward(src, tgt) - decoder_only).max() > 1e-3


@pytest.mark.parametrize("flags", [(False,) * 4, (True, False, False, True), (True,) * 4])
def test_every_target_position_reads_the_input(flags):
    model = roughen(EncoderDecoder(tiny(**dict(zip(SWITCHES, flags)), targets_after_input=True), seed=6))
    src, tgt, _ = batch(7)
    base = model.forward(src, tgt)
    for pos in (0, S - 1):
        changed = src.copy()
        changed[:, pos] = (changed[:, pos] + 1) % V
        moved = np.abs(model.forward(changed, tgt) - base).max(axis=-1)  # (B, T)
        assert (moved > 1e-8).all(), (pos, moved)


def test_changing_a_target_token_changes_no_encoder_output():
    model = roughen(EncoderDecoder(tiny(), seed=7))
    src, tgt, _ = batch(8)
    changed = tgt.copy()
    changed[:, 0] = (changed[:, 0] + 1) % V
    (logits, cache), (logits2, cache2) = model._forward(src, tgt), model._forward(src, changed)
    assert np.abs(logits - logits2).max() > 1e-6  # the decoder's outputs moved...
    for state, state2 in zip(cache[1], cache2[1]):  # ...the encoder's states at every depth did not
        np.testing.assert_array_equal(to_numpy(state), to_numpy(state2))
    # Inside a prefix-LM (one stack over [input ; target]) no input position's output moves either.
    gpt = gpt_with(model)
    prefix = masks.prefix_lm_mask(S + T, S)
    out = gpt.forward(np.concatenate([src, tgt], axis=1), mask=prefix)
    out2 = gpt.forward(np.concatenate([src, changed], axis=1), mask=prefix)
    np.testing.assert_array_equal(to_numpy(out[:, :S]), to_numpy(out2[:, :S]))
    assert np.abs(out[:, S:] - out2[:, S:]).max() > 1e-6


# ---- bad input

def test_bad_input_is_one_clear_error():
    with pytest.raises(MinilmError, match="True or False"):
        tiny(layerwise=1)
    model = EncoderDecoder(tiny(targets_after_input=True))
    src, tgt, targets = batch()
    with pytest.raises(MinilmError, match="block_size"):
        model.forward(np.zeros((2, S + 1), dtype=int), tgt)  # the targets no longer fit after the input
    with pytest.raises(MinilmError, match="batch"):
        model.forward(src, tgt[:1])
    with pytest.raises(MinilmError, match="padding mask"):
        model.forward(src, tgt, src_valid=np.ones((2, S)))
    with pytest.raises(MinilmError, match="EncDecConfig"):
        EncoderDecoder(GPTConfig(vocab_size=V, block_size=S))
    with pytest.raises(MinilmError, match="n_classes"):
        EncoderConfig(vocab_size=V, block_size=S, n_classes=1)
