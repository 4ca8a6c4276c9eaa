"""The base model of lesson 07's live run: glib full's d96, seed 0, pre-trained once as the glib study trains it
(and as every lesson 07 point trained its base), its probes printed beside its lesson 04 record, and saved as a
checkpoint. Another CPU or BLAS rounds differently, and training turns that into a model that differs from the
record as another seed would, not bit for bit: the lesson compares the live run with the seeds' band.

    python docs/lab/lesson07_d96_base.py    (143 s of one core here; writes lessons/results/instruct_d96_seed0.npz)

The lesson's live cell loads it and tunes it with LoRA under the second design: the learner's run starts from a
pre-trained d96 and only tunes, instead of pre-training for minutes first.
"""
from minilm.checkpoint import save_checkpoint
from minilm.course.paths import RESULTS
from minilm.parallel import one_blas_thread
from minilm.studies import glib, instruct, runner

BASE = RESULTS / "instruct_d96_seed0.npz"


def main():
    design = instruct.preset("lesson07b")
    base, size = instruct.base_size(design)
    corpus, stream = glib._corpus_and_stream(design.base, "main")
    with one_blas_thread():  # as the study trained and probed every point
        model, _, _ = glib.train_point(base, corpus, stream, size, 0, progress=False)
        probes = glib.score_probes(model, corpus)
    record = runner.load_results(RESULTS / "glib_full.json", "glib")["points"][f"main/{size.name}/seed0"]["probes"]
    for name, scored in (("this run", probes), ("lesson 04's record", record)):  # equal where the CPU and BLAS are
        shares = instruct.exact_on_most_exposed(corpus, scored)
        print(f"{size.name} seed 0, {name:<18}: " + ", ".join(f"{p} {v:.2f}" for p, v in shares.items()))
    save_checkpoint(BASE, model.params, model.checkpoint_meta())
    print(f"wrote {BASE}")


if __name__ == "__main__":
    main()
