"""The architecture is not the bottleneck, measured (lessons 05, 03 and 02; the design and its predictions,
written before anything trained: docs/lab/architecture_study_design.md).

Three parts, one resumable study:
    modifications  lesson 03's plain GPT and the same model with each of the Llama family's five changes alone
                   and all together (minilm.model.ModifiedGPT), at four of lesson 03's sizes, on its corpus and
                   token budget. Each changed model is read as a compute multiplier: the compute the plain GPT
                   needs, on the law fitted to its sizes, to reach the changed model's loss, over the compute
                   the changed model used (above 1: the change is worth that much compute)
    shapes         depth against width: plain GPTs of about the same non-embedding parameters, deep and narrow
                   to shallow and wide, read task by task (Wei: layers for harder functions, breadth for facts)
    encoder        lesson 02's encoder-decoder, its decoder reading the encoder's final layer or (the `layerwise`
                   switch of minilm.encdec alone) the encoder's layer at its own depth, at depths 2 to 8 (Chung:
                   an information bottleneck that made no difference at 24 layers)

    python -m minilm architecture --jobs 2     (lessons/results/architecture_full.json; resumable)
"""
from dataclasses import asdict, dataclass, replace

import numpy as np

from . import archs, runner, scaling
from .stats import fit_power_law, resample_seeds, welch_interval
from ..data import seq2seq

# The arms of part 1: each change alone, then all of them (the Llama recipe), as ModifiedConfig's switches.
# One key/value head: at lesson 03's two to four heads, grouping them in twos is not possible at every size.
ARMS = {"plain": {}, "rmsnorm": {"rmsnorm": True}, "swiglu": {"swiglu": True}, "rope": {"rope": True},
        "no_bias": {"bias": False}, "gqa": {"n_kv_head": 1},
        "llama": {"rmsnorm": True, "swiglu": True, "rope": True, "bias": False, "n_kv_head": 1}}
# The arms of part 3, as minilm.encdec's switches: where decoder layer i reads the encoder
READS = {"final": (), "layer-wise": ("layerwise",)}
FACT_TASKS, RULE_TASKS = ("facts_head", "facts_tail"), ("arithmetic", "spatial")


@dataclass
class ArchitectureConfig:
    sweep: str           # the scaling preset whose corpus, token budget, batch, learning rate and held-out
                         # examples parts 1 and 2 train with (lesson03)
    sizes: list          # part 1: [n_layer, d_model, n_head] of each size, smallest first
    arms: list           # part 1: names of ARMS
    shapes: dict         # part 2: a group's name -> its [n_layer, d_model, n_head], deepest first
    depths: list         # part 3: the encoder-decoder's depths
    encoder_steps: int   # part 3: lesson 02's training steps
    seeds: list


PRESETS = {
    "full": ArchitectureConfig(
        sweep="lesson03", sizes=[[1, 24, 2], [2, 32, 2], [2, 48, 3], [3, 64, 4]], arms=list(ARMS),
        shapes={"25K": [[8, 16, 1], [2, 32, 2], [1, 48, 3]], "55K": [[6, 28, 2], [2, 48, 3], [1, 64, 4]]},
        depths=[2, 4, 6, 8], encoder_steps=400, seeds=[0, 1, 2]),
    # the same code path in under a minute
    "ci": ArchitectureConfig(
        sweep="ci", sizes=[[1, 8, 1], [1, 16, 1], [2, 16, 2]], arms=["plain", "rope", "llama"],
        shapes={"small": [[2, 8, 1], [1, 16, 1]]}, depths=[2, 3], encoder_steps=4, seeds=[0, 1]),
}


def preset(name):
    return runner.choose_preset(PRESETS, name, "architecture")


@dataclass(frozen=True)
class DecoderRun:
    """A point of parts 1 and 2: one decoder-only model trained as lesson 03 trains its sizes."""
    arm: str
    n_layer: int
    d_model: int
    n_head: int
    seed: int

    @property
    def key(self):
        return f"{self.arm}-L{self.n_layer}-d{self.d_model}-h{self.n_head}-s{self.seed}"


@dataclass(frozen=True)
class EncDecRun:
    """A point of part 3: one encoder-decoder trained as lesson 02 trains its variants."""
    reads: str
    depth: int
    data: str  # a shape of data of minilm.data.seq2seq: academic or chat
    seed: int

    @property
    def key(self):
        return f"encoder-{self.data}-{self.reads}-L{self.depth}-s{self.seed}"


def plan(config):
    """Every point, each seed-round at a time: part 1's arms and sizes, part 2's shapes (a shape that is one of
    part 1's plain sizes is that point, trained once), part 3's encoder-decoders."""
    points = []
    for seed in config.seeds:
        points += [DecoderRun(arm, *size, seed) for size in config.sizes for arm in config.arms]
        points += [DecoderRun("plain", *shape, seed) for group in config.shapes.values() for shape in group]
        points += [EncDecRun(reads, depth, data, seed) for data in seq2seq.SHAPES for depth in config.depths
                   for reads in READS]
    return list(dict.fromkeys(points))


def sweep_points(config, device=None):
    return runner.planned_points(config, plan, device)


def measure(point):
    """Train and measure one point (lesson 03's corpus is made once per process)."""
    config, p, device = point
    if isinstance(p, EncDecRun):
        run = replace(archs.RunConfig.with_steps(config.encoder_steps), n_layer=p.depth)
        record, _ = archs.train_variant(p.reads, p.data, run, p.seed, device=device, variants=READS)
        return {"key": p.key, "part": "encoder", **asdict(p), **record}
    sweep = scaling.preset(config.sweep)
    world = runner.once_per_process(scaling.World, sweep)
    record = scaling.train_run(sweep, scaling.Run(p.n_layer, p.d_model, p.n_head, p.seed), world, device,
                               changes=ARMS[p.arm])
    return {**record, "key": p.key, "part": "decoder", "arm": p.arm}


# ----------------------------------------------------------------------------------------------------
# The report


def decoders(results, arm, shape):
    """The records of one arm at one [n_layer, d_model, n_head], in seed order."""
    return sorted((r for r in results["points"].values() if r["part"] == "decoder" and r["arm"] == arm
                   and [r["n_layer"], r["d_model"], r["n_head"]] == list(shape)), key=lambda r: r["seed"])


def per_seed(results, arm, sizes, metric):
    """compute (n_sizes,), values (n_sizes, seeds) of metric(record) for one arm at each size."""
    runs = [decoders(results, arm, size) for size in sizes]
    n_seeds = min(len(r) for r in runs)
    return np.array([r[0]["flops"] for r in runs]), np.array([[metric(x) for x in r[:n_seeds]] for r in runs])


def compute_to_reach(law, loss):
    """The compute at which the law reaches loss: C = (a / (L - E))^(1/alpha); infinite below the floor."""
    loss = np.asarray(loss, dtype=float)
    above = np.maximum(loss - law.floor, 1e-12)
    return np.where(loss > law.floor, (law.a / above) ** (1 / law.alpha), np.inf)


def multipliers(results, arm, n_boot=1000, seed=0):
    """Part 1's reading of one arm at each size: the compute multiplier of its seeds' mean loss, and a 95%
    interval from resampling the seeds of both arms (the plain law refitted each time).
    -> (multiplier (n_sizes,), low (n_sizes,), high (n_sizes,))"""
    sizes = results["config"]["sizes"]
    plain_compute, plain_loss = per_seed(results, "plain", sizes, lambda r: r["val_loss"])
    compute, loss = per_seed(results, arm, sizes, lambda r: r["val_loss"])

    def multiplier(plain, changed):
        law = fit_power_law(plain_compute, plain.mean(axis=1))
        return compute_to_reach(law, changed.mean(axis=1)) / compute

    rng = np.random.default_rng(seed)
    draws = np.array([multiplier(resample_seeds(plain_loss, rng), resample_seeds(loss, rng)) for _ in range(n_boot)])
    # a loss below the plain law's floor needs infinite compute on it: no interpolation across such draws
    low, high = np.percentile(draws, 2.5, axis=0, method="lower"), np.percentile(draws, 97.5, axis=0, method="higher")
    return multiplier(plain_loss, loss), low, high


def task_scores(results, shape, task, metric="answer_logprob"):
    """One plain shape's per-seed score on one task."""
    return np.array([r["tasks"][task][metric] for r in decoders(results, "plain", shape)])


def encoder_gaps(results, data, metric="exact_match"):
    """Part 3 at each depth: final minus layer-wise (seed means) with Welch's 95% interval.
    -> [(depth, gap, low, high)]"""
    rows = []
    for depth in results["config"]["depths"]:
        runs = {reads: [r["final"][metric] for r in results["points"].values() if r["part"] == "encoder"
                        and r["data"] == data and r["depth"] == depth and r["reads"] == reads] for reads in READS}
        if min(len(v) for v in runs.values()) >= 2:
            rows.append((depth, *welch_interval(runs["final"], runs["layer-wise"])[:3]))
    return rows


def verdict(holds):
    return "held" if holds else "FAILED"


def report_modifications(results):
    config = results["config"]
    plain_compute = per_seed(results, "plain", config["sizes"], lambda r: r["val_loss"])[0]
    lines = [f"modifications: compute multiplier against the plain GPT's law (95% interval over seeds); the plain "
             f"sizes span {plain_compute.max() / plain_compute.min():.0f}x of compute",
             "  arm       " + "".join(f"{'L%d d%d' % (s[0], s[1]):>22}" for s in config["sizes"])]
    found = {arm: multipliers(results, arm) for arm in config["arms"] if arm != "plain"}
    for arm, (m, lo, hi) in found.items():
        lines.append(f"  {arm:<10}" + "".join(f"{a:>8.2f} [{b:5.2f}, {c:5.2f}]" for a, b, c in zip(m, lo, hi)))
    below_one = [arm for arm, (m, _, _) in found.items() if arm != "llama" and np.all(m < 1)]
    if "gqa" in found:
        alone = [found[arm][0] for arm in found if arm != "llama"]
        lines += [f"  P1 every single change within 0.5x-2x at every size: "
                  f"{verdict(all(0.5 <= x <= 2 for m in alone for x in m))}",
                  f"  P4 gqa the only single change below 1x at every size (below 1x: {below_one}): "
                  f"{verdict(below_one == ['gqa'])}"]
    if "llama" in found:
        lines.append(f"  P2 the Llama recipe within 1x-4x at the two largest sizes: "
                     f"{verdict(all(1 <= x <= 4 for x in found['llama'][0][-2:]))}")
    if found:
        largest = max(float(np.max(m)) for m, _, _ in found.values())
        lines.append(f"  P3 the largest multiplier ({largest:.2f}x) below 6x: {verdict(largest < 6)}")
    return lines


def report_shapes(results):
    lines = ["shapes: answer log-prob per task (seed mean), deepest shape first"]
    for group, shapes in results["config"]["shapes"].items():
        for shape in shapes:
            runs = decoders(results, "plain", shape)
            if not runs:
                continue
            tasks = " ".join(f"{t} {task_scores(results, shape, t).mean():6.2f}" for t in FACT_TASKS + RULE_TASKS)
            lines.append(f"  {group} L{shape[0]} d{shape[1]} ({runs[0]['params']:,} params): val loss "
                         f"{np.mean([r['val_loss'] for r in runs]):.3f}; {tasks}")
        deep, wide = shapes[0], shapes[-1]
        if decoders(results, "plain", deep) and decoders(results, "plain", wide):
            for task in FACT_TASKS + RULE_TASKS:
                diff, lo, hi, _ = welch_interval(task_scores(results, wide, task), task_scores(results, deep, task))
                lines.append(f"    {task}: widest - deepest {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return lines


def report_encoder(results):
    lines = ["encoder: exact match, decoder reading the final layer minus reading the layer at its depth "
             "(Welch 95% interval)"]
    for data in seq2seq.SHAPES:
        gaps = encoder_gaps(results, data)
        lines += [f"  {data} depth {d}: {g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, g, lo, hi in gaps]
    return lines


def report(results):
    return "\n".join(report_modifications(results) + report_shapes(results) + report_encoder(results))


STUDY = runner.Study(
    name="architecture", help="the modern modifications against scale, depth against width, the encoder's last "
                              "layer (lessons 05, 03, 02)",
    description="Train lesson 03's GPT with each of the Llama family's changes alone and together at four sizes, "
                "plain GPTs of one parameter count from deep to wide, and lesson 02's encoder-decoder reading the "
                "encoder's final or same-depth layer at depths 2-8; report each change as a compute multiplier. "
                "Resumable.",
    presets=PRESETS, default="full", preset=preset, sweep=sweep_points, measure=measure, report=report,
    committed=("full",))
