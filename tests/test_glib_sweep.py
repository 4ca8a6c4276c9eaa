"""python -m minilm glib: the statistics decide what they claim, the CI preset runs and resumes, and a
committed point of the full sweep reproduces."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from minilm import experiments, glib_stats
from minilm import inverse_scaling as isc
from minilm.data.glib import GlibCorpus
from tests.helpers import ON_GPU, within_seed_band

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, isc.results_path("full"))


def minilm(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


# ---- statistics on made-up curves

def made_up_curves(d_means, n_seeds=5, n_quotes=20, per_quote=3, seed=0):
    """Curves whose D exact match at each size is Bernoulli(d_means[i]) over seeds x items."""
    rng = np.random.default_rng(seed)
    values = [(rng.random((n_seeds, n_quotes * per_quote)) < m).astype(float) for m in d_means]
    clusters = np.repeat(np.arange(n_quotes), per_quote)
    return glib_stats.Curves([f"s{i}" for i in range(len(d_means))], [10 ** (i + 3) for i in range(len(d_means))],
                      list(range(n_seeds)), {"D": {"exact": values}}, {"D": clusters})


def test_a_clear_dip_is_called_a_u():
    u = glib_stats.u_shape(made_up_curves([0.9, 0.5, 0.1, 0.5, 0.9]))
    assert u.found and u.minimum == 2 and u.line.startswith("U-shape: yes (")
    assert all(hi < 0 for _, _, hi in u.diffs.values())


@pytest.mark.parametrize("means", [[0.9, 0.7, 0.5, 0.3, 0.1],   # plain inverse scaling
                                   [0.1, 0.3, 0.5, 0.7, 0.9],   # plain positive scaling
                                   [0.6, 0.55, 0.55, 0.6, 0.6],  # a dip inside the noise
                                   [0.9, 0.5, 0.1, 0.2, 0.1]])  # the minimum's right side never recovers
def test_no_u_without_a_significant_middle_minimum(means):
    u = glib_stats.u_shape(made_up_curves(means, n_seeds=3, n_quotes=10))
    assert not u.found and u.line.startswith("U-shape: no (")


def test_the_bootstrap_pairs_prompts_across_sizes():
    """Two sizes with the same per-prompt values: every paired resample gives the same mean for both,
    although the prompts differ a lot from one another (an unpaired bootstrap would not)."""
    per_prompt = np.tile(np.linspace(0, 1, 30), (4, 1))  # (seeds, items), equal over seeds
    boot = glib_stats.bootstrap([per_prompt, per_prompt.copy()], np.arange(30), n_boot=500)
    assert np.ptp(boot[:, 0]) > 0.1
    assert np.allclose(boot[:, 0], boot[:, 1], rtol=0, atol=1e-12)


def test_curve_shapes_in_words():
    assert glib_stats.curve_shape([0.7, 0.2, 0.8]) == "U-shaped"
    assert glib_stats.curve_shape([0.7, 0.4, 0.2]) == "inverse"
    assert glib_stats.curve_shape([0.2, 0.4, 0.7]) == "positive"
    assert glib_stats.curve_shape([0.5, 0.45, 0.55]) == "flat"
    assert glib_stats.curve_shape([0.53, 0.78, 0.53]) == "hump"  # the knob map's zipf=0.5 cell
    # a dip whose right end climbs back only part of the way is inverse scaling, not a U
    assert glib_stats.curve_shape([0.65, 0.37, 0.53, 0.13, 0.70, 0.33]) == "inverse"
    assert glib_stats.curve_shape([0.43, 0.52, 0.28, 0.37, 0.38, 0.72]) == "U-shaped"


# ---- the CLI

def test_ci_preset_runs_in_under_3_minutes_resumes_and_reports(tmp_path):
    out = str(tmp_path / "ci.json")
    start = time.time()
    run = minilm("glib", "--preset", "ci", "--out", out, "--quiet")
    seconds = time.time() - start
    assert run.returncode == 0, run.stderr[-2000:]
    assert seconds < 180, f"the CI preset took {seconds:.0f} s"
    results = json.load(open(out))
    assert len(results["points"]) == len(isc.PRESETS["ci"].points())
    assert run.stdout.strip().splitlines()[-1].startswith("U-shape: ")
    # resume: drop two points; a second run trains only those, two at once in worker processes
    # (--jobs 2), and gets the same numbers: every point runs with one BLAS thread wherever it runs
    # (minilm/experiments.py), so on one machine the worker processes compute what this process computed
    dropped = {key: results["points"].pop(key) for key in list(results["points"])[:2]}
    experiments.save_json(results, out)
    again = minilm("glib", "--preset", "ci", "--out", out, "--quiet", "--jobs", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    redone = json.load(open(out))["points"]
    assert len(redone) == len(isc.PRESETS["ci"].points())
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
    return experiments.load_results(COMMITTED, "glib")


def test_committed_results_are_the_full_preset_complete(committed):
    assert committed["config"] == json.loads(json.dumps(isc.PRESETS["full"].to_dict()))
    assert set(committed["points"]) == {isc.point_key(*p) for p in isc.PRESETS["full"].points()}
    params = [committed["points"][isc.point_key("main", s, 0)]["params"] for s in isc.PRESETS["full"].sizes]
    assert params == sorted(params) and params[-1] / params[0] >= 100  # two orders of magnitude
    assert len(params) >= 5 and len(committed["config"]["seeds"]) >= 5
    assert all(s["n_layer"] >= 2 for s in committed["config"]["sizes"])


def test_report_ends_with_the_u_shape_line_of_the_rule(committed):
    text = glib_stats.report(committed)
    top = glib_stats.curves(committed).subset(glib_stats.most_exposed_quotes(committed))
    assert text.splitlines()[-1] == glib_stats.u_shape(top).line


@pytest.mark.skipif(ON_GPU, reason="the committed sweep ran on the CPU; a GPU's float rounding takes 2000 steps elsewhere")
def test_a_committed_point_reproduces_within_its_seeds_band(committed):
    """Re-train one committed point (d32 L2, seed 0) and compare its final loss and every probe's exact
    match with the band that the five committed seeds of that size allow (tests/helpers.within_seed_band).

    Why this point and this band: on another CPU the BLAS kernels round differently, which is another
    seed's worth of noise after 3,000 steps. The smallest size (d16) is at a phase change (it learns to
    copy late, and only in some seeds: probe A 0.54 to 0.985 over its seeds), so one of its seeds cannot
    be reproduced anywhere but on the machine that made it; d32's seeds agree (A 0.95 to 0.99)."""
    preset = isc.PRESETS["full"]
    size, seed = preset.sizes[1], 0
    corpus = GlibCorpus(preset.corpus)
    record = isc.run_point(preset, corpus, corpus.stream(preset.stream_tokens), size, seed, progress=False)
    seeds = [committed["points"][isc.point_key("main", size, s)] for s in preset.seeds]
    ok, message = within_seed_band(record["final_loss"], [p["final_loss"] for p in seeds], floor=0.01)
    assert ok, f"final loss: {message}"
    ours = glib_stats.probe_metrics(record["probes"])
    theirs = [glib_stats.probe_metrics(p["probes"]) for p in seeds]
    for probe in isc.PROBES:
        ok, message = within_seed_band(ours[probe]["exact"].mean(), [t[probe]["exact"].mean() for t in theirs], floor=0.03)
        assert ok, f"{size.name} probe {probe} exact match: {message}"


def test_decompose_splits_the_conflict_by_whether_the_quote_is_known():
    b = [np.array([[1, 0], [0, 0]])]               # seed 0 knows quote 3; nobody knows quote 7
    d = [np.array([[0, 0, 1, 1], [1, 1, 1, 0]])]   # two conflict prompts per quote
    c = glib_stats.Curves(["s"], [1], [0, 1], {"B": {"exact": b}, "D": {"exact": d}},
                   {"B": np.array([3, 7]), "D": np.array([3, 3, 7, 7])})
    (known, d_known, d_unknown), = glib_stats.decompose(c)
    assert (known, d_known, d_unknown) == (0.25, 0.0, 5 / 6)
    assert np.isclose(known * d_known + (1 - known) * d_unknown, d[0].mean())
