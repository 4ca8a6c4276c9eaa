"""LoRA on a whole model: train low-rank adapters, keep every pretrained weight frozen.

    lora = LoRA(model, rank=8)                                       # adapters on every matrix of each block
    lora = LoRA(model, rank=8, alpha=4, targets=("attn.w_qkv",))     # ... or on those weights, at scale 4 / 8
    Trainer(lora, train_tokens, val_tokens, TrainConfig(...)).run()  # AdamW sees only the adapters
    tuned = lora.merged()                                            # a plain model of W + scale A B

By default the adapters sit on every matrix of a block (ADAPTED) at scale alpha / rank = 2 (alpha = 2 x rank).

A LoRA layer computes x W + scale (x A) B = x (W + scale A B) (minilm.layers.lora_forward), so the adapted
model is the base model run on merged weights W' = W + scale A B. Its gradients come from the base model's
own hand-written backward pass, told which gradient each weight gets (the base's grad_rules): a frozen
weight none (layers.FROZEN), and a merged weight its adapters' (layers.Adapters). The chain rule through the
product gives dA = scale dW' B^T and dB = scale A^T dW'; in a decoder's linear layers the pass makes them
from the layer's input x and output gradient as scale x^T (dout B^T) and scale (x A)^T dout, two thin products,
and never the (C_in, C_out) matrix dW'. So a LoRA step skips the weight-gradient products of the whole model
(about a third of a step's matrix arithmetic), and no layer's forward pass changes.

A LoRA keeps the Model contract (params, forward, loss_and_grads, config, xp, and the pass _forward and
_backward that minilm.objectives' losses run, DPO's among them), so the Trainer, AdamW and the batch cut across
cores work unchanged; its params are the adapters alone, which is how the optimizer trains only them.
A LoRA made from a base that was loaded (minilm.finetune, minilm.checkpoint.load_lora) knows where it came from
(source, a minilm.base.Base) and its tokenizer: its checkpoint names the base and holds the tokenizer.
"""
import threading

import numpy as np

from . import layers
from .backend import device_name
from .errors import MinilmError

ADAPTED = ("attn.w_qkv", "attn.w_proj", "mlp.w_fc", "mlp.w_proj")  # every matrix of a block


def default_alpha(rank):
    """alpha = 2 x rank: the adapters' update is scaled by alpha / rank = 2 at every rank."""
    return 2.0 * rank


class LoRA:
    """Adapters A (C_in, r) and B (r, C_out) on every base weight whose name ends with one of targets."""

    def __init__(self, base, rank=8, alpha=None, targets=ADAPTED, seed=0, source=None, tokenizer=None):
        if not isinstance(rank, int) or rank < 1:
            raise MinilmError(f"the LoRA rank must be a whole number of 1 or more, got {rank!r}")
        alpha = default_alpha(rank) if alpha is None else alpha
        self.base, self.rank, self.alpha, self.targets = base, rank, float(alpha), tuple(targets)
        self.source, self.tokenizer = source, tokenizer  # where the base came from (a Base), and its tokenizer
        self.scale = self.alpha / rank
        self.adapted = [name for name, w in base.params.items()
                        if w.ndim == 2 and any(name.endswith(t) for t in self.targets)]
        if not self.adapted:
            matrices = sorted({n.split(".", 2)[-1] for n, w in base.params.items() if w.ndim == 2})
            raise MinilmError(f"no weight of the model ends with {list(self.targets)}: choose targets among {matrices}")
        smallest = min(self.adapted, key=lambda name: min(base.params[name].shape))
        if rank > min(base.params[smallest].shape):
            raise MinilmError(f"LoRA rank {rank} is larger than the matrix it adapts ({smallest} is "
                              f"{' x '.join(map(str, base.params[smallest].shape))}), so it adds parameters and "
                              f"nothing a full update could not do: choose a rank of "
                              f"{min(base.params[smallest].shape)} or less")
        self.frozen = dict(base.params)  # the pretrained weights, never updated
        self.params = self._init_adapters(seed)
        self._merged_from, self._lock = None, threading.Lock()

    def _init_adapters(self, seed):
        """A drawn like a linear layer's weight (std 1 / sqrt(C_in)), B zero: the adapted model starts as the base."""
        rng, xp, dtype = np.random.default_rng(seed), self.base.xp, self.base.config.dtype
        params = {}
        for name in self.adapted:
            c_in, c_out = self.frozen[name].shape
            params[f"{name}.lora_a"] = xp.asarray(rng.standard_normal((c_in, self.rank)) / np.sqrt(c_in), dtype=dtype)
            params[f"{name}.lora_b"] = xp.zeros((self.rank, c_out), dtype=dtype)
        return params

    # ---- the Model contract, through the base model on merged weights

    @property
    def config(self):
        return self.base.config

    @property
    def xp(self):
        return self.base.xp

    @property
    def reads_token_stream(self):
        return self.base.reads_token_stream

    def checkpoint_meta(self):
        """The base's configuration, and what rebuilds the adapters around it (minilm.checkpoint.load_lora)."""
        if self.source is None:
            raise MinilmError("a LoRA checkpoint names its base: give LoRA(..., source=Base(checkpoint=PATH))")
        meta = {"model": "LoRA", "config": self.config.to_dict(),
                "lora": {"base": self.source.absolute().to_json(), "rank": self.rank, "alpha": self.alpha,
                         "targets": list(self.targets)}}
        return meta | ({"tokenizer": self.tokenizer.to_json()} if self.tokenizer is not None else {})

    def num_params(self, non_embedding=False):
        """The trainable parameters: the adapters."""
        return int(sum(a.size for a in self.params.values()))

    def forward(self, *inputs, **options):
        """The base's forward pass on the merged weights (with its options: a mask, a KV cache to generate with)."""
        self._merge()
        return self.base.forward(*inputs, **options)

    def loss_and_grads(self, *batch):
        """The base model's loss and backward pass on the merged weights, asked for the adapters' gradients
        and for none of a frozen weight's (the base's grad_rules, set by _merge)."""
        self._merge()
        loss, grads = self.base.loss_and_grads(*batch)
        return loss, self._adapters(grads)

    def _forward(self, *inputs):
        """The base's forward pass with its cache, on the merged weights: with _backward, the pass that a loss
        written outside the model uses (minilm.objectives: DPO, policy gradient) on an adapted model too."""
        self._merge()
        return self.base._forward(*inputs)

    def _backward(self, dlogits, cache):
        """The base's backward pass from the logits' gradient -> the adapters' gradients."""
        return self._adapters(self.base._backward(dlogits, cache))

    def _adapters(self, grads):
        return {name: grads[name] for name in self.params}

    def _merge(self):
        """Point the base model at W + scale A B, and its backward pass at the adapters, when they changed
        since the last merge. The lock and the comparison make it safe for the batch's pieces, which run in
        threads (minilm.parallel)."""
        with self._lock:
            if self._merged_from is not None and all(
                    self.xp.array_equal(self.params[k], v) for k, v in self._merged_from.items()):
                return
            if self._merged_from is None:  # the first merge: the adapted weights get merged copies
                self.base.params = {**self.frozen, **self._merged_weights()}
            else:  # later ones write into those copies, so that no second set is made while the first is held
                for name in self.adapted:
                    layers.lora_merge(self.frozen[name], self.params[f"{name}.lora_a"], self.params[f"{name}.lora_b"],
                                      self.scale, out=self.base.params[name])
            self.base.grad_rules = {name: layers.FROZEN for name in self.frozen} | {
                name: layers.Adapters(self.params[f"{name}.lora_a"], self.params[f"{name}.lora_b"], self.scale)
                for name in self.adapted}
            self._merged_from = {k: v.copy() for k, v in self.params.items()}

    def _merged_weights(self):
        return {name: layers.lora_merge(self.frozen[name], self.params[f"{name}.lora_a"],
                                        self.params[f"{name}.lora_b"], self.scale) for name in self.adapted}

    def merged(self):
        """A plain model of the base's class whose weights are the merged ones (the adapters folded in)."""
        return type(self.base)(self.base.config, device=device_name(self.xp),
                               params={**self.frozen, **self._merged_weights()})
