"""Inverse (U-shaped) scaling, measured: train a family of model sizes on the glib corpus and probe each
on held-out prompts. This module holds what a sweep trains (the presets) and how one point is trained
and probed; minilm.glib_stats decides from the probes whether the conflict probe dips in the middle, and
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
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import layers
from .backend import to_numpy
from .data.glib import LECTURE_PROMPT, GlibConfig, GlibCorpus
from .model import GPT, GPTConfig
from .train import train_sweep_point

BLOCK_SIZE = 48
PROBES = ("A", "B", "C", "D")
PROBE_NAMES = {"A": "repeat a random string", "B": "complete the quote", "C": "follow the instruction",
               "D": "conflict (repeat an altered quote)"}
RESULTS_DIR = os.path.join("lessons", "results")


# --------------------------------------------------------------------------------------------------
# What a sweep trains

@dataclass(frozen=True)
class Size:
    d_model: int
    n_layer: int
    n_head: int
    lr: float  # peak learning rate: smaller models take larger steps

    @property
    def name(self):
        return f"d{self.d_model} L{self.n_layer}"


@dataclass(frozen=True)
class Preset:
    sizes: tuple
    seeds: tuple
    steps: int                    # the same token budget for every size: steps x batch x block tokens
    batch_size: int = 16
    warmup_steps: int = 100
    stream_tokens: int = 1_000_000  # the training stream windows are drawn from
    corpus: GlibConfig = field(default_factory=GlibConfig)
    knobs: tuple = ()             # knob-map cells: (name, {GlibConfig field: value}), trained on knob_sizes
    knob_sizes: tuple = ()
    knob_seeds: tuple = (0,)

    def variants(self):
        """name -> GlibConfig: the main corpus, then one per knob-map cell."""
        return {"main": self.corpus, **{name: replace(self.corpus, **change) for name, change in self.knobs}}

    def points(self):
        """Every (variant, size, seed) to train: the main sweep one seed at a time (so a partial
        sweep already holds whole curves), then the knob map."""
        main = [("main", size, seed) for seed in self.seeds for size in self.sizes]
        knobs = [(name, size, seed) for name, _ in self.knobs for size in self.knob_sizes for seed in self.knob_seeds]
        return main + knobs

    def to_dict(self):
        return asdict(self)


# 9.1K to 1.8M parameters; learning rate 4e-3 * sqrt(64 / d) from d64 up, larger below (the smallest
# model learns to copy only late in training, and only with a large step size).
FULL_SIZES = (Size(16, 2, 2, 1.6e-2), Size(32, 2, 2, 8e-3), Size(64, 2, 4, 4e-3), Size(96, 3, 4, 3.3e-3),
              Size(160, 3, 4, 2.5e-3), Size(192, 4, 4, 2.3e-3))
PRESETS = {
    "full": Preset(sizes=FULL_SIZES, seeds=(0, 1, 2, 3, 4), steps=3000,
                   knobs=(("r=0.02", {"rare": 0.02}), ("r=0.15", {"rare": 0.15}),
                          ("zipf=0.5", {"zipf": 0.5}), ("zipf=1.5", {"zipf": 1.5})),
                   knob_sizes=(FULL_SIZES[0], FULL_SIZES[2], FULL_SIZES[4])),
    # A second sweep, chosen after the first one's knob map: its one U-shaped cell (r = 0.15, one seed) with
    # every size and seed, no knob map. Lesson 04 reports it separately, by the same rule.
    "rare15": Preset(sizes=FULL_SIZES, seeds=(0, 1, 2, 3, 4), steps=3000, corpus=GlibConfig(rare=0.15)),
    "ci": Preset(sizes=(Size(8, 2, 2, 1e-2), Size(16, 2, 2, 8e-3), Size(24, 2, 2, 6e-3)), seeds=(0, 1),
                 steps=150, stream_tokens=100_000, knobs=(("r=0.15", {"rare": 0.15}),),
                 knob_sizes=(Size(8, 2, 2, 1e-2), Size(24, 2, 2, 6e-3))),
}


def results_path(preset_name):
    return os.path.join(RESULTS_DIR, f"glib_{preset_name}.json")


# --------------------------------------------------------------------------------------------------
# One point of the sweep: train one size with one seed, then probe it

def build_model(corpus, size, seed, device=None):
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, block_size=BLOCK_SIZE,
                       n_layer=size.n_layer, n_head=size.n_head, d_model=size.d_model)
    return GPT(config, seed=seed, device=device)


def train_point(preset, corpus, tokens, size, seed, device=None, progress=True):
    """Train one size with one seed on the corpus's stream; returns the trained model and its Trainer."""
    model = build_model(corpus, size, seed, device)
    trainer, _ = train_sweep_point(model, tokens, preset.steps, preset.batch_size, size.lr, seed,
                                   preset.warmup_steps, progress)
    return model, trainer


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
                  "as they say : all that glisters is not", "say with me , all that glisters is not home . all that glisters is not")


def top_next_words(model, tokenizer, prompts, k=8):
    """prompt -> the k most likely next words with their probabilities."""
    probs = next_word_probs(model, tokenizer, prompts)
    top = np.argsort(-probs, axis=1)[:, :k]
    return {p: [[tokenizer.words[i], round(float(probs[n, i]), 4)] for i in top[n]] for n, p in enumerate(prompts)}


def run_point(preset, corpus, tokens, size, seed, device=None, progress=True):
    """Train and probe one point; the JSON-able record the results file keeps."""
    start = time.time()
    model, trainer = train_point(preset, corpus, tokens, size, seed, device, progress)
    return {"size": size.name, "seed": seed, "params": model.num_params(),
            "non_embedding_params": model.num_params(non_embedding=True),
            "final_loss": round(float(np.mean(trainer.history.losses[-50:])), 4),
            "seconds": round(time.time() - start, 1),
            "probes": score_probes(model, corpus),
            "next_words": top_next_words(model, corpus.tokenizer, WIDGET_PROMPTS) if seed == 0 else None}


# --------------------------------------------------------------------------------------------------
# The sweep as points of minilm.experiments: one resumable results file, run anywhere

def point_key(variant, size, seed):
    return f"{variant}/{size.name}/seed{seed}"


def sweep_points(preset_name, device=None):
    """Every point of a preset as (key, point) pairs; a point is (preset name, variant, size, seed, device)."""
    return [(point_key(*p), (preset_name, *p, device)) for p in PRESETS[preset_name].points()]


def measure(point):
    """Train and probe one point of sweep_points (each corpus is made once per process)."""
    preset_name, variant, size, seed, device = point
    corpus, tokens = _corpus_and_stream(preset_name, variant)
    return {"variant": variant, **run_point(PRESETS[preset_name], corpus, tokens, size, seed, device, progress=False)}


@functools.lru_cache(maxsize=None)
def _corpus_and_stream(preset_name, variant):
    preset = PRESETS[preset_name]
    corpus = GlibCorpus(preset.variants()[variant])
    return corpus, corpus.stream(preset.stream_tokens)
