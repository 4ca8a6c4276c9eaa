"""The training loop, one for every model: batches in, AdamW steps, periodic evaluation, checkpoints.

    trainer = Trainer(model, train_tokens, val_tokens, TrainConfig(steps=500), checkpoint_path="run.npz")
    history = trainer.run()                       # progress bar, eval, checkpoints
    trainer = Trainer.resume("run.npz", train_tokens, val_tokens)   # continues exactly where it stopped

What it trains on, `train`, is a batch function  batches(rng, batch_size) -> tuple, and each step is
model.loss_and_grads(*batch): so a GPT, an encoder-decoder and an encoder classifier train in the same loop.
For a decoder-only model `train` may be a 1-D token array instead: random windows of it, the targets
shifted by one (token_windows). What it evaluates on, `val`, is a function evaluate(model) -> dict of
metrics (numbers) with at least "loss", or a token array (the mean loss on the same windows every time).

Nothing the user made is lost: checkpoints are written atomically; a NaN or infinite loss stops the run
before the bad step is applied and keeps the last good checkpoint (so does a NaN held-out loss, and weights
that a finite loss left NaN or infinite are never saved); Ctrl-C (or a Jupyter interrupt)
finishes the current step, saves, and returns. TrainConfig(keep_best=True) writes, at the end, the state of the
lowest held-out loss rather than the last.
"""
import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import layers, parallel
from .backend import to_numpy
from .checkpoint import load_model, nonfinite, save_checkpoint
from .memory import keep_freed_memory
from .errors import MinilmError, NotFinite
from .optim import AdamW, clip_grad_norm, lr_at
from .tokenizer import tokenizer_from_json


@dataclass
class TrainConfig:
    steps: int = 500
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100  # and at the last step; 0: never
    eval_batches: int = 4
    checkpoint_every: int = 200  # 0: only at the end (and on Ctrl-C)
    seed: int = 0
    # How many pieces each batch is cut into across the CPU's cores (minilm/parallel.py). None: one per
    # core when the batch is big enough, the fastest; 1: never cut, the same float rounding on any machine.
    shards: int | None = None
    # With a validation: the checkpoint a finished run writes is the state of its lowest held-out loss (the
    # model in memory returns to it too), marked "kept" in the checkpoint; the last state is not written.
    keep_best: bool = False


class TrainingDiverged(MinilmError):
    """The loss became NaN or infinite."""


def get_batch(tokens, batch_size, block_size, rng):
    """Random windows of a 1-D token array: x (B, T) and y = x shifted left by one (the next tokens)."""
    return windows_at(tokens, rng.integers(0, len(tokens) - block_size, size=batch_size), block_size)


def windows_at(tokens, starts, block_size):
    rows = starts[:, None] + np.arange(block_size + 1)  # (B, T + 1)
    window = tokens[rows]
    return window[:, :-1], window[:, 1:]


def token_windows(tokens, block_size):
    """The batch function of a 1-D token array: batches(rng, batch_size) -> (x, y), as get_batch."""
    def batches(rng, batch_size):
        return get_batch(tokens, batch_size, block_size, rng)
    return batches


def read_once(tokens, block_size):
    """A batch function that reads the stream in order, each token once (windows side by side; the
    rng is not used): a model trained on it never sees an example twice. Runs out at the stream's end."""
    position = 0

    def batches(rng, batch_size):
        nonlocal position
        width = block_size + 1
        if position + batch_size * width > len(tokens):
            raise MinilmError(f"the stream of {len(tokens):,} tokens is read to its end: "
                              "make it longer for this many steps")
        starts = position + width * np.arange(batch_size)
        position += batch_size * width
        return windows_at(tokens, starts, block_size)
    return batches


def estimate_loss(model, tokens, batch_size, n_batches, seed=1234):
    """Mean next-token loss on n_batches random windows (the same windows every call, so evals compare)."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(n_batches):
        x, y = get_batch(tokens, batch_size, model.config.block_size, rng)
        logits = model.forward(x)
        total += float(layers.token_losses(logits, model.xp.asarray(y)).mean())
    return total / n_batches


def window_loss(tokens, batch_size, n_batches):
    """The evaluate function of a 1-D token array: evaluate(model) -> {"loss": estimate_loss(...)}."""
    def evaluate(model):
        return {"loss": estimate_loss(model, tokens, batch_size, n_batches)}
    return evaluate


def check_tokens(tokens, model, name):
    """A decoder-only model's token array: 1-D ids in its vocabulary, more of them than its block size."""
    if not model.reads_token_stream:
        raise MinilmError(f"a token array ({name}) is for a decoder-only model: give {type(model).__name__} "
                          "a function instead (see minilm.train)")
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or len(tokens) <= model.config.block_size:
        raise MinilmError(f"{name} needs more than block_size={model.config.block_size} tokens, got {len(tokens)}: "
                          "use a longer text or a smaller block size")
    if tokens.dtype.kind not in "iu" or tokens.min() < 0 or tokens.max() >= model.config.vocab_size:
        raise MinilmError(f"{name} must be integer token ids in 0..{model.config.vocab_size - 1}")
    return tokens


@dataclass
class History:
    steps: list = field(default_factory=list)  # step number of each training loss
    losses: list = field(default_factory=list)
    val_steps: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    val_metrics: list = field(default_factory=list)  # everything each evaluation measured (a dict with "loss")
    step_metrics: list = field(default_factory=list)  # what a model measured at each step besides its loss
    stopped: str = ""  # "", "interrupted"


class Trainer:
    """Trains any minilm model: train is a batch function or a token array, val an evaluate function, a
    token array or None (see the module's docstring)."""

    def __init__(self, model, train, val=None, config=None, checkpoint_path=None, tokenizer=None):
        self.model, self.config = model, config or TrainConfig()
        if not callable(train):
            train = token_windows(check_tokens(train, model, "train"), model.config.block_size)
        if val is not None and not callable(val):
            val = window_loss(check_tokens(val, model, "val"), self.config.batch_size, self.config.eval_batches)
        self.batches = train  # batches(rng, batch_size) -> the arguments of model.loss_and_grads
        self.validate = val  # evaluate(model) -> {"loss": ..., ...}, or None
        self.checkpoint_path, self.tokenizer = checkpoint_path, tokenizer
        self.optimizer = AdamW(model.params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.rng = np.random.default_rng(self.config.seed)  # draws the batches
        self.step = 0
        self.history = History()
        self.saved_step = None  # the step of the last checkpoint written
        self.best = None  # keep_best: (the lowest held-out loss so far, and the params, meta, optimizer arrays then)
        self.kind = None  # which command's run this is ("train", "finetune"), kept in the checkpoint
        self.tokens_read = 0  # token positions of the batches this Trainer stepped on (padding too: it costs the same)
        self._stop_requested = False

    # ---- one step

    def train_step(self):
        """One AdamW step on one random batch. Returns the loss before the step."""
        cfg = self.config
        try:
            batch = self.batches(self.rng, cfg.batch_size)
        except NotFinite as e:  # a batch sampled from the model itself (minilm.rollouts)
            self._diverged(f"{e} at step {self.step}")
        loss, grads = self._loss_and_grads(batch)
        if not math.isfinite(loss):
            self._diverged(f"loss became {loss} at step {self.step}; stopped before applying it")
        clip_grad_norm(grads, cfg.grad_clip)
        self.optimizer.step(grads, lr=lr_at(self.step, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio))
        self.step += 1
        self.tokens_read += int(np.size(batch[0]))  # batch[0]: the input ids, (B, T)
        self.history.steps.append(self.step)
        self.history.losses.append(loss)
        if getattr(self.model, "measured", None):  # a model that measures more than its loss (PolicyGradient)
            self.history.step_metrics.append(dict(self.model.measured))
        return loss

    def _diverged(self, what):
        """Stop: what went wrong, which checkpoint is kept, and which setting to lower."""
        path = self.checkpoint_path
        where = (f"the last good checkpoint (step {self.saved_step}) is kept at {path}" if self.saved_step is not None
                 else "nothing was written" + (f" ({path} is as it was)" if path and os.path.exists(path) else ""))
        trained = getattr(self.model, "policy", self.model)  # DPO's and PolicyGradient's model is their policy
        alpha = getattr(trained, "alpha", None)  # a LoRA: its scale alpha / rank multiplies every update
        lower = f"the learning rate (now {self.config.lr})" + (
            f" or --lora-alpha (now {alpha:g}: the adapters' scale alpha / rank is {trained.scale:g})"
            if alpha is not None else " or the gradient clip")
        raise TrainingDiverged(f"{what}, {where}; lower {lower}")

    def _loss_and_grads(self, batch):
        """model.loss_and_grads(*batch). A batch of token windows (idx, targets[, loss_mask]: the model
        reads_token_stream) is cut across the CPU's cores (minilm/parallel.py, as TrainConfig.shards says);
        other models' batches run whole, because parallel weights each piece by the target positions it
        counts, and it finds those only in a batch of windows."""
        if self.model.reads_token_stream:
            return parallel.loss_and_grads(self.model, *batch, shards=self.config.shards)
        return self.model.loss_and_grads(*batch)

    # ---- the loop

    def run(self, until=None, progress=True):
        """Train to step `until` (default: config.steps). Returns the History."""
        from tqdm.auto import tqdm  # a text bar in a terminal, a widget bar in JupyterLab

        keep_freed_memory()  # faster steps: freed arrays stay in the process for the next one (minilm/memory.py)
        cfg = self.config
        until = cfg.steps if until is None else min(until, cfg.steps)
        bar = tqdm(total=until, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        self.history.stopped = ""
        start, tokens_before = time.perf_counter(), self.tokens_read
        with self._ctrl_c_stops_cleanly(), contextlib.closing(bar):  # closed (its line ended) before any error
            while self.step < until and not self._stop_requested:
                loss = self.train_step()
                bar.update(1)
                shown = {"loss": f"{loss:.3f}",
                         "tok/s": f"{(self.tokens_read - tokens_before) / (time.perf_counter() - start):,.0f}"}
                last = self.step == cfg.steps
                if cfg.eval_every and self.validate is not None and (self.step % cfg.eval_every == 0 or last):
                    self.evaluate()
                shown.update({name: f"{value:.3f}" for name, value in getattr(self.model, "measured", {}).items()})
                if self.history.val_losses:
                    shown["val"] = f"{self.history.val_losses[-1]:.3f}"
                bar.set_postfix(shown, refresh=False)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        if self._stop_requested:
            self.history.stopped = "interrupted"
            self._stop_requested = False
        if self.best is not None and self.step == cfg.steps and self.best[2]["step"] < self.step:
            self._keep_best()
        else:
            self.save()
        return self.history

    def _keep_best(self):
        """Write the state of the lowest held-out loss as the run's checkpoint, and return the model to it."""
        loss, params, meta, opt_arrays = self.best
        meta["kept"] = {"step": meta["step"], "of": self.step, "loss": loss,
                        "last_loss": self.history.val_losses[-1]}
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, params, meta, opt_arrays)
            self.saved_step = meta["step"]
        for name, p in self.model.params.items():
            p[...] = params[name]

    def evaluate(self):
        """Evaluate the model on val now and record it in the history. Returns the validation loss."""
        metrics = {name: float(value) for name, value in self.validate(self.model).items()}  # JSON-able
        if "loss" not in metrics:
            raise MinilmError(f"the evaluate function must return a dict with a \"loss\", got the keys {list(metrics)}")
        if not math.isfinite(metrics["loss"]):
            self._diverged(f"the held-out loss became {metrics['loss']} at step {self.step}")
        self.history.val_steps.append(self.step)
        self.history.val_losses.append(metrics["loss"])
        self.history.val_metrics.append(metrics)
        if self.config.keep_best and (self.best is None or metrics["loss"] < self.best[0]):
            self.best = (metrics["loss"], *self._state(copy=True, to_write=self.checkpoint_path is not None))
        return metrics["loss"]

    @contextlib.contextmanager
    def _ctrl_c_stops_cleanly(self):
        """While training, Ctrl-C asks the loop to stop after the current step (then it saves)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        previous = signal.signal(signal.SIGINT, lambda *_: setattr(self, "_stop_requested", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ---- checkpoints

    def save(self, path=None):
        path = path or self.checkpoint_path
        if path is None:
            return
        save_checkpoint(path, *self._state())
        self.saved_step = self.step

    def _state(self, copy=False, to_write=True):
        """What a checkpoint holds now: (params, meta, the optimizer's arrays); copies of the arrays if asked.
        to_write=False: a snapshot kept in memory only (keep_best with no checkpoint path), whose meta leaves out
        what rebuilds the model from a file (a LoRA of a model held in memory names no base to load)."""
        if nonfinite({n: to_numpy(p) for n, p in self.model.params.items()}):
            self._diverged(f"the weights became NaN or infinite by step {self.step}; not saved")
        opt_arrays, opt_meta = self.optimizer.state()
        meta = {"tokenizer": None if self.tokenizer is None else self.tokenizer.to_json(),  # or the model's own
                **(self.model.checkpoint_meta() if to_write else {}), "kind": self.kind,
                "train_config": asdict(self.config), "step": self.step, "optimizer": opt_meta,
                "rng": self.rng.bit_generator.state,
                "history": asdict(self.history)}
        params = self.model.params
        if copy:
            params, opt_arrays = ({n: a.copy() for n, a in arrays.items()} for arrays in (params, opt_arrays))
        return params, meta, opt_arrays

    @classmethod
    def resume(cls, path, train, val=None, device=None):
        """A Trainer in exactly the state the checkpoint at path was saved in, with the model's class and
        parameters from it; train and val as when it was made (a function cannot be stored in a checkpoint)."""
        model, arrays, meta = load_model(path, device=device)
        tokenizer = None if meta.get("tokenizer") is None else tokenizer_from_json(meta["tokenizer"])
        trainer = cls(model, train, val, TrainConfig(**meta["train_config"]), path, tokenizer)
        trainer.optimizer.load_state(arrays, meta["optimizer"])
        trainer.rng.bit_generator.state = meta["rng"]
        trainer.step = trainer.saved_step = meta["step"]
        trainer.history = History(**meta["history"])
        trainer.kind = meta.get("kind")
        return trainer

