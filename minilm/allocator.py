"""One trick that makes the NumPy engine faster on Linux, kept here so the layers stay readable.

A training step makes many large temporary arrays (activations, gradients). glibc hands large freed
blocks straight back to the operating system, so the next step's temporaries arrive as fresh pages that
the kernel must zero-fill: one page fault every 4 KiB. Raising glibc's mmap and trim thresholds keeps freed
memory inside the process for reuse. Measured on 2 cores at config b: 545 -> 458 ms per step
(benchmarks/RESULTS.md). The cost: the process keeps its peak memory instead of returning it.
"""
import ctypes
import sys

_done = False


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse. Once per process; a no-op off Linux/glibc."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return
    _done = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another C library: nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)  # serve blocks up to 1 GiB from the heap, not fresh mmaps
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 32)  # and do not hand the heap's top back after every free
