"""The array module: NumPy on the CPU, CuPy on a CUDA GPU, chosen once.

Every function in the engine asks its inputs which module they live in (`xp_of`), so one piece of
code runs on both. Host copies happen only at the edges, through `to_numpy`.
"""
import os

import numpy as np

from .errors import MinilmError

try:  # CuPy is optional: `pip install 'minilm-course[cuda12]'` brings it.
    import cupy as _cupy
except Exception:  # ImportError, or a CuPy that cannot find its CUDA libraries
    _cupy = None


def xp_of(*arrays):
    """The array module (numpy or cupy) that holds these arrays."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def get_xp(device=None):
    """The array module for a device name: 'cpu' (NumPy) or 'cuda' (CuPy).

    With no name, the MINILM_DEVICE environment variable decides, and 'cpu' is the default.
    Asking for 'cuda' where it cannot work is an error, never a silent fall-back to the CPU.
    """
    device = (device or os.environ.get("MINILM_DEVICE") or "cpu").lower()
    if device == "cpu":
        return np
    if device != "cuda":
        raise MinilmError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    if _cupy is None:
        raise MinilmError("--device cuda needs CuPy: pip install 'minilm-course[cuda12]' (or [cuda13]) "
                          "on a machine with an NVIDIA GPU")
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device
        raise MinilmError(f"--device cuda: CuPy is installed but no CUDA device is usable ({type(e).__name__}); "
                          "use --device cpu") from None
    if count == 0:
        raise MinilmError("--device cuda: CuPy found no CUDA device; use --device cpu")
    return _cupy


def to_numpy(x):
    """A NumPy copy of an array from either module (for logging, plots and checkpoints)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def device_name(xp):
    return "cuda" if xp is not np else "cpu"
