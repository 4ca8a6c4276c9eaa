"""A toy sequence-to-sequence task: translate a list of English words into German, in reverse order.

    input   cat red house big dog water ...        (n_input English words)
    target  = hund gross haus rot katze            ("=" starts the target; its first n_target input words,
                                                    translated word by word, last first)

Every target word needs one particular input word (found by its position) and the lexicon; the reversal
keeps a model from copying in order. Two shapes of data, with the same task:

    academic  a long input and a short target  (the shape of the academic fine-tuning sets in the lecture,
              where the answer must be short enough to grade)
    chat      a target as long as the input    (the shape of generation and of chat turns)
"""
from dataclasses import dataclass

import numpy as np

from ..errors import MinilmError
from ..tokenizer import WordTokenizer

LEXICON = {
    "cat": "katze", "dog": "hund", "house": "haus", "tree": "baum", "water": "wasser", "sun": "sonne",
    "moon": "mond", "red": "rot", "big": "gross", "small": "klein", "good": "gut", "bad": "schlecht",
    "bread": "brot", "milk": "milch", "book": "buch", "child": "kind",
}
START = "="  # the decoder's first input token: "now the target"


@dataclass(frozen=True)
class Shape:
    n_input: int
    n_target: int


SHAPES = {"academic": Shape(n_input=16, n_target=3), "chat": Shape(n_input=8, n_target=8)}


def tokenizer():
    """The task's vocabulary: the English words, the German words and the start token."""
    return WordTokenizer(list(LEXICON) + list(LEXICON.values()) + [START])


def translate(words):
    """English words -> their German words, one by one through the lexicon."""
    return [LEXICON[w] for w in words]


def make_batch(tok, shape, batch_size, rng):
    """batch_size random examples -> dict of int arrays:
    src (B, n_input) the input; tgt (B, n_target) the decoder's input (START, then the target shifted right);
    targets (B, n_target) what each decoder position must predict."""
    if shape.n_target > shape.n_input:
        raise MinilmError(f"the target ({shape.n_target} words) cannot be longer than the input ({shape.n_input})")
    english = np.array(list(LEXICON))
    words = english[rng.integers(0, len(english), size=(batch_size, shape.n_input))]  # (B, S) strings
    answers = [translate(row[:shape.n_target][::-1]) for row in words]
    src = np.array([tok.encode(" ".join(row)) for row in words])
    targets = np.array([tok.encode(" ".join(answer)) for answer in answers])
    start = np.full((batch_size, 1), tok.ids[START])
    return {"src": src, "tgt": np.concatenate([start, targets[:, :-1]], axis=1), "targets": targets}


def show(tok, example):
    """One example as text: 'input  =>  = target'."""
    return f"{tok.decode(example['src'])}  =>  {START} {tok.decode(example['targets'])}"
