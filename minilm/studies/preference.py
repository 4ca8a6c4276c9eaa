"""The objective is the bottleneck (lesson 08's toy, docs/lab/lesson08_design.md): many right answers, imperfect
demonstrations, preferences a rule labels, and every objective of minilm.objectives on one task.

    name another fruit : papaya , mango , kiwi ->  banana        (right: any fruit the list has not named)

A point is one seed, and trains every arm in turn, each from the one before:
    base       lesson 03's family pre-trained on toyworld with this prompt form added (a right answer drawn
               uniformly, so the base has seen the form and spreads its mass over the category)
    sft        the base tuned through LoRA on one demonstration per prompt (the first right word of the
               category, wrong with probability 1 - q), the state of its lowest held-out loss
    rm         a reward model (the base's decoder and a reward head) trained by Bradley-Terry on pairs of sft's
               samples that the rule labels
    best-of-n  no training: n samples of sft, the one the reward model scores highest
    dpo        sft tuned on the same pairs by DPO, sft the frozen reference
    pg         sft tuned by policy gradient against the reward model (group-mean baseline), with and without
               the KL penalty, measured on the way
True quality is scored by the rule (is_right), never by a model. Every answer is one word (one token), so a
model's answer distribution is one softmax: its mass on the right set is exact, not sampled.

    python -m minilm preference --jobs 1     (lessons/results/preference_lesson08.json; resumable by seed)
"""
import functools
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import runner
from .runner import train_sweep_point
from .stats import paired_bootstrap, percentile_interval
from .. import objectives
from ..data import toyworld
from ..data.instructions import Example, batch_of, encode, response_batches
from ..data.preferences import Pair, encode_pairs, preference_batches
from ..layers import softmax
from ..lora import ADAPTED, LoRA
from ..model import GPT, GPTConfig
from ..reward import RewardModel
from ..tokenizer import WordTokenizer
from ..train import TrainConfig, Trainer

# --------------------------------------------------------------------------------------------------
# The task and its rule

CATEGORIES = {c: tuple(w for w in words if " " not in w) for c, words in toyworld.LIST_CATEGORIES.items()}
FORM_WORDS = ("name", "another", ":", "->")
HELD_OUT_SHARE = 5  # 1 (category, list) combination in 5 is held out of every training set


@dataclass(frozen=True)
class Prompt:
    category: str
    listed: tuple

    @property
    def text(self):
        return f"name another {self.category} : {' , '.join(self.listed)} ->"

    @property
    def right(self):
        """The right answers, in the category's fixed order: every member the list has not named."""
        return tuple(w for w in CATEGORIES[self.category] if w not in self.listed)

    @property
    def demonstrated(self):
        """The one target maximum likelihood is shown where the demonstration is right."""
        return self.right[0]


def is_right(prompt, word):
    """The rule that scores true quality: a member of the category that the list has not named."""
    return word in CATEGORIES[prompt.category] and word not in prompt.listed


def held_out(prompt):
    """Whether the (category, list) combination is held out: a fixed hash of the category and the listed set."""
    key = prompt.category + ":" + ",".join(sorted(prompt.listed))
    return zlib.crc32(key.encode()) % HELD_OUT_SHARE == 0


def draw_prompts(rng, n, split="train"):
    """n prompts of 2-4 listed words each, all of the split ("train" or "eval": the held-out combinations)."""
    prompts = []
    while len(prompts) < n:
        category = list(CATEGORIES)[rng.integers(len(CATEGORIES))]
        members = CATEGORIES[category]
        listed = tuple(members[i] for i in rng.choice(len(members), size=rng.integers(2, 5), replace=False))
        prompt = Prompt(category, listed)
        if held_out(prompt) == (split == "eval"):
            prompts.append(prompt)
    return prompts


def demonstration(prompt, rng, q):
    """The demonstrated answer: the first right word with probability q, else a wrong one (half the time a word
    of another category, half the time one already listed)."""
    if rng.random() < q:
        return prompt.demonstrated
    if rng.random() < 0.5:
        return prompt.listed[rng.integers(len(prompt.listed))]
    others = [w for c, words in CATEGORIES.items() if c != prompt.category for w in words]
    return others[rng.integers(len(others))]


def form_example(prompt, rng):
    """The form as pre-training shows it: a right answer drawn uniformly (no preference among them)."""
    answer = prompt.right[rng.integers(len(prompt.right))]
    words = tuple(prompt.text.split()) + (answer,)
    return toyworld.Example(words, "lists", (len(words) - 1,))


# --------------------------------------------------------------------------------------------------
# What a point trains

@dataclass
class PreferenceConfig:
    seeds: list
    size: list = field(default_factory=lambda: [3, 64, 4])  # n_layer, d_model, n_head (lesson 03's family)
    block_size: int = 32
    pretrain_steps: int = 3000
    pretrain_lr: float = 3e-3
    form_share: float = 0.25     # the share of pre-training examples in the new form
    batch_size: int = 16
    q: float = 0.6               # how often a demonstration is right
    demonstrations: int = 2000
    sft_steps: int = 600
    sft_lr: float = 1e-2
    eval_every: int = 50         # sft keeps the state of its lowest held-out loss, checked this often
    lora_rank: int = 8
    lora_alpha: float = 16.0
    pairs: int = 2000
    rm_steps: int = 600
    rm_lr: float = 1e-3
    best_of: list = field(default_factory=lambda: [1, 2, 4, 8, 16])
    dpo_steps: int = 300
    dpo_lr: float = 1e-2
    beta: float = 0.1
    pg_steps: int = 400
    pg_lr: float = 1e-2
    group: int = 8
    kl_coef: float = 0.05
    log_every: int = 25
    n_eval: int = 200            # held-out prompts every model is measured on
    n_eval_pairs: int = 400      # held-out pairs the reward model ranks
    corpus_seed: int = 0


PRESETS = {
    "lesson08": PreferenceConfig(seeds=[0, 1, 2]),
    "ci": PreferenceConfig(seeds=[0], size=[1, 16, 1], pretrain_steps=60, demonstrations=100, sft_steps=20,
                           eval_every=10, pairs=60, rm_steps=20, dpo_steps=10, pg_steps=10, log_every=5, n_eval=30,
                           n_eval_pairs=30),
}


def preset(name):
    return runner.choose_preset(PRESETS, name, "preference")


class World:
    """The tokenizer, the held-out prompts and (made when first read) the pre-training stream of a configuration."""

    def __init__(self, config):
        self.config, self.toyworld = config, toyworld.ToyworldConfig()
        self.tokenizer = WordTokenizer(sorted(set(toyworld.vocabulary(self.toyworld)) | set(FORM_WORDS)))
        self.eval_prompts = draw_prompts(np.random.default_rng([config.corpus_seed, 9]), config.n_eval, "eval")

    @functools.cached_property
    def stream(self):
        """toyworld's examples with form_share of them in the new form, shuffled, as one token stream."""
        config = self.config
        tokens = config.pretrain_steps * config.batch_size * config.block_size + 1
        n = tokens // 8 + 1  # the shortest example has 8 tokens
        rng = np.random.default_rng([config.corpus_seed, 8])
        examples = toyworld.generate(self.toyworld, n, seed=config.corpus_seed)
        forms = [form_example(p, rng) for p in draw_prompts(rng, round(n * config.form_share))]
        pool = examples + forms
        mixed = [pool[i] for i in rng.permutation(len(pool))]
        return toyworld.to_stream(mixed, self.tokenizer)[0][:tokens]


def pretrain(config, world, seed):
    """The base: a GPT of the config's size trained on the stream as lesson 03's sweep trains."""
    n_layer, d_model, n_head = config.size
    model = GPT(GPTConfig(vocab_size=world.tokenizer.vocab_size, block_size=config.block_size, n_layer=n_layer,
                          n_head=n_head, d_model=d_model), seed=seed)
    train_sweep_point(model, world.stream, config.pretrain_steps, config.batch_size, config.pretrain_lr, seed)
    return model


def tuning(config, steps, lr, seed, eval_every=0):
    return TrainConfig(steps=steps, batch_size=config.batch_size, lr=lr, warmup_steps=min(10, steps),
                       weight_decay=0.0, eval_every=eval_every, checkpoint_every=0, seed=seed, shards=1,
                       keep_best=bool(eval_every))


def copy_of(model):
    """A model of the same class with copies of the weights."""
    return type(model)(model.config, params={name: w.copy() for name, w in model.params.items()})


def adapters(config, model, seed):
    """LoRA on a copy of the model: a LoRA points its base at the merged weights, and the model it starts from
    must stay as it is (measured as the base, read as the frozen reference). It is trained in memory (no
    checkpoint), so it names no base (LoRA's source)."""
    return LoRA(copy_of(model), config.lora_rank, config.lora_alpha, ADAPTED, seed)


def rows_of(prompts, answers, tokenizer, block_size):
    """Each prompt with its answer word, as instruction rows (the loss mask on the answer and its <eos>)."""
    return encode([Example(p.text, a) for p, a in zip(prompts, answers)], tokenizer, block_size)


def masked_loss(model, rows, pad_id):
    """The mean negative log-likelihood of the rows' answers under the model (no gradient)."""
    idx, targets, mask = batch_of(rows, range(len(rows.ids)), pad_id)
    logp = objectives.token_logprob_forward(model.forward(idx), targets)[0]  # (B, T)
    return float(-(logp * mask).sum() / mask.sum())


def supervised(config, world, base, seed):
    """sft: LoRA on demonstrations by maximum likelihood, returned to its lowest held-out loss; merged."""
    tok, rng = world.tokenizer, np.random.default_rng([seed, 1])
    prompts = draw_prompts(rng, config.demonstrations)
    rows = rows_of(prompts, [demonstration(p, rng, config.q) for p in prompts], tok, config.block_size)
    held = world.eval_prompts
    held_rows = rows_of(held, [demonstration(p, rng, config.q) for p in held], tok, config.block_size)
    lora = adapters(config, base, seed)

    def held_loss(model):
        return {"loss": masked_loss(model, held_rows, tok.pad_id)}

    trainer = Trainer(lora, response_batches(rows, tok.pad_id), held_loss,
                      tuning(config, config.sft_steps, config.sft_lr, seed, config.eval_every))
    trainer.run(progress=False)
    kept = trainer.history.val_steps[int(np.argmin(trainer.history.val_losses))]
    return lora.merged(), kept


# ---- answers: one softmax per prompt

def answer_probs(model, prompts, tokenizer):
    """The model's distribution over its next token after each prompt (the answer word): (N, V), float64."""
    ids = [[tokenizer.eos_id] + tokenizer.encode(p.text) for p in prompts]
    T = max(map(len, ids))
    idx = np.full((len(ids), T), tokenizer.pad_id, dtype=np.int64)
    for i, row in enumerate(ids):
        idx[i, :len(row)] = row  # padded at the end: causal attention never reads it
    logits = np.asarray(model.forward(idx), dtype=np.float64)  # (N, T, V)
    return softmax(logits[np.arange(len(ids)), [len(r) - 1 for r in ids]])  # (N, V)


def sample(probs, rng, n):
    """n draws from each row of probs: (N, V) -> (N, n) token ids."""
    u = rng.random((probs.shape[0], n, 1))
    return (probs.cumsum(axis=1)[:, None, :] < u).sum(axis=2).clip(max=probs.shape[1] - 1)


def right_mask(prompts, tokenizer):
    """(N, V) bool: which tokens the rule counts as right for each prompt."""
    mask = np.zeros((len(prompts), tokenizer.vocab_size), dtype=bool)
    for i, p in enumerate(prompts):
        mask[i, tokenizer.encode(" ".join(p.right))] = True
    return mask


def answer_metrics(model, prompts, tokenizer):
    """Per held-out prompt: the mass on the right set (the true quality: the expected share of right samples), on
    the demonstrated word, and on the other right words."""
    probs = answer_probs(model, prompts, tokenizer)
    right = (probs * right_mask(prompts, tokenizer)).sum(axis=1)
    demo = probs[np.arange(len(prompts)), [tokenizer.encode(p.demonstrated)[0] for p in prompts]]
    return {"right": right.tolist(), "demonstrated": demo.tolist(), "other_right": (right - demo).tolist()}


def kl(probs, reference):
    """KL(probs || reference) per row, over the vocabulary: (N,)."""
    return (probs * (np.log(probs + 1e-30) - np.log(reference + 1e-30))).sum(axis=1)


# ---- preference pairs and the reward model

def sampled_pairs(model, prompts, tokenizer, rng, n_pairs):
    """Two samples of the model per prompt, labelled by the rule; pairs of two right or two wrong are dropped.
    Prompts are cycled until n_pairs are kept."""
    pairs = []
    while len(pairs) < n_pairs:
        drawn = sample(answer_probs(model, prompts, tokenizer), rng, 2)  # (N, 2)
        for p, (a, b) in zip(prompts, drawn):
            words = tokenizer.words[a], tokenizer.words[b]
            right = is_right(p, words[0]), is_right(p, words[1])
            if right[0] != right[1]:
                pairs.append(Pair(p.text, *(words if right[0] else words[::-1])))
    return pairs[:n_pairs]


def train_reward_model(config, world, base, pairs, seed):
    """rm: a copy of the base's decoder with a reward head, trained by Bradley-Terry on the pairs."""
    rm = RewardModel(copy_of(base))
    rows = encode_pairs(pairs, world.tokenizer, config.block_size)
    Trainer(rm, preference_batches(rows, world.tokenizer.pad_id),
            config=tuning(config, config.rm_steps, config.rm_lr, seed)).run(progress=False)
    return rm


def rewards_of(rm, prompts, answers, tokenizer, block_size):
    """The reward model's score of each (prompt, answer token id): (N,)."""
    rows = rows_of(prompts, [tokenizer.words[a] for a in answers], tokenizer, block_size)
    idx, _, mask = batch_of(rows, range(len(rows.ids)), tokenizer.pad_id)
    return np.asarray(rm.rewards(idx, mask), dtype=np.float64)


def pair_accuracy(rm, pairs, tokenizer, block_size):
    """The share of pairs whose chosen answer the reward model scores higher."""
    rows = encode_pairs(pairs, tokenizer, block_size)
    scores = [rm.rewards(*batch_of(side, range(len(side.ids)), tokenizer.pad_id)[::2])
              for side in (rows.chosen, rows.rejected)]
    return float(np.mean(np.asarray(scores[0]) > np.asarray(scores[1])))


def best_of_n(config, sft, rm, prompts, tokenizer, rng):
    """n -> per prompt, whether the highest-scored of sft's first n samples is right (the rule's score)."""
    n_max = max(config.best_of)
    drawn = sample(answer_probs(sft, prompts, tokenizer), rng, n_max)  # (N, n_max)
    flat = [p for p in prompts for _ in range(n_max)]
    scores = rewards_of(rm, flat, drawn.reshape(-1), tokenizer, config.block_size).reshape(drawn.shape)
    right = np.array([[is_right(p, tokenizer.words[a]) for a in row] for p, row in zip(prompts, drawn)])
    return {str(n): right[np.arange(len(prompts)), scores[:, :n].argmax(axis=1)].astype(float).tolist()
            for n in config.best_of}


# ---- DPO and policy gradient, each through the Trainer

def direct_preference(config, world, sft, pairs, seed):
    """dpo: LoRA on sft, tuned on the pairs by DPO against sft (the frozen reference)."""
    policy = adapters(config, sft, seed)
    rows = encode_pairs(pairs, world.tokenizer, config.block_size)
    Trainer(objectives.DPO(policy, sft, config.beta), preference_batches(rows, world.tokenizer.pad_id),
            config=tuning(config, config.dpo_steps, config.dpo_lr, seed)).run(progress=False)
    return policy


class PolicyGradient:
    """The policy as the Trainer sees it when it is tuned by policy gradient: the policy's parameters, and
    loss_and_grads on a batch of sampled responses and their advantages (minilm.objectives)."""
    reads_token_stream = False

    def __init__(self, policy, reference, kl_coef):
        self.policy, self.reference, self.kl_coef = policy, reference, kl_coef
        self.params, self.config, self.xp = policy.params, policy.config, policy.xp

    def loss_and_grads(self, idx, targets, loss_mask, advantages):
        return objectives.policy_gradient_loss_and_grads(self.policy, idx, targets, loss_mask, advantages,
                                                         self.reference, self.kl_coef)


def rollouts(config, policy, rm, prompts, tokenizer):
    """The Trainer's batch function for policy gradient: batch_size training prompts, `group` samples of the
    policy for each, scored by the reward model; advantage = reward - the group's mean reward."""
    def batches(rng, batch_size):
        chosen = [prompts[i] for i in rng.integers(len(prompts), size=batch_size)]
        drawn = sample(answer_probs(policy, chosen, tokenizer), rng, config.group).reshape(-1)  # (B * G,)
        flat = [p for p in chosen for _ in range(config.group)]
        rows = rows_of(flat, [tokenizer.words[a] for a in drawn], tokenizer, config.block_size)
        idx, targets, mask = batch_of(rows, range(len(rows.ids)), tokenizer.pad_id)
        advantages = objectives.group_advantages(rewards_of(rm, flat, drawn, tokenizer, config.block_size),
                                                 config.group)
        return idx, targets, mask, advantages.astype(np.float32)
    return batches


def policy_gradient(config, world, sft, rm, seed, kl_coef):
    """pg: LoRA on sft tuned against the reward model; every log_every steps, on the held-out prompts: the reward
    model's mean score of the policy's samples, the true quality (mass on the right set) and KL(policy || sft)."""
    tok, held = world.tokenizer, world.eval_prompts
    policy = adapters(config, sft, seed)
    prompts = draw_prompts(np.random.default_rng([seed, 3]), 2000)
    trainer = Trainer(PolicyGradient(policy, sft, kl_coef), rollouts(config, policy, rm, prompts, tok),
                      config=tuning(config, config.pg_steps, config.pg_lr, seed))
    rng, reference = np.random.default_rng([seed, 4]), answer_probs(sft, held, tok)
    log = {"step": [], "reward": [], "right": [], "kl": []}
    for until in range(0, config.pg_steps + 1, config.log_every):
        trainer.run(until=until, progress=False)
        probs = answer_probs(policy, held, tok)
        drawn = sample(probs, rng, 4)  # (N, 4)
        scores = rewards_of(rm, [p for p in held for _ in range(4)], drawn.reshape(-1), tok, config.block_size)
        log["step"].append(until)
        log["reward"].append(float(scores.mean()))
        log["right"].append(float((probs * right_mask(held, tok)).sum(axis=1).mean()))
        log["kl"].append(float(kl(probs, reference).mean()))
    return policy, log


def measure(point):
    """One seed: every arm in turn, each measured on the held-out prompts."""
    config, seed = point
    world = runner.once_per_process(World, config)
    tok, held, rng = world.tokenizer, world.eval_prompts, np.random.default_rng([seed, 2])
    base = pretrain(config, world, seed)
    sft, kept = supervised(config, world, base, seed)
    pairs = sampled_pairs(sft, draw_prompts(rng, 500), tok, rng, config.pairs)
    held_pairs = sampled_pairs(sft, held, tok, rng, config.n_eval_pairs)
    rm = train_reward_model(config, world, base, pairs, seed)
    dpo = direct_preference(config, world, sft, pairs, seed)
    record = {"seed": seed, "sft_kept_step": kept, "base": answer_metrics(base, held, tok),
              "sft": answer_metrics(sft, held, tok), "rm_accuracy": pair_accuracy(rm, held_pairs, tok,
                                                                                  config.block_size),
              "best_of": best_of_n(config, sft, rm, held, tok, rng), "dpo": answer_metrics(dpo, held, tok)}
    for arm, kl_coef in (("pg", config.kl_coef), ("pg_no_kl", 0.0)):
        policy, record[f"{arm}_log"] = policy_gradient(config, world, sft, rm, seed, kl_coef)
        record[arm] = answer_metrics(policy, held, tok)
    return record


def sweep_points(config, device=None):
    """One point a seed (every arm of it); the study runs on the CPU, whatever device is asked for."""
    return [(f"seed{seed}", (config, seed)) for seed in config.seeds]


# --------------------------------------------------------------------------------------------------
# The report: each prediction of the design note, measured

def per_prompt(results, arm, metric="right"):
    """(seeds, prompts) of one arm's per-prompt metric, seeds in order."""
    runs = sorted(results["points"].values(), key=lambda r: r["seed"])
    return np.array([r[arm][metric] if arm != "best_of" else r["best_of"][metric] for r in runs])


def mean_interval(values, n_boot=2000):
    """(seeds, prompts) -> the mean and its 95% interval, resampling seeds and prompts."""
    lo, hi = percentile_interval(paired_bootstrap([values], np.arange(values.shape[1]), n_boot))
    return float(values.mean()), float(lo[0]), float(hi[0])


def ratio_interval(top, bottom, n_boot=2000):
    """mean(top) / mean(bottom), both (seeds, prompts) on the same prompts, and its 95% paired interval."""
    draws = paired_bootstrap([top, bottom], np.arange(top.shape[1]), n_boot)  # (n_boot, 2)
    lo, hi = percentile_interval(draws[:, 0] / draws[:, 1])
    return float(top.mean() / bottom.mean()), float(lo), float(hi)


def verdict(held):
    return "held" if held else "FAILED"


def fall_from_peak(curve):
    """How far a curve ends below its highest point, and whether that point is before the end."""
    curve = np.asarray(curve)
    return float(curve.max() - curve[-1]), int(curve.argmax()) < len(curve) - 1


def predictions(results):
    """Each prediction -> (held: bool, the measurements that decide it: lines of text)."""
    config, runs = results["config"], sorted(results["points"].values(), key=lambda r: r["seed"])
    q, out = config["q"], {}
    sft, base = per_prompt(results, "sft"), per_prompt(results, "base")
    demo = mean_interval(per_prompt(results, "sft", "demonstrated"))
    ratio = ratio_interval(per_prompt(results, "base", "other_right"), per_prompt(results, "sft", "other_right"))
    out["1 maximum likelihood narrows"] = (demo[0] > 0.5 and ratio[0] >= 2 and ratio[1] > 1, [
        f"sft's mass on the demonstrated word {demo[0]:.2f} [{demo[1]:.2f}, {demo[2]:.2f}] (predicted > 0.5)",
        f"mass on the other right words: base {per_prompt(results, 'base', 'other_right').mean():.2f}, sft "
        f"{per_prompt(results, 'sft', 'other_right').mean():.2f}: base / sft = {ratio[0]:.1f} [{ratio[1]:.1f}, "
        f"{ratio[2]:.1f}] (predicted >= 2, interval above 1)"])
    seeds = sft.mean(axis=1)
    out["2 imitation is capped"] = (abs(sft.mean() - q) <= 0.10 and (seeds < 0.75).all(), [
        f"true quality: base {base.mean():.2f}, sft {sft.mean():.2f} (seeds {_listed(seeds)}; predicted within 0.10 "
        f"of q = {q} and below 0.75 in every seed)"])
    accuracy = np.array([r["rm_accuracy"] for r in runs])
    out["3 a learned reward generalises"] = ((accuracy >= 0.85).all(), [
        f"reward model's held-out pair accuracy: seeds {_listed(accuracy)} (predicted >= 0.85 in every seed)"])
    lines, held = [], True
    for arm, values in (("best-of-8", per_prompt(results, "best_of", "8")), ("dpo", per_prompt(results, "dpo")),
                        ("pg", per_prompt(results, "pg"))):
        lift = mean_interval(values - sft)
        held &= lift[0] >= 0.15 and lift[1] > 0 and (arm == "best-of-8" or values.mean() > q)
        lines.append(f"{arm}: true quality {values.mean():.2f}, above sft by {lift[0]:+.2f} [{lift[1]:+.2f}, "
                     f"{lift[2]:+.2f}] (predicted >= +0.15, interval above 0"
                     + ("" if arm == "best-of-8" else f", and above q = {q}") + ")")
    curve = "  ".join(f"{n}: {per_prompt(results, 'best_of', str(n)).mean():.2f}" for n in config["best_of"])
    out["4 optimising it lifts quality past the demonstrations"] = (held, lines + [f"best-of-n by n: {curve}"])
    out["5 too hard, and it turns"] = over_optimisation(runs)
    return out


def over_optimisation(runs):
    """Prediction 5 on the seed-mean curves of the two policy-gradient runs."""
    curves = {arm: {k: np.mean([r[f"{arm}_log"][k] for r in runs], axis=0) for k in ("reward", "right", "kl")}
              for arm in ("pg_no_kl", "pg")}
    free, kept = curves["pg_no_kl"], curves["pg"]
    rises = bool((np.diff(free["reward"]) > 0).all())
    fall, peaked = fall_from_peak(free["right"])
    kept_fall, _ = fall_from_peak(kept["right"])
    held = rises and peaked and fall >= 0.05 and kept_fall < fall
    steps = runs[0]["pg_log"]["step"]
    lines = [f"without KL: reward-model score rises at every logged step: {rises} "
             f"({free['reward'][0]:.2f} -> {free['reward'][-1]:.2f}); true quality peaks at "
             f"{free['right'].max():.2f} (step {steps[int(free['right'].argmax())]}) and ends {fall:.2f} below it "
             f"(predicted >= 0.05), KL from sft {free['kl'][-1]:.2f} at the end",
             f"with the KL penalty: true quality ends {kept_fall:.2f} below its peak, KL "
             f"{kept['kl'][-1]:.2f} (predicted: a smaller fall)"]
    return held, lines


def _listed(values):
    return ", ".join(f"{v:.2f}" for v in values)


def report(results):
    config = results["config"]
    lines = [f"preference '{results['preset']}': {len(results['points'])} seeds; the true quality is the mass on "
             f"the right set (rule-scored) on {config['n_eval']} held-out prompts; [95% interval over seeds and "
             f"prompts]"]
    for name, (held, measured) in predictions(results).items():
        lines.append(f"prediction {name}: {verdict(held)}")
        lines += [f"  {line}" for line in measured]
    return "\n".join(lines)


STUDY = runner.Study(
    name="preference", help="many right answers: maximum likelihood, a learned reward, DPO and policy gradient "
                            "(lesson 08)",
    description="Pre-train a toy on toyworld with the 'name another' form, tune it on imperfect demonstrations by "
                "maximum likelihood, learn a reward model from rule-labelled pairs, and optimise it (best-of-n, DPO, "
                "policy gradient with and without KL); the true quality scored by the rule. Resumable by seed.",
    presets=PRESETS, default="lesson08", preset=preset, sweep=sweep_points,
    measure=measure, report=report, committed=("lesson08",))
