"""Plausible wrong solutions of the exercises, shared by test_exercise_checks.py (each check run in this
process) and test_exercises.py (the mutated notebooks graded end to end by nbval)."""
from dataclasses import dataclass

from minilm.course import paths


@dataclass
class Mutation:
    """A plausible wrong solution: `old` replaced by `new` in the exercise's source. `catches` maps the name of
    each check that must fail to a piece of the message it must give (the one that names the mistake)."""
    exercise: str
    name: str
    old: str
    new: str
    catches: dict

    def source(self):
        text = (paths.SOURCES / f"{self.exercise}.py").read_text()
        assert text.count(self.old) == 1, f"mutation {self.name}: its target text must occur once in the source"
        return text.replace(self.old, self.new)


SOFTMAX_SHIFT = "shifted = logits - logits.max(axis=-1, keepdims=True)  # the largest entry of each row is now 0"
LAYERNORM_VAR = "var = (xc * xc).mean(axis=-1, keepdims=True)  # (B, T, 1)"
CAUSAL_TRIL = "return np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q)"
CACHE_MASK = "masks.causal_mask(q_new.shape[2], k.shape[2])"
LORA_OUT = "out = x @ W + scale * (down @ B)  #"
DECODE_STEP = "logits = model.forward(next_token, kv_cache=cache)"
BPE_TIE = "pair = min(counts, key=lambda p: (-counts[p], p))  # the most frequent"
BPE_RANK = "pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, len(merges)))  # the pair learned first"
BPE_LOOP = ("while len(ids) > 1:\n        " + BPE_RANK + "\n        if pair not in ranks:\n"
            "            break  # no pair left has a merge\n        ids = merge(ids, pair, 256 + ranks[pair])")
DPO_SUM = "return (logp * loss_mask).sum(axis=1)  # the response's positions only"
DPO_LOG_SOFTMAX = "log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # log softmax, never log 0"
DPO_MARGIN = "margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))  # (N,) implicit rewards"
DPO_LOSS = "return float(np.logaddexp(0, -margin).mean())  #"
DPO_D_CHOSEN = "d_chosen = -beta * weight / len(margin)  #"
DPO_D_LOGITS = "return weight[..., None] * (onehot - probs)  #"

MUTATIONS = [
    # 01: softmax and cross-entropy
    Mutation("01_softmax_cross_entropy", "softmax-without-max-subtraction", SOFTMAX_SHIFT + "\n    e = np.exp(shifted)", "e = np.exp(logits)",
             {"softmax_large_logits": "exp(1000) overflows"}),
    Mutation("01_softmax_cross_entropy", "softmax-subtracts-one-max-for-all-rows", SOFTMAX_SHIFT, "shifted = logits - logits.max()",
             {"softmax_large_logits": "subtract each row's own max"}),
    Mutation("01_softmax_cross_entropy", "softmax-normalises-the-wrong-axis", "return e / e.sum(axis=-1, keepdims=True)",
             "return e / e.sum(axis=0, keepdims=True)", {"softmax_rows": "normalises over the wrong axis"}),
    Mutation("01_softmax_cross_entropy", "softmax-in-float32", "e = np.exp(shifted)", "e = np.exp(shifted.astype(np.float32))",
             {"softmax_rows": "softmax(logits) is float32", "gradient": "dlogits is float32"}),
    Mutation("01_softmax_cross_entropy", "cross-entropy-as-log-of-softmax", "return float((log_sum_exp - target_logit).mean())",
             "return float(-np.log(np.take_along_axis(softmax(logits), targets[..., None], axis=-1)).mean())",
             {"cross_entropy_large_logits": "logits [0, 1000] with target 0 must give loss 1000"}),
    Mutation("01_softmax_cross_entropy", "cross-entropy-sums-over-positions", "return float((log_sum_exp - target_logit).mean())",
             "return float((log_sum_exp - target_logit).sum())", {"cross_entropy_value": "is the sum over the B*T = 10 positions"}),
    Mutation("01_softmax_cross_entropy", "gradient-not-divided-by-positions", "return dlogits / (B * T)", "return dlogits",
             {"gradient": "not divided by the B*T = 6 positions"}),
    Mutation("01_softmax_cross_entropy", "gradient-without-onehot", "dlogits[b, t, targets] -= 1.0", "dlogits[b, t, targets] -= 0.0",
             {"gradient": "has no onehot term"}),
    # 02: masks
    Mutation("02_attention_masks", "bidirectional-mask-of-floats", "return np.ones((T_q, T_k), dtype=bool)", "return np.ones((T_q, T_k))",
             {"bidirectional": "must be a boolean array"}),
    Mutation("02_attention_masks", "causal-mask-off-by-one", CAUSAL_TRIL, CAUSAL_TRIL.replace("k=T_k - T_q", "k=T_k - T_q + 1"),
             {"causal": "causal_mask(2): position 0 can see position 1, but it must not",
              "causal_in_attention": "the output at position 0 can see position 1, but it must not"}),
    Mutation("02_attention_masks", "causal-mask-ignores-cache-offset", CAUSAL_TRIL, CAUSAL_TRIL.replace("k=T_k - T_q", "k=0"),
             {"causal_with_cache": "causal_mask(1, 2): position 1 cannot see position 1, but it must"}),
    Mutation("02_attention_masks", "prefix-sees-the-future", "mask[:, :n_prefix] = True  #", "mask[:n_prefix, :] = True  #",
             {"prefix_lm": "prefix_lm_mask(2, n_prefix=1): position 0 can see position 1, but it must not"}),
    Mutation("02_attention_masks", "cross-mask-transposed", "return bidirectional_mask(T_target, T_input)",
             "return bidirectional_mask(T_input, T_target)", {"cross": "cross_mask(2, 5) must have shape (2, 5)"}),
    # 03: layernorm
    Mutation("03_layernorm", "variance-as-mean-square-minus-square-mean", LAYERNORM_VAR,
             "var = (x * x).mean(axis=-1, keepdims=True) - x.mean(axis=-1, keepdims=True) ** 2",
             {"float32_stable": "cancels catastrophically"}),
    Mutation("03_layernorm", "unbiased-variance", LAYERNORM_VAR, "var = (xc * xc).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)  # (B, T, 1)",
             {"normalises": "uses the unbiased variance", "float32_stable": "uses the unbiased variance"}),
    Mutation("03_layernorm", "eps-outside-the-square-root", "rstd = 1.0 / np.sqrt(var + eps)", "rstd = 1.0 / (np.sqrt(var) + eps)",
             {"normalises": "adds eps outside the square root", "gain_and_bias": "adds eps outside the square root"}),
    Mutation("03_layernorm", "normalises-over-every-entry", "xc = x - x.mean(axis=-1, keepdims=True)  # (B, T, C), centred\n    " + LAYERNORM_VAR,
             "xc = x - x.mean()\n    var = (xc * xc).mean()  # (B, T, 1)", {"normalises": "normalises over every entry at once"}),
    Mutation("03_layernorm", "bias-before-gain", "return xhat * w + b, (xhat, rstd, w)", "return (xhat + b) * w, (xhat, rstd, w)",
             {"gain_and_bias": "adds the bias before the gain"}),
    Mutation("03_layernorm", "backward-forgets-the-variance-path", " - xhat * (g * xhat).mean(axis=-1, keepdims=True)", "",
             {"backward": "gradient w.r.t. x off by relative error"}),
    # 04: attention
    Mutation("04_attention", "scores-not-scaled", "scale = 1.0 / np.sqrt(q.shape[-1])", "scale = 1.0",
             {"forward": "does not divide the scores by √hs"}),
    Mutation("04_attention", "scores-divided-by-hs", "scale = 1.0 / np.sqrt(q.shape[-1])", "scale = 1.0 / q.shape[-1]",
             {"forward": "divides the scores by hs, not by √hs"}),
    Mutation("04_attention", "mask-by-multiplying-scores", "scores = np.where(mask, scores, -1e30)", "scores = scores * mask",
             {"forward": "multiplies the scores by the mask", "masked_keys": "can see position"}),
    Mutation("04_attention", "dv-missing-a-transpose", "dv = att.swapaxes(-1, -2) @ dout", "dv = att @ dout",
             {"backward_causal": "gradient w.r.t. v off by relative error", "backward_cached": "dv = Aᵀ dout"}),
    Mutation("04_attention", "backward-forgets-the-scale", "* scale  # softmax backward, then the scale", "# softmax backward",
             {"backward_causal": "1.732 times the true gradient"}),
    # 05: a training step
    Mutation("05_training_step", "attention-residual-dropped", "    x = x + a\n", "    x = a\n",
             {"loss": "your loss is off by"}),
    Mutation("05_training_step", "tied-head-gradient-forgotten", 'grads["wte"] = dwte + dwte_head.T', 'grads["wte"] = dwte',
             {"gradients": "gradient w.r.t. wte off by relative error"}),
    Mutation("05_training_step", "gradient-ascent", "        params[name] -= lr * grads[name]", "        params[name] += lr * grads[name]",
             {"training": "step against the gradient"}),
    Mutation("05_training_step", "step-not-in-place", "        params[name] -= lr * grads[name]", "        params = {**params, name: params[name] - lr * grads[name]}",
             {"training": "must update params in place"}),
    # 06: a power-law fit
    Mutation("06_power_law_fit", "exponent-sign-flipped", "float(-slope)", "float(slope)",
             {"exact_law": "your alpha has the wrong sign", "least_squares": "your alpha has the wrong sign"}),
    Mutation("06_power_law_fit", "log10-on-one-axis-ln-on-the-other", "np.polyfit(np.log(C), np.log(L), 1)", "np.polyfit(np.log10(C), np.log(L), 1)",
             {"exact_law": "mixes logarithms", "extrapolation": "your law predicts"}),
    Mutation("06_power_law_fit", "intercept-taken-as-a", "float(np.exp(intercept))", "float(intercept)",
             {"exact_law": "your a is log a"}),
    Mutation("06_power_law_fit", "prediction-with-positive-exponent", "np.float64) ** (-alpha)", "np.float64) ** alpha",
             {"predict": "uses C**alpha"}),
    # 07: the KV cache
    Mutation("07_kv_cache", "cache-overwrites-instead-of-growing", "if self.k is None:", "if True:",
             {"cache_grows": "after appending [3, 1] positions", "cache_in_gpt": "does append return all the keys"}),
    Mutation("07_kv_cache", "cache-mask-without-the-offset-square", CACHE_MASK, "masks.causal_mask(q_new.shape[2])",
             {"cached_attention_chunks": "has shape (2, 5): causal_mask(2, 5)"}),
    Mutation("07_kv_cache", "cache-mask-without-the-offset-diagonal", CACHE_MASK, "np.tril(np.ones((q_new.shape[2], k.shape[2]), dtype=bool))",
             {"cached_attention_chunks": "position 3 cannot see position 1, but it must"}),
    Mutation("07_kv_cache", "decode-rebuilds-the-cache-each-step", DECODE_STEP, "cache = ModelKVCache(model)\n        " + DECODE_STEP,
             {"decoding_feeds_each_token_once": "call 2 of model.forward got a new cache", "greedy_tokens": "greedy decoding of prompt 1 must give"}),
    Mutation("07_kv_cache", "decode-recomputes-without-cache", DECODE_STEP, "logits = model.forward(np.concatenate(tokens, axis=1))",
             {"decoding_feeds_each_token_once": "call 2 of model.forward got no cache"}),
    Mutation("07_kv_cache", "decode-takes-the-first-position", "next_token = logits[:, -1].argmax(axis=-1)[:, None]  #", "next_token = logits[:, 0].argmax(axis=-1)[:, None]  #",
             {"greedy_tokens": "greedy decoding of prompt 0 must give"}),
    # 08: LoRA
    Mutation("08_lora", "lora-without-scale", LORA_OUT, "out = x @ W + down @ B  #",
             {"merged_weight": "leaves out the scale"}),
    Mutation("08_lora", "lora-scales-the-frozen-path", LORA_OUT, "out = scale * (x @ W + down @ B)  #",
             {"starts_as_the_base": "lora_forward(x, W, A, 0, scale)", "merged_weight": "scales the frozen path too"}),
    Mutation("08_lora", "lora-dx-without-the-adapters", "dx = dout @ W.T + ddown @ A.T  #", "dx = dout @ W.T  #",
             {"backward": "dx misses the path through the adapters"}),
    Mutation("08_lora", "lora-dB-without-scale", "dB = scale * down.T @ dout  #", "dB = down.T @ dout  #",
             {"backward": "gradient w.r.t. B", "chain_through_the_product": "gradient w.r.t. B"}),
    # 10: byte-pair encoding
    Mutation("10_bpe", "bpe-counts-across-chunk-boundaries", "for ids in chunks:  # each chunk on its own",
             "for ids in [[i for chunk in chunks for i in chunk]]:  # all the chunks as one sequence",
             {"within_chunks": "counts pairs across chunk boundaries", "ten_steps": "occurs inside no chunk"}),
    Mutation("10_bpe", "bpe-counts-overlapping-pairs-twice",
             "            if pair == previous and pair[0] == pair[1]:\n"
             "                previous = None  # a a a: this (a, a) overlaps the one just counted\n"
             "                continue\n", "",
             {"runs_of_one_id": "counts overlapping pairs twice"}),
    Mutation("10_bpe", "bpe-merge-keeps-the-second-id", "i += 2  # both ids of the pair are used up", "i += 1",
             {"left_to_right": "keeps the second id of each pair it replaces"}),
    Mutation("10_bpe", "bpe-tie-goes-to-the-first-seen-pair", BPE_TIE,
             "pair = max(counts, key=counts.get)  # the most frequent",
             {"most_frequent_pair": "a tie goes to the smaller pair of ids", "ten_steps": "a tie goes to the smaller pair"}),
    Mutation("10_bpe", "bpe-tie-goes-to-the-larger-pair", BPE_TIE,
             "pair = max(counts, key=lambda p: (counts[p], p))  # the most frequent",
             {"most_frequent_pair": "a tie goes to the smaller pair of ids"}),
    Mutation("10_bpe", "bpe-encode-merges-the-leftmost-pair", BPE_RANK,
             "pair = next((p for p in zip(ids, ids[1:]) if p in ranks), None)  # the first pair that has a merge",
             {"lowest_rank_first": "merges the leftmost pair that has a merge"}),
    Mutation("10_bpe", "bpe-encode-merges-the-first-pairs-only", BPE_LOOP,
             "for pair in sorted(set(zip(ids, ids[1:])) & ranks.keys(), key=ranks.get):  # the chunk's pairs, by rank\n"
             "        ids = merge(ids, pair, 256 + ranks[pair])",
             {"again_after_each_merge": "look at the pairs again after every merge", "new_text": "look at the pairs again"}),
    Mutation("10_bpe", "bpe-encode-returns-after-one-merge", "ids = merge(ids, pair, 256 + ranks[pair])\n    return ids",
             "return merge(ids, pair, 256 + ranks[pair])\n    return ids",
             {"again_after_each_merge": "look at the pairs again after every merge"}),
    # 09: DPO
    Mutation("09_dpo", "dpo-sequence-counts-the-prompt", DPO_SUM, "return logp.sum(axis=1)  # every position",
             {"response_only": "counts the prompt's (and the padding's) positions"}),
    Mutation("09_dpo", "dpo-sequence-averages-the-response", DPO_SUM,
             "return (logp * loss_mask).sum(axis=1) / loss_mask.sum(axis=1)  # per token",
             {"response_only": "averages over the response's positions"}),
    Mutation("09_dpo", "dpo-sequence-log-of-softmax", DPO_LOG_SOFTMAX,
             "log_probs = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True))  # log of softmax",
             {"large_logits": "log(softmax) meets log 0"}),
    Mutation("09_dpo", "dpo-loss-sign-error", DPO_LOSS, "return float(np.logaddexp(0, margin).mean())  #",
             {"loss_value": "has a sign error", "loss_limits": "has a sign error"}),
    Mutation("09_dpo", "dpo-loss-without-the-reference", DPO_MARGIN,
             "margin = beta * (policy_chosen - policy_rejected)  # (N,) implicit rewards",
             {"loss_value": "leaves out the reference", "loss_limits": "it must be log 2"}),
    Mutation("09_dpo", "dpo-loss-beta-outside-the-sigmoid", DPO_MARGIN + "\n    " + DPO_LOSS,
             "margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)\n"
             "    return float(beta * np.logaddexp(0, -margin).mean())  #",
             {"loss_value": "multiplies the loss by beta"}),
    Mutation("09_dpo", "dpo-loss-log-of-sigmoid", DPO_LOSS, "return float(-np.log(1 / (1 + np.exp(-margin))).mean())  #",
             {"loss_limits": "overflows for a pair far in the wrong order"}),
    Mutation("09_dpo", "dpo-grads-sign-error", DPO_D_CHOSEN, "d_chosen = beta * weight / len(margin)  #",
             {"gradient": "has a sign error", "gradient_at_the_start": "must be -0.0375"}),
    Mutation("09_dpo", "dpo-grads-without-beta", DPO_D_CHOSEN, "d_chosen = -weight / len(margin)  #",
             {"gradient": "leaves out beta", "gradient_at_the_start": "with the policy equal to the reference"}),
    Mutation("09_dpo", "dpo-grads-weighted-by-sigmoid-of-the-margin", "weight = np.exp(-np.logaddexp(0, margin))",
             "weight = np.exp(-np.logaddexp(0, -margin))", {"gradient": "weights each pair by sigmoid(m)"}),
    Mutation("09_dpo", "dpo-grads-rejected-with-the-chosen-sign", "return d_chosen, -d_chosen",
             "return d_chosen, d_chosen", {"gradient": "has the sign of d_chosen"}),
    Mutation("09_dpo", "dpo-backward-gives-the-prompt-a-gradient", "weight = dseq[:, None] * loss_mask  #",
             "weight = dseq[:, None] * np.ones_like(loss_mask)  #",
             {"backward": "gives the prompt's (or the padding's) positions a gradient"}),
    Mutation("09_dpo", "dpo-backward-sign-error", DPO_D_LOGITS, "return weight[..., None] * (probs - onehot)  #",
             {"backward": "a sign error?"}),
]
