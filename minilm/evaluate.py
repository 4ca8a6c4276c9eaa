"""Per-task evaluation: the overall loss, split into the tasks that next-word prediction hides.

Every target token of a toyworld example belongs to one *bucket*: the answer tokens of its task
("arithmetic", "facts_tail", ...) or "context" (every token that is not an answer: prompts, full stops,
<eos>). The buckets partition the tokens, so the overall loss (the mean -log p over all tokens) is

    overall loss = sum over buckets of  share(bucket) * loss(bucket)

where share is the bucket's fraction of the tokens and loss is the mean -log p over the bucket's tokens.
That is the lecture's "loss = a bit of grammar + a bit of sentiment + ... + a bit of math", exactly.

For each task we also measure
    exact match     did greedy decoding produce the whole answer?
    answer log-prob log p(answer | prompt), summed over the answer's tokens: a continuous score.

Two probes of why size helps (the lecture's two answers):
    fact_recall           which facts the model knows: the greedy answer to "the capital of X is" for every
                          fact of the world, however rarely it was seen in training (tail knowledge);
    kl_to_statistics      how far the model's next-word distribution is from the corpus's unigram and bigram
                          statistics (ngram_statistics), per bucket: a model that has learned only first-order
                          heuristics predicts close to them.

Exact match needs no generation loop: greedy decoding reproduces the answer exactly when, at every
answer position, the most likely next token (given the true tokens before it) is the true one. If all
those argmaxes are right, greedy decoding walks the true answer; if one is wrong, greedy decoding
leaves the answer there. So one teacher-forced forward pass gives the same verdict as decoding.
"""
from dataclasses import dataclass

import numpy as np

from . import layers, objectives
from .backend import to_numpy
from .data import toyworld
from .data.instructions import batch_of
from .data.preferences import preference_batch
from .errors import MinilmError
from .reward import RewardModel

CONTEXT = "context"
EOS = toyworld.EOS
BUCKETS = toyworld.TASKS + (CONTEXT,)


def example_rows(examples, tokenizer):
    """Each example in its own row, <eos> words <eos>, right-padded; numpy arrays, all (N, T):

    idx (the inputs), targets (the next tokens), task_ids and is_answer (labels of each target),
    valid (False at padding).
    """
    streams = [toyworld.to_stream([ex], tokenizer) for ex in examples]
    T = max(len(tokens) for tokens, _, _ in streams) - 1
    rows = np.full((len(examples), T + 1), tokenizer.pad_id, dtype=np.int32)
    task_ids = np.zeros((len(examples), T + 1), dtype=np.int16)
    is_answer = np.zeros((len(examples), T + 1), dtype=bool)
    valid = np.zeros((len(examples), T + 1), dtype=bool)
    for i, (tokens, tasks, answers) in enumerate(streams):
        n = len(tokens)
        rows[i, :n], task_ids[i, :n], is_answer[i, :n], valid[i, 1:n] = tokens, tasks, answers, True
    return rows[:, :-1], rows[:, 1:], task_ids[:, 1:], is_answer[:, 1:], valid[:, 1:]


def token_scores(model, idx, targets, batch_size=256):
    """-log p(target) and whether the target was the argmax, at every position: two (N, T) numpy arrays."""
    if idx.shape[1] > model.config.block_size:
        raise MinilmError(f"examples of {idx.shape[1]} tokens do not fit block_size={model.config.block_size}: "
                          "use a larger block size")
    xp = model.xp
    nll, top1 = [], []
    for start in range(0, len(idx), batch_size):
        x, y = xp.asarray(idx[start:start + batch_size]), xp.asarray(targets[start:start + batch_size])
        logits = model.forward(x)  # (b, T, V)
        nll.append(to_numpy(layers.token_losses(logits, y)).astype(np.float64))
        top1.append(to_numpy(logits.argmax(axis=-1) == y))
    return np.concatenate(nll), np.concatenate(top1)


@dataclass
class TaskScores:
    n_examples: int
    loss: float            # mean -log p over the task's answer tokens (nats)
    exact_match: float     # fraction of examples whose whole answer greedy decoding gets right
    answer_logprob: float  # mean over examples of log p(answer | prompt) (nats; 0 is perfect)


@dataclass
class Evaluation:
    loss: float     # mean -log p over every target token of the examples
    shares: dict    # bucket -> fraction of the target tokens
    losses: dict    # bucket -> mean -log p over its tokens
    tasks: dict     # task -> TaskScores (the tasks present among the examples)

    def weighted_sum(self):
        """sum of share * loss over the buckets: equals self.loss (the decomposition)."""
        return sum(self.shares[b] * self.losses[b] for b in self.shares)


def evaluate(model, examples, tokenizer, batch_size=256):
    """Score a model on tagged examples: the loss decomposition and every task's metrics."""
    if not examples:
        raise MinilmError("evaluate: no examples to score")
    idx, targets, task_ids, is_answer, valid = example_rows(examples, tokenizer)
    nll, top1 = token_scores(model, idx, targets, batch_size)  # (N, T) each
    bucket = np.where(is_answer, task_ids, len(toyworld.TASKS))  # (N, T): a BUCKETS index per target
    n_tokens = valid.sum()
    shares, losses, tasks = {}, {}, {}
    for b, name in enumerate(BUCKETS):
        here = valid & (bucket == b)
        if here.any():
            shares[name] = float(here.sum() / n_tokens)
            losses[name] = float(nll[here].mean())
    for t, name in enumerate(toyworld.TASKS):
        rows = task_ids[:, 0] == t  # every row is one example of one task
        if rows.any():
            answer = is_answer[rows]  # (n, T)
            exact = np.all(top1[rows] | ~answer, axis=1)  # right at every answer position
            logprob = -(nll[rows] * answer).sum(axis=1)
            tasks[name] = TaskScores(int(rows.sum()), losses[name], float(exact.mean()), float(logprob.mean()))
    return Evaluation(float(nll[valid].mean()), shares, losses, tasks)


def per_task_table(evaluation):
    """The evaluation as a text table: one line per task, then context and the overall loss."""
    lines = [f"{'task':<12} {'share':>6} {'loss':>6} {'exact':>6} {'log p(ans)':>10}  examples"]
    for name, s in evaluation.tasks.items():
        lines.append(f"{name:<12} {evaluation.shares[name]:6.1%} {s.loss:6.3f} {s.exact_match:6.1%} "
                     f"{s.answer_logprob:10.3f}  {s.n_examples}")
    lines.append(f"{CONTEXT:<12} {evaluation.shares[CONTEXT]:6.1%} {evaluation.losses[CONTEXT]:6.3f}")
    lines.append(f"{'overall':<12} {1:6.0%} {evaluation.loss:6.3f}   = sum of share x loss "
                 f"({evaluation.weighted_sum():.3f})")
    return "\n".join(lines)


def fact_recall(model, tokenizer, facts):
    """For each (country, capital) pair: does greedy decoding answer "the capital of COUNTRY is" with CAPITAL?"""
    prompts = np.array([tokenizer.encode(f"{EOS} the capital of {country} is") for country, _ in facts])
    capitals = np.array([tokenizer.encode(capital) for _, capital in facts])  # (n, 1): one word each
    _, top1 = token_scores(model, prompts, np.concatenate([prompts[:, 1:], capitals], axis=1))
    return top1[:, -1].tolist()


def ngram_statistics(tokens, vocab_size):
    """The corpus's unigram p(w) (V,) and bigram p(w | previous word) (V, V), counted on a token stream.

    A previous word never seen in the stream gets the unigram as its row.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    unigram = np.bincount(tokens, minlength=vocab_size) / len(tokens)
    pair_ids = tokens[:-1] * vocab_size + tokens[1:]  # (previous, next) as one id
    pairs = np.bincount(pair_ids, minlength=vocab_size ** 2).reshape(vocab_size, vocab_size)
    seen = pairs.sum(axis=1, keepdims=True)
    return unigram, np.where(seen > 0, pairs / np.maximum(seen, 1), unigram)


def kl_to_statistics(model, examples, tokenizer, statistics, batch_size=256):
    """Mean KL(statistic || model) in nats over the examples' target tokens, overall and per bucket.

    statistics: name -> (V,) a distribution used at every position, or (V, V) one row per previous word
    (ngram_statistics). KL(q || p) = sum_w q(w) log(q(w) / p(w)) is 0 when the model predicts exactly the
    statistic and grows as the model leaves it. Returns {name: {"all": nats, bucket: nats, ...}}.
    """
    idx, targets, task_ids, is_answer, valid = example_rows(examples, tokenizer)
    bucket = np.where(is_answer, task_ids, len(toyworld.TASKS))[valid]
    kl = {name: [] for name in statistics}
    for start in range(0, len(idx), batch_size):
        x = idx[start:start + batch_size]
        logp = to_numpy(layers.log_softmax(model.forward(model.xp.asarray(x)))).astype(np.float64)  # (b, T, V)
        for name, q in statistics.items():
            q = q[x] if q.ndim == 2 else np.broadcast_to(q, logp.shape)  # (b, T, V)
            kl[name].append(np.sum(q * (np.log(np.where(q > 0, q, 1)) - logp), axis=-1))
    per_token = {name: np.concatenate(values)[valid] for name, values in kl.items()}
    return {name: {"all": float(v.mean()), **{BUCKETS[b]: float(v[bucket == b].mean()) for b in np.unique(bucket)}}
            for name, v in per_token.items()}


def response_scores(model, rows, batch_size=32, pad_id=0):
    """Each row's response as the model scores it: (the sum of -log p over its response tokens, how many
    tokens that is, whether every one is the model's most likely next token), three (rows,) arrays."""
    nll, tokens, exact = [], [], []
    for start in range(0, len(rows.ids), batch_size):
        idx, targets, mask = batch_of(rows, range(start, min(start + batch_size, len(rows.ids))), pad_id)
        logits = model.forward(idx)  # (B, T, V)
        token_nll = to_numpy(layers.token_losses(logits, model.xp.asarray(targets)))  # (B, T)
        right = (to_numpy(logits.argmax(axis=-1)) == targets) | (mask == 0)  # (B, T)
        nll.append((token_nll * mask).sum(axis=1, dtype=np.float64))
        tokens.append(mask.sum(axis=1))
        exact.append(right.all(axis=1))
    return np.concatenate(nll), np.concatenate(tokens), np.concatenate(exact)


def response_loss(rows, batch_size=32, pad_id=0):
    """The evaluate function of held-out instruction rows (minilm.data.instructions): evaluate(model) ->
    {"loss": the mean -log p over every response token, "exact": the share of rows whose every response
    token is the model's most likely next token}."""
    def evaluate(model):
        nll, tokens, exact = response_scores(model, rows, batch_size, pad_id)
        return {"loss": float(nll.sum() / tokens.sum()), "exact": float(exact.mean())}
    return evaluate


def pair_margins(model, pair_rows, batch_size=16, pad_id=0):
    """log p(chosen) - log p(rejected) of each pair's responses under the model (minilm.data.preferences'
    PairRows; a reward model's r(chosen) - r(rejected)), batch_size pairs at a time: (N,) float64"""
    margins = []
    for start in range(0, len(pair_rows), batch_size):
        batch = preference_batch(pair_rows, np.arange(start, min(start + batch_size, len(pair_rows))), pad_id)
        margins.append(to_numpy(batch_margins(model, *batch)))
    return np.concatenate(margins).astype(np.float64)


def batch_margins(model, idx, targets, loss_mask):
    """A preference batch -> (B/2,) how far the model prefers each chosen response: log p(chosen) - log
    p(rejected) for a language model, r(chosen) - r(rejected) for a reward model."""
    if isinstance(model, RewardModel):
        r = model.rewards(idx, loss_mask)  # (B,)
        return r[:len(r) // 2] - r[len(r) // 2:]
    return objectives.preference_margins(model, *map(model.xp.asarray, (idx, targets, loss_mask)))


def preference_loss(pair_rows, batch_size=16, pad_id=0):
    """The evaluate function of held-out pairs under DPO: evaluate(dpo: an objectives.DPO) -> {"loss": the DPO
    loss on the pairs, "preferred": the share of pairs whose chosen response the policy finds the likelier, as
    `score` counts it}. DPO's implicit reward margin is beta (m - m_ref), m the policy's margin, m_ref the
    reference's: Bradley-Terry on it is the DPO loss (objectives.dpo_forward)."""
    def evaluate(dpo):
        margins = pair_margins(dpo.policy, pair_rows, batch_size, pad_id)  # (N,)
        reference = pair_margins(dpo.reference, pair_rows, batch_size, pad_id)
        loss, _ = objectives.preference_loss_forward(dpo.beta * margins, dpo.beta * reference)
        return {"loss": float(loss), "preferred": float((margins > 0).mean())}
    return evaluate


def reward_accuracy(pair_rows, batch_size=16, pad_id=0):
    """The evaluate function of held-out pairs for a reward model: evaluate(model: a RewardModel) -> {"loss": the
    Bradley-Terry loss on the pairs, "accuracy": the share of pairs whose chosen response gets the higher reward}."""
    def evaluate(model):
        margins = pair_margins(model, pair_rows, batch_size, pad_id)  # (N,) r(chosen) - r(rejected)
        loss, _ = objectives.preference_loss_forward(margins, np.zeros_like(margins))
        return {"loss": float(loss), "accuracy": float((margins > 0).mean())}
    return evaluate
