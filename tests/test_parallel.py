"""Data parallelism: the batch split across threads gives the whole batch's loss and gradients."""
import os
import threading

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError, parallel
from minilm.encdec import EncDecConfig, EncoderDecoder
from minilm.finite_differences import relative_error
from minilm.optim import AdamW, clip_grad_norm
from minilm.train import Trainer, TrainConfig, get_batch

V, T = 13, 7


def model64():
    return GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=2, n_head=2, d_model=8, dtype="float64"), seed=3)


@pytest.mark.parametrize("batch, shards", [(4, 2), (5, 2), (5, 3), (2, 4)])
@pytest.mark.parametrize("with_loss_mask", [False, True])
def test_split_batch_gives_the_whole_batch_loss_and_gradients(rng, batch, shards, with_loss_mask):
    model = model64()
    idx, targets = rng.integers(0, V, (batch, T)), rng.integers(0, V, (batch, T))
    loss_mask = rng.random((batch, T)) < 0.5 if with_loss_mask else None
    loss, grads = model.loss_and_grads(idx, targets, loss_mask)
    split_loss, split_grads = parallel.loss_and_grads(model, idx, targets, loss_mask, shards=shards)
    assert split_loss == pytest.approx(loss, rel=1e-12)
    assert list(split_grads) == list(grads)
    worst = max(relative_error(split_grads[k], grads[k]) for k in grads)
    assert worst < 1e-10, worst


def test_a_shard_with_no_counted_position_gets_no_weight(rng):
    """Rows 0-1 count nothing: the other shard's mean must not be diluted by them."""
    model = model64()
    idx, targets = rng.integers(0, V, (4, T)), rng.integers(0, V, (4, T))
    loss_mask = np.zeros((4, T), dtype=bool)
    loss_mask[2:, 1:] = True
    loss, grads = model.loss_and_grads(idx, targets, loss_mask)
    split_loss, split_grads = parallel.loss_and_grads(model, idx, targets, loss_mask, shards=2)
    assert split_loss == pytest.approx(loss, rel=1e-12)
    assert max(relative_error(split_grads[k], grads[k]) for k in grads) < 1e-10


def test_float32_split_matches_within_rounding(rng):
    model = GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=2, n_head=2, d_model=16), seed=0)
    idx, targets = rng.integers(0, V, (6, 8)), rng.integers(0, V, (6, 8))
    loss, grads = model.loss_and_grads(idx, targets)
    split_loss, split_grads = parallel.loss_and_grads(model, idx, targets, shards=2)
    assert split_loss == pytest.approx(loss, rel=1e-5)
    assert max(relative_error(split_grads[k], grads[k]) for k in grads) < 1e-4


@pytest.mark.parametrize("batch, n", [(1, 2), (2, 2), (7, 3), (16, 2), (3, 8)])
def test_shards_cover_the_batch_once(batch, n):
    shards = parallel.shard_slices(batch, n)
    rows = np.concatenate([np.arange(batch)[s] for s in shards])
    assert rows.tolist() == list(range(batch))
    assert len(shards) == min(batch, n) and all(s.stop > s.start for s in shards)


def test_blas_threads_are_given_back_after_a_split_step(rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    model = model64()
    parallel.loss_and_grads(model, rng.integers(0, V, (4, T)), rng.integers(0, V, (4, T)), shards=2)
    after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert after == before


def test_errors_in_a_shard_reach_the_caller_as_one_line(rng):
    model = model64()
    idx = rng.integers(0, V, (4, T))
    idx[3, 0] = V  # out of the vocabulary, in the second shard
    with pytest.raises(MinilmError, match="out of range"):
        parallel.loss_and_grads(model, idx, idx, shards=2)


def test_small_batches_stay_whole_and_large_ones_split_per_core(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    model = GPT(GPTConfig(vocab_size=V, block_size=256, n_layer=1, n_head=2, d_model=512), seed=0, device="cpu")
    assert parallel.default_shards(model, 1, 8) == 1  # far below MIN_SHARD_VALUES
    assert parallel.default_shards(model, 8, 256) == 2  # 1M values: one shard per core
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 1)
    assert parallel.default_shards(model, 8, 256) == 1


def test_a_model_that_trains_many_parameters_stays_whole_and_its_lora_splits(monkeypatch):
    """Each shard fills a gradient set of every trained parameter: a model that trains MAX_SHARDED_PARAMETERS
    or more runs its batch whole; the same model through LoRA, which trains few numbers, is cut per core."""
    from minilm.lora import LoRA

    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    monkeypatch.setattr(parallel, "MAX_SHARDED_PARAMETERS", 10**6)  # a small model stands in for a large one
    model = GPT(GPTConfig(vocab_size=V, block_size=128, n_layer=1, n_head=2, d_model=512), seed=0, device="cpu")
    assert model.num_params() >= 10**6 and 4 * 128 * 512 >= 2 * parallel.MIN_SHARD_VALUES  # else two shards
    assert parallel.default_shards(model, 4, 128) == 1
    lora = LoRA(model, rank=4)
    assert lora.num_params() < 10**6 and parallel.default_shards(lora, 4, 128) == 2


def test_the_trainer_cuts_each_batch_as_its_config_says(monkeypatch, rng):
    cuts, shard_slices = [], parallel.shard_slices
    monkeypatch.setattr(parallel, "shard_slices", lambda batch, n: cuts.append(n) or shard_slices(batch, n))
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    tokens = rng.integers(0, V, 200)
    losses = []
    for shards in (1, 2):
        config = TrainConfig(steps=1, batch_size=4, eval_every=0, checkpoint_every=0, shards=shards)
        losses += Trainer(model64(), tokens, config=config).run(progress=False).losses
    assert cuts == [1, 2]
    x, y = get_batch(tokens, 4, 8, np.random.default_rng(TrainConfig.seed))
    assert losses[0] == model64().loss_and_grads(x, y)[0]  # shards=1: the unsplit step, bit for bit
    assert losses[1] == pytest.approx(losses[0], rel=1e-12)


def test_the_trainer_runs_an_encoder_decoders_batch_whole(monkeypatch):
    """parallel weights the pieces of a GPT batch (idx, targets, loss_mask); (src, tgt, targets) is not one,
    even where src and tgt have the same shape."""
    monkeypatch.setattr(parallel, "loss_and_grads", lambda *a, **k: pytest.fail("split an encoder-decoder batch"))
    model = EncoderDecoder(EncDecConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, d_model=8), seed=0)

    def batches(rng, batch_size):  # src, tgt, targets: (B, 4) each
        return tuple(rng.integers(0, V, (batch_size, 4)) for _ in range(3))
    config = TrainConfig(steps=2, batch_size=4, eval_every=0, checkpoint_every=0, shards=2)
    assert len(Trainer(model, batches, config=config).run(progress=False).losses) == 2


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or parallel.cpu_cores() < 2, reason="needs Linux and 2 cores")
def test_worker_threads_each_keep_to_a_core_of_their_own():
    both_running = threading.Barrier(2, timeout=30)  # so that two different workers take the two calls
    where = {}

    def record(name):
        both_running.wait()
        where[name] = os.sched_getaffinity(0)
    parallel.each(record, ["first", "second"], [np.empty(parallel.MIN_THREADED_VALUES, dtype=np.int8)])
    assert len(where["first"]) == len(where["second"]) == 1 and where["first"] != where["second"]


def test_a_loss_mask_given_as_a_list_is_accepted(rng):
    model = model64()
    idx, targets = rng.integers(0, V, (4, T)), rng.integers(0, V, (4, T))
    loss_mask = (rng.random((4, T)) < 0.5).tolist()
    loss, _ = model.loss_and_grads(idx, targets, np.array(loss_mask))
    assert parallel.loss_and_grads(model, idx, targets, loss_mask, shards=2)[0] == pytest.approx(loss, rel=1e-12)


def test_each_returns_results_in_order_uses_threads_only_for_big_work_and_raises_errors(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    n = parallel.MIN_THREADED_VALUES
    big, small = [np.empty(n // 2, dtype=np.int8)] * 2, [np.empty(n - 1, dtype=np.int8)]  # worked-on arrays
    assert parallel.each(str.upper, list("abcdef"), big) == list("ABCDEF")  # in order
    workers = parallel.each(lambda _: threading.current_thread(), list("ab"), big)
    assert threading.main_thread() not in workers
    callers = parallel.each(lambda _: threading.current_thread(), list("ab"), small)
    assert callers == [threading.main_thread()] * 2  # too little work to hand to threads

    def fails(name):
        raise MinilmError(f"bad parameter {name}")
    with pytest.raises(MinilmError, match="bad parameter"):
        parallel.each(fails, ["w"], big)


def test_adamw_over_threads_equals_one_parameter_after_another(monkeypatch, rng):
    monkeypatch.setattr(parallel, "MIN_THREADED_VALUES", 0)  # threads even for this small model
    steps, idx = [], rng.integers(0, V, (4, T))
    for cores in (2, 1):  # threads, then the plain loop
        monkeypatch.setattr(parallel, "cpu_cores", lambda: cores)
        model = model64()
        optimizer = AdamW(model.params, lr=1e-2)
        for _ in range(2):
            optimizer.step(model.loss_and_grads(idx, idx)[1])
        steps.append(model.params)
    assert all(np.array_equal(steps[0][k], steps[1][k]) for k in steps[0])


def test_clipping_over_threads_equals_one_gradient_after_another(monkeypatch, rng):
    monkeypatch.setattr(parallel, "MIN_THREADED_VALUES", 0)
    grads = model64().loss_and_grads(*rng.integers(0, V, (2, 4, T)))[1]
    norms, clipped = [], []
    for cores in (2, 1):
        monkeypatch.setattr(parallel, "cpu_cores", lambda: cores)
        g = {k: v.copy() for k, v in grads.items()}
        norms.append(clip_grad_norm(g, 1e-3))
        clipped.append(g)
    assert norms[0] == norms[1] > 1e-3
    assert all(np.array_equal(clipped[0][k], clipped[1][k]) for k in grads)
    assert not np.array_equal(clipped[0]["wte"], grads["wte"])  # they were scaled
