"""Lesson 01's sentences that state a number or a comparison, checked against the committed outputs they sit
beside. (The lesson itself runs under nbval in the default suite.)"""
import os
import re

import nbformat

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
