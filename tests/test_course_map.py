r"""The README's course map: every lesson and exercise it names exists; every lesson and every exercise are on it, in order.
And every lesson opens with its point in one screen: the lecture's claim, what the lesson measured, and a map from its
sections to the lecture's moments (each lesson's own test checks its numbers against its outputs).

The map is the table under "## The course"; a row starts with the notebook's name in backticks:
`| \`01_next_token_loss\` | ... |` for lessons/01_next_token_loss.ipynb, `| \`exercises/01_softmax_cross_entropy\` |
... |` for an exercise.
"""
import re
from pathlib import Path

import nbformat
import pytest

from tests.helpers import CLAIM, MEASURED, first_screen, sentences

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `((?:exercises/)?\d\d[a-z]?_\w+)` \|", re.MULTILINE)
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]*_*.ipynb"))  # 04b_...: an appendix to lesson 04


def course_map():
    """The notebooks the course map names, in its order, as paths relative to the repository."""
    readme = (ROOT / "docs/course.md").read_text(encoding="utf-8")
    section = readme.split("## The course", 1)[1].split("\n## ", 1)[0]
    return [name + ".ipynb" if name.startswith("exercises/") else f"lessons/{name}.ipynb" for name in ROW.findall(section)]


def test_every_notebook_the_map_names_exists():
    missing = [path for path in course_map() if not (ROOT / path).is_file()]
    assert course_map() and not missing, f"the README's course map names notebooks that do not exist: {missing}"


def test_lessons_01_to_05_and_every_exercise_are_on_the_map_in_order():
    named = course_map()
    lessons = [p.split("/")[1].split("_")[0] for p in named if p.startswith("lessons/")]
    assert [n for n in lessons if n.isdigit()][:5] == ["01", "02", "03", "04", "05"] and lessons == sorted(lessons), lessons
    on_disk = sorted(f"exercises/{p.name}" for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
    in_map = [p for p in named if p.startswith("exercises/")]
    assert in_map == on_disk, f"the course map lists the exercises {in_map}, exercises/ holds {on_disk}"


def test_every_exercise_the_readme_mentions_exists():
    readme = (ROOT / "docs/course.md").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"exercises/\d\d_\w+\.ipynb", readme))
    assert all((ROOT / path).is_file() for path in mentioned), sorted(p for p in mentioned if not (ROOT / p).is_file())


def test_every_lesson_is_on_the_map_in_order():
    named = [path for path in course_map() if path.startswith("lessons/")]
    assert len(LESSONS) >= 6 and named == [f"lessons/{p.name}" for p in LESSONS], f"the course map lists {named}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_opens_with_its_claim_its_verdict_and_its_map_to_the_lecture(lesson):
    """The first cell: the title, the claim (one or two sentences), the verdict (with its numbers), the map (each
    item a section of the lesson, in order, and the lecture's moment it retells), then the lesson's own list."""
    screen = first_screen(lesson)  # the title, then the paragraphs led by CLAIM, MEASURED and the map, in that order
    assert screen["title"].startswith(f"# Lesson {lesson.name.split('_')[0]} — ")
    assert screen["claim"].startswith(CLAIM) and 1 <= sentences(screen["claim"]) <= 2, screen["claim"]
    assert screen["measured"].startswith(MEASURED) and re.search(r"\d", screen["measured"].split("**", 2)[2])
    text = "\n".join(c.source for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "markdown")
    headings = {int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)}
    mapped = [n for sections, _ in screen["map"] for n in sections]
    assert mapped == sorted(set(mapped)) and set(mapped) <= headings, f"the map names {mapped}, the lesson has {headings}"
    assert len(mapped) >= len(headings) / 2 and all(len(moment) > 20 for _, moment in screen["map"])
    cited = {int(n) for n in re.findall(r"§(\d+)", screen["measured"])}
    assert cited <= headings, f"the verdict cites sections {cited}, the lesson has {headings}"
    assert screen["rest"].strip(), "the lesson's own list of what it shows follows the map"
