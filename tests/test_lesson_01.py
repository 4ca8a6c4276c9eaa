"""Lesson 01's sentences that state a number or a comparison, checked against the committed outputs they sit
beside. (The lesson itself runs under nbval in the default suite.)"""
import os
import re

import nbformat
import numpy as np

from minilm.course import guess
from minilm.studies import runner
from minilm.studies.stats import seed_band
from tests.helpers import course_map_row, first_screen, sentences, within_seed_band

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "01_next_token_loss.ipynb")


def output_of(notebook, starting):
    """The printed text of the notebook's code cell whose source starts with `starting` (lessons 01-03 share it)."""
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells
                if c.cell_type == "code" and c.source.startswith(starting))
    return "".join(o.get("text", "") for o in cell.outputs)


def markdown_of(notebook, starting):
    return next(c.source for c in nbformat.read(notebook, as_version=4).cells
                if c.cell_type == "markdown" and c.source.startswith(starting))


def word_losses(line):
    return {word: float(loss) for word, loss in re.findall(r"(\S+):(\d+\.\d+)", line)}


def test_the_capital_costs_what_the_paragraph_says():
    out = output_of(LESSON, "for s in sentences[:2]:")
    capital, hobby = (word_losses(line) for line in out.splitlines()[:2])
    text = markdown_of(LESSON, "Read the numbers.")
    assert "*baku* costs about as much as\nthe hobby after *to*" in text
    assert capital["baku"] > 1.0 and abs(capital["baku"] - hobby["code"]) < 0.5  # not cheap; like the free choice
    assert capital["azerbaijan"] > capital["baku"] and hobby["likes"] < 0.2  # the arbitrary word; cheap grammar
    rank, n_facts, n_head = map(int, re.search(r"azerbaijan is fact (\d+) of (\d+) .*\(the (\d+) most frequent", out).groups())
    assert rank <= n_head < n_facts  # "one of the frequent facts"


def table_rows(out):
    """task -> (share, loss, exact, log p(ans)) from the per-task table."""
    rows = re.findall(r"^(\w+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)%\s+(-[\d.]+)\s+\d+$", out, re.M)
    return {task: tuple(float(x) for x in values) for task, *values in rows}


def test_loss_and_answer_logprob_and_the_contributions():
    table = table_rows(output_of(LESSON, "held_out = toyworld.generate("))
    share, loss, exact, logp = table["arithmetic"]
    assert abs(logp + 3 * loss) < 0.002 and exact < 10  # -3 x loss for three digits; "has not learned it"
    assert all(abs(table[t][3] + table[t][1]) < 0.002 for t in table if t != "arithmetic")  # one-word answers
    adds = dict((b, float(c)) for b, c in re.findall(r"(\w+) (\d\.\d+)", output_of(LESSON, "buckets = list(ev.shares)")))
    tasks = [b for b in adds if b != "context"]
    assert max(tasks, key=adds.get) == "arithmetic" and max(adds, key=adds.get) == "context"
    assert adds["arithmetic"] < 0.15 * sum(adds.values())  # "a small part of the overall loss"
    assert "Arithmetic has the\nmost answer tokens" in markdown_of(LESSON, "Each bucket moves the overall loss")


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_outputs():
    """The opening's claim, and its verdict number by number against the outputs of sections 1, 2 and 6."""
    screen = first_screen(LESSON)
    claim, text = screen["claim"], screen["measured"]
    assert sentences(claim) <= 2 and "massively multi-task learning" in claim and "weighted sum" in claim
    assert sentences(text) <= 3
    out = output_of(LESSON, "held_out = toyworld.generate(")
    table = table_rows(out)
    overall = float(re.search(r"^overall\s+100%\s+(\d\.\d+)", out, re.M).group(1))
    direct, summed = re.search(r"directly computed loss (\d\.\d+), sum of share x loss (\d\.\d+)", out).groups()
    adds = dict((b, float(c)) for b, c in re.findall(r"(\w+) (\d\.\d+)", output_of(LESSON, "buckets = list(ev.shares)")))
    _, _, exact, _ = table["arithmetic"]
    assert f"has a loss of {overall:.3f} nats per word on text it never saw" in text
    assert direct == summed and "add back up to exactly that (§6)" in text
    assert max((b for b in adds if b != "context"), key=adds.get) == "arithmetic"  # "more than any other task"
    assert exact < 10 and f"Arithmetic, which the model has not learned, adds {adds['arithmetic']:.3f}, more than any " \
                          "other task" in text
    assert adds["context"] > overall / 2  # "most of the loss"
    assert f"most of the loss, {adds['context']:.3f}, comes from the context words" in text
    assert (f"(result: the pieces add back up to the loss, {overall:.3f}; arithmetic, not learned, adds the most of any "
            "task)") in course_map_row("01_next_token_loss")  # the course map says the same
    moments = " ".join(moment for _, moment in screen["map"])
    probs = {w: float(p) for w, p in re.findall(r"next word is\s+(\w+): p = (\d\.\d+)", output_of(LESSON, "p = layers.softmax("))}
    assert (probs["drink"], probs["study"]) == (0.6, 0.3)  # the lecture's numbers, as section 1 makes them
    assert "*drink* at 0.6 and *study* at 0.3" in moments and '"I want this 0.6 to be as close as possible to 1"' in moments


def test_the_guess_is_the_untrained_models_loss_and_the_comparison_runs():
    """§5's guess: the untrained model pays about log V on every word; the comparison line works with the committed
    placeholder and with a filled-in guess."""
    vocab = int(re.search(r"vocabulary: (\d+) words", output_of(LESSON, "world = toyworld.ToyworldConfig()")).group(1))
    out = output_of(LESSON, "print(guess.compare_number(my_guess")
    first = float(re.search(r"the untrained model's first loss (\d+\.\d+)", out).group(1))
    assert f"-log(1/{vocab}) = {np.log(vocab):.2f} nats" in out and abs(first - np.log(vocab)) < 0.1  # "starts there"
    assert out.startswith("no guess yet for the untrained model's loss")  # committed with the placeholder
    assert guess.compare_number(None, first, "the untrained model's loss").startswith("no guess yet")
    assert "within a factor of 1.0" in guess.compare_number(np.log(vocab), first, "the untrained model's loss", " nats")
    training = output_of(LESSON, "model = GPT(")
    assert f"loss {first:.2f} ->" in training  # the first loss the comparison reads is the training's own


def test_the_overflow_question_and_its_worked_answer():
    out = output_of(LESSON, "big = (logits + 100)")
    value = 1000 + np.log(2)
    assert f"log-sum-exp of [1000, 1000]: {value:.3f}" in out
    answer = " ".join(markdown_of(LESSON, "**Question.** Work out $\\log (e^{1000}").split())
    assert f"1000 + \\log 2 = {value:.3f}" in answer
    assert f"about $1.8 \\times 10^{{308}}$" in answer and f"{np.finfo(np.float64).max:.1e}" == "1.8e+308"
    assert f"about $10^{{{int(1000 / np.log(10))}}}$" in answer


def test_the_arithmetic_question_and_its_worked_answer():
    out = output_of(LESSON, "held_out = toyworld.generate(")
    overall = float(re.search(r"^overall\s+100%\s+(\d\.\d+)", out, re.M).group(1))
    adds = dict((b, float(c)) for b, c in re.findall(r"(\w+) (\d\.\d+)", output_of(LESSON, "buckets = list(ev.shares)")))
    exact = table_rows(out)["arithmetic"][2]
    answer = " ".join(markdown_of(LESSON, "**Question.** Suppose a better model learned arithmetic").split())
    without = overall - adds["arithmetic"]
    lower = 100 * adds["arithmetic"] / overall
    assert f"{overall:.3f} − {adds['arithmetic']:.3f} = {without:.3f}, about {lower:.0f}% lower" in answer
    assert f"from {exact:.1f}% exact" in answer and max(adds, key=adds.get) == "context"  # "most of it is the context"


def test_the_live_run_lands_in_the_committed_seeds_band():
    """§6's live run (nbval runs the cell; here its committed output): a sweep model trained with a new seed, its
    overall loss within the band of the committed seeds, arithmetic the task that adds the most in every run."""
    source = next(c.source for c in nbformat.read(LESSON, as_version=4).cells if "live" in c.metadata.get("tags", []))
    assert "scaling.Run(n_layer=1, d_model=24, n_head=2, seed=live_seed, data_fraction=0.5)" in source
    results = runner.load_results(os.path.join(ROOT, "lessons", "results", "scaling_lesson03.json"), "scaling")
    config = results["config"]
    seed = int(re.search(r"live_seed = (\d+)", source).group(1))
    assert seed not in config["seeds"] and (len(config["sizes"]), len(config["seeds"])) == (6, 3)  # "six sizes, three seeds"
    assert [1, 24, 2] in config["sizes"] and 0.5 == config["family_fraction"]  # "on half of its tokens"
    out = output_of(LESSON, "live_seed = ")
    mine = float(re.search(r"^overall loss\s+(\d\.\d+)", out, re.M).group(1))
    seeds = [results["points"][f"L1-d24-h2-f0.5-s{s}"]["val_loss"] for s in config["seeds"]]
    ok, message = within_seed_band(mine, seeds, floor=0.01 * np.mean(seeds))
    assert ok, message
    center, half = re.search(r"the seeds' band: (\d\.\d+) ± (\d\.\d+); your run is inside it", out).groups()
    assert (float(center), float(half)) == tuple(round(x, 3) for x in seed_band(seeds, floor=0.01 * np.mean(seeds)))
    assert re.search(r"the task that adds the most: arithmetic in your run; arithmetic, arithmetic, arithmetic", out)


def test_the_gradient_question_and_its_worked_answer():
    """§3's question: the gradients on drink and study as the printout shows them, and the loss at p = 0.9."""
    losses = output_of(LESSON, "p = layers.softmax(logits[None, :])[0]")
    p = {word: float(v) for word, v in re.findall(r"next word is\s+(\w+): p = ([\d.]+)", losses)}
    assert (p["drink"], p["study"]) == (0.6, 0.3) and "p = 0.600, loss = -log p = 0.511 nats" in losses
    gradient = [float(x) for x in output_of(LESSON, "z = logits.reshape(1, 1, -1)").split("p - onehot :")[1]
                .split("]")[0].strip(" [").split()]
    assert round(p["drink"] - 1, 4) in gradient and round(p["study"], 4) in gradient
    answer = " ".join(markdown_of(LESSON, "**Question.** The next word was *drink*").split())
    assert "0.600 − 1 = −0.4" in answer and "0.300 − 0 = +0.3" in answer
    assert f"−log 0.9 = {-np.log(0.9):.3f} nats, down from {-np.log(0.6):.3f}" in answer
    assert f"to −{1 - 0.9:.1f}" in answer


def token_lines(out):
    """sentence -> {tokenizer: (count, pieces)} from §7's printout of the tokens each sentence becomes."""
    found, sentence = {}, None
    for line in out.splitlines():
        row = re.match(r"^  (words|bytes|BPE \d+)\s+(\d+) tokens: (.*)$", line)
        if row:
            found[sentence][row.group(1)] = (int(row.group(2)), row.group(3).split("|"))
        elif line.strip():
            sentence = line.strip()
            found[sentence] = {}
    return found


def test_the_tokens_a_sentence_becomes_and_the_guess():
    """§7: the sentence as words (7), bytes (one per character) and BPE, an unknown word as <unk>; the guess line
    with the placeholder and a filled-in guess."""
    intro = " ".join(markdown_of(LESSON, "## 7. Tokens").split())
    sentence = "the capital of azerbaijan is baku ."
    tokens = token_lines(output_of(LESSON, "from minilm.tokenizer import BPETokenizer"))
    known, novel = tokens[sentence], tokens["the capital of wakanda is birnin zana ."]
    assert known["words"][0] == 7 and f"*{sentence}* is 7 tokens; as bytes, one per character" in intro
    assert known["bytes"][0] == len(sentence)
    assert known["words"][0] < known["BPE 384"][0] < known["bytes"][0]  # BPE between
    assert [p.replace("␣", " ") for p in known["BPE 1024"][1]] == [" " * (i > 0) + w for i, w in enumerate(sentence.split())]
    country = known["BPE 384"][1][3:known["BPE 384"][1].index("␣is")]  # the pieces of azerbaijan
    assert "".join(country).replace("␣", "") == "azerbaijan" and max(len(p.replace("␣", "")) for p in country) <= 2
    assert novel["words"][1].count("<unk>") == 3 and "<unk>" not in "".join(novel["BPE 1024"][1])
    read = " ".join(markdown_of(LESSON, "Read the two printouts.").split())
    assert "*wakanda*, *birnin* and *zana* are not among its words, and each becomes `<unk>`" in read
    assert "spells *azerbaijan* in pieces of one or two letters, the 1024-token one has learned it whole" in read
    out = output_of(LESSON, "print(guess.compare_number(my_token_guess")
    assert out.startswith("no guess yet for the sentence's tokens under BPE 384")
    assert f"(measured: {known['BPE 384'][0]})" in out.splitlines()[0]
    assert "within a factor of 1.0" in guess.compare_number(known["BPE 384"][0], known["BPE 384"][0], "the tokens")


def test_the_table_of_vocabulary_length_and_softmax_work():
    """§7's table: tokens an example and the softmax's scores, as the paragraph beside it reads them."""
    out = output_of(LESSON, "print(guess.compare_number(my_token_guess")
    rows = {name: (int(v.replace(",", "")), float(n), int(s.replace(",", "")))
            for name, v, n, s in re.findall(r"^(words|bytes|BPE \d+)\s+([\d,]+)\s+([\d.]+)\s+([\d,]+)$", out, re.M)}
    assert set(rows) == {"words", "bytes", "BPE 384", "BPE 1024"}
    for vocab, n, scores in rows.values():
        assert abs(vocab * n - scores) <= vocab * 0.05 + 1  # scores = vocabulary x tokens (n rounded to 0.1)
    read = " ".join(markdown_of(LESSON, "Read the two printouts.").split())
    (_, words, _), (_, on_bytes, _) = rows["words"], rows["bytes"]
    assert f"{on_bytes:.1f} tokens an example, {on_bytes / words:.1f} times the words' {words:.1f}" in read
    assert min(rows, key=lambda r: rows[r][1]) == "words"  # "Words make the fewest tokens"
    assert words < rows["BPE 384"][1] < on_bytes and words <= rows["BPE 1024"][1] < rows["BPE 384"][1]  # between
    assert max(rows, key=lambda r: rows[r][2]) == "BPE 1024" and "writes the most" in read
    assert abs(rows["BPE 1024"][1] / words - 1) < 0.1 and 1.6 < rows["BPE 1024"][0] / rows["words"][0] < 2  # "about
    # as many tokens as words and nearly twice the vocabulary"


def test_the_prefix_destroys_the_words_tokens_and_the_hyphen_suffix_keeps_them():
    """§7's made-up prefix: the counts over toyworld's words, under the learner's BPE always and SmolLM2 where it
    was installed when the lesson ran; the question's answer against the pieces printed."""
    out = output_of(LESSON, "from minilm.errors import MinilmError")
    counts = re.findall(r"^(your BPE 1024|SmolLM2): of (\d+) toyworld words, the word's own tokens survive in "
                        r"(\d+) as zoW, (\d+) as zo-W, (\d+) as W-zo$", out, re.M)
    assert counts and counts[0][0] == "your BPE 1024"
    for _, n, prefix, hyphen_prefix, suffix in counts:
        assert (int(prefix), int(hyphen_prefix), int(suffix)) == (0, 0, int(n)) and int(n) > 500
    answer = " ".join(markdown_of(LESSON, "The prefix destroys the word's tokens.").split())
    assert "the count of *zo-W* is 0 for both tokenizers" in answer and len(counts) == 2  # SmolLM2 ran
    smol = out.split("SmolLM2\n")[1]
    dog = re.search(r"zo-dog: (\S+)", smol).group(1).split("|")
    assert dog == ["␣zo", "-", "dog"] and "SmolLM2 writes *␣zo-dog* as *␣zo*, *-* and *dog*" in answer
    assert re.search(r"dog-zo: ␣dog\|", smol) and "␣dog" not in re.search(r"zodog: (\S+)", smol).group(1).split("|")
