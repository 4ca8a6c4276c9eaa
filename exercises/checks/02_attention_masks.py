"""The checks of exercise 02: attention masks as boolean arrays.

Each check tries many sizes, smallest first, and reports the first position that sees too much or too little."""
import numpy as np

from minilm import layers, masks
from minilm.course.feedback import attention_problem, attention_sees, mask_problem

SIZES = [(1, 1), (3, 3), (2, 5), (5, 2), (7, 4)]  # (T_q, T_k): square, wide and tall


def bidirectional(bidirectional_mask):
    """the bidirectional mask lets everyone see everyone"""
    for T_q, T_k in SIZES:
        problem = mask_problem(bidirectional_mask(T_q, T_k), masks.bidirectional_mask(T_q, T_k), f"bidirectional_mask({T_q}, {T_k})")
        assert not problem, problem
    problem = mask_problem(bidirectional_mask(4), masks.bidirectional_mask(4), "bidirectional_mask(4)")
    assert not problem, problem


def causal(causal_mask):
    """the causal mask lets each position see itself and the past, never the future"""
    for T in range(1, 9):
        problem = mask_problem(causal_mask(T), masks.causal_mask(T), f"causal_mask({T})")
        assert not problem, problem


def causal_with_cache(causal_mask):
    """with a KV cache, the queries are the last T_q of T_k positions"""
    for T_k in range(1, 8):
        for T_q in range(1, T_k + 1):
            problem = mask_problem(causal_mask(T_q, T_k), masks.causal_mask(T_q, T_k), f"causal_mask({T_q}, {T_k})")
            assert not problem, problem


def causal_in_attention(causal_mask):
    """in real attention, your causal mask keeps every output blind to the future"""
    rng = np.random.default_rng(204)
    T = 6
    q, k, v = (rng.normal(size=(1, 2, T, 4)) for _ in range(3))
    mask = causal_mask(T)
    sees = attention_sees(lambda k, v: layers.attention_forward(q, k, v, mask)[0], k, v)
    problem = attention_problem(sees, masks.causal_mask(T), "causal attention")
    assert not problem, problem


def prefix_lm(prefix_lm_mask):
    """the prefix-LM mask is bidirectional over the prefix and causal after it"""
    for T in range(1, 8):
        for n_prefix in range(T + 1):
            problem = mask_problem(prefix_lm_mask(T, n_prefix), masks.prefix_lm_mask(T, n_prefix), f"prefix_lm_mask({T}, n_prefix={n_prefix})")
            assert not problem, problem


def cross(cross_mask):
    """cross-attention lets every target position see every input position"""
    for T_target, T_input in SIZES:
        problem = mask_problem(cross_mask(T_target, T_input), np.ones((T_target, T_input), dtype=bool), f"cross_mask({T_target}, {T_input})")
        assert not problem, problem + " (queries come from the target, keys from the input)"


PARTS = {"bidirectional_mask": [bidirectional],
         "causal_mask": [causal, causal_with_cache, causal_in_attention],
         "prefix_lm_mask": [prefix_lm],
         "cross_mask": [cross]}
