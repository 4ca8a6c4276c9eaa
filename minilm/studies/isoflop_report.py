"""Reading an iso-FLOP study: each budget's best size, how it grows with compute, and a prediction.

    valley            one budget's held-out loss against log10 N, a parabola, and its lowest point
    optimum_path      N_opt(C) = k C^a and D_opt(C) = C / (6 N_opt) ~ C^(1 - a), fitted in log-log space,
                      each exponent with a 95% interval from resampling the seeds of every (budget, size)
    prediction        the same fits on every budget but the largest, extrapolated to it
    extrapolation_intervals   the extrapolation's 95% intervals, from resampled seeds
    report            what `python -m minilm isoflop --report` prints

The quoted exponents of N_opt ~ C^a: Hoffmann et al. (2022, "Training Compute-Optimal Large Language
Models", Table 2) a = 0.50, 0.49 and 0.46 by their three approaches (about 20 tokens per parameter);
Kaplan et al. (2020, "Scaling Laws for Neural Language Models", section 6) a = 0.73.
"""
from dataclasses import dataclass

import numpy as np

from . import isoflop, runner
from .stats import percentile_interval, resample_seeds

QUOTED = {"Hoffmann et al. 2022 (Chinchilla)": 0.50, "Kaplan et al. 2020": 0.73}


def budgets(results):
    """budget -> (N of each size, (sizes, seeds) losses), sizes in ascending N."""
    by_budget = {}
    for r in results["points"].values():
        by_budget.setdefault(r["budget"], {}).setdefault(r["params"], []).append((r["seed"], r["val_loss"]))
    out = {}
    for budget, sizes in sorted(by_budget.items()):
        params = sorted(sizes)
        out[budget] = (np.array(params, dtype=float),
                       np.array([[loss for _, loss in sorted(sizes[n])] for n in params]))
    return out


@dataclass
class Valley:
    log_n: float     # log10 of the best size, the parabola's lowest point
    loss: float      # the parabola's value there
    bracketed: bool  # the parabola opens upward and its lowest point lies among the sizes trained


def parabola(params, mean_loss):
    """The least-squares parabola through loss against log10 N: its coefficients (c2, c1, c0), highest first."""
    return np.polyfit(np.log10(params), mean_loss, 2)


def valley(params, mean_loss):
    """A parabola through loss against log10 N; its vertex is the budget's compute-optimal size (where the
    vertex falls outside the sizes trained, the best of them, marked not bracketed)."""
    x = np.log10(params)
    c2, c1, c0 = parabola(params, mean_loss)
    vertex = -c1 / (2 * c2) if c2 > 0 else np.nan
    if not x[0] < vertex < x[-1]:  # no valley among these sizes: the best one trained, not an extrapolation
        best = int(np.argmin(mean_loss))
        return Valley(float(x[best]), float(mean_loss[best]), False)
    return Valley(float(vertex), float(c0 + c1 * vertex + c2 * vertex ** 2), True)


def line(log_c, log_y):
    """Least squares log_y = slope log_c + intercept -> (slope, intercept)."""
    slope, intercept = np.polyfit(log_c, log_y, 1)
    return float(slope), float(intercept)


@dataclass
class Path:
    compute: np.ndarray     # (budgets,) FLOPs
    valleys: list           # one Valley per budget
    a: float                # N_opt ~ C^a
    a_interval: tuple
    intercept: float        # log10 N_opt = a log10 C + intercept
    valley_intervals: list  # per budget, the 95% interval of log10 N_opt over resampled seeds

    def n_opt(self, compute):
        return 10 ** (self.a * np.log10(compute) + self.intercept)

    def tokens_per_param(self, compute):
        """D_opt / N_opt at a budget, with D_opt = C / (6 N_opt)."""
        n = self.n_opt(compute)
        return compute / (6 * n) / n


def optimum_path(per_budget, n_boot=1000, seed=0):
    """Each budget's valley, the power law through the valleys, and intervals from resampled seeds."""
    compute = np.array(sorted(per_budget), dtype=float)
    valleys = [valley(params, losses.mean(axis=1)) for params, losses in (per_budget[c] for c in compute)]
    a, intercept = line(np.log10(compute), [v.log_n for v in valleys])
    rng = np.random.default_rng(seed)
    draws = np.array([[valley(params, resample_seeds(losses, rng).mean(axis=1)).log_n
                       for params, losses in (per_budget[c] for c in compute)] for _ in range(n_boot)])  # (n_boot, C)
    slopes = [line(np.log10(compute), d)[0] for d in draws]
    lo, hi = percentile_interval(np.array(slopes))
    v_lo, v_hi = percentile_interval(draws)
    return Path(compute, valleys, a, (float(lo), float(hi)), intercept, list(zip(v_lo, v_hi)))


def loss_law(path):
    """The valleys' loss against compute, L_opt(C) = 10^intercept C^slope (a straight line in log-log)."""
    return line(np.log10(path.compute), np.log10([v.loss for v in path.valleys]))


def prediction(results, n_boot=1000):
    """Fitted on every budget but the largest: (largest budget, predicted log10 N_opt, predicted loss, the
    measured valley there)."""
    per_budget = budgets(results)
    largest = max(per_budget)
    earlier = optimum_path({c: v for c, v in per_budget.items() if c != largest}, n_boot)
    slope, intercept = loss_law(earlier)
    measured = valley(per_budget[largest][0], per_budget[largest][1].mean(axis=1))
    predicted_loss = float(10 ** (slope * np.log10(largest) + intercept))
    return largest, float(np.log10(earlier.n_opt(largest))), predicted_loss, measured


def extrapolation_intervals(per_budget, compute, n_boot=1000, seed=0):
    """95% intervals of N_opt and of the lowest loss extrapolated to a budget not trained: both power laws
    fitted again on every budget's seeds resampled. -> ((N low, N high), (loss low, loss high))"""
    rng, log_c = np.random.default_rng(seed), np.log10(sorted(per_budget))
    n_opt, loss = [], []
    for _ in range(n_boot):
        valleys = [valley(params, resample_seeds(losses, rng).mean(axis=1))
                   for params, losses in (per_budget[c] for c in sorted(per_budget))]
        for out, log_y in ((n_opt, [v.log_n for v in valleys]), (loss, np.log10([v.loss for v in valleys]))):
            slope, intercept = line(log_c, log_y)
            out.append(10 ** (slope * np.log10(compute) + intercept))
    return tuple(tuple(float(x) for x in percentile_interval(np.array(draws))) for draws in (n_opt, loss))


def nearest_quote(a, interval):
    """Which quoted exponent ours is nearer, or neither when its interval holds both or none."""
    inside = [name for name, q in QUOTED.items() if interval[0] <= q <= interval[1]]
    if len(inside) == 1:
        return f"its interval holds {inside[0]}'s {QUOTED[inside[0]]:.2f} and not the other"
    if inside:
        return "its interval holds both quoted exponents: this study cannot tell them apart"
    name = min(QUOTED, key=lambda n: abs(QUOTED[n] - a))
    return f"its interval holds neither quoted exponent; the nearer is {name}'s {QUOTED[name]:.2f}"


def combined(*results):
    """One results dict holding the runs of several presets' results (an added preset beside its baseline)."""
    return {"preset": " + ".join(r["preset"] for r in results), "config": results[0]["config"],
            "points": {k: v for r in results for k, v in r["points"].items()},
            "wall_seconds": sum(r.get("wall_seconds", 0) for r in results)}


def report(results, *baselines):
    results = combined(*baselines, results) if baselines else results
    per_budget = budgets(results)
    path = optimum_path(per_budget)
    lines = [f"isoflop {results.get('preset', '?')}: {len(results['points'])} runs, {len(per_budget)} budgets, "
             f"{results.get('wall_seconds', 0) / 60:.1f} min of wall time; held-out loss (mean over seeds)"]
    for c, v, (lo, hi) in zip(path.compute, path.valleys, path.valley_intervals):
        params, losses = per_budget[c]
        sizes = ", ".join(f"N {n:,.0f}: {m:.3f}" for n, m in zip(params, losses.mean(axis=1)))
        lines.append(f"  C {c:.1e}: {sizes}")
        lines.append(f"    best size N_opt {10 ** v.log_n:,.0f} [{10 ** lo:,.0f}, {10 ** hi:,.0f}], loss {v.loss:.3f}"
                     + ("" if v.bracketed else "  (not bracketed: the smallest loss is at an end of these sizes)"))
    lo, hi = path.a_interval
    lines.append(f"N_opt ~ C^{path.a:.2f} [{lo:.2f}, {hi:.2f}], D_opt ~ C^{1 - path.a:.2f} [{1 - hi:.2f}, "
                 f"{1 - lo:.2f}] (95%, seeds resampled); {nearest_quote(path.a, path.a_interval)}")
    lines.append("tokens per parameter at the optimum: " + ", ".join(
        f"C {c:.0e}: {path.tokens_per_param(c):.0f}" for c in path.compute) + " (Chinchilla: about 20)")
    if len(per_budget) >= 4:
        largest, log_n, loss, measured = prediction(results)
        lines.append(f"prediction for C {largest:.1e} from the smaller budgets: N_opt {10 ** log_n:,.0f}, "
                     f"loss {loss:.3f}; measured N_opt {10 ** measured.log_n:,.0f}, loss {measured.loss:.3f} "
                     f"(error {measured.log_n - log_n:+.2f} decades, {measured.loss - loss:+.3f} in loss)")
    return "\n".join(lines)


STUDY = runner.Study(
    name="isoflop", help="compute-optimal scaling: at fixed budgets, which size is best (lesson 03)",
    description="Train several sizes at each of a few compute budgets, each on the tokens its budget buys (read "
                "once, from a fresh toyworld stream); fit each budget's best size and how it grows with compute.",
    presets=isoflop.PRESETS, default="lesson03", preset=isoflop.preset, sweep=isoflop.sweep_points,
    measure=isoflop.measure, report=report, committed=("lesson03", "lesson03_edge"), baselines=isoflop.BASELINES)
