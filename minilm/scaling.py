"""Scaling sweeps: train a family of models on toyworld, measure, and fit the curves.

A sweep trains
    a size family   models of several sizes, every one on the same number of tokens, with several seeds;
    a data family   one model size on 1/2 and 1/4 of those tokens (the data ablation);
    a second family (optional) every size again on a fraction of the tokens, to see the fitted law move with D,
and records each run's compute, validation loss and per-task metrics, which facts it knows (by how often
each was seen) and how far its next-word distribution is from the corpus's unigram and bigram statistics. The runs are points of
minilm.experiments (sweep_points, measure): one resumable results file, run in this process, in local
processes or on a Dask cluster.

Then:
    fit_power_law        L(C) = a * C**(-alpha), a straight line in log-log space, and
                         L(C) = E + a * C**(-alpha) (an irreducible loss E) when the fit supports it;
    bootstrap_exponent   an interval for alpha from resampling the seeds;
    classify_curve       the shape of one task's curve: saturated / flat / inverse / not correlated /
                         emergent / smooth, by the rule written in its docstring.
"""
import functools
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import experiments
from .data import toyworld
from .errors import MinilmError
from .evaluate import evaluate, fact_recall, kl_to_statistics, ngram_statistics
from .model import GPT, GPTConfig
from .tokenizer import WordTokenizer
from .train import train_sweep_point

# ----------------------------------------------------------------------------------------------------
# What a sweep trains.


@dataclass
class SweepConfig:
    sizes: list            # [n_layer, d_model, n_head] of each model in the size family, smallest first
    seeds: list            # every run is repeated with each seed (the model's init and its batch order)
    tokens: int            # training tokens of every size-family run (the fixed token budget D)
    data_fractions: list   # the data family: the ablation size trained on these fractions of `tokens`
    ablation_size: int     # index into sizes of the model the data family uses
    family_fraction: float = 0.0  # > 0: the whole size family again on this fraction of `tokens`
    batch_size: int = 16
    block_size: int = 64
    lr: float = 3e-3
    n_eval: int = 3000     # held-out examples every run is scored on
    world: dict = field(default_factory=dict)  # ToyworldConfig arguments
    corpus_seed: int = 0   # the training corpus is the same for every run

    def __post_init__(self):
        if not self.sizes or not self.seeds or self.tokens < 1:
            raise MinilmError("a sweep needs at least one size, one seed and a positive token budget")
        if not 0 <= self.ablation_size < len(self.sizes):
            raise MinilmError(f"ablation_size {self.ablation_size} is not an index into the {len(self.sizes)} sizes")
        if any(not 0 < f <= 1 for f in self.data_fractions) or not 0 <= self.family_fraction <= 1:
            raise MinilmError(f"data_fractions {self.data_fractions} and family_fraction must lie in (0, 1]")


PRESETS = {
    # the sweep behind lessons/03_scaling_curves.ipynb
    "lesson03": SweepConfig(sizes=[[1, 16, 1], [1, 24, 2], [2, 32, 2], [2, 48, 3], [3, 64, 4], [4, 96, 4]],
                            seeds=[0, 1, 2], tokens=1_000_000, data_fractions=[0.5, 0.25], ablation_size=4,
                            family_fraction=0.5),
    # a reduced sweep for CI: the same code path in well under two minutes
    "ci": SweepConfig(sizes=[[1, 8, 1], [1, 16, 1], [1, 32, 2], [2, 32, 2]], seeds=[0, 1], tokens=60_000,
                      data_fractions=[0.5], ablation_size=1, n_eval=400),
}


def preset(name):
    return experiments.choose_preset(PRESETS, name, "sweep")


@dataclass(frozen=True)
class Run:
    n_layer: int
    d_model: int
    n_head: int
    seed: int
    data_fraction: float = 1.0

    @property
    def key(self):
        return f"L{self.n_layer}-d{self.d_model}-h{self.n_head}-f{self.data_fraction:g}-s{self.seed}"


def plan(config):
    """Every run of the sweep, cheapest first within each seed-round: size family, data family, second family."""
    runs = [Run(*size, seed) for seed in config.seeds for size in config.sizes]
    ablation = config.sizes[config.ablation_size]
    runs += [Run(*ablation, seed, f) for seed in config.seeds for f in config.data_fractions]
    if config.family_fraction:
        runs += [Run(*size, seed, config.family_fraction) for seed in config.seeds for size in config.sizes]
    return list(dict.fromkeys(runs))  # a run of both the data family and the second family once


# ----------------------------------------------------------------------------------------------------
# Compute: FLOPs of training, counted the way Kaplan et al. (2020) do.

def training_flops(n_params, n_layer, d_model, block_size, vocab_size, tokens):
    """C = 6 * D * (N + V*d)  +  6 * D * n_layer * T * d.

    A forward pass costs 2 FLOPs per weight per token (a multiply and an add) and the backward pass
    twice that: 6 per weight per token. N is the non-embedding parameter count and V*d the output
    layer (the token embedding, reused as the head); the last term is attention's query-key and
    weights-value products, which use no weights but grow with the context length T.
    """
    return 6.0 * tokens * (n_params + vocab_size * d_model) + 6.0 * tokens * n_layer * block_size * d_model


# ----------------------------------------------------------------------------------------------------
# Running a sweep.

class World:
    """The corpus side of a sweep: tokenizer, training tokens, held-out examples and the corpus's unigram
    and bigram statistics, made once."""

    def __init__(self, config):
        self.world = toyworld.ToyworldConfig(**config.world)
        self.tokenizer = WordTokenizer(toyworld.vocabulary(self.world))
        shortest = 8  # tokens in the shortest example (with its <eos>), so this many examples are enough
        examples = toyworld.generate(self.world, config.tokens // shortest + 1, seed=config.corpus_seed)
        self.train_tokens = toyworld.to_stream(examples, self.tokenizer)[0][:config.tokens + 1]
        self.eval_examples = toyworld.generate(self.world, config.n_eval, seed=config.corpus_seed, split="eval")
        unigram, bigram = ngram_statistics(self.train_tokens, self.tokenizer.vocab_size)
        self.statistics = {"unigram": unigram, "bigram": bigram}
        self.facts = toyworld.facts(self.world)
        self.countries = np.array([self.tokenizer.encode(country)[0] for country, _ in self.facts])


def train_run(config, run, world, device=None, progress=False):
    """Train one model of the sweep and measure it. Returns the run's record (a JSON-able dict)."""
    corpus = int(config.tokens * run.data_fraction)  # this run's slice of the training corpus
    gpt = GPTConfig(vocab_size=world.tokenizer.vocab_size, block_size=config.block_size,
                    n_layer=run.n_layer, n_head=run.n_head, d_model=run.d_model)
    model = GPT(gpt, seed=run.seed, device=device)
    steps = max(1, corpus // (config.batch_size * config.block_size))
    _, seconds = train_sweep_point(model, world.train_tokens[:corpus + 1], steps, config.batch_size, config.lr,
                                   run.seed, progress=progress)
    ev = evaluate(model, world.eval_examples, world.tokenizer)
    n, tokens = model.num_params(non_embedding=True), steps * config.batch_size * config.block_size
    seen = np.bincount(world.train_tokens[:corpus + 1], minlength=world.tokenizer.vocab_size)[world.countries]
    return {"key": run.key, **asdict(run), "params": n, "tokens": tokens,
            "flops": training_flops(n, run.n_layer, run.d_model, config.block_size, gpt.vocab_size, tokens),
            "val_loss": ev.loss, "shares": ev.shares, "losses": ev.losses,
            "tasks": {name: asdict(scores) for name, scores in ev.tasks.items()},
            # every fact, by rank: how often training showed it, and whether the model answers it
            "facts": {"seen": seen.tolist(), "known": fact_recall(model, world.tokenizer, world.facts)},
            "kl": kl_to_statistics(model, world.eval_examples, world.tokenizer, world.statistics),
            "train_seconds": round(seconds, 2)}


@functools.lru_cache(maxsize=2)
def _world(config_json):
    return World(SweepConfig(**json.loads(config_json)))


def sweep_points(config, device=None):
    """The sweep as (key, point) pairs for minilm.experiments.run_points; a point is (config, run, device)."""
    return [(run.key, (config, run, device)) for run in plan(config)]


def measure(point):
    """Train and measure one point of sweep_points (the corpus is made once per process)."""
    config, run, device = point
    return train_run(config, run, _world(json.dumps(asdict(config))), device=device)


# ----------------------------------------------------------------------------------------------------
# Reading a sweep: curves over the size family.

def size_family(results, data_fraction=1.0):
    """The size-family runs grouped by model, ordered by compute: a list of lists of run records.

    data_fraction 1.0 is the size family; the sweep's family_fraction its second family, on less data.
    """
    config = results["config"]
    groups = {}
    for r in results["points"].values():
        if r["data_fraction"] == data_fraction:
            groups.setdefault((r["n_layer"], r["d_model"], r["n_head"]), []).append(r)
    ordered = [groups[tuple(s)] for s in config["sizes"] if tuple(s) in groups]
    return sorted(ordered, key=lambda g: g[0]["flops"])


def curve(groups, metric):
    """compute (n,), per-seed values (n, seeds) of a metric for each size.

    metric is a function of one run record, e.g. lambda r: r["val_loss"].
    """
    n_seeds = min(len(g) for g in groups)
    compute = np.array([g[0]["flops"] for g in groups])
    values = np.array([[metric(r) for r in sorted(g, key=lambda r: r["seed"])[:n_seeds]] for g in groups])
    return compute, values


def task_metric(task, name):
    """The metric function of one task: name is 'exact_match', 'answer_logprob' or 'loss'."""
    return lambda r: r["tasks"][task][name]


# ----------------------------------------------------------------------------------------------------
# Power laws.

@dataclass
class PowerLaw:
    a: float
    alpha: float
    floor: float = 0.0  # E, the irreducible loss

    def __call__(self, compute):
        return self.floor + self.a * np.asarray(compute, dtype=float) ** (-self.alpha)

    def describe(self):
        floor = f"{self.floor:.3f} + " if self.floor else ""
        return f"L(C) = {floor}{self.a:.3g} * C^(-{self.alpha:.4f})"


def _line_fit(compute, loss, floor):
    """Least squares of log(L - E) = log a - alpha log C; returns the law and its squared error in log L."""
    x, y = np.log(compute), np.log(loss - floor)
    slope, intercept = np.polyfit(x, y, 1)
    law = PowerLaw(float(np.exp(intercept)), float(-slope), float(floor))
    return law, float(np.sum((np.log(law(compute)) - np.log(loss)) ** 2))


def fit_power_law(compute, loss, allow_floor=True):
    """Fit L(C) in log-log space; add an irreducible loss E when the fit supports it.

    With a floor E the law is a straight line in log(L - E) against log C. The floor is kept only when
    it lowers the Akaike information criterion (n log(SSE / n) + 2k: one more parameter costs 2) by
    more than 2, i.e. when the better fit is more than the extra parameter at work.
    """
    compute, loss = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if len(compute) < 3 or np.any(compute <= 0) or np.any(loss <= 0):
        raise MinilmError("fit_power_law needs at least 3 points with positive compute and loss")
    law, sse = _line_fit(compute, loss, 0.0)
    if not allow_floor:
        return law
    floored, floored_sse = fit_with_floor(compute, loss)
    n = len(loss)
    aic = lambda s, k: n * math.log(max(s, 1e-300) / n) + 2 * k
    return floored if aic(floored_sse, 3) < aic(sse, 2) - 2 else law


def fit_with_floor(compute, loss):
    """L(C) = E + a C^(-alpha): the best E on a grid below the smallest loss, with its squared error."""
    fits = [_line_fit(compute, loss, floor) for floor in np.linspace(0, 0.99 * np.min(loss), 100)]
    return min(fits, key=lambda fit: fit[1])


def bootstrap_exponent(compute, per_seed_loss, floor=False, n_boot=1000, seed=0):
    """A 95% interval for alpha: resample the seeds of every size with replacement, refit, repeat.

    per_seed_loss: (n_sizes, n_seeds); floor: fit the law with an irreducible loss (as chosen for the
    means). Returns the 2.5 and 97.5 percentiles of the refitted exponents.
    """
    rng = np.random.default_rng(seed)
    n_sizes, n_seeds = per_seed_loss.shape
    alphas = []
    for _ in range(n_boot):
        pick = rng.integers(n_seeds, size=(n_sizes, n_seeds))
        resampled = np.take_along_axis(per_seed_loss, pick, axis=1).mean(axis=1)
        law = fit_with_floor(compute, resampled)[0] if floor else _line_fit(compute, resampled, 0.0)[0]
        alphas.append(law.alpha)
    low, high = np.percentile(alphas, [2.5, 97.5])
    return float(low), float(high)


# ----------------------------------------------------------------------------------------------------
# The shape of a task's curve.

# metric -> (best possible value, the smallest change that counts). Both metrics: higher is better.
METRICS = {"exact_match": (1.0, 0.05), "answer_logprob": (0.0, 0.1)}
SHAPES = ("saturated", "flat", "inverse", "not correlated", "emergent", "smooth")
# The lecture's count of the 202 BIG-Bench tasks by the shape of their curves (percent; it has no "saturated")
BIG_BENCH_SHAPES = {"smooth": 29, "flat": 22, "inverse": 2, "not correlated": 13, "emergent": 33}


def spearman(x, y):
    """Rank correlation: +1 when y always rises with x, -1 when it always falls."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.all(ry == ry[0]) or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def classify_curve(values, metric):
    """The shape of a task's scaling curve: values are the per-size means, ordered by compute.

    With `best` the metric's best value and `tol` the smallest change that counts (METRICS), and the
    sizes split into a smaller half and a larger half, the first rule that holds names the shape:

        saturated       from the last size of the smaller half on, every size is within tol of best
                        (the task is solved early; more compute has nothing left to gain)
        flat            the whole curve moves less than tol (nothing changes: the task is too hard)
        inverse         the largest model is worse than the smallest by more than tol, and the curve
                        falls with compute (rank correlation <= -0.6)
        not correlated  the curve goes up and down: rank correlation with compute below 0.6
        emergent        the smaller half stays within tol of the smallest model, then the largest is
                        better than the smallest by more than 3 tol (nothing, then suddenly something)
        smooth          it rises with compute, and already within the smaller half
    """
    if metric not in METRICS:
        raise MinilmError(f"unknown metric {metric!r}: use one of {sorted(METRICS)}")
    best, tol = METRICS[metric]
    y = np.asarray(values, dtype=float)
    if len(y) < 4:
        raise MinilmError("classify_curve needs at least 4 sizes")
    half = len(y) // 2
    rho = spearman(np.arange(len(y)), y)
    if np.all(best - y[half - 1:] <= tol):
        return "saturated"
    if y.max() - y.min() <= tol:
        return "flat"
    if y[-1] < y[0] - tol and rho <= -0.6:
        return "inverse"
    if rho < 0.6:
        return "not correlated"
    if np.all(np.abs(y[:half] - y[0]) <= tol) and y[-1] - y[0] > 3 * tol:
        return "emergent"
    return "smooth"


# ----------------------------------------------------------------------------------------------------
# The report.

def loss_fit(results, allow_floor=True):
    """Fit of the size family's mean validation loss: (compute, per-seed loss, law, alpha interval)."""
    groups = size_family(results)
    if len(groups) < 3:
        raise MinilmError("the sweep has fewer than 3 model sizes finished; run it to the end first")
    compute, loss = curve(groups, lambda r: r["val_loss"])
    law = fit_power_law(compute, loss.mean(axis=1), allow_floor)
    return compute, loss, law, bootstrap_exponent(compute, loss, floor=law.floor > 0)


def task_shapes(results):
    """task -> {metric: shape} over the size family."""
    groups = size_family(results)
    tasks = [t for t in toyworld.TASKS if all(t in r["tasks"] for g in groups for r in g)]
    return {task: {m: classify_curve(curve(groups, task_metric(task, m))[1].mean(axis=1), m) for m in METRICS}
            for task in tasks}


def report(results):
    """The fit with its interval, then one line per task: the text `sweep --report` prints."""
    compute, loss, law, (low, high) = loss_fit(results)
    lines = [f"sweep {results.get('preset', '?')}: {len(results['points'])} runs, "
             f"{len(compute)} sizes x {loss.shape[1]} seeds, compute {compute.min():.2g} .. {compute.max():.2g} FLOPs",
             f"fit: {law.describe()}",
             f"exponent alpha = {law.alpha:.4f}, 95% bootstrap interval over seeds [{low:.4f}, {high:.4f}]"]
    names = {"exact_match": "exact match", "answer_logprob": "log-prob"}
    for task, shapes in task_shapes(results).items():
        lines.append(f"task {task}: " + ", ".join(f"{shape} ({names[m]})" for m, shape in shapes.items()))
    return "\n".join(lines)
