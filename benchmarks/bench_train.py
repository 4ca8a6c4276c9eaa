"""Training speed of the NumPy engine against PyTorch eager, in the same process, alternated.

    python benchmarks/bench_train.py [--configs a b c] [--device cpu|cuda] [--repeats 7] [--no-torch]

For each config: build minilm's GPT and the same model in PyTorch (benchmarks/torch_gpt.py) from the same
parameters, check that their losses and gradients agree, then time full training steps (loss, backward,
clipping, AdamW) alternately, sleeping between runs so one library's BLAS threads do not spin into the
other's timing. Prints medians, tokens/s, the ratio, and model FLOPs utilisation (MFU) against the float32
GEMM peak measured here, now. minilm's step is timed two ways, alternated with the peer: on the CPU unsplit
(one call, BLAS threads for the matmuls) and split into one shard per core (minilm/parallel.py); on a GPU
with the fused kernels (minilm/kernels.py) and with the readable code alone (MINILM_FUSED=0). The ratio
uses the way the Trainer runs it. PyTorch is optional: without it, only minilm's numbers are printed.
"""
import argparse
import os
import time

import numpy as np
from common import CONFIGS, gemm_peak, machine, model_config, sync_for, train_flops_per_token

from minilm import GPT, kernels, parallel
from minilm.backend import get_xp, to_numpy
from minilm.finite_differences import relative_error
from minilm.optim import AdamW, clip_grad_norm


def minilm_step(config, device, x, y, shards=None):
    """The Trainer's step, with the batch cut into `shards` (parallel.default_shards if None)."""
    model = GPT(config, seed=0, device=device)
    optimizer = AdamW(model.params, lr=1e-4)
    xs, ys = model.xp.asarray(x), model.xp.asarray(y)

    def step():
        _, grads = parallel.loss_and_grads(model, xs, ys, shards=shards)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)

    return model, step


def readable_only(step):
    """The same step with the fused GPU kernels switched off."""
    def run():
        kernels.ENABLED = False
        try:
            step()
        finally:
            kernels.ENABLED = True
    return run


def torch_step(params, config, device, x, y):
    import torch
    from torch_gpt import TorchGPT

    dev = "cuda" if device == "cuda" else "cpu"
    model = TorchGPT(params, config.n_layer, config.n_head).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    xs, ys = torch.tensor(x, device=dev), torch.tensor(y, device=dev)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(xs, ys).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return model, step, sync


def check_same_gradients(model, torch_model, x, y):
    """The peer must compute the same thing before its speed means anything."""
    loss, grads = model.loss_and_grads(model.xp.asarray(x), model.xp.asarray(y))
    import torch
    dev = next(torch_model.parameters()).device
    torch_loss = torch_model(torch.tensor(x, device=dev), torch.tensor(y, device=dev))
    torch_loss.backward()
    theirs = torch_model.grads()
    worst = max(relative_error(to_numpy(grads[k]), theirs[k]) for k in grads)
    torch_model.zero_grad(set_to_none=True)
    return abs(loss - torch_loss.item()) / abs(torch_loss.item()), worst


def alternate(steps, syncs, repeats, pause=0.5):
    """Median seconds of each step function, run in turn (A, pause, B, pause, ...) after two warm-ups each."""
    for step, sync in zip(steps, syncs):
        step(), step(), sync()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, (step, sync) in enumerate(zip(steps, syncs)):
            time.sleep(pause)
            start = time.perf_counter()
            step()
            sync()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["a", "b", "c"], choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="time minilm alone")
    parser.add_argument("--nominal-peak-tflops", type=float, default=None,
                        help="also report MFU against this datasheet peak (H100 SXM dense TF32: 494)")
    args = parser.parse_args()
    tf32 = os.environ.get("CUPY_TF32") == "1"  # CuPy reads it at import; PyTorch is told to match below
    xp = get_xp(args.device)
    peak = gemm_peak(xp, sync=sync_for(xp))
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, TF32 {'on' if tf32 else 'off'}")
        except ImportError:
            print("PyTorch is not installed: timing minilm alone (pip install torch to compare)")
            use_torch = False
    print(f"machine: {machine()}, device {args.device}")
    print(f"float32 GEMM peak (2048^3 matmul): {peak / 1e9:.0f} GFLOP/s")
    rows, summary = [], []
    for name in args.configs:
        config, c = model_config(name), CONFIGS[name]
        rng = np.random.default_rng(0)
        x = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))
        y = rng.integers(0, config.vocab_size, (c["batch"], config.block_size))
        tokens = x.size
        model, step = minilm_step(config, args.device, x, y, shards=1)
        gpu = model.xp is not np
        steps, syncs = [step], [sync_for(model.xp)]
        if use_torch:
            torch_model, tstep, tsync = torch_step({k: to_numpy(v) for k, v in model.params.items()}, config, args.device, x, y)
            dloss, dgrad = check_same_gradients(model, torch_model, x, y)
            print(f"config {name}: same loss (rel diff {dloss:.1e}) and gradients (worst rel error {dgrad:.1e}) as PyTorch")
            steps.append(tstep)
            syncs.append(tsync)
        cores = 1 if gpu else parallel.cpu_cores()
        if gpu:  # the readable code alone, for comparison with the fused kernels
            steps.append(readable_only(minilm_step(config, args.device, x, y)[1]))
        elif cores > 1:  # the batch split into one shard per core
            steps.append(minilm_step(config, args.device, x, y, shards=cores)[1])
        syncs.append(sync_for(model.xp))
        seconds = alternate(steps, syncs, args.repeats)
        first, theirs, second = seconds[0], seconds[1] if use_torch else None, seconds[-1] if len(steps) > 1 + use_torch else None
        ours = second if not gpu and parallel.default_shards(model, *x.shape) > 1 else first  # what the Trainer does
        mfu = train_flops_per_token(config) * tokens / ours / peak
        rows.append((name, first, second, theirs, tokens, ours, mfu))
        nominal = ""
        if args.nominal_peak_tflops:
            nominal = f" ({train_flops_per_token(config) * tokens / ours / (args.nominal_peak_tflops * 1e12):.0%} of the datasheet peak)"
        summary.append((f"config {name}: minilm/pytorch = {theirs / ours:.2f}x, MFU {mfu:.0%}" if use_torch
                        else f"config {name}: MFU {mfu:.0%}") + nominal)
    ways = ("fused ms", "readable ms") if args.device == "cuda" else ("unsplit ms", "split ms")
    print(f"\n{'config':>6} {ways[0]:>11} {ways[1]:>11} {'torch ms':>9} {'minilm tok/s':>13} {'ratio':>6} {'MFU':>5}")
    for name, first, second, theirs, tokens, ours, mfu in rows:
        cell = lambda t, width: f"{t * 1e3:{width}.1f}" if t else f"{'-':>{width}}"
        ratio = f"{theirs / ours:5.2f}x" if theirs else f"{'-':>6}"
        print(f"{name:>6} {cell(first, 11)} {cell(second, 11)} {cell(theirs, 9)} {tokens / ours:13.0f} {ratio} {mfu:5.0%}")
    print("(ratio and MFU use the way the Trainer runs: fused on a GPU; split on the CPU when parallel.default_shards says so)")
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
