"""minilm's Llama written in PyTorch (eager mode): the peer of the fine-tuning benchmark.

Benchmark-only, as torch_gpt.py. It loads minilm's parameters (linear weights stored (C_in, C_out)) and
computes what minilm.model.Llama computes: RMSNorm, RoPE on interleaved pairs (channels 2i and 2i+1, the
GGUF layout minilm reads), grouped key/value heads, a SwiGLU MLP with the gate and up weights side by side,
a head tied to the embedding where the file ties it; the loss is the mean over the positions the loss mask keeps.
"""
import torch
import torch.nn.functional as F


class TorchLlama(torch.nn.Module):
    def __init__(self, params, config):
        """params: minilm's dict name -> NumPy array; PyTorch's parameters share their memory (no copy)."""
        super().__init__()
        self.config = config
        self.names = {name.replace(".", "_"): name for name in params}  # ParameterDict keys cannot hold dots
        self.p = torch.nn.ParameterDict({key: torch.nn.Parameter(torch.from_numpy(params[name]))
                                         for key, name in self.names.items()})
        hs = config.d_model // config.n_head
        theta = config.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
        angles = torch.arange(config.block_size, dtype=torch.float64)[:, None] * theta  # (T, hs/2)
        self.cos, self.sin = angles.cos().float(), angles.sin().float()

    def w(self, name):
        return self.p[name.replace(".", "_")]

    def rope(self, x):
        """x: (B, nh, T, hs): each pair (2i, 2i+1) rotated by its position's angle."""
        T = x.shape[2]
        cos, sin = self.cos[:T], self.sin[:T]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    def logits(self, idx):
        cfg = self.config
        B, T = idx.shape
        C, nh, nkv = cfg.d_model, cfg.n_head, cfg.n_kv_head
        hs = C // nh
        x = self.w("wte")[idx]
        for i in range(cfg.n_layer):
            h = lambda n: self.w(f"h.{i}.{n}")  # noqa: E731
            a = F.rms_norm(x, (C,), h("norm_1.w"), cfg.norm_eps)
            q, k, v = (a @ h("attn.w_qkv")).split([C, nkv * hs, nkv * hs], dim=2)
            q = self.rope(q.view(B, T, nh, hs).transpose(1, 2))
            k = self.rope(k.view(B, T, nkv, hs).transpose(1, 2))
            v = v.view(B, T, nkv, hs).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + y.transpose(1, 2).reshape(B, T, C) @ h("attn.w_proj")
            m = F.rms_norm(x, (C,), h("norm_2.w"), cfg.norm_eps)
            gate, up = (m @ h("mlp.w_fc")).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ h("mlp.w_proj")
        x = F.rms_norm(x, (C,), self.w("norm_f.w"), cfg.norm_eps)
        return x @ (self.w("w_head") if "w_head" in self.names else self.w("wte").T)

    def forward(self, idx, targets, loss_mask):
        logits = self.logits(idx)
        nll = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        mask = loss_mask.reshape(-1)
        return (nll * mask).sum() / mask.sum()

    def grads(self):
        """minilm-named gradients as NumPy arrays."""
        return {self.names[key]: p.grad.cpu().numpy() for key, p in self.p.items()}
