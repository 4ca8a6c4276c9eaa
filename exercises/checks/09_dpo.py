"""The checks of exercise 09: DPO's loss and gradient, from the sequence log-probabilities to the logits.

The references are minilm's own (minilm/objectives.py: token_logprob_forward, sequence_logprob, dpo_forward,
dpo_backward, token_logprob_backward). The inputs are chosen to tell the usual mistakes apart: rows whose
prompts and paddings differ in length (so counting them shows), a beta other than 1 (so a beta left out or
misplaced shows), reference log-probabilities that differ between chosen and rejected (so a reference left
out shows), and margins of both signs. Every check draws from its own fixed seed, so a wrong answer fails on
every run."""
import numpy as np

from minilm import objectives
from minilm.course.feedback import gradient_problem, gradient_problems, mismatch

BETA = 0.3


def log_probs(logits):
    """(B, T, V) log-softmax, in float64: the reference for the checks' mistakes."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def batch(rng, B=3, T=7, V=6, scale=1.0):
    """A preference-shaped batch: each row a prompt (2 to 4 targets), a response, then padding."""
    logits = scale * rng.normal(size=(B, T, V))
    targets = rng.integers(V, size=(B, T))
    starts, ends = np.array([2, 3, 4][:B]), np.array([5, 7, 6][:B])
    position = np.arange(T)
    loss_mask = (position >= starts[:, None]) & (position < ends[:, None])  # (B, T)
    return logits, targets, loss_mask


def reference_seq(logits, targets, loss_mask):
    logp, _ = objectives.token_logprob_forward(logits, targets)
    return objectives.sequence_logprob(logp, loss_mask)


def sequence_mistakes(logits, targets, loss_mask):
    """What the usual mistakes of sequence_logprob give for these inputs."""
    logp = np.take_along_axis(log_probs(logits), targets[..., None], axis=-1)[..., 0]  # (B, T)
    return [("counts the prompt's (and the padding's) positions: sum log p(target) where loss_mask is True only",
             logp.sum(axis=1)),
            ("averages over the response's positions: a sequence's log-probability is the sum of its tokens' "
             "(the log of their product)", (logp * loss_mask).sum(axis=1) / loss_mask.sum(axis=1)),
            ("sums probabilities, not log-probabilities: take the log-softmax's entry at each target",
             (np.exp(logp) * loss_mask).sum(axis=1)),
            ("reads the logit of the target, not its log-probability: subtract log Σ exp(logits) (a log-softmax)",
             (np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0] * loss_mask).sum(axis=1))]


def response_only(sequence_logprob):
    """sequence_logprob sums log p(target) over the response's positions only"""
    logits, targets, loss_mask = batch(np.random.default_rng(901))
    got = sequence_logprob(logits.copy(), targets.copy(), loss_mask.copy())
    problem = mismatch("sequence_logprob(logits, targets, loss_mask)", got, reference_seq(logits, targets, loss_mask),
                       mistakes=sequence_mistakes(logits, targets, loss_mask))
    assert not problem, problem


def large_logits(sequence_logprob):
    """sequence_logprob stays exact on logits 1000 apart"""
    logits, targets, loss_mask = batch(np.random.default_rng(902), scale=1000.0)
    got = sequence_logprob(logits.copy(), targets.copy(), loss_mask.copy())
    expected = reference_seq(logits, targets, loss_mask)
    if got is not None and np.shape(got) == expected.shape and not np.isfinite(got).all():
        assert False, ("sequence_logprob gives -inf or NaN on logits 1000 apart: log(softmax) meets log 0 once a "
                       "probability underflows; use log p = (logit - max) - log Σ exp(logits - max)")
    problem = mismatch("sequence_logprob on logits 1000 apart", got, expected, rtol=1e-9,
                       mistakes=sequence_mistakes(logits, targets, loss_mask))
    assert not problem, problem


def pairs(rng, N=5):
    """Sequence log-probabilities of N pairs under the policy and the reference, margins of both signs."""
    return tuple(rng.uniform(-30.0, -5.0, size=N) for _ in range(4))


def loss_mistakes(pc, pr, rc, rr, beta):
    """What the usual mistakes of dpo_loss give for these inputs."""
    def loss(m):
        return np.logaddexp(0, -m).mean()
    m = (pc - rc) - (pr - rr)
    return [("has a sign error: the margin is the chosen reward minus the rejected one, and the loss is "
             "-log sigmoid(margin), small when the chosen response is the likelier", loss(-beta * m)),
            ("leaves out the reference: the implicit reward is beta (log pi - log pi_ref), each side measured "
             "against the frozen model", loss(beta * (pc - pr))),
            ("multiplies the loss by beta: beta scales the margin inside the sigmoid", beta * loss(m)),
            ("leaves out beta: the margin is beta times the difference of the log-ratios", loss(m)),
            ("adds the reference's log-probabilities: the reward is log pi - log pi_ref",
             loss(beta * ((pc + rc) - (pr + rr)))),
            ("sums over the pairs: the loss is their mean", np.logaddexp(0, -beta * m).sum())]


def loss_value(dpo_loss):
    """dpo_loss matches minilm's DPO loss"""
    pc, pr, rc, rr = pairs(np.random.default_rng(903))
    got = dpo_loss(pc.copy(), pr.copy(), rc.copy(), rr.copy(), BETA)
    expected, _ = objectives.dpo_forward(pc, pr, rc, rr, BETA)
    problem = mismatch(f"dpo_loss(..., beta={BETA})", got, expected, mistakes=loss_mistakes(pc, pr, rc, rr, BETA))
    assert not problem, problem


def loss_limits(dpo_loss):
    """dpo_loss is log 2 when the policy is the reference, and finite for a pair far in the wrong order"""
    pc, pr, _, _ = pairs(np.random.default_rng(904))
    problem = mismatch("dpo_loss with the policy equal to the reference (every margin 0)",
                       dpo_loss(pc.copy(), pr.copy(), pc.copy(), pr.copy(), BETA), np.log(2.0))
    assert not problem, problem + " (it must be log 2: -log sigmoid(0))"
    far = np.array([-5000.0]), np.array([-10.0]), np.array([-10.0]), np.array([-10.0])  # margin -1498.5
    got = dpo_loss(*(a.copy() for a in far), BETA)
    expected, _ = objectives.dpo_forward(*far, BETA)
    if got is not None and not np.isfinite(got):
        assert False, ("dpo_loss overflows for a pair far in the wrong order (margin -1498.5): exp(1498.5) is inf; "
                       "write -log sigmoid(m) as np.logaddexp(0, -m)")
    problem = mismatch("dpo_loss for a pair far in the wrong order (margin -1498.5)", got, expected,
                       mistakes=loss_mistakes(*far, BETA))
    assert not problem, problem


def grads_of(dpo_grads, inputs):
    grads = dpo_grads(*(a.copy() for a in inputs), BETA)
    if not isinstance(grads, tuple) or len(grads) != 2:
        assert False, "dpo_grads must return two gradients, (d_chosen, d_rejected): the reference is frozen"
    return grads


def gradient(dpo_grads):
    """dpo_grads matches finite differences of the DPO loss"""
    inputs = pairs(np.random.default_rng(905))
    pc, pr, rc, rr = inputs
    d_chosen, d_rejected = grads_of(dpo_grads, inputs)
    margin = BETA * ((pc - rc) - (pr - rr))
    weight = objectives.sigmoid(-margin) / len(margin)
    wrong_weight = ("weights each pair by sigmoid(m): the weight is sigmoid(-m), largest for the pairs still in "
                    "the wrong order", -BETA * objectives.sigmoid(margin) / len(margin))
    mistakes = [("has a sign error: lowering the loss must raise log pi(chosen), so d_chosen is negative",
                 BETA * weight),
                ("leaves out beta: dm/d log pi(chosen) = beta", -weight),
                ("is not divided by N: the loss is the mean over the pairs", -BETA * weight * len(margin)),
                ("leaves out the reference in the margin: m = beta ((log pi - log pi_ref)(chosen) - (...)(rejected))",
                 -BETA * objectives.sigmoid(-BETA * (pc - pr)) / len(margin)),
                wrong_weight]
    problem = mismatch("d_chosen", d_chosen, -BETA * weight, mistakes=mistakes)
    assert not problem, problem
    problem = mismatch("d_rejected", d_rejected, BETA * weight, mistakes=[
        ("has the sign of d_chosen: m falls as log pi(rejected) rises, so d_rejected = -d_chosen", -BETA * weight)])
    assert not problem, problem
    problems = gradient_problems(lambda: objectives.dpo_forward(pc, pr, rc, rr, BETA)[0],
                                 {"policy_chosen": pc, "policy_rejected": pr},
                                 {"policy_chosen": d_chosen, "policy_rejected": d_rejected})
    assert not problems, "; ".join(problems)


def gradient_at_the_start(dpo_grads):
    """dpo_grads gives -beta/(2N) and +beta/(2N) when the policy is the reference"""
    pc, pr, _, _ = pairs(np.random.default_rng(906), N=4)
    d_chosen, d_rejected = grads_of(dpo_grads, (pc, pr, pc, pr))
    for name, got, sign in (("d_chosen", d_chosen, -1), ("d_rejected", d_rejected, 1)):
        problem = mismatch(f"{name} with the policy equal to the reference", got, np.full(4, sign * BETA / 8))
        assert not problem, problem + f" (every margin is 0 and sigmoid(0) = 1/2: it must be {sign * BETA / 8:+g})"


def backward(sequence_logprob_backward):
    """sequence_logprob_backward matches finite differences, and gives the prompt no gradient"""
    rng = np.random.default_rng(907)
    logits, targets, loss_mask = batch(rng)
    dseq = rng.normal(size=logits.shape[0])
    dlogits = sequence_logprob_backward(dseq.copy(), logits.copy(), targets.copy(), loss_mask.copy())
    if dlogits is not None and np.shape(dlogits) == logits.shape and np.abs(np.asarray(dlogits)[~loss_mask]).max():
        assert False, ("sequence_logprob_backward gives the prompt's (or the padding's) positions a gradient: only "
                       "the positions where loss_mask is True are in the sum, the others get 0")
    probs = np.exp(log_probs(logits))
    onehot = np.eye(logits.shape[-1])[targets]
    reference = (dseq[:, None] * loss_mask)[..., None] * (onehot - probs)
    problem = gradient_problem("logits", reference, dlogits, reference="the chain rule")
    assert not problem, problem
    problems = gradient_problems(lambda: reference_seq(logits, targets, loss_mask) @ dseq, {"logits": logits},
                                 {"logits": dlogits})
    assert not problems, "; ".join(problems)


PARTS = {"sequence_logprob": [response_only, large_logits],
         "dpo_loss": [loss_value, loss_limits],
         "dpo_grads": [gradient, gradient_at_the_start],
         "sequence_logprob_backward": [backward]}
