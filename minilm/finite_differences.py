"""Finite differences against the analytic gradients: the proof that every hand-written backward pass is right.

For a parameter entry theta_i the central difference

    (L(theta_i + eps) - L(theta_i - eps)) / (2 eps)

approximates dL/dtheta_i with an error of order eps^2. Run in float64, the analytic and numeric gradients
of a correct backward pass agree to about 1e-8 or better; a wrong one is off by order 1. We compare them per
tensor with the relative error  ||numeric - analytic|| / (||numeric|| + ||analytic||).
"""
import numpy as np

from .backend import to_numpy, xp_of


def relative_error(a, b):
    """||a - b|| / (||a|| + ||b||), 0 when both are zero."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numeric_grad(loss_fn, array, eps=1e-6, entries=None):
    """Central differences of loss_fn() with respect to the given flat entries of `array` (all if None).

    `array` is perturbed in place and restored; loss_fn must read it afresh on every call.
    Entries count in C order whatever the array's memory layout (a transposed view works too).
    Returns (flat entry indices, numeric gradients at them).
    """
    entries = np.arange(array.size) if entries is None else entries
    grads = np.empty(len(entries))
    for n, i in enumerate(entries):
        at = np.unravel_index(int(i), array.shape)  # the entry's index tuple
        original = array[at].item()
        array[at] = original + eps
        plus = float(loss_fn())
        array[at] = original - eps
        minus = float(loss_fn())
        array[at] = original
        grads[n] = (plus - minus) / (2 * eps)
    return entries, grads


def gradient_errors(loss_fn, arrays, grads, eps=1e-6, max_entries=None, seed=0):
    """Compare analytic grads with finite differences, tensor by tensor.

    arrays: dict name -> array that loss_fn() reads (perturbed in place and restored);
    grads: dict name -> analytic gradient of loss_fn() at the unperturbed arrays;
    max_entries: check at most this many randomly chosen entries per tensor (all if None).
    Returns dict name -> relative error.
    """
    rng = np.random.default_rng(seed)
    errors = {}
    for name, array in arrays.items():
        entries = None
        if max_entries is not None and array.size > max_entries:
            entries = rng.choice(array.size, size=max_entries, replace=False)
        entries, numeric = numeric_grad(loss_fn, array, eps, entries)
        analytic = to_numpy(grads[name]).reshape(-1)[entries]
        errors[name] = relative_error(numeric, analytic)
    return errors


def layer_gradient_errors(forward, backward, inputs, grad_names, seed=0, eps=1e-6, **kwargs):
    """Finite differences against one forward/backward pair's analytic gradients.

    forward(**inputs, **kwargs) -> (out, cache); backward(dout, cache) -> the gradients of grad_names, in order.
    The scalar loss is sum(out * R) for a fixed random R, so dout = R and every output entry matters.
    Returns dict name -> relative error.
    """
    out, cache = forward(**inputs, **kwargs)
    xp = xp_of(out)
    R = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def loss_fn():
        return (forward(**inputs, **kwargs)[0] * R).sum()

    analytic = backward(R.copy(), cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    grads = dict(zip(grad_names, analytic))
    return gradient_errors(loss_fn, {name: inputs[name] for name in grad_names}, grads, eps=eps)
