"""Freed arrays stay in the process for the next step (minilm/memory.py), unless MINILM_KEEP_MEMORY=0."""
import os
import subprocess
import sys

import pytest

from minilm import memory

pytestmark = pytest.mark.skipif(not memory.keep_freed_memory(), reason="needs Linux with glibc's mallopt")

# In a fresh process: import minilm, fill and free a 64 MiB array, and print how much of it is still resident.
CHILD = """
import os
import numpy as np
import minilm
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = resident_mib()
a = np.ones(2**24, dtype=np.float32)  # 64 MiB, every page touched
del a
print(resident_mib() - before)
"""


def kept_mib(**env):
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         env=os.environ | env)
    return float(out.stdout)


def test_a_freed_array_stays_resident_for_reuse_and_the_opt_out_returns_it():
    assert kept_mib(MINILM_KEEP_MEMORY="1") > 60  # kept in the heap, ready for the next step's array
    assert kept_mib(MINILM_KEEP_MEMORY="0") < 4  # glibc's default: handed straight back to the system


def test_the_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("MINILM_KEEP_MEMORY", "0")
    assert memory.keep_freed_memory() is False
