"""The base model of lesson 08's live run: the preference study's base, seed 0, pre-trained once as every point of
the `lesson08` preset trained it, and saved as a checkpoint. Another CPU or BLAS rounds differently, and training
turns that into a model that differs from the record as another seed would, not bit for bit: the lesson compares
the live run with the seeds' band.

    python docs/lab/lesson08_base.py    (writes lessons/results/preference_base_seed0.npz)

The lesson's live cell loads it and tunes it on the demonstrations (the sft arm): the learner's run starts from
the pre-trained base and only tunes, instead of pre-training for minutes first.
"""
import numpy as np

from minilm.checkpoint import save_checkpoint
from minilm.course.paths import RESULTS
from minilm.parallel import one_blas_thread
from minilm.studies import preference

BASE = RESULTS / "preference_base_seed0.npz"


def main():
    config = preference.preset("lesson08")
    world = preference.World(config)
    with one_blas_thread():  # as the study trained and measured every point
        model = preference.pretrain(config, world, 0)
        measured = preference.answer_metrics(model, world.eval_prompts, world.tokenizer)
    print("base seed 0: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in measured.items()))
    save_checkpoint(BASE, model.params, model.checkpoint_meta())
    print(f"wrote {BASE}; tests/test_preference.py compares its answers with seed 0's record")


if __name__ == "__main__":
    main()
