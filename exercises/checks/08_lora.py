"""The checks of exercise 08: LoRA, forward and backward.

The inputs are chosen to tell the usual mistakes apart: a scale other than 1 (so a missing or misplaced scale
shows), a rank smaller than both widths, and random A and B (so a path left out of dx shows). Every check draws
from its own fixed seed, so a wrong answer fails on every run."""
import numpy as np

from minilm import layers
from minilm.course.feedback import gradient_problem, gradient_problems, mismatch

SCALE = 2.5


def inputs(rng, N=6, C_in=5, r=2, C_out=4):
    return (rng.normal(size=(N, C_in)), rng.normal(size=(C_in, C_out)), rng.normal(size=(C_in, r)),
            rng.normal(size=(r, C_out)))


def forward_mistakes(x, W, A, B):
    """What the usual mistakes give for these inputs."""
    return [("leaves out the scale: out = x W + scale (x A) B", x @ W + x @ A @ B),
            ("scales the frozen path too: only the low-rank path is scaled, out = x W + scale (x A) B",
             SCALE * (x @ W + x @ A @ B)),
            ("leaves out the frozen layer: out = x W + scale (x A) B", SCALE * x @ A @ B),
            ("leaves out the low-rank path: out = x W + scale (x A) B", x @ W)]


def starts_as_the_base(lora_forward):
    """with B = 0 the adapted layer is the frozen one, exactly"""
    x, W, A, B = inputs(np.random.default_rng(801))
    out = lora_forward(x.copy(), W.copy(), A.copy(), np.zeros_like(B), SCALE)[0]
    problem = mismatch("lora_forward(x, W, A, 0, scale)", out, x @ W, rtol=0, atol=1e-14)
    assert not problem, problem


def merged_weight(lora_forward):
    """the forward pass is the linear layer of the merged weight W + scale A B"""
    x, W, A, B = inputs(np.random.default_rng(802))
    out = lora_forward(x.copy(), W.copy(), A.copy(), B.copy(), SCALE)[0]
    expected = x @ layers.lora_merge(W, A, B, SCALE)
    problem = mismatch("lora_forward(x, W, A, B, scale)", out, expected, mistakes=forward_mistakes(x, W, A, B))
    assert not problem, problem


def backward(lora_forward, lora_backward):
    """the backward pass matches finite differences for x, A and B"""
    rng = np.random.default_rng(803)
    x, W, A, B = inputs(rng)
    R = rng.normal(size=(x.shape[0], W.shape[1]))  # loss = sum(out * R), so dout = R
    grads = lora_backward(R.copy(), lora_forward(x, W, A, B, SCALE)[1])
    if not isinstance(grads, tuple) or len(grads) != 3:
        assert False, "lora_backward must return three gradients, (dx, dA, dB): W is frozen and gets none"
    dx, dA, dB = grads
    if dx is not None and np.allclose(dx, R @ W.T):
        assert False, "dx misses the path through the adapters: x reaches the output through W and through A B"
    problems = gradient_problems(lambda: (lora_forward(x, W, A, B, SCALE)[0] * R).sum(), {"x": x, "A": A, "B": B},
                                 {"x": dx, "A": dA, "B": dB})
    assert not problems, "; ".join(problems)


def chain_through_the_product(lora_forward, lora_backward):
    """the adapters' gradients are the merged weight's gradient carried through A B"""
    rng = np.random.default_rng(804)
    x, W, A, B = inputs(rng, N=9, C_in=7, r=3, C_out=5)
    dout = rng.normal(size=(9, 5))
    _, dA, dB = lora_backward(dout.copy(), lora_forward(x, W, A, B, SCALE)[1])
    dA_ref, dB_ref = layers.lora_grads_from_merged(x.T @ dout, A, B, SCALE)  # dW' = x^T dout
    for name, got, ref in (("A", dA, dA_ref), ("B", dB, dB_ref)):
        problem = gradient_problem(name, ref, got, reference="scale dW' B^T and scale A^T dW'")
        assert not problem, problem


PARTS = {"lora_forward": [starts_as_the_base, merged_weight],
         "lora_backward": [backward, chain_through_the_product]}
