"""Objectives beyond maximum likelihood, each a forward/backward pair like the layers (minilm/layers.py).

Maximum likelihood says: given this prompt, this one response is right and every other is wrong. The objectives
here learn from comparisons and rewards instead, the stage every modern model ends its training with:

    token log-probabilities   log p(y_t | y_<t), per position, and their sum over a response (the loss mask)
    reward head               a scalar score read from the last response token's final hidden state
    Bradley-Terry             -log sigmoid(r_chosen - r_rejected): a reward model learned from preference pairs
    DPO                       Bradley-Terry on the implicit reward beta (log pi(y) - log pi_ref(y)) (Rafailov et
                              al., 2023): the policy tuned on the pairs directly, against a frozen reference
    policy gradient           REINFORCE with each group's mean reward as the baseline (GRPO's on-policy case,
                              Shao et al., 2024), with an optional KL penalty to the reference

Shapes: B = sequences (for a preference batch, the B/2 chosen rows first, then their B/2 rejected rows),
T = positions, V = vocabulary, C = channels. Every backward is checked against finite differences in float64
(tests/test_objectives.py). Model-level losses (a GPT or a Llama: dpo_loss_and_grads, ...) come last.
"""
from . import layers
from .backend import xp_of
from .errors import MinilmError


def log_sigmoid(x):
    """log(1 / (1 + exp(-x))), stable for large |x|: -log(1 + exp(-x)) = -logaddexp(0, -x)."""
    return -xp_of(x).logaddexp(0, -x)


def sigmoid(x):
    """1 / (1 + exp(-x)), through log_sigmoid so that it never overflows."""
    return xp_of(x).exp(log_sigmoid(x))


# --------------------------------------------------------------------------------------------------
# Token log-probabilities: log p(target_t) at every position, from the logits.

def token_logprob_forward(logits, targets):
    """logits: (B, T, V), targets: (B, T) ints -> logp: (B, T), log softmax(logits)[target] at each position"""
    nll, probs = layers.nll_and_probs(logits, targets)  # (B, T), (B, T, V)
    return -nll, (probs, targets)


def token_logprob_backward(dlogp, cache):
    """dlogp: (B, T) -> dlogits: (B, T, V) = dlogp * (onehot(target) - probs): the cross-entropy's gradient with
    each position weighted by -dlogp (log p is the negative cross-entropy)."""
    probs, targets = cache
    return layers.softmax_cross_entropy_backward((probs, targets, -dlogp))


def sequence_logprob(logp, loss_mask):
    """logp: (B, T), loss_mask: (B, T) bool -> (B,), log p(response) = the sum over the response's positions.
    Its gradient is the mask: d/dlogp = loss_mask * dseq[:, None]."""
    return (logp * loss_mask).sum(axis=1)


# --------------------------------------------------------------------------------------------------
# A reward head: r = h_last . w + b, h_last the final hidden state at each sequence's last response token.

def reward_head_forward(hidden, w, b, last):
    """hidden: (B, T, C), w: (C,), b: (1,), last: (B,) ints -> r: (B,)"""
    xp = xp_of(hidden)
    h = hidden[xp.arange(hidden.shape[0]), last]  # (B, C)
    return h @ w + b[0], (h, w, last, hidden.shape)


def reward_head_backward(dr, cache):
    """dr: (B,) -> dhidden: (B, T, C) (zero but at each last position), dw: (C,), db: (1,)"""
    h, w, last, shape = cache
    xp = xp_of(h)
    dhidden = xp.zeros(shape, dtype=h.dtype)
    dhidden[xp.arange(shape[0]), last] = dr[:, None] * w  # (B, C)
    return dhidden, h.T @ dr, dr.sum(keepdims=True)


# --------------------------------------------------------------------------------------------------
# Bradley-Terry: p(chosen preferred to rejected) = sigmoid(r_chosen - r_rejected); the loss is its -log, averaged.

def preference_loss_forward(r_chosen, r_rejected):
    """r_chosen, r_rejected: (N,) -> loss (scalar) = -mean log sigmoid(r_chosen - r_rejected)"""
    margin = r_chosen - r_rejected  # (N,)
    return -log_sigmoid(margin).mean(), margin


def preference_loss_backward(margin):
    """-> dr_chosen, dr_rejected: (N,). d/dm [-log sigmoid(m)] = -sigmoid(-m) = sigmoid(m) - 1."""
    d_margin = -sigmoid(-margin) / margin.shape[0]
    return d_margin, -d_margin


# --------------------------------------------------------------------------------------------------
# DPO: Bradley-Terry on the implicit reward r(y) = beta (log pi(y) - log pi_ref(y)); the reference is frozen.

def dpo_forward(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    """Sequence log-probabilities (N,) under the policy and the reference -> loss (scalar), cache"""
    reward_chosen = beta * (logp_chosen - ref_chosen)  # (N,)
    reward_rejected = beta * (logp_rejected - ref_rejected)
    loss, margin = preference_loss_forward(reward_chosen, reward_rejected)
    return loss, (margin, beta)


def dpo_backward(cache):
    """-> dlogp_chosen, dlogp_rejected: (N,) (the reference gets none)"""
    margin, beta = cache
    d_chosen, d_rejected = preference_loss_backward(margin)
    return beta * d_chosen, beta * d_rejected


# --------------------------------------------------------------------------------------------------
# Policy gradient: each prompt's G sampled responses, scored; a response's advantage is its reward minus the
# mean reward of its group (the baseline). Minimising -A log pi(y) raises the better-than-average responses.

def group_advantages(rewards, group_size):
    """rewards: (N,), N = prompts x group_size, each prompt's group in consecutive rows -> (N,) advantages"""
    if rewards.shape[0] % group_size:
        raise MinilmError(f"{rewards.shape[0]} rewards do not split into groups of {group_size}")
    groups = rewards.reshape(-1, group_size)  # (prompts, G)
    return (groups - groups.mean(axis=1, keepdims=True)).reshape(-1)


def policy_gradient_forward(logp, loss_mask, advantages, ref_logp=None, kl_coef=0.0):
    """logp: (N, T) token log-probabilities of the sampled responses, loss_mask: (N, T), advantages: (N,)
    -> loss (scalar) = -mean_i A_i log pi(y_i) + kl_coef * the mean over response tokens of
    exp(ref - logp) - (ref - logp) - 1 (the non-negative estimate of KL(pi || pi_ref) that GRPO uses)."""
    mask = loss_mask.astype(logp.dtype)
    loss = -(advantages * sequence_logprob(logp, mask)).mean()
    if ref_logp is not None and kl_coef:
        loss = loss + kl_coef * kl_estimate(logp, ref_logp, mask)
    return loss, (logp, mask, advantages, ref_logp, kl_coef)


def kl_estimate(logp, ref_logp, mask):
    """KL(pi || pi_ref) estimated on the sampled tokens: the mean over the mask's positions of
    exp(ref - logp) - (ref - logp) - 1, never negative (logp, ref_logp, mask: (N, T))."""
    diff = ref_logp - logp  # (N, T)
    return ((xp_of(logp).exp(diff) - diff - 1) * mask).sum() / mask.sum()


def policy_gradient_backward(cache):
    """-> dlogp: (N, T)"""
    logp, mask, advantages, ref_logp, kl_coef = cache
    dlogp = -advantages[:, None] * mask / advantages.shape[0]  # (N, T)
    if ref_logp is not None and kl_coef:
        dlogp += kl_coef * (1 - xp_of(logp).exp(ref_logp - logp)) * mask / mask.sum()
    return dlogp


# --------------------------------------------------------------------------------------------------
# On a decoder (GPT or Llama): the pairs above through the model's own forward and backward pass.

def response_logprobs(model, idx, targets, loss_mask):
    """log p(response) of each row under the model, no gradient: (B,)"""
    return sequence_logprob(token_logprob_forward(model.forward(idx), targets)[0], loss_mask)


def dpo_loss_and_grads(policy, reference, idx, targets, loss_mask, beta=0.1):
    """A preference batch (idx, targets, loss_mask: (B, T), the B/2 chosen rows, then their rejected rows, the
    loss mask on the responses) -> (DPO loss: float, grads of the policy's parameters). The reference model is
    read, never changed."""
    half = _halves(idx)
    ref = response_logprobs(reference, idx, targets, loss_mask)  # (B,)
    logits, cache = policy._forward(idx)
    logp, logp_cache = token_logprob_forward(logits, targets)
    seq = sequence_logprob(logp, loss_mask)  # (B,)
    loss, dpo_cache = dpo_forward(seq[:half], seq[half:], ref[:half], ref[half:], beta)
    dseq = xp_of(seq).concatenate(dpo_backward(dpo_cache))  # (B,)
    dlogits = token_logprob_backward(dseq[:, None] * loss_mask, logp_cache)
    return float(loss), policy._backward(dlogits, cache)


def policy_gradient_loss_and_grads(policy, idx, targets, loss_mask, advantages, reference=None, kl_coef=0.0):
    """Sampled responses (idx, targets, loss_mask: (N, T)) and their advantages (N,) -> (loss, grads)."""
    ref_logp = None
    if reference is not None and kl_coef:
        ref_logp = token_logprob_forward(reference.forward(idx), targets)[0]
    loss, grads, _ = policy_gradient_pass(policy, idx, targets, loss_mask, advantages, ref_logp, kl_coef)
    return loss, grads


def policy_gradient_pass(policy, idx, targets, loss_mask, advantages, ref_logp=None, kl_coef=0.0):
    """The policy's forward and backward pass under the policy-gradient loss, the reference's token
    log-probabilities ref_logp (N, T) given -> (loss, grads, the policy's token log-probabilities (N, T))."""
    logits, cache = policy._forward(idx)
    logp, logp_cache = token_logprob_forward(logits, targets)
    loss, pg_cache = policy_gradient_forward(logp, loss_mask, advantages, ref_logp, kl_coef)
    dlogits = token_logprob_backward(policy_gradient_backward(pg_cache), logp_cache)
    return float(loss), policy._backward(dlogits, cache), logp


def rewards(model, w, b, idx, last):
    """The reward head on the decoder's final hidden states: idx (B, T), last (B,) -> (B,) rewards."""
    _, cache = model._forward(idx)
    return reward_head_forward(_hidden(cache), w, b, last)[0]


def reward_loss_and_grads(model, w, b, idx, last):
    """A preference batch (idx: (B, T), the B/2 chosen rows, then their rejected rows; last: (B,) each row's last
    response position) -> (Bradley-Terry loss: float, grads of the decoder's parameters and of the head's,
    "reward.w" and "reward.b"). The decoder's output head is not on this path: a head of its own gets zeros."""
    half = _halves(idx)
    _, cache = model._forward(idx)
    r, head_cache = reward_head_forward(_hidden(cache), w, b, last)  # (B,)
    loss, margin = preference_loss_forward(r[:half], r[half:])
    dhidden, dw, db = reward_head_backward(xp_of(r).concatenate(preference_loss_backward(margin)), head_cache)
    grads = model._trunk_backward(dhidden, cache)
    if "w_head" in model.params:
        grads["w_head"] = model.xp.zeros_like(model.params["w_head"])
    return float(loss), model._apply_grad_rules(grads) | {"reward.w": dw, "reward.b": db}


class DPO:
    """The policy as the Trainer sees it when it is tuned by DPO: the policy's own parameters (so the optimizer,
    the gradient rules of LoRA and the checkpoints are the policy's), and loss_and_grads on a preference batch.

        trainer = Trainer(DPO(policy, reference, beta=0.1), preference_batches(pair_rows), config=...)

    The batch runs whole (a pair's two rows must meet in one loss); the reference is read, never trained."""
    reads_token_stream = False

    def __init__(self, policy, reference, beta=0.1):
        if beta <= 0:
            raise MinilmError(f"DPO's beta must be above 0, got {beta}")
        self.policy, self.reference, self.beta = policy, reference, beta
        self.params, self.config, self.xp = policy.params, policy.config, policy.xp

    def loss_and_grads(self, idx, targets, loss_mask):
        xp = self.xp
        return dpo_loss_and_grads(self.policy, self.reference, xp.asarray(idx), xp.asarray(targets),
                                  xp.asarray(loss_mask), self.beta)

    def forward(self, *inputs):
        return self.policy.forward(*inputs)

    def checkpoint_meta(self):
        """The policy's, and the objective it is tuned by (what `finetune --resume` checks its flags against)."""
        return {**self.policy.checkpoint_meta(), "objective": {"name": "dpo", "beta": self.beta}}


class PolicyGradient:
    """The policy as the Trainer sees it when it is tuned by policy gradient on answers sampled from it: the
    policy's own parameters, and loss_and_grads on a batch of its rollouts (minilm.rollouts.Rollouts, which it
    binds to the policy: they sample from it), each prompt's group_size answers in consecutive rows with their
    rewards (N,). A row's advantage is its reward minus its group's mean; the KL penalty (kl_coef) is to the
    reference, the starting model, read and never trained.

        rollouts = Rollouts(reward_model, prompts, group_size=4, max_new_tokens=16)
        trainer = Trainer(PolicyGradient(policy, reference, rollouts, kl_coef=0.05), rollouts, config=...)

    measured: the last batch's mean reward and KL to the reference (the Trainer shows and records them)."""
    reads_token_stream = False

    def __init__(self, policy, reference, rollouts, kl_coef=0.0):
        if rollouts.group_size < 2:
            raise MinilmError(f"a group needs 2 answers or more to have a baseline (its mean), got "
                              f"{rollouts.group_size}")
        self.policy, self.reference, self.rollouts, self.kl_coef = policy, reference, rollouts, kl_coef
        self.params, self.config, self.xp = policy.params, policy.config, policy.xp
        rollouts.policy = policy
        self.measured = {}

    def loss_and_grads(self, idx, targets, loss_mask, rewards):
        xp = self.xp
        idx, targets, loss_mask, rewards = (xp.asarray(a) for a in (idx, targets, loss_mask, rewards))
        ref_logp = token_logprob_forward(self.reference.forward(idx), targets)[0]  # (N, T)
        loss, grads, logp = policy_gradient_pass(self.policy, idx, targets, loss_mask,
                                                 group_advantages(rewards, self.rollouts.group_size), ref_logp,
                                                 self.kl_coef)
        mask = loss_mask.astype(logp.dtype)
        self.measured = {"reward": float(rewards.mean()), "kl": float(kl_estimate(logp, ref_logp, mask))}
        return loss, grads

    def forward(self, *inputs):
        return self.policy.forward(*inputs)

    def checkpoint_meta(self):
        """The policy's, and the objective it is tuned by (what `finetune --resume` checks its flags against)."""
        return {**self.policy.checkpoint_meta(), "objective": {
            "name": "pg", "group_size": self.rollouts.group_size, "kl_coef": self.kl_coef,
            "max_new_tokens": self.rollouts.max_new_tokens}}


def preference_margins(model, idx, targets, loss_mask):
    """A preference batch -> (B/2,) log p(chosen) - log p(rejected) under the model: which side it prefers."""
    half = _halves(idx)
    logp = response_logprobs(model, idx, targets, loss_mask)
    return logp[:half] - logp[half:]


def _hidden(cache):
    """The head's input, the final norm's output: (B, T, C). (A linear cache is (x, w, has_bias).)"""
    return cache.head[0]


def _halves(idx):
    if idx.shape[0] % 2:
        raise MinilmError(f"a preference batch holds chosen and rejected rows in pairs, got {idx.shape[0]} rows")
    return idx.shape[0] // 2

