"""Every lesson is committed executed, top to bottom, with its figures and without errors.

Running them is the default suite's job: pytest collects lessons/*.ipynb under nbval (see pyproject.toml).
"""
import glob
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = sorted(glob.glob(os.path.join(ROOT, "lessons", "*.ipynb")))


def test_the_course_has_its_lessons():
    names = [os.path.basename(p)[:2] for p in LESSONS]
    assert {"01", "02", "03"} <= set(names)


@pytest.mark.parametrize("notebook", LESSONS, ids=os.path.basename)
def test_lesson_is_committed_with_its_outputs(notebook):
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))  # top to bottom, once
    assert sum(any(o.get("output_type") == "display_data" for o in c.outputs) for c in cells) >= 2  # figures
    assert not any(o.get("output_type") == "error" for c in cells for o in c.outputs)
