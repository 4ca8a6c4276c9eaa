"""Tokenizers: text <-> integer ids.

WordTokenizer  splits on white space; its vocabulary is built from a corpus; unseen words become <unk>.
ByteTokenizer  reads any UTF-8 text as its bytes: 256 ids, nothing is ever unknown.
BPETokenizer   byte-level byte-pair encoding (GPT-2's kind, SmolLM2's too): starts from the 256 bytes and merges
               the most frequent adjacent pair into a new token, again and again. Trained here (train_bpe), or
               loaded with a real model's vocabulary and merges (minilm.pretrained), where it encodes exactly as
               Hugging Face's `tokenizers` library does (tests/test_bpe.py checks the ids).
"""
import functools
import heapq
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict

from .errors import MinilmError

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"


class WordTokenizer:
    """Word-level: one id per distinct word, plus <pad> (0), <unk> (1) and <eos> (2)."""

    kind = "word"

    def __init__(self, words):
        specials = [PAD, UNK, EOS]
        self.words = specials + [w for w in words if w not in specials]
        self.ids = {w: i for i, w in enumerate(self.words)}
        if len(self.ids) != len(self.words):
            raise MinilmError("WordTokenizer: the word list has repeated words")
        self.pad_id, self.unk_id, self.eos_id = 0, 1, 2

    @classmethod
    def build(cls, texts, min_count=1):
        """A vocabulary of every word seen at least min_count times, most frequent first."""
        counts = Counter(w for text in texts for w in text.split())
        return cls([w for w, c in counts.most_common() if c >= min_count])

    @property
    def vocab_size(self):
        return len(self.words)

    def encode(self, text):
        return [self.ids.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids):
        return " ".join(self.words[int(i)] for i in ids)

    def pieces(self, ids):
        """Each token's own text (to show where the token boundaries fall)."""
        return [self.words[int(i)] for i in ids]

    def unknown_words(self, text):
        """The words of text outside the vocabulary (encode reads each as <unk>)."""
        return [w for w in text.split() if w not in self.ids]

    def to_json(self):
        return {"kind": self.kind, "words": self.words[3:]}


class ByteTokenizer:
    """Byte-level: the ids are the UTF-8 bytes, 0..255. No <eos>: generation stops at a length."""

    kind = "byte"
    vocab_size = 256
    eos_id = None

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def pieces(self, ids):
        """Each token's own text; a byte that is part of a longer character shows as \\xNN."""
        return [bytes([int(i)]).decode("utf-8", errors="backslashreplace") for i in ids]

    def to_json(self):
        return {"kind": self.kind}


# --------------------------------------------------------------------------------------------------
# Byte-level BPE, 1: pre-tokenization. The text is cut into chunks first (a word with the space before it, a run
# of digits, of punctuation, of white space) and merges never cross a chunk's edge: " dog" is one token wherever
# it stands, and no token glues a word to the comma after it.

# GPT-2's pattern, as `tokenizers` runs it: \p{L} is any letter, \p{N} any number, \s Unicode's white space.
# Python's re has no \p{..} and the `regex` package that has is not one of minilm's dependencies: the classes are
# built from unicodedata instead, and tests/test_bpe.py checks the cuts against `tokenizers` on a sample of every
# character Python's Unicode table assigns. (A character assigned by a later Unicode than this Python's, 14.0 on
# Python 3.11, is unassigned here and may be cut differently: the letters of Unicode 15 and 16.)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Unicode's White_Space characters: \s of the `tokenizers` library's regex engine (Python's \s adds \x1c-\x1f)
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.cache
def chunk_patterns():
    """-> (GPT2_PATTERN, one number character) compiled for Python's re, which has no \\p{..}: the letters and
    numbers are spelled out as ranges of code points read from unicodedata (about 0.5 s, once a process)."""
    ranges = {"L": [], "N": []}
    start, major = 0, None
    for code in range(sys.maxunicode + 2):
        now = unicodedata.category(chr(code))[0] if code <= sys.maxunicode else None
        if now != major:
            if major in ranges:
                ranges[major].append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start, major = code, now
    letters, numbers = "".join(ranges["L"]), "".join(ranges["N"])
    pattern = (GPT2_PATTERN.replace(r"[^\s\p{L}\p{N}]", f"[^{WHITE_SPACE}{letters}{numbers}]")
               .replace(r"\p{L}", f"[{letters}]").replace(r"\p{N}", f"[{numbers}]")
               .replace(r"\s", f"[{WHITE_SPACE}]").replace(r"\S", f"[^{WHITE_SPACE}]"))
    return re.compile(pattern), re.compile(f"([{numbers}])")


def pre_tokenize(text, split_digits=False):
    """text -> its chunks, by GPT2_PATTERN. split_digits: each number character is a chunk of its own first, and
    the pattern cuts the text between them (SmolLM2's pre-tokenizer: 2024 is always 2 0 2 4; GPT-2's is not)."""
    pattern, digit = chunk_patterns()
    parts = digit.split(text) if split_digits else [text]
    return [chunk for part in parts if part for chunk in pattern.findall(part)]


# --------------------------------------------------------------------------------------------------
# Byte-level BPE, 2: training. Every chunk starts as its bytes (ids 0..255); count the adjacent pairs of ids over
# all chunks, make the most frequent pair a new token (256, 257, ...), replace it everywhere, repeat.

def merge(ids, pair, new_id):
    """ids with each occurrence of pair replaced by new_id, left to right, never overlapping (a a a -> aa a)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_pairs(ids, counts, weight=1):
    """Add each adjacent pair of ids to counts, weight times: as many as merge would replace, so in a a a the
    pair (a, a) counts once."""
    previous = None
    for pair in zip(ids, ids[1:]):
        if pair == previous and pair[0] == pair[1]:
            previous = None  # it overlaps the pair just counted
            continue
        counts[pair] += weight
        previous = pair


def most_frequent(counts):
    """The pair with the highest count; a tie goes to the smaller pair of ids (the earlier-made tokens)."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def chunk_table(text, split_digits=False):
    """The text as its distinct chunks' bytes and how often each chunk occurs (a chunk is merged once for all)."""
    counts = Counter(pre_tokenize(text, split_digits))
    return [list(chunk.encode("utf-8")) for chunk in counts], list(counts.values())


def train_bpe_plain(text, vocab_size, split_digits=False):
    """The readable loop: count every pair in every chunk, merge the most frequent, again until there are
    vocab_size tokens (or every chunk is one token). -> the merges [(a, b), ...]; merge i makes token 256 + i."""
    words, freqs = chunk_table(text, split_digits)
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter()
        for ids, freq in zip(words, freqs):
            count_pairs(ids, counts, freq)
        if not counts:
            break
        best = most_frequent(counts)
        words = [merge(ids, best, new_id) for ids in words]
        merges.append(best)
    return merges


def train_bpe(text, vocab_size, split_digits=False):
    """The tuned form of train_bpe_plain, with the same merges: the pair counts live across steps and a merge
    updates only the chunks that hold its pair (an index pair -> chunks finds them), and the most frequent pair
    comes off a heap of (-count, pair) instead of a scan over every pair (an entry whose count has changed since
    it was pushed is stale and skipped)."""
    words, freqs = chunk_table(text, split_digits)
    counts, holders = Counter(), defaultdict(set)  # pair -> its count; pair -> the chunks that hold it
    for w, (ids, freq) in enumerate(zip(words, freqs)):
        count_pairs(ids, counts, freq)
        for pair in zip(ids, ids[1:]):
            holders[pair].add(w)
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)
    merges = []
    while heap and 256 + len(merges) < vocab_size:
        negative_count, best = heapq.heappop(heap)
        if counts.get(best) != -negative_count:
            continue
        changed = Counter()
        for w in holders.pop(best):
            new = merge(words[w], best, 256 + len(merges))
            count_pairs(words[w], changed, -freqs[w])
            count_pairs(new, changed, freqs[w])
            words[w] = new
            for pair in zip(new, new[1:]):
                holders[pair].add(w)
        for pair, delta in changed.items():
            counts[pair] += delta
            if counts[pair] > 0 and delta:
                heapq.heappush(heap, (-counts[pair], pair))
            elif counts[pair] <= 0:
                del counts[pair]
        merges.append(best)
    return merges


# --------------------------------------------------------------------------------------------------
# Byte-level BPE, 3: the tokenizer. Vocabularies are written in GPT-2's printable form: each byte one visible
# character (a space is Ġ, a newline Ċ), so " the" is stored as "Ġthe".

def printable_bytes():
    """GPT-2's table: byte -> a printable character (the printable bytes stand for themselves, the others are
    shifted past 255)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    table = {b: chr(b) for b in kept} | {b: chr(256 + n) for n, b in enumerate(shifted)}
    return [table[b] for b in range(256)]


BYTE_CHARS = printable_bytes()
CHAR_BYTES = {c: b for b, c in enumerate(BYTE_CHARS)}


def token_bytes(token):
    """A token written in the printable form -> its bytes; a token with other characters (an added token such as
    <｜end▁of▁sentence｜>) is its own UTF-8, as `tokenizers`' byte-level decoder reads it."""
    if all(c in CHAR_BYTES for c in token):
        return bytes(CHAR_BYTES[c] for c in token)
    return token.encode("utf-8")


def printable(token):
    return "".join(BYTE_CHARS[b] for b in token)


NO_MERGE = (float("inf"), -1)  # the rank of a pair no merge makes
CACHE_SIZE = 100_000  # chunks whose ids the tokenizer remembers


class BPETokenizer:
    """Byte-level BPE: a chunk's bytes become their byte tokens, then the merges apply by rank (of the pairs
    present, the one learned earliest) until none does; decoding joins the tokens' bytes.

    tokens: each id's bytes. merges: pairs of ids (a, b) in the order learned; the token a pair makes is the one
    whose bytes are a's then b's. special: ids of tokens written whole in a text (<|im_end|>): matched before
    anything else, never split. eos_id, bos_id and the chat template (Jinja) are a chat model's."""

    kind = "bpe"

    def __init__(self, tokens, merges, special=(), split_digits=False, eos_id=None, bos_id=None, chat_template=None):
        self.tokens, self.merges = [bytes(t) for t in tokens], [(int(a), int(b)) for a, b in merges]
        self.special, self.split_digits = [int(i) for i in special], bool(split_digits)
        self.eos_id, self.bos_id, self.chat_template = eos_id, bos_id, chat_template
        self.vocab_size = len(self.tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}  # bytes -> id (a later repeat wins, as in a dict)
        # A real vocabulary may lack a byte that text seldom holds (SmolLM2 has no token for 21 of them, control
        # bytes and bytes UTF-8 never uses): encoding drops it, and merges its neighbours, as `tokenizers` does.
        self.byte_ids = [self.index.get(bytes([b])) for b in range(256)]  # None: no token for the byte
        self.ranks = self.rank_merges()  # (a, b) -> (rank, the id it makes)
        self.special_ids = {self.tokens[i].decode("utf-8", errors="replace"): i for i in self.special}
        longest_first = "|".join(map(re.escape, sorted(self.special_ids, key=len, reverse=True)))
        self.special_pattern = re.compile(f"({longest_first})") if longest_first else None
        self.cache = {}  # chunk -> its ids

    def rank_merges(self):
        ranks = {}
        for rank, (a, b) in enumerate(self.merges):
            made = self.index.get(self.tokens[a] + self.tokens[b]) if max(a, b) < self.vocab_size else None
            if made is None:
                raise MinilmError(f"merge {rank} makes no token of the vocabulary: not a consistent BPE")
            ranks[a, b] = (rank, made)
        return ranks

    @classmethod
    def trained(cls, text, vocab_size, split_digits=False):
        """Learn vocab_size - 256 merges on text (train_bpe) -> the tokenizer."""
        if vocab_size < 256:
            raise MinilmError(f"a byte-level BPE has at least the 256 bytes as tokens (asked for {vocab_size})")
        return cls.from_merges(train_bpe(text, vocab_size, split_digits), split_digits)

    @classmethod
    def from_merges(cls, merges, split_digits=False):
        """The tokenizer of merges learned here: the 256 bytes, then one token per merge, its pair's bytes joined."""
        tokens = [bytes([b]) for b in range(256)]
        for a, b in merges:
            tokens.append(tokens[a] + tokens[b])
        return cls(tokens, merges, split_digits=split_digits)

    @classmethod
    def from_printable(cls, tokens, merges, special=(), **settings):
        """A real model's tokenizer: tokens, each id's token in the printable form (vocab.json's keys, a GGUF's
        tokenizer.ggml.tokens); merges, "Ġ t" or ["Ġ", "t"] in rank order; special, the tokens matched whole."""
        index = {t: i for i, t in enumerate(tokens)}
        try:
            pairs = [(index[a], index[b]) for a, b in (m.split(" ", 1) if isinstance(m, str) else m for m in merges)]
            special = [index[t] for t in special]
        except (KeyError, ValueError) as e:
            raise MinilmError(f"a merge or special token names a token that is not in the vocabulary ({e})") from None
        return cls([token_bytes(t) for t in tokens], pairs, special, **settings)

    def encode(self, text):
        """text -> token ids: a special token written in it is its one id; the rest is cut into chunks, each
        encoded alone."""
        parts = self.special_pattern.split(text) if self.special_pattern else [text]
        ids = []
        for i, part in enumerate(parts):  # split keeps the specials it matched, at the odd places
            if i % 2:
                ids.append(self.special_ids[part])
            else:
                for chunk in pre_tokenize(part, self.split_digits):
                    ids.extend(self.encode_chunk(chunk))
        return ids

    def encode_chunk(self, chunk):
        """One chunk -> its ids: its bytes (a byte without a token dropped), then merge the pair of lowest rank,
        repeat (a chunk met before: cached)."""
        if chunk not in self.cache:
            ids = self.merge_by_rank([self.byte_ids[b] for b in chunk.encode("utf-8") if self.byte_ids[b] is not None])
            if len(self.cache) >= CACHE_SIZE:
                self.cache.clear()
            self.cache[chunk] = ids
        return self.cache[chunk]

    def merge_by_rank(self, ids):
        """Merge the pair of lowest rank until no pair has a merge."""
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, NO_MERGE))
            if pair not in self.ranks:
                break
            ids = merge(ids, pair, self.ranks[pair][1])
        return ids

    def decode(self, ids):
        return b"".join(self.tokens[int(i)] for i in ids).decode("utf-8", errors="replace")

    def pieces(self, ids):
        """Each token's own text; bytes that are part of a character (a token may hold half an emoji) as \\xNN."""
        return [self.tokens[int(i)].decode("utf-8", errors="backslashreplace") for i in ids]

    def token_id(self, text):
        """The id of the token whose text this is (None if no one token is)."""
        return self.index.get(text.encode("utf-8"))

    def to_json(self):
        """Everything that rebuilds it, for a checkpoint: the tokens in the printable form, the merges as pairs of
        ids (about 1.5 MB for SmolLM2's 49,152 tokens)."""
        return {"kind": self.kind, "tokens": [printable(t) for t in self.tokens], "merges": self.merges,
                "special": self.special, "split_digits": self.split_digits, "eos_id": self.eos_id,
                "bos_id": self.bos_id, "chat_template": self.chat_template}

    @classmethod
    def from_json(cls, data):
        settings = {k: data.get(k) for k in ("eos_id", "bos_id", "chat_template")}
        if "backend" in data:  # written before minilm had its own BPE: the `tokenizers` library's JSON
            return hf_tokenizer(json.loads(data["backend"]), **settings)
        return cls([token_bytes(t) for t in data["tokens"]], data["merges"], data["special"], data["split_digits"],
                   **settings)

    def chat_prompt(self, messages, add_generation_prompt=True):
        """Render [{"role": "user", "content": ...}, ...] with the model's own chat template (Jinja)."""
        if not self.chat_template:
            raise MinilmError("this model has no chat template: it is not a chat model")
        import jinja2  # comes with JupyterLab
        template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=self.decode([self.bos_id]) if self.bos_id is not None else "",
                               eos_token=self.decode([self.eos_id]) if self.eos_id is not None else "")


def ordered_tokens(vocab):
    """{token: id} -> the tokens in id order (one clear error for a vocabulary with gaps in its ids)."""
    tokens = [None] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        tokens[i] = token
    if None in tokens:
        raise MinilmError(f"the vocabulary has no token with id {tokens.index(None)}")
    return tokens


def hf_tokenizer(data, **settings):
    """A Hugging Face tokenizer.json (parsed) of a byte-level BPE, GPT-2's kind -> BPETokenizer. Its added tokens
    are the special ones; a Digits step before the ByteLevel one splits digits. Anything else: one clear error."""
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    split_digits = [s.get("type") for s in steps] == ["Digits", "ByteLevel"] and steps[0].get("individual_digits")
    byte_level, added = steps[-1], data.get("added_tokens", [])
    plain = (model.get("type") == "BPE" and not data.get("normalizer") and len(steps) == 1 + bool(split_digits)
             and byte_level.get("type") == "ByteLevel" and not byte_level.get("add_prefix_space")
             and byte_level.get("use_regex", True) and not any(model.get(k) for k in UNSUPPORTED_BPE)
             and not any(t.get(k) for t in added for k in ("lstrip", "rstrip", "single_word")))
    if not plain:
        raise MinilmError("this tokenizer.json is not a plain byte-level BPE (GPT-2's kind), which is what "
                          "minilm's BPETokenizer reads")
    vocab = {**model["vocab"], **{t["content"]: t["id"] for t in added}}
    return BPETokenizer.from_printable(ordered_tokens(vocab), model["merges"], [t["content"] for t in added],
                                       split_digits=bool(split_digits), **settings)


UNSUPPORTED_BPE = ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "ignore_merges")


def tokenizer_from_json(data):
    if data.get("kind") == "word":
        return WordTokenizer(data["words"])
    if data.get("kind") == "byte":
        return ByteTokenizer()
    if data.get("kind") == "bpe":
        return BPETokenizer.from_json(data)
    raise MinilmError(f"unknown tokenizer kind {data.get('kind')!r} in checkpoint")
