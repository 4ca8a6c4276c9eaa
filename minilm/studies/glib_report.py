"""The glib sweep's statistics: each probe per size with bootstrap intervals, the U-shape rule, the
lecture's explanation as a decomposition, and the text report (`python -m minilm glib --report`).

A point's stored probes (minilm.studies.glib.score_probes) become per-size arrays (Curves) of four
metrics: exact match, P(altered word), P(original word), and the margin log p(altered) - log p(original).
Intervals come from a bootstrap over seeds and over quotes, paired across sizes (every size is compared
on the same prompts); the rule that calls a U is written in u_shape's docstring, decided before looking.
"""
import time
from dataclasses import dataclass, replace

import numpy as np

from ..data.glib import LECTURE_PROMPT, GlibConfig, GlibCorpus
from ..errors import MinilmError
from .stats import paired_bootstrap, percentile_interval, seed_band, welch_interval, wilson_interval
from . import glib, runner
from .. import parallel
from .glib import BLOCK_SIZE, PROBE_NAMES, PROBES, Size, point_key, split_knob


def log(p):
    return np.log(np.maximum(p, 1e-12))


def probe_metrics(probes):
    """One point's stored probes -> probe -> metric -> (N,) array.
    metrics: exact, p_altered, p_original, margin = log p(altered) - log p(original)."""
    a, b, d, fix = ({k: np.asarray(v, dtype=np.float64) for k, v in probes[kind].items()}
                    for kind in ("A", "B", "D", "Dfix"))
    nan = np.full(len(a["correct"]), np.nan)
    margin_d = log(d["p_answer"]) - log(d["p_foil"])
    margin_fix = log(fix["p_foil"]) - log(fix["p_answer"])
    return {"A": {"exact": a["correct"], "p_altered": a["p_answer"], "p_original": nan, "margin": nan},
            "B": {"exact": b["correct"], "p_altered": b["p_foil"], "p_original": b["p_answer"],
                  "margin": log(b["p_foil"]) - log(b["p_answer"])},
            "C": {"exact": d["correct"] * fix["correct"], "p_altered": d["p_answer"], "p_original": fix["p_answer"],
                  "margin": margin_d - margin_fix},
            "D": {"exact": d["correct"], "p_altered": d["p_answer"], "p_original": d["p_foil"], "margin": margin_d}}


def probe_clusters(corpus):
    """probe -> the quote rank of each probe item (A: each item its own cluster; -1 - index)."""
    probes = corpus.probes()
    ranks = {kind: np.array([p.quote for p in probes if p.kind == kind]) for kind in ("A", "B", "D")}
    ranks["A"] = -1 - np.arange(len(ranks["A"]))
    ranks["C"] = ranks["D"]
    return ranks


@dataclass
class Curves:
    """Per-size values of one variant: values[probe][metric] is a list over sizes of (seeds, items)
    arrays; clusters[probe] the quote of each item; specs (each size's Size) and params in sweep order.
    seeds: the seeds every size trained; size_seeds: each size's own seeds, those shared first and in the
    same order (so row j of every size is seeds[j]); flops: each size's training compute, 6 N D."""
    specs: list
    params: list
    seeds: list
    values: dict
    clusters: dict
    size_seeds: list = None
    flops: list = None

    def __post_init__(self):
        if self.size_seeds is None:
            self.size_seeds = [list(self.seeds) for _ in self.specs]

    @property
    def sizes(self):
        """The sizes' names, as the report prints them."""
        return [s.name for s in self.specs]

    def subset(self, keep_quotes):
        """Only the items of the quotes in keep_quotes (A, which has no quotes, keeps every item)."""
        values, clusters = {}, {}
        for probe, ranks in self.clusters.items():
            keep = (ranks < 0) | np.isin(ranks, list(keep_quotes))
            values[probe] = {m: [v[:, keep] for v in per_size] for m, per_size in self.values[probe].items()}
            clusters[probe] = ranks[keep]
        return Curves(self.specs, self.params, self.seeds, values, clusters, self.size_seeds, self.flops)


def seeds_per_size(sizes, seeds):
    """Each size's seeds (its own, else the preset's), the seeds all sizes share first: (shared, per size)."""
    own = [list(size.seeds or seeds) for size in sizes]
    shared = [s for s in own[0] if all(s in o for o in own)]
    return shared, [shared + [s for s in o if s not in shared] for o in own]


def training_compute(config, size, point):
    """6 N D: the point's non-embedding parameters times the tokens it read (steps x batch x window)."""
    tokens = (size.steps or config["steps"]) * config["batch_size"] * BLOCK_SIZE
    return 6.0 * point["non_embedding_params"] * tokens


def curves(results, variant="main", sizes=None, seeds=None):
    """Collect one variant's points from a results dict into Curves (seeds: the same seeds for every size;
    by default each size's own)."""
    config = results["config"]
    sizes = sizes or [Size(**s) for s in config["sizes"]]
    if seeds is not None:
        sizes = [replace(size, seeds=tuple(seeds)) for size in sizes]
    shared, size_seeds = seeds_per_size(sizes, config["seeds"])
    points = [[results["points"].get(point_key(variant, size, seed)) for seed in own]
              for size, own in zip(sizes, size_seeds)]
    if any(p is None for row in points for p in row):
        raise MinilmError(f"the results hold only part of the '{variant}' sweep: run the sweep again to finish it "
                          f"(it resumes)")
    metrics = [[probe_metrics(p["probes"]) for p in row] for row in points]
    values = {probe: {m: [np.stack([pm[probe][m] for pm in row]) for row in metrics] for m in metrics[0][0][probe]}
              for probe in PROBES}
    corpus = GlibCorpus(variant_config(config, variant))
    flops = [training_compute(config, size, row[0]) for size, row in zip(sizes, points)]
    return Curves(sizes, [row[0]["params"] for row in points], shared, values, probe_clusters(corpus), size_seeds,
                  flops)


def variant_config(config, variant):
    """The GlibConfig of a variant, from a results file's config."""
    corpus = GlibConfig(**config["corpus"])
    change = dict(config["knobs"]).get(variant, {}) if variant != "main" else {}
    return replace(corpus, **split_knob(change)[0])


def summarize(c, probe, metric, n_boot=2000):
    """Per size: (mean, low, high) of a metric, 95% bootstrap interval over seeds and prompts."""
    per_size = c.values[probe][metric]
    if np.isnan(per_size[0]).all():
        return None
    means = [float(v.mean()) for v in per_size]
    lo, hi = percentile_interval(paired_bootstrap(per_size, c.clusters[probe], n_boot))
    return [(m, float(a), float(b)) for m, a, b in zip(means, lo, hi)]


@dataclass
class UShape:
    found: bool
    line: str
    means: list
    minimum: int  # the index of the smallest middle size
    diffs: dict   # "smallest"/"largest" -> (mean, low, high) of D[minimum] - D[end]
    boot: np.ndarray  # (n_boot, sizes): the bootstrap draws of D's mean the intervals come from


def u_shape(c, n_boot=2000):
    """The rule: the conflict probe's (D) exact match has its minimum at a middle size, and a paired
    bootstrap puts the difference to the smallest and to the largest size below 0 (95% intervals)."""
    per_size = c.values["D"]["exact"]
    means = [float(v.mean()) for v in per_size]
    m = 1 + int(np.argmin(means[1:-1]))
    boot = paired_bootstrap(per_size, c.clusters["D"], n_boot)
    diffs = {}
    for end, j in (("smallest", 0), ("largest", len(means) - 1)):
        lo, hi = percentile_interval(boot[:, m] - boot[:, j])
        diffs[end] = (means[m] - means[j], float(lo), float(hi))
    found = all(hi < 0 for _, _, hi in diffs.values())
    curve = ", ".join(f"{n} {v:.2f}" for n, v in zip(c.sizes, means))
    tests = "; ".join(f"min - {end} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for end, (d, lo, hi) in diffs.items())
    n_quotes = len(np.unique(c.clusters["D"]))
    line = (f"U-shape: {'yes' if found else 'no'} (conflict probe D exact match on the {n_quotes} most exposed quotes: "
            f"{curve}; middle minimum at {c.sizes[m]}; {tests}; 95% paired bootstrap over {seed_count(c)} seeds "
            f"and {n_quotes} quotes)")
    return UShape(found, line, means, m, diffs, boot)


def seed_count(c):
    """How many seeds the sizes trained: '5', or '5-8' where sizes differ."""
    return count_range(len(s) for s in c.size_seeds)


def count_range(counts):
    """'5' for counts that are all 5, '5-8' for counts from 5 to 8."""
    counts = sorted(set(counts))
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


# --------------------------------------------------------------------------------------------------
# Beside the rule: other ways to read the same points (they decide nothing)

def robust_interval(u, level=0.99):
    """minimum - largest with a wider interval from the rule's own draws: (mean, low, high)."""
    lo, hi = percentile_interval(u.boot[:, u.minimum] - u.boot[:, -1], level)
    return u.diffs["largest"][0], float(lo), float(hi)


def welch_arm(c, u, probe="D"):
    """The rule's difference, minimum - largest, as a seed-level test: each seed's mean over the prompts is
    one value, and Welch's interval compares the two sizes' seeds. None with fewer than two seeds a size."""
    at_minimum, at_largest = (c.values[probe]["exact"][i].mean(axis=1) for i in (u.minimum, -1))  # (seeds,)
    if min(len(at_minimum), len(at_largest)) < 2:
        return None
    return welch_interval(at_minimum, at_largest)


def repicked_arm(u):
    """minimum - largest with the minimum picked again in every bootstrap draw (the rule picks it once, from
    the means): (mean, low, high, the share of draws whose minimum is the rule's)."""
    middle = 1 + np.argmin(u.boot[:, 1:-1], axis=1)  # (n_boot,)
    diffs = u.boot[np.arange(len(middle)), middle] - u.boot[:, -1]
    lo, hi = percentile_interval(diffs)
    return u.diffs["largest"][0], float(lo), float(hi), float(np.mean(middle == u.minimum))


def instruction_learners(c, threshold=0.5):
    """Per size: (seeds whose C exact match exceeds threshold, seeds, Wilson 95% interval of the share)."""
    out = []
    for per_seed in c.values["C"]["exact"]:  # (seeds, items)
        k, n = int((per_seed.mean(axis=1) > threshold).sum()), len(per_seed)
        out.append((k, n, wilson_interval(k, n)))
    return out


def beside_the_rule_lines(c, u):
    """The secondary tests, as report lines."""
    d, lo, hi = robust_interval(u)
    verdict = "robust" if u.found and hi < 0 else "not robust" if u.found else "no U at 95%, so not robust either"
    out = ["\n=== beside the rule (these decide nothing) ===",
           f"  99% interval of min - largest: {d:+.2f} [{lo:+.2f}, {hi:+.2f}]: {verdict}"]
    welch = welch_arm(c, u)
    if welch:
        d, lo, hi, df = welch
        out.append(f"  Welch on per-seed means of D, {c.sizes[u.minimum]} - {c.sizes[-1]}: {d:+.2f} "
                   f"[{lo:+.2f}, {hi:+.2f}] (95%, {df:.1f} degrees of freedom)")
    d, lo, hi, share = repicked_arm(u)
    out.append(f"  min - largest with the minimum re-picked in every draw: [{lo:+.2f}, {hi:+.2f}] "
               f"(the draws' minimum is {c.sizes[u.minimum]} in {share:.0%} of them)")
    learners = ", ".join(f"{name} {k}/{n} [{low:.2f}, {high:.2f}]"
                         for name, (k, n, (low, high)) in zip(c.sizes, instruction_learners(c)))
    out.append(f"  seeds that follow the instruction (C > 0.50; Wilson 95%): {learners}")
    if c.flops:
        out.append("  training compute, 6 N D: " + ", ".join(f"{n} {f:.2g}" for n, f in zip(c.sizes, c.flops)))
    return out


def curve_shape(values, tol=0.1):
    """A curve over sizes in words, from point estimates (differences smaller than tol count as equal):

        U-shaped    a middle size dips more than tol below both ends, and the largest size climbs back to
                    within tol of the smallest (the lecture's U: down, then all the way up again)
        hump        a middle size rises more than tol above both ends (an upside-down U)
        inverse     the largest size is more than tol below the smallest (also when the middle dips lower
                    and the end climbs back part of the way: the recovery is partial)
        positive    the largest size is more than tol above the smallest
        flat        none of these
    """
    first, last, middle = values[0], values[-1], values[1:-1] if len(values) > 2 else values
    if min(middle) < min(first, last) - tol and last >= first - tol:
        return "U-shaped"
    if max(middle) > max(first, last) + tol:
        return "hump"
    if last < first - tol:
        return "inverse"
    if last > first + tol:
        return "positive"
    return "flat"


def decompose(c):
    """The lecture's explanation, measured per size: the share of conflict prompts whose quote the model
    knows (B right for that quote and seed), and D's exact match on the prompts it knows and on the rest.
    D = known * D(known) + (1 - known) * D(unknown). Returns a list of (known, D_known, D_unknown)."""
    out = []
    for b, d in zip(c.values["B"]["exact"], c.values["D"]["exact"]):  # (seeds, quotes), (seeds, items)
        quote_of_item = np.searchsorted(c.clusters["B"], c.clusters["D"])  # B has one item per quote
        known = b[:, quote_of_item].astype(bool)  # (seeds, items)
        out.append((float(known.mean()), float(d[known].mean()) if known.any() else float("nan"),
                    float(d[~known].mean()) if (~known).any() else float("nan")))
    return out


def arm_changes(new, old, n_boot=2000):
    """Each arm of the rule, in a new sweep against a committed one: arm ("smallest"/"largest") ->
    (old, new, change), each (mean, low, high). old and new are the rule's differences (middle minimum
    minus that end) of each sweep's own curve; change = new - old. Both sweeps are bootstrapped with the
    same quote draws (same seed, same quotes): paired over prompts, independent over seeds."""
    out = {}
    rules = [u_shape(c, n_boot) for c in (old, new)]
    for end, j in (("smallest", 0), ("largest", -1)):
        old_diff, new_diff = (u.boot[:, u.minimum] - u.boot[:, j] for u in rules)
        out[end] = (rules[0].diffs[end], rules[1].diffs[end],
                    (rules[1].diffs[end][0] - rules[0].diffs[end][0],
                     *map(float, percentile_interval(new_diff - old_diff))))
    return out


def size_changes(new, old, probe, n_boot=2000):
    """The sizes both sweeps trained (same shape: width and depth), each trained as in the new sweep minus as in
    the old: [(new size name, old size name, (mean, low, high))] of the probe's exact match."""
    old_index = {s.shape: i for i, s in enumerate(old.specs)}
    pairs = [(i, old_index[s.shape]) for i, s in enumerate(new.specs) if s.shape in old_index]
    return paired_changes(new, old, pairs, probe, n_boot)


def step_changes(c, probe, n_boot=2000):
    """Within one sweep, each size trained longer than the preset's steps minus the same width and depth
    trained on the preset's steps (d256 L4 6k steps - d256 L4): the same list as size_changes."""
    base = {s.shape: i for i, s in enumerate(c.specs) if not s.steps}
    pairs = [(i, base[s.shape]) for i, s in enumerate(c.specs) if s.steps and s.shape in base]
    return paired_changes(c, c, pairs, probe, n_boot)


def paired_changes(new, old, pairs, probe, n_boot=2000):
    """The probe's exact match at new's size i minus old's size j, for each pair (i, j), with a 95% interval.
    Both bootstraps draw the same quotes (same seed), so each difference is paired over prompts; within one
    sweep (old is new) one bootstrap serves both."""
    boot_new = paired_bootstrap(new.values[probe]["exact"], new.clusters[probe], n_boot)
    boot_old = boot_new if old is new else paired_bootstrap(old.values[probe]["exact"], old.clusters[probe], n_boot)
    out = []
    for i, j in pairs:
        mean = float(new.values[probe]["exact"][i].mean() - old.values[probe]["exact"][j].mean())
        out.append((new.sizes[i], old.sizes[j],
                    (mean, *map(float, percentile_interval(boot_new[:, i] - boot_old[:, j])))))
    return out


def u_requirement_line(c):
    """What the sub-task curves say the largest size would need for the rule to call a U, as one line.

    The decomposition D = known * D(known) + (1 - known) * D(unknown) at the largest size, with D raised to
    the middle minimum plus the half-width of the rule's interval: the conflict accuracy on known quotes
    (following the instruction against memory) that this takes; then where a straight line through the
    sizes right of the minimum, D(known) against log10(parameters), would reach it (an extrapolation,
    not a law)."""
    u = u_shape(c)
    if u.found:
        return "The rule calls the U: nothing more is needed (minimum - largest's interval is below 0)."
    _, lo, hi = u.diffs["largest"]
    target = u.means[u.minimum] + (hi - lo) / 2
    parts = decompose(c)
    known, d_known, d_unknown = parts[-1]
    rest = (1 - known) * d_unknown if known < 1 else 0.0  # the conflicts on quotes it does not know
    needed = (target - rest) / known
    right = range(u.minimum, len(c.sizes))
    x = np.log10([c.params[i] for i in right])
    y = [parts[i][1] for i in right]
    slope, intercept = np.polyfit(x, y, 1)
    rest_words = f" and answering {d_unknown:.2f} on the rest" if known < 1 else ""
    line = (f"For a U the largest size needs D >= {target:.2f} (the minimum {u.means[u.minimum]:.2f} plus the "
            f"interval's half-width): knowing {known:.0%} of the quotes{rest_words}, it must answer {needed:.2f} "
            f"of the conflicts on quotes it knows (now {d_known:.2f}). ")
    if needed > 1:
        return line + ("No accuracy on known quotes is enough: the model must also know fewer quotes or copy "
                       "better on the rest.")
    if d_known > needed:
        return line + ("It already does: the interval, not the mean, stands in the way; more seeds or prompts "
                       "would decide it.")
    if slope <= 1e-9:
        return line + (f"D(known) does not grow from {c.sizes[u.minimum]} on ({slope:+.2f} per 10x parameters): "
                       f"no size is predicted.")
    params = 10 ** ((needed - intercept) / slope)
    where = (f"{params / c.params[-1]:.1f}x the largest; an extrapolation" if params > c.params[-1]
             else "fewer than the largest has: the largest falls short of the line")
    return line + (f"D(known) grows {slope:+.2f} per 10x parameters from {c.sizes[u.minimum]} on; a straight line "
                   f"through those {len(x)} sizes reaches {needed:.2f} at about {params:,.0f} parameters ({where}).")


# --------------------------------------------------------------------------------------------------
# The report

def lecture_probs(results, variant="main"):
    """Per size: P(glib) and P(gold) after the lecture's prompt, each seed's: two lists over sizes of (seeds,)
    arrays (a size may train more seeds than the others)."""
    c = curves(results, variant)
    corpus = GlibCorpus(variant_config(results["config"], variant))
    i = [p.prompt for p in corpus.probes() if p.kind == "D"].index(LECTURE_PROMPT)
    glib = [v[:, i] for v in c.values["D"]["p_altered"]]
    gold = [v[:, i] for v in c.values["D"]["p_original"]]
    return c.sizes, glib, gold


def gold_sizes(results):
    """The sizes (by width: "d32", ...) at which most seeds find gold likelier than glib after the lecture's prompt."""
    sizes, glib_p, gold_p = lecture_probs(results)
    return [name.split()[0] for name, g, o in zip(sizes, glib_p, gold_p) if (o > g).sum() > len(g) / 2]


def knob_map(results):
    """Knob-map cell -> (the D exact match of its seeds per knob size, its shape in words)."""
    config = results["config"]
    sizes, seeds = [Size(**s) for s in config["knob_sizes"]], config["knob_seeds"]
    cells = {}
    for variant in ["main"] + [name for name, _ in config["knobs"]]:
        c = top_curves(results, variant, sizes, seeds)
        means = [float(v.mean()) for v in c.values["D"]["exact"]]
        cells[variant] = (means, curve_shape(means))
    return [s.name for s in sizes], cells


def most_exposed_quotes(results, variant="main", n=20):
    return GlibCorpus(variant_config(results["config"], variant)).most_exposed(n)


def format_table(c, probe):
    rows = {m: summarize(c, probe, m) for m in ("exact", "p_altered", "p_original", "margin")}
    headers = ("exact match", "P(altered)", "P(original)", "margin")
    lines = [f"  {'size':<9}{'params':>9}   " + "".join(f"{h:<22}" for h in headers)]
    for i, (name, params) in enumerate(zip(c.sizes, c.params)):
        cells = ["—" if rows[m] is None else f"{rows[m][i][0]:.2f} [{rows[m][i][1]:.2f}, {rows[m][i][2]:.2f}]"
                 for m in rows]
        lines.append(f"  {name:<9}{params:>9,}   " + "".join(f"{cell:<22}" for cell in cells))
    return "\n".join(lines)


def lecture_lines(results):
    """The lecture's prompt through every trained size: P(glib), P(gold) (means over seeds), the likelier of the
    two per seed, and the word seed 0 puts first (greedy decoding can pick neither)."""
    sizes, p_glib, p_gold = lecture_probs(results)
    seed = results["config"]["seeds"][0]
    points = [results["points"][point_key("main", Size(**s), seed)] for s in results["config"]["sizes"]]
    width = max(33, 5 * max(len(g) for g in p_glib) + 1)  # "glib " or "gold " per seed
    out = [f"{'size':<18}{'params':>10}   P(glib)  P(gold)   {'likelier of the two, per seed':<{width}}"
           f"seed {seed}'s top word   (P: mean over {count_range(len(g) for g in p_glib)} seeds)"]
    for name, point, g, o in zip(sizes, points, p_glib, p_gold):
        likelier = " ".join("glib" if a > b else "gold" for a, b in zip(g, o))
        word, p = point["next_words"][LECTURE_PROMPT][0]
        out.append(f"{name:<18}{point['params']:>10,}   {g.mean():.2f}     {o.mean():.2f}      "
                   f"{likelier:<{width}}{word} ({p:.2f})")
    return out


def probe_lines(c):
    """Every probe's exact match per size, with its 95% interval (bootstrap over seeds and prompts)."""
    rows = {probe: summarize(c, probe, "exact") for probe in PROBES}
    out = [f"{'size':<18}" + "".join(f"{probe + ': ' + PROBE_NAMES[probe][:22]:<30}" for probe in PROBES)]
    for i, name in enumerate(c.sizes):
        out.append(f"{name:<18}" + "".join(f"{rows[p][i][0]:.2f} [{rows[p][i][1]:.2f}, {rows[p][i][2]:.2f}]".ljust(30)
                                           for p in PROBES))
    return out


def decomposition_lines(c):
    """Per size: the share of conflict prompts whose quote the model knows, D on those and on the rest, and D."""
    out = [f"{'size':<18}{'knows the quote':>16}{'D if known':>12}{'D if not':>10}{'D':>7}"
           "   (the most exposed quotes; all seeds)"]
    for name, (known, d_known, d_unknown), d in zip(c.sizes, decompose(c), summarize(c, "D", "exact")):
        out.append(f"{name:<18}{known:>16.2f}{d_known:>12.2f}{d_unknown:>10.2f}{d[0]:>7.2f}")
    return out


def shared_seed_curves(c, probe="D"):
    """Each seed's own curve, for the seeds every size trained: (sizes, shared seeds) exact matches."""
    return np.array([v[:len(c.seeds)].mean(axis=1) for v in c.values[probe]["exact"]])


def seed_lines(c):
    """Each seed's own D curve, its shape in words, and how well its largest model follows the instruction;
    then the seeds only some sizes trained, size by size."""
    per_seed = shared_seed_curves(c)  # (sizes, shared seeds)
    out = ["D exact match per seed at " + ", ".join(c.sizes)]
    for j, seed in enumerate(c.seeds):
        follows = c.values["C"]["exact"][-1][j].mean()
        out.append(f"  seed {seed}:  " + "  ".join(f"{x:.2f}" for x in per_seed[:, j])
                   + f"   {curve_shape(per_seed[:, j]):<9} (C at {c.sizes[-1]}: {follows:.2f})")
    for name, own, d, ci in zip(c.sizes, c.size_seeds, c.values["D"]["exact"], c.values["C"]["exact"]):
        extra = range(len(c.seeds), len(own))
        if extra:
            out.append(f"  {name} only, seeds {', '.join(str(own[j]) for j in extra)}: D "
                       + "  ".join(f"{d[j].mean():.2f}" for j in extra)
                       + "   C " + "  ".join(f"{ci[j].mean():.2f}" for j in extra))
    return out


def knob_lines(results):
    """Each knob-map cell's D exact match at the knob sizes (its seeds' mean), and its shape in words."""
    knob_sizes, cells = knob_map(results)
    return [f"D exact match on the most exposed quotes at {', '.join(knob_sizes)} "
            f"(seeds {results['config']['knob_seeds']}; no intervals):"] + [
        f"  {name:<10}" + "  ".join(f"{m:.2f}" for m in means) + f"   {shape}"
        for name, (means, shape) in cells.items()]


def top_curves(results, variant="main", sizes=None, seeds=None):
    """The curves the rule reads: one variant (all its sizes and seeds, unless given), on the most exposed
    probe quotes."""
    return curves(results, variant, sizes, seeds).subset(most_exposed_quotes(results, variant))


def exact_reader(results, variant="main"):
    """A function: one point's stored probes -> {probe: exact match}, read as the rule reads them (A on every random
    string, B, C and D on the most exposed probe quotes)."""
    keep = most_exposed_quotes(results, variant)
    clusters = probe_clusters(GlibCorpus(variant_config(results["config"], variant)))
    inside = {probe: (ranks < 0) | np.isin(ranks, keep) for probe, ranks in clusters.items()}
    return lambda probes: {probe: float(m["exact"][inside[probe]].mean()) for probe, m in probe_metrics(probes).items()}


def on_the_way(results, variant="main"):
    """The points probed during training (Preset.probe_every): key -> [(step, training loss, C exact,
    D exact)], the exact matches on the most exposed probe quotes."""
    exact = exact_reader(results, variant)
    read = lambda r, e: (r["step"], r["loss"], e["C"], e["D"])  # noqa: E731
    return {key: [read(r, exact(r["probes"])) for r in p["probes_at"]]
            for key, p in results["points"].items() if p["variant"] == variant and p.get("probes_at")}


def arrival(readings, threshold=0.5):
    """The first probed step at which C's exact match exceeds threshold (None: it never does)."""
    return next((step for step, _, c, _ in readings if c > threshold), None)


def on_the_way_lines(results):
    readings = on_the_way(results)
    if not readings:
        return []
    out = ["\n=== probed during training (the most exposed quotes): the instruction arrives when C > 0.50 ==="]
    for key, rows in readings.items():
        step = arrival(rows)
        out.append(f"  {key}: " + ("arrives at step " + f"{step:,}" if step else "does not arrive"))
        out += [f"    step {s:>6,}  loss {loss:.4f}  C {c:.2f}  D {d:.2f}" for s, loss, c, d in rows]
    return out


def baseline_lines(c, base, base_name):
    """The report's comparison of a sweep (curves c) with the committed sweep it extends (curves base)."""
    out = [f"\n=== against the committed sweep '{base_name}' (new - old; 95% intervals, quotes paired) ==="]
    for end, (old, new, change) in arm_changes(c, base).items():
        out.append(f"  arm to the {end} size: min - {end} {old[0]:+.2f} [{old[1]:+.2f}, {old[2]:+.2f}] -> "
                   f"{new[0]:+.2f} [{new[1]:+.2f}, {new[2]:+.2f}]; "
                   f"change {change[0]:+.2f} [{change[1]:+.2f}, {change[2]:+.2f}]")
    return out + change_lines((probe, change) for probe in ("D", "C") for change in size_changes(c, base, probe)
                              if change[0] != change[1])


def with_baseline_records(results, baseline):
    """The results with every point that the baseline also holds and that trained under another BLAS kernel than
    the baseline's record of it replaced by that record: (results, the keys replaced). A point whose kernel is not
    on record, on either side (trained before points recorded their machine), is kept."""
    swapped = sorted(key for key, p in results["points"].items()
                     if key in baseline["points"] and other_kernel(p, baseline["points"][key]))
    return {**results, "points": {**results["points"], **{k: baseline["points"][k] for k in swapped}}}, swapped


def other_kernel(record, baseline_record):
    """Whether two records of one point name different BLAS kernels (False where either names none)."""
    kernels = [(r.get("machine") or {}).get("blas") for r in (record, baseline_record)]
    return None not in kernels and kernels[0] != kernels[1]


def kernel_lines(results, baseline, base_name):
    """Beside the rule: the verdict again with the baseline's records in place of the shared points trained
    under another BLAS kernel (none: no lines)."""
    swapped_results, swapped = with_baseline_records(results, baseline)
    if not swapped:
        return []
    u = u_shape(top_curves(swapped_results))
    d, lo, hi = robust_interval(u)
    return [f"\n=== with the '{base_name}' records for the {len(swapped)} points it shares that trained under another "
            f"BLAS kernel (this decides nothing) ===", "  " + u.line,
            f"  99% interval of min - largest: {d:+.2f} [{lo:+.2f}, {hi:+.2f}]"]


def change_lines(changes):
    """(probe, (name, other name, (mean, low, high))) pairs, from size_changes or step_changes -> report lines."""
    return [f"  {probe} exact match, {name} - {other}: {mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            for probe, (name, other, (mean, lo, hi)) in changes]


def report(results, baseline=None):
    """The whole text report; its last line is the U-shape verdict. baseline: the results of a committed
    sweep this one extends (python -m minilm glib --preset long: full), shown beside it."""
    config, main = results["config"], curves(results)
    top = main.subset(most_exposed_quotes(results))
    n_all = len(np.unique(main.clusters["D"]))
    versions = sorted({p["code_version"] for p in results["points"].values()})
    steps = f"{config['steps']} steps" + (" (or as the size's name says)" if any(s.steps for s in main.specs) else "")
    out = [f"glib sweep '{results['preset']}' (code {', '.join(versions)}): {len(main.sizes)} sizes x "
           f"{seed_count(main)} seeds, {steps} x {config['batch_size']} x {BLOCK_SIZE} tokens each; "
           f"training time {results['wall_seconds'] / 60:.1f} min in all",
           "95% intervals: bootstrap over seeds and prompts (quotes). margin = log p(altered) - log p(original)."]
    for title, c in ((f"the {len(np.unique(top.clusters['D']))} most exposed probe quotes", top),
                     (f"all {n_all} probe quotes", main)):
        out.append(f"\n=== {title} ===")
        for probe in PROBES:
            out += [f"{probe}  {PROBE_NAMES[probe]}", format_table(c, probe)]
    sizes, glib, gold = lecture_probs(results)
    out.append(f'\nThe lecture\'s prompt "{LECTURE_PROMPT}" (mean over seeds):')
    out += [f"  {n:<9} P(glib) {g.mean():.2f}   P(gold) {o.mean():.2f}" for n, g, o in zip(sizes, glib, gold)]
    if config["knobs"]:
        out += ["\nKnob map:"] + knob_lines(results)
    longer = [(probe, change) for probe in ("D", "C") for change in step_changes(top, probe)]
    if longer:
        out.append("\n=== the same size trained longer, in this sweep (longer - preset's steps; 95% intervals, "
                   "quotes paired) ===")
        out += change_lines(longer)
    if baseline is not None:
        out += baseline_lines(top, top_curves(baseline), baseline["preset"])
        out += kernel_lines(results, baseline, baseline["preset"])
    out += on_the_way_lines(results)
    if len(top.sizes) < 3:
        return "\n".join(out + ["", f"U-shape: not tested (the rule needs three sizes or more: a smallest, a middle "
                                    f"and a largest; this sweep has {len(top.sizes)})"])
    u = u_shape(top)
    out += ["", u_requirement_line(top)] + beside_the_rule_lines(top, u) + ["", u.line]
    return "\n".join(out)


STUDY = runner.Study(
    name="glib", help="the glib/gold inverse-scaling sweep and its report (lesson 04)",
    description="Train a family of model sizes on the glib corpus, probe them, and test for a U-shaped "
                "scaling curve. Resumable: run it again to finish an interrupted sweep.",
    presets=glib.PRESETS, default="full", preset=glib.preset, sweep=glib.sweep_points, measure=glib.measure,
    report=report, record=glib.Preset.to_dict, committed=("full", "rare15", "long", "lrd_pilot", "lrd"),
    baselines=glib.BASELINES)


# --------------------------------------------------------------------------------------------------
# One point of a committed sweep, trained again (lesson 04's live cell)

def retrain(results, size_index, seed, every=500, show=print):
    """Train one size of a committed sweep again as its sweep did (the preset, the corpus, the batches, one BLAS
    thread), reading the probes every `every` steps; show gets a line per reading as it is taken. Returns the
    readings: [(step, training loss, {probe: exact match, read as the rule reads it})]."""
    preset = replace(glib.PRESETS[results["preset"]], probe_every=every)
    size = Size(**results["config"]["sizes"][size_index])
    corpus, tokens = glib._corpus_and_stream(results["preset"], "main")
    exact, readings = exact_reader(results), []

    def reading(r):
        readings.append((r["step"], r["loss"], exact(r["probes"])))
        show(f"  step {r['step']:>5,}  training loss {r['loss']:.4f}  "
             + "  ".join(f"{probe} {value:.2f}" for probe, value in readings[-1][2].items()))

    show(f"{size.name}, seed {seed}: {size.steps or preset.steps:,} steps, probed every {every}")
    start = time.time()
    with parallel.one_blas_thread():
        glib.train_point(preset, corpus, tokens, size, seed, progress=False, show=reading)
    show(f"trained and probed in {time.time() - start:.0f} s")
    return readings


BAND_FLOORS = {"loss": 0.01, "exact": 0.03}  # the least spread a band allows: training loss, an exact match


def seed_values(results, size_index):
    """One size of a committed sweep: (its Size, its seeds, {"loss": final training loss per seed, probe: exact match
    per seed, read as the rule reads it})."""
    size = Size(**results["config"]["sizes"][size_index])
    seeds = list(size.seeds or results["config"]["seeds"])
    committed = [results["points"][point_key("main", size, s)] for s in seeds]
    exact = [exact_reader(results)(p["probes"]) for p in committed]
    return size, seeds, {"loss": [p["final_loss"] for p in committed], **{k: [e[k] for e in exact] for k in PROBES}}


def beside_the_record(results, size_index, seed, readings):
    """A point trained again (retrain's readings) beside the committed sweep: per measure, the run's last reading,
    the committed record of the same seed, and the band of the size's committed seeds. Returns (lines, every
    measure within its band)."""
    size, seeds, values = seed_values(results, size_index)
    _, loss, probes = readings[-1]
    rows = [("training loss", loss, values["loss"], BAND_FLOORS["loss"], "{:.4f}", (-np.inf, np.inf))]
    rows += [(f"{probe} {PROBE_NAMES[probe]}", probes[probe], values[probe], BAND_FLOORS["exact"], "{:.2f}", (0, 1))
             for probe in PROBES]
    out = [f"beside the sweep of record, {size.name} ({len(seeds)} seeds; band: their mean +- 3 standard deviations):",
           f"  {'':<38} {'yours':>8} {f'record, seed {seed}':>16}   the seeds' band"]
    within = []
    for name, yours, theirs, floor, form, (least, most) in rows:
        center, half = seed_band(theirs, floor)
        low, high = max(center - half, least), min(center + half, most)  # an exact match lies in [0, 1]
        within.append(low <= yours <= high)
        record = form.format(theirs[seeds.index(seed)]) if seed in seeds else "-"
        out.append(f"  {name:<38} {form.format(yours):>8} {record:>16}   [{form.format(low)}, {form.format(high)}]"
                   f"   {'within' if within[-1] else 'OUTSIDE'}")
    copies = next((step for step, _, e in readings if e["A"] > 0.5), None)
    out.append("copying (A above 0.50) " + (f"first read at step {copies:,}" if copies else "not reached"))
    return out, all(within)
