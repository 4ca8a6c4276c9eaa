"""The checks of exercise 07: the KV cache.

Chunks of several new positions follow a cached prefix (a single new token would hide a mask without the
cache's offset, since a 1 x 1 mask broadcasts), and the decoder's calls of model.forward are recorded, so a
cache rebuilt at every step fails on every run, whatever tokens it happens to produce."""
import numpy as np

from minilm import GPT, GPTConfig, layers, masks
from minilm.course.feedback import attention_problem, attention_sees, explained_call

CONFIG = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, d_model=16, dtype="float64")


def cache_grows(LayerKVCache):
    """the cache grows along the time axis and keeps everything in order"""
    rng = np.random.default_rng(701)
    B, nh, hs = 2, 3, 4
    cache = LayerKVCache()
    ks, vs = [], []
    for T_new in (3, 1, 2):
        ks.append(rng.normal(size=(B, nh, T_new, hs)))
        vs.append(rng.normal(size=(B, nh, T_new, hs)))
        k, v = cache.append(ks[-1], vs[-1])
        held = sum(x.shape[2] for x in ks)
        assert np.shape(k) == (B, nh, held, hs), f"after appending {[x.shape[2] for x in ks]} positions the keys must have shape {(B, nh, held, hs)}, got {np.shape(k)}"
        assert np.array_equal(k, np.concatenate(ks, axis=2)) and np.array_equal(v, np.concatenate(vs, axis=2)), \
            "the cache must return the earlier keys/values followed by the new ones, in order"


def cached_attention_chunks(cached_attention, LayerKVCache):
    """attention over the cache, fed in chunks of 3, 2, 1 and 2 positions, equals full recomputation"""
    rng = np.random.default_rng(702)
    B, nh, T, hs = 2, 2, 8, 4
    q, k, v = (rng.normal(size=(B, nh, T, hs)) for _ in range(3))
    full = layers.attention_forward(q, k, v, masks.causal_mask(T))[0]

    def feed(k, v, start, stop, cache):
        """Feed positions start..stop-1 to the cache; returns their outputs."""
        what = f"feeding positions {start}..{stop - 1} after {start} cached ones"
        hint = f"the mask of {stop - start} new queries over {stop} keys has shape ({stop - start}, {stop}): causal_mask({stop - start}, {stop})"
        return explained_call(what, hint, cached_attention, q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop], cache)

    def chunk_after_prefix(start, stop):
        """attend(k, v) for attention_sees: a fresh cache holds positions 0..start-1, then start..stop-1 are fed."""
        def attend(k, v):
            cache = LayerKVCache()
            if start:
                feed(k, v, 0, start, cache)
            return feed(k, v, start, stop, cache)
        return attend

    cache, start = LayerKVCache(), 0
    for T_new in (3, 2, 1, 2):
        stop = start + T_new
        out = feed(k, v, start, stop, cache)
        assert np.shape(out) == (B, nh, T_new, hs), f"fed {T_new} new positions, the output must have shape {(B, nh, T_new, hs)}, got {np.shape(out)}"
        if np.abs(out - full[:, :, start:stop]).max() > 1e-10:
            sees = attention_sees(chunk_after_prefix(start, stop), k[:, :, :stop], v[:, :, :stop])
            problem = attention_problem(sees, masks.causal_mask(T_new, stop), f"fed positions {start}..{stop - 1} after {start} cached ones")
            assert False, (problem or f"the outputs at positions {start}..{stop - 1} differ from full recomputation") + \
                f" (the {T_new} new queries are the last of {stop} positions: causal_mask({T_new}, {stop}))"
        start = stop


def cache_in_gpt(ModelKVCache):
    """inside a real GPT, your cache gives the same logits as running the whole sequence"""
    rng = np.random.default_rng(703)
    model = GPT(CONFIG, seed=int(rng.integers(2**31)))
    seq = rng.integers(0, CONFIG.vocab_size, size=(2, 9))
    full = model.forward(seq)  # (B, 9, V)
    cache, steps, start = ModelKVCache(model), [], 0
    for T_new in (4, 2, 1, 2):
        what = f"GPT.forward on positions {start}..{start + T_new - 1} with your cache"
        steps.append(explained_call(what, "does append return all the keys and values so far?", model.forward, seq[:, start:start + T_new], None, cache))
        start += T_new
    err = np.abs(np.concatenate(steps, axis=1) - full).max(axis=(0, 2))  # (9,)
    assert err.max() < 1e-10, f"with your cache the logits at position {int(np.argmax(err > 1e-10))} differ from full recomputation by {err.max():.2g}"


def decoding_model(rng):
    """A random GPT whose preferences are sharpened, so that no two logits tie."""
    model = GPT(CONFIG, seed=int(rng.integers(2**31)))
    for p in model.params.values():
        p += rng.normal(size=p.shape) * 0.3
    return model


def record_calls(model):
    """Replace model.forward by a wrapper that records (tokens fed, the cache passed, positions it held before)."""
    calls, forward = [], model.forward

    def recording_forward(idx, mask=None, kv_cache=None):
        calls.append((np.shape(idx)[1], kv_cache, getattr(kv_cache, "length", None)))
        return forward(idx, mask, kv_cache)

    model.forward = recording_forward
    return calls


def greedy_tokens(greedy_decode):
    """greedy decoding with the cache gives the tokens that recomputing everything gives"""
    rng = np.random.default_rng(704)
    model = decoding_model(rng)
    prompt = rng.integers(0, CONFIG.vocab_size, size=(2, 3))
    expected = prompt
    for _ in range(8):  # the slow way: the whole sequence every step
        expected = np.concatenate([expected, model.forward(expected)[:, -1].argmax(axis=-1)[:, None]], axis=1)
    got = greedy_decode(model, prompt.copy(), 8)
    assert np.shape(got) == expected.shape, f"a prompt of 3 tokens plus 8 new ones must give shape {expected.shape}, got {np.shape(got)}"
    for row, (want, have) in enumerate(zip(expected, np.asarray(got))):
        assert np.array_equal(have, want), f"greedy decoding of prompt {row} must give {want.tolist()}, got {have.tolist()}"


def decoding_feeds_each_token_once(greedy_decode):
    """greedy decoding builds one cache and feeds the model each token once"""
    rng = np.random.default_rng(705)
    model = decoding_model(rng)
    calls = record_calls(model)
    greedy_decode(model, rng.integers(0, CONFIG.vocab_size, size=(2, 3)), 8)
    fed = [n for n, _, _ in calls]
    assert calls and calls[0][1] is not None, "greedy_decode must pass a cache to model.forward: model.forward(prompt, kv_cache=cache)"
    assert calls[0][0] == 3, f"the first call must feed the whole prompt (3 tokens), once; your calls fed {fed} tokens"
    for n, (_, cache, held) in enumerate(calls[1:], 2):
        assert cache is not None, f"call {n} of model.forward got no cache: pass kv_cache=cache at every step; your calls fed {fed} tokens"
        assert cache is calls[0][1], (f"call {n} of model.forward got a new cache: build one ModelKVCache before the loop and pass "
                                      "that same cache at every step (a new one forgets the past and recomputes it)")
        assert held == 3 + n - 2, f"call {n} found {held} positions in the cache, but {3 + n - 2} tokens had been fed before it: feed each token once"
    assert max(fed[1:], default=1) == 1, f"after the prompt, each step must feed the model only the newest token (the cache holds the rest); your calls fed {fed} tokens"
    assert len(calls) in (8, 9), f"8 new tokens need 8 or 9 calls of model.forward (the prompt, then one per new token), got {len(calls)}"


PARTS = {"LayerKVCache": [cache_grows, cache_in_gpt],
         "cached_attention": [cached_attention_chunks],
         "greedy_decode": [greedy_tokens, decoding_feeds_each_token_once]}
