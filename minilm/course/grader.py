"""The grader: `python -m minilm grade PATH` runs pytest with nbval (`--nbval-lax --nbval-current-env`) on a
notebook, or on every notebook directly inside a folder, each in a subprocess of its own with a time limit: one
kernel per notebook, every cell run in order. It prints one line per failed graded check and
`GRADE: k/n graded checks passed`. With `--csv` it grades a class: a folder of learners' folders (or of
notebooks), each notebook in a scratch copy whose graded cells are the course's, one CSV row per learner and
exercise. The cells' outcomes come back from the nbval plugin (minilm/course/nbval_plugin.py).
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
from .notebooks import GRADED_TAG, exercise_sources
from .paths import EXERCISES, HOME


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


def is_graded(cell):
    return GRADED_TAG in cell.metadata.get("tags", [])


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


def kill_tree(pid):
    """Kill a process and every process below it: pytest, and the kernel that nbval started in a session
    of its own (so a process group would miss it). psutil finds the descendants by their parents, on Linux,
    macOS and Windows alike; they are listed before any is killed, so none is orphaned out of the tree first."""
    import psutil

    try:
        top = psutil.Process(pid)
        tree = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(tree, timeout=5)


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


def minilm_home():
    """The folder to put on the kernels' PYTHONPATH so that they import this minilm: the checkout, or the folder
    it was installed into (pip install --target); "" for site-packages, which the kernel reads anyway (and which
    must not come before the standard library)."""
    import site

    site_folders = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return "" if HOME in site_folders else str(HOME)


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


def with_course_checks(submission, exercise, folder):
    """A scratch copy of a submission in `folder`, its graded cells replaced by the course's: the learner's
    other cells, then the exercise's graded cells (so a check that was edited or deleted counts as written)."""
    import nbformat

    nb = read_notebook(submission)
    course = read_notebook(EXERCISES / f"{exercise}.ipynb")
    nb.cells = [cell for cell in nb.cells if not is_graded(cell)] + [cell for cell in course.cells if is_graded(cell)]
    path = Path(folder) / f"{exercise}.ipynb"
    nbformat.write(nb, str(path))
    return path


def check_name(title):
    return title.split(":")[0]  # "Check 2: softmax stays finite" -> "Check 2"


def feedback(results):
    """One line about the failed checks; the checks that did not run share one note."""
    not_run = [r for r in results if r.message.startswith("did not run")]
    failed = [f"{check_name(r.title)}: {r.message}" for r in results if not r.passed and r not in not_run]
    if not_run:
        failed.append(f"{', '.join(check_name(r.title) for r in not_run)} {not_run[0].message} (0 points)")
    return " | ".join(failed)


def grade_submission(learner, notebook, cell_timeout=600, timeout=600):
    """Grade one learner's notebook in a scratch folder, in a pytest process of its own with a time limit."""
    exercise = exercise_of(notebook)
    if exercise is None:
        return Score(learner, notebook.stem, [], f"{notebook.name} is not one of the exercises: name it as in "
                                                 f"exercises/ (e.g. 01_softmax_cross_entropy.ipynb)")
    titles = graded_titles(exercise)
    with tempfile.TemporaryDirectory(prefix="minilm-submission-") as scratch:
        try:
            results = run_notebooks([with_course_checks(notebook, exercise, scratch)], cell_timeout, timeout)
        except MinilmError as e:
            return Score(learner, exercise, [False] * len(titles), f"did not run: {e} (0 points)")
    graded = [r for r in results if r.graded]
    return Score(learner, exercise, [r.passed for r in graded], feedback(graded))


def grade_class(folder, cell_timeout=600, timeout=600, progress=print):
    """A Score for every submission in the folder (see class_submissions), one notebook at a time."""
    scores = []
    for learner, notebook in class_submissions(folder):
        scores.append(grade_submission(learner, notebook, cell_timeout, timeout))
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
