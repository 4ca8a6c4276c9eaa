"""AdamW, global gradient-norm clipping, and the warm-up + cosine learning-rate schedule."""
import math

from . import kernels, parallel
from .backend import to_numpy, xp_of


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter).

    Weight decay pulls the matrices (every parameter with 2 or more dimensions: the attention and MLP
    weights and the embeddings) towards zero; biases and layernorm gains and shifts are left alone, since
    shrinking them only fights the normalisation.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        self.params = params  # the model's dict, updated in place
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        xp = xp_of(*params.values())  # NumPy or CuPy, where the parameters live
        self.m = {name: xp.zeros_like(p) for name, p in params.items()}  # first moment
        self.v = {name: xp.zeros_like(p) for name, p in params.items()}  # second moment
        self.t = 0  # steps taken

    def decays(self, name):
        return self.params[name].ndim >= 2

    def step(self, grads, lr=None):
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        correction1, correction2 = 1 - b1 ** self.t, 1 - b2 ** self.t  # undo the zero start of m and v

        def update(name):
            decay = lr * self.weight_decay if self.decays(name) else 0.0
            adamw_update(self.params[name], grads[name], self.m[name], self.v[name], b1, b2, self.eps, lr, decay,
                         correction1, correction2)

        parallel.each(update, list(self.params), self.params.values())  # on the CPU, one thread per core

    def state(self):
        """Arrays and numbers that resume the optimizer exactly (see checkpoint.py)."""
        arrays = {f"m/{n}": a for n, a in self.m.items()} | {f"v/{n}": a for n, a in self.v.items()}
        return arrays, {"t": self.t}

    def load_state(self, arrays, meta):
        xp = xp_of(*self.m.values())
        for name in self.params:
            self.m[name][...] = xp.asarray(arrays[f"m/{name}"])
            self.v[name][...] = xp.asarray(arrays[f"v/{name}"])
        self.t = int(meta["t"])


@kernels.fused(kernels.adamw_update)
def adamw_update(p, g, m, v, b1, b2, eps, lr, decay, correction1, correction2):
    """One parameter's AdamW step, in place on p and its moments m and v."""
    xp = xp_of(p)
    m *= b1
    m += (1 - b1) * g  # m = b1 m + (1 - b1) g
    step = g * g  # one scratch array per parameter, reused in place below
    step *= 1 - b2
    v *= b2
    v += step  # v = b2 v + (1 - b2) g^2
    if decay:
        p *= 1 - decay  # decoupled weight decay: decay = lr * weight_decay
    xp.sqrt(v, out=step)
    step *= 1 / math.sqrt(correction2)
    step += eps  # sqrt(v / correction2) + eps
    xp.divide(m, step, out=step)
    step *= lr / correction1
    p -= step  # p -= lr * (m / correction1) / (sqrt(v / correction2) + eps)


def adamw_update_reference(p, g, m, v, b1, b2, eps, lr, decay, correction1, correction2):
    """adamw_update as the formulas read, in new arrays: -> (p, m, v) after the step. Its reference (see
    minilm.layers); tests/test_reference_layers.py checks the two against each other."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    p = p * (1 - decay) - lr * (m / correction1) / ((v / correction2) ** 0.5 + eps)
    return p, m, v


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm. Returns the norm before."""
    xp, arrays = xp_of(*grads.values()), list(grads.values())
    squares = parallel.each(lambda g: xp.vdot(g.ravel(), g.ravel()), arrays, arrays)  # sum of g^2 each
    total = math.sqrt(sum(float(s) for s in to_numpy(xp.stack(squares))))  # one copy off a GPU
    if max_norm is not None and total > max_norm:
        scale = max_norm / (total + 1e-6)
        parallel.each(lambda g: xp.multiply(g, scale, out=g), arrays, arrays)
    return total


def lr_at(step, max_lr, total_steps, warmup_steps, min_lr_ratio=0.1):
    """Linear warm-up to max_lr, then a cosine decay to min_lr_ratio * max_lr at total_steps."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0
    return max_lr * (min_lr_ratio + (1 - min_lr_ratio) * cosine)
