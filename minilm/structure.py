"""Structure vs scale (lesson 05): a ladder of methods, from more built-in structure to less, on one compute axis.

The second talk's thesis: a method with more structure (stronger modelling assumptions) does better when
compute is scarce and then plateaus; one with less structure starts worse and wins as compute grows; one
with even less picks up later still. The ladder, most structure first:

    ngram    a count model: only the last n-1 = 4 words matter, learned by counting (minilm/ngram.py)
    window   a GPT whose attention sees only the last `window` tokens (a banded causal mask): nearby words
             matter most, written into the architecture; stacked layers still reach further
    gpt      the plain decoder-only GPT: any of the 64 words before may matter, the model finds out which
    bytes    the same GPT reading bytes: not even where words begin is given (the tokenizer is structure too)

Every rung reads the same toyworld text and is scored on the same held-out examples. Words and bytes
cut the text differently, so the common unit is bits per character: -log2 p(the example's text, its end
included) / its characters, the same quantity whatever the model predicts one step at a time. Compute
is training FLOPs: the transformers' 6 N D + attention (minilm.scaling.training_flops, the same count for
the windowed model, whose masked-out scores are still computed), the n-gram's counting and smoothing
(NGram.flops, tallied by the code that counts).

The sweep is points of minilm.experiments (sweep_points, measure): one resumable results file.
"""
import csv
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import experiments
from .data import toyworld
from .errors import MinilmError
from .evaluate import example_rows, token_scores
from .model import GPT, GPTConfig
from .ngram import NGram
from .scaling import METRICS, curve, fit_power_law, training_flops
from .tokenizer import ByteTokenizer, WordTokenizer
from .train import train_sweep_point

RESULTS_DIR = os.path.join("lessons", "results")
RUNGS = ("ngram", "window", "gpt", "bytes")  # most structure first
NEURAL = RUNGS[1:]
RUNG_NAMES = {"ngram": "5-gram counts (most structure)", "window": "GPT, attention window 4",
              "gpt": "GPT (plain)", "bytes": "GPT on bytes (least structure)"}
# What each task needs to see, counted back from its answer (toyworld's templates): the local tasks
# are decided within 4 words, the others by a word further back than a 4-word window reaches.
LOCAL_TASKS = ("grammar", "facts_head", "facts_tail", "translation")  # subject, country: 1-2 back; the
                                                                      # word to translate: 4 back
LONG_RANGE_TASKS = ("lists", "sentiment", "spatial", "arithmetic")  # the items 6-12 back, the review's cue
                                                                    # up to 20, the story up to 20, digits 6


@dataclass
class StructureConfig:
    budgets: list          # [n_layer, d_model, n_head, tokens] of each neural budget, cheapest first
    seeds: list            # every neural point is trained with each seed (init and batch order)
    ngram_tokens: list     # the count models' budgets: how many training tokens they count
    ngram_orders: list     # every order n counted at each budget (the ladder's rung is ngram_order)
    ngram_order: int = 5   # the shortest history that holds every local task's cue
    window: int = 4        # the windowed rung sees this many positions, itself included
    block_size: int = 64   # words a word-level GPT reads
    byte_block_size: int = 128  # bytes the byte-level GPT reads: the longest example (111 characters) fits
    batch_tokens: int = 1024  # tokens a step, every rung: 16 rows of 64 words, or 8 rows of 128 bytes
    lr: float = 3e-3
    n_eval: int = 3000     # held-out examples (lesson 03's, so its losses compare)
    world: dict = field(default_factory=dict)  # ToyworldConfig arguments
    corpus_seed: int = 0

    def __post_init__(self):
        if not self.budgets or not self.seeds or not self.ngram_tokens:
            raise MinilmError("a structure sweep needs at least one budget, one seed and one n-gram budget")
        if self.ngram_order not in self.ngram_orders:
            raise MinilmError(f"the ladder's n-gram order {self.ngram_order} must be one of ngram_orders {self.ngram_orders}")


PRESETS = {
    # the sweep behind lessons/05_structure_vs_scale.ipynb: budgets from 5e9 to 5e12 FLOPs (model size and
    # tokens grow together), the count models from 3K to 3M tokens
    "lesson05": StructureConfig(
        budgets=[[1, 16, 1, 62_500], [1, 24, 2, 125_000], [2, 32, 2, 250_000], [2, 48, 3, 500_000],
                 [3, 64, 4, 1_000_000], [3, 96, 4, 2_000_000]],
        seeds=[0, 1, 2], ngram_tokens=[3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000],
        ngram_orders=[2, 3, 4, 5, 6]),
    # the same code path in about a minute
    "ci": StructureConfig(budgets=[[1, 8, 1, 8_000], [1, 16, 1, 16_000]], seeds=[0, 1],
                          ngram_tokens=[3_000, 30_000], ngram_orders=[2, 5], n_eval=300),
}


def preset(name):
    return experiments.choose_preset(PRESETS, name, "structure")


@dataclass(frozen=True)
class Point:
    rung: str
    tokens: int
    n_layer: int = 0  # the neural rungs' shape; 0 for the n-gram
    d_model: int = 0
    n_head: int = 0
    seed: int = 0
    order: int = 0    # the n-gram's n; 0 for the neural rungs

    @property
    def key(self):
        if self.rung == "ngram":
            return f"ngram{self.order}-t{self.tokens}"
        return f"{self.rung}-L{self.n_layer}-d{self.d_model}-h{self.n_head}-t{self.tokens}-s{self.seed}"


def plan(config):
    """Every point: the count models first (seconds each), then each seed-round of the neural budgets."""
    points = [Point("ngram", t, order=n) for t in config.ngram_tokens for n in config.ngram_orders]
    points += [Point(rung, tokens, L, d, h, seed) for seed in config.seeds for L, d, h, tokens in config.budgets
               for rung in NEURAL]
    return points


# ----------------------------------------------------------------------------------------------------
# The corpus, as words and as bytes


class World:
    """The training text (as word ids and as bytes) and the held-out examples (as rows of each), made once."""

    def __init__(self, config):
        self.world = toyworld.ToyworldConfig(**config.world)
        self.words = WordTokenizer(toyworld.vocabulary(self.world))
        most = max([b[3] for b in config.budgets] + config.ngram_tokens)
        examples = toyworld.generate(self.world, most // 8 + 1, seed=config.corpus_seed)  # >= 8 words each
        self.word_stream = toyworld.to_stream(examples, self.words)[0][:most + 1]
        self.byte_stream = np.frombuffer(text_of(examples).encode("utf-8")[:most + 1], dtype=np.uint8).astype(np.int32)
        self.eval_examples = toyworld.generate(self.world, config.n_eval, seed=config.corpus_seed, split="eval")
        self.word_rows = example_rows(self.eval_examples, self.words)
        self.byte_rows = byte_rows(self.eval_examples)
        self.characters = np.array([len(ex.text) + 1 for ex in self.eval_examples])  # (N,) text and its end


def text_of(examples):
    """The examples as one text: each on its own line, the stream opening with a newline (<eos> for bytes)."""
    return "".join("\n" + ex.text for ex in examples) + "\n"


def byte_rows(examples):
    """Each example as a row of bytes, newline text newline, right-padded; like evaluate.example_rows,
    (idx, targets, task_ids, is_answer, valid), all (N, T). The answer is its characters and the space
    after them: greedy decoding must write the word and end it."""
    texts = ["\n" + ex.text + "\n" for ex in examples]
    T = max(len(t) for t in texts) - 1
    rows = np.zeros((len(examples), T + 1), dtype=np.int32)
    task_ids = np.zeros((len(examples), T), dtype=np.int16)
    is_answer = np.zeros((len(examples), T), dtype=bool)
    valid = np.zeros((len(examples), T), dtype=bool)
    for i, (ex, text) in enumerate(zip(examples, texts)):
        rows[i, :len(text)] = list(text.encode("utf-8"))
        start = len("\n" + " ".join(ex.prompt + ("",)))  # the answer's first character
        end = start + len(" ".join(ex.answer)) + 1  # its last character, and the space that ends it
        task_ids[i], is_answer[i, start - 1:end - 1], valid[i, :len(text) - 1] = toyworld.TASKS.index(ex.task), True, True
    return rows[:, :-1], rows[:, 1:], task_ids, is_answer, valid


def score(model, rows, characters):
    """A model's held-out numbers from rows (word or byte) of the examples and their characters (N,): the
    mean loss per token (nats), bits per character, and each task's exact match and answer log-prob."""
    idx, targets, task_ids, is_answer, valid = rows
    nll, top1 = token_scores(model, idx, targets)  # (N, T) each
    nll = np.where(valid, nll, 0.0)
    tasks = {}
    for t, name in enumerate(toyworld.TASKS):
        here = task_ids[:, 0] == t  # every row is one example of one task
        if here.any():
            answer = is_answer[here]
            tasks[name] = {"exact_match": float(np.all(top1[here] | ~answer, axis=1).mean()),
                           "answer_logprob": float(-(nll[here] * answer).sum(axis=1).mean())}
    return {"val_loss": float(nll[valid].mean()), "bits_per_char": float(nll.sum() / characters.sum() / math.log(2)),
            "tasks": tasks}


# ----------------------------------------------------------------------------------------------------
# Training one point


def count_ngram(point, world):
    """Count an n-gram model on the first point.tokens words and score it."""
    start = time.time()
    model = NGram(point.order, world.words.vocab_size).fit(world.word_stream[:point.tokens])
    seconds = time.time() - start
    return {"key": point.key, **asdict(point), "params": sum(len(t.keys) for t in model.raw.values()),
            "flops": float(model.flops), **score(model, world.word_rows, world.characters),
            "train_seconds": round(seconds, 2)}


def train_gpt(config, point, world, device=None):
    """Train one GPT of the ladder (windowed, plain, or on bytes) on point.tokens tokens and score it.
    Every rung takes config.batch_tokens tokens a step, so a budget is the same number of steps for all."""
    on_bytes = point.rung == "bytes"
    block = config.byte_block_size if on_bytes else config.block_size
    gpt = GPTConfig(vocab_size=ByteTokenizer.vocab_size if on_bytes else world.words.vocab_size, block_size=block,
                    n_layer=point.n_layer, n_head=point.n_head, d_model=point.d_model,
                    attention_window=config.window if point.rung == "window" else None)
    model = GPT(gpt, seed=point.seed, device=device)
    batch_size = config.batch_tokens // block
    steps = max(1, point.tokens // config.batch_tokens)
    stream = world.byte_stream if on_bytes else world.word_stream
    _, seconds = train_sweep_point(model, stream[:point.tokens + 1], steps, batch_size, config.lr, point.seed)
    n, tokens = model.num_params(non_embedding=True), steps * config.batch_tokens
    rows = world.byte_rows if on_bytes else world.word_rows
    return {"key": point.key, **asdict(point), "params": n, "tokens": tokens,
            "flops": training_flops(n, point.n_layer, point.d_model, block, gpt.vocab_size, tokens),
            **score(model, rows, world.characters), "train_seconds": round(seconds, 2)}


@functools.lru_cache(maxsize=2)
def _world(config_json):
    return World(StructureConfig(**json.loads(config_json)))


def sweep_points(config, device=None):
    """The sweep as (key, point) pairs for minilm.experiments.run_points; a point is (config, Point, device)."""
    return [(p.key, (config, p, device)) for p in plan(config)]


def measure(point):
    """Train (or count) and score one point of sweep_points (the corpus is made once per process)."""
    config, p, device = point
    world = _world(json.dumps(asdict(config)))
    return count_ngram(p, world) if p.rung == "ngram" else train_gpt(config, p, world, device)


def results_path(preset_name):
    """lessons/results/structure.json for the lesson's sweep, runs/structure_PRESET.json for the others."""
    if preset_name == "lesson05":
        return os.path.join(RESULTS_DIR, "structure.json")
    return os.path.join("runs", f"structure_{preset_name}.json")


# ----------------------------------------------------------------------------------------------------
# Reading the sweep: one curve per rung, and where two curves cross

BITS = lambda r: r["bits_per_char"]  # noqa: E731  (the metric of the ladder's main figure: lower is better)
EXACT_MATCH_MARGIN = METRICS["exact_match"][1]  # lesson 03's smallest change in exact match that counts


def exact_match(task):
    return lambda r: r["tasks"][task]["exact_match"]


def rung_curve(results, rung, metric=BITS, order=None):
    """compute (n,), per-seed values (n, seeds) of one rung over its budgets, cheapest first. The n-gram
    rung is the config's ngram_order unless another order is asked for (it has one 'seed': counting is
    deterministic)."""
    order = order or results["config"]["ngram_order"]
    groups = {}
    for r in results["points"].values():
        if r["rung"] == rung and (rung != "ngram" or r["order"] == order):
            groups.setdefault((r["n_layer"], r["d_model"], r["n_head"], r["tokens"]), []).append(r)
    if not groups:
        raise MinilmError(f"the results hold no {rung!r} points: run `python -m minilm structure` to the end first")
    return curve(sorted(groups.values(), key=lambda g: g[0]["flops"]), metric)


def ladder(results, metric=BITS):
    """rung -> (compute, per-seed values) for every rung, most structure first."""
    return {rung: rung_curve(results, rung, metric) for rung in RUNGS}


def crossing(compute_a, values_a, compute_b, values_b, higher_is_better=False, hold_a=False, margin=0.0):
    """Where the less structured curve b overtakes a: the compute at which b's mean first becomes better than
    a's, reading both as straight lines between measured points in log compute, over the range both were
    measured. With hold_a, a is the best it reached with at most that much compute, and that best holds to
    the right (the count model's plateau: more counting stopped helping). b overtakes a when it is better by
    more than `margin`. -> (compute or None, verdict): 'crosses', 'ahead from the start' or 'does not
    overtake on these budgets' (then compute is None)."""
    sign = -1.0 if higher_is_better else 1.0  # sign * value: lower is better
    a = sign * values_a.mean(axis=1)
    if hold_a:
        a = np.minimum.accumulate(a)
    lo = compute_b.min() if hold_a else max(compute_a.min(), compute_b.min())
    hi = compute_b.max() if hold_a else min(compute_a.max(), compute_b.max())
    if lo >= hi:
        return None, "not measured at the same compute"
    grid = np.geomspace(lo, hi, 400)
    gap = (np.interp(np.log(grid), np.log(compute_b), sign * values_b.mean(axis=1))
           - np.interp(np.log(grid), np.log(compute_a), a))  # < -margin where b is better
    ahead = gap < -margin
    if ahead[0]:
        return None, "ahead from the start"
    if not ahead.any():
        return None, "does not overtake on these budgets"
    return float(grid[np.argmax(ahead)]), "crosses"


def resample_seeds(values, rng):
    """values (n, seeds) with each budget's seeds drawn again with replacement: one bootstrap copy."""
    return np.take_along_axis(values, rng.integers(values.shape[1], size=values.shape), axis=1)


def interval(found, n_boot):
    """The 2.5 and 97.5 percentiles of the crossings found (None where none was), and the share that were
    found; low and high are None if fewer than half the resamples cross."""
    hits = [f for f in found if f is not None]
    low, high = np.percentile(hits, [2.5, 97.5]) if len(hits) >= n_boot / 2 else (None, None)
    return low, high, len(hits) / n_boot


def crossing_interval(compute_a, values_a, compute_b, values_b, n_boot=1000, seed=0, **kwargs):
    """A 95% interval for the crossing: resample the seeds of every budget of both curves, find the crossing
    again, repeat. -> (low, high, share of resamples that cross)."""
    rng = np.random.default_rng(seed)
    found = [crossing(compute_a, resample_seeds(values_a, rng), compute_b, resample_seeds(values_b, rng), **kwargs)[0]
             for _ in range(n_boot)]
    return interval(found, n_boot)


def extrapolated_crossing(compute_a, values_a, compute_b, values_b, hold_a=False, n_boot=200, seed=0, up_to=1e20):
    """Where b would overtake a if each curve went on as its fitted law L(C) = E + a C^-alpha
    (scaling.fit_power_law, E kept where the fit supports it; with hold_a, a stays at the best it reached),
    searched from the end of the measured budgets up to `up_to` FLOPs; the interval from refitting on
    resampled seeds. Lower is better. -> (compute or None, low, high, share of resamples that cross)."""
    grid = np.geomspace(max(compute_a.max(), compute_b.max()), up_to, 2000)

    def first_below(a, b):
        a_law = a.mean(axis=1).min() if hold_a else fit_power_law(compute_a, a.mean(axis=1))(grid)
        gap = fit_power_law(compute_b, b.mean(axis=1))(grid) - a_law
        return float(grid[np.argmax(gap < 0)]) if (gap < 0).any() else None

    rng = np.random.default_rng(seed)
    found = [first_below(resample_seeds(values_a, rng), resample_seeds(values_b, rng)) for _ in range(n_boot)]
    return (first_below(values_a, values_b), *interval(found, n_boot))


# ----------------------------------------------------------------------------------------------------
# The trend behind the thesis: how fast compute gets cheaper

TALK_YEARS_PER_10X = 5.0  # the talk: "10x more compute every five years, for the same money"


def read_compute_trend(path=os.path.join(RESULTS_DIR, "compute_trend.csv")):
    """The committed table of public figures: year (n,), FLOP/s per dollar (n,), and the rows as dicts."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    years = np.array([float(r["year"]) for r in rows])
    per_dollar = np.array([float(r["fp32_gflops"]) * 1e9 / float(r["launch_price_usd"]) for r in rows])
    return years, per_dollar, rows


def years_per_10x(years, per_dollar, n_boot=2000, seed=0):
    """Fit log10(FLOP/s per dollar) = slope * year + b; -> (years for 10x = 1 / slope, doubling time in
    years, a 95% bootstrap interval for the years per 10x from resampling the rows)."""
    fit = lambda pick: 1.0 / np.polyfit(years[pick], np.log10(per_dollar[pick]), 1)[0]  # noqa: E731
    rng = np.random.default_rng(seed)
    boot = [fit(rng.integers(len(years), size=len(years))) for _ in range(n_boot)]
    tenfold = fit(np.arange(len(years)))
    return tenfold, tenfold * math.log10(2), tuple(float(x) for x in np.percentile(boot, [2.5, 97.5]))


# ----------------------------------------------------------------------------------------------------
# The report


def rung_value(curves, rung, compute):
    """One rung's mean bits per character at this compute, and whether it was read off a fitted law.
    Between measured budgets: the straight line between them (in log compute). Beyond them: the count model
    stays at the best it reached (more counting stopped helping); a neural rung follows its fitted law
    (scaling.fit_power_law: extrapolated; with fewer than 3 budgets, not known). Below a neural rung's
    smallest budget: not known (inf)."""
    c, v = curves[rung]
    mean = v.mean(axis=1)
    if rung == "ngram":
        return float(np.interp(np.log(compute), np.log(c), np.minimum.accumulate(mean))), False
    if compute < c.min():
        return math.inf, False
    if compute <= c.max():
        return float(np.interp(np.log(compute), np.log(c), mean)), False
    if len(c) < 3:  # too few budgets to fit a law
        return math.inf, True
    return float(fit_power_law(c, mean)(compute)), True


def best_rung(curves, compute):
    """The rung with the lowest bits per character at this compute -> (rung, read off a fitted law?)."""
    values = {rung: rung_value(curves, rung, compute) for rung in curves}
    rung = min(values, key=lambda r: values[r][0])
    return rung, values[rung][1]


def dotted_line(results):
    """The talk's question, per neural budget C: the best rung at C and at 10 C -> [(C, best, best at 10 C,
    whether 10 C was read off fitted laws)]."""
    curves = ladder(results)
    rows = []
    for compute in curves["gpt"][0]:
        here, _ = best_rung(curves, compute)
        there, extrapolated = best_rung(curves, 10 * compute)
        rows.append((float(compute), here, there, extrapolated))
    return rows


def ladder_crossings(results, metric=BITS, higher_is_better=False, margin=0.0):
    """(a, b) -> (compute, verdict, low, high, share) for each rung b below a on the ladder and each rung above
    it: where b overtakes a on this metric (by more than margin), measured, with a 95% interval over seeds."""
    curves = ladder(results, metric)
    out = {}
    for i, a in enumerate(RUNGS):
        for b in RUNGS[i + 1:]:
            kwargs = {"higher_is_better": higher_is_better, "hold_a": a == "ngram", "margin": margin}
            at, verdict = crossing(*curves[a], *curves[b], **kwargs)
            out[a, b] = (at, verdict, *crossing_interval(*curves[a], *curves[b], **kwargs))
    return out


def report(results):
    """The text `python -m minilm structure` prints: each rung's curve, the crossovers, the best rung per budget."""
    curves = ladder(results)
    lines = [f"structure sweep {results.get('preset', '?')}: {len(results['points'])} points, "
             f"{results.get('wall_seconds', 0) / 60:.1f} min of wall time; held-out bits per character (mean +- sd over seeds)"]
    for rung, (compute, values) in curves.items():
        cells = ", ".join(f"{c:.2g}: {v.mean():.3f}" + (f" +- {v.std(ddof=1):.3f}" if len(v) > 1 else "")
                          for c, v in zip(compute, values))
        lines.append(f"  {rung:<7} {cells}")
    for (a, b), (at, verdict, low, high, share) in ladder_crossings(results).items():
        where = f"overtakes at {at:.2g} FLOPs" if at else verdict
        interval = f", 95% interval [{low:.2g}, {high:.2g}]" if low else ""
        lines.append(f"{b} vs {a}: {where}{interval} ({share:.0%} of seed resamples cross)")
    for compute, here, there, extrapolated in dotted_line(results):
        lines.append(f"best rung at {compute:.2g} FLOPs: {here}; at ten times that: {there}"
                     + (" (read off the fitted laws)" if extrapolated else ""))
    return "\n".join(lines)


def task_gaps(results, more="window", less="gpt"):
    """task -> (compute (n,), exact match of `less` minus `more` at each budget, mean over seeds (n,)): where
    removing the structure helps (> 0) or costs (< 0)."""
    gaps = {}
    for task in toyworld.TASKS:
        compute, a = rung_curve(results, more, exact_match(task))
        _, b = rung_curve(results, less, exact_match(task))
        gaps[task] = compute, b.mean(axis=1) - a.mean(axis=1)
    return gaps
