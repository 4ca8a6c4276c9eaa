"""LoRA on a whole model (minilm/lora.py): the adapters' gradients against finite differences in float64,
the frozen weights untouched by training, and the merged model equal to the adapted one."""
import os

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError, parallel
from minilm.finite_differences import gradient_errors, relative_error
from minilm.lora import LoRA
from minilm.train import TrainConfig, Trainer
from tests.helpers import roughen


def small_gpt(dtype="float64", seed=0):
    return GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, d_model=8, dtype=dtype), seed=seed)


def batch(rng, n=3, T=8, vocab=13):
    return rng.integers(0, vocab, (n, T)), rng.integers(0, vocab, (n, T))


def test_an_adapted_model_starts_as_the_model_it_adapts(rng):
    gpt = small_gpt()
    idx, _ = batch(rng)
    before = gpt.forward(idx)
    lora = LoRA(gpt, rank=2, alpha=4, targets=("attn.w_qkv", "mlp.w_fc"))
    assert np.array_equal(lora.forward(idx), before)
    assert sorted(lora.params) == sorted(f"h.{i}.{w}.lora_{ab}" for i in range(2)
                                         for w in ("attn.w_qkv", "mlp.w_fc") for ab in "ab")
    assert lora.num_params() == 2 * (2 * (8 + 24) + 2 * (8 + 32))


@pytest.mark.parametrize("targets", [("attn.w_qkv",), ("attn.w_proj", "mlp.w_fc", "mlp.w_proj")])
def test_the_adapters_gradients_match_finite_differences(rng, targets):
    lora = LoRA(small_gpt(), rank=3, alpha=6, targets=targets, seed=1)
    for name in lora.params:  # B away from zero, so every product in the chain rule is exercised
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.3
    idx, targets_ = batch(rng)
    _, grads = lora.loss_and_grads(idx, targets_)
    errors = gradient_errors(lambda: lora.loss_and_grads(idx, targets_)[0], lora.params, grads)
    assert max(errors.values()) < 1e-6, errors



def test_dpo_through_the_adapters_matches_finite_differences_and_leaves_the_reference(rng):
    """DPO (minilm.objectives) runs the LoRA's own pass (_forward, _backward): the adapters' gradients against
    finite differences, the reference (the base's weights before the adapters) bit for bit as it was."""
    from minilm import objectives

    gpt = roughen(small_gpt(), rng, 0.1)
    reference = GPT(gpt.config, params={k: v.copy() for k, v in gpt.params.items()})
    lora = LoRA(gpt, rank=2, alpha=4, targets=("attn.w_qkv", "mlp.w_proj"), seed=1)
    for name in lora.params:
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.3
    idx, targets = batch(rng, n=4)
    loss_mask = np.arange(8)[None, :] >= rng.integers(1, 7, (4, 1))  # each row's response, from a random start
    before = {k: p.copy() for k, p in reference.params.items()}

    def loss_and_grads():
        return objectives.dpo_loss_and_grads(lora, reference, idx, targets, loss_mask, beta=0.5)

    _, grads = loss_and_grads()
    assert list(grads) == list(lora.params)
    errors = gradient_errors(lambda: loss_and_grads()[0], lora.params, grads)
    assert max(errors.values()) < 1e-6, errors
    assert all(np.array_equal(reference.params[k], before[k]) for k in before)

def every_mask():
    """A model under each mask the engine has: (name, model, forward's inputs, loss_and_grads's batch)."""
    from minilm.encdec import EncDecConfig, EncoderClassifier, EncoderConfig, EncoderDecoder
    from minilm.model import Llama, LlamaConfig

    rng = np.random.default_rng(5)
    idx, targets = batch(rng)
    src, tgt, tgt_next = rng.integers(0, 13, (2, 4)), rng.integers(0, 13, (2, 3)), rng.integers(0, 13, (2, 3))
    valid = np.array([[True] * 4, [True, True, False, False]])  # the second input padded on the right
    encdec = dict(vocab_size=13, block_size=8, n_layer=1, n_head=2, d_model=8, dtype="float64")
    models = [("causal", small_gpt(), (idx,), (idx, targets)),
              ("windowed", GPT(GPTConfig(**encdec, attention_window=3)), (idx,), (idx, targets)),
              ("Llama: RoPE, grouped heads", Llama(LlamaConfig(**{**encdec, "n_layer": 2, "n_head": 4}, n_kv_head=2,
                                                               d_ff=12)), (idx,), (idx, targets)),
              ("encoder-decoder: bidirectional, cross, padding", EncoderDecoder(EncDecConfig(**encdec)),
               (src, tgt, valid), (src, tgt, tgt_next, None, valid)),
              ("prefix-LM", EncoderDecoder(EncDecConfig(**encdec, shared_attention=True, shared_params=True,
                                                        layerwise=True)), (src, tgt), (src, tgt, tgt_next)),
              ("encoder classifier with padding", EncoderClassifier(EncoderConfig(**encdec, n_classes=3)),
               (src, valid), (src, np.array([0, 2]), valid))]
    return models


@pytest.mark.parametrize("index", range(6), ids=[m[0] for m in every_mask()])
def test_adapters_on_every_weight_matrix_under_every_mask(index, rng):
    """Adapters on every attention and MLP matrix (cross-attention's too), gradients against finite
    differences; the adapted model starts as its base, exactly."""
    _, base, inputs, batch_ = every_mask()[index]
    roughen(base, rng, 0.5)  # away from the initial weights: no gradient lost in finite-difference noise
    before = base.forward(*inputs)
    lora = LoRA(base, rank=2, alpha=3, targets=("w_qkv", "w_proj", "w_fc", "w_q", "w_kv"), seed=2)
    assert np.array_equal(lora.forward(*inputs), before)
    for name in lora.params:
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.3
    _, grads = lora.loss_and_grads(*batch_)
    errors = gradient_errors(lambda: lora.loss_and_grads(*batch_)[0], lora.params, grads)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("index", range(3), ids=[m[0] for m in every_mask()[:3]])
def test_a_decoders_pass_makes_no_frozen_gradient_and_the_chain_rules_adapter_gradients(index, rng, monkeypatch):
    """In a decoder (GPT, Llama) a LoRA step's backward pass makes no gradient of any weight, the head's
    included (every linear layer passes back dx alone), and the adapters' gradients from the thin products
    equal the chain rule through the merged weight's own gradient (dA = scale dW' B^T, dB = scale A^T dW')."""
    from minilm import layers

    _, base, _, batch_ = every_mask()[index]
    lora = LoRA(base, rank=2, alpha=3, targets=("w_qkv", "w_proj", "w_fc"), seed=2)
    for name in lora.params:
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.3
    asked = []
    linear_backward = layers.linear_backward
    monkeypatch.setattr(layers, "linear_backward",
                        lambda dout, cache, weight_grads=True: asked.append(weight_grads) or
                        linear_backward(dout, cache, weight_grads))
    _, grads = lora.loss_and_grads(*batch_)
    assert len(asked) == 4 * base.config.n_layer + 1 and not any(asked)  # four matrices a block, and the head
    monkeypatch.undo()
    merged = lora.merged()
    _, full = merged.loss_and_grads(*batch_)  # a plain model: every weight's own gradient
    for name in lora.adapted:
        a, b = lora.params[f"{name}.lora_a"], lora.params[f"{name}.lora_b"]
        for got, chain in zip((grads[f"{name}.lora_a"], grads[f"{name}.lora_b"]),
                              layers.lora_grads_from_merged(full[name], a, b, lora.scale)):
            assert relative_error(got, chain) < 1e-12


def test_later_merges_write_into_the_first_merges_arrays(rng):
    """After the adapters change, the next pass merges W + scale A B again into the same arrays (no second set
    of merged weights while the first is held), exactly as a fresh merge; the frozen weights stay as they were."""
    from minilm import layers

    lora = LoRA(small_gpt(), rank=2, alpha=4, targets=("attn.w_qkv", "mlp.w_fc"))
    frozen = {name: w.copy() for name, w in lora.frozen.items()}
    idx, targets = batch(rng)
    lora.loss_and_grads(idx, targets)
    held = {name: lora.base.params[name] for name in lora.adapted}
    for p in lora.params.values():
        p += rng.standard_normal(p.shape) * 0.1
    lora.loss_and_grads(idx, targets)
    for name in lora.adapted:
        a, b = lora.params[f"{name}.lora_a"], lora.params[f"{name}.lora_b"]
        assert lora.base.params[name] is held[name]
        assert np.array_equal(held[name], layers.lora_merge(frozen[name], a, b, lora.scale))
    assert all(np.array_equal(lora.frozen[name], w) for name, w in frozen.items())


def test_training_moves_only_the_adapters_and_the_merged_model_is_the_adapted_one(rng):
    gpt = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, d_model=32, dtype="float32"))
    frozen = {k: v.copy() for k, v in gpt.params.items()}
    lora = LoRA(gpt, rank=4, alpha=8, targets=("attn.w_qkv", "attn.w_proj", "mlp.w_fc", "mlp.w_proj"))
    tokens = np.tile(np.arange(13), 40)  # a stream the adapters can learn: each token is followed by the next
    config = TrainConfig(steps=100, batch_size=8, lr=1e-2, warmup_steps=5, eval_every=100)
    history = Trainer(lora, tokens, None, config).run(progress=False)
    assert np.mean(history.losses[-5:]) < np.mean(history.losses[:5]) - 0.3  # measured: 2.51 -> 2.01
    assert all(np.array_equal(lora.frozen[k], frozen[k]) for k in frozen)
    assert all(np.abs(v).max() > 0 for k, v in lora.params.items() if k.endswith("lora_b"))
    idx, _ = batch(rng)
    assert relative_error(lora.merged().forward(idx), lora.forward(idx)) < 1e-5


def test_the_batch_cut_across_threads_gives_the_whole_batchs_gradients(rng):
    lora = LoRA(small_gpt(), rank=2, alpha=2, seed=3)
    for name in lora.params:
        lora.params[name][...] = rng.standard_normal(lora.params[name].shape) * 0.3
    idx, targets = batch(rng, n=4)
    whole = lora.loss_and_grads(idx, targets)
    cut = parallel.loss_and_grads(lora, idx, targets, shards=2)
    assert np.isclose(whole[0], cut[0]) and all(relative_error(whole[1][k], cut[1][k]) < 1e-10 for k in whole[1])


def test_bad_settings_are_one_line():
    with pytest.raises(MinilmError, match="rank must be a whole number of 1 or more"):
        LoRA(small_gpt(), rank=0)
    with pytest.raises(MinilmError, match="choose targets among") as e:
        LoRA(small_gpt(), targets=("attn.w_q",))
    assert "\n" not in str(e.value) and "attn.w_qkv" in str(e.value)


def test_a_lora_run_resumed_from_its_checkpoint_ends_where_an_unbroken_run_ends(tmp_path):
    """Stopped at step 10 and resumed from the LoRA checkpoint (the adapters, the optimizer's moments, the
    batch order), 20 steps give the unbroken run's adapters exactly; the base is read again from its file."""
    from minilm.base import Base
    from minilm.checkpoint import save_checkpoint

    base_path = str(tmp_path / "base.npz")
    gpt = small_gpt(dtype="float32")
    save_checkpoint(base_path, gpt.params, gpt.checkpoint_meta())
    tokens = np.tile(np.arange(13), 40)
    config = TrainConfig(steps=20, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=0, checkpoint_every=0, shards=1)

    def adapters(steps_then_resume):
        model = LoRA(small_gpt(dtype="float32"), rank=2, alpha=4, source=Base(checkpoint=base_path))
        path = str(tmp_path / f"lora_{steps_then_resume}.npz")
        trainer = Trainer(model, tokens, None, config, path)
        trainer.run(until=steps_then_resume, progress=False)
        if steps_then_resume < config.steps:
            trainer.save()
            trainer = Trainer.resume(path, tokens)
            trainer.run(progress=False)
        return {k: v.copy() for k, v in trainer.model.params.items()}

    unbroken, resumed = adapters(20), adapters(10)
    assert sorted(unbroken) == sorted(resumed) and all(np.array_equal(unbroken[k], resumed[k]) for k in unbroken)


def test_a_lora_checkpoint_of_the_old_kind_names_its_base_by_a_string_and_still_loads(tmp_path):
    """Older LoRA checkpoints stored their base as a string ("pretrained:NAME", or a checkpoint's path from the
    LoRA's folder): the one converter at the loading edge reads it as the record that checkpoints now hold."""
    import json

    from minilm.base import Base
    from minilm.checkpoint import legacy_base, load_model, read_checkpoint, save_checkpoint, stored_base

    assert legacy_base("pretrained:smollm2") == {"pretrained": "smollm2"} == Base(pretrained="smollm2").to_json()
    assert legacy_base("../base.npz") == {"checkpoint": "../base.npz"}
    gpt = small_gpt(dtype="float32")
    os.makedirs(tmp_path / "ft")
    save_checkpoint(str(tmp_path / "base.npz"), gpt.params, gpt.checkpoint_meta())
    lora = LoRA(gpt, rank=2, source=Base(checkpoint=str(tmp_path / "base.npz")))
    for p in lora.params.values():
        p[...] = 0.1
    save_checkpoint(str(tmp_path / "ft" / "lora.npz"), lora.params, lora.checkpoint_meta())
    arrays, meta = read_checkpoint(str(tmp_path / "ft" / "lora.npz"))
    assert meta["lora"]["base"] == {"checkpoint": os.path.join("..", "base.npz")}
    old = {**meta, "lora": {**meta["lora"], "base": os.path.join("..", "base.npz")}}  # as older checkpoints held it
    np.savez(str(tmp_path / "ft" / "old.npz"), **{k: v for k, v in arrays.items()},
             __meta__=np.array(json.dumps(old)))
    old_path = str(tmp_path / "ft" / "old.npz")
    loaded = load_model(old_path)[0]
    assert loaded.source == Base(checkpoint=str(tmp_path / "base.npz")) == stored_base(old_path, old)
    assert all(np.array_equal(loaded.params[k], p) for k, p in lora.params.items())
