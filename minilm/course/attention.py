"""Lesson 06's look inside a real model: the attention probabilities of every layer and head, read from the
cache its forward pass keeps for the backward one."""
import numpy as np

from ..backend import to_numpy


def attention_weights(model, idx):
    """The attention probabilities of every layer and head for one sequence idx (T,):
    -> NumPy (n_layer, n_head, T, T), row t the weights query t gives the keys."""
    _, cache = model._forward(np.asarray(idx)[None])
    T = len(idx)
    attention = [block.attn.attention.att for block in cache.blocks]  # (1, nh, T, T); Llama's (1, nkv, group, T, T)
    return np.stack([to_numpy(att).reshape(model.config.n_head, T, T) for att in attention])
