"""Teaching the instruction (lesson 07's toy, docs/lab/lesson07_toy_design.md): instruction-tune the glib models
at the dip and read lesson 04's probes before and after.

A point pre-trains one size of a glib preset exactly as that preset does (minilm.studies.glib.train_point),
probes it, fine-tunes it on GlibCorpus.instruction_pairs (repeat or fix an altered quote, on the quotes no
probe uses; the loss on the answer only), in full or with LoRA adapters, and probes it again. The report reads
each probe's change with lesson 04's paired bootstrap over seeds and quotes, counts the seeds that follow the
instruction, and sets the fine-tuning's compute beside what pre-training longer cost.

    python -m minilm instruct --jobs 2     (lessons/results/instruct_lesson07.json; resumable)
"""
from dataclasses import dataclass, field

import numpy as np

from . import glib, glib_report, runner
from .stats import paired_bootstrap, percentile_interval
from ..data.instructions import batch_of, encode
from ..lora import ADAPTED, LoRA
from ..train import TrainConfig, Trainer, windows_at

ARMS = ("full", "lora")


@dataclass
class InstructConfig:
    base: str                 # the glib preset whose models are pre-trained and tuned
    d_model: int              # which of its sizes
    seeds: list
    arms: list = field(default_factory=lambda: list(ARMS))
    pairs: int = 400          # instruction pairs to tune on
    steps: int = 300
    batch_size: int = 16
    lr: dict = field(default_factory=lambda: {"full": 1e-3, "lora": 1e-2})
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list = field(default_factory=lambda: list(ADAPTED))
    replay: float = 0.0       # the share of each batch drawn from the pre-training stream (loss on every position)


PRESETS = {
    "lesson07": InstructConfig(base="full", d_model=96, seeds=[0, 1, 2, 3, 4]),  # the design's
    # The second design (docs/lab/lesson07_toy_design.md, "The second design"), after the first failed: rows begin
    # with <eos> as the stream's examples do (minilm.data.instructions), every pair read about once, and half of
    # each batch rehearses the pre-training stream. Seed 0 is where it was found; seeds 1-4 test it.
    "lesson07b": InstructConfig(base="full", d_model=96, seeds=[0, 1, 2, 3, 4], pairs=16000, steps=1000,
                                replay=0.5),
    "ci": InstructConfig(base="ci", d_model=16, seeds=[0], pairs=40, steps=10, replay=0.5),  # the code path in seconds
}


def preset(name):
    return runner.choose_preset(PRESETS, name, "instruct")


def base_size(config):
    """The glib preset and the Size of it that the study tunes."""
    base = glib.PRESETS[config.base]
    return base, next(s for s in base.sizes if s.d_model == config.d_model and not s.steps)


def tuning_batches(rows, pad_id, stream=None, replay=0.0):
    """The Trainer's batch function: random rows of instruction pairs (the loss on the answer) and, where
    replay > 0, that share of each batch as windows of the pre-training stream (the loss on every position:
    the model keeps practising what it knew)."""
    def batches(rng, batch_size):
        n_replay = round(replay * batch_size)
        picks = rng.integers(len(rows.ids), size=batch_size - n_replay)
        batch = batch_of(rows, picks, pad_id, glib.BLOCK_SIZE if n_replay else None)  # 3 x (b, T)
        if n_replay:
            starts = rng.integers(len(stream) - glib.BLOCK_SIZE - 1, size=n_replay)
            x, y = windows_at(stream, starts, glib.BLOCK_SIZE)  # (n_replay, T) each
            batch = tuple(np.concatenate([a, r.astype(a.dtype)]) for a, r in zip(batch, (x, y, np.ones(x.shape))))
        return batch
    return batches


def tune(config, arm, model, corpus, seed, stream=None, rows=None):
    """Fine-tune the model in place (full) or through adapters (lora) on rows (by default the config's
    instruction pairs, encoded). -> (the tuned model, positions read: the forward and backward passes run on
    every position, the prompt's and the padding's too)"""
    tuned = model if arm == "full" else LoRA(model, config.lora_rank, config.lora_alpha, config.lora_targets, seed)
    rows = rows or encode(corpus.instruction_pairs(config.pairs), corpus.tokenizer, glib.BLOCK_SIZE)
    train = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr[arm], warmup_steps=10,
                        weight_decay=0.0, eval_every=0, checkpoint_every=0, seed=seed, shards=1)
    trainer = Trainer(tuned, tuning_batches(rows, corpus.tokenizer.pad_id, stream, config.replay), None, train)
    trainer.run(progress=False)
    return tuned, trainer.tokens_read


def measure(point):
    """Pre-train one seed as the base preset does, probe it, tune it, probe it again."""
    config, arm, seed, device = point
    base, size = base_size(config)
    corpus, tokens = glib._corpus_and_stream(config.base, "main")
    model, trainer, _ = glib.train_point(base, corpus, tokens, size, seed, device, progress=False)
    before = glib.score_probes(model, corpus)
    n = model.num_params(non_embedding=True)
    tuned, positions = tune(config, arm, model, corpus, seed, tokens)
    return {"arm": arm, "seed": seed, "size": size.name, "non_embedding_params": n,
            "pretrain_loss": glib.recent_loss(trainer), "before": before, "after": glib.score_probes(tuned, corpus),
            "trainable": tuned.num_params(), "tune_positions": positions, "tune_flops": 6.0 * n * positions,
            "pretrain_flops": 6.0 * n * (size.steps or base.steps) * base.batch_size * glib.BLOCK_SIZE}


def sweep_points(config, device=None):
    return [(f"{arm}/seed{seed}", (config, arm, seed, device)) for arm in config.arms for seed in config.seeds]


# --------------------------------------------------------------------------------------------------
# The report

def exact_on_most_exposed(corpus, probes, n_quotes=20):
    """One model's stored probes -> probe -> its exact-match share on the n most exposed probe quotes (A, whose
    random strings belong to no quote, on all of its probes)."""
    clusters, keep = glib_report.probe_clusters(corpus), corpus.most_exposed(n_quotes)
    metrics = glib_report.probe_metrics(probes)
    return {p: float(metrics[p]["exact"][on_quotes(clusters[p], keep)].mean()) for p in glib.PROBES}


def on_quotes(clusters, keep):
    """Which of a probe's items count: those of the kept quotes, and those of no quote (A's random strings)."""
    return (clusters < 0) | np.isin(clusters, keep)


def probe_changes(results, arm, n_quotes=20, n_boot=2000):
    """Per probe on the most exposed quotes: (per-seed before, per-seed after, mean change, low, high), the
    change's interval from the paired bootstrap over seeds and quotes."""
    config = results["config"]
    runs = sorted((r for r in results["points"].values() if r["arm"] == arm), key=lambda r: r["seed"])
    corpus = glib.GlibCorpus(glib.PRESETS[config["base"]].corpus)
    clusters = glib_report.probe_clusters(corpus)
    keep = corpus.most_exposed(n_quotes)
    out = {}
    for probe in glib.PROBES:
        items = on_quotes(clusters[probe], keep)
        before, after = (np.stack([glib_report.probe_metrics(r[when])[probe]["exact"][items] for r in runs])
                         for when in ("before", "after"))  # (seeds, items)
        lo, hi = percentile_interval(paired_bootstrap([after - before], clusters[probe][items], n_boot))
        out[probe] = (before.mean(axis=1), after.mean(axis=1), float((after - before).mean()), float(lo[0]),
                      float(hi[0]))
    return out


def report(results):
    config = results["config"]
    lines = [f"instruct '{results['preset']}': glib preset {config['base']}'s d{config['d_model']}, "
             f"{len(results['points'])} runs; exact match on the 20 most exposed quotes, before -> after "
             f"(change, 95% paired bootstrap over seeds and quotes)"]
    for arm in config["arms"]:
        runs = [r for r in results["points"].values() if r["arm"] == arm]
        if not runs:
            continue
        lines.append(f"{arm} ({runs[0]['trainable']:,} trainable parameters, {config['steps']} steps):")
        changes = probe_changes(results, arm)
        for probe, (before, after, change, lo, hi) in changes.items():
            lines.append(f"  {probe} {glib.PROBE_NAMES[probe]:<36} {before.mean():.2f} -> {after.mean():.2f}  "
                         f"{change:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        follows = int((changes["C"][1] > 0.5).sum())
        share = np.mean([r["tune_flops"] / r["pretrain_flops"] for r in runs])
        lines.append(f"  seeds whose C exceeds 0.5 after: {follows} of {len(runs)}; the tuning cost {share:.1%} of "
                     f"the model's pre-training FLOPs")
    return "\n".join(lines)


STUDY = runner.Study(
    name="instruct", help="teach the glib models the instruction by fine-tuning them (lesson 07)",
    description="Pre-train one size of a glib preset as that preset does, fine-tune it (fully or with LoRA) on "
                "repeat/fix instruction pairs of the quotes no probe uses, and read lesson 04's probes before and "
                "after. Resumable.",
    presets=PRESETS, default="lesson07", preset=preset, sweep=sweep_points, measure=measure, report=report,
    committed=("lesson07", "lesson07b"))
