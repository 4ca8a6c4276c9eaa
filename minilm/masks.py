"""Attention masks: which positions a query may look at.

A mask is a boolean array of shape (T_q, T_k): mask[i, j] is True when query position i may attend to
key position j. One attention function takes any mask, so the architectures differ only in this array:

    bidirectional (encoder)   every position sees every position
    causal (decoder)          position i sees positions 0..i, never the future
    prefix-LM                 the prefix (the input) is bidirectional, the rest causal
    windowed (local)          causal, and only the last `window` positions: a locality bias (lesson 05)
    encoder-decoder cross     every target position sees every input position (T_q targets, T_k inputs)

Padding is a separate (B, 1, 1, T_k) mask of the keys that are real tokens; `&` composes it with any of
the masks above into a (B, 1, T_q, T_k) mask, which attention broadcasts over the heads.
"""
import numpy as np

from .backend import xp_of
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


def windowed_mask(T_q, window, T_k=None, xp=np):
    """Causal, and query i sees only the last `window` keys: i - window < j <= i (a banded causal mask).

    Structure written as a mask: the model is told that only nearby words matter. With T_k > T_q the
    queries are the last T_q positions, as in causal_mask. Stacked layers widen what the top layer can
    reach to n_layer * (window - 1) + 1 positions. (T_q, T_k)
    """
    if window < 1:
        raise MinilmError(f"windowed mask: the window must be 1 or more positions, got {window}")
    mask = causal_mask(T_q, T_k, xp=xp)
    return mask & ~xp.tril(xp.ones(mask.shape, dtype=bool), k=mask.shape[1] - T_q - window)


def prefix_lm_mask(T, n_prefix, xp=np):
    """The first n_prefix positions (the input) see each other both ways; the rest are causal. (T, T)"""
    if not 0 <= n_prefix <= T:
        raise MinilmError(f"prefix-LM mask: the prefix length must be between 0 and {T}, got {n_prefix}")
    mask = causal_mask(T, xp=xp)
    mask[:, :n_prefix] = True  # everyone may read the whole prefix...
    return mask  # ...and positions after it still see only the past


def cross_mask(T_q, T_k, xp=np):
    """Encoder-decoder cross-attention: each of T_q target positions sees all T_k input positions. (T_q, T_k)

    It is all True, like the bidirectional mask; it is rectangular because queries and keys come from two
    different sequences (the decoder's and the encoder's).
    """
    return bidirectional_mask(T_q, T_k, xp=xp)


def padding_mask(key_valid):
    """key_valid: (B, T_k) bool, False at padding -> (B, 1, 1, T_k), True where a key is a real token.

    Compose it with any (T_q, T_k) mask by `mask & padding_mask(key_valid)` -> (B, 1, T_q, T_k):
    the padding keys disappear from every query's view, for every head.
    """
    xp = xp_of(key_valid)
    key_valid = xp.asarray(key_valid)
    if key_valid.ndim != 2 or key_valid.dtype != bool:
        raise MinilmError("padding mask: key_valid must be a (batch, time) bool array, "
                          f"got {key_valid.dtype} of shape {tuple(key_valid.shape)}")
    return key_valid[:, None, None, :]
