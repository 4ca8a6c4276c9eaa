"""The checks of exercise 10: byte-pair encoding, one merge step and encoding by merge rank.

The references are minilm's own (minilm/tokenizer.py: count_pairs, merge, train_bpe_plain, BPETokenizer). The
inputs are fixed and chosen to tell the usual mistakes apart: chunks whose ends would make pairs of their own if
counted across, runs a a a a, a tie whose first-seen pair is the larger one, and merges whose ranks disagree with
where their pairs stand in the chunk. Nothing is random, so a wrong answer fails on every run."""
from collections import Counter

from minilm import tokenizer
from minilm.course.feedback import counts_problem, ids_problem, pair_problem

# A paragraph to train on (ties, runs and digits included), and one the merges never saw
TEXT = ("the model reads the text one token at a time, and the loss is minus the log of the probability it gave "
        "the token that came next. the more text it reads, the better it gets: aaah, 1000 tokens, then 10000 "
        "tokens... scaling the compute by 10x lowers the loss by a step that the law predicts.")
NEW_TEXT = "the tokenizer cuts a text it never read: predicting 2024 losses, aaaah... and then?"
STEPS = 10  # merge steps compared with train_bpe_plain
VOCAB = 300  # the 256 bytes and 44 merges, for encoding NEW_TEXT


def chunks_of(text):
    return [list(chunk.encode("utf-8")) for chunk in tokenizer.pre_tokenize(text)]


def copies(chunks):
    """Fresh lists for the learner's code, so that what it changes in place is never read again here."""
    return [list(ids) for ids in chunks]


def reference_counts(chunks):
    counts = Counter()
    for ids in chunks:
        tokenizer.count_pairs(ids, counts)
    return dict(counts)


def counting_mistakes(chunks):
    """What the usual counting mistakes give for these chunks."""
    joined = [i for ids in chunks for i in ids]
    sliding = dict(Counter(pair for ids in chunks for pair in zip(ids, ids[1:])))
    return [("counts pairs across chunk boundaries: the last id of one chunk and the first of the next are no pair "
             "(merges never cross a chunk's edge), so count inside each chunk", reference_counts([joined])),
            ("counts overlapping pairs twice: in a a a the pair (a, a) can be merged only once (a a a becomes aa a), "
             "so a pair (a, a) that overlaps the one just counted is not counted", sliding),
            ("counts pairs across chunk boundaries and counts overlapping pairs twice: count inside each chunk, and "
             "in a a a count (a, a) once", dict(Counter(zip(joined, joined[1:]))))]


def within_chunks(count_pairs):
    """count_pairs counts the pairs inside each chunk, never across two"""
    chunks = chunks_of("the cat sat on the mat, and the hat fell off")
    problem = counts_problem("count_pairs(chunks of 'the cat sat on the mat, ...')", count_pairs(copies(chunks)),
                             reference_counts(chunks), mistakes=counting_mistakes(chunks))
    assert not problem, problem


def runs_of_one_id(count_pairs):
    """count_pairs counts (a, a) in a run as often as merge replaces it"""
    chunks = [list(b"aaaa"), list(b" zzz"), list(b"!!!!!")]
    problem = counts_problem("count_pairs of the chunks 'aaaa', ' zzz', '!!!!!'", count_pairs(copies(chunks)),
                             reference_counts(chunks), mistakes=counting_mistakes(chunks))
    assert not problem, problem


def merge_mistakes(ids, pair, new_id):
    """What the usual merge mistakes give: keeping the pair's second id, replacing from the right."""
    kept = [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])] + list(ids[-1:])
    from_the_right = tokenizer.merge(ids[::-1], pair[::-1], new_id)[::-1]
    return [("keeps the second id of each pair it replaces: after a match, step past both ids", kept),
            ("replaces from the right: merge goes left to right, so a a a becomes (aa) a", from_the_right)]


def left_to_right(merge):
    """merge replaces the pair left to right, never overlapping"""
    cases = [([1, 2, 3, 1, 2], (1, 2), 300), ([97, 97, 97], (97, 97), 256), ([97, 97, 97, 97, 97], (97, 97), 256),
             ([2, 1, 2], (1, 2), 256), ([7], (7, 7), 256)]
    for ids, pair, new_id in cases:
        problem = ids_problem(f"merge({ids}, {pair}, {new_id})", merge(list(ids), pair, new_id),
                              tokenizer.merge(ids, pair, new_id), mistakes=merge_mistakes(ids, pair, new_id))
        assert not problem, problem


def step_problem(what, result, chunks, new_id):
    """'' if result is the (pair, chunks) of one reference merge step on chunks, else what is wrong."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return f"{what} must return two things, (pair, new_chunks)"
    pair, new_chunks = result
    counts = reference_counts(chunks)
    best = tokenizer.most_frequent(counts)
    problem = pair_problem(f"the pair {what} merges", pair, best, counts)
    if problem or not isinstance(new_chunks, (list, tuple)) or len(new_chunks) != len(chunks):
        return problem or f"{what} must return the {len(chunks)} chunks, each after the merge"
    for ids, got in zip(chunks, new_chunks):
        problem = ids_problem(f"{what}, on the chunk {ids},", got, tokenizer.merge(ids, best, new_id))
        if problem:
            return problem
    return ""


def most_frequent_pair(merge_step):
    """merge_step merges the most frequent pair, a tie going to the smaller pair of ids"""
    for chunks in ([[5, 6], [5, 6], [5, 6], [1, 2]],  # (5, 6) three times: more than the smaller (1, 2)
                   [[9, 8, 7], [9, 8], [2, 3], [2, 3], [7, 7]]):  # (9, 8) and (2, 3) twice each: seen first, larger
        problem = step_problem(f"merge_step({chunks}, 256)", merge_step(copies(chunks), 256), chunks, 256)
        assert not problem, problem


def ten_steps(merge_step):
    """ten merge steps on a paragraph give train_bpe_plain's first ten merges"""
    chunks = chunks_of(TEXT)
    merges = tokenizer.train_bpe_plain(TEXT, 256 + STEPS)
    for step, pair in enumerate(merges):
        problem = step_problem(f"merge_step (step {step + 1} on the paragraph)", merge_step(copies(chunks), 256 + step),
                               chunks, 256 + step)
        assert not problem, problem
        chunks = [tokenizer.merge(ids, pair, 256 + step) for ids in chunks]


def leftmost_first(ids, merges):
    """The mistake: merge the leftmost pair that has a merge, whatever its rank."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    while (pair := next((p for p in zip(ids, ids[1:]) if p in ranks), None)) is not None:
        ids = tokenizer.merge(ids, pair, 256 + ranks[pair])
    return ids


def first_pairs_only(ids, merges):
    """The mistake: merge the pairs the bytes hold, by rank, and never look at the pairs the merges made."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    for pair in sorted(set(zip(ids, ids[1:])) & ranks.keys(), key=ranks.get):
        ids = tokenizer.merge(ids, pair, 256 + ranks[pair])
    return ids


def one_merge_only(ids, merges):
    """The mistake: merge the pair of lowest rank once, and stop."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, len(merges)), default=None)
    return tokenizer.merge(ids, pair, 256 + ranks[pair]) if pair in ranks else ids


def encoding_problem(encode_chunk, chunk, merges):
    """'' if encode_chunk gives the reference BPETokenizer's ids for the chunk (a str), else what is wrong."""
    ids = list(chunk.encode("utf-8"))
    expected = tokenizer.BPETokenizer.from_merges(merges).encode_chunk(chunk)
    mistakes = [("merges the leftmost pair that has a merge: merge the pair of lowest rank (learned first) first",
                 leftmost_first(ids, merges)),
                ("stops looking too early: a merge makes new pairs, which may have merges of their own, so look at "
                 "the pairs again after every merge until none has a merge", first_pairs_only(ids, merges)),
                ("stops looking too early: a merge makes new pairs, which may have merges of their own, so look at "
                 "the pairs again after every merge until none has a merge", one_merge_only(ids, merges))]
    return ids_problem(f"encode_chunk({ids}, merges={merges if len(merges) < 5 else '...'})",
                       encode_chunk(list(ids), list(merges)), expected, mistakes=mistakes)


def lowest_rank_first(encode_chunk):
    """encode_chunk merges the pair of lowest rank first, not the leftmost"""
    for chunk, merges in (("abc", [(98, 99), (97, 98)]),  # b c was learned before a b
                          (" tent", [(110, 116), (101, 110), (32, 116), (116, 101)])):
        problem = encoding_problem(encode_chunk, chunk, merges)
        assert not problem, problem


def again_after_each_merge(encode_chunk):
    """encode_chunk looks at the pairs again after each merge"""
    for chunk, merges in (("abcd", [(97, 98), (256, 99), (257, 100)]),  # ab, then abc, then abcd
                          ("hello", [(108, 108), (101, 256), (104, 257), (258, 111)])):
        problem = encoding_problem(encode_chunk, chunk, merges)
        assert not problem, problem


def new_text(encode_chunk):
    """encode_chunk gives minilm's BPE tokens on a text it was not trained on"""
    merges = tokenizer.train_bpe_plain(TEXT, VOCAB)
    for chunk in tokenizer.pre_tokenize(NEW_TEXT):
        problem = encoding_problem(encode_chunk, chunk, merges)
        assert not problem, f"{problem} (the merges: train_bpe_plain on the paragraph of check 5, {VOCAB} tokens)"


PARTS = {"count_pairs": [within_chunks, runs_of_one_id],
         "merge": [left_to_right],
         "merge_step": [most_frequent_pair, ten_steps],
         "encode_chunk": [lowest_rank_first, again_after_each_merge, new_text]}
