import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # plain tests draw off-screen; notebook kernels keep their inline backend


@pytest.fixture
def rng():
    return np.random.default_rng(0)
