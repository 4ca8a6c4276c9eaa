"""Generation with the KV cache computes exactly what recomputing the whole prefix computes."""
import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError
from minilm.generate import generate, next_token
from tests.helpers import roughen


def model32():
    model = GPT(GPTConfig(vocab_size=40, block_size=64, n_layer=2, n_head=4, d_model=32), seed=0)
    return roughen(model, np.random.default_rng(1), 0.2)  # a non-trivial model: logits far from uniform


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_cache_matches_full_recomputation_at_every_step(temperature):
    model = model32()
    cached, full = [], []
    a = generate(model, [3, 1, 4], 50, temperature, seed=5, on_logits=lambda s, l: cached.append(np.array(l)))
    b = generate(model, [3, 1, 4], 50, temperature, seed=5, use_cache=False, on_logits=lambda s, l: full.append(np.array(l)))
    assert a == b and len(a) == 50
    for step, (c, f) in enumerate(zip(cached, full)):
        rel = np.linalg.norm(c - f) / np.linalg.norm(f)
        assert rel <= 1e-5, f"step {step}: relative difference {rel:.2e}"


def test_generation_stops_at_eos_and_at_block_size():
    model = model32()
    first = generate(model, [3], 1, temperature=0)[0]
    assert generate(model, [3], 10, temperature=0, eos_id=first) == [first]
    assert len(generate(model, [3] * 60, 100, temperature=0)) == 4  # 64 - 60


def test_top_k_only_draws_from_the_k_most_likely():
    logits = np.array([5.0, 4.0, 3.0, -1.0, -2.0])
    rng = np.random.default_rng(0)
    draws = {next_token(logits, 1.0, top_k=2, rng=rng) for _ in range(200)}
    assert draws == {0, 1}
    assert next_token(logits, 0.0) == 0


def test_bad_generation_arguments():
    with pytest.raises(MinilmError, match="empty"):
        generate(model32(), [], 5)
    with pytest.raises(MinilmError, match="temperature"):
        generate(model32(), [1], 5, temperature=-1)


def test_sampling_draws_a_fresh_seed_each_call_and_says_which():
    model = model32()
    draws = [generate(model, [3, 1, 4], 30, temperature=1.0) for _ in range(4)]
    assert len({d.seed for d in draws}) == 4 and len({tuple(d) for d in draws}) > 1  # not the same text every call
    assert all(generate(model, [3, 1, 4], 30, temperature=1.0, seed=d.seed) == d for d in draws[:2])  # repeatable
    assert generate(model, [3, 1, 4], 5, temperature=1.0, seed=0).seed == 0


def test_greedy_decoding_draws_no_seed_and_is_always_the_same():
    model = model32()
    greedy = generate(model, [3, 1, 4], 30, temperature=0)
    assert greedy == generate(model, [3, 1, 4], 30, temperature=0) and greedy.seed is None
