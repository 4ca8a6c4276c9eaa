"""Sampling from a trained model, one token at a time, with a KV cache.

Without a cache, predicting token t+1 means running the model over all t tokens again: O(t) work per new
token, O(n^2) for n tokens. With causal attention the keys and values of earlier positions never change,
so we keep them (model.KVCache) and run the model on the new token only.

    new_ids = generate(model, prompt_ids, max_new_tokens=50, temperature=0.8, top_k=40)
    new_ids.seed                                            # the seed it drew: seed=new_ids.seed draws the same
    out = complete(model, tokenizer, "Once upon a time")   # text in, text out, and tokens per second

Sampling draws a fresh seed each call unless given one, and says which (so a text can be drawn again);
greedy decoding (temperature 0) draws nothing and gives the same ids every time. A temperature below
GREEDY_BELOW is greedy too: softmax(logits / 1e-320) overflows, and below 0.001 sampling already picks the most
likely token unless two logits are within a hundredth of each other.
"""
import contextlib
import secrets
import time

import numpy as np

from .backend import to_numpy
from .errors import MinilmError, NotFinite
from .model import KVCache
from .parallel import one_blas_thread

GREEDY_BELOW = 1e-3  # a temperature below this decodes greedily, as 0 does


def samples(temperature):
    """Whether decoding at this temperature draws at random (else it is greedy)."""
    return temperature >= GREEDY_BELOW


def next_token(logits, temperature=1.0, top_k=None, rng=None):
    """Pick a token id from one position's logits (V,): greedy when temperature is 0 (or below GREEDY_BELOW),
    otherwise sample from softmax(logits / temperature), restricted to the top_k most likely."""
    logits = to_numpy(logits).astype(np.float64)
    if not np.isfinite(logits).all():
        raise NotFinite("the model's logits are NaN or infinite, so no token can be drawn")
    if not samples(temperature):
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is not None and top_k < len(logits):
        kth_largest = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < kth_largest, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


class Generated(list):
    """The new token ids, a list, with the seed they were drawn with (`.seed`; None when greedy and none given)."""
    seed = None


def fresh_seed():
    """A seed nobody chose: sampling with it gives a new text each time, and passing it again the same one."""
    return secrets.randbits(32)


def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, eos_id=None, seed=None,
             use_cache=True, on_logits=None, kv_cache=None, prompt_mask=None):
    """Continue a prompt (a list of token ids). Returns the new ids (not the prompt), a Generated list whose
    .seed is the seed that drew them: `seed` if given, else a fresh one when sampling (temperature > 0).

    Stops after max_new_tokens, at eos_id, or when the sequence fills the model's block_size.
    on_logits(step, logits), if given, sees the logits (V,) each new token was drawn from, as a NumPy array.
    kv_cache: a KVCache that already holds earlier tokens (a conversation so far, as in minilm.chat.Chat):
    the prompt continues them, and the cache is left holding everything fed to it (all but the last new token).
    prompt_mask: the prompt's pass reads it under this (T_prompt, T_cached + T_prompt) mask instead of the
    model's own (bidirectional, say, as a prefix-LM reads its input); the new tokens are causal. Needs the cache.
    """
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise MinilmError("the prompt is empty: give at least one token")
    if temperature < 0:
        raise MinilmError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise MinilmError(f"top_k must be at least 1, got {top_k}")
    if not use_cache and (kv_cache is not None or prompt_mask is not None):
        raise MinilmError("use_cache=False recomputes everything: it cannot continue a kv_cache or mask a prompt")
    if seed is None and samples(temperature):
        seed = fresh_seed()
    rng = np.random.default_rng(seed)
    cache = kv_cache if kv_cache is not None else KVCache(model) if use_cache else None
    past = 0 if kv_cache is None else kv_cache.length  # positions the cache held before this call
    tokens, new = list(prompt), []
    feed, mask = prompt, prompt_mask  # with a cache, only the tokens the model has not seen yet
    while len(new) < max_new_tokens and past + len(tokens) < model.config.block_size:
        logits = model.forward(np.array([feed if use_cache else tokens]), mask=mask, kv_cache=cache)[0, -1]
        logits = to_numpy(logits)  # (V,)
        if on_logits is not None:
            on_logits(len(new), logits)
        token = next_token(logits, temperature, top_k, rng)
        tokens.append(token)
        new.append(token)
        feed, mask = [token], None  # a new token's mask: the model's own, causal
        if token == eos_id:
            break
    new = Generated(new)
    new.seed = seed
    return new


def without_eos(ids, eos_id):
    """The ids without the <eos> that ended them: a marker for the model, not text for the reader."""
    return ids[:-1] if eos_id is not None and len(ids) and ids[-1] == eos_id else ids


def decoding_threads(model):
    """A with-block for generating one sequence on the CPU: BLAS held to one thread. Each new token is a
    matrix-vector product per layer, bound by memory, not arithmetic, so a second thread gains little; and
    where another program keeps a core busy, OpenBLAS's threads wait on each other: 2.6 against 7.6-14.7
    tokens/s for SmolLM2 on a shared 2-core machine (benchmarks/RESULTS.md). On a GPU it does nothing."""
    return one_blas_thread() if model.xp is np else contextlib.nullcontext()


def complete(model, tokenizer, text, max_new_tokens=50, temperature=0.0, top_k=None, seed=None, stop_at_eos=True):
    """Continue a text. -> dict: text (the continuation), tokens (its ids), seed (the one that drew them, see
    generate), seconds, tokens_per_second."""
    prompt = tokenizer.encode(text)
    if not prompt:
        raise MinilmError("the prompt is empty: give some text")
    prompt = prompt[-(model.config.block_size - 1):]  # keep room for at least one new token
    eos_id = tokenizer.eos_id if stop_at_eos else None
    with decoding_threads(model):
        start = time.perf_counter()
        new = generate(model, prompt, max_new_tokens, temperature, top_k, eos_id, seed)
        seconds = time.perf_counter() - start
    return {"text": tokenizer.decode(without_eos(new, eos_id)), "tokens": new, "seed": new.seed, "seconds": seconds,
            "tokens_per_second": len(new) / seconds if seconds > 0 else float("inf")}
