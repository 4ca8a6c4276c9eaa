"""Lesson 08's sentences that state a number, a comparison or a shape, checked against the committed outputs they
sit beside (the lesson prints everything from lessons/results/preference_lesson08.json; nbval re-runs it)."""
import math
import os
import re

import nbformat
import numpy as np
import pytest

from minilm.course import guess
from minilm.studies import preference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "lessons", "08_the_objective.ipynb")
CELLS = nbformat.read(NOTEBOOK, as_version=4).cells
DESIGN = preference.preset("lesson08")


def markdown_with(text):
    hits = [" ".join(c.source.split()) for c in CELLS
            if c.cell_type == "markdown" and text in " ".join(c.source.split())]
    assert len(hits) == 1, text
    return hits[0]


def printed(starting):
    cell = next(c for c in CELLS if c.cell_type == "code" and c.source.startswith(starting))
    return "".join(o.get("text", "") for o in cell.outputs)


def figure_after(starting):
    cell = next(c for c in CELLS if c.cell_type == "code" and c.source.startswith(starting))
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


@pytest.fixture(scope="module")
def quality():
    """arm label -> (mean, seeds), from the first figure's printout."""
    out = printed("print(f\"true quality on")
    rows = re.findall(r"^  (.+?)\s{2,}(\d\.\d\d)   seeds \[(.*?)\]$", out, re.M)
    return {label.strip(): (float(mean), np.array(seeds.split(), float)) for label, mean, seeds in rows}


@pytest.fixture(scope="module")
def report():
    """prediction number -> held, from the report the lesson prints."""
    out = printed("print(preference.report(results))")
    return {int(n): verdict == "held" for n, verdict in re.findall(r"^prediction (\d) .*: (held|FAILED)$", out, re.M)}


def verdict_word(held):
    return "held" if held else "failed"


def pg_tables():
    """label -> {"step", "reward", "quality", "KL": arrays; "peak": (step, value), "fall": its printed fall}."""
    out = printed("curves, steps = lesson08.pg_curves(results)")
    tables = {}
    for label, block in re.findall(r"^(no KL penalty|KL penalty 0.05) \(means of seeds\):\n((?:  .*\n?)+)", out, re.M):
        lines = block.strip("\n").splitlines()
        rows = {line.split()[0]: np.array(line.split()[1:], float) for line in lines
                if not line.startswith("  true quality peaks")}
        step, value, fall = re.search(r"peaks at step (\d+) \(([\d.]+)\) and ends ([\d.]+) below it", block).groups()
        tables[label] = {**rows, "peak": (int(step), value), "fall": fall}
    return tables


def seed_runs():
    """(arm label, seed) -> each policy-gradient run's printed first, highest (and its step), last quality, the
    reward model's first and last score and the last KL."""
    out = printed("curves, steps = lesson08.pg_curves(results)")
    pattern = (r"^  (no KL penalty|KL penalty 0.05)\s+seed (\d): quality ([\d.]+) -> ([\d.]+) \((\d+)\) -> ([\d.]+);  "
               r"score ([+-][\d.]+) -> ([+-][\d.]+);  KL ([\d.]+)$")
    names = ("first", "top", "top_step", "last", "score_first", "score_last", "kl")
    return {(label, int(seed)): dict(zip(names, map(float, values)))
            for label, seed, *values in re.findall(pattern, out, re.M)}


def test_the_first_screen_states_what_the_outputs_show(quality):
    from tests.helpers import first_screen, sentences

    screen = first_screen(NOTEBOOK)
    text = screen["measured"]
    assert 2 <= sentences(text) <= 3 and 1 <= sentences(screen["claim"]) <= 2
    assert DESIGN.q == 0.6 and "demonstrations right 60% of the time" in text
    assert f"took a model from right {quality['base'][0]:.2f} of the time" in text
    assert f"to {quality['sft (imitation)'][0]:.2f}. Picking" in text
    assert f"lifts that to {quality['best-of-8'][0]:.2f}, and DPO to {quality['DPO'][0]:.2f}." in text
    runs = seed_runs()
    past = [r for r in runs.values() if r["last"] > DESIGN.q]
    assert f"ended past the demonstrations in {len(past)} of its {len(runs)} runs (up to " \
           f"{max(r['last'] for r in past):.2f})" in text
    assert f"or collapsed to {min(r['last'] for r in runs.values()):.2f}" in text
    stayed = [r for r in runs.values() if r["last"] <= DESIGN.q]
    assert all(r["last"] <= r["first"] + 0.005 for r in stayed)  # "stayed where imitation left it or collapsed"
    assert figure_after("print(f\"true quality on") and len(quality) == 6
    assert all(len(seeds) == len(DESIGN.seeds) for _, seeds in quality.values())


def test_section_1_the_task():
    out = printed('prompt = Prompt("fruit"')
    assert "name another fruit : papaya , mango , kiwi ->" in out
    assert "right answers (the rule): durian, banana, apple, lychee, guava, pear" in out
    assert "5 categories of 8 to 9 words; 2 to 4 listed, so 4 to 7 right answers a prompt" in out
    assert "already teach five categories of words" in markdown_with("## 1. A task with many right answers")
    text = markdown_with("The base model is lesson 03's")
    assert DESIGN.size == [3, 64, 4] and "3-layer, width-64 GPT" in text
    assert DESIGN.form_share == 0.25 and "a quarter of its examples" in text
    assert "40% of the time a mistake" in text and 1 - DESIGN.q == pytest.approx(0.4)
    demonstrations = re.search(r"12 demonstrations: (.*)", out).group(1).split(", ")
    right = [d for d in demonstrations if not d.endswith("(wrong)")]
    assert set(right) == {"durian"}  # always the same word where a demonstration is right


def test_section_2_maximum_likelihood_narrows(report):
    out = printed("masses = {}")
    rows = {arm: dict((m, tuple(map(float, v))) for m, *v in re.findall(
        r"(demonstrated|other right|right) (\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\]", line))
        for arm, line in re.findall(r"^(base|sft )(.*)$", out, re.M)}
    base, sft = rows["base"], rows["sft "]
    ratio = tuple(map(float, re.search(r"base / sft: ([\d.]+) \[([\d.]+), ([\d.]+)\]", out).groups()))
    text = markdown_with("of its mass on the demonstrated word (the base about")
    assert DESIGN.demonstrations == 2000 and "tuned on 2,000 such demonstrations" in markdown_with("## 2. Maximum")
    assert f"`sft` puts {sft['demonstrated'][0]:.2f} of its mass on the demonstrated word (the base about " \
           f"{base['demonstrated'][0]:.2f})" in text
    assert f"fall from {base['other right'][0]:.2f} to {sft['other right'][0]:.2f}: {ratio[0]:.1f} times less " \
           f"(interval [{ratio[1]:.1f}, {ratio[2]:.1f}])" in text
    assert base["other right"][0] > sft["other right"][0]
    assert f"The wrong answers rise from {1 - base['right'][0]:.2f} to {1 - sft['right'][0]:.2f}" in text
    assert f"Prediction 1 {verdict_word(report[1])}:" in text
    answer = markdown_with("Suppose `sft` fitted its demonstrations exactly")
    assert f"puts {sft['demonstrated'][0]:.2f} on the demonstrated word and {sft['other right'][0]:.2f} on the other " \
           f"right words" in answer and "appears 60% of the time, so it gets 0.6" in answer
    kept = re.search(r"lowest held-out loss: \[(.*?)\] of (\d+)", printed("sft_seeds = ")).groups()
    at_last = sum(int(k) == int(kept[1]) for k in kept[0].split(", "))
    assert f"In {at_last} of the 3 seeds its held-out loss was lowest at the last step" in answer and at_last >= 1
    assert figure_after("masses = {}")
    assert "no guess yet for sft's mass on the demonstrated word" in out  # the placeholder, committed as it is


def test_the_guess_compares_with_the_measured_share():
    out = printed("masses = {}")
    measured = float(re.search(r"measured: ([\d.]+)\)", out).group(1))
    line = guess.compare_number(0.6, measured, "sft's mass on the demonstrated word")
    assert line.startswith("sft's mass on the demonstrated word: you guessed 0.6, measured")
    assert guess.compare_number(None, measured, "x").startswith("no guess yet")


def test_section_3_imitation_is_capped_and_the_live_run(quality, report):
    text = markdown_with("`sft`'s true quality is")
    sft, base = quality["sft (imitation)"][0], quality["base"][0]
    assert f"`sft`'s true quality is {sft:.2f}, below the base's {base:.2f}" in text and sft < base
    assert f"Prediction 2 (within 0.10 of 0.6, below 0.75 in every seed) {verdict_word(report[2])}" in text
    out = printed("sft_seeds = ")
    assert f"mean {sft:.2f}; q = 0.6" in out
    live = printed("from minilm.checkpoint import load_model")
    found = re.findall(r"^(true quality|mass on the demonstrated word): yours ([\d.]+), seed 0's record ([\d.]+); "
                       r"(within|OUTSIDE) the seeds' band", live, re.M)
    assert len(found) == 2 and all(where == "within" for *_, where in found)
    assert all(yours == record for _, yours, record, _ in found)  # "the run is seed 0's record exactly"
    assert "the run is seed 0's record exactly" in markdown_with("On the machine that trained the study")
    seconds = int(re.search(r"LoRA in (\d+) s", live).group(1))
    assert seconds < 120


def test_section_4_the_reward_model(report):
    out = printed("accuracy = np.array(")
    accuracy = np.array(re.findall(r"ranks ([\d.]+) of held-out pairs", out), float)
    assert len(accuracy) == len(DESIGN.seeds) and DESIGN.pairs == 2000
    assert "trained on 2,000 such pairs" in markdown_with("## 4. A learned reward")
    text = markdown_with("the reward model ranks")
    assert f"ranks {accuracy.min():.3f} to {accuracy.max():.3f} of the pairs right" in text
    assert f"Prediction 3 (at least 0.85 in every seed) {verdict_word(report[3])}:" in text
    assert accuracy.min() > 0.5 and "far above the 0.5 of a coin but short of the rule" in text
    assert (accuracy < 0.85).sum() == 1 and "one seed's reward model fell below it" in text
    answer = markdown_with("What is the Bradley–Terry loss of a pair then")
    assert f"{math.log(2):.3f}" in answer and "$\\sigma(m) - 1 = -0.5$" in answer


def test_section_5_optimising_it(report, quality):
    out = printed('sft = per_prompt(results, "sft")')
    lifts = {arm.strip(): tuple(map(float, v)) for arm, *v in re.findall(
        r"^(.+?)\s+true quality [\d.]+; above sft by ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]$", out, re.M)}
    text = markdown_with("Best of 8 is above `sft` by")
    assert f"Best of 8 is above `sft` by {lifts['best-of-8'][0]:+.2f}, DPO by {lifts['DPO'][0]:+.2f} and policy " \
           f"gradient by {lifts['policy gradient (KL)'][0]:+.2f}" in text
    assert f"Prediction 4 {verdict_word(report[4])}:" in text
    by_n = {int(n): float(v) for n, v in re.findall(r"(\d+): ([\d.]+)", out.split("best-of-n by n:")[1])}
    assert f"climbs from {by_n[1]:.2f} at n = 1" in text and f"to {by_n[16]:.2f} at n = 16" in text
    assert list(by_n.values()) == sorted(by_n.values())
    assert lifts["best-of-8"][0] >= 0.15 and lifts["best-of-8"][1] > 0 and "best-of-8 met its part" in text
    assert 0 < lifts["DPO"][0] < 0.15 and "DPO rose by less" in text
    pg = lifts["policy gradient (KL)"]
    assert pg[1] < 0 < pg[2] and "policy gradient's interval spans both signs" in text
    assert DESIGN.group == 8 and "samples 8 answers per prompt" in markdown_with("## 5. Optimising")
    answer = markdown_with("what would best-of-8 reach")
    assert f"{1 - 0.4 ** 8:.4f}" in answer and quality["best-of-8"][0] < 1 - 0.4 ** 8
    accuracy = np.array(re.findall(r"ranks ([\d.]+) of held-out pairs", printed("accuracy = np.array(")), float)
    assert (accuracy < 1).all() and "it ranks some held-out pairs wrong" in answer
    assert figure_after('sft = per_prompt(results, "sft")')


def test_section_6_too_hard(report):
    tables = pg_tables()
    free, kept = tables["no KL penalty"], tables["KL penalty 0.05"]
    assert list(free["step"]) == list(range(0, DESIGN.pg_steps + 1, DESIGN.log_every))
    intro = markdown_with("## 6. Optimised too hard")
    assert "ran 400 steps" in intro and "every 25 steps" in intro
    runs = seed_runs()
    free0, kept0, kept1 = runs["no KL penalty", 0], runs["KL penalty 0.05", 0], runs["KL penalty 0.05", 1]
    past = sorted(k for k, r in runs.items() if r["last"] > DESIGN.q)
    assert past == [("KL penalty 0.05", 2), ("no KL penalty", 1), ("no KL penalty", 2)]
    assert all(runs[k]["last"] == runs[k]["top"] for k in past)  # "rose past the demonstrations and stayed there"
    text = markdown_with("Seed by seed, the six runs went three ways.")
    lasts = [runs[k]["last"] for k in past]
    assert f"In {len(past)} of them (seeds 1 and 2 without the penalty, seed 2 with it)" in text
    assert f"ending at {min(lasts):.2f} to {max(lasts):.2f}" in text
    assert f"rose from {kept1['score_first']:+.2f} to {kept1['score_last']:+.2f} while the true quality stayed at " \
           f"{kept1['last']:.2f}" in text and kept1["top"] == kept1["first"] == kept1["last"]
    assert f"both runs reached {free0['top']:.2f} and {kept0['top']:.2f} by step 25 and then fell to " \
           f"{free0['last']:.2f}" in text and free0["top_step"] == kept0["top_step"] == 25
    assert free0["last"] == kept0["last"] and kept0["last"] < 0.05
    assert f"KL from `sft` of {free0['kl']:.2f} and {kept0['kl']:.2f} nats" in text
    assert f"({kept0['score_first']:+.2f} to {kept0['score_last']:+.2f})" in text
    assert kept0["score_last"] > kept0["score_first"] and free0["score_last"] < free0["score_first"]
    assert f"the score fell too ({free0['score_last']:+.2f})" in text
    assert f"Prediction 5 {verdict_word(report[5])}" in text
    assert f"ends {kept['fall']} below its peak, without it {free['fall']})" in text
    assert float(kept["fall"]) > float(free["fall"])  # "a smaller fall with the penalty": it was not
    assert not (np.diff(free["reward"]) > 0).all() and "(it did not)" in text
    answer = markdown_with("In seed 0 the KL penalty did not stop the collapse.")
    gain, charge = kept0["score_last"] - kept0["score_first"], 0.05 * kept0["kl"]
    assert f"rose from {kept0['score_first']:+.2f} to {kept0['score_last']:+.2f}, a gain of {gain:.2f}" in answer
    assert f"ended at {kept0['kl']:.2f} nats, which at 0.05 costs {charge:.2f}" in answer
    assert gain > 3 * charge and "several times over" in answer
    assert figure_after("curves, steps = lesson08.pg_curves(results)")


def test_section_7_the_predictions_together(quality, report):
    text = markdown_with("What the toy says about the claim.")
    assert f"took it from {quality['base'][0]:.2f} to {quality['sft (imitation)'][0]:.2f}" in text
    assert f"took `sft` to {quality['best-of-8'][0]:.2f} by choosing" in text
    assert len(report) == 5 and sum(report.values()) == 1 and "only one of the five predictions held" in text


def test_the_course_map_row_states_what_the_lesson_measured(quality, report):
    from tests.helpers import course_map_row

    row = course_map_row("08_the_objective")
    out = printed("masses = {}")
    demo = re.search(r"^sft  demonstrated (\d\.\d\d)", out, re.M).group(1)
    ratio = re.search(r"base / sft: ([\d.]+)", out).group(1)
    assert f"the one demonstrated word ({demo}; the other right words {ratio} times less likely" in row
    assert f"(true quality {quality['sft (imitation)'][0]:.2f})" in row
    accuracy = re.findall(r"ranks ([\d.]+) of held-out pairs", printed("accuracy = np.array("))
    assert f"ranked right {min(accuracy)} to {max(accuracy)})" in row
    assert (f"(true quality {quality['best-of-8'][0]:.2f}, {quality['DPO'][0]:.2f}, "
            f"{quality['policy gradient (KL 0.05)'][0]:.2f})") in row
    assert len(report) == 5 and f"(result: {sum(report.values())} of the 5 predictions written before training" in row


def test_section_8_smollm2_tuned_by_preference():
    """Every number of §8 from the table and the fix prompts' means the cell beside it prints."""
    out = printed("from minilm.studies import proverbs")
    arms = {m[0]: m for m in re.findall(r"^  (\w+)\s+(\d\.\d\d) \[.*?exact (\d\.\d\d) .*?loss (\d+\.\d\d) nats", out, re.M)}
    fix = {a: tuple(map(float, v)) for a, *v in re.findall(
        r"^  (\w+)\s+answer\s+([\d.]+)\s+rival\s+([\d.]+)\s+margin\s+([+-][\d.]+)$", out, re.M)}
    told = markdown_with("DPO made SmolLM2 follow the rule on")
    rule, exact, loss = (lambda arm: arms[arm][1]), (lambda arm: arms[arm][2]), (lambda arm: arms[arm][3])
    assert f"on {rule('dpo')} of the held-out prompts, against {rule('lora')} for LoRA" in told
    assert float(rule("dpo")) > float(rule("lora"))
    assert f"only {exact('dpo')} of them (maximum likelihood {exact('lora')})" in told
    assert f"costs {loss('dpo')} nats against {loss('lora')}" in told and float(loss("dpo")) > float(loss("lora"))
    (base_answer, base_rival, base_margin), (dpo_answer, dpo_rival, dpo_margin) = fix["base"], fix["dpo"]
    assert f"less* likely than in the base ({base_answer:.2f} → {dpo_answer:.2f} nats)" in told and dpo_answer > base_answer
    assert f"fell much further ({base_rival:.2f} → {dpo_rival:.2f})" in told
    assert dpo_rival - base_rival > dpo_answer - base_answer
    assert re.search(r"took (\d+\.\d) minutes of steps .* peaked at ([\d,]+) MiB", told).groups() == \
        re.search(r"tokens in (\d+\.\d) min, peak ([\d,]+) MiB", out).groups()
    answer = markdown_with("The rival's lead over the rule's answer went from")
    assert f"from {base_margin:+.2f} nats (the base) to {dpo_margin:+.2f} (DPO)".replace("-", "−") in answer
    assert f"grew by {dpo_margin - base_margin:.2f} nats" in answer
    assert f"rose* by {dpo_answer - base_answer:.2f} nats" in answer
    assert f"more ({dpo_rival - base_rival:.2f} nats)" in answer and dpo_rival - base_rival > dpo_margin - base_margin
    assert f"lowered its cost to {fix['lora'][0]:.2f} nats" in answer
