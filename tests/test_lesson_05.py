"""Lesson 05's sentences that state a number, a comparison or a shape, checked against the committed outputs
and the committed results they sit beside (lessons/results/structure_lesson05.json, archs_default.json and
compute_trend.csv). (The lesson itself runs under nbval in the default suite.)"""
import math
import os
import re

import nbformat
import numpy as np
import pytest

from minilm.course import paths
from minilm.data import seq2seq, toyworld
from minilm.encdec import encdec_param_shapes
from minilm.model import GPT, GPTConfig
from minilm.studies import runner, stats, structure, structure_report
from minilm.studies.archs import RunConfig, build_variant, runs_of
from minilm.tokenizer import WordTokenizer
from tests.helpers import course_map_row, first_screen, sentences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "05_structure_vs_scale.ipynb")


@pytest.fixture(scope="module")
def results():
    return runner.load_results(paths.RESULTS / "structure_lesson05.json", "structure")


@pytest.fixture(scope="module")
def curves(results):
    return structure_report.ladder(results)


@pytest.fixture(scope="module")
def crossings():
    """(more structured rung, less structured rung) -> (FLOPs, low, high, 'measured' or 'extrapolated'), as
    section 3 prints them (the lesson runs under nbval, so these are the committed results' crossings)."""
    pattern = (r"^\s*(\w+) (?:overtakes|vs) (\w+)\s*:?.*? at ([\d.e+]+) FLOPs, 95% interval "
               r"\[([\d.e+]+), ([\d.e+]+)\] \((measured|extrapolated)\)$")
    rows = re.findall(pattern, printed("curves = structure_report.ladder(results)"), re.M)
    assert len(rows) == 6
    return {(a, b): (float(at), float(low), float(high), how) for b, a, at, low, high, how in rows}


def markdown_with(text):
    """The lesson's one markdown cell that contains `text`, its lines joined with single spaces."""
    hits = [" ".join(c.source.split()) for c in nbformat.read(LESSON, as_version=4).cells
            if c.cell_type == "markdown" and text in " ".join(c.source.split())]
    assert len(hits) == 1, text
    return hits[0]


def listed(values):
    """0.007, 0.042 and 0.099"""
    return ", ".join(values[:-1]) + " and " + values[-1]


def printed(starting):
    """The printed text of the code cell whose source starts with `starting`."""
    cell = next(c for c in nbformat.read(LESSON, as_version=4).cells
                if c.cell_type == "code" and c.source.startswith(starting))
    return "".join(o.get("text", "") for o in cell.outputs)


def test_the_ladder_and_its_budgets_are_as_described(results, curves):
    config = results["config"]
    intro = markdown_with("six budgets over three orders of magnitude, three seeds each")
    compute = curves["gpt"][0]
    assert len(config["budgets"]) == 6 and len(config["seeds"]) == 3
    assert 2.5 < math.log10(compute[-1] / compute[0]) < 3.5  # three orders of magnitude
    assert "4 recent words" in intro and config["window"] == 4
    table = markdown_with("the next word depends **only on the last 4 words**")
    assert config["ngram_order"] - 1 == 4 and "sees only the **last 4 positions**" in table
    reach = {layers: 1 + layers * (config["window"] - 1) for layers in (2, 3)}  # each layer looks 3 further back
    assert reach == {2: 7, 3: 10} and "(2 layers: 7 words, 3 layers: 10)" in table
    assert config["block_size"] == 64 and "any of the 64 words before may matter" in table
    world = toyworld.ToyworldConfig(**config["world"])
    held_out = toyworld.generate(world, config["n_eval"], seed=config["corpus_seed"], split="eval")
    per_word = sum(len(ex.text) + 1 for ex in held_out) / sum(len(ex.words) + 1 for ex in held_out)
    assert round(per_word, 1) == 3.8 and "about 3.8 times as many tokens" in table
    example = printed("world = toyworld.ToyworldConfig")
    assert "5-gram reads:    ... . aang left the  -> ?" in example  # four words of history
    axis = markdown_with("## 2. One compute axis, one unit")
    assert np.array_equal(curves["window"][0], curves["gpt"][0]) and "the windowed model gets the same count" in axis
    assert config["budgets"][0] == [1, 16, 1, 62_500] and config["budgets"][-1][:2] == [3, 96]
    assert config["budgets"][-1][3] == 2_000_000
    assert "from 1 layer of width 16 on 62,500 tokens to 3 layers of width 96 on two million" in axis
    assert config["ngram_tokens"][0] == 3_000 and config["ngram_tokens"][-1] == 3_000_000
    assert "3 thousand to 3 million" in axis


def test_what_the_curves_say(results, curves, crossings):
    text = markdown_with("What the curves say, read off the printouts above:")
    (c_ngram, v_ngram) = curves["ngram"]
    ngram = v_ngram.mean(axis=1)
    floor = int(np.argmin(ngram))
    tokens = results["config"]["ngram_tokens"]
    assert tokens[floor] == 300_000 and 1e7 <= c_ngram[floor] < 1e8  # a few 100K tokens, some 1e7 operations
    assert np.all(ngram[floor + 1:] >= ngram[floor]) and tokens[-1] >= 10 * tokens[floor]  # ten times more: no help
    (window_at, *_, how_window), (gpt_at, *_, how_gpt) = crossings["ngram", "window"], crossings["ngram", "gpt"]
    assert how_window == how_gpt == "measured"
    assert 1e11 < window_at < gpt_at < 1e12 and "a few times 1e11 FLOPs" in text
    assert 5e3 < window_at / c_ngram[floor] < 2e4 and "ten thousand times the count model's compute" in text
    assert "The windowed GPT passes the counts first, the plain GPT after it" in text
    lead = curves["gpt"][1].mean(axis=1) - curves["window"][1].mean(axis=1)
    assert np.all(lead > 0)  # ahead at every budget
    assert np.all(np.diff(lead[:3]) > 0) and np.all(np.diff(lead[2:]) < 0)  # grows over three budgets, then shrinks
    first, last = (listed([f"{g:.3f}" for g in lead[part]]) for part in (slice(0, 3), slice(3, 6)))
    assert f"first grows, {first} over the first three budgets, then shrinks, {last} over the last three" in text
    assert [f"{g:.3f}" for g in lead] == ["0.007", "0.042", "0.099", "0.023", "0.009", "0.004"]
    readme = " ".join((paths.ROOT / "docs/course.md").read_text(encoding="utf-8").split())
    assert (f"grows over the first three budgets ({', '.join(f'{g:.3f}' for g in lead[:3])}) and then shrinks "
            f"({', '.join(f'{g:.3f}' for g in lead[3:])} at {curves['gpt'][0][-1]:.2g})".replace("e+12", "e12")
            in readme)  # the README says the same
    at, low, high, how = crossings["window", "gpt"]
    assert how == "extrapolated" and at > low >= round(curves["gpt"][0][-1], -11)  # beyond our budgets
    bytes_ = curves["bytes"][1].mean(axis=1)
    assert bytes_[-1] < bytes_[-2] / 2 and "its loss more than halves" in text
    others = [curves[r][1].mean(axis=1) for r in ("window", "gpt")]
    assert all(0.01 < 1 - o[-1] / o[-2] < 0.1 for o in others)  # "the others improve by a few percent"
    beyond = [crossings[a, "bytes"] for a in ("ngram", "window", "gpt")]
    assert all(how == "extrapolated" and 2 < at / curves["bytes"][0][-1] < 10 for at, _, _, how in beyond)
    assert "a few times beyond our largest budget" in text


def test_the_failed_prediction_and_the_sketch(results, curves, crossings):
    out = printed("five = {rung:")
    five = {rung: (c[:-1], v[:-1]) for rung, (c, v) in curves.items()}
    at, low, high, _ = structure_report.extrapolated_crossing(*five["window"], *five["gpt"])
    assert f"at {at:.2g} FLOPs, 95% interval [{low:.2g}, {high:.2g}]" in out
    largest = curves["gpt"][0][-1]
    assert high < largest and curves["window"][1][-1].mean() < curves["gpt"][1][-1].mean()  # the prediction failed
    assert "the check above shows how far a fit can miss" in markdown_with("**Even less structure picks up later")
    measured = [pair for pair, (*_, how) in crossings.items() if how == "measured"]
    assert measured == [("ngram", "window"), ("ngram", "gpt")]
    assert "on ours only the crossings with the count model have" in markdown_with("The shapes match the drawing")


def test_the_dotted_line(results):
    rows = structure_report.dotted_line(results)
    picks = [(here, there) for _, here, there, _ in rows]
    assert picks[:2] == [("ngram", "ngram")] * 2  # the smallest budgets: the counts, even at ten times
    assert [there for _, there in picks[2:]] == ["window", "window", "gpt", "bytes"]
    assert [extrapolated for *_, extrapolated in rows] == [False] * 4 + [True] * 2
    text = markdown_with("At the smallest budgets the answer is the most structured method")
    assert "first to the windowed GPT, and then, where the fitted laws are read, to the less structured rungs, " \
           "the plain GPT and at the largest budget the byte model" in text


def test_the_incentive_credit_now_payoff_later(results):
    """Every row where ten times the budget changes the pick: both gaps positive, the two largest credits as the
    lesson quotes them, and the cost of keeping the structure smaller than its credit in three rows of four."""
    rows = structure_report.incentive(results)
    changes = [(c, here, there) for c, here, there, _ in structure_report.dotted_line(results) if here != there]
    assert [row[:3] for row in rows] == changes and len(rows) == 4
    assert all(today > 0 and later > 0 for _, _, _, today, later, _ in rows)  # "In every row both gaps are positive"
    text = markdown_with("In every row both gaps are positive")
    first, last = rows[0], rows[-1]
    assert (first[1], first[2], last[1], last[2]) == ("ngram", "window", "window", "bytes")
    assert last[0] == structure_report.ladder(results)["gpt"][0][-1]  # "at our largest budget"
    assert f"{first[3]:.3f} bits per character for the counts over the windowed GPT at {first[0]:.2g} FLOPs" in text
    assert f"{last[3]:.3f} for the window over the byte model at our largest budget" in text
    smaller = sum(later < today for _, _, _, today, later, _ in rows)
    assert smaller == 3 and "smaller than the credit in three rows of four" in text
    table = printed('print("budget    pick now')
    for compute, *_, today, later, _ in rows:
        assert f"{compute:8.2g}" in table and f"{today:+.3f}" in table and f"{later:+.3f}" in table


def test_years_until_rolls_the_trend_out():
    assert structure_report.years_until(1e12, 1e13, 5) == pytest.approx(5)
    assert structure_report.years_until(1e12, 1e14, 9.5) == pytest.approx(19)
    assert structure_report.years_until(1e12, 1e12, 9.5) == 0


def test_study_the_change_itself(results, curves):
    """The years from our largest budget to each extrapolated crossing: about two (the window's removal) and about
    seven (the tokenizer's), and the worked answer's 5 / 9.5: the calendar scales, the budgets do not."""
    years, per_dollar, _ = structure_report.read_compute_trend(paths.RESULTS / "compute_trend.csv")
    tenfold = structure_report.years_per_10x(years, per_dollar)[0]
    largest = curves["gpt"][0][-1]
    until = {(a, b): structure_report.years_until(largest, structure_report.extrapolated_crossing(
        *curves[a], *curves[b])[0], tenfold) for a, b in (("window", "gpt"), ("window", "bytes"), ("gpt", "bytes"))}
    assert round(until["window", "gpt"]) == 2 and [round(until[a, "bytes"]) for a in ("window", "gpt")] == [7, 7]
    text = markdown_with("At the same money, the window's removal")
    assert "about two years away at the measured rate" in text and "the tokenizer's" in text and "about seven" in text
    out = printed("years, per_dollar, _ = structure_report.read_compute_trend")
    talk = structure_report.TALK_YEARS_PER_10X
    for pair, y in until.items():
        assert f"in {y:.1f} years, or {y * talk / tenfold:.1f} at the talk's rate" in out, pair
    assert f"at section 9's rate (10x every {tenfold:.1f} years)" in out and f"5 / {tenfold:.1f}" in text


def test_per_task_structure_helps_and_backfires(results, crossings):
    gaps = {task: g for task, (_, g) in structure_report.task_gaps(results).items()}
    text = markdown_with("Structure helps where its assumption holds and backfires where it does not")
    assert set(structure.LOCAL_TASKS) == {"facts_head", "facts_tail", "translation", "grammar"}
    for task in structure.LOCAL_TASKS:
        assert gaps[task].sum() < 0 and gaps[task].min() < -0.25  # "the negative gaps": the window learns them first
        _, counts = structure_report.rung_curve(results, "ngram", structure_report.exact_match(task))
        compute, _ = structure_report.rung_curve(results, "ngram")
        solved = compute[np.argmax(counts.mean(axis=1) >= 0.95)]
        assert counts.mean(axis=1).max() == 1.0 and solved < 1e-2 * structure_report.ladder(results)["gpt"][0][0]
    assert np.all(gaps["sentiment"][-2:] > 0) and "(the positive gaps at the two largest)" in text
    _, window = structure_report.rung_curve(results, "window", structure_report.exact_match("sentiment"))
    _, gpt = structure_report.rung_curve(results, "gpt", structure_report.exact_match("sentiment"))
    assert window.mean(axis=1)[-1] < gpt.mean(axis=1)[-1]  # "the window never catches up"
    widget = printed('w.children[0].value = "sentiment"')
    assert "sentiment    bytes vs window: overtakes at" in widget
    assert "even the byte model passes the windowed one" in text
    assert "translation    gpt vs window: does not overtake" in widget
    top = {rung: structure_report.rung_curve(results, rung, structure_report.exact_match("lists"))[1].mean(axis=1)[-1]
           for rung in ("window", "gpt")}
    assert min(top.values()) > 0.99 and "On `lists` both transformers end at the top" in text
    assert gaps["arithmetic"][-1] < -0.3 and "the windowed GPT is far ahead at the largest budget" in text
    spatial = {rung: structure_report.rung_curve(results, rung, structure_report.exact_match("spatial"))[1].mean(axis=1)
               for rung in structure_report.RUNGS}
    assert max(v.max() for v in spatial.values()) < 0.5 and "`spatial` stays low for every rung" in text
    assert -0.1 < gaps["spatial"][-1] < 0 and "the windowed one slightly ahead" in text
    assert crossings["window", "gpt"][3] == "extrapolated"  # the total: no crossing on our budgets
    assert "shows per task long before it shows in the total" in text


def step_flops(model, S, T, C, n_layer, vocab, head_on_input=False, scores=True):
    """Multiply-adds of one example's forward pass (a training step is the same multiple of it for every
    model): each weight matrix times the words that pass through it, plus the attention scores (QK and AV,
    every score computed, as section 2 counts them) and the output head (vocab x C per word it scores).
      "encoder-decoder": S input words through the encoder's layers, T target words through the decoder's,
        whose cross-attention projects queries and output on the T words and keys and values on the S;
      "gpt": all S + T words of [input ; target] through every layer (the head on the T target words, or on
        all of them with head_on_input);
      "as run": the decoder-only variant as minilm.encdec computes it: n_layer - 1 layers over the input
        (EncDecConfig.n_encoder_layers), and every layer over the target, its keys and values also over the
        input states it reads."""
    att = (lambda q, k: 2 * q * k * C) if scores else (lambda q, k: 0)
    layer = 12 * C * C  # per word: queries, keys, values and output (4 C^2), the MLP (8 C^2)
    if model == "encoder-decoder":
        encoder = n_layer * (layer * S + att(S, S))
        decoder = n_layer * (layer * T + att(T, T) + 2 * C * C * T + 2 * C * C * S + att(T, S))
        return encoder + decoder + T * vocab * C
    if model == "as run":
        over_input = (n_layer - 1) * (layer * S + att(S, S))
        return over_input + n_layer * (layer * T + 2 * C * C * S + att(T, S + T)) + T * vocab * C
    assert model == "gpt"
    return n_layer * (layer * (S + T) + att(S + T, S + T)) + ((S + T) if head_on_input else T) * vocab * C


def test_the_encoder_decoder_step_costs_what_the_lesson_says():
    archs = runner.load_results(paths.RESULTS / "archs_default.json", "archs")
    run, shapes = archs["config"]["run"], archs["config"]["shapes"]
    C, L = run["d_model"], run["n_layer"]
    out = printed('archs = load_results(RESULTS / "archs_default.json", "archs")')
    params = {(s, v): runs_of(archs, s, v)[0]["params"] for s in shapes for v in ("encoder-decoder", "decoder-only")}
    assert all(f"{s:<9} {v:<16} {p:>7,} parameters" in out for (s, v), p in params.items())
    assert all(params[s, "encoder-decoder"] > 2 * params[s, "decoder-only"] for s in shapes)
    section = markdown_with("## 7. Lesson 02")
    assert "the encoder–decoder has more than twice the decoder-only model's parameters" in section
    text = markdown_with("What does a step cost? Not its parameter count")
    vocab = seq2seq.tokenizer().vocab_size
    built = {v: build_variant(v, seq2seq.SHAPES["academic"], RunConfig.from_dict(run), vocab).config
             for v in ("encoder-decoder", "decoder-only")}
    assert built["encoder-decoder"].n_encoder_layers == L and built["decoder-only"].n_encoder_layers == L - 1
    assert "skips its top layer over the input" in text  # what the "as run" count leaves out
    matrix = {v: sum(np.prod(shape) for name, shape in encdec_param_shapes(config).items()
                     if len(shape) == 2 and name not in ("wte", "wpe", "enc.wte", "enc.wpe"))
              for v, config in built.items()}  # what the count multiplies: 12 C^2 a layer, 4 C^2 a cross-attention
    assert matrix == {"encoder-decoder": 2 * L * 12 * C * C + L * 4 * C * C, "decoder-only": L * 12 * C * C}
    assert [(shapes[s]["n_input"], shapes[s]["n_target"]) for s in ("academic", "chat")] == [(16, 3), (8, 8)]
    assert "(16 → 3 and 8 → 8 words;" in text
    matrices, counted, as_run, seconds = {}, {}, {}, {}
    for s, shape in shapes.items():
        S, T = shape["n_input"], shape["n_target"]
        encdec = step_flops("encoder-decoder", S, T, C, L, vocab)
        matrices[s] = (step_flops("encoder-decoder", S, T, C, L, 0, scores=False)
                       / step_flops("gpt", S, T, C, L, 0, scores=False))  # the weight matrices alone
        counted[s] = [encdec / step_flops("gpt", S, T, C, L, vocab, head_on_input=h) for h in (False, True)]
        as_run[s] = encdec / step_flops("as run", S, T, C, L, vocab)
        seconds[s] = (np.mean([r["seconds"] for r in runs_of(archs, s, "encoder-decoder")])
                      / np.mean([r["seconds"] for r in runs_of(archs, s, "decoder-only")]))
    assert all(abs(m - 14 / 12) < 1e-12 for m in matrices.values())  # 14(S+T)C^2 against 12(S+T)C^2
    assert "$14(S+T)C^2$, a GPT layer on [input ; target] $12(S+T)C^2$" in text and "about 1.17 times the GPT's" in text
    every = [c for cs in counted.values() for c in cs]
    assert f"{min(every):.2f} to {max(every):.2f} once the attention scores and the output head" in text
    assert (f"{as_run['academic']:.1f} times as much at the `academic` shape and {as_run['chat']:.1f} times at `chat`"
            in text)
    assert f"give {seconds['academic']:.1f} and {seconds['chat']:.1f}" in text
    low, high = min(every + list(as_run.values()) + list(seconds.values())), max(as_run.values())
    assert round(low, 1) == 1.1 and round(high, 1) == 1.6 and "between 1.1 and 1.6 times as much, not twice" in text
    assert max(seconds.values()) < 1.65  # no count, nor the wall time, makes it twice
    steps = [100 * r for r in counted["chat"] + [as_run["chat"], seconds["chat"]]]  # a decoder-only step's worth
    assert 110 <= min(steps) < 115 and 145 < max(steps) <= 150 and "in about 110 to 150 steps" in text
    loss = {v: np.array([[h["loss"] for h in r["history"]] for r in runs_of(archs, "chat", v)]).mean(axis=0)
            for v in ("encoder-decoder", "decoder-only")}
    evaluated = [h["step"] for h in runs_of(archs, "chat", "decoder-only")[0]["history"]]
    at = {s: i for i, s in enumerate(evaluated)}
    encdec, decoder = loss["encoder-decoder"][at[100]], loss["decoder-only"][at[100]]
    assert f"at step 100 on `chat` ({encdec:.2f} against {decoder:.2f})" in text
    assert f"at step 150, is already at {loss['decoder-only'][at[150]]:.2f}" in text
    assert loss["decoder-only"][at[150]] < loss["encoder-decoder"][at[100]] < loss["decoder-only"][at[100]]
    assert evaluated[at[100] + 1] == 150 and 100 < min(steps) and max(steps) < 150  # between two evaluations


def test_the_compute_trend_rows():
    years, per_dollar, rows = structure_report.read_compute_trend(paths.RESULTS / "compute_trend.csv")
    text = markdown_with("## 9. The force behind it")
    assert (int(years.min()), int(years.max())) == (2006, 2025) and "2006–2025" in text
    assert all("GeForce" in row["hardware"] for row in rows) and "NVIDIA GeForce flagships" in text
    for row in rows:  # 2 FLOPs per fused multiply-add x shader units x boost clock
        peak = 2 * float(row["fp32_units"]) * float(row["boost_clock_mhz"]) / 1e3
        assert abs(peak - float(row["fp32_gflops"])) < 0.1, row["hardware"]
    out = printed("years, per_dollar, rows = structure_report.read_compute_trend")
    assert f"{len(rows)} GPUs, 2006-2025" in out and "outside the interval: these figures do not agree" in out


def test_the_trend_at_training_precision_and_the_analysts_choices():
    """§9's second column and its table of choices, sentence by sentence, against compute_trend.csv."""
    path = paths.RESULTS / "compute_trend.csv"
    years, fp32, rows = structure_report.read_compute_trend(path)
    training = structure_report.read_compute_trend(path, "low")[1]
    tensor = [r for r in rows if r["tensor_gflops"]]
    assert tensor[0]["hardware"].endswith("RTX 2080 Ti") and float(tensor[0]["year"]) // 1 == 2018
    assert all(float(r["tensor_gflops"]) > float(r["fp32_gflops"]) for r in tensor)
    text = markdown_with("The talk speaks of compute per dollar *for machine learning*")
    assert "from the RTX 2080 Ti (2018) on, the tensor cores' FP16/BF16 rate, dense, with FP32 accumulation" in text
    assert all(float(r["year"]) < 2018 for r in rows if not r["tensor_gflops"])  # "the cards before 2018"
    tenfold, _, (low, high) = structure_report.years_per_10x(years, training)
    out = printed("years, per_dollar, rows = structure_report.read_compute_trend")
    assert f"10x every {tenfold:.1f} years ({low:.1f}-{high:.1f})" in out
    reading = markdown_with("At the precision training runs at, compute got ten times cheaper")
    fp32_tenfold = structure_report.years_per_10x(years, fp32)[0]
    assert tenfold < fp32_tenfold and not low <= structure_report.TALK_YEARS_PER_10X <= high
    assert f"every {tenfold:.1f} years ({low:.1f}–{high:.1f}), faster than FP32's {fp32_tenfold:.1f}" in reading
    table = {choice: fits for choice, _, fits in structure_report.analyst_choices(path)}
    rates = {(c, p): f[p][0] for c, f in table.items() for p in structure_report.PRECISIONS}
    early, late = "launches of 2006-2015 only", "launches of 2016-2025 only"
    widths = [hi - lo for fits in table.values() for _, (lo, hi) in fits.values()]
    assert max(rates.values()) - min(rates.values()) > max(widths[:2])  # "further than the interval of any one fit"
    assert min(rates, key=rates.get)[0] == early and max(rates, key=rates.get) == (late, "fp32")
    assert f"from {rates[early, 'fp32']:.1f} years (the launches of 2006–2015) to {rates[late, 'fp32']:.1f}" \
        in reading
    assert rates[late, "low"] < rates[late, "fp32"]
    assert f"({rates[late, 'low']:.1f} years at training precision)" in reading
    cheap, cpi = "cards of $700 or less only", "prices in 2006 dollars (CPI)"
    dear = [r for r in rows if float(r["launch_price_usd"]) > 700]
    assert dear and min(float(r["year"]) for r in dear) // 1 == 2018  # "the flagships got dearer from 2018"
    base = "every launch, dollars of the day"
    assert all(rates[cheap, p] < rates[base, p] and rates[cpi, p] < rates[base, p] for p in structure_report.PRECISIONS)
    assert f"makes the rate faster, {rates[cheap, 'fp32']:.1f} and {rates[cheap, 'low']:.1f}" in reading
    assert f"makes it {rates[cpi, 'fp32']:.1f} and {rates[cpi, 'low']:.1f}" in reading
    assert f"inflation of {structure_report.INFLATION - 1:.1%} a year" in reading
    assert all(rates[c, "low"] <= rates[c, "fp32"] for c in table)  # "at least as fast as FP32"
    holds = [c for c, fits in table.items() if any(lo <= 5 <= hi for _, (lo, hi) in fits.values())]
    assert holds == [early] and "only the early decade's row holds the talk's five years" in reading
    readme = " ".join(open(os.path.join(ROOT, "docs/course.md"), encoding="utf-8").read().split())
    assert f"it is {tenfold:.1f} years [{low:.1f}, {high:.1f}]" in readme and "only the 2006–2015 launches admit" in readme
    assert f"move it from {min(rates.values()):.1f} to {max(rates.values()):.1f} years" in readme
    printed_table = printed("print(f\"{'choice':<34}")
    assert all(f"{rates[c, 'fp32']:4.1f} [" in printed_table and c in printed_table for c in table)


def test_what_to_try_next_and_the_context(results):
    config = results["config"]
    removed = markdown_with("## 10. What the argument says will be removed")
    assert config["block_size"] == 64 and "A context of 64 words here" in removed
    world = toyworld.ToyworldConfig(**config["world"])
    vocab = WordTokenizer(toyworld.vocabulary(world)).vocab_size
    bigger = GPT(GPTConfig(vocab_size=vocab, block_size=config["block_size"], n_layer=4, n_head=4, d_model=128))
    flops = stats.training_flops(bigger.num_params(non_embedding=True), 4, 128, config["block_size"], vocab, 4_000_000)
    assert round(flops, -13) == 2e13 and "4 layers of width 128 on 4 million tokens, about 2e13 FLOPs" in removed


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_results(results, curves, crossings):
    """The opening's claim, and its verdict number by number: the crossings against the sweep (measured) and the
    outputs of section 3 (extrapolated), the compute trend against compute_trend.csv."""
    screen = first_screen(LESSON)
    claim, text = screen["claim"], screen["measured"]
    assert structure_report.TALK_YEARS_PER_10X == 5 and "(10× every five years for the same money)" in claim
    assert sentences(claim) <= 2 and "must be removed later" in claim
    assert len(structure_report.RUNGS) == 4 and results["config"]["ngram_order"] == 5
    assert "On a ladder of four methods (§3), the windowed GPT overtakes the 5-gram counts" in text
    g = lambda x: f"{x:.2g}"  # noqa: E731  (as the lesson prints FLOPs)
    measured = structure_report.ladder_crossings(results)
    for pair in (("ngram", "window"), ("ngram", "gpt")):
        at, verdict, low, high, _ = measured[pair]
        assert verdict == "crosses" and (g(at), g(low), g(high)) == tuple(g(x) for x in crossings[pair][:3])
        assert crossings[pair][3] == "measured"
    window, gpt = ([g(x) for x in measured["ngram", rung][:4] if not isinstance(x, str)] for rung in ("window", "gpt"))
    assert "overtakes the 5-gram counts at {} FLOPs (95% interval [{}, {}])".format(*window) in text
    assert "and the plain GPT at {} ([{}, {}]), both measured".format(*gpt) in text
    largest = curves["gpt"][0][-1]
    at, _, _, how = crossings["window", "gpt"]
    assert measured["window", "gpt"][0] is None and how == "extrapolated" and at > largest
    assert f"at our largest budget, {g(largest)} (the fitted laws cross at {g(at)}, extrapolated)" in text
    bytes_ = [crossings[a, "bytes"] for a in ("ngram", "window", "gpt")]
    assert all(measured[a, "bytes"][0] is None for a in ("ngram", "window", "gpt"))  # "has passed no rung"
    assert all(how == "extrapolated" for *_, how in bytes_)
    slopes = {rung: np.polyfit(np.log10(c), np.log10(v.mean(axis=1)), 1)[0] for rung, (c, v) in curves.items() if rung != "ngram"}
    assert min(slopes, key=slopes.get) == "bytes"  # "the steepest curve"
    low, high = min(at for at, *_ in bytes_), max(at for at, *_ in bytes_)
    assert f"its fitted law crosses the others' between {g(low)} and {g(high)})" in text
    years, per_dollar, _ = structure_report.read_compute_trend(paths.RESULTS / "compute_trend.csv")
    tenfold, _, (low, high) = structure_report.years_per_10x(years, per_dollar)
    assert not low <= structure_report.TALK_YEARS_PER_10X <= high  # "not the talk's five"
    assert f"gives 10× every {tenfold:.1f} years (95% interval {low:.1f}–{high:.1f}), not the talk's five" in text
    training = structure_report.read_compute_trend(paths.RESULTS / "compute_trend.csv", "low")[1]
    fast, _, (fast_low, fast_high) = structure_report.years_per_10x(years, training)
    quoted = f"at the precision training runs at (FP16/BF16 tensor cores), {fast:.1f} ({fast_low:.1f}–{fast_high:.1f})"
    assert quoted in text
    rates = [f[p][0] for _, _, f in structure_report.analyst_choices(paths.RESULTS / "compute_trend.csv") for p in f]
    assert f"move it from {min(rates):.1f} to {max(rates):.1f} years" in text
    assert (f"(result: the window and the plain GPT overtake the counts at {window[0]} and {gpt[0]} FLOPs; the plain "
            f"GPT has not passed the window by {g(largest)}; GPU prices give 10× every {tenfold:.1f} years)"
            ) in course_map_row("05_structure_vs_scale")  # the README says the same
