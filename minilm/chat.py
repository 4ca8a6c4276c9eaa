"""The KV cache in a chat: why causal attention makes multi-turn conversations cheap.

A conversation is turns of (user message, assistant reply). Each reply is generated from everything said
so far. With causal attention no position ever sees a later one, so the keys and values computed for the
history never change: one KV cache lives through the whole conversation and each turn runs the model
only on its new tokens. With bidirectional attention over the input (an encoder, or a prefix-LM), every
earlier token may attend to the newest message, so every turn must encode the whole history again.
"""
import time

import numpy as np

from . import masks
from .errors import MinilmError
from .generate import next_token
from .model import KVCache


def chat(model, n_turns, user_len, reply_len, reuse_cache=True, input_attention="causal", seed=0):
    """Hold a conversation with a GPT-shaped model: each turn a user message of user_len random tokens, then
    a greedy reply of reply_len tokens.

    reuse_cache=True: one KV cache for the whole conversation; each turn feeds only its new tokens (this
    needs input_attention="causal"). reuse_cache=False: each turn starts a fresh cache and encodes the whole
    history with input_attention ("causal" or "bidirectional", as in a prefix-LM), then decodes the reply.
    Returns one dict per turn: turn, history (tokens said before it), tokens_processed (positions the
    model ran on, read off the cache), seconds (wall time), reply (the generated ids).
    """
    if input_attention not in ("causal", "bidirectional"):
        raise MinilmError(f"input_attention must be 'causal' or 'bidirectional', got {input_attention!r}")
    if reuse_cache and input_attention != "causal":
        raise MinilmError("a KV cache can only be reused across turns with causal attention: with bidirectional "
                          "attention the history's keys and values change when a new message arrives")
    total = n_turns * (user_len + reply_len)
    if total > model.config.block_size:
        raise MinilmError(f"{n_turns} turns of {user_len} + {reply_len} tokens need block_size >= {total}, the model has {model.config.block_size}")
    rng = np.random.default_rng(seed)
    history, turns, cache = [], [], KVCache(model)
    for turn in range(n_turns):
        user = rng.integers(0, model.config.vocab_size, size=user_len).tolist()
        start = time.perf_counter()
        if reuse_cache:
            seen_before = cache.length
            feed, mask = user, None  # the new tokens only; the default mask is causal over cache + new
        else:
            cache, seen_before = KVCache(model), 0
            feed = history + user  # everything, encoded again
            mask = masks.causal_mask(len(feed)) if input_attention == "causal" else masks.bidirectional_mask(len(feed))
        logits = model.forward(np.array([feed]), mask=mask, kv_cache=cache)[0, -1]
        reply = []
        for _ in range(reply_len):
            reply.append(next_token(logits, temperature=0))
            # The reply is causal in every architecture; feeding its last token too keeps the two ways
            # symmetric (with the cache, that token is then ready for the next turn).
            logits = model.forward(np.array([reply[-1:]]), kv_cache=cache)[0, -1]
        seconds = time.perf_counter() - start
        turns.append({"turn": turn, "history": len(history), "tokens_processed": cache.length - seen_before,
                      "seconds": seconds, "reply": reply})
        history += user + reply
    return turns
