"""The glib/gold inverse-scaling toy task: a corpus in which repeating, fixing a quote and following an
instruction cost different amounts of model, and the held-out prompts that measure each.

The lecture's prompt is

    repeat after me , all that glisters is not glib . all that glisters is not  ->  glib

A model that can only copy says glib; one that knows the quote but not the instruction "fixes" it to
gold; one that also reads the instruction says glib again. The corpus is a stream of short examples,
each ending in <eos>, drawn from five frames (weights in GlibConfig):

    filler    w w w w w w .                                      random content words
    wild      as they say : q1 q2 ... qn .                       a famous quote, Zipfian exposure
    repeat    repeat after me , w w w w w w . w w w w w w .      copy a random string
    fix       repeat with me , q1 ... x . q1 ... qn .            an altered quote, then the original
    rare      say with me , q1 ... x . q1 ... x .                an altered quote, repeated as asked

The instruction is a pairing of two words: "repeat after me" and "say with me" mean repeat; "repeat
with me" and "say after me" mean fix. Neither word alone tells the two apart (an XOR), so reading the
instruction takes more model than copying does. On quotes, fix outweighs rare, so a model that knows the
quote but cannot read the instruction says the original. The alteration x (a different last word) is
drawn fresh at every exposure, so only the rule "repeat means repeat" explains the rare frame.

The quotes of even exposure rank (0, 2, 4, ...) are the *probe quotes*. Each has a few held-out
alterations that no training example ever uses (the fix and rare frames draw a fresh alteration from
the other words), so no conflict prompt is ever in the stream, while the quote itself is seen in every
frame, as a famous quote is. Two designs that kept the probe quotes out of frames failed: out of the fix
and rare frames, a mid-sized model fixed only the quotes it had seen fixed and copied the probe quotes
(its memory from the wild frame did not carry over: no dip); out of the rare frame only, no size we can
train here learned to override the memorized quote (plain inverse scaling).
"all that glisters is not gold" is the probe quote of rank 10: famous, but not the most famous, as in
the lecture's story; the lecture's prompt is one of its conflict probes.
"""
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import MinilmError
from ..tokenizer import WordTokenizer
from .instructions import Example

LECTURE_QUOTE = ("all", "that", "glisters", "is", "not", "gold")
LECTURE_ALTERATION = "glib"
LECTURE_PROMPT = "repeat after me , all that glisters is not glib . all that glisters is not"

REPEAT_PHRASES = ("repeat after me", "say with me")  # the two pairings that mean "repeat"
FIX_PHRASES = ("repeat with me", "say after me")     # the two pairings that mean "fix the quote"
FRAME_WORDS = ("as", "they", "say", "repeat", "after", "with", "me", ":", ",", ".")

# The content words: quotes, random strings and alterations are made of these.
CONTENT_WORDS = tuple("""
all that glisters is not gold glib time river stone light water fire wind night day heart mind
hand road house tree bird song dream sea sky star moon sun rain snow king fool wise old new
good bad small great long short first last fast slow cold warm dark bright deep high low
open shut every some many few more less never always often still again away home far near
little much know see hear find keep give take make come go run walk sleep wait love fear
hope speak read write break build hold""".split())

FRAMES = ("filler", "wild", "repeat", "fix", "rare")


@dataclass(frozen=True)
class GlibConfig:
    n_quotes: int = 200     # famous quotes; half are probe quotes
    zipf: float = 1.0       # the quote of exposure rank k is drawn with weight 1 / (k + 1) ** zipf
    filler: float = 0.20    # frame weights (normalised to sum to 1)
    wild: float = 0.20
    repeat: float = 0.40
    fix: float = 0.10
    rare: float = 0.06      # r: the only evidence that "repeat" overrides the memorized quote
    min_len: int = 6        # words per quote or random string
    max_len: int = 8
    n_alterations: int = 3  # held-out altered forms per probe quote
    n_repeat_probes: int = 200
    lecture_rank: int = 10  # the exposure rank of "all that glisters is not gold" (even: a probe quote)
    seed: int = 0           # the corpus (quotes, probes, stream) is a pure function of the config

    def __post_init__(self):
        weights = [getattr(self, f) for f in FRAMES]
        if min(weights) < 0 or sum(weights) <= 0:
            raise MinilmError(f"glib frame weights must be >= 0 with a positive sum, got {dict(zip(FRAMES, weights))}")
        if self.n_quotes < 2 or not 2 <= self.min_len <= self.max_len:
            raise MinilmError("glib needs n_quotes >= 2 and 2 <= min_len <= max_len")
        if self.lecture_rank % 2 or not 0 <= self.lecture_rank < self.n_quotes:
            raise MinilmError(f"lecture_rank must be an even rank below n_quotes={self.n_quotes} (a probe quote), "
                              f"got {self.lecture_rank}")
        if not 1 <= self.n_alterations < len(CONTENT_WORDS):
            raise MinilmError(f"n_alterations must be in 1..{len(CONTENT_WORDS) - 1}")

    def frame_probs(self):
        weights = np.array([getattr(self, f) for f in FRAMES], dtype=np.float64)
        return weights / weights.sum()

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class Probe:
    """One held-out prompt whose next word decides the task."""
    kind: str      # "A" repeat a random string, "B" complete a quote, "D" conflict, "Dfix" D's fix twin
    prompt: str
    answer: str    # the word the task asks for
    foil: str      # the word the competing ability would give ("" for A)
    quote: int     # the quote's exposure rank (-1 for A)


def tokenizer():
    """The fixed vocabulary: every frame word and content word (the same for every config)."""
    return WordTokenizer(list(FRAME_WORDS) + list(CONTENT_WORDS))


class GlibCorpus:
    """The quotes, the training stream and the probes of one GlibConfig.

    corpus = GlibCorpus(GlibConfig())
    tokens = corpus.stream(1_000_000)      # np.int32 token ids, examples separated by <eos>
    probes = corpus.probes()               # list of Probe, held out from every stream
    """

    def __init__(self, config=None):
        self.config = config or GlibConfig()
        self.tokenizer = tokenizer()
        self.quotes = make_quotes(self.config.n_quotes, self.config.min_len, self.config.max_len,
                                  np.random.default_rng([self.config.seed, 1]))
        self.quotes.insert(self.config.lecture_rank, self.quotes.pop(0))  # the lecture's quote
        self.all_quotes = ranks = np.arange(self.config.n_quotes)
        self.exposure = 1.0 / (ranks + 1.0) ** self.config.zipf  # relative weight of each quote
        self.probe_quotes = ranks[0::2]  # ranks 0, 2, 4, ...
        rng = np.random.default_rng([self.config.seed, 3])
        self.held_out = {int(r): self.probe_alterations(r, rng) for r in self.probe_quotes}
        # the last words a training example may put in place of each quote's own: never a held-out one
        self.training_alterations = [[w for w in other_words(q[-1]) if w not in self.held_out.get(r, ())]
                                     for r, q in enumerate(self.quotes)]

    # ---- the training stream

    def stream(self, n_tokens, seed=None):
        """At least n_tokens token ids of training text (<eos> after every example), as np.int32."""
        rng = np.random.default_rng([self.config.seed, 2] if seed is None else [self.config.seed, 2, seed])
        frame_cdf = np.cumsum(self.config.frame_probs())
        ids, eos = [], self.tokenizer.eos_id
        while len(ids) < n_tokens:
            frame = FRAMES[min(int(np.searchsorted(frame_cdf, rng.random())), len(FRAMES) - 1)]
            ids.extend(self.tokenizer.encode(self.example(frame, rng)))
            ids.append(eos)
        return np.array(ids, dtype=np.int32)

    def example(self, frame, rng):
        """One training example of a frame, as text."""
        if frame == "filler":
            return f"{words(self.random_string(rng))} ."
        if frame == "wild":
            return wild_prompt(self.quotes[self.draw_quote(rng, self.all_quotes)]) + " ."
        if frame == "repeat":
            s = self.random_string(rng)
            return instruction(REPEAT_PHRASES[rng.integers(2)], s, s)
        rank = self.draw_quote(rng, self.all_quotes)  # fix or rare
        quote = self.quotes[rank]
        altered = alter(quote, pick(self.training_alterations[rank], rng))  # fresh at every exposure
        if frame == "fix":
            return instruction(FIX_PHRASES[rng.integers(2)], altered, quote)
        return instruction(REPEAT_PHRASES[rng.integers(2)], altered, altered)  # rare

    def draw_quote(self, rng, ranks):
        """One of the quote ranks `ranks`, drawn with the quotes' Zipfian exposure."""
        cdf = np.cumsum(self.exposure[ranks])
        return int(ranks[min(int(np.searchsorted(cdf, rng.random() * cdf[-1])), len(ranks) - 1)])

    def random_string(self, rng):
        n = int(rng.integers(self.config.min_len, self.config.max_len + 1))
        return tuple(CONTENT_WORDS[i] for i in rng.integers(len(CONTENT_WORDS), size=n))

    # ---- the held-out probes

    def probes(self):
        """Every probe, in a fixed order: A, B, D and each D's fix twin (Dfix)."""
        rng = np.random.default_rng([self.config.seed, 4])
        out = []
        for i in range(self.config.n_repeat_probes):  # A: copy a random string
            s = self.random_string(rng)
            out.append(Probe("A", instruction(REPEAT_PHRASES[i % 2], s, s[:-1], end=""), s[-1], "", -1))
        for rank in self.probe_quotes:
            quote = self.quotes[rank]
            alterations = self.held_out[int(rank)]
            out.append(Probe("B", wild_prompt(quote[:-1]), quote[-1], alterations[0], int(rank)))
            for j, word in enumerate(alterations):
                altered, phrase = alter(quote, word), (int(rank) + j) % 2
                repeat = instruction(REPEAT_PHRASES[phrase], altered, quote[:-1], end="")
                fix = instruction(FIX_PHRASES[phrase], altered, quote[:-1], end="")
                out.append(Probe("D", repeat, word, quote[-1], int(rank)))
                out.append(Probe("Dfix", fix, quote[-1], word, int(rank)))
        return out

    def probe_alterations(self, rank, rng):
        """The held-out replacement last words of a probe quote (glib first for the lecture's quote)."""
        quote = self.quotes[rank]
        choices = list(rng.choice(other_words(quote[-1]), size=self.config.n_alterations, replace=False))
        if quote == LECTURE_QUOTE:
            others = [w for w in choices if w != LECTURE_ALTERATION]
            choices = [LECTURE_ALTERATION] + others[:self.config.n_alterations - 1]
        return [str(w) for w in choices]

    # ---- instruction pairs for fine-tuning (lesson 07)

    def instruction_pairs(self, n, seed=0):
        """n prompt/response pairs that teach the pairing rule on the quotes no probe uses (odd exposure
        ranks) with training alterations only: half ask to repeat an altered quote (answer: the altered last
        word), half to fix it (answer: the quote's own). Every probe stays held out."""
        rng = np.random.default_rng([self.config.seed, 5, seed])
        others = self.all_quotes[1::2]
        pairs = []
        for i in range(n):
            rank = self.draw_quote(rng, others)
            quote = self.quotes[rank]
            altered = alter(quote, pick(self.training_alterations[rank], rng))
            repeat = i % 2 == 0
            phrase = (REPEAT_PHRASES if repeat else FIX_PHRASES)[rng.integers(2)]
            answer = altered[-1] if repeat else quote[-1]
            pairs.append(Example(instruction(phrase, altered, quote[:-1], end=""), answer))
        return pairs

    def most_exposed(self, n=20):
        """The exposure ranks of the n most exposed probe quotes."""
        return [int(r) for r in self.probe_quotes[:n]]


# --------------------------------------------------------------------------------------------------
# Text pieces

def words(seq):
    return " ".join(seq)


def wild_prompt(quote):
    return f"as they say : {words(quote)}"


def instruction(phrase, shown, answer, end=" ."):
    """'<phrase> , <shown> . <answer> .'  (end='' leaves the answer open, for a probe)"""
    return f"{phrase} , {words(shown)} . {words(answer)}{end}"


def alter(quote, word):
    return tuple(quote[:-1]) + (str(word),)


def pick(seq, rng):
    return seq[int(rng.integers(len(seq)))]


def other_words(word):
    return [w for w in CONTENT_WORDS if w != word]


def make_quotes(n, min_len, max_len, rng):
    """n distinct quotes of random content words, the lecture's quote first. Each quote's first three
    words belong to it alone, so a model that has memorized it knows its last word early on."""
    quotes, starts = [LECTURE_QUOTE], {LECTURE_QUOTE[:3]}
    while len(quotes) < n:
        length = int(rng.integers(min_len, max_len + 1))
        quote = tuple(CONTENT_WORDS[i] for i in rng.integers(len(CONTENT_WORDS), size=length))
        if quote[:3] not in starts:
            quotes.append(quote)
            starts.add(quote[:3])
    return quotes
