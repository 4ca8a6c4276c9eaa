"""Memory: keep freed memory in the process for the next training step (Linux with glibc; the Trainer asks for it when
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

training_bytes estimates what training a GPT takes, so that `train` refuses sizes that cannot fit (1.86 TiB
for --d-model 1000000000) in one line rather than NumPy's memory error.
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


def training_bytes(config, batch_size):
    """About how many bytes training a GPT of this config (minilm.model.GPTConfig) on batch_size rows takes: four
    values per parameter (the weight, its gradient, AdamW's two moments) and what a step's backward pass keeps,
    about 16 values per channel per block for each position, the attention maps and the logits (three of each:
    the logits, their softmax, their gradient). A lower bound, meant to refuse sizes that can never fit."""
    import numpy as np

    from .model import param_shapes

    parameters = sum(int(np.prod(shape)) for shape in param_shapes(config).values())
    positions = batch_size * config.block_size
    activations = positions * (16 * config.d_model * config.n_layer + 3 * config.vocab_size) \
        + 2 * batch_size * config.n_head * config.block_size ** 2 * config.n_layer
    return (4 * parameters + activations) * np.dtype(config.dtype).itemsize


def physical_memory():
    """This machine's memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
