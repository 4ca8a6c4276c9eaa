"""Graded exercises: build the notebooks from their sources, grade them with nbval, explain failures.

Five jobs, one module:

1. **The generator.** Each exercise has one source, `exercises/sources/NN_topic.py`, a script in
   jupytext's "percent" format (`# %%` starts a code cell, `# %% [markdown]` a text cell, `tags=["graded"]`
   tags it). The reference solution sits between `### BEGIN SOLUTION` and `### END SOLUTION`. From it we
   write the student notebook `exercises/NN_topic.ipynb` (the solution replaced by `# YOUR CODE HERE`
   and `raise NotImplementedError()`) and `exercises/solutions/NN_topic.ipynb` (the solution kept).
   Regenerate both with `python -m minilm.grading`.
2. **The grader.** `python -m minilm grade PATH` runs pytest with nbval (`--nbval-lax
   --nbval-current-env`) on a notebook, or on every notebook directly inside a folder, each in a
   subprocess of its own with a time limit: one kernel per notebook, every cell run in order. It prints one
   line per failed graded check and `GRADE: k/n graded checks passed`. With `--csv` it grades a class: a
   folder of learners' folders (or of notebooks), each notebook in a scratch copy whose graded cells are the
   course's, one CSV row per learner and exercise.
3. **The nbval plugin.** Loaded into that pytest run with `-p minilm.grading`, it writes one JSON line per
   notebook cell: which notebook and cell, whether it passed, and the error's type and message (for a
   failed `assert`, the message its author wrote).
4. **The checks.** Each exercise's checks are functions in `exercises/checks/NN_topic.py`, grouped by the
   part of the exercise they test. A notebook binds them once, `check = ExerciseChecks("NN_topic",
   globals())`; `check("softmax")` after a part prints each of its checks' result, and a graded cell is
   `check.graded("softmax_rows")`, which raises the same message. One function, two ways to run it.
5. **Feedback helpers** that the checks call to turn a wrong array into a sentence: which position can see
   which in a mask, which factor, axis or term a result is off by, which gradient is off and by how much.
"""
import csv
import importlib.util
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MinilmError

GRADED_TAG = "graded"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
# What must never sit on a graded cell: each would let a check pass (or be skipped) without the learner's code.
FORBIDDEN_TAGS = ("raises-exception", "nbval-skip", "skip-execution", "nbval-ignore-output")
FORBIDDEN_MARKERS = ("NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION", "NBVAL_IGNORE_OUTPUT")

REPO_ROOT = Path(__file__).resolve().parent.parent
EXERCISES = REPO_ROOT / "exercises"
SOURCES = EXERCISES / "sources"
CHECKS = EXERCISES / "checks"


# --------------------------------------------------------------------------------------------------
# 1. The generator: source (.py, percent format) -> student and solution notebooks.

def source_cells(path):
    """The cells of an exercise source, read by jupytext: a list of (kind, source, tags)."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    return [(cell.cell_type, cell.source, cell.metadata.get("tags", [])) for cell in nb.cells]


def strip_solutions(code, keep, name="source"):
    """Remove the solution markers; keep=True keeps the code between them, False puts the stub there."""
    out, inside = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise MinilmError(f"{name}: '{BEGIN}' inside another solution block")
            inside = True
            if not keep:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + stub_line for stub_line in STUB)
        elif stripped == END:
            if not inside:
                raise MinilmError(f"{name}: '{END}' without a '{BEGIN}' before it")
            inside = False
        elif keep or not inside:
            out.append(line)
    if inside:
        raise MinilmError(f"{name}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def build_notebook(source_path, solution):
    """The notebook made from one exercise source: the student version, or the solution version.

    Only each cell's kind, source and tags are kept (not jupytext's own metadata), with stable ids."""
    import nbformat

    source_path = Path(source_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text, tags) in enumerate(source_cells(source_path)):
        cell_id = f"{source_path.stem[:50]}-{i:02d}"  # stable ids: regenerating changes nothing
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text, id=cell_id)
        else:
            cell = nbformat.v4.new_code_cell(strip_solutions(text, solution, source_path.name), id=cell_id)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def notebook_text(nb):
    """The exact text a notebook is committed as."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def exercise_sources(sources=SOURCES):
    return sorted(Path(sources).glob("[0-9][0-9]_*.py"))


def generated_notebooks(sources=SOURCES, exercises=EXERCISES):
    """{path of a notebook the generator writes: its text}, for every exercise source."""
    out = {}
    for source in exercise_sources(sources):
        name = source.stem + ".ipynb"
        out[Path(exercises) / name] = notebook_text(build_notebook(source, solution=False))
        out[Path(exercises) / "solutions" / name] = notebook_text(build_notebook(source, solution=True))
    return out


def write_notebooks(sources=SOURCES, exercises=EXERCISES):
    """Regenerate every student and solution notebook from the sources; returns the paths written."""
    notebooks = generated_notebooks(sources, exercises)
    for path, text in notebooks.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(notebooks)


# --------------------------------------------------------------------------------------------------
# 2. The grader: run the notebooks under pytest + nbval in a subprocess, read back one line per cell.

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
        raise MinilmError(f"{path} is not a readable Jupyter notebook ({type(e).__name__}); save it again from Jupyter, or start from a fresh copy of the exercise") from None


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
    of its own (so a process group would miss it). Descendants are read from /proc where there is one."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # the field after "(name)" is the state, then the parent
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "pytest", "-p", "minilm.grading", f"--minilm-report={report}",
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


def error_line(ename, evalue, where=None):
    """One readable line for an error raised in a cell: the assert's message, or what raised what where.

    where: the function the error was raised in (the innermost frame), if known."""
    evalue = " ".join(str(evalue).split())
    if ename == "AssertionError" and evalue:
        return evalue
    if ename == "NotImplementedError":
        func = f"{where} " if where else ""
        return f"not implemented yet: {func}still raises NotImplementedError (replace it with your code)"
    inside = f" (in {where})" if where else ""
    return f"{ename}{inside}: {evalue}" if evalue else f"{ename}{inside}"


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# IPython frames read "Cell In[3], line 5, in softmax(logits)", or "File /path/checks.py:12, in softmax_rows(softmax)"
FRAME = re.compile(r", in ([A-Za-z_][\w.]*)\(")


def innermost_function(traceback_text):
    """The function named by the last frame of an IPython traceback, or None."""
    where = FRAME.findall(ANSI.sub("", traceback_text))
    return where[-1] if where else None


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
                lines.append(f"  note: code cell {r.cell} (not graded) failed too, and later checks may depend on it: {r.message}")
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
        return Score(learner, notebook.stem, [], f"{notebook.name} is not one of the exercises: name it as in exercises/ (e.g. 01_softmax_cross_entropy.ipynb)")
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
        writer.writerow(["learner", "exercise", "score", "out_of", *(f"check_{i}" for i in range(1, n + 1)), "feedback"])
        for s in scores:
            checks = [int(p) for p in s.passed] + [""] * (n - len(s.passed))
            writer.writerow([s.learner, s.exercise, sum(s.passed), len(s.passed), *checks, s.feedback])


# --------------------------------------------------------------------------------------------------
# 4. The nbval plugin (pytest loads this module with -p minilm.grading).

def pytest_addoption(parser):
    parser.addoption("--minilm-report", default=None, help="minilm grade: write one JSON line per notebook cell to this file")


def pytest_runtest_makereport(item, call):
    """Record each notebook cell's outcome; returns None, so pytest still makes its usual report."""
    path = item.config.getoption("minilm_report")
    if path is None or call.when != "call" or not hasattr(item, "cell"):
        return None
    message = ""
    if call.excinfo is not None:
        errors = [out for out in (item.test_outputs or []) if out.get("output_type") == "error"]
        if errors:
            err = errors[-1]
            message = error_line(err["ename"], err["evalue"], innermost_function("\n".join(err["traceback"])))
        else:  # nbval itself failed the cell (a timeout, a dead kernel)
            message = " ".join(str(call.excinfo.value).split())
    row = {"notebook": str(Path(item.path).resolve()), "cell": item.cell_num,
           "passed": call.excinfo is None, "message": message}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return None


# --------------------------------------------------------------------------------------------------
# 5. The checks, run in the notebook: check("part") prints, check.graded("name") raises.

def load_checks(exercise, folder=CHECKS):
    """The module of an exercise's checks, exercises/checks/NN_topic.py, loaded afresh (edits take effect)."""
    path = Path(folder) / f"{exercise}.py"
    if not path.exists():
        raise MinilmError(f"no checks for exercise {exercise!r}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"exercise_checks_{exercise}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ExerciseChecks:
    """An exercise's checks, bound to a notebook's namespace (its globals()).

    Each check is a function whose parameters are named after the learner's functions it tests
    (`def softmax_rows(softmax)`); the module groups them by part in PARTS, in the order of the graded cells."""

    def __init__(self, exercise, namespace):
        self.module = load_checks(exercise)
        self.namespace = namespace
        self.checks = [check for part in self.module.PARTS.values() for check in part]

    def title(self, check):
        """'Check 2: softmax stays finite on large logits', as the graded cell's first line reads."""
        return f"Check {self.checks.index(check) + 1}: {inspect.getdoc(check).splitlines()[0]}"

    def run(self, check):
        """Call a check with the learner's functions it names; a failed check raises AssertionError."""
        names = list(inspect.signature(check).parameters)
        missing = [name for name in names if name not in self.namespace]
        if missing:
            raise AssertionError(f"{', '.join(missing)} is not defined yet: run the cell that defines it first")
        check(*(self.namespace[name] for name in names))

    def graded(self, name):
        """A graded cell's body: run one check; nbval records its failure and message."""
        self.run(getattr(self.module, name))

    def problem(self, check):
        """'' if the check passes, else the line the grader would print for it."""
        try:
            self.run(check)
        except Exception as e:  # the learner's code may raise anything: report it, as the grader does
            frames = traceback.extract_tb(e.__traceback__)
            return error_line(type(e).__name__, e, frames[-1].name if frames else None)
        return ""

    def __call__(self, part=None):
        """Run the checks of one part (every check if None) and print each one's result; never raises."""
        if part is not None and part not in self.module.PARTS:
            raise MinilmError(f"no part named {part!r}: the parts are {', '.join(self.module.PARTS)}")
        for check in self.checks if part is None else self.module.PARTS[part]:
            problem = self.problem(check)
            print(f"FAIL {self.title(check)}\n     {problem}" if problem else f"pass {self.title(check)}")


# --------------------------------------------------------------------------------------------------
# 6. Feedback helpers for the checks: what is off, in terms of the math.

def factor_of(got, expected):
    """The number s with got = s * expected (to 1e-6 relative), or None if there is none."""
    got, expected = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (got, expected))
    norm2 = expected @ expected
    if expected.size < 2 or norm2 == 0:  # any number is a multiple of another: a factor says nothing
        return None
    s = got @ expected / norm2  # the least-squares factor
    if abs(s) > 1e-12 and np.linalg.norm(got - s * expected) <= 1e-6 * np.linalg.norm(got):
        return float(s)
    return None


def factor_hint(s):
    return "a sign error?" if np.isclose(s, -1) else "a missing or extra factor?"


def lower_precision(got, expected):
    """True when got is a float array less precise than expected (float32 for float64)."""
    got, expected = np.asarray(got), np.asarray(expected)
    return got.dtype.kind == expected.dtype.kind == "f" and got.dtype.itemsize < expected.dtype.itemsize


def precision_problem(name, got, expected):
    if not lower_precision(got, expected):
        return ""
    return (f"{name} is {np.asarray(got).dtype}, but must be {np.asarray(expected).dtype} like its inputs: "
            f"compute in {np.asarray(expected).dtype} ({np.asarray(got).dtype} keeps only about {np.finfo(np.asarray(got).dtype).precision} digits)")


def mismatch(name, got, expected, rtol=1e-10, atol=1e-12, mistakes=()):
    """'' if got equals expected within the tolerance, else a sentence saying what is off.

    mistakes: (description, array) pairs, the arrays that known mistakes give (e.g. the unbiased variance);
    when got matches one as closely as a right answer must match expected, the message is
    f"{name} {description}". Otherwise it names a wrong shape or dtype, inf/NaN, a constant factor or sign,
    or the largest difference."""
    if got is None:
        return f"{name} is None: did you forget to return it?"
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return f"{name} must have shape {expected.shape}, got {got.shape}"
    if lower_precision(got, expected):
        return precision_problem(name, got, expected)
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return ""
    if np.isfinite(expected).all() and not np.isfinite(got).all():
        return f"{name} has inf or NaN entries where the right values are finite (an overflow, or a division by 0?)"
    for description, wrong in mistakes:
        if np.shape(wrong) == got.shape and np.allclose(got, wrong, rtol=rtol, atol=atol):
            return f"{name} {description}"
    s = factor_of(got, expected)
    if s is not None:
        return f"{name} is {s:.4g} times the right value ({factor_hint(s)})"
    diff = np.abs(got - expected)
    at = np.unravel_index(np.argmax(diff), diff.shape)
    where = f" at index {tuple(int(i) for i in at)}" if at else ""
    message = f"{name} is off by up to {diff[at]:.3g}:{where} it must be {expected[at]:.6g}, got {got[at]:.6g}"
    if 1e-9 < diff.max() / max(np.abs(expected).max(), 1e-300) < 1e-5:
        message += " (about float32 precision: is a step computed in float32?)"
    return message


def gradient_problem(name, numeric, analytic, tol=1e-6, reference="finite differences"):
    """'' if the analytic gradient matches the true one (from finite differences, or a trusted reference),
    else what is off and by how much."""
    if analytic is None:
        return f"no gradient returned for {name}"
    if lower_precision(analytic, numeric):
        return precision_problem(f"the gradient w.r.t. {name}", analytic, numeric)
    numeric = np.asarray(numeric, dtype=np.float64).reshape(-1)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.size != numeric.size:
        return f"gradient w.r.t. {name} has {analytic.size} entries, but {name} has {numeric.size}: it must have {name}'s shape"
    analytic = analytic.reshape(-1)
    err = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(numeric) + np.linalg.norm(analytic), 1e-300)
    if err <= tol:
        return ""
    msg = f"gradient w.r.t. {name} off by relative error {err:.1e} (a correct backward pass gets below {tol:.0e})"
    s = factor_of(analytic, numeric)
    if s is not None:
        return msg + f": it is {s:.4g} times the true gradient ({factor_hint(s)})"
    i = int(np.argmax(np.abs(numeric - analytic)))
    return msg + f"; e.g. flat entry {i}: {reference} give{'s' if reference.startswith('the ') else ''} {numeric[i]:.4g}, yours {analytic[i]:.4g}"


def gradient_problems(loss_fn, arrays, grads, tol=1e-6):
    """Check every analytic gradient against central differences of loss_fn(): a list of problems (empty if none).

    arrays: dict name -> float64 array that loss_fn() reads (perturbed in place and restored);
    grads: dict name -> your gradient of loss_fn() at those arrays.
    """
    from .gradcheck import numeric_grad

    problems = []
    for name, array in arrays.items():
        _, numeric = numeric_grad(loss_fn, array)
        problems.append(gradient_problem(name, numeric, grads.get(name), tol))
    return [p for p in problems if p]


def explained_call(what, hint, fn, *args):
    """fn(*args), where a ValueError (arrays whose shapes do not fit) fails the check with what was running
    and what to look at, instead of a bare traceback."""
    try:
        return fn(*args)
    except ValueError as e:
        raise AssertionError(f"{what} raised ValueError ({' '.join(str(e).split())}): {hint}") from None


def mask_problem(got, expected, name="mask"):
    """'' if the masks agree, else the first disagreement as a sentence.

    Queries are the last T_q of T_k positions (as in a KV cache), so positions are absolute.
    """
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"{name} must have shape {expected.shape} (queries, keys), got {got.shape}"
    if got.dtype != bool:
        return f"{name} must be a boolean array (True where a query may attend), got dtype {got.dtype}"
    wrong = np.argwhere(got != expected)
    if len(wrong) == 0:
        return ""
    i, j = wrong[0]
    pos = i + expected.shape[1] - expected.shape[0]  # absolute position of query i
    verb = "can see" if got[i, j] else "cannot see"
    must = "must not" if got[i, j] else "must"
    return f"{name}: position {pos} {verb} position {j}, but it {must}"


def attention_sees(attend, k, v):
    """Which keys each query's output depends on: sees[i, j] is True when changing key and value j changes the
    output at query i. attend(k, v) -> out (B, nh, Tq, hs) runs the attention under test; k, v: (B, nh, Tk, hs)."""
    out = np.asarray(attend(k, v))
    sees = np.zeros((out.shape[2], k.shape[2]), dtype=bool)
    for j in range(k.shape[2]):
        k2, v2 = k.copy(), v.copy()
        k2[:, :, j] += 1.0
        v2[:, :, j] += 1.0
        sees[:, j] = np.abs(np.asarray(attend(k2, v2)) - out).max(axis=(0, 1, 3)) > 1e-12
    return sees


def attention_problem(sees, mask, name="attention"):
    """'' if the keys that change each query's output are exactly the ones its mask allows."""
    problem = mask_problem(sees, mask, name)
    return problem.replace(f"{name}: ", f"{name}: the output at ", 1)


if __name__ == "__main__":
    for written in write_notebooks():
        print(f"wrote {written.relative_to(REPO_ROOT)}")
