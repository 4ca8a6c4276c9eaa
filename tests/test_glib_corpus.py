"""The glib corpus: deterministic, the lecture's prompt among the probes, and every held-out probe
provably absent from the training stream."""
import numpy as np
import pytest

from minilm.data.glib import LECTURE_PROMPT, GlibConfig, GlibCorpus, alter
from minilm.errors import MinilmError
from minilm.studies.glib import PRESETS, fresh_stream_tokens


@pytest.fixture(scope="module")
def corpus():
    return GlibCorpus(GlibConfig())


def occurrences(stream, sequences):
    """How many times each token sequence occurs anywhere in the stream (exact, vectorised)."""
    counts = []
    for seq in sequences:
        seq = np.asarray(seq, dtype=stream.dtype)
        windows = np.lib.stride_tricks.sliding_window_view(stream, len(seq))  # (N - L + 1, L), no copy
        starts = np.flatnonzero(stream[: len(windows)] == seq[0])
        counts.append(int((windows[starts] == seq).all(axis=1).sum()))
    return np.array(counts)


def test_the_stream_and_probes_are_deterministic(corpus):
    again = GlibCorpus(GlibConfig())
    assert np.array_equal(corpus.stream(20_000), again.stream(20_000))
    assert corpus.probes() == again.probes()
    assert not np.array_equal(corpus.stream(20_000), GlibCorpus(GlibConfig(seed=1)).stream(20_000))


def test_the_lecture_prompt_is_a_conflict_probe(corpus):
    lecture = [p for p in corpus.probes() if p.prompt == LECTURE_PROMPT]
    assert len(lecture) == 1 and lecture[0].kind == "D"
    assert (lecture[0].answer, lecture[0].foil) == ("glib", "gold")
    assert lecture[0].quote in corpus.most_exposed(20)


def test_probe_counts(corpus):
    kinds = [p.kind for p in corpus.probes()]
    n_quotes = len(corpus.probe_quotes)
    assert n_quotes >= 100
    assert kinds.count("D") == kinds.count("Dfix") == n_quotes * corpus.config.n_alterations >= 300
    assert kinds.count("B") == n_quotes and kinds.count("A") == corpus.config.n_repeat_probes


def test_held_out_altered_quotes_never_appear_in_the_training_stream():
    """Every altered form a conflict probe shows is absent from the stream the full sweep trains on,
    while the original quotes and training alterations of the same quotes are there (the search works)."""
    preset = PRESETS["full"]
    corpus = GlibCorpus(preset.corpus)
    stream = corpus.stream(preset.stream_tokens)
    tok = corpus.tokenizer
    held_out = [tok.encode(" ".join(alter(corpus.quotes[r], w))) for r, words in corpus.held_out.items() for w in words]
    assert len(held_out) == 300
    assert occurrences(stream, held_out).max() == 0
    originals = [tok.encode(" ".join(corpus.quotes[r])) for r in corpus.most_exposed(20)]
    assert occurrences(stream, originals).min() > 0
    rank = corpus.most_exposed(1)[0]
    seen = [tok.encode(" ".join(alter(corpus.quotes[rank], w))) for w in corpus.training_alterations[rank]]
    assert occurrences(stream, seen).sum() > 0


def test_no_held_out_altered_quote_is_in_the_long_sweeps_streams():
    """The long sweep's knob cells train on streams of their own (a fix=rare corpus; a 'fresh' stream as long
    as the training, read once): none holds a held-out altered quote either."""
    preset = PRESETS["long"]
    for variant, config in preset.variants().items():
        if variant == "main":
            continue  # the full sweep's corpus and stream, checked above
        corpus = GlibCorpus(config)
        fresh = preset.training_knobs(variant).get("fresh", False)
        stream = corpus.stream(fresh_stream_tokens(preset, preset.knob_sizes) if fresh else preset.stream_tokens)
        held_out = [corpus.tokenizer.encode(" ".join(alter(corpus.quotes[r], w))) for r, words in corpus.held_out.items() for w in words]
        assert occurrences(stream, held_out).max() == 0, variant


def test_bad_config_is_one_clear_error():
    with pytest.raises(MinilmError, match="weights"):
        GlibConfig(filler=-1)
    with pytest.raises(MinilmError, match="lecture_rank"):
        GlibConfig(lecture_rank=3)


def test_instruction_pairs_teach_the_pairing_rule_on_quotes_no_probe_uses(corpus):
    """Lesson 07's fine-tuning data: every pair is a non-probe quote (odd exposure rank) with a training
    alteration, half asking to repeat it, half to fix it, each answered as its pairing says; no probe prompt,
    probe quote or held-out altered form occurs in them (so every probe stays held out)."""
    from minilm.data.glib import FIX_PHRASES, REPEAT_PHRASES

    pairs = corpus.instruction_pairs(400)
    assert pairs == corpus.instruction_pairs(400) and pairs != corpus.instruction_pairs(400, seed=1)
    probe_quotes = {" ".join(corpus.quotes[r]) for r in corpus.probe_quotes}
    probe_prompts = {p.prompt for p in corpus.probes()}
    held_out = {" ".join(alter(corpus.quotes[r], w)) for r, words in corpus.held_out.items() for w in words}
    repeats = 0
    for pair in pairs:
        phrase, rest = pair.prompt.split(" , ", 1)
        shown, continued = rest.split(" . ", 1)
        quote = next(q for q in corpus.quotes if " ".join(q[:-1]) == continued)
        assert corpus.quotes.index(quote) % 2 == 1 and " ".join(quote) not in probe_quotes
        assert shown not in held_out and pair.prompt not in probe_prompts
        assert shown.split()[:-1] == list(quote[:-1]) and shown.split()[-1] != quote[-1]
        repeat = phrase in REPEAT_PHRASES
        assert repeat or phrase in FIX_PHRASES
        assert pair.response == (shown.split()[-1] if repeat else quote[-1])
        repeats += repeat
    assert repeats == 200
