"""Lesson 05's sentences that state a number, a comparison or a shape, checked against the committed outputs
and the committed results they sit beside (lessons/results/structure_lesson05.json, archs_default.json and
compute_trend.csv). (The lesson itself runs under nbval in the default suite.)"""
import math
import os
import re
from dataclasses import replace

import nbformat
import numpy as np
import pytest

from minilm.course import guess, paths
from minilm.data import seq2seq, toyworld
from minilm.encdec import encdec_param_shapes
from minilm.model import GPT, GPTConfig
from minilm.studies import runner, stats, structure, structure_report
from minilm.studies.archs import RunConfig, build_variant, runs_of
from minilm.tokenizer import WordTokenizer
from tests.helpers import course_map_row, first_screen, sentences, within_seed_band

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
    assert "a GPT whose attention sees only the last 4 words" in first_screen(LESSON)["measured"]
    assert config["window"] == 4
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
    assert bytes_[-1] < bytes_[-2] / 2 and f"its loss more than halves ({bytes_[-2]:.3f} to {bytes_[-1]:.3f})" in text
    others = [curves[r][1].mean(axis=1) for r in ("window", "gpt")]
    assert all(0.01 < 1 - o[-1] / o[-2] < 0.1 for o in others)  # "the others improve by a few percent"
    assert all(crossings[a, "bytes"][3] == "extrapolated" for a in ("ngram", "window", "gpt"))  # "not measured"
    assert "Where it passes the others is not measured" in text


def test_the_failed_prediction_and_the_sketch(results, curves, crossings):
    out = printed("five = {rung:")
    five = {rung: (c[:-1], v[:-1]) for rung, (c, v) in curves.items()}
    at, low, high, _ = structure_report.extrapolated_crossing(*five["window"], *five["gpt"])
    assert f"at {at:.2g} FLOPs, 95% interval [{low:.2g}, {high:.2g}]" in out
    largest = curves["gpt"][0][-1]
    assert high < largest and curves["window"][1][-1].mean() < curves["gpt"][1][-1].mean()  # the prediction failed
    assert "does not follow it well enough to say" in markdown_with("**Even less structure picks up later")
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
    curves = structure_report.ladder(results)
    (bytes_compute, bytes_), window = curves["bytes"], curves["window"][1][-1].mean()
    law, _ = structure_report.rung_value(curves, "bytes", last[0])  # the byte model at 4.9e12: past its last budget
    assert bytes_compute[-1] < last[0] and last[3] == pytest.approx(law - window)
    misses = structure_report.law_misses(results)["bytes"][1]
    assert f"The last row's {last[3]:.3f} is not a measurement" in text
    assert f"the law §3 found {misses[-1]:.3f} bits too high at that budget" in text and misses[-1] > 0.1
    measured = bytes_[-1].mean() - window
    assert f"{measured:.3f}" == "0.088" and f"the window is ahead of the byte model by {measured:.3f}" in text
    out = printed('print("budget    pick now')
    assert f"the window ahead by {measured:.3f} bits per character" in out
    assert f"the byte model's largest budget is {bytes_compute[-1]:.2g} FLOPs, short of {last[0]:.2g}" in out
    smaller = sum(later < today for _, _, _, today, later, _ in rows)
    assert smaller == 3 and "smaller than the credit in three rows of four" in text
    assert last[4] < measured  # with the last row's credit measured, the count of three rows of four holds
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
    gap = curves["gpt"][1][-1].mean() - curves["window"][1][-1].mean()
    misses = structure_report.law_misses(results)
    assert f"the two years roll out a gap of {gap:.3f} bits per character" in text
    assert f"the byte model's law, which misses its own largest budget by {misses['bytes'][1][-1]:.3f} bits" in text


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
    order = markdown_with("On the `chat` shape the encoder–decoder (more structure) is ahead early")
    variants = ("encoder-decoder", "prefix-LM", "decoder-only")
    runs = {(s, v): np.array([[h["loss"] for h in r["history"]] for r in runs_of(archs, s, v)]).mean(axis=0)
            for s in shapes for v in variants}
    chat = {v: runs["chat", v] for v in variants}
    assert all(chat["encoder-decoder"][at[s]] < min(chat[v][at[s]] for v in variants[1:]) for s in (50, 100, 150))
    assert all(chat[v][-1] < 0.005 for v in variants) and "the other two catch up" in order  # all at 0.00
    academic = {v: runs["academic", v] for v in variants}
    assert all(academic[v][at[s]] < academic["encoder-decoder"][at[s]] for v in variants[1:] for s in evaluated[1:])
    assert "the decoder-only and prefix-LM models lead from step 100 on" in order and evaluated[:2] == [50, 100]
    first = {v: f"{academic[v][at[50]]:.2f}" for v in variants}
    assert academic["decoder-only"][at[50]] < academic["encoder-decoder"][at[50]] < academic["prefix-LM"][at[50]]
    assert (f"the decoder-only model is ahead on `academic` ({first['decoder-only']} against the encoder–decoder's "
            f"{first['encoder-decoder']}) and the prefix-LM is still behind it ({first['prefix-LM']})") in order
    for v in variants:
        assert f"academic  {v:<16} {runs_of(archs, 'academic', v)[0]['params']:>7,} parameters; " \
               f"held-out loss at step 50: {first[v]}" in out
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
    next_steps = markdown_with("## What to try next")
    assert round(flops, -13) == 2e13 and "4 layers of width 128 on 4 million tokens, about 2e13 FLOPs" in next_steps


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_results(results, curves, crossings):
    """The opening's claim, and its verdict number by number: the crossings against the sweep (measured, as section
    3 prints them), the largest budget and who leads there; the course map's row says the same."""
    screen = first_screen(LESSON)
    claim, text = screen["claim"], screen["measured"]
    assert structure_report.TALK_YEARS_PER_10X == 5 and "(10× every five years for the same money)" in claim
    assert sentences(claim) <= 2 and "must be removed later" in claim
    assert sentences(text) == 3
    assert len(structure_report.RUNGS) == 4 and results["config"]["ngram_order"] == 5
    assert results["config"]["window"] == 4 and "counts of 5-word sequences, a GPT whose attention sees only the " \
        "last 4 words, the plain GPT, and the GPT reading bytes" in text
    g = lambda x: f"{x:.2g}"  # noqa: E731  (as the lesson prints FLOPs)
    measured = structure_report.ladder_crossings(results)
    for pair in (("ngram", "window"), ("ngram", "gpt")):
        at, verdict, low, high, _ = measured[pair]
        assert verdict == "crosses" and (g(at), g(low), g(high)) == tuple(g(x) for x in crossings[pair][:3])
        assert crossings[pair][3] == "measured"
    window, gpt = (g(measured["ngram", rung][0]) for rung in ("window", "gpt"))
    assert f"the windowed GPT passes them at {window} FLOPs and the plain GPT at {gpt}." in text
    ngram = curves["ngram"][1].mean(axis=1)
    assert np.argmin(ngram) < len(ngram) - 1  # "then stop improving": the counts' floor comes before their last budget
    largest = curves["gpt"][0][-1]
    assert f"At our largest budget, {g(largest)}, the window is still ahead of the plain GPT" in text
    assert curves["window"][1][-1].mean() < curves["gpt"][1][-1].mean() and measured["window", "gpt"][0] is None
    assert all(measured[a, "bytes"][0] is None for a in ("ngram", "window", "gpt"))  # "has passed no rung"
    assert "the byte model has passed no rung" in text
    years, per_dollar, _ = structure_report.read_compute_trend(paths.RESULTS / "compute_trend.csv")
    tenfold = structure_report.years_per_10x(years, per_dollar)[0]
    assert (f"(result: the window and the plain GPT overtake the counts at {window} and {gpt} FLOPs; the plain "
            f"GPT has not passed the window by {g(largest)}; GPU prices give 10× every {tenfold:.1f} years)"
            ) in course_map_row("05_structure_vs_scale")  # the course map says the same
    first = nbformat.read(LESSON, as_version=4).cells[0].source
    assert "CS25" in first and "Wei" in first and "Chung" in first and "lesson 02's masks" in first


def test_the_guess_is_compared_with_the_ranking_the_sweep_measured(results):
    """The guess cell's placeholders, and a filled-in guess, against the rungs ranked at the smallest and the
    largest budget (the counts first at the smallest, third at the largest; the bytes last at both)."""
    cells = nbformat.read(LESSON, as_version=4).cells
    figure = next(i for i, c in enumerate(cells) if c.cell_type == "code"
                  and any("image/png" in o.get("data", {}) for o in c.outputs))
    guess_cell = next(i for i, c in enumerate(cells) if "guess" in c.metadata.get("tags", []))
    assert guess_cell < figure and "my_order_smallest = []" in cells[guess_cell].source
    smallest, largest = structure_report.ranking(results, 0), structure_report.ranking(results, -1)
    assert smallest == ["ngram", "window", "gpt", "bytes"] and largest == ["window", "gpt", "ngram", "bytes"]
    out = printed("for name, budget, my_order in")
    assert guess.compare_order([], smallest, "the rungs at the smallest budget") in out
    assert f"(measured: {', '.join(largest)})" in out
    line = guess.compare_order(["gpt", "window", "ngram", "bytes"], largest, "the rungs at the largest budget")
    assert line.endswith("5 of 6 pairs in the measured order")


def test_the_live_run_lands_within_its_committed_seeds_band(results):
    """The live cell's printed run, and the same run again here (seconds): the windowed GPT of the second budget,
    seed 0, on a text drawn for it alone, within the band of the point's three committed seeds."""
    config = structure.StructureConfig(**results["config"])
    n_layer, d_model, n_head, tokens = config.budgets[1]
    point = structure.Point("window", tokens, n_layer, d_model, n_head, seed=0)
    seeds = [results["points"][replace(point, seed=seed).key]["bits_per_char"] for seed in config.seeds]
    out = printed('rung, budget = "window", 1')
    shown = re.search(r"trained in ([\d.]+) s: ([\d.]+) bits per character", out)
    assert shown and float(shown[1]) < 10  # "trains in a few seconds"
    assert within_seed_band(float(shown[2]), seeds, floor=0.01 * np.mean(seeds))[0]
    assert "within their band" in out and f"on {tokens:,} tokens" in out
    record = structure.measure_alone(config, point)
    inside, message = within_seed_band(record["bits_per_char"], seeds, floor=0.01 * np.mean(seeds))
    assert inside, message
    assert record["flops"] == results["points"][point.key]["flops"]  # the sweep's point, on the ladder's axis
    assert "trains in a few seconds" in markdown_with("**Run it yourself.**")


def test_how_far_the_laws_can_be_trusted(results, crossings):
    """§3's table of the laws' misses at their own budgets, the paragraph that reads it, and its question."""
    misses = {rung: m for rung, (_, m) in structure_report.law_misses(results).items()}
    out = printed("misses = structure_report.law_misses(results)")
    for rung, m in misses.items():
        assert f"{rung:<7}" + "".join(f"{x:+8.3f}" for x in m) in out
    text = markdown_with("The word models' laws meet their two largest budgets")
    worst_word = max(abs(misses[r][-2:]).max() for r in ("window", "gpt"))
    assert f"{worst_word:.3f}" == "0.004" and "to within 0.004 bits" in text
    b = misses["bytes"]
    assert abs(b).argmax() == 0 and abs(b[1:-1]).max() == abs(b[3])
    assert (f"it misses by {b[0]:.3f} bits at the smallest budget, by {abs(b[3]):.3f} in the middle and by "
            f"{b[-1]:.3f} at its largest") in text
    ats = [crossings[a, "bytes"][0] for a in ("ngram", "window", "gpt")]
    assert f"{min(ats):.2g} to {max(ats):.2g} FLOPs" in text
    curves = structure_report.ladder(results)
    window, bytes_ = curves["window"][1][-1].mean(), curves["bytes"][1][-1].mean()
    assert f"the byte model is {bytes_ - window:.3f} bits per character behind the window ({bytes_:.3f} against " \
           f"{window:.3f})" in text
    course = " ".join((paths.ROOT / "docs/course.md").read_text(encoding="utf-8").split())
    assert (f"at {curves['bytes'][0][-1]:.2g}".replace("e+12", "e12") + f" it is still {bytes_ - window:.3f} behind "
            f"the window" in course and f"the law misses its own largest budget by {b[-1]:.3f}" in course)
    question = markdown_with("At its largest budget the byte model's law sits")
    assert f"sits {b[-1]:.3f} bits per character above the measurement" in question and b[-1] > 0  # "Sooner"
    before = curves["bytes"][1][-2].mean()
    assert f"fell from {before:.3f} to {bytes_:.3f}" in question and bytes_ < before / 2
    compute = curves["bytes"][0]
    assert round(compute[-1] / compute[-2]) == 4 and "about four times the compute" in question


def test_the_questions_worked_answers(results, curves):
    """Each worked answer's numbers, against the outputs and results beside it."""
    config = results["config"]
    world = toyworld.ToyworldConfig(**config["world"])
    held_out = toyworld.generate(world, config["n_eval"], seed=config["corpus_seed"], split="eval")
    per_word = sum(len(ex.text) + 1 for ex in held_out) / sum(len(ex.words) + 1 for ex in held_out)
    tokens = config["budgets"][-1][3]
    ladder_q = markdown_with("How much text, in words, does the byte model read")
    assert round(tokens / per_word, -4) == 530_000 and "about 530,000 words' worth" in ladder_q
    assert f"({curves['bytes'][0][-1]:.2g} FLOPs against {curves['gpt'][0][-1]:.2g}" in ladder_q

    dotted = markdown_with("the fitted laws say the plain GPT passes it at")
    largest = curves["gpt"][0][-1]
    at = structure_report.extrapolated_crossing(*curves["window"], *curves["gpt"])[0]
    assert f"at {at:.2g} FLOPs, {at / largest:.1f} times that budget" in dotted
    window, gpt = (curves[r][1][-1] for r in ("window", "gpt"))
    assert f"({window.mean():.4f} against {gpt.mean():.4f} at {largest:.2g})" in dotted
    assert f"a gap of {gpt.mean() - window.mean():.3f}" in dotted
    assert f"(standard deviations {window.std(ddof=1):.3f} and {gpt.std(ddof=1):.3f})" in dotted
    assert 1.5 < (gpt.mean() - window.mean()) / gpt.std(ddof=1) < 2.5  # "about twice the seeds' spread"
    five = {r: (c[:-1], v[:-1]) for r, (c, v) in curves.items()}
    assert f"at {structure_report.extrapolated_crossing(*five['window'], *five['gpt'])[0]:.2g}," in dotted

    gaps = {task: g[-1] for task, (_, g) in structure_report.task_gaps(results).items()}
    tasks = markdown_with("on which task does removing the window help most")
    assert max(gaps, key=gaps.get) == "sentiment" and f"`sentiment` (+{gaps['sentiment']:.2f} exact match)" in tasks
    assert min(gaps, key=gaps.get) == "arithmetic" and f"`arithmetic` (−{-gaps['arithmetic']:.2f})" in tasks
    assert all(abs(gaps[t]) < 0.005 for t in structure.LOCAL_TASKS) and "the gap at the largest budget is 0.00" in tasks
    assert 1 + 3 * (config["window"] - 1) == 10 and "the 10 words three windowed layers reach" in tasks

    cost = markdown_with("Why does its step not cost twice as much?")
    assert "more than twice the decoder-only model's parameters" in cost and "between 1.1 and 1.6 times" in cost
    assert "between 1.1 and 1.6 times as much, not twice" in markdown_with("What does a step cost?")  # as tested there

    table = {choice: fits for choice, _, fits in structure_report.analyst_choices(paths.RESULTS / "compute_trend.csv")}
    late, early = table["launches of 2016-2025 only"], table["launches of 2006-2015 only"]
    trend = markdown_with("Suppose you had only the launches of 2016–2025")
    for rate, (low, high) in (late["fp32"], late["low"], early["fp32"]):
        assert f"{rate:.1f}" in trend and f"{low:.1f} to {high:.1f}" in trend
    assert not any(lo <= 5 <= hi for _, (lo, hi) in late.values()) and "lies outside both intervals" in trend
    assert early["fp32"][1][0] <= 5 <= early["fp32"][1][1] and "Only the earlier decade" in trend


# ----------------------------------------------------------------------------------------------------
# §11: the tokenizer as structure (docs/lab/lesson05_bpe_design.md)

def tokenizer_table(out):
    """rung -> its row of numbers, for each row of §11's printout that starts with a rung or a gap's name."""
    rows = re.findall(r"^\s*(gpt|bpe\d+|bytes|words ahead of bpe\d+|bpe\d+ ahead of bytes)\s+([\d. ]+)$", out, re.M)
    return {name: [float(x) for x in values.split()] for name, values in rows}


def test_the_tokenizer_rungs_are_as_described(results):
    config = results["config"]
    intro = markdown_with("## 11. The tokenizer as structure")
    assert config["bpe_vocab_sizes"] == [384, 512] and "Two BPE rungs, of 384 and 512 tokens" in intro
    assert config["bpe_text_bytes"] == 2_000_000 and "learned from the first 2 MB of the ladder's training text" in intro
    bpe = [r for r in results["points"].values() if r["rung"].startswith("bpe")]
    shapes = [tuple(b[:3]) for b in config["budgets"]]  # (layers, width, heads) of each budget
    assert sorted({(r["n_layer"], r["d_model"], r["n_head"]) for r in bpe}) == shapes[:5]
    assert "at the five smaller budgets" in intro and {r["seed"] for r in bpe} == set(config["seeds"])
    seconds = {shape: sum(r["train_seconds"] for r in results["points"].values()
                          if r["rung"] == "gpt" and (r["n_layer"], r["d_model"], r["n_head"]) == shape) for shape in shapes}
    largest = shapes[-1]
    assert seconds[largest] > sum(s for t, s in seconds.items() if t != largest)  # "longer than the other five together"
    assert "for the word model it alone took longer to train than the other five together" in intro
    assert "../docs/lab/lesson05_bpe_design.md" in intro and os.path.isfile(os.path.join(ROOT, "docs/lab/lesson05_bpe_design.md"))


def test_characters_per_token_of_each_tokenizer(results):
    """§11's "2.2 and 2.9 characters a token on the held-out examples, words 3.8": the ladder's own tokenizers on
    its held-out rows (the BPEs re-learned on the training text, as the sweep learns them)."""
    config = structure.StructureConfig(**results["config"])
    world = structure.World(config)
    per_token = {rung: world.characters.sum() / world.reading(rung)[2][4].sum() for rung in ("bpe384", "bpe512", "gpt")}
    intro = markdown_with("## 11. The tokenizer as structure")
    assert (f"({per_token['bpe384']:.1f} and {per_token['bpe512']:.1f} characters a token on the held-out examples, "
            f"words {per_token['gpt']:.1f})") in intro
    measured = markdown_with("**What was measured.** All four predictions held.")
    assert 2 <= per_token["bpe384"] and per_token["bpe512"] <= 3  # "two to three times the text a byte model reads"
    assert "a BPE model reads two to three times the text a byte model reads" in measured


def test_what_the_tokenizer_rungs_measured(results):
    """§11's table, each prediction's outcome and the paragraph beside them, against the committed results."""
    out = printed("from minilm.tokenizer import WordTokenizer")
    table = tokenizer_table(out)
    curves = structure_report.tokenizer_ladder(results)
    for rung in ("gpt", "bpe512", "bpe384", "bytes"):
        assert table[rung] == [round(v, 3) for v in curves[rung][1].mean(axis=1)[:5]]
    columns = np.array([table[rung] for rung in ("gpt", "bpe512", "bpe384", "bytes")])
    assert (np.argsort(columns, axis=0) == np.arange(4)[:, None]).all()  # "At every budget the order is ..."
    assert re.findall(r"^prediction (\d), .*: (held|FAILED)$", out, re.M) == [(str(k), "held") for k in range(1, 5)]
    text = markdown_with("**What was measured.** All four predictions held.")
    assert "At every budget the order is words, BPE 512, BPE 384, bytes" in text
    ahead = [g for name in ("bpe512 ahead of bytes", "bpe384 ahead of bytes") for g in table[name][:4]]
    assert min(ahead) > 0 and f"by {min(ahead):.1f} to {max(ahead):.1f} bits per character over the first four" in text
    w512, w384 = table["words ahead of bpe512"], table["words ahead of bpe384"]
    assert min(w512 + w384) > 0 and all(a < b for a, b in zip(table["bpe512"], table["bpe384"]))
    assert (f"at a million tokens the words lead BPE 512 by {w512[-1]:.3f} bits per character ({w512[0]:.3f} at the "
            f"smallest budget) and BPE 384 by {w384[-1]:.3f}") in text
    assert (f"the BPEs' lead over bytes has fallen to {table['bpe512 ahead of bytes'][-1]:.3f} and "
            f"{table['bpe384 ahead of bytes'][-1]:.3f}") in text
    assert all(gap[-1] < max(gap[:-1]) for name, gap in table.items() if "ahead" in name)  # "the gaps close"
    assert re.search(r"does not know: 0 in 3,000 examples", out)
    assert "none of the 3,000 held-out examples holds a word the word tokenizer does not know" in text
    crossings = structure_report.ladder_crossings(results, rungs=structure.tokenizer_rungs(results["config"]))
    assert all(verdict == "does not overtake on these budgets" for _, verdict, *_ in crossings.values())  # no less
    # structured rung passes a more structured one: predictions 1, 2 and 3 as the report reads them


def test_the_tokenizer_guess_and_question(results):
    out = printed("from minilm.tokenizer import WordTokenizer")
    assert out.startswith("no guess yet for the tokenizers at the fifth budget")
    assert "(measured: gpt, bpe512, bpe384, bytes)" in out.splitlines()[0]
    order = ["gpt", "bpe512", "bpe384", "bytes"]
    assert "no guess yet" not in guess.compare_order(order, order, "the tokenizers at the fifth budget")
    table = tokenizer_table(out)
    answer = markdown_with("**Question.** The word model wins at every budget.")
    assert ("0 unknown words in 3,000 held-out examples" in answer
            and f"the words' lead over BPE 512 from {table['words ahead of bpe512'][0]:.3f} to "
                f"{table['words ahead of bpe512'][-1]:.3f} bits per character" in answer)
    lead = table["bpe512 ahead of bytes"]
    assert f"BPE 512's lead over bytes from {lead[0]:.3f} to {lead[-1]:.3f}" in answer
    assert "*wakanda* is `<unk>` to it" in answer  # lesson 01 §7 prints it
    lesson01 = nbformat.read(os.path.join(ROOT, "lessons", "01_next_token_loss.ipynb"), as_version=4)
    assert any("words      8 tokens: the|capital|of|<unk>|is|<unk>|<unk>|." in "".join(o.get("text", "") for o in c.outputs)
               for c in lesson01.cells if c.cell_type == "code")


def test_the_course_map_reads_the_tokenizer_rungs_as_measured(results):
    course = " ".join((paths.ROOT / "docs/course.md").read_text(encoding="utf-8").split())
    curves = structure_report.tokenizer_ladder(results)
    fifth = {rung: values.mean(axis=1)[4] for rung, (_, values) in curves.items()}
    assert (f"at a million tokens, words {fifth['gpt']:.3f}, BPE 512 {fifth['bpe512']:.3f}, BPE 384 "
            f"{fifth['bpe384']:.3f}, bytes {fifth['bytes']:.3f} bits per character") in course
    before = float(re.search(r"The committed sweep took ([\d.]+) minutes of wall time on 2 cores, one process "
                             r"\(17 for five budgets", course).group(1))
    total = results["wall_seconds"] / 60
    assert f"another {total - before:.1f} minutes of wall time on one core ({total:.1f} in all)" in course
    assert "All four predictions held" in course and "All four predictions held" in markdown_with("**What was measured.**")


def test_the_design_notes_outcome_table_is_the_committed_results(results):
    note = (paths.ROOT / "docs/lab/lesson05_bpe_design.md").read_text(encoding="utf-8").split("## Outcome")[1]
    rows = dict(re.findall(r"^\| (words \(`gpt`\)|BPE 512|BPE 384|bytes) \| ([\d.| ]+) \|$", note, re.M))
    curves = structure_report.tokenizer_ladder(results)
    for name, rung in (("words (`gpt`)", "gpt"), ("BPE 512", "bpe512"), ("BPE 384", "bpe384"), ("bytes", "bytes")):
        assert [float(x) for x in rows[name].split("|")] == [round(v, 3) for v in curves[rung][1].mean(axis=1)[:5]]
    assert "30 new points" in note and sum(r["rung"].startswith("bpe") for r in results["points"].values()) == 30
    assert f"({sum(r['train_seconds'] for r in results['points'].values() if r['rung'].startswith('bpe')):,.0f} s of it training)" in note
