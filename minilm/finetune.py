"""Fine-tuning a trained model on prompt/response pairs: the loss counts the response tokens only, and either
every weight trains (full fine-tuning) or the base stays frozen and low-rank adapters train (LoRA).

    model, tokenizer, result = finetune(Base(pretrained="smollm2"), "pairs.jsonl", "run.npz",   # minilm.base
                                        FinetuneSettings(lora_rank=8))
    result["before"], result["after"]   # the held-out responses' loss and exact match, before and after

With objective="dpo" the data are preference pairs (minilm/data/preferences.py: prompt, chosen, rejected) and
the loss is DPO's (minilm/objectives.py) against a frozen copy of the starting model, the reference; the
held-out pairs are scored by that loss and by the share whose chosen response the model finds the likelier.
With objective="reward" the same pairs train a reward model (minilm/reward.py: the model read by a reward head)
by Bradley-Terry, and the held-out pairs are scored by that loss and the share it ranks right (`reward`).
With objective="pg" the data are prompts: each step samples group_size answers to each of its prompts from the
policy as it is (minilm/rollouts.py), the reward model at settings.reward_model scores them, and the step is the
policy gradient with each group's mean reward as its baseline and a KL penalty to the frozen starting model
(minilm.objectives.PolicyGradient); nothing is held out, and each step's mean reward and KL are recorded.

This is what `python -m minilm finetune` runs. The last tenth of a file of examples or pairs is held out: scored
before the first step, as it trains, and after the last. The checkpoint holds the tokenizer, so `sample` and
`chat` read it alone (a LoRA checkpoint also names its base, whose weights it does not copy). The command keeps
the step of the lowest held-out loss (FinetuneSettings(keep_best=True)) and makes a few passes over the data
(steps=None).
"""
import json
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from .backend import device_name
from .checkpoint import load_base, load_model
from .data.instructions import encode, encode_prompts, read_jsonl, read_prompts, response_batches
from .data.preferences import PairRows, encode_pairs, preference_batches, read_pairs
from .errors import MinilmError
from .evaluate import preference_loss, response_loss, reward_accuracy
from .lora import ADAPTED, LoRA
from .objectives import DPO, PolicyGradient
from .reward import RewardModel
from .rollouts import Rollouts
from .train import TrainConfig, Trainer

# The length that follows the data: a few passes over the training examples. Measured in issue 40: on 27 pairs,
# 60 LoRA steps of 8 drove the training loss to 0.002 while the held-out loss stopped at 0.72; 15 gave 0.48.
EPOCHS, MIN_STEPS = 3, 10
# The peak learning rate unless one is given: a trained model needs smaller steps than one from scratch, and
# adapters, which start at zero, larger ones than every weight.
LR = {"lora": 1e-3, "full": 3e-4}


@dataclass
class FinetuneSettings:
    lora_rank: int | None = None   # None: full fine-tuning
    lora_alpha: float | None = None  # adapter scale alpha / rank; None: minilm.lora.default_alpha
    lora_targets: tuple = ADAPTED
    steps: int | None = 200        # None: EPOCHS passes over the training examples (at least MIN_STEPS)
    batch_size: int = 8
    lr: float | None = None        # None: LR[lora or full]
    warmup_steps: int = 10
    evals: int = 10                # held-out evaluations as it trains (and one before the first step)
    context: int | None = None     # a pretrained Llama's longest row, if not its file's context length
    seed: int = 0                  # the batches' order and the adapters' start
    keep_best: bool = False        # write the state of the lowest held-out loss, not the last (TrainConfig.keep_best)
    objective: str = "mle"         # "mle": maximum likelihood on prompt/response examples; "dpo": DPO on pairs;
                                   # "reward": a reward model (the decoder and a reward head) by Bradley-Terry;
                                   # "pg": policy gradient on sampled answers, scored by reward_model
    beta: float = 0.1              # DPO's beta: how far from the reference the implicit reward lets the policy go
    reward_model: str | None = None  # "pg": the reward model's checkpoint (from `reward`) that scores the answers
    group_size: int = 4            # "pg": answers sampled per prompt; their mean reward is each one's baseline
    kl_coef: float = 0.05          # "pg": the weight of the KL penalty to the starting model
    max_new_tokens: int = 16       # "pg": the longest answer sampled, in tokens

    def train_config(self):
        return TrainConfig(steps=self.steps, batch_size=self.batch_size,
                           warmup_steps=min(self.warmup_steps, self.steps),
                           lr=self.lr or LR["lora" if self.lora_rank else "full"], weight_decay=0.0,
                           eval_every=max(1, self.steps // self.evals), checkpoint_every=0, seed=self.seed,
                           keep_best=self.keep_best)


def steps_for(n_examples, batch_size):
    """EPOCHS passes over n_examples in batches of batch_size, and never fewer than MIN_STEPS steps."""
    return max(MIN_STEPS, math.ceil(EPOCHS * n_examples / batch_size))


def overfitting(history):
    """One line when the held-out loss rose from its best while the training loss went on falling (the model
    learns its training examples by heart), naming the step that generalized best; else None."""
    if len(history.val_losses) < 3:
        return None
    best = int(np.argmin(history.val_losses))
    best_step, best_loss, last_loss = history.val_steps[best], history.val_losses[best], history.val_losses[-1]
    train_then = np.mean(history.losses[max(0, best_step - 10):best_step] or history.losses[:1])
    if last_loss <= 1.05 * best_loss or np.mean(history.losses[-10:]) >= train_then:
        return None
    return (f"warning: the held-out loss rose from {best_loss:.3f} (step {best_step}) to {last_loss:.3f} while the "
            f"training loss fell: the model is learning its training examples by heart; --steps {best_step} "
            "would generalize better")


def warn_unknown_words(tokenizer, texts, where, say=print):
    """A word-level model reads a word outside its vocabulary as <unk>: say so once, with the count."""
    unknown = getattr(tokenizer, "unknown_words", lambda text: [])
    words = [w for text in texts for w in unknown(text)]
    if words:
        say(f"warning: {len(words)} words in {where} are not in the model's vocabulary ({len(set(words))} distinct, "
            f"e.g. {words[0]!r}) and read as <unk>")


def split_rows(examples, tokenizer, block_size, encoder=encode):
    """(training rows, held-out rows or None): the last tenth of the examples is held out."""
    held = max(1, len(examples) // 10) if len(examples) > 1 else 0
    train = encoder(examples[:len(examples) - held], tokenizer, block_size)
    return train, encoder(examples[len(examples) - held:], tokenizer, block_size) if held else None


def read_data(data, objective, tokenizer, block_size, say=print):
    """The objective's examples in the file data, the last tenth held out -> (training rows, held-out rows or
    None, the Trainer's batch function, its evaluate function or None). "mle": prompt/response examples, scored
    by their responses' loss; "dpo" and "reward": prompt/chosen/rejected pairs, scored by the DPO loss or the
    reward model's Bradley-Terry loss (minilm.evaluate); "pg": prompts, all trained on, and no batch function
    (its batches are sampled from the policy: pg_batches)."""
    if objective == "pg":
        prompts = read_prompts(data)
        warn_unknown_words(tokenizer, prompts, data, say)
        return encode_prompts(prompts, tokenizer, block_size), None, None, None
    pairs = objective != "mle"
    examples = read_pairs(data) if pairs else read_jsonl(data)
    sides = ("prompt", "chosen", "rejected") if pairs else ("prompt", "response")
    warn_unknown_words(tokenizer, [getattr(e, side) for e in examples for side in sides], data, say)
    train, held = split_rows(examples, tokenizer, block_size, encode_pairs if pairs else encode)
    pad = getattr(tokenizer, "pad_id", 0)
    batches = preference_batches if pairs else response_batches
    scores = {"mle": response_loss, "dpo": preference_loss, "reward": reward_accuracy}[objective]
    return train, held, batches(train, pad), scores(held, pad_id=pad) if held else None


def count(rows):
    """How many examples (Rows) or pairs (PairRows) were encoded; 0 for None."""
    return 0 if rows is None else len(rows) if isinstance(rows, PairRows) else len(rows.ids)


def reference_of(policy, base, device=None, context=None):
    """DPO's reference, the starting model, frozen: a LoRA's base weights as a model of their own (a LoRA never
    writes them), or the base loaded again (full fine-tuning writes into the policy's weights)."""
    if isinstance(policy, LoRA):
        return type(policy.base)(policy.config, device=device_name(policy.xp), params=dict(policy.frozen))
    return load_base(base, device, context)[0]


def load_reward_model(path, device=None):
    """The reward model that scores policy gradient's answers, a checkpoint of `reward` -> (the RewardModel, the
    tokenizer it was trained with, as its checkpoint stores it)."""
    if path is None:
        raise MinilmError("policy gradient scores its answers with a reward model: give --reward RM_CKPT, a "
                          "checkpoint of `reward`")
    if not os.path.isfile(path):
        raise MinilmError(f"--reward {path}: no such checkpoint; train a reward model with `reward` first")
    model, _, meta = load_model(path, device=device)
    if not isinstance(model, RewardModel):
        raise MinilmError(f"--reward {path} holds a {meta.get('model', 'GPT')}, not a reward model: train one with "
                          "`reward` on preference pairs")
    return model, meta.get("tokenizer")


def pg_batches(settings, reward, prompts, tokenizer, block_size):
    """Policy gradient's batch function: rollouts scored by the reward model (reward: load_reward_model's), which
    must read the policy's tokens (the same tokenizer) at the policy's lengths."""
    reward_model, its_tokenizer = reward
    if its_tokenizer != json.loads(json.dumps(tokenizer.to_json())):  # as a checkpoint stores it
        raise MinilmError(f"--reward {settings.reward_model} reads another tokenizer than the model it is to score: "
                          "train it from the same model")
    if reward_model.config.block_size < block_size:
        raise MinilmError(f"--reward {settings.reward_model} reads {reward_model.config.block_size} tokens, fewer "
                          f"than the model's {block_size}: train it from the same model")
    return Rollouts(reward_model, prompts, settings.group_size, settings.max_new_tokens,
                    getattr(tokenizer, "eos_id", None), getattr(tokenizer, "pad_id", 0))


def finetune(base, data, out, settings=None, resume=False, device=None, progress=True, say=print):
    """Fine-tune the model base (a minilm.base.Base) on the JSONL file data; write the checkpoint out.
    -> (the tuned model, its tokenizer, a dict of what happened: examples, parameters, steps, tokens read,
    seconds, the held-out scores before and after)"""
    settings = settings or FinetuneSettings()
    dpo, pg = settings.objective == "dpo", settings.objective == "pg"
    if settings.objective == "reward" and settings.lora_rank is not None:
        raise MinilmError("a reward model trains its whole decoder and its head: LoRA is not offered for it")
    reward = load_reward_model(settings.reward_model, device) if pg else None  # refused before the base loads
    model, tokenizer = load_base(base, device, settings.context)
    if tokenizer is None:
        raise MinilmError(f"{base} holds no tokenizer, so the data cannot be encoded for it")
    train_rows, val_rows, batches, validate = read_data(data, settings.objective, tokenizer, model.config.block_size,
                                                        say)
    if pg:
        batches = pg_batches(settings, reward, train_rows, tokenizer, model.config.block_size)
    skipped = train_rows.skipped + (val_rows.skipped if val_rows else 0)
    if settings.steps is None:  # the length follows the data
        settings = replace(settings, steps=steps_for(count(train_rows), settings.batch_size))
    what = {"mle": "examples", "pg": "prompts"}.get(settings.objective, "pairs")
    say(f"{data}: {count(train_rows)} training and {count(val_rows)} held-out {what}"
        + (f"; {skipped} skipped, longer than the context ({model.config.block_size + 1} tokens)" if skipped else ""))
    if resume:
        trainer = Trainer.resume(out, batches, validate, device=device)
        trainer.config.steps = max(trainer.config.steps, settings.steps)  # extended: the cosine ends at the new last
    else:
        if settings.lora_rank is not None:
            model = LoRA(model, settings.lora_rank, settings.lora_alpha, settings.lora_targets, settings.seed,
                         source=base, tokenizer=tokenizer)
        if settings.objective == "reward":
            model = RewardModel(model)
        trainer = Trainer(model, batches, validate, settings.train_config(), out, tokenizer)
        trainer.kind = "reward" if settings.objective == "reward" else "finetune"
    tuned = trainer.model  # the model that trains: a plain one, or a LoRA around one
    if dpo:  # the Trainer steps the policy's own params (the optimizer's, the checkpoint's), by DPO's loss
        trainer.model = DPO(tuned, reference_of(tuned, base, device, settings.context), settings.beta)
    if pg:  # ... or by policy gradient on answers the policy samples
        trainer.model = PolicyGradient(tuned, reference_of(tuned, base, device, settings.context), batches,
                                       settings.kl_coef)
    frozen = tuned.base.num_params() if isinstance(tuned, LoRA) else 0
    say(f"training {tuned.num_params():,} parameters" + (
        f" (LoRA rank {tuned.rank} on {len(tuned.adapted)} weights; the base's {frozen:,} frozen)" if frozen else "")
        + (f", by DPO (beta {settings.beta:g}) against a frozen copy of {base}" if dpo else "")
        + (f", by policy gradient on {settings.group_size} sampled answers per prompt scored by "
           f"{settings.reward_model} (KL penalty {settings.kl_coef:g} to a frozen copy of {base})" if pg else "")
        + (", the model and a reward head, by Bradley-Terry on the pairs" if settings.objective == "reward" else ""))
    before = validate(trainer.model) if validate else None
    start, first_step = time.perf_counter(), trainer.step
    history = trainer.run(progress=progress)
    note = overfitting(history)
    if note:
        say(note)
    # this run's steps, token positions and seconds (a resumed run counts from where it resumed)
    return tuned, tokenizer, {"train_examples": count(train_rows), "held_out": count(val_rows),
            "skipped": skipped, "trainable": tuned.num_params(), "frozen": frozen, "steps": trainer.step,
            "steps_run": trainer.step - first_step, "tokens": trainer.tokens_read,
            "seconds": time.perf_counter() - start, "first_loss": history.losses[0],
            "last_loss": float(np.mean(history.losses[-10:])), "stopped": history.stopped,
            "kept": trainer.saved_step if trainer.saved_step != trainer.step else None,
            "before": before, "after": validate(trainer.model) if validate else None,
            "measured": first_and_last(history.step_metrics)}


def first_and_last(step_metrics, steps=10):
    """What a run measured at each step besides its loss (policy gradient's reward and KL), as {name: (the mean of
    the first `steps` steps, the mean of the last `steps`)}; {} when nothing was."""
    if not step_metrics:
        return {}
    return {name: (float(np.mean([m[name] for m in step_metrics[:steps]])),
                   float(np.mean([m[name] for m in step_metrics[-steps:]]))) for name in step_metrics[0]}
