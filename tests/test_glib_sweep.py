"""python -m minilm glib: the statistics decide what they claim, the CI preset runs and resumes, and a
committed point of the full sweep and one of the long sweep reproduce."""
import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import nbformat
import numpy as np
import pytest

from minilm.studies import glib as glib_sweep
from minilm.studies import glib_report, runner, stats
from minilm.data.glib import GlibCorpus
from tests.helpers import ON_GPU, within_seed_band

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "lessons", "results", glib_report.STUDY.results_file("full"))
LONG = os.path.join(ROOT, "lessons", "results", glib_report.STUDY.results_file("long"))
HISTORY = os.path.join(ROOT, "lessons", "04b_glib_history.ipynb")  # lesson 04's appendix


def minilm(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


# ---- statistics on made-up curves

def made_up_sizes(n):
    return [glib_sweep.Size(16 * (i + 1), 2, 2, 1e-3) for i in range(n)]


def made_up_curves(d_means, n_seeds=5, n_quotes=20, per_quote=3, seed=0):
    """Curves whose D exact match at each size is Bernoulli(d_means[i]) over seeds x items."""
    rng = np.random.default_rng(seed)
    values = [(rng.random((n_seeds, n_quotes * per_quote)) < m).astype(float) for m in d_means]
    clusters = np.repeat(np.arange(n_quotes), per_quote)
    return glib_report.Curves(made_up_sizes(len(d_means)), [10 ** (i + 3) for i in range(len(d_means))],
                      list(range(n_seeds)), {"D": {"exact": values}}, {"D": clusters})


def test_a_clear_dip_is_called_a_u():
    u = glib_report.u_shape(made_up_curves([0.9, 0.5, 0.1, 0.5, 0.9]))
    assert u.found and u.minimum == 2 and u.line.startswith("U-shape: yes (")
    assert all(hi < 0 for _, _, hi in u.diffs.values())


@pytest.mark.parametrize("means", [[0.9, 0.7, 0.5, 0.3, 0.1],   # plain inverse scaling
                                   [0.1, 0.3, 0.5, 0.7, 0.9],   # plain positive scaling
                                   [0.6, 0.55, 0.55, 0.6, 0.6],  # a dip inside the noise
                                   [0.9, 0.5, 0.1, 0.2, 0.1]])  # the minimum's right side never recovers
def test_no_u_without_a_significant_middle_minimum(means):
    u = glib_report.u_shape(made_up_curves(means, n_seeds=3, n_quotes=10))
    assert not u.found and u.line.startswith("U-shape: no (")


def test_the_bootstrap_pairs_prompts_across_sizes():
    """Two sizes with the same per-prompt values: every paired resample gives the same mean for both,
    although the prompts differ a lot from one another (an unpaired bootstrap would not)."""
    per_prompt = np.tile(np.linspace(0, 1, 30), (4, 1))  # (seeds, items), equal over seeds
    boot = stats.paired_bootstrap([per_prompt, per_prompt.copy()], np.arange(30), n_boot=500)
    assert np.ptp(boot[:, 0]) > 0.1
    assert np.allclose(boot[:, 0], boot[:, 1], rtol=0, atol=1e-12)


def test_curve_shapes_in_words():
    assert glib_report.curve_shape([0.7, 0.2, 0.8]) == "U-shaped"
    assert glib_report.curve_shape([0.7, 0.4, 0.2]) == "inverse"
    assert glib_report.curve_shape([0.2, 0.4, 0.7]) == "positive"
    assert glib_report.curve_shape([0.5, 0.45, 0.55]) == "flat"
    assert glib_report.curve_shape([0.53, 0.78, 0.53]) == "hump"  # the knob map's zipf=0.5 cell
    # a dip whose right end climbs back only part of the way is inverse scaling, not a U
    assert glib_report.curve_shape([0.65, 0.37, 0.53, 0.13, 0.70, 0.33]) == "inverse"
    assert glib_report.curve_shape([0.43, 0.52, 0.28, 0.37, 0.38, 0.72]) == "U-shaped"


# ---- the CLI

def test_ci_preset_runs_in_under_3_minutes_resumes_and_reports(tmp_path):
    out = str(tmp_path / "ci.json")
    start = time.time()
    run = minilm("glib", "--preset", "ci", "--out", out, "--quiet")
    seconds = time.time() - start
    assert run.returncode == 0, run.stderr[-2000:]
    assert seconds < 180, f"the CI preset took {seconds:.0f} s"
    results = json.load(open(out))
    assert len(results["points"]) == len(glib_sweep.PRESETS["ci"].points())
    assert run.stdout.strip().splitlines()[-1].startswith("U-shape: ")
    # resume: drop two points; a second run trains only those, two at once in worker processes
    # (--jobs 2), and gets the same numbers: every point runs with one BLAS thread wherever it runs
    # (minilm/runner.py), so on one machine the worker processes compute what this process computed
    dropped = {key: results["points"].pop(key) for key in list(results["points"])[:2]}
    runner.save_json(results, out)
    again = minilm("glib", "--preset", "ci", "--out", out, "--quiet", "--jobs", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    redone = json.load(open(out))["points"]
    assert len(redone) == len(glib_sweep.PRESETS["ci"].points())
    for key, point in dropped.items():
        assert redone[key]["probes"].keys() == point["probes"].keys(), key
        if not ON_GPU:  # bit for bit on the CPU; on a GPU atomic adds reorder sums (tests/helpers.py)
            assert redone[key]["probes"] == point["probes"], key


def test_cli_errors_are_one_line(tmp_path):
    missing = minilm("glib", "--report", "--out", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "no results at" in missing.stderr and "python -m minilm glib" in missing.stderr
    no_jobs = minilm("glib", "--preset", "ci", "--out", str(tmp_path / "x.json"), "--jobs", "0")
    assert no_jobs.returncode == 2 and "--jobs: give a whole number of 1 or more" in no_jobs.stderr
    assert len(no_jobs.stderr.strip().splitlines()) == 1
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"preset": "ci", "config": {"steps": 1}, "points": {}}))
    clash = minilm("glib", "--preset", "ci", "--out", str(other))
    assert clash.returncode == 1 and "holds a None sweep, not a 'glib' one" in clash.stderr and "Traceback" not in clash.stderr
    other.write_text(json.dumps({"sweep": "glib", "preset": "ci", "config": {"steps": 1}, "points": {}}))
    clash = minilm("glib", "--preset", "ci", "--out", str(other))
    assert clash.returncode == 1 and "different configuration" in clash.stderr and "Traceback" not in clash.stderr


# ---- the committed full sweep

@pytest.fixture(scope="module")
def committed():
    return runner.load_results(COMMITTED, "glib")


def test_committed_results_are_the_full_preset_complete(committed):
    assert committed["config"] == json.loads(json.dumps(glib_sweep.PRESETS["full"].to_dict()))
    assert set(committed["points"]) == {glib_sweep.point_key(*p) for p in glib_sweep.PRESETS["full"].points()}
    params = [committed["points"][glib_sweep.point_key("main", s, 0)]["params"] for s in glib_sweep.PRESETS["full"].sizes]
    assert params == sorted(params) and params[-1] / params[0] >= 100  # two orders of magnitude
    assert len(params) >= 5 and len(committed["config"]["seeds"]) >= 5
    assert all(s["n_layer"] >= 2 for s in committed["config"]["sizes"])


def test_report_ends_with_the_u_shape_line_of_the_rule(committed):
    text = glib_report.report(committed)
    top = glib_report.top_curves(committed)
    assert text.splitlines()[-1] == glib_report.u_shape(top).line


@pytest.mark.skipif(ON_GPU, reason="the committed sweep ran on the CPU; a GPU's float rounding takes 2000 steps elsewhere")
def test_a_committed_point_reproduces_within_its_seeds_band(committed):
    """Re-train one committed point (d32 L2, seed 0) and compare its final loss and every probe's exact
    match with the band that the five committed seeds of that size allow (tests/helpers.within_seed_band).

    Why this point and this band: on another CPU the BLAS kernels round differently, which is another
    seed's worth of noise after 3,000 steps. The smallest size (d16) is at a phase change (it learns to
    copy late, and only in some seeds: probe A 0.54 to 0.985 over its seeds), so one of its seeds cannot
    be reproduced anywhere but on the machine that made it; d32's seeds agree (A 0.95 to 0.99)."""
    preset = glib_sweep.PRESETS["full"]
    size, seed = preset.sizes[1], 0
    corpus = GlibCorpus(preset.corpus)
    record = glib_sweep.run_point(preset, corpus, corpus.stream(preset.stream_tokens), size, seed, progress=False)
    assert_reproduces(record, [committed["points"][glib_sweep.point_key("main", size, s)] for s in preset.seeds])


def assert_reproduces(record, seeds, committed=None):
    """The final loss and every probe's exact match of a re-trained point lie within the band of the
    committed seeds (tests/helpers.within_seed_band), centred on the committed point itself where given."""
    center = (lambda value: None) if committed is None else (lambda value: value(committed))
    loss = lambda p: p["final_loss"]
    ok, message = within_seed_band(loss(record), [loss(p) for p in seeds], floor=0.01, center=center(loss))
    assert ok, f"final loss: {message}"
    for probe in glib_sweep.PROBES:
        exact = lambda p: glib_report.probe_metrics(p["probes"])[probe]["exact"].mean()
        ok, message = within_seed_band(exact(record), [exact(p) for p in seeds], floor=0.03, center=center(exact))
        assert ok, f"probe {probe} exact match: {message}"


def test_decompose_splits_the_conflict_by_whether_the_quote_is_known():
    b = [np.array([[1, 0], [0, 0]])]               # seed 0 knows quote 3; nobody knows quote 7
    d = [np.array([[0, 0, 1, 1], [1, 1, 1, 0]])]   # two conflict prompts per quote
    c = glib_report.Curves(made_up_sizes(1), [1], [0, 1], {"B": {"exact": b}, "D": {"exact": d}},
                   {"B": np.array([3, 7]), "D": np.array([3, 3, 7, 7])})
    (known, d_known, d_unknown), = glib_report.decompose(c)
    assert (known, d_known, d_unknown) == (0.25, 0.0, 5 / 6)
    assert np.isclose(known * d_known + (1 - known) * d_unknown, d[0].mean())


# ---- the long sweep: the right arm trained longer and larger, and knob-map cells aimed at the hedge

@pytest.fixture(scope="module")
def long_sweep():
    return runner.load_results(LONG, "glib")


def test_committed_long_sweep_is_the_long_preset_complete(long_sweep):
    preset = glib_sweep.PRESETS["long"]
    assert long_sweep["config"] == json.loads(json.dumps(preset.to_dict()))
    assert set(long_sweep["points"]) == {glib_sweep.point_key(*p) for p in preset.points()}
    full = glib_sweep.PRESETS["full"]
    for size in full.sizes[-2:]:  # the two largest sizes of the full sweep, trained at least twice as long
        longer = [s for s in preset.sizes if s.shape == size.shape]
        assert len(longer) == 1 and longer[0].steps >= 2 * full.steps
    larger = [s for s in preset.sizes if s.d_model > full.sizes[-1].d_model]  # 3.2M parameters, on both budgets
    assert [s.steps for s in larger] == [0, 2 * full.steps]
    assert long_sweep["points"][glib_sweep.point_key("main", larger[0], 0)]["params"] >= 3_000_000
    assert len(preset.seeds) >= 5


def test_the_long_sweep_reproduces_the_full_sweeps_runs_where_it_trains_the_same(long_sweep, committed):
    """d16 to d96 train exactly as in the full sweep (the same corpus, stream, steps and seeds), so the long
    sweep, which trained them again in another session with later code, gives the same numbers to the
    last stored digit: every point runs unsplit with one BLAS thread."""
    full, long = glib_sweep.PRESETS["full"], glib_sweep.PRESETS["long"]
    training = lambda p: (p.corpus, p.steps, p.batch_size, p.warmup_steps, p.stream_tokens)
    assert training(full) == training(long)
    same = [glib_sweep.point_key("main", size, seed) for size in long.sizes[:4] for seed in long.seeds]
    assert all(glib_sweep.Size(**s) in full.sizes for s in long_sweep["config"]["sizes"][:4])
    for key in same:
        ours, theirs = long_sweep["points"][key], committed["points"][key]
        assert (ours["probes"], ours["final_loss"], ours["params"]) == (theirs["probes"], theirs["final_loss"], theirs["params"]), key
        assert ours["code_version"] != theirs["code_version"] and "altered_quotes" in ours


def test_the_learning_rate_cell_changes_nothing_at_or_below_d64(long_sweep):
    """lr~1/d lowers the rate only above d64, so its d16 and d64 points, trained in this sweep, are the main
    sweep's points number for number (two runs of one training, in one sweep)."""
    for size in glib_sweep.PRESETS["long"].knob_sizes[:2]:
        ours, main = (long_sweep["points"][glib_sweep.point_key(v, size, 0)] for v in ("lr~1/d", "main"))
        assert ours["probes"] == main["probes"] and ours["final_loss"] == main["final_loss"]


def test_the_long_report_compares_with_the_full_sweep_and_ends_with_the_verdict(long_sweep, committed):
    run = minilm("glib", "--preset", "long", "--report")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == glib_report.report(long_sweep, committed).strip()
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == glib_report.u_shape(glib_report.top_curves(long_sweep)).line
    assert "=== against the committed sweep 'full'" in run.stdout
    assert any(line.startswith("  arm to the largest size: ") for line in lines)
    beside = lines.index("=== beside the rule (these decide nothing) ===")
    assert lines[beside - 2] == glib_report.u_requirement_line(glib_report.top_curves(long_sweep))
    assert lines[beside + 1].startswith("  99% interval of min - largest: ")


def test_knob_cells_change_only_what_they_name():
    preset = glib_sweep.PRESETS["long"]
    variants = preset.variants()
    assert variants["fix=rare"] == replace(preset.corpus, fix=0.08, rare=0.08)
    assert variants["fresh"] == variants["lr~1/d"] == variants["main"] == preset.corpus
    assert preset.training_knobs("lr~1/d") == {"lr_power": 1.0} and preset.training_knobs("main") == {}
    small, large = preset.sizes[0], preset.sizes[4]
    assert glib_sweep.peak_lr(small, 1.0) == small.lr and glib_sweep.peak_lr(large) == large.lr
    assert np.isclose(glib_sweep.peak_lr(large, 1.0), large.lr * np.sqrt(64 / large.d_model))
    assert glib_sweep.fresh_stream_tokens(preset, preset.knob_sizes) == 6000 * preset.batch_size * (glib_sweep.BLOCK_SIZE + 1)


@pytest.mark.skipif(ON_GPU, reason="the committed sweep ran on the CPU; a GPU's float rounding takes 3000 steps elsewhere")
def test_a_new_knob_point_of_the_long_sweep_reproduces(long_sweep):
    """Re-train one point new in the long sweep, the 'fresh' cell at d64 (every window read once), and
    compare it with its committed value, within the spread of the five seeds of d64 (one seed per cell)."""
    key, point = next((k, p) for k, p in glib_sweep.sweep_points(glib_sweep.PRESETS["long"]) if k.startswith("fresh/d64 "))
    record = glib_sweep.measure(point)
    seeds = [long_sweep["points"][glib_sweep.point_key("main", point[2], s)] for s in glib_sweep.PRESETS["long"].seeds]
    assert_reproduces(record, seeds, committed=long_sweep["points"][key])


@pytest.mark.slow
@pytest.mark.skipif(ON_GPU, reason="the committed sweep ran on the CPU")
def test_a_right_arm_point_reproduces_within_its_seeds_band(long_sweep):
    """Re-train d160 for 6,000 steps, seed 0 (about 8 minutes on one core), against its five seeds."""
    key, point = next((k, p) for k, p in glib_sweep.sweep_points(glib_sweep.PRESETS["long"]) if k.startswith("main/d160 "))
    record = glib_sweep.measure(point)
    assert_reproduces(record, [long_sweep["points"][glib_sweep.point_key("main", point[2], s)] for s in glib_sweep.PRESETS["long"].seeds])


def exact_curves(known, d_known, sizes=4, n_seeds=2, n_quotes=10):
    """Curves whose quotes are known (B right) at the share known[i] of the quotes, and whose conflict
    probe D is right on d_known[i] of the known quotes' items and on none of the others; no randomness."""
    quotes = np.arange(n_quotes)
    b = [np.tile((quotes < k * n_quotes).astype(float), (n_seeds, 1)) for k in known]
    d = [np.tile(((quotes < k * n_quotes) & (quotes < dk * k * n_quotes)).astype(float), (n_seeds, 1)) for k, dk in zip(known, d_known)]
    return glib_report.Curves(made_up_sizes(sizes), [10 ** (i + 4) for i in range(sizes)], list(range(n_seeds)),
                             {"B": {"exact": b}, "D": {"exact": d}}, {"B": quotes, "D": quotes})


def test_step_changes_pair_a_size_trained_longer_with_itself_on_the_presets_steps():
    c = made_up_curves([0.9, 0.1, 0.9])
    c.specs = [glib_sweep.Size(16, 2, 2, 1e-3), glib_sweep.Size(32, 2, 2, 1e-3), glib_sweep.Size(32, 2, 2, 1e-3, 6000)]
    (name, base, (mean, lo, hi)), = glib_report.step_changes(c, "D")
    assert (name, base) == ("d32 L2 6k steps", "d32 L2")
    assert 0.6 < lo < mean < hi and np.isclose(mean, c.values["D"]["exact"][2].mean() - c.values["D"]["exact"][1].mean())
    assert glib_report.step_changes(made_up_curves([0.9, 0.1, 0.9]), "D") == []  # nothing trained longer


def test_u_requirement_line_reads_the_decomposition():
    c = exact_curves(known=[0.0, 1.0, 1.0, 1.0], d_known=[0.0, 0.3, 0.4, 0.5])
    line = glib_report.u_requirement_line(c)
    u = glib_report.u_shape(c)
    target = u.means[u.minimum] + (u.diffs["largest"][2] - u.diffs["largest"][1]) / 2
    assert line.startswith(f"For a U the largest size needs D >= {target:.2f}") and "knowing 100% of the quotes" in line
    assert "grows +0.10 per 10x parameters" in line and "x the largest; an extrapolation" in line
    flat = glib_report.u_requirement_line(exact_curves(known=[0.0, 1.0, 1.0, 1.0], d_known=[0.0, 0.4, 0.3, 0.2]))
    assert "does not grow" in flat and "no size is predicted" in flat


def test_the_widget_reads_any_typed_altered_quote(long_sweep, capsys):
    from minilm.course import figures

    assert figures.sizes_with_tables(long_sweep) == [s.name for s in glib_sweep.PRESETS["long"].sizes]
    older = copy.deepcopy(long_sweep)  # as if d16 seed 1 had been trained by code that kept no table
    del older["points"][glib_sweep.point_key("main", glib_sweep.PRESETS["long"].sizes[0], 1)]["altered_quotes"]
    assert figures.sizes_with_tables(older) == [s.name for s in glib_sweep.PRESETS["long"].sizes[1:]]
    assert figures.show_altered_quote(older, "all that glisters is not", "glib", "d16 L2", 1) is None
    assert "was trained by code that kept no table for this view" in capsys.readouterr().out
    fig = figures.show_altered_quote(long_sweep, "all that glisters is not", " glib ", "d160 L3 6k steps", 1)
    assert "held out" in fig.axes[0].get_title()
    assert len(fig.axes[0].patches) == 5
    corpus = GlibCorpus(glib_sweep.PRESETS["long"].corpus)
    seen = corpus.training_alterations[10][0]
    assert "training examples" in figures.show_altered_quote(long_sweep, "all that glisters is not", seen, "d256 L4", 4).axes[0].get_title()
    for word in ("gold", "glibb", ""):  # one line inside the widget, no figure, no traceback
        assert figures.show_altered_quote(long_sweep, "all that glisters is not", word, "d256 L4", 0) is None
        printed = capsys.readouterr().out.strip()
        assert "type a content word other than 'gold'" in printed and len(printed.splitlines()) == 1


def test_probing_on_the_way_changes_no_step_and_one_size_reports_without_the_rule():
    size = glib_sweep.Size(8, 2, 2, 1e-2)
    plain = glib_sweep.Preset(sizes=(size,), seeds=(0,), steps=40, stream_tokens=20_000)
    paused = replace(plain, probe_every=15)
    corpus = GlibCorpus(plain.corpus)
    tokens = corpus.stream(plain.stream_tokens)
    once = glib_sweep.run_point(plain, corpus, tokens, size, 0, progress=False)
    probed = glib_sweep.run_point(paused, corpus, tokens, size, 0, progress=False)
    assert [r["step"] for r in probed["probes_at"]] == [15, 30, 40]
    assert probed["probes"] == once["probes"] and probed["final_loss"] == once["final_loss"]
    assert "probes_at" not in once and probed["probes_at"][0]["probes"] != once["probes"]
    results = {"preset": "one", "config": paused.to_dict(), "wall_seconds": 1.0,
               "points": {glib_sweep.point_key("main", size, 0): {**probed, "variant": "main", "code_version": "test"}}}
    text = glib_report.report(results)
    assert "main/d8 L2/seed0: " in text and "step     15" in text
    assert text.splitlines()[-1].startswith("U-shape: not tested (the rule needs three sizes or more")


def test_the_confirmation_trains_d256_on_eight_seeds_and_the_left_arm_as_the_long_sweep():
    lrd, long = glib_sweep.PRESETS["lrd"], glib_sweep.PRESETS["long"]
    assert lrd.sizes[:5] == long.sizes[:5] and lrd.seeds == long.seeds
    seeds = {}
    for _, size, seed in lrd.points():
        seeds.setdefault(size.name, []).append(seed)
    assert seeds["d256 L4 8k steps"] == list(range(8)) and seeds["d192 L4 8k steps"] == [0, 1, 2, 3, 4]
    assert [round(s.lr * s.d_model, 6) for s in lrd.sizes[5:]] == [0.40, 0.40]
    config = json.loads(json.dumps(lrd.to_dict()))
    assert [glib_sweep.Size(**s) for s in config["sizes"]] == list(lrd.sizes)
    assert "seeds" not in config["sizes"][0] and "probe_every" not in config


# ---- the third attempt's statistics: unequal seeds per size, and the tests beside the rule

def unequal_seed_curves(d_means, c_means, n_seeds, n_quotes=20, per_quote=3, seed=0):
    """Curves with n_seeds[i] seeds at size i; D exact match Bernoulli(d_means[i]) and C's exact match of
    seed j at size i exactly c_means[i][j] (the first round(c * items) items right)."""
    rng = np.random.default_rng(seed)
    items = n_quotes * per_quote
    d = [(rng.random((n, items)) < m).astype(float) for m, n in zip(d_means, n_seeds)]
    c = [np.stack([(np.arange(items) < round(cm * items)).astype(float) for cm in per_seed]) for per_seed in c_means]
    clusters = np.repeat(np.arange(n_quotes), per_quote)
    size_seeds = [list(range(n)) for n in n_seeds]
    return glib_report.Curves(made_up_sizes(len(d_means)), [10 ** (i + 3) for i in range(len(d_means))],
                              list(range(min(n_seeds))), {"D": {"exact": d}, "C": {"exact": c}},
                              {"D": clusters, "C": clusters}, size_seeds)


def test_a_clear_dip_with_more_seeds_at_the_largest_size_is_a_robust_u():
    c_means = [[0.0] * 3, [0.0] * 3, [0.0] * 3, [0.9, 0.9, 0.1] + [0.9] * 5]
    c = unequal_seed_curves([0.9, 0.15, 0.5, 0.9], c_means, n_seeds=[3, 3, 3, 8])
    u = glib_report.u_shape(c)
    assert u.found and u.minimum == 1 and "over 3-8 seeds" in u.line
    assert glib_report.robust_interval(u)[2] < 0
    d, lo, hi, df = glib_report.welch_arm(c, u)
    at_min, at_largest = (c.values["D"]["exact"][i].mean(axis=1) for i in (1, 3))
    assert np.isclose(d, at_min.mean() - at_largest.mean()) and lo < d < hi < 0 and 2 <= df <= 9
    assert glib_report.repicked_arm(u)[3] > 0.9  # a clear minimum is the draws' minimum too
    learners = glib_report.instruction_learners(c)
    assert [(k, n) for k, n, _ in learners] == [(0, 3), (0, 3), (0, 3), (7, 8)]
    assert learners[3][2] == stats.wilson_interval(7, 8) and learners[0][2][0] == 0.0
    text = "\n".join(glib_report.beside_the_rule_lines(c, u))
    assert ": robust" in text and "d64 L2 7/8 [" in text


def test_a_u_that_passes_at_95_but_not_at_99_is_not_called_robust():
    c_means = [[0.0] * 3] * 3
    for seed in range(40):  # a dip near the edge of the rule: look for a made-up sweep that shows the case
        c = unequal_seed_curves([0.62, 0.45, 0.62], c_means, n_seeds=[3, 3, 3], n_quotes=10, seed=seed)
        u = glib_report.u_shape(c)
        if u.found and glib_report.robust_interval(u)[2] >= 0:
            break
    else:
        pytest.fail("no made-up sweep passed at 95% and failed at 99%")
    assert ": not robust" in "\n".join(glib_report.beside_the_rule_lines(c, u))


def test_each_size_reads_its_own_seeds_and_the_shared_seeds_come_first():
    lrd = glib_sweep.PRESETS["lrd"]
    shared, own = glib_report.seeds_per_size(lrd.sizes, lrd.seeds)
    assert shared == [0, 1, 2, 3, 4] and own[-1] == list(range(8)) and all(o == shared for o in own[:-1])
    assert glib_report.seeds_per_size([glib_sweep.Size(8, 2, 2, 1e-2, 0, (3, 1, 0))], (0, 1))[1] == [[3, 1, 0]]


def test_the_statistics_formulas_give_the_textbook_values():
    assert stats.t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert stats.t_quantile(0.995, 7) == pytest.approx(3.4995, abs=1e-4)
    assert stats.t_quantile(0.975, 1e6) == pytest.approx(1.9600, abs=1e-4)
    assert stats.wilson_interval(0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)
    assert stats.wilson_interval(3, 8) == pytest.approx((0.1368, 0.6943), abs=1e-4)
    d, lo, hi, df = stats.welch_interval([1, 2, 3, 4], [2, 4, 6, 8, 10])
    assert (d, round(df, 2)) == (-3.5, 5.52) and lo == pytest.approx(-3.5 - (hi + 3.5))
    lo95, hi95 = stats.percentile_interval(np.arange(1001.0))
    lo99, hi99 = stats.percentile_interval(np.arange(1001.0), 0.99)
    assert (lo95, hi95, lo99, hi99) == pytest.approx((25.0, 975.0, 5.0, 995.0))


LRD = os.path.join(ROOT, "lessons", "results", glib_report.STUDY.results_file("lrd"))


def left_arm_outside_the_band(lrd, long_sweep):
    """The left-arm points (d16-d160) the confirmation trained under another BLAS kernel than the long sweep's,
    and, among them, those outside the band of their size's committed seeds: (trained, {key: what is outside})."""
    preset = glib_sweep.PRESETS["lrd"]
    other, outside = [], {}
    for size in preset.sizes[:5]:
        keys = [glib_sweep.point_key("main", size, seed) for seed in preset.seeds]
        seeds = [long_sweep["points"][k] for k in keys]
        for key in (k for k in keys if glib_report.other_kernel(lrd["points"][k], long_sweep["points"][k])):
            other.append(key)
            try:
                assert_reproduces(lrd["points"][key], seeds)
            except AssertionError as e:
                outside[key] = str(e).split(":")[0]
    return other, outside


@pytest.mark.skipif(not os.path.exists(LRD), reason="the lrd confirmation has not written its results yet")
def test_the_confirmation_reproduces_the_long_sweeps_left_arm_as_the_lesson_says(long_sweep):
    """d16-d160 train in `lrd` as in `long` (docs/lab/glib_third_attempt.md, its amendment): a point trained under
    the long sweep's BLAS kernel gives the long sweep's numbers to the last stored digit; for those trained under
    another kernel, the band of their size's committed seeds is the check, and lesson 04's appendix names, with
    their numbers, the points that fall outside it."""
    lrd = runner.load_results(LRD, "glib")
    preset = glib_sweep.PRESETS["lrd"]
    left_arm = [glib_sweep.point_key("main", size, seed) for size in preset.sizes[:5] for seed in preset.seeds]
    assert set(left_arm) <= set(lrd["points"])
    same = [k for k in left_arm if not glib_report.other_kernel(lrd["points"][k], long_sweep["points"][k])]
    for key in same:
        ours, theirs = lrd["points"][key], long_sweep["points"][key]
        assert (ours["probes"], ours["final_loss"], ours["params"]) == (theirs["probes"], theirs["final_loss"],
                                                                       theirs["params"]), key
    other, outside = left_arm_outside_the_band(lrd, long_sweep)
    assert len(same) == 2 and len(other) == 23 and len(same) + len(other) == len(left_arm)
    history = " ".join("".join(c.source for c in nbformat.read(HISTORY, as_version=4).cells
                               if c.cell_type == "markdown").split())
    assert f"{len(other) - len(outside)} of the {len(other)} left-arm points trained on the second CPU" in history
    for key, what in outside.items():
        size, seed = key.split("/")[1].split()[0], key.rsplit("seed", 1)[1]
        assert f"{size} seed {seed}" in history, (key, what)


def test_the_readme_reports_the_pilot_as_its_results_say():
    """The third attempt's pilot: the step at which each seed's instruction arrives and its final loss, beside
    the long sweep's d256 at 6,000 steps, as the README quotes them."""
    readme = open(os.path.join(ROOT, "docs/course.md")).read()
    pilot = runner.load_results(os.path.join(ROOT, "lessons", "results", glib_report.STUDY.results_file("lrd_pilot")),
                                "glib")
    long = runner.load_results(LONG, "glib")
    arrivals = {key.rsplit("seed", 1)[1]: glib_report.arrival(rows) for key, rows in glib_report.on_the_way(pilot).items()}
    assert arrivals == {"2": 4000, "0": 6000}
    assert "at step 4,000 for seed 2 and 6,000 for seed 0" in readme
    final = [pilot["points"][f"main/d256 L4 12k steps/seed{s}"]["final_loss"] for s in (2, 0)]
    before = [long["points"][f"main/d256 L4 6k steps/seed{s}"]["final_loss"] for s in (2, 0)]
    assert f"training losses {final[0]:.4f} and {final[1]:.4f} ({before[0]:.4f} and {before[1]:.4f} in the long" in readme
    assert all(f < b for f, b in zip(final, before))


def test_the_baseline_records_replace_only_shared_points_trained_under_another_kernel():
    """The design's amendment, beside the rule: a point the baseline also holds and that trained under another
    BLAS kernel takes the baseline's record; one trained under the baseline's kernel, new, or with no kernel on
    record (the long sweep's own points, against the full sweep) keeps its own."""
    other = {"blas": "openblas 0.3.31.188.0 Haswell"}
    same = {"blas": "openblas 0.3.31.188.0 SkylakeX"}
    results = {"preset": "lrd", "points": {"a": {"x": 1, "machine": other}, "b": {"x": 2, "machine": same},
                                           "c": {"x": 3, "machine": other}, "d": {"x": 4}}}
    baseline = {"points": {"a": {"x": 10, "machine": same}, "b": {"x": 20, "machine": same}, "d": {"x": 40, "machine": same}}}
    swapped, keys = glib_report.with_baseline_records(results, baseline)
    assert keys == ["a"] and [swapped["points"][k]["x"] for k in "abcd"] == [10, 2, 3, 4]
    assert results["points"]["a"]["x"] == 1  # the results themselves are left as they were
