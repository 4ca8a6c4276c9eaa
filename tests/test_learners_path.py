"""The learner's path (docs/adding_a_lesson.md): every numbered lesson shows its figure within one screen, asks
for a guess, runs something live, asks questions with worked answers, names the lecture and links the exercises;
the comparison every guess cell feeds works with the placeholder and with a real guess."""
import json
import math
import re

import pytest

from minilm.course import guess
from minilm.course.paths import EXERCISES, LESSONS, ROOT

NUMBERED = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
FIRST_SCREEN = 1500  # characters of markdown before the first figure
README_LIMIT = 12_000


def cells(path):
    return json.loads(path.read_text())["cells"]


def markdown(path):
    return "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")


def tags(path):
    return {t for c in cells(path) for t in c.get("metadata", {}).get("tags", [])}


def markdown_before_first_figure(path):
    before = 0
    for c in cells(path):
        if c["cell_type"] == "code" and any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            return before
        if c["cell_type"] == "markdown":
            before += len("".join(c["source"]))
    raise AssertionError(f"{path.name} shows no figure")


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name[:2])
def test_one_screen_then_the_figure(path):
    assert markdown_before_first_figure(path) <= FIRST_SCREEN


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name[:2])
def test_a_guess_and_a_live_run(path):
    assert {"guess", "live"} <= tags(path)


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name[:2])
def test_questions_with_worked_answers(path):
    text = markdown(path)
    sections = len(re.findall(r"(?m)^## ", text))
    assert text.count("<details") >= max(2, math.ceil(sections / 2))


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name[:2])
def test_the_first_cell_names_the_lecture_and_no_lesson_shows_a_commit(path):
    first = "".join(cells(path)[0]["source"])
    assert "CS25" in first and "Wei" in first and "Chung" in first
    outputs = "".join("".join(o.get("text", "")) for c in cells(path) if c["cell_type"] == "code"
                      for o in c.get("outputs", []))
    assert not re.search(r"\b[0-9a-f]{10}(-dirty)?\b", markdown(path) + outputs)


def test_every_exercise_is_linked_from_a_lesson():
    linked = {n for p in NUMBERED for n in re.findall(r"exercises/(\d\d)_", markdown(p))}
    exercises = {p.name[:2] for p in EXERCISES.glob("[0-9][0-9]_*.ipynb")}
    assert exercises and exercises <= linked, sorted(exercises - linked)


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= README_LIMIT
    assert "python -m minilm course" in text[:3000]


def test_a_guess_left_as_its_placeholder_says_what_to_write():
    assert guess.compare_number(None, 0.8, "the loss").startswith("no guess yet for the loss")
    assert guess.compare_order([], ["a", "b"], "the order").startswith("no guess yet")
    assert guess.compare_set(None, ["a"], "the hardest").startswith("no guess yet")


def test_a_real_guess_is_measured():
    assert guess.compare_number(0.6, 0.8, "loss") == "loss: you guessed 0.6, measured 0.8, off by -0.2 " \
                                                      "(within a factor of 1.33)"
    assert "a factor of 5.0 away" in guess.compare_number(4, 0.8, "loss")
    assert "not a number" in guess.compare_number(float("nan"), 0.8, "loss")
    assert guess.compare_order(["a", "b", "c"], ["a", "b", "c"], "o").endswith("exactly the measured order")
    assert guess.compare_order(["a", "c", "b"], ["a", "b", "c"], "o").endswith("2 of 3 pairs in the measured order")
    assert "does not have" in guess.compare_order(["z"], ["a"], "o")
    line = guess.compare_set(["a", "x"], ["a", "b"], "hardest")
    assert "you named 1 of 2" in line and "missed b" in line and "not among them: x" in line
