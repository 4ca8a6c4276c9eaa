import numpy as np
import pytest

from minilm import MinilmError, masks


def test_causal_mask_is_lower_triangular():
    assert np.array_equal(masks.causal_mask(4), np.tril(np.ones((4, 4), bool)))


def test_causal_mask_for_new_queries_after_a_cache():
    m = masks.causal_mask(2, 5)  # queries are positions 3 and 4 of 5
    assert np.array_equal(m, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


def test_prefix_lm_mask_is_bidirectional_over_the_prefix_and_causal_after():
    m = masks.prefix_lm_mask(5, 2)
    assert m[0, 1] and m[1, 0]  # the prefix sees itself both ways
    assert not m[1, 2] and not m[2, 3] and m[3, 2]  # the prefix cannot see the target; the target is causal
    assert np.array_equal(masks.prefix_lm_mask(5, 0), masks.causal_mask(5))


def test_bidirectional_mask_sees_everything():
    assert masks.bidirectional_mask(3, 4).all() and masks.bidirectional_mask(3, 4).shape == (3, 4)


def test_bad_mask_arguments():
    with pytest.raises(MinilmError):
        masks.prefix_lm_mask(3, 4)
    with pytest.raises(MinilmError):
        masks.causal_mask(5, 3)


def test_windowed_mask_is_a_band_of_the_last_w_positions():
    m = masks.windowed_mask(5, 2)
    assert np.array_equal(m, np.tril(np.ones((5, 5), bool)) & ~np.tril(np.ones((5, 5), bool), k=-2))
    assert np.array_equal(masks.windowed_mask(4, 4), masks.causal_mask(4))  # a window as long as the sequence
    assert np.array_equal(masks.windowed_mask(2, 3, 5), [[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]])  # after a cache
    with pytest.raises(MinilmError):
        masks.windowed_mask(4, 0)
