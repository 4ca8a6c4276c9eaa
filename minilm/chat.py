"""A multi-turn conversation on one KV cache, and why causal attention makes it cheap.

A conversation is turns of (user message, assistant reply). Each reply is generated from everything said
so far. With causal attention no position ever sees a later one, so the keys and values computed for the
history never change: one KV cache lives through the whole conversation and each turn runs the model
only on its new tokens. With bidirectional attention over the input (an encoder, or a prefix-LM), every
earlier token may attend to the newest message, so every turn must encode the whole history again.

    conversation = Chat(model, tokenizer)               # a chat model and its tokenizer (minilm.pretrained)
    conversation.say("What is the capital of France?")  # -> {"reply": "The capital of France is Paris.", ...}
    turns = chat(model, n_turns=12, user_len=16, reply_len=16)   # lesson 02's measurement: random tokens
"""
import time

import numpy as np

from . import masks
from .errors import MinilmError
from .generate import decoding_threads, generate
from .model import KVCache

INPUT_ATTENTION = ("causal", "bidirectional")


class Chat:
    """A conversation with a decoder-only model, in token ids (turn) or in text (say).

    reuse_cache=True keeps one KV cache for the whole conversation: each turn the model runs only on the
    tokens its cache has not seen (the new message, and the last token of its own reply before it), because
    with causal attention the keys and values of the history never change (lesson 02's argument).
    reuse_cache=False starts a fresh cache every turn and encodes the whole conversation again, as a model
    must whose input attention is bidirectional (input_attention="bidirectional": the history read both
    ways, as a prefix-LM reads its input; the reply is causal). With causal input attention both ways give
    the same replies (greedy); only the time differs.

    say(text) renders the conversation in the tokenizer's chat template (a pretrained chat model's, see
    minilm.pretrained); turn(ids) takes the new message's token ids as they are. A chat uses one or the other.
    """

    def __init__(self, model, tokenizer=None, system=None, reuse_cache=True, input_attention="causal"):
        if input_attention not in INPUT_ATTENTION:
            raise MinilmError(f"input_attention must be one of {INPUT_ATTENTION}, got {input_attention!r}")
        if reuse_cache and input_attention != "causal":
            raise MinilmError("a KV cache can only be reused across turns with causal attention: with bidirectional "
                              "attention the history's keys and values change when a new message arrives")
        self.model, self.tokenizer = model, tokenizer
        self.reuse_cache, self.input_attention = reuse_cache, input_attention
        self.messages = [{"role": "system", "content": system}] if system else []
        self.tokens = []  # every token of the conversation so far
        self.said = ""  # the text those tokens stand for, in the chat template (say)
        self.cache = KVCache(model)

    def turn(self, ids, max_new_tokens, temperature=0.0, top_k=None, eos_id=None, seed=None):
        """The new message's token ids join the conversation; the model replies (up to max_new_tokens ids,
        ending early at eos_id). -> dict: reply (ids), fed (tokens the model ran on before replying), seed
        (the one that drew the reply, see minilm.generate), seconds, tokens_per_second (the reply's)."""
        block_size = self.model.config.block_size
        if len(self.tokens) + len(ids) + max_new_tokens > block_size:
            raise MinilmError(f"the conversation would outgrow the model's block_size={block_size} positions")
        self.tokens += [int(t) for t in ids]
        if not self.reuse_cache:
            self.cache = KVCache(self.model)  # forget the history's keys and values: encode it all again
        feed = self.tokens[self.cache.length:]  # what the cache has not seen
        mask = masks.bidirectional_mask(len(feed)) if self.input_attention == "bidirectional" else None
        with decoding_threads(self.model):
            start = time.perf_counter()
            reply = generate(self.model, feed, max_new_tokens, temperature, top_k, eos_id, seed,
                             kv_cache=self.cache, prompt_mask=mask)
            seconds = time.perf_counter() - start
        self.tokens += reply
        return {"reply": reply, "fed": len(feed), "seed": reply.seed, "seconds": seconds,
                "tokens_per_second": len(reply) / seconds if seconds > 0 else float("inf")}

    def say(self, text, max_new_tokens=64, temperature=0.0, top_k=None, seed=None):
        """The user says text; the model replies, in its chat template. -> dict: reply (text), fed (tokens
        the model ran on before replying), new_tokens, seed, seconds, tokens_per_second (the reply's)."""
        if self.tokenizer is None:
            raise MinilmError("say needs a tokenizer with a chat template: Chat(model, tokenizer)")
        self.messages.append({"role": "user", "content": text})
        prompt = self.tokenizer.chat_prompt(self.messages, add_generation_prompt=True)
        if not prompt.startswith(self.said):
            raise MinilmError("this chat template rewrites earlier turns, so the cache cannot carry over")
        eos = self.tokenizer.eos_id
        out = self.turn(self.tokenizer.encode(prompt[len(self.said):]), max_new_tokens, temperature, top_k, eos, seed)
        new = out["reply"]
        ended = bool(new) and new[-1] == eos
        reply = self.tokenizer.decode(new[:-1] if ended else new)
        self.messages.append({"role": "assistant", "content": reply})
        # what the template writes after the reply (say "<|im_end|>\n") is fed with the next turn
        self.said = prompt + reply + (self.tokenizer.decode(new[-1:]) if ended else "")
        return {**out, "reply": reply, "new_tokens": len(new)}

    def catch_up(self):
        """Run the model on the conversation's tokens that its cache has not seen (the reply's last token:
        generation draws it but does not feed it), so that the cache holds the whole conversation."""
        unseen = self.tokens[self.cache.length:]
        if unseen:
            self.model.forward(np.array([unseen]), kv_cache=self.cache)


def chat(model, n_turns, user_len, reply_len, reuse_cache=True, input_attention="causal", seed=0):
    """Measure a conversation with a GPT-shaped model: each turn a user message of user_len random tokens,
    then a greedy reply of reply_len tokens (a Chat's turns).

    reuse_cache=True: one KV cache for the whole conversation; each turn feeds only its new tokens (this
    needs input_attention="causal"). reuse_cache=False: each turn starts a fresh cache and encodes the whole
    history with input_attention ("causal" or "bidirectional", as in a prefix-LM), then decodes the reply.
    Returns one dict per turn: turn, history (tokens said before it), tokens_processed (positions the
    model ran on, read off the cache), seconds (wall time), reply (the generated ids).
    """
    total = n_turns * (user_len + reply_len)
    if total > model.config.block_size:
        raise MinilmError(f"{n_turns} turns of {user_len} + {reply_len} tokens need block_size >= {total}, "
                          f"the model has {model.config.block_size}")
    conversation = Chat(model, reuse_cache=reuse_cache, input_attention=input_attention)
    rng = np.random.default_rng(seed)
    turns = []
    for turn in range(n_turns):
        user = rng.integers(0, model.config.vocab_size, size=user_len).tolist()
        history = len(conversation.tokens)
        before = conversation.cache.length if reuse_cache else 0  # a fresh cache starts empty
        start = time.perf_counter()
        reply = conversation.turn(user, reply_len)["reply"]
        # The reply is causal in every architecture; feeding its last token too keeps the two ways
        # symmetric (with the cache, that token is then ready for the next turn).
        conversation.catch_up()
        seconds = time.perf_counter() - start
        turns.append({"turn": turn, "history": history, "tokens_processed": conversation.cache.length - before,
                      "seconds": seconds, "reply": reply})
    return turns
