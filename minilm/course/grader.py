"""The grader: `python -m minilm grade PATH` runs pytest with nbval (`--nbval-lax --nbval-current-env`) on a
notebook, or on every notebook directly inside a folder, each in a subprocess of its own with a time limit: one
kernel per notebook, every cell run in order. It prints one line per failed graded check and
`GRADE: k/n graded checks passed`; the cells' outcomes come back from the nbval plugin
(minilm/course/nbval_plugin.py). That is the learner's grade, run in the learner's own kernel.

With `--csv` it grades a class: a folder of learners' folders (or of notebooks), one CSV row per learner and
exercise. There the checks never share a process with the learner's code: the answers run in a child process
of their own, and only their outputs come back to be judged here (minilm/course/judge.py, docs/grading.md).
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MinilmError
from . import judge
from .notebooks import exercise_sources, is_graded
from .paths import EXERCISES
from .processes import kill_tree, minilm_home

CLASS_TIMEOUT = 120  # seconds a class's notebook may run: a correct one takes a few


@dataclass
class CellResult:
    notebook: str  # path of the notebook
    cell: int  # nbval's number: the index among the notebook's code cells
    title: str  # the cell's first comment line, e.g. "Check 2: softmax stays finite on large logits"
    graded: bool
    passed: bool
    message: str  # one line saying what went wrong; "" when it passed


def read_notebook(path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as e:  # not JSON, not a notebook
        raise MinilmError(f"{path} is not a readable Jupyter notebook ({type(e).__name__}); save it again from "
                          f"Jupyter, or start from a fresh copy of the exercise") from None


def code_cells(path):
    """The code cells of a notebook, in nbval's numbering."""
    return [cell for cell in read_notebook(path).cells if cell.cell_type == "code"]


def cell_title(source):
    """The first comment line of a cell, without the '#'."""
    for line in source.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def notebooks_to_grade(path):
    """A notebook, or every notebook directly inside a folder (not its solutions/ or other subfolders)."""
    path = Path(path)
    if path.is_dir():
        notebooks = sorted(path.glob("*.ipynb"))
        if not notebooks:
            raise MinilmError(f"no notebooks (*.ipynb) directly inside {path}")
        return notebooks
    if not path.exists():
        raise MinilmError(f"{path} does not exist: give an exercise notebook or a folder of them, e.g. exercises/")
    if path.suffix != ".ipynb":
        raise MinilmError(f"{path} is not a notebook: give an .ipynb file or a folder of them")
    return [path]


def run_pytest(cmd, env, cwd, timeout):
    """Run pytest; returns (exit code, its output), exit code None when it ran past `timeout` seconds."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        return None, ""


def run_notebooks(notebooks, cell_timeout=600, timeout=None):
    """Run notebooks under pytest + nbval (one kernel each) and return a CellResult for every code cell.

    timeout: seconds for the whole run; past it, the run is killed and the cells that had not run yet fail."""
    notebooks = [Path(nb).resolve() for nb in notebooks]
    cells = {nb: code_cells(nb) for nb in notebooks}  # read first: a broken file fails here, clearly
    if timeout is not None:
        cell_timeout = min(cell_timeout, max(1, int(timeout)))
    with tempfile.TemporaryDirectory(prefix="minilm-grade-") as tmp:
        report = Path(tmp) / "cells.jsonl"
        env = dict(os.environ)
        # The kernels must import the same minilm as this process, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [minilm_home(), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "pytest", "-p", "minilm.course.nbval_plugin", f"--minilm-report={report}",
               "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
               "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", tmp, "--color=no",
               *map(str, notebooks)]
        code, output = run_pytest(cmd, env, tmp, timeout)
        outcomes = {}
        if report.exists():
            for line in report.read_text().splitlines():
                row = json.loads(line)
                outcomes[(row["notebook"], row["cell"])] = row
    if not outcomes and code not in (0, 1, None):
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise MinilmError(f"pytest could not run the notebooks (exit {code}): {tail}")
    not_run = (f"did not run: the notebook ran past its {timeout:g} s time limit (an endless loop?)" if code is None
               else "this cell did not run (the kernel failed or timed out)")
    results = []
    for nb, nb_cells in cells.items():
        for n, cell in enumerate(nb_cells):
            row = outcomes.get((str(nb), n))
            passed = bool(row and row["passed"])
            message = "" if passed else row["message"] if row else not_run
            results.append(CellResult(str(nb), n, cell_title(cell.source), is_graded(cell), passed, message))
    return results


def grade_notebooks(notebooks, cell_timeout=600, timeout=None):
    """Run each notebook in a pytest process of its own (so one that hangs costs only its own checks)."""
    return [r for nb in notebooks for r in run_notebooks([nb], cell_timeout, timeout)]


def relative_name(path):
    return os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else str(path)


def grade_report(results):
    """The text `python -m minilm grade` prints: failed checks, per-notebook scores, the GRADE line."""
    lines, by_notebook = [], {}
    for r in results:
        by_notebook.setdefault(r.notebook, []).append(r)
    for notebook, rs in by_notebook.items():
        graded = [r for r in rs if r.graded]
        lines.append(f"{relative_name(notebook)}: {sum(r.passed for r in graded)}/{len(graded)} graded checks passed")
        if len({(r.passed, r.message) for r in rs}) == 1 and not rs[0].passed:  # the notebook itself did not run
            lines.append(f"  FAIL all {len(graded)} graded checks: {rs[0].message}")
            continue
        for r in rs:
            if r.graded and not r.passed:
                lines.append(f"  FAIL {r.title or f'cell {r.cell}'}: {r.message}")
            elif not r.graded and not r.passed:
                lines.append(f"  note: code cell {r.cell} (not graded) failed too, and later checks may depend on "
                             f"it: {r.message}")
    graded = [r for r in results if r.graded]
    lines.append(f"GRADE: {sum(r.passed for r in graded)}/{len(graded)} graded checks passed")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# 3. The class grader: a folder of submissions -> one row per learner and exercise.

@dataclass
class Score:
    learner: str
    exercise: str
    passed: list  # one bool per graded check of the exercise, in the course's order
    feedback: str  # what failed, or why the checks did not run; "" when all passed


def class_submissions(folder):
    """(learner, notebook) for every submission in a folder: each subfolder is one learner's, holding notebooks
    at any depth; each notebook directly inside the folder is a learner's own, named after the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MinilmError(f"{folder} is not a folder: give a folder of learners' folders (or of notebooks)")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            found += [(entry.name, nb) for nb in sorted(entry.rglob("*.ipynb")) if ".ipynb_checkpoints" not in nb.parts]
        elif entry.suffix == ".ipynb":
            found.append((entry.stem, entry))
    if not found:
        raise MinilmError(f"no notebooks (*.ipynb) in {folder} or its subfolders")
    return found


def exercise_of(notebook):
    """The exercise a notebook answers: the one whose number its file name starts with ("01_..."), else the one
    its text names most often (its cell ids and its setup cell carry the name); None if neither."""
    stems = [source.stem for source in exercise_sources()]
    for stem in stems:
        if notebook.name.startswith(stem[:3]):
            return stem
    try:
        text = notebook.read_text(errors="replace")
    except OSError:
        return None
    best = max(stems, key=text.count)
    return best if best in text else None


def graded_titles(exercise):
    return [cell_title(cell.source) for cell in code_cells(EXERCISES / f"{exercise}.ipynb") if is_graded(cell)]


def check_name(title):
    return title.split(":")[0]  # "Check 2: softmax stays finite" -> "Check 2"


def feedback(titles, verdicts, flagged=()):
    """One line about the failed checks (the checks that did not run share one note), then what was flagged."""
    not_run = [check_name(t) for t, (_, message) in zip(titles, verdicts) if message.startswith("did not run")]
    failed = [f"{check_name(t)}: {message}" for t, (passed, message) in zip(titles, verdicts)
              if not passed and not message.startswith("did not run")]
    if not_run:
        failed.append(f"{', '.join(not_run)} {next(m for _, m in verdicts if m.startswith('did not run'))} (0 points)")
    if flagged:
        failed.append(f"flagged: the answer cells do more than define the answers: {'; '.join(flagged)}")
    return " | ".join(failed)


def grade_submission(learner, notebook, timeout=CLASS_TIMEOUT, memory_mib=judge.MEMORY_MIB):
    """Grade one learner's notebook: its answer cells run in a child process in a scratch folder that holds only
    this notebook, under the time and memory limits; the checks judge what came back, in this process."""
    exercise = exercise_of(notebook)
    if exercise is None:
        return Score(learner, notebook.stem, [], f"{notebook.name} is not one of the exercises: name it as in "
                                                 f"exercises/ (e.g. 01_softmax_cross_entropy.ipynb)")
    titles = graded_titles(exercise)
    try:
        cells = judge.answer_cells(read_notebook(notebook).cells)
    except MinilmError as e:
        return Score(learner, exercise, [False] * len(titles), f"did not run: {e} (0 points)")
    flagged = judge.flags(cells, read_notebook(EXERCISES / f"{exercise}.ipynb").cells)
    with tempfile.TemporaryDirectory(prefix="minilm-submission-") as scratch:
        code = judge.run_answers(scratch, notebook, exercise, cells, timeout, memory_mib)
        unanswered = (f"did not run: the notebook ran past its {timeout:g} s time limit (an endless loop?)"
                      if code is None else
                      f"did not run: the notebook exited before its answers were checked (exit status {code})")
        verdicts = judge.verdicts(exercise, scratch, unanswered)
    return Score(learner, exercise, [passed for passed, _ in verdicts], feedback(titles, verdicts, flagged))


def grade_class(folder, timeout=CLASS_TIMEOUT, memory_mib=judge.MEMORY_MIB, progress=print):
    """A Score for every submission in the folder (see class_submissions), one notebook at a time."""
    scores = []
    for learner, notebook in class_submissions(folder):
        scores.append(grade_submission(learner, notebook, timeout, memory_mib))
        progress(score_line(scores[-1]))
    return scores


def score_line(score):
    line = f"{score.learner} {score.exercise}: {sum(score.passed)}/{len(score.passed)}"
    return f"{line}  ({score.feedback})" if score.feedback else line


def write_scores(path, scores):
    """The class's CSV: learner, exercise, score, out_of, check_1 .. check_n (1 passed, 0 not), feedback."""
    n = max((len(s.passed) for s in scores), default=0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "exercise", "score", "out_of", *(f"check_{i}" for i in range(1, n + 1)),
                         "feedback"])
        for s in scores:
            checks = [int(p) for p in s.passed] + [""] * (n - len(s.passed))
            writer.writerow([s.learner, s.exercise, sum(s.passed), len(s.passed), *checks, s.feedback])
