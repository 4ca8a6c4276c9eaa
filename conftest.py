"""Shared by the tests and by the lessons' nbval runs (pytest collects tests/ and lessons/)."""
import os

import matplotlib
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))

matplotlib.use("Agg")  # plain tests draw off-screen; notebook kernels keep their inline backend
# nbval's kernels are child processes: let them import this checkout's minilm even where it is not installed
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
