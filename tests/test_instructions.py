"""Instruction data (minilm/data/instructions.py): JSONL in, token rows whose loss counts only the response;
and the lecture's third sub-task, follow the instruction, taught to a small model by fine-tuning."""
import json
from pathlib import Path

import numpy as np
import pytest

from minilm import GPT, GPTConfig, MinilmError
from minilm.data.instructions import Example, batch_of, encode, read_jsonl, response_batches
from minilm.evaluate import response_loss
from minilm.lora import LoRA
from minilm.tokenizer import WordTokenizer
from minilm.train import TrainConfig, Trainer


def write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prompt_response_pairs_and_conversations_are_read(tmp_path):
    path = write(tmp_path, [json.dumps({"prompt": "say hi", "response": "hi"}), "",
                            json.dumps({"messages": [{"role": "user", "content": "say yes"},
                                                     {"role": "assistant", "content": "yes"}]})])
    assert read_jsonl(path) == [Example("say hi", "hi"), Example("user: say yes\nassistant:", " yes",
                                                                 ({"role": "user", "content": "say yes"},))]


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "a", "response": "b"}', '{"prompt": "a", "response": '], "line 2 is not JSON"),
    (['{"prompt": "a"}'], 'line 1 needs "prompt" and "response" strings'),
    (['{"messages": [{"role": "user"}]}'], 'line 1 needs "prompt" and "response" strings'),
    (["", "  "], "holds no examples")])
def test_bad_data_is_one_line_that_says_where(tmp_path, lines, message):
    with pytest.raises(MinilmError, match=message) as e:
        read_jsonl(write(tmp_path, lines))
    assert "\n" not in str(e.value)
    with pytest.raises(MinilmError, match="no data file at"):
        read_jsonl(tmp_path / "missing.jsonl")


def tokenizer():
    return WordTokenizer.build(["repeat after me : a b c d e ."])


def test_the_loss_mask_counts_exactly_the_response_tokens():
    tok = tokenizer()
    rows = encode([Example("repeat after me : a b", "a b"), Example("repeat :", "c"),
                   Example("repeat after me : a b c d e", "a b c d e")], tok, block_size=9)
    assert rows.skipped == 1 and len(rows.ids) == 2  # 1 + 9 + 6 tokens (<eos> at both ends) do not fit 9 + 1
    idx, targets, mask = batch_of(rows, [0, 1])
    assert idx.shape == targets.shape == mask.shape == (2, 9)
    for b, row in enumerate(rows.ids):
        assert row[0] == tok.eos_id  # as every example of the stream the model was pre-trained on begins
        predicted = targets[b][mask[b] == 1]
        start = rows.response_starts[b]
        assert list(predicted) == list(row[start:]) and row[-1] == tok.eos_id
        assert mask[b].sum() == len(row) - start
    assert mask[1, len(rows.ids[1]) - 1:].sum() == 0  # the padding counts for nothing
    with pytest.raises(MinilmError, match="every one of the 1 examples is longer than the context"):
        encode([Example("repeat after me : a b c d e", "a b c d e")], tok, block_size=4)


def test_padding_at_the_end_never_changes_an_earlier_position():
    tok = tokenizer()
    rows = encode([Example("repeat after me :", "a"), Example("repeat after me : a b c", "a b c")], tok, 12)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=12, n_layer=1, n_head=2, d_model=8, dtype="float64"))
    alone, _, _ = batch_of(rows, [0])
    padded, _, _ = batch_of(rows, [0, 1])
    n = alone.shape[1]
    assert np.array_equal(gpt.forward(alone)[0], gpt.forward(padded)[0, :n])


def copy_task(seed, n):
    """'repeat after me : x y z .' -> 'x y z' over 12 words: the instruction the lecture's largest model follows."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(12)]
    picks = [list(rng.choice(words, 3)) for _ in range(n)]
    return [Example("repeat after me : " + " ".join(p) + " .", " ".join(p)) for p in picks]


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_fine_tuning_teaches_a_model_to_follow_the_instruction(tuning):
    """Trained on 400 prompts and scored on 50 others: the held-out response loss falls and the model
    repeats the held-out words (measured: full, 300 steps, 3.08 -> 0.004, exact 0.00 -> 1.00; LoRA rank 8 on a
    frozen random model, 600 steps, 3.08 -> 2.40, exact 0.00 -> 1.00). LoRA gets twice the steps: at 300 its
    exact match stood on an edge, 1.00 under OpenBLAS's SkylakeX kernel, 0.86 and 0.66 under Haswell's with two
    threads and one; at 600 it is 1.00 under both."""
    train, held_out = copy_task(0, 400), copy_task(99, 50)
    tok = WordTokenizer.build([e.prompt + " " + e.response for e in train + held_out])
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, d_model=32, dtype="float32"))
    model = gpt if tuning == "full" else LoRA(gpt, rank=8, alpha=16,
                                              targets=("attn.w_qkv", "attn.w_proj", "mlp.w_fc", "mlp.w_proj"))
    score = response_loss(encode(held_out, tok, 16))
    before = score(model)
    steps = 300 if tuning == "full" else 600
    config = TrainConfig(steps=steps, batch_size=16, lr=3e-3 if tuning == "full" else 1e-2, warmup_steps=10,
                         eval_every=steps)
    Trainer(model, response_batches(encode(train, tok, 16)), None, config).run(progress=False)
    after = score(model)
    assert before["exact"] < 0.1 and after["exact"] > 0.9
    assert after["loss"] < (0.1 if tuning == "full" else before["loss"] - 0.5)


# ---- python -m minilm finetune

def base_checkpoint(tmp_path, examples):
    """A small word-level GPT saved with its tokenizer, as the demo and train save theirs."""
    from minilm.checkpoint import save_checkpoint

    tok = WordTokenizer.build([e.prompt + " " + e.response for e in examples])
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, d_model=32))
    path = tmp_path / "base.npz"
    save_checkpoint(str(path), gpt.params, {**gpt.checkpoint_meta(), "tokenizer": tok.to_json()})
    return str(path), gpt


def test_finetune_trains_adapters_that_sample_and_resume_read(tmp_path, capsys):
    from minilm.__main__ import main
    from minilm.checkpoint import load_model

    examples = copy_task(0, 200)
    base, gpt = base_checkpoint(tmp_path, examples)
    data = write(tmp_path, [json.dumps({"prompt": e.prompt, "response": e.response}) for e in examples]
                 + [json.dumps({"prompt": "repeat after me : " + " ".join(["w1"] * 20), "response": "w1"})])
    out = str(tmp_path / "run.npz")
    args = ["finetune", base, "--data", str(data), "--lora-rank", "8", "--steps", "150", "--lr", "1e-2",
            "--batch-size", "16", "--out", out]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "181 training and 19 held-out examples; 1 skipped" in text and "(LoRA rank 8 on 8 weights" in text
    before, after = (float(x) for x in text.split("response loss ")[1].split(",")[0].split(" -> "))
    assert after < before - 0.3
    lora, _, meta = load_model(out)
    assert meta["lora"]["base"] == {"checkpoint": "base.npz"}  # beside it
    assert meta["lora"]["rank"] == 8 and meta["tokenizer"]
    assert all(np.array_equal(lora.frozen[k], gpt.params[k]) for k in gpt.params)  # the base never moved
    assert main(args + ["--resume"]) == 1 and "finished its 150 steps" in capsys.readouterr().err  # nothing left
    assert main(args + ["--resume", "--steps", "155"]) == 0 and "trained 155 steps" in capsys.readouterr().out
    assert main(["sample", out, "--prompt", "repeat after me : w1 w2 w3 .", "--temperature", "0",
                 "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith("repeat after me : w1 w2 w3 . ")


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.jsonl"], "no data file at missing.jsonl"),
    (["--data", "DATA", "--lora-rank", "4", "--lora-targets", "attn.w_q"], "choose targets among")])
def test_finetune_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    from minilm.__main__ import main

    base, _ = base_checkpoint(tmp_path, copy_task(0, 5))
    data = write(tmp_path, [json.dumps({"prompt": e.prompt, "response": e.response}) for e in copy_task(0, 5)])
    args = [str(data) if a == "DATA" else a for a in args]
    assert main(["finetune", base, *args, "--steps", "2", "--out", str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["finetune", base, "--data", str(data), "--lora-rank", "0"])


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_finetune_tunes_a_pretrained_llama_whose_checkpoint_holds_its_tokenizer(tmp_path, capsys, tuning):
    """The committed tiny Llama (a GGUF file with its BPE tokenizer, tests/fixtures/pretrained) fine-tunes
    through the command line in seconds, with LoRA or in full; the checkpoint holds the BPE tokenizer (so
    sample reads it alone) and a LoRA checkpoint names the file it adapts."""
    from minilm.__main__ import main
    from minilm.checkpoint import load_model
    from minilm.pretrained import load_pretrained
    from minilm.tokenizer import tokenizer_from_json

    gguf = str(Path(__file__).parent / "fixtures" / "pretrained" / "tiny_llama.gguf")
    pytest.importorskip("gguf")
    examples = copy_task(1, 120)
    data = write(tmp_path, [json.dumps({"prompt": e.prompt, "response": e.response}) for e in examples])
    out = str(tmp_path / f"llama_{tuning}.npz")
    how = ["--lora-rank", "4", "--lr", "1e-2"] if tuning == "lora" else ["--lr", "3e-3"]
    assert main(["finetune", "--pretrained", gguf, "--data", str(data), *how, "--steps", "60",
                 "--batch-size", "8", "--out", out]) == 0
    text = capsys.readouterr().out
    before, after = (float(x) for x in text.split("response loss ")[1].split(",")[0].split(" -> "))
    assert after < before - 0.5
    tokens = int(text.split("; ")[-1].split(" tokens")[0].replace(",", ""))
    assert tokens >= 60 * 8 * 10  # every row has a dozen tokens or more
    model, _, meta = load_model(out)
    prompt = examples[0].prompt
    assert tokenizer_from_json(meta["tokenizer"]).encode(prompt) == load_pretrained(gguf)[1].encode(prompt)
    assert type(model.base if tuning == "lora" else model).__name__ == "Llama"
    if tuning == "lora":
        assert meta["lora"]["base"] == {"pretrained": gguf}
        merged_path = str(tmp_path / "merged.npz")
        assert main(["merge", out, "--out", merged_path]) == 0  # one full checkpoint: W + scale A B
        merged, _, merged_meta = load_model(merged_path)
        idx = np.array([tokenizer_from_json(merged_meta["tokenizer"]).encode(examples[0].prompt)])
        assert np.abs(merged.forward(idx) - model.forward(idx)).max() < 1e-5 and merged_meta.get("model") == "Llama"
        assert main(["merge", merged_path, "--out", merged_path]) == 1  # already full: one line
        assert "already a full checkpoint" in capsys.readouterr().err
    assert main(["sample", out, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith(prompt)


def test_a_fine_tuned_chat_model_chats_and_a_word_model_says_it_cannot(tmp_path, capsys):
    """chat CKPT talks to a LoRA checkpoint of a pretrained chat model, in its template (the fine-tuning
    put the prompts in that template too); a model without a chat template is one line."""
    from minilm.__main__ import main

    pytest.importorskip("gguf")
    gguf = str(Path(__file__).parent / "fixtures" / "pretrained" / "tiny_llama.gguf")
    data = write(tmp_path, [json.dumps({"messages": [{"role": "user", "content": e.prompt},
                                                     {"role": "assistant", "content": e.response}]})
                            for e in copy_task(2, 40)])
    out = str(tmp_path / "chat.npz")
    assert main(["finetune", "--pretrained", gguf, "--data", str(data), "--lora-rank", "2", "--steps", "5",
                 "--out", out]) == 0
    assert f"(try: python -m minilm chat {out} --say ...)" in capsys.readouterr().out  # a chat model: chat
    assert main(["chat", out, "--say", "repeat after me : w1 w2 w3 .", "--temperature", "0",
                 "--max-new-tokens", "3"]) == 0
    assert "chat.npz> " in capsys.readouterr().out
    base, _ = base_checkpoint(tmp_path, copy_task(0, 5))
    assert main(["chat", base, "--say", "hi"]) == 1
    assert "has no chat template" in capsys.readouterr().err


def test_a_chat_models_prompts_are_put_in_its_template():
    pytest.importorskip("gguf")
    from minilm.pretrained import load_pretrained

    _, tok = load_pretrained(str(Path(__file__).parent / "fixtures" / "pretrained" / "tiny_llama.gguf"))
    rows = encode([Example("say hi", "hi")], tok, block_size=64)
    prompt = tok.decode(list(rows.ids[0][:rows.response_starts[0]]))
    assert prompt == tok.chat_prompt([{"role": "user", "content": "say hi"}]) and prompt.startswith("<|im_start|>user")
    assert list(rows.ids[0][rows.response_starts[0]:]) == tok.encode("hi") + [tok.eos_id]
