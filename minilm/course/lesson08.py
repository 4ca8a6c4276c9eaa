"""Lesson 08's figures and readings of the preference study's results (minilm/studies/preference.py). Each figure
function returns a matplotlib Figure (a notebook shows it inline)."""
import matplotlib.pyplot as plt
import numpy as np

from ..studies import preference

ARMS = {"base": "base", "sft": "sft (imitation)", "best-of-8": "best-of-8", "dpo": "DPO",
        "pg": "policy gradient\n(KL 0.05)", "pg_no_kl": "policy gradient\n(no KL)"}


def seeds(results):
    return sorted(results["points"].values(), key=lambda r: r["seed"])


def quality(results, arm, metric="right"):
    """An arm's per-seed mean of a per-prompt metric: (seeds,). best-of-n arms are "best-of-N"."""
    if arm.startswith("best-of-"):
        return np.array([np.mean(r["best_of"][arm.split("-")[-1]]) for r in seeds(results)])
    return np.array([np.mean(r[arm][metric]) for r in seeds(results)])


def verdict(results):
    """The true quality of every arm on the held-out prompts (bars: seed means; dots: seeds), against q."""
    q = results["config"]["q"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    curves, steps = pg_curves(results)
    for i, arm in enumerate(ARMS):
        values = quality(results, arm)
        ax.bar(i, values.mean(), 0.6, color="#bbbbbb" if arm in ("base", "sft") else "#3b6fb6")
        ax.plot(np.full(len(values), i), values, "k.", ms=5)
        if arm.startswith("pg"):  # the policy's best logged quality on the way (means of seeds)
            peak = int(np.argmax(curves[arm, "right"]))
            ax.plot(i, curves[arm, "right"][peak], "D", mfc="none", mec="#3b6fb6", ms=7,
                    label="policy gradient's peak on the way" if arm == "pg" else None)
            ax.annotate(f"step {steps[peak]}", (i, curves[arm, "right"][peak]), textcoords="offset points",
                        xytext=(8, -3), fontsize=7, color="#3b6fb6")
    ax.axhline(q, color="#c0392b", ls="--", lw=1)
    ax.text(-0.45, q + 0.01, f"the demonstrations: right {q:.0%} of the time", ha="left", va="bottom",
            color="#c0392b", fontsize=8)
    ax.set_xticks(range(len(ARMS)), list(ARMS.values()), fontsize=8)
    ax.set_ylabel("true quality: P(a right answer)\non held-out prompts (the rule)")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("each objective's true quality (bars: means of seeds; dots: seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def narrowing(results):
    """Where base and sft put their mass: on the demonstrated word, on the other right words, on wrong answers."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for i, arm in enumerate(("base", "sft")):
        demo, other = quality(results, arm, "demonstrated").mean(), quality(results, arm, "other_right").mean()
        ax.barh(i, demo, color="#3b6fb6", label="the demonstrated word" if i == 0 else None)
        ax.barh(i, other, left=demo, color="#8fb3e0", label="the other right words" if i == 0 else None)
        ax.barh(i, 1 - demo - other, left=demo + other, color="#dddddd", label="wrong answers" if i == 0 else None)
    ax.set_yticks([0, 1], ["base (pre-trained)", "sft (maximum likelihood)"])
    ax.set_xlabel("the answer's probability (means over held-out prompts and seeds)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def best_of_curve(results):
    """best-of-n's true quality against n (log scale), each seed and the mean, beside sft's and q."""
    ns = results["config"]["best_of"]
    per_seed = np.stack([quality(results, f"best-of-{n}") for n in ns], axis=1)  # (seeds, n)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(ns, per_seed.T, color="#8fb3e0", lw=1)
    ax.plot(ns, per_seed.mean(axis=0), "o-", color="#3b6fb6", label="best-of-n (mean of seeds)")
    ax.axhline(quality(results, "sft").mean(), color="#777777", lw=1, label="sft")
    ax.axhline(results["config"]["q"], color="#c0392b", ls="--", lw=1, label="the demonstrations")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("n: samples of sft, the reward model picks one")
    ax.set_ylabel("true quality (the rule)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pg_curves(results):
    """(arm, what) -> the seed-mean curve of the policy-gradient logs, and the logged steps."""
    runs = seeds(results)
    curves = {(arm, k): np.mean([r[f"{arm}_log"][k] for r in runs], axis=0)
              for arm in ("pg", "pg_no_kl") for k in ("reward", "right", "kl")}
    return curves, runs[0]["pg_log"]["step"]


def over_optimisation(results):
    """Gao et al.'s axes: the learned reward and the true quality against KL(policy || sft), both pg runs."""
    curves, _ = pg_curves(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for arm, style, color in (("pg_no_kl", "o-", "#3b6fb6"), ("pg", "s--", "#e67e22")):
        label = "no KL penalty" if arm == "pg_no_kl" else "KL penalty 0.05"
        for ax, what in zip(axes, ("reward", "right")):
            for r in seeds(results):  # each seed, thin
                ax.plot(r[f"{arm}_log"]["kl"], r[f"{arm}_log"][what], "-", color=color, lw=0.7, alpha=0.35)
            ax.plot(curves[arm, "kl"], curves[arm, what], style, color=color, ms=3, label=f"{label} (mean)")
    axes[0].set_ylabel("the learned reward\n(reward model's mean score)")
    axes[1].set_ylabel("the true quality (the rule)")
    for ax in axes:
        ax.set_xlabel("KL(policy || sft) of the answer, nats")
        ax.legend(fontsize=8)
    fig.suptitle("policy gradient against the reward model, logged every "
                 f"{results['config']['log_every']} steps (thin: each seed)", fontsize=10)
    fig.tight_layout()
    return fig


def live_sft(base, seed=0):
    """The sft arm of the lesson08 preset on a given base model: (sft's per-prompt metrics, the kept step)."""
    config = preference.preset("lesson08")
    world = preference.World(config)
    sft, kept = preference.supervised(config, world, base, seed)
    return preference.answer_metrics(sft, world.eval_prompts, world.tokenizer), kept
