"""The models' shared base class, and the decoder-only transformers (GPT, and the Llama family that shares
its pass): configuration, initialisation, forward and backward.

    idx (B, T) -> token + position embeddings -> n_layer pre-LN blocks -> final layernorm
        -> logits = x @ wte.T (the output head shares the token embedding matrix) -> (B, T, V)

Each block is  x = x + attention(layernorm(x));  x = x + mlp(layernorm(x)).
The forward pass keeps every layer's cache in order; the backward pass walks them in reverse and
returns the gradients in a dict with the same keys as `params`.

Every model in minilm (GPT here; the encoder-decoder and the encoder classifier in minilm.encdec) is a
`Model`: it keeps its parameters in one flat dict and keeps one contract, which is all the Trainer needs:

    model.forward(*inputs) -> logits
    model.loss_and_grads(*batch) -> (loss: float, grads: dict with the keys of model.params)
    model.reads_token_stream -> True when a batch is (idx, targets[, loss_mask]): windows of one token stream
"""
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from . import layers, masks
from .backend import get_xp
from .errors import MinilmError

DTYPES = ("float32", "float64")


class Heads:
    """What every model configuration's attention shares: d_model cut into n_head heads."""

    @property
    def head_size(self):
        """hs = d_model // n_head: the width of one head's queries, keys and values."""
        return self.d_model // self.n_head


@dataclass
class GPTConfig(Heads):
    vocab_size: int
    block_size: int  # the longest sequence the model can read (the number of position embeddings)
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dtype: str = "float32"
    attention_window: int | None = None  # None: causal attention; w: each position sees only the last w (lesson 05)

    def __post_init__(self):
        names = ("vocab_size", "block_size", "n_layer", "n_head", "d_model")
        check_config(self, names + (("attention_window",) if self.attention_window is not None else ()))

    def to_dict(self):
        return asdict(self)


def param_shapes(config):
    """name -> shape of every parameter, in the order the forward pass uses them."""
    C, V = config.d_model, config.vocab_size
    shapes = {"wte": (V, C), "wpe": (config.block_size, C)}
    for i in range(config.n_layer):
        shapes.update(add_prefix(block_param_shapes(C), f"h.{i}."))
    shapes.update({"ln_f.w": (C,), "ln_f.b": (C,)})
    return shapes


def block_param_shapes(C):
    return {"ln_1.w": (C,), "ln_1.b": (C,),
            "attn.w_qkv": (C, 3 * C), "attn.b_qkv": (3 * C,), "attn.w_proj": (C, C), "attn.b_proj": (C,),
            "ln_2.w": (C,), "ln_2.b": (C,),
            "mlp.w_fc": (C, 4 * C), "mlp.b_fc": (4 * C,), "mlp.w_proj": (4 * C, C), "mlp.b_proj": (C,)}


def init_params(shapes, n_layer, dtype="float32", seed=0):
    """GPT-2 style initialisation, on the host (NumPy): weights ~ N(0, 0.02), biases 0, layernorm gains 1.

    The projections that write into the residual stream (names ending in w_proj) are scaled down by
    sqrt(2 n_layer), so the stream's variance does not grow with depth.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes.items():
        last = name.rsplit(".", 1)[-1]
        if last.startswith("b"):  # b, b_qkv, b_fc, b_proj: biases and layernorm shifts
            params[name] = np.zeros(shape)
        elif len(shape) == 1:  # layernorm gains
            params[name] = np.ones(shape)
        else:
            std = 0.02 / np.sqrt(2 * n_layer) if last == "w_proj" else 0.02
            params[name] = rng.standard_normal(shape) * std
    return {name: a.astype(dtype) for name, a in params.items()}


def sub_params(params, prefix):
    """The entries of params under a prefix, with the prefix removed: sub_params(p, 'h.0.attn.')"""
    return {name[len(prefix):]: array for name, array in params.items() if name.startswith(prefix)}


def add_prefix(grads, prefix):
    return {prefix + name: g for name, g in grads.items()}


def check_param_shapes(params, shapes):
    """One clear error when a parameter dict (say, from a checkpoint) does not fit the model."""
    missing = [n for n in shapes if n not in params]
    wrong = [f"{n} {tuple(params[n].shape)} vs {shape}" for n, shape in shapes.items()
             if n in params and tuple(params[n].shape) != shape]
    if missing or wrong:
        raise MinilmError(f"parameters do not fit the model: missing {missing[:3]}, wrong shapes {wrong[:3]}")


# --------------------------------------------------------------------------------------------------
# One pre-LN transformer block, shared by every model in minilm.

class BlockCache(NamedTuple):
    """A block's cache, GPT's or Llama's (their norms and MLPs differ, the parts do not)."""
    norm_1: Any
    attn: Any  # layers.SelfAttentionCache, or a Llama's layers.GroupedAttentionCache
    norm_2: Any
    mlp: Any


def block_forward(x, params, prefix, mask, n_head, kv_cache=None):
    """x: (B, T, C) -> x: (B, T, C), cache.   params[prefix + 'ln_1.w'] etc. are this block's."""
    p = sub_params(params, prefix)
    h, ln1 = layers.layernorm_forward(x, p["ln_1.w"], p["ln_1.b"])
    a, attn = layers.self_attention_forward(h, sub_params(p, "attn."), mask, n_head, kv_cache)
    x = x + a  # residual
    h, ln2 = layers.layernorm_forward(x, p["ln_2.w"], p["ln_2.b"])
    m, mlp = layers.mlp_forward(h, sub_params(p, "mlp."))
    return x + m, BlockCache(ln1, attn, ln2, mlp)


def block_backward(dx, cache, prefix, rules=None):
    """dx: (B, T, C) -> dx: (B, T, C), grads of this block's params (full names). rules: full weight name ->
    what gradient that weight gets (layers.linear_grads; a model's grad_rules); None: each weight its own."""
    ln1, attn, ln2, mlp = cache
    rules = sub_params(rules or {}, prefix)
    dh, g_mlp = layers.mlp_backward(dx, mlp, sub_params(rules, "mlp."))
    dh, dw2, db2 = layers.layernorm_backward(dh, ln2)
    dx = dx + dh  # the residual passes dx straight through, plus what flows back through the MLP
    da, g_attn = layers.self_attention_backward(dx, attn, sub_params(rules, "attn."))
    da, dw1, db1 = layers.layernorm_backward(da, ln1)
    dx = dx + da
    grads = {"ln_1.w": dw1, "ln_1.b": db1, "ln_2.w": dw2, "ln_2.b": db2,
             **add_prefix(g_attn, "attn."), **add_prefix(g_mlp, "mlp.")}
    return dx, add_prefix(grads, prefix)


# --------------------------------------------------------------------------------------------------

class Model(ABC):
    """What every model in minilm shares: its parameters in one flat dict, built from param_shapes() (or
    given, say from a checkpoint, and checked against them), the array module xp, and the contract that
    the Trainer, the optimizer and the checkpoints rely on:

        model.forward(*inputs) -> logits
        model.loss_and_grads(*batch) -> (loss: float, grads: dict name -> array, shaped like params[name])

    A subclass names its configuration class (config_class) and defines those three methods.
    """
    # True for a model whose batch is (idx, targets[, loss_mask]), windows of one token stream with the
    # targets shifted by one (a decoder): the Trainer then reads a token array into such windows, and cuts
    # each batch across the CPU's cores (minilm.parallel weights the pieces by the targets they count).
    reads_token_stream = False

    def __init__(self, config, seed=0, device=None, params=None):
        if not isinstance(config, self.config_class):
            raise MinilmError(f"{type(self).__name__} needs a config of type {self.config_class.__name__}, "
                              f"got {type(config).__name__}")
        self.config = config
        self.xp = get_xp(device)
        shapes = self.param_shapes()
        if params is None:
            params = init_params(shapes, config.n_layer, config.dtype, seed)
        check_param_shapes(params, shapes)
        self.params = {name: self.xp.asarray(params[name], dtype=config.dtype) for name in shapes}
        # What gradient loss_and_grads gives each weight: a name not here gets its own; layers.FROZEN none;
        # layers.Adapters its adapters' (minilm.lora sets these). See _apply_grad_rules.
        self.grad_rules = {}

    @abstractmethod
    def param_shapes(self):
        """name -> shape of every parameter this model uses (and no others)."""

    @abstractmethod
    def forward(self, *inputs):
        """The model's inputs (arrays) -> logits."""

    @abstractmethod
    def loss_and_grads(self, *batch):
        """One batch (what a batch function returns) -> (mean loss: float, grads: dict like params)."""

    def checkpoint_meta(self):
        """What a checkpoint needs to rebuild the model: the name of its class and its configuration."""
        return {"model": type(self).__name__, "config": self.config.to_dict()}

    def num_params(self, non_embedding=False):
        """Number of parameters; non_embedding=True leaves out the token and position embeddings (every
        "wte" and "wpe", an encoder's too: the count that scaling laws use)."""
        embeddings = ("wte", "wpe") if non_embedding else ()
        return int(sum(a.size for name, a in self.params.items() if name.rsplit(".", 1)[-1] not in embeddings))

    def _apply_grad_rules(self, grads):
        """The gradients loss_and_grads returns, in the order of params: each weight's own, or what its rule
        makes of it (from_gradient). A pass that applied a rule on the way (GPT's linear layers, through
        layers.linear_grads) left no gradient of that weight, and the rule's under its own names instead."""
        out = {}
        for name in self.params:
            rule = self.grad_rules.get(name)
            if rule is None:
                out[name] = grads[name]
            elif name in grads:
                out.update(add_prefix(rule.from_gradient(grads[name]), name + "."))
        return out | {name: g for name, g in grads.items() if name not in self.params}

    def _loss_and_backward(self, logits, cache, targets, loss_mask):
        """For a model that predicts tokens: the cross-entropy of logits (B, T, V) against targets (B, T),
        then the model's backward pass (self._backward(dlogits, cache)). -> (loss: float, grads)"""
        targets = self._check_idx(targets, past=0, name="targets")
        if targets.shape != logits.shape[:2]:
            raise MinilmError(f"targets must have shape {logits.shape[:2]} (one per position), got {targets.shape}")
        loss, xent = layers.softmax_cross_entropy_forward(logits, targets, loss_mask)
        grads = self._backward(layers.softmax_cross_entropy_backward(xent), cache)
        return float(loss), grads

    # ---- input checks: one clear line instead of an IndexError from deep inside NumPy

    def _check_idx(self, idx, past=0, name="idx"):
        cfg = self.config
        idx = self.xp.asarray(idx)
        if idx.ndim == 1:
            idx = idx[None, :]
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise MinilmError(f"{name} must be a (batch, time) array of token ids, got shape {tuple(idx.shape)}")
        if idx.dtype.kind not in "iu":
            raise MinilmError(f"{name} must hold integer token ids, got dtype {idx.dtype}")
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= cfg.vocab_size:
            bad = lo if lo < 0 else hi
            raise MinilmError(f"token id {bad} in {name} is out of range: "
                              f"this model's vocabulary has ids 0..{cfg.vocab_size - 1}")
        if past + idx.shape[1] > cfg.block_size:
            raise MinilmError(f"sequence of {past + idx.shape[1]} tokens is longer than block_size={cfg.block_size}: "
                              f"crop it to the last {cfg.block_size} tokens")
        return idx


class DecoderCache(NamedTuple):
    """A decoder-only model's forward cache."""
    embed: Any
    blocks: list  # one BlockCache per layer
    norm_f: Any
    head: Any  # the output head's linear cache


class GPT(Model):
    """A decoder-only transformer language model.

    model = GPT(GPTConfig(vocab_size=V, block_size=T), seed=0)
    logits = model.forward(idx)                                   # (B, T, V)
    loss, grads = model.loss_and_grads(idx, targets, loss_mask)   # grads has the keys of model.params

    The pass is every decoder-only model's: embed, n_layer blocks, a final norm, the head. Another family of
    decoders (Llama, below) changes what the embedding, a block and the final norm are by overriding the
    methods marked "the GPT-2 family's", and keeps the rest: masks, the KV cache, generation, training.
    """
    config_class = GPTConfig
    reads_token_stream = True

    def param_shapes(self):
        return param_shapes(self.config)

    # ---- forward

    def forward(self, idx, mask=None, kv_cache=None):
        """idx: (B, T) token ids -> logits: (B, T, V).   mask: (T, T) bool; if None, causal (windowed
        when config.attention_window is set)."""
        return self._forward(idx, mask, kv_cache)[0]

    def _forward(self, idx, mask=None, kv_cache=None):
        cfg = self.config
        idx = self._check_idx(idx, past=0 if kv_cache is None else kv_cache.length)
        T = idx.shape[1]
        pos0 = 0 if kv_cache is None else kv_cache.length
        if mask is None:
            mask = self.default_mask(T, pos0 + T)
        x, emb = self._embed(idx, pos0)  # (B, T, C)
        blocks = []
        for i in range(cfg.n_layer):
            layer_cache = None if kv_cache is None else kv_cache.layers[i]
            x, c = self._block_forward(x, f"h.{i}.", mask, layer_cache, pos0)
            blocks.append(c)
        if kv_cache is not None:
            kv_cache.length += T
        x, norm_f = self._final_norm(x)
        logits, head = layers.linear_forward(x, self._head_weight())  # (B, T, V)
        return logits, DecoderCache(emb, blocks, norm_f, head)

    def default_mask(self, T_q, T_k):
        """Causal, or windowed when the config says so: (T_q, T_k), the queries being the last T_q positions."""
        if self.config.attention_window is None:
            return masks.causal_mask(T_q, T_k, xp=self.xp)
        return masks.windowed_mask(T_q, self.config.attention_window, T_k, xp=self.xp)

    # ---- backward

    def loss_and_grads(self, idx, targets, loss_mask=None, mask=None):
        """Mean cross-entropy of predicting targets, and its gradient for every parameter.

        targets: (B, T) ids (usually idx shifted by one); loss_mask: (B, T), where the loss counts.
        Returns (loss: float, grads: dict name -> array, shaped like params[name]).
        """
        logits, cache = self._forward(idx, mask)
        return self._loss_and_backward(logits, cache, targets, loss_mask)

    def _backward(self, dlogits, cache):
        head_name = "w_head" if "w_head" in self.params else "wte"
        head_trains = self.grad_rules.get(head_name) is not layers.FROZEN  # its dW: the pass's largest product
        dx, dhead, _ = layers.linear_backward(dlogits, cache.head, weight_grads=head_trains)
        grads = self._trunk_backward(dx, cache)
        if head_trains:  # a head of its own, or wte, used twice: as the embedding and as the output head
            grads[head_name] = dhead if head_name == "w_head" else grads["wte"] + dhead.T
        return self._apply_grad_rules(grads)

    def _trunk_backward(self, dx, cache):
        """dx: (B, T, C), the gradient at the head's input (the final norm's output; minilm.objectives' reward
        head reads it too) -> the gradients of every parameter below the head, before the grad_rules."""
        emb, blocks, norm_f, _ = cache
        dx, grads = self._final_norm_backward(dx, norm_f)
        for i in reversed(range(self.config.n_layer)):
            dx, g = self._block_backward(dx, blocks[i], f"h.{i}.")
            grads.update(g)
        grads.update(self._embed_backward(dx, emb))
        return grads

    def _head_weight(self):
        """(C, V): the token embedding matrix transposed (the head is tied to wte), or a head of its own."""
        return self.params["w_head"] if "w_head" in self.params else self.params["wte"].T

    # ---- the GPT-2 family's embedding, block and final norm

    def _embed(self, idx, pos0):
        return layers.embedding_forward(idx, self.params["wte"], self.params["wpe"], pos0)

    def _embed_backward(self, dx, emb):
        dwte, dwpe = layers.embedding_backward(dx, emb)
        return {"wte": dwte, "wpe": dwpe}

    def _block_forward(self, x, prefix, mask, layer_cache, pos0):
        return block_forward(x, self.params, prefix, mask, self.config.n_head, layer_cache)

    def _block_backward(self, dx, cache, prefix):
        return block_backward(dx, cache, prefix, self.grad_rules)

    def _final_norm(self, x):
        return layers.layernorm_forward(x, self.params["ln_f.w"], self.params["ln_f.b"])

    def _final_norm_backward(self, dx, cache):
        dx, dw, db = layers.layernorm_backward(dx, cache)
        return dx, {"ln_f.w": dw, "ln_f.b": db}


# --------------------------------------------------------------------------------------------------
# The Llama family (Llama 2/3, SmolLM2, Mistral, Qwen without biases): the same decoder-only pass with
# four changes, each a layer in layers.py:
#
#   idx (B, T) -> token embeddings (no position vectors) -> n_layer blocks -> final RMSNorm -> head
#   block:  x = x + attention(rmsnorm(x))   grouped key/value heads, queries and keys rotated by RoPE
#           x = x + swiglu(rmsnorm(x))


@dataclass
class LlamaConfig(Heads):
    vocab_size: int
    block_size: int  # the longest sequence (RoPE has no table to outgrow; this sizes the KV cache)
    n_layer: int = 2
    n_head: int = 4  # query heads
    n_kv_head: int = 2  # key/value heads, shared by n_head / n_kv_head query heads each
    d_model: int = 64
    d_ff: int = 176  # the SwiGLU's hidden width (about 8/3 d_model: two matrices in, one out)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the head is wte.T (SmolLM2), or a (C, V) matrix of its own "w_head"
    dtype: str = "float32"
    attention_window: int | None = None  # None: causal; w: each position sees only the last w (Mistral's window)

    def __post_init__(self):
        check_config(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff")
                     + (("attention_window",) if self.attention_window is not None else ()))
        if self.n_head % self.n_kv_head:
            raise MinilmError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.head_size % 2:
            raise MinilmError("RoPE rotates pairs of channels: the head size d_model / n_head "
                              f"({self.head_size}) must be even")
        if not self.rope_base > 1 or not self.norm_eps > 0:
            raise MinilmError("rope_base must be above 1 and norm_eps above 0, "
                              f"got {self.rope_base!r}, {self.norm_eps!r}")

    def to_dict(self):
        return asdict(self)


def check_config(config, positive):
    """One clear line for a configuration that cannot make a model: the named fields must be positive
    integers, d_model a multiple of n_head, dtype one of DTYPES."""
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MinilmError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")
    if config.d_model % config.n_head:
        raise MinilmError(f"d_model ({config.d_model}) must be divisible by n_head ({config.n_head})")
    if config.dtype not in DTYPES:
        raise MinilmError(f"dtype must be one of {DTYPES}, got {config.dtype!r}")


def llama_param_shapes(config):
    """name -> shape of every parameter of a Llama-family model, in the order the forward pass uses them."""
    C, V, F = config.d_model, config.vocab_size, config.d_ff
    kv = config.n_kv_head * config.head_size  # the width of the keys (and of the values)
    shapes = {"wte": (V, C)}
    for i in range(config.n_layer):
        shapes.update(add_prefix({"norm_1.w": (C,), "attn.w_qkv": (C, C + 2 * kv), "attn.w_proj": (C, C),
                                  "norm_2.w": (C,), "mlp.w_fc": (C, 2 * F), "mlp.w_proj": (F, C)}, f"h.{i}."))
    shapes["norm_f.w"] = (C,)
    if not config.tie_embeddings:
        shapes["w_head"] = (C, V)
    return shapes


def llama_block_forward(x, params, prefix, mask, config, rope, kv_cache=None):
    """x: (B, T, C) -> x: (B, T, C), cache. rope: (cos, sin) of the T positions x holds."""
    p = sub_params(params, prefix)
    h, norm1 = layers.rmsnorm_forward(x, p["norm_1.w"], config.norm_eps)
    a, attn = layers.grouped_attention_forward(h, sub_params(p, "attn."), mask, config.n_head, config.n_kv_head,
                                               rope, kv_cache)
    x = x + a  # residual
    h, norm2 = layers.rmsnorm_forward(x, p["norm_2.w"], config.norm_eps)
    m, mlp = layers.swiglu_forward(h, sub_params(p, "mlp."))
    return x + m, BlockCache(norm1, attn, norm2, mlp)


def llama_block_backward(dx, cache, prefix, rules=None):
    """dx: (B, T, C) -> dx: (B, T, C), grads of this block's params (full names); rules as block_backward's"""
    norm1, attn, norm2, mlp = cache
    rules = sub_params(rules or {}, prefix)
    dh, g_mlp = layers.swiglu_backward(dx, mlp, sub_params(rules, "mlp."))
    dh, dw2 = layers.rmsnorm_backward(dh, norm2)
    dx = dx + dh
    da, g_attn = layers.grouped_attention_backward(dx, attn, sub_params(rules, "attn."))
    da, dw1 = layers.rmsnorm_backward(da, norm1)
    dx = dx + da
    grads = {"norm_1.w": dw1, "norm_2.w": dw2, **add_prefix(g_attn, "attn."), **add_prefix(g_mlp, "mlp.")}
    return dx, add_prefix(grads, prefix)


class Llama(GPT):
    """A Llama-family decoder: GPT's pass (masks, KV cache, generation, training are the same code) with
    RMSNorm, RoPE, grouped key/value heads and a SwiGLU MLP.

    model = Llama(LlamaConfig(vocab_size=V, block_size=T, n_head=4, n_kv_head=2), seed=0)
    minilm.pretrained.load_gguf(path) builds one from a GGUF file's weights (SmolLM2-135M).
    """
    config_class = LlamaConfig

    def __init__(self, config, seed=0, device=None, params=None):
        super().__init__(config, seed, device, params)
        # every position's rotation, made once: a forward pass slices the rows of its positions
        self.rope_cos, self.rope_sin = layers.rope_tables(config.head_size, np.arange(config.block_size),
                                                          config.rope_base, self.xp, config.dtype)

    def param_shapes(self):
        return llama_param_shapes(self.config)

    # ---- the Llama family's embedding, block and final norm

    def _embed(self, idx, pos0):
        """Only the tokens' vectors: positions enter each block through RoPE."""
        return self.params["wte"][idx], idx  # (B, T, C)

    def _embed_backward(self, dx, idx):
        dwte = self.xp.zeros_like(self.params["wte"])
        self.xp.add.at(dwte, idx.reshape(-1), dx.reshape(-1, dx.shape[-1]))  # repeated tokens add up
        return {"wte": dwte}

    def _block_forward(self, x, prefix, mask, layer_cache, pos0):
        T = x.shape[1]
        rope = self.rope_cos[pos0:pos0 + T], self.rope_sin[pos0:pos0 + T]  # (T, hs/2) each
        return llama_block_forward(x, self.params, prefix, mask, self.config, rope, layer_cache)

    def _block_backward(self, dx, cache, prefix):
        return llama_block_backward(dx, cache, prefix, self.grad_rules)

    def _final_norm(self, x):
        return layers.rmsnorm_forward(x, self.params["norm_f.w"], self.config.norm_eps)

    def _final_norm_backward(self, dx, cache):
        dx, dw = layers.rmsnorm_backward(dx, cache)
        return dx, {"norm_f.w": dw}


# --------------------------------------------------------------------------------------------------
# The modern modifications one at a time (the architecture study, docs/lab/architecture_study_design.md):
# GPT's pass with five switches, each turning one of GPT-2's choices into the Llama family's. Every switch
# off, it is GPT; every switch on, it is Llama: the same parameters from the same seed, the same numbers.
#
#   rmsnorm   RMSNorm (no mean, no shift) in place of LayerNorm
#   swiglu    the gated MLP, hidden width d_ff, in place of GELU's 4C
#   rope      queries and keys rotated by position, in place of a table of position vectors
#   bias      False: no bias in any linear layer (LayerNorm keeps its shift)
#   n_kv_head fewer key/value heads than query heads (grouped-query attention)


@dataclass
class ModifiedConfig(Heads):
    vocab_size: int
    block_size: int
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    rmsnorm: bool = False
    swiglu: bool = False
    rope: bool = False
    bias: bool = True
    n_kv_head: int | None = None  # None: n_head, every query head its own keys and values
    d_ff: int | None = None  # the SwiGLU's hidden width; None: 8C/3 up to a multiple of 8 (about GELU's parameters)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    dtype: str = "float32"
    attention_window: int | None = None

    def __post_init__(self):
        self.n_kv_head = self.n_head if self.n_kv_head is None else self.n_kv_head
        self.d_ff = -(-8 * self.d_model // 24) * 8 if self.d_ff is None else self.d_ff
        check_config(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff")
                     + (("attention_window",) if self.attention_window is not None else ()))
        if self.n_head % self.n_kv_head:
            raise MinilmError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.rope and self.head_size % 2:
            raise MinilmError("RoPE rotates pairs of channels: the head size d_model / n_head "
                              f"({self.head_size}) must be even")

    def to_dict(self):
        return asdict(self)


def modified_param_shapes(config):
    """name -> shape of every parameter, in the order the forward pass uses them: GPT's names where a part is
    GPT-2's, Llama's where it is the Llama family's (so that init_params draws the same numbers as each)."""
    C, V = config.d_model, config.vocab_size
    kv = config.n_kv_head * config.head_size  # the width of the keys (and of the values)
    hidden = config.d_ff if config.swiglu else 4 * C
    shapes = {"wte": (V, C)} if config.rope else {"wte": (V, C), "wpe": (config.block_size, C)}
    for i in range(config.n_layer):
        block = {**_norm_shapes(config, "1"), "attn.w_qkv": (C, C + 2 * kv), "attn.b_qkv": (C + 2 * kv,),
                 "attn.w_proj": (C, C), "attn.b_proj": (C,), **_norm_shapes(config, "2"),
                 "mlp.w_fc": (C, 2 * hidden if config.swiglu else hidden), "mlp.b_fc": (2 * hidden if config.swiglu
                                                                             else hidden,),
                 "mlp.w_proj": (hidden, C), "mlp.b_proj": (C,)}
        shapes.update(add_prefix({name: shape for name, shape in block.items()
                                  if config.bias or ".b_" not in name}, f"h.{i}."))
    shapes.update(_norm_shapes(config, "f"))
    return shapes


def _norm_shapes(config, which):
    """A norm's parameters: RMSNorm's gain norm_{which}.w, or LayerNorm's gain and shift ln_{which}.w, .b"""
    C = config.d_model
    return {f"norm_{which}.w": (C,)} if config.rmsnorm else {f"ln_{which}.w": (C,), f"ln_{which}.b": (C,)}


def _norm_forward(x, p, which, config):
    if config.rmsnorm:
        return layers.rmsnorm_forward(x, p[f"norm_{which}.w"], config.norm_eps)
    return layers.layernorm_forward(x, p[f"ln_{which}.w"], p[f"ln_{which}.b"], config.norm_eps)


def _norm_backward(dx, cache, which, config):
    """-> dx, the norm's gradients by name"""
    if config.rmsnorm:
        dx, dw = layers.rmsnorm_backward(dx, cache)
        return dx, {f"norm_{which}.w": dw}
    dx, dw, db = layers.layernorm_backward(dx, cache)
    return dx, {f"ln_{which}.w": dw, f"ln_{which}.b": db}


def modified_block_forward(x, params, prefix, mask, config, rope, kv_cache=None):
    """x: (B, T, C) -> x: (B, T, C), cache. rope: (cos, sin) of the T positions x holds, or None."""
    p = sub_params(params, prefix)
    h, norm1 = _norm_forward(x, p, "1", config)
    a, attn = layers.grouped_attention_forward(h, sub_params(p, "attn."), mask, config.n_head, config.n_kv_head,
                                               rope, kv_cache)
    x = x + a  # residual
    h, norm2 = _norm_forward(x, p, "2", config)
    m, mlp = (layers.swiglu_forward if config.swiglu else layers.mlp_forward)(h, sub_params(p, "mlp."))
    return x + m, BlockCache(norm1, attn, norm2, mlp)


def modified_block_backward(dx, cache, prefix, config, rules=None):
    """dx: (B, T, C) -> dx: (B, T, C), grads of this block's params (full names); rules as block_backward's"""
    norm1, attn, norm2, mlp = cache
    rules = sub_params(rules or {}, prefix)
    mlp_backward = layers.swiglu_backward if config.swiglu else layers.mlp_backward
    dh, g_mlp = mlp_backward(dx, mlp, sub_params(rules, "mlp."))
    dh, g_norm2 = _norm_backward(dh, norm2, "2", config)
    dx = dx + dh
    da, g_attn = layers.grouped_attention_backward(dx, attn, sub_params(rules, "attn."))
    da, g_norm1 = _norm_backward(da, norm1, "1", config)
    dx = dx + da
    grads = {**g_norm1, **g_norm2, **add_prefix(g_attn, "attn."), **add_prefix(g_mlp, "mlp.")}
    return dx, add_prefix(grads, prefix)


class ModifiedGPT(GPT):
    """GPT with any of the Llama family's five changes switched on (ModifiedConfig): the architecture study's
    model. ModifiedGPT(ModifiedConfig(V, T)) is GPT; with rmsnorm, swiglu, rope, bias=False and fewer
    key/value heads it is Llama (tests/test_modified.py checks both, bit for bit)."""
    config_class = ModifiedConfig

    def __init__(self, config, seed=0, device=None, params=None):
        super().__init__(config, seed, device, params)
        rope = config.rope and layers.rope_tables(config.head_size, np.arange(config.block_size), config.rope_base,
                                                  self.xp, config.dtype)
        self.rope_cos, self.rope_sin = rope or (None, None)  # every position's rotation, made once

    def param_shapes(self):
        return modified_param_shapes(self.config)

    def _embed(self, idx, pos0):
        return Llama._embed(self, idx, pos0) if self.config.rope else super()._embed(idx, pos0)

    def _embed_backward(self, dx, emb):
        return Llama._embed_backward(self, dx, emb) if self.config.rope else super()._embed_backward(dx, emb)

    def _block_forward(self, x, prefix, mask, layer_cache, pos0):
        T = x.shape[1]
        rope = (self.rope_cos[pos0:pos0 + T], self.rope_sin[pos0:pos0 + T]) if self.config.rope else None
        return modified_block_forward(x, self.params, prefix, mask, self.config, rope, layer_cache)

    def _block_backward(self, dx, cache, prefix):
        return modified_block_backward(dx, cache, prefix, self.config, self.grad_rules)

    def _final_norm(self, x):
        return _norm_forward(x, self.params, "f", self.config)

    def _final_norm_backward(self, dx, cache):
        return _norm_backward(dx, cache, "f", self.config)


# --------------------------------------------------------------------------------------------------
# The KV cache: during generation, the keys and values of earlier positions never change (a causal
# model's past cannot see the future), so we keep them and compute only the new token's.

class KVLayerCache:
    """Keys and values of one attention layer, preallocated for block_size positions."""

    def __init__(self, xp, batch, n_head, block_size, head_size, dtype):
        self.k = xp.zeros((batch, n_head, block_size, head_size), dtype=dtype)
        self.v = xp.zeros_like(self.k)
        self.length = 0

    def append(self, k, v):
        """k, v: (B, nh, T_new, hs) -> all keys and values so far, (B, nh, T_past + T_new, hs)"""
        end = self.length + k.shape[2]
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """One KVLayerCache per layer, and the number of positions already processed."""

    def __init__(self, model, batch=1):
        cfg = model.config
        kv_heads = getattr(cfg, "n_kv_head", cfg.n_head)  # grouped-query attention keeps fewer key/value heads
        self.layers = [KVLayerCache(model.xp, batch, kv_heads, cfg.block_size, cfg.head_size, cfg.dtype)
                       for _ in range(cfg.n_layer)]
        self.length = 0

