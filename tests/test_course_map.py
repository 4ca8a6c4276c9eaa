r"""The README's course map: every lesson and exercise it names exists; lessons 01-05 and every exercise are on it, in order.

The map is the table under "## The course"; a row starts with the notebook's name in backticks:
`| \`01_next_token_loss\` | ... |` for lessons/01_next_token_loss.ipynb, `| \`exercises/01_softmax_cross_entropy\` |
... |` for an exercise.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `((?:exercises/)?\d\d_\w+)` \|", re.MULTILINE)


def course_map():
    """The notebooks the course map names, in its order, as paths relative to the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The course", 1)[1].split("\n## ", 1)[0]
    return [name + ".ipynb" if name.startswith("exercises/") else f"lessons/{name}.ipynb" for name in ROW.findall(section)]


def test_every_notebook_the_map_names_exists():
    missing = [path for path in course_map() if not (ROOT / path).is_file()]
    assert course_map() and not missing, f"the README's course map names notebooks that do not exist: {missing}"


def test_lessons_01_to_05_and_every_exercise_are_on_the_map_in_order():
    named = course_map()
    lessons = [p.split("/")[1][:2] for p in named if p.startswith("lessons/")]
    assert lessons[:5] == ["01", "02", "03", "04", "05"] and lessons == sorted(lessons), f"lessons on the map: {lessons}"
    on_disk = sorted(f"exercises/{p.name}" for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
    in_map = [p for p in named if p.startswith("exercises/")]
    assert in_map == on_disk, f"the course map lists the exercises {in_map}, exercises/ holds {on_disk}"


def test_every_exercise_the_readme_mentions_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"exercises/\d\d_\w+\.ipynb", readme))
    assert all((ROOT / path).is_file() for path in mentioned), sorted(p for p in mentioned if not (ROOT / p).is_file())
