"""Lesson 02's sentences that state a number, a comparison or a shape, checked against the committed outputs
and the committed results they sit beside. (The lesson itself runs under nbval in the default suite.)"""
import os
import re

import numpy as np

from minilm.studies import runner
from minilm.studies.archs import runs_of
from tests.helpers import course_map_row, first_screen, sentences
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


def test_the_chat_costs_tokens_as_stated_and_time_less_sharply():
    rows = [l.split() for l in output_of(LESSON, "chat_model = GPT(").splitlines() if re.match(r"\s+\d+\s+\d+ \|", l)]
    turns = np.array([[float(x) for x in row if x != "|"] for row in rows])  # turn, history, tokens x 2, ms x 2
    assert len(turns) == 12 and np.all(turns[:, 2] == 32)  # cached: its own 32 tokens every turn
    assert np.all(np.diff(turns[:, 3]) == 32)  # re-encoded: 32 more every turn
    readme = " ".join(open(os.path.join(ROOT, "docs/course.md"), encoding="utf-8").read().split())
    assert ("per turn the model runs on a constant number of tokens with it, on the whole history without it: in "
            "total, linear vs quadratic in the turns") in readme  # constant vs linear per turn, as the counts above
    token_ratio = turns[:, 3].sum() / turns[:, 2].sum()
    time_ratio = turns[:, 5].sum() / turns[:, 4].sum()
    assert time_ratio < token_ratio  # the times differ far less than the token counts
    text = " ".join(markdown_of(LESSON, "The token counts are the shape").split())
    assert f"took {time_ratio:.1f} times as long as the cached one ({turns[:, 5].sum() / 1e3:.1f} s against " \
           f"{turns[:, 4].sum() / 1e3:.1f} s) for {token_ratio:.1f} times the tokens" in text
    slower = [int(t) for t, c, r in turns[:, [0, 4, 5]] if c > r]  # turns where the cached chat was slower
    assert slower == [0, 1, 3]
    assert "slower one in three of the first four turns (0, 1 and 3), and in none of the eight after" in text
    assert turns[0, 2] == turns[0, 3] == 32 and turns[0, 1] == 0  # turn 0: the same tokens, from an empty cache
    assert f"took {turns[0, 4]:.0f} ms against {turns[0, 5]:.0f}:" in text and 2.5 < turns[0, 4] / turns[0, 5] < 3
    neighbours = turns[[4, 6], 5]
    assert f"turn 5's {turns[5, 5]:.0f} ms, re-encoded" in text  # "about three times its neighbours"
    assert np.all(2.5 < turns[5, 5] / neighbours) and np.all(turns[5, 5] / neighbours < 3.5)


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
    lines = [l.split() for l in output_of(LESSON, "chat_model = GPT(").splitlines() if re.match(r"\s+\d+\s+\d+ \|", l)]
    turns = np.array([[float(x) for x in row if x != "|"] for row in lines])  # turn, history, tokens x 2, ms x 2
    tokens, time = turns[:, 3].sum() / turns[:, 2].sum(), turns[:, 5].sum() / turns[:, 4].sum()
    assert len(turns) == 12 and np.all(turns[:, 2] == 32) and "In a 12-turn chat (§6)" in text
    assert f"runs on its {turns[0, 2]:.0f} new tokens every turn" in text and f"{turns[-1, 3]:.0f} tokens by the last turn" in text
    assert f"{tokens:.1f} times the tokens in all, though at this tiny size only {time:.1f} times the time" in text
    assert (f"(result: with all four structures removed, exactly GPT's logits; without the cache a {len(turns)}-turn "
            f"chat runs on {tokens:.1f} times the tokens)") in course_map_row("02_attention_masks")  # as the README says
    table = output_of(LESSON, "for shape_name, shape in task.SHAPES.items():")
    assert "steps until the mean held-out exact match reaches 0.9" in table
    steps = {line.split()[0]: line.split()[1:] for line in table.splitlines()
             if line.strip().startswith(("encoder-decoder", "prefix-LM", "decoder-only"))}
    assert steps["prefix-LM"] == steps["decoder-only"] == ["150", "150"] and steps["encoder-decoder"] == ["-", "150"]
    assert ("the prefix-LM and the decoder-only model reach exact match 0.9 by step 150 at both shapes of data, the "
            "encoder–decoder only at the chat shape") in text  # the columns: academic, chat


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
