"""Lesson 08's toy study (minilm/studies/preference.py): the rule that scores true quality, the exact answer
measurements, the ci preset end to end, and the committed run re-trained."""
import json

import numpy as np
import pytest

from minilm.studies import preference, runner
from minilm.studies.preference import Prompt, is_right


def test_the_rule_on_hand_made_answers():
    prompt = Prompt("fruit", ("papaya", "mango"))
    assert prompt.text == "name another fruit : papaya , mango ->"
    assert is_right(prompt, "kiwi") and is_right(prompt, "pear")
    assert not is_right(prompt, "mango")  # already listed
    assert not is_right(prompt, "carrot")  # another category
    assert not is_right(prompt, "fruit") and not is_right(prompt, "<eos>")
    assert prompt.right == ("durian", "banana", "apple", "kiwi", "lychee", "guava", "pear")
    assert prompt.demonstrated == "durian"  # the first right word in the category's fixed order
    assert "dragon fruit" not in preference.CATEGORIES["fruit"]  # every answer is one word
    assert all(is_right(Prompt("tool", ("saw", "rake", "drill")), w) == (w in ("hammer", "wrench", "chisel", "shovel",
                                                                              "screwdriver"))
               for words in preference.CATEGORIES.values() for w in words)


def test_held_out_combinations_are_the_set_not_its_order():
    a, b = Prompt("animal", ("zebra", "lion", "otter")), Prompt("animal", ("otter", "zebra", "lion"))
    assert preference.held_out(a) == preference.held_out(b)
    rng = np.random.default_rng(0)
    train, held = preference.draw_prompts(rng, 400), preference.draw_prompts(rng, 100, "eval")
    assert not any(preference.held_out(p) for p in train) and all(preference.held_out(p) for p in held)
    assert {len(p.listed) for p in train} == {2, 3, 4}
    combos = {(p.category, frozenset(p.listed)) for p in train}
    assert not any((p.category, frozenset(p.listed)) in combos for p in held)


def test_demonstrations_are_right_with_probability_q_and_wrong_otherwise():
    rng = np.random.default_rng(1)
    prompts = preference.draw_prompts(rng, 2000)
    shown = [preference.demonstration(p, rng, 0.6) for p in prompts]
    right = np.array([is_right(p, w) for p, w in zip(prompts, shown)])
    assert abs(right.mean() - 0.6) < 0.04
    assert all(w == p.demonstrated for p, w, r in zip(prompts, shown, right) if r)
    listed = np.array([w in p.listed for p, w in zip(prompts, shown)])
    assert abs(listed[~right].mean() - 0.5) < 0.06  # wrong: half a listed word, half another category's


class FixedAnswers:
    """A stand-in model whose next-token logits are the same at every position: log of the given probabilities."""

    def __init__(self, probs):
        self.logits = np.log(np.asarray(probs, dtype=np.float64) + 1e-300)

    def forward(self, idx):
        return np.broadcast_to(self.logits, (*idx.shape, self.logits.size)).copy()


def test_answer_metrics_are_the_exact_masses_the_rule_counts():
    world = preference.World(preference.preset("ci"))
    tok = world.tokenizer
    probs = np.zeros(tok.vocab_size)
    probs[tok.encode("durian kiwi mango carrot")] = [0.5, 0.2, 0.2, 0.1]
    prompt = Prompt("fruit", ("papaya", "mango"))
    measured = preference.answer_metrics(FixedAnswers(probs), [prompt], tok)
    assert np.allclose(measured["right"], [0.7]) and np.allclose(measured["demonstrated"], [0.5])
    assert np.allclose(measured["other_right"], [0.2])
    drawn = preference.sample(np.tile(probs, (4, 1)), np.random.default_rng(0), 5000)  # (4, 5000)
    assert drawn.shape == (4, 5000)
    right = np.isin(drawn, tok.encode("durian kiwi"))
    assert abs(right.mean() - 0.7) < 0.02 and not np.isin(drawn, tok.encode("pear")).any()


def test_the_ci_preset_trains_every_arm_reports_and_resumes(tmp_path):
    from minilm.__main__ import main

    out = tmp_path / "preference_ci.json"
    assert main(["preference", "--preset", "ci", "--out", str(out), "--quiet"]) == 0
    results = runner.load_results(out, "preference")
    config = preference.preset("ci")
    record = results["points"]["seed0"]
    for arm in ("base", "sft", "dpo", "pg", "pg_no_kl"):
        assert len(record[arm]["right"]) == config.n_eval
        assert all(0 <= r <= 1 for r in record[arm]["right"])
        assert np.allclose(np.add(record[arm]["demonstrated"], record[arm]["other_right"]), record[arm]["right"])
    assert sorted(record["best_of"], key=int) == [str(n) for n in config.best_of]
    assert record["pg_log"]["step"] == list(range(0, config.pg_steps + 1, config.log_every))
    assert record["pg_log"]["kl"][0] == pytest.approx(0, abs=1e-9)  # the policy starts as sft exactly
    assert 0 <= record["rm_accuracy"] <= 1 and record["sft_kept_step"] % config.eval_every == 0
    assert record["dpo"] != record["sft"] and record["pg"] != record["sft"]
    text = preference.report(results)
    verdicts = [line.rsplit(": ", 1)[1] for line in text.splitlines() if line.startswith("prediction ")]
    assert len(verdicts) == 5 and set(verdicts) <= {"held", "FAILED"}
    before = json.loads(out.read_text())
    assert main(["preference", "--preset", "ci", "--out", str(out), "--quiet"]) == 0  # nothing left to train
    assert json.loads(out.read_text())["points"] == before["points"]


def test_the_lesson_preset_is_the_design_with_its_changes():
    design = preference.preset("lesson08")
    assert design.seeds == [0, 1, 2] and design.q == 0.6 and design.pairs == 2000 and design.beta == 0.1
    assert (design.sft_steps, design.rm_steps, design.dpo_steps, design.pg_steps) == (600, 600, 300, 400)
    assert (design.group, design.kl_coef, design.log_every, design.lora_rank) == (8, 0.05, 25, 8)
    assert design.best_of == [1, 2, 4, 8, 16] and design.size == [3, 64, 4]


def test_tuning_an_arm_leaves_the_model_it_starts_from_as_it_was():
    """A LoRA points its base at the merged weights: each arm adapts a copy, so the base stays the base (it is
    measured, and the reward model starts from it) and sft stays the frozen reference of DPO and policy gradient."""
    config = preference.preset("ci")
    world = preference.World(config)
    base = preference.pretrain(config, world, 0)
    x = np.array([[world.tokenizer.eos_id] + world.tokenizer.encode(world.eval_prompts[0].text)])
    before = {name: w.copy() for name, w in base.params.items()}, base.forward(x)
    sft, _ = preference.supervised(config, world, base, 0)
    assert all(np.array_equal(base.params[name], w) for name, w in before[0].items())
    assert np.array_equal(base.forward(x), before[1]) and not np.array_equal(sft.forward(x), before[1])
    pairs = preference.sampled_pairs(sft, world.eval_prompts, world.tokenizer, np.random.default_rng(0), 20)
    reference = sft.forward(x)
    dpo = preference.direct_preference(config, world, sft, pairs, 0)
    assert np.array_equal(sft.forward(x), reference) and not np.array_equal(dpo.forward(x), reference)


@pytest.fixture(scope="module")
def committed():
    from minilm.checkpoint import load_model
    from minilm.course.paths import RESULTS

    results = runner.load_results(RESULTS / "preference_lesson08.json", "preference")
    return results, load_model(RESULTS / "preference_base_seed0.npz")[0]


def within_band_or_equal(value, record, seeds, floor=0.03):
    """Equal to the record where the CPU and BLAS are the study's; else inside the seeds' band."""
    from minilm.studies.stats import seed_band

    center, half = seed_band(seeds, floor)
    return value == pytest.approx(record, abs=1e-9) or abs(value - center) <= half


def test_the_committed_base_is_seed_0s_and_sft_re_trained_from_it_lands_on_its_record(committed):
    """The live run's base (docs/lab/lesson08_base.py) answers as seed 0's base did in the study, and sft re-trained
    from it (the short point the lesson's live cell runs) lands on seed 0's record, or within the seeds' band."""
    from minilm.course import lesson08
    from minilm.parallel import one_blas_thread

    results, base = committed
    config = preference.preset("lesson08")
    assert results["config"] == json.loads(json.dumps(preference.STUDY.config("lesson08")))
    world = preference.World(config)
    with one_blas_thread():
        own = preference.answer_metrics(base, world.eval_prompts, world.tokenizer)
        sft, kept = lesson08.live_sft(base, seed=0)
    record = results["points"]["seed0"]
    for arm, measured in (("base", own), ("sft", sft)):
        for metric in ("right", "demonstrated"):
            seeds = lesson08.quality(results, arm, metric)
            assert within_band_or_equal(float(np.mean(measured[metric])), seeds[0], seeds), (arm, metric)
    assert kept % config.eval_every == 0 and 0 < kept <= config.sft_steps
