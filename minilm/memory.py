"""Keep freed memory in the process for the next training step (Linux with glibc; the Trainer asks for it when
it starts to train, not `import minilm`).

A training step allocates and frees the same large arrays every step: activations, their gradients, the
logits. By default glibc returns each freed block above a threshold (128 KiB, raised adaptively up to
32 MiB) to the operating system at once, so the next step's array of the same size comes back as fresh pages
that the kernel must zero and map, one page fault at a time. Raising glibc's mmap and trim thresholds keeps
those blocks in the heap, where the next step reuses them. Nor is freed heap ever trimmed: a step that frees
gigabytes (a pretrained model fully fine-tuned) would otherwise get its pages back one fault at a time. What each
setting saves is measured by benchmarks/bench_train.py and bench_finetune_shards.py (benchmarks/RESULTS.md).
The arithmetic is untouched.
The setting is the whole process's, so only training turns it on (minilm.train.Trainer.run): importing minilm
leaves malloc as it was. Set MINILM_KEEP_MEMORY=0 to leave malloc as it is even then.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt's parameter numbers (malloc.h)

tuned = False  # True once keep_freed_memory has set glibc's thresholds in this process


def keep_freed_memory():
    """Tell glibc to serve blocks up to 1 GiB from the heap and never to give freed heap back (once per
    process). Returns True if it did (False elsewhere: not Linux, another C library, or MINILM_KEEP_MEMORY=0)."""
    global tuned
    if not sys.platform.startswith("linux") or os.environ.get("MINILM_KEEP_MEMORY") == "0":
        return False
    if tuned:
        return True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    tuned = all(mallopt(param, value) == 1 for param, value in
                ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, -1), (M_TOP_PAD, 1 << 28)))  # -1: never trim
    return tuned
