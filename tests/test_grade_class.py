"""`python -m minilm grade SUBMISSIONS/ --csv scores.csv`: a class's notebooks, each in its own process with a
time limit, one CSV row per learner and exercise. Uses exercise 06, the quickest to run."""
import csv
import os
import subprocess
import sys
import time

import pytest

from exercise_mutations import MUTATIONS
from minilm import MinilmError
from minilm.course import grader, notebooks, paths

EXERCISE = "06_power_law_fit"
TIMEOUT = 20  # seconds per notebook: plenty for exercise 06, short for a test that waits out an endless loop


def notebook(source_text, tmp_path, name):
    """The solution notebook built from a source text (a learner's finished work)."""
    source = tmp_path / f"{name}.py"
    source.write_text(source_text)
    return notebooks.build_notebook(source, solution=True)


def save(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebooks.notebook_text(nb))


@pytest.fixture
def submissions(tmp_path):
    """alice/ holds a correct notebook; bob/ a wrong one whose graded cells he emptied; carol.ipynb, loose in
    the folder and renamed, loops forever."""
    folder = tmp_path / "submissions"
    source = (paths.SOURCES / f"{EXERCISE}.py").read_text()
    save(notebook(source, tmp_path, EXERCISE), folder / "alice" / f"{EXERCISE}.ipynb")
    wrong = notebook(next(m for m in MUTATIONS if m.name == "exponent-sign-flipped").source(), tmp_path, EXERCISE)
    for cell in wrong.cells:
        if grader.is_graded(cell):
            cell.source = "pass  # the checks are gone"
    save(wrong, folder / "bob" / "work" / f"{EXERCISE}.ipynb")
    endless = source.replace("    slope, intercept = np.polyfit", "    while True:\n        pass\n    slope, intercept = np.polyfit")
    save(notebook(endless, tmp_path, EXERCISE), folder / "carol.ipynb")
    return folder


def test_class_grade_writes_one_row_per_learner_and_exercise(submissions, tmp_path):
    scores = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "minilm", "grade", str(submissions), "--csv", str(scores), "--timeout", str(TIMEOUT)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert took < 3 * TIMEOUT + 30, f"grading 3 notebooks of at most {TIMEOUT} s each took {took:.0f} s"
    rows = list(csv.DictReader(scores.open()))
    n = len(grader.graded_titles(EXERCISE))
    assert [(r["learner"], r["exercise"], r["out_of"]) for r in rows] == [(name, EXERCISE, str(n)) for name in ("alice", "bob", "carol")]
    alice, bob, carol = rows
    assert alice["score"] == str(n) and alice["feedback"] == ""
    assert [alice[f"check_{i}"] for i in range(1, n + 1)] == ["1"] * n
    # bob's emptied graded cells do not count: the course's checks run, and name his mistake
    assert 0 < int(bob["score"]) < n and "your alpha has the wrong sign" in bob["feedback"]
    assert int(bob["score"]) == sum(int(bob[f"check_{i}"]) for i in range(1, n + 1))
    assert carol["score"] == "0" and f"ran past its {TIMEOUT} s time limit" in carol["feedback"] and "(0 points)" in carol["feedback"]
    assert run.stdout.splitlines()[-1] == f"wrote {scores}: 3 notebooks of 3 learners"


def test_submissions_are_found_in_learners_folders_and_loose(tmp_path):
    for path in ("dan/a/01_x.ipynb", "dan/.ipynb_checkpoints/01_x-checkpoint.ipynb", "eve.ipynb", "notes.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    (tmp_path / "empty").mkdir()
    assert [(learner, path.relative_to(tmp_path).as_posix()) for learner, path in grader.class_submissions(tmp_path)] == \
        [("dan", "dan/a/01_x.ipynb"), ("eve", "eve.ipynb")]
    with pytest.raises(MinilmError, match="no notebooks"):
        grader.class_submissions(tmp_path / "empty")


def test_the_exercise_is_read_from_the_file_name_or_the_notebook(tmp_path):
    renamed = tmp_path / "my work.ipynb"
    renamed.write_text((paths.EXERCISES / "07_kv_cache.ipynb").read_text())  # its text also names 02_attention_masks, once
    assert grader.exercise_of(renamed) == "07_kv_cache"
    assert grader.exercise_of(tmp_path / "03_anything.ipynb") == "03_layernorm"
    (tmp_path / "other.ipynb").write_text("{}")
    assert grader.exercise_of(tmp_path / "other.ipynb") is None


def test_an_unreadable_or_unknown_submission_gets_a_row_that_says_why(tmp_path):
    broken = tmp_path / f"{EXERCISE}.ipynb"
    broken.write_text("{not json")
    score = grader.grade_submission("fay", broken, timeout=TIMEOUT)
    assert score.passed == [False] * len(grader.graded_titles(EXERCISE)) and "not a readable Jupyter notebook" in score.feedback
    (tmp_path / "other.ipynb").write_text("{}")
    unknown = grader.grade_submission("gus", tmp_path / "other.ipynb")
    assert unknown.passed == [] and "not one of the exercises" in unknown.feedback
    grader.write_scores(tmp_path / "s.csv", [score, unknown])
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert rows[0][:4] == ["learner", "exercise", "score", "out_of"] and rows[0][-1] == "feedback"
    assert rows[2][:4] == ["gus", "other", "0", "0"]


def test_kill_tree_stops_a_process_and_a_grandchild_in_a_session_of_its_own():
    """As nbval starts its kernel: pytest's child, in a new session, so killing pytest's process group would miss it."""
    import psutil

    grandchild = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], " \
                 "start_new_session=True); print(p.pid, flush=True); time.sleep(300)"
    child = subprocess.Popen([sys.executable, "-c", grandchild], stdout=subprocess.PIPE, text=True)
    kernel, top = psutil.Process(int(child.stdout.readline())), psutil.Process(child.pid)
    grader.kill_tree(child.pid)
    kernel.wait(timeout=10)  # a child of a killed process is reparented, then reaped: gone either way
    assert not kernel.is_running() and not top.is_running()
    child.wait(timeout=10)
    grader.kill_tree(child.pid)  # a process that is gone already: nothing to do, no error
