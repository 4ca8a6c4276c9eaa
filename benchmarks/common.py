"""Shared pieces of the benchmark scripts: the configs, FLOP accounting, a GEMM peak, careful timing."""
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minilm.memory import keep_freed_memory  # noqa: E402

keep_freed_memory()  # time steps as the Trainer runs them: it keeps freed memory when it starts to train

# (vocab, d_model, n_layer, n_head, block_size, batch): 2048 tokens per step for a, b, c
CONFIGS = {
    "a": dict(vocab_size=512, d_model=64, n_layer=2, n_head=4, block_size=64, batch=32),
    "b": dict(vocab_size=2048, d_model=256, n_layer=4, n_head=8, block_size=128, batch=16),
    "c": dict(vocab_size=8192, d_model=512, n_layer=6, n_head=8, block_size=256, batch=8),
    "d": dict(vocab_size=50304, d_model=768, n_layer=12, n_head=12, block_size=1024, batch=8),
}


def model_config(name, dtype="float32"):
    from minilm import GPTConfig
    c = CONFIGS[name]
    return GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"],
                     n_head=c["n_head"], d_model=c["d_model"], dtype=dtype)


def train_flops_per_token(config):
    """6 N for the weight matmuls (forward 2N, backward 4N), N = non-embedding parameters plus the
    output head (tied to wte, but its matmul is real work), plus 12 L T C for the attention scores and
    the weighted sum of values (computed over the full T x T, masked or not)."""
    C, L, T, V = config.d_model, config.n_layer, config.block_size, config.vocab_size
    n_matmul = L * 12 * C * C + V * C
    return 6 * n_matmul + 12 * L * T * C


def sync_for(xp):
    """A function that waits for the device to finish its queued work (a no-op for NumPy)."""
    return (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)


def median_time(fn, repeats=5, warmup=2, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gemm_peak(xp=np, n=2048, dtype="float32", sync=lambda: None):
    """FLOP/s of one large square matmul: the ceiling the model's matmuls can hope to reach."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype=dtype)
    b = xp.asarray(np.random.default_rng(1).standard_normal((n, n)), dtype=dtype)
    return 2 * n ** 3 / median_time(lambda: a @ b, repeats=7, sync=sync)


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def machine_and_blas():
    """machine(), and the BLAS kernel NumPy's OpenBLAS picked (threadpoolctl) with OPENBLAS_CORETYPE, which sets it."""
    from threadpoolctl import threadpool_info
    blas = next((b for b in threadpool_info() if b.get("user_api") == "blas"), {})
    return (f"machine: {machine()}; BLAS {blas.get('internal_api')} {blas.get('version')} {blas.get('architecture')}; "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
