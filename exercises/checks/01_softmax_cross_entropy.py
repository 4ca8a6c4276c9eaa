"""The checks of exercise 01: softmax and cross-entropy, forward and backward.

Every check draws its inputs from its own fixed seed, so a wrong answer fails on every run."""
import numpy as np

from minilm import layers
from minilm.course.feedback import mismatch


def softmax_mistakes(logits):
    """What the usual softmax mistakes return for these logits (whether the max was subtracted per row or once)."""
    mistakes = [("is not normalised: divide each row's exponentials by their sum", np.exp(logits))]
    for e in (np.exp(logits - logits.max(axis=-1, keepdims=True)), np.exp(logits - logits.max())):
        mistakes += [("normalises over the wrong axis: each row (the last axis) must sum to 1, so sum with axis=-1, keepdims=True",
                      e / e.sum(axis=axis, keepdims=True)) for axis in range(logits.ndim - 1)]
        mistakes.append(("divides by the sum of every entry, not of each row: sum with axis=-1, keepdims=True", e / e.sum()))
    return mistakes


def softmax_rows(softmax):
    """softmax gives rows of probabilities that match the reference"""
    logits = np.random.default_rng(101).normal(size=(3, 4, 7))
    problem = mismatch("softmax(logits)", softmax(logits.copy()), layers.softmax(logits), mistakes=softmax_mistakes(logits))
    assert not problem, problem


def softmax_large_logits(softmax):
    """softmax stays finite on large logits"""
    p = softmax(np.array([1000.0, 1000.0]))
    assert np.all(np.isfinite(p)), f"softmax([1000, 1000]) must be [0.5, 0.5], got {p}: exp(1000) overflows, subtract each row's max first"
    offsets = np.array([[0.0], [800.0], [2000.0], [-1500.0]])
    logits = np.random.default_rng(102).normal(size=(4, 9)) * 50 + offsets
    probs = softmax(logits.copy())
    assert np.all(np.isfinite(probs)), ("softmax of rows centred at 0, 800, 2000 and -1500 gives inf or NaN: subtract each row's "
                                        "own max (max(axis=-1, keepdims=True)), not one max for the whole array")
    problem = mismatch("softmax of large logits", probs, layers.softmax(logits))
    assert not problem, problem


def cross_entropy_value(cross_entropy):
    """cross-entropy is the mean of -log p(target)"""
    rng = np.random.default_rng(103)
    B, T, V = 2, 5, 11
    logits = rng.normal(size=(B, T, V)) * 2
    targets = rng.integers(0, V, size=(B, T))
    expected = float(layers.softmax_cross_entropy_forward(logits, targets)[0])
    got = cross_entropy(logits.copy(), targets.copy())
    assert np.ndim(got) == 0, f"cross_entropy must return one number (the mean over positions), got shape {np.shape(got)}"
    mistakes = [(f"is the sum over the B*T = {B * T} positions: the loss is their mean", expected * B * T),
                (f"is divided by B = {B} only: the mean is over all B*T = {B * T} positions", expected * T),
                ("uses log base 10: -log p is the natural log, np.log", expected / np.log(10))]
    problem = mismatch("cross_entropy(logits, targets)", got, expected, mistakes=mistakes)
    assert not problem, problem


def cross_entropy_large_logits(cross_entropy):
    """cross-entropy stays finite on large logits (log-sum-exp)"""
    got = cross_entropy(np.array([[[0.0, 1000.0]]]), np.array([[0]]))
    assert np.isfinite(got) and np.isclose(got, 1000.0), (
        f"logits [0, 1000] with target 0 must give loss 1000 (log-sum-exp: log(e^0 + e^1000) - 0), got {got}: "
        "p(target) underflows to 0, so compute -log p as logsumexp(z) - z_target")
    rng = np.random.default_rng(104)
    logits = rng.normal(size=(2, 3, 6)) * 300
    targets = rng.integers(0, 6, size=(2, 3))
    expected = float(layers.softmax_cross_entropy_forward(logits, targets)[0])
    problem = mismatch("cross-entropy of logits spread over ±1000", cross_entropy(logits.copy(), targets.copy()), expected)
    assert not problem, problem


def gradient(cross_entropy_backward):
    """the gradient is (p - onehot) / (B*T)"""
    rng = np.random.default_rng(105)
    B, T, V = 2, 3, 5
    logits = rng.normal(size=(B, T, V))
    targets = rng.integers(0, V, size=(B, T))
    p = layers.softmax(logits)
    onehot = np.eye(V)[targets]  # (B, T, V)
    mistakes = [(f"is p - onehot, not divided by the B*T = {B * T} positions: the loss is their mean", p - onehot),
                ("has no onehot term: subtract 1 at each position's target, (p - onehot(target)) / (B*T)", p / (B * T)),
                ("is onehot - p: the gradient of -log p_t is p - onehot, the sign the other way", (onehot - p) / (B * T))]
    problem = mismatch("dlogits", cross_entropy_backward(logits.copy(), targets.copy()), (p - onehot) / (B * T), mistakes=mistakes)
    assert not problem, problem


PARTS = {"softmax": [softmax_rows, softmax_large_logits],
         "cross_entropy": [cross_entropy_value, cross_entropy_large_logits],
         "cross_entropy_backward": [gradient]}
