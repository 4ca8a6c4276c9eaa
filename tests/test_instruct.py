"""Lesson 07's toy (minilm/studies/instruct.py): pre-train a glib size as its preset does, tune it on the
instruction pairs, probe before and after; the preset is the one docs/lab/lesson07_toy_design.md wrote down."""
import json

import numpy as np

from minilm import parallel
from minilm.data.instructions import encode
from minilm.studies import glib, instruct, runner


def test_the_lesson_preset_is_the_design():
    design = instruct.preset("lesson07")
    base, size = instruct.base_size(design)
    assert (design.base, size.name, size.lr, base.steps) == ("full", "d96 L3", 3.3e-3, 3000)
    assert design.seeds == [0, 1, 2, 3, 4] and design.pairs == 400 and (design.steps, design.batch_size) == (300, 16)
    assert design.lr == {"full": 1e-3, "lora": 1e-2} and (design.lora_rank, design.lora_alpha) == (8, 16.0)
    assert design.replay == 0.0
    second = instruct.preset("lesson07b")  # the design's second part, after the first failed
    assert (second.pairs, second.steps, second.replay, second.seeds) == (16000, 1000, 0.5, [0, 1, 2, 3, 4])
    assert (second.base, second.d_model, second.lr, second.batch_size) == ("full", 96, design.lr, 16)


def test_the_ci_preset_pretrains_as_the_glib_study_tunes_and_reports(tmp_path):
    from minilm.__main__ import main

    out = tmp_path / "instruct_ci.json"
    assert main(["instruct", "--preset", "ci", "--out", str(out), "--quiet"]) == 0
    results = runner.load_results(out, "instruct")
    assert sorted(results["points"]) == ["full/seed0", "lora/seed0"]
    full, lora = results["points"]["full/seed0"], results["points"]["lora/seed0"]
    config = instruct.preset("ci")
    base, size = instruct.base_size(config)
    point = next(p for key, p in glib.sweep_points(glib.PRESETS["ci"]) if p[2] == size and p[3] == 0 and key.startswith("main/"))
    with parallel.one_blas_thread():  # as the glib study trains every point (runner.measured)
        own = glib.measure(point)["probes"]
    assert full["before"] == lora["before"] == own  # the glib study's own model
    assert full["after"] != full["before"] and lora["trainable"] < full["trainable"]
    assert full["tune_positions"] >= config.steps * config.batch_size * 10  # every row has a dozen tokens or more
    assert np.isclose(full["tune_flops"], 6 * full["non_embedding_params"] * full["tune_positions"])
    text = instruct.report(results)
    assert text.count("C follow the instruction") == 2 and "seeds whose C exceeds 0.5 after: " in text
    before = json.loads(out.read_text())
    assert main(["instruct", "--preset", "ci", "--out", str(out), "--quiet"]) == 0  # nothing left to train
    assert json.loads(out.read_text())["points"] == before["points"]


def test_every_committed_base_is_the_glib_sweeps_own_model():
    """The design's reproduction rule: before tuning, each pre-trained d96 probes exactly as its record in
    glib_full.json (every point, both arms), and its pre-training compute is that record's."""
    from minilm.course.paths import RESULTS

    tuned = runner.load_results(RESULTS / "instruct_lesson07.json", "instruct")
    full = runner.load_results(RESULTS / "glib_full.json", "glib")
    assert len(tuned["points"]) == 10
    for point in tuned["points"].values():
        record = full["points"][f"main/{point['size']}/seed{point['seed']}"]
        assert point["before"] == record["probes"]
        assert point["non_embedding_params"] == record["non_embedding_params"]


def test_a_rehearsing_batch_holds_pairs_and_stream_windows():
    """replay 0.5 of 16: 8 instruction rows (the loss on their answers only), padded to the window, and 8
    windows of the pre-training stream (the loss everywhere), each window the stream's next-token pairs."""
    corpus, stream = glib._corpus_and_stream("ci", "main")
    rows = encode(corpus.instruction_pairs(40), corpus.tokenizer, glib.BLOCK_SIZE)
    batches = instruct.tuning_batches(rows, corpus.tokenizer.pad_id, stream, replay=0.5)
    idx, targets, mask = batches(np.random.default_rng(0), 16)
    assert idx.shape == targets.shape == mask.shape == (16, glib.BLOCK_SIZE)
    assert all(0 < m.sum() <= 3 for m in mask[:8])  # an answer word and its <eos>
    assert (mask[8:] == 1).all() and (idx[8:, 1:] == targets[8:, :-1]).all()
    text = stream.tobytes()
    assert all(np.concatenate([w, t[-1:]]).astype(stream.dtype).tobytes() in text for w, t in zip(idx[8:], targets[8:]))
    assert (idx[:8, 0] == corpus.tokenizer.eos_id).all()  # each row begins as the stream's examples do
