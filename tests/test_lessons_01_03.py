"""Lessons 01 and 03 are committed executed, and run top to bottom under nbval as CI runs them."""
import os
import subprocess
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = ["lessons/01_next_token_loss.ipynb", "lessons/03_scaling_curves.ipynb"]


@pytest.mark.parametrize("notebook", LESSONS)
def test_lesson_is_committed_with_its_outputs(notebook):
    cells = [c for c in nbformat.read(os.path.join(ROOT, notebook), as_version=4).cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))  # top to bottom, once
    assert sum(any(o.get("output_type") == "display_data" for o in c.outputs) for c in cells) >= 3  # figures
    assert not any(o.get("output_type") == "error" for c in cells for o in c.outputs)


def test_lessons_run_under_nbval():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("MPLBACKEND", None)  # kernels keep their inline backend
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", *LESSONS], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-4000:]
