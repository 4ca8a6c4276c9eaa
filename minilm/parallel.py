"""Data parallelism on the CPU: one training step's batch split across the cores.

NumPy runs each elementwise operation (GELU, softmax, layernorm, ...) on one core, so a plain training
step leaves the other cores idle for much of its time. To use them all we do what large models do across
many GPUs, *data parallelism*: split the batch into shards, one per core, run the forward and backward
pass of each shard in its own thread (NumPy lets go of Python's lock while it computes, so the threads
really run at the same time), and combine the results.

The loss of the whole batch is the mean over all its counted positions, so a shard holding a share
w = (its counted positions) / (all counted positions) contributes w * its loss and w * its gradients:
the sum is the full batch's loss and gradient, equal up to float rounding. (The rounding depends on
how the batch was cut, and by default that depends on the number of cores: see default_shards;
TrainConfig(shards=1) trains unsplit, the same on any machine.)

While the shards run, the BLAS library that multiplies the matrices is held to one thread per call:
otherwise each shard's matmul would start threads of its own and they would fight over the same cores.
"""
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import xp_of

_pool = None  # the worker threads, made on first use
_blas = None  # threadpoolctl's handle on the BLAS library, made on first use


def cpu_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# A shard smaller than this many activation values (batch rows x positions x channels) is not worth a
# thread: handing the work between threads costs more than the second core gives back (benchmarks/bench_train.py
# on config a; benchmarks/RESULTS.md).
MIN_SHARD_VALUES = 2 ** 16

# Each shard also fills a gradient set of its own, one value per trained parameter, and the sets are summed. For
# a model that trains this many parameters or more, that costs more than the second core gives back: a pretrained
# model fully fine-tuned runs its batch whole, its LoRA and the benchmark GPTs cut it
# (benchmarks/bench_finetune_shards.py; benchmarks/RESULTS.md).
MAX_SHARDED_PARAMETERS = 2 ** 26  # 67M


def default_shards(model, batch, T):
    """How many shards to cut a (batch, T) batch into: 1 on a GPU (one kernel already fills the device),
    and 1 for a model that trains MAX_SHARDED_PARAMETERS or more (a pretrained model fully fine-tuned, say);
    else one per CPU core, but never so many that a shard falls below MIN_SHARD_VALUES. Tiny models therefore
    always train unsplit, and give the same numbers on any machine."""
    if model.xp is not np or model.num_params() >= MAX_SHARDED_PARAMETERS:
        return 1
    return max(1, min(cpu_cores(), batch * T * model.config.d_model // MIN_SHARD_VALUES))


def shard_slices(batch, shards):
    """Split range(batch) into at most `shards` nearly equal, non-empty slices."""
    n = max(1, min(shards, batch))
    bounds = np.linspace(0, batch, n + 1).round().astype(int)
    return [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def loss_and_grads(model, idx, targets, loss_mask=None, shards=None):
    """model.loss_and_grads(idx, targets, loss_mask) with the batch cut into `shards` pieces that run in
    threads, one per core (default: default_shards). Returns (loss: float, grads: dict), like the model's.
    A decoder-only model's batch: the pieces are weighted by the target positions they count, so the Trainer
    runs other models' batches (an encoder-decoder's, a classifier's) whole."""
    xp = model.xp
    idx, targets = xp.asarray(idx), xp.asarray(targets)
    loss_mask = None if loss_mask is None else xp.asarray(loss_mask)
    if idx.ndim != 2 or targets.shape != idx.shape:  # not a batch: the model's own checks explain why
        return model.loss_and_grads(idx, targets, loss_mask)
    shards = default_shards(model, *idx.shape) if shards is None else shards
    pieces = shard_slices(idx.shape[0], shards)
    counted = [_counted_positions(targets[s], None if loss_mask is None else loss_mask[s]) for s in pieces]
    if len(pieces) == 1 or sum(counted) == 0:
        return model.loss_and_grads(idx, targets, loss_mask)

    def one_shard(s):
        return model.loss_and_grads(idx[s], targets[s], None if loss_mask is None else loss_mask[s])

    with one_blas_thread():
        results = list(_threads().map(one_shard, pieces))
    shares = [c / sum(counted) for c in counted]
    loss = sum(share * shard_loss for share, (shard_loss, _) in zip(shares, results))
    names = list(results[0][1])
    grads = dict(zip(names, each(lambda name: _weighted_sum(name, shares, results), names, results[0][1].values())))
    return loss, grads


# Work on fewer array values than this, in all, is done one call after the other: handing small calls
# to threads costs more than the second core gives back (AdamW over 0.9M parameters: 3.6 ms in threads,
# 2.4 ms in one; over 3.7M: 7.3 ms in threads, 10.6 ms in one).
MIN_THREADED_VALUES = 2 ** 21


def each(fn, items, arrays):
    """[fn(item) for item in items], where the calls work on `arrays` (an iterable of arrays). Over one
    thread per core when those are NumPy arrays holding at least MIN_THREADED_VALUES values in all; else
    one call after the other (on a GPU the kernels queue on one stream anyway). The first error any call
    raises is raised here."""
    arrays = list(arrays)
    if xp_of(*arrays) is np and cpu_cores() > 1 and sum(a.size for a in arrays) >= MIN_THREADED_VALUES:
        return list(_threads().map(fn, items))
    return [fn(item) for item in items]


def _counted_positions(targets, loss_mask):
    return targets.size if loss_mask is None else float(loss_mask.astype("float64").sum())


def _weighted_sum(name, shares, results):
    """sum_i shares[i] * grads_i[name], accumulated into the first shard's array (no new ones)."""
    total = results[0][1][name]
    total *= shares[0]
    for share, (_, grads) in zip(shares[1:], results[1:]):
        total += share * grads[name]
    return total


def _threads():
    global _pool
    if _pool is None:
        cores = itertools.cycle(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
        _pool = ThreadPoolExecutor(max_workers=cpu_cores(), thread_name_prefix="minilm-shard",
                                   initializer=_pin_to_next_core, initargs=(cores,))
    return _pool


def _pin_to_next_core(cores):
    """Keep each worker thread on a core of its own. Left free, two threads woken after a pause (the
    evaluation, a checkpoint, a lesson's plot) were often put on the same core by Linux and stayed there
    for much of a short step: config a's split step took 46 ms after a 0.5 s pause, 26 ms pinned."""
    if cores is None:
        return
    try:
        os.sched_setaffinity(0, {next(cores)})  # 0: the calling thread
    except OSError:  # a sandbox that forbids it: the threads run unpinned, only a little slower
        pass


def one_blas_thread():
    """Hold the BLAS library NumPy uses to one thread: from now until the returned handle's
    restore_original_limits(), or for a `with` block."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController  # finds the BLAS that NumPy loaded
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")
