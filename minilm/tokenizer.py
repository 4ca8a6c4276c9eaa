"""Tokenizers: text <-> integer ids.

WordTokenizer  splits on white space; its vocabulary is built from a corpus; unseen words become <unk>.
ByteTokenizer  reads any UTF-8 text as its bytes: 256 ids, nothing is ever unknown.
"""
from collections import Counter

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

    def to_json(self):
        return {"kind": self.kind}


def tokenizer_from_json(data):
    if data.get("kind") == "word":
        return WordTokenizer(data["words"])
    if data.get("kind") == "byte":
        return ByteTokenizer()
    if data.get("kind") == "bpe":
        from .pretrained import PretrainedTokenizer  # needs the tokenizers library
        return PretrainedTokenizer.from_json(data)
    raise MinilmError(f"unknown tokenizer kind {data.get('kind')!r} in checkpoint")
