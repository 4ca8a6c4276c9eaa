"""Small helpers the test files share."""
import numpy as np

from minilm import backend

# The suite runs on the GPU with MINILM_DEVICE=cuda. There, sums over many values (the embedding's
# gradient is gathered with atomic adds) run in an order that changes from run to run, so a result
# repeats to float rounding, not bit for bit as it does on the CPU.
ON_GPU = backend.get_xp() is not np


def roughen(model, rng, scale):
    """Add Gaussian noise of this scale to every parameter, in place, on the model's device: away from
    the initial values (biases 0, gains 1, tiny weights), no gradient is trivially 0 or lost in
    finite-difference noise, and a model's outputs are far from uniform."""
    for p in model.params.values():
        p += model.xp.asarray(rng.standard_normal(p.shape) * scale, dtype=p.dtype)
    return model
