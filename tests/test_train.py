"""The training loop, the optimizer and the checkpoints: nothing the user made is lost, whatever the model."""
import os

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError
from minilm.studies import archs
from minilm.checkpoint import load_model, read_checkpoint, save_checkpoint
from minilm.data import seq2seq as task
from minilm.encdec import EncDecConfig, EncoderClassifier, EncoderConfig, EncoderDecoder
from minilm.model import Model
from minilm.optim import AdamW, clip_grad_norm, lr_at
from minilm.train import Trainer, TrainConfig, TrainingDiverged, read_once, token_windows, window_loss
from tests.helpers import ON_GPU


def small_model(seed=0, **kw):
    return GPT(GPTConfig(**({"vocab_size": 20, "block_size": 8, "n_layer": 2, "n_head": 2, "d_model": 16} | kw)), seed=seed)


def tokens(n=2000, seed=0):
    return np.random.default_rng(seed).integers(0, 20, n).astype(np.int32)


CONFIG = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup_steps=5, eval_every=10, eval_batches=2, checkpoint_every=0)


# ---- every model trains in the one loop: a model, what it trains on and what it is evaluated on

SHAPE = task.Shape(n_input=4, n_target=3)  # the toy translation task, short


def seq2seq_batches(rng, batch_size):
    batch = task.make_batch(task.tokenizer(), SHAPE, batch_size, rng)
    return batch["src"], batch["tgt"], batch["targets"]


def seq2seq_metrics(model):
    return archs.evaluate(model, task.make_batch(task.tokenizer(), SHAPE, 32, np.random.default_rng(1)))


def classifier_batches(rng, batch_size):
    """The label says whether most of the sequence's tokens are from the lower half of the vocabulary."""
    idx = rng.integers(0, 20, (batch_size, 8))
    return idx, ((idx < 10).sum(axis=1) > 4).astype(np.int64)


def classifier_metrics(model):
    idx, labels = classifier_batches(np.random.default_rng(1), 32)
    return {"loss": model.loss_and_grads(idx, labels)[0],
            "accuracy": float((model.forward(idx).argmax(axis=-1) == model.xp.asarray(labels)).mean())}


def encoder_decoder(seed=0):
    config = EncDecConfig(vocab_size=task.tokenizer().vocab_size, block_size=SHAPE.n_input + SHAPE.n_target,
                          n_layer=2, n_head=2, d_model=16)
    return EncoderDecoder(config, seed=seed)


def encoder_classifier(seed=0):
    return EncoderClassifier(EncoderConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, d_model=16), seed=seed)


# name -> (make a model, train, val)
MODELS = {"GPT": (small_model, tokens(), tokens(500, 1)),
          "EncoderDecoder": (encoder_decoder, seq2seq_batches, seq2seq_metrics),
          "EncoderClassifier": (encoder_classifier, classifier_batches, classifier_metrics)}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_keeps_the_contract_the_trainer_relies_on(name):
    make_model, train, _ = MODELS[name]
    model = make_model()
    batches = train if callable(train) else token_windows(train, model.config.block_size)
    batch = batches(np.random.default_rng(0), 3)  # the inputs, then what the model must predict
    loss, grads = model.loss_and_grads(*batch)
    assert isinstance(model, Model) and isinstance(loss, float)
    assert list(grads) == list(model.params)
    assert all(grads[n].shape == p.shape for n, p in model.params.items())
    assert model.forward(*batch[:-1]).shape[0] == 3  # logits, one row per example


def test_the_encoder_models_are_not_gpts():
    """They keep Model's contract; GPT's forward(idx, mask, kv_cache) is not theirs to inherit."""
    assert not issubclass(EncoderDecoder, GPT) and not issubclass(EncoderClassifier, GPT)
    with pytest.raises(TypeError):
        Model(small_model().config)  # the contract alone is not a model


@pytest.mark.parametrize("name", ["EncoderDecoder", "EncoderClassifier"])
def test_the_encoder_models_learn_through_the_trainer(name):
    make_model, train, val = MODELS[name]
    config = TrainConfig(steps=120, batch_size=16, lr=1e-2, warmup_steps=5, eval_every=50, checkpoint_every=0)
    trainer = Trainer(make_model(), train, val, config)
    before = trainer.evaluate()
    history = trainer.run(progress=False)
    assert history.val_losses[-1] < 0.8 * before
    assert history.val_steps == [0, 50, 100, 120]  # every eval_every steps, and at the end
    assert history.val_metrics[-1]["loss"] == history.val_losses[-1] and len(history.val_metrics[-1]) > 1


@pytest.mark.parametrize("name", list(MODELS))
def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, name):
    make_model, train, val = MODELS[name]
    straight = Trainer(make_model(), train, val, CONFIG).run(progress=False)
    path = str(tmp_path / "run.npz")
    first = Trainer(make_model(), train, val, CONFIG, checkpoint_path=path)
    first.run(until=20, progress=False)
    resumed = Trainer.resume(path, train, val)
    assert resumed.step == 20 and type(resumed.model).__name__ == name
    assert resumed.model.config == first.model.config
    history = resumed.run(progress=False)
    # exactly: same batches, same optimizer state, same schedule (on a GPU, to float rounding: see helpers)
    tolerance = 1e-5 if ON_GPU else 0
    assert history.losses == pytest.approx(straight.losses, rel=tolerance, abs=0)
    assert history.val_losses == pytest.approx(straight.val_losses, rel=tolerance, abs=0)


def test_a_batch_function_trains_a_gpt_exactly_as_its_token_array():
    train, val = tokens(), tokens(500, 1)
    from_arrays = Trainer(small_model(), train, val, CONFIG).run(progress=False)

    def windows(rng, batch_size):  # what a token array means, written out
        starts = rng.integers(0, len(train) - 8, size=batch_size)
        rows = starts[:, None] + np.arange(9)
        return train[rows][:, :-1], train[rows][:, 1:]

    from_functions = Trainer(small_model(), windows, window_loss(val, CONFIG.batch_size, CONFIG.eval_batches), CONFIG)
    history = from_functions.run(progress=False)
    assert np.array_equal(history.losses, from_arrays.losses) and len(history.losses) == CONFIG.steps
    assert np.array_equal(history.val_losses, from_arrays.val_losses)


def test_read_once_reads_every_token_once_in_order_then_stops():
    stream = np.arange(3 * 2 * 9, dtype=np.int32)  # three batches of two windows of 8 (+1 target) tokens
    batches = read_once(stream, block_size=8)
    seen = []
    for _ in range(3):
        x, y = batches(None, 2)
        assert x.shape == y.shape == (2, 8) and np.array_equal(x[:, 1:], y[:, :-1])
        seen.append(np.concatenate([x, y[:, -1:]], axis=1).ravel())
    assert np.array_equal(np.concatenate(seen), stream)  # side by side: no token twice, none skipped
    with pytest.raises(MinilmError, match="read to its end"):
        batches(None, 2)


def test_a_token_array_or_an_evaluation_without_a_loss_is_a_clear_error():
    with pytest.raises(MinilmError, match="decoder-only model: give EncoderDecoder a function"):
        Trainer(encoder_decoder(), tokens())
    trainer = Trainer(encoder_classifier(), classifier_batches, lambda model: {"accuracy": 1.0}, CONFIG)
    with pytest.raises(MinilmError, match="dict with a \"loss\""):
        trainer.evaluate()


@pytest.mark.parametrize("name", list(MODELS))
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, name):
    make_model, train, _ = MODELS[name]
    path = str(tmp_path / "run.npz")
    trainer = Trainer(make_model(), train, None, CONFIG, checkpoint_path=path)
    trainer.run(until=10, progress=False)
    saved = read_checkpoint(path)[0]["param/wte"].copy()
    trainer.model.params["h.0.mlp.w_fc"][...] = np.nan  # something went badly wrong
    with pytest.raises(TrainingDiverged, match="last good checkpoint \\(step 10\\)"):
        trainer.run(progress=False)
    assert np.array_equal(read_checkpoint(path)[0]["param/wte"], saved)
    assert [f for f in os.listdir(tmp_path) if f != "run.npz"] == []  # no temporary files left behind


def test_training_lowers_the_loss_on_structured_data():
    pattern = np.tile(np.arange(10, dtype=np.int32), 300)  # 0 1 2 ... 9 0 1 ...: perfectly predictable
    config = TrainConfig(steps=150, batch_size=4, lr=1e-2, warmup_steps=5, eval_every=50, checkpoint_every=0)
    history = Trainer(small_model(), pattern, pattern, config).run(progress=False)
    assert history.val_losses[-1] < 0.1 * np.log(20)  # from chance (log V) to nearly certain


def test_adamw_step_matches_a_hand_computation():
    w = np.array([[1.0, -2.0]])
    b = np.array([0.5])
    opt = AdamW({"w": w, "b": b}, lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    g_w, g_b = np.array([[0.2, -0.4]]), np.array([3.0])
    opt.step({"w": g_w, "b": g_b})
    # step 1: m = 0.1 g, v = 0.01 g^2; bias-corrected m/(1-0.9) = g, v/(1-0.99) = g^2 -> update g/|g| = sign(g)
    expected_w = np.array([[1.0, -2.0]]) * (1 - 0.1 * 0.5) - 0.1 * np.sign(g_w) * (np.abs(g_w) / (np.abs(g_w) + 1e-8))
    expected_b = 0.5 - 0.1 * 3.0 / (3.0 + 1e-8)  # no weight decay on biases
    assert np.allclose(w, expected_w, atol=1e-12) and np.allclose(b, expected_b, atol=1e-12)


def test_clip_grad_norm_scales_to_max_norm():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert np.sqrt(grads["a"] ** 2 + grads["b"] ** 2)[0] == pytest.approx(1.0, rel=1e-5)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 1.0, 100, 10, 0.1) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[100] == pytest.approx(0.1)


def test_too_few_tokens_is_a_clear_error():
    with pytest.raises(MinilmError, match="more than block_size"):
        Trainer(small_model(), np.arange(5, dtype=np.int32), None, CONFIG)


# ---- checkpoints

def test_save_load_round_trip(tmp_path):
    model = small_model(seed=3)
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, model.params, {"config": model.config.to_dict()})
    loaded, _, _ = load_model(path)
    assert type(loaded) is GPT  # a checkpoint that does not name its model's class holds a GPT
    assert all(np.array_equal(loaded.params[k], model.params[k]) for k in model.params)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupt_checkpoint_is_one_clear_error(tmp_path, damage):
    model = small_model()
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, model.params, {"config": model.config.to_dict()})
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write({"truncate": data[: len(data) // 2], "garbage": b"not a zip file" * 10, "empty": b""}[damage])
    with pytest.raises(MinilmError, match="truncated or corrupt") as e:
        load_model(path)
    assert "\n" not in str(e.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(MinilmError, match="not found"):
        load_model(str(tmp_path / "nope.npz"))


def test_checkpoint_never_unpickles(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, __meta__=np.array([{"format": "x"}], dtype=object))  # an object array needs pickle
    with pytest.raises(MinilmError, match="truncated or corrupt"):
        load_model(path)


def test_keep_best_writes_the_state_of_the_lowest_held_out_loss(tmp_path):
    """With keep_best, a finished run's checkpoint is its state at the lowest held-out loss (step 4 of 8 here),
    marked "kept", and the model in memory returns to it; a resumed run goes on from that state."""
    from dataclasses import replace

    losses = iter([3.0, 1.0, 2.0, 2.5])  # evaluations at steps 2, 4, 6, 8
    snapshots = {}

    def validate(model):
        snapshots[len(snapshots) * 2 + 2] = {n: p.copy() for n, p in model.params.items()}
        return {"loss": next(losses)}

    path = str(tmp_path / "run.npz")
    config = replace(CONFIG, steps=8, eval_every=2, keep_best=True)
    trainer = Trainer(small_model(), tokens(), validate, config, checkpoint_path=path)
    trainer.run(progress=False)
    arrays, meta = read_checkpoint(path)
    assert meta["step"] == 4 and meta["kept"] == {"step": 4, "of": 8, "loss": 1.0, "last_loss": 2.5}
    assert all(np.array_equal(arrays[f"param/{n}"], snapshots[4][n]) for n in snapshots[4])
    assert all(np.array_equal(trainer.model.params[n], snapshots[4][n]) for n in snapshots[4])
    assert trainer.saved_step == 4 and Trainer.resume(path, tokens()).step == 4
