"""Lesson 07's sentences that state a number, a comparison or a shape, checked against the committed outputs they
sit beside (the lesson prints everything from lessons/results/; nbval re-runs it in the default suite)."""
import os
import re

import nbformat
import numpy as np
import pytest

from minilm.studies import instruct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELLS = nbformat.read(os.path.join(ROOT, "lessons", "07_teaching_the_instruction.ipynb"), as_version=4).cells
ROW = re.compile(r"^\s+([ABCD]) .+?\s+([\d.]+) -> ([\d.]+)\s+([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]$", re.M)


def markdown_with(text):
    hits = [" ".join(c.source.split()) for c in CELLS
            if c.cell_type == "markdown" and text in " ".join(c.source.split())]
    assert len(hits) == 1, text
    return hits[0].replace("−", "-")


def printed(starting):
    cell = next(c for c in CELLS if c.cell_type == "code" and c.source.startswith(starting))
    return "".join(o.get("text", "") for o in cell.outputs)


def probe_table(starting):
    """arm -> probe -> (before, after, change, low, high), and arm -> C after, seed by seed."""
    out = printed(starting)
    tables, seeds = {}, {}
    for arm, block in re.findall(r"^  (full|lora):\n(.*?)(?=^  \w+:\n|\Z)", out, re.M | re.S):
        tables[arm] = {p: tuple(float(v) for v in rest) for p, *rest in ROW.findall(block)}
        seeds[arm] = np.array(re.search(r"C after, seed by seed: \[(.*?)\]", block).group(1).split(), float)
    return out, tables, seeds


@pytest.fixture(scope="module")
def first():
    return probe_table("def probe_table(results, title):")


@pytest.fixture(scope="module")
def second():
    return probe_table("second_changes = probe_table(")


@pytest.fixture(scope="module")
def seed0():
    out = printed('columns = ["A", "B", "C", "D"')
    rows = {}
    for line in out.splitlines()[1:]:
        values = re.findall(r"\s(\d\.\d\d)(?=\s|$)", line)
        rows[line[:48].strip()] = dict(zip(["A", "B", "C", "D", "training", "fresh"], map(float, values)))
    return rows


@pytest.fixture(scope="module")
def cost():
    out = printed("full_sweep, long_sweep = (")
    longer = np.array(re.search(r"C \[(.*?)\] over seeds", out).group(1).split(), float)
    pattern = r"{}: tuning ([\d.e+]+) FLOPs = ([\d.]+)% of d96's pre-training .*?, ([\d.]+)% of pre-training"
    designs = {name: tuple(float(v) for v in re.search(pattern.format(name), out).groups())
               for name in ("first design", "second design")}
    return longer, designs


def test_the_first_screen_states_what_the_outputs_show(first, second, seed0, cost):
    screen = markdown_with("**Measured here.**")
    _, t1, s1 = first
    _, t2, s2 = second
    assert f"C {t1['full']['C'][0]:.2f} → {t1['full']['C'][1]:.2f}" in screen
    assert (s1["full"] > 0.5).sum() == 0 and "learned the instruction in none of 5 seeds" in screen
    assert f"from {t1['full']['A'][0]:.2f} to {t1['full']['A'][1]:.2f}" in screen
    assert f"from {t1['full']['B'][0]:.2f} to {t1['full']['B'][1]:.2f}" in screen
    eos = seed0["the same, each row begun with <eos>"]
    assert f"{eos['fresh']:.2f} on fresh pairs, a coin" in screen
    assert f"keeps copying and the quotes ({t2['full']['A'][1]:.2f} and {t2['full']['B'][1]:.2f})" in screen
    assert (s2["full"] > 0.5).sum() == 2 and "brings the instruction to 2 of 5 seeds" in screen
    assert s2["full"][0] > 0.5 and (s2["full"][1:] > 0.5).sum() == 1
    assert "predicted at least 3 of the 4 others and got 1" in screen
    assert round(cost[1]["second design"][2]) == 12 and "At 12% of the FLOPs of pre-training d160 longer" in screen


def test_section_1_the_loss_mask():
    out = printed('print("repeat:", REPEAT_PHRASES')
    assert "repeat: ('repeat after me', 'say with me')" in out and "fix: ('repeat with me', 'say after me')" in out
    text = markdown_with("The first pair says *say with me*")
    first, second = re.findall(r"^(\S.*?)  ->  (\w+)$", out, re.M)
    assert first[0].startswith("say with me") and first[1] == "make" and first[0].split(" . ")[0].endswith("make")
    assert second[0].startswith("repeat with me") and second[1] == "time" and "time" not in second[0]
    assert "its answer is the word it was shown, *make*" in text and "the quote's own last word, *time*" in text
    counted = re.findall(r"first (\S+); the loss counts (\d) of its (\d+) predictions: \[(.*?)\]", out)
    assert all(first == "<eos>" and n == "2" and words.endswith("'<eos>'") for first, n, _, words in counted)
    assert "Each row begins with `<eos>`" in text and "the loss counts 2 of its predictions" in text


def test_section_2_lora_counts():
    out = printed('design = instruct.preset("lesson07")')
    full = int(re.search(r"([\d,]+) parameters, all trained", out).group(1).replace(",", ""))
    found = re.search(r"LoRA rank (\d+) on (\d+) matrices: ([\d,]+) trained \(([\d.]+)%\)", out)
    rank, matrices, lora, share = found.groups()
    assert (int(rank), int(matrices), full) == (8, 12, 350784) and int(lora.replace(",", "")) == 36864
    assert abs(36864 / full - float(share) / 100) < 5e-4
    text = markdown_with("At rank 8 on the 12 matrices")
    assert "36,864 numbers, 10.5% of the 350,784" in text and share == "10.5"
    assert "difference, adapted vs base, before any step: 0.0" in out and "(difference 0.0)" in text
    assert "three blocks" in text and instruct.base_size(instruct.preset("lesson07"))[1].n_layer == 3


def test_section_3_the_first_design(first):
    out, tables, seeds = first
    design = instruct.preset("lesson07")
    intro = markdown_with("## 3. The first design")
    assert (design.steps, design.batch_size, design.pairs) == (300, 16, 400)
    assert "300 steps of 16 pairs drawn from 400" in intro
    assert design.lr == {"full": 1e-3, "lora": 1e-2} and "fully (lr 1e-3) or with LoRA (lr 1e-2)" in intro
    text = markdown_with("Every prediction but the cost failed.")
    full, lora = tables["full"], tables["lora"]
    assert f"moved C from {full['C'][0]:.2f} to {full['C'][1]:.2f} (no seed above 0.5)" in text
    assert seeds["full"].max() <= 0.5
    assert f"fell from {full['A'][0]:.2f} to {full['A'][1]:.2f} ({full['A'][2]:+.2f}, interval [{full['A'][3]:+.2f}, " \
           f"{full['A'][4]:+.2f}])" in text
    b = full["B"]
    assert f"from {b[0]:.2f} to {b[1]:.2f} ({b[2]:+.2f} [{b[3]:+.2f}, {b[4]:+.2f}])" in text
    assert f"(A {lora['A'][1]:.2f}, B {lora['B'][1]:.2f}, C {lora['C'][1]:.2f})" in text
    assert "every base reproduces its lesson 04 record: True" in out
    assert "equal its record in `glib_full.json` exactly" in text


def test_section_4_one_seed(seed0):
    before, plain, eos = seed0["before"], seed0["the first design (lr 1e-3, 400 pairs, 300 steps)"], \
        seed0["the same, each row begun with <eos>"]
    many, replay = seed0["<eos>, 16,000 pairs, 1,000 steps"], seed0["<eos>, 16,000 pairs, 1,000 steps, replay 0.5"]
    text = markdown_with("Three findings, in the order of the rows.")
    assert f"training pairs score {plain['training']:.2f}; begun with `<eos>`, {eos['training']:.2f}" in text
    assert f"(A {eos['A']:.2f} instead of {plain['A']:.2f})" in text and eos["A"] > plain["A"]
    assert f"memorized ({eos['training']:.2f} on them)" in text and f"scores {eos['fresh']:.2f}, a coin" in text
    assert abs(eos["fresh"] - 0.5) < 0.02 and f"it scores {many['fresh']:.2f} on fresh pairs" in text
    assert f"(B {many['B']:.2f})" in text and f"C stays at {many['C']:.2f}" in text
    assert f"B stays at {replay['B']:.2f} and C reaches {replay['C']:.2f}" in text and replay["C"] > many["C"]
    assert before["C"] < 0.05


def test_section_5_the_second_design(second, seed0):
    out, tables, seeds = second
    design = instruct.preset("lesson07b")
    intro = markdown_with("## 5. The second design")
    assert (design.pairs, design.steps, design.batch_size, design.replay) == (16000, 1000, 16, 0.5)
    assert "16,000 pairs, each read about once; 1,000 steps of 16 rows, half of them windows" in intro
    assert design.steps * design.batch_size * (1 - design.replay) / design.pairs == 0.5  # each pair drawn about once
    text = markdown_with("What seed 0 pointed at held")
    full = tables["full"]
    assert f"A went from {full['A'][0]:.2f} to {full['A'][1]:.2f} and B stayed at {full['B'][1]:.2f}" in text
    assert abs(full["A"][1] - full["A"][0]) < 0.1 and abs(full["B"][1] - full["B"][0]) < 0.1  # prediction 2
    c = seeds["full"]
    assert f"seed 0 ({c[0]:.2f}, the recipe as found, reproduced exactly) and seed 3 ({c[3]:.2f})" in text
    assert "seed 0 full equals the recipe as found: True" in out
    assert list(np.flatnonzero(c > 0.5)) == [0, 3] and c[[1, 2, 4]].max() == 0
    assert "stayed at 0.00 in the other three" in text
    assert f"C's change, {full['C'][2]:+.2f}, has the interval [{full['C'][3]:+.2f}, {full['C'][4]:+.2f}]" in text
    assert full["C"][3] <= 0 and "which reaches 0" in text
    lora = seeds["lora"]
    assert list(np.flatnonzero(lora > 0.5)) == [3] and f"in seed 3 only ({lora[3]:.2f})" in text


def test_section_6_the_cost(cost, second):
    longer, designs = cost
    c = second[2]["full"]
    assert c[0] > 0.5 and c[[1, 2, 4]].max() < 0.5
    assert "seeds 1, 2 and 4 did not" in markdown_with("What this leaves open")
    text = markdown_with("The first design's tuning cost")
    (f_flops, f_d96, f_longer), (s_flops, s_d96, s_longer) = designs["first design"], designs["second design"]
    assert f"cost {f_flops:.1e} FLOPs, {f_d96}% of d96's pre-training and {f_longer}% of pre-training d160" in text
    assert f"the second's {s_flops:.1e}, {s_d96}% and {s_longer}%" in text
    assert s_longer < 100 and "tuning is the cheaper road" in text
    assert (longer > 0.5).all() and len(longer) == 5 and "arrived in every one of its 5 seeds" in text


def test_section_7_smollm2_taught_the_rule():
    """§7's numbers, from the committed SmolLM2 run (lessons/results/proverbs_lesson07.json), as its cells print
    them, and the first screen's sentence on it."""
    from minilm.course.paths import RESULTS
    from minilm.data import proverbs as data
    from minilm.studies import proverbs, runner
    results = runner.load_results(RESULTS / "proverbs_lesson07.json", "proverbs")
    out = printed("from minilm.studies import proverbs as proverbs_study")
    assert proverbs.report(results) in out
    arm = {}
    for name, record in results["points"].items():
        s = record["scores"]
        hits, repeat, exact = proverbs.follows(s), np.array(s["repeat"]), np.array(s["exact"])
        arm[name] = {"rule": f"{hits.mean():.2f}", "interval": "[{:.2f}, {:.2f}]".format(*proverbs.interval(hits * 1.0)),
                     "repeat": f"{hits[repeat].mean():.2f}", "fix": f"{hits[~repeat].mean():.2f}",
                     "exact": f"{exact.mean():.2f}", "exact repeat": f"{exact[repeat].mean():.2f}",
                     "exact fix": f"{exact[~repeat].mean():.2f}"}
    base, full, lora = arm["base"], arm["full"], arm["lora"]
    train, held = proverbs.data(proverbs.preset("lesson07"))
    sayings = data.split()
    intro = markdown_with("## 7. A real model taught the same instruction")
    assert (len(sayings[0]), len(sayings[1]), len(held)) == (54, 18, 72) and data.PROVERBS[0] in sayings[1]
    assert len(train[:9 * len(held)]) == 648 == results["points"]["full"]["train_examples"]
    assert "54 sayings are tuned on (648 pairs), 18 are held out (72 prompts, the lecture's quote among them)" in intro
    text = markdown_with("As it comes, SmolLM2 follows the rule")
    assert f"follows the rule on {base['rule']} of the held-out prompts" in text and 0.4 <= float(base["rule"]) <= 0.6
    assert f"altered word on {base['repeat']} of the repeat prompts and the saying's own on {base['fix']}" in text
    assert float(base["repeat"]) - float(base["fix"]) > 0.5  # prediction 1
    assert f"Tuned in full, it follows the rule on {full['rule']} {full['interval']}" in text
    assert f"with LoRA, on {lora['rule']} {lora['interval']}" in text and float(lora["rule"]) >= 0.8  # prediction 3
    assert float(full["rule"]) < 0.9 and float(full["fix"]) < 0.8 and float(full["exact"]) < 0.8  # 2 failed on each
    assert f"fix prompts {full['fix']}, exact match {full['exact']}" in text
    f_lo, f_hi = (float(x) for x in full["interval"][1:-1].split(", "))
    l_lo, l_hi = (float(x) for x in lora["interval"][1:-1].split(", "))
    assert l_lo < f_hi and "The two arms' intervals overlap" in text
    trained = (results["points"]["lora"]["trainable"], results["points"]["full"]["trainable"])
    assert f"LoRA trained {trained[0]:,} numbers, {trained[0] / trained[1]:.1%} of the {trained[1]:,}" in text
    steps = {r["steps"] for n, r in results["points"].items() if n != "base"}
    minutes = [r["seconds"] / 60 for n, r in results["points"].items() if n != "base"]
    assert steps == {150} and all(9.5 < m < 10.5 for m in minutes) and "150 steps took about 10 minutes" in text
    assert full["exact repeat"] == lora["exact repeat"] == "1.00" and "(exact match 1.00 on them, in both arms)" in text
    assert f"beats the altered one on {full['fix']} (full) and {lora['fix']} (LoRA)" in text
    assert f"exact answer on only {full['exact fix']} and {lora['exact fix']}" in text
    assert f"exact {full['exact']} (repeat {full['exact repeat']}, fix {full['exact fix']})" in out
    table = printed("held = proverbs_study.data(")
    rows = [line for line in table.splitlines() if "glisters" in line and line.split()[-7] == "gold"]
    assert len(rows) == 2 and all(line.split()[-6:-4] == ["no", "0.00"] for line in rows)  # the base: not gold
    p_gold = [float(v) for line in rows for v in line.split()[-3::2]]
    assert all(line.split()[-4] == line.split()[-2] == "ok" for line in rows) and max(p_gold) <= 0.03
    assert "rank *gold* above the altered word, and give it a probability of 0.03 at most" in text
    last = results["points"]["full"]["last_loss"]
    assert f"{last:.4f}" == "0.0002" and "drove its training loss to 0.0002" in text
    live = markdown_with("### Your own short run")
    assert "for 8 steps" in live and "settings = FinetuneSettings(lora_rank=8, steps=8," in next(
        c.source for c in CELLS if c.cell_type == "code" and "live = finetune(" in c.source)
    assert "committed 150" in live
    screen = markdown_with("**Measured here.**")
    assert (f"ignored the instruction ({base['rule']} of held-out prompts, a coin)" in screen
            and f"follows it on {full['rule']} (full) and {lora['rule']} (LoRA) of them" in screen
            and f"exactly on only {full['exact fix']} and {lora['exact fix']} of the fix prompts" in screen)
    assert "tuned in this engine on 648 proverb pairs" in screen


def test_the_course_map_row_states_section_7s_numbers():
    from minilm.course.paths import RESULTS
    from minilm.studies import proverbs, runner
    from tests.helpers import course_map_row
    points = runner.load_results(RESULTS / "proverbs_lesson07.json", "proverbs")["points"]
    rule = {a: f"{proverbs.follows(p['scores']).mean():.2f}" for a, p in points.items()}
    fix = {a: "{:.2f}".format(np.array(p["scores"]["exact"])[~np.array(p["scores"]["repeat"])].mean())
           for a, p in points.items()}
    row = course_map_row("07_teaching_the_instruction")
    assert (f"the rule on held-out prompts {rule['base']} → {rule['full']} in full, {rule['lora']} with LoRA; the fix "
            f"answer exact on only {fix['full']} and {fix['lora']} of its prompts") in row


def test_section_7s_question_counts_the_adapters():
    from minilm.model import LlamaConfig, llama_param_shapes
    config = LlamaConfig(vocab_size=49152, block_size=64, n_layer=30, n_head=9, n_kv_head=3, d_model=576, d_ff=1536)
    shapes = llama_param_shapes(config)
    adapted = {n: s for n, s in shapes.items() if any(n.endswith(t) for t in ("attn.w_qkv", "attn.w_proj",
                                                                              "mlp.w_fc", "mlp.w_proj"))}
    per_block = [8 * sum(adapted[f"h.0.{t}"]) for t in ("attn.w_qkv", "attn.w_proj", "mlp.w_fc", "mlp.w_proj")]
    assert [adapted[f"h.0.{t}"] for t in ("attn.w_qkv", "attn.w_proj", "mlp.w_fc", "mlp.w_proj")] == [
        (576, 960), (576, 576), (576, 3072), (1536, 576)]
    assert len(adapted) == 120 and sum(per_block) == 67584 and 30 * sum(per_block) == 2027520
    text = markdown_with("**Question.** LoRA at rank 8 trained")
    assert "8 × (1,536 + 1,152 + 3,648 + 2,112) = 67,584 per block, times 30 blocks = 2,027,520" in text
    assert [v // 8 for v in per_block] == [1536, 1152, 3648, 2112]
