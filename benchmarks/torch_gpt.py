"""The same GPT written in PyTorch (eager mode): the peer the NumPy engine is measured against.

Benchmark-only: PyTorch is never a dependency of minilm. The architecture is minilm's exactly (pre-LN
blocks, fused QKV, tanh GELU, weight-tied head), written the way a learner would write it with PyTorch
(nanoGPT style, with the fused scaled_dot_product_attention), and it loads minilm's parameters, so the
two can be checked to compute the same loss and gradients before they are timed.
"""
import torch
import torch.nn.functional as F


class TorchGPT(torch.nn.Module):
    def __init__(self, params, n_layer, n_head):
        """params: minilm's dict name -> NumPy array (linear weights stored (C_in, C_out), as minilm does)."""
        super().__init__()
        self.n_layer, self.n_head = n_layer, n_head
        self.names = {name.replace(".", "_"): name for name in params}  # ParameterDict keys cannot hold dots
        self.p = torch.nn.ParameterDict({key: torch.nn.Parameter(torch.tensor(params[name]))
                                         for key, name in self.names.items()})

    def w(self, name):
        return self.p[name.replace(".", "_")]

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.w("wte")[idx] + self.w("wpe")[:T]
        C = x.shape[-1]
        for i in range(self.n_layer):
            h = lambda n: self.w(f"h.{i}.{n}")  # noqa: E731
            a = F.layer_norm(x, (C,), h("ln_1.w"), h("ln_1.b"))
            q, k, v = (a @ h("attn.w_qkv") + h("attn.b_qkv")).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            x = x + y @ h("attn.w_proj") + h("attn.b_proj")
            m = F.layer_norm(x, (C,), h("ln_2.w"), h("ln_2.b"))
            m = F.gelu(m @ h("mlp.w_fc") + h("mlp.b_fc"), approximate="tanh")
            x = x + m @ h("mlp.w_proj") + h("mlp.b_proj")
        x = F.layer_norm(x, (C,), self.w("ln_f.w"), self.w("ln_f.b"))
        logits = x @ self.w("wte").T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def grads(self):
        """minilm-named gradients as NumPy arrays."""
        return {self.names[key]: p.grad.cpu().numpy() for key, p in self.p.items()}
