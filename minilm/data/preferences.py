"""Preference data: for each prompt, a response people (or a rule) preferred and one they did not.

One JSON object per line:
    {"prompt": "Repeat after me: all that glisters is not glib.", "chosen": "glib", "rejected": "gold"}

Each side is encoded as an instruction row (minilm/data/instructions.py: the prompt's tokens, then the response's,
the loss mask on the response), so a pair is two rows of the same prompt. A preference batch holds its B pairs as
2B rows, the chosen rows first and then their rejected rows in the same order, padded to one length: the layout
minilm.objectives' preference losses read.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import MinilmError
from .instructions import Example, Rows, batch_of, encode, jsonl_lines, parsed

SIDES = ("chosen", "rejected")


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


def read_pairs(path):
    """The pairs of a JSONL file, in order; a malformed line is one error that names its number."""
    lines = jsonl_lines(path, "a JSONL file of prompt/chosen/rejected objects")
    pairs = [pair_of(line, f"{path}, line {number}") for number, line in lines]
    if not pairs:
        raise MinilmError(f'{path} holds no pairs: write one JSON object per line, e.g. {{"prompt": "...", '
                          '"chosen": "...", "rejected": "..."}')
    return pairs


def pair_of(line, where):
    item = parsed(line, where)
    if isinstance(item, dict) and "response" in item and not any(side in item for side in SIDES):
        raise MinilmError(f'{where} is a prompt/response example, not a preference pair ("chosen", "rejected"): '
                          "fine-tune on examples by maximum likelihood, finetune without --objective dpo")
    if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("prompt", *SIDES))):
        raise MinilmError(f'{where} needs "prompt", "chosen" and "rejected" strings: got {line[:60]!r}')
    if item["chosen"] == item["rejected"]:
        raise MinilmError(f"{where}: chosen and rejected are the same response, which teaches nothing: drop the line")
    return Pair(item["prompt"], item["chosen"], item["rejected"])


@dataclass
class PairRows:
    """The pairs as two Rows, chosen and rejected, row i of each the same pair; kept: each row's pair, by its
    place in the pairs given; skipped: pairs whose either side is longer than the context."""
    chosen: Rows
    rejected: Rows
    kept: list
    skipped: int

    def __len__(self):
        return len(self.chosen.ids)


def encode_pairs(pairs, tokenizer, block_size):
    """Pairs -> PairRows, each side encoded as an instruction row; a pair is kept only where both sides fit."""
    sides = [encode_all([Example(p.prompt, getattr(p, side)) for p in pairs], tokenizer, block_size)
             for side in SIDES]
    kept = [i for i in range(len(pairs)) if all(row is not None for row in (sides[0][i], sides[1][i]))]
    if not kept:
        raise MinilmError(f"every one of the {len(pairs)} pairs has a side longer than the context ({block_size + 1} "
                          "tokens) or empty: shorten them or use a model with a longer context")
    chosen, rejected = (Rows([side[i][0] for i in kept], [side[i][1] for i in kept], 0) for side in sides)
    return PairRows(chosen, rejected, kept, len(pairs) - len(kept))


def encode_all(examples, tokenizer, block_size):
    """Each example's (ids, response start), or None where it does not fit (encode skips it)."""
    out = []
    for example in examples:
        try:
            rows = encode([example], tokenizer, block_size)
            out.append((rows.ids[0], rows.response_starts[0]))
        except MinilmError:
            out.append(None)
    return out


def preference_batch(pair_rows, picks, pad_id=0):
    """The pairs at picks as (idx, targets, loss_mask), each (2B, T): the chosen rows, then the rejected rows."""
    length = max(len(rows.ids[i]) for rows in (pair_rows.chosen, pair_rows.rejected) for i in picks) - 1
    halves = [batch_of(rows, picks, pad_id, length) for rows in (pair_rows.chosen, pair_rows.rejected)]
    return tuple(np.concatenate(parts) for parts in zip(*halves))


def preference_batches(pair_rows, pad_id=0):
    """The Trainer's batch function: batches(rng, batch_size) -> a preference batch of batch_size random pairs."""
    def batches(rng, batch_size):
        return preference_batch(pair_rows, rng.integers(len(pair_rows), size=batch_size), pad_id)
    return batches
