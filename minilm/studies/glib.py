"""Inverse (U-shaped) scaling, measured: train a family of model sizes on the glib corpus and probe each
on held-out prompts. This module holds what a sweep trains (the presets) and how one point is trained
and probed; minilm.studies.glib_report decides from the probes whether the conflict probe dips in the middle, and
minilm.plots draws it.

    python -m minilm glib                    the full sweep (resumable), written to lessons/results/
    python -m minilm glib --preset ci        a small version for CI
    python -m minilm glib --report           the per-size table and the U-shape verdict

The four probes (minilm.data.glib builds the prompts; each is decided by one next word):
    A  repeat a random string             "repeat after me , w1 .. wn . w1 .. w(n-1)"    -> wn
    B  complete a quote, neutral frame    "as they say : q1 .. q(n-1)"                  -> qn
    C  follow the instruction             D and its fix twin ("repeat with me , ...") both answered as
                                          asked: the altered word, then the original. A model that
                                          ignores the instruction answers both twins alike and fails.
    D  the conflict                       "repeat after me , q1 .. x . q1 .. q(n-1)"    -> x (not qn)
For each: exact match (the asked word is the most likely next word), P(altered word), P(original word)
and the margin log p(altered) - log p(original). For C the two probabilities are read under the twin
that asks for each word, and the margin is how far the instruction moves it (repeat twin minus fix twin).
"""
import functools
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .. import layers
from ..backend import to_numpy
from ..data.glib import LECTURE_PROMPT, REPEAT_PHRASES, GlibConfig, GlibCorpus, alter, instruction, other_words
from ..model import GPT, GPTConfig
from ..train import read_once
from . import runner
from .runner import train_sweep_point

BLOCK_SIZE = 48
PROBES = ("A", "B", "C", "D")
PROBE_NAMES = {"A": "repeat a random string", "B": "complete the quote", "C": "follow the instruction",
               "D": "conflict (repeat an altered quote)"}


# --------------------------------------------------------------------------------------------------
# What a sweep trains

@dataclass(frozen=True)
class Size:
    d_model: int
    n_layer: int
    n_head: int
    lr: float      # peak learning rate: smaller models take larger steps
    steps: int = 0  # optimizer steps; 0: the preset's
    seeds: tuple = ()  # the seeds this size trains; (): the preset's

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))  # a record's JSON gives a list

    @property
    def shape(self):
        """Width and depth: two sizes of one shape differ only in how long they train."""
        return self.d_model, self.n_layer

    @property
    def name(self):
        longer = f" {self.steps // 1000}k steps" if self.steps else ""
        return f"d{self.d_model} L{self.n_layer}{longer}"

    def cost(self, preset_steps):
        """Roughly proportional to training time: steps x the blocks' weights."""
        return (self.steps or preset_steps) * self.n_layer * self.d_model ** 2


# A knob-map cell changes GlibConfig fields, or how the sizes train:
#   lr_power  the peak learning rate falls as d_model ** -lr_power above d64 (the sizes' own rates: 0.5)
#   fresh     True: every window is read once, in order, from a stream as long as the training, so each
#             rare-frame example (with its own random alteration) is seen exactly once
TRAINING_KNOBS = ("lr_power", "fresh")


def split_knob(change):
    """A knob-map cell's change -> (its GlibConfig fields, its training fields)."""
    corpus = {k: v for k, v in change.items() if k not in TRAINING_KNOBS}
    return corpus, {k: v for k, v in change.items() if k in TRAINING_KNOBS}


@dataclass(frozen=True)
class Preset:
    sizes: tuple
    seeds: tuple
    steps: int                    # the same token budget for every size: steps x batch x block tokens
    batch_size: int = 16
    warmup_steps: int = 100
    stream_tokens: int = 1_000_000  # the training stream windows are drawn from
    corpus: GlibConfig = field(default_factory=GlibConfig)
    knobs: tuple = ()             # knob-map cells: (name, {field: value}, see split_knob), trained on knob_sizes
    knob_sizes: tuple = ()
    knob_seeds: tuple = (0,)
    probe_every: int = 0          # > 0: the probes are also measured every this many steps during training
    name: str = ""                # its name in PRESETS: its points carry it (a process makes each corpus once)

    def variants(self):
        """name -> GlibConfig: the main corpus, then one per knob-map cell."""
        cells = {name: replace(self.corpus, **split_knob(change)[0]) for name, change in self.knobs}
        return {"main": self.corpus, **cells}

    def training_knobs(self, variant):
        return split_knob(dict(self.knobs).get(variant, {}))[1]

    def points(self):
        """Every (variant, size, seed) to train: the knob map (a few short runs), then the main sweep,
        longest runs first (two workers then finish at about the same time)."""
        knobs = [(name, size, seed) for name, _ in self.knobs for size in self.knob_sizes for seed in self.knob_seeds]
        main = [("main", size, seed) for size in self.sizes for seed in (size.seeds or self.seeds)]
        return knobs + sorted(main, key=lambda p: -p[1].cost(self.steps))

    def to_dict(self):
        """The preset as its record's config. Fields added after records were written are left out at their
        defaults (a size's own seeds, probe_every), so those records still name their presets."""
        config = asdict(self)
        for size in config["sizes"] + config["knob_sizes"]:
            if not size["seeds"]:
                del size["seeds"]
        if not self.probe_every:
            del config["probe_every"]
        del config["name"]  # the results file names its preset
        return config


# 9.1K to 1.8M parameters; learning rate 4e-3 * sqrt(64 / d) from d64 up, larger below (the smallest
# model learns to copy only late in training, and only with a large step size).
FULL_SIZES = (Size(16, 2, 2, 1.6e-2), Size(32, 2, 2, 8e-3), Size(64, 2, 4, 4e-3), Size(96, 3, 4, 3.3e-3),
              Size(160, 3, 4, 2.5e-3), Size(192, 4, 4, 2.3e-3))
LONG_SIZES = FULL_SIZES[:4] + (Size(160, 3, 4, 2.5e-3, 6000), Size(192, 4, 4, 2.3e-3, 6000), Size(256, 4, 4, 2e-3),
                                 Size(256, 4, 4, 2e-3, 6000))
PRESETS = {name: replace(preset, name=name) for name, preset in {
    "full": Preset(sizes=FULL_SIZES, seeds=(0, 1, 2, 3, 4), steps=3000,
                   knobs=(("r=0.02", {"rare": 0.02}), ("r=0.15", {"rare": 0.15}),
                          ("zipf=0.5", {"zipf": 0.5}), ("zipf=1.5", {"zipf": 1.5})),
                   knob_sizes=(FULL_SIZES[0], FULL_SIZES[2], FULL_SIZES[4])),
    # A second sweep, chosen after the first one's knob map: its one U-shaped cell (r = 0.15, one seed) with
    # every size and seed, no knob map. Lesson 04 reports it separately, by the same rule.
    "rare15": Preset(sizes=FULL_SIZES, seeds=(0, 1, 2, 3, 4), steps=3000, corpus=GlibConfig(rare=0.15)),
    # The right arm, second attempt: the two largest sizes trained twice as long, and a larger size (3.2M)
    # on the base budget (about the compute of d192 trained twice as long: one spends it on steps, the
    # other on parameters), then that size trained twice as long too (the test of lesson 04's prediction that
    # instruction-following comes with steps); the smaller sizes train exactly as in the full sweep (and
    # reproduce its numbers). Knob-map cells aimed at the hedge (seed 0), at a small, a middle and a
    # right-arm size.
    "long": Preset(sizes=LONG_SIZES, seeds=(0, 1, 2, 3, 4), steps=3000,
                   knobs=(("fresh", {"fresh": True}), ("fix=rare", {"fix": 0.08, "rare": 0.08}),
                          ("lr~1/d", {"lr_power": 1.0})),
                   knob_sizes=(LONG_SIZES[0], LONG_SIZES[2], LONG_SIZES[4])),
    # The right arm, third attempt (docs/lab/glib_third_attempt.md, committed before any of these points trained):
    # above d160 the peak learning rate holds lr * d at d160's 0.40. First the pilot: d256 on 12,000 steps,
    # the two seeds that failed at 6,000, probed every 1,000 steps to see when the instruction arrives.
    "lrd_pilot": Preset(sizes=(Size(256, 4, 4, 0.40 / 256, 12000),), seeds=(0, 2), steps=3000, probe_every=1000),
    # Then the confirmation. N = 8,000 steps for d192 and d256, fixed by the design's rule from the pilot (both
    # seeds arrived, the later at step 6,000: N = min(12,000, 6,000 + 2,000)); d256 on seeds 0-7, where the
    # variance is. d16-d160 train exactly as in the long sweep (and must reproduce its records).
    "lrd": Preset(sizes=LONG_SIZES[:5] + (Size(192, 4, 4, 0.40 / 192, 8000),
                                          Size(256, 4, 4, 0.40 / 256, 8000, tuple(range(8)))),
                  seeds=(0, 1, 2, 3, 4), steps=3000),
    "ci": Preset(sizes=(Size(8, 2, 2, 1e-2), Size(16, 2, 2, 8e-3), Size(24, 2, 2, 6e-3)), seeds=(0, 1),
                 steps=150, stream_tokens=100_000, knobs=(("r=0.15", {"rare": 0.15}),),
                 knob_sizes=(Size(8, 2, 2, 1e-2), Size(24, 2, 2, 6e-3))),
}.items()}


# The committed sweep a preset extends: its report shows the two side by side.
BASELINES = {"long": "full", "lrd": "long"}  # the sweep whose results a preset's report compares it with


def build_model(corpus, size, seed, device=None):
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, block_size=BLOCK_SIZE,
                       n_layer=size.n_layer, n_head=size.n_head, d_model=size.d_model)
    return GPT(config, seed=seed, device=device)


def train_point(preset, corpus, tokens, size, seed, device=None, progress=True, lr_power=0.5, fresh=False, show=None):
    """Train one size with one seed on the corpus's stream (the training knobs as in split_knob); returns
    the trained model, its Trainer and the probes read on the way (preset.probe_every; else an empty list).
    show: called with each reading as it is taken ({"step", "loss", "probes"}), to watch a run."""
    model = build_model(corpus, size, seed, device)
    train = read_once(tokens, BLOCK_SIZE) if fresh else tokens
    on_the_way = []

    def look(trainer):
        on_the_way.append({"step": trainer.step, "loss": recent_loss(trainer), "probes": score_probes(model, corpus)})
        if show:
            show(on_the_way[-1])

    trainer, _ = train_sweep_point(model, train, size.steps or preset.steps, preset.batch_size, peak_lr(size, lr_power),
                                   seed, preset.warmup_steps, progress, every=preset.probe_every, look=look)
    return model, trainer, on_the_way


def recent_loss(trainer, n=50):
    """The training loss a point reports: the mean of its last n steps."""
    return round(float(np.mean(trainer.history.losses[-n:])), 4)


def peak_lr(size, lr_power=0.5):
    """A size's peak learning rate when it falls as d_model ** -lr_power above d64 (the sizes' own rates
    fall as d_model ** -0.5, so lr_power 0.5 leaves them as they are)."""
    return size.lr * min(1.0, 64 / size.d_model) ** (lr_power - 0.5)


def fresh_stream_tokens(preset, sizes):
    """How long a stream the 'fresh' knob needs: every window of the longest run read once."""
    return max(size.steps or preset.steps for size in sizes) * preset.batch_size * (BLOCK_SIZE + 1)


def next_word_probs(model, tokenizer, prompts, batch_size=256):
    """The model's next-word distribution after each prompt: (N, V) float64 NumPy.

    Each prompt is read after an <eos>, as if a new example started. Prompts are right-padded into one
    batch: under the causal mask the padding after a prompt's last word cannot change its logits."""
    rows = [[tokenizer.eos_id] + tokenizer.encode(p) for p in prompts]
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        idx = np.full((len(chunk), max(map(len, chunk))), tokenizer.pad_id, dtype=np.int32)  # (b, T)
        for i, row in enumerate(chunk):
            idx[i, :len(row)] = row
        xp = model.xp
        logits = model.forward(xp.asarray(idx))  # (b, T, V)
        last = logits[xp.arange(len(chunk)), xp.asarray([len(row) - 1 for row in chunk])]  # (b, V)
        out.append(to_numpy(layers.softmax(last.astype("float64"))))
    return np.concatenate(out)


def score_probes(model, corpus):
    """Probe kind ("A", "B", "D", "Dfix") -> {"correct", "p_answer", "p_foil"}: lists, one entry per
    probe in corpus.probes() order. correct: the asked word is the most likely next word."""
    probes, tok = corpus.probes(), corpus.tokenizer
    probs = next_word_probs(model, tok, [p.prompt for p in probes])  # (N, V)
    rows = np.arange(len(probes))
    answer = np.array([tok.ids[p.answer] for p in probes])
    foil = np.array([tok.ids[p.foil] if p.foil else tok.pad_id for p in probes])
    kinds = np.array([p.kind for p in probes])
    scores = {"correct": (probs.argmax(axis=1) == answer).astype(int),
              "p_answer": probs[rows, answer], "p_foil": probs[rows, foil]}
    return {kind: {name: [float(f"{v:.4g}") for v in values[kinds == kind]] for name, values in scores.items()}
            for kind in ("A", "B", "D", "Dfix")}


WIDGET_PROMPTS = (LECTURE_PROMPT, "repeat with me , all that glisters is not glib . all that glisters is not",
                  "as they say : all that glisters is not",
                  "say with me , all that glisters is not home . all that glisters is not")


def top_next_words(model, tokenizer, prompts, k=8):
    """prompt -> the k most likely next words with their probabilities."""
    probs = next_word_probs(model, tokenizer, prompts)
    top = np.argsort(-probs, axis=1)[:, :k]
    return {p: [[tokenizer.words[i], round(float(probs[n, i]), 4)] for i in top[n]] for n, p in enumerate(prompts)}


def altered_quotes(corpus, n_quotes=10):
    """The prompts a learner can pick in lesson 04's widget: each of the n most exposed probe quotes
    with any other word in its last place, in the conflict frame. (quote rank, word, prompt) triples."""
    out = []
    for rank in corpus.most_exposed(n_quotes):
        quote = corpus.quotes[rank]
        out += [(rank, word, instruction(REPEAT_PHRASES[0], alter(quote, word), quote[:-1], end=""))
                for word in other_words(quote[-1])]
    return out


def top_words_table(model, corpus, k=5):
    """The k most likely next words after each altered_quotes prompt: {"ids": (N, k), "probs": (N, k)}."""
    probs = next_word_probs(model, corpus.tokenizer, [prompt for _, _, prompt in altered_quotes(corpus)])
    top = np.argsort(-probs, axis=1)[:, :k]  # (N, k)
    return {"ids": top.tolist(), "probs": np.round(np.take_along_axis(probs, top, axis=1), 3).tolist()}


def run_point(preset, corpus, tokens, size, seed, device=None, progress=True, **training_knobs):
    """Train and probe one point; the JSON-able record the results file keeps."""
    start = time.time()
    model, trainer, on_the_way = train_point(preset, corpus, tokens, size, seed, device, progress, **training_knobs)
    record = {"size": size.name, "seed": seed, "params": model.num_params(),
              "non_embedding_params": model.num_params(non_embedding=True),
              "final_loss": recent_loss(trainer),
              "seconds": round(time.time() - start, 1),
              "probes": on_the_way[-1]["probes"] if on_the_way else score_probes(model, corpus),
              "next_words": top_next_words(model, corpus.tokenizer, WIDGET_PROMPTS) if seed == 0 else None,
              "altered_quotes": top_words_table(model, corpus)}
    return {**record, "probes_at": on_the_way} if on_the_way else record


# --------------------------------------------------------------------------------------------------
# The sweep as points of minilm.studies.runner: one resumable results file, run anywhere

def point_key(variant, size, seed):
    return f"{variant}/{size.name}/seed{seed}"


def preset(name):
    return runner.choose_preset(PRESETS, name, "glib")


def sweep_points(preset, device=None):
    """Every point of a preset as (key, point) pairs; a point is (preset name, variant, size, seed, device)."""
    return [(point_key(*p), (preset.name, *p, device)) for p in preset.points()]


def measure(point):
    """Train and probe one point of sweep_points (each corpus is made once per process)."""
    preset_name, variant, size, seed, device = point
    preset = PRESETS[preset_name]
    corpus, tokens = _corpus_and_stream(preset_name, variant)
    return {"variant": variant, **run_point(preset, corpus, tokens, size, seed, device, progress=False,
                                            **preset.training_knobs(variant))}


@functools.lru_cache(maxsize=None)
def _corpus_and_stream(preset_name, variant):
    preset = PRESETS[preset_name]
    corpus = GlibCorpus(preset.variants()[variant])
    fresh = preset.training_knobs(variant).get("fresh", False)
    return corpus, corpus.stream(fresh_stream_tokens(preset, preset.knob_sizes) if fresh else preset.stream_tokens)
