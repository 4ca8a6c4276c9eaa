"""Sequence-to-sequence training, and the encoder-decoder vs prefix-LM vs decoder-only comparison.

The lecture turns an encoder-decoder into a decoder-only model by removing four structures, one at a
time. Each row of VARIANTS turns one more switch of minilm.encdec on; the prefix-LM and the decoder-only
model are rows of the same table. Every variant is trained with the same budget (the same steps, batches,
examples, learning rate and width) on the toy task of minilm.data.seq2seq, at two shapes of data.

    python -m minilm archs --jobs 2     (the lesson's numbers, lessons/results/archs_default.json; resumable)
"""
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import runner
from .. import layers
from ..backend import to_numpy
from ..data import seq2seq as task
from ..encdec import SWITCHES, EncDecConfig, EncoderDecoder, encdec_param_shapes, qkv_as_cross
from ..errors import MinilmError
from ..model import sub_params
from ..train import Trainer, TrainConfig

# The lecture's table, row by row: each row turns on one more switch (see minilm.encdec).
VARIANTS = {
    "encoder-decoder": (),
    "+ shared attention": SWITCHES[:1],
    "+ shared parameters": SWITCHES[:2],
    "prefix-LM": SWITCHES[:3],  # + the decoder's layer i reads the encoder's layer i
    "decoder-only": SWITCHES,  # + causal attention over the input
}


@dataclass
class RunConfig:
    """The budget every variant gets: the model's size, and the training schedule (minilm.train's)."""
    d_model: int = 48
    n_layer: int = 2
    n_head: int = 4
    eval_size: int = 512  # held-out examples
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=400, batch_size=32, lr=3e-3,
                                                                   warmup_steps=30, eval_every=50))

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "train": TrainConfig(**d["train"])})

    @classmethod
    def with_steps(cls, steps):
        """The default budget with another number of optimizer steps (evaluated at least at the end)."""
        run = cls()
        run.train = replace(run.train, steps=steps, eval_every=min(run.train.eval_every, steps))
        return run


# preset -> (optimizer steps per run, seeds per variant and shape)
PRESETS = {"default": (400, 3),  # the lesson's comparison
           "short": (200, 2),    # README's executor timing: 20 points of a few seconds
           "ci": (2, 1)}         # the code path in seconds


def build_variant(variant, shape, run, vocab_size, seed=0, dtype="float32", device=None, variants=VARIANTS):
    """An EncoderDecoder with the variant's switches on (variants: name -> switches; the lecture's table, or
    another study's rows); the target positions are numbered after the input's in every variant, so that the
    rows differ only in the four structures."""
    if variant not in variants:
        raise MinilmError(f"unknown variant {variant!r}: choose from {', '.join(variants)}")
    config = EncDecConfig(vocab_size=vocab_size, block_size=shape.n_input + shape.n_target, n_layer=run.n_layer,
                          n_head=run.n_head, d_model=run.d_model, dtype=dtype, targets_after_input=True,
                          **{name: name in variants[variant] for name in SWITCHES})
    return EncoderDecoder(config, seed=seed, device=device)


def evaluate(model, batch):
    """Held-out loss (nats per target token), token accuracy, and exact match: the fraction of examples whose
    every target token is the model's top choice. (That is exactly when greedy decoding writes the whole
    target: each step then sees the same correct prefix as in teacher forcing.)"""
    logits = model.forward(batch["src"], batch["tgt"])  # (B, T, V)
    targets = model.xp.asarray(batch["targets"])
    right = to_numpy(logits.argmax(axis=-1) == targets)  # (B, T)
    return {"loss": float(layers.token_losses(logits, targets).mean()),
            "token_accuracy": float(right.mean()), "exact_match": float(right.all(axis=1).mean())}


def train_variant(variant, shape_name, run, seed=0, until=None, device=None, variants=VARIANTS):
    """Train one variant (of variants, as build_variant's) on one shape of data from scratch, with minilm.train's
    Trainer (the seed draws the training examples). until: stop after that many steps (the schedule is still
    the full run's, so the losses match the first steps of a full run).
    Returns (record, model): a JSON-able record of the variant, shape, seed, parameter count, history and
    final evaluation; and the trained model."""
    shape, tok = task.SHAPES[shape_name], task.tokenizer()
    model = build_variant(variant, shape, run, tok.vocab_size, seed, device=device, variants=variants)
    held_out = task.make_batch(tok, shape, run.eval_size, np.random.default_rng(10_000 + seed))

    def batches(rng, batch_size):  # -> the arguments of model.loss_and_grads
        batch = task.make_batch(tok, shape, batch_size, rng)
        return batch["src"], batch["tgt"], batch["targets"]

    start = time.perf_counter()
    trainer = Trainer(model, batches, lambda m: evaluate(m, held_out), replace(run.train, seed=seed))
    h = trainer.run(until=until, progress=False)
    if h.stopped:  # Ctrl-C stops the whole comparison, not only this run
        raise KeyboardInterrupt
    train_loss = dict(zip(h.steps, h.losses))
    history = [{"step": step, "train_loss": train_loss[step], **metrics}
               for step, metrics in zip(h.val_steps, h.val_metrics)]
    return {"variant": variant, "shape": shape_name, "seed": seed, "params": model.num_params(),
            "seconds": time.perf_counter() - start, "history": history,
            "final": history[-1] if history else evaluate(model, held_out)}, model


def transplant(params, config):
    """The decoder-only model's parameters (GPT's names), put into the architecture of config: the encoder
    gets a copy of the decoder's blocks, each cross-attention a copy of its layer's self-attention (the
    lecture: they have the same projections) and of its layernorm. Returns the new parameter dict."""
    new = {}
    for name in encdec_param_shapes(config):
        if name.startswith("enc."):
            new[name] = params[name[len("enc."):]].copy()
        elif ".ln_x." in name:
            new[name] = params[name.replace(".ln_x.", ".ln_1.")].copy()
        elif ".xattn." in name:
            layer, part = name.split(".xattn.")
            new[name] = qkv_as_cross(sub_params(params, layer + ".attn."))[part].copy()
        else:
            new[name] = params[name]
    return new


def transplant_table(decoder_only, shape_name, run, seed=0):
    """How far each step of the lecture's table moves a trained decoder-only model's output when its
    weights are kept: max |logits - decoder-only logits| and the held-out metrics, per variant."""
    shape, tok = task.SHAPES[shape_name], task.tokenizer()
    held_out = task.make_batch(tok, shape, run.eval_size, np.random.default_rng(10_000 + seed))
    reference = to_numpy(decoder_only.forward(held_out["src"], held_out["tgt"]))
    rows = []
    for variant in VARIANTS:
        config = build_variant(variant, shape, run, tok.vocab_size).config
        model = EncoderDecoder(config, params=transplant(decoder_only.params, config))
        logits = to_numpy(model.forward(held_out["src"], held_out["tgt"]))
        rows.append({"variant": variant, "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                     **evaluate(model, held_out)})
    return rows


# --------------------------------------------------------------------------------------------------
# The comparison as points of minilm.studies.runner: one resumable results file, run anywhere

def preset(name):
    """The budget and the seeds of a preset."""
    steps, seeds = runner.choose_preset(PRESETS, name, "archs")
    return RunConfig.with_steps(steps), list(range(seeds))


def sweep_config(preset):
    """What the results file records as the sweep's configuration."""
    run, seeds = preset
    return {"run": asdict(run), "seeds": seeds, "shapes": {shape: asdict(s) for shape, s in task.SHAPES.items()}}


def point_key(shape_name, variant, seed):
    return f"{shape_name}/{variant}/seed{seed}"


def sweep_points(preset, device=None):
    """Every variant at every shape of data with every seed, as (key, point) pairs; a point is
    (run, shape name, variant, seed, device)."""
    run, seeds = preset
    return [(point_key(shape, variant, seed), (run, shape, variant, seed, device))
            for shape in task.SHAPES for variant in VARIANTS for seed in seeds]


def measure(point):
    """Train one variant; the decoder-only model of seed 0 also goes through the lecture's table with
    its weights kept (its record's "transplanted")."""
    run, shape_name, variant, seed, device = point
    record, model = train_variant(variant, shape_name, run, seed, device=device)
    if variant == "decoder-only" and seed == 0:
        record["transplanted"] = transplant_table(model, shape_name, run, seed)
    return record


def runs_of(results, shape_name, variant):
    """The records of one variant at one shape of data, in seed order."""
    return sorted((r for r in results["points"].values() if r["shape"] == shape_name and r["variant"] == variant),
                  key=lambda r: r["seed"])



def report(results):
    """Per shape of data, each variant's held-out loss and exact match at the end: mean ± sd over seeds."""
    lines = []
    for shape in results["config"]["shapes"]:
        lines.append(f"{shape}:  {'variant':<22}{'params':>9}   {'held-out loss':<17}exact match")
        for variant in VARIANTS:
            runs = runs_of(results, shape, variant)
            if not runs:
                continue
            loss, exact = (np.array([r["final"][k] for r in runs]) for k in ("loss", "exact_match"))
            lines.append(f"{'':<{len(shape) + 3}}{variant:<22}{runs[0]['params']:>9,}   "
                         f"{loss.mean():.3f} ± {loss.std():.3f}    {exact.mean():.3f} ± {exact.std():.3f}"
                         f"   ({len(runs)} seeds)")
    return "\n".join(lines)


STUDY = runner.Study(
    name="archs", help="encoder-decoder vs prefix-LM vs decoder-only, the same budget (lesson 02)",
    description="Train encoder-decoder, prefix-LM and decoder-only models with the same budget on a toy "
                "translation task at two shapes of data; write the results as JSON (resumable).",
    presets=PRESETS, default="default", preset=preset, sweep=sweep_points, measure=measure, report=report,
    record=sweep_config, committed=("default",))
