"""Checkpoints: one .npz file holding every array and, inside it, a JSON string with everything else.

Arrays are stored under prefixes: "param/h.0.attn.w_qkv", "m/...", "v/..." (optimizer moments).
The JSON (model class and config, step, optimizer step count, RNG state, tokenizer, history) sits in the array
"__meta__" as a plain unicode string, so nothing needs pickle: we load with allow_pickle=False.

Writes are atomic: the file is written under a temporary name in the same folder, flushed to disk, and
renamed over the old one. A crash mid-write leaves the previous checkpoint intact.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import reward
from .backend import get_xp, to_numpy
from .base import Base
from .encdec import EncoderClassifier, EncoderDecoder
from .errors import MinilmError
from .lora import LoRA
from .model import GPT, Llama, ModifiedGPT
from .pretrained import load_pretrained
from .tokenizer import tokenizer_from_json

FORMAT = "minilm-checkpoint-1"
# the classes a checkpoint can hold
MODELS = {cls.__name__: cls for cls in (GPT, Llama, ModifiedGPT, EncoderDecoder, EncoderClassifier)}


def save_checkpoint(path, params, meta, extra_arrays=None):
    """Atomically write params (dict name -> array), extra arrays and a JSON-able meta dict to path. Weights
    that hold a NaN or an infinity are refused: a checkpoint that exists is never replaced by a broken one."""
    arrays = {f"param/{n}": to_numpy(a) for n, a in params.items()}
    broken = nonfinite(arrays)
    if broken:
        raise MinilmError(f"not writing {path}: {len(broken)} weights hold NaN or infinite values "
                          f"({broken[0][len('param/'):]} first)")
    arrays.update({n: to_numpy(a) for n, a in (extra_arrays or {}).items()})
    arrays["__meta__"] = np.array(json.dumps({"format": FORMAT, **base_relative_to(meta, path)}))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        os.unlink(tmp)
        raise


def base_relative_to(meta, path):
    """A LoRA checkpoint names a base file by its path from the checkpoint's own folder, so that the two can move
    together (a pretrained name stays as it is; see stored_base)."""
    lora = meta.get("lora")
    if not lora:
        return meta
    base = Base.from_json(lora["base"], os.getcwd())
    return {**meta, "lora": {**lora, "base": base.to_json(os.path.dirname(os.path.abspath(path)))}}


def stored_base(path, meta):
    """The Base that the LoRA checkpoint at path names, a file resolved from the checkpoint's folder (an absolute
    path stays as it is). A checkpoint written before a base was a record holds a string: legacy_base reads it."""
    stored = meta["lora"]["base"]
    if isinstance(stored, str):
        stored = legacy_base(stored)
    return Base.from_json(stored, os.path.dirname(os.path.abspath(path)))


def legacy_base(text):
    """The one reader of the string that older LoRA checkpoints stored for their base: "pretrained:NAME", or a
    checkpoint's path -> the record Base.to_json writes."""
    prefix = "pretrained:"
    return {"pretrained": text[len(prefix):]} if text.startswith(prefix) else {"checkpoint": text}


def nonfinite(arrays):
    """The names of the arrays (dict name -> NumPy array) that hold a NaN or an infinity."""
    return [name for name, a in arrays.items() if a.dtype.kind in "fc" and not np.isfinite(a).all()]


def read_checkpoint(path):
    """-> (arrays: dict name -> NumPy array, meta: dict). One clear error for a missing or broken file."""
    return read_arrays(path, None)


def read_meta(path):
    """A checkpoint's meta dict alone (its arrays are not read)."""
    return read_arrays(path, ())[1]


def read_arrays(path, names):
    """-> (the arrays called names, or every array for None; the meta dict)."""
    if not os.path.isfile(path):
        raise MinilmError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in (f.files if names is None else [*names, "__meta__"])}
        meta = json.loads(str(arrays.pop("__meta__")))
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError, json.JSONDecodeError) as e:
        raise MinilmError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}); "
                          "use another checkpoint or retrain") from None
    if meta.get("format") != FORMAT:
        raise MinilmError(f"{path} is not a minilm checkpoint (format {meta.get('format')!r})")
    return arrays, meta


def params_of(arrays):
    return {name[len("param/"):]: a for name, a in arrays.items() if name.startswith("param/")}


def load_model(path, device=None):
    """-> (the model with the checkpoint's parameters, arrays, meta). The model's class is meta["model"]
    (a checkpoint written before the class was stored holds a GPT)."""
    get_xp(device)  # a device that cannot be used is its own error, before the checkpoint is judged
    arrays, meta = read_checkpoint(path)
    if meta.get("model") == "LoRA":
        return load_lora(path, arrays, meta, device), arrays, meta
    if meta.get("model") == "RewardModel":
        return load_reward_model(path, arrays, meta, device), arrays, meta
    cls = MODELS.get(meta.get("model", "GPT"))
    if cls is None:
        raise MinilmError(f"checkpoint {path} holds a {meta['model']}, "
                          f"not one of minilm's models ({', '.join(MODELS)})")
    try:
        model = cls(cls.config_class(**meta["config"]), device=device, params=params_of(arrays))
    except (MinilmError, TypeError) as e:
        raise MinilmError(f"checkpoint {path} does not hold a valid model: {e}") from None
    return model, arrays, meta


def load_base(base, device=None, block_size=None):
    """The model a fine-tuning starts from: base, a minilm.base.Base, names a minilm checkpoint or a pretrained
    model (smollm2, a .gguf file or a GPT-2 folder; block_size as minilm.pretrained.load_pretrained takes it).
    -> (model, tokenizer or None)"""
    if base.pretrained is not None:
        return load_pretrained(base.pretrained, device=device, block_size=block_size)
    model, _, meta = load_model(base.checkpoint, device=device)
    return model, tokenizer_from_json(meta["tokenizer"]) if meta.get("tokenizer") else None


def load_lora(path, arrays, meta, device=None):
    """A LoRA checkpoint holds the adapters and names its base: the base, adapted, with them (and with the base's
    tokenizer, the LoRA's own)."""
    settings, base = meta["lora"], stored_base(path, meta)
    pretrained = base.pretrained is not None  # with the context it was tuned at
    if not pretrained and not os.path.isfile(base.checkpoint):
        named = base.to_json(os.path.dirname(os.path.abspath(path)))["checkpoint"]  # as the checkpoint names it
        raise MinilmError(f"the base of the LoRA checkpoint {path} is not found: {named} (from the "
                          f"checkpoint's folder: {base}); put the base back there, or fine-tune again")
    if not pretrained and os.path.samefile(base.checkpoint, path):
        raise MinilmError(f"the LoRA checkpoint {path} names itself as its base: it was written over its base, "
                          "which is lost; fine-tune again")
    model, tokenizer = load_base(base, device, meta["config"]["block_size"] if pretrained else None)
    lora = LoRA(model, settings["rank"], settings["alpha"], settings["targets"], source=base, tokenizer=tokenizer)
    adapters = params_of(arrays)
    if sorted(adapters) != sorted(lora.params):
        raise MinilmError(f"checkpoint {path} does not hold the adapters of its base {base}: "
                          "was the base checkpoint replaced? Train the adapters again")
    for name, p in lora.params.items():
        p[...] = lora.xp.asarray(adapters[name])
    return lora


def load_reward_model(path, arrays, meta, device=None):
    """A reward model's checkpoint: its decoder (of the class it names) and the reward head's arrays."""
    params = params_of(arrays)
    head = {name: params.pop(name, None) for name in reward.HEAD}
    cls = MODELS.get(meta.get("decoder"))
    if cls is None or any(a is None for a in head.values()):
        raise MinilmError(f"checkpoint {path} does not hold a valid reward model (a decoder and "
                          f"{' and '.join(reward.HEAD)})")
    try:
        decoder = cls(cls.config_class(**meta["config"]), device=device, params=params)
    except (MinilmError, TypeError) as e:
        raise MinilmError(f"checkpoint {path} does not hold a valid reward model: {e}") from None
    return reward.RewardModel(decoder, {name: decoder.xp.asarray(a) for name, a in head.items()})


def load_for_text(path, device=None):
    """A checkpoint's model and tokenizer, ready to generate: a LoRA checkpoint's adapters are folded into
    its base's weights, and its tokenizer is the base's when the checkpoint holds none."""
    model, _, meta = load_model(path, device=device)
    tokenizer = tokenizer_from_json(meta["tokenizer"]) if meta.get("tokenizer") else None
    if isinstance(model, LoRA):
        tokenizer = tokenizer or model.tokenizer
        model = model.merged()  # a plain model of W + scale A B, with its KV cache
    if tokenizer is None:
        raise MinilmError(f"{path} holds no tokenizer, so its text cannot be decoded")
    return model, tokenizer
