"""Graded exercises: build the notebooks from their sources, grade them with nbval, explain failures.

Four jobs, one module:

1. **The generator.** Each exercise has one source, `exercises/sources/NN_topic.py`, written in the
   "percent" cell format (`# %%` starts a code cell, `# %% [markdown]` a text cell, `tags=["graded"]`
   tags it). The reference solution sits between `### BEGIN SOLUTION` and `### END SOLUTION`. From it we
   write the student notebook `exercises/NN_topic.ipynb` (the solution replaced by `# YOUR CODE HERE`
   and `raise NotImplementedError()`) and `exercises/solutions/NN_topic.ipynb` (the solution kept).
   Regenerate both with `python -m minilm.grading`.
2. **The grader.** `python -m minilm grade PATH` runs pytest with nbval (`--nbval-lax
   --nbval-current-env`) on a notebook, or on every notebook directly inside a folder, in a subprocess:
   one kernel per notebook, every cell run in order. It prints one line per failed graded check and
   `GRADE: k/n graded checks passed`.
3. **The nbval plugin.** Loaded into that pytest run with `-p minilm.grading`, it writes one JSON line per
   notebook cell: which notebook and cell, whether it passed, and the error's type and message (for a
   failed `assert`, the message its author wrote).
4. **Feedback helpers** that the graded cells call to turn a wrong array into a sentence: which position
   can see which in a mask, which gradient is off and by how much.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
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


# --------------------------------------------------------------------------------------------------
# 1. The generator: source (.py, percent format) -> student and solution notebooks.

CELL_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse_source(text, name="source"):
    """The cells of a percent-format source: a list of (kind, source, tags), kind 'code' or 'markdown'."""
    cells, kind, tags, lines = [], None, [], []

    def close():
        if kind is not None:
            cells.append((kind, "\n".join(lines).strip("\n"), tags))

    for n, line in enumerate(text.splitlines(), 1):
        marker = CELL_MARKER.match(line)
        if marker:
            close()
            kind = "markdown" if marker["markdown"] else "code"
            tags, lines = json.loads(marker["tags"] or "[]"), []
        elif kind is None:
            if line.strip():
                raise MinilmError(f"{name}, line {n}: text before the first '# %%' cell marker")
        elif kind == "markdown":
            if line and not line.startswith("#"):
                raise MinilmError(f"{name}, line {n}: every line of a markdown cell must start with '#'")
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        else:
            lines.append(line)
    close()
    return cells


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
    """The notebook made from one exercise source: the student version, or the solution version."""
    import nbformat

    source_path = Path(source_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text, tags) in enumerate(parse_source(source_path.read_text(), source_path.name)):
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


def generated_notebooks(sources=SOURCES, exercises=EXERCISES):
    """{path of a notebook the generator writes: its text}, for every exercise source."""
    out = {}
    for source in sorted(Path(sources).glob("[0-9][0-9]_*.py")):
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


def code_cells(path):
    """The code cells of a notebook, in nbval's numbering."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:  # not JSON, not a notebook
        raise MinilmError(f"{path} is not a readable Jupyter notebook ({type(e).__name__}); regenerate it with python -m minilm.grading") from None
    return [cell for cell in nb.cells if cell.cell_type == "code"]


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


def run_notebooks(notebooks, cell_timeout=600):
    """Run notebooks under pytest + nbval (one kernel each) and return a CellResult for every code cell."""
    notebooks = [Path(nb).resolve() for nb in notebooks]
    cells = {nb: code_cells(nb) for nb in notebooks}  # read first: a broken file fails here, clearly
    with tempfile.TemporaryDirectory(prefix="minilm-grade-") as tmp:
        report = Path(tmp) / "cells.jsonl"
        env = dict(os.environ)
        # The kernels must import the same minilm as this process, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "pytest", "-p", "minilm.grading", f"--minilm-report={report}",
               "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
               "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", tmp, "--color=no",
               *map(str, notebooks)]
        run = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        outcomes = {}
        if report.exists():
            for line in report.read_text().splitlines():
                row = json.loads(line)
                outcomes[(row["notebook"], row["cell"])] = row
    if not outcomes and run.returncode not in (0, 1):
        tail = " | ".join((run.stdout + run.stderr).strip().splitlines()[-3:])
        raise MinilmError(f"pytest could not run the notebooks (exit {run.returncode}): {tail}")
    results = []
    for nb, nb_cells in cells.items():
        for n, cell in enumerate(nb_cells):
            row = outcomes.get((str(nb), n))
            passed = bool(row and row["passed"])
            message = "" if passed else row["message"] if row else "this cell did not run (the kernel failed or timed out)"
            results.append(CellResult(str(nb), n, cell_title(cell.source), is_graded(cell), passed, message))
    return results


def error_line(ename, evalue, traceback_text):
    """One readable line for an error raised in a cell: the assert's message, or what raised what where."""
    evalue = " ".join(str(evalue).split())
    if ename == "AssertionError" and evalue:
        return evalue
    # IPython frames read "Cell In[3], line 5, in softmax(logits)" or "..., in LayerKVCache.append(self, k)"
    where = re.findall(r", in ([\w.]+)\(", traceback_text)
    if ename == "NotImplementedError":
        func = f"{where[-1]} " if where else ""
        return f"not implemented yet: {func}still raises NotImplementedError (replace it with your code)"
    inside = f" (in {where[-1]})" if where else ""
    return f"{ename}{inside}: {evalue}" if evalue else f"{ename}{inside}"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def grade_report(results):
    """The text `python -m minilm grade` prints: failed checks, per-notebook scores, the GRADE line."""
    lines, by_notebook = [], {}
    for r in results:
        by_notebook.setdefault(r.notebook, []).append(r)
    for notebook, rs in by_notebook.items():
        graded = [r for r in rs if r.graded]
        name = os.path.relpath(notebook) if Path(notebook).is_relative_to(Path.cwd()) else notebook
        lines.append(f"{name}: {sum(r.passed for r in graded)}/{len(graded)} graded checks passed")
        for r in rs:
            if r.graded and not r.passed:
                lines.append(f"  FAIL {r.title or f'cell {r.cell}'}: {r.message}")
            elif not r.graded and not r.passed:
                lines.append(f"  note: code cell {r.cell} (not graded) failed too, and later checks may depend on it: {r.message}")
    graded = [r for r in results if r.graded]
    lines.append(f"GRADE: {sum(r.passed for r in graded)}/{len(graded)} graded checks passed")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# 3. The nbval plugin (pytest loads this module with -p minilm.grading).

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
            message = error_line(err["ename"], err["evalue"], ANSI.sub("", "\n".join(err["traceback"])))
        else:  # nbval itself failed the cell (a timeout, a dead kernel)
            message = " ".join(str(call.excinfo.value).split())
    row = {"notebook": str(Path(item.path).resolve()), "cell": item.cell_num,
           "passed": call.excinfo is None, "message": message}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return None


# --------------------------------------------------------------------------------------------------
# 4. Feedback helpers for the graded cells.

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


def attention_problem(sees, mask, name="attention"):
    """'' if the keys that change each query's output are exactly the ones its mask allows."""
    problem = mask_problem(sees, mask, name)
    return problem.replace(f"{name}: ", f"{name}: the output at ", 1)


def gradient_problem(name, numeric, analytic, tol=1e-6, reference="finite differences"):
    """'' if the analytic gradient matches the true one (from finite differences, or a trusted reference),
    else what is off and by how much."""
    numeric = np.asarray(numeric, dtype=np.float64).reshape(-1)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.size != numeric.size:
        return f"gradient w.r.t. {name} has {analytic.size} entries, but {name} has {numeric.size}: it must have {name}'s shape"
    analytic = analytic.reshape(-1)
    err = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(numeric) + np.linalg.norm(analytic), 1e-300)
    if err <= tol:
        return ""
    msg = f"gradient w.r.t. {name} off by relative error {err:.1e} (a correct backward pass gets below {tol:.0e})"
    scale = analytic @ numeric / max(numeric @ numeric, 1e-300)
    if abs(scale) > 1e-12 and np.linalg.norm(analytic - scale * numeric) <= 1e-6 * np.linalg.norm(analytic):
        return msg + f": it is {scale:.4g} times the true gradient (a missing or extra factor?)"
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
        if grads.get(name) is None:
            problems.append(f"no gradient returned for {name}")
            continue
        _, numeric = numeric_grad(loss_fn, array)
        problems.append(gradient_problem(name, numeric, grads[name], tol))
    return [p for p in problems if p]


if __name__ == "__main__":
    for written in write_notebooks():
        print(f"wrote {written.relative_to(REPO_ROOT)}")
