"""The training loop, the optimizer and the checkpoints: nothing the user made is lost."""
import os

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError
from minilm.checkpoint import load_model, load_params_into, read_checkpoint, save_checkpoint
from minilm.optim import AdamW, clip_grad_norm, lr_at
from minilm.train import Trainer, TrainConfig, TrainingDiverged
from tests.helpers import ON_GPU


def small_model(seed=0, **kw):
    return GPT(GPTConfig(**({"vocab_size": 20, "block_size": 8, "n_layer": 2, "n_head": 2, "d_model": 16} | kw)), seed=seed)


def tokens(n=2000, seed=0):
    return np.random.default_rng(seed).integers(0, 20, n).astype(np.int32)


CONFIG = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup_steps=5, eval_every=10, eval_batches=2, checkpoint_every=0)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    straight = Trainer(small_model(), tokens(), tokens(500, 1), CONFIG).run(progress=False)
    path = str(tmp_path / "run.npz")
    first = Trainer(small_model(), tokens(), tokens(500, 1), CONFIG, checkpoint_path=path)
    first.run(until=20, progress=False)
    resumed = Trainer.resume(path, tokens(), tokens(500, 1))
    assert resumed.step == 20
    history = resumed.run(progress=False)
    # exactly: same batches, same optimizer state, same schedule (on a GPU, to float rounding: see helpers)
    tolerance = 1e-5 if ON_GPU else 0
    assert history.losses == pytest.approx(straight.losses, rel=tolerance, abs=0)
    assert history.val_losses == pytest.approx(straight.val_losses, rel=tolerance, abs=0)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    path = str(tmp_path / "run.npz")
    trainer = Trainer(small_model(), tokens(), None, CONFIG, checkpoint_path=path)
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


def test_checkpoint_with_a_different_config_is_refused(tmp_path):
    path = str(tmp_path / "m.npz")
    big = small_model(d_model=32)
    save_checkpoint(path, big.params, {"config": big.config.to_dict()})
    with pytest.raises(MinilmError, match="does not match.*d_model 32 vs 16"):
        load_params_into(small_model(), path)


def test_checkpoint_never_unpickles(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, __meta__=np.array([{"format": "x"}], dtype=object))  # an object array needs pickle
    with pytest.raises(MinilmError, match="truncated or corrupt"):
        load_model(path)
