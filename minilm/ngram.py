"""A count-based n-gram language model with interpolated Kneser-Ney smoothing: the most structure.

The model's one assumption is that only the last n-1 words matter:

    p(w | everything before) = p(w | the last n-1 words)

and it is learned by counting. With c(h w) the count of word w after the history h (n-1 words), the
interpolated Kneser-Ney estimate is

    p_n(w | h) = max(c(h w) - D, 0) / c(h)  +  D * t(h) / c(h) * p_{n-1}(w | h')

where c(h) = sum over w of c(h w), t(h) is how many different words followed h, and h' is h without its
oldest word. The discount D takes a little from every seen count and gives it to the shorter history;
a history never seen (c(h) = 0) hands everything to p_{n-1}. The lower orders count differently (Kneser
and Ney's idea): c(h' w) becomes the number of different words seen before h' w, because a lower order
is only asked when the longer history was rare, and then what matters is how many contexts w follows,
not how often ("francisco" is frequent but follows only "san"). The last step is the unigram, mixed
with the uniform 1 / V so that every word of the vocabulary keeps some probability:

    p_1(w) = max(N(w) - D, 0) / sum N  +  D * t / sum N * 1 / V

Each order's D is Ney's estimate n1 / (n1 + 2 n2), from how many n-grams were seen once and twice.

The model reads any number of tokens (block_size is infinite) and returns log-probabilities from
forward(idx), so the evaluation code that scores a GPT scores it unchanged.

Compute. Training is counting, done with sorts: np.unique of m packed keys. Its cost, documented and
tallied by the code in `self.flops` as it runs:
    pack the k-grams of N tokens into integers    2 N per order (a multiply and an add per token)
    count m keys (np.unique: sort, then compare neighbours)   m * ceil(log2 m) + m
    any elementwise pass over m values (a division, a comparison, a sum)    m
So counting N tokens costs about N * log2 N per order, and smoothing (the discounts, the history totals,
the continuation counts) a few passes over the distinct n-grams: millions of operations, where the
transformers of the same lesson spend 1e10 and more.
"""
import math

import numpy as np

from .errors import MinilmError


def sort_cost(m):
    """Operations to count m keys with np.unique: a comparison sort, then one pass over its neighbours."""
    return m * math.ceil(math.log2(m)) + m if m > 1 else m


class CountTable:
    """The counts of one order: sorted packed keys (history * V + word), their counts, and per history
    (history key) the total c(h) and the number of different next words t(h)."""

    def __init__(self, keys, counts, vocab_size):
        self.keys, self.counts = keys, counts.astype(np.float64)  # (m,), (m,)
        self.histories, first = np.unique(keys // vocab_size, return_index=True)
        self.totals = np.add.reduceat(self.counts, first)  # c(h)
        self.types = np.diff(np.append(first, len(keys))).astype(np.float64)  # t(h)
        n1, n2 = np.sum(self.counts == 1), np.sum(self.counts == 2)
        self.discount = n1 / (n1 + 2 * n2) if n1 else 0.5  # Ney's estimate; 0.5 if nothing was seen once
        m = len(keys)
        self.flops = sort_cost(m) + 5 * m  # the histories counted; five passes: h = key // V, c(h), t(h), n1, n2

    def history_stats(self, history):
        """history: (P,) keys -> c(h), t(h): (P,) each, 0 where the history was never seen."""
        at = np.minimum(np.searchsorted(self.histories, history), len(self.histories) - 1)
        seen = self.histories[at] == history
        return np.where(seen, self.totals[at], 0.0), np.where(seen, self.types[at], 0.0)

    def word_counts(self, history, vocab_size):
        """history: (P,) keys -> c(h w) for every word w: (P, V), mostly zeros."""
        start = np.searchsorted(self.keys, history * vocab_size)  # the keys of h are one contiguous run
        end = np.searchsorted(self.keys, (history + 1) * vocab_size)
        runs = end - start  # (P,) how many different words followed each history
        rows = np.repeat(np.arange(len(history)), runs)
        at = np.arange(runs.sum()) + np.repeat(start - (np.cumsum(runs) - runs), runs)  # every key of every run
        counts = np.zeros((len(history), vocab_size))
        counts[rows, self.keys[at] % vocab_size] = self.counts[at]
        return counts


class NGram:
    """An interpolated Kneser-Ney n-gram model over token ids 0..vocab_size-1.

    model = NGram(order=4, vocab_size=V).fit(tokens)
    logp = model.forward(idx)          # idx (B, T) -> (B, T, V) log-probabilities of the next token
    model.flops                        # the operations counting and smoothing took
    """

    block_size = math.inf  # reads sequences of any length, but only the last order-1 tokens matter

    def __init__(self, order, vocab_size):
        if order < 1 or vocab_size < 2:
            raise MinilmError("an n-gram model needs order >= 1 and a vocabulary of 2 or more, "
                              f"got {order}, {vocab_size}")
        if vocab_size ** order >= 2 ** 62:
            raise MinilmError(f"{order}-grams over {vocab_size} words do not fit a 64-bit key: use a lower order")
        self.order, self.vocab_size = order, vocab_size
        self.config, self.xp, self.flops = self, np, 0  # scored by the same code as a GPT (model.config.block_size)

    def fit(self, tokens):
        """Count every k-gram of a 1-D token stream, k = 1..order: raw counts for every order (the top order
        of a prediction), and continuation counts for the orders below the top."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) < self.order:
            raise MinilmError(f"fit needs a 1-D token stream of at least {self.order} tokens")
        V, N = self.vocab_size, len(tokens)
        self.raw, self.continuation, keys = {}, {}, np.zeros(N, dtype=np.int64)
        for k in range(1, self.order + 1):
            keys = keys[:N - k + 1] * V + tokens[k - 1:]  # (N-k+1,) the k-grams, packed: w1 * V^(k-1) + ...
            self.raw[k] = self._count(keys, packing=2 * len(keys))
            if k > 1:  # N1+(. w2..wk): how many different words came before, for the order below
                seen = self.raw[k].keys
                self.continuation[k - 1] = self._count(seen % V ** (k - 1), packing=len(seen))
        return self

    def _count(self, keys, packing):
        """A CountTable of the keys; adds the operations it took (making the keys, counting, smoothing)."""
        unique, counts = np.unique(keys, return_counts=True)
        table = CountTable(unique, counts, self.vocab_size)
        self.flops += packing + sort_cost(len(keys)) + table.flops
        return table

    def forward(self, idx):
        """idx: (B, T) token ids -> (B, T, V) log p(next token | the last order-1 tokens up to each position).

        A position near the start of its row has a shorter history; its top order is then the longest
        history it has (counted raw: the row starts where an example starts), and the orders below use
        continuation counts."""
        idx = np.asarray(idx, dtype=np.int64)
        B, T = idx.shape
        V = self.vocab_size
        if self.order == 1:
            return np.log(self._unigram(self.raw[1], B * T)).reshape(B, T, V)
        t = np.arange(T)  # position in the row: t + 1 tokens of history are available
        top = np.tile(np.minimum(self.order, t + 2), B)  # (P,) the longest order each position can use
        probs = np.empty((B * T, V))
        p = self._unigram(self.continuation[1], B * T)  # (P, V) the orders below the top, built up
        history = np.zeros((B, T), dtype=np.int64)
        for k in range(2, self.order + 1):
            oldest = idx[:, np.maximum(t - (k - 2), 0)]  # (B, T) the word k-1 back (clipped at the row's start)
            history = history + oldest * V ** (k - 2)  # the last k-1 words, packed
            h = history.reshape(-1)
            here = top == k
            probs[here] = self._interpolate(self.raw[k], h[here], p[here])
            if k < self.order:
                p = self._interpolate(self.continuation[k], h, p)
        return np.log(probs).reshape(B, T, V)

    def _unigram(self, table, P):
        """p_1(w), mixed with the uniform distribution: (P, V), the same row for every position."""
        n = np.zeros(self.vocab_size)
        n[table.keys] = table.counts
        D, total = table.discount, n.sum()
        p = np.maximum(n - D, 0) / total + D * len(table.keys) / total / self.vocab_size
        return np.broadcast_to(p, (P, self.vocab_size))

    def _interpolate(self, table, history, lower):
        """p_k(w | h) from the counts of this order and p_{k-1}(w | h'): (P, V)."""
        c_h, t_h = table.history_stats(history)  # (P,) each
        seen = c_h > 0
        c_hw = table.word_counts(history, self.vocab_size)  # (P, V)
        D, safe = table.discount, np.where(seen, c_h, 1.0)[:, None]
        mixed = np.maximum(c_hw - D, 0) / safe + (D * t_h)[:, None] / safe * lower
        return np.where(seen[:, None], mixed, lower)
