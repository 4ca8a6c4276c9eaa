"""LoRA on a whole model (minilm/lora.py): the adapters' gradients against finite differences in float64,
the frozen weights untouched by training, and the merged model equal to the adapted one."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError, parallel
from minilm.gradcheck import check_grads, relative_error
from minilm.lora import LoRA
from minilm.train import TrainConfig, Trainer


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
    errors = check_grads(lambda: lora.loss_and_grads(idx, targets_)[0], lora.params, grads)
    assert max(errors.values()) < 1e-6, errors


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
