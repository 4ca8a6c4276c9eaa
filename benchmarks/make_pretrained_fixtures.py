"""Make the small committed fixtures of tests/test_pretrained.py: a tiny random GPT-2 in Hugging Face's
safetensors layout and a tiny random Llama in a GGUF file, each with the logits that Hugging Face
transformers computes for them (the independent implementation minilm is compared with).

    pip install torch transformers accelerate gguf safetensors tokenizers   # this script only; never minilm's dependencies
    python benchmarks/make_pretrained_fixtures.py                 # writes tests/fixtures/pretrained/

GPT-2: transformers' GPT2LMHeadModel with random weights (every bias and layernorm gain random too, so a
tensor loaded into the wrong place shows), saved by save_pretrained (config.json, model.safetensors), with
a tiny byte-level BPE trained on the committed paragraph (vocab.json, merges.txt).

Llama: transformers' LlamaForCausalLM (4 query heads sharing 2 key/value heads, RoPE base 500, an untied
head), written to a GGUF the way llama.cpp's convert_hf_to_gguf.py writes one: Q and K rows permuted from
Hugging Face's rotate_half order to adjacent pairs, some tensors quantized (Q8_0, Q4_1), the tokenizer's
vocabulary, merges and token types in the metadata. The reference logits come from transformers reading
that GGUF back (it dequantizes and undoes the permutation itself), so the file's layout is checked by an
implementation that is not minilm's. The real SmolLM2 file, written by llama.cpp, is compared in
benchmarks/pretrained_parity.py.
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "pretrained")
PARAGRAPH = os.path.join(ROOT, "minilm", "course", "paragraph.txt")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
TOKENIZER_SAMPLES = ["The keeper lived in a stone cottage.", "  two spaces, tabs\tand\nnew lines ",
                     "naïve café — ünïcödé, 日本語 and emoji 🙂", "<|im_start|>user\nhello<|im_end|>\n"]


def train_bpe(vocab_size, digits):
    """A byte-level BPE trained on the paragraph: -> (vocab dict, merges list of 'a b')."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]) if digits else byte_level
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([PARAGRAPH], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], merges


def randomize(model, scale):
    """Every parameter ~ N(0, scale), layer-norm gains around 1: logits far from uniform, every tensor matters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1 + noise if ("ln" in name or "norm" in name) and p.ndim == 1 and "bias" not in name else noise)


def make_gpt2():
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    vocab, merges = train_bpe(300, digits=False)
    folder = os.path.join(OUT, "tiny_gpt2")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = GPT2Config(vocab_size=len(vocab), n_positions=32, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|endoftext|>"])
    model = GPT2LMHeadModel(config).eval()
    randomize(model, 0.3)
    model.save_pretrained(folder, safe_serialization=True)
    idx = np.random.default_rng(0).integers(0, config.vocab_size, (2, 20))
    with torch.no_grad():
        logits = model(torch.tensor(idx)).logits.numpy()
    hf_tok = AutoTokenizer.from_pretrained(folder)  # GPT-2's tokenizer from vocab.json and merges.txt
    samples = TOKENIZER_SAMPLES[:3]
    assert all(hf_tok.encode(s) for s in samples)
    return {"gpt2_idx": idx, "gpt2_logits": logits, "gpt2_samples": np.array(samples),
            "gpt2_sample_ids": np.array(json.dumps([hf_tok.encode(s) for s in samples]))}


def permute_for_gguf(w, n_head):
    """llama.cpp's convert_hf_to_gguf.py `permute`: per head, rows in (2, hs/2) order -> (hs/2, 2)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_llama():
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    vocab, merges = train_bpe(320, digits=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    nh, nkv, C, F = 4, 2, 32, 64
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=C, intermediate_size=F, num_hidden_layers=2,
                         num_attention_heads=nh, num_key_value_heads=nkv, max_position_embeddings=64,
                         rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    randomize(model, 0.2)
    sd = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}

    path = os.path.join(OUT, "tiny_llama.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny random llama (minilm test fixture)")
    w.add_context_length(64)
    w.add_embedding_length(C)
    w.add_block_count(2)
    w.add_feed_forward_length(F)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_freq_base(500.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(C // nh)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in SPECIAL else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def tensor(name, array, kind="F32"):
        qtype = gguf.GGMLQuantizationType[kind]
        data = array if kind == "F32" else gguf.quants.quantize(array, qtype)
        w.add_tensor(name, data, raw_dtype=None if kind == "F32" else qtype)

    tensor("token_embd.weight", sd["model.embed_tokens.weight"], "Q8_0")  # the quantized kinds SmolLM2's file uses
    for i in range(2):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        tensor(b + "attn_q.weight", permute_for_gguf(sd[p + "self_attn.q_proj.weight"], nh), "Q4_1")
        tensor(b + "attn_k.weight", permute_for_gguf(sd[p + "self_attn.k_proj.weight"], nkv))
        tensor(b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        tensor(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        tensor(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        tensor(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], "Q4_1")
        tensor(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        tensor(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"], "Q8_0")
    tensor("output_norm.weight", sd["model.norm.weight"])
    tensor("output.weight", sd["lm_head.weight"], "Q8_0")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # the reference: transformers reading the GGUF back, in float32
    ref = AutoModelForCausalLM.from_pretrained(OUT, gguf_file="tiny_llama.gguf", dtype=torch.float32).eval()
    idx = np.random.default_rng(1).integers(0, len(tokens), (2, 24))
    with torch.no_grad():
        logits = ref(torch.tensor(idx)).logits.numpy()
    hf_tok = AutoTokenizer.from_pretrained(OUT, gguf_file="tiny_llama.gguf")
    samples = TOKENIZER_SAMPLES  # no digits: transformers does not split digits for the 'smollm' pre-tokenizer, llama.cpp does
    return {"llama_idx": idx, "llama_logits": logits, "llama_samples": np.array(samples),
            "llama_sample_ids": np.array(json.dumps([hf_tok.encode(s, add_special_tokens=False) for s in samples]))}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    arrays = {**make_gpt2(), **make_llama()}
    np.savez_compressed(os.path.join(OUT, "reference.npz"), **arrays)
    import transformers
    with open(os.path.join(OUT, "MADE_BY.txt"), "w") as f:
        f.write(f"benchmarks/make_pretrained_fixtures.py with torch {torch.__version__}, transformers {transformers.__version__}\n")
    for name in sorted(os.listdir(OUT)):
        full = os.path.join(OUT, name)
        size = sum(os.path.getsize(os.path.join(full, n)) for n in os.listdir(full)) if os.path.isdir(full) else os.path.getsize(full)
        print(f"{name}: {size / 1024:.0f} KB")


if __name__ == "__main__":
    sys.exit(main())
