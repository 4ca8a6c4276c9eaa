"""The checks of exercise 04: multi-head attention under a mask, forward and backward.

Every check draws its inputs from its own fixed seed, so a wrong answer fails on every run."""
import numpy as np

from minilm import layers, masks
from minilm.course.feedback import attention_problem, attention_sees, explained_call, gradient_problems, mismatch


def scaled(q, k, v, mask, c):
    """The reference attention with the scores multiplied by c / √hs instead of 1 / √hs."""
    return layers.attention_forward(q * c, k, v, mask)[0]


def attention_mistakes(q, k, v, mask):
    """What the usual attention mistakes give for these inputs."""
    nh, hs = q.shape[1], q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(hs)
    return [("does not divide the scores by √hs: S = Q Kᵀ / √hs", scaled(q, k, v, mask, np.sqrt(hs))),
            ("divides the scores by hs, not by √hs", scaled(q, k, v, mask, 1 / np.sqrt(hs))),
            ("multiplies the scores by √hs: divide them by it", scaled(q, k, v, mask, hs)),
            (f"divides the scores by √(nh·hs) = √{nh * hs}, the model width: the scale is √hs, the head size", scaled(q, k, v, mask, 1 / np.sqrt(nh))),
            ("multiplies the scores by the mask: a masked score of 0 still gets weight, so mask with np.where(mask, S, -1e30)", layers.softmax(scores * mask) @ v),
            ("masks the weights after the softmax, so rows no longer sum to 1: mask the scores before it", (layers.softmax(scores) * mask) @ v),
            ("takes the softmax over the queries: each query's weights over the keys (the last axis) must sum to 1", layers.softmax(np.where(mask, scores, -1e30), axis=-2) @ v)]


def forward(attention_forward):
    """the forward pass matches the reference under every mask"""
    rng = np.random.default_rng(401)
    B, nh, hs = 2, 3, 4
    for name, mask in [("causal", masks.causal_mask(5)), ("bidirectional", masks.bidirectional_mask(5)),
                       ("prefix-LM (2 of 5)", masks.prefix_lm_mask(5, 2)), ("causal, 2 queries over 5 cached keys", masks.causal_mask(2, 5))]:
        Tq, Tk = mask.shape
        q, k, v = rng.normal(size=(B, nh, Tq, hs)), rng.normal(size=(B, nh, Tk, hs)), rng.normal(size=(B, nh, Tk, hs))
        expected = layers.attention_forward(q, k, v, mask)[0]
        got = attention_forward(q.copy(), k.copy(), v.copy(), mask.copy())[0]
        problem = mismatch(f"under the {name} mask, your output", got, expected, mistakes=attention_mistakes(q, k, v, mask))
        assert not problem, problem


def masked_keys(attention_forward):
    """a masked key has no influence at all, and a visible one does"""
    rng = np.random.default_rng(402)
    T, hs = 6, 4
    mask = rng.random((T, T)) < 0.5
    mask[np.arange(T), rng.integers(0, T, size=T)] = True  # every query sees at least one key
    q, k, v = (rng.normal(size=(1, 2, T, hs)) for _ in range(3))
    sees = attention_sees(lambda k, v: attention_forward(q, k, v, mask)[0], k, v)
    problem = attention_problem(sees, mask, "attention under a random mask")
    assert not problem, problem


def backward_problems(attention_forward, attention_backward, rng, mask, B=2, nh=2, hs=3):
    """The gradients of sum(out * R) w.r.t. q, k and v that disagree with finite differences."""
    Tq, Tk = mask.shape
    q, k, v = rng.normal(size=(B, nh, Tq, hs)), rng.normal(size=(B, nh, Tk, hs)), rng.normal(size=(B, nh, Tk, hs))
    R = rng.normal(size=(B, nh, Tq, hs))  # loss = sum(out * R), so dout = R
    hint = f"with {Tq} queries over {Tk} keys, check each product's shapes: dv = Aᵀ dout is (Tk, hs), dA = dout Vᵀ is (Tq, Tk)"
    dq, dk, dv = explained_call("attention_backward", hint, attention_backward, R.copy(), attention_forward(q, k, v, mask)[1])
    return gradient_problems(lambda: (attention_forward(q, k, v, mask)[0] * R).sum(), {"q": q, "k": k, "v": v}, {"q": dq, "k": dk, "v": dv})


def backward_causal(attention_forward, attention_backward):
    """the backward pass matches finite differences under the causal mask"""
    problems = backward_problems(attention_forward, attention_backward, np.random.default_rng(403), masks.causal_mask(4))
    assert not problems, "; ".join(problems)


def backward_cached(attention_forward, attention_backward):
    """... and with fewer queries than keys (2 new positions over 5), where shapes expose a missing transpose"""
    problems = backward_problems(attention_forward, attention_backward, np.random.default_rng(404), masks.causal_mask(2, 5))
    assert not problems, "; ".join(problems)


PARTS = {"attention_forward": [forward, masked_keys],
         "attention_backward": [backward_causal, backward_cached]}
