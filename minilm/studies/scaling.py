"""Scaling sweeps (lesson 03): train a family of models on toyworld and measure them.

A sweep trains
    a size family   models of several sizes, every one on the same number of tokens, with several seeds;
    a data family   one model size on 1/2 and 1/4 of those tokens (the data ablation);
    a second family (optional) every size again on a fraction of the tokens, to see the fitted law move with D,
and records each run's compute, validation loss and per-task metrics, which facts it knows (by how often
each was seen) and how far its next-word distribution is from the corpus's unigram and bigram statistics.
The runs are points of
minilm.studies.runner (sweep_points, measure): one resumable results file, run in this process, in local
processes or on a Dask cluster. minilm.studies.scaling_report reads the results: the fitted law and the
shape of every task's curve.
"""
from dataclasses import asdict, dataclass, field

import numpy as np

from . import runner
from .stats import training_flops
from ..data import toyworld
from ..errors import MinilmError
from ..evaluate import evaluate, fact_recall, kl_to_statistics, ngram_statistics
from ..model import GPT, GPTConfig, ModifiedConfig, ModifiedGPT
from ..tokenizer import WordTokenizer
from .runner import train_sweep_point

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
    return runner.choose_preset(PRESETS, name, "scaling")


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


def train_run(config, run, world, device=None, progress=False, changes=None):
    """Train one model of the sweep and measure it. Returns the run's record (a JSON-able dict).
    changes: the run's GPT with these of the Llama family's changes (ModifiedConfig's switches; the
    architecture study's arms) instead of lesson 03's plain GPT."""
    corpus = int(config.tokens * run.data_fraction)  # this run's slice of the training corpus
    gpt = GPTConfig(vocab_size=world.tokenizer.vocab_size, block_size=config.block_size,
                    n_layer=run.n_layer, n_head=run.n_head, d_model=run.d_model)
    model = (ModifiedGPT(ModifiedConfig(**gpt.to_dict(), **changes), seed=run.seed, device=device) if changes
             else GPT(gpt, seed=run.seed, device=device))
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


def sweep_points(config, device=None):
    """The sweep as (key, point) pairs for minilm.studies.runner.run_points; a point is (config, run, device)."""
    return runner.planned_points(config, plan, device)


def measure(point):
    """Train and measure one point of sweep_points (the corpus is made once per process)."""
    config, run, device = point
    return train_run(config, run, runner.once_per_process(World, config), device=device)
