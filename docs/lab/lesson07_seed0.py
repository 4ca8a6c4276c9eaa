"""The seed-0 table of docs/lab/lesson07_toy_design.md ("Why, on seed 0 only"): glib full's d96, seed 0, pre-trained
once as the glib study trains it, then tuned in five ways from the same weights and probed after each.

    python docs/lab/lesson07_seed0.py        (about 5 minutes on one core; writes lessons/results/instruct_seed0.json)

Each row prints lesson 04's probes on the 20 most exposed quotes, then the share of the 400 training pairs and of
400 fresh pairs (same non-probe quotes, new draws) whose answer is the most likely next word. "without <eos>"
drops the <eos> that minilm.data.instructions.encode puts at the start of every row (the first design's rows).
"""
import copy
import dataclasses


from minilm.course.paths import RESULTS
from minilm.data.instructions import Rows, encode
from minilm.studies import glib, instruct, runner

WAYS = {  # name -> (rows begin with <eos>, pairs, steps, replay)
    "the first design (lr 1e-3, 400 pairs, 300 steps)": (False, 400, 300, 0.0),
    "the same, each row begun with <eos>": (True, 400, 300, 0.0),
    "<eos>, 16,000 pairs, 1,000 steps": (True, 16000, 1000, 0.0),
    "<eos>, 16,000 pairs, 1,000 steps, replay 0.5": (True, 16000, 1000, 0.5),
}


def pair_accuracy(model, corpus, pairs):
    probs = glib.next_word_probs(model, corpus.tokenizer, [p.prompt for p in pairs])
    return float((probs.argmax(axis=1) == [corpus.tokenizer.ids[p.response] for p in pairs]).mean())


def without_eos(rows):
    return Rows([r[1:] for r in rows.ids], [s - 1 for s in rows.response_starts], rows.skipped)


def main():
    design = instruct.preset("lesson07")
    base, size = instruct.base_size(design)
    corpus, stream = glib._corpus_and_stream(design.base, "main")
    model, _, _ = glib.train_point(base, corpus, stream, size, 0, progress=False)
    pretrained = copy.deepcopy(model.params)
    training, fresh = corpus.instruction_pairs(400), corpus.instruction_pairs(400, seed=1)

    table = {}

    def row(name):
        probes = instruct.exact_on_most_exposed(corpus, glib.score_probes(model, corpus))
        table[name] = {**probes, "training pairs": pair_accuracy(model, corpus, training),
                       "fresh pairs": pair_accuracy(model, corpus, fresh)}
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in table[name].values()) + " |", flush=True)

    print("| tuning | A | B | C | D | training pairs | fresh pairs |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    row("before")
    for name, (eos, pairs, steps, replay) in WAYS.items():
        for key, value in pretrained.items():
            model.params[key][...] = value
        config = dataclasses.replace(design, pairs=pairs, steps=steps, replay=replay)
        rows = encode(corpus.instruction_pairs(pairs), corpus.tokenizer, glib.BLOCK_SIZE)
        instruct.tune(config, "full", model, corpus, 0, stream, rows if eos else without_eos(rows))
        row(name)
    runner.save_json({"ways": {name: dict(zip(("eos", "pairs", "steps", "replay"), way)) for name, way in WAYS.items()},
                      "table": table, "code_version": runner.code_version()}, RESULTS / "instruct_seed0.json")


if __name__ == "__main__":
    main()
