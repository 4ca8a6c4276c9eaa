"""Compute-optimal scaling (lesson 03's second half): at fixed training compute, which size is best?

Compute is data times size: C = 6 N D plus attention's products (minilm.studies.stats.training_flops, the
count lesson 03 uses: N the non-embedding parameters plus the output layer, D the tokens read). An
iso-FLOP study fixes a few budgets C and, at each, trains several sizes N on exactly as many tokens as the
budget buys, D = C / (the FLOPs of one token), so a small model reads many tokens and a large one few.
Every token is read once, in order, from a fresh toyworld stream (minilm.train.read_once): no run sees an
example twice, so a small model's many steps are not repetition. Hoffmann et al. (2022) found with such
curves that the best size grows as C^0.5; minilm.studies.isoflop_report fits ours.

The runs are points of minilm.studies.runner: one resumable results file, run anywhere.
"""
import math
from dataclasses import asdict, dataclass, field

from . import runner
from .stats import training_flops
from ..data import toyworld
from ..evaluate import evaluate
from ..model import GPT, GPTConfig, param_shapes
from ..tokenizer import WordTokenizer
from ..train import read_once
from .runner import train_sweep_point


@dataclass
class IsoFlopConfig:
    grid: list             # [[budget in FLOPs, [[n_layer, d_model, n_head], ...]], ...]: each budget's sizes
    seeds: list
    batch_size: int = 16
    block_size: int = 64
    lr: float = 3e-3
    n_eval: int = 2000     # held-out examples every run is scored on
    world: dict = field(default_factory=dict)  # ToyworldConfig arguments
    corpus_seed: int = 0


# The sizes of lesson 03 and one more, smallest first: [n_layer, d_model, n_head]
LADDER = [[1, 16, 1], [1, 24, 2], [2, 32, 2], [2, 48, 3], [3, 64, 4], [4, 96, 4], [4, 128, 4]]

PRESETS = {
    # four budgets over 1.5 decades (9e10 to 3e12), five sizes each around where 20 tokens per parameter would
    # put the optimum, three seeds; its cost measured before it ran (planned_seconds, on one core of the
    # 2-core AMD EPYC that trained it): 33 minutes, 1.2 / 2.6 / 8.6 / 21 for the four budgets
    "lesson03": IsoFlopConfig(grid=[[9e10, LADDER[0:5]], [3e11, LADDER[1:6]], [1e12, LADDER[1:6]],
                                    [3e12, LADDER[2:7]]], seeds=[0, 1, 2]),
    # Added after lesson03's largest budget trained: its best size was the smallest trained there (an end of its
    # sizes, not a valley), so the two next smaller sizes at that budget, the same seeds; its report reads it
    # together with lesson03's 60 runs (BASELINES). Planned: about 25 minutes on one core.
    "lesson03_edge": IsoFlopConfig(grid=[[3e12, LADDER[0:2]]], seeds=[0, 1, 2]),
    # the same code path in well under three minutes
    "ci": IsoFlopConfig(grid=[[b, [[1, 8, 1], [1, 16, 1], [1, 24, 2]]] for b in (2.5e9, 5e9, 1e10, 2e10)],
                        seeds=[0], block_size=32, n_eval=200),
}


BASELINES = {"lesson03_edge": "lesson03"}  # preset -> the preset whose runs its report adds to its own


def preset(name):
    return runner.choose_preset(PRESETS, name, "isoflop")


@dataclass(frozen=True)
class Point:
    budget: float
    n_layer: int
    d_model: int
    n_head: int
    seed: int

    @property
    def key(self):
        return f"C{self.budget:.0e}/L{self.n_layer}_d{self.d_model}/seed{self.seed}"


def plan(config):
    """Every (budget, size, seed) of the grid, smallest budget first."""
    return [Point(float(budget), *size, seed) for budget, sizes in config.grid for size in sizes
            for seed in config.seeds]


def gpt_config(config, point, vocab_size):
    return GPTConfig(vocab_size=vocab_size, block_size=config.block_size, n_layer=point.n_layer,
                     n_head=point.n_head, d_model=point.d_model)


def non_embedding_params(gpt):
    """N as the scaling laws count it: every parameter but the token and position embeddings."""
    return sum(math.prod(shape) for name, shape in param_shapes(gpt).items() if name not in ("wte", "wpe"))


def steps_for(config, point, vocab_size):
    """The optimizer steps the budget buys: C / (FLOPs of one token x tokens per step), at least one."""
    gpt = gpt_config(config, point, vocab_size)
    per_token = training_flops(non_embedding_params(gpt), gpt.n_layer, gpt.d_model, gpt.block_size, vocab_size, 1)
    return max(1, round(point.budget / (per_token * config.batch_size * config.block_size)))


class World:
    """The tokenizer and the held-out examples; the training streams are made per length, as needed."""

    def __init__(self, config):
        self.world = toyworld.ToyworldConfig(**config.world)
        self.tokenizer = WordTokenizer(toyworld.vocabulary(self.world))
        self.eval_examples = toyworld.generate(self.world, config.n_eval, seed=config.corpus_seed, split="eval")
        self.corpus_seed = config.corpus_seed

    def stream(self, n_tokens):
        """The first n_tokens of the training stream (the same stream for every run: a longer run reads on)."""
        shortest = 8  # tokens in the shortest example (with its <eos>)
        examples = toyworld.generate(self.world, n_tokens // shortest + 1, seed=self.corpus_seed)
        return toyworld.to_stream(examples, self.tokenizer)[0][:n_tokens]


def train_point(config, point, world, device=None):
    """Train one size on its budget's tokens, each read once, and score it on the held-out examples."""
    vocab = world.tokenizer.vocab_size
    model = GPT(gpt_config(config, point, vocab), seed=point.seed, device=device)
    steps = steps_for(config, point, vocab)
    tokens = world.stream(steps * config.batch_size * (config.block_size + 1))
    _, seconds = train_sweep_point(model, read_once(tokens, config.block_size), steps, config.batch_size,
                                   config.lr, point.seed)
    n, read = model.num_params(non_embedding=True), steps * config.batch_size * config.block_size
    ev = evaluate(model, world.eval_examples, world.tokenizer)
    return {"key": point.key, **asdict(point), "params": n, "steps": steps, "tokens": read,
            "flops": training_flops(n, point.n_layer, point.d_model, config.block_size, vocab, read),
            "val_loss": ev.loss, "train_seconds": round(seconds, 2)}


def planned_seconds(config, world, steps=20):
    """The study's cost before it runs: each size's seconds per step, measured on `steps` steps of its stream on
    this machine, times the steps each of its points takes. -> (total seconds on one core, {size: s/step})"""
    per_step = {}
    for p in plan(config):
        size = (p.n_layer, p.d_model, p.n_head)
        if size not in per_step:
            model = GPT(gpt_config(config, p, world.tokenizer.vocab_size), seed=0)
            tokens = world.stream(steps * config.batch_size * (config.block_size + 1))
            _, seconds = train_sweep_point(model, read_once(tokens, config.block_size), steps, config.batch_size,
                                           config.lr, 0)
            per_step[size] = seconds / steps
    total = sum(per_step[(p.n_layer, p.d_model, p.n_head)] * steps_for(config, p, world.tokenizer.vocab_size)
                for p in plan(config))
    return total, per_step


def sweep_points(config, device=None):
    """The study as (key, point) pairs for minilm.studies.runner.run_points; a point is (config, point, device)."""
    return runner.planned_points(config, plan, device)


def measure(point):
    config, p, device = point
    return train_point(config, p, runner.once_per_process(World, config), device)
