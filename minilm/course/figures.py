"""Every figure minilm draws. Each function returns a matplotlib Figure (a notebook shows it inline;
the CLI saves it as a PNG)."""
import functools
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np

from .. import masks
from ..studies import glib_report, stats, structure, structure_report
from ..studies import glib as glib_sweep
from ..backend import to_numpy
from ..data.glib import GlibCorpus
from ..errors import MinilmError


def loss_curve(history, title="training"):
    """Training loss per step and validation loss at each evaluation, on a log-scaled loss axis."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history.steps, history.losses, lw=1, alpha=0.7, label="train (one batch)")
    if history.val_losses:
        ax.plot(history.val_steps, history.val_losses, "o-", ms=4, label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def save(fig, path):
    """Write a figure to path and free it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# Attention masks and architectures (lesson 02)

def attention_mask(mask, q_tokens, k_tokens=None, title="", ax=None):
    """Draw a boolean (T_q, T_k) mask as a grid: row i is a query (the position that attends), column j a
    key; a dark cell means query i may attend to key j. Rows and columns are labelled with the tokens."""
    mask = to_numpy(mask)
    k_tokens = q_tokens if k_tokens is None else k_tokens
    if mask.ndim != 2 or mask.shape != (len(q_tokens), len(k_tokens)):
        raise MinilmError(f"mask of shape {mask.shape} does not fit {len(q_tokens)} query and {len(k_tokens)} "
                          f"key tokens")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.35 * len(k_tokens) + 1.6, 0.35 * len(q_tokens) + 1.4))
    ax.imshow(mask, cmap="Blues", vmin=-0.25, vmax=1.0, aspect="equal")
    ax.set_xticks(range(len(k_tokens)), k_tokens, rotation=90)
    ax.set_yticks(range(len(q_tokens)), q_tokens)
    ax.set_xticks(np.arange(len(k_tokens) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(q_tokens) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("key: attended to")
    ax.set_ylabel("query: attending")
    ax.set_title(title)
    return ax.figure


def attention_masks(panels, title=None):
    """Several masks side by side. panels: list of dicts with the arguments of attention_mask
    (mask, q_tokens, k_tokens, title)."""
    widths = [len(p.get("k_tokens") or p["q_tokens"]) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.3 * sum(widths) + 2.2 * len(panels), 0.3 * max(widths) + 2.2),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for panel, ax in zip(panels, axes[0]):
        attention_mask(ax=ax, **panel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


MASK_KINDS = ("encoder (bidirectional)", "decoder-only (causal)", "prefix-LM", "encoder-decoder cross")


def mask_panel(kind, text="that is good = das ist gut"):
    """The mask of one architecture for a sentence "input = target": the arguments of attention_mask.

    The encoder's mask covers the input; causal and prefix-LM cover [input ; "=" target]; the cross mask
    has the decoder's positions ("=" target) as queries and the input as keys. Words "<pad>" are padding:
    the padding mask removes them as keys, composed with whichever mask is drawn.
    """
    words = text.split()
    if "=" not in words or words.index("=") == 0:
        raise MinilmError(f'write the sentence as "input = target", e.g. "that is good = das ist gut"; got {text!r}')
    S, T = words.index("="), len(words)
    source, decoder = words[:S], words[S:]
    if kind == MASK_KINDS[0]:
        q_tokens, k_tokens, mask = source, source, masks.bidirectional_mask(S)
    elif kind == MASK_KINDS[1]:
        q_tokens, k_tokens, mask = words, words, masks.causal_mask(T)
    elif kind == MASK_KINDS[2]:
        q_tokens, k_tokens, mask = words, words, masks.prefix_lm_mask(T, S)
    elif kind == MASK_KINDS[3]:
        q_tokens, k_tokens, mask = decoder, source, masks.cross_mask(T - S, S)
    else:
        raise MinilmError(f"unknown mask kind {kind!r}: choose from {', '.join(MASK_KINDS)}")
    real = np.array([[w != "<pad>" for w in k_tokens]])  # (1, T_k)
    mask = (mask & masks.padding_mask(real))[0, 0]  # (T_q, T_k)
    return {"mask": mask, "q_tokens": q_tokens, "k_tokens": k_tokens, "title": kind}


def one_line_errors(view):
    """For a widget's view: a MinilmError (bad input typed into the widget) prints its one line inside the
    widget and the view returns None, instead of a traceback filling the widget."""
    @functools.wraps(view)
    def view_or_message(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except MinilmError as error:
            print(error)
            return None
    return view_or_message


@one_line_errors
def show_mask(kind="prefix-LM", text="that is good = das ist gut"):
    """One architecture's mask for a sentence, for the lesson's widget. The figure is returned closed: the
    widget displays what its view returns, so it shows once."""
    fig = attention_mask(**mask_panel(kind, text))
    plt.close(fig)
    return fig


def chat_cost(cached, reencoded):
    """The chat measurement (minilm.chat.chat): the tokens the model ran on, summed over the turns so far and in
    each turn, for one KV cache kept through the conversation vs the whole history re-encoded every turn. Token
    counts, not wall time: they are the same on every machine and every run, and at lesson 02's size a turn's
    time is mostly the fixed cost of its model calls."""
    fig, (ax_total, ax_turn) = plt.subplots(1, 2, figsize=(9, 3.5))
    for turns, label, style in ((reencoded, "re-encode the history every turn (bidirectional input)", "o-"),
                                (cached, "keep the KV cache (causal attention)", "s-")):
        n = [t["turn"] + 1 for t in turns]
        processed = [t["tokens_processed"] for t in turns]
        ax_total.plot(n, np.cumsum(processed), style, ms=4, label=label)
        ax_turn.plot(n, processed, style, ms=4, label=label)
    ax_total.set_ylabel("tokens processed, all turns so far")
    ax_turn.set_ylabel("tokens processed in the turn")
    for ax in (ax_total, ax_turn):
        ax.set_xlabel("turns of conversation")
        ax.set_ylim(bottom=0)
    ax_total.legend(fontsize=8)
    fig.tight_layout()
    return fig


def archs_curves(results):
    """The same-budget comparison (python -m minilm archs, minilm.archs): held-out loss against training steps,
    one line per architecture (the mean over seeds; each seed faint), one panel per shape of data."""
    runs = list(results["points"].values())
    shapes = list(dict.fromkeys(r["shape"] for r in runs))
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 3.8), sharey=True, squeeze=False)
    for shape, ax in zip(shapes, axes[0]):
        for n, variant in enumerate(variants):
            histories = [r["history"] for r in runs if r["shape"] == shape and r["variant"] == variant]
            steps = [h["step"] for h in histories[0]]
            losses = np.array([[h["loss"] for h in history] for history in histories])  # (seeds, evals)
            ax.plot(steps, losses.T, color=f"C{n}", lw=0.6, alpha=0.35)
            ax.plot(steps, losses.mean(axis=0), "o-", color=f"C{n}", ms=3, label=variant)
        s = results["config"]["shapes"][shape]
        ax.set_title(f"{shape}: {s['n_input']} input words -> {s['n_target']} target words", fontsize=10)
        ax.set_xlabel("optimizer steps (batches of the same examples for every model)")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("held-out loss (nats per target token)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The glib sweep (lesson 04): the conflict probe and its sub-tasks against model size

def _errorbar(ax, c, probe, metric, label, **style):
    rows = glib_report.summarize(c, probe, metric)
    mean, lo, hi = (np.array(v) for v in zip(*rows))
    ax.errorbar(c.params, mean, yerr=[mean - lo, hi - mean], capsize=3, marker="o", label=label, **style)


def _ring_longer(ax, c, probe):
    """Ring the sizes trained longer than the preset's steps (their names say how long): at the same
    parameter count a ringed point and a plain one are one size trained for two lengths."""
    longer = [i for i, s in enumerate(c.specs) if s.steps]
    if longer:
        steps = "/".join(sorted({f"{c.specs[i].steps:,}" for i in longer}))
        ax.plot([c.params[i] for i in longer], [c.values[probe]["exact"][i].mean() for i in longer], "o", ms=13,
                mfc="none", color="k", lw=1, label=f"ringed: trained {steps} steps")


def _against_params(ax, legend_loc="best"):
    """The axes every glib curve shares: parameters on a log x axis, a small legend, a light grid."""
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.legend(loc=legend_loc, fontsize=8)
    ax.grid(alpha=0.3)


def plot_probe_curves(results, baseline=None, x="params"):
    """Left: the conflict probe D with its 95% intervals (the U, if there is one). Right: the sub-tasks
    A, B, C that explain it. Both on the 20 most exposed quotes, against parameters or, x="compute", against
    training compute 6 N D (sizes trained for different numbers of steps on one axis, as Wei et al. plot it);
    log scale. baseline: a committed sweep to draw beside it (its D, dashed)."""
    c = glib_report.top_curves(results)
    if x == "compute":
        c = replace(c, params=c.flops)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    if baseline is not None:
        _errorbar(left, glib_report.top_curves(baseline), "D", "exact", f"D in the sweep '{baseline['preset']}'",
                  color="gray", ls="--", alpha=0.8)
    left.plot(c.params, glib_report.shared_seed_curves(c), color="gray", lw=0.8, alpha=0.6)
    left.plot([], [], color="gray", lw=0.8, label="D, one line per seed")
    for n, (own, d) in enumerate(zip(c.size_seeds, c.values["D"]["exact"])):  # seeds only some sizes trained
        left.plot([c.params[n]] * (len(own) - len(c.seeds)), d[len(c.seeds):].mean(axis=1), ".", color="gray")
    _errorbar(left, c, "D", "exact", f"D: {glib_report.PROBE_NAMES['D']} (mean)", color="C3")
    _ring_longer(left, c, "D")
    left.set_title(glib_report.u_shape(c).line.split(" (")[0] + " (by the paired-bootstrap rule)")
    for probe, color in (("A", "C0"), ("B", "C1"), ("C", "C2")):
        _errorbar(right, c, probe, "exact", f"{probe}: {glib_report.PROBE_NAMES[probe]}", color=color)
    _ring_longer(right, c, "C")
    right.set_title("the three sub-tasks")
    for ax in (left, right):
        _against_params(ax, legend_loc="lower left")
        ax.set_ylim(-0.03, 1.03)
        if x == "compute":
            ax.set_xlabel("training compute, 6 N D (FLOPs)")
    left.set_ylabel("exact match (95% interval)")
    fig.tight_layout()
    return fig


def plot_on_the_way(results):
    """The points probed during training (a pilot's): C (follow the instruction) and D (the conflict) on the
    most exposed quotes against the step, one colour per seed, the step where C passes 0.5 marked."""
    readings = glib_report.on_the_way(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True, sharey=True)
    for i, (key, rows) in enumerate(readings.items()):
        steps = [step for step, *_ in rows]
        seed = key.rsplit("/", 1)[-1]
        left.plot(steps, [c for _, _, c, _ in rows], "o-", color=f"C{i}", label=seed)
        right.plot(steps, [d for *_, d in rows], "o-", color=f"C{i}", label=seed)
        arrived = glib_report.arrival(rows)
        if arrived:
            left.axvline(arrived, color=f"C{i}", ls=":", lw=1)
    for ax, probe in ((left, "C"), (right, "D")):
        ax.axhline(0.5, color="gray", lw=0.8, ls="--")
        ax.set_title(f"{probe}: {glib_report.PROBE_NAMES[probe]}")
        ax.set_xlabel("training step")
        ax.set_ylim(-0.03, 1.03)
        ax.legend(loc="lower right")
    left.set_ylabel("exact match, 20 most exposed quotes")
    fig.tight_layout()
    return fig


def plot_retrained(results, size_index, readings):
    """A point trained again (glib_report.retrain's readings): copying (A) and the conflict (D) against the step,
    and at the last step the committed seeds of its size (dots) and their band (a bar)."""
    size, seeds, values = glib_report.seed_values(results, size_index)
    steps = [step for step, *_ in readings]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for n, (probe, color) in enumerate((("A", "C0"), ("D", "C3"))):
        ax.plot(steps, [e[probe] for *_, e in readings], "o-", color=color,
                label=f"{probe}: {glib_report.PROBE_NAMES[probe]}, your run")
        center, half = stats.seed_band(values[probe], glib_report.BAND_FLOORS["exact"])
        low, high = center - half, center + half
        x = steps[-1] * (1.03 + 0.03 * n)
        ax.plot([x] * len(seeds), values[probe], ".", color=color, alpha=0.6)
        ax.vlines(x, max(low, 0), min(high, 1), color=color, lw=4, alpha=0.3)
    ax.plot([], [], ".", color="gray", label=f"the record's {len(seeds)} seeds, and their band")
    ax.set(xlabel="training step", ylabel="exact match", ylim=(-0.03, 1.03), title=f"{size.name}, trained now")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_margins(results):
    """The continuous view of B and D: mean log p(altered) - log p(original), per size."""
    c = glib_report.top_curves(results)
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
    sizes, glib, gold = glib_report.lecture_probs(results)
    x = np.arange(len(sizes))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for offset, probs, word, color in ((-0.2, glib, "glib", "C0"), (0.2, gold, "gold", "C1")):
        ax.bar(x + offset, [p.mean() for p in probs], width=0.4, color=color, alpha=0.6, label=f"P({word})")
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
    sizes, cells = glib_report.knob_map(results)
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


@one_line_errors
def show_altered_quote(results, quote, word, size, seed):
    """Lesson 04's widget: the next-word distribution after 'repeat after me , <quote with its last word
    replaced by word> . <quote without its last word>', for one trained size and seed, read from the
    table each point stored (glib.altered_quotes). quote: the quote's words without the last."""
    corpus = GlibCorpus(glib_report.variant_config(results["config"], "main"))
    prompts = glib_sweep.altered_quotes(corpus)
    rank = next((r for r, _, _ in prompts if " ".join(corpus.quotes[r][:-1]) == quote), None)
    word = word.strip()
    if rank is None:
        raise MinilmError(f"pick one of the {len(corpus.most_exposed(10))} quotes offered")
    original = corpus.quotes[rank][-1]
    index = next((i for i, (r, w, _) in enumerate(prompts) if r == rank and w == word), None)
    if index is None:
        raise MinilmError(f"'{word}' is not a word the models can read in its place: type a content word other than "
                          f"'{original}' (e.g. {', '.join(corpus.held_out[rank])})")
    spec = next(s for s in (glib_sweep.Size(**d) for d in results["config"]["sizes"]) if s.name == size)
    # (prompts, k) ids and probs
    table = results["points"][glib_sweep.point_key("main", spec, seed)].get("altered_quotes")
    if table is None:
        raise MinilmError(f"{size} seed {seed} was trained by code that kept no table for this view: pick one of "
                          f"{', '.join(sizes_with_tables(results))}")
    words = [corpus.tokenizer.words[i] for i in table["ids"][index]]
    probs = table["probs"][index]
    held = "held out: this altered quote is in no training example" if word in corpus.held_out[rank] else \
        "this altered quote is in some 'repeat with me' / 'say with me' training examples"
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    colors = ["C0" if w == word else "C1" if w == original else "C7" for w in words]
    ax.barh(range(len(words))[::-1], probs, color=colors)
    ax.set_yticks(range(len(words))[::-1], words)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"next-word probability (blue: '{word}', as asked; orange: '{original}', the quote)")
    ax.set_title(f"{size}, seed {seed}: ... {quote} ___\n({held})", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # returned closed: the widget displays what its view returns, so it shows once
    return fig


def sizes_with_tables(results):
    """The sizes whose every seed stored the next words after the altered quotes (show_altered_quote)."""
    sizes = [glib_sweep.Size(**d) for d in results["config"]["sizes"]]
    return [s.name for s in sizes if all("altered_quotes" in results["points"][glib_sweep.point_key("main", s, seed)]
                                         for seed in results["config"]["seeds"])]


# --------------------------------------------------------------------------------------------------
# Structure vs scale (lesson 05): the ladder of methods on one compute axis

def rung_colour(rung, results):
    """One colour per rung in every figure: the ladder's four rungs C0-C3, then the BPE rungs (the larger
    vocabulary first)."""
    if rung in structure.RUNGS:
        return f"C{structure.RUNGS.index(rung)}"
    return f"C{3 + structure.tokenizer_rungs(results['config']).index(rung)}"  # after the word rung: C4, C5, ...


def _ladder_axes(ax, results, metric, ylabel, higher_is_better=False, margin=0.0, rungs=structure.RUNGS):
    """Each rung's mean over seeds against training FLOPs (each seed a faint dot), the count model's best
    value held to the right (dotted: more counting stopped helping), and where each rung overtakes the one
    above it by more than margin (a vertical line in the overtaking rung's colour, its 95% interval over
    seeds shaded)."""
    curves = structure_report.ladder(results, metric, rungs)
    right = max(c.max() for c, _ in curves.values()) * 1.5
    for rung, (compute, values) in curves.items():
        colour = rung_colour(rung, results)
        ax.plot(compute, values.mean(axis=1), "o-", color=colour, ms=4, label=structure.rung_name(rung))
        ax.plot(np.repeat(compute, values.shape[1]), values.ravel(), ".", color=colour, alpha=0.35, ms=4)
        if rung == "ngram":  # the best the count models reached, held: more counting stopped helping
            best = values.max() if higher_is_better else values.min()
            ax.plot([compute[np.argmax(values == best)], right], [best] * 2, ":", color=colour)
    crossings = structure_report.ladder_crossings(results, metric, higher_is_better, margin, rungs)
    for (a, b), (at, _, low, high, _) in crossings.items():
        color = rung_colour(b, results)  # the colour of the rung that overtakes
        if at:
            ax.axvline(at, color=color, lw=0.8, ls="--")
            if low:
                ax.axvspan(low, high, color=color, alpha=0.08)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _log_bits(ax):
    """A log-scaled bits-per-character axis, its ticks written as plain numbers."""
    ax.set_yscale("log")
    for set_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        set_formatter(plt.FormatStrFormatter("%.2g"))


def structure_ladder(results, live=None):
    """Held-out bits per character against training compute, one curve per rung of the ladder; `live`, a point
    the learner trained (a record of structure.measure_alone), drawn on it as a star in its rung's colour."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    _ladder_axes(ax, results, structure_report.BITS, "held-out bits per character")
    if live:
        ax.plot(live["flops"], live["bits_per_char"], "*", ms=16, mec="black",
                color=rung_colour(live["rung"], results), label=f"your run: {live['rung']}, seed {live['seed']}")
    _log_bits(ax)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tokenizer_ladder(results):
    """The tokenizer as structure: held-out bits per character against training compute for the GPT on words
    (cut by hand), on each BPE (cut as learned from counts) and on bytes (not cut), in the ladder's colours."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    _ladder_axes(ax, results, structure_report.BITS, "held-out bits per character",
                 rungs=structure.tokenizer_rungs(results["config"]))
    _log_bits(ax)
    ax.set_title("the tokenizer as structure: words, learned BPE pieces, bytes", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def talk_sketch(ax):
    """The talk's drawing (not data): performance against compute for more, less and even less structure."""
    compute = np.linspace(0, 10, 200)
    for n, (start, rise, top) in enumerate(((0.0, 1.0, 0.45), (2.5, 0.8, 0.8), (5.0, 0.9, 1.0))):
        ax.plot(compute, top / (1 + np.exp(-rise * (compute - start - 1.5))), color=f"C{n}",
                label=("more structure", "less structure", "even less structure")[n])
    ax.axvline(5.2, color="gray", ls=":", label="the dotted line: compute we have")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("compute")
    ax.set_ylabel("performance")
    ax.set_title("the talk's sketch (drawn)", fontsize=10)
    ax.legend(fontsize=7)


def sketch_and_measured(results):
    """The talk's sketch beside the measured ladder (performance up: bits per character falling)."""
    fig, (sketch, measured) = plt.subplots(1, 2, figsize=(11, 4))
    talk_sketch(sketch)
    _ladder_axes(measured, results, structure_report.BITS, "held-out bits per character (lower is better)")
    _log_bits(measured)
    measured.invert_yaxis()  # up is better, as in the sketch
    measured.set_title("measured on toyworld (python -m minilm structure)", fontsize=10)
    measured.legend(fontsize=7)
    fig.tight_layout()
    return fig


def task_ladders(results, tasks):
    """One panel per task: exact match against training compute, one curve per rung."""
    fig, axes = plt.subplots(2, (len(tasks) + 1) // 2, figsize=(3.2 * ((len(tasks) + 1) // 2), 6.2),
                             sharey=True)
    for ax, task in zip(axes.ravel(), tasks):
        _ladder_axes(ax, results, structure_report.exact_match(task), "exact match", True,
                     structure_report.EXACT_MATCH_MARGIN)
        reach = "local" if task in structure.LOCAL_TASKS else "long-range"
        ax.set_title(f"{task} ({reach})", fontsize=9)
        ax.set_xlabel("FLOPs", fontsize=8)
    axes.ravel()[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def show_task_ladder(results, task):
    """The widget's view: one task's exact match against compute for every rung, with the crossovers. The
    figure is returned closed: the widget displays what its view returns, so it shows once."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    _ladder_axes(ax, results, structure_report.exact_match(task), "exact match", True,
                 structure_report.EXACT_MATCH_MARGIN)
    ax.set_title(f"{task}: {'local' if task in structure.LOCAL_TASKS else 'long-range'} task", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def ngram_orders(results):
    """The count models alone: bits per character against the tokens counted, one line per order n."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for order in results["config"]["ngram_orders"]:
        _, values = structure_report.rung_curve(results, "ngram", order=order)
        _, tokens = structure_report.rung_curve(results, "ngram", metric=lambda r: r["tokens"], order=order)
        ax.plot(tokens[:, 0], values[:, 0], "o-", ms=4, label=f"n = {order}")
    ax.set_xscale("log")
    return _labelled(fig, ax, "training tokens counted", "held-out bits per character")


def _labelled(fig, ax, xlabel, ylabel):
    """Axis labels, a legend and a grid: a one-panel figure, finished."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compute_trend(years, fits):
    """FLOP/s per dollar at launch (log scale) against the year, for each precision: fits maps a label to
    (per_dollar (n,), years per 10x); each with its fitted trend, and the talk's 10x in 5 years from the first's
    start."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    span = np.array([years.min(), years.max()])
    starts = []
    for (label, (per_dollar, tenfold)), marker in zip(fits.items(), "os^"):
        fit = np.polyfit(years, np.log10(per_dollar), 1)
        starts.append(np.polyval(fit, span[0]))
        points, = ax.plot(years, per_dollar, marker, label=f"GPU launches: {label} FLOP/s per launch dollar")
        ax.plot(span, 10 ** np.polyval(fit, span), "-", color=points.get_color(),
                label=f"fit: 10x every {tenfold:.1f} years")
    ax.plot(span, 10 ** (starts[0] + (span - span[0]) / structure_report.TALK_YEARS_PER_10X), "--",
            color="gray", label="the talk: 10x every 5 years")
    ax.set_yscale("log")
    return _labelled(fig, ax, "launch year", "FLOP/s per dollar")
