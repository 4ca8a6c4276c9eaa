"""Structure vs scale (lesson 05): a ladder of methods, from more built-in structure to less, on one compute axis.

The second talk's thesis: a method with more structure (stronger modelling assumptions) does better when
compute is scarce and then plateaus; one with less structure starts worse and wins as compute grows; one
with even less picks up later still. The ladder, most structure first:

    ngram    a count model: only the last n-1 = 4 words matter, learned by counting (minilm/ngram.py)
    window   a GPT whose attention sees only the last `window` tokens (a banded causal mask): nearby words
             matter most, written into the architecture; stacked layers still reach further
    gpt      the plain decoder-only GPT: any of the 64 words before may matter, the model finds out which
    bytes    the same GPT reading bytes: not even where words begin is given (the tokenizer is structure too)

Between the word and the byte rungs, the tokenizer's own ladder: `bpe512`, `bpe384`, ... the same GPT reading
the tokens of a byte-level BPE learned on the training text (minilm/tokenizer.py): a segmentation learned from
counts rather than written by hand, coarser with more merges (tokenizer_rungs).

Every rung reads the same toyworld text and is scored on the same held-out examples. Words and bytes
cut the text differently, so the common unit is bits per character: -log2 p(the example's text, its end
included) / its characters, the same quantity whatever the model predicts one step at a time. Compute
is training FLOPs: the transformers' 6 N D + attention (minilm.studies.stats.training_flops, the same count for
the windowed model, whose masked-out scores are still computed), the n-gram's counting and smoothing
(NGram.flops, tallied by the code that counts).

The sweep is points of minilm.studies.runner (sweep_points, measure): one resumable results file;
minilm.studies.structure_report reads it.
"""
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import runner
from ..parallel import one_blas_thread
from ..data import toyworld
from ..errors import MinilmError
from ..evaluate import example_rows, token_scores
from ..model import GPT, GPTConfig
from ..ngram import NGram
from .stats import training_flops
from ..tokenizer import BPETokenizer, ByteTokenizer, WordTokenizer
from .runner import train_sweep_point

RUNGS = ("ngram", "window", "gpt", "bytes")  # most structure first
NEURAL = RUNGS[1:]
RUNG_NAMES = {"ngram": "5-gram counts (most structure)", "window": "GPT, attention window 4",
              "gpt": "GPT (plain)", "bytes": "GPT on bytes (least structure)"}
# What each task needs to see, counted back from its answer (toyworld's templates): the local tasks
# are decided within 4 words, the others by a word further back than a 4-word window reaches.
LOCAL_TASKS = ("grammar", "facts_head", "facts_tail", "translation")  # subject, country: 1-2 back; the
                                                                      # word to translate: 4 back
LONG_RANGE_TASKS = ("lists", "sentiment", "spatial", "arithmetic")  # the items 6-12 back, the review's cue
                                                                    # up to 20, the story up to 20, digits 6


@dataclass
class StructureConfig:
    budgets: list          # [n_layer, d_model, n_head, tokens] of each neural budget, cheapest first
    seeds: list            # every neural point is trained with each seed (init and batch order)
    ngram_tokens: list     # the count models' budgets: how many training tokens they count
    ngram_orders: list     # every order n counted at each budget (the ladder's rung is ngram_order)
    ngram_order: int = 5   # the shortest history that holds every local task's cue
    window: int = 4        # the windowed rung sees this many positions, itself included
    block_size: int = 64   # words a word-level GPT reads
    byte_block_size: int = 128  # bytes the byte-level GPT reads: the longest example (111 characters) fits
    batch_tokens: int = 1024  # tokens a step, every rung: 16 rows of 64 words, or 8 rows of 128 bytes
    lr: float = 3e-3
    n_eval: int = 3000     # held-out examples (lesson 03's, so its losses compare)
    world: dict = field(default_factory=dict)  # ToyworldConfig arguments
    corpus_seed: int = 0
    bpe_vocab_sizes: list = field(default_factory=list)  # a BPE rung per vocabulary size (bpe384, ...)
    bpe_text_bytes: int = 2_000_000  # the BPE learns its merges from the training text's first this many bytes
    bpe_most_tokens: int = 0  # the BPE rungs train at the budgets of at most this many tokens (0: every budget)

    def __post_init__(self):
        if not self.budgets or not self.seeds or not self.ngram_tokens:
            raise MinilmError("a structure sweep needs at least one budget, one seed and one n-gram budget")
        if any(v <= ByteTokenizer.vocab_size for v in self.bpe_vocab_sizes):
            raise MinilmError(f"a BPE rung needs more than the 256 bytes as tokens (asked for {self.bpe_vocab_sizes})")
        if self.ngram_order not in self.ngram_orders:
            raise MinilmError(f"the ladder's n-gram order {self.ngram_order} must be one of ngram_orders "
                              f"{self.ngram_orders}")


PRESETS = {
    # the sweep behind lessons/05_structure_vs_scale.ipynb: budgets from 5e9 to 5e12 FLOPs (model size and
    # tokens grow together), the count models from 3K to 3M tokens
    "lesson05": StructureConfig(
        budgets=[[1, 16, 1, 62_500], [1, 24, 2, 125_000], [2, 32, 2, 250_000], [2, 48, 3, 500_000],
                 [3, 64, 4, 1_000_000], [3, 96, 4, 2_000_000]],
        seeds=[0, 1, 2], ngram_tokens=[3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000],
        ngram_orders=[2, 3, 4, 5, 6],
        # the BPE rungs (docs/lab/lesson05_bpe_design.md): 2.2 and 2.9 characters a token, words 3.8; the largest
        # budget left out (it would have tripled their training time)
        bpe_vocab_sizes=[384, 512], bpe_most_tokens=1_000_000),
    # the same code path in about a minute
    "ci": StructureConfig(budgets=[[1, 8, 1, 8_000], [1, 16, 1, 16_000]], seeds=[0, 1],
                          ngram_tokens=[3_000, 30_000], ngram_orders=[2, 5], n_eval=300, bpe_vocab_sizes=[300]),
}


def preset(name):
    return runner.choose_preset(PRESETS, name, "structure")


@dataclass(frozen=True)
class Point:
    rung: str
    tokens: int
    n_layer: int = 0  # the neural rungs' shape; 0 for the n-gram
    d_model: int = 0
    n_head: int = 0
    seed: int = 0
    order: int = 0    # the n-gram's n; 0 for the neural rungs

    @property
    def key(self):
        if self.rung == "ngram":
            return f"ngram{self.order}-t{self.tokens}"
        return f"{self.rung}-L{self.n_layer}-d{self.d_model}-h{self.n_head}-t{self.tokens}-s{self.seed}"


def bpe_rung(vocab_size):
    return f"bpe{vocab_size}"


def tokenizer_rungs(config):
    """The tokenizer's ladder, most structure first: words (cut by hand), the BPEs (learned; more merges first),
    bytes (not cut at all). config: a results file's configuration (a dict)."""
    return ("gpt", *(bpe_rung(v) for v in sorted(config.get("bpe_vocab_sizes", []), reverse=True)), "bytes")


def rung_name(rung):
    return RUNG_NAMES.get(rung) or f"GPT on BPE, {rung[3:]} tokens"


def plan(config):
    """Every point: the count models first (seconds each), then each seed-round of the neural budgets, the BPE
    rungs at the budgets of at most bpe_most_tokens tokens."""
    bpe = [bpe_rung(v) for v in config.bpe_vocab_sizes]
    points = [Point("ngram", t, order=n) for t in config.ngram_tokens for n in config.ngram_orders]
    points += [Point(rung, tokens, L, d, h, seed) for seed in config.seeds for L, d, h, tokens in config.budgets
               for rung in NEURAL + tuple(b for b in bpe if tokens <= (config.bpe_most_tokens or tokens))]
    return points


# ----------------------------------------------------------------------------------------------------
# The corpus, as words and as bytes


class World:
    """The training text (as word ids and as bytes) and the held-out examples (as rows of each), made once."""

    def __init__(self, config):
        self.world = toyworld.ToyworldConfig(**config.world)
        self.words = WordTokenizer(toyworld.vocabulary(self.world))
        most = max([b[3] for b in config.budgets] + config.ngram_tokens)
        examples = toyworld.generate(self.world, most // 8 + 1, seed=config.corpus_seed)  # >= 8 words each
        self.word_stream = toyworld.to_stream(examples, self.words)[0][:most + 1]
        self.text = text_of(examples).encode("utf-8")
        self.byte_stream = np.frombuffer(self.text[:most + 1], dtype=np.uint8).astype(np.int32)
        self.eval_examples = toyworld.generate(self.world, config.n_eval, seed=config.corpus_seed, split="eval")
        self.word_rows = example_rows(self.eval_examples, self.words)
        self.byte_rows = byte_rows(self.eval_examples)
        self.characters = np.array([len(ex.text) + 1 for ex in self.eval_examples])  # (N,) text and its end
        self.text_bytes, self.bpe_tokens, self.bpes = config.bpe_text_bytes, config.bpe_most_tokens or most, {}

    def bpe(self, vocab_size):
        """-> (the BPE of vocab_size tokens learned on the training text's first text_bytes bytes, the training
        text's first tokens (as many as the BPE rungs' largest budget reads), the held-out examples as rows of
        them), made once."""
        if vocab_size not in self.bpes:
            tokenizer = BPETokenizer.trained(self.text[:self.text_bytes].decode("utf-8", errors="ignore"), vocab_size)
            stream = np.array(first_tokens(tokenizer, self.text, self.bpe_tokens + 1), dtype=np.int32)
            self.bpes[vocab_size] = tokenizer, stream, bpe_rows(self.eval_examples, tokenizer)
        return self.bpes[vocab_size]

    def reading(self, rung):
        """What a neural rung reads -> (its vocabulary size, the training stream, the held-out rows)."""
        if rung == "bytes":
            return ByteTokenizer.vocab_size, self.byte_stream, self.byte_rows
        if rung.startswith("bpe"):
            tokenizer, stream, rows = self.bpe(int(rung[3:]))
            return tokenizer.vocab_size, stream, rows
        return self.words.vocab_size, self.word_stream, self.word_rows


def first_tokens(tokenizer, text, n, piece=1_000_000):
    """The first n tokens of text (UTF-8 bytes of lines), encoded a piece of about `piece` bytes at a time, each
    piece ending after a newline: no chunk of the pre-tokenizer spans a single newline before a word."""
    ids, start = [], 0
    while len(ids) < n and start < len(text):
        end = text.find(b"\n", start + piece) + 1 or len(text)
        ids += tokenizer.encode(text[start:end].decode("utf-8"))
        start = end
    return ids[:n]


def text_of(examples):
    """The examples as one text: each on its own line, the stream opening with a newline (<eos> for bytes)."""
    return "".join("\n" + ex.text for ex in examples) + "\n"


def byte_rows(examples):
    """Each example as a row of bytes, newline text newline, right-padded; like evaluate.example_rows,
    (idx, targets, task_ids, is_answer, valid), all (N, T). The answer is its characters and the space
    after them: greedy decoding must write the word and end it."""
    return token_rows(examples, ByteTokenizer().encode, space_first=False)


def bpe_rows(examples, tokenizer):
    """Each example as a row of BPE tokens, as byte_rows. The answer is the space before it and its characters:
    a BPE token starts with the space before its word (" Paris"), so these are whole tokens."""
    return token_rows(examples, tokenizer.encode, space_first=True)


def token_rows(examples, encode, space_first):
    """The rows of byte_rows and bpe_rows: each example's text cut in three (before its answer, the answer, after
    it), each part encoded, the answer's tokens marked; with space_first the answer's part starts at the space
    before it, else it ends with the character after it."""
    parts = []
    for ex in examples:
        text = "\n" + ex.text + "\n"
        start = len("\n" + " ".join(ex.prompt)) + (0 if space_first else 1)  # the answer's part begins
        end = start + len(" ".join(ex.answer)) + 1
        parts.append((encode(text[:start]), encode(text[start:end]), encode(text[end:])))
    T = max(sum(map(len, p)) for p in parts) - 1
    rows = np.zeros((len(examples), T + 1), dtype=np.int32)
    task_ids = np.zeros((len(examples), T), dtype=np.int16)
    is_answer = np.zeros((len(examples), T), dtype=bool)
    valid = np.zeros((len(examples), T), dtype=bool)
    for i, (ex, (before, answer, after)) in enumerate(zip(examples, parts)):
        ids = before + answer + after
        rows[i, :len(ids)] = ids
        task_ids[i], is_answer[i, len(before) - 1:len(before) + len(answer) - 1] = toyworld.TASKS.index(ex.task), True
        valid[i, :len(ids) - 1] = True
    return rows[:, :-1], rows[:, 1:], task_ids, is_answer, valid


def score(model, rows, characters):
    """A model's held-out numbers from rows (word or byte) of the examples and their characters (N,): the
    mean loss per token (nats), bits per character, and each task's exact match and answer log-prob."""
    idx, targets, task_ids, is_answer, valid = rows
    nll, top1 = token_scores(model, idx, targets)  # (N, T) each
    nll = np.where(valid, nll, 0.0)
    tasks = {}
    for t, name in enumerate(toyworld.TASKS):
        here = task_ids[:, 0] == t  # every row is one example of one task
        if here.any():
            answer = is_answer[here]
            tasks[name] = {"exact_match": float(np.all(top1[here] | ~answer, axis=1).mean()),
                           "answer_logprob": float(-(nll[here] * answer).sum(axis=1).mean())}
    return {"val_loss": float(nll[valid].mean()), "bits_per_char": float(nll.sum() / characters.sum() / math.log(2)),
            "tasks": tasks}


# ----------------------------------------------------------------------------------------------------
# Training one point


def count_ngram(point, world):
    """Count an n-gram model on the first point.tokens words and score it."""
    start = time.time()
    model = NGram(point.order, world.words.vocab_size).fit(world.word_stream[:point.tokens])
    seconds = time.time() - start
    return {"key": point.key, **asdict(point), "params": sum(len(t.keys) for t in model.raw.values()),
            "flops": float(model.flops), **score(model, world.word_rows, world.characters),
            "train_seconds": round(seconds, 2)}


def train_gpt(config, point, world, device=None):
    """Train one GPT of the ladder (windowed, plain, on BPE tokens or on bytes) on point.tokens tokens and score
    it. Every rung takes config.batch_tokens tokens a step, so a budget is the same number of steps for all."""
    block = config.byte_block_size if point.rung == "bytes" else config.block_size
    vocab_size, stream, rows = world.reading(point.rung)
    gpt = GPTConfig(vocab_size=vocab_size, block_size=block, n_layer=point.n_layer, n_head=point.n_head,
                    d_model=point.d_model, attention_window=config.window if point.rung == "window" else None)
    model = GPT(gpt, seed=point.seed, device=device)
    batch_size = config.batch_tokens // block
    steps = max(1, point.tokens // config.batch_tokens)
    _, seconds = train_sweep_point(model, stream[:point.tokens + 1], steps, batch_size, config.lr, point.seed)
    n, tokens = model.num_params(non_embedding=True), steps * config.batch_tokens
    return {"key": point.key, **asdict(point), "params": n, "tokens": tokens,
            "flops": training_flops(n, point.n_layer, point.d_model, block, gpt.vocab_size, tokens),
            **score(model, rows, world.characters), "train_seconds": round(seconds, 2)}


def sweep_points(config, device=None):
    """The sweep as (key, point) pairs for minilm.runner.run_points; a point is (config, Point, device)."""
    return runner.planned_points(config, plan, device)


def measure(point):
    """Train (or count) and score one point of sweep_points (the corpus is made once per process)."""
    config, p, device = point
    world = runner.once_per_process(World, config)
    return count_ngram(p, world) if p.rung == "ngram" else train_gpt(config, p, world, device)


def measure_alone(config, point, device=None):
    """One point of the sweep on its own (a learner's live run): the same model, steps and held-out examples,
    on a training text drawn for this point's tokens alone (a BPE rung's tokenizer learns from it too). The
    sweep draws one text for its largest budget (a minute's work for lesson05) and toyworld draws a different
    text for a different length, so the run
    differs from the sweep's by that draw as well as by the CPU's rounding. BLAS runs on one thread: on these
    small matrices a second thread costs more than it gives, most of all on a busy machine."""
    alone = replace(config, budgets=[[point.n_layer, point.d_model, point.n_head, point.tokens]],
                    ngram_tokens=[point.tokens])
    with one_blas_thread():
        return measure((alone, point, device))
