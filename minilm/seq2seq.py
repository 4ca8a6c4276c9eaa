"""Sequence-to-sequence training, and the encoder-decoder vs prefix-LM vs decoder-only comparison.

The lecture turns an encoder-decoder into a decoder-only model by removing four structures, one at a
time. Each row of VARIANTS turns one more switch of minilm.encdec on; the prefix-LM and the decoder-only
model are rows of the same table. Every variant is trained with the same budget (the same steps, batches,
examples, learning rate and width) on the toy task of minilm.data.seq2seq, at two shapes of data.

    python -m minilm archs --out lessons/results/archs.json     (the lesson's numbers; a few minutes)
"""
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import layers
from .backend import to_numpy
from .data import seq2seq as task
from .encdec import SWITCHES, EncDecConfig, EncoderDecoder, encdec_param_shapes, qkv_as_cross
from .errors import MinilmError
from .model import sub_params
from .train import Trainer, TrainConfig

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


def build_model(variant, shape, run, vocab_size, seed=0, dtype="float32"):
    """An EncoderDecoder with the variant's switches on; the target positions are numbered after the input's
    in every variant, so that the rows differ only in the four structures."""
    if variant not in VARIANTS:
        raise MinilmError(f"unknown variant {variant!r}: choose from {', '.join(VARIANTS)}")
    config = EncDecConfig(vocab_size=vocab_size, block_size=shape.n_input + shape.n_target, n_layer=run.n_layer,
                          n_head=run.n_head, d_model=run.d_model, dtype=dtype, targets_after_input=True,
                          **{name: name in VARIANTS[variant] for name in SWITCHES})
    return EncoderDecoder(config, seed=seed)


def evaluate(model, batch):
    """Held-out loss (nats per target token), token accuracy, and exact match: the fraction of examples whose
    every target token is the model's top choice. (That is exactly when greedy decoding writes the whole
    target: each step then sees the same correct prefix as in teacher forcing.)"""
    logits = model.forward(batch["src"], batch["tgt"])  # (B, T, V)
    targets = model.xp.asarray(batch["targets"])
    right = to_numpy(logits.argmax(axis=-1) == targets)  # (B, T)
    return {"loss": float(layers.token_losses(logits, targets).mean()),
            "token_accuracy": float(right.mean()), "exact_match": float(right.all(axis=1).mean())}


def train_variant(variant, shape_name, run, seed=0, until=None):
    """Train one variant on one shape of data from scratch, with minilm.train's Trainer (the seed draws the
    training examples). until: stop after that many steps (the schedule is still the full run's, so the
    losses match the first steps of a full run).
    Returns (record, model): a JSON-able record of the variant, shape, seed, parameter count, history and
    final evaluation; and the trained model."""
    shape, tok = task.SHAPES[shape_name], task.tokenizer()
    model = build_model(variant, shape, run, tok.vocab_size, seed)
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
        config = build_model(variant, shape, run, tok.vocab_size).config
        model = EncoderDecoder(config, params=transplant(decoder_only.params, config))
        logits = to_numpy(model.forward(held_out["src"], held_out["tgt"]))
        rows.append({"variant": variant, "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                     **evaluate(model, held_out)})
    return rows


def compare(run, shapes=tuple(task.SHAPES), seeds=(0, 1, 2), variants=tuple(VARIANTS), log=print):
    """Train every variant at every shape with every seed (the same budget each); then put the trained
    decoder-only weights (seed 0) through the table. Returns a JSON-able dict."""
    runs, transplanted = [], {}
    for shape_name in shapes:
        for variant in variants:
            for seed in seeds:
                record, model = train_variant(variant, shape_name, run, seed)
                runs.append(record)
                log(f"{shape_name:9s} {variant:22s} seed {seed}: loss {record['final']['loss']:.3f}  "
                    f"exact match {record['final']['exact_match']:.3f}  ({record['seconds']:.0f} s)")
                if variant == "decoder-only" and seed == seeds[0]:
                    transplanted[shape_name] = transplant_table(model, shape_name, run, seed)
    return {"run": asdict(run), "seeds": list(seeds), "runs": runs, "transplanted": transplanted,
            "shapes": {name: asdict(task.SHAPES[name]) for name in shapes}}


def save_results(results, path):
    """Write the JSON atomically: an interrupted run never leaves a half-written (or emptied) results file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)
    return path


def load_results(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise MinilmError(f"{path} not found: run `python -m minilm archs --out {path}` to make it") from None


# --------------------------------------------------------------------------------------------------
# The CLI: python -m minilm archs

def add_archs_command(commands):
    p = commands.add_parser("archs", help="train encoder-decoder, prefix-LM and decoder-only models with the "
                                          "same budget on a toy translation task; write the results as JSON")
    p.add_argument("--out", default="lessons/results/archs.json", help="where to write the JSON (default %(default)s)")
    p.add_argument("--steps", type=int, default=RunConfig().train.steps, help="optimizer steps per run (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="runs per variant and shape (default %(default)s)")
    p.set_defaults(run=run_archs)


def run_archs(args):
    if args.steps < 1 or args.seeds < 1:
        raise MinilmError("--steps and --seeds must be at least 1")
    run = RunConfig()
    run.train = replace(run.train, steps=args.steps, eval_every=min(run.train.eval_every, args.steps))
    folder = os.path.dirname(args.out) or "."
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):  # fail now, not after minutes of training
        raise MinilmError(f"cannot write to {folder}: choose another --out")
    start = time.perf_counter()
    results = compare(run, seeds=tuple(range(args.seeds)))
    save_results(results, args.out)
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
