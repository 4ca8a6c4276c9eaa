"""Reading the structure ladder (lesson 05): one curve per rung, where two curves cross, and the trend of
compute's price behind the thesis.

    ladder / rung_curve     each rung's metric against training compute, (budgets, seeds)
    tokenizer_ladder        the same for words, the BPE rungs and bytes (the tokenizer as structure)
    crossing (+ interval)   the budget where a less structured rung overtakes a more structured one
    extrapolated_crossing   where it would, if each curve went on as its fitted power law
    law_misses              how far each neural rung's fitted law misses its own budgets
    ranking                 the rungs best first at one of the sweep's budgets, as measured
    years_per_10x           how many years compute takes to get ten times cheaper, from a price table
    analyst_choices         how much that rate moves with the choices made before the fit
    report                  what `python -m minilm structure --report` prints
"""
import csv
import math

import numpy as np

from . import runner, structure
from ..data import toyworld
from ..errors import MinilmError
from .scaling_report import METRICS, curve
from .stats import fit_power_law, found_interval, resample_seeds
from .structure import RUNGS, tokenizer_rungs

# ----------------------------------------------------------------------------------------------------
# Reading the sweep: one curve per rung, and where two curves cross

BITS = lambda r: r["bits_per_char"]  # noqa: E731  (the metric of the ladder's main figure: lower is better)
EXACT_MATCH_MARGIN = METRICS["exact_match"][1]  # lesson 03's smallest change in exact match that counts


def exact_match(task):
    return lambda r: r["tasks"][task]["exact_match"]


def rung_curve(results, rung, metric=BITS, order=None):
    """compute (n,), per-seed values (n, seeds) of one rung over its budgets, cheapest first. The n-gram
    rung is the config's ngram_order unless another order is asked for (it has one 'seed': counting is
    deterministic)."""
    order = order or results["config"]["ngram_order"]
    groups = {}
    for r in results["points"].values():
        if r["rung"] == rung and (rung != "ngram" or r["order"] == order):
            groups.setdefault((r["n_layer"], r["d_model"], r["n_head"], r["tokens"]), []).append(r)
    if not groups:
        raise MinilmError(f"the results hold no {rung!r} points: run `python -m minilm structure` to the end first")
    return curve(sorted(groups.values(), key=lambda g: g[0]["flops"]), metric)


def ladder(results, metric=BITS, rungs=RUNGS):
    """rung -> (compute, per-seed values) for every rung, most structure first."""
    return {rung: rung_curve(results, rung, metric) for rung in rungs}


def tokenizer_ladder(results, metric=BITS):
    """The tokenizer's ladder (structure.tokenizer_rungs): words, the BPE rungs, bytes -> ladder's curves."""
    return ladder(results, metric, tokenizer_rungs(results["config"]))


def crossing(compute_a, values_a, compute_b, values_b, higher_is_better=False, hold_a=False, margin=0.0):
    """Where the less structured curve b overtakes a: the compute at which b's mean first becomes better than
    a's, reading both as straight lines between measured points in log compute, over the range both were
    measured. With hold_a, a is the best it reached with at most that much compute, and that best holds to
    the right (the count model's plateau: more counting stopped helping). b overtakes a when it is better by
    more than `margin`. -> (compute or None, verdict): 'crosses', 'ahead from the start' or 'does not
    overtake on these budgets' (then compute is None)."""
    sign = -1.0 if higher_is_better else 1.0  # sign * value: lower is better
    a = sign * values_a.mean(axis=1)
    if hold_a:
        a = np.minimum.accumulate(a)
    lo = compute_b.min() if hold_a else max(compute_a.min(), compute_b.min())
    hi = compute_b.max() if hold_a else min(compute_a.max(), compute_b.max())
    if lo >= hi:
        return None, "not measured at the same compute"
    grid = np.geomspace(lo, hi, 400)
    gap = (np.interp(np.log(grid), np.log(compute_b), sign * values_b.mean(axis=1))
           - np.interp(np.log(grid), np.log(compute_a), a))  # < -margin where b is better
    ahead = gap < -margin
    if ahead[0]:
        return None, "ahead from the start"
    if not ahead.any():
        return None, "does not overtake on these budgets"
    return float(grid[np.argmax(ahead)]), "crosses"


def crossing_interval(compute_a, values_a, compute_b, values_b, n_boot=1000, seed=0, **kwargs):
    """A 95% interval for the crossing: resample the seeds of every budget of both curves, find the crossing
    again, repeat. -> (low, high, share of resamples that cross)."""
    rng = np.random.default_rng(seed)
    found = [crossing(compute_a, resample_seeds(values_a, rng), compute_b, resample_seeds(values_b, rng), **kwargs)[0]
             for _ in range(n_boot)]
    return found_interval(found, n_boot)


def extrapolated_crossing(compute_a, values_a, compute_b, values_b, hold_a=False, n_boot=200, seed=0, up_to=1e20):
    """Where b would overtake a if each curve went on as its fitted law L(C) = E + a C^-alpha
    (stats.fit_power_law, E kept where the fit supports it; with hold_a, a stays at the best it reached),
    searched from the end of the measured budgets up to `up_to` FLOPs; the interval from refitting on
    resampled seeds. Lower is better. -> (compute or None, low, high, share of resamples that cross)."""
    grid = np.geomspace(max(compute_a.max(), compute_b.max()), up_to, 2000)

    def first_below(a, b):
        a_law = a.mean(axis=1).min() if hold_a else fit_power_law(compute_a, a.mean(axis=1))(grid)
        gap = fit_power_law(compute_b, b.mean(axis=1))(grid) - a_law
        return float(grid[np.argmax(gap < 0)]) if (gap < 0).any() else None

    rng = np.random.default_rng(seed)
    found = [first_below(resample_seeds(values_a, rng), resample_seeds(values_b, rng)) for _ in range(n_boot)]
    return (first_below(values_a, values_b), *found_interval(found, n_boot))


def law_misses(results):
    """rung -> (compute (n,), fitted law minus measured mean at each budget (n,)) for the neural rungs: how far
    the law extrapolated_crossing rolls out misses the points it was fitted to (bits per character)."""
    misses = {}
    for rung, (compute, values) in ladder(results).items():
        if rung != "ngram":
            mean = values.mean(axis=1)
            misses[rung] = compute, fit_power_law(compute, mean)(compute) - mean
    return misses


def ranking(results, budget):
    """The rungs, best (lowest bits per character) first, at the sweep's budget number `budget` (0: the
    smallest): each neural rung's measured mean at that budget (a word and a byte model of the same shape and
    tokens differ a little in FLOPs), the count model at the best it reached on at most that compute."""
    curves = ladder(results)
    value = {rung: v.mean(axis=1)[budget] for rung, (_, v) in curves.items() if rung != "ngram"}
    value["ngram"] = rung_value(curves, "ngram", curves["gpt"][0][budget])[0]
    return sorted(value, key=value.get)


# ----------------------------------------------------------------------------------------------------
# The trend behind the thesis: how fast compute gets cheaper

TALK_YEARS_PER_10X = 5.0  # the talk: "10x more compute every five years, for the same money"


PRECISIONS = ("fp32", "low")  # FP32 peak; the precision training runs at (FP16/BF16 tensor cores where a card has them)
CPI_2006, CPI_2024 = 201.6, 313.689  # US CPI-U annual averages (Bureau of Labor Statistics, series CUUR0000SA0)
INFLATION = (CPI_2024 / CPI_2006) ** (1 / 18)  # 2.5% a year, the average of 2006-2024


def peak_gflops(row, precision):
    """A card's peak: FP32, or at "low" its tensor cores' FP16/BF16 rate (dense, FP32 accumulate, as mixed-precision
    training runs) where it has them; a card without them trains fastest in FP32."""
    if precision == "low" and row["tensor_gflops"]:
        return float(row["tensor_gflops"])
    return float(row["fp32_gflops"])


def read_compute_trend(path, precision="fp32"):
    """The committed table of public figures: year (n,), FLOP/s per dollar (n,) at this precision (PRECISIONS),
    and the rows as dicts."""
    if precision not in PRECISIONS:
        raise MinilmError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    years = np.array([float(r["year"]) for r in rows])
    per_dollar = np.array([peak_gflops(r, precision) * 1e9 / float(r["launch_price_usd"]) for r in rows])
    return years, per_dollar, rows


def years_per_10x(years, per_dollar, n_boot=2000, seed=0):
    """Fit log10(FLOP/s per dollar) = slope * year + b; -> (years for 10x = 1 / slope, doubling time in
    years, a 95% bootstrap interval for the years per 10x from resampling the rows; a resample that holds a
    single launch year fits no line and is drawn again)."""
    fit = lambda pick: 1.0 / np.polyfit(years[pick], np.log10(per_dollar[pick]), 1)[0]  # noqa: E731
    rng = np.random.default_rng(seed)
    boot = []
    while len(boot) < n_boot:
        pick = rng.integers(len(years), size=len(years))
        if np.ptp(years[pick]) > 0:
            boot.append(fit(pick))
    tenfold = fit(np.arange(len(years)))
    return tenfold, tenfold * math.log10(2), tuple(float(x) for x in np.percentile(boot, [2.5, 97.5]))


def analyst_choices(path):
    """How much the fitted rate depends on choices an analyst makes before fitting: -> [(choice, number of
    launches, {precision: (years per 10x, (low, high))})], the first row every launch at the price of its day."""
    years, _, rows = read_compute_trend(path)
    per_dollar = {precision: read_compute_trend(path, precision)[1] for precision in PRECISIONS}
    price = np.array([float(r["launch_price_usd"]) for r in rows])
    every = np.ones(len(rows), bool)
    choices = [("every launch, dollars of the day", every, 1.0),
               ("launches of 2006-2015 only", years < 2016, 1.0),
               ("launches of 2016-2025 only", years >= 2016, 1.0),
               ("cards of $700 or less only", price <= 700, 1.0),
               ("prices in 2006 dollars (CPI)", every, INFLATION ** (years - 2006))]  # a later dollar is worth less
    table = []
    for choice, keep, deflator in choices:
        fits = {}
        for precision, values in per_dollar.items():
            tenfold, _, interval = years_per_10x(years[keep], (values * deflator)[keep])
            fits[precision] = (tenfold, interval)
        table.append((choice, int(keep.sum()), fits))
    return table


# ----------------------------------------------------------------------------------------------------
# The report


def rung_value(curves, rung, compute):
    """One rung's mean bits per character at this compute, and whether it was read off a fitted law.
    Between measured budgets: the straight line between them (in log compute). Beyond them: the count model
    stays at the best it reached (more counting stopped helping); a neural rung follows its fitted law
    (stats.fit_power_law: extrapolated; with fewer than 3 budgets, not known). Below a neural rung's
    smallest budget: not known (inf)."""
    c, v = curves[rung]
    mean = v.mean(axis=1)
    if rung == "ngram":
        return float(np.interp(np.log(compute), np.log(c), np.minimum.accumulate(mean))), False
    if compute < c.min():
        return math.inf, False
    if compute <= c.max():
        return float(np.interp(np.log(compute), np.log(c), mean)), False
    if len(c) < 3:  # too few budgets to fit a law
        return math.inf, True
    return float(fit_power_law(c, mean)(compute)), True


def best_rung(curves, compute):
    """The rung with the lowest bits per character at this compute -> (rung, read off a fitted law?)."""
    values = {rung: rung_value(curves, rung, compute) for rung in curves}
    rung = min(values, key=lambda r: values[r][0])
    return rung, values[rung][1]


def dotted_line(results):
    """The talk's question, per neural budget C: the best rung at C and at 10 C -> [(C, best, best at 10 C,
    whether 10 C was read off fitted laws)]."""
    curves = ladder(results)
    rows = []
    for compute in curves["gpt"][0]:
        here, _ = best_rung(curves, compute)
        there, extrapolated = best_rung(curves, 10 * compute)
        rows.append((float(compute), here, there, extrapolated))
    return rows


def incentive(results):
    """The talk's incentive point, on the ladder: at each neural budget C where the best rung at 10 C is not the
    best at C -> [(C, best at C, best at 10 C, how far the later winner is behind at C, how far today's winner
    is behind at 10 C (both in bits per character), whether 10 C was read off fitted laws)]. The first gap is
    the credit the structure earns today; the second is what keeping it costs once compute has grown."""
    curves = ladder(results)
    rows = []
    for compute, here, there, extrapolated in dotted_line(results):
        if here == there:
            continue
        today = rung_value(curves, there, compute)[0] - rung_value(curves, here, compute)[0]
        later = rung_value(curves, here, 10 * compute)[0] - rung_value(curves, there, 10 * compute)[0]
        rows.append((compute, here, there, today, later, extrapolated))
    return rows


def years_until(compute_now, compute_then, years_per_10x):
    """Rolling out the driving force: the years until compute_then costs what compute_now costs today, if
    compute per dollar keeps growing tenfold every years_per_10x years."""
    return years_per_10x * math.log10(compute_then / compute_now)


def ladder_crossings(results, metric=BITS, higher_is_better=False, margin=0.0, rungs=RUNGS):
    """(a, b) -> (compute, verdict, low, high, share) for each rung b below a on the ladder and each rung above
    it: where b overtakes a on this metric (by more than margin), measured, with a 95% interval over seeds."""
    curves = ladder(results, metric, rungs)
    out = {}
    for i, a in enumerate(rungs):
        for b in rungs[i + 1:]:
            kwargs = {"higher_is_better": higher_is_better, "hold_a": a == "ngram", "margin": margin}
            at, verdict = crossing(*curves[a], *curves[b], **kwargs)
            out[a, b] = (at, verdict, *crossing_interval(*curves[a], *curves[b], **kwargs))
    return out


def report(results):
    """The text `python -m minilm structure` prints: each rung's curve, the crossovers, the best rung per budget."""
    lines = [f"structure sweep {results.get('preset', '?')}: {len(results['points'])} points, "
             f"{results.get('wall_seconds', 0) / 60:.1f} min of wall time; held-out bits per character "
             f"(mean +- sd over seeds)"]
    lines += curve_lines(ladder(results)) + crossing_lines(ladder_crossings(results))
    for compute, here, there, extrapolated in dotted_line(results):
        lines.append(f"best rung at {compute:.2g} FLOPs: {here}; at ten times that: {there}"
                     + (" (read off the fitted laws)" if extrapolated else ""))
    rungs = tokenizer_rungs(results["config"])
    if len(rungs) > 2:
        lines.append("the tokenizer as structure: words (cut by hand), BPE (cut as learned from counts), "
                     "bytes (not cut)")
        lines += curve_lines({rung: curve for rung, curve in tokenizer_ladder(results).items() if rung not in RUNGS})
        lines += crossing_lines({pair: found for pair, found in ladder_crossings(results, rungs=rungs).items()
                                 if pair != ("gpt", "bytes")})
    return "\n".join(lines)


def curve_lines(curves):
    """Each rung's mean and spread over seeds at each of its budgets, one line a rung."""
    lines = []
    for rung, (compute, values) in curves.items():
        cells = ", ".join(f"{c:.2g}: {v.mean():.3f}" + (f" +- {v.std(ddof=1):.3f}" if len(v) > 1 else "")
                          for c, v in zip(compute, values))
        lines.append(f"  {rung:<7} {cells}")
    return lines


def crossing_lines(crossings):
    """One line for each pair of ladder_crossings: where the less structured rung overtakes, or why not."""
    lines = []
    for (a, b), (at, verdict, low, high, share) in crossings.items():
        where = f"overtakes at {at:.2g} FLOPs" if at else verdict
        interval = f", 95% interval [{low:.2g}, {high:.2g}]" if low else ""
        lines.append(f"{b} vs {a}: {where}{interval} ({share:.0%} of seed resamples cross)")
    return lines


def task_gaps(results, more="window", less="gpt"):
    """task -> (compute (n,), exact match of `less` minus `more` at each budget, mean over seeds (n,)): where
    removing the structure helps (> 0) or costs (< 0)."""
    gaps = {}
    for task in toyworld.TASKS:
        compute, a = rung_curve(results, more, exact_match(task))
        _, b = rung_curve(results, less, exact_match(task))
        gaps[task] = compute, b.mean(axis=1) - a.mean(axis=1)
    return gaps


STUDY = runner.Study(
    name="structure", help="structure vs scale: a ladder of methods on one compute axis (lesson 05)",
    description="Train the ladder (a Kneser-Ney n-gram, a GPT with windowed attention, the plain GPT, the GPT "
                "on BPE tokens, the GPT on bytes) at every compute budget and seed on toyworld; write the results as "
                "JSON (resumable) and print the crossovers.",
    presets=structure.PRESETS, default="lesson05", preset=structure.preset, sweep=structure.sweep_points,
    measure=structure.measure, report=report, committed=("lesson05",))
