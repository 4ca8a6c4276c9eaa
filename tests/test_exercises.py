"""The graded exercises prove both directions: the solutions pass every check, the stubs and plausible
wrong solutions fail them, and the committed notebooks are what the generator makes from the sources.

All notebooks run in ONE pytest + nbval subprocess (one kernel per notebook), through the same code
path as `python -m minilm grade`. The plausible wrong solutions are those of exercise_mutations.py, whose
checks test_exercise_checks.py also runs one by one, in process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from exercise_mutations import MUTATIONS
from minilm.course import checks, feedback, grader, notebooks, paths
from minilm.errors import MinilmError

STEMS = [s.stem for s in notebooks.exercise_sources()]
# Graded end to end, through nbval: the first wrong solution of each exercise and the two KV-cache bugs that
# used to slip through. test_exercise_checks.py runs every one of them, check by check, in process.
END_TO_END = [next(m for m in MUTATIONS if m.exercise == stem) for stem in STEMS] + \
             [m for m in MUTATIONS if m.name in ("cache-mask-without-the-offset-square", "decode-rebuilds-the-cache-each-step")]


def solution_path(stem):
    return paths.EXERCISES / "solutions" / f"{stem}.ipynb"


def student_path(stem):
    return paths.EXERCISES / f"{stem}.ipynb"


def write_mutant(mutation, folder):
    mutated = folder / f"{mutation.exercise}__{mutation.name}.py"
    mutated.write_text(mutation.source())
    path = folder / f"{mutated.stem}.ipynb"
    path.write_text(notebooks.notebook_text(notebooks.build_notebook(mutated, solution=True)))
    return path


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """{'solution/NN_topic' | 'student/NN_topic' | 'mutant/NAME': [CellResult per code cell]}, for every
    solution, stub and mutant, from one graded run."""
    folder = tmp_path_factory.mktemp("mutants")
    labels = {**{solution_path(s).resolve(): f"solution/{s}" for s in STEMS},
              **{student_path(s).resolve(): f"student/{s}" for s in STEMS},
              **{write_mutant(m, folder).resolve(): f"mutant/{m.name}" for m in END_TO_END}}
    by_label = {}
    for r in grader.run_notebooks(list(labels), cell_timeout=120):
        by_label.setdefault(labels[Path(r.notebook)], []).append(r)
    return by_label


def test_the_exercises_in_course_order():
    assert [s[:2] for s in STEMS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]


@pytest.mark.parametrize("stem", STEMS)
def test_solution_passes_every_graded_check(cells, stem):
    results = cells[f"solution/{stem}"]
    graded = [r for r in results if r.graded]
    assert len(graded) >= 3, f"{stem}: too few graded checks"
    failed = [f"cell {r.cell} ({r.title}): {r.message}" for r in results if not r.passed]
    assert not failed, f"{stem} solution fails: " + " | ".join(failed)


@pytest.mark.parametrize("stem", STEMS)
def test_untouched_stub_fails_every_graded_check(cells, stem):
    results = cells[f"student/{stem}"]
    passing = [f"cell {r.cell} ({r.title})" for r in results if r.graded and r.passed]
    assert not passing, f"{stem}: these graded checks pass on the untouched stub, so they cannot fail: {passing}"
    # ...and every stub fails because the learner's code is missing, not because the notebook is broken
    broken = [f"cell {r.cell}: {r.message}" for r in results if not r.graded and not r.passed]
    assert not broken, f"{stem}: non-graded cells fail in the student notebook: {broken}"
    assert all("not implemented yet" in r.message for r in results if r.graded), [r.message for r in results]


@pytest.mark.parametrize("mutation", END_TO_END, ids=lambda m: m.name)
def test_plausible_wrong_solution_is_caught(cells, mutation):
    results = cells[f"mutant/{mutation.name}"]
    broken = [f"cell {r.cell}: {r.message}" for r in results if not r.graded and not r.passed]
    assert not broken, f"the mutant itself is broken (not a plausible solution): {broken}"
    exercise = checks.ExerciseChecks(mutation.exercise, {})
    by_title = {r.title: r for r in results if r.graded}
    for name, expect in mutation.catches.items():
        r = by_title[exercise.title(getattr(exercise.module, name))]
        assert not r.passed and expect in r.message, f"{r.title} must fail saying '{expect}', got: {r.message or 'pass'}"


def test_grade_report_counts_graded_checks_and_explains_failures(cells):
    mutant = cells["mutant/softmax-without-max-subtraction"]
    report = grader.grade_report(mutant)
    n = sum(r.graded for r in mutant)
    assert report.splitlines()[-1] == f"GRADE: {n - 1}/{n} graded checks passed"
    fail_lines = [line for line in report.splitlines() if line.strip().startswith("FAIL")]
    assert len(fail_lines) == 1 and "Check 2" in fail_lines[0] and "exp(1000) overflows" in fail_lines[0]
    assert "Traceback" not in report and "\x1b[" not in report



def test_a_notebook_that_did_not_run_is_one_line_not_one_per_check():
    message = "did not run: the notebook ran past its 5 s time limit (an endless loop?)"
    results = [grader.CellResult("nb.ipynb", n, f"Check {n}", n > 0, False, message) for n in range(6)]
    assert grader.grade_report(results).splitlines()[1:] == [f"  FAIL all 5 graded checks: {message}",
                                                            "GRADE: 0/5 graded checks passed"]


# ---- the committed notebooks are what the generator makes, and nothing lets a check off the hook

def test_committed_notebooks_equal_what_the_generator_makes():
    generated = notebooks.generated_notebooks()
    for path, text in generated.items():
        assert path.exists(), f"{path} is missing: run python -m minilm.course.notebooks"
        assert path.read_text() == text, f"{path} drifted from its source: run python -m minilm.course.notebooks"
    committed = set(paths.EXERCISES.glob("*.ipynb")) | set((paths.EXERCISES / "solutions").glob("*.ipynb"))
    assert committed == set(generated), f"notebooks without a source: {sorted(map(str, committed - set(generated)))}"


@pytest.mark.parametrize("stem", STEMS)
def test_notebooks_carry_no_outputs_and_no_escape_hatches(stem):
    for path in (student_path(stem), solution_path(stem)):
        nb = nbformat.read(str(path), as_version=4)
        assert nb.cells[0].cell_type == "markdown" and "Follows lesson" in nb.cells[0].source, f"{path}: must open by saying what to do and why"
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert not cell.outputs and cell.execution_count is None, f"{path}: committed with outputs"
            if grader.is_graded(cell):
                tags = set(cell.metadata.get("tags", []))
                assert not tags & set(notebooks.FORBIDDEN_TAGS), f"{path}: a graded cell carries {tags & set(notebooks.FORBIDDEN_TAGS)}"
                assert not any(m in cell.source for m in notebooks.FORBIDDEN_MARKERS), f"{path}: a graded cell carries an nbval marker"
                assert "check.graded(" in cell.source, f"{path}: a graded cell must run a check"


def test_student_notebook_hides_every_solution():
    for stem in STEMS:
        student = student_path(stem).read_text()
        assert notebooks.BEGIN not in student and notebooks.END not in student
        source = (paths.SOURCES / f"{stem}.py").read_text()
        blocks = [part.split(notebooks.END)[0] for part in source.split(notebooks.BEGIN)[1:]]
        assert student.count("raise NotImplementedError()") == len(blocks) > 0
        for block in blocks:
            longest = max(block.strip().splitlines(), key=len).strip()
            assert json.dumps(longest)[1:-1] not in student, f"{stem}: solution line {longest!r} leaked into the student notebook"


# ---- the generator and the grader's input checks (no kernels)

def test_stub_replaces_the_solution_at_its_indentation():
    code = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert notebooks.strip_solutions(code, keep=False) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert notebooks.strip_solutions(code, keep=True) == "def f(x):\n    return x + 1"


@pytest.mark.parametrize("code", ["### BEGIN SOLUTION\nx = 1\n", "x = 1\n### END SOLUTION\n",
                                  "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"])
def test_unbalanced_solution_markers_are_an_error(code):
    with pytest.raises(MinilmError, match="SOLUTION"):
        notebooks.strip_solutions(code, keep=False)


def test_source_cells_and_tags_are_parsed(tmp_path):
    source = tmp_path / "00_example.py"
    source.write_text('# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n# %% tags=["graded"]\nassert x == 1\n')
    assert notebooks.source_cells(source) == [("markdown", "# Title\n\ntext", []), ("code", "x = 1", []),
                                            ("code", "assert x == 1", ["graded"])]


@pytest.mark.parametrize("make, expect", [
    (lambda tmp: tmp / "missing.ipynb", "does not exist"),
    (lambda tmp: (tmp / "a.py").write_text("x") and tmp / "a.py", "not a notebook"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no notebooks"),
    (lambda tmp: (tmp / "bad.ipynb").write_text("{not json") and tmp / "bad.ipynb", "not a readable Jupyter notebook"),
])
def test_bad_paths_get_one_clear_line(tmp_path, make, expect):
    with pytest.raises(MinilmError, match=expect) as e:
        grader.run_notebooks(grader.notebooks_to_grade(make(tmp_path)))
    assert "\n" not in str(e.value)


def test_error_lines_are_one_readable_line():
    assert feedback.error_line("AssertionError", "rows of softmax\nmust sum to 1", "") == "rows of softmax must sum to 1"
    where = feedback.innermost_function("File checks.py:12, in softmax_rows(softmax)\nCell In[3], line 5, in softmax(logits)\n")
    assert where == "softmax"
    assert feedback.error_line("NotImplementedError", "", where).startswith("not implemented yet: softmax still raises")
    assert feedback.error_line("ValueError", "shapes (2,3) (4,)", where) == "ValueError (in softmax): shapes (2,3) (4,)"


def test_feedback_helpers_name_the_property():
    import numpy as np
    from minilm import masks
    got = np.tril(np.ones((3, 3), dtype=bool), k=1)
    assert feedback.mask_problem(got, masks.causal_mask(3), "causal") == "causal: position 0 can see position 1, but it must not"
    assert "cannot see position 0" in feedback.mask_problem(np.eye(2, 4, k=2, dtype=bool), masks.causal_mask(2, 4))
    assert "boolean" in feedback.mask_problem(got.astype(float), masks.causal_mask(3))
    g = np.arange(1.0, 5.0)
    assert feedback.gradient_problem("w", g, g) == ""
    assert "3 times the true gradient" in feedback.gradient_problem("w", g, 3 * g)
    assert "relative error" in feedback.gradient_problem("w_q", g, g[::-1])


def grade_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    return subprocess.run([sys.executable, "-m", "minilm", "grade", *map(str, args)], cwd=paths.ROOT,
                          env=env, capture_output=True, text=True)


def test_grade_cli_prints_the_grade_and_exits_nonzero_on_a_stub():
    stub = student_path("06_power_law_fit")
    run = grade_cli(stub)
    assert run.returncode == 1, run.stderr
    out = run.stdout.splitlines()
    n = sum(grader.is_graded(c) for c in grader.code_cells(stub))
    assert out[-1] == f"GRADE: 0/{n} graded checks passed"
    assert sum(line.strip().startswith("FAIL Check") for line in out) == n
    assert "Traceback" not in run.stdout + run.stderr


def test_grade_cli_bad_path_is_one_line(tmp_path):
    run = grade_cli(tmp_path / "nothing.ipynb")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip().count("\n") == 0 and "does not exist" in run.stderr
