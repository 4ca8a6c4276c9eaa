"""Instruction data for fine-tuning: prompt/response pairs as token rows whose loss counts only the response.

One JSON object per line, either
    {"prompt": "Repeat after me: all that glisters is not glib.", "response": "glib"}
or a conversation, whose last message is the response and everything before it the prompt:
    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

A row is the prompt's tokens followed by the response's. Where the tokenizer has an <eos> and no chat template
(a model pre-trained on a stream of examples, each after an <eos>), the row also begins with <eos> and ends with
one, so that it reads like one example of that stream: a prompt the model meets in a new place (without the
<eos> it always saw before an example's first word) is a different input, and what tuning teaches there does
not carry to the prompts it is later asked (lesson 07 measured this). The model
reads row[:-1] and predicts row[1:]; the loss mask is 1 only where the predicted token belongs to the
response, so the model is taught to answer, not to write prompts. A row longer than the context plus one
is skipped, and counted.
"""
import json
from dataclasses import dataclass

import numpy as np

from ..errors import MinilmError


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    messages: tuple = ()  # a conversation's messages before the response, for a tokenizer's chat template


def jsonl_lines(path, what):
    """(line number, line) of each non-blank line of a JSONL file; one line that says what to give (what: "a
    JSONL file of prompt/response pairs") for a file that is missing, a folder or not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise MinilmError(f"no data file at {path}: give {what}") from None
    except IsADirectoryError:
        raise MinilmError(f"{path} is a folder: give {what}") from None
    except UnicodeDecodeError:
        raise MinilmError(f"{path} is not UTF-8 text: give {what}") from None
    return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]


def read_jsonl(path):
    """The examples of a JSONL file, in order; one line that names the line number for a malformed one."""
    lines = jsonl_lines(path, "a JSONL file of prompt/response pairs")
    examples = [example_of(line, path, number) for number, line in lines]
    if not examples:
        raise MinilmError(f"{path} holds no examples: write one JSON object per line, e.g. "
                          '{"prompt": "...", "response": "..."}')
    if not any(e.response.strip() for e in examples):
        raise MinilmError(f"every response in {path} is empty, so there is nothing to learn: give each prompt the "
                          "response the model should answer")
    return examples


def example_of(line, path, number):
    """One line's Example (a prompt/response object, or a conversation of messages)."""
    where = f"{path}, line {number}"
    item = parsed(line, where)
    if isinstance(item, dict) and isinstance(item.get("prompt"), str) and isinstance(item.get("response"), str):
        return Example(item["prompt"], item["response"])
    if isinstance(item, dict) and isinstance(item.get("messages"), list) and len(item["messages"]) >= 2:
        messages = item["messages"]
        if all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            prompt = "\n".join(f"{m.get('role', 'user')}: {m['content']}" for m in messages[:-1])
            before = tuple({"role": m.get("role", "user"), "content": m["content"]} for m in messages[:-1])
            return Example(f"{prompt}\n{messages[-1].get('role', 'assistant')}:", " " + messages[-1]["content"],
                           before)
    if isinstance(item, dict) and "chosen" in item and "rejected" in item:
        raise MinilmError(f'{where} is a preference pair ("chosen", "rejected"), not a prompt/response example: '
                          "tune on pairs with finetune --objective dpo")
    raise MinilmError(f'{where} needs "prompt" and "response" strings, or "messages" (two or more, each with '
                      f'"content"): got {line[:60]!r}')


def read_prompts(path):
    """The prompts of a JSONL file, one {"prompt": ...} object per line (other keys, a response say, are not
    read): what policy gradient samples answers to."""
    prompts = [prompt_of(line, f"{path}, line {number}")
               for number, line in jsonl_lines(path, 'a JSONL file of {"prompt": ...} objects')]
    if not prompts:
        raise MinilmError(f'{path} holds no prompts: write one JSON object per line, e.g. {{"prompt": "..."}}')
    return prompts


def parsed(line, where):
    """A JSONL line's value; one line that names where it is (where: "FILE, line N") for one that is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise MinilmError(f"{where} is not JSON ({e.msg}): write one JSON object per line") from None


def prompt_of(line, where):
    item = parsed(line, where)
    if not (isinstance(item, dict) and isinstance(item.get("prompt"), str) and item["prompt"].strip()):
        raise MinilmError(f'{where} needs a "prompt" string, the text to answer: got {line[:60]!r}')
    return item["prompt"]


@dataclass
class Rows:
    """Token rows ready for training: ids (each a 1-D array), the index in each row where the response
    starts, and how many examples were skipped as longer than the context."""
    ids: list
    response_starts: list
    skipped: int


def in_chat_template(tokenizer, example):
    """The prompt as a chat model reads it: its messages (or the prompt as the user's) in the tokenizer's
    template, up to where the assistant's reply begins; the response as it is."""
    messages = list(example.messages) or [{"role": "user", "content": example.prompt}]
    return tokenizer.chat_prompt(messages, add_generation_prompt=True), example.response.strip()


def encode(examples, tokenizer, block_size):
    """Examples -> Rows: prompt tokens, then response tokens (between two <eos> where the tokenizer has one
    and no chat template; see the module's docstring). A tokenizer with a chat template (a pretrained chat
    model's) gets the prompt in that template, and its response ends with <eos> where it has one."""
    ids, starts, skipped = [], [], 0
    for example in examples:
        prompt, response = prompt_and_response(tokenizer, example)
        if not prompt or not response or len(prompt) + len(response) > block_size + 1:
            skipped += 1
            continue
        ids.append(np.array(prompt + response, dtype=np.int64))
        starts.append(len(prompt))
    if not ids:
        raise MinilmError(f"every one of the {len(examples)} examples is longer than the context "
                          f"({block_size + 1} tokens) or empty: shorten them or use a model with a longer context")
    return Rows(ids, starts, skipped)


def prompt_and_response(tokenizer, example):
    """The example's prompt and response token ids as a row lays them out (see encode)."""
    eos = [tokenizer.eos_id] if getattr(tokenizer, "eos_id", None) is not None else []
    chat = getattr(tokenizer, "chat_template", None) is not None
    begin = [] if chat else eos  # a stream-trained model met every example's first word after an <eos>
    prompt_text, response_text = in_chat_template(tokenizer, example) if chat else (example.prompt, example.response)
    prompt, response = tokenizer.encode(prompt_text), tokenizer.encode(response_text) + eos
    return (begin + prompt if prompt else prompt), response


def encode_prompts(prompts, tokenizer, block_size):
    """Prompts (strings) -> Rows whose responses are still to come: each row the prompt's tokens as encode lays
    them out, its response starting where it ends. A prompt that leaves no room in the context for an answer
    (block_size tokens or more), or is empty, is skipped and counted."""
    encoded = [prompt_and_response(tokenizer, Example(prompt, ""))[0] for prompt in prompts]
    ids = [np.array(p, dtype=np.int64) for p in encoded if 0 < len(p) < block_size]
    if not ids:
        raise MinilmError(f"every one of the {len(prompts)} prompts leaves no room for an answer in the context "
                          f"({block_size} tokens) or is empty: shorten them or use a model with a longer context")
    return Rows(ids, [len(row) for row in ids], len(prompts) - len(ids))


def batch_of(rows, picks, pad_id=0, length=None):
    """The rows at picks as (idx, targets, loss_mask), each (B, T) with T = length, or by default the longest
    row's length - 1; shorter rows are padded at the end (causal attention: the padding never reaches an
    earlier position) and their padded positions have loss mask 0."""
    T = length or max(len(rows.ids[i]) for i in picks) - 1
    idx = np.full((len(picks), T), pad_id, dtype=np.int64)
    targets = np.full((len(picks), T), pad_id, dtype=np.int64)
    loss_mask = np.zeros((len(picks), T), dtype=np.float32)
    for b, i in enumerate(picks):
        row, start = rows.ids[i], rows.response_starts[i]
        idx[b, :len(row) - 1], targets[b, :len(row) - 1] = row[:-1], row[1:]
        loss_mask[b, start - 1:len(row) - 1] = 1.0  # the positions that predict a response token
    return idx, targets, loss_mask


def response_batches(rows, pad_id=0):
    """The Trainer's batch function: batches(rng, batch_size) -> (idx, targets, loss_mask) of random rows."""
    def batches(rng, batch_size):
        return batch_of(rows, rng.integers(len(rows.ids), size=batch_size), pad_id)
    return batches
