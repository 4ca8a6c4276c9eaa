"""Encoder-only and encoder-decoder transformers, built from the same blocks as the decoder-only GPT.

    encoder-only     idx (B, S) -> bidirectional blocks -> layernorm -> mean over positions
                     -> a linear head -> class logits (B, n_classes)                        (BERT-style)
    encoder-decoder  src (B, S) -> encoder blocks -> the encoder's states
                     tgt (B, T) -> decoder blocks, each one: cross-attention to the encoder's final
                     states, causal self-attention, MLP -> logits (B, T, V)         (the original transformer)

The encoder-decoder has four structures that the decoder-only model does not. Each has a switch that
removes it, in the order the lecture removes them:

    (1) shared_attention  one attention, with one set of projections, reads the encoder's states and the
                          decoder's own (instead of a self-attention plus a separate cross-attention)
    (2) shared_params     the encoder runs on the decoder's parameters (instead of its own)
    (3) layerwise         decoder layer i reads the encoder's states at depth i (instead of its final states)
    (4) causal_input      the encoder's self-attention is causal (instead of bidirectional)

With (1)-(3) on, the model is a prefix-LM; with all four on, and the target positions numbered after the
input's (targets_after_input), it computes exactly what GPT computes on [input ; target] with the causal
mask. Every attention normalises what it reads with its own layernorm, so the states that pass from the
encoder to the decoder are raw residual-stream states, exactly as inside GPT.
"""
from dataclasses import dataclass

import numpy as np

from . import layers, masks
from .backend import xp_of
from .errors import MinilmError
from .model import (GPTConfig, Model, add_prefix, block_backward, block_forward, block_param_shapes,
                    param_shapes, sub_params)

SWITCHES = ("shared_attention", "shared_params", "layerwise", "causal_input")


def _check_flags(config, names):
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise MinilmError(f"{type(config).__name__}.{name} must be True or False, got {getattr(config, name)!r}")


@dataclass
class EncDecConfig(GPTConfig):
    shared_attention: bool = False  # (1)
    shared_params: bool = False  # (2)
    layerwise: bool = False  # (3)
    causal_input: bool = False  # (4)
    targets_after_input: bool = False  # target position j uses position embedding S + j, as in [input ; target]

    def __post_init__(self):
        super().__post_init__()
        _check_flags(self, SWITCHES + ("targets_after_input",))

    @property
    def n_encoder_layers(self):
        """With (3) the decoder's last layer reads the states that enter the encoder's last layer, so that
        layer's output is never read and it is left out (as a decoder-only model's top layer over the input
        only serves predicting the input's own next tokens)."""
        return self.n_layer - 1 if self.layerwise else self.n_layer


@dataclass
class EncoderConfig(GPTConfig):
    n_classes: int = 2
    causal_input: bool = False  # switch (4): the only one of the four that an encoder-only model has

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, (int, np.integer)) or self.n_classes < 2:
            raise MinilmError(f"EncoderConfig.n_classes must be an integer >= 2, got {self.n_classes!r}")
        _check_flags(self, ("causal_input",))


# --------------------------------------------------------------------------------------------------
# Parameters: the decoder has GPT's names ("wte", "h.0.attn.w_qkv", ...); the encoder's own copy,
# when it has one, lives under "enc."; a cross-attention under "h.i.ln_x." and "h.i.xattn.".

def cross_attention_shapes(C):
    """A cross-attention and its layernorm: the same four C x C projections as a self-attention."""
    return {"ln_x.w": (C,), "ln_x.b": (C,), "xattn.w_q": (C, C), "xattn.b_q": (C,),
            "xattn.w_kv": (C, 2 * C), "xattn.b_kv": (2 * C,), "xattn.w_proj": (C, C), "xattn.b_proj": (C,)}


def encdec_param_shapes(config):
    """name -> shape of every parameter this configuration uses (and no others)."""
    C = config.d_model
    shapes = param_shapes(config)  # the decoder, with GPT's names and shapes
    if not config.shared_attention:
        for i in range(config.n_layer):
            shapes.update(add_prefix(cross_attention_shapes(C), f"h.{i}."))
    if not config.shared_params:  # the encoder: embeddings and blocks, no final layernorm, no head
        encoder = {"wte": shapes["wte"], "wpe": shapes["wpe"]}
        for i in range(config.n_encoder_layers):
            encoder.update(add_prefix(block_param_shapes(C), f"h.{i}."))
        shapes.update(add_prefix(encoder, "enc."))
    return shapes


# --------------------------------------------------------------------------------------------------
# The encoder: embeddings, then a stack of GPT's blocks under any mask. It returns the residual stream
# at every depth, states[i] = what enters layer i (states[0] = the embeddings, states[-1] = the output).

def encoder_forward(idx, params, prefix, n_layers, mask, n_head):
    """idx: (B, S) -> states: list of n_layers + 1 arrays (B, S, C), cache"""
    x, emb = layers.embedding_forward(idx, params[prefix + "wte"], params[prefix + "wpe"])
    states, blocks = [x], []
    for i in range(n_layers):
        x, c = block_forward(x, params, f"{prefix}h.{i}.", mask, n_head)
        states.append(x)
        blocks.append(c)
    return states, (emb, blocks)


def encoder_backward(dstates, cache, prefix):
    """dstates: list like states, the gradient reaching each depth from outside (None where nothing reads
    it) -> grads of the encoder's parameters (full names)"""
    emb, blocks = cache
    dx = dstates[-1]
    grads = {}
    for i in reversed(range(len(blocks))):
        dx, g = block_backward(dx, blocks[i], f"{prefix}h.{i}.")
        grads.update(g)
        if dstates[i] is not None:
            dx = dx + dstates[i]  # states[i] feeds both layer i and whoever reads it from outside
    grads[prefix + "wte"], grads[prefix + "wpe"] = layers.embedding_backward(dx, emb)
    return grads


# --------------------------------------------------------------------------------------------------
# Attention from the decoder to memory: the queries are the decoder's positions x; the keys and values
# are the encoder's states mem, and (with_self) the decoder's own positions after them. One layernorm
# normalises [mem ; x] before the projections.

def memory_attention_forward(x, mem, ln_w, ln_b, p, mask, n_head, with_self):
    """x: (B, T, C), mem: (B, S, C); p: a cross-attention's parameters (w_q, w_kv, ...);
    mask: broadcastable to (B, nh, T, S + T if with_self else S) -> out: (B, T, C), cache"""
    S = mem.shape[1]
    h, ln = layers.layernorm_forward(xp_of(x).concatenate([mem, x], axis=1), ln_w, ln_b)  # (B, S+T, C)
    n_keys = h.shape[1] if with_self else S
    out, att = layers.cross_attention_forward(h[:, S:], h[:, :n_keys], p, mask, n_head)
    return out, (ln, att, S, n_keys)


def memory_attention_backward(dout, cache):
    """dout: (B, T, C) -> dx: (B, T, C), dmem: (B, S, C), grads of p, dln_w, dln_b"""
    ln, att, S, n_keys = cache
    dq_source, dkv_source, grads = layers.cross_attention_backward(dout, att)
    dh = xp_of(dout).zeros((dout.shape[0], S + dout.shape[1], dout.shape[2]), dtype=dout.dtype)
    dh[:, :n_keys] = dkv_source
    dh[:, S:] += dq_source  # with_self: the decoder's positions are both queries and keys
    dcat, dln_w, dln_b = layers.layernorm_backward(dh, ln)
    return dcat[:, S:], dcat[:, :S], grads, dln_w, dln_b


def qkv_as_cross(p):
    """A self-attention's fused (C, 3C) projection seen as a cross-attention's: queries | keys, values."""
    C = p["w_proj"].shape[0]
    return {"w_q": p["w_qkv"][:, :C], "b_q": p["b_qkv"][:C], "w_kv": p["w_qkv"][:, C:],
            "b_kv": p["b_qkv"][C:], "w_proj": p["w_proj"], "b_proj": p["b_proj"]}


def cross_grads_as_qkv(g):
    """The inverse of qkv_as_cross, for gradients."""
    xp = xp_of(g["w_q"])
    return {"w_qkv": xp.concatenate([g["w_q"], g["w_kv"]], axis=1),
            "b_qkv": xp.concatenate([g["b_q"], g["b_kv"]]), "w_proj": g["w_proj"], "b_proj": g["b_proj"]}


# --------------------------------------------------------------------------------------------------
# One decoder layer.  Without (1):  x += cross_attention(ln_x, x -> mem);  then GPT's block on x
#                     With (1):     x += attention(ln_1, x -> [mem ; x]), the block's own projections;
#                                   x += mlp(ln_2(x))            (GPT's block, its attention widened)
# (The original transformer puts the cross-attention between the self-attention and the MLP; putting it
# in front makes the layer GPT's block plus one piece, and changes nothing that matters here.)

def decoder_block_forward(x, mem, params, prefix, attn_masks, n_head, shared_attention):
    """x: (B, T, C), mem: (B, S, C); attn_masks: dict with 'memory' (and 'self' without (1)) -> x, cache"""
    p = sub_params(params, prefix)
    if not shared_attention:
        a, mem_att = memory_attention_forward(x, mem, p["ln_x.w"], p["ln_x.b"], sub_params(p, "xattn."),
                                              attn_masks["memory"], n_head, with_self=False)
        x, block = block_forward(x + a, params, prefix, attn_masks["self"], n_head)
        return x, (mem_att, block, None)
    a, mem_att = memory_attention_forward(x, mem, p["ln_1.w"], p["ln_1.b"], qkv_as_cross(sub_params(p, "attn.")),
                                          attn_masks["memory"], n_head, with_self=True)
    x = x + a
    h, ln2 = layers.layernorm_forward(x, p["ln_2.w"], p["ln_2.b"])
    m, mlp = layers.mlp_forward(h, sub_params(p, "mlp."))
    return x + m, (mem_att, None, (ln2, mlp))


def decoder_block_backward(dx, cache, prefix):
    """dx: (B, T, C) -> dx: (B, T, C), dmem: (B, S, C), grads of this block (full names)"""
    mem_att, block, widened = cache
    if block is not None:  # without (1): GPT's block, behind a cross-attention
        dx, grads = block_backward(dx, block, prefix)
        da, dmem, g_att, dln_w, dln_b = memory_attention_backward(dx, mem_att)
        grads.update(add_prefix({"ln_x.w": dln_w, "ln_x.b": dln_b, **add_prefix(g_att, "xattn.")}, prefix))
        return dx + da, dmem, grads
    ln2, mlp = widened
    dh, g_mlp = layers.mlp_backward(dx, mlp)
    dh, dw2, db2 = layers.layernorm_backward(dh, ln2)
    dx = dx + dh
    da, dmem, g_att, dln_w, dln_b = memory_attention_backward(dx, mem_att)
    grads = {"ln_1.w": dln_w, "ln_1.b": dln_b, "ln_2.w": dw2, "ln_2.b": db2,
             **add_prefix(cross_grads_as_qkv(g_att), "attn."), **add_prefix(g_mlp, "mlp.")}
    return dx + da, dmem, add_prefix(grads, prefix)


# --------------------------------------------------------------------------------------------------

def _input_mask(S, causal, valid, xp):
    """The encoder's self-attention mask (S, S), with the padding keys removed if valid (B, S) is given."""
    mask = masks.causal_mask(S, xp=xp) if causal else masks.bidirectional_mask(S, xp=xp)
    return mask if valid is None else mask & masks.padding_mask(valid)


def _check_valid(valid, shape, xp):
    """valid: (B, S) bool, False at padding tokens, or None (no padding)."""
    if valid is None:
        return None
    valid = xp.asarray(valid)
    if valid.shape != shape or valid.dtype != bool:
        raise MinilmError(f"the padding mask must be a bool array of shape {shape}, "
                          f"got {valid.dtype} {tuple(valid.shape)}")
    return valid


def _accumulate(grads, more):
    """Add gradients into grads: a parameter used twice (a shared one) gets both contributions."""
    for name, g in more.items():
        grads[name] = grads[name] + g if name in grads else g
    return grads


class EncoderDecoder(Model):
    """An encoder-decoder transformer: a decoder with GPT's parameters and blocks that also reads an
    encoder's states.

    model = EncoderDecoder(EncDecConfig(vocab_size=V, block_size=T, shared_attention=True, ...), seed=0)
    logits = model.forward(src, tgt)                              # (B, T, V), one per decoder position
    loss, grads = model.loss_and_grads(src, tgt, targets)         # grads has the keys of model.params
    tgt is the decoder's input: a start token, then the target shifted right; targets are what it predicts.
    """

    config_class = EncDecConfig

    def param_shapes(self):
        return encdec_param_shapes(self.config)

    @property
    def enc_prefix(self):
        """Where the encoder's parameters live: under "enc.", or with (2) the decoder's own."""
        return "" if self.config.shared_params else "enc."

    def forward(self, src, tgt, src_valid=None):
        """src: (B, S) input ids, tgt: (B, T) decoder input ids, src_valid: (B, S) bool or None -> logits (B, T, V)"""
        return self._forward(src, tgt, src_valid)[0]

    def _forward(self, src, tgt, src_valid=None):
        cfg, p, xp = self.config, self.params, self.xp
        src = self._check_idx(src, name="src")
        S = src.shape[1]
        pos0 = S if cfg.targets_after_input else 0
        tgt = self._check_idx(tgt, past=pos0, name="tgt")
        if tgt.shape[0] != src.shape[0]:
            raise MinilmError(f"src and tgt must have the same batch size, got {src.shape[0]} and {tgt.shape[0]}")
        src_valid = _check_valid(src_valid, src.shape, xp)
        states, enc = self._encode(src, src_valid)
        attn_masks = self._decoder_masks(S, tgt.shape, src_valid)
        x, emb = layers.embedding_forward(tgt, p["wte"], p["wpe"], pos0)  # (B, T, C)
        blocks = []
        for i in range(cfg.n_layer):
            mem = states[i] if cfg.layerwise else states[-1]  # (B, S, C)
            x, c = decoder_block_forward(x, mem, p, f"h.{i}.", attn_masks, cfg.n_head, cfg.shared_attention)
            blocks.append(c)
        x, ln_f = layers.layernorm_forward(x, p["ln_f.w"], p["ln_f.b"])
        logits, head = layers.linear_forward(x, p["wte"].T)  # (B, T, V), tied to the decoder's wte
        return logits, (enc, states, emb, blocks, ln_f, head)

    def encode(self, src, src_valid=None):
        """src: (B, S) -> the encoder's states at every depth, a list of (B, S, C) arrays (see encoder_forward)"""
        src = self._check_idx(src, name="src")
        return self._encode(src, _check_valid(src_valid, src.shape, self.xp))[0]

    def _encode(self, src, src_valid):
        cfg = self.config
        mask = _input_mask(src.shape[1], cfg.causal_input, src_valid, self.xp)
        return encoder_forward(src, self.params, self.enc_prefix, cfg.n_encoder_layers, mask, cfg.n_head)

    def _decoder_masks(self, S, tgt_shape, src_valid):
        """The decoder's view: all of the input (the cross mask), and its own past (causal)."""
        xp, T = self.xp, tgt_shape[1]
        if self.config.shared_attention:
            # One attention over [input ; target]: the target rows of the prefix-LM mask, (T, S + T).
            memory = masks.prefix_lm_mask(S + T, S, xp=xp)[S:]
            valid = None if src_valid is None else xp.concatenate([src_valid, xp.ones(tgt_shape, dtype=bool)], axis=1)
            return {"memory": memory if valid is None else memory & masks.padding_mask(valid)}
        memory = masks.cross_mask(T, S, xp=xp)
        return {"memory": memory if src_valid is None else memory & masks.padding_mask(src_valid),
                "self": masks.causal_mask(T, xp=xp)}

    def loss_and_grads(self, src, tgt, targets, loss_mask=None, src_valid=None):
        """Mean cross-entropy of predicting targets (B, T) from src and tgt, and its gradient for every parameter."""
        logits, cache = self._forward(src, tgt, src_valid)
        return self._loss_and_backward(logits, cache, targets, loss_mask)

    def _backward(self, dlogits, cache):
        cfg = self.config
        enc, states, emb, blocks, ln_f, head = cache
        dx, dwte_T, _ = layers.linear_backward(dlogits, head)
        dx, dw, db = layers.layernorm_backward(dx, ln_f)
        grads = {"ln_f.w": dw, "ln_f.b": db, "wte": dwte_T.T}
        dstates = [None] * len(states)
        for i in reversed(range(cfg.n_layer)):
            dx, dmem, g = decoder_block_backward(dx, blocks[i], f"h.{i}.")
            grads.update(g)
            read = i if cfg.layerwise else -1  # which encoder state layer i read
            dstates[read] = dmem if dstates[read] is None else dstates[read] + dmem
        dwte, grads["wpe"] = layers.embedding_backward(dx, emb)
        grads["wte"] = grads["wte"] + dwte
        # With (2) the encoder's names are the decoder's, and its gradients add to theirs.
        _accumulate(grads, encoder_backward(dstates, enc, self.enc_prefix))
        return self._apply_grad_rules(grads)


class EncoderClassifier(Model):
    """An encoder-only transformer (BERT-style): bidirectional blocks, then the mean of the final states
    over the real (non-padding) positions, then a linear head to class logits.

    model = EncoderClassifier(EncoderConfig(vocab_size=V, block_size=T, n_classes=2), seed=0)
    logits = model.forward(idx)                            # (B, n_classes)
    loss, grads = model.loss_and_grads(idx, labels)        # labels: (B,) class ids
    """

    config_class = EncoderConfig

    def param_shapes(self):
        """GPT's parameters (wte is only the embedding here) and the classification head."""
        C, K = self.config.d_model, self.config.n_classes
        return {**param_shapes(self.config), "head.w": (C, K), "head.b": (K,)}

    def forward(self, idx, valid=None):
        """idx: (B, S) ids, valid: (B, S) bool, False at padding, or None -> class logits (B, n_classes)"""
        return self._forward(idx, valid)[0]

    def _forward(self, idx, valid=None):
        cfg, p, xp = self.config, self.params, self.xp
        idx = self._check_idx(idx)
        valid = _check_valid(valid, idx.shape, xp)
        mask = _input_mask(idx.shape[1], cfg.causal_input, valid, xp)
        states, enc = encoder_forward(idx, p, "", cfg.n_layer, mask, cfg.n_head)
        x, ln_f = layers.layernorm_forward(states[-1], p["ln_f.w"], p["ln_f.b"])  # (B, S, C)
        # Pool: the mean over the real positions, one vector per sequence whatever its length.
        weights = xp.ones(idx.shape, dtype=x.dtype) if valid is None else valid.astype(x.dtype)
        weights /= weights.sum(axis=1, keepdims=True)  # (B, S), each row sums to 1
        pooled = (weights[..., None] * x).sum(axis=1)  # (B, C)
        logits, head = layers.linear_forward(pooled, p["head.w"], p["head.b"])  # (B, n_classes)
        return logits, (enc, ln_f, weights, head)

    def loss_and_grads(self, idx, labels, valid=None):
        """Mean cross-entropy of the class labels (B,), and its gradient for every parameter."""
        labels = self.xp.asarray(labels)
        logits, cache = self._forward(idx, valid)
        if labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu" or labels.min() < 0 \
                or labels.max() >= self.config.n_classes:
            raise MinilmError(f"labels must be {logits.shape[0]} class ids in 0..{self.config.n_classes - 1}")
        loss, xent = layers.softmax_cross_entropy_forward(logits[:, None, :], labels[:, None])  # one "position"
        dlogits = layers.softmax_cross_entropy_backward(xent)[:, 0, :]  # (B, n_classes)
        enc, ln_f, weights, head = cache
        dpooled, dw_head, db_head = layers.linear_backward(dlogits, head)
        dx, dw, db = layers.layernorm_backward(weights[..., None] * dpooled[:, None, :], ln_f)
        grads = {"head.w": dw_head, "head.b": db_head, "ln_f.w": dw, "ln_f.b": db}
        grads.update(encoder_backward([None] * self.config.n_layer + [dx], enc, ""))
        return float(loss), self._apply_grad_rules(grads)
