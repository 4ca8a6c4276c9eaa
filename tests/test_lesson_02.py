"""Lesson 02's sentences that state a number, a comparison or a shape, checked against the committed outputs
and the committed results they sit beside. (The lesson itself runs under nbval in the default suite.)"""
import os
import re

import nbformat
import numpy as np

from minilm.course import guess
from minilm.studies import runner
from minilm.studies.archs import runs_of
from tests.helpers import course_map_row, first_screen, sentences, within_seed_band
from tests.test_lesson_01 import markdown_of, output_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "02_attention_masks.ipynb")


def numbers(line):
    return [float(x) for x in re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", line)]


def test_projected_queries_and_keys_no_longer_attend_to_themselves():
    line = next(l for l in output_of(LESSON, "T = len(ids)").splitlines() if l.startswith("mean weight a word gives itself"))
    unprojected, projected, even = numbers(line)
    assert "most of its weight to itself" in markdown_of(LESSON, "Why the projections?")
    assert unprojected > 0.5 and projected < unprojected and abs(projected - even) < 0.1


def test_the_mlp_moves_only_the_position_that_changed():
    out = output_of(LESSON, "mlp = {")
    header, moved = out.splitlines()[:2]
    words, moved = header.split(), numbers(moved)
    assert [w for w, m in zip(words, moved) if m > 0] == ["good"]
    assert "(7, 8) in, (7, 8) out" in out


def test_the_transplant_and_the_trained_columns_say_what_the_paragraph_says():
    results = runner.load_results(os.path.join(ROOT, "lessons", "results", "archs_default.json"), "archs")
    text = markdown_of(LESSON, "How to read it.")
    assert "loss from 0\nto about 8" in text
    for shape in results["config"]["shapes"]:
        transplanted = {row["variant"]: row for row in runs_of(results, shape, "decoder-only")[0]["transplanted"]}
        assert transplanted["encoder-decoder"]["loss"] > 7.5 and transplanted["prefix-LM"]["loss"] < 0.01
        assert transplanted["+ shared parameters"]["loss"] == transplanted["+ shared attention"]["loss"]  # step 2
        exact = {v: np.mean([r["final"]["exact_match"] for r in runs_of(results, shape, v)])
                 for v in ("+ shared parameters", "prefix-LM")}
        assert exact["+ shared parameters"] < 0.1 and exact["prefix-LM"] > 0.9  # does not learn / does


def chat_table():
    """The chat's table, a row per turn: turn, history, tokens cached, tokens re-encoded, so far cached, so far
    re-encoded."""
    out = output_of(LESSON, "chat_model = GPT(")
    return np.array([[int(x) for x in row if x != "|"] for row in (l.split() for l in out.splitlines())
                     if len(row) == 8 and row[0].isdigit()])


def test_the_chat_costs_tokens_as_stated():
    turns = chat_table()
    assert len(turns) == 12 and np.all(turns[:, 2] == 32)  # cached: its own 32 tokens every turn
    assert np.all(np.diff(turns[:, 3]) == 32) and np.all(turns[:, 3] == turns[:, 1] + 32)  # the whole history
    assert np.all(turns[:, 4:] == np.cumsum(turns[:, 2:4], axis=0))  # the running totals
    readme = " ".join(open(os.path.join(ROOT, "docs/course.md"), encoding="utf-8").read().split())
    assert ("per turn the model runs on a constant number of tokens with it, on the whole history without it: in "
            "total, linear vs quadratic in the turns") in readme  # constant vs linear per turn, as the counts above
    text = " ".join(markdown_of(LESSON, "The token counts are the same on any machine").split())
    assert turns[0, 2] == turns[0, 3] and np.all(turns[1:, 2] < turns[1:, 3])  # "from the second turn on ... fewer"
    assert "From the second turn on, the cached chat runs on fewer tokens in every turn." in text
    assert not re.search(r"\bms\b", output_of(LESSON, "chat_model = GPT("))  # no timings: counts hold everywhere


def test_the_chat_guess_is_compared_with_the_token_ratio():
    out = output_of(LESSON, "chat_model = GPT(")
    re_encoded, cached, ratio = re.search(r"over 12 turns: ([\d,]+) tokens re-encoded against ([\d,]+) cached, "
                                          r"(\d+\.\d) times as many", out).groups()
    turns = chat_table()
    assert (int(re_encoded.replace(",", "")), int(cached.replace(",", ""))) == (turns[-1, 5], turns[-1, 4])
    assert float(ratio) == round(turns[-1, 5] / turns[-1, 4], 1)
    assert "no guess yet for the re-encoding chat's tokens" in out  # committed with the placeholder
    source = next(c.source for c in nbformat.read(LESSON, as_version=4).cells if c.source.startswith("chat_model = GPT("))
    assert source.count("user_len=16, reply_len=16") == 2 and turns[0, 2] == 32  # "a 16-token message and a 16-token reply"
    assert "(Each turn adds 32 tokens: a 16-token message and a 16-token reply.)" in markdown_of(LESSON, "**Guess first.**")
    measured = turns[-1, 5] / turns[-1, 4]
    assert guess.compare_number(None, measured, "the ratio").startswith("no guess yet")
    assert "you guessed 12x, measured 6.5x" in guess.compare_number(12, measured, "the ratio", "x")


def test_the_live_run_lands_in_the_committed_seeds_band():
    """§5's live run (nbval runs the cell; here its committed output): the prefix-LM and the decoder-only model trained
    with a new seed for 200 steps, exact at step 200 like every committed seed; the seeds differ widely at step 100."""
    results = runner.load_results(os.path.join(ROOT, "lessons", "results", "archs_default.json"), "archs")
    source = next(c.source for c in nbformat.read(LESSON, as_version=4).cells if "live" in c.metadata.get("tags", []))
    seed, until = (int(re.search(rf"{name} = (\d+)", source).group(1)) for name in ("live_seed", "until"))
    assert seed not in results["config"]["seeds"] and until == 200 and results["config"]["run"]["train"]["steps"] == 400
    out = output_of(LESSON, "live_seed = ")
    text = " ".join(markdown_of(LESSON, "### Run it yourself: two mask structures").split())
    for variant in ("prefix-LM", "decoder-only"):
        committed = {h["step"]: [] for h in runs_of(results, "academic", variant)[0]["history"]}
        for record in runs_of(results, "academic", variant):
            for h in record["history"]:
                committed[h["step"]].append(h["exact_match"])
        assert committed[until] == [1.0, 1.0, 1.0]  # "every committed seed of both is exact on every held-out example"
        assert min(committed[100]) <= 0.1 and max(committed[100]) >= 0.85  # "not yet learned and nearly learned"
        mine = numbers(next(l for l in out.splitlines() if l.startswith(f"{variant}, your seed {seed}")))
        ok, message = within_seed_band(mine[until // 50 - 1], committed[until], floor=0.03)
        assert ok, message
    assert out.count(f"at step {until}: the seeds' band 1.00 ± 0.03; your run is inside it") == 2
    slow = numbers(next(l for l in out.splitlines() if l.startswith(f"decoder-only, your seed {seed}")))[150 // 50 - 1]
    fastest = min(h["exact_match"] for r in runs_of(results, "academic", "decoder-only") for h in r["history"]
                  if h["step"] == 150)
    assert slow < fastest  # "a fourth seed can be slower than all three"
    saved = " ".join(markdown_of(LESSON, "In the run saved with this notebook").split())
    assert f"seed {seed}'s decoder-only model was still at {slow:.2f} at step 150, where every committed seed stood " \
           f"at {fastest:.2f} or more, and was exact by step 200" in saved
    assert "By step 200 every committed seed of both is exact on every held-out example" in text


def test_the_attention_shape_question():
    out = output_of(LESSON, "T = len(ids)")
    causal = out.split("attention weights, causal:")[1].split("engine")[0].strip().splitlines()
    rows = [row.strip("[] ").split() for row in causal]
    assert len(rows) == 7 and all(len(row) == 7 for row in rows)  # (T, T) = (7, 7)
    first = rows[0]
    assert len(first) == 7 and float(first[0]) == 1.0 and all(float(x) == 0.0 for x in first[1:])
    assert "(7, 8) in, (7, 8) out" in output_of(LESSON, "mlp = {")
    answer = " ".join(markdown_of(LESSON, "**Question.** The sentence has 7 tokens").split())
    assert "the scores are (7, 7)" in answer and "attention's output is (7, 8)" in answer
    assert "the first row of the causal weights is 1 followed by zeros" in answer


def test_the_causal_question_moves_every_position_after_the_change():
    """§3's question: a change at the first word moves all seven positions under the causal mask (checked on a model
    like the lesson's), and the printed row is zero exactly before the change."""
    from minilm import GPT, GPTConfig, masks

    out = output_of(LESSON, "model = GPT(GPTConfig(vocab_size=tok.vocab_size")
    words, causal = out.splitlines()[0].split(), numbers(out.splitlines()[1])
    where = words.index("ist")
    assert all(m == 0 for m in causal[:where]) and all(m > 0 for m in causal[where:])
    model = GPT(GPTConfig(vocab_size=10, block_size=16, n_layer=2, n_head=2, d_model=16, dtype="float64"), seed=0)
    seq = np.array([[3, 4, 5, 6, 7, 8, 9]])
    changed = seq.copy()
    changed[0, 0] = 5
    moved = np.abs(model.forward(changed, mask=masks.causal_mask(7)) - model.forward(seq, mask=masks.causal_mask(7)))
    assert np.all(moved.max(axis=-1) > 0)
    answer = " ".join(markdown_of(LESSON, "**Question.** The change above was at the sixth word").split())
    assert where == 5 and "All seven." in answer and "zero before *ist* and non-zero from *ist* on" in answer


def test_the_parameter_question():
    rows = {line[:22].strip(): line.split() for line in output_of(LESSON, "V, S, Tt = 12, 6, 4").splitlines()[1:]}
    params = {name: int(row[-2].replace(",", "")) for name, row in rows.items()}
    answer = " ".join(markdown_of(LESSON, "**Question.** In the table above, step 2").split())
    before, after = params["+ shared attention"], params["+ shared parameters"]
    assert f"falls from {before:,} to {after:,}, about half" in answer and abs(after / before - 0.5) < 0.02
    assert params["prefix-LM"] == params["decoder-only"] == after and f"both leave {after:,}" in answer


def test_the_bidirectional_input_gives_an_early_lead_only():
    results = runner.load_results(os.path.join(ROOT, "lessons", "results", "archs_default.json"), "archs")
    text = " ".join(markdown_of(LESSON, "Each line is the held-out loss during training").split())
    loss = {v: np.array([[h["loss"] for h in r["history"]] for r in runs_of(results, "academic", v)])
            for v in ("prefix-LM", "decoder-only")}  # (seeds, evaluations)
    steps = [h["step"] for h in runs_of(results, "academic", "prefix-LM")[0]["history"]]
    gap = loss["prefix-LM"].mean(axis=0) - loss["decoder-only"].mean(axis=0)
    at = {s: i for i, s in enumerate(steps)}
    assert np.all(gap[at[100]:] < 0) and gap[at[50]] > 0  # below from step 100 on (not before)
    assert int(np.argmin(gap)) == at[150]  # by most at step 150
    prefix, decoder = (loss[v].mean(axis=0)[at[150]] for v in ("prefix-LM", "decoder-only"))
    assert f"by most at step 150 ({prefix:.2f} against {decoder:.2f}, nearly all of that gap from one seed)" in text
    per_seed = (loss["prefix-LM"] - loss["decoder-only"])[:, at[150]]
    assert per_seed.min() / per_seed.sum() > 0.9  # one seed holds nearly all of the gap
    assert np.all(np.abs(gap[at[200]:]) < 0.02) and "from step 200 on their losses are within 0.02" in text
    table = output_of(LESSON, "for shape_name, shape in task.SHAPES.items():")
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()
            if line.strip().startswith(("prefix-LM", "decoder-only"))}
    assert rows["prefix-LM"][0] == rows["decoder-only"][0] == "150"  # academic: steps until exact match 0.9
    assert "exact match 0.9 at the same evaluation, step 150" in text


def test_the_encoder_only_classifier_learns_first_and_cannot_generate():
    out = output_of(LESSON, "reviews = toyworld.ToyworldConfig")
    pattern = r"^(.*): (\S+) at the first evaluation; first right on every held-out review at step (\S+)$"
    runs = {name: (float(first), step) for name, first, step in re.findall(pattern, out, re.M)}
    (early_enc, done_enc), (early_dec, done_dec) = runs["encoder-only classifier"], runs["decoder-only, next word"]
    assert early_enc > 0.5 and early_dec <= 0.1 and "-" not in (done_enc, done_dec)  # "far ahead early"; both learn
    assert "the classifier is far ahead early" in markdown_of(LESSON, "Both models learn the task")
    shapes = output_of(LESSON, "one = test_idx[:1]")
    assert "encoder-only: (1, 2)" in shapes and re.search(r"decoder-only: \(1, \d+, \d{3}\)", shapes)


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_outputs():
    """The opening's claim, and its verdict number by number against the outputs of sections 4, 5 and 6."""
    screen = first_screen(LESSON)
    claim, text = screen["claim"], screen["measured"]
    assert sentences(claim) <= 2 and "four structures" in claim and "KV cache" in claim
    rows = [line.split() for line in output_of(LESSON, "V, S, Tt = 12, 6, 4").splitlines()[1:]]
    assert [int(row[-3]) for row in rows] == [0, 1, 2, 3, 4]  # four switches, one at a time
    assert rows[-1][:2] == ["decoder-only", "4"] and float(rows[-1][-1]) == 0.0
    assert f"exactly the decoder-only GPT's logits (largest difference {rows[-1][-1]}, §4)" in text
    turns = chat_table()
    tokens = turns[:, 3].sum() / turns[:, 2].sum()
    assert len(turns) == 12 and np.all(turns[:, 2] == 32) and "In a 12-turn chat (§6)" in text
    assert f"runs on each turn's {turns[0, 2]} new tokens and the re-encoding one on the whole history" in text
    assert f"{tokens:.1f} times the tokens in all" in text
    assert (f"(result: with all four structures removed, exactly GPT's logits; without the cache a {len(turns)}-turn "
            f"chat runs on {tokens:.1f} times the tokens)") in course_map_row("02_attention_masks")  # as the map says
    table = output_of(LESSON, "for shape_name, shape in task.SHAPES.items():")
    assert "steps until the mean held-out exact match reaches 0.9" in table
    steps = {line.split()[0]: line.split()[1:] for line in table.splitlines()
             if line.strip().startswith(("encoder-decoder", "prefix-LM", "decoder-only"))}
    assert steps["prefix-LM"] == steps["decoder-only"] == ["150", "150"] and steps["encoder-decoder"] == ["-", "150"]
    results = runner.load_results(os.path.join(ROOT, "lessons", "results", "archs_default.json"), "archs")
    shapes = results["config"]["shapes"]
    assert shapes["chat"]["n_input"] == shapes["chat"]["n_target"] != shapes["academic"]["n_target"]
    final = {shape: [r["final"]["exact_match"] for r in runs_of(results, shape, "encoder-decoder")] for shape in shapes}
    assert min(final["chat"]) == 1.0 and min(final["academic"]) < 0.5 < max(final["academic"])  # "reliably only"
    assert ("the prefix-LM and the decoder-only model learn it at both shapes of data, the encoder–decoder reliably "
            "only when input and target are equally long") in text  # the columns: academic, chat


def test_the_cache_question_and_its_worked_answer():
    """§6's question: the token totals of the two chats, summed from the printed table, and the (n + 1) / 2 ratio."""
    table = output_of(LESSON, "chat_model = GPT(")
    rows = [tuple(int(x) for x in m) for m in re.findall(r"^\s*(\d+)\s+(\d+) \|\s+(\d+)\s+(\d+) \|", table, re.M)]
    cached, reencoded = sum(r[2] for r in rows), sum(r[3] for r in rows)
    n, per_turn = len(rows), rows[0][2]
    assert (n, per_turn) == (12, 32) and all(r[2] == per_turn for r in rows)
    assert (cached, reencoded) == (n * per_turn, per_turn * n * (n + 1) // 2)
    answer = " ".join(markdown_of(LESSON, "**Question.** Add up the token columns").split())
    assert f"12 × 32 = {cached}" in answer and f"32 × 78 = {reencoded:,}" in answer
    assert f"which is {reencoded / cached:.1f} times as many" in answer
    assert f"{(100 + 1) / 2:.1f} times after 100 turns" in answer
