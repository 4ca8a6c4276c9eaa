"""Inverse (U-shaped) scaling, measured: train a family of model sizes on the glib corpus, probe each
on held-out prompts, and decide with a paired bootstrap whether the conflict probe dips in the middle.

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
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import layers, parallel, scaling
from .backend import to_numpy
from .data.glib import LECTURE_PROMPT, GlibConfig, GlibCorpus
from .errors import MinilmError
from .model import GPT, GPTConfig
from .train import Trainer, TrainConfig

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
    config = TrainConfig(steps=preset.steps, batch_size=preset.batch_size, lr=size.lr,
                         warmup_steps=preset.warmup_steps, eval_every=0, checkpoint_every=0, seed=seed,
                         shards=1)  # unsplit: the committed sweep reproduces on any number of cores
    trainer = Trainer(model, tokens, config=config)
    trainer.run(progress=progress)
    if trainer.history.stopped:
        raise KeyboardInterrupt  # Ctrl-C: the finished points are saved; run again to resume
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
# The sweep: resumable, one JSON file

def code_version():
    """The git commit of the code that made a result, with '-dirty' if the tree had changes."""
    version = scaling.code_version()
    if version["commit"] is None:
        return "unknown"
    return version["commit"][:7] + ("-dirty" if version["dirty"] else "")


def point_key(variant, size, seed):
    return f"{variant}/{size.name}/seed{seed}"


def load_results(path):
    if not os.path.isfile(path):
        raise MinilmError(f"no results at {path}: run the sweep first (python -m minilm glib)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        raise MinilmError(f"{path} is not valid JSON: delete it and run the sweep again") from None


def run_sweep(preset_name, path, device=None, progress=True, jobs=1):
    """Train and probe every point of a preset not yet in the results file at path; returns the results.

    jobs > 1 trains that many points at once, each in its own single-threaded process: these models are
    too small for threads inside one step to pay, so one process per core is the way to use them all."""
    from tqdm.auto import tqdm

    preset = PRESETS[preset_name]
    config = json.loads(json.dumps(preset.to_dict()))  # as it reads back from the file
    results = load_results(path) if os.path.isfile(path) else {"preset": preset_name, "config": config, "points": {}}
    if results.get("config") != config:
        raise MinilmError(f"{path} holds results of a different configuration: give another --out, or delete it to start over")
    if jobs < 1:
        raise MinilmError(f"--jobs must be 1 or more, got {jobs}")
    if jobs > 1 and device not in (None, "cpu"):
        raise MinilmError("--jobs trains several points at once on the CPU's cores: leave it out with --device cuda")
    todo = [p for p in preset.points() if point_key(*p) not in results["points"]]
    version = code_version()  # of the code this process runs
    start, earlier_wall = time.time(), results.get("wall_seconds", 0.0)  # wall time, over every resumed run
    bar = tqdm(total=len(preset.points()), initial=len(preset.points()) - len(todo), unit="run", disable=not progress)
    for (variant, size, seed), record in _trained_points(preset_name, todo, device, progress, jobs):
        results["points"][point_key(variant, size, seed)] = {"variant": variant, "code_version": version, **record}
        results["wall_seconds"] = round(earlier_wall + time.time() - start, 1)
        results["jobs"] = jobs
        scaling.save_results(results, path)  # atomic: a killed sweep keeps every finished point
        bar.set_postfix_str(f"last finished: {point_key(variant, size, seed)}", refresh=False)
        bar.update(1)
    bar.close()
    return results


def _trained_points(preset_name, todo, device, progress, jobs):
    """Yield (point, record) for every point of todo, as each finishes."""
    if jobs <= 1:
        for point in todo:
            yield point, _train_and_probe(preset_name, *point, device=device, progress=progress)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, initializer=_one_thread_per_process) as pool:
        futures = {pool.submit(_train_and_probe, preset_name, *point): point for point in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()


@functools.lru_cache(maxsize=None)
def _corpus_and_stream(preset_name, variant):
    preset = PRESETS[preset_name]
    corpus = GlibCorpus(preset.variants()[variant])
    return corpus, corpus.stream(preset.stream_tokens)


def _train_and_probe(preset_name, variant, size, seed, device=None, progress=False):
    corpus, tokens = _corpus_and_stream(preset_name, variant)
    return run_point(PRESETS[preset_name], corpus, tokens, size, seed, device, progress)


_blas_limit = None  # a worker process's hold on its BLAS threads


def _one_thread_per_process():
    global _blas_limit
    _blas_limit = parallel.one_blas_thread()  # held for the worker's life


# --------------------------------------------------------------------------------------------------
# Statistics: the four probes per size, bootstrap intervals, the U-shape rule

def log(p):
    return np.log(np.maximum(p, 1e-12))


def probe_metrics(probes):
    """One point's stored probes -> probe -> metric -> (N,) array.
    metrics: exact, p_altered, p_original, margin = log p(altered) - log p(original)."""
    a, b, d, fix = ({k: np.asarray(v, dtype=np.float64) for k, v in probes[kind].items()} for kind in ("A", "B", "D", "Dfix"))
    nan = np.full(len(a["correct"]), np.nan)
    margin_d = log(d["p_answer"]) - log(d["p_foil"])
    margin_fix = log(fix["p_foil"]) - log(fix["p_answer"])
    return {"A": {"exact": a["correct"], "p_altered": a["p_answer"], "p_original": nan, "margin": nan},
            "B": {"exact": b["correct"], "p_altered": b["p_foil"], "p_original": b["p_answer"],
                  "margin": log(b["p_foil"]) - log(b["p_answer"])},
            "C": {"exact": d["correct"] * fix["correct"], "p_altered": d["p_answer"], "p_original": fix["p_answer"],
                  "margin": margin_d - margin_fix},
            "D": {"exact": d["correct"], "p_altered": d["p_answer"], "p_original": d["p_foil"], "margin": margin_d}}


def probe_clusters(corpus):
    """probe -> the quote rank of each probe item (A: each item its own cluster; -1 - index)."""
    probes = corpus.probes()
    ranks = {kind: np.array([p.quote for p in probes if p.kind == kind]) for kind in ("A", "B", "D")}
    ranks["A"] = -1 - np.arange(len(ranks["A"]))
    ranks["C"] = ranks["D"]
    return ranks


@dataclass
class Curves:
    """Per-size values of one variant: values[probe][metric] is a list over sizes of (seeds, items)
    arrays; clusters[probe] the quote of each item; sizes and params in sweep order."""
    sizes: list
    params: list
    seeds: list
    values: dict
    clusters: dict

    def subset(self, keep_quotes):
        """Only the items of the quotes in keep_quotes (A, which has no quotes, keeps every item)."""
        values, clusters = {}, {}
        for probe, ranks in self.clusters.items():
            keep = (ranks < 0) | np.isin(ranks, list(keep_quotes))
            values[probe] = {m: [v[:, keep] for v in per_size] for m, per_size in self.values[probe].items()}
            clusters[probe] = ranks[keep]
        return Curves(self.sizes, self.params, self.seeds, values, clusters)


def curves(results, variant="main", sizes=None, seeds=None):
    """Collect one variant's points from a results dict into Curves."""
    config = results["config"]
    sizes = sizes or [Size(**s) for s in config["sizes"]]
    seeds = seeds if seeds is not None else config["seeds"]
    points = [[results["points"].get(point_key(variant, size, seed)) for seed in seeds] for size in sizes]
    if any(p is None for row in points for p in row):
        raise MinilmError(f"the results hold only part of the '{variant}' sweep: run the sweep again to finish it (it resumes)")
    metrics = [[probe_metrics(p["probes"]) for p in row] for row in points]
    values = {probe: {m: [np.stack([pm[probe][m] for pm in row]) for row in metrics] for m in metrics[0][0][probe]}
              for probe in PROBES}
    corpus = GlibCorpus(variant_config(config, variant))
    return Curves([s.name for s in sizes], [row[0]["params"] for row in points], list(seeds), values, probe_clusters(corpus))


def variant_config(config, variant):
    """The GlibConfig of a variant, from a results file's config."""
    corpus = GlibConfig(**config["corpus"])
    change = dict(config["knobs"]).get(variant, {}) if variant != "main" else {}
    return replace(corpus, **change)


def bootstrap(per_size, clusters, n_boot=2000, seed=0):
    """Resampled means: (n_boot, n_sizes). Seeds are resampled per size (independent runs); prompt
    clusters (quotes) are resampled once per draw and shared by every size: the sizes are compared on
    the same prompts, a paired bootstrap."""
    rng = np.random.default_rng(seed)
    unique, item_cluster = np.unique(clusters, return_inverse=True)
    draws = rng.integers(len(unique), size=(n_boot, len(unique)))
    cluster_counts = np.stack([np.bincount(d, minlength=len(unique)) for d in draws])  # (n_boot, U)
    item_weights = cluster_counts[:, item_cluster]  # (n_boot, N): how often each item was drawn
    out = []
    for values in per_size:  # (S, N)
        S = values.shape[0]
        seed_counts = np.stack([np.bincount(d, minlength=S) for d in rng.integers(S, size=(n_boot, S))])  # (n_boot, S)
        total = np.einsum("bs,sn,bn->b", seed_counts, values, item_weights)
        out.append(total / (S * item_weights.sum(axis=1)))
    return np.stack(out, axis=1)


def interval(samples):
    lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
    return lo, hi


def summarize(c, probe, metric, n_boot=2000):
    """Per size: (mean, low, high) of a metric, 95% bootstrap interval over seeds and prompts."""
    per_size = c.values[probe][metric]
    if np.isnan(per_size[0]).all():
        return None
    means = [float(v.mean()) for v in per_size]
    lo, hi = interval(bootstrap(per_size, c.clusters[probe], n_boot))
    return [(m, float(a), float(b)) for m, a, b in zip(means, lo, hi)]


@dataclass
class UShape:
    found: bool
    line: str
    means: list
    minimum: int  # the index of the smallest middle size
    diffs: dict   # "first"/"last" -> (mean, low, high) of D[minimum] - D[end]


def u_shape(c, n_boot=2000):
    """The rule: the conflict probe's (D) exact match has its minimum at a middle size, and a paired
    bootstrap puts the difference to the smallest and to the largest size below 0 (95% intervals)."""
    per_size = c.values["D"]["exact"]
    means = [float(v.mean()) for v in per_size]
    m = 1 + int(np.argmin(means[1:-1]))
    boot = bootstrap(per_size, c.clusters["D"], n_boot)
    diffs = {}
    for end, j in (("smallest", 0), ("largest", len(means) - 1)):
        lo, hi = interval(boot[:, m] - boot[:, j])
        diffs[end] = (means[m] - means[j], float(lo), float(hi))
    found = all(hi < 0 for _, _, hi in diffs.values())
    curve = ", ".join(f"{n} {v:.2f}" for n, v in zip(c.sizes, means))
    tests = "; ".join(f"min - {end} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for end, (d, lo, hi) in diffs.items())
    n_quotes = len(np.unique(c.clusters["D"]))
    line = (f"U-shape: {'yes' if found else 'no'} (conflict probe D exact match on the {n_quotes} most exposed quotes: "
            f"{curve}; middle minimum at {c.sizes[m]}; {tests}; 95% paired bootstrap over {len(c.seeds)} seeds and {n_quotes} quotes)")
    return UShape(found, line, means, m, diffs)


def curve_shape(values, tol=0.1):
    """A curve over sizes in words: 'U-shaped', 'inverse', 'positive' or 'flat' (point estimates,
    differences smaller than tol count as equal)."""
    first, last, middle = values[0], values[-1], min(values[1:-1]) if len(values) > 2 else min(values)
    if middle < first - tol and middle < last - tol:
        return "U-shaped"
    if last < first - tol:
        return "inverse"
    if last > first + tol:
        return "positive"
    return "flat"


def decompose(c):
    """The lecture's explanation, measured per size: the share of conflict prompts whose quote the model
    knows (B right for that quote and seed), and D's exact match on the prompts it knows and on the rest.
    D = known * D(known) + (1 - known) * D(unknown). Returns a list of (known, D_known, D_unknown)."""
    out = []
    for b, d in zip(c.values["B"]["exact"], c.values["D"]["exact"]):  # (seeds, quotes), (seeds, items)
        quote_of_item = np.searchsorted(c.clusters["B"], c.clusters["D"])  # B has one item per quote
        known = b[:, quote_of_item].astype(bool)  # (seeds, items)
        out.append((float(known.mean()), float(d[known].mean()) if known.any() else float("nan"),
                    float(d[~known].mean()) if (~known).any() else float("nan")))
    return out


# --------------------------------------------------------------------------------------------------
# The report

def lecture_probs(results, variant="main"):
    """Per size: P(glib) and P(gold) after the lecture's prompt, each seed's, as (sizes, seeds) arrays."""
    c = curves(results, variant)
    corpus = GlibCorpus(variant_config(results["config"], variant))
    i = [p.prompt for p in corpus.probes() if p.kind == "D"].index(LECTURE_PROMPT)
    glib = np.array([v[:, i] for v in c.values["D"]["p_altered"]])
    gold = np.array([v[:, i] for v in c.values["D"]["p_original"]])
    return c.sizes, glib, gold


def knob_map(results):
    """Knob-map cell -> (the D exact match of its seeds per knob size, its shape in words)."""
    config = results["config"]
    sizes, seeds = [Size(**s) for s in config["knob_sizes"]], config["knob_seeds"]
    n_top = len(most_exposed_quotes(results))
    cells = {}
    for variant in ["main"] + [name for name, _ in config["knobs"]]:
        top = most_exposed_quotes(results, variant)
        c = curves(results, variant, sizes, seeds).subset(top[:n_top])
        means = [float(v.mean()) for v in c.values["D"]["exact"]]
        cells[variant] = (means, curve_shape(means))
    return [s.name for s in sizes], cells


def most_exposed_quotes(results, variant="main", n=20):
    return GlibCorpus(variant_config(results["config"], variant)).most_exposed(n)


def format_table(c, probe):
    rows = {m: summarize(c, probe, m) for m in ("exact", "p_altered", "p_original", "margin")}
    lines = [f"  {'size':<9}{'params':>9}   " + "".join(f"{h:<22}" for h in ("exact match", "P(altered)", "P(original)", "margin"))]
    for i, (name, params) in enumerate(zip(c.sizes, c.params)):
        cells = ["—" if rows[m] is None else f"{rows[m][i][0]:.2f} [{rows[m][i][1]:.2f}, {rows[m][i][2]:.2f}]" for m in rows]
        lines.append(f"  {name:<9}{params:>9,}   " + "".join(f"{cell:<22}" for cell in cells))
    return "\n".join(lines)


def report(results):
    """The whole text report; its last line is the U-shape verdict."""
    config, main = results["config"], curves(results)
    top = main.subset(most_exposed_quotes(results))
    n_all = len(np.unique(main.clusters["D"]))
    versions = sorted({p["code_version"] for p in results["points"].values()})
    out = [f"glib sweep '{results['preset']}' (code {', '.join(versions)}): {len(main.sizes)} sizes x "
           f"{len(main.seeds)} seeds, {config['steps']} steps x {config['batch_size']} x {BLOCK_SIZE} tokens each; "
           f"training time {results['wall_seconds'] / 60:.1f} min in all",
           "95% intervals: bootstrap over seeds and prompts (quotes). margin = log p(altered) - log p(original)."]
    for title, c in ((f"the {len(np.unique(top.clusters['D']))} most exposed probe quotes", top), (f"all {n_all} probe quotes", main)):
        out.append(f"\n=== {title} ===")
        for probe in PROBES:
            out += [f"{probe}  {PROBE_NAMES[probe]}", format_table(c, probe)]
    sizes, glib, gold = lecture_probs(results)
    out.append(f'\nThe lecture\'s prompt "{LECTURE_PROMPT}" (mean over seeds):')
    out += [f"  {n:<9} P(glib) {g.mean():.2f}   P(gold) {o.mean():.2f}" for n, g, o in zip(sizes, glib, gold)]
    if config["knobs"]:
        knob_sizes, cells = knob_map(results)
        out.append(f"\nKnob map: D exact match on the most exposed quotes at {', '.join(knob_sizes)} (seeds {config['knob_seeds']}; no intervals):")
        out += [f"  {name:<10}" + "  ".join(f"{v:.2f}" for v in means) + f"   {shape}" for name, (means, shape) in cells.items()]
    out.append("")
    out.append(u_shape(top).line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# python -m minilm glib

def add_glib_command(commands):
    from .__main__ import add_device_option

    p = commands.add_parser("glib", help="the glib/gold inverse-scaling sweep and its report",
                            description="Train a family of model sizes on the glib corpus, probe them, and test for a U-shaped "
                                        "scaling curve. Resumable: run it again to finish an interrupted sweep.")
    p.add_argument("--preset", default="full", choices=sorted(PRESETS), help="full (the lesson's results) or ci (small); default %(default)s")
    p.add_argument("--out", default=None, help="results JSON (default lessons/results/glib_PRESET.json)")
    p.add_argument("--report", action="store_true", help="only print the report of the results in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=int, default=1, help="train this many points at once, one process each (up to your CPU cores); default %(default)s")
    add_device_option(p)
    p.set_defaults(run=run_glib)


def run_glib(args):
    path = args.out or results_path(args.preset)
    if args.report:
        results = load_results(path)
    else:
        start = time.time()
        results = run_sweep(args.preset, path, args.device, progress=not args.quiet, jobs=args.jobs)
        print(f"results: {path} (this run: {time.time() - start:.0f} s)")
    print(report(results))


# --------------------------------------------------------------------------------------------------
# Figures (each returns a matplotlib Figure)

def _errorbar(ax, c, probe, metric, label, **style):
    rows = summarize(c, probe, metric)
    mean, lo, hi = (np.array(v) for v in zip(*rows))
    ax.errorbar(c.params, mean, yerr=[mean - lo, hi - mean], capsize=3, marker="o", label=label, **style)


def _against_params(ax, legend_loc="best"):
    """The axes every glib curve shares: parameters on a log x axis, a small legend, a light grid."""
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.legend(loc=legend_loc, fontsize=8)
    ax.grid(alpha=0.3)


def plot_probe_curves(results):
    """Left: the conflict probe D with its 95% intervals (the U, if there is one). Right: the sub-tasks
    A, B, C that explain it. Both on the 20 most exposed quotes, against parameters (log scale)."""
    import matplotlib.pyplot as plt

    c = curves(results).subset(most_exposed_quotes(results))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    per_seed = np.array([v.mean(axis=1) for v in c.values["D"]["exact"]])  # (sizes, seeds)
    left.plot(c.params, per_seed, color="gray", lw=0.8, alpha=0.6)
    left.plot([], [], color="gray", lw=0.8, label="D, one line per seed")
    _errorbar(left, c, "D", "exact", f"D: {PROBE_NAMES['D']} (mean)", color="C3")
    left.set_title(u_shape(c).line.split(" (")[0] + " (by the paired-bootstrap rule)")
    for probe, color in (("A", "C0"), ("B", "C1"), ("C", "C2")):
        _errorbar(right, c, probe, "exact", f"{probe}: {PROBE_NAMES[probe]}", color=color)
    right.set_title("the three sub-tasks")
    for ax in (left, right):
        _against_params(ax, legend_loc="lower left")
        ax.set_ylim(-0.03, 1.03)
    left.set_ylabel("exact match (95% interval)")
    fig.tight_layout()
    return fig


def plot_margins(results):
    """The continuous view of B and D: mean log p(altered) - log p(original), per size."""
    import matplotlib.pyplot as plt

    c = curves(results).subset(most_exposed_quotes(results))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    _errorbar(ax, c, "D", "margin", "D: after 'repeat ...' (asks for the altered word)", color="C3")
    _errorbar(ax, c, "B", "margin", "B: after 'as they say :' (no instruction)", color="C1")
    ax.axhline(0, color="gray", lw=1)
    _against_params(ax)
    ax.set_ylabel("log p(altered) - log p(original)  (nats)")
    fig.tight_layout()
    return fig


def plot_lecture_prompt(results):
    """P(glib) and P(gold) after the lecture's prompt, per size: bars are the mean, dots the seeds."""
    import matplotlib.pyplot as plt

    sizes, glib, gold = lecture_probs(results)
    x = np.arange(len(sizes))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for offset, probs, word, color in ((-0.2, glib, "glib", "C0"), (0.2, gold, "gold", "C1")):
        ax.bar(x + offset, probs.mean(axis=1), width=0.4, color=color, alpha=0.6, label=f"P({word})")
        for i, seeds in enumerate(probs):
            ax.plot(np.full(len(seeds), x[i] + offset), seeds, "k.", ms=4)
    ax.set_xticks(x, sizes)
    ax.set_ylabel("next-word probability")
    ax.set_title("... all that glisters is not ___", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_knob_map(results):
    """One small panel per knob-map cell: the conflict probe D across the knob sizes, and its shape."""
    import matplotlib.pyplot as plt

    sizes, cells = knob_map(results)
    fig, axes = plt.subplots(1, len(cells), figsize=(2.3 * len(cells), 2.6), sharey=True)
    for ax, (name, (means, shape)) in zip(np.atleast_1d(axes), cells.items()):
        ax.plot(range(len(sizes)), means, "o-", color="C3")
        ax.set_xticks(range(len(sizes)), [s.replace(" ", "\n") for s in sizes], fontsize=7)
        ax.set_title(f"{name}\n{shape}", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("D exact match")
    fig.tight_layout()
    return fig


def show_next_words(results, size, prompt):
    """The next-word distribution of one trained size (seed 0) after one of the stored prompts."""
    import matplotlib.pyplot as plt

    config = results["config"]
    point = results["points"][point_key("main", next(Size(**s) for s in config["sizes"] if Size(**s).name == size), 0)]
    words, probs = zip(*point["next_words"][prompt])
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh(range(len(words))[::-1], probs, color=["C3" if w in ("glib", "gold") else "C0" for w in words])
    ax.set_yticks(range(len(words))[::-1], words)
    ax.set_xlim(0, 1)
    ax.set_xlabel("next-word probability")
    ax.set_title(f"{size}: {prompt}", fontsize=8)
    fig.tight_layout()
    return fig
