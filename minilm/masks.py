"""Attention masks: which positions a query may look at.

A mask is a boolean array of shape (T_q, T_k): mask[i, j] is True when query position i may attend to
key position j. One attention function takes any mask, so the architectures differ only in this array:

    bidirectional (encoder)   every position sees every position
    causal (decoder)          position i sees positions 0..i, never the future
    prefix-LM                 the prefix (the input) is bidirectional, the rest causal
"""
import numpy as np

from .errors import MinilmError


def bidirectional_mask(T_q, T_k=None, xp=np):
    """Every query sees every key: all True, (T_q, T_k)."""
    return xp.ones((T_q, T_q if T_k is None else T_k), dtype=bool)


def causal_mask(T_q, T_k=None, xp=np):
    """Query i sees keys j <= i. (T_q, T_k)

    With T_k > T_q the queries are the last T_q positions of the sequence (as when a KV cache already
    holds T_k - T_q earlier positions), so query i sits at absolute position i + (T_k - T_q).
    """
    T_k = T_q if T_k is None else T_k
    if T_k < T_q:
        raise MinilmError(f"causal mask: {T_q} queries cannot be the last positions of only {T_k} keys")
    return xp.tril(xp.ones((T_q, T_k), dtype=bool), k=T_k - T_q)


def prefix_lm_mask(T, n_prefix, xp=np):
    """The first n_prefix positions (the input) see each other both ways; the rest are causal. (T, T)"""
    if not 0 <= n_prefix <= T:
        raise MinilmError(f"prefix-LM mask: the prefix length must be between 0 and {T}, got {n_prefix}")
    mask = causal_mask(T, xp=xp)
    mask[:, :n_prefix] = True  # everyone may read the whole prefix...
    return mask  # ...and positions after it still see only the past
