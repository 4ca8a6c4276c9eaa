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
        logits = self.logits(idx)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def logits(self, idx, cache=None):
        """idx: (B, T) -> (B, T, V). cache: a list of per-layer [k, v] (or Nones) that this call extends."""
        B, T = idx.shape
        past = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        x = self.w("wte")[idx] + self.w("wpe")[past:past + T]
        C = x.shape[-1]
        for i in range(self.n_layer):
            h = lambda n: self.w(f"h.{i}.{n}")  # noqa: E731
            a = F.layer_norm(x, (C,), h("ln_1.w"), h("ln_1.b"))
            q, k, v = (a @ h("attn.w_qkv") + h("attn.b_qkv")).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            if cache is not None:
                if cache[i] is not None:
                    k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
                cache[i] = [k, v]
            # one new query attends to every cached key: no mask needed; a whole prompt is causal
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            x = x + y @ h("attn.w_proj") + h("attn.b_proj")
            m = F.layer_norm(x, (C,), h("ln_2.w"), h("ln_2.b"))
            m = F.gelu(m @ h("mlp.w_fc") + h("mlp.b_fc"), approximate="tanh")
            x = x + m @ h("mlp.w_proj") + h("mlp.b_proj")
        x = F.layer_norm(x, (C,), self.w("ln_f.w"), self.w("ln_f.b"))
        return x @ self.w("wte").T

    @torch.no_grad()
    def generate_greedy(self, prompt, n_new):
        """Greedy decoding with a KV cache: the prompt once, then one token per call."""
        cache = [None] * self.n_layer
        idx = torch.tensor([prompt], device=self.w("wte").device)
        out = []
        for _ in range(n_new):
            token = self.logits(idx, cache)[0, -1].argmax()
            out.append(int(token))
            idx = token.view(1, 1)
        return out

    def grads(self):
        """minilm-named gradients as NumPy arrays."""
        return {self.names[key]: p.grad.cpu().numpy() for key, p in self.p.items()}
