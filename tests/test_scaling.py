"""Scaling: FLOP counting, power-law fits, the curve-shape rule, a resumable sweep, and the committed sweep."""
import os
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from minilm.studies import runner, scaling, scaling_report, stats
from minilm.errors import MinilmError
from tests.helpers import within_seed_band

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "lessons", "results", "scaling_lesson03.json")


def test_flops_by_hand():
    # N = 1000 weights, V*d = 50*8 head, attention 2 layers * 16 positions * 8 channels; 10 tokens
    assert stats.training_flops(1000, 2, 8, 16, 50, 10) == 6 * 10 * (1000 + 400) + 6 * 10 * 2 * 16 * 8


def test_power_law_fit_recovers_the_exponent_and_finds_a_floor_only_when_there_is_one():
    compute = np.logspace(9, 13, 7)
    pure = 50 * compute ** -0.12
    law = stats.fit_power_law(compute, pure)
    assert law.floor == 0 and law.alpha == pytest.approx(0.12, rel=1e-6) and law.a == pytest.approx(50, rel=1e-5)
    floored = stats.fit_power_law(compute, 0.8 + 300 * compute ** -0.25)
    assert floored.floor == pytest.approx(0.8, abs=0.02) and floored.alpha == pytest.approx(0.25, rel=0.1)
    assert np.allclose(floored(compute), 0.8 + 300 * compute ** -0.25, rtol=0.01)
    with pytest.raises(MinilmError):
        stats.fit_power_law([1, 2], [3, 4])


def test_bootstrap_interval_covers_the_true_exponent_and_shrinks_with_less_noise(rng):
    compute = np.logspace(9, 12, 6)
    clean = 40 * compute ** -0.1
    wide = stats.bootstrap_exponent(compute, clean[:, None] * np.exp(rng.normal(0, 0.03, (6, 4))), n_boot=300)
    narrow = stats.bootstrap_exponent(compute, clean[:, None] * np.exp(rng.normal(0, 0.003, (6, 4))), n_boot=300)
    assert wide[0] < 0.1 < wide[1] and narrow[0] == pytest.approx(0.1, abs=0.002)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3 and narrow[0] > 0


@pytest.mark.parametrize("values, metric, shape", [
    ([0.7, 0.97, 1.0, 1.0, 1.0, 1.0], "exact_match", "saturated"),
    ([0.0, 0.01, 0.0, 0.02, 0.01, 0.03], "exact_match", "flat"),
    ([0.9, 0.8, 0.7, 0.75, 0.5, 0.4], "exact_match", "inverse"),
    ([0.2, 0.6, 0.3, 0.5, 0.1, 0.4], "exact_match", "not correlated"),
    ([0.0, 0.02, 0.01, 0.3, 0.7, 0.9], "exact_match", "emergent"),
    ([0.1, 0.25, 0.4, 0.55, 0.7, 0.85], "exact_match", "smooth"),
    ([-6.0, -5.0, -4.0, -3.0, -2.0, -1.0], "answer_logprob", "smooth"),
    ([-0.5, -0.05, -0.02, -0.01, 0.0, 0.0], "answer_logprob", "saturated"),
])
def test_curve_shape_rule(values, metric, shape):
    assert scaling_report.classify_curve(values, metric) == shape


def test_curve_shape_rule_rejects_bad_input():
    with pytest.raises(MinilmError):
        scaling_report.classify_curve([0.1, 0.2, 0.3], "exact_match")
    with pytest.raises(MinilmError):
        scaling_report.classify_curve([0.1, 0.2, 0.3, 0.4], "bleu")


def test_the_plan_trains_every_size_again_on_less_data_once():
    config = scaling.preset("lesson03")
    runs = scaling.plan(config)
    second = [r for r in runs if r.data_fraction == config.family_fraction]
    assert len(set(runs)) == len(runs) and len(second) == len(config.sizes) * len(config.seeds)
    ablation_too = config.family_fraction in config.data_fractions  # the ablation size on that fraction is in both
    assert len(runs) == len(config.seeds) * (2 * len(config.sizes) + len(config.data_fractions) - ablation_too)
    assert all(r.data_fraction == 1 for r in scaling.plan(scaling.preset("ci"))[:8])


def test_ci_sweep_resumes_where_it_stopped_and_reports(tmp_path):
    config, path = scaling.preset("ci"), str(tmp_path / "sweep.json")
    points = scaling.sweep_points(config)

    def sweep(points):
        store = runner.ResultsStore(path, "scaling", "ci", asdict(config))
        with runner.make_executor() as executor:
            return runner.run_points(store, points, scaling.measure, executor, progress=False)

    first = {k: dict(v) for k, v in sweep(points[:3])["points"].items()}  # as if killed after 3 runs
    done = sweep(points)  # the same sweep again
    assert list(done["points"]) == [run.key for run in scaling.plan(config)]
    assert all(done["points"][k] == v for k, v in first.items())  # the finished runs were kept, not redone
    assert done["config"]["tokens"] == config.tokens
    ablation = [r for r in done["points"].values() if r["data_fraction"] < 1]
    assert ablation and all(r["tokens"] < config.tokens for r in ablation)
    out = subprocess.run([sys.executable, "-m", "minilm", "scaling", "--report", "--out", path], capture_output=True,
                         text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "95% bootstrap interval" in out.stdout
    assert all(f"task {t}: " in out.stdout for t in first[points[0][0]]["tasks"])
    with pytest.raises(MinilmError, match="different config"):
        runner.ResultsStore(path, "scaling", "lesson03", asdict(scaling.preset("lesson03")))


# ----------------------------------------------------------------------------------------------------
# The sweep committed for lesson 03.

@pytest.fixture(scope="module")
def committed():
    return runner.load_results(COMMITTED, "scaling")


def test_committed_sweep_is_complete_and_loss_falls_with_compute(committed):
    config = scaling.SweepConfig(**committed["config"])
    assert sorted(committed["points"]) == sorted(run.key for run in scaling.plan(config))
    compute, loss, law, (low, high) = scaling_report.loss_fit(committed)
    params = [g[0]["params"] for g in scaling_report.size_family(committed)]
    assert len(compute) >= 6 and max(params) / min(params) >= 100 and loss.shape[1] >= 3
    assert np.all(np.diff(loss.mean(axis=1)) < 0)  # each size's mean over seeds
    assert 0 < low <= law.alpha <= high


def test_committed_sweep_shows_saturating_smooth_and_emergent_tasks(committed):
    shapes = scaling_report.task_shapes(committed)
    exact = {task: s["exact_match"] for task, s in shapes.items()}
    assert "saturated" in exact.values() and "smooth" in exact.values()
    assert any(s == {"exact_match": "emergent", "answer_logprob": "smooth"} for s in shapes.values())


def test_one_committed_point_reproduces(committed):
    """Re-train one committed point whose size's seeds agree closely (L2-d32: 0.5% apart; the smallest
    models' seeds differ by 7%, they are still finding their way at the end of training) and compare its
    loss with the band its seeds allow (tests/helpers.within_seed_band, at least 1%)."""
    config = scaling.SweepConfig(**committed["config"])
    run = scaling.Run(2, 32, 2, seed=0)
    record = scaling.train_run(config, run, scaling.World(config))
    seeds = [r["val_loss"] for r in committed["points"].values() if r["key"].startswith("L2-d32-h2-f1-")]
    ok, message = within_seed_band(record["val_loss"], seeds, floor=0.01 * np.mean(seeds))
    assert len(seeds) == len(config.seeds) and ok, message
    assert record["flops"] == committed["points"][run.key]["flops"]


def test_spearman_gives_tied_values_their_average_rank():
    """Ties ranked by order of appearance would give [.2, .2, .2, .2, .9, .2] a rank correlation of 0.94
    with its position; with average ranks it is 0.39 (ranks 2, 2, 2, 2, 5, 2 against 0 .. 5)."""
    assert list(scaling_report.average_ranks([5, 1, 5])) == [1.5, 0.0, 1.5]
    rho = scaling_report.spearman(np.arange(6), [0.2, 0.2, 0.2, 0.2, 0.9, 0.2])
    assert rho == pytest.approx(np.corrcoef(np.arange(6), [2, 2, 2, 2, 5, 2])[0, 1]) and rho < 0.5
    assert scaling_report.spearman(np.arange(4), [0.3] * 4) == 0.0
    assert scaling_report.spearman(np.arange(4), [1, 2, 3, 4]) == pytest.approx(1.0)
