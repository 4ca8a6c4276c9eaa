"""Every layer tuned for the CPU against the textbook formula kept beside it (layers.*_reference,
optim.adamw_update_reference): forward and backward, in float64, on odd shapes and on non-contiguous inputs.
The two differ only in float rounding, and the tuned one leaves its inputs as they were."""
import numpy as np
import pytest

from minilm import layers, masks, optim
from minilm.finite_differences import relative_error

TOL = 1e-12  # of ||a - b|| / (||a|| + ||b||)
ZERO = 1e-14  # a result that is 0 (a lone key's query gets no gradient) comes out as rounding noise this small
SHAPES = [(3, 5, 7), (1, 1, 13)]
LAYOUTS = ["contiguous", "strided", "transposed"]


def array(rng, shape, layout, scale=1.0):
    """A float64 array of this shape: in C order, every other entry of a wider array, or the transpose of
    an array of the reversed shape."""
    if layout == "contiguous":
        return rng.standard_normal(shape) * scale
    if layout == "strided":
        return (rng.standard_normal((*shape[:-1], 2 * shape[-1])) * scale)[..., ::2]
    return (rng.standard_normal(shape[::-1]) * scale).T


def assert_close(a, b):
    assert relative_error(a, b) < TOL or max(np.abs(a).max(), np.abs(b).max()) < ZERO


def as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def assert_same(tuned, reference, inputs, dout):
    """Two (forward, backward) pairs on the same inputs: equal outputs, equal gradients, inputs untouched."""
    before = {name: a.copy() for name, a in inputs.items()}
    out, cache = tuned[0](**inputs)
    ref_out, ref_cache = reference[0](**inputs)
    assert_close(out, ref_out)
    grads, ref_grads = as_tuple(tuned[1](dout, cache)), as_tuple(reference[1](dout, ref_cache))
    for g, ref in zip(grads, ref_grads, strict=True):
        if g is None or ref is None:
            assert g is ref  # no bias: no bias gradient from either
        else:
            assert_close(g, ref)
    for name, a in inputs.items():
        np.testing.assert_array_equal(a, before[name])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gelu(rng, shape, layout):
    assert_same((layers.gelu_forward, layers.gelu_backward),
                (layers.gelu_forward_reference, layers.gelu_backward_reference),
                {"x": array(rng, shape, layout, 3.0)}, array(rng, shape, layout))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_silu(rng, shape, layout):
    assert_same((layers.silu_forward, layers.silu_backward),
                (layers.silu_forward_reference, layers.silu_backward_reference),
                {"x": array(rng, shape, layout, 3.0)}, array(rng, shape, layout))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layernorm(rng, shape, layout):
    C = shape[-1]
    inputs = {"x": array(rng, shape, layout, 3.0) + 1, "w": array(rng, (C,), layout), "b": array(rng, (C,), layout)}
    assert_same((layers.layernorm_forward, layers.layernorm_backward),
                (layers.layernorm_forward_reference, layers.layernorm_backward_reference),
                inputs, array(rng, shape, layout))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("w_layout", ["contiguous", "transposed"])  # transposed: the tied head, wte.T
@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward(rng, shape, layout, w_layout, bias):
    C_in, C_out = shape[-1], 4
    inputs = {"x": array(rng, shape, layout), "w": array(rng, (C_in, C_out), w_layout),
              "b": array(rng, (C_out,), layout) if bias else None}
    assert_same((layers.linear_forward, layers.linear_backward),
                (layers.linear_forward, layers.linear_backward_reference),
                {k: v for k, v in inputs.items() if v is not None}, array(rng, (*shape[:-1], C_out), layout))


@pytest.mark.parametrize("B, nh, Tq, hs", [(3, 2, 5, 7), (1, 1, 1, 13)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("past", [0, 2])  # past > 0: the queries are the last Tq of Tq + past keys (a KV cache)
def test_attention(rng, B, nh, Tq, hs, layout, past):
    Tk = Tq + past
    inputs = {"q": array(rng, (B, nh, Tq, hs), layout), "k": array(rng, (B, nh, Tk, hs), layout),
              "v": array(rng, (B, nh, Tk, hs), layout), "mask": masks.causal_mask(Tq, Tk)}
    assert_same((layers.attention_forward, layers.attention_backward),
                (layers.attention_forward_reference, layers.attention_backward_reference),
                inputs, array(rng, (B, nh, Tq, hs), layout))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_cross_entropy(rng, shape, layout, masked):
    B, T, V = shape
    logits = array(rng, shape, layout, 3.0)
    targets = rng.integers(0, V, size=(B, T))
    loss_mask = rng.random((B, T)) < 0.6 if masked else None
    before = logits.copy()
    loss, cache = layers.softmax_cross_entropy_forward(logits, targets, loss_mask)
    ref_loss, ref_cache = layers.softmax_cross_entropy_forward_reference(logits, targets, loss_mask)
    assert_close(loss, ref_loss)
    assert_close(layers.softmax_cross_entropy_backward(cache),
                 layers.softmax_cross_entropy_backward_reference(ref_cache))
    np.testing.assert_array_equal(logits, before)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("decay", [0.0, 1e-3])
def test_adamw_update(rng, shape, layout, decay):
    p, g, m = (array(rng, shape, layout) for _ in range(3))
    v = array(rng, shape, layout) ** 2  # a second moment is never negative
    hyper = dict(b1=0.9, b2=0.95, eps=1e-8, lr=1e-2, decay=decay, correction1=1 - 0.9 ** 3, correction2=1 - 0.95 ** 3)
    expected = optim.adamw_update_reference(p, g, m, v, **hyper)
    g_before = g.copy()
    optim.adamw_update(p, g, m, v, **hyper)  # in place on p, m and v
    for got, want in zip((p, m, v), expected, strict=True):
        assert_close(got, want)
    np.testing.assert_array_equal(g, g_before)
