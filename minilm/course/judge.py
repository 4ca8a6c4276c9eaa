"""The class grade's judge: a learner's answers run in a child process, the checks judge them here.

1. `answer_cells`: the notebook's code cells the child runs: every cell but the graded ones and the instant
   `check(...)` calls (those are the course's, and run here instead).
2. `flags`: what in those cells does more than define an answer: an import of minilm's internals, the checks
   or the grader that the course's own cells do not make, an assignment to another object's attribute, a call
   that exits, patches or reaches around the interpreter. Flagged whatever the score, for the instructor to read.
3. `run_answers`: the child (minilm/course/answers.py) in a scratch folder that holds only this notebook, under
   a time and a memory limit, its whole process tree stopped at the end.
4. `verdicts`: each check, run here on stand-ins that give back what the child recorded (minilm/course/replay.py):
   the inputs and the references are this process's own, which the learner's code never touched.
"""
import ast
import json
import shutil
import sys
from pathlib import Path

from . import replay
from .checks import ExerciseChecks
from .notebooks import is_graded
from .processes import run_contained

MEMORY_MIB = 4096  # the child's address space: a correct answer needs a few hundred MiB
ANSWER_MIB = 256  # the most a child may write, and the most of its answers this process reads

# A call of one of these in an answer cell exits, patches, or reaches around the interpreter.
ESCAPES = {"exit", "quit", "_exit", "abort", "kill", "killpg", "fork", "system", "setattr", "delattr", "exec", "eval",
           "compile", "__import__", "globals", "open", "write_text", "write_bytes", "savez", "save"}
# Reading one of these attributes reaches into other code's internals.
INTERNALS = {"modules", "__globals__", "__code__", "__dict__", "__class__", "__builtins__", "__subclasses__",
             "f_back", "f_globals", "gi_frame"}
# An answer needs none of these modules.
INTERPRETER = {"sys", "os", "importlib", "builtins", "gc", "ctypes", "inspect", "subprocess", "signal", "shutil",
               "pathlib", "types", "atexit", "threading", "multiprocessing"}


# --------------------------------------------------------------------------------------------------
# 1-2. The cells, and what in them is flagged

def is_instant_check(source):
    """True for a cell that is only `check(...)`, the learner's instant check."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Call) \
        and isinstance(body[0].value.func, ast.Name) and body[0].value.func.id == "check"


def without_magics(source):
    """A cell's Python: IPython's %magic and !shell lines become comments (the child has no IPython)."""
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def answer_cells(cells):
    """[(nbval's number of the code cell, its Python)] for each cell the child runs."""
    code = [cell for cell in cells if cell.cell_type == "code"]
    return [(n, without_magics(cell.source)) for n, cell in enumerate(code)
            if not is_graded(cell) and not is_instant_check(cell.source)]


def imported_modules(node):
    return [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]


def import_problem(node, course_imports):
    for module in imported_modules(node):
        top = module.split(".")[0]
        if top == "minilm" and ast.dump(node) not in course_imports:
            return f"imports {module}, which the exercise's own cells do not"
        if top in INTERPRETER:
            return f"imports {module}, which no answer needs"
    return ""


def assigned_attributes(node):
    """The attribute targets an assignment or del writes to."""
    if isinstance(node, (ast.Assign, ast.Delete)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    else:
        return []
    return [t for target in targets for t in ast.walk(target)
            if isinstance(t, ast.Attribute) and isinstance(t.ctx, (ast.Store, ast.Del))]


def root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def own_names(function):
    """The names a function may write attributes of: its parameters (self, a cache it is given) and its locals."""
    args = function.args
    params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a]
    stored = [n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return {*params, *stored}


def node_problem(node, own, course_imports):
    """Why one node of an answer cell is flagged, or ''. own: the names whose attributes it may set (None at
    the top level of the cell, where no attribute may be set)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return import_problem(node, course_imports)
    for target in assigned_attributes(node):
        if own is None or root_name(target) not in own:
            return f"sets {ast.unparse(target)}, an attribute of an object it did not make"
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name in ESCAPES:
            return f"calls {ast.unparse(node.func)}"
    if isinstance(node, ast.Attribute) and node.attr in INTERNALS:
        return f"reads {ast.unparse(node)}"
    return ""


def statement_problems(statement, course_imports):
    """(line, why) for what one top-level statement does beyond defining an answer: in a function or method,
    its parameters' and locals' attributes may be set; anywhere else, no attribute."""
    if isinstance(statement, ast.ClassDef):
        expressions = [*statement.decorator_list, *statement.bases, *(k.value for k in statement.keywords)]
        inside = [*map(ast.Expr, expressions), *statement.body]
        return [problem for s in inside for problem in statement_problems(s, course_imports)]
    own = own_names(statement) if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    problems = []
    for node in ast.walk(statement):
        why = node_problem(node, own, course_imports)
        if why:
            problems.append((getattr(node, "lineno", None), why))
    return problems


def flags(cells, course_cells):
    """One line per flagged statement of the answer cells, 'code cell 2, line 1: imports minilm.course.checks,
    ...'; a cell left as the course wrote it (the setup cell, an untouched stub) is not read."""
    course_sources = {cell.source for cell in course_cells if cell.cell_type == "code"}
    course_imports = {ast.dump(node) for source in course_sources for node in ast.walk(parse(source))
                      if isinstance(node, (ast.Import, ast.ImportFrom))}
    lines = []
    for n, source in cells:
        if source in course_sources:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            lines.append(f"code cell {n}, line {e.lineno}: is not Python ({e.msg})")
            continue
        for statement in tree.body:
            lines += [f"code cell {n}, line {line or statement.lineno}: {why}"
                      for line, why in statement_problems(statement, course_imports)]
    return lines


def parse(source):
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


# --------------------------------------------------------------------------------------------------
# 3-4. The child, and the verdicts

def run_answers(folder, notebook, exercise, cells, timeout, memory_mib=MEMORY_MIB):
    """Copy the notebook alone into the scratch `folder`, with the program the child runs, and run the child
    there. Returns its exit code, None when it ran past `timeout` seconds."""
    folder = Path(folder)
    shutil.copyfile(notebook, folder / Path(notebook).name)
    (folder / "program.json").write_text(json.dumps({"exercise": exercise, "cells": cells}))
    cmd = [sys.executable, "-m", "minilm.course.answers"]
    return run_contained(cmd, folder, timeout, memory_mib, ANSWER_MIB)


def verdicts(exercise, folder, unanswered):
    """[(passed, message)] for each check of the exercise, judged on the answers the child saved in `folder`.
    unanswered: the message of a check the child saved no answers for (it hung, or exited)."""
    checks = ExerciseChecks(exercise, {})
    out = []
    for k, check in enumerate(checks.checks, 1):
        try:
            saved = replay.load(folder, k, ANSWER_MIB * 2**20)
            checks.namespace = replay.replay_namespace(*saved) if saved else None
        except Exception as e:  # whatever the child wrote, it is data: unreadable data fails the check
            out.append((False, f"its answers could not be read ({type(e).__name__}: {e})"))
            continue
        message = checks.problem(check) if saved else unanswered
        out.append((not message, message))
    return out
