"""Reading a scaling sweep (lesson 03): the loss against compute, and the shape of every task's curve.

    loss_fit        the size family's held-out loss against training compute: the power law
                    (minilm.studies.stats.fit_power_law) and a 95% interval for its exponent over seeds
    classify_curve  the shape of one task's curve: saturated / flat / inverse / not correlated /
                    emergent / smooth, by the rule written in its docstring
    report          what `python -m minilm scaling --report` prints
"""
import numpy as np

from . import runner, scaling
from ..data import toyworld
from ..errors import MinilmError
from .stats import bootstrap_exponent, fit_power_law

# ----------------------------------------------------------------------------------------------------
# Reading a sweep: curves over the size family.

def size_family(results, data_fraction=1.0):
    """The size-family runs grouped by model, ordered by compute: a list of lists of run records.

    data_fraction 1.0 is the size family; the sweep's family_fraction its second family, on less data.
    """
    config = results["config"]
    groups = {}
    for r in results["points"].values():
        if r["data_fraction"] == data_fraction:
            groups.setdefault((r["n_layer"], r["d_model"], r["n_head"]), []).append(r)
    ordered = [groups[tuple(s)] for s in config["sizes"] if tuple(s) in groups]
    return sorted(ordered, key=lambda g: g[0]["flops"])


def curve(groups, metric):
    """compute (n,), per-seed values (n, seeds) of a metric for each size.

    metric is a function of one run record, e.g. lambda r: r["val_loss"].
    """
    n_seeds = min(len(g) for g in groups)
    compute = np.array([g[0]["flops"] for g in groups])
    values = np.array([[metric(r) for r in sorted(g, key=lambda r: r["seed"])[:n_seeds]] for g in groups])
    return compute, values


def task_metric(task, name):
    """The metric function of one task: name is 'exact_match', 'answer_logprob' or 'loss'."""
    return lambda r: r["tasks"][task][name]


# ----------------------------------------------------------------------------------------------------
# The shape of a task's curve.

# metric -> (best possible value, the smallest change that counts). Both metrics: higher is better.
METRICS = {"exact_match": (1.0, 0.05), "answer_logprob": (0.0, 0.1)}
SHAPES = ("saturated", "flat", "inverse", "not correlated", "emergent", "smooth")
# The lecture's count of the 202 BIG-Bench tasks by the shape of their curves (percent; it has no "saturated")
BIG_BENCH_SHAPES = {"smooth": 29, "flat": 22, "inverse": 2, "not correlated": 13, "emergent": 33}


def average_ranks(values):
    """Ranks 0 .. n-1 of values; tied values share the mean of the ranks they span ([5, 1, 5] -> [1.5, 0, 1.5])."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for tied in np.unique(values):
        at = values == tied
        ranks[at] = ranks[at].mean()
    return ranks


def spearman(x, y):
    """Rank correlation with tied values sharing their average rank: +1 when y always rises with x, -1 when
    it always falls, 0 when y is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if np.std(ry) == 0 or np.std(rx) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def classify_curve(values, metric):
    """The shape of a task's scaling curve: values are the per-size means, ordered by compute.

    With `best` the metric's best value and `tol` the smallest change that counts (METRICS), and the
    sizes split into a smaller half and a larger half, the first rule that holds names the shape:

        saturated       from the last size of the smaller half on, every size is within tol of best
                        (the task is solved early; more compute has nothing left to gain)
        flat            the whole curve moves less than tol (nothing changes: the task is too hard)
        inverse         the largest model is worse than the smallest by more than tol, and the curve
                        falls with compute (rank correlation <= -0.6)
        not correlated  the curve goes up and down: rank correlation with compute below 0.6
        emergent        the smaller half stays within tol of the smallest model, then the largest is
                        better than the smallest by more than 3 tol (nothing, then suddenly something)
        smooth          it rises with compute, and already within the smaller half
    """
    if metric not in METRICS:
        raise MinilmError(f"unknown metric {metric!r}: use one of {sorted(METRICS)}")
    best, tol = METRICS[metric]
    y = np.asarray(values, dtype=float)
    if len(y) < 4:
        raise MinilmError("classify_curve needs at least 4 sizes")
    half = len(y) // 2
    rho = spearman(np.arange(len(y)), y)
    if np.all(best - y[half - 1:] <= tol):
        return "saturated"
    if y.max() - y.min() <= tol:
        return "flat"
    if y[-1] < y[0] - tol and rho <= -0.6:
        return "inverse"
    if rho < 0.6:
        return "not correlated"
    if np.all(np.abs(y[:half] - y[0]) <= tol) and y[-1] - y[0] > 3 * tol:
        return "emergent"
    return "smooth"


# ----------------------------------------------------------------------------------------------------
# The report.

def loss_fit(results, allow_floor=True):
    """Fit of the size family's mean validation loss: (compute, per-seed loss, law, alpha interval)."""
    groups = size_family(results)
    if len(groups) < 3:
        raise MinilmError("the sweep has fewer than 3 model sizes finished; run it to the end first")
    compute, loss = curve(groups, lambda r: r["val_loss"])
    law = fit_power_law(compute, loss.mean(axis=1), allow_floor)
    return compute, loss, law, bootstrap_exponent(compute, loss, floor=law.floor > 0)


def task_shapes(results):
    """task -> {metric: shape} over the size family."""
    groups = size_family(results)
    tasks = [t for t in toyworld.TASKS if all(t in r["tasks"] for g in groups for r in g)]
    return {task: {m: classify_curve(curve(groups, task_metric(task, m))[1].mean(axis=1), m) for m in METRICS}
            for task in tasks}


def report(results):
    """The fit with its interval, then one line per task: the text `scaling --report` prints."""
    compute, loss, law, (low, high) = loss_fit(results)
    lines = [f"sweep {results.get('preset', '?')}: {len(results['points'])} runs, "
             f"{len(compute)} sizes x {loss.shape[1]} seeds, compute {compute.min():.2g} .. {compute.max():.2g} FLOPs",
             f"fit: {law.describe()}",
             f"exponent alpha = {law.alpha:.4f}, 95% bootstrap interval over seeds [{low:.4f}, {high:.4f}]"]
    names = {"exact_match": "exact match", "answer_logprob": "log-prob"}
    for task, shapes in task_shapes(results).items():
        lines.append(f"task {task}: " + ", ".join(f"{shape} ({names[m]})" for m, shape in shapes.items()))
    return "\n".join(lines)


STUDY = runner.Study(
    name="scaling", help="train a family of model sizes on toyworld and fit a scaling law (lesson 03)",
    description="Train every model of a preset on toyworld (resumable: run the same command again to continue), "
                "save the results as JSON, and print the fitted power law and the shape of every task's curve.",
    presets=scaling.PRESETS, default="lesson03", preset=scaling.preset, sweep=scaling.sweep_points,
    measure=scaling.measure, report=report, committed=("lesson03",))
