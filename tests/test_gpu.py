"""The same engine on CuPy: identical code, results equal to NumPy's. Skipped without a CUDA device."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, backend

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
