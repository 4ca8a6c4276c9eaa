"""Peak resident memory of training steps at one config: minilm vs PyTorch eager, each in a fresh process.

    python benchmarks/bench_memory.py [--config c] [--steps 3]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import resource, sys
sys.path.insert(0, {here!r})
import numpy as np
from common import CONFIGS, model_config
import bench_train as bt
config, c = model_config({name!r}), CONFIGS[{name!r}]
rng = np.random.default_rng(0)
x = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))
y = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))
if {peer!r} == "pytorch":
    from minilm.model import init_params, param_shapes
    params = init_params(param_shapes(config), config.n_layer, config.dtype)
    _, step, _ = bt.torch_step(params, config, "cpu", x, y)
else:
    _, step = bt.minilm_step(config, "cpu", x, y)
for _ in range({steps}):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB
"""


def peak_mib(name, peer, steps):
    code = CHILD.format(here=HERE, name=name, peer=peer, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="c")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    ours, theirs = peak_mib(args.config, "minilm", args.steps), peak_mib(args.config, "pytorch", args.steps)
    print(f"config {args.config}: peak RSS minilm {ours:.0f} MiB, pytorch {theirs:.0f} MiB, "
          f"minilm/pytorch = {ours / theirs:.2f}x (includes each library's import)")


if __name__ == "__main__":
    main()
