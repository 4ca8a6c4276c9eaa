"""toyworld: determinism, tags, answer positions, and held-out disjointness."""
import numpy as np
import pytest

from minilm.data import toyworld as tw
from minilm.errors import MinilmError
from minilm.tokenizer import WordTokenizer

CONFIG = tw.ToyworldConfig()


@pytest.fixture(scope="module")
def train():
    return tw.generate(CONFIG, 4000, seed=0)


@pytest.fixture(scope="module")
def held_out():
    return tw.generate(CONFIG, 4000, seed=0, split="eval")


def test_same_seed_same_corpus_other_seed_other_corpus():
    assert tw.generate(CONFIG, 300, seed=3) == tw.generate(CONFIG, 300, seed=3)
    assert tw.generate(CONFIG, 300, seed=3) != tw.generate(CONFIG, 300, seed=4)


def test_every_task_appears_and_tags_match_the_sentence(train):
    assert {ex.task for ex in train} == set(tw.TASKS)
    looks_like = {
        "grammar": lambda t: any(t.startswith(opening) for opening, *_ in tw.GRAMMAR_TEMPLATES),
        "lists": lambda t: "they are all kinds of" in t, "sentiment": lambda t: "the movie was" in t,
        "facts_head": lambda t: t.startswith("the capital of"), "facts_tail": lambda t: t.startswith("the capital of"),
        "translation": lambda t: t.startswith("the word for"), "spatial": lambda t: " left the " in t,
        "arithmetic": lambda t: " + " in t}
    for ex in train:
        assert looks_like[ex.task](ex.text), (ex.task, ex.text)


def test_answer_positions_point_at_the_answer(train):
    fact = dict(tw.facts(CONFIG))
    for ex in train:
        answer, prompt = ex.answer, ex.prompt
        assert ex.answer_positions == tuple(range(ex.answer_positions[0], ex.answer_positions[-1] + 1))
        if ex.task == "arithmetic":
            plus, eq = prompt.index("+"), prompt.index("=")
            a, b = int("".join(prompt[:plus])), int("".join(prompt[plus + 1:eq]))
            assert int("".join(answer)) == a + b
        elif ex.task.startswith("facts"):
            assert answer == (fact[prompt[3]],)
        elif ex.task == "translation":
            english, language = prompt[3], prompt[5]
            assert answer == (tw.TRANSLATIONS[english][tw.LANGUAGES.index(language)],)
        elif ex.task == "spatial":
            person = prompt[-3]
            last_move = max(i for i, w in enumerate(prompt[:-3]) if w == person)
            assert answer == (prompt[last_move + 4],)  # "<person> went to the <room>"
        elif ex.task == "lists":
            items = " ".join(prompt).split(" they are")[0]
            assert any(item in items for item in tw.LIST_CATEGORIES[answer[0]])
        elif ex.task == "sentiment":
            assert any(p in " ".join(prompt) for p in tw.SENTIMENT_PHRASES[answer[0]])
        elif ex.task == "grammar":
            subject = next(s for s in tw.GRAMMAR_SUBJECTS if " ".join(prompt).endswith(" " + s))
            assert answer[0].endswith("s") == tw.GRAMMAR_SUBJECTS[subject]


def test_facts_follow_zipf_head_and_tail(train):
    counts = {}
    for ex in train:
        if ex.task.startswith("facts"):
            counts[ex.prompt[3]] = counts.get(ex.prompt[3], 0) + 1
    countries = [c for c, _ in tw.facts(CONFIG)]
    assert counts[countries[0]] > 5 * counts.get(countries[30], 0)  # rank 1 is seen far more than rank 31
    head = {ex.prompt[3] for ex in train if ex.task == "facts_head"}
    assert head <= set(countries[:CONFIG.n_head_facts])
    assert len(tw.facts(tw.ToyworldConfig(n_facts=300))) == 300  # made-up countries extend the real ones


def test_held_out_prompts_never_appear_in_training(train, held_out):
    generalise = {"lists", "sentiment", "spatial", "arithmetic"}
    seen = {ex.prompt for ex in train if ex.task in generalise}
    held = [ex.prompt for ex in held_out if ex.task in generalise]
    assert len(held) > 1000 and not seen & set(held)
    # recall tasks ask about the same facts in both splits
    assert {ex.prompt for ex in held_out if ex.task == "facts_head"} <= {ex.prompt for ex in train}


def test_stream_labels_line_up_with_tokens(train):
    tok = WordTokenizer(tw.vocabulary(CONFIG))
    tokens, task_ids, is_answer = tw.to_stream(train[:200], tok)
    assert tokens.shape == task_ids.shape == is_answer.shape and tokens.dtype == np.int32
    eos = tok.encode(tw.EOS)[0]
    assert (tokens == eos).sum() == 201 and tokens[0] == eos and tokens[-1] == eos
    answers = tok.decode(tokens[is_answer].tolist()).split()
    assert answers == [w for ex in train[:200] for w in ex.answer]
    starts = np.flatnonzero(tokens == eos)[:-1]  # each example starts right after an <eos>
    assert [tw.TASKS[task_ids[s + 1]] for s in starts] == [ex.task for ex in train[:200]]


def test_every_generated_word_is_in_the_vocabulary(train, held_out):
    vocab = set(tw.vocabulary(CONFIG))
    assert {w for ex in train + held_out for w in ex.words} <= vocab


@pytest.mark.parametrize("bad", [dict(mixture={"poetry": 1.0}), dict(arithmetic_digits=0), dict(n_head_facts=500),
                                 dict(zipf_exponent=-1.0), dict(spatial_moves=1)])
def test_bad_config_is_one_clear_error(bad):
    with pytest.raises(MinilmError):
        tw.ToyworldConfig(**bad)
