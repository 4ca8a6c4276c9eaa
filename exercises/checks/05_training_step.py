"""The checks of exercise 05: a full training step of a one-block GPT.

The reference is minilm's GPT with the same parameters; its own gradients are checked against finite
differences in minilm's test suite. Every check builds its model and batch from its own fixed seed."""
import numpy as np

from minilm import GPT, GPTConfig
from minilm.course.feedback import gradient_problem, mismatch

N_HEAD = 2  # as in the notebook


def tiny_model(rng, roughen=0.1, V=8, T=8, C=16):
    """A one-block GPT (float64), its parameters moved away from their initial values by `roughen`, so that no
    part is trivially 1 or 0."""
    config = GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=N_HEAD, d_model=C, dtype="float64")
    model = GPT(config, seed=int(rng.integers(2**31)))
    for p in model.params.values():
        p += rng.normal(size=p.shape) * roughen
    return model


def counting_batch(rng, V=8, T=8, B=4):
    """B sequences that count up modulo V from random starts: idx (B, T), targets = the next numbers."""
    seq = (rng.integers(0, V, size=(B, 1)) + np.arange(T + 1)) % V  # (B, T + 1)
    return seq[:, :-1], seq[:, 1:]


def yours_and_reference(loss_and_grads, seed):
    """(your loss, your grads), (the reference's loss, its grads) and the parameters, on a model and batch from seed."""
    rng = np.random.default_rng(seed)
    model = tiny_model(rng)
    idx, targets = counting_batch(rng)
    reference = model.loss_and_grads(idx, targets)
    return loss_and_grads(model.params, idx, targets), reference, model.params


def loss(loss_and_grads):
    """the loss matches the reference model's"""
    (got, _), (expected, _), _ = yours_and_reference(loss_and_grads, 501)
    assert np.ndim(got) == 0, f"loss must be one number, got shape {np.shape(got)}"
    problem = mismatch("your loss", got, expected)
    assert not problem, f"{problem}: check the forward pass layer by layer against the diagram"


def gradients(loss_and_grads):
    """there is a gradient of the right shape for every parameter, and each matches the reference"""
    (_, grads), (_, expected), params = yours_and_reference(loss_and_grads, 502)
    missing = sorted(set(params) - set(grads))
    assert not missing, f"grads has no entry for {', '.join(missing)}"
    problems = [gradient_problem(name, expected[name], grads[name], reference="the reference model") for name in params]
    problems = [p for p in problems if p]
    assert not problems, "; ".join(problems)


def training(loss_and_grads, train_step):
    """200 steps of train_step on one fixed batch drive the loss far down"""
    rng = np.random.default_rng(503)
    params = tiny_model(rng, roughen=0).params
    idx, targets = counting_batch(rng)
    before = {name: p.copy() for name, p in params.items()}
    first = train_step(params, idx, targets, lr=0.5)
    expected_first = loss_and_grads({name: p.copy() for name, p in before.items()}, idx, targets)[0]  # your own loss
    assert np.isclose(first, expected_first, rtol=1e-10), f"train_step must return the loss before the step, {expected_first:.6f}; got {first}"
    assert any(not np.array_equal(before[n], params[n]) for n in params), "train_step must update params in place (params[name] -= lr * grads[name])"
    losses = [first] + [train_step(params, idx, targets, lr=0.5) for _ in range(199)]
    went_up = not losses[-1] < losses[0]  # (a NaN counts as up)
    hint = "step against the gradient: params -= lr * grads" if went_up else "are the gradients right (check 2)?"
    assert losses[-1] < 0.1 * losses[0], f"after 200 steps at lr=0.5 the loss went from {losses[0]:.3f} to {losses[-1]:.3f}; it must fall below a tenth ({hint})"


PARTS = {"loss_and_grads": [loss, gradients],
         "train_step": [training]}
