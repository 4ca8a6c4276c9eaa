"""Every figure minilm draws. Each function returns a matplotlib Figure (a notebook shows it inline;
the CLI saves it as a PNG)."""
import matplotlib.pyplot as plt
import numpy as np

from . import masks
from .backend import to_numpy
from .errors import MinilmError


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
        raise MinilmError(f"mask of shape {mask.shape} does not fit {len(q_tokens)} query and {len(k_tokens)} key tokens")
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


def show_mask(kind="prefix-LM", text="that is good = das ist gut"):
    """One architecture's mask for a sentence, drawn (for the lesson's widget)."""
    return attention_mask(**mask_panel(kind, text))


def chat_cost(cached, reencoded):
    """The chat measurement (minilm.chat.chat): tokens the model ran on, and wall time, summed over the turns
    so far, for one KV cache kept through the conversation vs the whole history re-encoded every turn."""
    fig, (ax_tokens, ax_time) = plt.subplots(1, 2, figsize=(9, 3.5))
    for turns, label, style in ((reencoded, "re-encode the history every turn (bidirectional input)", "o-"),
                                (cached, "keep the KV cache (causal attention)", "s-")):
        n = [t["turn"] + 1 for t in turns]
        ax_tokens.plot(n, np.cumsum([t["tokens_processed"] for t in turns]), style, ms=4, label=label)
        ax_time.plot(n, 1e3 * np.cumsum([t["seconds"] for t in turns]), style, ms=4, label=label)
    ax_tokens.set_ylabel("tokens processed, all turns so far")
    ax_time.set_ylabel("wall time, all turns so far (ms)")
    for ax in (ax_tokens, ax_time):
        ax.set_xlabel("turns of conversation")
        ax.set_ylim(bottom=0)
    ax_tokens.legend(fontsize=8)
    fig.tight_layout()
    return fig


def seq2seq_curves(results):
    """The same-budget comparison (minilm.seq2seq.compare): held-out loss against training steps, one line per
    architecture (the mean over seeds; each seed faint), one panel per shape of data."""
    runs = results["runs"]
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
        s = results["shapes"][shape]
        ax.set_title(f"{shape}: {s['n_input']} input words -> {s['n_target']} target words", fontsize=10)
        ax.set_xlabel("optimizer steps (batches of the same examples for every model)")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("held-out loss (nats per target token)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig
