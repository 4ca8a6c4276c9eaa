"""Per-task evaluation: the loss decomposition is exact, and exact match is what greedy decoding gives."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, layers
from minilm.backend import to_numpy
from minilm.data import toyworld as tw
from minilm.errors import MinilmError
from minilm.evaluate import (BUCKETS, evaluate, example_rows, fact_recall, kl_to_statistics, ngram_statistics,
                             per_task_table, token_scores)
from minilm.generate import generate
from minilm.tokenizer import WordTokenizer
from minilm.train import Trainer, TrainConfig

WORLD = tw.ToyworldConfig()


@pytest.fixture(scope="module")
def tokenizer():
    return WordTokenizer(tw.vocabulary(WORLD))


@pytest.fixture(scope="module")
def model(tokenizer):
    """A small model trained briefly: right on some answers, wrong on others."""
    tokens = tw.to_stream(tw.generate(WORLD, 6000, seed=0), tokenizer)[0]
    gpt = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, d_model=32), seed=0)
    Trainer(gpt, tokens, None, TrainConfig(steps=150, batch_size=16, eval_every=0, checkpoint_every=0)).run(progress=False)
    return gpt


@pytest.fixture(scope="module")
def examples():
    return tw.generate(WORLD, 300, seed=0, split="eval")


def test_weighted_task_losses_sum_to_the_directly_computed_loss(model, tokenizer, examples):
    ev = evaluate(model, examples, tokenizer)
    idx, targets, _, _, valid = example_rows(examples, tokenizer)
    direct, _ = layers.softmax_cross_entropy_forward(model.forward(idx), targets, valid)
    assert abs(ev.weighted_sum() - float(direct)) < 1e-6
    assert abs(ev.loss - float(direct)) < 1e-6
    assert abs(sum(ev.shares.values()) - 1) < 1e-12 and set(ev.shares) <= set(BUCKETS)
    assert ev.losses["context"] != pytest.approx(ev.loss)  # the buckets really differ


def test_exact_match_is_what_greedy_decoding_produces(model, tokenizer, examples):
    ev = evaluate(model, examples, tokenizer)
    for task, scores in ev.tasks.items():
        decoded = []
        for ex in (e for e in examples if e.task == task):
            prompt = [tokenizer.eos_id] + tokenizer.encode(" ".join(ex.prompt))
            new = generate(model, prompt, len(ex.answer), temperature=0)
            decoded.append(tokenizer.decode(new).split() == list(ex.answer))
        assert scores.exact_match == pytest.approx(np.mean(decoded)), task
    assert 0 < np.mean([s.exact_match for s in ev.tasks.values()]) < 1  # some right, some wrong


def test_answer_logprob_is_the_log_probability_of_the_whole_answer(model, tokenizer, examples):
    ex = next(e for e in examples if e.task == "arithmetic")  # a three-token answer
    ev = evaluate(model, [ex], tokenizer)
    ids = [tokenizer.eos_id] + tokenizer.encode(ex.text)
    logp = layers.log_softmax(to_numpy(model.forward(np.array([ids[:-1]])))[0].astype(np.float64))  # (T, V)
    expected = sum(logp[i - 1, ids[i]] for i in (p + 1 for p in ex.answer_positions))
    assert ev.tasks["arithmetic"].answer_logprob == pytest.approx(expected, abs=1e-5)
    assert ev.tasks["arithmetic"].loss == pytest.approx(-expected / 3, abs=1e-5)


def test_token_scores_agree_with_the_models_loss(model, tokenizer, examples):
    idx, targets, _, _, valid = example_rows(examples[:40], tokenizer)
    nll, top1 = token_scores(model, idx, targets, batch_size=7)  # batches that do not divide 40
    logits = to_numpy(model.forward(idx))
    assert np.allclose(nll, layers.token_losses(logits, targets), atol=1e-5)
    assert np.array_equal(top1, logits.argmax(-1) == targets)


def test_table_has_a_line_per_task_and_the_decomposition(model, tokenizer, examples):
    table = per_task_table(evaluate(model, examples, tokenizer))
    for task in tw.TASKS:
        assert table.count(f"\n{task} ") == 1 or table.startswith(task)
    assert "overall" in table and "sum of share x loss" in table


def test_examples_longer_than_the_context_are_one_clear_error(tokenizer, examples):
    small = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, d_model=8))
    with pytest.raises(MinilmError, match="block_size"):
        evaluate(small, examples, tokenizer)
    with pytest.raises(MinilmError, match="no examples"):
        evaluate(small, [], tokenizer)


def test_fact_recall_is_greedy_decoding_of_every_fact(model, tokenizer):
    facts = tw.facts(WORLD)
    known = fact_recall(model, tokenizer, facts)
    decoded = [tokenizer.decode(generate(model, tokenizer.encode(f"<eos> the capital of {country} is"), 1,
                                         temperature=0)) == capital for country, capital in facts]
    assert known == decoded and len(known) == WORLD.n_facts


def test_ngram_statistics_by_hand():
    unigram, bigram = ngram_statistics(np.array([0, 1, 1, 2, 1]), 4)
    assert np.allclose(unigram, [0.2, 0.6, 0.2, 0])
    assert np.allclose(bigram[1], [0, 0.5, 0.5, 0]) and np.allclose(bigram[0], [0, 1, 0, 0])
    assert np.allclose(bigram[3], unigram)  # a previous word never seen: the unigram
    assert np.allclose(bigram.sum(axis=1), 1)


class Statistic:
    """A 'model' whose next-word distribution is a fixed bigram table: its KL to that table is 0."""

    def __init__(self, table):
        self.table, self.xp = table, np
        self.config = GPTConfig(vocab_size=len(table), block_size=64, n_layer=1, n_head=1, d_model=8)

    def forward(self, idx):
        return np.log(self.table[idx])


def test_kl_is_zero_for_the_statistic_itself_and_positive_otherwise(model, tokenizer, examples):
    tokens = tw.to_stream(tw.generate(WORLD, 3000, seed=0), tokenizer)[0]
    unigram, bigram = ngram_statistics(tokens, tokenizer.vocab_size)
    smoothed = 0.9 * bigram + 0.1 / tokenizer.vocab_size  # every word possible, so log p is finite
    kl = kl_to_statistics(Statistic(smoothed), examples, tokenizer, {"bigram": smoothed, "unigram": unigram})
    assert abs(kl["bigram"]["all"]) < 1e-9 and kl["unigram"]["all"] > 0.5
    trained = kl_to_statistics(model, examples, tokenizer, {"bigram": bigram})["bigram"]
    assert set(trained) == {"all"} | {b for b in BUCKETS if b in evaluate(model, examples, tokenizer).shares}
    assert all(v >= 0 for v in trained.values())
