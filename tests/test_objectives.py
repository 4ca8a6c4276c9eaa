"""The learned objectives (minilm/objectives.py): every forward/backward pair and every model-level loss against
finite differences in float64, and the algebra each one must obey."""
import json
import math

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError, objectives
from minilm.checkpoint import load_model
from minilm.data import preferences
from minilm.tokenizer import WordTokenizer
from minilm.train import TrainConfig, Trainer
from minilm.finite_differences import gradient_errors, layer_gradient_errors, numeric_grad
from minilm.model import Llama, LlamaConfig
from tests.helpers import roughen

TOL = 1e-6
MAX_ENTRIES = 12  # finite differences at this many random entries of each tensor of a whole model
V, T, N = 11, 6, 3  # vocabulary, positions, pairs (a preference batch has 2N rows)


def assert_close(errors):
    bad = {k: e for k, e in errors.items() if not e <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"


def preference_batch(rng, rows=2 * N):
    """Rows of token ids, their next tokens, and a loss mask on each row's response (from a random start)."""
    idx, targets = rng.integers(0, V, (rows, T)), rng.integers(0, V, (rows, T))
    loss_mask = np.arange(T)[None, :] >= rng.integers(1, T - 1, (rows, 1))  # (rows, T): the response's positions
    return idx, targets, loss_mask


MODELS = {
    "gpt": lambda: GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=2, n_head=2, d_model=8, dtype="float64")),
    "gpt windowed": lambda: GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=2, n_head=2, d_model=8,
                                          attention_window=3, dtype="float64")),
    "llama untied": lambda: Llama(LlamaConfig(vocab_size=V, block_size=8, n_layer=2, n_head=4, n_kv_head=2,
                                              d_model=8, d_ff=12, tie_embeddings=False, dtype="float64")),
}


def model_pair(name, rng):
    """A policy and a reference that differ (the policy moved away from where it started)."""
    reference = roughen(MODELS[name](), rng, 0.1)
    policy = MODELS[name]()
    for key, p in policy.params.items():
        p[...] = reference.params[key] + 0.05 * rng.standard_normal(p.shape)
    return policy, reference


# ---- the pairs

def test_token_logprobs(rng):
    targets = rng.integers(0, V, (2, T))
    inputs = {"logits": rng.standard_normal((2, T, V)) * 2}
    assert_close(layer_gradient_errors(objectives.token_logprob_forward, objectives.token_logprob_backward, inputs,
                             ["logits"], targets=targets))
    logp, _ = objectives.token_logprob_forward(inputs["logits"], targets)
    probs = np.exp(inputs["logits"]) / np.exp(inputs["logits"]).sum(-1, keepdims=True)
    assert np.allclose(logp, np.log(np.take_along_axis(probs, targets[..., None], -1)[..., 0]))


def test_reward_head(rng):
    last = np.array([5, 2, 0])
    inputs = {"hidden": rng.standard_normal((3, T, 4)), "w": rng.standard_normal(4), "b": rng.standard_normal(1)}
    assert_close(layer_gradient_errors(objectives.reward_head_forward, objectives.reward_head_backward, inputs,
                             ["hidden", "w", "b"], last=last))


def scalar_check(forward, backward, inputs):
    """Finite differences for a pair whose forward returns (scalar loss, cache) and backward(cache) the gradients
    of the inputs, in order."""
    loss, cache = forward(**inputs)
    grads = dict(zip(inputs, backward(cache)))
    return gradient_errors(lambda: forward(**inputs)[0], inputs, grads)


def test_bradley_terry(rng):
    inputs = {"r_chosen": rng.standard_normal(5) * 3, "r_rejected": rng.standard_normal(5) * 3}
    assert_close(scalar_check(objectives.preference_loss_forward, objectives.preference_loss_backward, inputs))


def test_bradley_terry_is_stable_far_from_zero():
    loss, margin = objectives.preference_loss_forward(np.array([800.0, -800.0]), np.array([0.0, 0.0]))
    assert math.isfinite(loss) and abs(loss - 400.0) < 1e-9  # -log sigmoid(800) ~ 0, -log sigmoid(-800) = 800
    assert np.allclose(objectives.preference_loss_backward(margin)[0], [0.0, -0.5])


def test_dpo_pair_and_the_reference_gets_no_gradient(rng):
    inputs = {"logp_chosen": -rng.random(4) * 5, "logp_rejected": -rng.random(4) * 5}
    ref = {"ref_chosen": -rng.random(4) * 5, "ref_rejected": -rng.random(4) * 5}

    def forward(logp_chosen, logp_rejected):
        return objectives.dpo_forward(logp_chosen, logp_rejected, beta=0.7, **ref)

    assert_close(scalar_check(forward, objectives.dpo_backward, inputs))


@pytest.mark.parametrize("kl_coef", [0.0, 0.3])
def test_policy_gradient_pair(rng, kl_coef):
    mask = rng.random((4, T)) < 0.7
    ref_logp = -rng.random((4, T)) * 3
    advantages = objectives.group_advantages(rng.standard_normal(4), group_size=2)
    inputs = {"logp": -rng.random((4, T)) * 3}

    def forward(logp):
        return objectives.policy_gradient_forward(logp, mask, advantages, ref_logp, kl_coef)

    assert_close(scalar_check(forward, lambda cache: (objectives.policy_gradient_backward(cache),), inputs))


# ---- on whole models

@pytest.mark.parametrize("name", list(MODELS))
def test_dpo_through_the_model_and_the_reference_is_never_changed(rng, name):
    policy, reference = model_pair(name, rng)
    before = {k: p.copy() for k, p in reference.params.items()}
    batch = preference_batch(rng)
    loss, grads = objectives.dpo_loss_and_grads(policy, reference, *batch, beta=0.5)
    assert list(grads) == list(policy.params)
    assert_close(gradient_errors(lambda: objectives.dpo_loss_and_grads(policy, reference, *batch, beta=0.5)[0],
                             policy.params, grads, max_entries=MAX_ENTRIES))
    assert all(np.array_equal(reference.params[k], before[k]) for k in before)  # bit for bit


@pytest.mark.parametrize("name", ["gpt", "llama untied"])
def test_policy_gradient_through_the_model_with_its_kl_penalty(rng, name):
    policy, reference = model_pair(name, rng)
    idx, targets, loss_mask = preference_batch(rng, rows=4)
    advantages = objectives.group_advantages(rng.standard_normal(4), group_size=2)

    def loss_and_grads():
        return objectives.policy_gradient_loss_and_grads(policy, idx, targets, loss_mask, advantages,
                                                         reference, kl_coef=0.2)

    loss, grads = loss_and_grads()
    assert_close(gradient_errors(lambda: loss_and_grads()[0], policy.params, grads, max_entries=MAX_ENTRIES))


@pytest.mark.parametrize("name", ["gpt", "llama untied"])
def test_reward_model_through_the_decoder(rng, name):
    model = roughen(MODELS[name](), rng, 0.1)
    idx, _, _ = preference_batch(rng)
    last = rng.integers(1, T, 2 * N)
    head = {"reward.w": rng.standard_normal(8), "reward.b": rng.standard_normal(1)}

    def loss_and_grads():
        return objectives.reward_loss_and_grads(model, head["reward.w"], head["reward.b"], idx, last)

    loss, grads = loss_and_grads()
    assert set(grads) == set(model.params) | set(head)
    # A shift that every reward shares cancels in r_chosen - r_rejected: the head's bias and the final norm's
    # shift (every hidden state moved by the same vector) get a zero gradient, which finite differences confirm.
    cancels = {"reward.b", "ln_f.b"}
    arrays = {k: a for k, a in (model.params | head).items() if k not in cancels}
    assert_close(gradient_errors(lambda: loss_and_grads()[0], arrays, grads, max_entries=MAX_ENTRIES))
    for k in cancels & set(grads):
        _, numeric = numeric_grad(lambda: loss_and_grads()[0], (model.params | head)[k])
        assert np.abs(grads[k]).max() < 1e-12 and np.abs(numeric).max() < 1e-8


# ---- the algebra

def test_dpo_with_chosen_equal_to_rejected_is_log_2_and_moves_nothing(rng):
    policy, reference = model_pair("gpt", rng)
    idx, targets, loss_mask = preference_batch(rng, rows=N)
    twice = [np.concatenate([a, a]) for a in (idx, targets, loss_mask)]
    loss, grads = objectives.dpo_loss_and_grads(policy, reference, *twice, beta=2.0)
    assert abs(loss - math.log(2)) < 1e-12
    assert max(np.abs(g).max() for g in grads.values()) < 1e-12


def test_dpo_as_beta_goes_to_zero(rng):
    """At beta -> 0 every pair's implicit reward margin vanishes: the loss tends to log 2, and the gradient to
    beta/2 per pair, pushing log pi(chosen) up and log pi(rejected) down by the same amount."""
    logp = -rng.random((2, 4)) * 5
    ref = -rng.random((2, 4)) * 5
    for beta in (1e-3, 1e-6):
        loss, cache = objectives.dpo_forward(logp[0], logp[1], ref[0], ref[1], beta)
        d_chosen, d_rejected = objectives.dpo_backward(cache)
        assert abs(loss - math.log(2)) < beta * 10
        assert np.allclose(d_chosen, -beta / 2 / 4, rtol=beta * 10) and np.allclose(d_rejected, -d_chosen)


def test_a_policy_gradient_step_on_a_one_token_bandit_moves_probability_as_the_formula_says():
    """Logits theta (V,) pick one token; 4 samples, rewarded 1 for token 2. The step is
    theta -= lr * grad, grad = -(1/N) sum_i A_i (onehot(a_i) - pi), with A_i = r_i - mean(r)."""
    theta = np.array([0.3, -0.2, 0.1, 0.0])
    actions = np.array([2, 0, 1, 2])
    rewards = (actions == 2).astype(float)
    advantages = objectives.group_advantages(rewards, group_size=4)
    logits = np.broadcast_to(theta, (4, 1, 4)).copy()  # (N, T=1, V)
    logp, cache = objectives.token_logprob_forward(logits, actions[:, None])
    loss, pg = objectives.policy_gradient_forward(logp, np.ones((4, 1), bool), advantages)
    grad = objectives.token_logprob_backward(objectives.policy_gradient_backward(pg), cache).sum(axis=(0, 1))
    pi = np.exp(theta) / np.exp(theta).sum()
    formula = -sum(a * (np.eye(4)[i] - pi) for a, i in zip(advantages, actions)) / 4
    assert np.allclose(grad, formula, atol=1e-15)
    lr = 0.5
    stepped = theta - lr * grad
    new_pi = np.exp(stepped) / np.exp(stepped).sum()
    assert new_pi[2] > pi[2] and new_pi[0] < pi[0]  # toward the rewarded token, away from the others
    jacobian = np.diag(pi) - np.outer(pi, pi)  # d pi / d theta
    assert abs((new_pi - pi)[2] - (jacobian @ (-lr * grad))[2]) < lr ** 2  # the first-order move, to O(lr^2)


def test_group_advantages_subtract_each_groups_mean():
    adv = objectives.group_advantages(np.array([1.0, 0.0, 3.0, 3.0, 5.0, 1.0]), group_size=2)
    assert np.array_equal(adv, [0.5, -0.5, 0.0, 0.0, 2.0, -2.0])
    with pytest.raises(objectives.MinilmError, match="groups of 4"):
        objectives.group_advantages(np.zeros(6), group_size=4)


# ---- preference data, and DPO through the Trainer

def write_pairs(tmp_path, lines):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "a", "chosen": "b", "rejected": "c"}', '{"prompt": "a"'], "line 2 is not JSON"),
    (['{"prompt": "a", "chosen": "b"}'], 'line 1 needs "prompt", "chosen" and "rejected" strings'),
    (['{"prompt": "a", "chosen": "b", "rejected": "b"}'], "line 1: chosen and rejected are the same"),
    (["", " "], "holds no pairs")])
def test_bad_preference_data_is_one_line_that_says_where(tmp_path, lines, message):
    with pytest.raises(MinilmError, match=message) as e:
        preferences.read_pairs(write_pairs(tmp_path, lines))
    assert "\n" not in str(e.value)


def pair_data(tmp_path):
    """The lecture's rule as preferences: asked to repeat, the repeated word is chosen over the quote's."""
    words = "glib gold shiny bright dull".split()
    lines = [json.dumps({"prompt": f"repeat after me : {w} .",
                         "chosen": w, "rejected": "gold" if w != "gold" else "glib"}) for w in words]
    tok = WordTokenizer.build([json.loads(line)[key] for line in lines for key in ("prompt", "chosen", "rejected")])
    return preferences.read_pairs(write_pairs(tmp_path, lines)), tok


def test_a_preference_batch_is_the_chosen_rows_then_their_rejected_rows(tmp_path):
    pairs, tok = pair_data(tmp_path)
    rows = preferences.encode_pairs(pairs, tok, block_size=32)
    idx, targets, loss_mask = preferences.preference_batch(rows, np.array([3, 0]))
    assert idx.shape == targets.shape == loss_mask.shape == (4, idx.shape[1])
    assert tok.decode(t for t, m in zip(targets[0], loss_mask[0]) if m) == "bright <eos>"  # pair 3's chosen response
    assert tok.decode(t for t, m in zip(targets[2], loss_mask[2]) if m) == "gold <eos>"  # and its rejected one
    assert np.array_equal(idx[0][:loss_mask[0].argmax()], idx[2][:loss_mask[2].argmax()])  # the same prompt
    with pytest.raises(MinilmError, match="longer than the context"):
        preferences.encode_pairs(pairs, tok, block_size=5)


def test_dpo_through_the_trainer_raises_the_chosen_margin_and_keeps_the_reference(tmp_path):
    pairs, tok = pair_data(tmp_path)
    rows = preferences.encode_pairs(pairs, tok, block_size=32)
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, d_model=32)
    reference, policy = GPT(config, seed=0), GPT(config, seed=0)
    before = {k: p.copy() for k, p in reference.params.items()}
    everything = preferences.preference_batch(rows, np.arange(len(rows)))
    margins_before = objectives.preference_margins(policy, *everything)
    ckpt = tmp_path / "dpo.npz"
    Trainer(objectives.DPO(policy, reference, beta=0.5), preferences.preference_batches(rows),
            config=TrainConfig(steps=300, batch_size=8, lr=1e-2, warmup_steps=2, eval_every=0),
            checkpoint_path=str(ckpt), tokenizer=tok).run(progress=False)
    margins = objectives.preference_margins(policy, *everything)
    # every pair now prefers its chosen side (seeds 0-3 on one machine: every margin 16 nats or more)
    assert (margins > margins_before).all() and (margins > 5).all()
    assert all(np.array_equal(reference.params[k], before[k]) for k in before)
    saved, _, _ = load_model(str(ckpt))  # the checkpoint is the policy's, a GPT like any other
    assert type(saved) is GPT and np.allclose(objectives.preference_margins(saved, *everything), margins)


@pytest.mark.parametrize("name", ["gpt", "llama untied"])
def test_a_reward_model_is_the_reward_loss_at_its_last_response_positions_and_round_trips(rng, tmp_path, name):
    """RewardModel reads each row where its loss mask ends; its loss and gradients are reward_loss_and_grads'
    there (checked above by finite differences), and its checkpoint loads as the same scorer."""
    from minilm.checkpoint import save_checkpoint
    from minilm.reward import HEAD, RewardModel, last_positions

    decoder = roughen(MODELS[name](), rng, 0.1)
    head = {"reward.w": rng.standard_normal(8), "reward.b": rng.standard_normal(1)}
    rm = RewardModel(decoder, head)
    idx, targets, _ = preference_batch(rng, rows=4)
    loss_mask = np.zeros((4, T), np.float32)
    for row, (start, end) in enumerate([(1, 5), (2, 3), (0, 6), (3, 4)]):  # each row's response, then padding
        loss_mask[row, start:end] = 1
    assert list(last_positions(loss_mask)) == [4, 2, 5, 3]
    loss, grads = rm.loss_and_grads(idx, targets, loss_mask)
    expected = objectives.reward_loss_and_grads(decoder, *head.values(), idx, np.array([4, 2, 5, 3]))
    assert loss == expected[0] and set(grads) == set(decoder.params) | set(HEAD)
    assert all(np.array_equal(grads[k], expected[1][k]) for k in grads)
    assert all(rm.params[k] is p for k, p in decoder.params.items())  # a step on rm.params moves the decoder
    save_checkpoint(str(tmp_path / "rm.npz"), rm.params, rm.checkpoint_meta())
    loaded = load_model(str(tmp_path / "rm.npz"))[0]
    assert type(loaded) is RewardModel and type(loaded.decoder) is type(decoder)
    assert np.array_equal(loaded.rewards(idx, loss_mask), rm.rewards(idx, loss_mask))


def test_dpo_on_adapters_reads_a_reference_that_shares_the_bases_untouched_weights(tmp_path):
    """finetune(objective="dpo", lora_rank=...) measures against the base's own frozen arrays: after training
    they are the base checkpoint's, bit for bit, while the adapters moved."""
    from minilm.checkpoint import save_checkpoint
    from minilm.base import Base
    from minilm.finetune import FinetuneSettings, finetune

    pairs, tok = pair_data(tmp_path)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, d_model=16))
    save_checkpoint(str(tmp_path / "base.npz"), gpt.params, {**gpt.checkpoint_meta(), "tokenizer": tok.to_json()})
    settings = FinetuneSettings(objective="dpo", beta=0.5, lora_rank=2, steps=10, batch_size=4, lr=1e-2)
    tuned, _, result = finetune(Base(checkpoint=str(tmp_path / "base.npz")), str(tmp_path / "pairs.jsonl"),
                                str(tmp_path / "dpo.npz"),
                                settings, progress=False, say=lambda line: None)
    assert all(np.array_equal(tuned.frozen[k], p) for k, p in gpt.params.items())
    assert any(np.abs(p).max() > 0 for k, p in tuned.params.items() if k.endswith("lora_b"))
    assert abs(result["before"]["loss"] - math.log(2)) < 1e-6  # the policy starts as its reference


# ---- policy gradient through the Trainer: answers sampled from the policy (minilm.rollouts)

class SaysGlib:
    """A verifier in the place of a reward model: reward 1 for an answer that says glib, else 0. Like a reward
    model it reads the rows' inputs idx, which hold each answer but its last token (at the positions one after
    the loss mask's)."""

    def __init__(self, tok):
        self.glib = tok.encode("glib")[0]

    def rewards(self, idx, loss_mask):
        answer = np.roll(loss_mask, 1, axis=1) > 0  # (N, T): the answer's tokens among the inputs
        return ((idx == self.glib) & answer).any(axis=1).astype(float)


def policy_gradient_run(tmp_path, steps, checkpoint="pg.npz"):
    from minilm.data.instructions import encode_prompts
    from minilm.rollouts import Rollouts

    pairs, tok = pair_data(tmp_path)
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=12, n_layer=1, n_head=2, d_model=16)
    rollouts = Rollouts(SaysGlib(tok), encode_prompts([p.prompt for p in pairs], tok, 12), group_size=4,
                        max_new_tokens=3, eos_id=tok.eos_id)
    reference = GPT(config, seed=0)
    trainer = Trainer(objectives.PolicyGradient(GPT(config, seed=0), reference, rollouts, kl_coef=0.1), rollouts,
                      config=TrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=0),
                      checkpoint_path=str(tmp_path / checkpoint), tokenizer=tok)
    return trainer, rollouts, reference, tok


def test_rollouts_lay_out_each_prompts_group_of_sampled_answers_in_consecutive_rows(tmp_path):
    trainer, rollouts, _, tok = policy_gradient_run(tmp_path, steps=1)
    idx, targets, loss_mask, rewards = rollouts(np.random.default_rng(0), 2)
    assert idx.shape == targets.shape == loss_mask.shape and rewards.shape == (8,) and len(idx) == 8
    starts = loss_mask.argmax(axis=1)  # the position that predicts the answer's first token: the prompt's last
    for group in (idx[:4], idx[4:]):
        assert (group[:, :starts[0] + 1] == group[0, :starts[0] + 1]).all()  # one prompt per group
    assert tok.decode(idx[0, 1:starts[0] + 1]).startswith("repeat after me :")
    assert set(rewards) <= {0.0, 1.0} and (loss_mask.sum(axis=1) >= 1).all()


def test_policy_gradient_through_the_trainer_raises_the_reward_and_keeps_the_reference(tmp_path):
    """The verifier rewards answers that say glib: their share among the sampled answers rises, while the
    reference is bit for bit the model it was (measured: 0.31 of the first 10 steps' answers, 0.96 of the last 10's)."""
    trainer, _, reference, _ = policy_gradient_run(tmp_path, steps=40)
    before = {k: p.copy() for k, p in reference.params.items()}
    history = trainer.run(progress=False)
    rewards = [m["reward"] for m in history.step_metrics]
    assert len(rewards) == 40 and np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.3
    assert all(np.array_equal(reference.params[k], before[k]) for k in before)
    assert history.step_metrics[0]["kl"] < 1e-6 < history.step_metrics[-1]["kl"]  # it starts as its reference


def test_a_resumed_policy_gradient_run_samples_what_the_whole_run_would_have(tmp_path):
    whole, _, _, _ = policy_gradient_run(tmp_path, steps=4, checkpoint="whole.npz")
    whole.run(progress=False)
    half, rollouts, reference, _ = policy_gradient_run(tmp_path, steps=4, checkpoint="half.npz")
    half.run(until=2, progress=False)
    resumed = Trainer.resume(str(tmp_path / "half.npz"), rollouts)
    resumed.model = objectives.PolicyGradient(resumed.model, reference, rollouts, kl_coef=0.1)
    resumed.run(progress=False)
    assert resumed.history.step_metrics == whole.history.step_metrics
    assert all(np.allclose(resumed.model.params[k], p, rtol=1e-5, atol=1e-7) for k, p in whole.model.params.items())
