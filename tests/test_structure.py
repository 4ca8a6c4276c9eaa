"""Lesson 05's sweep (minilm/structure.py): the common unit, the crossings, the compute trend, the CLI, and
the committed results (complete, and one point re-trained within its seeds' band)."""
import csv
import json
import math
import re
import warnings
from dataclasses import asdict, replace

import numpy as np
import pytest

from minilm import parallel
from minilm.studies import structure, structure_report
from minilm.__main__ import main
from minilm.data import toyworld
from minilm.errors import MinilmError
from minilm.studies.runner import load_results
from tests.helpers import within_seed_band

COMMITTED = "lessons/results/structure_lesson05.json"


def examples(n=40):
    return toyworld.generate(toyworld.ToyworldConfig(), n, seed=0, split="eval")


def test_byte_rows_spell_each_example_and_mark_its_answer_and_the_space_after_it():
    exs = examples()
    idx, targets, task_ids, is_answer, valid = structure.byte_rows(exs)
    for i, ex in enumerate(exs):
        assert bytes(targets[i][valid[i]].astype(np.uint8)).decode() == ex.text + "\n"  # the text and its end
        assert bytes(targets[i][is_answer[i]].astype(np.uint8)).decode() == " ".join(ex.answer) + " "
        assert task_ids[i, 0] == toyworld.TASKS.index(ex.task)


def test_bpe_rows_are_each_examples_tokens_and_mark_the_answer_with_the_space_before_it():
    """The three parts encoded apart give the tokens of the whole text (a part ends where a chunk does), and the
    answer's tokens spell the space before it and the answer."""
    exs = examples()
    bpe = structure.BPETokenizer.trained(structure.text_of(toyworld.generate(toyworld.ToyworldConfig(), 2000)), 400)
    idx, targets, task_ids, is_answer, valid = structure.bpe_rows(exs, bpe)
    for i, ex in enumerate(exs):
        whole = bpe.encode("\n" + ex.text + "\n")
        assert idx[i, 0] == whole[0] and list(targets[i][valid[i]]) == whole[1:]
        assert bpe.decode(targets[i][is_answer[i]]) == " " + " ".join(ex.answer)
        assert task_ids[i, 0] == toyworld.TASKS.index(ex.task)


def test_the_bpe_rungs_train_at_the_budgets_of_at_most_bpe_most_tokens():
    config = structure.preset("lesson05")
    bpe = [p for p in structure.plan(config) if p.rung.startswith("bpe")]
    assert {p.rung for p in bpe} == {"bpe384", "bpe512"} and max(p.tokens for p in bpe) == config.bpe_most_tokens
    assert len(bpe) == 2 * len(config.seeds) * sum(b[3] <= config.bpe_most_tokens for b in config.budgets)
    assert structure.tokenizer_rungs(asdict(config)) == ("gpt", "bpe512", "bpe384", "bytes")  # most structure first
    with pytest.raises(MinilmError, match="more than the 256 bytes"):
        replace(config, bpe_vocab_sizes=[256])


class Uniform:
    """A 'model' that gives every token the same probability: forward returns all-zero logits."""
    xp = np
    config = type("Config", (), {"block_size": math.inf})

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def forward(self, idx):
        return np.zeros(idx.shape + (self.vocab_size,), dtype=np.float32)


def test_bits_per_character_is_one_unit_for_words_and_bytes():
    """A uniform byte model spends 8 bits on every character; a uniform word model log2(V) bits on every word
    and its end, spread over the example's characters."""
    exs = examples()
    characters = np.array([len(ex.text) + 1 for ex in exs])
    on_bytes = structure.score(Uniform(256), structure.byte_rows(exs), characters)
    assert on_bytes["bits_per_char"] == pytest.approx(8.0)
    words = structure.World(structure.preset("ci")).words
    on_words = structure.score(Uniform(words.vocab_size), structure.example_rows(exs, words), characters)
    n_words = sum(len(ex.words) + 1 for ex in exs)
    assert on_words["bits_per_char"] == pytest.approx(n_words * math.log2(words.vocab_size) / characters.sum())


def curve(values, seeds=1, spread=0.0, seed=0):
    """Per-seed values (n, seeds) around the given means."""
    rng = np.random.default_rng(seed)
    return np.asarray(values, float)[:, None] + spread * rng.standard_normal((len(values), seeds))


def test_crossing_of_made_up_curves():
    compute = np.array([1e9, 1e10, 1e11, 1e12])
    flat, falling = curve([1.0] * 4), curve([2.0, 1.5, 1.0, 0.5])
    at, verdict = structure_report.crossing(compute, flat, compute, falling - 0.25)  # 1.25 at 1e10, 0.75 at 1e11
    assert verdict == "crosses" and at == pytest.approx(10 ** 10.5, rel=0.03)
    assert structure_report.crossing(compute, flat, compute, falling + 2)[1] == "does not overtake on these budgets"
    assert structure_report.crossing(compute, flat, compute, falling - 2)[1] == "ahead from the start"
    # a count model measured only at little compute: its last value holds to the right
    at, verdict = structure_report.crossing(np.array([1e6, 1e7]), curve([1.2, 1.0]), compute, falling, hold_a=True)
    assert verdict == "crosses" and at == pytest.approx(1e11, rel=0.03)
    # accuracy: higher is better
    at, _ = structure_report.crossing(compute, curve([0.5] * 4), compute, curve([0.0, 0.25, 0.5, 0.75]) + 0.1, higher_is_better=True)
    assert at == pytest.approx(10 ** 10.6, rel=0.03)


def test_crossing_interval_holds_the_true_crossing_of_noisy_seeds():
    compute = np.array([1e9, 1e10, 1e11, 1e12])
    low, high, share = structure_report.crossing_interval(compute, curve([1.0] * 4, 3, 0.01), compute,
                                                   curve([2.0, 1.5, 1.0, 0.5], 3, 0.01, seed=1) - 0.25, n_boot=200)
    assert share == 1.0 and low < 10 ** 10.5 < high and high / low < 2


def test_extrapolated_crossing_of_two_power_laws():
    compute = np.geomspace(1e9, 1e11, 5)
    law_a = lambda c: 0.5 + 20 * c ** -0.1  # noqa: E731  more structure: better now, a higher floor
    law_b = lambda c: 0.1 + 400 * c ** -0.2  # noqa: E731
    grid = np.geomspace(1e11, 1e20, 100000)
    truth = grid[np.argmax(law_b(grid) < law_a(grid))]
    at, low, high, share = structure_report.extrapolated_crossing(compute, curve(law_a(compute), 3, 1e-4),
                                                           compute, curve(law_b(compute), 3, 1e-4, seed=1), n_boot=50)
    assert share > 0.9 and at == pytest.approx(truth, rel=0.5) and low <= at <= high


def made_up_sweep(laws, ngram_floor, budgets=(1e9, 1e10, 1e11, 1e12)):
    """Results as load_results returns them: every neural rung at each budget on its law (rung -> law of FLOPs),
    two seeds each; the count model at its floor after 1e7 operations."""
    points = {f"ngram-{i}": {"rung": "ngram", "order": 5, "n_layer": 0, "d_model": 0, "n_head": 0, "tokens": t,
                             "seed": 0, "flops": t * 10.0, "bits_per_char": ngram_floor + 1 / t}
              for i, t in enumerate((1e5, 1e6))}
    for rung, law in laws.items():
        for i, flops in enumerate(budgets):
            for seed in (0, 1):
                points[f"{rung}-{i}-{seed}"] = {"rung": rung, "n_layer": i + 1, "d_model": 8, "n_head": 1,
                                                "tokens": 1000 * (i + 1), "seed": seed, "flops": flops,
                                                "bits_per_char": law(flops)}
    return {"config": {"ngram_order": 5}, "points": points}


def test_law_misses_and_ranking_of_made_up_curves():
    """Curves on exact power laws: each law meets its own budgets (misses 0). The ranking at a budget is the
    order of the values there, the count model at the floor it reached: the counts first at 1e9 FLOPs, last
    at 1e12, where the steepest law leads."""
    laws = {"window": lambda c: 2 * c ** -0.05, "gpt": lambda c: 6 * c ** -0.1, "bytes": lambda c: 60 * c ** -0.2}
    results = made_up_sweep(laws, ngram_floor=0.6)
    misses = structure_report.law_misses(results)
    assert sorted(misses) == ["bytes", "gpt", "window"]  # the neural rungs only
    assert all(np.abs(m).max() < 1e-9 for _, m in misses.values())
    assert structure_report.ranking(results, 0) == ["ngram", "window", "gpt", "bytes"]
    assert structure_report.ranking(results, -1) == ["bytes", "gpt", "window", "ngram"]


def test_years_per_10x_of_an_exact_trend():
    years = np.arange(2000, 2021, 2.0)
    tenfold, doubling, (low, high) = structure_report.years_per_10x(years, 1e9 * 10 ** ((years - 2000) / 5), n_boot=100)
    assert tenfold == pytest.approx(5.0) and doubling == pytest.approx(5 * math.log10(2))
    assert low == pytest.approx(5.0) and high == pytest.approx(5.0)


def test_the_compute_trend_table_has_a_source_for_every_row_and_its_arithmetic_holds():
    with open("lessons/results/compute_trend.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 10 and all(r["source"].strip() for r in rows)
    for r in rows:  # peak FP32 = 2 FLOPs (a fused multiply-add) per unit per clock
        assert float(r["fp32_gflops"]) == pytest.approx(2 * int(r["fp32_units"]) * int(r["boost_clock_mhz"]) / 1000, abs=0.1)
    years = [float(r["year"]) for r in rows]
    assert years == sorted(years)
    for r in rows:  # tensor cores x FP16/BF16 FLOPs per core per clock (dense, FP32 accumulate) x boost clock
        if r["tensor_gflops"]:
            peak = int(r["tensor_cores"]) * int(r["tensor_flops_per_clock"]) * int(r["boost_clock_mhz"]) / 1000
            assert float(r["tensor_gflops"]) == pytest.approx(peak, abs=0.1) and "whitepaper" in r["tensor_source"]
            quoted = re.search(r"([\d.]+) TFLOPS FP16 Tensor with FP32 Accumulate", r["tensor_source"])
            assert quoted and float(quoted[1]) * 1000 == pytest.approx(float(r["tensor_gflops"]), rel=0.005)
        else:
            assert float(r["year"]) < 2018 and "no tensor cores" in r["tensor_source"]
    assert sum(bool(r["tensor_gflops"]) for r in rows) == 5


def trend_table(path, years, per_dollar, price=500.0):
    """A made-up compute_trend.csv: FP32 rates that give per_dollar at a launch price, no tensor cores."""
    with open(path, "w", newline="") as f:
        f.write("year,hardware,launch_price_usd,fp32_units,boost_clock_mhz,fp32_gflops,tensor_cores,"
                "tensor_flops_per_clock,tensor_gflops,source,tensor_source\n")
        for y, v in zip(years, per_dollar):
            f.write(f"{y},card {y},{price},1,1,{v * price / 1e9},,,,made up,none\n")
    return path


def test_analyst_choices_on_an_exact_trend(tmp_path):
    """10x every 5 years exactly: every choice of years or cards gives 5; counting in 2006 dollars adds the
    inflation's log10 to the slope; with no tensor cores the training precision is FP32."""
    years = np.arange(2006, 2026, 1.0)
    path = trend_table(tmp_path / "trend.csv", years, 1e9 * 10 ** ((years - 2006) / 5))
    table = structure_report.analyst_choices(path)
    assert [n for _, n, _ in table] == [20, 10, 10, 20, 20]
    for choice, _, fits in table:
        assert fits["fp32"] == fits["low"]
        expected = 1 / (0.2 + math.log10(structure_report.INFLATION)) if "CPI" in choice else 5.0
        assert fits["fp32"][0] == pytest.approx(expected), choice
    assert structure_report.INFLATION == pytest.approx(1.025, abs=0.001)


def test_the_bootstrap_redraws_a_resample_of_one_launch_year(tmp_path):
    years = np.array([2010.0, 2020.0])  # most resamples of two rows either repeat one year or swap them
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # polyfit on a single year would warn (a rank-deficient fit)
        tenfold, _, (low, high) = structure_report.years_per_10x(years, np.array([1e9, 1e11]), n_boot=50)
    assert tenfold == pytest.approx(5.0) and low == pytest.approx(5.0) and high == pytest.approx(5.0)


def test_an_unknown_precision_is_one_clear_line():
    with pytest.raises(MinilmError, match="unknown precision 'fp8': choose one of fp32, low"):
        structure_report.read_compute_trend("lessons/results/compute_trend.csv", "fp8")


def test_ci_preset_runs_resumes_a_lost_point_identically_and_reports(tmp_path, capsys):
    out = str(tmp_path / "structure.json")
    assert main(["structure", "--preset", "ci", "--out", out, "--quiet"]) == 0
    results = load_results(out, "structure")
    keys = [p.key for p in structure.plan(structure.preset("ci"))]
    assert sorted(results["points"]) == sorted(keys)
    lost = "gpt-L1-d16-h1-t16000-s1"
    kept = results["points"].pop(lost)
    with open(out, "w") as f:
        json.dump(results, f)
    assert main(["structure", "--preset", "ci", "--out", out, "--quiet"]) == 0
    again = load_results(out, "structure")["points"][lost]
    assert (again["bits_per_char"], again["tasks"]) == (kept["bits_per_char"], kept["tasks"])
    printed = capsys.readouterr().out
    assert "gpt vs window" in printed and "bpe300 vs gpt" in printed and "bytes vs bpe300" in printed


def test_the_committed_sweep_is_complete_and_is_the_lesson05_preset():
    results = load_results(COMMITTED, "structure")
    config = structure.preset("lesson05")
    assert results["config"] == json.loads(json.dumps(asdict(config)))
    assert sorted(results["points"]) == sorted(p.key for p in structure.plan(config))
    budgets = [r["flops"] for r in results["points"].values() if r["rung"] == "gpt" and r["seed"] == 0]
    assert len(budgets) >= 5 and max(budgets) / min(budgets) >= 100  # five budgets, two orders of magnitude


def retrained_within_band(point):
    """Re-train one committed point of the sweep on one BLAS thread -> (its record, the committed record);
    asserts that its bits per character land within its committed seeds' band."""
    results = load_results(COMMITTED, "structure")
    config = structure.StructureConfig(**results["config"])
    with parallel.one_blas_thread():
        record = structure.measure((config, point, None))
    seeds = [results["points"][replace(point, seed=seed).key]["bits_per_char"] for seed in config.seeds]
    ok, message = within_seed_band(record["bits_per_char"], seeds, floor=0.01 * np.mean(seeds))
    assert ok, message
    return record, results["points"][point.key]


def test_a_committed_point_reproduces_within_its_seeds_band():
    """Re-train the windowed GPT of the fourth budget (2 layers, width 48, 500K tokens), seed 0: its three
    committed seeds agree to 0.8% in bits per character, the closest of the budgets that train long enough
    to mean something (the smallest agree closer, but they have barely left their initial loss). On another
    CPU the BLAS rounds differently, so the re-trained value must land within the seeds' band, not on it."""
    retrained_within_band(structure.Point("window", 500_000, 2, 48, 3, seed=0))


def test_a_committed_bpe_point_reproduces_within_its_seeds_band():
    """Re-learn the 512-token BPE on the training text's first 2 MB and re-train its GPT of the second budget
    (1 layer of width 24, 125K tokens), seed 0: the tokenizer's merges are deterministic (ties go to the smaller
    pair), so the point differs from the committed one only by the BLAS's rounding, within its seeds' band."""
    record, committed = retrained_within_band(structure.Point("bpe512", 125_000, 1, 24, 2, seed=0))
    assert record["flops"] == committed["flops"] and record["params"] == committed["params"]


def test_the_tokenizer_figure_draws_words_the_bpes_and_bytes():
    from minilm.course import figures

    results = load_results(COMMITTED, "structure")
    fig = figures.tokenizer_ladder(results)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert [structure.rung_name(r) for r in ("gpt", "bpe512", "bpe384", "bytes")] == [l for l in labels if l[0] != "_"]
    assert figures.rung_colour("bpe512", results) == "C4" and figures.rung_colour("bytes", results) == "C3"


def test_moving_the_task_widget_draws_that_task():
    """Lesson 05's widget: the view returns its figure (the widget displays it: auto_display); moving the
    control draws the chosen task's curves."""
    import ipywidgets

    from minilm.course import figures

    widget = ipywidgets.interactive(figures.show_task_ladder, {"auto_display": True},
                                    results=ipywidgets.fixed(load_results(COMMITTED, "structure")), task=list(toyworld.TASKS))
    widget.children[0].value = "sentiment"
    shown = [widget.result]
    assert shown[-1].axes[0].get_title().startswith("sentiment")
    assert len(shown[-1].axes[0].lines) > len(structure.RUNGS)  # the rungs' curves and the crossings
