"""Fused CUDA kernels: optional fast paths for CuPy arrays, behind the readable functions' own signatures.

On a GPU every NumPy-style operation is one kernel launch and one pass over the GPU's memory. The
readable layers take several passes each (the GELU forward takes seven, a softmax five), which is what
makes a small model launch-bound and a large one memory-bound. Here each such chain is one kernel.

A function in layers.py or optim.py marked `@kernels.fused(kernels.NAME)` runs that kernel below when its
first argument is a CuPy array, and its own readable body otherwise (NumPy arrays, or MINILM_FUSED=0, or an
input the kernel does not take, such as a non-contiguous one: the kernel then returns NotImplemented).
`f.plain` is always the readable version; tests/test_gpu.py checks every kernel against it. The lessons
read the readable versions only: nothing here changes what the model computes, only how fast.
"""
import functools
import math
import os

import numpy as np

from .backend import _cupy as cp

ENABLED = os.environ.get("MINILM_FUSED", "1") != "0"  # set MINILM_FUSED=0 to time the readable code on a GPU


def fused(kernel, **constants):
    """Decorator: run `kernel` (one of this module's functions) when the first argument is a CuPy array,
    and the decorated readable function otherwise. `constants` are the readable code's named numbers that
    the kernel needs too (GELU's coefficients, the masked score): written once, beside the formula, and
    handed to the kernel as keyword arguments.

        @kernels.fused(kernels.gelu_forward, scale=GELU_SCALE, cubic=GELU_CUBIC)
        def gelu_forward(x): ...        # the readable version: f.plain; the kernel: f.kernel
    """
    def decorate(plain):
        @functools.wraps(plain)
        def dispatch(*args, **kwargs):
            first = args[0] if args else next(iter(kwargs.values()))
            if ENABLED and cp is not None and isinstance(first, cp.ndarray):
                result = kernel(*args, **kwargs, **constants)
                if result is not NotImplemented:
                    return result
            return plain(*args, **kwargs)

        dispatch.plain, dispatch.kernel = plain, kernel
        return dispatch
    return decorate


def _real(x):
    return x.dtype in (np.float32, np.float64) and x.flags.c_contiguous


# --------------------------------------------------------------------------------------------------
# Elementwise chains: GELU forward and backward, the AdamW update. Same formulas as the readable code.

@functools.cache
def _elementwise(name):
    kernels = {
        "gelu_forward": ("T x, T c0, T c1", "T out, T t", """
            t = tanh((x * x * c1 + c0) * x);
            out = (t + (T)1) * x * (T)0.5;"""),
        "gelu_backward": ("T dout, T x, T t, T c0, T c3", "T g", """
            T slope = x * x * c3 + c0;
            g = ((((T)1 - t * t) * x * slope + t) + (T)1) * (T)0.5 * dout;"""),
        "softmax_backward": ("T att, T row_dot", "T d", "d = (d - row_dot) * att;"),
        "adamw_update": ("T g, T b1, T one_minus_b1, T b2, T one_minus_b2, T shrink, T inv_sqrt_c2, T eps, T lr_c1",
                         "T p, T m, T v", """
            m = b1 * m + one_minus_b1 * g;
            v = b2 * v + g * g * one_minus_b2;
            p = p * shrink - m / (sqrt(v) * inv_sqrt_c2 + eps) * lr_c1;"""),
    }
    params, outputs, body = kernels[name]
    return cp.ElementwiseKernel(params, outputs, body, f"minilm_{name}")


def gelu_forward(x, *, scale, cubic):
    """c0 = scale, c1 = cubic * scale: the inner term is (c1 x^2 + c0) x"""
    if not _real(x):
        return NotImplemented
    out, t = _elementwise("gelu_forward")(x, scale, cubic * scale)
    return out, (x, t)


def gelu_backward(dout, cache, *, scale, cubic):
    """c3 = 3 cubic scale: the inner term's slope is c3 x^2 + c0"""
    x, t = cache
    if not (_real(dout) and dout.dtype == x.dtype):
        return NotImplemented
    return _elementwise("gelu_backward")(dout, x, t, scale, 3 * cubic * scale)


def adamw_update(p, g, m, v, b1, b2, eps, lr, decay, correction1, correction2):
    if not all(_real(a) and a.dtype == p.dtype for a in (g, m, v)):
        return NotImplemented
    _elementwise("adamw_update")(g, b1, 1 - b1, b2, 1 - b2, 1 - decay, 1 / math.sqrt(correction2), eps,
                                 lr / correction1, p, m, v)


# --------------------------------------------------------------------------------------------------
# Row kernels: one thread block per row of the last axis (a softmax row, a position's C channels),
# reading the row from memory once and writing it once. Sums and maxima across the block go through
# warp shuffles and a 32-slot shared array.

_ROW_SOURCE = r"""
__device__ REAL block_reduce(REAL v, REAL* partial, const bool is_max) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const REAL other = __shfl_xor_sync(0xffffffff, v, offset);
        v = is_max ? fmax(v, other) : v + other;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? partial[lane] : (is_max ? partial[0] : (REAL)0);
        for (int offset = 16; offset > 0; offset >>= 1) {
            const REAL other = __shfl_xor_sync(0xffffffff, v, offset);
            v = is_max ? fmax(v, other) : v + other;
        }
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    v = partial[0];
    __syncthreads();  // partial is free for the next reduction
    return v;
}

// y = exp(x - max x) / sum exp(x - max x) along each row of n values; y may be x (in place).
// With mask_rows > 0, row r first reads the scores that row (r % mask_rows) of the mask hides as
// masked_score: one (Tq, Tk) mask shared by every batch row and head.
extern "C" __global__ void softmax_rows(const REAL* x, REAL* y, const bool* mask, const int mask_rows,
                                        const REAL masked_score, const int n) {
    __shared__ REAL partial[32];
    const REAL* xr = x + (long long)blockIdx.x * n;
    REAL* yr = y + (long long)blockIdx.x * n;
    const bool* mr = mask_rows > 0 ? mask + (long long)(blockIdx.x % mask_rows) * n : 0;
#define SCORE(j) ((mr == 0 || mr[j]) ? xr[j] : masked_score)
    REAL m = SCORE(0);
    for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmax(m, SCORE(j));
    m = block_reduce(m, partial, true);
    REAL s = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) { const REAL e = exp(SCORE(j) - m); yr[j] = e; s += e; }
    s = block_reduce(s, partial, false);
    for (int j = threadIdx.x; j < n; j += blockDim.x) yr[j] = yr[j] / s;
}

// xhat = (x - mean) * rstd, out = xhat * w + b, per row of n channels; rstd: one value per row
extern "C" __global__ void layernorm_rows(const REAL* x, const REAL* w, const REAL* b, REAL* out,
                                          REAL* xhat, REAL* rstd, const REAL eps, const int n) {
    __shared__ REAL partial[32];
    const long long start = (long long)blockIdx.x * n;
    REAL s = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s += x[start + j];
    const REAL mean = block_reduce(s, partial, false) / n;
    REAL q = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) { const REAL d = x[start + j] - mean; q += d * d; }
    const REAL r = (REAL)1 / sqrt(block_reduce(q, partial, false) / n + eps);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const REAL h = (x[start + j] - mean) * r;
        xhat[start + j] = h;
        out[start + j] = h * w[j] + b[j];
    }
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * w, per row
extern "C" __global__ void layernorm_rows_backward(const REAL* dout, const REAL* xhat, const REAL* w,
                                                   const REAL* rstd, REAL* dx, const int n) {
    __shared__ REAL partial[32];
    const long long start = (long long)blockIdx.x * n;
    REAL a = 0, c = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const REAL d = dout[start + j] * w[j];
        a += d;
        c += d * xhat[start + j];
    }
    const REAL mean_d = block_reduce(a, partial, false) / n, mean_dx = block_reduce(c, partial, false) / n;
    const REAL r = rstd[blockIdx.x];
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        dx[start + j] = (dout[start + j] * w[j] - mean_d - xhat[start + j] * mean_dx) * r;
}
"""

_THREADS = 256  # a multiple of 32: every warp is full, as the shuffles need


@functools.cache
def _row_kernel(name, dtype):
    real = "float" if dtype == np.float32 else "double"
    code = _ROW_SOURCE.replace("REAL", real)
    return cp.RawModule(code=code).get_function(name)


def _launch(name, rows_of, *args):
    """Run a row kernel with one block per row of rows_of (an array whose last axis is a row)."""
    n = rows_of.shape[-1]
    _row_kernel(name, rows_of.dtype)((rows_of.size // n,), (_THREADS,), (*args, np.int32(n)))


def softmax(x, axis=-1, out=None):
    if axis not in (-1, x.ndim - 1) or not _real(x) or x.size == 0:
        return NotImplemented
    if out is None:
        out = cp.empty_like(x)
    elif not (_real(out) and out.shape == x.shape and out.dtype == x.dtype):
        return NotImplemented
    _launch("softmax_rows", x, x, out, _no_mask(), np.int32(0), x.dtype.type(0))  # no mask: no masked score
    return out


def masked_softmax(scores, mask, *, masked_score):
    """Takes a mask shared by every batch row and head, shape (Tq, Tk) or (1, .., 1, Tq, Tk)."""
    mask = cp.asarray(mask)
    tq_tk = scores.shape[-2:]
    shared = mask.ndim >= 2 and mask.shape[-2:] == tq_tk and mask.size == math.prod(tq_tk)  # one (Tq, Tk) for all
    if not _real(scores) or scores.size == 0 or mask.dtype != bool or not shared:
        return NotImplemented
    rows = cp.ascontiguousarray(mask.reshape(scores.shape[-2:]))
    _launch("softmax_rows", scores, scores, scores, rows, np.int32(rows.shape[0]), scores.dtype.type(masked_score))
    return scores


@functools.cache
def _no_mask():
    return cp.ones(1, dtype=bool)  # a placeholder pointer for the unmasked softmax


def softmax_backward(datt, att, row_dot):
    if not all(_real(a) and a.dtype == datt.dtype for a in (datt, att)) or row_dot.dtype != datt.dtype:
        return NotImplemented
    return _elementwise("softmax_backward")(att, row_dot, datt)


def layernorm_forward(x, w, b, eps=1e-5):
    if not all(_real(a) and a.dtype == x.dtype for a in (x, w, b)) or x.size == 0:
        return NotImplemented
    out, xhat = cp.empty_like(x), cp.empty_like(x)
    rstd = cp.empty((*x.shape[:-1], 1), dtype=x.dtype)
    _launch("layernorm_rows", x, x, w, b, out, xhat, rstd, x.dtype.type(eps))
    return out, (xhat, rstd, w)


def layernorm_backward(dout, cache):
    xhat, rstd, w = cache
    if not all(_real(a) and a.dtype == xhat.dtype for a in (dout, xhat, rstd, w)) or dout.shape != xhat.shape:
        return NotImplemented
    sum_axes = tuple(range(dout.ndim - 1))
    dx = cp.empty_like(dout)
    _launch("layernorm_rows_backward", dout, dout, xhat, w, rstd, dx)
    return dx, (dout * xhat).sum(axis=sum_axes), dout.sum(axis=sum_axes)
