"""The same engine on CuPy: identical code, results equal to NumPy's. Skipped without a CUDA device."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, backend, kernels, layers, masks, optim
from minilm.finite_differences import relative_error

try:
    backend.get_xp("cuda")
    HAVE_GPU = True
except Exception:
    HAVE_GPU = False

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")]


def test_cupy_forward_and_backward_match_numpy():
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, d_model=32, dtype="float64")
    cpu, gpu = GPT(config, seed=0, device="cpu"), GPT(config, seed=0, device="cuda")
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 50, (2, 16)), rng.integers(0, 50, (2, 16))
    loss_cpu, grads_cpu = cpu.loss_and_grads(idx, targets)
    loss_gpu, grads_gpu = gpu.loss_and_grads(idx, targets)
    assert abs(loss_cpu - loss_gpu) < 1e-10
    for name, g in grads_cpu.items():
        assert np.allclose(backend.to_numpy(grads_gpu[name]), g, rtol=1e-7, atol=1e-12), name


# ---- the fused kernels (minilm/kernels.py) against the readable functions they stand in for

TOLERANCE = {"float32": 5e-6, "float64": 5e-13}  # of ||a - b|| / (||a|| + ||b||)
DTYPES = list(TOLERANCE)


def randn(shape, dtype, seed=0, scale=1.0):
    import cupy
    return cupy.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_gelu_matches_the_readable_one(dtype):
    x, dout = randn((4, 33, 96), dtype, 0, 3.0), randn((4, 33, 96), dtype, 1)
    out, cache = layers.gelu_forward(x)
    out_plain, cache_plain = layers.gelu_forward.plain(x)
    assert relative_error(out, out_plain) < TOLERANCE[dtype]
    assert relative_error(cache[1], cache_plain[1]) < TOLERANCE[dtype]
    assert relative_error(layers.gelu_backward(dout, cache), layers.gelu_backward.plain(dout, cache_plain)) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 33, 256, 1000, 1025])
def test_fused_softmax_matches_the_readable_one_in_place_and_not(dtype, n):
    import cupy
    x = randn((3, 5, n), dtype, n, 4.0)
    x[..., ::3] = layers.MASKED_SCORE  # masked scores, as attention writes them
    expected = layers.softmax.plain(x.copy())
    out = cupy.full_like(x, np.nan)  # poisoned: every element must be written
    assert relative_error(layers.softmax(x, out=out), expected) < TOLERANCE[dtype]
    assert relative_error(layers.softmax(x), expected) < TOLERANCE[dtype]
    layers.softmax(x, out=x)
    assert relative_error(x, expected) < TOLERANCE[dtype]


def test_softmax_over_another_axis_or_a_strided_array_falls_back_to_the_readable_one():
    x = randn((6, 9), "float64", 3)
    for y, axis in ((x, 0), (x.T, -1)):  # the kernel takes contiguous rows only
        assert relative_error(layers.softmax(y, axis=axis), layers.softmax.plain(y, axis=axis)) < 5e-13


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [8, 96, 768, 1000])
def test_fused_layernorm_matches_the_readable_one(dtype, C):
    x, dout = randn((2, 17, C), dtype, 0, 2.0) + 0.5, randn((2, 17, C), dtype, 1)
    w, b = randn((C,), dtype, 2), randn((C,), dtype, 3)
    out, cache = layers.layernorm_forward(x, w, b)
    out_plain, cache_plain = layers.layernorm_forward.plain(x, w, b)
    assert relative_error(out, out_plain) < TOLERANCE[dtype]
    for ours, theirs in zip(cache, cache_plain):
        assert relative_error(ours, theirs) < TOLERANCE[dtype]
    for ours, theirs in zip(layers.layernorm_backward(dout, cache), layers.layernorm_backward.plain(dout, cache_plain)):
        assert relative_error(ours, theirs) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay", [0.0, 1e-3])
def test_fused_adamw_update_matches_the_readable_one(dtype, decay):
    p, g = randn((64, 48), dtype, 0), randn((64, 48), dtype, 1)
    m, v = randn((64, 48), dtype, 2, 0.1), randn((64, 48), dtype, 3, 0.1) ** 2
    plain = [a.copy() for a in (p, m, v)]
    args = (0.9, 0.95, 1e-8, 1e-2, decay, 1 - 0.9 ** 3, 1 - 0.95 ** 3)
    optim.adamw_update(p, g, m, v, *args)
    optim.adamw_update.plain(plain[0], g, plain[1], plain[2], *args)
    for ours, theirs in zip((p, m, v), plain):
        assert relative_error(ours, theirs) < TOLERANCE[dtype]


def test_training_steps_agree_with_the_fused_kernels_on_and_off(monkeypatch):
    config = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, d_model=64)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 64, (4, 32)), rng.integers(0, 64, (4, 32))
    losses = []
    for on in (True, False):
        monkeypatch.setattr(kernels, "ENABLED", on)
        model = GPT(config, seed=0, device="cuda")
        opt = optim.AdamW(model.params, lr=1e-3)
        for _ in range(3):
            loss, grads = model.loss_and_grads(idx, targets)
            optim.clip_grad_norm(grads, 1.0)
            opt.step(grads)
        losses.append(loss)
    assert abs(losses[0] - losses[1]) <= 1e-5 * abs(losses[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", ["(Tq, Tk)", "(1, 1, Tq, Tk)", "(B, 1, Tq, Tk)"])
def test_fused_masked_softmax_matches_the_readable_one(dtype, mask_shape):
    import cupy
    scores = randn((2, 3, 5, 9), dtype, 4, 3.0)
    causal = masks.causal_mask(5, 9)  # 5 new queries after 4 cached keys, as in generation
    mask = {"(Tq, Tk)": causal, "(1, 1, Tq, Tk)": causal[None, None],
            "(B, 1, Tq, Tk)": np.broadcast_to(causal, (2, 1, 5, 9))}[mask_shape]  # per batch row: the readable path
    expected = layers.masked_softmax.plain(scores.copy(), cupy.asarray(mask))
    assert relative_error(layers.masked_softmax(scores, mask), expected) < TOLERANCE[dtype]
    assert float(cupy.abs(expected * cupy.asarray(~causal)).max()) == 0  # hidden keys get exactly no weight


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_softmax_backward_matches_the_readable_one(dtype):
    datt, att = randn((2, 3, 7, 11), dtype, 0), layers.softmax(randn((2, 3, 7, 11), dtype, 1))
    row_dot = (att * datt).sum(axis=-1, keepdims=True)
    expected = layers.softmax_backward.plain(datt.copy(), att, row_dot)
    assert relative_error(layers.softmax_backward(datt, att, row_dot), expected) < TOLERANCE[dtype]
