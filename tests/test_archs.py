"""The toy seq2seq task, the same-budget comparison, the chat-cache measurement, and the mask drawings."""
import json
from pathlib import Path

import numpy as np
import pytest

from minilm import GPT, GPTConfig, masks
from minilm.course import figures
from minilm.chat import chat
from minilm.data import seq2seq as task
from minilm.errors import MinilmError
from minilm.studies.archs import VARIANTS, RunConfig, build_variant, runs_of, train_variant, transplant_table
from minilm.studies.runner import load_results
from minilm.train import TrainConfig
from tests.helpers import roughen

RESULTS = Path(__file__).resolve().parents[1] / "lessons" / "results" / "archs_default.json"


# ---- the task

def test_task_targets_are_the_first_input_words_translated_in_reverse():
    tok = task.tokenizer()
    batch = task.make_batch(tok, task.Shape(n_input=6, n_target=3), 4, np.random.default_rng(0))
    assert batch["src"].shape == (4, 6) and batch["tgt"].shape == batch["targets"].shape == (4, 3)
    for src, tgt, targets in zip(batch["src"], batch["tgt"], batch["targets"]):
        english = tok.decode(src).split()
        assert tok.decode(targets).split() == [task.LEXICON[w] for w in english[2::-1]]
        assert tok.decode(tgt).split() == [task.START] + tok.decode(targets).split()[:-1]  # shifted right


def test_task_rejects_a_target_longer_than_the_input():
    with pytest.raises(MinilmError):
        task.make_batch(task.tokenizer(), task.Shape(n_input=2, n_target=3), 1, np.random.default_rng(0))


# ---- training and the comparison

def test_every_variant_learns_the_task_a_little():
    run = RunConfig(d_model=16, n_head=2, eval_size=64,
                    train=TrainConfig(steps=30, batch_size=16, warmup_steps=5, eval_every=30))
    for variant in ("encoder-decoder", "decoder-only"):
        record, _ = train_variant(variant, "chat", run)
        first_loss = record["history"][0]["train_loss"]
        assert record["final"]["loss"] < np.log(task.tokenizer().vocab_size)  # better than uniform
        assert 0.0 <= record["final"]["exact_match"] <= record["final"]["token_accuracy"] <= 1.0
        assert np.isfinite(first_loss)


def test_transplanted_decoder_only_weights_reproduce_it_only_in_the_last_row():
    run = RunConfig(d_model=16, n_head=2, eval_size=32)
    tok = task.tokenizer()
    decoder_only = build_variant("decoder-only", task.SHAPES["chat"], run, tok.vocab_size, seed=3)
    rows = transplant_table(decoder_only, "chat", run)
    assert [r["variant"] for r in rows] == list(VARIANTS)
    diffs = {r["variant"]: r["max_abs_logit_diff"] for r in rows}
    assert diffs["decoder-only"] == 0.0
    assert diffs["prefix-LM"] > 0.0  # the bidirectional input changes the output
    assert diffs["+ shared parameters"] == diffs["+ shared attention"]  # copies of equal weights: no change


def test_committed_comparison_reproduces():
    """Re-run the first evaluation interval of one committed run and get the same numbers."""
    results = load_results(RESULTS, "archs")
    run = RunConfig.from_dict(results["config"]["run"])
    committed = runs_of(results, "chat", "decoder-only")[0]
    record, _ = train_variant("decoder-only", "chat", run, seed=0, until=run.train.eval_every)
    for key in ("train_loss", "loss", "token_accuracy"):
        assert record["history"][0][key] == pytest.approx(committed["history"][0][key], rel=1e-4, abs=1e-6)
    assert {r["variant"] for r in results["points"].values()} == set(VARIANTS)
    assert all("transplanted" in runs_of(results, shape, "decoder-only")[0] for shape in task.SHAPES)


def test_archs_cli_resumes_and_rejects_bad_flags_in_one_line(tmp_path, capsys):
    from minilm.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["archs", "--preset", "huge"])
    assert stop.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    out = tmp_path / "archs.json"
    assert main(["archs", "--preset", "ci", "--out", str(out), "--quiet"]) == 0
    first = load_results(out, "archs")
    assert len(first["points"]) == len(task.SHAPES) * len(VARIANTS)
    assert all(r["history"][-1]["step"] == 2 for r in first["points"].values())
    assert main(["archs", "--preset", "ci", "--out", str(out), "--quiet"]) == 0  # nothing left to train
    assert load_results(out, "archs") == first


# ---- the chat cache

def chat_model():
    model = GPT(GPTConfig(vocab_size=13, block_size=40, n_layer=2, n_head=2, d_model=16, dtype="float64"), seed=1)
    return roughen(model, np.random.default_rng(0), 0.3)  # away from the init, so that greedy replies vary


def test_with_the_cache_each_turn_costs_its_new_tokens_without_it_the_history():
    model = chat_model()
    cached = chat(model, n_turns=5, user_len=3, reply_len=4, reuse_cache=True)
    reencoded = chat(model, n_turns=5, user_len=3, reply_len=4, reuse_cache=False, input_attention="bidirectional")
    assert [t["tokens_processed"] for t in cached] == [3 + 4] * 5  # proportional to the new tokens
    processed = [t["tokens_processed"] for t in reencoded]
    assert processed == [t["history"] + 3 + 4 for t in reencoded]  # the whole history, again
    assert all(b > a for a, b in zip(processed, processed[1:]))


def test_the_reused_cache_gives_the_same_conversation_as_recomputing_it():
    model = chat_model()
    cached = chat(model, n_turns=4, user_len=3, reply_len=4, reuse_cache=True)
    recomputed = chat(model, n_turns=4, user_len=3, reply_len=4, reuse_cache=False, input_attention="causal")
    assert [t["reply"] for t in cached] == [t["reply"] for t in recomputed]
    assert len({tok for t in cached for tok in t["reply"]}) > 1  # a real conversation, not one token repeated


def test_a_bidirectional_chat_cannot_reuse_its_cache():
    with pytest.raises(MinilmError, match="causal"):
        chat(chat_model(), 2, 3, 4, reuse_cache=True, input_attention="bidirectional")
    with pytest.raises(MinilmError, match="block_size"):
        chat(chat_model(), 10, 3, 4)


# ---- drawings

def test_mask_drawings():
    tokens = "that is good = das ist gut".split()
    fig = figures.attention_mask(masks.prefix_lm_mask(7, 4), tokens, title="prefix-LM")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    np.testing.assert_array_equal(ax.images[0].get_array(), masks.prefix_lm_mask(7, 4))
    fig = figures.attention_masks([{"mask": masks.causal_mask(3), "q_tokens": tokens[:3]},
                                 {"mask": masks.cross_mask(3, 4), "q_tokens": tokens[4:], "k_tokens": tokens[:4]}])
    assert len(fig.axes) == 2
    with pytest.raises(MinilmError):
        figures.attention_mask(masks.causal_mask(3), tokens)


def test_comparison_and_chat_figures_draw_from_data():
    model = chat_model()
    fig = figures.chat_cost(chat(model, 3, 2, 2), chat(model, 3, 2, 2, reuse_cache=False))
    line = fig.axes[0].lines[0]  # re-encoded: cumulative tokens
    assert list(line.get_ydata()) == [4, 4 + 8, 4 + 8 + 12]
    results = json.loads(RESULTS.read_text())
    assert len(figures.archs_curves(results).axes) == len(results["config"]["shapes"])


def test_mask_panels_for_a_sentence_compose_with_padding():
    text = "that is good <pad> = das ist gut"
    panels = {kind: figures.mask_panel(kind, text) for kind in figures.MASK_KINDS}
    assert panels["encoder-decoder cross"]["mask"].shape == (4, 4)  # "= das ist gut" x "that is good <pad>"
    assert panels["prefix-LM"]["mask"].shape == (8, 8)
    for panel in panels.values():
        pad = panel["k_tokens"].index("<pad>")
        assert not panel["mask"][:, pad].any()  # nobody attends to the padding
    causal = panels["decoder-only (causal)"]["mask"]
    assert causal[7, :3].all() and not causal[2, 3:].any()
    assert len(figures.show_mask("encoder (bidirectional)", "a b = c").axes) == 1
    with pytest.raises(MinilmError, match="input = target"):
        figures.mask_panel("prefix-LM", "no separator here")
    with pytest.raises(MinilmError, match="unknown mask kind"):
        figures.mask_panel("sideways", "a = b")


def test_the_mask_widget_moves():
    import ipywidgets
    w = ipywidgets.interactive(figures.show_mask, kind=list(figures.MASK_KINDS), text="that is good = das ist gut")
    w.children[0].value = "encoder-decoder cross"
    w.children[1].value = "a b c = x y"
    assert w.result.axes[0].images[0].get_array().shape == (3, 3)  # "= x y" attends to "a b c"
