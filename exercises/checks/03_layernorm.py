"""The checks of exercise 03: layer normalisation, forward and backward.

The inputs are chosen to tell the usual mistakes apart: positions whose variance ranges from about eps to far
above it (so where eps goes shows), channels with an offset (so a missing mean shows), and random gains
and biases. Every check draws from its own fixed seed, so a wrong answer fails on every run."""
import numpy as np

from minilm import layers
from minilm.course.feedback import gradient_problems, mismatch

EPS = 1e-5


def positions(rng, B=2, T=3, C=8):
    """x (B, T, C): each position's channels spread from 0.003 to 3 (variance about eps to 9), offset by up to ±0.5."""
    spread = np.geomspace(3e-3, 3, B * T).reshape(B, T, 1)
    return rng.normal(size=(B, T, C)) * spread + rng.uniform(-0.5, 0.5, size=(B, T, 1))


def normalised(x, axis=-1, ddof=0, eps=EPS, eps_inside=True):
    """(x - mean) / sqrt(var + eps) over `axis`, with the variants of the usual mistakes."""
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    return (x - mu) / (np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps)


def layernorm_mistakes(x, w, b):
    """What the usual layernorm mistakes give for these inputs."""
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return [("uses the unbiased variance (divides by C - 1): layernorm's variance divides by C, as np.var does", normalised(x, ddof=1) * w + b),
            ("adds eps outside the square root: divide by sqrt(var + eps), not by sqrt(var) + eps", normalised(x, eps_inside=False) * w + b),
            ("leaves out eps: divide by sqrt(var + eps)", normalised(x, eps=0) * w + b),
            ("divides by the variance, not by the standard deviation: (x - mu) / sqrt(var + eps)", (x - mu) / (var + EPS) * w + b),
            ("does not subtract the mean: xhat = (x - mu) / sqrt(var + eps)", x / np.sqrt(var + EPS) * w + b),
            ("normalises over every entry at once: the mean and variance are over each position's C channels, axis=-1", normalised(x, axis=None) * w + b),
            ("normalises over the batch axis (0): the mean and variance are over each position's C channels, axis=-1", normalised(x, axis=0) * w + b),
            ("normalises over the time axis (1): the mean and variance are over each position's C channels, axis=-1", normalised(x, axis=1) * w + b),
            ("adds the bias before the gain: out = xhat * w + b", (normalised(x) + b) * w)]


def forward_problem(layernorm_forward, x, w, b, rtol=1e-10):
    """'' if layernorm_forward(x, w, b) matches the reference, else which mistake it makes."""
    got = layernorm_forward(x.copy(), w.copy(), b.copy())[0]
    return mismatch("layernorm_forward(x, w, b)", got, layers.layernorm_forward(x, w, b)[0], rtol=rtol, mistakes=layernorm_mistakes(x, w, b))


def normalises(layernorm_forward):
    """with w = 1 and b = 0 each position is normalised over its C channels"""
    x = positions(np.random.default_rng(301))
    problem = forward_problem(layernorm_forward, x, np.ones(x.shape[-1]), np.zeros(x.shape[-1]))
    assert not problem, problem


def gain_and_bias(layernorm_forward):
    """the forward pass matches the reference, gain and bias included"""
    rng = np.random.default_rng(302)
    x = positions(rng)
    problem = forward_problem(layernorm_forward, x, rng.normal(size=x.shape[-1]), rng.normal(size=x.shape[-1]))
    assert not problem, problem


def float32_stable(layernorm_forward):
    """stable in float32 when the channels share a large offset"""
    x32 = (np.random.default_rng(303).normal(size=(2, 4, 16)) + 1000).astype(np.float32)
    w, b = np.ones(16), np.zeros(16)
    x = x32.astype(np.float64)
    err = np.abs(layernorm_forward(x32, w.astype(np.float32), b.astype(np.float32))[0] - layers.layernorm_forward(x, w, b)[0]).max()
    if err < 1e-3:
        return
    # Off in float32: is the arithmetic losing digits, or is the same pass wrong in float64 too?
    problem = forward_problem(layernorm_forward, x, w, b, rtol=1e-6)
    assert not problem, f"on inputs around 1000 (in float64 too): {problem}"
    assert False, (f"on float32 inputs around 1000 your output is off by up to {err:.2g}, though the same inputs in float64 "
                   "come out right: compute the variance as mean((x - mu)**2), not mean(x**2) - mu**2, which cancels catastrophically")


def backward(layernorm_forward, layernorm_backward):
    """the backward pass matches finite differences for x, w and b"""
    rng = np.random.default_rng(304)
    B, T, C = 2, 3, 5
    x, w, b = rng.normal(size=(B, T, C)), rng.normal(size=C), rng.normal(size=C)
    R = rng.normal(size=(B, T, C))  # loss = sum(out * R), so dout = R
    dx, dw, db = layernorm_backward(R.copy(), layernorm_forward(x, w, b)[1])
    problems = gradient_problems(lambda: (layernorm_forward(x, w, b)[0] * R).sum(), {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db})
    assert not problems, "; ".join(problems)


PARTS = {"layernorm_forward": [normalises, gain_and_bias, float32_stable],
         "layernorm_backward": [backward]}
