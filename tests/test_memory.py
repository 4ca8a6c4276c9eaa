"""Freed arrays stay in the process for the next step (minilm/memory.py) once a Trainer starts to train, unless
MINILM_KEEP_MEMORY=0; importing minilm leaves malloc as it was."""
import os
import subprocess
import sys

import pytest

from minilm import memory

pytestmark = pytest.mark.skipif(not memory.keep_freed_memory(), reason="needs Linux with glibc's mallopt")

# In a fresh process: import minilm (and train one step if asked), then fill and free arrays of the given MiB
# and print how much of them is still resident, and whether minilm.memory recorded tuning malloc. 64 MiB is
# above the largest threshold glibc's own adaptive mmap threshold reaches (32 MiB), so untuned it always goes
# straight back.
CHILD = """
import os, sys
import numpy as np
import minilm
from minilm import memory
if sys.argv[1] == "train":
    from minilm.train import TrainConfig, Trainer
    model = minilm.GPT(minilm.GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, d_model=16), seed=0)
    Trainer(model, np.arange(200) % 16, config=TrainConfig(steps=1, batch_size=2, eval_every=0)).run(progress=False)
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = resident_mib()
arrays = [np.ones(int(mib) * 2**18, dtype=np.float32) for mib in sys.argv[2:]]  # every page touched
del arrays
print(resident_mib() - before, memory.tuned)
"""


def kept_mib(what, sizes=(64,), **env):
    """(MiB of freed arrays of these sizes in MiB still resident, minilm.memory.tuned) in a fresh process that
    imports minilm, and with what="train" also trains one step."""
    out = subprocess.run([sys.executable, "-c", CHILD, what, *map(str, sizes)], capture_output=True, text=True,
                         check=True, env=os.environ | env)
    kept, tuned = out.stdout.split()
    return float(kept), tuned == "True"


def test_a_freed_array_stays_resident_for_reuse_once_training_starts_and_the_opt_out_returns_it():
    kept, tuned = kept_mib("train", MINILM_KEEP_MEMORY="1")
    assert kept > 60 and tuned  # kept in the heap, ready for the next step's array
    kept, tuned = kept_mib("train", MINILM_KEEP_MEMORY="0")
    assert kept < 4 and not tuned  # glibc's default: handed straight back to the system


def test_a_step_that_frees_more_than_2_gib_keeps_it_all():
    """Freed heap is never trimmed: 2.25 GiB freed at once (three 768 MiB arrays, each served from the heap)
    stays resident, where a trim threshold (glibc's default, or the 2 GiB this module once set) gives all but
    a little back, to come back as fresh pages the next step."""
    kept, tuned = kept_mib("train", sizes=(768, 768, 768), MINILM_KEEP_MEMORY="1")
    assert kept > 2200 and tuned


def test_importing_minilm_leaves_malloc_as_it_was():
    kept, tuned = kept_mib("import", MINILM_KEEP_MEMORY="1")
    assert kept < 4 and not tuned


def test_the_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("MINILM_KEEP_MEMORY", "0")
    assert memory.keep_freed_memory() is False
