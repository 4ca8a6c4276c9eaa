# %% [markdown]
# # Exercise 10 — byte-pair encoding: one merge step, and encoding by merge rank
#
# *Follows lesson 01 (`lessons/01_next_token_loss.ipynb`), whose model reads whole words. Real models (GPT-2,
# SmolLM2) read learned pieces of words instead; this is how `minilm/tokenizer.py` learns them
# (`train_bpe_plain`) and cuts a new text with them (`BPETokenizer`).*
#
# A byte-level BPE starts with the 256 bytes as its tokens. The text is first cut into **chunks**: a word with
# the space before it, a run of digits, of punctuation (`" the"`, `" cat"`, `","`). Each chunk starts as its
# bytes, ids 0 to 255. Training repeats one **merge step**: count the adjacent pairs of ids, make the most
# frequent pair a new token (256, then 257, ...), and replace that pair by it everywhere. **Encoding** a new
# text replays the learned merges on each chunk: of the pairs present, merge the one learned first (its
# **rank** is its place in the list of merges), look again, and stop when no pair present has a merge.
#
# | function | input | output |
# |---|---|---|
# | `count_pairs(chunks)` | `chunks`, a list of lists of ids | a dict `{(a, b): count}` of the adjacent pairs inside the chunks |
# | `merge(ids, pair, new_id)` | a list of ids, a pair `(a, b)`, an id | the list with each `a, b` replaced by `new_id`, left to right |
# | `merge_step(chunks, new_id)` | chunks, the new token's id | `(pair, new_chunks)`: the pair merged, and every chunk after the merge |
# | `encode_chunk(ids, merges)` | a chunk's bytes, the merges `[(a, b), ...]` in the order learned (merge `i` makes token `256 + i`) | the chunk's token ids |
#
# **Three rules the reference (`train_bpe_plain`) follows, and the checks hold you to.**
# 1. A pair never spans two chunks: no token glues a word to the next one.
# 2. A pair counts as often as `merge` can replace it: in `a a a` the pair `(a, a)` counts once (`a a a` becomes
#    `aa a`).
# 3. A tie between pairs of the same count goes to the smaller pair of ids (`(32, 116)` before `(101, 32)`), so
#    that training gives the same merges on every run.
#
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/10_bpe.ipynb`.

# %%
from minilm.course.checks import ExerciseChecks
from minilm.tokenizer import pre_tokenize

check = ExerciseChecks("10_bpe", globals())

chunks = [list(chunk.encode("utf-8")) for chunk in pre_tokenize("the cat sat on the mat")]
print(pre_tokenize("the cat sat on the mat"))
print(chunks)

# %% [markdown]
# ## Part 1: counting the pairs
#
# Count the adjacent pairs inside each chunk. A run of one id needs care: `[97, 97, 97]` holds the pair
# `(97, 97)` twice if you slide along it, but only once can be merged.

# %%
def count_pairs(chunks):
    """chunks: a list of lists of ids -> {(a, b): how often b follows a inside a chunk}, (a, a) once in a a a."""
    ### BEGIN SOLUTION
    counts = {}
    for ids in chunks:  # each chunk on its own: no pair spans two chunks
        previous = None
        for pair in zip(ids, ids[1:]):
            if pair == previous and pair[0] == pair[1]:
                previous = None  # a a a: this (a, a) overlaps the one just counted
                continue
            counts[pair] = counts.get(pair, 0) + 1
            previous = pair
    return counts
    ### END SOLUTION


# %%
check("count_pairs")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Loop over the chunks, and inside each one over `zip(ids, ids[1:])`, its adjacent pairs. Joining the chunks
# into one list first would count the last id of a chunk with the first of the next.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `merge` replaces `a a a` left to right: `aa a`. So in a run, a pair `(a, a)` that overlaps the one just
# counted is not counted: `a a a a` counts `(a, a)` twice, not three times.
#
# </details>
# <details><summary>Hint 3</summary>
#
# Keep `previous`, the pair counted last in this chunk. Skip a pair (and set `previous = None`) when it equals
# `previous` and its two ids are the same; otherwise `counts[pair] = counts.get(pair, 0) + 1` and
# `previous = pair`. Return a plain dict (wrap a `Counter` in `dict(...)`).
#
# </details>
#
# Still stuck? `solutions/10_bpe.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: merging one pair
#
# Walk the ids left to right; where `pair` starts, write `new_id` and step past both of its ids.

# %%
def merge(ids, pair, new_id):
    """ids: a list of ids -> the list with each occurrence of pair replaced by new_id, left to right."""
    ### BEGIN SOLUTION
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both ids of the pair are used up
        else:
            out.append(ids[i])
            i += 1
    return out
    ### END SOLUTION


# %%
check("merge")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# A `for` loop over positions cannot skip one; a `while` loop with your own index `i` can.
#
# </details>
# <details><summary>Hint 2</summary>
#
# At position `i`, the pair starts there when `i + 1 < len(ids)` and `ids[i], ids[i + 1]` equal `pair`. Then
# append `new_id` and move on by 2; else append `ids[i]` and move on by 1.
#
# </details>
#
# Still stuck? `solutions/10_bpe.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 3: one merge step
#
# Count the pairs with your `count_pairs`, pick the most frequent (a tie goes to the smaller pair), and merge
# it in every chunk with your `merge`. The checks run ten of your steps on a paragraph and compare the pairs
# with `train_bpe_plain`'s first ten merges.

# %%
def merge_step(chunks, new_id):
    """chunks: lists of ids -> (the pair merged, the chunks with that pair replaced by new_id)."""
    ### BEGIN SOLUTION
    counts = count_pairs(chunks)
    pair = min(counts, key=lambda p: (-counts[p], p))  # the most frequent; a tie goes to the smaller pair
    return pair, [merge(ids, pair, new_id) for ids in chunks]
    ### END SOLUTION


# %%
check("merge_step")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `max(counts, key=counts.get)` finds a most frequent pair, but on a tie it returns whichever came first in the
# dict: the first pair seen in the text, not the smaller one.
#
# </details>
# <details><summary>Hint 2</summary>
#
# Sort by two things at once: a key `(-count, pair)` is smallest for the highest count, and among equal counts
# for the smaller pair (tuples compare element by element).
#
# </details>
# <details><summary>Hint 3</summary>
#
# `pair = min(counts, key=lambda p: (-counts[p], p))`, then return `pair` and
# `[merge(ids, pair, new_id) for ids in chunks]`.
#
# </details>
#
# Still stuck? `solutions/10_bpe.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 4: encoding by merge rank
#
# A new chunk starts as its bytes. Of the adjacent pairs it holds, merge the one whose merge was learned first
# (the lowest rank), then look at the pairs again, since the merge made new ones; stop when no pair has a merge.
# Merge `rank` makes token `256 + rank`.

# %%
def encode_chunk(ids, merges):
    """ids: a chunk's bytes; merges: [(a, b), ...] in the order learned -> the chunk's token ids."""
    ### BEGIN SOLUTION
    ranks = {pair: rank for rank, pair in enumerate(merges)}  # merge `rank` makes token 256 + rank
    ids = list(ids)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, len(merges)))  # the pair learned first
        if pair not in ranks:
            break  # no pair left has a merge
        ids = merge(ids, pair, 256 + ranks[pair])
    return ids
    ### END SOLUTION


# %%
check("encode_chunk")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Build `ranks = {pair: rank}` from the list of merges once. The pair to merge is not the leftmost one that has
# a merge: it is the one with the smallest rank.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, len(merges)))` gives the pair of lowest rank (a pair with
# no merge gets a rank past the last). If even that pair has no merge, you are done.
#
# </details>
# <details><summary>Hint 3</summary>
#
# Repeat in a `while len(ids) > 1:` loop: find that pair, `break` if it is not in `ranks`, else
# `ids = merge(ids, pair, 256 + ranks[pair])`. Merging `a b` into `X` can make a pair `X c` that has a merge of
# its own, so the loop looks at the pairs again after every merge.
#
# </details>
#
# Still stuck? `solutions/10_bpe.ipynb` holds a worked solution.

# %% [markdown]
# **Question.** Another way to encode: apply each merge once, in the order learned
# (`for rank, pair in enumerate(merges): ids = merge(ids, pair, 256 + rank)`). For merges learned as in Part 3,
# does it ever give other tokens than merging by rank?
#
# <details><summary>Answer</summary>
#
# No: the checks pass it. Merge `r` joins two tokens that existed before it (ids below `256 + r`), and a merge
# only makes new pairs with the token it creates, so a later merge never makes a pair that an earlier merge
# would have joined. By rank, the pairs of rank 0 go first, then those of rank 1, ..., exactly the order of the
# loop. It is slower, though: it walks the chunk once for every merge (tens of thousands for a real model),
# while merging by rank walks it once for each merge the chunk actually uses.
#
# </details>

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: count_pairs counts the pairs inside each chunk, never across two
check.graded("within_chunks")

# %% tags=["graded"]
# Check 2: count_pairs counts (a, a) in a run as often as merge replaces it
check.graded("runs_of_one_id")

# %% tags=["graded"]
# Check 3: merge replaces the pair left to right, never overlapping
check.graded("left_to_right")

# %% tags=["graded"]
# Check 4: merge_step merges the most frequent pair, a tie going to the smaller pair of ids
check.graded("most_frequent_pair")

# %% tags=["graded"]
# Check 5: ten merge steps on a paragraph give train_bpe_plain's first ten merges
check.graded("ten_steps")

# %% tags=["graded"]
# Check 6: encode_chunk merges the pair of lowest rank first, not the leftmost
check.graded("lowest_rank_first")

# %% tags=["graded"]
# Check 7: encode_chunk looks at the pairs again after each merge
check.graded("again_after_each_merge")

# %% tags=["graded"]
# Check 8: encode_chunk gives minilm's BPE tokens on a text it was not trained on
check.graded("new_text")
