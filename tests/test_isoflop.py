"""The iso-FLOP study (minilm/studies/isoflop.py, isoflop_report.py): the FLOP accounting by hand, the fits
on made-up losses whose exponents are known, and the CI preset through the command line."""
import json

import numpy as np
import pytest

from minilm.studies import isoflop, isoflop_report, runner
from minilm.studies.stats import training_flops


def test_a_budget_buys_the_steps_its_flops_pay_for():
    """d8, one layer, one head: 12 d^2 + 13 d weights a block and 2 d in the last layernorm (888), plus the
    head's V d and attention's 6 L T d per token, times the tokens of a step."""
    config = isoflop.preset("ci")
    point = isoflop.Point(2.5e9, 1, 8, 1, 0)
    vocab = isoflop.World(config).tokenizer.vocab_size
    n = 12 * 8 ** 2 + 13 * 8 + 2 * 8
    assert isoflop.non_embedding_params(isoflop.gpt_config(config, point, vocab)) == n == 888
    per_token = 6 * (n + vocab * 8) + 6 * 1 * config.block_size * 8
    assert training_flops(n, 1, 8, config.block_size, vocab, 1) == per_token
    assert isoflop.steps_for(config, point, vocab) == round(2.5e9 / (per_token * config.batch_size * config.block_size))


def made_up_results(alpha, beta, budgets=(1e17, 1e18, 1e19, 1e20), seeds=3, noise=0.002, seed=0):
    """A results dict whose losses follow L(N, D) = E + A N^-alpha + B D^-beta with D = C / (6 N), over seven
    sizes centred on each budget's true optimum; the best size then grows as C^(beta / (alpha + beta))."""
    rng = np.random.default_rng(seed)
    E, A, B = 1.7, 400.0, 400.0
    a = beta / (alpha + beta)
    points = {}
    for c in budgets:
        best = (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (c / 6) ** a  # where dL/dN = 0
        for n in best * np.logspace(-0.9, 0.9, 7):
            for s in range(seeds):
                loss = E + A * n ** -alpha + B * (c / (6 * n)) ** -beta + rng.normal(0, noise)
                points[f"{c}/{n}/{s}"] = {"budget": c, "params": float(n), "seed": s, "val_loss": float(loss)}
    return {"preset": "made up", "points": points, "wall_seconds": 0.0}


@pytest.mark.parametrize("alpha, beta", [(0.34, 0.28), (0.3, 0.3), (0.2, 0.4)])
def test_the_fit_recovers_the_exponent_of_the_best_size(alpha, beta):
    path = isoflop_report.optimum_path(isoflop_report.budgets(made_up_results(alpha, beta)), n_boot=200)
    a = beta / (alpha + beta)
    assert abs(path.a - a) < 0.03 and path.a_interval[0] - 0.02 < a < path.a_interval[1] + 0.02
    assert all(v.bracketed for v in path.valleys)


def test_the_prediction_extrapolates_the_smaller_budgets_to_the_largest():
    results = made_up_results(0.3, 0.3)
    largest, log_n, loss, measured = isoflop_report.prediction(results, n_boot=100)
    assert largest == 1e20 and abs(measured.log_n - log_n) < 0.1
    text = isoflop_report.report(results)
    assert "prediction for C 1.0e+20 from the smaller budgets" in text and "N_opt ~ C^0.50" in text
    assert "its interval holds Hoffmann et al. 2022 (Chinchilla)'s 0.50 and not the other" in text


def test_a_valley_is_a_parabolas_bottom_and_an_end_is_not_bracketed():
    n = np.logspace(3, 5, 5)
    v = isoflop_report.valley(n, (np.log10(n) - 4.2) ** 2 + 1.5)
    assert v.bracketed and v.log_n == pytest.approx(4.2) and v.loss == pytest.approx(1.5)
    falling = isoflop_report.valley(n, 3 - np.log10(n) * 0.3)
    assert not falling.bracketed and falling.log_n == pytest.approx(5.0)


def test_the_ci_preset_runs_resumes_and_reports(tmp_path):
    from minilm.__main__ import main

    out = tmp_path / "isoflop_ci.json"
    assert main(["isoflop", "--preset", "ci", "--out", str(out), "--quiet"]) == 0
    results = runner.load_results(out, "isoflop")
    config = isoflop.preset("ci")
    assert sorted(results["points"]) == sorted(p.key for p in isoflop.plan(config))
    for r in results["points"].values():  # each run spent its budget, within one step's worth
        per_step = r["flops"] / r["steps"]
        assert abs(r["flops"] - r["budget"]) <= per_step / 2 and r["code_version"] and r["machine"]
    before = json.loads(out.read_text())
    assert main(["isoflop", "--preset", "ci", "--out", str(out), "--quiet"]) == 0  # nothing left to train
    assert json.loads(out.read_text())["points"] == before["points"]


def test_the_cost_is_planned_from_measured_steps():
    """planned_seconds times a few steps of every size and multiplies by the steps each point takes: the plan
    grows with the budgets, and every size of the grid has its own measured step."""
    config = isoflop.preset("ci")
    world = isoflop.World(config)
    total, per_step = isoflop.planned_seconds(config, world, steps=3)
    sizes = {tuple(size) for _, grid in config.grid for size in grid}
    assert set(per_step) == sizes and all(s > 0 for s in per_step.values())
    vocab = world.tokenizer.vocab_size
    by_hand = sum(per_step[(p.n_layer, p.d_model, p.n_head)] * isoflop.steps_for(config, p, vocab)
                  for p in isoflop.plan(config))
    assert total == by_hand > 0


def test_the_lesson_preset_spans_a_decade_and_a_half_with_three_seeds():
    config = isoflop.preset("lesson03")
    budgets = [b for b, _ in config.grid]
    assert len(budgets) >= 4 and np.log10(max(budgets) / min(budgets)) >= 1.5 and budgets == sorted(budgets)
    assert all(len(sizes) >= 5 for _, sizes in config.grid) and len(config.seeds) >= 2


def test_lesson_03s_prediction_is_the_fit_of_the_three_smaller_budgets():
    """Lesson 03 §9 wrote its prediction for 3e12 before that budget trained: the same fits on the committed
    results' smaller budgets (45 runs) give every number it states."""
    import nbformat

    from minilm.course.paths import LESSONS, RESULTS
    cells = nbformat.read(LESSONS / "03_scaling_curves.ipynb", as_version=4).cells
    text = " ".join(next(c.source for c in cells if c.source.startswith("## 9. Compute is data")).split())
    results = runner.load_results(RESULTS / "isoflop_lesson03.json", "isoflop")
    per_budget = {c: v for c, v in isoflop_report.budgets(results).items() if c < 3e12}
    assert sum(v[1].size for v in per_budget.values()) == 45 and "(45 runs in" in text
    path = isoflop_report.optimum_path(per_budget)
    assert f"C^{{{path.a:.2f}}}" in text and f"[{path.a_interval[0]:.2f}, {path.a_interval[1]:.2f}]" in text
    assert round(np.mean([path.tokens_per_param(c) for c in per_budget]), -1) == 360 and "about 355 tokens" in text
    assert round(float(path.n_opt(3e12)), -3) == 37000 and "N_opt ≈ 37,000" in text
    slope, intercept = isoflop_report.loss_law(path)
    assert f"**{10 ** (slope * np.log10(3e12) + intercept):.3f}**" in text
    (n_lo, n_hi), (l_lo, l_hi) = isoflop_report.extrapolation_intervals(per_budget, 3e12)
    assert f"[{round(n_lo, -3):,.0f}, {round(n_hi, -3):,.0f}]" in text and f"([{l_lo:.3f}, {l_hi:.3f}])" in text


def test_an_added_preset_is_reported_with_its_baselines_runs():
    """lesson03_edge adds sizes at lesson03's largest budget: its report reads both presets' runs as one."""
    results = made_up_results(0.3, 0.3)
    largest = max(r["budget"] for r in results["points"].values())
    added = {k: v for k, v in results["points"].items() if v["budget"] == largest and v["params"] < 1e9}
    base = {"preset": "base", "config": {}, "points": {k: v for k, v in results["points"].items() if k not in added},
            "wall_seconds": 1.0}
    extra = {"preset": "extra", "config": {}, "points": added, "wall_seconds": 2.0}
    both = isoflop_report.combined(base, extra)
    assert both["points"] == results["points"] and both["wall_seconds"] == 3.0
    assert isoflop_report.report(extra, base) == isoflop_report.report(both)
    assert isoflop.BASELINES["lesson03_edge"] == "lesson03" and isoflop.preset("lesson03_edge").grid[0][0] == 3e12


def test_lesson_03s_check_of_the_prediction_states_what_the_runs_measured():
    """Lesson 03 §9 after the largest budget trained, its lab note (docs/lab/lesson03_isoflop_prediction.md), the
    first screen's sentence on it and the verdict in numbers after the figure: every number is the committed runs'
    (lesson03 and lesson03_edge read as one), and the cell beside it prints the same."""
    import nbformat

    from minilm.course.paths import LESSONS, RESULTS, ROOT
    from tests.helpers import first_screen
    from tests.test_lesson_01 import output_of
    lesson = LESSONS / "03_scaling_curves.ipynb"
    cells = nbformat.read(lesson, as_version=4).cells
    text = " ".join(next(c.source for c in cells if c.source.startswith("**The check.**")).split())
    note = " ".join((ROOT / "docs/lab/lesson03_isoflop_prediction.md").read_text().split())
    assert "[docs/lab/lesson03_isoflop_prediction.md](../docs/lab/lesson03_isoflop_prediction.md)" in text
    grid, edge = (runner.load_results(RESULTS / f"isoflop_{p}.json", "isoflop") for p in ("lesson03", "lesson03_edge"))
    assert len(grid["points"]) == 60 and len(edge["points"]) == 6  # complete: every point of each preset, once
    assert sorted(edge["points"]) == sorted(p.key for p in isoflop.plan(isoflop.preset("lesson03_edge")))
    per_budget = isoflop_report.budgets(isoflop_report.combined(grid, edge))
    path = isoflop_report.optimum_path(per_budget)
    largest, log_n, predicted_loss, measured = isoflop_report.prediction(isoflop_report.combined(grid, edge))
    earlier = {c: v for c, v in per_budget.items() if c != largest}
    (n_lo, n_hi), (l_lo, l_hi) = isoflop_report.extrapolation_intervals(earlier, largest)
    v_lo, v_hi = (10 ** x for x in path.valley_intervals[-1])
    k = lambda n: f"{round(n, -3):,.0f}"  # noqa: E731  (thousands, as the lesson writes them)
    assert measured.bracketed and n_lo <= 10 ** measured.log_n <= n_hi
    assert (f"N_opt ≈ {k(10 ** measured.log_n)} (95% interval over seeds [{k(v_lo)}, {k(v_hi)}]), inside the "
            f"predicted [{k(n_lo)}, {k(n_hi)}] and {measured.log_n - log_n:.2f} decades above the predicted "
            f"{k(10 ** log_n)}") in text
    params, losses = isoflop_report.budgets(grid)[largest]
    at_edge = isoflop_report.valley(params, losses.mean(axis=1))
    assert not at_edge.bracketed and len(params) == 5 and f"smallest of them (N {params[0]:,.0f})" in note
    assert "lowest loss at an end of the curve, not in a valley" in text
    all_params, all_losses = per_budget[largest]
    best = all_losses.mean(axis=1)
    added = sorted({r["params"] for r in edge["points"].values()})
    assert all(best[list(all_params).index(n)] > best[list(all_params).index(params[0])] for n in added)
    assert f"its lowest point is {measured.loss:.3f}, the run's mean {best.min():.3f}" in note
    assert f"both lost to N {params[0]:,.0f}" in note
    assert best.min() == best[list(all_params).index(params[0])] < measured.loss
    assert not l_lo <= measured.loss <= l_hi
    assert (f"{measured.loss:.3f} measured against {predicted_loss:.3f} [{l_lo:.3f}, {l_hi:.3f}], "
            f"{measured.loss - predicted_loss:.3f} nats worse") in text
    v = path.valleys
    assert f"fell from {v[0].loss:.3f} to {v[2].loss:.3f}; from 1e+12 to 3e+12, only to {v[3].loss:.3f}" in text
    a_lo, a_hi = path.a_interval
    assert a_lo <= 0.50 <= a_hi < 0.73 and f"C^{path.a:.2f} [{a_lo:.2f}, {a_hi:.2f}]" in text
    ratios = [path.tokens_per_param(c) for c in path.compute]
    assert f"{min(ratios):.0f} to {max(ratios):.0f} tokens per parameter" in text
    assert (f"largest model (N {all_params[-1]:,.0f}: {best[-1]:.3f}) and the smallest (N {all_params[0]:,.0f}: "
            f"{best[0]:.3f}) both end above the best ({best.min():.3f})") in text
    assert f"D_opt ∝ C^{1 - path.a:.2f}" in text and abs(path.a - 0.5) < 0.05  # "about as the square root"
    out = output_of(lesson, "largest, log_n, predicted_loss, measured = isoflop_report.prediction(iso)")
    assert f"N_opt {10 ** measured.log_n:,.0f} [{v_lo:,.0f}, {v_hi:,.0f}]     loss {measured.loss:.3f}" in out
    assert "the measured N_opt is inside the predicted interval" in out and "the measured loss is outside it" in out
    screen = " ".join(first_screen(str(lesson))["measured"].split())
    assert (f"the best model size grows as $C^{{{path.a:.2f}}}$, close to Chinchilla's 0.50; predicted before our "
            "largest budget trained, that best size held and the predicted loss did not") in screen
    details = " ".join(next(c.source for c in cells if c.source.startswith("**The verdict in numbers.**")).split())
    assert (f"the best size grows as $C^{{{path.a:.2f}}}$ [{a_lo:.2f}, {a_hi:.2f}], Chinchilla's exponent (0.50) and "
            f"not Kaplan's (0.73)") in details
    assert (f"its best size held ({k(10 ** measured.log_n)} against {k(10 ** log_n)} [{k(n_lo)}, {k(n_hi)}]) and "
            f"its loss did not ({measured.loss:.3f} against {predicted_loss:.3f})") in details


def test_the_course_map_row_states_the_iso_flop_verdict():
    from minilm.course.paths import RESULTS
    from tests.helpers import course_map_row
    grid, edge = (runner.load_results(RESULTS / f"isoflop_{p}.json", "isoflop") for p in ("lesson03", "lesson03_edge"))
    both = isoflop_report.combined(grid, edge)
    path = isoflop_report.optimum_path(isoflop_report.budgets(both))
    largest, log_n, loss, measured = isoflop_report.prediction(both)
    earlier = {c: v for c, v in isoflop_report.budgets(both).items() if c != largest}
    (n_lo, n_hi), (l_lo, l_hi) = isoflop_report.extrapolation_intervals(earlier, largest)
    assert n_lo <= 10 ** measured.log_n <= n_hi and not l_lo <= measured.loss <= l_hi
    assert (f"N_opt ~ C^{path.a:.2f} [{path.a_interval[0]:.2f}, {path.a_interval[1]:.2f}], Chinchilla's exponent; "
            "the predicted best size held, the predicted loss did not") in course_map_row("03_scaling_curves")


def test_a_committed_point_retrained_lands_within_its_seeds_band():
    """The cheapest committed run (the largest size at the smallest budget, 74 steps) trained again here: it
    lands within the band its three seeds span, widened by their standard deviation (another CPU's kernels
    round differently, so equal bits are not expected)."""
    from minilm.course.paths import RESULTS
    results = runner.load_results(RESULTS / "isoflop_lesson03.json", "isoflop")
    config = isoflop.IsoFlopConfig(**results["config"])
    point = isoflop.Point(9e10, 3, 64, 4, 0)
    seeds = [r["val_loss"] for r in results["points"].values() if (r["budget"], r["d_model"]) == (9e10, 64)]
    assert len(seeds) == 3
    record = isoflop.train_point(config, point, isoflop.World(config))
    assert record["steps"] == results["points"][point.key]["steps"]
    spread = np.std(seeds)
    assert min(seeds) - spread <= record["val_loss"] <= max(seeds) + spread


def test_lesson_03s_question_splits_tenfold_compute():
    import nbformat

    from minilm.course.paths import LESSONS, RESULTS
    cells = nbformat.read(LESSONS / "03_scaling_curves.ipynb", as_version=4).cells
    text = " ".join(next(c.source for c in cells if c.source.startswith("**Question.** The best size")).split())
    grid, edge = (runner.load_results(RESULTS / f"isoflop_{p}.json", "isoflop") for p in ("lesson03", "lesson03_edge"))
    a = isoflop_report.optimum_path(isoflop_report.budgets(isoflop_report.combined(grid, edge))).a
    assert f"$C^{{{a:.2f}}}$" in text and f"$10^{{{a:.2f}}} \\approx {10 ** a:.1f}$" in text
    assert f"$10 / {10 ** a:.1f} \\approx {10 / round(10 ** a, 1):.1f}$ times the tokens, which is $10^{{{1 - a:.2f}}}$" in text
    assert f"\\approx {10 ** 0.5:.1f}$ each" in text and f"\\approx {10 ** 0.73:.1f}$" in text and f"\\approx {10 ** 0.27:.1f}$" in text
