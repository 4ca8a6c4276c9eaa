"""The statistics every study shares: training compute, power laws, and intervals from resampling seeds.

    training_flops       C = 6 N D plus attention's products (Kaplan et al., 2020)
    fit_power_law        L(C) = a C^-alpha, with an irreducible loss E when the fit supports it
    resample_seeds       one bootstrap copy of a (budgets, seeds) table: each row's seeds drawn again
    bootstrap_exponent   a 95% interval for alpha from resampled seeds
    found_interval       a 95% interval of a quantity that some resamples do not find (a crossing)
    within_seed_band     does a re-trained value land where the committed seeds of its point say it may?
    paired_bootstrap     resampled means over seeds per size and prompt clusters shared by every size
    percentile_interval  the central 95% (or another level) of bootstrap draws
    welch_interval       the difference of two means with Welch's t interval (t_quantile: Student's t)
    wilson_interval      a share of successes with Wilson's score interval
    seed_band            where a re-trained point should land: its committed seeds' mean +- max(3 sd, a floor)
"""
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ..errors import MinilmError

# ----------------------------------------------------------------------------------------------------
# Compute: FLOPs of training, counted the way Kaplan et al. (2020) do.

def training_flops(n_params, n_layer, d_model, block_size, vocab_size, tokens):
    """C = 6 * D * (N + V*d)  +  6 * D * n_layer * T * d.

    A forward pass costs 2 FLOPs per weight per token (a multiply and an add) and the backward pass
    twice that: 6 per weight per token. N is the non-embedding parameter count and V*d the output
    layer (the token embedding, reused as the head); the last term is attention's query-key and
    weights-value products, which use no weights but grow with the context length T.
    """
    return 6.0 * tokens * (n_params + vocab_size * d_model) + 6.0 * tokens * n_layer * block_size * d_model


# ----------------------------------------------------------------------------------------------------
# Power laws.

@dataclass
class PowerLaw:
    a: float
    alpha: float
    floor: float = 0.0  # E, the irreducible loss

    def __call__(self, compute):
        return self.floor + self.a * np.asarray(compute, dtype=float) ** (-self.alpha)

    def describe(self):
        floor = f"{self.floor:.3f} + " if self.floor else ""
        return f"L(C) = {floor}{self.a:.3g} * C^(-{self.alpha:.4f})"


def line_fit(compute, loss, floor):
    """Least squares of log(L - E) = log a - alpha log C; returns the law and its squared error in log L."""
    x, y = np.log(compute), np.log(loss - floor)
    slope, intercept = np.polyfit(x, y, 1)
    law = PowerLaw(float(np.exp(intercept)), float(-slope), float(floor))
    return law, float(np.sum((np.log(law(compute)) - np.log(loss)) ** 2))


def fit_power_law(compute, loss, allow_floor=True):
    """Fit L(C) in log-log space; add an irreducible loss E when the fit supports it.

    With a floor E the law is a straight line in log(L - E) against log C. The floor is kept only when
    it lowers the Akaike information criterion (n log(SSE / n) + 2k: one more parameter costs 2) by
    more than 2, i.e. when the better fit is more than the extra parameter at work.
    """
    compute, loss = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if len(compute) < 3 or np.any(compute <= 0) or np.any(loss <= 0):
        raise MinilmError("fit_power_law needs at least 3 points with positive compute and loss")
    law, sse = line_fit(compute, loss, 0.0)
    if not allow_floor:
        return law
    floored, floored_sse = fit_with_floor(compute, loss)
    n = len(loss)
    aic = lambda s, k: n * math.log(max(s, 1e-300) / n) + 2 * k
    return floored if aic(floored_sse, 3) < aic(sse, 2) - 2 else law


def fit_with_floor(compute, loss):
    """L(C) = E + a C^(-alpha): the best E on a grid below the smallest loss, with its squared error."""
    fits = [line_fit(compute, loss, floor) for floor in np.linspace(0, 0.99 * np.min(loss), 100)]
    return min(fits, key=lambda fit: fit[1])


def bootstrap_exponent(compute, per_seed_loss, floor=False, n_boot=1000, seed=0):
    """A 95% interval for alpha: resample the seeds of every size with replacement, refit, repeat.

    per_seed_loss: (n_sizes, n_seeds); floor: fit the law with an irreducible loss (as chosen for the
    means). Returns the 2.5 and 97.5 percentiles of the refitted exponents.
    """
    rng = np.random.default_rng(seed)
    alphas = []
    for _ in range(n_boot):
        resampled = resample_seeds(per_seed_loss, rng).mean(axis=1)
        law = fit_with_floor(compute, resampled)[0] if floor else line_fit(compute, resampled, 0.0)[0]
        alphas.append(law.alpha)
    low, high = np.percentile(alphas, [2.5, 97.5])
    return float(low), float(high)


# ----------------------------------------------------------------------------------------------------
# Intervals from resampling seeds (and prompts).

def resample_seeds(values, rng):
    """values (n, seeds) with each budget's seeds drawn again with replacement: one bootstrap copy."""
    return np.take_along_axis(values, rng.integers(values.shape[1], size=values.shape), axis=1)


def found_interval(found, n_boot):
    """The 2.5 and 97.5 percentiles of the crossings found (None where none was), and the share that were
    found; low and high are None if fewer than half the resamples cross."""
    hits = [f for f in found if f is not None]
    low, high = np.percentile(hits, [2.5, 97.5]) if len(hits) >= n_boot / 2 else (None, None)
    return low, high, len(hits) / n_boot


def within_seed_band(value, committed_seeds, floor, center=None):
    """Is a re-trained value within seed_band of its point's committed seeds? A point committed with one seed only
    (a knob-map cell) is given center, its committed value, and the spread of the seeds of a neighbouring point
    (the same size). Returns (ok, message)."""
    mean, half_width = seed_band(committed_seeds, floor)
    center = mean if center is None else center
    seeds = np.round(np.asarray(committed_seeds, dtype=float), 4).tolist()
    return abs(value - center) <= half_width, (f"{value:.4f} re-trained, committed {center:.4f}, seeds {seeds} "
                                               f"(band +-{half_width:.4f})")


def paired_bootstrap(per_size, clusters, n_boot=2000, seed=0):
    """Resampled means: (n_boot, n_sizes). Seeds are resampled per size (independent runs); prompt
    clusters (quotes) are resampled once per draw and shared by every size: the sizes are compared on
    the same prompts, a paired bootstrap."""
    rng = np.random.default_rng(seed)
    unique, item_cluster = np.unique(clusters, return_inverse=True)
    draws = rng.integers(len(unique), size=(n_boot, len(unique)))
    cluster_counts = np.stack([np.bincount(d, minlength=len(unique)) for d in draws])  # (n_boot, U)
    item_weights = cluster_counts[:, item_cluster]  # (n_boot, N): how often each item was drawn
    out = []
    for values in per_size:  # (S, N)
        S = values.shape[0]
        seed_counts = np.stack([np.bincount(d, minlength=S) for d in rng.integers(S, size=(n_boot, S))])  # (n_boot, S)
        total = np.einsum("bs,sn,bn->b", seed_counts, values, item_weights)
        out.append(total / (S * item_weights.sum(axis=1)))
    return np.stack(out, axis=1)


def percentile_interval(samples, level=0.95):
    """The central `level` of the draws (axis 0): the 2.5 and 97.5 percentiles for a 95% interval."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail], axis=0)
    return lo, hi


# ----------------------------------------------------------------------------------------------------
# Intervals from a formula: the difference of two means, and a share of successes.

def t_cdf(x, df):
    """P(T <= x) for Student's t with df degrees of freedom: the density integrated from 0 to |x|."""
    grid = np.linspace(0.0, abs(x), 20_001)
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    half = np.trapezoid(np.exp(log_scale - (df + 1) / 2 * np.log1p(grid ** 2 / df)), grid)
    return 0.5 + math.copysign(half, x)


def t_quantile(p, df):
    """The x with P(T <= x) = p (p above 0.5), by bisection on t_cdf."""
    low, high = 0.0, 1000.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def welch_interval(a, b, level=0.95):
    """mean(a) - mean(b) with Welch's interval (unequal variances; the Welch-Satterthwaite degrees of
    freedom). a, b: independent samples of two or more values each. -> (difference, low, high, df)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)  # each mean's squared standard error
    diff = float(a.mean() - b.mean())
    if va + vb == 0:
        return diff, diff, diff, math.inf
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(1 - (1 - level) / 2, df) * math.sqrt(va + vb)
    return diff, diff - half, diff + half, float(df)


def wilson_interval(successes, n, level=0.95):
    """Wilson's score interval for a share successes / n (sound at 0 and at n, unlike the normal one)."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    share = successes / n
    center = (share + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = z / (1 + z ** 2 / n) * math.sqrt(share * (1 - share) / n + z ** 2 / (4 * n ** 2))
    return max(0.0, center - half), min(1.0, center + half)


# ----------------------------------------------------------------------------------------------------
# Re-training a committed point: the band its seeds allow.

def seed_band(seeds, floor):
    """Where a re-trained value of a committed point should land. On another CPU, BLAS rounds differently and
    training turns the last bit into the spread another seed gives (docs/architecture.md, "Reproducible on any
    CPU"), so the band is the committed seeds' mean +- 3 standard deviations, or +- floor where the seeds agree
    more closely than that. -> (center, half_width)."""
    seeds = np.asarray(seeds, dtype=float)
    return float(seeds.mean()), max(3 * float(seeds.std(ddof=1)), floor)
