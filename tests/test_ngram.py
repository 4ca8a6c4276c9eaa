"""The Kneser-Ney n-gram model: counts, smoothing by hand, distributions that sum to 1, unseen contexts, FLOPs."""
import numpy as np
import pytest

from minilm import MinilmError
from minilm.ngram import NGram, sort_cost

STREAM = [0, 1, 2, 0, 1, 3]  # V = 4: the bigrams 0 1, 1 2, 2 0, 0 1, 1 3


def table(t):
    return dict(zip(t.keys.tolist(), t.counts.tolist()))


def test_counts_raw_and_continuation():
    model = NGram(order=2, vocab_size=4).fit(STREAM)
    assert table(model.raw[1]) == {0: 2, 1: 2, 2: 1, 3: 1}
    assert table(model.raw[2]) == {0 * 4 + 1: 2, 1 * 4 + 2: 1, 2 * 4 + 0: 1, 1 * 4 + 3: 1}  # key = w1 * V + w2
    assert table(model.continuation[1]) == {0: 1, 1: 1, 2: 1, 3: 1}  # how many different words came before each
    assert model.raw[2].discount == pytest.approx(3 / (3 + 2 * 1))  # n1 = 3 bigrams seen once, n2 = 1 twice


def test_smoothing_by_hand():
    """p(1 | 0) = max(c(0 1) - D, 0) / c(0) + D t(0) / c(0) * p_1(1), with p_1 the continuation unigram."""
    model = NGram(order=2, vocab_size=5).fit(STREAM)  # word 4 is never seen
    D2 = 3 / 5
    D1 = 1.0  # every word has continuation count 1: n1 = 4, n2 = 0
    p1 = np.array([max(1 - D1, 0) / 4 + D1 * 4 / 4 / 5] * 4 + [D1 * 4 / 4 / 5])  # uniform here: all counts equal
    expected = (2 - D2) / 2 + D2 * 1 / 2 * p1[1]
    probs = np.exp(model.forward(np.array([[0]])))[0, 0]
    assert probs[1] == pytest.approx(expected)
    assert probs[4] == pytest.approx(D2 * 1 / 2 * p1[4])  # an unseen word gets the backed-off share only


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_sums_to_one_over_the_vocabulary(order):
    rng = np.random.default_rng(order)
    V = 7
    model = NGram(order, V).fit(rng.integers(0, V - 1, 400))  # word V-1 never occurs in training
    idx = rng.integers(0, V, (6, 9))  # seen and unseen contexts, the unseen word among them
    probs = np.exp(model.forward(idx))  # (6, 9, V)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(probs > 0)


def test_held_out_loss_is_finite_for_unseen_contexts():
    model = NGram(order=4, vocab_size=10).fit([1, 2, 3, 4] * 50)
    unseen = np.array([[9, 8, 7, 6, 5, 0]])  # no word, no context of these occurred in training
    logp = model.forward(unseen)
    assert np.all(np.isfinite(logp))
    assert np.all(np.isfinite(-np.take_along_axis(logp[:, :-1], unseen[:, 1:, None], axis=-1)))


def test_it_learns_a_deterministic_sequence():
    model = NGram(order=3, vocab_size=6).fit([0, 1, 2, 3, 4, 5] * 100)
    probs = np.exp(model.forward(np.array([[2, 3]])))[0, -1]
    assert probs.argmax() == 4 and probs[4] > 0.95


def test_flops_of_a_tiny_case_by_hand():
    """Counting m keys costs m ceil(log2 m) + m (np.unique's sort and one pass); packing a token 2 (a
    multiply and an add); a CountTable of u distinct keys sort_cost(u) + 5 u (its histories counted,
    then h = key // V, c(h), t(h), n1, n2)."""
    assert sort_cost(6) == 6 * 3 + 6 and sort_cost(1) == 1
    unigram = 2 * 6 + sort_cost(6) + (sort_cost(4) + 5 * 4)        # 6 tokens, 4 distinct words
    assert NGram(1, 4).fit(STREAM).flops == unigram == 68
    bigram = 2 * 5 + sort_cost(5) + (sort_cost(4) + 5 * 4)         # 5 bigrams, 4 distinct
    continuation = 4 + sort_cost(4) + (sort_cost(4) + 5 * 4)       # w2 of the 4 distinct bigrams, 4 distinct
    assert NGram(2, 4).fit(STREAM).flops == unigram + bigram + continuation == 178


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(MinilmError):
        NGram(0, 5)
    with pytest.raises(MinilmError):
        NGram(8, 1000)  # 1000^8 keys do not fit 64 bits
    with pytest.raises(MinilmError):
        NGram(3, 5).fit([1, 2])
